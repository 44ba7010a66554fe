//! Contract of the `shipping` module: shipping quotes and shipments, as Boutique's
//! shippingservice.
//!
//! - Owns: shipments (tracking id, address, item count, cost, creation time).
//! - Provides: [`ShippingApi`]: `get_quote`, `ship_order` (and `get_shipment`, to read one back).
//! - Requires: nothing (product ids are not checked against the catalog: the quote depends on
//!   the item count only).
//!
//! Each operation's route is declared on the trait ([`ops`] lists them); [`http::routes`]
//! serves them and [`ShippingClient`] calls them.

use cleave_domain::{Address, Money, ProductId};
use cleave_kernel::{CallContext, async_trait, contract, contract_error};
use serde::{Deserialize, Serialize};

#[cfg(feature = "test-util")]
pub mod contract;
pub mod http;

/// Most lines (distinct entries of `items`) one quote or shipment may hold.
pub const MAX_ITEMS: usize = 100;
/// Most units one line may hold.
pub const MAX_QUANTITY: i64 = 1000;

/// The currency every quote is in.
pub const QUOTE_CURRENCY: &str = "USD";

/// One line of what is to be shipped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ShippingItem {
    /// The product.
    pub product_id: ProductId,
    /// How many, 1 to [`MAX_QUANTITY`].
    pub quantity: i64,
}

/// Body of `POST /quotes`: what a shipment would cost.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct QuoteRequest {
    /// Where it would go.
    pub address: Address,
    /// What would be shipped; may be empty (an empty cart ships for free).
    pub items: Vec<ShippingItem>,
}

/// The cost of shipping.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Quote {
    /// In [`QUOTE_CURRENCY`] (US dollars); see [`quote_for`].
    pub cost: Money,
}

/// Body of `POST /shipments`: ship these items to this address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ShipOrderRequest {
    /// Where to ship.
    pub address: Address,
    /// What to ship; at least one line.
    pub items: Vec<ShippingItem>,
}

/// A shipment that was made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Shipment {
    /// Its tracking id, e.g. `AB-12345-1234567` (see [`is_tracking_id`]).
    pub tracking_id: String,
    /// Where it goes.
    pub address: Address,
    /// How many units it holds (the sum of the lines' quantities).
    pub item_count: i64,
    /// What it cost, as quoted for `item_count`.
    pub cost: Money,
    /// When it was made: RFC 3339, UTC, e.g. `2026-11-24T09:30:00.123456Z`.
    pub created_at: String,
}

/// Errors of the shipping contract.
#[contract_error(module = "shipping")]
pub enum ShippingError {
    /// The address is incomplete or malformed.
    #[api(status = 400)]
    #[error("invalid address: {detail}")]
    InvalidAddress {
        /// What is wrong.
        detail: String,
    },
    /// A line's quantity is not between 1 and [`MAX_QUANTITY`].
    #[api(status = 400)]
    #[error("quantity {quantity} of product {product_id} is not between 1 and {max}", max = MAX_QUANTITY)]
    InvalidQuantity {
        /// The product of the line.
        product_id: String,
        /// The quantity given.
        quantity: i64,
    },
    /// More than [`MAX_ITEMS`] lines.
    #[api(status = 422)]
    #[error("a shipment holds at most {max} lines")]
    TooManyItems {
        /// The limit.
        max: usize,
    },
    /// `ship_order` was given nothing to ship.
    #[api(status = 422)]
    #[error("there is nothing to ship")]
    NoItems,
    /// No shipment has this tracking id.
    #[api(status = 404)]
    #[error("no shipment has tracking id {tracking_id}")]
    ShipmentNotFound {
        /// The tracking id asked for.
        tracking_id: String,
    },
}

/// Shipping quotes and shipments: the shipping contract. Reach the shipping module only through this trait.
#[contract(module = "shipping", error = ShippingError, client = ShippingClient, http = http)]
pub trait ShippingApi: Send + Sync {
    /// What shipping `req.items` to `req.address` would cost (see [`quote_for`]). Nothing is
    /// stored.
    #[op(POST "/quotes", read_only, access(anyone), errors(InvalidAddress, InvalidQuantity, TooManyItems))]
    #[rest(
        request_body = QuoteRequest,
        responses((status = 200, description = "The quote, in USD", body = Quote))
    )]
    async fn get_quote(&self, ctx: &CallContext, req: QuoteRequest)
    -> Result<Quote, ShippingError>;

    /// Ships `req.items` to `req.address`: records the shipment under a new tracking id and
    /// returns it, with the cost [`ShippingApi::get_quote`] gives for the same request.
    #[op(POST "/shipments", once, access(admin, modules(checkout)), errors(InvalidAddress, InvalidQuantity, TooManyItems, NoItems))]
    #[rest(
        request_body = ShipOrderRequest,
        responses(
            (status = 201, description = "The shipment that was made", body = Shipment,
                headers(("Location" = String, description = "Path of the new shipment"))),
        )
    )]
    async fn ship_order(
        &self,
        ctx: &CallContext,
        req: ShipOrderRequest,
    ) -> Result<Shipment, ShippingError>;

    /// The shipment with this tracking id.
    #[op(GET "/shipments/{tracking_id}", read_only, access(admin), errors(ShipmentNotFound))]
    #[rest(
        params(("tracking_id" = String, Path, description = "Tracking id, e.g. `AB-12345-1234567`")),
        responses((status = 200, description = "The shipment", body = Shipment))
    )]
    async fn get_shipment(
        &self,
        ctx: &CallContext,
        tracking_id: String,
    ) -> Result<Shipment, ShippingError>;
}

/// The price rule, and the only place it lives: as in Boutique, the cost depends on the
/// number of units only. Nothing ships for free (USD 0.00); anything else costs a flat
/// USD 8.99.
pub fn quote_for(item_count: i64) -> Money {
    let (units, nanos) = if item_count > 0 {
        (8, 990_000_000)
    } else {
        (0, 0)
    };
    Money {
        currency_code: QUOTE_CURRENCY.to_owned(),
        units,
        nanos,
    }
}

/// Checks an address and the lines to ship to it, and returns how many units the lines hold.
/// Shared by every implementation so they refuse alike. An empty list is fine here (it is
/// quoted as free); [`ShippingApi::ship_order`] refuses it on its own.
///
/// # Errors
/// [`ShippingError::InvalidAddress`] when [`Address::validate`] refuses the address,
/// [`ShippingError::TooManyItems`] for more than [`MAX_ITEMS`] lines,
/// [`ShippingError::InvalidQuantity`] for the first line outside `1..=MAX_QUANTITY`.
pub fn validate_items(address: &Address, items: &[ShippingItem]) -> Result<i64, ShippingError> {
    address
        .validate()
        .map_err(|e| ShippingError::InvalidAddress {
            detail: e.to_string(),
        })?;
    if items.len() > MAX_ITEMS {
        return Err(ShippingError::TooManyItems { max: MAX_ITEMS });
    }
    let mut count: i64 = 0;
    for item in items {
        if !(1..=MAX_QUANTITY).contains(&item.quantity) {
            return Err(ShippingError::InvalidQuantity {
                product_id: item.product_id.to_string(),
                quantity: item.quantity,
            });
        }
        // At most MAX_ITEMS * MAX_QUANTITY: no overflow.
        count += item.quantity;
    }
    Ok(count)
}

/// Whether `raw` has the form of a tracking id: two upper-case ASCII letters, `-`, five
/// digits, `-`, seven digits (`AB-12345-1234567`).
pub fn is_tracking_id(raw: &str) -> bool {
    let b = raw.as_bytes();
    b.len() == 16
        && b[..2].iter().all(u8::is_ascii_uppercase)
        && b[2] == b'-'
        && b[3..8].iter().all(u8::is_ascii_digit)
        && b[8] == b'-'
        && b[9..].iter().all(u8::is_ascii_digit)
}

#[async_trait]
impl ShippingApi for ShippingClient {
    async fn get_quote(
        &self,
        ctx: &CallContext,
        req: QuoteRequest,
    ) -> Result<Quote, ShippingError> {
        self.remote
            .op(&ops::GET_QUOTE, ctx)
            .json(&req)
            .fetch()
            .await
    }

    async fn ship_order(
        &self,
        ctx: &CallContext,
        req: ShipOrderRequest,
    ) -> Result<Shipment, ShippingError> {
        self.remote
            .op(&ops::SHIP_ORDER, ctx)
            .json(&req)
            .fetch()
            .await
    }

    async fn get_shipment(
        &self,
        ctx: &CallContext,
        tracking_id: String,
    ) -> Result<Shipment, ShippingError> {
        // A malformed id names no shipment; answering here keeps odd ids (empty, slashes) out
        // of the path, where they would hit another route.
        if !is_tracking_id(&tracking_id) {
            return Err(ShippingError::ShipmentNotFound { tracking_id });
        }
        self.remote
            .op(&ops::GET_SHIPMENT, ctx)
            .params(&[&tracking_id])
            .fetch()
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cleave_kernel::ApiError;

    fn address() -> Address {
        Address::example()
    }

    fn line(quantity: i64) -> ShippingItem {
        ShippingItem {
            product_id: ProductId::parse("OLJCESPC7Z").unwrap(),
            quantity,
        }
    }

    #[test]
    fn nothing_ships_for_free_and_anything_else_for_a_flat_8_99_usd() {
        let usd = |units, nanos| Money::new("USD", units, nanos).unwrap();
        assert_eq!(quote_for(0), usd(0, 0));
        assert_eq!(quote_for(1), usd(8, 990_000_000));
        assert_eq!(quote_for(5), usd(8, 990_000_000));
        assert_eq!(quote_for(100_000), usd(8, 990_000_000));
    }

    #[test]
    fn validate_items_counts_units_not_lines() {
        assert_eq!(validate_items(&address(), &[line(2), line(3)]), Ok(5));
        assert_eq!(validate_items(&address(), &[]), Ok(0));
    }

    #[test]
    fn validate_items_checks_the_address_before_the_lines() {
        let bad = Address {
            country: String::new(),
            ..address()
        };
        match validate_items(&bad, &[line(0)]) {
            Err(ShippingError::InvalidAddress { detail }) => assert!(detail.contains("country")),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn tracking_ids_have_letters_then_five_then_seven_digits() {
        assert!(is_tracking_id("AB-12345-1234567"));
        for bad in [
            "",
            "ab-12345-1234567",
            "AB-1234-12345678",
            "AB-12345-123456",
            "AB_12345-1234567",
            "AB-12345-123456X",
            "ÄB-12345-123456",
        ] {
            assert!(!is_tracking_id(bad), "{bad}");
        }
    }

    #[test]
    fn errors_keep_their_variant_across_the_wire() {
        for err in [
            ShippingError::NoItems,
            ShippingError::InvalidQuantity {
                product_id: "OLJCESPC7Z".into(),
                quantity: 0,
            },
            ShippingError::ShipmentNotFound {
                tracking_id: "AB-12345-1234567".into(),
            },
        ] {
            let problem = cleave_kernel::Failure::from(err.clone()).problem().clone();
            assert_eq!(problem.code, err.code());
            assert_eq!(problem.decode::<ShippingError>(), Some(err));
        }
    }
}

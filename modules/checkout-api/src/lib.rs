//! Contract of the `checkout` module: placing orders and reading them back.
//!
//! - Owns: orders (with their status and the idempotency key they were placed with).
//! - Provides: [`CheckoutApi`]: `place_order`, `get_order`, `list_orders`; publishes
//!   [`OrderPlaced`] (topic `checkout.order_placed`) through the event outbox.
//! - Requires: cart, catalog, currency, shipping, payment.
//!
//! Each operation's route is declared on the trait ([`ops`] lists them); [`http::routes`]
//! serves them and [`CheckoutClient`] calls them.

use cleave_domain::{
    Address, CreditCard, CurrencyCode, InvalidValue, Money, ProductId, UserId, validate_email,
};
use cleave_kernel::events::Topic;
use cleave_kernel::{CallContext, async_trait, contract, contract_error};
use serde::{Deserialize, Serialize};

#[cfg(feature = "test-util")]
pub mod contract;
pub mod http;

/// The HTTP header that makes `place_order` idempotent.
pub const IDEMPOTENCY_KEY_HEADER: &str = "idempotency-key";

/// A client-chosen key that makes a `place_order` request safe to retry: 1 to 255 visible
/// ASCII characters, unique per user.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    /// Validates a raw key.
    ///
    /// # Errors
    /// [`InvalidValue`] when it is empty, longer than 255 or holds non-visible characters.
    pub fn parse(raw: impl Into<String>) -> Result<Self, InvalidValue> {
        let raw = raw.into();
        if raw.is_empty() || raw.len() > 255 {
            return Err(InvalidValue(
                "an idempotency key is 1 to 255 characters long".into(),
            ));
        }
        if !raw.chars().all(|c| c.is_ascii_graphic()) {
            return Err(InvalidValue(
                "an idempotency key holds visible ASCII characters only".into(),
            ));
        }
        Ok(Self(raw))
    }

    /// The key as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for IdempotencyKey {
    type Error = InvalidValue;
    fn try_from(raw: String) -> Result<Self, InvalidValue> {
        Self::parse(raw)
    }
}

impl From<IdempotencyKey> for String {
    fn from(key: IdempotencyKey) -> String {
        key.0
    }
}

/// What a shopper submits at checkout.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PlaceOrderRequest {
    /// Whose cart is bought (a session id or a user id).
    pub user_id: UserId,
    /// The currency prices and the total are charged in.
    pub user_currency: CurrencyCode,
    /// Where to ship.
    pub address: Address,
    /// Where the confirmation goes.
    pub email: String,
    /// The card to charge. Never stored; only its last four digits end up in the order.
    pub credit_card: CreditCard,
}

impl PlaceOrderRequest {
    /// Checks what checkout can check alone: the address and the e-mail address. (Cards are
    /// the payment module's business.)
    ///
    /// # Errors
    /// [`CheckoutError::InvalidRequest`] naming the field.
    pub fn validate(&self) -> Result<(), CheckoutError> {
        let invalid = |detail: String| CheckoutError::InvalidRequest { detail };
        self.address.validate().map_err(|e| invalid(e.0))?;
        validate_email(&self.email).map_err(|e| invalid(format!("email {}", e.0)))
    }
}

/// One line of an order, priced in the order's currency.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct OrderItem {
    /// The product.
    pub product_id: ProductId,
    /// Its name when the order was placed.
    pub name: String,
    /// How many.
    pub quantity: i64,
    /// Price of one, converted to the order's currency.
    pub unit_price: Money,
    /// `unit_price × quantity`.
    pub cost: Money,
}

/// Where an order is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum OrderStatus {
    /// Charged, shipped and recorded.
    Placed,
}

/// A placed order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Order {
    /// The order's id (a UUID).
    pub order_id: String,
    /// Who placed it.
    pub user_id: UserId,
    /// Its status.
    pub status: OrderStatus,
    /// Where the confirmation went.
    pub email: String,
    /// Where it ships.
    pub shipping_address: Address,
    /// The carrier's tracking id.
    pub shipping_tracking_id: String,
    /// Shipping, in the order's currency.
    pub shipping_cost: Money,
    /// The lines.
    pub items: Vec<OrderItem>,
    /// Items plus shipping: what was charged.
    pub total: Money,
    /// The payment's transaction id.
    pub transaction_id: String,
    /// Last four digits of the card charged.
    pub card_last4: String,
    /// When it was placed (RFC 3339, UTC).
    pub created_at: String,
}

/// Published when an order has been placed (after its transaction committed).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderPlaced {
    /// The order as placed.
    pub order: Order,
}

impl Topic for OrderPlaced {
    const TOPIC: &'static str = "checkout.order_placed";
}

/// Errors of the checkout contract.
#[contract_error(
    module = "checkout",
    unavailable = "A module checkout needs cannot be reached (or its storage). Nothing was charged, or the charge was refunded."
)]
pub enum CheckoutError {
    /// A field of the request is malformed.
    #[api(status = 400)]
    #[error("invalid checkout request: {detail}")]
    InvalidRequest {
        /// What is wrong.
        detail: String,
    },
    /// The cart is empty: there is nothing to buy.
    #[api(status = 422)]
    #[error("the cart is empty")]
    EmptyCart,
    /// The cart holds a product the catalog does not know (any more).
    #[api(status = 422)]
    #[error("product {product_id} is no longer sold")]
    ProductUnavailable {
        /// The product.
        product_id: String,
    },
    /// The currency is not supported.
    #[api(status = 422)]
    #[error("currency {currency_code} is not supported")]
    UnsupportedCurrency {
        /// The code given.
        currency_code: String,
    },
    /// The payment was refused: the card is invalid, expired or not accepted. Nothing was
    /// charged and no order exists.
    #[api(status = 402)]
    #[error("payment declined ({reason}): {detail}")]
    PaymentDeclined {
        /// The payment module's error code, e.g. `payment.card_expired`.
        reason: String,
        /// Its explanation (never the card number).
        detail: String,
    },
    /// The shipping address was refused by shipping.
    #[api(status = 400)]
    #[error("the address was refused: {detail}")]
    InvalidAddress {
        /// Why.
        detail: String,
    },
    /// No order with this id (for this caller).
    #[api(status = 404)]
    #[error("order {order_id} not found")]
    OrderNotFound {
        /// The id asked for.
        order_id: String,
    },
    /// The idempotency key was used before with a different request.
    #[api(status = 422)]
    #[error("the idempotency key was already used for a different request")]
    IdempotencyKeyReused,
    /// A request with the same idempotency key is still being processed, or failed and is
    /// being undone (a dependency is down): try again after `retry_after_secs`.
    #[api(status = 409)]
    #[error("a request with this idempotency key is in progress; retry in {retry_after_secs} s")]
    RequestInProgress {
        /// Seconds to wait (also in `Retry-After`).
        retry_after_secs: u64,
    },
}

/// Placing orders and reading them back: the checkout contract. Reach the checkout module only through this trait.
#[contract(module = "checkout", error = CheckoutError, client = CheckoutClient, http = http)]
pub trait CheckoutApi: Send + Sync {
    /// Buys the user's cart: prices it in `user_currency`, quotes shipping, charges the
    /// card, ships, records the order, empties the cart and publishes [`OrderPlaced`].
    /// Either the order is placed or nothing is left charged (a charge made before a later
    /// step failed is refunded).
    ///
    /// With an `idempotency_key`, a repeated request returns the first result and charges
    /// at most once.
    #[op(POST "/orders", keyed(idempotency_key), access(owner(req.user_id), admin, modules(storefront)), errors(InvalidRequest, InvalidAddress, EmptyCart, ProductUnavailable, UnsupportedCurrency, PaymentDeclined, IdempotencyKeyReused, RequestInProgress))]
    #[rest(
        params((
            "Idempotency-Key" = Option<String>, Header,
            description = "Makes the request safe to retry: 1 to 255 visible ASCII characters; a repeat returns the first result and charges at most once"
        )),
        request_body = PlaceOrderRequest,
        responses(
            (status = 201, description = "The order was placed", body = Order,
                headers(("Location" = String, description = "URL of the order"))),
        )
    )]
    async fn place_order(
        &self,
        ctx: &CallContext,
        req: PlaceOrderRequest,
        idempotency_key: Option<IdempotencyKey>,
    ) -> Result<Order, CheckoutError>;

    /// One placed order, for its owner or an admin. Another user's order is not found.
    #[op(GET "/orders/{order_id}", read_only, access(signed_in), errors(OrderNotFound))]
    #[rest(
        params(("order_id" = String, Path, description = "The order's id")),
        responses((status = 200, description = "The order", body = Order))
    )]
    async fn get_order(&self, ctx: &CallContext, order_id: String) -> Result<Order, CheckoutError>;

    /// A user's placed orders, newest first: for that user or an admin.
    #[op(GET "/orders", read_only, access(owner(user_id), admin, modules(storefront)), errors(InvalidRequest))]
    #[rest(
        params(
            ("user_id" = Option<String>, Query, description = "Whose orders; without it, every order (admins only)"),
            ("limit" = Option<u64>, Query, description = "Most orders when listing every order (default 100, at most 1000)"),
        ),
        responses((status = 200, description = "The orders (empty when none)", body = [Order]))
    )]
    async fn list_orders(
        &self,
        ctx: &CallContext,
        user_id: UserId,
    ) -> Result<Vec<Order>, CheckoutError>;

    /// Every placed order, newest first, at most `limit` (admins only).
    #[op(GET "/orders", read_only, access(admin))]
    async fn list_all_orders(
        &self,
        ctx: &CallContext,
        limit: u64,
    ) -> Result<Vec<Order>, CheckoutError>;
}

#[async_trait]
impl CheckoutApi for CheckoutClient {
    async fn place_order(
        &self,
        ctx: &CallContext,
        req: PlaceOrderRequest,
        idempotency_key: Option<IdempotencyKey>,
    ) -> Result<Order, CheckoutError> {
        let mut call = self
            .remote
            .op(&ops::PLACE_ORDER, ctx)
            .keyed(idempotency_key.is_some())
            .json(&req);
        if let Some(key) = idempotency_key {
            call = call.header(IDEMPOTENCY_KEY_HEADER, String::from(key));
        }
        call.fetch().await
    }

    async fn get_order(&self, ctx: &CallContext, order_id: String) -> Result<Order, CheckoutError> {
        self.remote
            .op(&ops::GET_ORDER, ctx)
            .params(&[&order_id])
            .fetch()
            .await
    }

    async fn list_all_orders(
        &self,
        ctx: &CallContext,
        limit: u64,
    ) -> Result<Vec<Order>, CheckoutError> {
        self.remote
            .op(&ops::LIST_ALL_ORDERS, ctx)
            .query("limit", &limit.to_string())
            .fetch()
            .await
    }

    async fn list_orders(
        &self,
        ctx: &CallContext,
        user_id: UserId,
    ) -> Result<Vec<Order>, CheckoutError> {
        self.remote
            .op(&ops::LIST_ORDERS, ctx)
            .query("user_id", user_id.as_str())
            .fetch()
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idempotency_keys_are_visible_ascii() {
        assert!(IdempotencyKey::parse("order-2026-11-24-1").is_ok());
        assert!(IdempotencyKey::parse("").is_err());
        assert!(IdempotencyKey::parse("has space").is_err());
        assert!(IdempotencyKey::parse("k".repeat(256)).is_err());
    }
}

//! Contract of the `cart` module: one shopping cart per user or session.
//!
//! - Owns: carts (lines of product id and quantity per user id).
//! - Provides: [`CartApi`]: `add_item`, `get_cart`, `empty_cart`; publishes [`CartChanged`].
//! - Requires: nothing (product ids are not checked against the catalog, as in Boutique:
//!   pricing happens at checkout).
//!
//! Each operation's route is declared on the trait ([`ops`] lists them); [`http::routes`]
//! serves them and [`CartClient`] calls them.

use cleave_domain::{ProductId, UserId};
use cleave_kernel::{CallContext, async_trait, contract, contract_error};
use serde::{Deserialize, Serialize};

#[cfg(feature = "test-util")]
pub mod contract;
pub mod http;

/// Most units of one product a cart line may hold.
pub const MAX_QUANTITY: i64 = 1000;
/// Most distinct products one cart may hold.
pub const MAX_LINES: usize = 100;

/// One line of a cart.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CartItem {
    /// The product.
    pub product_id: ProductId,
    /// How many, at least 1.
    pub quantity: i64,
}

/// A user's cart: its lines ordered by product id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Cart {
    /// Whose cart.
    pub user_id: UserId,
    /// The lines; empty for a user who never added anything.
    pub items: Vec<CartItem>,
}

/// Body of `POST /carts/{user_id}/items`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AddItemRequest {
    /// The product to add.
    pub product_id: ProductId,
    /// How many to add, 1 to [`MAX_QUANTITY`].
    pub quantity: i64,
}

/// Errors of the cart contract.
#[contract_error(module = "cart")]
pub enum CartError {
    /// The user id is malformed.
    #[api(status = 400)]
    #[error("invalid user id: {detail}")]
    InvalidUserId {
        /// What is wrong.
        detail: String,
    },
    /// The quantity is not between 1 and [`MAX_QUANTITY`].
    #[api(status = 400)]
    #[error("quantity {quantity} is not between 1 and {max}")]
    InvalidQuantity {
        /// The quantity given.
        quantity: i64,
        /// The largest accepted.
        max: i64,
    },
    /// Adding would take the line over [`MAX_QUANTITY`].
    #[api(status = 422)]
    #[error("a cart holds at most {max} of product {product_id}")]
    QuantityLimitExceeded {
        /// The product.
        product_id: String,
        /// The limit.
        max: i64,
    },
    /// Adding would take the cart over [`MAX_LINES`] distinct products.
    #[api(status = 422)]
    #[error("a cart holds at most {max} different products")]
    TooManyItems {
        /// The limit.
        max: usize,
    },
}

/// Carts per user or session: the cart contract. Reach the cart module only through this trait.
#[contract(module = "cart", error = CartError, client = CartClient, http = http)]
pub trait CartApi: Send + Sync {
    /// Adds `quantity` of a product to the user's cart (adding to an existing line) and
    /// returns the cart. Either the whole addition happens or nothing changes.
    #[op(POST "/carts/{user_id}/items", once, access(owner(user_id), admin, modules(checkout, storefront)), errors(InvalidUserId, InvalidQuantity, QuantityLimitExceeded, TooManyItems))]
    #[rest(
        params(("user_id" = String, Path, description = "Session or user id")),
        request_body = AddItemRequest,
        responses((status = 200, description = "The cart after the addition", body = Cart))
    )]
    async fn add_item(
        &self,
        ctx: &CallContext,
        user_id: UserId,
        product_id: ProductId,
        quantity: i64,
    ) -> Result<Cart, CartError>;

    /// The user's cart; an empty one for a user who has none.
    #[op(GET "/carts/{user_id}", read_only, access(owner(user_id), admin, modules(checkout, storefront)), errors(InvalidUserId))]
    #[rest(
        params(("user_id" = String, Path, description = "Session or user id")),
        responses((status = 200, description = "The cart", body = Cart))
    )]
    async fn get_cart(&self, ctx: &CallContext, user_id: UserId) -> Result<Cart, CartError>;

    /// Removes every line of the user's cart. Emptying an empty cart is fine.
    #[op(DELETE "/carts/{user_id}", idempotent, access(owner(user_id), admin, modules(checkout, storefront)), errors(InvalidUserId))]
    #[rest(
        params(("user_id" = String, Path, description = "Session or user id")),
        responses((status = 204, description = "Emptied (also when it was empty)"))
    )]
    async fn empty_cart(&self, ctx: &CallContext, user_id: UserId) -> Result<(), CartError>;
}

/// Published when a cart changed (an item added, the cart emptied), through the cart's outbox
/// with the change: callers in other processes drop what they kept of that cart (its
/// `resource`, see `cleave_kernel::events::CHANGED_RESOURCE`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CartChanged {
    /// Whose cart.
    pub user_id: String,
    /// The cart's path under the API, `/api/cart/v1/carts/{user_id}`.
    pub resource: String,
}

impl CartChanged {
    /// The change of `user_id`'s cart.
    pub fn of(user_id: &UserId) -> Self {
        Self {
            user_id: user_id.to_string(),
            resource: ops::GET_CART.path_with(&[user_id.as_str()]),
        }
    }
}

impl cleave_kernel::events::Topic for CartChanged {
    const TOPIC: &'static str = "cart.changed";
}

/// Checks a quantity against the contract's bounds.
///
/// # Errors
/// [`CartError::InvalidQuantity`] outside `1..=MAX_QUANTITY`.
pub fn validate_quantity(quantity: i64) -> Result<(), CartError> {
    if (1..=MAX_QUANTITY).contains(&quantity) {
        Ok(())
    } else {
        Err(CartError::InvalidQuantity {
            quantity,
            max: MAX_QUANTITY,
        })
    }
}

#[async_trait]
impl CartApi for CartClient {
    async fn add_item(
        &self,
        ctx: &CallContext,
        user_id: UserId,
        product_id: ProductId,
        quantity: i64,
    ) -> Result<Cart, CartError> {
        self.remote
            .op(&ops::ADD_ITEM, ctx)
            .params(&[user_id.as_str()])
            .json(&AddItemRequest {
                product_id,
                quantity,
            })
            .fetch()
            .await
    }

    async fn get_cart(&self, ctx: &CallContext, user_id: UserId) -> Result<Cart, CartError> {
        self.remote
            .op(&ops::GET_CART, ctx)
            .params(&[user_id.as_str()])
            .fetch()
            .await
    }

    async fn empty_cart(&self, ctx: &CallContext, user_id: UserId) -> Result<(), CartError> {
        self.remote
            .op(&ops::EMPTY_CART, ctx)
            .params(&[user_id.as_str()])
            .send()
            .await
    }
}

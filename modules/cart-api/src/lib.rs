//! Contract of the `cart` module: one shopping cart per user or session.
//!
//! - Owns: carts (lines of product id and quantity per user id).
//! - Provides: [`CartApi`]: `add_item`, `get_cart`, `empty_cart`.
//! - Requires: nothing (product ids are not checked against the catalog, as in Boutique:
//!   pricing happens at checkout).
//!
//! REST (served by [`http::configure`], called by [`CartClient`]):
//! `GET|DELETE /api/cart/v1/carts/{user_id}`,
//! `POST /api/cart/v1/carts/{user_id}/items` `{"product_id", "quantity"}`.

use std::sync::Arc;

use actix_web::http::StatusCode;
use async_trait::async_trait;
use cleave_kernel::CallContext;
use cleave_kernel::client::{Method, RemoteClient, encode};
use cleave_kernel::error::ApiError;
use cleave_kernel::module::ModuleSpec;
use cleave_kernel::types::{ProductId, UserId};
use serde::{Deserialize, Serialize};

#[cfg(feature = "test-util")]
pub mod contract;
pub mod http;

/// The module's name, config section and route prefix.
pub const MODULE: &str = "cart";

/// Most units of one product a cart line may hold.
pub const MAX_QUANTITY: i64 = 1000;
/// Most distinct products one cart may hold.
pub const MAX_LINES: usize = 100;

/// What the cart module is.
pub const SPEC: ModuleSpec = ModuleSpec {
    name: MODULE,
    owns: "carts",
    provides: &["add_item", "get_cart", "empty_cart"],
    requires: &[],
};

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
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
#[serde(tag = "code", content = "params")]
pub enum CartError {
    /// The user id is malformed.
    #[serde(rename = "cart.invalid_user_id")]
    #[error("invalid user id: {detail}")]
    InvalidUserId {
        /// What is wrong.
        detail: String,
    },
    /// The quantity is not between 1 and [`MAX_QUANTITY`].
    #[serde(rename = "cart.invalid_quantity")]
    #[error("quantity {quantity} is not between 1 and {max}")]
    InvalidQuantity {
        /// The quantity given.
        quantity: i64,
        /// The largest accepted.
        max: i64,
    },
    /// Adding would take the line over [`MAX_QUANTITY`].
    #[serde(rename = "cart.quantity_limit_exceeded")]
    #[error("a cart holds at most {max} of product {product_id}")]
    QuantityLimitExceeded {
        /// The product.
        product_id: String,
        /// The limit.
        max: i64,
    },
    /// Adding would take the cart over [`MAX_LINES`] distinct products.
    #[serde(rename = "cart.too_many_items")]
    #[error("a cart holds at most {max} different products")]
    TooManyItems {
        /// The limit.
        max: usize,
    },
    /// The cart module (or its storage) cannot be reached.
    #[serde(rename = "cart.unavailable")]
    #[error("cart is unavailable: {reason}")]
    Unavailable {
        /// Why (logged, not sent).
        #[serde(skip)]
        reason: String,
    },
    /// A bug in the cart module.
    #[serde(rename = "cart.internal")]
    #[error("cart internal error: {reason}")]
    Internal {
        /// What went wrong (logged, not sent).
        #[serde(skip)]
        reason: String,
    },
}

impl ApiError for CartError {
    fn code(&self) -> &'static str {
        match self {
            Self::InvalidUserId { .. } => "cart.invalid_user_id",
            Self::InvalidQuantity { .. } => "cart.invalid_quantity",
            Self::QuantityLimitExceeded { .. } => "cart.quantity_limit_exceeded",
            Self::TooManyItems { .. } => "cart.too_many_items",
            Self::Unavailable { .. } => "cart.unavailable",
            Self::Internal { .. } => "cart.internal",
        }
    }

    fn status(&self) -> StatusCode {
        match self {
            Self::InvalidUserId { .. } | Self::InvalidQuantity { .. } => StatusCode::BAD_REQUEST,
            Self::QuantityLimitExceeded { .. } | Self::TooManyItems { .. } => {
                StatusCode::UNPROCESSABLE_ENTITY
            }
            Self::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal { .. } => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn unavailable(reason: String) -> Self {
        Self::Unavailable { reason }
    }

    fn internal(reason: String) -> Self {
        Self::Internal { reason }
    }
}

/// The cart contract. Reach the cart module only through this trait.
#[async_trait]
pub trait CartApi: Send + Sync {
    /// Adds `quantity` of a product to the user's cart (adding to an existing line) and
    /// returns the cart. Either the whole addition happens or nothing changes.
    ///
    /// # Errors
    /// [`CartError::InvalidQuantity`], [`CartError::QuantityLimitExceeded`],
    /// [`CartError::TooManyItems`], [`CartError::Unavailable`].
    async fn add_item(
        &self,
        ctx: &CallContext,
        user_id: UserId,
        product_id: ProductId,
        quantity: i64,
    ) -> Result<Cart, CartError>;

    /// The user's cart; an empty one for a user who has none.
    ///
    /// # Errors
    /// [`CartError::Unavailable`].
    async fn get_cart(&self, ctx: &CallContext, user_id: UserId) -> Result<Cart, CartError>;

    /// Removes every line of the user's cart. Emptying an empty cart is fine.
    ///
    /// # Errors
    /// [`CartError::Unavailable`].
    async fn empty_cart(&self, ctx: &CallContext, user_id: UserId) -> Result<(), CartError>;
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

/// The cart module in another process, reached over its REST API.
#[derive(Debug, Clone)]
pub struct CartClient {
    remote: RemoteClient,
}

impl CartClient {
    /// A client calling through `remote`.
    pub fn new(remote: RemoteClient) -> Self {
        Self { remote }
    }

    /// As a shared contract object.
    pub fn into_api(self) -> Arc<dyn CartApi> {
        Arc::new(self)
    }
}

fn cart_path(user_id: &UserId) -> String {
    format!("/api/cart/v1/carts/{}", encode(user_id.as_str()))
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
        let path = format!("{}/items", cart_path(&user_id));
        self.remote
            .send_json(
                ctx,
                Method::POST,
                &path,
                &AddItemRequest {
                    product_id,
                    quantity,
                },
            )
            .await
            .map_err(|e| e.into_api_error())
    }

    async fn get_cart(&self, ctx: &CallContext, user_id: UserId) -> Result<Cart, CartError> {
        self.remote
            .get_json(ctx, &cart_path(&user_id))
            .await
            .map_err(|e| e.into_api_error())
    }

    async fn empty_cart(&self, ctx: &CallContext, user_id: UserId) -> Result<(), CartError> {
        self.remote
            .send_empty(ctx, Method::DELETE, &cart_path(&user_id))
            .await
            .map_err(|e| e.into_api_error())
    }
}

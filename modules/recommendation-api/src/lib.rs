//! Contract of the `recommendation` module: products to suggest next to the ones a shopper
//! is looking at.
//!
//! - Owns: nothing.
//! - Provides: [`RecommendationApi`]: `list_recommendations`.
//! - Requires: `catalog`.
//!
//! REST (served by [`http::configure`], called by [`RecommendationClient`]):
//! `GET /api/recommendation/v1/recommendations?user_id=&product_ids=a,b`.

use std::sync::Arc;

use actix_web::http::StatusCode;
use async_trait::async_trait;
use cleave_kernel::CallContext;
use cleave_kernel::client::{RemoteClient, encode};
use cleave_kernel::error::ApiError;
use cleave_kernel::module::ModuleSpec;
use cleave_kernel::types::{ProductId, UserId};
use serde::{Deserialize, Serialize};

#[cfg(feature = "test-util")]
pub mod contract;
pub mod http;

/// The module's name, config section and route prefix.
pub const MODULE: &str = "recommendation";

/// Most recommendations returned.
pub const MAX_RESULTS: usize = 5;
/// Most product ids a request may name.
pub const MAX_INPUT_PRODUCTS: usize = 50;

/// What the recommendation module is.
pub const SPEC: ModuleSpec = ModuleSpec {
    name: MODULE,
    owns: "nothing (reads the catalog)",
    provides: &["list_recommendations"],
    requires: &["catalog"],
};

/// Answer of `GET /recommendations`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Recommendations {
    /// Recommended product ids, at most [`MAX_RESULTS`].
    pub product_ids: Vec<ProductId>,
}

/// Errors of the recommendation contract.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
#[serde(tag = "code", content = "params")]
pub enum RecommendationError {
    /// The user id is malformed.
    #[serde(rename = "recommendation.invalid_user_id")]
    #[error("invalid user id: {detail}")]
    InvalidUserId {
        /// What is wrong.
        detail: String,
    },
    /// A product id is malformed.
    #[serde(rename = "recommendation.invalid_product_id")]
    #[error("invalid product id: {detail}")]
    InvalidProductId {
        /// What is wrong.
        detail: String,
    },
    /// More than [`MAX_INPUT_PRODUCTS`] product ids.
    #[serde(rename = "recommendation.too_many_products")]
    #[error("at most {max} product ids may be given")]
    TooManyProducts {
        /// The limit.
        max: usize,
    },
    /// The recommendation module or the catalog cannot be reached.
    #[serde(rename = "recommendation.unavailable")]
    #[error("recommendations are unavailable: {reason}")]
    Unavailable {
        /// Why (logged, not sent).
        #[serde(skip)]
        reason: String,
    },
    /// A bug in the recommendation module.
    #[serde(rename = "recommendation.internal")]
    #[error("recommendation internal error: {reason}")]
    Internal {
        /// What went wrong (logged, not sent).
        #[serde(skip)]
        reason: String,
    },
}

impl ApiError for RecommendationError {
    fn code(&self) -> &'static str {
        match self {
            Self::InvalidUserId { .. } => "recommendation.invalid_user_id",
            Self::InvalidProductId { .. } => "recommendation.invalid_product_id",
            Self::TooManyProducts { .. } => "recommendation.too_many_products",
            Self::Unavailable { .. } => "recommendation.unavailable",
            Self::Internal { .. } => "recommendation.internal",
        }
    }

    fn status(&self) -> StatusCode {
        match self {
            Self::InvalidUserId { .. }
            | Self::InvalidProductId { .. }
            | Self::TooManyProducts { .. } => StatusCode::BAD_REQUEST,
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

/// The recommendation contract.
#[async_trait]
pub trait RecommendationApi: Send + Sync {
    /// Up to [`MAX_RESULTS`] catalog products other than `product_ids`, in an order that is
    /// stable for the same user and products (so pages do not reshuffle on reload) and differs
    /// between users.
    ///
    /// # Errors
    /// [`RecommendationError::TooManyProducts`]; [`RecommendationError::Unavailable`] when the
    /// catalog cannot be reached.
    async fn list_recommendations(
        &self,
        ctx: &CallContext,
        user_id: UserId,
        product_ids: Vec<ProductId>,
    ) -> Result<Vec<ProductId>, RecommendationError>;
}

/// Checks the size of a request.
///
/// # Errors
/// [`RecommendationError::TooManyProducts`].
pub fn validate_input(product_ids: &[ProductId]) -> Result<(), RecommendationError> {
    if product_ids.len() > MAX_INPUT_PRODUCTS {
        return Err(RecommendationError::TooManyProducts {
            max: MAX_INPUT_PRODUCTS,
        });
    }
    Ok(())
}

/// The recommendation module in another process, reached over its REST API.
#[derive(Debug, Clone)]
pub struct RecommendationClient {
    remote: RemoteClient,
}

impl RecommendationClient {
    /// A client calling through `remote`.
    pub fn new(remote: RemoteClient) -> Self {
        Self { remote }
    }

    /// As a shared contract object.
    pub fn into_api(self) -> Arc<dyn RecommendationApi> {
        Arc::new(self)
    }
}

#[async_trait]
impl RecommendationApi for RecommendationClient {
    async fn list_recommendations(
        &self,
        ctx: &CallContext,
        user_id: UserId,
        product_ids: Vec<ProductId>,
    ) -> Result<Vec<ProductId>, RecommendationError> {
        validate_input(&product_ids)?;
        let ids: Vec<&str> = product_ids.iter().map(ProductId::as_str).collect();
        let path = format!(
            "/api/recommendation/v1/recommendations?user_id={}&product_ids={}",
            encode(user_id.as_str()),
            encode(&ids.join(","))
        );
        self.remote
            .get_json::<Recommendations>(ctx, &path)
            .await
            .map(|r| r.product_ids)
            .map_err(|e| e.into_api_error())
    }
}

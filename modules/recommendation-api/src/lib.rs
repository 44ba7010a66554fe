//! Contract of the `recommendation` module: products to suggest next to the ones a shopper
//! is looking at.
//!
//! - Owns: nothing.
//! - Provides: [`RecommendationApi`]: `list_recommendations`.
//! - Requires: `catalog`.
//!
//! Each operation's route is declared on the trait ([`ops`] lists them); [`http::routes`]
//! serves them and [`RecommendationClient`] calls them.

use cleave_domain::{ProductId, UserId};
use cleave_kernel::{CallContext, async_trait, contract, contract_error};
use serde::{Deserialize, Serialize};

#[cfg(feature = "test-util")]
pub mod contract;
pub mod http;

/// Most recommendations returned.
pub const MAX_RESULTS: usize = 5;
/// Most product ids a request may name.
pub const MAX_INPUT_PRODUCTS: usize = 50;

/// Answer of `GET /recommendations`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Recommendations {
    /// Recommended product ids, at most [`MAX_RESULTS`].
    pub product_ids: Vec<ProductId>,
}

/// Errors of the recommendation contract.
#[contract_error(
    module = "recommendation",
    unavailable = "The recommendation module or the catalog cannot be reached."
)]
pub enum RecommendationError {
    /// The user id is malformed.
    #[api(status = 400)]
    #[error("invalid user id: {detail}")]
    InvalidUserId {
        /// What is wrong.
        detail: String,
    },
    /// A product id is malformed.
    #[api(status = 400)]
    #[error("invalid product id: {detail}")]
    InvalidProductId {
        /// What is wrong.
        detail: String,
    },
    /// More than [`MAX_INPUT_PRODUCTS`] product ids.
    #[api(status = 400)]
    #[error("at most {max} product ids may be given")]
    TooManyProducts {
        /// The limit.
        max: usize,
    },
}

/// Products to suggest next to others: the recommendation contract. Reach the recommendation module only through this trait.
#[contract(module = "recommendation", error = RecommendationError, client = RecommendationClient, http = http)]
pub trait RecommendationApi: Send + Sync {
    /// Up to [`MAX_RESULTS`] catalog products other than `product_ids`, in an order that is
    /// stable for the same user and products (so pages do not reshuffle on reload) and differs
    /// between users.
    #[op(GET "/recommendations", read_only, access(anyone), errors(InvalidUserId, InvalidProductId, TooManyProducts))]
    #[rest(
        params(
            ("user_id" = String, Query, description = "Session or user id"),
            ("product_ids" = Option<String>, Query, description = "Comma-separated product ids to recommend around (at most 50); empty or absent means none"),
        ),
        responses((status = 200, description = "The recommended product ids", body = Recommendations))
    )]
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
        let found: Recommendations = self
            .remote
            .op(&ops::LIST_RECOMMENDATIONS, ctx)
            .query("user_id", user_id.as_str())
            .query("product_ids", &ids.join(","))
            .fetch()
            .await?;
        Ok(found.product_ids)
    }
}

//! The recommendation module's REST API, served from any [`RecommendationApi`].

use actix_web::web;
use cleave_domain::{ProductId, UserId};
use cleave_kernel::http::{Call, Reply, Routes, ok};
use serde::Deserialize;

use crate::{RecommendationApi, RecommendationError, Recommendations, ops};

#[derive(Debug, Deserialize)]
struct Query {
    user_id: String,
    #[serde(default)]
    product_ids: String,
}

/// The routes of the recommendation module's operations.
pub fn routes(r: &mut Routes) {
    r.add(&ops::LIST_RECOMMENDATIONS, recommendations);
}

/// Up to 5 catalog products other than the given ones, stable per user and products.
async fn recommendations(c: Call<dyn RecommendationApi>, query: web::Query<Query>) -> Reply {
    let Query {
        user_id,
        product_ids,
    } = query.into_inner();
    let user_id = UserId::parse(user_id).map_err(|e| RecommendationError::InvalidUserId {
        detail: e.to_string(),
    })?;
    let product_ids = product_ids
        .split(',')
        .filter(|s| !s.is_empty())
        .map(|s| {
            ProductId::parse(s).map_err(|e| RecommendationError::InvalidProductId {
                detail: e.to_string(),
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let product_ids = c
        .api
        .list_recommendations(&c.ctx, user_id, product_ids)
        .await?;
    ok(Recommendations { product_ids })
}

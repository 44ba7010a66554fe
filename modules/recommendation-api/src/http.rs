//! The recommendation module's REST API, served from any [`RecommendationApi`].

use actix_web::{HttpResponse, web};
use cleave_domain::{ProductId, UserId};
use cleave_kernel::http::Routes;
use cleave_kernel::{CallContext, Failure};
use serde::Deserialize;

use crate::{RecommendationApi, RecommendationError, Recommendations, ops};

/// The OpenAPI description of these routes.
#[derive(utoipa::OpenApi)]
#[openapi(
    paths(recommendations),
    components(schemas(Recommendations)),
    tags((name = "recommendation", description = "Products to suggest next to others"))
)]
pub struct ApiDoc;

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
#[utoipa::path(
    get,
    path = ops::LIST_RECOMMENDATIONS.path,
    tag = "recommendation",
    params(
        ("user_id" = String, Query, description = "Session or user id"),
        ("product_ids" = Option<String>, Query, description = "Comma-separated product ids to recommend around (at most 50); empty or absent means none"),
    ),
    responses(
        (status = 200, description = "The recommended product ids", body = Recommendations),
    )
)]
async fn recommendations(
    ctx: CallContext,
    api: web::Data<dyn RecommendationApi>,
    query: web::Query<Query>,
) -> Result<HttpResponse, Failure> {
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
    let product_ids = api.list_recommendations(&ctx, user_id, product_ids).await?;
    Ok(HttpResponse::Ok().json(Recommendations { product_ids }))
}

//! The recommendation module's REST API, served from any [`RecommendationApi`].

use std::sync::Arc;

use actix_web::{HttpResponse, web};
use cleave_kernel::types::{ProductId, UserId};
use cleave_kernel::{CallContext, Failure};
use serde::Deserialize;

use crate::{RecommendationApi, RecommendationError, Recommendations};

#[derive(Debug, Deserialize)]
struct Query {
    user_id: String,
    #[serde(default)]
    product_ids: String,
}

/// Registers `/api/recommendation/v1/...` on `cfg`, answering from `api`.
pub fn configure(cfg: &mut web::ServiceConfig, api: Arc<dyn RecommendationApi>) {
    cfg.service(
        web::scope("/api/recommendation/v1")
            .app_data(web::Data::from(api))
            .service(web::resource("/recommendations").route(web::get().to(recommendations))),
    );
}

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

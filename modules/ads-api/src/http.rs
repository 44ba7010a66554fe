//! The ads module's REST API, served from any [`AdsApi`].

use std::sync::Arc;

use actix_web::{HttpResponse, web};
use cleave_kernel::{CallContext, Failure};
use serde::Deserialize;

use crate::{AdsApi, AdsRequest};

/// Query of `GET /ads`.
#[derive(Debug, Deserialize)]
struct AdsQuery {
    /// Comma-separated context keys; empty or missing means none.
    #[serde(default)]
    context_keys: String,
}

/// Registers `/api/ads/v1/...` on `cfg`, answering from `api`.
pub fn configure(cfg: &mut web::ServiceConfig, api: Arc<dyn AdsApi>) {
    cfg.service(
        web::scope("/api/ads/v1")
            .app_data(web::Data::from(api))
            .service(web::resource("/ads").route(web::get().to(get_ads))),
    );
}

async fn get_ads(
    ctx: CallContext,
    api: web::Data<dyn AdsApi>,
    query: web::Query<AdsQuery>,
) -> Result<HttpResponse, Failure> {
    let raw = query.into_inner().context_keys;
    // Empty segments are kept (`a,,b` names an empty key and is refused, as in process); only
    // a wholly empty value means "no keys".
    let context_keys = if raw.is_empty() {
        Vec::new()
    } else {
        raw.split(',').map(str::to_owned).collect()
    };
    Ok(HttpResponse::Ok().json(api.get_ads(&ctx, AdsRequest { context_keys }).await?))
}

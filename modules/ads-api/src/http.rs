//! The ads module's REST API, served from any [`AdsApi`].

use std::sync::Arc;

use actix_web::{HttpResponse, web};
use cleave_kernel::{CallContext, Failure, Problem};
use serde::Deserialize;

use crate::{Ad, Ads, AdsApi, AdsRequest};

/// The OpenAPI description of these routes.
#[derive(utoipa::OpenApi)]
#[openapi(
    paths(get_ads),
    components(schemas(Ad, Ads)),
    tags((name = "ads", description = "Text ads by product category"))
)]
pub struct ApiDoc;

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

/// The ads of the given categories, or 2 random ads when none matches.
#[utoipa::path(
    get,
    path = "/api/ads/v1/ads",
    tag = "ads",
    params(("context_keys" = Option<String>, Query, description = "Comma-separated product categories (at most 20, each 1 to 64 ASCII letters, digits, `-`, `_` or spaces); empty or absent means none")),
    responses(
        (status = 200, description = "The ads to show", body = Ads),
        (status = 400, description = "Too many context keys (`ads.too_many_keys`), invalid context key (`ads.invalid_context_key`) or malformed query string (`cleave.invalid_query`)", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Ads unavailable (`ads.unavailable`)", body = Problem, content_type = "application/problem+json"),
    )
)]
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

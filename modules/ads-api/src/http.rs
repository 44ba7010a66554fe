//! The ads module's REST API, served from any [`AdsApi`].

use std::sync::Arc;

use actix_web::{HttpResponse, web};
use cleave_kernel::{CallContext, Failure, Problem};
use serde::Deserialize;

use crate::{Ad, AdDefinition, Ads, AdsApi, AdsRequest};

/// The OpenAPI description of these routes.
#[derive(utoipa::OpenApi)]
#[openapi(
    paths(get_ads, put_ad, delete_ad),
    components(schemas(Ad, Ads, AdDefinition)),
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
            .service(web::resource("/ads").route(web::get().to(get_ads)))
            .service(
                web::resource("/ads/{ad_id}")
                    .route(web::put().to(put_ad))
                    .route(web::delete().to(delete_ad)),
            ),
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

/// Creates or replaces an ad (admin role).
#[utoipa::path(
    put,
    path = "/api/ads/v1/ads/{ad_id}",
    tag = "ads",
    params(("ad_id" = String, Path, description = "The ad's id, e.g. `tank-top`")),
    request_body = AdDefinition,
    responses(
        (status = 200, description = "The ad as saved", body = AdDefinition),
        (status = 400, description = "Malformed ad (`ads.invalid_ad`, `cleave.invalid_json`)", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No access token (`ads.unauthenticated`, `auth.unauthenticated`)", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not an admin (`ads.forbidden`)", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body too large (`cleave.payload_too_large`)", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Not JSON (`cleave.unsupported_media_type`)", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Ads unavailable (`ads.unavailable`)", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn put_ad(
    ctx: CallContext,
    api: web::Data<dyn AdsApi>,
    ad_id: web::Path<String>,
    body: web::Json<AdDefinition>,
) -> Result<HttpResponse, Failure> {
    Ok(HttpResponse::Ok().json(
        api.put_ad(&ctx, ad_id.into_inner(), body.into_inner())
            .await?,
    ))
}

/// Removes an ad (admin role).
#[utoipa::path(
    delete,
    path = "/api/ads/v1/ads/{ad_id}",
    tag = "ads",
    params(("ad_id" = String, Path, description = "The ad's id")),
    responses(
        (status = 204, description = "Removed"),
        (status = 401, description = "No access token (`ads.unauthenticated`, `auth.unauthenticated`)", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not an admin (`ads.forbidden`)", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such ad (`ads.ad_not_found`)", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Ads unavailable (`ads.unavailable`)", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn delete_ad(
    ctx: CallContext,
    api: web::Data<dyn AdsApi>,
    ad_id: web::Path<String>,
) -> Result<HttpResponse, Failure> {
    api.delete_ad(&ctx, ad_id.into_inner()).await?;
    Ok(HttpResponse::NoContent().finish())
}

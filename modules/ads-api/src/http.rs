//! The ads module's REST API, served from any [`AdsApi`].

use actix_web::{HttpResponse, web};
use cleave_kernel::http::Routes;
use cleave_kernel::{CallContext, Failure};
use serde::Deserialize;

use crate::{Ad, AdDefinition, Ads, AdsApi, AdsRequest, ops};

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

/// The routes of the ads module's operations.
pub fn routes(r: &mut Routes) {
    r.add(&ops::GET_ADS, get_ads)
        .add(&ops::PUT_AD, put_ad)
        .add(&ops::DELETE_AD, delete_ad);
}

/// The ads of the given categories, or 2 random ads when none matches.
#[utoipa::path(
    get,
    path = ops::GET_ADS.path,
    tag = "ads",
    params(("context_keys" = Option<String>, Query, description = "Comma-separated product categories (at most 20, each 1 to 64 ASCII letters, digits, `-`, `_` or spaces); empty or absent means none")),
    responses(
        (status = 200, description = "The ads to show", body = Ads),
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
    path = ops::PUT_AD.path,
    tag = "ads",
    params(("ad_id" = String, Path, description = "The ad's id, e.g. `tank-top`")),
    request_body = AdDefinition,
    responses(
        (status = 200, description = "The ad as saved", body = AdDefinition),
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
    path = ops::DELETE_AD.path,
    tag = "ads",
    params(("ad_id" = String, Path, description = "The ad's id")),
    responses(
        (status = 204, description = "Removed"),
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

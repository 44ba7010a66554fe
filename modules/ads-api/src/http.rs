//! The ads module's REST API, served from any [`AdsApi`].

use actix_web::web;
use cleave_kernel::http::{Call, Reply, Routes, no_content, ok};
use serde::Deserialize;

use crate::{AdDefinition, AdsApi, AdsRequest, ops};

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
async fn get_ads(c: Call<dyn AdsApi>, query: web::Query<AdsQuery>) -> Reply {
    let raw = query.into_inner().context_keys;
    // Empty segments are kept (`a,,b` names an empty key and is refused, as in process); only
    // a wholly empty value means "no keys".
    let context_keys = if raw.is_empty() {
        Vec::new()
    } else {
        raw.split(',').map(str::to_owned).collect()
    };
    ok(c.api.get_ads(&c.ctx, AdsRequest { context_keys }).await?)
}

/// Creates or replaces an ad (admin role).
async fn put_ad(
    c: Call<dyn AdsApi>,
    ad_id: web::Path<String>,
    body: web::Json<AdDefinition>,
) -> Reply {
    ok(c.api
        .put_ad(&c.ctx, ad_id.into_inner(), body.into_inner())
        .await?)
}

/// Removes an ad (admin role).
async fn delete_ad(c: Call<dyn AdsApi>, ad_id: web::Path<String>) -> Reply {
    c.api.delete_ad(&c.ctx, ad_id.into_inner()).await?;
    no_content()
}

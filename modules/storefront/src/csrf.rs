//! Cross-site form posts (CSRF): form resources refuse posts whose `Origin` or `Referer`
//! names another site.

use super::*;

/// Middleware of the form resources: a POST from another site gets the 403 page instead of
/// reaching its handler.
pub(crate) async fn same_site_posts(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let shop = req.app_data::<web::Data<Storefront>>().cloned();
    match shop {
        Some(shop)
            if req.method() == actix_web::http::Method::POST && cross_site(req.request()) =>
        {
            let ctx = req
                .extensions()
                .get::<CallContext>()
                .cloned()
                .unwrap_or_else(CallContext::current);
            let page = refuse_cross_site(req.request(), &ctx, &shop).await;
            Ok(req.into_response(page))
        }
        _ => Ok(next.call(req).await?.map_into_boxed_body()),
    }
}

/// Whether a form post comes from another site (CSRF): its `Origin`, or failing that its
/// `Referer`, names a host other than this one. Posts with neither (Boutique's load
/// generator, old clients) pass; cookies are `SameSite=Lax` besides.
pub(crate) fn cross_site(req: &HttpRequest) -> bool {
    let host = req.connection_info().host().to_ascii_lowercase();
    let header = |name| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    match header(header::ORIGIN).or_else(|| header(header::REFERER)) {
        None => false,
        Some(source) => {
            let source_host = source.split_once("://").map(|(_, rest)| {
                rest.split('/')
                    .next()
                    .unwrap_or_default()
                    .to_ascii_lowercase()
            });
            source_host.as_deref() != Some(host.as_str())
        }
    }
}

pub(crate) async fn refuse_cross_site(
    req: &HttpRequest,
    ctx: &CallContext,
    shop: &Storefront,
) -> HttpResponse {
    let visit = Visit::of(req, shop).await;
    tracing::warn!(path = %req.path(), "cross-site form post refused");
    let chrome = shop.chrome(&visit, ctx).await;
    error_page(
        &visit,
        chrome,
        StatusCode::FORBIDDEN,
        "That form came from another site",
        "For your safety the shop only accepts its own forms. Please go back to the shop and try again.",
    )
}

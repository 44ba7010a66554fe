//! The OpenAPI description of every module's REST API, merged into one document served at
//! `/api/openapi.json`, with Swagger UI at `/api/docs/` (its assets are compiled into the
//! binary, so the page works offline). Each `-api` crate describes its own routes next to
//! their handlers (`http::ApiDoc`); the document is the same whatever the placement, since a
//! process answers (or forwards) every module's routes.

use utoipa::OpenApi;
use utoipa::openapi::OpenApi as Document;
use utoipa_swagger_ui::SwaggerUi;

/// Where the document is served.
pub const SPEC_PATH: &str = "/api/openapi.json";

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Cleave boutique API",
        description = "The REST APIs of the boutique's modules. Every error is \
                       application/problem+json with a stable `code`."
    ),
    components(schemas(cleave_kernel::Problem))
)]
struct Root;

/// The merged document.
pub fn document() -> Document {
    let mut doc = Root::openapi();
    doc.info.version = env!("CARGO_PKG_VERSION").to_owned();
    for part in [
        catalog_api::http::ApiDoc::openapi(),
        currency_api::http::ApiDoc::openapi(),
        cart_api::http::ApiDoc::openapi(),
        recommendation_api::http::ApiDoc::openapi(),
        shipping_api::http::ApiDoc::openapi(),
        payment_api::http::ApiDoc::openapi(),
        ads_api::http::ApiDoc::openapi(),
        email_api::http::ApiDoc::openapi(),
        checkout_api::http::ApiDoc::openapi(),
        identity_api::http::ApiDoc::openapi(),
    ] {
        doc.merge(part);
    }
    doc
}

/// Swagger UI at `/api/docs/` reading [`SPEC_PATH`], which it also serves.
pub fn swagger_ui(doc: Document) -> SwaggerUi {
    SwaggerUi::new("/api/docs/{_:.*}").url(SPEC_PATH, doc)
}

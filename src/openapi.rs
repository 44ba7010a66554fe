//! The OpenAPI description of every module's REST API, merged into one document served at
//! `/api/openapi.json`, with Swagger UI at `/api/docs/` (its assets are compiled into the
//! binary, so the page works offline). Each contract describes its own routes next to their
//! handlers; the error responses of every operation are derived from the contracts' error
//! declarations. The document is the same whatever the placement, since a process answers (or
//! forwards) every module's routes.

use cleave_kernel::openapi::{ContractDoc, document_errors};
use utoipa::OpenApi;
use utoipa::openapi::OpenApi as Document;
use utoipa_swagger_ui::SwaggerUi;

use crate::modules::MODULES;

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
    for part in MODULES.iter().filter_map(|e| e.openapi()) {
        doc.merge(part);
    }
    let contracts: Vec<ContractDoc> = MODULES
        .iter()
        .map(|e| ContractDoc {
            module: e.spec().name,
            operations: e.operations(),
            errors: e.errors(),
            refusals: e.refusals(),
        })
        .collect();
    let limited: Vec<(&str, &str)> = crate::edge::limited_routes()
        .iter()
        .map(|(method, path, _)| (method.as_str(), *path))
        .collect();
    match document_errors(doc.clone(), &contracts, &limited) {
        Ok(with_errors) => with_errors,
        Err(e) => {
            tracing::error!(error = %e, "cannot add error responses to the API document");
            doc
        }
    }
}

/// Where Swagger UI is.
pub const DOCS_PATH: &str = "/api/docs/";

/// `/api/docs` (as people type it, and as the shop's footer links it) redirects to
/// [`DOCS_PATH`].
pub fn docs_redirect(cfg: &mut actix_web::web::ServiceConfig) {
    cfg.route(
        DOCS_PATH.trim_end_matches('/'),
        actix_web::web::get().to(|| async {
            actix_web::HttpResponse::PermanentRedirect()
                .insert_header((actix_web::http::header::LOCATION, DOCS_PATH))
                .finish()
        }),
    );
}

/// Swagger UI at [`DOCS_PATH`] reading [`SPEC_PATH`], which it also serves.
pub fn swagger_ui(doc: Document) -> SwaggerUi {
    SwaggerUi::new("/api/docs/{_:.*}").url(SPEC_PATH, doc)
}

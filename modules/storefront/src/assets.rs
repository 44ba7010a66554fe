//! The shop's static assets (embedded in the binary) and `robots.txt`.

use super::*;

#[derive(rust_embed::Embed)]
#[folder = "static/"]
pub(crate) struct Assets;

pub(crate) async fn robots() -> HttpResponse {
    serve_asset("robots.txt")
}

pub(crate) async fn asset(path: web::Path<String>) -> HttpResponse {
    serve_asset(&path.into_inner())
}

pub(crate) fn serve_asset(path: &str) -> HttpResponse {
    match Assets::get(path) {
        Some(file) => HttpResponse::Ok()
            .content_type(file.metadata.mimetype())
            .insert_header((header::CACHE_CONTROL, "public, max-age=3600"))
            .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
            .body(file.data.into_owned()),
        None => HttpResponse::NotFound()
            .content_type("text/plain; charset=utf-8")
            .body("not found"),
    }
}

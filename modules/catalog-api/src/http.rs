//! The catalog's REST API, served from any [`CatalogApi`]: the module itself when hosted, the
//! [`crate::CatalogClient`] when this process forwards to the catalog's own process.

use std::sync::Arc;

use actix_web::{HttpResponse, web};
use cleave_kernel::types::ProductId;
use cleave_kernel::{CallContext, Failure, Problem};
use serde::Deserialize;

use crate::{CatalogApi, CatalogError, Product, ProductList};

/// The OpenAPI description of these routes.
#[derive(utoipa::OpenApi)]
#[openapi(
    paths(list_products, get_product, upsert_product, delete_product),
    components(schemas(Product, ProductList)),
    tags((name = "catalog", description = "The products of the shop"))
)]
pub struct ApiDoc;

/// Query of `GET /products`.
#[derive(Debug, Deserialize)]
struct ListQuery {
    q: Option<String>,
}

/// Registers `/api/catalog/v1/...` on `cfg`, answering from `api`.
pub fn configure(cfg: &mut web::ServiceConfig, api: Arc<dyn CatalogApi>) {
    cfg.service(
        web::scope("/api/catalog/v1")
            .app_data(web::Data::from(api))
            .service(web::resource("/products").route(web::get().to(list_products)))
            .service(
                web::resource("/products/{id}")
                    .route(web::get().to(get_product))
                    .route(web::put().to(upsert_product))
                    .route(web::delete().to(delete_product)),
            ),
    );
}

/// Every product, or those whose name or description contains `q` (ignoring case).
#[utoipa::path(
    get,
    path = "/api/catalog/v1/products",
    tag = "catalog",
    params(("q" = Option<String>, Query, description = "Search text (at most 200 characters); blank matches every product, absent lists them all")),
    responses(
        (status = 200, description = "The products, ordered by id", body = ProductList),
        (status = 400, description = "Search text too long (`catalog.invalid_query`) or malformed query string (`cleave.invalid_query`)", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Catalog unavailable (`catalog.unavailable`)", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn list_products(
    ctx: CallContext,
    api: web::Data<dyn CatalogApi>,
    query: web::Query<ListQuery>,
) -> Result<HttpResponse, Failure> {
    let products = match query.into_inner().q {
        Some(q) => api.search_products(&ctx, q).await?,
        None => api.list_products(&ctx).await?,
    };
    Ok(HttpResponse::Ok().json(ProductList { products }))
}

/// One product.
#[utoipa::path(
    get,
    path = "/api/catalog/v1/products/{id}",
    tag = "catalog",
    params(("id" = String, Path, description = "Product id, e.g. `OLJCESPC7Z`")),
    responses(
        (status = 200, description = "The product", body = Product),
        (status = 400, description = "Malformed product id (`catalog.invalid_product_id`)", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No product has this id (`catalog.product_not_found`)", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Catalog unavailable (`catalog.unavailable`)", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn get_product(
    ctx: CallContext,
    api: web::Data<dyn CatalogApi>,
    id: web::Path<String>,
) -> Result<HttpResponse, Failure> {
    let id = ProductId::parse(id.into_inner()).map_err(|e| CatalogError::InvalidProductId {
        detail: e.to_string(),
    })?;
    Ok(HttpResponse::Ok().json(api.get_product(&ctx, id).await?))
}

fn path_id(raw: String) -> Result<ProductId, CatalogError> {
    ProductId::parse(raw).map_err(|e| CatalogError::InvalidProductId {
        detail: e.to_string(),
    })
}

/// Creates or replaces a product (admin role). The id in the path wins over the body's.
#[utoipa::path(
    put,
    path = "/api/catalog/v1/products/{id}",
    tag = "catalog",
    params(("id" = String, Path, description = "Product id")),
    request_body = Product,
    responses(
        (status = 200, description = "The product as saved", body = Product),
        (status = 400, description = "Malformed id or product (`catalog.invalid_product_id`, `catalog.invalid_product`, `cleave.invalid_json`)", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No access token (`catalog.unauthenticated`, `auth.unauthenticated`)", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not an admin (`catalog.forbidden`)", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body too large (`cleave.payload_too_large`)", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Not JSON (`cleave.unsupported_media_type`)", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Catalog unavailable (`catalog.unavailable`)", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn upsert_product(
    ctx: CallContext,
    api: web::Data<dyn CatalogApi>,
    id: web::Path<String>,
    body: web::Json<Product>,
) -> Result<HttpResponse, Failure> {
    let mut product = body.into_inner();
    product.id = path_id(id.into_inner())?;
    Ok(HttpResponse::Ok().json(api.upsert_product(&ctx, product).await?))
}

/// Removes a product (admin role).
#[utoipa::path(
    delete,
    path = "/api/catalog/v1/products/{id}",
    tag = "catalog",
    params(("id" = String, Path, description = "Product id")),
    responses(
        (status = 204, description = "Removed"),
        (status = 400, description = "Malformed id (`catalog.invalid_product_id`)", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No access token (`catalog.unauthenticated`, `auth.unauthenticated`)", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not an admin (`catalog.forbidden`)", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such product (`catalog.product_not_found`)", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Catalog unavailable (`catalog.unavailable`)", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn delete_product(
    ctx: CallContext,
    api: web::Data<dyn CatalogApi>,
    id: web::Path<String>,
) -> Result<HttpResponse, Failure> {
    api.delete_product(&ctx, path_id(id.into_inner())?).await?;
    Ok(HttpResponse::NoContent().finish())
}

//! The catalog's REST API, served from any [`CatalogApi`] (the module itself where it is
//! hosted). Error responses are documented from the contract's declarations.

use actix_web::{HttpResponse, web};
use cleave_domain::ProductId;
use cleave_kernel::http::Routes;
use cleave_kernel::{CallContext, Failure};
use serde::Deserialize;

use crate::{CatalogApi, CatalogError, Product, ProductList, ops};

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

/// The routes of the catalog's operations.
pub fn routes(r: &mut Routes) {
    r.add(&ops::LIST_PRODUCTS, list_products)
        .add(&ops::GET_PRODUCT, get_product)
        .add(&ops::UPSERT_PRODUCT, upsert_product)
        .add(&ops::DELETE_PRODUCT, delete_product);
}

/// Every product, or those whose name or description contains `q` (ignoring case).
#[utoipa::path(
    get,
    path = ops::LIST_PRODUCTS.path,
    tag = "catalog",
    params(("q" = Option<String>, Query, description = "Search text (at most 200 characters); blank matches every product, absent lists them all")),
    responses(
        (status = 200, description = "The products, ordered by id", body = ProductList),
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
    path = ops::GET_PRODUCT.path,
    tag = "catalog",
    params(("id" = String, Path, description = "Product id, e.g. `OLJCESPC7Z`")),
    responses(
        (status = 200, description = "The product", body = Product),
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
    path = ops::UPSERT_PRODUCT.path,
    tag = "catalog",
    params(("id" = String, Path, description = "Product id")),
    request_body = Product,
    responses(
        (status = 200, description = "The product as saved", body = Product),
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
    path = ops::DELETE_PRODUCT.path,
    tag = "catalog",
    params(("id" = String, Path, description = "Product id")),
    responses(
        (status = 204, description = "Removed"),
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

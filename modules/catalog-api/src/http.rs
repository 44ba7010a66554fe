//! The catalog's REST API, served from any [`CatalogApi`]: the module itself when hosted, the
//! [`crate::CatalogClient`] when this process forwards to the catalog's own process.

use std::sync::Arc;

use actix_web::{HttpResponse, web};
use cleave_kernel::types::ProductId;
use cleave_kernel::{CallContext, Failure};
use serde::Deserialize;

use crate::{CatalogApi, CatalogError, ProductList};

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
            .service(web::resource("/products/{id}").route(web::get().to(get_product))),
    );
}

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

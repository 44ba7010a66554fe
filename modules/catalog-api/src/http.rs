//! The catalog's REST API, served from any [`CatalogApi`] (the module itself where it is
//! hosted). Error responses are documented from the contract's declarations.

use actix_web::web;
use cleave_domain::ProductId;
use cleave_kernel::http::{Call, Reply, Routes, no_content, ok};
use serde::Deserialize;

use crate::{CatalogApi, CatalogError, Product, ProductList, ops};

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
async fn list_products(c: Call<dyn CatalogApi>, query: web::Query<ListQuery>) -> Reply {
    let products = match query.into_inner().q {
        Some(q) => c.api.search_products(&c.ctx, q).await?,
        None => c.api.list_products(&c.ctx).await?,
    };
    ok(ProductList { products })
}

/// One product.
async fn get_product(c: Call<dyn CatalogApi>, id: web::Path<String>) -> Reply {
    ok(c.api.get_product(&c.ctx, path_id(id.into_inner())?).await?)
}

fn path_id(raw: String) -> Result<ProductId, CatalogError> {
    ProductId::parse(raw).map_err(|e| CatalogError::InvalidProductId {
        detail: e.to_string(),
    })
}

/// Creates or replaces a product (admin role). The id in the path wins over the body's.
async fn upsert_product(
    c: Call<dyn CatalogApi>,
    id: web::Path<String>,
    body: web::Json<Product>,
) -> Reply {
    let mut product = body.into_inner();
    product.id = path_id(id.into_inner())?;
    ok(c.api.upsert_product(&c.ctx, product).await?)
}

/// Removes a product (admin role).
async fn delete_product(c: Call<dyn CatalogApi>, id: web::Path<String>) -> Reply {
    c.api
        .delete_product(&c.ctx, path_id(id.into_inner())?)
        .await?;
    no_content()
}

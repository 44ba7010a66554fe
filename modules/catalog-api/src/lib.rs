//! Contract of the `catalog` module: the products of the shop.
//!
//! - Owns: products (id, name, description, picture, USD price, categories).
//! - Provides: [`CatalogApi`]: `list_products`, `get_product`, `search_products`.
//! - Requires: nothing.
//!
//! Each operation's route is declared on the trait ([`ops`] lists them); [`http::routes`]
//! serves them and [`CatalogClient`] calls them.

use cleave_domain::{Money, ProductId};
use cleave_kernel::{CallContext, async_trait, contract, contract_error};
use serde::{Deserialize, Serialize};

#[cfg(feature = "test-util")]
pub mod contract;
#[cfg(feature = "test-util")]
pub mod fake;
pub mod http;

/// Longest search query accepted, in characters.
pub const MAX_QUERY_CHARS: usize = 200;

/// A product of the shop.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Product {
    /// Product id, e.g. `OLJCESPC7Z`.
    pub id: ProductId,
    /// Display name.
    pub name: String,
    /// Description shown on the product page.
    pub description: String,
    /// Picture path, under `/static/img/products/`.
    pub picture: String,
    /// Price in US dollars.
    pub price_usd: Money,
    /// Lower-case category names, e.g. `kitchen`.
    pub categories: Vec<String>,
}

/// Published when a product was created, replaced or removed (through the catalog's outbox,
/// with the change): every catalog replica, in whatever process, reloads its snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProductChanged {
    /// The product.
    pub product_id: String,
}

impl cleave_kernel::events::Topic for ProductChanged {
    const TOPIC: &'static str = "catalog.product_changed";
}

/// A list of products, as the REST API returns it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ProductList {
    /// The products.
    pub products: Vec<Product>,
}

/// Errors of the catalog contract.
#[contract_error(module = "catalog")]
pub enum CatalogError {
    /// No product has this id.
    #[api(status = 404)]
    #[error("product {id} not found")]
    ProductNotFound {
        /// The id asked for.
        id: String,
    },
    /// The id is not a well-formed product id.
    #[api(status = 400)]
    #[error("invalid product id: {detail}")]
    InvalidProductId {
        /// What is wrong.
        detail: String,
    },
    /// The search query is not acceptable.
    #[api(status = 400)]
    #[error("invalid search query: {detail}")]
    InvalidQuery {
        /// What is wrong.
        detail: String,
    },
    /// The product to save is not acceptable.
    #[api(status = 400)]
    #[error("invalid product: {detail}")]
    InvalidProduct {
        /// What is wrong.
        detail: String,
    },
}

/// The products of the shop: the catalog contract. Reach the catalog module only through this trait.
#[contract(module = "catalog", error = CatalogError, client = CatalogClient, http = http)]
pub trait CatalogApi: Send + Sync {
    /// Every product, ordered by id.
    #[op(GET "/products", read_only, cached, access(anyone))]
    #[rest(
        params(("q" = Option<String>, Query, description = "Search text (at most 200 characters); blank matches every product, absent lists them all")),
        responses((status = 200, description = "The products, ordered by id", body = ProductList))
    )]
    async fn list_products(&self, ctx: &CallContext) -> Result<Vec<Product>, CatalogError>;

    /// One product.
    #[op(GET "/products/{id}", read_only, cached, access(anyone), errors(ProductNotFound, InvalidProductId))]
    #[rest(
        params(("id" = String, Path, description = "Product id, e.g. `OLJCESPC7Z`")),
        responses((status = 200, description = "The product", body = Product))
    )]
    async fn get_product(&self, ctx: &CallContext, id: ProductId) -> Result<Product, CatalogError>;

    /// Products whose name or description contains `query`, ignoring case, ordered by id. A
    /// blank query matches every product; one over [`MAX_QUERY_CHARS`] characters is
    /// refused.
    #[op(GET "/products", read_only, cached, access(anyone), errors(InvalidQuery))]
    async fn search_products(
        &self,
        ctx: &CallContext,
        query: String,
    ) -> Result<Vec<Product>, CatalogError>;

    /// Creates or replaces a product (admins only). Every replica serves it once its
    /// [`ProductChanged`] arrives (or after its next periodic reload).
    #[op(
        PUT "/products/{id}",
        idempotent,
        access(admin),
        errors(InvalidProduct, InvalidProductId)
    )]
    #[rest(
        params(("id" = String, Path, description = "Product id")),
        request_body = Product,
        responses((status = 200, description = "The product as saved", body = Product))
    )]
    async fn upsert_product(
        &self,
        ctx: &CallContext,
        product: Product,
    ) -> Result<Product, CatalogError>;

    /// Removes a product (admins only).
    #[op(
        DELETE "/products/{id}",
        idempotent,
        access(admin),
        errors(ProductNotFound, InvalidProductId)
    )]
    #[rest(
        params(("id" = String, Path, description = "Product id")),
        responses((status = 204, description = "Removed"))
    )]
    async fn delete_product(&self, ctx: &CallContext, id: ProductId) -> Result<(), CatalogError>;
}

/// Checks a search query; shared by every implementation so they answer alike.
///
/// # Errors
/// [`CatalogError::InvalidQuery`] when the query is too long.
pub fn validate_query(query: &str) -> Result<(), CatalogError> {
    if query.chars().count() > MAX_QUERY_CHARS {
        return Err(CatalogError::InvalidQuery {
            detail: format!("query is longer than {MAX_QUERY_CHARS} characters"),
        });
    }
    Ok(())
}

/// Checks a product to save: name 1 to 200 characters, description up to 2000, a picture path
/// (`/...`) or `https://` url, a non-negative USD price, 1 to 10 categories of lower-case
/// letters, digits and `-`.
///
/// # Errors
/// [`CatalogError::InvalidProduct`] naming the field.
pub fn validate_product(p: &Product) -> Result<(), CatalogError> {
    let bad = |detail: &str| {
        Err(CatalogError::InvalidProduct {
            detail: detail.to_owned(),
        })
    };
    let name = p.name.trim();
    if name.is_empty() || name.chars().count() > 200 {
        return bad("name must be 1 to 200 characters");
    }
    if p.description.chars().count() > 2000 {
        return bad("description must be at most 2000 characters");
    }
    let picture_ok = (p.picture.starts_with('/') && !p.picture.starts_with("//"))
        || p.picture.starts_with("https://");
    if !picture_ok || p.picture.len() > 500 || p.picture.chars().any(char::is_whitespace) {
        return bad("picture must be a path like /static/img/x.svg or an https:// url");
    }
    if p.price_usd.validate().is_err()
        || p.price_usd.currency_code != "USD"
        || p.price_usd.units < 0
        || p.price_usd.nanos < 0
    {
        return bad("price_usd must be a valid, non-negative USD amount");
    }
    if p.categories.is_empty() || p.categories.len() > 10 {
        return bad("a product has 1 to 10 categories");
    }
    for c in &p.categories {
        if c.is_empty()
            || c.len() > 32
            || !c
                .chars()
                .all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit() || ch == '-')
        {
            return bad("categories are lower-case letters, digits and '-', up to 32");
        }
    }
    Ok(())
}

#[async_trait]
impl CatalogApi for CatalogClient {
    async fn list_products(&self, ctx: &CallContext) -> Result<Vec<Product>, CatalogError> {
        let list: ProductList = self.remote.op(&ops::LIST_PRODUCTS, ctx).fetch().await?;
        Ok(list.products)
    }

    async fn get_product(&self, ctx: &CallContext, id: ProductId) -> Result<Product, CatalogError> {
        self.remote
            .op(&ops::GET_PRODUCT, ctx)
            .params(&[id.as_str()])
            .fetch()
            .await
    }

    async fn search_products(
        &self,
        ctx: &CallContext,
        query: String,
    ) -> Result<Vec<Product>, CatalogError> {
        validate_query(&query)?;
        let list: ProductList = self
            .remote
            .op(&ops::SEARCH_PRODUCTS, ctx)
            .query("q", &query)
            .fetch()
            .await?;
        Ok(list.products)
    }

    async fn upsert_product(
        &self,
        ctx: &CallContext,
        product: Product,
    ) -> Result<Product, CatalogError> {
        self.remote
            .op(&ops::UPSERT_PRODUCT, ctx)
            .params(&[product.id.as_str()])
            .json(&product)
            .fetch()
            .await
    }

    async fn delete_product(&self, ctx: &CallContext, id: ProductId) -> Result<(), CatalogError> {
        self.remote
            .op(&ops::DELETE_PRODUCT, ctx)
            .params(&[id.as_str()])
            .send()
            .await
    }
}

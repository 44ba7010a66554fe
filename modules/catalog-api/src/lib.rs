//! Contract of the `catalog` module: the products of the shop.
//!
//! - Owns: products (id, name, description, picture, USD price, categories).
//! - Provides: [`CatalogApi`]: `list_products`, `get_product`, `search_products`.
//! - Requires: nothing.
//!
//! REST (served by [`http::configure`], called by [`CatalogClient`]):
//! `GET /api/catalog/v1/products` (`?q=` searches), `GET /api/catalog/v1/products/{id}`.

use std::sync::Arc;

use actix_web::http::StatusCode;
use async_trait::async_trait;
use cleave_kernel::CallContext;
use cleave_kernel::client::{Method, RemoteClient, encode};
use cleave_kernel::error::ApiError;
use cleave_kernel::module::ModuleSpec;
use cleave_kernel::types::{Money, ProductId};
use serde::{Deserialize, Serialize};

#[cfg(feature = "test-util")]
pub mod contract;
#[cfg(feature = "test-util")]
pub mod fake;
pub mod http;

/// The module's name, config section and route prefix.
pub const MODULE: &str = "catalog";

/// Longest search query accepted, in characters.
pub const MAX_QUERY_CHARS: usize = 200;

/// What the catalog module is.
pub const SPEC: ModuleSpec = ModuleSpec {
    name: MODULE,
    owns: "products",
    provides: &["list_products", "get_product", "search_products"],
    requires: &[],
};

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

/// A list of products, as the REST API returns it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ProductList {
    /// The products.
    pub products: Vec<Product>,
}

/// Errors of the catalog contract.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
#[serde(tag = "code", content = "params")]
pub enum CatalogError {
    /// No product has this id.
    #[serde(rename = "catalog.product_not_found")]
    #[error("product {id} not found")]
    ProductNotFound {
        /// The id asked for.
        id: String,
    },
    /// The id is not a well-formed product id.
    #[serde(rename = "catalog.invalid_product_id")]
    #[error("invalid product id: {detail}")]
    InvalidProductId {
        /// What is wrong.
        detail: String,
    },
    /// The search query is not acceptable.
    #[serde(rename = "catalog.invalid_query")]
    #[error("invalid search query: {detail}")]
    InvalidQuery {
        /// What is wrong.
        detail: String,
    },
    /// The catalog (or its storage) cannot be reached.
    #[serde(rename = "catalog.invalid_product")]
    #[error("invalid product: {detail}")]
    InvalidProduct {
        /// What is wrong.
        detail: String,
    },
    /// Managing products needs an access token.
    #[serde(rename = "catalog.unauthenticated")]
    #[error("this needs an access token")]
    Unauthenticated,
    /// Managing products needs the admin role.
    #[serde(rename = "catalog.forbidden")]
    #[error("managing products needs the admin role")]
    Forbidden,
    /// The catalog module (or its storage) cannot be reached.
    #[serde(rename = "catalog.unavailable")]
    #[error("catalog is unavailable: {reason}")]
    Unavailable {
        /// Why (logged, not sent).
        #[serde(skip)]
        reason: String,
    },
    /// A bug in the catalog.
    #[serde(rename = "catalog.internal")]
    #[error("catalog internal error: {reason}")]
    Internal {
        /// What went wrong (logged, not sent).
        #[serde(skip)]
        reason: String,
    },
}

impl ApiError for CatalogError {
    fn code(&self) -> &'static str {
        match self {
            Self::ProductNotFound { .. } => "catalog.product_not_found",
            Self::InvalidProductId { .. } => "catalog.invalid_product_id",
            Self::InvalidQuery { .. } => "catalog.invalid_query",
            Self::InvalidProduct { .. } => "catalog.invalid_product",
            Self::Unauthenticated => "catalog.unauthenticated",
            Self::Forbidden => "catalog.forbidden",
            Self::Unavailable { .. } => "catalog.unavailable",
            Self::Internal { .. } => "catalog.internal",
        }
    }

    fn status(&self) -> StatusCode {
        match self {
            Self::ProductNotFound { .. } => StatusCode::NOT_FOUND,
            Self::InvalidProductId { .. }
            | Self::InvalidQuery { .. }
            | Self::InvalidProduct { .. } => StatusCode::BAD_REQUEST,
            Self::Unauthenticated => StatusCode::UNAUTHORIZED,
            Self::Forbidden => StatusCode::FORBIDDEN,
            Self::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal { .. } => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn unavailable(reason: String) -> Self {
        Self::Unavailable { reason }
    }

    fn internal(reason: String) -> Self {
        Self::Internal { reason }
    }
}

/// The catalog contract. Reach the catalog only through this trait.
#[async_trait]
pub trait CatalogApi: Send + Sync {
    /// Every product, ordered by id.
    ///
    /// # Errors
    /// [`CatalogError::Unavailable`] when the catalog cannot be reached.
    async fn list_products(&self, ctx: &CallContext) -> Result<Vec<Product>, CatalogError>;

    /// One product.
    ///
    /// # Errors
    /// [`CatalogError::ProductNotFound`] for an unknown id; [`CatalogError::Unavailable`].
    async fn get_product(&self, ctx: &CallContext, id: ProductId) -> Result<Product, CatalogError>;

    /// Products whose name or description contains `query`, ignoring case, ordered by id. A
    /// blank query matches every product.
    ///
    /// # Errors
    /// [`CatalogError::InvalidQuery`] for a query over [`MAX_QUERY_CHARS`] characters;
    /// [`CatalogError::Unavailable`].
    async fn search_products(
        &self,
        ctx: &CallContext,
        query: String,
    ) -> Result<Vec<Product>, CatalogError>;

    /// Creates or replaces a product (admins only). Other replicas see it after their next
    /// snapshot reload.
    ///
    /// # Errors
    /// [`CatalogError::Unauthenticated`], [`CatalogError::Forbidden`],
    /// [`CatalogError::InvalidProduct`], [`CatalogError::Unavailable`].
    async fn upsert_product(
        &self,
        ctx: &CallContext,
        product: Product,
    ) -> Result<Product, CatalogError>;

    /// Removes a product (admins only).
    ///
    /// # Errors
    /// [`CatalogError::Unauthenticated`], [`CatalogError::Forbidden`],
    /// [`CatalogError::ProductNotFound`], [`CatalogError::Unavailable`].
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

/// Checks that the caller may manage products (the admin role).
///
/// # Errors
/// [`CatalogError::Unauthenticated`], [`CatalogError::Forbidden`].
pub fn require_admin(ctx: &CallContext) -> Result<(), CatalogError> {
    let principal = ctx.principal().ok_or(CatalogError::Unauthenticated)?;
    if principal.is_admin() {
        Ok(())
    } else {
        Err(CatalogError::Forbidden)
    }
}

/// The catalog in another process, reached over its REST API.
#[derive(Debug, Clone)]
pub struct CatalogClient {
    remote: RemoteClient,
}

impl CatalogClient {
    /// A client calling through `remote`.
    pub fn new(remote: RemoteClient) -> Self {
        Self { remote }
    }

    /// As a shared contract object.
    pub fn into_api(self) -> Arc<dyn CatalogApi> {
        Arc::new(self)
    }
}

#[async_trait]
impl CatalogApi for CatalogClient {
    async fn list_products(&self, ctx: &CallContext) -> Result<Vec<Product>, CatalogError> {
        self.remote
            .get_json::<ProductList>(ctx, "/api/catalog/v1/products")
            .await
            .map(|l| l.products)
            .map_err(|e| e.into_api_error())
    }

    async fn get_product(&self, ctx: &CallContext, id: ProductId) -> Result<Product, CatalogError> {
        self.remote
            .get_json(
                ctx,
                &format!("/api/catalog/v1/products/{}", encode(id.as_str())),
            )
            .await
            .map_err(|e| e.into_api_error())
    }

    async fn search_products(
        &self,
        ctx: &CallContext,
        query: String,
    ) -> Result<Vec<Product>, CatalogError> {
        validate_query(&query)?;
        self.remote
            .get_json::<ProductList>(
                ctx,
                &format!("/api/catalog/v1/products?q={}", encode(&query)),
            )
            .await
            .map(|l| l.products)
            .map_err(|e| e.into_api_error())
    }

    async fn upsert_product(
        &self,
        ctx: &CallContext,
        product: Product,
    ) -> Result<Product, CatalogError> {
        self.remote
            .send_json(
                ctx,
                Method::PUT,
                &format!("/api/catalog/v1/products/{}", encode(product.id.as_str())),
                &product,
            )
            .await
            .map_err(|e| e.into_api_error())
    }

    async fn delete_product(&self, ctx: &CallContext, id: ProductId) -> Result<(), CatalogError> {
        self.remote
            .send_empty(
                ctx,
                Method::DELETE,
                &format!("/api/catalog/v1/products/{}", encode(id.as_str())),
            )
            .await
            .map_err(|e| e.into_api_error())
    }
}

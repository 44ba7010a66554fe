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
use cleave_kernel::client::{RemoteClient, encode};
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
            Self::Unavailable { .. } => "catalog.unavailable",
            Self::Internal { .. } => "catalog.internal",
        }
    }

    fn status(&self) -> StatusCode {
        match self {
            Self::ProductNotFound { .. } => StatusCode::NOT_FOUND,
            Self::InvalidProductId { .. } | Self::InvalidQuery { .. } => StatusCode::BAD_REQUEST,
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
}

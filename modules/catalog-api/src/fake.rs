//! An in-memory catalog holding the nine Online Boutique products, for tests of callers and
//! for measuring the cost of a module call without storage.

use std::sync::{Arc, RwLock};

use async_trait::async_trait;
use cleave_domain::{Money, ProductId};
use cleave_kernel::CallContext;

use crate::{CatalogApi, CatalogError, Product, validate_product, validate_query};

/// In-memory catalog (clones share the products).
#[derive(Debug, Clone)]
pub struct FakeCatalog {
    products: Arc<RwLock<Vec<Product>>>,
}

impl Default for FakeCatalog {
    fn default() -> Self {
        let rows: [(&str, &str, i64, i32, &[&str]); 9] = [
            (
                "0PUK6V6EV0",
                "Candle Holder",
                18,
                990_000_000,
                &["decor", "home"],
            ),
            ("1YMWWN1N4O", "Watch", 109, 990_000_000, &["accessories"]),
            (
                "2ZYFJ3GM2N",
                "Hairdryer",
                24,
                990_000_000,
                &["hair", "beauty"],
            ),
            (
                "66VCHSJNUP",
                "Tank Top",
                18,
                990_000_000,
                &["clothing", "tops"],
            ),
            ("6E92ZMYYFZ", "Mug", 8, 990_000_000, &["kitchen"]),
            (
                "9SIQT8TOJO",
                "Bamboo Glass Jar",
                5,
                490_000_000,
                &["kitchen"],
            ),
            ("L9ECAV7KIM", "Loafers", 89, 990_000_000, &["footwear"]),
            (
                "LS4PSXUNUM",
                "Salt & Pepper Shakers",
                18,
                490_000_000,
                &["kitchen"],
            ),
            (
                "OLJCESPC7Z",
                "Sunglasses",
                19,
                990_000_000,
                &["accessories"],
            ),
        ];
        let products = rows
            .iter()
            .map(|(id, name, units, nanos, cats)| Product {
                id: ProductId::parse(*id).expect("valid fake id"),
                name: (*name).to_owned(),
                description: format!("A fine {}.", name.to_lowercase()),
                picture: format!("/static/img/products/{id}.svg"),
                price_usd: Money {
                    currency_code: "USD".into(),
                    units: *units,
                    nanos: *nanos,
                },
                categories: cats.iter().map(|c| (*c).to_owned()).collect(),
            })
            .collect();
        Self {
            products: Arc::new(RwLock::new(products)),
        }
    }
}

impl FakeCatalog {
    /// The product with `id`, without going through the contract: the "direct call" baseline.
    pub fn product(&self, id: &ProductId) -> Option<Product> {
        self.read().iter().find(|p| &p.id == id).cloned()
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Vec<Product>> {
        self.products
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Vec<Product>> {
        self.products
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[async_trait]
impl CatalogApi for FakeCatalog {
    async fn list_products(&self, _: &CallContext) -> Result<Vec<Product>, CatalogError> {
        Ok(self.read().clone())
    }

    async fn get_product(&self, _: &CallContext, id: ProductId) -> Result<Product, CatalogError> {
        self.product(&id)
            .ok_or_else(|| CatalogError::ProductNotFound { id: id.to_string() })
    }

    async fn search_products(
        &self,
        _: &CallContext,
        query: String,
    ) -> Result<Vec<Product>, CatalogError> {
        validate_query(&query)?;
        let q = query.trim().to_lowercase();
        Ok(self
            .read()
            .iter()
            .filter(|p| {
                p.name.to_lowercase().contains(&q) || p.description.to_lowercase().contains(&q)
            })
            .cloned()
            .collect())
    }

    async fn upsert_product(
        &self,
        _ctx: &CallContext,
        product: Product,
    ) -> Result<Product, CatalogError> {
        validate_product(&product)?;
        let mut saved = product;
        saved.name = saved.name.trim().to_owned();
        let mut products = self.write();
        products.retain(|p| p.id != saved.id);
        products.push(saved.clone());
        products.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(saved)
    }

    async fn delete_product(&self, _ctx: &CallContext, id: ProductId) -> Result<(), CatalogError> {
        let mut products = self.write();
        let before = products.len();
        products.retain(|p| p.id != id);
        if products.len() == before {
            return Err(CatalogError::ProductNotFound { id: id.to_string() });
        }
        Ok(())
    }
}

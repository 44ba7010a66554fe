//! The `catalog` module: the shop's products, served from an in-memory snapshot of its table.
//!
//! - Owns: table `catalog_products` (migrations in `cleave-migrations::catalog`).
//! - Provides: [`catalog_api::CatalogApi`] through [`CatalogModule`].
//! - Requires: nothing.
//!
//! The catalog is read on every page and changes rarely, so reads come from a snapshot held in
//! memory (swapped atomically) rather than a query per call. The snapshot is loaded at start
//! and reloaded whenever a [`catalog_api::ProductChanged`] arrives (each change publishes one
//! through the outbox, in its transaction; every replica watches them), and every
//! `modules.catalog.refresh_secs` as a safety net.

mod entity;

use cleave_kernel::module;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use async_trait::async_trait;
use catalog_api::{
    CatalogApi, CatalogError, Product, ProductChanged, validate_product, validate_query,
};
use cleave_domain::{Money, ProductId};
use cleave_kernel::events::{Relay, Reload, ReloadOn, Topic, commit_with};
use cleave_kernel::{ApiError, CallContext};
use sea_orm::sea_query::OnConflict;
use sea_orm::{ActiveValue, DatabaseConnection, DbErr, EntityTrait, QueryOrder, TransactionTrait};
use serde::{Deserialize, Serialize};

/// Settings of `[modules.catalog]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct CatalogConfig {
    /// Seconds between reloads of the product snapshot from the database; 0 turns reloading
    /// off.
    pub refresh_secs: u64,
}

impl Default for CatalogConfig {
    fn default() -> Self {
        Self { refresh_secs: 30 }
    }
}

#[async_trait]
impl Reload for CatalogModule {
    async fn reload(&self) -> Result<(), String> {
        CatalogModule::reload(self).await.map_err(|e| e.to_string())
    }
}

/// What the catalog needs from other modules: nothing.
#[derive(Debug, Clone, Default)]
pub struct CatalogDeps;

struct Snapshot {
    products: Vec<Product>,
    by_id: HashMap<ProductId, usize>,
}

/// The catalog, in process.
#[module(contract = catalog_api::CatalogContract, config = CatalogConfig, owns = "products",
    publishes = [<ProductChanged as Topic>::TOPIC], announces,
    start = CatalogModule::start(start.db()?, start.config(), CatalogDeps, start.relay())
        .await
        .inspect(|module| {
            start.bus().watch(ProductChanged::TOPIC, Arc::new(ReloadOn(Arc::downgrade(module))));
        })
        .map_err(|e| start.failed(e)))]
pub struct CatalogModule {
    db: DatabaseConnection,
    snapshot: ArcSwap<Snapshot>,
    /// Delivers [`ProductChanged`] from the outbox.
    relay: Relay,
}

impl CatalogModule {
    /// Loads the product snapshot and, when `config.refresh_secs > 0`, starts reloading it in
    /// the background for as long as the module lives.
    ///
    /// # Errors
    /// [`CatalogError`] when the products cannot be read.
    pub async fn start(
        db: DatabaseConnection,
        config: &CatalogConfig,
        _deps: CatalogDeps,
        relay: Relay,
    ) -> Result<Arc<Self>, CatalogError> {
        let snapshot = load(&db).await.map_err(storage_error)?;
        let module = Arc::new(Self {
            db,
            snapshot: ArcSwap::from_pointee(snapshot),
            relay,
        });
        if config.refresh_secs > 0 {
            let weak = Arc::downgrade(&module);
            let period = Duration::from_secs(config.refresh_secs);
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(period);
                tick.tick().await;
                loop {
                    tick.tick().await;
                    let Some(module) = weak.upgrade() else { break };
                    if let Err(e) = module.reload().await {
                        tracing::warn!(error = %e, "catalog snapshot reload failed; keeping the last one");
                    }
                }
            });
        }
        Ok(module)
    }

    /// Enqueues [`ProductChanged`] for `id` in `tx` (the change), commits, and tells the relay.
    async fn announce(
        &self,
        tx: sea_orm::DatabaseTransaction,
        ctx: &CallContext,
        id: &ProductId,
    ) -> Result<(), CatalogError> {
        let changed = ProductChanged {
            product_id: id.to_string(),
        };
        commit_with(tx, ctx, &changed, &self.relay)
            .await
            .map_err(|e| CatalogError::unavailable(e.to_string()))
    }

    /// Reloads the snapshot from the database now.
    ///
    /// # Errors
    /// [`CatalogError`] when the products cannot be read; the old snapshot stays.
    pub async fn reload(&self) -> Result<(), CatalogError> {
        let snapshot = load(&self.db).await.map_err(storage_error)?;
        self.snapshot.store(Arc::new(snapshot));
        Ok(())
    }

    /// A product by id, straight from the snapshot: the direct-call baseline of the
    /// benchmarks.
    pub fn product(&self, id: &ProductId) -> Option<Product> {
        let snap = self.snapshot.load();
        snap.by_id.get(id).map(|&i| snap.products[i].clone())
    }
}

async fn load(db: &DatabaseConnection) -> Result<Snapshot, DbErr> {
    let rows = entity::Entity::find()
        .order_by_asc(entity::Column::Id)
        .all(db)
        .await?;
    let mut products = Vec::with_capacity(rows.len());
    for row in rows {
        products.push(to_product(row)?);
    }
    let by_id = products
        .iter()
        .enumerate()
        .map(|(i, p)| (p.id.clone(), i))
        .collect();
    Ok(Snapshot { products, by_id })
}

fn to_product(row: entity::Model) -> Result<Product, DbErr> {
    let bad = |what: &str, e: &dyn std::fmt::Display| {
        DbErr::Custom(format!("catalog_products row {}: bad {what}: {e}", row.id))
    };
    Ok(Product {
        id: ProductId::parse(row.id.clone()).map_err(|e| bad("id", &e))?,
        price_usd: Money::new(&row.price_currency_code, row.price_units, row.price_nanos)
            .map_err(|e| bad("price", &e))?,
        categories: serde_json::from_str(&row.categories).map_err(|e| bad("categories", &e))?,
        name: row.name,
        description: row.description,
        picture: row.picture,
    })
}

fn storage_error(err: DbErr) -> CatalogError {
    cleave_kernel::db::storage_error(&err)
}

#[async_trait]
impl CatalogApi for CatalogModule {
    async fn list_products(&self, _ctx: &CallContext) -> Result<Vec<Product>, CatalogError> {
        Ok(self.snapshot.load().products.clone())
    }

    async fn get_product(
        &self,
        _ctx: &CallContext,
        id: ProductId,
    ) -> Result<Product, CatalogError> {
        self.product(&id)
            .ok_or_else(|| CatalogError::ProductNotFound { id: id.to_string() })
    }

    async fn search_products(
        &self,
        _ctx: &CallContext,
        query: String,
    ) -> Result<Vec<Product>, CatalogError> {
        validate_query(&query)?;
        let q = query.trim().to_lowercase();
        let snap = self.snapshot.load();
        Ok(snap
            .products
            .iter()
            .filter(|p| {
                q.is_empty()
                    || p.name.to_lowercase().contains(&q)
                    || p.description.to_lowercase().contains(&q)
            })
            .cloned()
            .collect())
    }

    async fn upsert_product(
        &self,
        ctx: &CallContext,
        product: Product,
    ) -> Result<Product, CatalogError> {
        validate_product(&product)?;
        let categories =
            serde_json::to_string(&product.categories).map_err(|e| CatalogError::Internal {
                reason: e.to_string(),
            })?;
        let row = entity::ActiveModel {
            id: ActiveValue::Set(product.id.to_string()),
            name: ActiveValue::Set(product.name.trim().to_owned()),
            description: ActiveValue::Set(product.description.clone()),
            picture: ActiveValue::Set(product.picture.clone()),
            price_currency_code: ActiveValue::Set(product.price_usd.currency_code.clone()),
            price_units: ActiveValue::Set(product.price_usd.units),
            price_nanos: ActiveValue::Set(product.price_usd.nanos),
            categories: ActiveValue::Set(categories),
        };
        let tx = self.db.begin().await.map_err(storage_error)?;
        entity::Entity::insert(row)
            .on_conflict(
                OnConflict::column(entity::Column::Id)
                    .update_columns([
                        entity::Column::Name,
                        entity::Column::Description,
                        entity::Column::Picture,
                        entity::Column::PriceCurrencyCode,
                        entity::Column::PriceUnits,
                        entity::Column::PriceNanos,
                        entity::Column::Categories,
                    ])
                    .to_owned(),
            )
            .exec_without_returning(&tx)
            .await
            .map_err(storage_error)?;
        self.announce(tx, ctx, &product.id).await?;
        self.reload().await?;
        tracing::info!(product_id = %product.id, "product saved");
        self.product(&product.id)
            .ok_or_else(|| CatalogError::Internal {
                reason: format!("product {} vanished after saving", product.id),
            })
    }

    async fn delete_product(&self, ctx: &CallContext, id: ProductId) -> Result<(), CatalogError> {
        let tx = self.db.begin().await.map_err(storage_error)?;
        let deleted = entity::Entity::delete_by_id(id.to_string())
            .exec(&tx)
            .await
            .map_err(storage_error)?;
        if deleted.rows_affected == 0 {
            return Err(CatalogError::ProductNotFound { id: id.to_string() });
        }
        self.announce(tx, ctx, &id).await?;
        self.reload().await?;
        tracing::info!(product_id = %id, "product removed");
        Ok(())
    }
}

//! The `cart` module: carts persisted per user id.
//!
//! - Owns: table `cart_items` (migrations in `cleave-migrations::cart`).
//! - Provides: [`cart_api::CartApi`] through [`CartModule`].
//! - Requires: nothing.
//! - Publishes: [`cart_api::CartChanged`] with every change of a cart (through the outbox, in
//!   the change's transaction): callers in other processes drop what they kept of it.
//!
//! `add_item` is one transaction: an upsert that adds to the line atomically (so concurrent
//! adds are not lost), then the limits are checked and the transaction rolled back if the
//! addition broke one.

mod entity;

use cleave_kernel::module;
use std::sync::Arc;

use async_trait::async_trait;
use cart_api::{
    Cart, CartApi, CartChanged, CartError, CartItem, MAX_LINES, MAX_QUANTITY, validate_quantity,
};
use cleave_domain::{ProductId, UserId};
use cleave_kernel::events::{Relay, Topic, commit_with};
use cleave_kernel::{ApiError, CallContext};
use sea_orm::sea_query::{Expr, ExprTrait, OnConflict};
use sea_orm::{
    ActiveValue, ColumnTrait, ConnectionTrait, DatabaseConnection, DbBackend, DbErr, EntityTrait,
    PaginatorTrait, QueryFilter, QueryOrder, Statement, TransactionTrait,
};
use serde::{Deserialize, Serialize};

/// Settings of `[modules.cart]`: none yet.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct CartConfig {}

/// What the cart module needs from other modules: nothing.
#[derive(Debug, Clone, Default)]
pub struct CartDeps;

/// The cart module, in process.
#[module(contract = cart_api::CartContract, config = CartConfig, owns = "carts",
    publishes = [<CartChanged as Topic>::TOPIC],
    start = Ok(CartModule::new(start.db()?, start.config(), CartDeps, start.relay())))]
pub struct CartModule {
    db: DatabaseConnection,
    /// Delivers [`CartChanged`] from the outbox.
    relay: Relay,
}

impl CartModule {
    /// The module over its (migrated) database; `relay` delivers its events.
    pub fn new(
        db: DatabaseConnection,
        _config: &CartConfig,
        _deps: CartDeps,
        relay: Relay,
    ) -> Arc<Self> {
        Arc::new(Self { db, relay })
    }

    /// Enqueues [`CartChanged`] for `user_id` in `tx` (the change), commits, and tells the
    /// relay.
    async fn announce(
        &self,
        tx: sea_orm::DatabaseTransaction,
        ctx: &CallContext,
        user_id: &UserId,
    ) -> Result<(), CartError> {
        commit_with(tx, ctx, &CartChanged::of(user_id), &self.relay)
            .await
            .map_err(|e| CartError::unavailable(e.to_string()))
    }
}

fn storage_error(err: DbErr) -> CartError {
    cleave_kernel::db::storage_error(&err)
}

async fn load_cart(db: &impl ConnectionTrait, user_id: UserId) -> Result<Cart, CartError> {
    let rows = entity::Entity::find()
        .filter(entity::Column::UserId.eq(user_id.as_str()))
        .order_by_asc(entity::Column::ProductId)
        .all(db)
        .await
        .map_err(storage_error)?;
    let items = rows
        .into_iter()
        .map(|r| {
            Ok(CartItem {
                product_id: ProductId::parse(r.product_id).map_err(|e| CartError::Internal {
                    reason: e.to_string(),
                })?,
                quantity: i64::from(r.quantity),
            })
        })
        .collect::<Result<_, CartError>>()?;
    Ok(Cart { user_id, items })
}

#[async_trait]
impl CartApi for CartModule {
    async fn add_item(
        &self,
        ctx: &CallContext,
        user_id: UserId,
        product_id: ProductId,
        quantity: i64,
    ) -> Result<Cart, CartError> {
        validate_quantity(quantity)?;
        let added = i32::try_from(quantity).map_err(|_| CartError::InvalidQuantity {
            quantity,
            max: MAX_QUANTITY,
        })?;
        let tx = self.db.begin().await.map_err(storage_error)?;
        if tx.get_database_backend() == DbBackend::Postgres {
            // Serialise additions to one cart, so two concurrent adds of new products cannot
            // both see 99 lines and both commit (READ COMMITTED). SQLite serialises writers.
            tx.execute_raw(Statement::from_sql_and_values(
                DbBackend::Postgres,
                "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))",
                [format!("cart:{user_id}").into()],
            ))
            .await
            .map_err(storage_error)?;
        }
        let line = entity::ActiveModel {
            user_id: ActiveValue::Set(user_id.to_string()),
            product_id: ActiveValue::Set(product_id.to_string()),
            quantity: ActiveValue::Set(added),
        };
        entity::Entity::insert(line)
            .on_conflict(
                OnConflict::columns([entity::Column::UserId, entity::Column::ProductId])
                    .value(
                        entity::Column::Quantity,
                        Expr::col((entity::Entity, entity::Column::Quantity)).add(added),
                    )
                    .to_owned(),
            )
            .exec_without_returning(&tx)
            .await
            .map_err(storage_error)?;
        let total = entity::Entity::find_by_id((user_id.to_string(), product_id.to_string()))
            .one(&tx)
            .await
            .map_err(storage_error)?
            .map_or(0, |l| i64::from(l.quantity));
        if total > MAX_QUANTITY {
            tx.rollback().await.map_err(storage_error)?;
            return Err(CartError::QuantityLimitExceeded {
                product_id: product_id.to_string(),
                max: MAX_QUANTITY,
            });
        }
        let lines = entity::Entity::find()
            .filter(entity::Column::UserId.eq(user_id.as_str()))
            .count(&tx)
            .await
            .map_err(storage_error)?;
        if lines > MAX_LINES as u64 {
            tx.rollback().await.map_err(storage_error)?;
            return Err(CartError::TooManyItems { max: MAX_LINES });
        }
        let cart = load_cart(&tx, user_id.clone()).await?;
        self.announce(tx, ctx, &user_id).await?;
        tracing::debug!(product_id = %product_id, quantity, "item added to cart");
        Ok(cart)
    }

    async fn get_cart(&self, _ctx: &CallContext, user_id: UserId) -> Result<Cart, CartError> {
        load_cart(&self.db, user_id).await
    }

    async fn empty_cart(&self, ctx: &CallContext, user_id: UserId) -> Result<(), CartError> {
        let tx = self.db.begin().await.map_err(storage_error)?;
        let removed = entity::Entity::delete_many()
            .filter(entity::Column::UserId.eq(user_id.as_str()))
            .exec(&tx)
            .await
            .map_err(storage_error)?;
        if removed.rows_affected == 0 {
            // Nothing changed: nothing to announce.
            return tx.commit().await.map_err(storage_error);
        }
        self.announce(tx, ctx, &user_id).await
    }
}

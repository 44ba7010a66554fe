//! The `cart` module: carts persisted per user id.
//!
//! - Owns: table `cart_items` (migrations in `cleave-migrations::cart`).
//! - Provides: [`cart_api::CartApi`] through [`CartModule`].
//! - Requires: nothing.
//! - Publishes: [`cart_api::CartChanged`] with every change of a cart (through the outbox, in
//!   the change's transaction): callers in other processes drop what they kept of it.
//!
//! `add_item` is one transaction: an upsert that adds to the line atomically (so concurrent
//! adds are not lost), then the cart is read and the limits are checked on it, the
//! transaction rolled back if the addition broke one.
//!
//! Carts it read are kept for `modules.cart.keep_ms` and given to readers that said a kept
//! answer will do (the item count in a page's header): every page of a returning shopper
//! would otherwise read the database for it. Its own changes drop a kept cart at once;
//! another process's (a replica on the same database) through their `cart.changed` event when
//! events go over NATS, else when the time is up. Reads a decision rests on (the cart page,
//! checkout) always read the database. A process whose modules do not call cart (its callers
//! are all elsewhere, and the kept-answer word does not cross the wire) keeps none.

mod entity;

use cleave_kernel::module;
use cleave_kernel::module::{Start, StartError};
use std::sync::{Arc, Weak};
use std::time::Duration;

use async_trait::async_trait;
use cart_api::{
    Cart, CartApi, CartChanged, CartError, CartItem, MAX_LINES, MAX_QUANTITY, validate_quantity,
};
use cleave_domain::{ProductId, UserId};
use cleave_kernel::events::{Event, EventError, Relay, Subscriber, Topic, commit_with};
use cleave_kernel::kept::Kept;
use cleave_kernel::{ApiError, CallContext};
use sea_orm::sea_query::{Expr, ExprTrait, OnConflict};
use sea_orm::{
    ActiveValue, ColumnTrait, ConnectionTrait, DatabaseConnection, DbBackend, DbErr, EntityTrait,
    QueryFilter, QueryOrder, Statement, TransactionTrait,
};
use serde::{Deserialize, Serialize};

/// Settings of `[modules.cart]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct CartConfig {
    /// Longest a cart read is kept for readers that said a kept answer will do; 0 keeps none.
    pub keep_ms: u64,
}

impl Default for CartConfig {
    fn default() -> Self {
        Self { keep_ms: 5000 }
    }
}

/// Most carts kept at once; past it the expired ones go, then all.
const MAX_KEPT_CARTS: usize = 10_000;

/// What the cart module needs from other modules: nothing.
#[derive(Debug, Clone, Default)]
pub struct CartDeps;

/// The cart module, in process.
#[module(contract = cart_api::CartContract, config = CartConfig, owns = "carts",
    publishes = [<CartChanged as Topic>::TOPIC], announces,
    start = CartModule::start(&start))]
pub struct CartModule {
    db: DatabaseConnection,
    /// Delivers [`CartChanged`] from the outbox.
    relay: Relay,
    /// Carts read, for readers that said a kept answer will do (see the module's doc).
    kept: Kept<UserId, Cart>,
}

impl CartModule {
    /// The module over its (migrated) database; `relay` delivers its events.
    pub fn new(
        db: DatabaseConnection,
        config: &CartConfig,
        _deps: CartDeps,
        relay: Relay,
    ) -> Arc<Self> {
        Arc::new(Self {
            db,
            relay,
            kept: Kept::new(Duration::from_millis(config.keep_ms), MAX_KEPT_CARTS),
        })
    }

    /// The module as a process starts it. Where a module of this process calls it, it keeps
    /// carts and watches `cart.changed`, so that a change made by another process on the same
    /// database drops the cart kept here. Where every caller is in another process, nothing
    /// can ask for a kept cart (the word does not cross the wire): it keeps none and does not
    /// watch.
    fn start(start: &Start<'_, CartConfig>) -> Result<Arc<Self>, StartError> {
        let callers_here = !start.callers_all_remote();
        let mut config = start.config().clone();
        if !callers_here {
            config.keep_ms = 0;
        }
        let cart = Self::new(start.db()?, &config, CartDeps, start.relay());
        if callers_here {
            start.bus().watch(
                <CartChanged as Topic>::TOPIC,
                Arc::new(ForgetChanged(Arc::downgrade(&cart))),
            );
        }
        Ok(cart)
    }

    /// The cart as it is in the database; kept for later readers (where carts are kept).
    async fn read(&self, user_id: UserId) -> Result<Cart, CartError> {
        if !self.kept.keeps() {
            return load_cart(&self.db, user_id).await;
        }
        let ticket = self.kept.ticket();
        let cart = load_cart(&self.db, user_id.clone()).await?;
        self.kept.keep(ticket, user_id, cart.clone());
        Ok(cart)
    }

    /// Enqueues [`CartChanged`] for `user_id` in `tx` (the change), commits, tells the relay,
    /// and drops the kept cart (also when the commit failed: whether it landed is unknown).
    async fn announce(
        &self,
        tx: sea_orm::DatabaseTransaction,
        ctx: &CallContext,
        user_id: &UserId,
    ) -> Result<(), CartError> {
        let committed = commit_with(tx, ctx, &CartChanged::of(user_id), &self.relay).await;
        self.kept.forget(user_id);
        committed.map_err(|e| CartError::unavailable(e.to_string()))
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
        // The cart as the addition left it, in the transaction: both limits are checked on it.
        let cart = load_cart(&tx, user_id.clone()).await?;
        let total = cart
            .items
            .iter()
            .find(|line| line.product_id == product_id)
            .map_or(0, |line| line.quantity);
        if total > MAX_QUANTITY {
            tx.rollback().await.map_err(storage_error)?;
            return Err(CartError::QuantityLimitExceeded {
                product_id: product_id.to_string(),
                max: MAX_QUANTITY,
            });
        }
        if cart.items.len() > MAX_LINES {
            tx.rollback().await.map_err(storage_error)?;
            return Err(CartError::TooManyItems { max: MAX_LINES });
        }
        self.announce(tx, ctx, &user_id).await?;
        tracing::debug!(product_id = %product_id, quantity, "item added to cart");
        Ok(cart)
    }

    async fn get_cart(&self, ctx: &CallContext, user_id: UserId) -> Result<Cart, CartError> {
        if ctx.accepts_kept_answers()
            && let Some(cart) = self.kept.get(&user_id)
        {
            return Ok(cart);
        }
        self.read(user_id).await
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

/// Drops a kept cart when its `cart.changed` event arrives (from any process).
struct ForgetChanged(Weak<CartModule>);

#[async_trait]
impl Subscriber for ForgetChanged {
    async fn handle(&self, event: &Event) -> Result<(), EventError> {
        let changed: CartChanged = event.decode()?;
        if let Some(cart) = self.0.upgrade()
            && let Ok(user_id) = UserId::parse(changed.user_id)
        {
            cart.kept.forget(&user_id);
        }
        Ok(())
    }
}

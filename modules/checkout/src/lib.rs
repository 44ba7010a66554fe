//! The `checkout` module: places orders as a saga across other modules.
//!
//! - Owns: table `checkout_orders` (migrations in `cleave-migrations::checkout`), and writes
//!   `OrderPlaced` to the kernel's event outbox.
//! - Provides: [`checkout_api::CheckoutApi`] through [`CheckoutModule`].
//! - Requires: cart, catalog, currency, shipping, payment (through their `-api` traits only).
//!
//! `place_order` first records the attempt (`pending`, with its idempotency key and a hash of
//! the request), then: reads the cart, prices every line in the shopper's currency, quotes
//! shipping, charges the card (recording the transaction id at once), ships, and finally
//! marks the order `placed` and enqueues `OrderPlaced` in one transaction. The cart is emptied
//! after that commit. A failure after the charge refunds it; if the refund itself cannot be
//! made, the attempt is `unsettled` with its transaction id, and the next repeat of its key
//! or [`CheckoutModule::recover`] (run at start and periodically) refunds it later. So there
//! is never a charge without an order or a refund, and never an order without a charge.
//! Once claimed, an attempt runs to its end on a task of its own: a shopper who closes the
//! connection mid-saga does not leave it half done for recovery.
//!
//! Idempotency: the `(user_id, idempotency_key)` pair is unique. A repeat of a finished
//! request returns its first result (marked `Idempotent-Replayed: true`); a repeat while the
//! first runs gets `RequestInProgress` with `Retry-After`; a repeat of an unsettled attempt
//! first tries to undo it (so once the dependency answers again, the shopper's next try
//! settles it and goes on), and gets `RequestInProgress` while it cannot; the same key with
//! a different request gets `IdempotencyKeyReused`. A failure that left nothing behind and
//! may succeed later (a dependency was unavailable) releases the key so the shopper can
//! retry with it.

mod entity;

use cleave_kernel::module;
use cleave_kernel::module::{ModuleConfig, Start, StartError};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use cart_api::CartApi;
use catalog_api::{CatalogApi, CatalogError};
use checkout_api::{
    CheckoutApi, CheckoutError, IdempotencyKey, Order, OrderItem, OrderPlaced, OrderStatus,
    PlaceOrderRequest,
};
use cleave_domain::{Money, UserId};
use cleave_kernel::error::{ApiError, Upstream};
use cleave_kernel::events::{Relay, commit_with, now_ms};
use cleave_kernel::{CallContext, Refusal};
use currency_api::{CurrencyApi, CurrencyError};
use payment_api::{ChargeRequest, PaymentApi, PaymentError};
use sea_orm::sea_query::OnConflict;
use sea_orm::{
    ActiveValue, ColumnTrait, Condition, DatabaseConnection, DbErr, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect, TransactionTrait,
};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use shipping_api::{QuoteRequest, ShipOrderRequest, ShippingApi, ShippingError, ShippingItem};

use entity::{FAILED, PENDING, PLACED, UNSETTLED};

/// Settings of `[modules.checkout]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct CheckoutConfig {
    /// An attempt still `pending` this long after its last step is taken for dead (its
    /// process crashed) and compensated by recovery. Longer than any checkout can take.
    pub recover_after_secs: u64,
    /// How often recovery looks for such attempts.
    pub recovery_interval_secs: u64,
}

impl Default for CheckoutConfig {
    fn default() -> Self {
        Self {
            recover_after_secs: 120,
            recovery_interval_secs: 60,
        }
    }
}

impl ModuleConfig for CheckoutConfig {
    fn validate(&self) -> Result<(), (&'static str, String)> {
        if self.recover_after_secs < 30 {
            return Err((
                "recover_after_secs",
                "must be at least 30 (longer than any checkout takes)".into(),
            ));
        }
        if self.recovery_interval_secs == 0 {
            return Err(("recovery_interval_secs", "must be at least 1".into()));
        }
        Ok(())
    }
}

/// The modules checkout calls.
#[derive(Clone)]
pub struct CheckoutDeps {
    /// Carts.
    pub cart: Arc<dyn CartApi>,
    /// Product names and prices.
    pub catalog: Arc<dyn CatalogApi>,
    /// Conversion into the shopper's currency.
    pub currency: Arc<dyn CurrencyApi>,
    /// Quotes and shipments.
    pub shipping: Arc<dyn ShippingApi>,
    /// Charges and refunds.
    pub payment: Arc<dyn PaymentApi>,
}

/// The checkout module, in process. Cheap to clone.
#[derive(Clone)]
#[module(contract = checkout_api::CheckoutContract, config = CheckoutConfig, owns = "orders",
    requires = ["cart", "catalog", "currency", "shipping", "payment"],
    publishes = [<OrderPlaced as cleave_kernel::events::Topic>::TOPIC], validates)]
pub struct CheckoutModule {
    db: DatabaseConnection,
    deps: CheckoutDeps,
    relay: Relay,
    config: CheckoutConfig,
}

/// `Retry-After` of a repeat while the first attempt with its key runs.
const IN_FLIGHT_RETRY_SECS: u64 = 1;
/// `Retry-After` of a failure that could not be undone yet, and of repeats of it.
const UNSETTLED_RETRY_SECS: u64 = 2;

/// How long compensation steps may take (they run on their own budget: the shopper's
/// deadline may be what failed).
const COMPENSATION_BUDGET: Duration = Duration::from_secs(10);

fn storage_error(err: DbErr) -> CheckoutError {
    cleave_kernel::db::storage_error(&err)
}

/// A dependency's error that checkout has no specific meaning for: a 5xx is the dependency
/// being unavailable; a 4xx means checkout called it wrongly, a bug of ours.
fn dependency_error<E: ApiError>(module: &str, err: &E) -> CheckoutError {
    if E::REFUSALS.contains(&err.code()) {
        // The dependency does not take checkout's call: a deployment without checkout's
        // module certificate, not the shopper's doing.
        CheckoutError::unavailable(format!(
            "{module} refused checkout's call ({err}); does this process present checkout's \
             module certificate (remote.client_cert_file)?"
        ))
    } else if let Some(upstream) = Upstream::of(err) {
        // A 429, 504 or a 503 that says when to retry: the shopper gets it as it is.
        CheckoutError::passed(format!("{module}: {err}"), upstream)
    } else if err.status().is_server_error() {
        CheckoutError::unavailable(format!("{module}: {err}"))
    } else {
        CheckoutError::Internal {
            reason: format!("{module} refused our call: {err}"),
        }
    }
}

/// Whether a failure may go away on retry (so the idempotency key is released).
fn retryable(err: &CheckoutError) -> bool {
    matches!(
        err,
        CheckoutError::Unavailable { .. } | CheckoutError::Internal { .. }
    )
}

/// A stable fingerprint of what the request asks for. It covers the card only by its last
/// four digits and expiry: the full number is never stored, not even hashed.
fn request_hash(req: &PlaceOrderRequest) -> String {
    let fingerprint = serde_json::json!({
        "user_id": req.user_id,
        "currency": req.user_currency,
        "address": req.address,
        "email": req.email,
        "card_last4": req.credit_card.last4(),
        "card_expiry": [req.credit_card.expiration_year, req.credit_card.expiration_month],
    });
    let digest = Sha256::digest(fingerprint.to_string().as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

fn rfc3339(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// What the saga did before it stopped, so a failure knows what to undo.
#[derive(Default)]
struct Progress {
    /// The charge was asked for: if its answer was lost, it may have happened anyway, and
    /// only a lookup by reference (the order id) tells.
    charge_attempted: bool,
    transaction_id: Option<String>,
}

impl CheckoutModule {
    /// The module over its (migrated) database, publishing through `relay`, and starts its
    /// recovery task (which first runs at once).
    pub fn new(
        db: DatabaseConnection,
        config: &CheckoutConfig,
        deps: CheckoutDeps,
        relay: Relay,
    ) -> Arc<Self> {
        let module = Arc::new(Self {
            db,
            deps,
            relay,
            config: config.clone(),
        });
        let weak = Arc::downgrade(&module);
        let interval = Duration::from_secs(config.recovery_interval_secs);
        tokio::spawn(async move {
            loop {
                let Some(module) = weak.upgrade() else { break };
                if let Err(e) = module.recover().await {
                    tracing::warn!(error = %e, "checkout recovery pass failed");
                }
                drop(module);
                tokio::time::sleep(interval).await;
            }
        });
        module
    }

    /// Compensates attempts left `pending` longer than `recover_after_secs` (their process
    /// died mid-saga): refunds their charge, if any, and marks them failed. Returns how many
    /// were resolved.
    ///
    /// # Errors
    /// [`CheckoutError::Unavailable`] when the database cannot be read.
    pub async fn recover(&self) -> Result<usize, CheckoutError> {
        let cutoff = now_ms().saturating_sub(
            i64::try_from(self.config.recover_after_secs.saturating_mul(1000)).unwrap_or(i64::MAX),
        );
        self.recover_older_than(cutoff).await
    }

    /// [`CheckoutModule::recover`] with an explicit cutoff (ms since the epoch): for tests
    /// and operators.
    ///
    /// # Errors
    /// [`CheckoutError::Unavailable`] when the database cannot be read.
    pub async fn recover_older_than(&self, cutoff_ms: i64) -> Result<usize, CheckoutError> {
        let stale = entity::Entity::find()
            .filter(
                Condition::any()
                    .add(
                        Condition::all()
                            .add(entity::Column::Status.eq(PENDING))
                            .add(entity::Column::UpdatedAtMs.lt(cutoff_ms)),
                    )
                    .add(entity::Column::Status.eq(UNSETTLED)),
            )
            .all(&self.db)
            .await
            .map_err(storage_error)?;
        let mut resolved = 0;
        for row in stale {
            let error = if row.status == UNSETTLED {
                parse_error(&row)
            } else {
                CheckoutError::unavailable(
                    "the checkout was interrupted and has been undone".into(),
                )
            };
            let progress = Progress {
                // The process died somewhere in the saga: a charge may have been made.
                charge_attempted: true,
                transaction_id: row.transaction_id.clone(),
            };
            let ctx = CallContext::root();
            if self
                .compensate(&ctx, &row.order_id, &progress, &error)
                .await
            {
                resolved += 1;
                tracing::warn!(order_id = %row.order_id, refunded = progress.transaction_id.is_some(), "interrupted checkout recovered");
            }
        }
        Ok(resolved)
    }

    async fn touch(
        &self,
        order_id: &str,
        transaction_id: Option<&str>,
    ) -> Result<(), CheckoutError> {
        let mut update = entity::Entity::update_many()
            .col_expr(entity::Column::UpdatedAtMs, now_ms().into())
            .filter(entity::Column::OrderId.eq(order_id));
        if let Some(t) = transaction_id {
            update = update.col_expr(entity::Column::TransactionId, t.into());
        }
        update.exec(&self.db).await.map_err(storage_error)?;
        Ok(())
    }

    /// Records the attempt, or finds the earlier one with the same key.
    async fn claim(
        &self,
        order_id: &str,
        req: &PlaceOrderRequest,
        key: Option<&IdempotencyKey>,
    ) -> Result<Option<Result<Order, CheckoutError>>, CheckoutError> {
        let hash = request_hash(req);
        let now = now_ms();
        let row = entity::ActiveModel {
            order_id: ActiveValue::Set(order_id.to_owned()),
            user_id: ActiveValue::Set(req.user_id.to_string()),
            idempotency_key: ActiveValue::Set(key.map(|k| k.as_str().to_owned())),
            request_hash: ActiveValue::Set(hash.clone()),
            status: ActiveValue::Set(PENDING.into()),
            transaction_id: ActiveValue::Set(None),
            order_json: ActiveValue::Set(None),
            error_json: ActiveValue::Set(None),
            created_at_ms: ActiveValue::Set(now),
            updated_at_ms: ActiveValue::Set(now),
        };
        // Twice at most: an unsettled earlier attempt undone now may free its key.
        for _ in 0..2 {
            let inserted = entity::Entity::insert(row.clone())
                .on_conflict(
                    OnConflict::columns([entity::Column::UserId, entity::Column::IdempotencyKey])
                        .do_nothing()
                        .to_owned(),
                )
                .exec_without_returning(&self.db)
                .await
                .map_err(storage_error)?;
            if inserted > 0 {
                return Ok(None);
            }
            let Some(key) = key else {
                return Err(CheckoutError::Internal {
                    reason: "an attempt without a key conflicted".into(),
                });
            };
            let earlier = entity::Entity::find()
                .filter(entity::Column::UserId.eq(req.user_id.as_str()))
                .filter(entity::Column::IdempotencyKey.eq(key.as_str()))
                .one(&self.db)
                .await
                .map_err(storage_error)?;
            // Released between the insert and the read: claim it again.
            let Some(earlier) = earlier else { continue };
            if earlier.request_hash != hash {
                return Err(CheckoutError::IdempotencyKeyReused);
            }
            match earlier.status.as_str() {
                PLACED => return Ok(Some(Ok(parse_order(&earlier)?))),
                FAILED => return Ok(Some(Err(parse_error(&earlier)))),
                UNSETTLED if self.settle(&earlier).await => continue,
                UNSETTLED => {
                    return Err(CheckoutError::RequestInProgress {
                        retry_after_secs: UNSETTLED_RETRY_SECS,
                    });
                }
                _ => {
                    return Err(CheckoutError::RequestInProgress {
                        retry_after_secs: IN_FLIGHT_RETRY_SECS,
                    });
                }
            }
        }
        Err(CheckoutError::RequestInProgress {
            retry_after_secs: IN_FLIGHT_RETRY_SECS,
        })
    }

    /// Undoes an unsettled attempt (its charge refunded, its failure recorded); whether that
    /// could be done now.
    async fn settle(&self, row: &entity::Model) -> bool {
        let progress = Progress {
            charge_attempted: true,
            transaction_id: row.transaction_id.clone(),
        };
        let error = parse_error(row);
        let settled = self
            .compensate(&CallContext::current(), &row.order_id, &progress, &error)
            .await;
        if settled {
            tracing::info!(order_id = %row.order_id, "unsettled checkout undone");
        }
        settled
    }

    /// Marks a failed attempt that could not be undone yet, keeping its error.
    async fn mark_unsettled(&self, order_id: &str, error: &CheckoutError) {
        let marked = entity::Entity::update_many()
            .col_expr(entity::Column::Status, UNSETTLED.into())
            .col_expr(
                entity::Column::ErrorJson,
                serde_json::to_string(error).unwrap_or_default().into(),
            )
            .col_expr(entity::Column::UpdatedAtMs, now_ms().into())
            .filter(entity::Column::OrderId.eq(order_id))
            .filter(entity::Column::Status.eq(PENDING))
            .exec(&self.db)
            .await;
        if let Err(e) = marked {
            // It stays pending: recovery takes it once it is old enough.
            tracing::error!(order_id, error = %e, "cannot mark the checkout unsettled");
        }
    }

    /// Runs the saga of a claimed attempt and records its outcome: the order placed, or the
    /// failure undone (or left `unsettled` for recovery when it cannot be undone yet).
    async fn place_claimed(
        &self,
        ctx: &CallContext,
        order_id: String,
        req: PlaceOrderRequest,
    ) -> Result<Order, CheckoutError> {
        let mut progress = Progress::default();
        let placed = match self.run_saga(ctx, &order_id, &req, &mut progress).await {
            Ok(order) => self.commit_order(ctx, &order).await.map(|()| order),
            Err(e) => Err(e),
        };
        match placed {
            Ok(order) => {
                tracing::info!(order_id = %order.order_id, total = %order.total, "order placed");
                // After the commit: a failure here leaves the shopper's cart full, not an order
                // without a charge.
                if let Err(e) = self.deps.cart.empty_cart(ctx, req.user_id.clone()).await {
                    tracing::warn!(order_id = %order.order_id, error = %e, "order placed but the cart could not be emptied");
                }
                Ok(order)
            }
            Err(error) => {
                tracing::info!(order_id, code = error.code(), "checkout failed");
                if !self.compensate(ctx, &order_id, &progress, &error).await {
                    self.mark_unsettled(&order_id, &error).await;
                    return Err(CheckoutError::passed(
                        format!("checkout failed ({error}) and could not be undone yet"),
                        Upstream::unavailable_for(UNSETTLED_RETRY_SECS),
                    ));
                }
                Err(error)
            }
        }
    }

    /// The forward steps up to and including shipping.
    async fn run_saga(
        &self,
        ctx: &CallContext,
        order_id: &str,
        req: &PlaceOrderRequest,
        progress: &mut Progress,
    ) -> Result<Order, CheckoutError> {
        let deps = &self.deps;
        let cart = deps
            .cart
            .get_cart(ctx, req.user_id.clone())
            .await
            .map_err(|e| dependency_error("cart", &e))?;
        if cart.items.is_empty() {
            return Err(CheckoutError::EmptyCart);
        }
        let currency = req.user_currency.as_str().to_owned();
        let convert = |money: Money| {
            let currency = currency.clone();
            async move {
                deps.currency
                    .convert(ctx, money, currency.clone())
                    .await
                    .map_err(|e| match e {
                        CurrencyError::UnsupportedCurrency { .. } => {
                            CheckoutError::UnsupportedCurrency {
                                currency_code: currency,
                            }
                        }
                        other => dependency_error("currency", &other),
                    })
            }
        };

        let mut items = Vec::with_capacity(cart.items.len());
        let mut subtotal = Money::new(&currency, 0, 0)
            .map_err(|e| CheckoutError::InvalidRequest { detail: e.0 })?;
        for line in &cart.items {
            let product = deps
                .catalog
                .get_product(ctx, line.product_id.clone())
                .await
                .map_err(|e| match e {
                    CatalogError::ProductNotFound { .. } => CheckoutError::ProductUnavailable {
                        product_id: line.product_id.to_string(),
                    },
                    other => dependency_error("catalog", &other),
                })?;
            let unit_price = convert(product.price_usd).await?;
            let cost = unit_price
                .checked_mul(line.quantity)
                .map_err(|e| CheckoutError::Internal { reason: e.0 })?;
            subtotal = subtotal
                .checked_add(&cost)
                .map_err(|e| CheckoutError::Internal { reason: e.0 })?;
            items.push(OrderItem {
                product_id: line.product_id.clone(),
                name: product.name,
                quantity: line.quantity,
                unit_price,
                cost,
            });
        }
        let shipping_items: Vec<ShippingItem> = cart
            .items
            .iter()
            .map(|l| ShippingItem {
                product_id: l.product_id.clone(),
                quantity: l.quantity,
            })
            .collect();
        let quote = deps
            .shipping
            .get_quote(
                ctx,
                QuoteRequest {
                    address: req.address.clone(),
                    items: shipping_items.clone(),
                },
            )
            .await
            .map_err(shipping_error)?;
        let shipping_cost = convert(quote.cost).await?;
        let total = subtotal
            .checked_add(&shipping_cost)
            .map_err(|e| CheckoutError::Internal { reason: e.0 })?;

        progress.charge_attempted = true;
        let charge = deps
            .payment
            .charge(
                ctx,
                ChargeRequest {
                    amount: total.clone(),
                    card: req.credit_card.clone(),
                    reference: Some(order_id.to_owned()),
                },
            )
            .await
            .map_err(|e| payment_error(&e))?;
        progress.transaction_id = Some(charge.transaction_id.clone());
        // Recorded before anything else can fail, so recovery can refund it.
        self.touch(order_id, Some(&charge.transaction_id)).await?;
        tracing::info!(order_id, transaction_id = %charge.transaction_id, "payment charged");

        let shipment = deps
            .shipping
            .ship_order(
                ctx,
                ShipOrderRequest {
                    address: req.address.clone(),
                    items: shipping_items,
                },
            )
            .await
            .map_err(shipping_error)?;

        Ok(Order {
            order_id: order_id.to_owned(),
            user_id: req.user_id.clone(),
            status: OrderStatus::Placed,
            email: req.email.clone(),
            shipping_address: req.address.clone(),
            shipping_tracking_id: shipment.tracking_id,
            shipping_cost,
            items,
            total,
            transaction_id: charge.transaction_id,
            card_last4: charge.card_last4,
            created_at: rfc3339(now_ms()),
        })
    }

    /// Marks the order placed and enqueues `OrderPlaced`, in one transaction.
    async fn commit_order(&self, ctx: &CallContext, order: &Order) -> Result<(), CheckoutError> {
        let json = serde_json::to_string(order).map_err(|e| CheckoutError::Internal {
            reason: e.to_string(),
        })?;
        let tx = self.db.begin().await.map_err(storage_error)?;
        entity::Entity::update_many()
            .col_expr(entity::Column::Status, PLACED.into())
            .col_expr(entity::Column::OrderJson, json.into())
            .col_expr(entity::Column::UpdatedAtMs, now_ms().into())
            .filter(entity::Column::OrderId.eq(order.order_id.as_str()))
            .filter(entity::Column::Status.eq(PENDING))
            .exec(&tx)
            .await
            .map_err(storage_error)?;
        let placed = OrderPlaced {
            order: order.clone(),
        };
        commit_with(tx, ctx, &placed, &self.relay)
            .await
            .map_err(|e| CheckoutError::unavailable(e.to_string()))?;
        Ok(())
    }

    /// Undoes what the saga did and records the failure. Returns whether the attempt is
    /// resolved (false: the refund could not be made; the attempt stays pending for
    /// recovery).
    async fn compensate(
        &self,
        ctx: &CallContext,
        order_id: &str,
        progress: &Progress,
        error: &CheckoutError,
    ) -> bool {
        let ctx =
            CallContext::new(ctx.request_id().clone(), None).with_timeout(COMPENSATION_BUDGET);
        let mut transaction_id = progress.transaction_id.clone();
        if transaction_id.is_none() && progress.charge_attempted {
            // The charge's answer was lost (or the process died): ask payment whether it
            // happened, by the reference the charge was made with.
            match self
                .deps
                .payment
                .find_charge(&ctx, order_id.to_owned())
                .await
            {
                Ok(charge) => transaction_id = Some(charge.transaction_id),
                Err(PaymentError::TransactionNotFound { .. }) => {}
                Err(e) => {
                    tracing::error!(order_id, error = %e, "cannot tell whether the card was charged; recovery will retry");
                    return false;
                }
            }
        }
        if let Some(transaction_id) = &transaction_id {
            match self.deps.payment.refund(&ctx, transaction_id.clone()).await {
                Ok(_) => {
                    tracing::info!(order_id, transaction_id = %transaction_id, "charge refunded")
                }
                Err(e) => {
                    tracing::error!(order_id, transaction_id = %transaction_id, error = %e, "refund failed; recovery will retry");
                    return false;
                }
            }
        }
        let error_json = serde_json::to_string(error).unwrap_or_default();
        let mut update = entity::Entity::update_many()
            .col_expr(entity::Column::Status, FAILED.into())
            .col_expr(entity::Column::ErrorJson, error_json.into())
            .col_expr(entity::Column::UpdatedAtMs, now_ms().into())
            .filter(entity::Column::OrderId.eq(order_id))
            .filter(entity::Column::Status.is_in([PENDING, UNSETTLED]));
        if retryable(error) {
            // Nothing is left behind: let the shopper retry with the same key.
            update = update.col_expr(
                entity::Column::IdempotencyKey,
                sea_orm::sea_query::Expr::value(Option::<String>::None),
            );
        }
        if let Err(e) = update.exec(&self.db).await {
            tracing::error!(order_id, error = %e, "cannot record the failed checkout; recovery will retry");
            return false;
        }
        true
    }
}

fn shipping_error(err: ShippingError) -> CheckoutError {
    match err {
        ShippingError::InvalidAddress { detail } => CheckoutError::InvalidAddress { detail },
        other => dependency_error("shipping", &other),
    }
}

fn payment_error(err: &PaymentError) -> CheckoutError {
    if err.status().is_client_error() && !PaymentError::REFUSALS.contains(&err.code()) {
        CheckoutError::PaymentDeclined {
            reason: err.code().to_owned(),
            detail: err.to_string(),
        }
    } else {
        dependency_error("payment", err)
    }
}

fn parse_order(row: &entity::Model) -> Result<Order, CheckoutError> {
    row.order_json
        .as_deref()
        .and_then(|j| serde_json::from_str(j).ok())
        .ok_or_else(|| CheckoutError::Internal {
            reason: format!("order {} has no readable body", row.order_id),
        })
}

fn parse_error(row: &entity::Model) -> CheckoutError {
    row.error_json
        .as_deref()
        .and_then(|j| serde_json::from_str(j).ok())
        .unwrap_or_else(|| CheckoutError::Internal {
            reason: format!("attempt {} has no readable error", row.order_id),
        })
}

#[async_trait]
impl CheckoutApi for CheckoutModule {
    async fn place_order(
        &self,
        ctx: &CallContext,
        req: PlaceOrderRequest,
        idempotency_key: Option<IdempotencyKey>,
    ) -> Result<Order, CheckoutError> {
        req.validate()?;
        let order_id = uuid::Uuid::now_v7().to_string();
        if let Some(earlier) = self
            .claim(&order_id, &req, idempotency_key.as_ref())
            .await?
        {
            tracing::info!(order_id = %earlier.as_ref().map_or("-", |o| o.order_id.as_str()), "idempotent replay of an earlier checkout");
            cleave_kernel::context::mark_answer(cleave_kernel::context::REPLAYED_HEADER, "true");
            return earlier;
        }
        // The saga runs to its end on a task of its own: a shopper who gives up (closes the
        // connection) must not stop it between the charge and the order or its refund.
        let (this, ctx) = (self.clone(), ctx.clone());
        cleave_kernel::context::to_completion(async move {
            this.place_claimed(&ctx, order_id, req).await
        })
        .await
    }

    async fn get_order(&self, ctx: &CallContext, order_id: String) -> Result<Order, CheckoutError> {
        // The access rules admit any signed-in caller; the order itself says whose it is.
        let principal = ctx.principal().ok_or_else(|| {
            CheckoutError::refused(Refusal::Unauthenticated(
                "an order is read with its owner's access token".into(),
            ))
        })?;
        let row = entity::Entity::find_by_id(order_id.clone())
            .one(&self.db)
            .await
            .map_err(storage_error)?
            .filter(|r| r.status == PLACED)
            // Another user's order is "not found": its existence is not theirs to know.
            .filter(|r| r.user_id == principal.subject || principal.is_admin())
            .ok_or(CheckoutError::OrderNotFound { order_id })?;
        parse_order(&row)
    }

    async fn list_orders(
        &self,
        _ctx: &CallContext,
        user_id: UserId,
    ) -> Result<Vec<Order>, CheckoutError> {
        self.placed_orders(
            entity::Entity::find().filter(entity::Column::UserId.eq(user_id.as_str())),
        )
        .await
    }

    async fn list_all_orders(
        &self,
        _ctx: &CallContext,
        limit: u64,
    ) -> Result<Vec<Order>, CheckoutError> {
        self.placed_orders(entity::Entity::find().limit(limit.min(1000)))
            .await
    }
}

impl CheckoutModule {
    /// The placed orders `query` selects (attempts not yet placed left out), newest first.
    async fn placed_orders(
        &self,
        query: sea_orm::Select<entity::Entity>,
    ) -> Result<Vec<Order>, CheckoutError> {
        query
            .filter(entity::Column::Status.eq(PLACED))
            .order_by_desc(entity::Column::CreatedAtMs)
            .order_by_desc(entity::Column::OrderId)
            .all(&self.db)
            .await
            .map_err(storage_error)?
            .iter()
            .map(parse_order)
            .collect()
    }

    /// Starts the module from what the process gives it (see `#[module]`).
    async fn from_start(start: Start<'_, CheckoutConfig>) -> Result<Arc<Self>, StartError> {
        let deps = CheckoutDeps {
            cart: start.dep::<cart_api::CartContract>()?,
            catalog: start.dep::<catalog_api::CatalogContract>()?,
            currency: start.dep::<currency_api::CurrencyContract>()?,
            shipping: start.dep::<shipping_api::ShippingContract>()?,
            payment: start.dep::<payment_api::PaymentContract>()?,
        };
        Ok(CheckoutModule::new(
            start.db()?,
            start.config(),
            deps,
            start.relay(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use checkout_api::contract::request;

    #[test]
    fn the_request_hash_ignores_all_but_the_last_four_card_digits_and_tracks_the_rest() {
        let user = UserId::parse("u").expect("user");
        let a = request(&user, "EUR");
        let mut same_card_end = a.clone();
        same_card_end.credit_card.number = "4111-1111-1111-0454".into();
        assert_eq!(request_hash(&a), request_hash(&same_card_end));
        let mut other_currency = a.clone();
        other_currency.user_currency = cleave_domain::CurrencyCode::parse("USD").expect("usd");
        assert_ne!(request_hash(&a), request_hash(&other_currency));
        assert_eq!(request_hash(&a).len(), 64);
    }
}

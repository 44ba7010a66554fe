//! Events between modules, with a transactional outbox.
//!
//! A module that publishes writes its event with [`enqueue`] in the *same database
//! transaction* as the change that causes it, so the event exists exactly when the change
//! does. After the commit it calls [`Relay::notify`]; the relay (one background task per
//! process, [`Relay::spawn`]) reads pending events from the `events_outbox` table, hands each
//! to the [`EventBus`] and marks it published only once the bus has accepted it. A crash
//! between commit and publish loses nothing: the event is still pending when the process comes
//! back, and the relay drains the outbox at start.
//!
//! Delivery is at least once, so subscribers must apply each event once: dedupe by
//! [`Event::id`] in the same transaction as the effect (a unique column does it).
//!
//! [`InProcessBus`] delivers to subscribers in this process and accepts an event only when
//! every subscriber has handled it. [`crate::nats::NatsBus`] implements the same [`EventBus`]
//! trait over NATS JetStream for split deployments: the outbox and the relay stay as they are.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use async_trait::async_trait;
use sea_orm::sea_query::{Condition, Expr, ExprTrait, Order, Query};
use sea_orm::{
    ActiveValue, ColumnTrait, ConnectionTrait, DatabaseConnection, DbErr, EntityTrait,
    FromQueryResult, QueryFilter, QueryOrder,
};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::Notify;
use uuid::Uuid;

use crate::CallContext;

/// A typed event: its payload type names its topic.
pub trait Topic: Serialize + DeserializeOwned + Send + Sync + 'static {
    /// The topic, `"<module>.<event>"`, e.g. `checkout.order_placed`.
    const TOPIC: &'static str;
}

/// The payload field an event may carry to say which resource of its module changed: the
/// path of the resource under the module's API (e.g. `/api/cart/v1/carts/u1`, as
/// `Operation::path_with` writes it). Callers in other processes then drop only the answers
/// they kept about that resource; an event without it drops every answer they kept of the
/// module.
pub const CHANGED_RESOURCE: &str = "resource";

/// The resource an event says changed ([`CHANGED_RESOURCE`]), if it says one.
pub fn changed_resource(event: &Event) -> Option<String> {
    let payload: serde_json::Value = serde_json::from_str(&event.payload).ok()?;
    payload.get(CHANGED_RESOURCE)?.as_str().map(str::to_owned)
}

/// One event as stored and delivered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// Unique id (UUID v7, so ids sort by creation time). Subscribers dedupe by it.
    pub id: Uuid,
    /// The topic.
    pub topic: String,
    /// The payload, as JSON text.
    pub payload: String,
    /// The request that caused the event, for log correlation.
    pub request_id: String,
    /// When it was enqueued, milliseconds since the Unix epoch.
    pub created_at_ms: i64,
    /// The W3C `traceparent` of the work that produced it: its handlers' spans link to that
    /// trace.
    pub traceparent: Option<String>,
}

impl Event {
    /// The payload as `T`, if the topic is `T`'s.
    ///
    /// # Errors
    /// [`EventError::Payload`] when the topic differs or the payload does not decode.
    pub fn decode<T: Topic>(&self) -> Result<T, EventError> {
        if self.topic != T::TOPIC {
            return Err(EventError::Payload(format!(
                "event {} has topic {}, not {}",
                self.id,
                self.topic,
                T::TOPIC
            )));
        }
        serde_json::from_str(&self.payload)
            .map_err(|e| EventError::Payload(format!("event {}: {e}", self.id)))
    }
}

/// Why an event could not be stored, decoded or delivered.
#[derive(Debug, thiserror::Error)]
pub enum EventError {
    /// The outbox table could not be written or read.
    #[error("outbox storage: {0}")]
    Storage(#[from] DbErr),
    /// The payload does not encode or decode.
    #[error("event payload: {0}")]
    Payload(String),
    /// No subscriber in this process listens to the topic (and no broker is configured): the
    /// event stays in the outbox.
    #[error("no subscriber for topic {0}")]
    NoSubscriber(String),
    /// The broker did not take or deliver the event (down, refused); it will be tried again.
    #[error("event broker: {0}")]
    Broker(String),
    /// A subscriber failed; the event will be delivered again.
    #[error("subscriber {subscriber} failed: {reason}")]
    Handler {
        /// The subscriber's name.
        subscriber: String,
        /// Why.
        reason: String,
    },
}

pub(crate) mod outbox {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "events_outbox")]
    pub(crate) struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub(crate) id: String,
        pub(crate) topic: String,
        pub(crate) payload: String,
        pub(crate) request_id: String,
        pub(crate) created_at_ms: i64,
        pub(crate) published_at_ms: Option<i64>,
        pub(crate) attempts: i32,
        pub(crate) next_attempt_at_ms: i64,
        pub(crate) last_error: Option<String>,
        pub(crate) traceparent: Option<String>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub(crate) enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// Writes `event` to the outbox through `conn`: pass the transaction that makes the change
/// the event announces. Returns the event's id.
///
/// # Errors
/// [`EventError::Storage`] or [`EventError::Payload`].
pub async fn enqueue<T: Topic>(
    conn: &impl ConnectionTrait,
    ctx: &CallContext,
    event: &T,
) -> Result<Uuid, EventError> {
    let id = Uuid::now_v7();
    let payload = serde_json::to_string(event).map_err(|e| EventError::Payload(e.to_string()))?;
    let now = now_ms();
    outbox::Entity::insert(outbox::ActiveModel {
        id: ActiveValue::Set(id.to_string()),
        topic: ActiveValue::Set(T::TOPIC.to_owned()),
        payload: ActiveValue::Set(payload),
        request_id: ActiveValue::Set(ctx.request_id().as_str().to_owned()),
        created_at_ms: ActiveValue::Set(now),
        published_at_ms: ActiveValue::Set(None),
        attempts: ActiveValue::Set(0),
        next_attempt_at_ms: ActiveValue::Set(now),
        last_error: ActiveValue::Set(None),
        traceparent: ActiveValue::Set(crate::telemetry::current_traceparent()),
    })
    .exec_without_returning(conn)
    .await?;
    Ok(id)
}

/// Enqueues `event` in `tx` (the transaction of the change it announces), commits, and tells
/// `relay` to deliver it: how a module publishes. The answer to the request that made the
/// change names the event to a calling module ([`crate::context::ANNOUNCED_HEADER`]).
///
/// # Errors
/// [`EventError::Storage`] (nothing is committed) or [`EventError::Payload`].
pub async fn commit_with<T: Topic>(
    tx: sea_orm::DatabaseTransaction,
    ctx: &CallContext,
    event: &T,
    relay: &Relay,
) -> Result<(), EventError> {
    let id = enqueue(&tx, ctx, event).await?;
    tx.commit().await?;
    crate::context::note_announced(id);
    relay.notify();
    Ok(())
}

/// Counts of the outbox, for health and tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutboxStats {
    /// Events not yet accepted by the bus.
    pub pending: u64,
    /// Events delivered.
    pub published: u64,
}

/// Counts pending and published events.
///
/// # Errors
/// [`EventError::Storage`].
pub async fn stats(conn: &impl ConnectionTrait) -> Result<OutboxStats, EventError> {
    use sea_orm::PaginatorTrait;
    let pending = outbox::Entity::find()
        .filter(outbox::Column::PublishedAtMs.is_null())
        .count(conn)
        .await?;
    let published = outbox::Entity::find()
        .filter(outbox::Column::PublishedAtMs.is_not_null())
        .count(conn)
        .await?;
    Ok(OutboxStats { pending, published })
}

/// Sets [`crate::metrics::OUTBOX_PENDING`] and [`crate::metrics::OUTBOX_OLDEST_AGE`] from the
/// outbox of a database.
pub struct OutboxGauges(pub DatabaseConnection);

#[async_trait]
impl crate::metrics::Gauges for OutboxGauges {
    async fn record(&self) {
        match outbox_lag(&self.0).await {
            Ok((pending, oldest_secs)) => {
                #[allow(clippy::cast_precision_loss)]
                metrics::gauge!(crate::metrics::OUTBOX_PENDING).set(pending as f64);
                metrics::gauge!(crate::metrics::OUTBOX_OLDEST_AGE).set(oldest_secs);
            }
            Err(e) => tracing::warn!(error = %e, "outbox gauges not read"),
        }
    }
}

/// The events not yet accepted by the bus, and the age in seconds of the oldest (0 when
/// none).
///
/// # Errors
/// [`EventError::Storage`].
pub async fn outbox_lag(conn: &impl ConnectionTrait) -> Result<(u64, f64), EventError> {
    use sea_orm::PaginatorTrait;
    let pending = outbox::Entity::find()
        .filter(outbox::Column::PublishedAtMs.is_null())
        .count(conn)
        .await?;
    let oldest = outbox::Entity::find()
        .filter(outbox::Column::PublishedAtMs.is_null())
        .order_by_asc(outbox::Column::CreatedAtMs)
        .one(conn)
        .await?;
    let age_ms = oldest.map_or(0, |row| {
        Ord::max(now_ms().saturating_sub(row.created_at_ms), 0)
    });
    #[allow(clippy::cast_precision_loss)]
    Ok((pending, age_ms as f64 / 1000.0))
}

/// An event not yet accepted by the bus (`cleave events pending`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingEvent {
    /// The event id.
    pub id: String,
    /// Its topic.
    pub topic: String,
    /// Deliveries tried.
    pub attempts: i32,
    /// Why the last one failed.
    pub last_error: Option<String>,
}

/// The events still to deliver, oldest first.
///
/// # Errors
/// [`EventError::Storage`].
pub async fn pending(conn: &impl ConnectionTrait) -> Result<Vec<PendingEvent>, EventError> {
    Ok(outbox::Entity::find()
        .filter(outbox::Column::PublishedAtMs.is_null())
        .order_by_asc(outbox::Column::Id)
        .all(conn)
        .await?
        .into_iter()
        .map(|row| PendingEvent {
            id: row.id,
            topic: row.topic,
            attempts: row.attempts,
            last_error: row.last_error,
        })
        .collect())
}

/// Something that handles the events of one topic. Must be idempotent per [`Event::id`].
#[async_trait]
pub trait Subscriber: Send + Sync {
    /// Applies the event.
    ///
    /// # Errors
    /// Any failure: the event is delivered again later.
    async fn handle(&self, event: &Event) -> Result<(), EventError>;
}

/// What a module keeps in memory of its own tables (a snapshot), read again when another
/// process says it changed them.
#[async_trait]
pub trait Reload: Send + Sync + 'static {
    /// Reads the tables again.
    ///
    /// # Errors
    /// Why they cannot be read (the old copy stays).
    async fn reload(&self) -> Result<(), String>;
}

/// A watcher ([`EventBus::watch`]) that reloads a module, held weakly (the watch does
/// nothing once the module is gone), for each event of a topic announcing a change: every
/// replica of the module, in whatever process, serves the change at once.
pub struct ReloadOn<T>(pub std::sync::Weak<T>);

#[async_trait]
impl<T: Reload> Subscriber for ReloadOn<T> {
    async fn handle(&self, event: &Event) -> Result<(), EventError> {
        let Some(module) = self.0.upgrade() else {
            return Ok(());
        };
        module
            .reload()
            .await
            .map_err(|reason| EventError::Handler {
                subscriber: "reload".into(),
                reason,
            })?;
        tracing::info!(topic = %event.topic, event_id = %event.id, "reloaded after a change");
        Ok(())
    }
}

/// Where the relay hands events: in process now, a broker later.
#[async_trait]
pub trait EventBus: Send + Sync {
    /// Registers `subscriber` (named, for logs) for `topic`.
    fn subscribe(&self, topic: &'static str, name: &'static str, subscriber: Arc<dyn Subscriber>);

    /// Registers `watcher` for the events of `topic` published from now on, in this process:
    /// unlike a subscriber (one delivery per subscriber name, however many processes run it),
    /// every process that watches gets every event. For what each process keeps of another
    /// module's data (a cache that must forget what changed). No dead letters: a watcher's
    /// failure is logged, and what it keeps must have a lifetime of its own as a safety net.
    fn watch(&self, topic: &'static str, watcher: Arc<dyn Subscriber>);

    /// Delivers `event`; `Ok` means the bus accepted it and the outbox may mark it published.
    ///
    /// # Errors
    /// [`EventError::NoSubscriber`] or [`EventError::Handler`]: the event stays pending.
    async fn publish(&self, event: &Event) -> Result<(), EventError>;
}

type Subscribers = BTreeMap<&'static str, Vec<(&'static str, Arc<dyn Subscriber>)>>;

/// Delivers events to subscribers in this process, one after the other.
#[derive(Default)]
pub struct InProcessBus {
    subscribers: RwLock<Subscribers>,
    watchers: RwLock<Subscribers>,
}

impl InProcessBus {
    /// An empty bus.
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// Whether anyone in this process listens to `topic`.
    pub fn has_subscribers(&self, topic: &str) -> bool {
        self.subscribers
            .read()
            .is_ok_and(|s| s.get(topic).is_some_and(|v| !v.is_empty()))
    }
}

#[async_trait]
impl EventBus for InProcessBus {
    fn subscribe(&self, topic: &'static str, name: &'static str, subscriber: Arc<dyn Subscriber>) {
        if let Ok(mut subs) = self.subscribers.write() {
            subs.entry(topic).or_default().push((name, subscriber));
        }
    }

    fn watch(&self, topic: &'static str, watcher: Arc<dyn Subscriber>) {
        if let Ok(mut watchers) = self.watchers.write() {
            watchers.entry(topic).or_default().push(("watch", watcher));
        }
    }

    async fn publish(&self, event: &Event) -> Result<(), EventError> {
        let of = |map: &RwLock<Subscribers>| -> Vec<(&'static str, Arc<dyn Subscriber>)> {
            map.read()
                .map(|s| s.get(event.topic.as_str()).cloned().unwrap_or_default())
                .unwrap_or_default()
        };
        // Watchers first (their failures are only logged); a topic only watched is delivered
        // once they have seen it.
        let watchers = of(&self.watchers);
        for (_, watcher) in &watchers {
            if let Err(e) = watcher.handle(event).await {
                tracing::warn!(topic = %event.topic, event_id = %event.id, error = %e, "event watcher failed");
            }
        }
        let targets = of(&self.subscribers);
        if targets.is_empty() && !watchers.is_empty() {
            return Ok(());
        }
        if targets.is_empty() {
            return Err(EventError::NoSubscriber(event.topic.clone()));
        }
        // Every subscriber gets the event even if an earlier one fails; the event is accepted
        // only when all succeeded, and a redelivery reaches all again (they dedupe).
        let mut failure = None;
        for (name, subscriber) in targets {
            if let Err(e) = deliver_to(name, subscriber.as_ref(), event).await {
                failure = Some(EventError::Handler {
                    subscriber: name.to_owned(),
                    reason: e.to_string(),
                });
            }
        }
        failure.map_or(Ok(()), Err)
    }
}

/// Hands `event` to subscriber `name` in a span of its own, linked to the trace that produced
/// the event, and counts the delivery.
///
/// # Errors
/// The subscriber's.
pub async fn deliver_to(
    name: &'static str,
    subscriber: &dyn Subscriber,
    event: &Event,
) -> Result<(), EventError> {
    use tracing::Instrument;
    let span = tracing::info_span!(
        "event_delivery",
        otel.name = %format_args!("{} {name}", event.topic),
        otel.kind = "consumer",
        topic = %event.topic,
        subscriber = name,
        event_id = %event.id,
    );
    if let Some(producer) = &event.traceparent {
        crate::telemetry::link_to(&span, producer);
    }
    let handled = subscriber.handle(event).instrument(span).await;
    crate::metrics::record_handled(event.topic.clone(), name, handled.is_ok());
    handled
}

/// Settings of the relay (`[events]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RelaySettings {
    /// Whether this process delivers events from the outbox at all.
    pub enabled: bool,
    /// How often the outbox is checked when nobody calls [`Relay::notify`] (picks up events
    /// of crashed processes and retries).
    pub poll_interval: Duration,
    /// Most events read per pass.
    pub batch_size: u64,
    /// Longest wait before a failed event is tried again (backoff doubles up to it).
    pub max_backoff: Duration,
    /// How long a relay holds the events it took (while it hands them to the bus) before
    /// another relay on the same database may take them: a pass publishes for half of it at
    /// most, so it must be longer than two publishes take.
    pub lease: Duration,
    /// How long published events stay in the outbox before they are deleted.
    pub retention: Duration,
}

impl Default for RelaySettings {
    fn default() -> Self {
        Self {
            enabled: true,
            poll_interval: Duration::from_secs(2),
            batch_size: 100,
            max_backoff: Duration::from_secs(60),
            lease: Duration::from_secs(60),
            retention: Duration::from_secs(72 * 3600),
        }
    }
}

/// How often the relay deletes published events older than the retention.
const PRUNE_EVERY: Duration = Duration::from_secs(300);

/// The outbox relay of one process. Cheap to clone.
#[derive(Clone, Default)]
pub struct Relay {
    wake: Arc<Notify>,
}

impl Relay {
    /// A relay not started yet: notifications wait for [`Relay::start`]; until then (or for
    /// good, when it is never started) events stay in the outbox.
    pub fn new() -> Self {
        Self {
            wake: Arc::new(Notify::new()),
        }
    }

    /// A relay that delivers nothing (events stay in the outbox).
    pub fn disabled() -> Self {
        Self::new()
    }

    /// Starts a relay task and returns its handle (see [`Relay::start`]).
    pub fn spawn(db: DatabaseConnection, bus: Arc<dyn EventBus>, settings: RelaySettings) -> Self {
        let relay = Self::new();
        relay.start(db, bus, settings);
        relay
    }

    /// Starts the relay task: drains the outbox at once, then whenever notified and every
    /// `poll_interval`. Does nothing when `settings.enabled` is false (`events.relay`).
    pub fn start(&self, db: DatabaseConnection, bus: Arc<dyn EventBus>, settings: RelaySettings) {
        if !settings.enabled {
            tracing::info!("event relay disabled: events stay in the outbox");
            return;
        }
        let wake = self.wake.clone();
        tokio::spawn(async move {
            // Published rows older than the retention go now and then, not on every pass
            // (a pass follows every commit that enqueues).
            let mut pruned_at: Option<tokio::time::Instant> = None;
            loop {
                if pruned_at.is_none_or(|at| at.elapsed() >= PRUNE_EVERY) {
                    let cutoff = now_ms().saturating_sub(
                        i64::try_from(settings.retention.as_millis()).unwrap_or(i64::MAX),
                    );
                    if let Err(e) = prune(&db, cutoff).await {
                        tracing::warn!(error = %e, "pruning published events failed");
                    }
                    pruned_at = Some(tokio::time::Instant::now());
                }
                match relay_pass(&db, bus.as_ref(), settings).await {
                    Ok(more) if more => continue,
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = %e, "event relay pass failed"),
                }
                tokio::select! {
                    () = wake.notified() => {}
                    () = tokio::time::sleep(settings.poll_interval) => {}
                }
            }
        });
    }

    /// Tells the relay that new events were committed.
    pub fn notify(&self) {
        self.wake.notify_one();
    }
}

/// Delivers one batch of due events. Returns whether more may wait (a full batch was taken,
/// or the pass gave some back).
///
/// One statement takes the due events (a conditional update that returns the rows it
/// changed: relays sharing the database each take a row at most once a lease, and one that
/// dies holding it leaves it to the others after the lease); each event the bus accepts is
/// marked published at once, and a failed one is put off with its own back-off. So the usual
/// pass, one event after a commit, is two statements (it was four). The batch is held for
/// one lease: once half of it is gone the pass stops and gives the events it has not tried
/// back, so that no other relay takes an event while this one may still publish it.
///
/// # Errors
/// [`EventError::Storage`] when the outbox cannot be read or updated (the events taken and
/// not yet marked wait for the lease to end).
pub async fn relay_pass(
    db: &DatabaseConnection,
    bus: &dyn EventBus,
    settings: RelaySettings,
) -> Result<bool, EventError> {
    let now = now_ms();
    // Held until then; at least a millisecond ahead, so the rows no longer match `due`.
    let lease = i64::try_from(settings.lease.as_millis()).unwrap_or(i64::MAX);
    let held_until = now.saturating_add(Ord::max(lease, 1));
    let due = || {
        Condition::all()
            .add(outbox::Column::PublishedAtMs.is_null())
            .add(outbox::Column::NextAttemptAtMs.lte(now))
    };
    let oldest_due = Query::select()
        .column(outbox::Column::Id)
        .from(outbox::Entity)
        .cond_where(due())
        .order_by(outbox::Column::Id, Order::Asc)
        .limit(settings.batch_size)
        .to_owned();
    let take = Query::update()
        .table(outbox::Entity)
        .value(outbox::Column::NextAttemptAtMs, held_until)
        .cond_where(due().add(outbox::Column::Id.in_subquery(oldest_due)))
        .returning_all()
        .to_owned();
    let mut taken = outbox::Model::find_by_statement(db.get_database_backend().build(&take))
        .all(db)
        .await?;
    // RETURNING gives no order: deliver oldest first (ids are UUIDv7).
    taken.sort_unstable_by(|a, b| a.id.cmp(&b.id));
    let full = taken.len() as u64 == settings.batch_size;
    let give_back_at = now.saturating_add(lease / 2);
    let mut taken = taken.into_iter();
    let mut tried = 0_usize;
    while let Some(row) = taken.next() {
        // The first is always tried: a pass makes progress whatever the lease.
        if tried > 0 && now_ms() >= give_back_at {
            let untried: Vec<String> = std::iter::once(row.id).chain(taken.map(|r| r.id)).collect();
            tracing::warn!(
                events = untried.len(),
                "event relay pass ran half its lease: the events left are given back"
            );
            outbox::Entity::update_many()
                .col_expr(outbox::Column::NextAttemptAtMs, Expr::value(now_ms()))
                .filter(outbox::Column::Id.is_in(untried))
                .exec(db)
                .await?;
            return Ok(true);
        }
        tried += 1;
        let Ok(id) = Uuid::parse_str(&row.id) else {
            tracing::error!(event_id = %row.id, "outbox row with a malformed id skipped");
            continue;
        };
        let event = Event {
            id,
            topic: row.topic,
            payload: row.payload,
            request_id: row.request_id,
            created_at_ms: row.created_at_ms,
            traceparent: row.traceparent,
        };
        let outcome = bus.publish(&event).await;
        metrics::counter!(
            crate::metrics::EVENTS_RELAYED,
            "topic" => event.topic.clone(),
            "outcome" => if outcome.is_ok() { "ok" } else { "failed" },
        )
        .increment(1);
        match outcome {
            Ok(()) => {
                outbox::Entity::update_many()
                    .col_expr(outbox::Column::PublishedAtMs, Expr::value(now_ms()))
                    .col_expr(
                        outbox::Column::Attempts,
                        Expr::col(outbox::Column::Attempts).add(1),
                    )
                    .filter(outbox::Column::Id.eq(row.id.as_str()))
                    .exec(db)
                    .await?;
                tracing::debug!(event_id = %id, topic = %event.topic, request_id = %event.request_id, "event published");
            }
            Err(e) => {
                let attempts = row.attempts.saturating_add(1);
                let backoff = backoff_ms(attempts, settings);
                if matches!(e, EventError::NoSubscriber(_)) && row.attempts == 0 {
                    tracing::warn!(event_id = %id, topic = %event.topic, "no subscriber in this process: event kept in the outbox");
                } else if !matches!(e, EventError::NoSubscriber(_)) {
                    tracing::warn!(event_id = %id, topic = %event.topic, request_id = %event.request_id, attempts, error = %e, "event delivery failed; will retry");
                }
                outbox::Entity::update_many()
                    .col_expr(outbox::Column::Attempts, Expr::value(attempts))
                    .col_expr(
                        outbox::Column::NextAttemptAtMs,
                        Expr::value(now_ms().saturating_add(backoff)),
                    )
                    .col_expr(outbox::Column::LastError, Expr::value(e.to_string()))
                    .filter(outbox::Column::Id.eq(row.id.as_str()))
                    .exec(db)
                    .await?;
            }
        }
    }
    Ok(full)
}

/// Deletes the events published before `published_before_ms` (the outbox keeps what is still
/// to deliver, and a while of history). Returns how many went.
///
/// # Errors
/// [`EventError::Storage`].
pub async fn prune(db: &impl ConnectionTrait, published_before_ms: i64) -> Result<u64, EventError> {
    let deleted = outbox::Entity::delete_many()
        .filter(outbox::Column::PublishedAtMs.lt(published_before_ms))
        .exec(db)
        .await?;
    Ok(deleted.rows_affected)
}

fn backoff_ms(attempts: i32, settings: RelaySettings) -> i64 {
    let max = i64::try_from(settings.max_backoff.as_millis()).unwrap_or(i64::MAX);
    let exp = u32::try_from(attempts.clamp(1, 20) - 1).unwrap_or(0);
    std::cmp::min(500_i64.saturating_mul(1_i64 << exp), max)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_maximum() {
        let s = RelaySettings::default();
        assert_eq!(backoff_ms(1, s), 500);
        assert_eq!(backoff_ms(2, s), 1000);
        assert_eq!(backoff_ms(5, s), 8000);
        assert_eq!(backoff_ms(30, s), 60_000);
    }
}

//! Events over NATS JetStream ([`NatsBus`]), for deployments whose subscribers run in other
//! processes than the publishers (`events.bus = "nats"`).
//!
//! The outbox and its relay stay as they are: the relay hands each committed event to
//! [`NatsBus::publish`], which sends it to the stream `<PREFIX>_EVENTS` on the subject
//! `<prefix>.events.<topic>` with the event id as `Nats-Msg-Id` (the broker drops a second
//! copy within its duplicate window) and returns only once the broker has acknowledged it, so
//! the outbox marks an event published only when the broker has it.
//!
//! Each subscriber has a durable pull consumer of its own (`<prefix>-<subscriber>-<topic>`):
//! it acknowledges an event after its handler succeeded; a failure asks for redelivery after a
//! growing delay; after `max_deliver` attempts the event goes to the dead-letter stream
//! (`<PREFIX>_DEAD_LETTERS`, subject `<prefix>.dead.<topic>`, with the subscriber and the last
//! error in its headers) and is not delivered again. Subscribers still dedupe by event id: a
//! broker redelivers what was not acknowledged in time.
//!
//! Watchers ([`EventBus::watch`]) read the stream through an ordered consumer of their own
//! process (ephemeral: the server forgets it when the process is gone), from the moment they
//! start; after a broken connection they go on from the last event they saw.
//!
//! The broker down: the process starts and serves anyway (the client keeps reconnecting),
//! events wait in the outbox, consumers retry, and delivery resumes by itself.

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{self, AckKind, consumer, stream};
use async_trait::async_trait;
use futures::StreamExt;
use uuid::Uuid;

use crate::events::{Event, EventBus, EventError, Subscriber};

/// The header the broker dedupes by: the event id (a replay adds a suffix).
const MESSAGE_ID: &str = "Nats-Msg-Id";
/// The header carrying the event id (what subscribers dedupe by), also on replays.
const EVENT_ID: &str = "Cleave-Event-Id";
/// The header carrying the request that caused an event.
const REQUEST_ID: &str = "Cleave-Request-Id";
/// Header of an event message: the W3C trace context of the work that produced it.
const TRACEPARENT: &str = "traceparent";
/// The header carrying when an event was enqueued (ms since the epoch).
const CREATED_AT: &str = "Cleave-Created-At-Ms";
/// Headers of a dead letter: who failed, and why.
const DEAD_SUBSCRIBER: &str = "Cleave-Subscriber";
const DEAD_ERROR: &str = "Cleave-Error";

/// Settings of the NATS bus (`[events]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NatsSettings {
    /// The server, e.g. `nats://127.0.0.1:4222`.
    pub url: String,
    /// Prefix of subjects, streams and consumers: one per deployment sharing a server.
    pub prefix: String,
    /// Deliveries of one event to one subscriber before it goes to the dead letters.
    pub max_deliver: i64,
    /// How long the broker waits for an acknowledgement before it redelivers.
    pub ack_wait: Duration,
    /// How long the broker keeps published events (and dead letters).
    pub retention: Duration,
}

impl NatsSettings {
    fn events_stream(&self) -> String {
        format!("{}_EVENTS", self.prefix.to_uppercase())
    }

    fn dead_stream(&self) -> String {
        format!("{}_DEAD_LETTERS", self.prefix.to_uppercase())
    }

    fn subject(&self, topic: &str) -> String {
        format!("{}.events.{topic}", self.prefix)
    }

    fn dead_subject(&self, topic: &str) -> String {
        format!("{}.dead.{topic}", self.prefix)
    }

    /// The durable consumer of `subscriber` for `topic`: letters, digits, `-` and `_` only.
    fn consumer(&self, subscriber: &str, topic: &str) -> String {
        format!("{}-{subscriber}-{topic}", self.prefix)
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                    c
                } else {
                    '_'
                }
            })
            .collect()
    }
}

/// An [`EventBus`] over NATS JetStream. See the module documentation.
pub struct NatsBus {
    client: async_nats::Client,
    js: jetstream::Context,
    settings: Arc<NatsSettings>,
    /// Whether the events stream is known to exist: publishing then costs no stream request.
    stream_ready: std::sync::atomic::AtomicBool,
}

fn broker(e: impl std::fmt::Display) -> EventError {
    EventError::Broker(e.to_string())
}

impl NatsBus {
    /// A bus on the server of `settings`. Returns at once: the client connects (and
    /// reconnects) in the background, so a broker that is down does not stop the process.
    ///
    /// # Errors
    /// [`EventError::Broker`] when the url is malformed.
    pub async fn connect(settings: NatsSettings) -> Result<Arc<Self>, EventError> {
        let client = async_nats::ConnectOptions::new()
            .name("cleave")
            .retry_on_initial_connect()
            .connect(settings.url.as_str())
            .await
            .map_err(broker)?;
        let js = jetstream::new(client.clone());
        Ok(Arc::new(Self {
            client,
            js,
            settings: Arc::new(settings),
            stream_ready: std::sync::atomic::AtomicBool::new(false),
        }))
    }

    /// Whether the client is connected to the server now.
    pub fn connected(&self) -> bool {
        matches!(
            self.client.connection_state(),
            async_nats::connection::State::Connected
        )
    }

    async fn events_stream(
        js: &jetstream::Context,
        settings: &NatsSettings,
    ) -> Result<stream::Stream, EventError> {
        js.get_or_create_stream(stream::Config {
            name: settings.events_stream(),
            subjects: vec![settings.subject(">")],
            duplicate_window: Duration::from_secs(120),
            max_age: settings.retention,
            ..Default::default()
        })
        .await
        .map_err(broker)
    }

    async fn dead_stream(
        js: &jetstream::Context,
        settings: &NatsSettings,
    ) -> Result<stream::Stream, EventError> {
        js.get_or_create_stream(stream::Config {
            name: settings.dead_stream(),
            subjects: vec![settings.dead_subject(">")],
            max_age: settings.retention,
            ..Default::default()
        })
        .await
        .map_err(broker)
    }
}

/// The broker's connection in `/health/ready`: optional (the process serves without it;
/// events wait in the outbox), so it is reported, not failed on.
pub struct BrokerReadiness(pub Arc<NatsBus>);

#[async_trait]
impl crate::health::ReadinessCheck for BrokerReadiness {
    fn name(&self) -> String {
        "events:nats".into()
    }

    async fn check(&self) -> Result<(), String> {
        if self.0.connected() {
            Ok(())
        } else {
            Err(format!(
                "not connected to {}; events wait in the outbox",
                self.0.settings.url
            ))
        }
    }

    fn required(&self) -> bool {
        false
    }
}

/// An event a subscriber gave up on (`cleave events dead-letters`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    /// Its place in the dead-letter stream.
    pub sequence: u64,
    /// The event id.
    pub event_id: String,
    /// The event's topic.
    pub topic: String,
    /// The subscriber that failed.
    pub subscriber: String,
    /// Its last error.
    pub error: String,
}

impl NatsBus {
    /// The dead letters, oldest first.
    ///
    /// # Errors
    /// [`EventError::Broker`].
    pub async fn dead_letters(&self) -> Result<Vec<DeadLetter>, EventError> {
        let mut stream = Self::dead_stream(&self.js, &self.settings).await?;
        let state = stream.info().await.map_err(broker)?.state.clone();
        let mut letters = Vec::new();
        if state.messages == 0 {
            return Ok(letters);
        }
        let prefix = format!("{}.dead.", self.settings.prefix);
        for sequence in state.first_sequence..=state.last_sequence {
            // Gaps are letters already replayed (deleted).
            let Ok(message) = stream.get_raw_message(sequence).await else {
                continue;
            };
            let header = |key: &str| {
                message
                    .headers
                    .get(key)
                    .map(|v| v.as_str().to_owned())
                    .unwrap_or_default()
            };
            letters.push(DeadLetter {
                sequence,
                event_id: Some(header(EVENT_ID))
                    .filter(|id| !id.is_empty())
                    .unwrap_or_else(|| header(MESSAGE_ID)),
                topic: message
                    .subject
                    .as_str()
                    .strip_prefix(&prefix)
                    .unwrap_or_default()
                    .to_owned(),
                subscriber: header(DEAD_SUBSCRIBER),
                error: header(DEAD_ERROR),
            });
        }
        Ok(letters)
    }

    /// Sends the dead letters of event `event_id` to their topic again (every subscriber of
    /// it gets the event once more; they dedupe by its id) and removes them from the dead
    /// letters. Returns how many were replayed (0: no such dead letter).
    ///
    /// # Errors
    /// [`EventError::Broker`].
    pub async fn replay(&self, event_id: &str) -> Result<usize, EventError> {
        let letters: Vec<DeadLetter> = self
            .dead_letters()
            .await?
            .into_iter()
            .filter(|l| l.event_id == event_id)
            .collect();
        let stream = Self::dead_stream(&self.js, &self.settings).await?;
        Self::events_stream(&self.js, &self.settings).await?;
        for letter in &letters {
            let message = stream
                .get_raw_message(letter.sequence)
                .await
                .map_err(broker)?;
            let mut headers = message.headers.clone();
            // A new broker id (the original's may still be in the duplicate window); the
            // event id stays.
            let replay_id = format!("{event_id}.replay.{}", letter.sequence);
            headers.insert(MESSAGE_ID, replay_id.as_str());
            headers.insert(EVENT_ID, event_id);
            self.js
                .publish_with_headers(
                    self.settings.subject(&letter.topic),
                    headers,
                    message.payload,
                )
                .await
                .map_err(broker)?
                .await
                .map_err(broker)?;
            stream
                .delete_message(letter.sequence)
                .await
                .map_err(broker)?;
        }
        Ok(letters.len())
    }
}

#[async_trait]
impl EventBus for NatsBus {
    fn subscribe(&self, topic: &'static str, name: &'static str, subscriber: Arc<dyn Subscriber>) {
        let (js, settings) = (self.js.clone(), self.settings.clone());
        tokio::spawn(async move {
            let mut failures: u32 = 0;
            loop {
                match consume(&js, &settings, topic, name, subscriber.as_ref()).await {
                    Ok(()) => failures = 0,
                    Err(e) => {
                        failures = failures.saturating_add(1);
                        tracing::warn!(subscriber = name, topic, error = %e, "event consumer stopped; reconnecting");
                    }
                }
                let wait = Duration::from_millis(200u64 << failures.min(6));
                tokio::time::sleep(wait).await;
            }
        });
    }

    fn watch(&self, topic: &'static str, watcher: Arc<dyn Subscriber>) {
        let (js, settings) = (self.js.clone(), self.settings.clone());
        tokio::spawn(async move {
            let mut from = consumer::DeliverPolicy::ByStartTime {
                start_time: async_nats::datetime::now(),
            };
            let mut failures: u32 = 0;
            loop {
                match watch(&js, &settings, topic, watcher.as_ref(), &mut from).await {
                    Ok(()) => failures = 0,
                    Err(e) => {
                        failures = failures.saturating_add(1);
                        tracing::warn!(topic, error = %e, "event watch stopped; reconnecting");
                    }
                }
                let wait = Duration::from_millis(200u64 << failures.min(6));
                tokio::time::sleep(wait).await;
            }
        });
    }

    async fn publish(&self, event: &Event) -> Result<(), EventError> {
        use std::sync::atomic::Ordering;
        if !self.stream_ready.load(Ordering::Acquire) {
            Self::events_stream(&self.js, &self.settings).await?;
            self.stream_ready.store(true, Ordering::Release);
        }
        let mut headers = async_nats::HeaderMap::new();
        headers.insert(MESSAGE_ID, event.id.to_string().as_str());
        headers.insert(EVENT_ID, event.id.to_string().as_str());
        headers.insert(REQUEST_ID, event.request_id.as_str());
        headers.insert(CREATED_AT, event.created_at_ms.to_string().as_str());
        if let Some(traceparent) = &event.traceparent {
            headers.insert(TRACEPARENT, traceparent.as_str());
        }
        let ack = self
            .js
            .publish_with_headers(
                self.settings.subject(&event.topic),
                headers,
                event.payload.clone().into(),
            )
            .await
            .map_err(broker)?;
        // Published only once the broker has stored it (a duplicate counts: it has it).
        if let Err(e) = ack.await {
            // The stream may be gone (deleted by an operator): make sure of it next time.
            self.stream_ready.store(false, Ordering::Release);
            return Err(broker(e));
        }
        Ok(())
    }
}

/// Delivers the events of `topic` to `subscriber` until the consumer's stream ends or fails.
async fn consume(
    js: &jetstream::Context,
    settings: &NatsSettings,
    topic: &'static str,
    name: &'static str,
    subscriber: &dyn Subscriber,
) -> Result<(), EventError> {
    let stream = NatsBus::events_stream(js, settings).await?;
    let durable = settings.consumer(name, topic);
    let consumer: consumer::PullConsumer = stream
        .get_or_create_consumer(
            &durable,
            consumer::pull::Config {
                durable_name: Some(durable.clone()),
                filter_subject: settings.subject(topic),
                ack_policy: consumer::AckPolicy::Explicit,
                ack_wait: settings.ack_wait,
                max_deliver: settings.max_deliver,
                ..Default::default()
            },
        )
        .await
        .map_err(broker)?;
    let mut messages = consumer.messages().await.map_err(broker)?;
    while let Some(message) = messages.next().await {
        let message = message.map_err(broker)?;
        deliver(js, settings, topic, name, subscriber, message).await?;
    }
    Ok(())
}

/// Hands the events of `topic` to `watcher` as they come, starting `from` (moved on past
/// each event seen), until the consumer fails.
async fn watch(
    js: &jetstream::Context,
    settings: &NatsSettings,
    topic: &'static str,
    watcher: &dyn Subscriber,
    from: &mut consumer::DeliverPolicy,
) -> Result<(), EventError> {
    let stream = NatsBus::events_stream(js, settings).await?;
    let consumer = stream
        .create_consumer(consumer::pull::OrderedConfig {
            filter_subject: settings.subject(topic),
            deliver_policy: *from,
            ..Default::default()
        })
        .await
        .map_err(broker)?;
    let mut messages = consumer.messages().await.map_err(broker)?;
    while let Some(message) = messages.next().await {
        let message = message.map_err(broker)?;
        if let Ok(info) = message.info() {
            *from = consumer::DeliverPolicy::ByStartSequence {
                start_sequence: info.stream_sequence + 1,
            };
        }
        match decode(topic, &message) {
            Some(event) => {
                if let Err(e) = watcher.handle(&event).await {
                    tracing::warn!(topic, event_id = %event.id, error = %e, "event watcher failed");
                }
            }
            None => tracing::warn!(topic, "a message without an event id; not watched"),
        }
    }
    Ok(())
}

/// The event a message carries: `None` without an event id or with a non-UTF-8 payload.
fn decode(topic: &str, message: &jetstream::Message) -> Option<Event> {
    let header = |key: &str| {
        message
            .headers
            .as_ref()
            .and_then(|h| h.get(key))
            .map(|v| v.as_str().to_owned())
    };
    header(EVENT_ID)
        .or_else(|| header(MESSAGE_ID))
        .and_then(|id| Uuid::parse_str(&id).ok())
        .zip(String::from_utf8(message.payload.to_vec()).ok())
        .map(|(id, payload)| Event {
            id,
            topic: topic.to_owned(),
            payload,
            request_id: header(REQUEST_ID).unwrap_or_default(),
            created_at_ms: header(CREATED_AT)
                .and_then(|v| v.parse().ok())
                .unwrap_or_default(),
            traceparent: header(TRACEPARENT),
        })
}

/// Hands one message to the subscriber and acknowledges, asks for redelivery, or moves it to
/// the dead letters.
async fn deliver(
    js: &jetstream::Context,
    settings: &NatsSettings,
    topic: &'static str,
    name: &'static str,
    subscriber: &dyn Subscriber,
    message: jetstream::Message,
) -> Result<(), EventError> {
    let delivered = message.info().map_or(1, |i| i.delivered);
    let decoded = decode(topic, &message);
    let outcome = match &decoded {
        Some(event) => crate::events::deliver_to(name, subscriber, event).await,
        None => Err(EventError::Payload(
            "a message without an event id or with a non-UTF-8 payload".into(),
        )),
    };
    let event_id = decoded
        .as_ref()
        .map(|e| e.id.to_string())
        .unwrap_or_default();
    match outcome {
        Ok(()) => message.ack().await.map_err(broker)?,
        Err(e) if delivered >= settings.max_deliver || decoded.is_none() => {
            NatsBus::dead_stream(js, settings).await?;
            let mut headers = message.headers.clone().unwrap_or_default();
            headers.insert(DEAD_SUBSCRIBER, name);
            headers.insert(DEAD_ERROR, e.to_string().as_str());
            js.publish_with_headers(
                settings.dead_subject(topic),
                headers,
                message.payload.clone(),
            )
            .await
            .map_err(broker)?
            .await
            .map_err(broker)?;
            message.ack_with(AckKind::Term).await.map_err(broker)?;
            metrics::counter!(crate::metrics::EVENTS_DEAD_LETTERED, "topic" => topic, "subscriber" => name)
                .increment(1);
            tracing::error!(subscriber = name, topic, event_id, delivered, error = %e, "event moved to the dead letters");
        }
        Err(e) => {
            let delay = Duration::from_millis(500u64 << delivered.clamp(1, 7).saturating_sub(1));
            tracing::warn!(subscriber = name, topic, event_id, delivered, error = %e, "event handler failed; redelivery asked");
            message
                .ack_with(AckKind::Nak(Some(delay)))
                .await
                .map_err(broker)?;
        }
    }
    Ok(())
}

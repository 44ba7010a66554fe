//! The NATS JetStream event bus against the real server of this machine kind (127.0.0.1:4222;
//! `scripts/nats.sh` starts it): the broker drops a second publish of one event, a failing
//! handler gets the event again, and one that keeps failing sends it to the dead letters with
//! the error, after exactly `max_deliver` attempts.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use cleave_kernel::events::{Event, EventBus, EventError, Subscriber};
use cleave_kernel::nats::{NatsBus, NatsSettings};
use futures::StreamExt;
use tokio::sync::mpsc;

const NATS: &str = "127.0.0.1:4222";

/// Reports every attempt; fails the first `fail` of them.
struct Flaky {
    fail: usize,
    attempts: mpsc::UnboundedSender<Event>,
    seen: std::sync::Mutex<usize>,
}

#[async_trait]
impl Subscriber for Flaky {
    async fn handle(&self, event: &Event) -> Result<(), EventError> {
        let n = {
            let mut seen = self.seen.lock().expect("lock");
            *seen += 1;
            *seen
        };
        let _ = self.attempts.send(event.clone());
        if n <= self.fail {
            Err(EventError::Payload(format!("failure {n}, as asked")))
        } else {
            Ok(())
        }
    }
}

fn settings(prefix: &str) -> NatsSettings {
    NatsSettings {
        url: format!("nats://{NATS}"),
        prefix: prefix.to_owned(),
        max_deliver: 3,
        ack_wait: Duration::from_secs(30),
        retention: Duration::from_secs(3600),
    }
}

fn event(topic: &str) -> Event {
    Event {
        id: uuid::Uuid::now_v7(),
        topic: topic.to_owned(),
        payload: r#"{"n":1}"#.into(),
        request_id: "nats-test".into(),
        created_at_ms: 1,
        traceparent: Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".into()),
    }
}

fn prefix() -> String {
    format!("k{}", &uuid::Uuid::now_v7().simple().to_string()[20..])
}

/// The next attempt, or a failure after a generous bound (the broker redelivers within a few
/// seconds; this only keeps a broken run from hanging).
async fn next(rx: &mut mpsc::UnboundedReceiver<Event>) -> Event {
    tokio::time::timeout(Duration::from_secs(30), rx.recv())
        .await
        .expect("an attempt within 30 s")
        .expect("the subscriber is alive")
}

/// A bus of its own (a fresh prefix) with a subscriber to `topic` that fails its first
/// `fail` attempts and reports every attempt.
async fn subscribed(
    topic: &'static str,
    fail: usize,
) -> (String, Arc<NatsBus>, mpsc::UnboundedReceiver<Event>) {
    assert!(
        std::net::TcpStream::connect(NATS).is_ok(),
        "NATS is not answering on {NATS}"
    );
    let prefix = prefix();
    let bus = NatsBus::connect(settings(&prefix)).await.expect("bus");
    let (tx, rx) = mpsc::unbounded_channel();
    bus.subscribe(
        topic,
        "probe.subscriber",
        Arc::new(Flaky {
            fail,
            attempts: tx,
            seen: std::sync::Mutex::new(0),
        }),
    );
    (prefix, bus, rx)
}

async fn cleanup(prefix: &str) {
    let js = async_nats::jetstream::new(async_nats::connect(NATS).await.expect("connect"));
    for stream in ["EVENTS", "DEAD_LETTERS"] {
        let _ = js
            .delete_stream(format!("{}_{stream}", prefix.to_uppercase()))
            .await;
    }
}

#[tokio::test]
async fn a_duplicate_publish_is_dropped_and_a_failed_handler_gets_the_event_again() {
    let (prefix, bus, mut rx) = subscribed("probe.flaky", 1).await;
    let sent = event("probe.flaky");
    bus.publish(&sent).await.expect("published");
    bus.publish(&sent)
        .await
        .expect("a duplicate is acknowledged too");
    let first = next(&mut rx).await;
    assert_eq!(first, sent, "the event arrives as it was sent");
    let again = next(&mut rx).await;
    assert_eq!(again.id, sent.id, "redelivered after the failure");
    // Handled now: a later event is the next thing the subscriber sees, not a third copy.
    let later = event("probe.flaky");
    bus.publish(&later).await.expect("published");
    assert_eq!(next(&mut rx).await.id, later.id);
    cleanup(&prefix).await;
}

#[tokio::test]
async fn an_event_that_keeps_failing_goes_to_the_dead_letters_after_max_deliver_attempts_and_replays()
 {
    // Fails exactly max_deliver times: the replay is what succeeds.
    let (prefix, bus, mut rx) = subscribed("probe.broken", 3).await;
    let sent = event("probe.broken");
    bus.publish(&sent).await.expect("published");
    for attempt in 1..=3 {
        assert_eq!(next(&mut rx).await.id, sent.id, "attempt {attempt}");
    }
    // The dead letter: the event's payload, with who failed and why.
    let js = async_nats::jetstream::new(async_nats::connect(NATS).await.expect("connect"));
    let dead = loop {
        // The stream appears when the first dead letter is written.
        if let Ok(stream) = js
            .get_stream(format!("{}_DEAD_LETTERS", prefix.to_uppercase()))
            .await
        {
            break stream;
        }
        tokio::task::yield_now().await;
    };
    let consumer = dead
        .create_consumer(async_nats::jetstream::consumer::pull::Config::default())
        .await
        .expect("consumer");
    let mut messages = consumer.messages().await.expect("messages");
    let letter = tokio::time::timeout(Duration::from_secs(30), messages.next())
        .await
        .expect("a dead letter within 30 s")
        .expect("one")
        .expect("readable");
    let headers = letter.headers.clone().expect("headers");
    assert_eq!(letter.payload.as_ref(), sent.payload.as_bytes());
    assert_eq!(
        headers.get("Nats-Msg-Id").map(|v| v.as_str()),
        Some(sent.id.to_string().as_str())
    );
    assert_eq!(
        headers.get("Cleave-Subscriber").map(|v| v.as_str()),
        Some("probe.subscriber")
    );
    assert!(
        headers
            .get("Cleave-Error")
            .is_some_and(|v| v.as_str().contains("failure 3")),
        "{headers:?}"
    );
    // The operator sees it, and replays it: the subscriber gets it once more, and it leaves
    // the dead letters.
    let letters = bus.dead_letters().await.expect("dead letters");
    assert_eq!(letters.len(), 1, "{letters:?}");
    assert_eq!(letters[0].event_id, sent.id.to_string());
    assert_eq!(letters[0].topic, "probe.broken");
    assert_eq!(letters[0].subscriber, "probe.subscriber");
    assert!(letters[0].error.contains("failure 3"), "{letters:?}");
    assert_eq!(bus.replay(&sent.id.to_string()).await.expect("replay"), 1);
    let replayed = next(&mut rx).await;
    assert_eq!(
        (replayed.id, replayed.payload),
        (sent.id, sent.payload.clone())
    );
    assert!(bus.dead_letters().await.expect("dead letters").is_empty());
    assert_eq!(bus.replay(&sent.id.to_string()).await.expect("replay"), 0);
    // Handled: a later event is what comes next, not another copy.
    let later = event("probe.broken");
    bus.publish(&later).await.expect("published");
    assert_eq!(next(&mut rx).await.id, later.id);
    cleanup(&prefix).await;
}

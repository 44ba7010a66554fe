//! A module with several replicas, against real sockets: calls spread evenly over healthy
//! replicas, a slow replica gets few, a dead replica costs calls nothing (a failure makes it
//! dear, and what it refused goes to another), and with every replica dead their breakers
//! open and calls are refused at once.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use actix_web::{HttpResponse, web};
use cleave_kernel::ApiError;
use cleave_kernel::call::{HttpMethod, Operation, Repeat};
use cleave_kernel::client::{RemoteClient, RemoteSettings, Url};
use cleave_kernel::resilience::BreakerState;
use cleave_kernel::testing::TestServer;

mod support;
use support::{call, op};

/// A read, safe to repeat.
const READ: Operation = op("probe.read", HttpMethod::Get, Repeat::ReadOnly);
/// A write that must not be repeated once sent.
const WRITE: Operation = op("probe.write", HttpMethod::Post, Repeat::Once);

/// A replica answering every request, `delay` late, counting what it served.
struct Replica {
    server: Option<TestServer>,
    url: Url,
    served: Arc<AtomicUsize>,
}

impl Replica {
    fn start(delay: Duration) -> Self {
        let served = Arc::new(AtomicUsize::new(0));
        let count = served.clone();
        let server = TestServer::spawn(move |cfg: &mut web::ServiceConfig| {
            let count = count.clone();
            cfg.route(
                "/thing",
                web::route().to(move || {
                    let count = count.clone();
                    async move {
                        if !delay.is_zero() {
                            tokio::time::sleep(delay).await;
                        }
                        count.fetch_add(1, Ordering::SeqCst);
                        HttpResponse::Ok().json(serde_json::json!({"ok": true}))
                    }
                }),
            );
        });
        let url = server.base_url.clone();
        Self {
            server: Some(server),
            url,
            served,
        }
    }

    fn served(&self) -> usize {
        self.served.load(Ordering::SeqCst)
    }

    async fn stop(&mut self) {
        if let Some(server) = self.server.take() {
            server.stop().await;
        }
    }
}

fn client(replicas: &[&Replica]) -> RemoteClient {
    let urls: Vec<Url> = replicas.iter().map(|r| r.url.clone()).collect();
    RemoteClient::new(
        "probe",
        urls[0].clone(),
        &RemoteSettings {
            replicas: urls,
            ..RemoteSettings::default()
        },
    )
    .expect("client")
}

/// `total` calls of `op`, `concurrency` at a time; the failures.
async fn load(
    remote: &RemoteClient,
    op: &'static Operation,
    total: usize,
    concurrency: usize,
) -> usize {
    let failures = Arc::new(AtomicUsize::new(0));
    let mut workers = Vec::new();
    for w in 0..concurrency {
        let (remote, failures) = (remote.clone(), failures.clone());
        let mine = total / concurrency + usize::from(w < total % concurrency);
        workers.push(tokio::spawn(async move {
            for _ in 0..mine {
                if call(&remote, op).await.is_err() {
                    failures.fetch_add(1, Ordering::SeqCst);
                }
            }
        }));
    }
    for w in workers {
        w.await.expect("worker");
    }
    failures.load(Ordering::SeqCst)
}

#[tokio::test]
async fn three_healthy_replicas_each_get_a_third_of_the_calls() {
    // Each answers in 10 ms, as a replica doing real work would: a loaded host's scheduling
    // (a millisecond or a few, here or on CI) is then the noise it is in production, not
    // ten times an answer's time.
    let replicas: Vec<Replica> = (0..3)
        .map(|_| Replica::start(Duration::from_millis(10)))
        .collect();
    let remote = client(&replicas.iter().collect::<Vec<_>>());
    assert_eq!(load(&remote, &READ, 600, 8).await, 0);
    let shares: Vec<f64> = replicas.iter().map(|r| r.served() as f64 / 600.0).collect();
    for share in &shares {
        assert!((0.23..=0.43).contains(share), "33% ± 10% each: {shares:?}");
    }
    assert_eq!(replicas.iter().map(Replica::served).sum::<usize>(), 600);
}

#[tokio::test]
async fn a_slow_replica_gets_under_a_tenth_of_the_calls() {
    let replicas = [
        Replica::start(Duration::ZERO),
        Replica::start(Duration::from_millis(50)),
        Replica::start(Duration::ZERO),
    ];
    let remote = client(&replicas.iter().collect::<Vec<_>>());
    assert_eq!(load(&remote, &READ, 600, 8).await, 0);
    let slow = replicas[1].served() as f64 / 600.0;
    assert!(
        slow < 0.10,
        "the slow replica served {slow:.2} of the calls"
    );
}

#[tokio::test]
async fn a_dead_replica_costs_calls_nothing() {
    let mut replicas = [
        Replica::start(Duration::ZERO),
        Replica::start(Duration::ZERO),
        Replica::start(Duration::ZERO),
    ];
    let remote = client(&replicas.iter().collect::<Vec<_>>());
    assert_eq!(load(&remote, &READ, 60, 4).await, 0);
    replicas[2].stop().await;
    let before: Vec<usize> = replicas.iter().map(Replica::served).collect();

    // Reads and writes alike: a refused connection was never sent, so it goes to another
    // replica whatever the operation.
    assert_eq!(load(&remote, &READ, 300, 4).await, 0, "reads");
    assert_eq!(load(&remote, &WRITE, 100, 4).await, 0, "writes");
    let served: usize = replicas[..2].iter().map(Replica::served).sum::<usize>()
        - before[..2].iter().sum::<usize>();
    assert_eq!(served, 400, "every call answered by a live replica");

    // The live ones' breakers stayed closed, and so does the module's.
    let states = remote.replicas();
    assert_eq!(states.len(), 3);
    assert_eq!(states[0].1, BreakerState::Closed, "{states:?}");
    assert_eq!(states[1].1, BreakerState::Closed, "{states:?}");
    assert_eq!(remote.breaker(), BreakerState::Closed);
}

#[tokio::test]
async fn every_replica_dead_is_unavailable_at_once_once_their_breakers_open() {
    let mut replicas = [
        Replica::start(Duration::ZERO),
        Replica::start(Duration::ZERO),
    ];
    let remote = client(&replicas.iter().collect::<Vec<_>>());
    for r in &mut replicas {
        r.stop().await;
    }
    let mut outcomes = Vec::new();
    while remote.breaker() != BreakerState::Open && outcomes.len() < 40 {
        outcomes.push(call(&remote, &READ).await.is_ok());
    }
    assert!(outcomes.iter().all(|ok| !ok), "{outcomes:?}");
    assert_eq!(remote.breaker(), BreakerState::Open, "{outcomes:?}");
    let refused = call(&remote, &READ).await.expect_err("open");
    assert_eq!(refused.status_u16(), 503, "{refused:?}");
}

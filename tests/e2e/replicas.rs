//! Replicas with real processes: three catalog processes behind one front
//! (`modules.catalog.urls`), the front's calls spread over them, one killed with kill -9
//! under a read load without one failed request, and all three restarted one after another
//! (SIGTERM, drain, start again) under load without one failed request.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::helpers::{client, free_ports, sqlite_in};
use crate::process::Cleave;

const READ: &str = "/api/catalog/v1/products/OLJCESPC7Z";

/// Product reads a catalog process served, from its /metrics.
async fn reads_served(catalog: &Cleave) -> u64 {
    let text = client()
        .get(format!("{}/metrics", catalog.base()))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    text.lines()
        .filter(|l| {
            l.starts_with("cleave_http_request_duration_seconds_count")
                && l.contains("/api/catalog/v1/products/{id}")
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

/// `total` reads through `front`, `concurrency` at a time, counting each answered; the
/// failures.
async fn reads(
    front: String,
    total: usize,
    concurrency: usize,
    done: Arc<AtomicUsize>,
) -> Vec<String> {
    let mut workers = Vec::new();
    for w in 0..concurrency {
        let (front, done) = (front.clone(), done.clone());
        let mine = total / concurrency + usize::from(w < total % concurrency);
        workers.push(tokio::spawn(async move {
            let mut failures = Vec::new();
            for _ in 0..mine {
                match client().get(format!("{front}{READ}")).send().await {
                    Ok(res) if res.status() == 200 => {}
                    Ok(res) => failures.push(format!(
                        "{} {}",
                        res.status(),
                        res.text().await.unwrap_or_default()
                    )),
                    Err(e) => failures.push(e.to_string()),
                }
                done.fetch_add(1, Ordering::SeqCst);
            }
            failures
        }));
    }
    let mut failures = Vec::new();
    for w in workers {
        failures.extend(w.await.expect("worker"));
    }
    failures
}

/// A front hosting every module but the catalog, which it calls at three replicas (each
/// with its own database in `dir`).
struct Three {
    front: Cleave,
    replicas: Vec<Cleave>,
    ports: Vec<u16>,
    dir: tempfile::TempDir,
}

impl Three {
    fn start() -> Self {
        let dir = tempfile::tempdir().expect("dir");
        let ports = free_ports(3);
        let urls: Vec<String> = ports
            .iter()
            .map(|p| format!("\"http://127.0.0.1:{p}\""))
            .collect();
        let others = cleave::modules::names()
            .into_iter()
            .filter(|m| *m != "catalog")
            .collect::<Vec<_>>()
            .join(",");
        let front = Cleave::serve(
            &["--modules", &others],
            &[
                ("CLEAVE_DATABASE__URL", sqlite_in(dir.path(), "front.db")),
                (
                    "CLEAVE_MODULES__CATALOG__URLS",
                    format!("[{}]", urls.join(",")),
                ),
            ],
        );
        let mut me = Self {
            front,
            replicas: Vec::new(),
            ports,
            dir,
        };
        for i in 0..3 {
            let replica = me.replica(i);
            me.replicas.push(replica);
        }
        me
    }

    /// Replica `i` started (again) on its port and database, draining for a second when it
    /// is stopped.
    fn replica(&self, i: usize) -> Cleave {
        Cleave::serve(
            &["--modules", "catalog"],
            &[
                (
                    "CLEAVE_SERVER__LISTEN",
                    format!("127.0.0.1:{}", self.ports[i]),
                ),
                (
                    "CLEAVE_DATABASE__URL",
                    sqlite_in(self.dir.path(), &format!("catalog-{i}.db")),
                ),
                ("CLEAVE_MODULES__IDENTITY__URL", self.front.base()),
                ("CLEAVE_SERVER__DRAIN_SECS", "1".into()),
            ],
        )
    }

    /// Reads through the front, `total`, 6 at a time, in a task; with what counts them.
    fn load(&self, total: usize) -> (tokio::task::JoinHandle<Vec<String>>, Arc<AtomicUsize>) {
        let done = Arc::new(AtomicUsize::new(0));
        (
            tokio::spawn(reads(self.front.base(), total, 6, done.clone())),
            done,
        )
    }
}

/// Yields until `done` counts `n`.
async fn until(done: &AtomicUsize, n: usize) {
    while done.load(Ordering::SeqCst) < n {
        tokio::task::yield_now().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_catalog_replicas_share_the_calls_and_one_killed_costs_no_read() {
    let mut three = Three::start();

    // Healthy: a third each (± 10%).
    let failures = reads(three.front.base(), 300, 6, Arc::new(AtomicUsize::new(0))).await;
    assert!(failures.is_empty(), "{failures:?}");
    let mut served = Vec::new();
    for r in &three.replicas {
        served.push(reads_served(r).await);
    }
    assert_eq!(served.iter().sum::<u64>(), 300, "{served:?}");
    for s in &served {
        assert!((70..=130).contains(s), "33% ± 10% of 300 each: {served:?}");
    }
    // The operator's view of the front: a breaker per replica, each closed.
    let admin = crate::helpers::issued_token(
        &sqlite_in(three.dir.path(), "front.db"),
        "replicas-admin",
        "admin",
    );
    let report = crate::helpers::call_as(
        &three.front.base(),
        reqwest::Method::GET,
        "/_cleave/process.json",
        None,
        Some(&admin),
    )
    .await;
    let catalog_breakers: Vec<(&String, &serde_json::Value)> = report.body["breakers"]
        .as_object()
        .expect("breakers")
        .iter()
        .filter(|(name, _)| name.starts_with("catalog "))
        .collect();
    assert_eq!(catalog_breakers.len(), 3, "{report:?}");
    assert!(
        catalog_breakers.iter().all(|(_, state)| *state == "closed"),
        "{report:?}"
    );

    // One replica killed with kill -9 while reads go on: none fails.
    let (load, done) = three.load(400);
    until(&done, 100).await;
    three.replicas[2].kill();
    let failures = load.await.expect("load");
    assert!(
        failures.is_empty(),
        "reads failed after kill -9 of a replica: {failures:?}"
    );
}

// Two threads: the test waits for processes (blocking) while the load goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarting_three_replicas_one_after_another_fails_no_request() {
    let mut three = Three::start();
    let (load, done) = three.load(1200);
    for i in 0..3 {
        until(&done, 100 + 300 * i).await;
        three.replicas[i].signal("TERM");
        let status = three.replicas[i].wait();
        assert!(status.success(), "replica {i} stopped with {status:?}");
        three.replicas[i] = three.replica(i);
    }
    let failures = load.await.expect("load");
    assert!(
        failures.is_empty(),
        "requests failed during the rolling restart: {failures:?}"
    );
    // Every replica serves again after its restart.
    let failures = reads(three.front.base(), 150, 6, Arc::new(AtomicUsize::new(0))).await;
    assert!(failures.is_empty(), "{failures:?}");
    for (i, r) in three.replicas.iter().enumerate() {
        assert!(
            reads_served(r).await > 0,
            "replica {i} serves after its restart"
        );
    }
}

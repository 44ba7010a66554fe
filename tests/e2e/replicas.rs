//! Replicas with real processes: three catalog processes behind one front, listed in
//! `modules.catalog.urls` or registered in a real etcd (`discovery.kind = "etcd"`): the
//! front's calls spread over them, one killed with kill -9 under a read load without one
//! failed request, all three restarted one after another (SIGTERM, deregistration, drain,
//! start again) under load without one failed request, and etcd gone: the last replicas
//! found still called, readiness saying so.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::helpers::{client, free_port, free_ports, sqlite_in};
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

/// An etcd server of its own (Debian's etcd-server; scripts/test.sh installs it) on free
/// ports, its data in a temporary directory; killed when dropped.
struct Etcd {
    child: Child,
    /// Its client url.
    url: String,
    _dir: tempfile::TempDir,
}

impl Etcd {
    /// Starts it, returning once it serves clients.
    fn start() -> Self {
        let dir = tempfile::tempdir().expect("dir");
        let ports = free_ports(2);
        let url = format!("http://127.0.0.1:{}", ports[0]);
        let peer = format!("http://127.0.0.1:{}", ports[1]);
        let mut child = Command::new("etcd")
            .args(["--name", "test", "--data-dir"])
            .arg(dir.path().join("data"))
            .args([
                "--listen-client-urls",
                &url,
                "--advertise-client-urls",
                &url,
            ])
            .args(["--listen-peer-urls", &peer])
            .args(["--initial-advertise-peer-urls", &peer])
            .args(["--initial-cluster", &format!("test={peer}")])
            .args(["--logger", "zap", "--log-outputs", "stderr"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("etcd is not installed (scripts/test.sh installs it): {e}"));
        let mut lines = BufReader::new(child.stderr.take().expect("stderr")).lines();
        let mut said = Vec::new();
        loop {
            match lines.next() {
                Some(Ok(line)) if line.contains("serving client traffic") => break,
                Some(Ok(line)) => said.push(line),
                _ => panic!("etcd exited before it was ready: {said:?}"),
            }
        }
        // Keep draining its output so that it never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines.by_ref() {});
        Self {
            child,
            url,
            _dir: dir,
        }
    }

    /// How many keys start with `prefix` (asked through etcd's JSON gateway).
    async fn count(&self, prefix: &str) -> u64 {
        use base64::Engine;
        let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
        let mut end = prefix.as_bytes().to_vec();
        if let Some(last) = end.last_mut() {
            *last += 1;
        }
        let answer: serde_json::Value = client()
            .post(format!("{}/v3/kv/range", self.url))
            .json(&serde_json::json!({
                "key": b64(prefix.as_bytes()),
                "range_end": b64(&end),
                "count_only": true,
            }))
            .send()
            .await
            .expect("etcd answers")
            .json()
            .await
            .expect("json");
        // A zero count is left out of the answer; 64-bit numbers are strings.
        answer["count"]
            .as_str()
            .map_or(0, |n| n.parse().expect("a count"))
    }

    /// Stops it at once.
    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The registry keys of the catalog's replicas in the tests' deployment.
const CATALOG_KEYS: &str = "/test/modules/catalog/";

/// How the front finds the catalog replicas.
enum Found {
    /// `modules.catalog.urls`: each replica restarted on its port.
    Urls,
    /// `discovery.kind = "etcd"`: each registers itself (a replica restarted comes back on
    /// another port). Leases outlive a process by 30 s: an entry gone sooner was taken out.
    Etcd(Etcd),
}

impl Found {
    /// The discovery settings of every process.
    fn env(&self) -> Vec<(&'static str, String)> {
        match self {
            Self::Urls => Vec::new(),
            Self::Etcd(etcd) => vec![
                ("CLEAVE_DISCOVERY__KIND", "etcd".into()),
                (
                    "CLEAVE_DISCOVERY__ETCD_ENDPOINTS",
                    format!("[\"{}\"]", etcd.url),
                ),
                ("CLEAVE_DISCOVERY__ETCD_PREFIX", "/test".into()),
                ("CLEAVE_DISCOVERY__LEASE_TTL_SECS", "30".into()),
            ],
        }
    }
}

/// A front hosting every module but the catalog, which it calls at three replicas (each
/// with its own database in `dir`).
struct Three {
    front: Cleave,
    replicas: Vec<Cleave>,
    ports: Vec<u16>,
    dir: tempfile::TempDir,
    found: Found,
}

impl Three {
    fn start(found: Found) -> Self {
        let dir = tempfile::tempdir().expect("dir");
        let ports = free_ports(3);
        let others = cleave::modules::names()
            .into_iter()
            .filter(|m| *m != "catalog")
            .collect::<Vec<_>>()
            .join(",");
        let mut env = found.env();
        env.push(("CLEAVE_DATABASE__URL", sqlite_in(dir.path(), "front.db")));
        if let Found::Urls = found {
            let urls: Vec<String> = ports
                .iter()
                .map(|p| format!("\"http://127.0.0.1:{p}\""))
                .collect();
            env.push((
                "CLEAVE_MODULES__CATALOG__URLS",
                format!("[{}]", urls.join(",")),
            ));
        }
        let front = Cleave::serve(&["--modules", &others], &env);
        let mut me = Self {
            front,
            replicas: Vec::new(),
            ports,
            dir,
            found,
        };
        for i in 0..3 {
            let replica = me.replica(i);
            me.replicas.push(replica);
        }
        if let Found::Etcd(_) = me.found {
            // Before any call: the front has heard of all three.
            me.front.find_log(|v| lists_replicas(v, 3));
        }
        me
    }

    /// Replica `i` started (again) on its port (with etcd, a new one) and database, draining
    /// for a second when it is stopped; with etcd, once it registered.
    fn replica(&mut self, i: usize) -> Cleave {
        if let Found::Etcd(_) = self.found {
            self.ports[i] = free_port();
        }
        let mut env = self.found.env();
        env.extend([
            (
                "CLEAVE_SERVER__LISTEN",
                format!("127.0.0.1:{}", self.ports[i]),
            ),
            (
                "CLEAVE_DATABASE__URL",
                sqlite_in(self.dir.path(), &format!("catalog-{i}.db")),
            ),
            ("CLEAVE_SERVER__DRAIN_SECS", "1".into()),
        ]);
        if let Found::Urls = self.found {
            env.push(("CLEAVE_MODULES__IDENTITY__URL", self.front.base()));
        }
        let mut replica = Cleave::serve(&["--modules", "catalog"], &env);
        if let Found::Etcd(_) = self.found {
            replica.find_log(|v| v["message"] == "registered in etcd");
        }
        replica
    }

    /// Reads through the front, `total`, 6 at a time, in a task; with what counts them.
    fn load(&self, total: usize) -> (tokio::task::JoinHandle<Vec<String>>, Arc<AtomicUsize>) {
        let done = Arc::new(AtomicUsize::new(0));
        (
            tokio::spawn(reads(self.front.base(), total, 6, done.clone())),
            done,
        )
    }

    /// The front's catalog breakers, from its operator report: one per replica.
    async fn catalog_breakers(&self) -> Vec<(String, serde_json::Value)> {
        let admin = crate::helpers::issued_token(
            &sqlite_in(self.dir.path(), "front.db"),
            "replicas-admin",
            "admin",
        );
        let report = crate::helpers::call_as(
            &self.front.base(),
            reqwest::Method::GET,
            "/_cleave/process.json",
            None,
            Some(&admin),
        )
        .await;
        report.body["breakers"]
            .as_object()
            .expect("breakers")
            .iter()
            .filter(|(name, _)| name.starts_with("catalog "))
            .map(|(name, state)| (name.clone(), state.clone()))
            .collect()
    }
}

/// Whether `line` is the front's log of the registry listing `n` catalog replicas.
fn lists_replicas(line: &serde_json::Value, n: usize) -> bool {
    line["message"] == "etcd lists replicas"
        && line["module"] == "catalog"
        && line["replicas"]
            .as_str()
            .is_some_and(|r| r.split(", ").filter(|u| !u.is_empty()).count() == n)
}

/// Yields until `done` counts `n`.
async fn until(done: &AtomicUsize, n: usize) {
    while done.load(Ordering::SeqCst) < n {
        tokio::task::yield_now().await;
    }
}

/// Healthy, the replicas share 600 reads (each at least half and at most one and a half of
/// its third: these are real processes answering in under a millisecond on a host that runs
/// other tests beside them, where a scheduler's delay weighs as much as an answer; the even
/// split itself is checked with replicas of steady latency in the kernel's replica tests) and
/// the front shows a closed breaker per replica; one killed with kill -9 while reads go on:
/// none fails.
async fn share_and_kill(found: Found) {
    let mut three = Three::start(found);

    // Steady state: each replica's connections made and its latency known before the count.
    let failures = reads(three.front.base(), 60, 6, Arc::new(AtomicUsize::new(0))).await;
    assert!(failures.is_empty(), "{failures:?}");
    let mut before = Vec::new();
    for r in &three.replicas {
        before.push(reads_served(r).await);
    }
    let failures = reads(three.front.base(), 600, 6, Arc::new(AtomicUsize::new(0))).await;
    assert!(failures.is_empty(), "{failures:?}");
    let mut served = Vec::new();
    for (r, earlier) in three.replicas.iter().zip(&before) {
        served.push(reads_served(r).await - earlier);
    }
    assert_eq!(served.iter().sum::<u64>(), 600, "{served:?}");
    for s in &served {
        assert!(
            (100..=300).contains(s),
            "a sixth to a half of 600 each: {served:?}"
        );
    }
    let breakers = three.catalog_breakers().await;
    assert_eq!(breakers.len(), 3, "{breakers:?}");
    assert!(
        breakers.iter().all(|(_, state)| *state == "closed"),
        "{breakers:?}"
    );

    let (load, done) = three.load(400);
    until(&done, 100).await;
    three.replicas[2].kill();
    let failures = load.await.expect("load");
    assert!(
        failures.is_empty(),
        "reads failed after kill -9 of a replica: {failures:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_catalog_replicas_share_the_calls_and_one_killed_costs_no_read() {
    share_and_kill(Found::Urls).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_catalog_replicas_found_in_etcd_share_the_calls_and_one_killed_costs_no_read() {
    share_and_kill(Found::Etcd(Etcd::start())).await;
}

/// Under a steady read load, each replica in turn: SIGTERM (with etcd: its entry gone from
/// the registry by the time it exits, long before its lease would run out), exit 0, started
/// again. No read fails, and every replica serves after its restart.
async fn rolling_restart(found: Found) {
    let mut three = Three::start(found);
    let (load, done) = three.load(1200);
    for i in 0..3 {
        until(&done, 100 + 300 * i).await;
        three.replicas[i].signal("TERM");
        let status = three.replicas[i].wait();
        assert!(status.success(), "replica {i} stopped with {status:?}");
        if let Found::Etcd(etcd) = &three.found {
            assert_eq!(
                etcd.count(CATALOG_KEYS).await,
                2,
                "replica {i} deregistered as it began to stop"
            );
        }
        three.replicas[i] = three.replica(i);
    }
    let failures = load.await.expect("load");
    assert!(
        failures.is_empty(),
        "requests failed during the rolling restart: {failures:?}"
    );
    if let Found::Etcd(_) = three.found {
        // The front calls the three new replicas, and no longer the old ones.
        three.front.find_log(|v| {
            lists_replicas(v, 3)
                && three.ports.iter().all(|p| {
                    v["replicas"]
                        .as_str()
                        .is_some_and(|r| r.contains(&format!(":{p}/")))
                })
        });
    }
    let failures = reads(three.front.base(), 150, 6, Arc::new(AtomicUsize::new(0))).await;
    assert!(failures.is_empty(), "{failures:?}");
    for (i, r) in three.replicas.iter().enumerate() {
        assert!(
            reads_served(r).await > 0,
            "replica {i} serves after its restart"
        );
    }
}

// Two threads: the test waits for processes (blocking) while the load goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarting_three_replicas_one_after_another_fails_no_request() {
    rolling_restart(Found::Urls).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarting_three_replicas_registered_in_etcd_fails_no_request() {
    rolling_restart(Found::Etcd(Etcd::start())).await;
}

/// etcd stops: the front keeps calling the replicas it last found, and its readiness stays
/// ready but says the registry is unreachable.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callers_keep_the_last_replicas_when_etcd_is_gone_and_readiness_says_so() {
    let mut three = Three::start(Found::Etcd(Etcd::start()));
    if let Found::Etcd(etcd) = &mut three.found {
        etcd.kill();
    }
    // The front notices (its watch breaks), then reads still go to the three.
    three
        .front
        .wait_for_log(|v| v["message"] == "etcd watch lost; calls go to the last replicas found");
    let failures = reads(three.front.base(), 60, 6, Arc::new(AtomicUsize::new(0))).await;
    assert!(failures.is_empty(), "{failures:?}");
    let ready = client()
        .get(format!("{}/health/ready", three.front.base()))
        .send()
        .await
        .expect("ready");
    assert_eq!(ready.status(), 200);
    let body: serde_json::Value = ready.json().await.expect("json");
    let said = body["checks"]["discovery:etcd"]
        .as_str()
        .unwrap_or_default();
    assert!(
        said.starts_with("degraded: etcd at") && said.contains("catalog 3"),
        "{body}"
    );
    assert_eq!(three.catalog_breakers().await.len(), 3);
}

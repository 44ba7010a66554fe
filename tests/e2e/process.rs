//! The real binary as OS processes: start-up on port 0 read from its JSON log, SIGTERM drain,
//! request ids in logs, and data that survives a crash.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::time::Duration;

use serde_json::Value;

use crate::helpers::get;

/// Longest to wait for a log line before failing the test (a bound, not a synchronisation).
const LOG_WAIT: Duration = Duration::from_secs(60);

/// A `cleave` OS process.
pub(crate) struct Cleave {
    child: Child,
    lines: Receiver<String>,
    seen: Vec<String>,
    addr: String,
    _dir: tempfile::TempDir,
}

impl Cleave {
    /// `cleave serve ARGS` with `env`, listening on a random port, logging JSON; returns once
    /// it logged that it listens.
    pub(crate) fn serve(args: &[&str], env: &[(&str, String)]) -> Self {
        let dir = tempfile::tempdir().expect("work dir");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_cleave"));
        cmd.arg("serve")
            .args(args)
            .current_dir(dir.path())
            .env("CLEAVE_SERVER__LISTEN", "127.0.0.1:0")
            .env("CLEAVE_SERVER__WORKERS", "1")
            .env("CLEAVE_LOG__FORMAT", "json")
            .env("CLEAVE_LOG__LEVEL", "info")
            .env_remove("RUST_LOG")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        // The machine's configuration stays out, but for where its NATS server is (a CI
        // service container sets it).
        for (key, _) in std::env::vars() {
            if key.starts_with("CLEAVE_")
                && key != "CLEAVE_EVENTS__NATS_URL"
                && !env.iter().any(|(k, _)| *k == key)
            {
                cmd.env_remove(&key);
            }
        }
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn cleave");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut me = Self {
            child,
            lines: rx,
            seen: Vec::new(),
            addr: String::new(),
            _dir: dir,
        };
        let listening = me.wait_for_log(|v| v["message"] == "listening");
        me.addr = listening["addr"]
            .as_str()
            .expect("addr in the listening line")
            .to_owned();
        me
    }

    /// `http://<addr>`.
    pub(crate) fn base(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// `https://<addr>`, for a process serving TLS.
    pub(crate) fn https_base(&self) -> String {
        format!("https://{}", self.addr)
    }

    /// Reads log lines until one matches (every line must be JSON).
    pub(crate) fn wait_for_log(&mut self, pred: impl Fn(&Value) -> bool) -> Value {
        loop {
            let line = self
                .lines
                .recv_timeout(LOG_WAIT)
                .unwrap_or_else(|_| panic!("no such log line; seen:\n{}", self.seen.join("\n")));
            self.seen.push(line.clone());
            let v: Value = serde_json::from_str(&line)
                .unwrap_or_else(|e| panic!("log line is not JSON ({e}): {line}"));
            if pred(&v) {
                return v;
            }
        }
    }

    /// The first line since the process started that matches, whether it was logged before
    /// `serve` returned (during start-up) or is still to come.
    pub(crate) fn find_log(&mut self, pred: impl Fn(&Value) -> bool) -> Value {
        let earlier = self
            .seen
            .iter()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .find(|v| pred(v));
        match earlier {
            Some(v) => v,
            None => self.wait_for_log(pred),
        }
    }

    /// Every line logged so far (waiting for none).
    pub(crate) fn logged(&mut self) -> Vec<String> {
        while let Ok(line) = self.lines.try_recv() {
            self.seen.push(line);
        }
        self.seen.clone()
    }

    /// Sends a signal by name (TERM, KILL).
    pub(crate) fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.child.id().to_string())
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{name} failed");
    }

    /// Kills the process at once (SIGKILL) and reaps it.
    pub(crate) fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Waits for the process to exit.
    pub(crate) fn wait(&mut self) -> std::process::ExitStatus {
        self.child.wait().expect("wait")
    }
}

impl Drop for Cleave {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn sigterm_lets_an_in_flight_request_finish_then_exits_cleanly() {
    let db = tempfile::tempdir().expect("dir");
    let url = format!("sqlite://{}?mode=rwc", db.path().join("c.db").display());
    let mut app = Cleave::serve(&[], &[("CLEAVE_DATABASE__URL", url)]);
    let (user, token) = crate::helpers::guest(&app.base()).await;
    let body = r#"{"product_id":"OLJCESPC7Z","quantity":3}"#;
    let (head, tail) = body.split_at(10);

    // Start a request and leave its body half sent: it is in flight.
    let mut stream = TcpStream::connect(&app.addr).expect("connect");
    write!(
        stream,
        "POST /api/cart/v1/carts/{user}/items HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{head}",
        body.len()
    )
    .expect("send head");
    stream.flush().expect("flush");
    // Make sure the server has accepted the request before the signal: it logs nothing yet,
    // so use a second, complete request on another connection as a barrier.
    assert_eq!(get(&app.base(), "/health/live").await.status, 200);

    app.signal("TERM");
    app.wait_for_log(|v| v["message"] == "stopping: draining in-flight requests");

    stream
        .write_all(tail.as_bytes())
        .expect("send the rest after SIGTERM");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("read response");
    assert!(
        response.starts_with("HTTP/1.1 200"),
        "in-flight request finished: {response}"
    );
    assert!(response.contains(r#""quantity":3"#), "{response}");
    let status = app.wait();
    assert!(status.success(), "exit status after drain: {status}");
}

#[tokio::test]
async fn every_request_log_line_carries_its_request_id() {
    let db = tempfile::tempdir().expect("dir");
    let url = format!("sqlite://{}?mode=rwc", db.path().join("c.db").display());
    let mut app = Cleave::serve(
        &[],
        &[
            ("CLEAVE_DATABASE__URL", url),
            ("CLEAVE_LOG__ACCESS", "true".into()),
        ],
    );
    for (id, path, status) in [
        ("log-trace-77", "/api/catalog/v1/products/NOPE", 404),
        ("log-trace-78", "/api/catalog/v1/products/OLJCESPC7Z", 200),
    ] {
        // The caller's trace goes on: the line names it, and the request's own span.
        let trace_id = format!("4bf92f3577b34da6a3ce929d0e0e47{}", &id[id.len() - 2..]);
        let res = crate::helpers::client()
            .get(format!("{}{path}", app.base()))
            .header("x-request-id", id)
            .header("traceparent", format!("00-{trace_id}-00f067aa0ba902b7-00"))
            .send()
            .await
            .expect("send");
        assert_eq!(res.status(), status);
        let line =
            app.wait_for_log(|v| v["message"] == "request completed" && v["request_id"] == id);
        assert_eq!(line["status"], status);
        assert_eq!(line["path"], path);
        assert_eq!(line["method"], "GET");
        assert_eq!(line["request_id"], id);
        assert_eq!(line["trace_id"], trace_id.as_str());
        let span_id = line["span_id"].as_str().expect("span_id");
        assert!(
            span_id.len() == 16 && span_id != "00f067aa0ba902b7",
            "the request's own span: {line}"
        );
        // Nothing is exported: the request has no span to repeat these ids in (the enclosing
        // spans a line shows are asserted on an event delivery, in events.rs).
        assert!(line["spans"].is_null(), "no request span: {line}");
    }
}

#[tokio::test]
async fn by_default_only_failed_requests_get_an_access_line() {
    let db = tempfile::tempdir().expect("dir");
    let url = format!("sqlite://{}?mode=rwc", db.path().join("c.db").display());
    let mut app = Cleave::serve(&[], &[("CLEAVE_DATABASE__URL", url)]);
    let base = app.base();
    assert_eq!(
        get(&base, "/api/catalog/v1/products/OLJCESPC7Z")
            .await
            .status,
        200
    );
    assert_eq!(
        get(&base, "/api/catalog/v1/products/NOPE").await.status,
        404
    );
    // Lines come in order: the first access line must be the 404's, not the 200's.
    let line = app.wait_for_log(|v| v["message"] == "request completed");
    assert_eq!(line["status"], 404, "{line}");
}

#[tokio::test]
async fn a_cart_survives_a_crash_and_restart() {
    let db = tempfile::tempdir().expect("dir");
    let url = format!("sqlite://{}?mode=rwc", db.path().join("c.db").display());
    let mut first = Cleave::serve(&[], &[("CLEAVE_DATABASE__URL", url.clone())]);
    let (user, token) = crate::helpers::guest(&first.base()).await;
    let added = crate::helpers::call_as(
        &first.base(),
        reqwest::Method::POST,
        &format!("/api/cart/v1/carts/{user}/items"),
        Some(r#"{"product_id":"L9ECAV7KIM","quantity":2}"#),
        Some(&token),
    )
    .await;
    assert_eq!(added.status, 200);
    first.kill(); // SIGKILL: no shutdown, no flush beyond what was committed.
    let second = Cleave::serve(&[], &[("CLEAVE_DATABASE__URL", url)]);
    // The guest's token still verifies: the signing keys survived too.
    assert_eq!(
        crate::helpers::cart_items(&second.base(), &user, &token).await,
        serde_json::json!([{"product_id": "L9ECAV7KIM", "quantity": 2}])
    );
}

#[tokio::test]
async fn start_up_says_once_what_runs_where_and_a_503_page_logs_its_cause() {
    let db = tempfile::tempdir().expect("dir");
    let url = format!("sqlite://{}?mode=rwc", db.path().join("c.db").display());
    // Everything but the catalog, which is at a port nobody listens on.
    let mut app = Cleave::serve(
        &[
            "--modules",
            "identity,currency,cart,recommendation,shipping,payment,ads,email,checkout,storefront",
        ],
        &[
            ("CLEAVE_DATABASE__URL", url),
            ("CLEAVE_MODULES__CATALOG__URL", "http://127.0.0.1:9".into()),
        ],
    );
    let summary = app.find_log(|v| v["message"] == "listening");
    assert!(
        summary["hosted"]
            .as_str()
            .is_some_and(|h| h.contains("storefront") && !h.contains("catalog")),
        "{summary}"
    );
    assert_eq!(
        summary["remote"], "catalog=http://127.0.0.1:9/",
        "{summary}"
    );
    assert!(
        summary["version"].as_str().is_some_and(|v| v.contains('(')),
        "{summary}"
    );
    assert!(
        summary["database"]
            .as_str()
            .is_some_and(|d| d.starts_with("sqlite://"))
    );
    let started = app.logged();
    assert!(
        !started
            .iter()
            .any(|l| l.contains("sea_orm_migration") || l.contains("\"hosting module\"")),
        "start-up repeats itself: {started:#?}"
    );
    assert_eq!(
        started.iter().filter(|l| l.contains("\"listening")).count(),
        1,
        "{started:#?}"
    );

    let res = crate::helpers::client()
        .get(format!("{}/", app.base()))
        .header("accept", "text/html")
        .header("x-request-id", "page-503-cause")
        .send()
        .await
        .expect("send");
    assert_eq!(res.status(), 503);
    let line = app.wait_for_log(|v| {
        v["message"] == "page unavailable (503)" && v["request_id"] == "page-503-cause"
    });
    assert_eq!(line["level"], "WARN");
    assert!(
        line["cause"]
            .as_str()
            .is_some_and(|c| c.contains("catalog")),
        "{line}"
    );
}

/// `cleave health [--ready]` with `env`, the environment of a served process, as a
/// container's probe runs it.
fn health(env: &[(&str, String)], ready: bool) -> std::process::Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_cleave"));
    cmd.arg("health");
    if ready {
        cmd.arg("--ready");
    }
    for (key, _) in std::env::vars() {
        if key.starts_with("CLEAVE_") {
            cmd.env_remove(key);
        }
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("run cleave health")
}

#[tokio::test]
async fn cleave_health_asks_its_own_process_whether_it_is_alive_and_ready() {
    let pki = crate::helpers::Pki::shared_for(&[vec!["recommendation"]]);
    let dir = tempfile::tempdir().expect("dir");
    let db = crate::helpers::sqlite_in(dir.path(), "r.db");
    let port = crate::helpers::free_port();
    // Recommendation alone, on every address (the probe goes to loopback), over HTTPS; the
    // catalog it requires is at a port nobody listens on.
    let mut env = crate::helpers::tls_env(&pki, &db, Some("http://127.0.0.1:9"));
    env.push(("CLEAVE_SERVER__LISTEN", format!("0.0.0.0:{port}")));
    env.push(("CLEAVE_MODULES__CATALOG__URL", "http://127.0.0.1:9".into()));
    let mut app = Cleave::serve(&["--modules", "recommendation"], &env);

    let live = health(&env, false);
    let said = String::from_utf8_lossy(&live.stdout);
    assert!(
        live.status.success(),
        "{said} {}",
        String::from_utf8_lossy(&live.stderr)
    );
    assert!(
        said.contains(&format!("https://127.0.0.1:{port}/health/live: 200")),
        "{said}"
    );
    let ready = health(&env, true);
    let why = String::from_utf8_lossy(&ready.stderr);
    assert_eq!(ready.status.code(), Some(1), "{why}");
    assert!(why.contains("/health/ready: 503"), "{why}");
    assert!(
        why.contains("catalog"),
        "the probe says what is not ready: {why}"
    );

    app.kill();
    let gone = health(&env, false);
    let why = String::from_utf8_lossy(&gone.stderr);
    assert_eq!(gone.status.code(), Some(1), "{why}");
    assert!(why.contains("no answer"), "{why}");
}

#[tokio::test]
async fn a_stopping_process_is_not_ready_but_serves_until_its_drain_ends() {
    let dir = tempfile::tempdir().expect("dir");
    let db = crate::helpers::sqlite_in(dir.path(), "d.db");
    // A drain longer than the test: the second signal ends it.
    let mut app = Cleave::serve(
        &[],
        &[
            ("CLEAVE_DATABASE__URL", db),
            ("CLEAVE_SERVER__DRAIN_SECS", "600".into()),
        ],
    );
    assert_eq!(get(&app.base(), "/health/ready").await.status, 200);

    app.signal("TERM");
    app.wait_for_log(|v| {
        v["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("shutdown signal received; not ready"))
    });
    let ready = get(&app.base(), "/health/ready").await;
    assert_eq!(ready.status, 503, "{ready:?}");
    assert!(ready.body.to_string().contains("draining"), "{ready:?}");
    // Still serving what comes meanwhile.
    let read = get(&app.base(), "/api/catalog/v1/products/OLJCESPC7Z").await;
    assert_eq!(read.status, 200, "{read:?}");

    app.signal("TERM");
    let status = app.wait();
    assert!(status.success(), "{status:?}");
    assert!(
        app.logged()
            .iter()
            .any(|l| l.contains("second signal; stopping now")),
        "the second signal ended the drain"
    );
}

//! Observability with real processes: one checkout through three processes is one trace,
//! received by an OTLP receiver in the test; a real Prometheus scraping a split deployment
//! reads the call rate between two modules in different processes; `/metrics` passes
//! `promtool check metrics`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use prost::Message;
use reqwest::Method;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::helpers::{call_as, client, free_port, get, read, sqlite_in};
use crate::process::Cleave;

/// Longest to wait for Prometheus to have scraped enough (a bound, not a synchronisation).
const PROMETHEUS_WAIT: Duration = Duration::from_secs(90);

/// One span as exported: its process, ids, name and attributes.
#[derive(Debug, Clone)]
struct Span {
    service: String,
    trace_id: String,
    span_id: String,
    parent_span_id: String,
    name: String,
    attributes: HashMap<String, String>,
}

/// An OTLP/HTTP receiver (`POST /v1/traces`, protobuf) on a port of its own, keeping the
/// spans it is sent.
struct OtlpReceiver {
    port: u16,
    spans: Arc<Mutex<Vec<Span>>>,
    task: tokio::task::JoinHandle<()>,
}

impl OtlpReceiver {
    async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let spans = Arc::new(Mutex::new(Vec::new()));
        let kept = spans.clone();
        let task = tokio::spawn(async move {
            while let Ok((mut conn, _)) = listener.accept().await {
                let kept = kept.clone();
                tokio::spawn(async move {
                    while let Some(body) = read_request(&mut conn).await {
                        if let Ok(export) = ExportTraceServiceRequest::decode(body.as_slice()) {
                            kept.lock().expect("spans").extend(spans_of(export));
                        }
                        let answer = "HTTP/1.1 200 OK\r\ncontent-type: application/x-protobuf\r\ncontent-length: 0\r\n\r\n";
                        if conn.write_all(answer.as_bytes()).await.is_err() {
                            break;
                        }
                    }
                });
            }
        });
        Self { port, spans, task }
    }

    fn spans(&self) -> Vec<Span> {
        self.spans.lock().expect("spans").clone()
    }
}

impl Drop for OtlpReceiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The body of the next HTTP/1.1 request on `conn` (with a content-length), or `None` when
/// the connection ends.
async fn read_request(conn: &mut tokio::net::TcpStream) -> Option<Vec<u8>> {
    let mut buf = Vec::new();
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let mut chunk = [0u8; 4096];
        let n = conn.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_lowercase();
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    let mut body = buf[head_end..].to_vec();
    while body.len() < length {
        let mut chunk = vec![0u8; length - body.len()];
        let n = conn.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        body.extend_from_slice(&chunk[..n]);
    }
    Some(body)
}

fn spans_of(export: ExportTraceServiceRequest) -> Vec<Span> {
    let text = |v: &Option<opentelemetry_proto::tonic::common::v1::AnyValue>| match v
        .as_ref()
        .and_then(|v| v.value.as_ref())
    {
        Some(AnyValue::StringValue(s)) => s.clone(),
        Some(AnyValue::IntValue(i)) => i.to_string(),
        Some(AnyValue::BoolValue(b)) => b.to_string(),
        Some(other) => format!("{other:?}"),
        None => String::new(),
    };
    let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
    let mut out = Vec::new();
    for resource in export.resource_spans {
        let service = resource
            .resource
            .iter()
            .flat_map(|r| &r.attributes)
            .find(|a| a.key == "service.name")
            .map(|a| text(&a.value))
            .unwrap_or_default();
        for scope in resource.scope_spans {
            for span in scope.spans {
                out.push(Span {
                    service: service.clone(),
                    trace_id: hex(&span.trace_id),
                    span_id: hex(&span.span_id),
                    parent_span_id: hex(&span.parent_span_id),
                    name: span.name.clone(),
                    attributes: span
                        .attributes
                        .iter()
                        .map(|a| (a.key.clone(), text(&a.value)))
                        .collect(),
                });
            }
        }
    }
    out
}

// Multi-threaded: the receiver answers the exports while the test waits for the processes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_checkout_through_three_processes_is_one_trace_with_its_calls_as_parents() {
    let receiver = OtlpReceiver::start().await;
    let otlp = format!("http://127.0.0.1:{}", receiver.port);
    let dir = tempfile::tempdir().expect("dir");
    let pki = crate::helpers::Pki::made_by_cleave();
    let path = |f: &str| pki.path(f).display().to_string();
    let with = |db: &str| {
        let mut env = crate::helpers::tls_env(&pki, &sqlite_in(dir.path(), db), None);
        env.push(("CLEAVE_TELEMETRY__OTLP_ENDPOINT", otlp.clone()));
        env
    };
    let mut cart = Cleave::serve(&["--modules", "identity,cart"], &with("identity.db"));
    let mut payment_env = with("payment.db");
    payment_env.push(("CLEAVE_MODULES__IDENTITY__URL", cart.https_base()));
    let mut payment = Cleave::serve(&["--modules", "payment"], &payment_env);
    let mut env = vec![
        ("CLEAVE_DATABASE__URL", sqlite_in(dir.path(), "checkout.db")),
        ("CLEAVE_REMOTE__CA_FILE", path("ca.pem")),
        ("CLEAVE_MODULES__IDENTITY__URL", cart.https_base()),
        ("CLEAVE_MODULES__CART__URL", cart.https_base()),
        ("CLEAVE_MODULES__PAYMENT__URL", payment.https_base()),
        ("CLEAVE_REMOTE__CLIENT_CERT_FILE", path("checkout.pem")),
        ("CLEAVE_REMOTE__CLIENT_KEY_FILE", path("checkout.key")),
        ("CLEAVE_TELEMETRY__OTLP_ENDPOINT", otlp.clone()),
    ];
    env.push(("CLEAVE_TELEMETRY__SERVICE_NAME", "shop-front".into()));
    let mut checkout = Cleave::serve(
        &["--modules", "catalog,currency,shipping,email,checkout"],
        &env,
    );
    let base = checkout.base();
    let user = "traced-shopper";
    let token =
        crate::helpers::issued_token(&sqlite_in(dir.path(), "identity.db"), user, "shopper");
    let item = json!({"product_id": "OLJCESPC7Z", "quantity": 1}).to_string();
    let added = call_as(
        &base,
        Method::POST,
        &format!("/api/cart/v1/carts/{user}/items"),
        Some(&item),
        Some(&token),
    )
    .await;
    assert_eq!(added.status, 200, "{added:?}");

    // The shopper's client started the trace: the order joins it.
    let trace_id = "5b8efff798038103d269b633813fc60c";
    let client_span = "eee19b7ec3c1b174";
    let placed = read(
        client()
            .post(format!("{base}/api/checkout/v1/orders"))
            .bearer_auth(&token)
            .header("content-type", "application/json")
            .header("traceparent", format!("00-{trace_id}-{client_span}-01"))
            .body(crate::helpers::order_body(
                user,
                "USD",
                "4432-8015-6152-0454",
            ))
            .send()
            .await
            .expect("send"),
    )
    .await;
    assert_eq!(placed.status, 201, "{placed:?}");

    // Each process exports what it has when it stops.
    for process in [&mut checkout, &mut payment, &mut cart] {
        process.signal("TERM");
        assert!(process.wait().success());
    }
    let spans: Vec<Span> = receiver
        .spans()
        .into_iter()
        .filter(|s| s.trace_id == trace_id)
        .collect();
    let services: std::collections::BTreeSet<&str> =
        spans.iter().map(|s| s.service.as_str()).collect();
    assert_eq!(
        services,
        ["cleave-identity-cart", "cleave-payment", "shop-front"].into(),
        "one trace through the three processes: {spans:#?}"
    );

    // The order's request span is the child of the shopper's span.
    let order_request = spans
        .iter()
        .find(|s| s.service == "shop-front" && s.name == "POST /api/checkout/v1/orders")
        .unwrap_or_else(|| panic!("the order's request span: {spans:#?}"));
    assert_eq!(order_request.parent_span_id, client_span);
    assert_eq!(order_request.attributes["request_id"].len(), 36);
    // Under it, by way of checkout's own call, checkout's calls to payment and cart ...
    let under_order = |span: &Span| {
        let mut at = span;
        while let Some(parent) = spans.iter().find(|s| s.span_id == at.parent_span_id) {
            if parent.span_id == order_request.span_id {
                return true;
            }
            at = parent;
        }
        false
    };
    for (operation, callee_service, route) in [
        (
            "payment.charge",
            "cleave-payment",
            "POST /api/payment/v1/charges",
        ),
        (
            "cart.get_cart",
            "cleave-identity-cart",
            "GET /api/cart/v1/carts/{user_id}",
        ),
    ] {
        let call = spans
            .iter()
            .find(|s| {
                s.name == operation
                    && s.attributes.get("placement").map(String::as_str) == Some("remote")
            })
            .unwrap_or_else(|| panic!("checkout's remote call {operation}: {spans:#?}"));
        assert_eq!(call.service, "shop-front");
        assert_eq!(call.attributes["caller"], "checkout");
        assert_eq!(call.attributes["outcome"], "ok");
        assert!(
            under_order(call),
            "{operation} is under the order's request"
        );
        // ... each the parent of the request span of the process that served it.
        let served = spans
            .iter()
            .find(|s| s.service == callee_service && s.parent_span_id == call.span_id)
            .unwrap_or_else(|| panic!("the request span {operation} caused: {spans:#?}"));
        assert_eq!(served.name, route);
    }
    // Local calls of a sampled trace have spans too.
    assert!(
        spans.iter().any(|s| s.name == "shipping.get_quote"
            && s.attributes["placement"] == "local"
            && under_order(s)),
        "checkout's local call of shipping: {spans:#?}"
    );
}

/// A Prometheus server scraping `targets` every second, with storage in a directory of its
/// own; stopped when dropped.
struct Prometheus {
    child: std::process::Child,
    base: String,
    _dir: tempfile::TempDir,
}

impl Prometheus {
    async fn start(targets: &[String]) -> Self {
        let dir = tempfile::tempdir().expect("dir");
        let list = targets
            .iter()
            .map(|t| format!("'{}'", t.trim_start_matches("http://")))
            .collect::<Vec<_>>()
            .join(", ");
        let config = dir.path().join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  - job_name: cleave\n    static_configs:\n      - targets: [{list}]\n"
            ),
        )
        .expect("config");
        let port = free_port();
        let child = std::process::Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("prometheus (Debian's package; scripts/install-prometheus.sh installs it)");
        let me = Self {
            child,
            base: format!("http://127.0.0.1:{port}"),
            _dir: dir,
        };
        me.until(|| async {
            client()
                .get(format!("{}/-/ready", me.base))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success())
        })
        .await;
        me
    }

    /// Polls `ready` until it holds, failing the test after [`PROMETHEUS_WAIT`].
    async fn until<F, Fut>(&self, ready: F)
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        let started = std::time::Instant::now();
        while !ready().await {
            assert!(
                started.elapsed() < PROMETHEUS_WAIT,
                "Prometheus did not get there within {PROMETHEUS_WAIT:?}"
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// The value of an instant `query` with one series, if it has one.
    async fn value(&self, query: &str) -> Option<f64> {
        let url =
            url::Url::parse_with_params(&format!("{}/api/v1/query", self.base), [("query", query)])
                .ok()?;
        let res = client().get(url).send().await.ok()?;
        let body: Value = res.json().await.ok()?;
        body["data"]["result"][0]["value"][1]
            .as_str()
            .and_then(|v| v.parse().ok())
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `promtool check metrics` on a process's `/metrics`: its findings, empty when clean.
fn promtool_findings(text: &str) -> String {
    use std::io::Write;
    let mut child = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("promtool (Debian's prometheus package)");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(text.as_bytes())
        .expect("write");
    let out = child.wait_with_output().expect("promtool");
    let findings = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() || !findings.is_empty(),
        "promtool failed silently"
    );
    findings
}

#[tokio::test]
async fn prometheus_scraping_a_split_deployment_reads_the_call_rate_between_its_processes() {
    let shop = crate::faults::Shop::start(None).await;
    let (identity, catalog, main) = (&shop.identity, &shop.catalog, &shop.main);
    let base = main.base();
    let recommend = "/api/recommendation/v1/recommendations?user_id=u&product_ids=OLJCESPC7Z";
    assert_eq!(get(&base, recommend).await.status, 200);

    // Every process's metrics pass promtool's checks.
    let mut exported = String::new();
    for process in [identity, catalog, main] {
        let text = client()
            .get(format!("{}/metrics", process.base()))
            .send()
            .await
            .expect("scrape")
            .text()
            .await
            .expect("text");
        assert!(
            text.contains("process_cpu_seconds_total"),
            "process metrics: {text}"
        );
        assert_eq!(promtool_findings(&text), "", "promtool check metrics");
        exported.push_str(&text);
    }

    // Every metric the Grafana dashboard's queries name is exported.
    let dashboard: Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/deploy/grafana/cleave.json"
        ))
        .expect("deploy/grafana/cleave.json"),
    )
    .expect("the dashboard is JSON");
    let queries: Vec<String> = dashboard["panels"]
        .as_array()
        .expect("panels")
        .iter()
        .flat_map(|p| p["targets"].as_array().cloned().unwrap_or_default())
        .filter_map(|t| t["expr"].as_str().map(str::to_owned))
        .collect();
    assert!(queries.len() >= 10, "the dashboard has its queries");
    for query in &queries {
        let names = query
            .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .filter(|w| w.starts_with("cleave_") || w.starts_with("process_"));
        for name in names {
            let base = ["_bucket", "_count", "_sum"]
                .iter()
                .find_map(|s| name.strip_suffix(s))
                .unwrap_or(name);
            assert!(
                exported.contains(&format!("# TYPE {base} ")),
                "the dashboard's {name} (in {query}) is not exported"
            );
        }
    }

    let prometheus = Prometheus::start(&[identity.base(), catalog.base(), main.base()]).await;
    let calls = r#"sum(rate(cleave_module_call_duration_seconds_count{caller="recommendation",callee="catalog",placement="remote",outcome="ok"}[5s]))"#;
    let served = r#"sum(rate(cleave_http_request_duration_seconds_count{route="/api/catalog/v1/products",status="200"}[5s]))"#;
    // Recommendations are asked for while Prometheus scrapes, until it sees the calls as a
    // rate on both sides: made by recommendation in one process, served by catalog in another.
    prometheus
        .until(|| async {
            assert_eq!(get(&base, recommend).await.status, 200);
            let made = prometheus.value(calls).await.unwrap_or(0.0);
            let answered = prometheus.value(served).await.unwrap_or(0.0);
            made > 0.0 && answered > 0.0
        })
        .await;
    let up = prometheus.value("sum(up)").await;
    assert_eq!(up, Some(3.0), "Prometheus scrapes the three processes");
    // And Prometheus evaluates each of them.
    for query in &queries {
        let query = query.replace("$__rate_interval", "5s");
        let url = url::Url::parse_with_params(
            &format!("{}/api/v1/query", prometheus.base),
            [("query", query.as_str())],
        )
        .expect("url");
        let body: Value = client()
            .get(url)
            .send()
            .await
            .expect("query")
            .json()
            .await
            .expect("json");
        assert_eq!(body["status"], "success", "{query}: {body}");
    }
}

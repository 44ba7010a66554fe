//! Metrics in Prometheus' text format at `GET /metrics`: every HTTP route and every module
//! call (local or remote) with its duration, the remote pipeline (retries, refusals, breaker
//! states), the outbox and event deliveries, the database pool and the process (CPU, memory,
//! file descriptors).
//!
//! Recorded with the `metrics` facade into one process-wide Prometheus recorder
//! (metrics-exporter-prometheus, rendered from an actix route; no listener of its own). Values
//! that are states rather than events (breakers, the outbox, the pool, the process) are read
//! when Prometheus scrapes, by the [`Gauges`] the assembly registers. The names are written
//! once here; `deploy/grafana/cleave.json` and the tests use them.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use actix_web::{HttpResponse, web};
use async_trait::async_trait;
use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use serde::{Deserialize, Serialize};

use crate::call::{BoxFuture, CallInfo, CallLayer, Locality, Next, Outcome};

/// Requests served, by method, route template and status: a histogram of their duration.
pub const HTTP_DURATION: &str = "cleave_http_request_duration_seconds";
/// Requests refused by load shedding before any work (503 `cleave.overloaded`).
pub const HTTP_SHED: &str = "cleave_http_shed_total";
/// Module calls, by caller, callee, operation, placement (`local`/`remote`), outcome and
/// error code: a histogram of their duration.
pub const CALL_DURATION: &str = "cleave_module_call_duration_seconds";
/// Remote calls sent again, by callee.
pub const REMOTE_RETRIES: &str = "cleave_remote_retries_total";
/// Remote calls refused before they were sent, by callee and reason (`bulkhead`, `breaker`,
/// `retry_budget`).
pub const REMOTE_REFUSED: &str = "cleave_remote_refused_total";
/// Counts a remote call to `callee` refused before it was sent, and why (`bulkhead`,
/// `breaker`, `retry_budget`).
pub fn record_refused(callee: &'static str, reason: &'static str) {
    metrics::counter!(REMOTE_REFUSED, "callee" => callee, "reason" => reason).increment(1);
}

/// Counts a remote call to `callee` sent again.
pub fn record_retry(callee: &'static str) {
    metrics::counter!(REMOTE_RETRIES, "callee" => callee).increment(1);
}

/// The breaker of each remote callee: 0 closed, 1 half-open, 2 open.
pub const BREAKER_STATE: &str = "cleave_breaker_state";
/// Events in the outbox not yet accepted by the bus.
pub const OUTBOX_PENDING: &str = "cleave_outbox_pending_events";
/// Age of the oldest event in the outbox not yet accepted by the bus (0 when none).
pub const OUTBOX_OLDEST_AGE: &str = "cleave_outbox_oldest_pending_age_seconds";
/// Events the relay handed to the bus, by topic and outcome (`ok`, `failed`).
pub const EVENTS_RELAYED: &str = "cleave_events_relayed_total";
/// Deliveries of an event to one subscriber, by topic, subscriber and outcome (`ok`,
/// `failed`).
pub const EVENTS_HANDLED: &str = "cleave_events_handled_total";
/// Events a subscriber gave up on (moved to the dead letters), by topic and subscriber.
pub const EVENTS_DEAD_LETTERED: &str = "cleave_events_dead_lettered_total";
/// Connections of the database pool, by state (`idle`, `in_use`).
pub const DB_POOL_CONNECTIONS: &str = "cleave_db_pool_connections";
/// The most connections the database pool opens.
pub const DB_POOL_MAX: &str = "cleave_db_pool_max_connections";

/// Bucket bounds of every `_seconds` histogram: 0.5 ms to 10 s.
const SECONDS_BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// How often histogram samples are folded into their buckets.
const UPKEEP_EVERY: std::time::Duration = std::time::Duration::from_secs(2);

/// The process's recorder: installed on first use, shared by every server of the process.
static RECORDER: OnceLock<Option<Recorder>> = OnceLock::new();

struct Recorder {
    handle: PrometheusHandle,
    process: metrics_process::Collector,
}

/// Installs the process's recorder (once; later calls do nothing) and describes every metric.
/// Until it runs, recording a metric does nothing.
pub fn install() {
    let _ = recorder();
}

fn recorder() -> Option<&'static Recorder> {
    RECORDER
        .get_or_init(|| {
            let installed = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &SECONDS_BUCKETS)
                .and_then(PrometheusBuilder::install_recorder);
            match installed {
                Ok(handle) => {
                    // Histograms keep every sample until upkeep folds them into buckets: fold
                    // them every few seconds, not only when scraped (an unscraped process
                    // would grow by 8 bytes per request, and pay for it in page faults).
                    let upkeep = handle.clone();
                    let spawned = std::thread::Builder::new()
                        .name("metrics-upkeep".into())
                        .spawn(move || {
                            loop {
                                std::thread::sleep(UPKEEP_EVERY);
                                upkeep.run_upkeep();
                            }
                        });
                    if let Err(e) = spawned {
                        tracing::warn!(error = %e, "metrics upkeep thread not started; histograms fold only when scraped");
                    }
                    describe();
                    let process = metrics_process::Collector::default();
                    process.describe();
                    Some(Recorder { handle, process })
                }
                Err(e) => {
                    tracing::warn!(error = %e, "metrics recorder not installed; /metrics stays empty");
                    None
                }
            }
        })
        .as_ref()
}

fn describe() {
    describe_histogram!(
        HTTP_DURATION,
        Unit::Seconds,
        "HTTP requests served, by method, route template and status"
    );
    describe_counter!(HTTP_SHED, "Requests refused by load shedding");
    describe_histogram!(
        CALL_DURATION,
        Unit::Seconds,
        "Module calls, by caller, callee, operation, placement, outcome and error code"
    );
    describe_counter!(REMOTE_RETRIES, "Remote calls sent again, by callee");
    describe_counter!(
        REMOTE_REFUSED,
        "Remote calls refused before they were sent, by callee and reason"
    );
    describe_gauge!(
        BREAKER_STATE,
        "Breaker of each remote callee: 0 closed, 1 half-open, 2 open"
    );
    describe_gauge!(OUTBOX_PENDING, "Events in the outbox not yet relayed");
    describe_gauge!(
        OUTBOX_OLDEST_AGE,
        Unit::Seconds,
        "Age of the oldest event not yet relayed"
    );
    describe_counter!(
        EVENTS_RELAYED,
        "Events handed to the bus, by topic and outcome"
    );
    describe_counter!(
        EVENTS_HANDLED,
        "Event deliveries to a subscriber, by topic, subscriber and outcome"
    );
    describe_counter!(
        EVENTS_DEAD_LETTERED,
        "Events a subscriber gave up on, by topic and subscriber"
    );
    describe_gauge!(DB_POOL_CONNECTIONS, "Database pool connections, by state");
    describe_gauge!(DB_POOL_MAX, "Most connections the database pool opens");
}

/// States read when Prometheus scrapes (a breaker, the outbox, a pool): set their gauges.
#[async_trait]
pub trait Gauges: Send + Sync {
    /// Sets the gauges to the current values.
    async fn record(&self);
}

/// `GET /metrics`: the process's metrics in Prometheus' text format, after every [`Gauges`]
/// has set its values. Open like the probes: it names routes, modules and counts, never a
/// user, an id or a token.
pub fn configure_metrics(cfg: &mut web::ServiceConfig, gauges: Arc<Vec<Arc<dyn Gauges>>>) {
    cfg.route(
        "/metrics",
        web::get().to(move || {
            let gauges = gauges.clone();
            async move {
                futures::future::join_all(gauges.iter().map(|g| g.record())).await;
                let text = render().unwrap_or_default();
                HttpResponse::Ok()
                    .content_type("text/plain; version=0.0.4; charset=utf-8")
                    .body(text)
            }
        }),
    );
}

/// The process's metrics in Prometheus' text format (process figures read now), or `None`
/// when no recorder is installed.
pub fn render() -> Option<String> {
    recorder().map(|r| {
        r.process.collect();
        r.handle.run_upkeep();
        r.handle.render()
    })
}

/// The route template of a request, known without a lookup: module routes and forwarded
/// routes carry their operation's (as resource data or a request extension).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RouteTemplate(pub &'static str);

/// A static string by address and length (two literals may share an address when one is a
/// prefix of the other): a key that hashes without reading the text.
type StrKey = (usize, usize);

fn str_key(s: &'static str) -> StrKey {
    (s.as_ptr() as usize, s.len())
}

thread_local! {
    /// Histograms already looked up, per worker thread: the hot path records without hashing
    /// labels or taking the registry's locks.
    // foldhash, not std's SipHash: the keys are addresses and fixed labels, nothing a client
    // chooses, and SipHash was about 600 instructions of every request.
    static HTTP_HISTOGRAMS: std::cell::RefCell<foldhash::HashMap<(StrKey, &'static str, u16), metrics::Histogram>> =
        std::cell::RefCell::default();
    static CALL_HISTOGRAMS: std::cell::RefCell<foldhash::HashMap<(usize, StrKey, Locality), metrics::Histogram>> =
        std::cell::RefCell::default();
}

/// Records one HTTP request: `route` is its template (`/api/catalog/v1/products/{id}`): known
/// (`Ok`), or found by the router (`Err`, e.g. `unmatched`).
pub fn record_request(
    method: &actix_web::http::Method,
    route: Result<&'static str, String>,
    status: u16,
    started: Instant,
) {
    let elapsed = started.elapsed();
    let method = method_label(method);
    match route {
        Ok(route) => HTTP_HISTOGRAMS.with(|cache| {
            cache
                .borrow_mut()
                .entry((str_key(route), method, status))
                .or_insert_with(|| {
                    metrics::histogram!(
                        HTTP_DURATION,
                        "method" => method,
                        "route" => route,
                        "status" => status_label(status),
                    )
                })
                .record(elapsed);
        }),
        Err(route) => metrics::histogram!(
            HTTP_DURATION,
            "method" => method,
            "route" => route,
            "status" => status_label(status),
        )
        .record(elapsed),
    }
}

/// Methods as static labels (no allocation); others are `other`.
fn method_label(method: &actix_web::http::Method) -> &'static str {
    use actix_web::http::Method;
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

/// The status as a label; the common ones without allocating.
fn status_label(status: u16) -> metrics::SharedString {
    const COMMON: [(u16, &str); 14] = [
        (200, "200"),
        (201, "201"),
        (204, "204"),
        (303, "303"),
        (304, "304"),
        (400, "400"),
        (401, "401"),
        (403, "403"),
        (404, "404"),
        (409, "409"),
        (429, "429"),
        (500, "500"),
        (503, "503"),
        (504, "504"),
    ];
    COMMON
        .iter()
        .find(|(s, _)| *s == status)
        .map_or_else(|| status.to_string().into(), |(_, l)| (*l).into())
}

/// Records one delivery of an event of `topic` to `subscriber`.
pub fn record_handled(topic: impl Into<metrics::SharedString>, subscriber: &'static str, ok: bool) {
    metrics::counter!(
        EVENTS_HANDLED,
        "topic" => topic.into(),
        "subscriber" => subscriber,
        "outcome" => if ok { "ok" } else { "failed" },
    )
    .increment(1);
}

/// The call layer timing every module call, local or remote, into [`CALL_DURATION`].
#[derive(Debug, Default, Clone, Copy)]
pub struct CallMetrics;

impl CallLayer for CallMetrics {
    fn around<'a>(&'a self, call: &'a CallInfo<'a>, next: Next<'a>) -> BoxFuture<'a, Outcome> {
        Box::pin(async move {
            let started = Instant::now();
            let outcome = next.run().await;
            let elapsed = started.elapsed();
            let (label, code) = match &outcome {
                Outcome::Ok => {
                    // The common case, from the worker's cache.
                    let key = (
                        std::ptr::from_ref(call.op) as usize,
                        str_key(call.caller),
                        call.locality,
                    );
                    CALL_HISTOGRAMS.with(|cache| {
                        cache
                            .borrow_mut()
                            .entry(key)
                            .or_insert_with(|| call_histogram(call, "ok", ""))
                            .record(elapsed);
                    });
                    return outcome;
                }
                Outcome::Failed { code, .. } => ("error", *code),
                Outcome::Refused { .. } => ("refused", ""),
            };
            call_histogram(call, label, code).record(elapsed);
            outcome
        })
    }
}

/// The histogram of `call`'s edge and operation with `outcome` and `code`.
fn call_histogram(
    call: &CallInfo<'_>,
    outcome: &'static str,
    code: &'static str,
) -> metrics::Histogram {
    metrics::histogram!(
                CALL_DURATION,
                "caller" => call.caller,
                "callee" => call.callee,
                "operation" => call.op.id,
                "placement" => call.locality.as_str(),
        "outcome" => outcome,
        "code" => code,
    )
}

/// How many slow requests are kept, and for how long.
const SLOWEST_KEPT: usize = 10;
const SLOWEST_FOR: Duration = Duration::from_secs(300);

/// One slow request: its route template (not its path: no ids), status, duration and trace.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SlowRequest {
    /// `GET /api/cart/v1/carts/{user_id}`.
    pub route: String,
    /// Its status.
    pub status: u16,
    /// How long it took, in milliseconds.
    pub ms: f64,
    /// Its trace id (find it in Jaeger or Tempo).
    pub trace_id: String,
    /// Seconds ago.
    pub ago_secs: u64,
}

struct Slow {
    at: Instant,
    us: u64,
    route: String,
    status: u16,
    trace_id: String,
}

/// The slowest requests of the last minutes (the operator page shows them), kept cheaply: a request slower than the
/// `SLOWEST_KEPT`-th takes the lock, the others read one atomic.
static SLOWEST: Mutex<Vec<Slow>> = Mutex::new(Vec::new());
static SLOW_ENOUGH_US: AtomicU64 = AtomicU64::new(0);

/// Notes a request that took `us` microseconds, if it is among the slowest; `describe` gives
/// its route, status and trace id (only called then).
pub fn note_request(us: u64, describe: impl FnOnce() -> (String, u16, String)) {
    if us < SLOW_ENOUGH_US.load(Ordering::Relaxed) {
        return;
    }
    let (route, status, trace_id) = describe();
    if let Ok(mut kept) = SLOWEST.lock() {
        kept.push(Slow {
            at: Instant::now(),
            us,
            route,
            status,
            trace_id,
        });
        settle(&mut kept);
    }
}

/// Drops what is too old or beyond the kept number, and sets the bar for the next one.
fn settle(kept: &mut Vec<Slow>) {
    kept.retain(|s| s.at.elapsed() < SLOWEST_FOR);
    kept.sort_by_key(|s| std::cmp::Reverse(s.us));
    kept.truncate(SLOWEST_KEPT);
    let bar = if kept.len() == SLOWEST_KEPT {
        kept.last().map_or(0, |s| s.us)
    } else {
        0
    };
    SLOW_ENOUGH_US.store(bar, Ordering::Relaxed);
}

pub fn slowest() -> Vec<SlowRequest> {
    let Ok(mut kept) = SLOWEST.lock() else {
        return Vec::new();
    };
    settle(&mut kept);
    kept.iter()
        .map(|s| SlowRequest {
            route: s.route.clone(),
            status: s.status,
            #[allow(clippy::cast_precision_loss)]
            ms: s.us as f64 / 1000.0,
            trace_id: s.trace_id.clone(),
            ago_secs: s.at.elapsed().as_secs(),
        })
        .collect()
}

//! The one remote-call pipeline. Every module's HTTP client sends its calls through a
//! [`RemoteClient`]: a tower service stack over one pooled, keep-alive HTTP client (hyper's,
//! over rustls) per target module. Layers that every remote call needs (the deadline, the bulkhead, retries
//! within a budget, and innermost the choice of a replica with its own circuit breaker) are
//! added here, in [`RemoteClient::new`], and no module client changes. See [`crate::resilience`] for when a
//! call is tried again and when the breaker opens.

mod grpc;

use std::fmt;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use actix_web::web::Bytes;

use async_trait::async_trait;
use hyper::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tower::util::BoxCloneSyncService;
use tower::{Layer, Service, ServiceExt};

pub use hyper::Method;
pub use url::Url;

use crate::balance::{self, Load};
use crate::call::Operation;
use crate::context::{CallContext, DEADLINE_HEADER, REQUEST_ID_HEADER};
use crate::error::{ApiError, Problem, Upstream, is_problem_json};
use crate::health::ReadinessCheck;
use crate::kept::{Kept, Ticket};
use crate::registry::Found;
use crate::resilience::{Breaker, BreakerSettings, BreakerState, RetrySettings, random_up_to};
use tower::retry::budget::{Budget, TpsBudget};

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// Header saying what a request between Cleave processes is (see [`CallMarks`]), e.g.
/// `op=payment.charge` or `op=catalog.get_product; safe; forwarded`: one header for the three
/// marks, fewer for the callee's HTTP parser to take apart, and read only where a mark decides
/// something (docs/BENCHMARKS.md, "A hop's marks in one header").
pub const CALL_HEADER: &str = "x-cleave-call";

/// What [`CALL_HEADER`] says of a request: the contract operation it calls (`op=<module>.
/// <operation>`, when it calls one), whether it is safe to repeat (`safe`), and whether a
/// process forwards it on behalf of a client (`forwarded`: the certificate of its connection
/// then proves the hop, not the caller).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CallMarks<'a> {
    /// The operation called, e.g. `payment.charge`.
    pub operation: Option<&'a str>,
    /// Whether the request may be repeated (read-only, idempotent, or keyed and carrying its
    /// key or reference).
    pub safe: bool,
    /// Whether the request is forwarded for a client.
    pub forwarded: bool,
}

impl<'a> CallMarks<'a> {
    /// Reads a [`CALL_HEADER`] value; what it does not know it passes over.
    pub fn parse(value: &'a str) -> Self {
        let mut marks = Self::default();
        // By bytes: `str::split` with a char pattern costs several times as much here.
        let mut rest = value;
        while !rest.is_empty() {
            let (item, after) =
                rest.split_at(rest.bytes().position(|b| b == b';').unwrap_or(rest.len()));
            rest = after.get(1..).unwrap_or("");
            match item.trim_ascii() {
                "safe" => marks.safe = true,
                "forwarded" => marks.forwarded = true,
                item => {
                    if let Some(op) = item.strip_prefix("op=").filter(|op| !op.is_empty()) {
                        marks.operation = Some(op);
                    }
                }
            }
        }
        marks
    }

    /// The marks of a received request's headers (none without [`CALL_HEADER`]).
    pub fn of(headers: &actix_web::http::header::HeaderMap) -> CallMarks<'_> {
        // A name built once: a lookup by `&str` parses the name on every request.
        const H_CALL: actix_web::http::header::HeaderName =
            actix_web::http::header::HeaderName::from_static(CALL_HEADER);
        headers
            .get(H_CALL)
            .and_then(|v| v.to_str().ok())
            .map(CallMarks::parse)
            .unwrap_or_default()
    }

    /// The [`CALL_HEADER`] value; `None` when there is nothing to say.
    pub fn render(&self) -> Option<String> {
        let mut value = self
            .operation
            .map(|op| format!("op={op}"))
            .unwrap_or_default();
        for (set, flag) in [(self.safe, "safe"), (self.forwarded, "forwarded")] {
            if set {
                if !value.is_empty() {
                    value.push_str("; ");
                }
                value.push_str(flag);
            }
        }
        (!value.is_empty()).then_some(value)
    }
}

/// One call to a remote module, before it is encoded on the wire.
#[derive(Debug, Clone)]
pub struct RemoteRequest {
    /// The context of the call chain: its request id and deadline travel as headers.
    pub ctx: CallContext,
    /// HTTP method.
    pub method: Method,
    /// Path and query below the module's base url, e.g. `/api/catalog/v1/products`.
    pub path: String,
    /// The body, already encoded (shared, not copied, by the tries of a call).
    pub body: Option<actix_web::web::Bytes>,
    /// Media type of the body (`application/json` for module calls; whatever the client sent
    /// when a request is forwarded).
    pub content_type: Option<String>,
    /// Further request headers the callee's contract defines (e.g. `idempotency-key`).
    pub headers: Vec<(&'static str, String)>,
    /// The contract operation called, when known (module calls, and forwarded requests whose
    /// route is one of the contract's).
    pub op: Option<&'static Operation>,
    /// Whether the request carries the key or reference that makes a `keyed` operation safe
    /// to repeat.
    pub keyed: bool,
    /// The REST path of the resource a gRPC call is about, when its operation's path
    /// parameters are all among its arguments (see [`OpCall::resource`]).
    pub resource: Option<String>,
    /// Whether the request is forwarded for a client (see [`CallMarks::forwarded`]).
    pub forwarded: bool,
}

impl RemoteRequest {
    /// A request without body or extra headers.
    pub fn new(ctx: CallContext, method: Method, path: String) -> Self {
        Self {
            ctx,
            method,
            path,
            body: None,
            content_type: None,
            headers: Vec::new(),
            op: None,
            keyed: false,
            resource: None,
            forwarded: false,
        }
    }

    /// Whether the request may be sent again when the first attempt's outcome is unknown.
    pub fn is_safe_to_repeat(&self) -> bool {
        self.op.is_some_and(|op| op.repeat.is_safe(self.keyed))
    }
}

/// Request headers of a module's contract that travel with a call (and are kept when a
/// request is forwarded), besides the kernel's own context headers.
pub const CONTRACT_HEADERS: [&str; 2] = ["idempotency-key", "authorization"];

/// The raw answer of a remote module.
#[derive(Debug, Clone)]
pub struct RemoteResponse {
    /// HTTP status.
    pub status: u16,
    /// The answer's media type.
    pub content_type: Option<String>,
    /// The body (shared, not copied, on its way to a forwarded response).
    pub body: actix_web::web::Bytes,
    /// Response headers of the contract that a forwarded answer keeps (see
    /// [`FORWARDED_RESPONSE_HEADERS`]).
    pub headers: Vec<(&'static str, String)>,
    /// The events the call committed ([`crate::context::ANNOUNCED_HEADER`]; REST only).
    pub announced: Vec<uuid::Uuid>,
}

/// Response headers relayed with a forwarded answer: where a created resource is, when to
/// retry, how to authenticate, how long to cache, whether it is an idempotent replay.
pub const FORWARDED_RESPONSE_HEADERS: [&str; 5] = [
    "location",
    "retry-after",
    "www-authenticate",
    "cache-control",
    crate::context::REPLAYED_HEADER,
];

/// Why a remote call failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum RemoteError {
    /// The request never left: no connection (refused, DNS, TLS), or the client could not be
    /// built. Safe to try again whatever the operation.
    #[error("module {module} is unreachable: {reason}")]
    NotSent {
        /// The module called.
        module: &'static str,
        /// What the transport said.
        reason: String,
    },
    /// The request was sent and its answer did not arrive whole (the connection reset or
    /// closed): the callee may have acted on it.
    #[error("module {module} did not answer: {reason}")]
    AnswerLost {
        /// The module called.
        module: &'static str,
        /// What the transport said.
        reason: String,
    },
    /// The module's circuit breaker is open: the call was not tried.
    #[error("module {module} is failing; calls stopped for {}ms", .retry_after.as_millis())]
    CircuitOpen {
        /// The module called.
        module: &'static str,
        /// When a call may be tried again.
        retry_after: Duration,
    },
    /// The deadline passed before the answer arrived.
    #[error("module {module} did not answer before the deadline")]
    DeadlineExceeded {
        /// The module called.
        module: &'static str,
    },
    /// Too many calls to the module are in flight from this process (its bulkhead,
    /// `modules.<m>.max_concurrency`): the call was refused at once, not queued.
    #[error("module {module} has {limit} calls in flight from this process; call refused")]
    Overloaded {
        /// The module called.
        module: &'static str,
        /// The limit.
        limit: usize,
    },
    /// The module answered with an error ([`Problem`]).
    #[error("module {module} answered {}: {}", .problem.status, .problem.code)]
    Problem {
        /// The module called.
        module: &'static str,
        /// Its answer.
        problem: Box<Problem>,
        /// Its `Retry-After`, in seconds.
        retry_after_secs: Option<u64>,
    },
    /// The module answered something that is not our protocol.
    #[error("module {module} answered unexpectedly (HTTP {status}): {reason}")]
    Protocol {
        /// The module called.
        module: &'static str,
        /// HTTP status of the answer.
        status: u16,
        /// What was wrong with it.
        reason: String,
    },
}

impl RemoteError {
    /// Turns a failed remote call into the caller-facing contract error, the same error an
    /// in-process call gives: a problem whose code belongs to `E` becomes that variant; the
    /// callee's kernel refusing the caller refuses the caller; the callee's other kernel
    /// failures (429, 413, 504, ...) pass through as themselves; a deadline that passed is a
    /// 504 `cleave.timeout`; an open breaker or a full bulkhead is `E::unavailable` with
    /// `Retry-After`; everything else (no answer, 5xx, foreign codes) is `E::unavailable`.
    pub fn into_api_error<E: ApiError>(self) -> E {
        let upstream = match &self {
            RemoteError::Problem {
                problem,
                retry_after_secs,
                ..
            } => {
                if problem.status < 500
                    && let Some(err) = problem.decode::<E>()
                {
                    return err;
                }
                let why = || {
                    problem
                        .detail
                        .clone()
                        .unwrap_or_else(|| problem.title.clone())
                };
                match problem.code.as_str() {
                    "auth.unauthenticated" => {
                        return E::refused(crate::error::Refusal::Unauthenticated(why()));
                    }
                    "auth.forbidden" => {
                        return E::refused(crate::error::Refusal::Forbidden(why()));
                    }
                    _ => {}
                }
                Upstream::kernel(
                    &problem.code,
                    problem.status,
                    problem.params.clone(),
                    *retry_after_secs,
                )
                .or_else(|| retry_after_secs.map(Upstream::unavailable_for))
            }
            RemoteError::DeadlineExceeded { .. } => {
                Upstream::kernel("cleave.timeout", 504, None, None)
            }
            RemoteError::CircuitOpen { retry_after, .. } => Some(Upstream::unavailable_for(
                retry_after.as_millis().div_ceil(1000).max(1) as u64,
            )),
            RemoteError::Overloaded { .. } => Some(Upstream::unavailable_for(1)),
            RemoteError::NotSent { .. }
            | RemoteError::AnswerLost { .. }
            | RemoteError::Protocol { .. } => None,
        };
        tracing::warn!(error = %self, "remote call failed");
        match upstream {
            Some(upstream) => E::passed(self.to_string(), upstream),
            None => E::unavailable(self.to_string()),
        }
    }
}

/// Connection and timeout settings of the calls to one module.
#[derive(Debug, Clone)]
pub struct RemoteSettings {
    /// Longest a single call may take when the caller set no earlier deadline.
    pub timeout: Duration,
    /// Most calls in flight to the module at once (its bulkhead); calls past it are refused
    /// at once with [`RemoteError::Overloaded`].
    pub max_concurrency: usize,
    /// Largest answer body read from the module, in bytes: a larger one is refused while it
    /// streams in ([`RemoteError::Protocol`]), never buffered whole.
    pub max_answer_bytes: usize,
    /// When to try a failed call again.
    pub retry: RetrySettings,
    /// When to stop calling a failing module for a while.
    pub breaker: BreakerSettings,
    /// Longest to wait for a TCP connection.
    pub connect_timeout: Duration,
    /// How long an idle pooled connection is kept.
    pub pool_idle_timeout: Duration,
    /// Most idle connections kept per host.
    pub pool_max_idle_per_host: usize,
    /// PEM of a CA to trust for `https://` modules (besides none: the system store is not
    /// used, module certificates come from the deployment's own CA).
    pub ca_pem: Option<Vec<u8>>,
    /// PEM of this process's client certificate and key, presented to modules that require
    /// mutual TLS.
    pub identity_pem: Option<Vec<u8>>,
    /// The module's replicas (`modules.<m>.urls`); empty: the base url alone.
    pub replicas: Vec<Url>,
    /// How the replicas' addresses are found.
    pub discovery: Discovery,
    /// Longest an answer of a `cached` operation is kept (zero: none is); the module's events
    /// clear them sooner.
    pub cache_ttl: Duration,
    /// How calls travel (a `grpc://` or `grpcs://` url is always gRPC).
    pub transport: Transport,
}

/// How calls to a module travel.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Transport {
    /// REST: each operation its route, JSON bodies, HTTP/1.1 over pooled keep-alive
    /// connections.
    #[default]
    Rest,
    /// gRPC: each operation a method of the contract's service (see [`crate::grpc`]), over
    /// HTTP/2.
    Grpc,
}

impl Transport {
    /// The transport of calls to `url` under `settings`.
    pub fn of(url: &Url, configured: Self) -> Self {
        if matches!(url.scheme(), "grpc" | "grpcs") {
            Self::Grpc
        } else {
            configured
        }
    }
}

/// How a module's replicas are found.
#[derive(Debug, Clone, Default)]
pub enum Discovery {
    /// The configured urls, as they are (each url one replica; its name resolved per
    /// connection).
    #[default]
    Static,
    /// Every address each url's host name resolves to is a replica, resolved again this
    /// often (a Kubernetes headless Service); the certificate is still checked against the
    /// name. When a lookup fails, the last addresses found are kept.
    Dns {
        /// Between lookups.
        every: Duration,
    },
    /// The urls the registry lists under the module (the configured ones, if any, until it
    /// has answered); when it cannot be reached, the last ones it listed.
    Etcd(Arc<crate::registry::Registry>),
}

impl Default for RemoteSettings {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(5),
            max_concurrency: 256,
            max_answer_bytes: 4 * 1024 * 1024,
            retry: RetrySettings::default(),
            breaker: BreakerSettings::default(),
            connect_timeout: Duration::from_secs(1),
            pool_idle_timeout: Duration::from_secs(60),
            pool_max_idle_per_host: 64,
            ca_pem: None,
            identity_pem: None,
            replicas: Vec::new(),
            discovery: Discovery::Static,
            cache_ttl: Duration::from_secs(5),
            transport: Transport::Rest,
        }
    }
}

/// Most answers one client keeps; past it the expired ones go, then all.
const MAX_KEPT_ANSWERS: usize = 10_000;
/// Most changes made through one client remembered until their events arrive; past it the
/// oldest go (their events then drop all they name, as another process's would).
const MAX_OWN_CHANGES: usize = 1024;

/// What identifies a kept answer: the operation, the resource (see [`resource_of`]), the body,
/// and, for an operation not everyone may call, who asked (see [`asker`]).
type AnswerKey = (&'static str, String, Bytes, Option<String>);

/// The resource a call is about, as kept answers are keyed and dropped: over REST its path
/// with its query; over gRPC the REST path its operation names ([`OpCall::resource`]), else
/// the module's root (`""`, inside which every resource is: any change drops it).
fn resource_of(req: &RemoteRequest) -> String {
    match &req.resource {
        Some(resource) => resource.clone(),
        None if grpc::is_grpc_call(req) => String::new(),
        None => req.path.clone(),
    }
}

/// Who a request asks as, as the callee will see it: the relayed token and the headers that
/// speak for the caller (a forwarded request's marker and `Authorization`). An answer kept
/// for one asker is never given to another: the callee's access rules decided it for that
/// one. Holds tokens: never logged (`Kept`'s `Debug` shows only a count).
fn asker(req: &RemoteRequest) -> String {
    let mut who = String::new();
    if let Some(token) = req.ctx.principal().and_then(|p| p.access_token.as_deref()) {
        who.push_str(token);
    }
    for (name, value) in &req.headers {
        who.push('\n');
        who.push_str(name);
        who.push(':');
        who.push_str(value);
    }
    who
}

/// Whether two paths (queries aside) name the same resource or one is inside the other
/// (`/carts/u1` and `/carts/u1/items`; `/products` and `/products/X`), as a write's
/// invalidation goes in HTTP caching (RFC 9111, 4.4).
fn related(a: &str, b: &str) -> bool {
    let (a, b) = (
        a.split('?').next().unwrap_or(a),
        b.split('?').next().unwrap_or(b),
    );
    let inside = |x: &str, y: &str| x.strip_prefix(y).is_some_and(|r| r.starts_with('/'));
    a == b || inside(a, b) || inside(b, a)
}

/// Answers of `cached` operations, of reads whose caller said a kept answer will do, and of
/// fresh reads of operations asked so before, kept by the caller.
struct KeptAnswers {
    answers: Kept<AnswerKey, RemoteResponse>,
    /// Read-only operations a caller has asked with the kept-answer word: the answers of
    /// their fresh reads (the cart page's) are kept for the same asker too, for its next read
    /// that a kept answer will do (the header's count), which would otherwise be asked again
    /// after every change.
    asked_kept: std::sync::RwLock<Vec<&'static str>>,
    /// Events announcing changes made through this client, and when what it kept of the
    /// written resource was dropped for them (see [`RemoteClient::forget_answers_about_change`]).
    own_changes: std::sync::Mutex<std::collections::VecDeque<(uuid::Uuid, std::time::Instant)>>,
}

/// How a call may use the kept answers.
enum KeptUse {
    /// A kept answer answers it, else its answer is kept.
    Answer,
    /// It is asked in any case; its answer is kept (replacing what was), its error drops
    /// what was kept for it.
    Renew,
}

impl KeptAnswers {
    fn new(ttl: Duration) -> Self {
        Self {
            answers: Kept::new(ttl, MAX_KEPT_ANSWERS),
            asked_kept: std::sync::RwLock::new(Vec::new()),
            own_changes: std::sync::Mutex::default(),
        }
    }

    /// Remembers that `events` announce a change made through this client, whose written
    /// resource's answers were dropped just now.
    fn note_own_changes(&self, events: &[uuid::Uuid]) {
        if events.is_empty() || !self.answers.keeps() {
            return;
        }
        let now = std::time::Instant::now();
        let mut own = self
            .own_changes
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for &event in events {
            if own.len() >= MAX_OWN_CHANGES {
                own.pop_front();
            }
            own.push_back((event, now));
        }
    }

    /// When the answers were dropped for `event`, a change made through this client; the
    /// record goes.
    fn take_own_change(&self, event: uuid::Uuid) -> Option<std::time::Instant> {
        let mut own = self
            .own_changes
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let at = own.iter().position(|(id, _)| *id == event)?;
        own.remove(at).map(|(_, dropped)| dropped)
    }

    /// The key of a request whose answer may be kept, the ticket it is asked with, and how
    /// it may use what is kept: a `cached` operation's or a read whose caller says a kept
    /// answer will do (answered from it), or a fresh read of an operation asked so before
    /// (renewing it).
    fn key(&self, req: &RemoteRequest) -> Option<(AnswerKey, Ticket, KeptUse)> {
        let op = req.op.filter(|_| self.answers.keeps())?;
        let read_only = op.repeat == crate::call::Repeat::ReadOnly;
        let how = if op.cached || (read_only && req.ctx.accepts_kept_answers()) {
            if !op.cached && !self.was_asked_kept(op.id) {
                let mut asked = self
                    .asked_kept
                    .write()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                if !asked.contains(&op.id) {
                    asked.push(op.id);
                }
            }
            KeptUse::Answer
        } else if read_only && self.was_asked_kept(op.id) {
            KeptUse::Renew
        } else {
            return None;
        };
        let ticket = self.answers.ticket();
        let everyones = op.access.contains(&crate::call::Access::Anyone);
        Some((
            (
                op.id,
                resource_of(req),
                req.body.clone().unwrap_or_default(),
                (!everyones).then(|| asker(req)),
            ),
            ticket,
            how,
        ))
    }

    fn was_asked_kept(&self, op: &'static str) -> bool {
        self.asked_kept
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .contains(&op)
    }
}

/// The type-erased service stack every remote call runs through.
pub type Pipeline = BoxCloneSyncService<RemoteRequest, RemoteResponse, RemoteError>;

/// A handle to one remote module: its base url and the pipeline to reach it. Cheap to clone;
/// clones share the connection pool.
#[derive(Clone)]
pub struct RemoteClient {
    module: &'static str,
    base: Url,
    transport: Transport,
    pipeline: Pipeline,
    replicas: Replicas,
    kept: Arc<KeptAnswers>,
}

impl fmt::Debug for RemoteClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RemoteClient")
            .field("module", &self.module)
            .field("base", &self.base.as_str())
            .finish_non_exhaustive()
    }
}

impl RemoteClient {
    /// Builds the pipeline to `module` at `base` (e.g. `http://10.0.0.7:8080`).
    ///
    /// # Errors
    /// [`RemoteError::NotSent`] when the HTTP client cannot be built (TLS setup).
    pub fn new(
        module: &'static str,
        base: Url,
        settings: &RemoteSettings,
    ) -> Result<Self, RemoteError> {
        let urls =
            if settings.replicas.is_empty() && !matches!(settings.discovery, Discovery::Etcd(_)) {
                vec![base.clone()]
            } else {
                settings.replicas.clone()
            };
        let transport = Transport::of(&base, settings.transport);
        let settings = &RemoteSettings {
            transport,
            ..settings.clone()
        };
        let shared = wire_client(module, settings, None)?;
        let set = urls
            .iter()
            .map(|url| Replica::new(module, url.clone(), None, shared.clone(), settings))
            .collect();
        let replicas = Replicas {
            module,
            set: Arc::new(arc_swap::ArcSwap::from_pointee(set)),
        };
        match &settings.discovery {
            Discovery::Static => {}
            Discovery::Dns { every } => replicas.discover(urls, *every, settings.clone()),
            Discovery::Etcd(registry) => {
                replicas.follow(registry.follow(module), shared, settings.clone());
            }
        }
        let limit = settings.max_concurrency.max(1);
        let pipeline = tower::ServiceBuilder::new()
            .layer(StepLayer(Deadline {
                module,
                default_timeout: settings.timeout,
            }))
            .layer(StepLayer(Bulkhead {
                module,
                limit,
                permits: Arc::new(tokio::sync::Semaphore::new(limit)),
            }))
            .layer(tower::retry::RetryLayer::new(RetryPolicy::new(
                module,
                settings.retry,
            )))
            .service(replicas.clone());
        Ok(Self {
            module,
            base,
            transport,
            pipeline: BoxCloneSyncService::new(pipeline),
            replicas,
            kept: Arc::new(KeptAnswers::new(settings.cache_ttl)),
        })
    }

    /// Drops every answer kept of the module (it said its data changed); says how many were
    /// kept.
    pub fn forget_answers(&self) -> usize {
        self.kept.answers.forget_all()
    }

    /// Drops the answers kept about the resource at `path` (e.g. `/api/cart/v1/carts/u1`),
    /// about what is inside it and about what it is inside of; the others stay. Over gRPC an
    /// answer whose resource its call did not name (an operation without path parameters)
    /// goes with any.
    pub fn forget_answers_about(&self, path: &str) {
        self.kept
            .answers
            .forget_where(|(_, kept, _, _)| related(kept, path));
    }

    /// Drops what an event of the module says changed: the answers kept about `path` (as
    /// [`RemoteClient::forget_answers_about`]), or, when the event announces a change made
    /// through this client, only those kept before its answer came: the client dropped the
    /// written resource's answers then, and reads asked since show the change (a read asked
    /// before is not kept, see [`crate::kept`]). The cart page read after adding an item is
    /// then not dropped by the addition's own `cart.changed`. Says whether it was such a
    /// change.
    pub fn forget_answers_about_change(&self, event: uuid::Uuid, path: &str) -> bool {
        match self.kept.take_own_change(event) {
            Some(dropped) => {
                self.kept
                    .answers
                    .forget_kept_before(dropped, |(_, kept, _, _)| related(kept, path));
                true
            }
            None => {
                self.forget_answers_about(path);
                false
            }
        }
    }

    /// The module this client calls.
    pub fn module(&self) -> &'static str {
        self.module
    }

    /// The module's base url.
    pub fn base_url(&self) -> &Url {
        &self.base
    }

    /// Where the module's circuit breakers are, taken together: closed while any replica's
    /// is, half-open while any replica is being probed, else open.
    pub fn breaker(&self) -> BreakerState {
        let states: Vec<BreakerState> = self.replicas().into_iter().map(|(_, s)| s).collect();
        if states.contains(&BreakerState::Closed) {
            BreakerState::Closed
        } else if states.contains(&BreakerState::HalfOpen) {
            BreakerState::HalfOpen
        } else {
            BreakerState::Open
        }
    }

    /// Each replica (its url, and its address when discovery found one) with its breaker.
    pub fn replicas(&self) -> Vec<(String, BreakerState)> {
        self.replicas
            .set
            .load()
            .iter()
            .map(|r| (r.name(), r.breaker.state()))
            .collect()
    }

    /// How calls to the module travel.
    pub fn transport(&self) -> Transport {
        self.transport
    }

    /// Sends one request through the pipeline.
    ///
    /// # Errors
    /// [`RemoteError`] when the module cannot be reached in time. A non-2xx answer is *not* an
    /// error here; see [`RemoteClient::get_json`] and friends.
    pub async fn call(&self, req: RemoteRequest) -> Result<RemoteResponse, RemoteError> {
        self.pipeline.clone().oneshot(req).await
    }

    /// A call of the contract operation `op` with `ctx`: fill in its path params, query,
    /// body and headers, then [`OpCall::fetch`] or [`OpCall::send`].
    pub fn op(&self, op: &'static Operation, ctx: &CallContext) -> OpCall<'_> {
        let method = Method::from_bytes(op.method.as_str().as_bytes()).unwrap_or(Method::GET);
        let mut req = RemoteRequest::new(ctx.clone(), method, op.path.to_owned());
        req.op = Some(op);
        OpCall {
            client: self,
            req,
            failure: None,
        }
    }

    fn check_status(&self, res: &RemoteResponse) -> Result<(), RemoteError> {
        if (200..300).contains(&res.status) {
            return Ok(());
        }
        if is_problem_json(res.content_type.as_deref())
            && let Ok(problem) = serde_json::from_slice::<Problem>(&res.body)
        {
            return Err(RemoteError::Problem {
                module: self.module,
                problem: Box::new(problem),
                retry_after_secs: retry_after(res).map(|d| d.as_secs()),
            });
        }
        Err(RemoteError::Protocol {
            module: self.module,
            status: res.status,
            reason: "error answer without a problem body".into(),
        })
    }
}

/// One call of a contract operation being built (see [`RemoteClient::op`]).
#[must_use = "a call does nothing until it is fetched or sent"]
pub struct OpCall<'a> {
    client: &'a RemoteClient,
    req: RemoteRequest,
    failure: Option<RemoteError>,
}

impl OpCall<'_> {
    /// Puts `params` into the route's `{...}` segments, in order (percent-encoded).
    pub fn params(mut self, params: &[&str]) -> Self {
        if let Some(op) = self.req.op {
            self.req.path = op.path_with(params);
        }
        self
    }

    /// Adds `name=value` to the query string (form-encoded).
    pub fn query(mut self, name: &str, value: &str) -> Self {
        let sep = if self.req.path.contains('?') {
            '&'
        } else {
            '?'
        };
        self.req.path.push(sep);
        self.req.path.push_str(
            &url::form_urlencoded::Serializer::new(String::new())
                .append_pair(name, value)
                .finish(),
        );
        self
    }

    /// Sends `body` as JSON.
    pub fn json<B: Serialize + ?Sized>(mut self, body: &B) -> Self {
        match serde_json::to_vec(body) {
            Ok(bytes) => {
                self.req.body = Some(bytes.into());
                self.req.content_type = Some("application/json".to_owned());
            }
            Err(e) => {
                self.failure = Some(RemoteError::Protocol {
                    module: self.client.module,
                    status: 0,
                    reason: format!("cannot encode request: {e}"),
                });
            }
        }
        self
    }

    /// Names the resource a gRPC call is about: its operation's REST path with `params` (what
    /// [`OpCall::params`] would send over REST). Its answer is then kept and dropped by that
    /// resource, as over REST: a change of one shopper's cart drops only that cart's answers.
    pub fn resource(mut self, params: &[&str]) -> Self {
        if let Some(op) = self.req.op {
            self.req.resource = Some(op.path_with(params));
        }
        self
    }

    /// Sends the call as the gRPC method at `path` (`/cleave.<module>.v1.<Module>/<Method>`)
    /// with `args` as its message (see [`crate::grpc`]).
    pub fn grpc(mut self, path: &'static str, args: crate::grpc::Args) -> Self {
        match args.encode() {
            Ok(message) => {
                path.clone_into(&mut self.req.path);
                self.req.body = Some(message);
                self.req.content_type = Some(crate::grpc::JSON_CONTENT_TYPE.to_owned());
            }
            Err(reason) => {
                self.failure = Some(RemoteError::Protocol {
                    module: self.client.module,
                    status: 0,
                    reason: format!("cannot encode request: {reason}"),
                });
            }
        }
        self
    }

    /// Sends the call as the gRPC method at `path` of another wire contract (Online
    /// Boutique's services), `message` being its request already encoded (protobuf); read the
    /// answer's message with [`OpCall::fetch_message`].
    pub fn message(mut self, path: &'static str, message: Bytes) -> Self {
        path.clone_into(&mut self.req.path);
        self.req.body = Some(message);
        self.req.content_type = Some("application/grpc".to_owned());
        self
    }

    /// Adds a header of the contract (e.g. `idempotency-key`).
    pub fn header(mut self, name: &'static str, value: String) -> Self {
        self.req.headers.push((name, value));
        self
    }

    /// Says whether this call carries the key or reference that makes a `keyed` operation
    /// safe to repeat.
    pub fn keyed(mut self, keyed: bool) -> Self {
        self.req.keyed = keyed;
        self
    }

    async fn answer(self) -> Result<(RemoteResponse, &'static str), RemoteError> {
        if let Some(failure) = self.failure {
            return Err(failure);
        }
        let client = self.client;
        let key = client.kept.key(&self.req);
        if let Some((k, _, KeptUse::Answer)) = &key
            && let Some(res) = client.kept.answers.get(k)
        {
            return Ok((res, client.module));
        }
        // A change made through this client: its own later reads of that resource see it.
        let written = self
            .req
            .op
            .is_some_and(|op| op.repeat != crate::call::Repeat::ReadOnly)
            .then(|| resource_of(&self.req));
        let res = client.call(self.req).await;
        if let Some(path) = written {
            client.forget_answers_about(&path);
            if let Ok(res) = &res {
                client.kept.note_own_changes(&res.announced);
            }
        }
        let res = res?;
        if let Err(refused) = client.check_status(&res) {
            // A fresh read refused (the token revoked, the resource gone): what was kept for
            // this asker no longer holds.
            if let Some((key, _, KeptUse::Renew)) = &key {
                client.kept.answers.forget(key);
            }
            return Err(refused);
        }
        if let Some((key, ticket, _)) = key {
            client.kept.answers.keep(ticket, key, res.clone());
        }
        Ok((res, client.module))
    }

    /// Sends the call and decodes a JSON answer; an error answer becomes the contract's error
    /// (see [`RemoteError::into_api_error`]).
    ///
    /// # Errors
    /// The contract error the callee answered, or its `unavailable` error.
    pub async fn fetch<T: DeserializeOwned, E: ApiError>(self) -> Result<T, E> {
        let (res, module) = self.answer().await.map_err(RemoteError::into_api_error)?;
        serde_json::from_slice(&res.body).map_err(|e| {
            RemoteError::Protocol {
                module,
                status: res.status,
                reason: format!("body does not decode: {e}"),
            }
            .into_api_error()
        })
    }

    /// Sends the call and answers the body of its answer as it is (a gRPC answer's message).
    ///
    /// # Errors
    /// As [`OpCall::fetch`].
    pub async fn fetch_message<E: ApiError>(self) -> Result<Bytes, E> {
        self.answer()
            .await
            .map(|(res, _)| res.body)
            .map_err(RemoteError::into_api_error)
    }

    /// Sends the call and expects a 2xx answer whose body is ignored (e.g. 204).
    ///
    /// # Errors
    /// As [`OpCall::fetch`].
    pub async fn send<E: ApiError>(self) -> Result<(), E> {
        self.answer()
            .await
            .map(|_| ())
            .map_err(RemoteError::into_api_error)
    }
}

/// Readiness of a remote module: its `/health/live` answers 200.
#[async_trait]
impl ReadinessCheck for RemoteClient {
    fn name(&self) -> String {
        format!("module:{}", self.module)
    }

    async fn check(&self) -> Result<(), String> {
        let ctx = CallContext::root().with_timeout(Duration::from_secs(2));
        if self.transport == Transport::Grpc {
            return self.grpc_health(ctx).await;
        }
        let res = self
            .call(RemoteRequest::new(
                ctx,
                Method::GET,
                "/health/live".to_owned(),
            ))
            .await
            .map_err(|e| e.to_string())?;
        if res.status == 200 {
            Ok(())
        } else {
            Err(format!("answered HTTP {}", res.status))
        }
    }
}

impl RemoteClient {
    /// Readiness of a module reached over gRPC: the standard health service says its server
    /// is `SERVING`.
    async fn grpc_health(&self, ctx: CallContext) -> Result<(), String> {
        let mut req =
            RemoteRequest::new(ctx, Method::POST, "/grpc.health.v1.Health/Check".to_owned());
        // `HealthCheckRequest { service: "" }` (the whole server) is the empty message.
        req.body = Some(Bytes::new());
        req.content_type = Some("application/grpc".to_owned());
        let res = self.call(req).await.map_err(|e| e.to_string())?;
        if res.status != 200 {
            return Err(format!("health answered HTTP {}", res.status));
        }
        // `HealthCheckResponse { status: SERVING }`: field 1, varint 1.
        if res.body.as_ref() == [0x08, 0x01] {
            Ok(())
        } else {
            Err("its gRPC health is not SERVING".to_owned())
        }
    }
}

/// The innermost service for one replica: REST over HTTP, or gRPC.
#[derive(Clone)]
enum Wire {
    Http(HttpTransport),
    Grpc(grpc::GrpcTransport),
}

impl Service<RemoteRequest> for Wire {
    type Response = RemoteResponse;
    type Error = RemoteError;
    type Future = BoxFuture<Result<RemoteResponse, RemoteError>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), RemoteError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: RemoteRequest) -> Self::Future {
        match self {
            Self::Http(t) => t.call(req),
            Self::Grpc(t) => t.call(req),
        }
    }
}

/// The pooled client a target's replicas share: REST's, or gRPC's (HTTP/2 only).
#[derive(Clone)]
enum WireClient {
    Http(HttpClient),
    Grpc(grpc::GrpcClient),
}

/// The innermost REST service: encodes the request and context on the wire (HTTP/1.1).
#[derive(Clone)]
struct HttpTransport {
    module: &'static str,
    /// Where the replica is, parsed once (the pipeline is cloned per call, so shared);
    /// `None` for a url that is no HTTP url (every call is then refused, not sent).
    base: Option<Arc<Base>>,
    http: HttpClient,
    max_answer_bytes: usize,
}

impl Service<RemoteRequest> for HttpTransport {
    type Response = RemoteResponse;
    type Error = RemoteError;
    type Future = BoxFuture<Result<RemoteResponse, RemoteError>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), RemoteError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: RemoteRequest) -> Self::Future {
        let module = self.module;
        let url = self.url_for(&req.path);
        const H_DEADLINE: HeaderName = HeaderName::from_static(DEADLINE_HEADER);
        let mut headers = HeaderMap::with_capacity(8);
        headers.insert(ACCEPT, HeaderValue::from_static("application/json"));
        if let Some(left) = req.ctx.remaining() {
            let ms = u64::try_from(left.as_millis()).unwrap_or(u64::MAX);
            headers.insert(H_DEADLINE, HeaderValue::from(ms));
        }
        if let Some(ct) = req
            .content_type
            .as_deref()
            .and_then(|v| HeaderValue::from_str(v).ok())
        {
            headers.insert(CONTENT_TYPE, ct);
        }
        call_headers(&req, &mut headers);
        let http = self.http.get();
        let limit = self.max_answer_bytes;
        let request = url.and_then(|url| {
            hyper::Request::builder()
                .method(req.method)
                .uri(url)
                .body(http_body_util::Full::new(req.body.unwrap_or_default()))
                .map_err(|e| e.to_string())
        });
        Box::pin(async move {
            let mut request = request.map_err(|e| RemoteError::NotSent {
                module,
                reason: format!("the request cannot be written: {e}"),
            })?;
            *request.headers_mut() = headers;
            let res = http.request(request).await.map_err(|e| {
                let reason = crate::error::error_chain(&e);
                if e.is_connect() {
                    RemoteError::NotSent { module, reason }
                } else {
                    RemoteError::AnswerLost { module, reason }
                }
            })?;
            let status = res.status().as_u16();
            let content_type = res
                .headers()
                .get(CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .map(String::from);
            let headers = FORWARDED_RESPONSE_HEADERS
                .iter()
                .filter_map(|&name| {
                    let value = res.headers().get(name)?.to_str().ok()?;
                    Some((name, value.to_owned()))
                })
                .collect();
            let announced = res
                .headers()
                .get_all(crate::context::ANNOUNCED_HEADER)
                .iter()
                .filter_map(|v| uuid::Uuid::parse_str(v.to_str().ok()?).ok())
                .collect();
            let body = read_capped(res, limit, module, status).await?;
            Ok(RemoteResponse {
                status,
                content_type,
                body,
                headers,
                announced,
            })
        })
    }
}

/// The headers every call carries, over REST as over gRPC (as metadata): its request id, the
/// operation and whether it is safe to repeat, the trace context, the end user's token (unless
/// a forwarded request brings its own `authorization`), and the contract's headers.
fn call_headers(req: &RemoteRequest, headers: &mut HeaderMap) {
    // Header names and fixed values are built once, not parsed per call.
    const H_REQUEST_ID: HeaderName = HeaderName::from_static(REQUEST_ID_HEADER);
    const H_CALL: HeaderName = HeaderName::from_static(CALL_HEADER);
    if let Ok(id) = HeaderValue::from_str(req.ctx.request_id().as_str()) {
        headers.insert(H_REQUEST_ID, id);
    }
    crate::telemetry::inject_current(headers);
    let marks = CallMarks {
        operation: req.op.map(|op| op.id),
        safe: req.op.is_some_and(|op| op.repeat.is_safe(req.keyed)),
        forwarded: req.forwarded,
    };
    if let Some(value) = marks.render().and_then(|v| HeaderValue::from_str(&v).ok()) {
        headers.insert(H_CALL, value);
    }
    let forwards_authorization = req.headers.iter().any(|(n, _)| *n == "authorization");
    if let Some(token) = req
        .ctx
        .principal()
        .and_then(|p| p.access_token.as_deref())
        .filter(|_| !forwards_authorization)
        && let Ok(mut value) = HeaderValue::from_str(&format!("Bearer {token}"))
    {
        // The end user's identity travels with the call (token relay).
        value.set_sensitive(true);
        headers.insert(AUTHORIZATION, value);
    }
    for (name, value) in &req.headers {
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) {
            headers.append(name, value);
        }
    }
}

/// A replica's url taken apart once: scheme, authority and the path its routes are under.
struct Base {
    scheme: hyper::http::uri::Scheme,
    authority: hyper::http::uri::Authority,
    /// The url's path without its trailing slash (`""` for a url without a path).
    prefix: String,
}

impl Base {
    fn of(url: &Url) -> Option<Arc<Self>> {
        let uri: hyper::Uri = url.as_str().parse().ok()?;
        let parts = uri.into_parts();
        Some(Arc::new(Self {
            scheme: parts.scheme?,
            authority: parts.authority?,
            prefix: url.path().trim_end_matches('/').to_owned(),
        }))
    }
}

impl HttpTransport {
    /// The replica's url with `path_and_query` (from the root, maybe with `?query`) under its
    /// path: only the path and query are parsed per call (parsing whole urls, as reqwest
    /// did three times a call, was a sixth of a forwarded read's instructions).
    fn url_for(&self, path_and_query: &str) -> Result<hyper::Uri, String> {
        let base = self
            .base
            .as_ref()
            .ok_or_else(|| "the module's url is not an http(s) url".to_owned())?;
        let path = if base.prefix.is_empty() {
            hyper::http::uri::PathAndQuery::try_from(path_and_query)
        } else {
            hyper::http::uri::PathAndQuery::try_from(format!("{}{path_and_query}", base.prefix))
        }
        .map_err(|e| format!("{path_and_query}: {e}"))?;
        let mut parts = hyper::http::uri::Parts::default();
        parts.scheme = Some(base.scheme.clone());
        parts.authority = Some(base.authority.clone());
        parts.path_and_query = Some(path);
        hyper::Uri::from_parts(parts).map_err(|e| e.to_string())
    }
}

/// The body of `res`, refused as soon as it is known to exceed `limit` bytes (by its
/// `Content-Length`, or while it streams in).
async fn read_capped(
    res: hyper::Response<hyper::body::Incoming>,
    limit: usize,
    module: &'static str,
    status: u16,
) -> Result<Bytes, RemoteError> {
    use http_body_util::BodyExt as _;
    let too_large = || RemoteError::Protocol {
        module,
        status,
        reason: format!("answer larger than {limit} bytes"),
    };
    let declared = res
        .headers()
        .get(hyper::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|n| n > u64::try_from(limit).unwrap_or(u64::MAX)) {
        return Err(too_large());
    }
    match http_body_util::Limited::new(res.into_body(), limit)
        .collect()
        .await
    {
        Ok(body) => Ok(body.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(too_large()),
        Err(e) => Err(RemoteError::AnswerLost {
            module,
            reason: crate::error::error_chain(&*e),
        }),
    }
}

/// One stage of the pipeline that wraps the stages inside it: what it does with a call, the
/// inner stages being `inner`. [`StepLayer`] makes it a tower layer; the stages differ only
/// in this.
trait Step: Clone {
    fn call<S>(
        &self,
        inner: &mut S,
        req: RemoteRequest,
    ) -> BoxFuture<Result<RemoteResponse, RemoteError>>
    where
        S: Service<RemoteRequest, Response = RemoteResponse, Error = RemoteError>,
        S::Future: Send + 'static;
}

/// A [`Step`] as a tower layer.
#[derive(Clone)]
struct StepLayer<P>(P);

impl<P: Step, S> Layer<S> for StepLayer<P> {
    type Service = Stepped<P, S>;
    fn layer(&self, inner: S) -> Stepped<P, S> {
        Stepped {
            step: self.0.clone(),
            inner,
        }
    }
}

/// A [`Step`] around the stages inside it.
#[derive(Clone)]
struct Stepped<P, S> {
    step: P,
    inner: S,
}

impl<P: Step, S> Service<RemoteRequest> for Stepped<P, S>
where
    S: Service<RemoteRequest, Response = RemoteResponse, Error = RemoteError>,
    S::Future: Send + 'static,
{
    type Response = RemoteResponse;
    type Error = RemoteError;
    type Future = BoxFuture<Result<RemoteResponse, RemoteError>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), RemoteError>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: RemoteRequest) -> Self::Future {
        self.step.call(&mut self.inner, req)
    }
}

/// Gives every call the caller's deadline or the module's default timeout, whichever is
/// sooner (the callee is told the remaining budget), and refuses a call whose deadline has
/// passed. The time itself is kept once per try, by the breaker stage, and the retry policy
/// never waits past it: one timer per try, not a second one around the whole call.
#[derive(Clone)]
struct Deadline {
    module: &'static str,
    default_timeout: Duration,
}

impl Step for Deadline {
    fn call<S>(
        &self,
        inner: &mut S,
        mut req: RemoteRequest,
    ) -> BoxFuture<Result<RemoteResponse, RemoteError>>
    where
        S: Service<RemoteRequest, Response = RemoteResponse, Error = RemoteError>,
        S::Future: Send + 'static,
    {
        let module = self.module;
        req.ctx = req.ctx.with_timeout(self.default_timeout);
        if req.ctx.remaining().is_some_and(|left| left.is_zero()) {
            return Box::pin(async move { Err(RemoteError::DeadlineExceeded { module }) });
        }
        Box::pin(inner.call(req))
    }
}

/// The bulkhead: at most `limit` calls in flight to the module; a call past it is refused at
/// once ([`RemoteError::Overloaded`]), never queued. A semaphore's `try_acquire` rather than
/// tower's `ConcurrencyLimit` under `LoadShed`: those box a future and an error per call on
/// the hot path, for the same behaviour.
#[derive(Clone)]
struct Bulkhead {
    module: &'static str,
    limit: usize,
    permits: Arc<tokio::sync::Semaphore>,
}

impl Step for Bulkhead {
    fn call<S>(
        &self,
        inner: &mut S,
        req: RemoteRequest,
    ) -> BoxFuture<Result<RemoteResponse, RemoteError>>
    where
        S: Service<RemoteRequest, Response = RemoteResponse, Error = RemoteError>,
        S::Future: Send + 'static,
    {
        let Ok(permit) = self.permits.clone().try_acquire_owned() else {
            let (module, limit) = (self.module, self.limit);
            crate::metrics::record_refused(module, "bulkhead");
            return Box::pin(async move { Err(RemoteError::Overloaded { module, limit }) });
        };
        let fut = inner.call(req);
        Box::pin(async move {
            let result = fut.await;
            drop(permit);
            result
        })
    }
}

/// Whether an answer's status says the callee (or what is behind it) failed for now.
fn transient_status(status: u16) -> bool {
    matches!(status, 429 | 502 | 503 | 504)
}

/// Seconds from a `Retry-After` header of an answer (the delay form).
fn retry_after(res: &RemoteResponse) -> Option<Duration> {
    res.headers
        .iter()
        .find(|(name, _)| *name == "retry-after")
        .and_then(|(_, v)| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs)
}

/// Decides, for one call, whether to try again (see the module documentation). Cloned per
/// call by tower's `Retry`; the budget is shared by every call to the target.
#[derive(Clone)]
pub(crate) struct RetryPolicy {
    module: &'static str,
    settings: RetrySettings,
    budget: Arc<TpsBudget>,
    /// Tries made so far in this call.
    tries: u32,
}

impl RetryPolicy {
    pub(crate) fn new(module: &'static str, settings: RetrySettings) -> Self {
        Self {
            module,
            settings,
            budget: Arc::new(TpsBudget::new(
                Duration::from_secs(10),
                settings.budget_min_per_sec,
                settings.budget_percent / 100.0,
            )),
            tries: 0,
        }
    }

    /// Whether `result` of `req` may be tried again, and the least wait before it.
    fn retryable(
        req: &RemoteRequest,
        result: &Result<RemoteResponse, RemoteError>,
    ) -> Option<Duration> {
        match result {
            Ok(res) if transient_status(res.status) && req.is_safe_to_repeat() => {
                Some(retry_after(res).unwrap_or_default())
            }
            Ok(_) => None,
            Err(RemoteError::NotSent { .. }) => Some(Duration::ZERO),
            Err(RemoteError::AnswerLost { .. } | RemoteError::DeadlineExceeded { .. })
                if req.is_safe_to_repeat() =>
            {
                Some(Duration::ZERO)
            }
            Err(_) => None,
        }
    }
}

impl tower::retry::Policy<RemoteRequest, RemoteResponse, RemoteError> for RetryPolicy {
    type Future = tokio::time::Sleep;

    fn retry(
        &mut self,
        req: &mut RemoteRequest,
        result: &mut Result<RemoteResponse, RemoteError>,
    ) -> Option<Self::Future> {
        self.tries += 1;
        let at_least = Self::retryable(req, result)?;
        if self.tries >= self.settings.attempts {
            return None;
        }
        let exp = self
            .settings
            .base
            .saturating_mul(1u32 << (self.tries - 1).min(16));
        let wait = random_up_to(exp.min(self.settings.cap)).max(at_least);
        // Only inside the caller's deadline (with room for the try itself).
        if req.ctx.remaining().is_some_and(|left| left <= wait) {
            return None;
        }
        if !self.budget.withdraw() {
            tracing::debug!(module = self.module, "retry budget spent; not retrying");
            crate::metrics::record_refused(self.module, "retry_budget");
            return None;
        }
        crate::metrics::record_retry(self.module);
        tracing::debug!(
            module = self.module,
            try_number = self.tries + 1,
            wait_ms = wait.as_millis() as u64,
            "retrying a remote call"
        );
        Some(tokio::time::sleep(wait))
    }

    fn clone_request(&mut self, req: &RemoteRequest) -> Option<RemoteRequest> {
        if self.tries == 0 {
            // Each call (not each try) earns the budget its share of retries.
            self.budget.deposit();
        }
        Some(req.clone())
    }
}

/// Whether a try's outcome counts against the target.
fn failed(result: &Result<RemoteResponse, RemoteError>) -> bool {
    match result {
        Ok(res) => res.status >= 500,
        Err(RemoteError::Problem { .. } | RemoteError::Protocol { .. }) => false,
        Err(_) => true,
    }
}

/// The HTTP client of a target's calls: hyper's pooled client (keep-alive connections) over
/// rustls. REST calls offer only HTTP/1.1 in TLS's ALPN: on Boutique's mix the split used 12%
/// less CPU per request than with HTTP/2 (hpack, flow control and frames on both ends; see
/// docs/BENCHMARKS.md section 5), and a pool of connections serves concurrent calls as one
/// multiplexed connection did. hyper's own client rather than reqwest: reqwest
/// parses each call's url three times (its redirect policy and its response included), a
/// sixth of a forwarded read's instructions, for features a module call does not use.
type HttpClient = PerThread<
    hyper_util::client::legacy::Client<
        hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector<Resolver>>,
        http_body_util::Full<Bytes>,
    >,
>;

/// A pooled client per calling thread, made the first time the thread calls. hyper drives
/// each connection in a task spawned where it was opened, and a shared pool hands a
/// connection opened on one thread (an actix worker: a runtime of its own) to a call made on
/// another: every call then crosses threads twice (the request to the connection's task, the
/// answer back), each a wake-up of a thread that may be asleep, and waits while the other
/// worker is busy. With a pool per thread a call is written, and its answer read, on the
/// thread that made it.
pub(crate) struct PerThread<C: Send> {
    clients: Arc<thread_local::ThreadLocal<C>>,
    make: Arc<dyn Fn() -> C + Send + Sync>,
}

impl<C: Send> Clone for PerThread<C> {
    fn clone(&self) -> Self {
        Self {
            clients: Arc::clone(&self.clients),
            make: Arc::clone(&self.make),
        }
    }
}

impl<C: Clone + Send> PerThread<C> {
    fn new(make: impl Fn() -> C + Send + Sync + 'static) -> Self {
        Self {
            clients: Arc::new(thread_local::ThreadLocal::new()),
            make: Arc::new(make),
        }
    }

    /// This thread's client.
    pub(crate) fn get(&self) -> C {
        self.clients.get_or(|| (self.make)()).clone()
    }
}

/// Host names to addresses: the pinned one for its host (a replica found by DNS discovery,
/// its certificate still checked against the name), the system's resolver for the rest.
#[derive(Clone)]
pub(crate) struct Resolver(Option<Arc<(String, SocketAddr)>>);

impl Service<hyper_util::client::legacy::connect::dns::Name> for Resolver {
    type Response = std::vec::IntoIter<SocketAddr>;
    type Error = std::io::Error;
    type Future = BoxFuture<Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, name: hyper_util::client::legacy::connect::dns::Name) -> Self::Future {
        let pinned = self
            .0
            .as_ref()
            .filter(|p| p.0 == name.as_str())
            .map(|p| p.1);
        let host = name.as_str().to_owned();
        Box::pin(async move {
            if let Some(addr) = pinned {
                return Ok(vec![addr].into_iter());
            }
            // The connector puts the url's port on what is found.
            let found: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            Ok(found.into_iter())
        })
    }
}

/// The client of a target's calls: pooled keep-alive connections, the deployment's CA (on
/// top of the system's roots), this process's certificate; with `pinned`, every connection to
/// that host name goes to that address.
fn wire_client(
    module: &'static str,
    settings: &RemoteSettings,
    pinned: Option<(&str, SocketAddr)>,
) -> Result<WireClient, RemoteError> {
    let unusable = |what: &str, e: &dyn std::fmt::Display| RemoteError::NotSent {
        module,
        reason: format!("{what}: {e}"),
    };
    use rustls::pki_types::pem::PemObject as _;
    let certs_in = |pem: &[u8], what: &str| {
        rustls::pki_types::CertificateDer::pem_slice_iter(pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| unusable(what, &e))
    };
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let extra_roots = match &settings.ca_pem {
        Some(pem) => certs_in(pem, "the CA certificate")?,
        None => Vec::new(),
    };
    let verifier =
        rustls_platform_verifier::Verifier::new_with_extra_roots(extra_roots, provider.clone())
            .map_err(|e| unusable("the certificate verifier", &e))?;
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| unusable("TLS", &e))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier));
    let tls = match &settings.identity_pem {
        Some(pem) => {
            let chain = certs_in(pem, "this process's certificate")?;
            let key = rustls::pki_types::PrivateKeyDer::from_pem_slice(pem)
                .map_err(|e| unusable("this process's key", &e))?;
            tls.with_client_auth_cert(chain, key)
                .map_err(|e| unusable("this process's certificate", &e))?
        }
        None => tls.with_no_client_auth(),
    };
    let mut tcp = hyper_util::client::legacy::connect::HttpConnector::new_with_resolver(Resolver(
        pinned.map(|(host, addr)| Arc::new((host.to_owned(), addr))),
    ));
    tcp.enforce_http(false);
    tcp.set_nodelay(true);
    tcp.set_connect_timeout(Some(settings.connect_timeout));
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http();
    let mut builder =
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new());
    builder
        .pool_idle_timeout(settings.pool_idle_timeout)
        .pool_max_idle_per_host(settings.pool_max_idle_per_host)
        .pool_timer(hyper_util::rt::TokioTimer::new());
    Ok(match settings.transport {
        Transport::Rest => {
            let connector = connector.enable_http1().wrap_connector(tcp);
            WireClient::Http(PerThread::new(move || builder.build(connector.clone())))
        }
        // gRPC is HTTP/2 only: with prior knowledge over plain TCP, by ALPN over TLS. One
        // connection (a thread's) carries every call at once.
        Transport::Grpc => {
            builder
                .http2_only(true)
                .timer(hyper_util::rt::TokioTimer::new());
            let connector = connector.enable_http2().wrap_connector(tcp);
            WireClient::Grpc(PerThread::new(move || builder.build(connector.clone())))
        }
    })
}

/// One replica of the target module: where it is, its circuit breaker, its load.
struct Replica {
    url: Url,
    /// The address DNS discovery found it at (static replicas are reached by their url).
    addr: Option<SocketAddr>,
    transport: Wire,
    breaker: Arc<Breaker>,
    load: Load,
}

impl Replica {
    fn new(
        module: &'static str,
        url: Url,
        addr: Option<SocketAddr>,
        client: WireClient,
        settings: &RemoteSettings,
    ) -> Arc<Self> {
        let transport = match client {
            WireClient::Http(http) => Wire::Http(HttpTransport {
                module,
                base: Base::of(&url),
                http,
                max_answer_bytes: settings.max_answer_bytes,
            }),
            WireClient::Grpc(client) => Wire::Grpc(grpc::GrpcTransport {
                module,
                origin: grpc::GrpcTransport::origin_of(&url),
                client,
                max_answer_bytes: settings.max_answer_bytes,
            }),
        };
        Arc::new(Self {
            url,
            addr,
            transport,
            breaker: Breaker::new(module, settings.breaker),
            load: Load::default(),
        })
    }

    /// Its url, with the address discovery found it at.
    fn name(&self) -> String {
        match self.addr {
            Some(addr) => format!("{} ({addr})", self.url),
            None => self.url.to_string(),
        }
    }
}

/// The target's replicas, and the innermost stage of the pipeline: each try goes to one of
/// them, chosen by [`balance::pick`] among those whose breaker lets a call through, bounded
/// by the caller's deadline (a try cut off by it counts as a failure of that replica). A try
/// that failed made its replica dear, so the retry stage's next try goes elsewhere.
#[derive(Clone)]
struct Replicas {
    module: &'static str,
    set: Arc<arc_swap::ArcSwap<Vec<Arc<Replica>>>>,
}

impl Replicas {
    /// Looks the urls' host names up every `every`, the replicas becoming every address
    /// found (one kept as it is, breaker and load, while its address stays). Stops when the
    /// client is dropped; without a runtime there is nothing to run it on, and the urls stay
    /// the replicas.
    fn discover(&self, urls: Vec<Url>, every: Duration, settings: RemoteSettings) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            tracing::warn!(
                module = self.module,
                "no runtime: DNS discovery does not run"
            );
            return;
        };
        let weak = Arc::downgrade(&self.set);
        let module = self.module;
        runtime.spawn(async move {
            loop {
                let Some(set) = weak.upgrade() else { break };
                let current = set.load_full();
                let next = rediscover(module, &urls, &current, &settings, |host, port| {
                    let host = host.to_owned();
                    async move {
                        tokio::net::lookup_host((host.as_str(), port))
                            .await
                            .map(|addrs| addrs.collect::<Vec<_>>())
                            .map_err(|e| e.to_string())
                    }
                })
                .await;
                if let Some(next) = next {
                    set.store(Arc::new(next));
                }
                drop(set);
                tokio::time::sleep(every).await;
            }
        });
    }
}

impl Replicas {
    /// Follows the registry's list of the module's replicas: each url listed is one (one kept
    /// as it is, breaker and load, while it stays listed). Stops when the client is dropped.
    fn follow(&self, mut found: Found, http: WireClient, settings: RemoteSettings) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            tracing::warn!(
                module = self.module,
                "no runtime: the registry is not followed"
            );
            return;
        };
        let weak = Arc::downgrade(&self.set);
        let module = self.module;
        runtime.spawn(async move {
            loop {
                let listed = found.borrow_and_update().clone();
                if let Some(urls) = listed {
                    let Some(set) = weak.upgrade() else { break };
                    let current = set.load_full();
                    let next: Vec<Arc<Replica>> = urls
                        .into_iter()
                        .map(|url| {
                            current
                                .iter()
                                .find(|r| r.url == url && r.addr.is_none())
                                .cloned()
                                .unwrap_or_else(|| {
                                    Replica::new(module, url, None, http.clone(), &settings)
                                })
                        })
                        .collect();
                    set.store(Arc::new(next));
                }
                if found.changed().await.is_err() {
                    break;
                }
            }
        });
    }
}

/// The replicas after looking `urls` up with `lookup`: every address of each url, the ones
/// `current` already has kept as they are; a url whose lookup fails keeps its current
/// replicas. `None` when nothing changed or nothing would be left.
async fn rediscover<F, Fut>(
    module: &'static str,
    urls: &[Url],
    current: &[Arc<Replica>],
    settings: &RemoteSettings,
    lookup: F,
) -> Option<Vec<Arc<Replica>>>
where
    F: Fn(&str, u16) -> Fut,
    Fut: Future<Output = Result<Vec<SocketAddr>, String>>,
{
    let mut next: Vec<Arc<Replica>> = Vec::new();
    for url in urls {
        let (Some(host), Some(port)) = (url.host_str(), url.port_or_known_default()) else {
            continue;
        };
        let mine = current.iter().filter(|r| r.url == *url);
        match lookup(host, port).await {
            Ok(addrs) if !addrs.is_empty() => {
                for addr in addrs {
                    if let Some(kept) = current
                        .iter()
                        .find(|r| r.url == *url && r.addr == Some(addr))
                    {
                        next.push(kept.clone());
                        continue;
                    }
                    match wire_client(module, settings, Some((host, addr))) {
                        Ok(http) => next.push(Replica::new(
                            module,
                            url.clone(),
                            Some(addr),
                            http,
                            settings,
                        )),
                        Err(e) => tracing::warn!(module, %addr, error = %e, "replica left out"),
                    }
                }
            }
            Ok(_) => {
                tracing::warn!(module, host, "DNS found no address; keeping the last ones");
                next.extend(mine.cloned());
            }
            Err(e) => {
                tracing::warn!(module, host, error = %e, "DNS lookup failed; keeping the last addresses");
                next.extend(mine.cloned());
            }
        }
    }
    let same =
        next.len() == current.len() && next.iter().zip(current).all(|(a, b)| Arc::ptr_eq(a, b));
    if same || next.is_empty() {
        return None;
    }
    tracing::info!(
        module,
        replicas = %next.iter().map(|r| r.name()).collect::<Vec<_>>().join(", "),
        "replicas found"
    );
    Some(next)
}

impl Service<RemoteRequest> for Replicas {
    type Response = RemoteResponse;
    type Error = RemoteError;
    type Future = BoxFuture<Result<RemoteResponse, RemoteError>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), RemoteError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: RemoteRequest) -> Self::Future {
        let module = self.module;
        let set = self.set.load();
        if set.is_empty() {
            return Box::pin(async move {
                Err(RemoteError::NotSent {
                    module,
                    reason: "no replica is known (none registered, or the registry not yet \
                             reached)"
                        .into(),
                })
            });
        }
        // A breaker that looked usable may still refuse (its one half-open probe just went
        // to another call): then the choice is made again among the others.
        let mut refused: Vec<usize> = Vec::new();
        let chosen = loop {
            let Some(i) = balance::pick(
                set.len(),
                |i| !refused.contains(&i) && set[i].breaker.wait().is_none(),
                |i| set[i].load.cost(),
            ) else {
                break None;
            };
            if set[i].breaker.admit().is_ok() {
                break Some(set[i].clone());
            }
            refused.push(i);
        };
        let Some(replica) = chosen else {
            let retry_after = set
                .iter()
                .filter_map(|r| r.breaker.wait())
                .min()
                .unwrap_or(Duration::from_millis(100));
            crate::metrics::record_refused(module, "breaker");
            return Box::pin(async move {
                Err(RemoteError::CircuitOpen {
                    module,
                    retry_after,
                })
            });
        };
        let left = req.ctx.remaining();
        let started = replica.load.start();
        let fut = replica.transport.clone().call(req);
        Box::pin(async move {
            let result = match left {
                Some(left) => tokio::time::timeout(left, fut)
                    .await
                    .unwrap_or(Err(RemoteError::DeadlineExceeded { module })),
                None => fut.await,
            };
            let failed = failed(&result);
            replica.load.finish(started, failed);
            replica.breaker.record(failed);
            result
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn call_marks_read_what_they_know_and_pass_over_the_rest() {
        let marks = CallMarks::parse("op=payment.charge;safe ; later-mark; forwarded");
        assert_eq!(
            marks,
            CallMarks {
                operation: Some("payment.charge"),
                safe: true,
                forwarded: true,
            }
        );
        assert_eq!(CallMarks::parse("op=; true"), CallMarks::default());
        assert_eq!(CallMarks::default().render(), None, "nothing to say");
        let forwarded = CallMarks {
            forwarded: true,
            ..CallMarks::default()
        };
        assert_eq!(forwarded.render().as_deref(), Some("forwarded"));
        assert_eq!(CallMarks::parse("forwarded"), forwarded);
    }

    #[test]
    fn a_write_is_related_to_its_resource_what_is_inside_it_and_what_it_is_inside_of() {
        assert!(related("/api/cart/v1/carts/u1", "/api/cart/v1/carts/u1"));
        assert!(related(
            "/api/cart/v1/carts/u1/items",
            "/api/cart/v1/carts/u1"
        ));
        assert!(related(
            "/api/cart/v1/carts/u1",
            "/api/cart/v1/carts/u1/items"
        ));
        assert!(related("/products?q=mug", "/products/OLJCESPC7Z"));
        assert!(!related("/api/cart/v1/carts/u1", "/api/cart/v1/carts/u2"));
        assert!(!related("/api/cart/v1/carts/u1", "/api/cart/v1/carts/u10"));
        assert!(!related(
            "/api/cart/v1/carts/u1/summary",
            "/api/cart/v1/carts/u1/items"
        ));
    }

    #[test]
    fn a_grpc_answer_is_kept_by_the_resource_its_call_names_else_by_the_modules_root() {
        const GET_CART: crate::call::Operation = crate::call::Operation {
            module: "cart",
            name: "get_cart",
            id: "cart.get_cart",
            method: crate::call::HttpMethod::Get,
            path: "/api/cart/v1/carts/{user_id}",
            repeat: crate::call::Repeat::ReadOnly,
            cached: true,
            access: &[crate::call::Access::Anyone],
            owner: None,
            errors: &[],
            summary: "",
        };
        let grpc = |resource: Option<&str>| RemoteRequest {
            op: Some(&GET_CART),
            content_type: Some(crate::grpc::JSON_CONTENT_TYPE.to_owned()),
            resource: resource.map(str::to_owned),
            ..RemoteRequest::new(
                CallContext::root(),
                Method::POST,
                "/cleave.cart.v1.Cart/GetCart".into(),
            )
        };
        let rest = RemoteRequest {
            op: Some(&GET_CART),
            ..RemoteRequest::new(
                CallContext::root(),
                Method::GET,
                "/api/cart/v1/carts/u1".into(),
            )
        };
        assert_eq!(resource_of(&rest), "/api/cart/v1/carts/u1");
        assert_eq!(
            resource_of(&grpc(Some("/api/cart/v1/carts/u1"))),
            "/api/cart/v1/carts/u1"
        );
        assert_eq!(resource_of(&grpc(None)), "", "the module's root");
        // Kept so, a change of u2's cart drops u2's answer and the one of unknown resource,
        // not u1's.
        let kept = KeptAnswers::new(Duration::from_secs(60));
        for (user, req) in [
            ("u1", grpc(Some("/api/cart/v1/carts/u1"))),
            ("u2", grpc(Some("/api/cart/v1/carts/u2"))),
            ("unknown", grpc(None)),
        ] {
            let (key, ticket, _) = kept.key(&req).expect("a cached operation's answer is kept");
            let answer = RemoteResponse {
                status: 200,
                content_type: None,
                body: Bytes::from(user),
                headers: Vec::new(),
                announced: Vec::new(),
            };
            kept.answers.keep(ticket, key, answer);
        }
        kept.answers
            .forget_where(|(_, k, _, _)| related(k, "/api/cart/v1/carts/u2"));
        let left = |req: &RemoteRequest| {
            let (key, _, _) = kept.key(req).expect("key");
            kept.answers.get(&key).map(|a| a.body)
        };
        assert_eq!(
            left(&grpc(Some("/api/cart/v1/carts/u1"))),
            Some(Bytes::from("u1"))
        );
        assert_eq!(left(&grpc(Some("/api/cart/v1/carts/u2"))), None);
        assert_eq!(left(&grpc(None)), None);
    }

    fn replica_at(url: &Url, addr: SocketAddr) -> Arc<Replica> {
        let settings = RemoteSettings::default();
        let http = wire_client("probe", &settings, None).expect("client");
        Replica::new("probe", url.clone(), Some(addr), http, &settings)
    }

    #[test]
    fn a_call_goes_to_the_path_and_query_under_the_replica_url() {
        let addr = SocketAddr::from(([127, 0, 0, 1], 8080));
        for (base, path, expected) in [
            (
                "http://catalog:8080",
                "/api/catalog/v1/products/OLJCESPC7Z",
                "http://catalog:8080/api/catalog/v1/products/OLJCESPC7Z",
            ),
            (
                "https://catalog:8443/",
                "/api/catalog/v1/products?q=red%20mug&limit=2",
                "https://catalog:8443/api/catalog/v1/products?q=red%20mug&limit=2",
            ),
            (
                "http://edge/shop/",
                "/api/cart/v1/carts/a%2Fb",
                "http://edge/shop/api/cart/v1/carts/a%2Fb",
            ),
        ] {
            let url = Url::parse(base).expect("url");
            let replica = replica_at(&url, addr);
            let Wire::Http(transport) = &replica.transport else {
                panic!("{base} is reached over REST");
            };
            let url = transport.url_for(path).expect("an http url");
            assert_eq!(url.to_string(), expected, "{base}");
        }
    }

    #[tokio::test]
    async fn discovery_keeps_replicas_whose_address_stays_and_the_last_ones_when_dns_fails() {
        let url = Url::parse("http://catalog:8080").expect("url");
        let addr = |last: u8| SocketAddr::from(([10, 0, 0, last], 8080));
        let settings = RemoteSettings::default();
        let current = vec![replica_at(&url, addr(1)), replica_at(&url, addr(2))];
        let urls = [url.clone()];

        // .2 stays (the same replica, its breaker and load), .1 went, .3 came.
        let next = rediscover("probe", &urls, &current, &settings, |host, port| {
            assert_eq!((host, port), ("catalog", 8080));
            async {
                Ok(vec![
                    SocketAddr::from(([10, 0, 0, 2], 8080)),
                    SocketAddr::from(([10, 0, 0, 3], 8080)),
                ])
            }
        })
        .await
        .expect("changed");
        assert_eq!(next.len(), 2);
        assert!(Arc::ptr_eq(&next[0], &current[1]));
        assert_eq!(next[1].addr, Some(addr(3)));
        assert_eq!(next[1].name(), "http://catalog:8080/ (10.0.0.3:8080)");

        // The same answer again: nothing to change.
        let again = rediscover("probe", &urls, &next, &settings, |_, _| async {
            Ok(vec![
                SocketAddr::from(([10, 0, 0, 2], 8080)),
                SocketAddr::from(([10, 0, 0, 3], 8080)),
            ])
        })
        .await;
        assert!(again.is_none());

        // DNS down, or no address: the last ones stay.
        for answer in [Err("no DNS".to_owned()), Ok(Vec::new())] {
            let kept = rediscover("probe", &urls, &next, &settings, |_, _| {
                let answer = answer.clone();
                async move { answer }
            })
            .await;
            assert!(kept.is_none(), "the set is unchanged");
        }
    }
}

//! A remote call before it is encoded on the wire, its answer, and how it fails.

use super::*;

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

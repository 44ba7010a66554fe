//! The call context: what travels with every module call, local or remote.
//!
//! Locally it is passed by reference. Over HTTP the request id travels as `x-request-id` and the
//! deadline as the remaining budget in milliseconds (`x-cleave-deadline-ms`), which avoids
//! comparing clocks across machines. The principal slot is filled by the identity layer; it is
//! not sent over the wire until calls between processes can prove who is calling.

use std::fmt;
use std::time::{Duration, Instant};

/// The role of shop administrators.
pub const ADMIN_ROLE: &str = "admin";
/// The role every registered user has.
pub const SHOPPER_ROLE: &str = "shopper";

/// Header carrying the request id.
pub const REQUEST_ID_HEADER: &str = "x-request-id";
/// Header carrying the remaining time budget of the call, in milliseconds.
pub const DEADLINE_HEADER: &str = "x-cleave-deadline-ms";

/// What a task serving a request knows of it without being handed its context: the request
/// id and the deadline (see [`within_request`]).
struct Scope {
    request_id: RequestId,
    deadline: Option<Instant>,
    /// The request's trace.
    trace: Trace,
    /// Headers the work asked to add to the request's answer (see [`mark_answer`] and
    /// [`note_announced`]); the task serving the request is the only one to touch them.
    marks: std::cell::RefCell<Marks>,
}

/// Headers for a request's answer, asked for by the work that served it.
pub type Marks = Vec<(&'static str, std::borrow::Cow<'static, str>)>;

/// Response header marking an answer as the replay of an earlier one with the same
/// idempotency key (`Idempotent-Replayed: true`).
pub const REPLAYED_HEADER: &str = "idempotent-replayed";

/// Response header of an answer to another module's call: the id of an event the call
/// committed (one header per event). The caller, which dropped what it kept of the resource it
/// wrote when this answer came, then drops only what it kept before when that event arrives
/// (see `RemoteClient::forget_answers_about_change`): answers it read since already show the
/// change.
pub const ANNOUNCED_HEADER: &str = "x-cleave-announced";

/// Adds a header to the answer of the request the current task serves, from code that does
/// not build that answer (a module saying its answer is an idempotent replay). Outside a
/// request, nothing.
pub fn mark_answer(name: &'static str, value: &'static str) {
    push_mark(name, std::borrow::Cow::Borrowed(value));
}

/// Notes that the work of the request the current task serves committed event `id` (see
/// [`ANNOUNCED_HEADER`]). Outside a request, nothing.
pub fn note_announced(id: uuid::Uuid) {
    push_mark(ANNOUNCED_HEADER, std::borrow::Cow::Owned(id.to_string()));
}

fn push_mark(name: &'static str, value: std::borrow::Cow<'static, str>) {
    let _ = CURRENT.try_with(|s| {
        if let Ok(mut marks) = s.marks.try_borrow_mut() {
            marks.push((name, value));
        }
    });
}

/// The headers [`mark_answer`] and [`note_announced`] added during `fut`, with its output.
pub async fn marked<F: std::future::Future>(fut: F) -> (F::Output, Marks) {
    let out = fut.await;
    let marks = CURRENT.try_with(|s| s.marks.take()).unwrap_or_default();
    (out, marks)
}

/// The trace a request belongs to, as its scope keeps it (see `crate::telemetry`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Trace {
    /// Whether its spans are exported.
    pub sampled: bool,
    /// Its trace id and the request's span id, when this process exports nothing (no
    /// OpenTelemetry layer): made here, or the trace id of the caller's `traceparent`.
    /// `None` when the OpenTelemetry layer keeps them.
    pub ids: Option<(u128, u64)>,
}

tokio::task_local! {
    static CURRENT: Scope;
}

/// The id of the request being served by the current task, if any.
pub fn current_request_id() -> Option<RequestId> {
    CURRENT.try_with(|s| s.request_id.clone()).ok()
}

/// The trace of the request the current task serves;
/// `None` outside a request.
pub fn current_trace() -> Option<Trace> {
    CURRENT.try_with(|s| s.trace).ok()
}

/// `fut` as the work of request `request_id` with `deadline`, in `trace`:
/// [`current_request_id`], [`CallContext::current`] and [`current_trace`] answer them inside.
pub fn within_request<F: std::future::Future>(
    request_id: RequestId,
    deadline: Option<Instant>,
    trace: Trace,
    fut: F,
) -> impl std::future::Future<Output = F::Output> {
    let scope = Scope {
        request_id,
        deadline,
        trace,
        marks: std::cell::RefCell::default(),
    };
    CURRENT.scope(scope, fut)
}

/// Runs `fut` on a task of its own, as work of the request the current task serves (its id,
/// deadline, trace and tracing span go along; headers it asks for with [`mark_answer`] reach
/// the answer), and waits for its output. If the caller stops waiting (its client went away
/// and the server dropped the request), `fut` still runs to its end: for work that must not
/// stop halfway, such as a saga that may have charged a card and must record or undo it.
///
/// # Panics
///
/// When `fut` panics, with its panic.
pub async fn to_completion<F>(fut: F) -> F::Output
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    use tracing::Instrument;
    let span = tracing::Span::current();
    let detached = CURRENT.try_with(|s| (s.request_id.clone(), s.deadline, s.trace));
    let handle = match detached {
        Ok((request_id, deadline, trace)) => {
            tokio::spawn(within_request(request_id, deadline, trace, marked(fut)).instrument(span))
        }
        Err(_) => tokio::spawn(async move { (fut.await, Vec::new()) }.instrument(span)),
    };
    match handle.await {
        Ok((out, marks)) => {
            for (name, value) in marks {
                push_mark(name, value);
            }
            out
        }
        // Never aborted: the task ends by returning or by panicking.
        Err(e) => std::panic::resume_unwind(e.into_panic()),
    }
}

/// Correlates every log line and remote call made for one incoming request.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RequestId(String);

impl RequestId {
    /// A fresh, time-ordered id (UUID v7). Its random bits come from a per-thread generator,
    /// not the operating system's: an id correlates, it proves nothing, and a system call per
    /// request was a third of a catalog read's system calls.
    pub fn generate() -> Self {
        let millis = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        let random = fastrand::u128(..).to_le_bytes();
        let mut bits = [0u8; 10];
        bits.copy_from_slice(&random[..10]);
        let id = uuid::Builder::from_unix_timestamp_millis(millis, &bits).into_uuid();
        let mut text = [0u8; uuid::fmt::Hyphenated::LENGTH];
        Self(id.hyphenated().encode_lower(&mut text).to_owned())
    }

    /// Accepts an id from a caller if it is short and printable; anything else is replaced by a
    /// fresh one, so a client cannot inject log lines or huge values.
    pub fn from_header(raw: Option<&str>) -> Self {
        match raw {
            Some(v)
                if !v.is_empty()
                    && v.len() <= 128
                    && v.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b)) =>
            {
                Self(v.to_owned())
            }
            _ => Self::generate(),
        }
    }

    /// The id as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Who the call is made for. Filled from a verified access token; `None` for anonymous calls.
#[derive(Clone, PartialEq, Eq)]
pub struct Principal {
    /// Subject: the user id.
    pub subject: String,
    /// Roles granted to the subject.
    pub roles: Vec<String>,
    /// The verified access token, relayed on calls to modules in other processes (never
    /// shown by `Debug`).
    pub access_token: Option<std::sync::Arc<str>>,
}

impl Principal {
    /// Whether the principal has `role`.
    pub fn has_role(&self, role: &str) -> bool {
        self.roles.iter().any(|r| r == role)
    }

    /// Whether the principal is a shop administrator.
    pub fn is_admin(&self) -> bool {
        self.has_role(ADMIN_ROLE)
    }
}

impl fmt::Debug for Principal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Principal")
            .field("subject", &self.subject)
            .field("roles", &self.roles)
            .field("access_token", &self.access_token.as_ref().map(|_| "***"))
            .finish()
    }
}

/// Request id, deadline, principal and calling modules of one call chain.
#[derive(Debug, Clone)]
pub struct CallContext {
    request_id: RequestId,
    deadline: Option<Instant>,
    principal: Option<Principal>,
    modules: Option<std::sync::Arc<[&'static str]>>,
    /// A read may be answered from what this process kept of an earlier answer to the same
    /// asker (see [`CallContext::kept_answer_will_do`]).
    kept_will_do: bool,
}

impl CallContext {
    /// A new root context with a fresh request id, no deadline and no principal: for CLI
    /// commands, background jobs and tests.
    pub fn root() -> Self {
        Self {
            request_id: RequestId::generate(),
            deadline: None,
            principal: None,
            modules: None,
            kept_will_do: false,
        }
    }

    /// The context of the request the current task serves (its request id and deadline, no
    /// principal), for work done for it by code that is not handed its context (token checks,
    /// a page's background calls); a root context outside any request.
    pub fn current() -> Self {
        CURRENT
            .try_with(|s| Self::new(s.request_id.clone(), s.deadline))
            .unwrap_or_else(|_| Self::root())
    }

    /// A context for an incoming request.
    pub fn new(request_id: RequestId, deadline: Option<Instant>) -> Self {
        Self {
            request_id,
            deadline,
            principal: None,
            modules: None,
            kept_will_do: false,
        }
    }

    /// Same context, saying that a read of another process's module may be answered from an
    /// answer this process kept for the same asker a moment ago (at most the module's
    /// `cache_ttl_ms`, else `remote.cache_ttl_ms`, and not after a change of that resource made through this
    /// process or announced by the module): for what may lag a moment behind, like the item
    /// count in a page's header, never for reads a decision rests on.
    #[must_use]
    pub fn kept_answer_will_do(mut self) -> Self {
        self.kept_will_do = true;
        self
    }

    /// Whether a kept answer will do (see [`CallContext::kept_answer_will_do`]).
    pub fn accepts_kept_answers(&self) -> bool {
        self.kept_will_do
    }

    /// Same context with a deadline `budget` from now, keeping an earlier existing one.
    #[must_use]
    pub fn with_timeout(mut self, budget: Duration) -> Self {
        let proposed = Instant::now() + budget;
        self.deadline = Some(match self.deadline {
            Some(existing) if existing < proposed => existing,
            _ => proposed,
        });
        self
    }

    /// Same context acting for `principal`.
    #[must_use]
    pub fn with_principal(mut self, principal: Principal) -> Self {
        self.principal = Some(principal);
        self
    }

    /// The request id.
    pub fn request_id(&self) -> &RequestId {
        &self.request_id
    }

    /// When the whole call chain must be done, if anyone set a deadline.
    pub fn deadline(&self) -> Option<Instant> {
        self.deadline
    }

    /// Time left before the deadline (zero once passed), or `None` without a deadline.
    pub fn remaining(&self) -> Option<Duration> {
        self.deadline
            .map(|d| d.saturating_duration_since(Instant::now()))
    }

    /// The principal, if the call is made for someone.
    pub fn principal(&self) -> Option<&Principal> {
        self.principal.as_ref()
    }

    /// Same context, made by `modules` of the deployment (proven by their certificate).
    #[must_use]
    pub fn with_caller_modules(mut self, modules: std::sync::Arc<[&'static str]>) -> Self {
        self.modules = Some(modules);
        self
    }

    /// The modules of the deployment that made the call over the network, as their client
    /// certificate proved; `None` for other callers.
    pub fn caller_modules(&self) -> Option<&[&'static str]> {
        self.modules.as_deref()
    }

    /// Parses the deadline header of an incoming request into an absolute deadline.
    pub fn deadline_from_header(raw: Option<&str>) -> Option<Instant> {
        let ms: u64 = raw?.trim().parse().ok()?;
        // A budget beyond a day is nonsense; ignore it rather than overflow.
        (ms <= 86_400_000).then(|| Instant::now() + Duration::from_millis(ms))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_id_from_header_replaces_unsafe_values() {
        assert_eq!(RequestId::from_header(Some("abc-123")).as_str(), "abc-123");
        assert_ne!(
            RequestId::from_header(Some("evil\nline")).as_str(),
            "evil\nline"
        );
        assert_ne!(
            RequestId::from_header(Some(&"a".repeat(200)))
                .as_str()
                .len(),
            200
        );
        assert!(!RequestId::from_header(None).as_str().is_empty());
    }

    #[tokio::test]
    async fn work_to_completion_outlives_its_caller_and_keeps_the_request() {
        let id = RequestId::from_header(Some("req-42"));
        let deadline = Instant::now() + Duration::from_secs(30);
        let trace = Trace {
            sampled: false,
            ids: Some((7, 9)),
        };
        let (release, released) = tokio::sync::oneshot::channel::<()>();
        let (seen_tx, seen) = tokio::sync::oneshot::channel();
        let caller = within_request(id.clone(), Some(deadline), trace, async move {
            to_completion(async move {
                // Waits until the caller is gone, then reports what it knows of its request.
                let _ = released.await;
                let ctx = CallContext::current();
                let _ = seen_tx.send((ctx.request_id().clone(), ctx.deadline(), current_trace()));
            })
            .await;
        });
        // The caller is dropped mid-way (a request dropped at its deadline).
        let mut caller = Box::pin(caller);
        assert!(futures::poll!(caller.as_mut()).is_pending());
        drop(caller);
        release.send(()).expect("the work still runs");
        let (seen_id, seen_deadline, seen_trace) = seen.await.expect("the work ran to its end");
        assert_eq!(seen_id, id);
        assert_eq!(seen_deadline, Some(deadline));
        assert_eq!(seen_trace, Some(trace));
    }

    #[tokio::test]
    async fn marks_made_to_completion_reach_the_answer() {
        let scope = within_request(
            RequestId::generate(),
            None,
            Trace {
                sampled: false,
                ids: None,
            },
            marked(to_completion(async {
                mark_answer(REPLAYED_HEADER, "true");
                5
            })),
        );
        let (out, marks) = scope.await;
        assert_eq!(out, 5);
        assert_eq!(marks, vec![(REPLAYED_HEADER, "true".into())]);
    }

    #[test]
    fn with_timeout_keeps_the_earlier_deadline() {
        let ctx = CallContext::root().with_timeout(Duration::from_secs(1));
        let first = ctx.deadline().unwrap();
        let ctx = ctx.with_timeout(Duration::from_secs(60));
        assert_eq!(ctx.deadline().unwrap(), first);
    }

    #[test]
    fn deadline_header_is_a_budget_in_milliseconds() {
        assert!(CallContext::deadline_from_header(Some("250")).is_some());
        assert!(CallContext::deadline_from_header(Some("soon")).is_none());
        assert!(CallContext::deadline_from_header(Some("999999999999")).is_none());
        assert!(CallContext::deadline_from_header(None).is_none());
    }
}

//! Load shedding at the edge: past `server.max_in_flight` requests being served by a worker,
//! a new request is answered at once with 503 `cleave.overloaded` and `Retry-After`, before
//! any work is spent on it: the outermost middleware asks first (no request scope, no token
//! check, no log line per refusal; one warning a second says how many were refused). Probes
//! (`/health/...`) are exempt, so an overloaded process is not also restarted by its
//! orchestrator.
//!
//! A worker is one event loop: the limit bounds how many requests share it, and so the time
//! an admitted request waits for it (see "Load shedding" in docs/BENCHMARKS.md for the
//! latency of admitted requests at twice the load a process can serve).

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use actix_web::dev::ServiceRequest;
use actix_web::http::header::RETRY_AFTER;
use actix_web::{HttpResponse, web};

use crate::error::{ApiError, KernelError, PROBLEM_JSON, Problem};

/// `Retry-After` of a shed request, in seconds.
const SHED_RETRY_AFTER_SECS: u64 = 1;

/// Requests in flight on one worker, and how many it admits.
#[derive(Debug)]
pub struct InFlight {
    now: AtomicUsize,
    limit: usize,
    /// The answer to a shed request, rendered once.
    refusal: actix_web::web::Bytes,
    /// Refusals since the last warning, and the second of that warning.
    refused: AtomicU64,
    warned_at: AtomicU64,
}

impl InFlight {
    /// A counter admitting `limit` requests at once.
    pub fn new(limit: usize) -> Self {
        let err = KernelError::Overloaded {
            retry_after_secs: SHED_RETRY_AFTER_SECS,
        };
        let mut problem = Problem::new(err.status(), err.code(), err.title(), None);
        problem.detail = Some(err.to_string());
        problem.params = err.params();
        let refusal = serde_json::to_vec(&problem).unwrap_or_default().into();
        Self {
            now: AtomicUsize::new(0),
            limit: limit.max(1),
            refusal,
            refused: AtomicU64::new(0),
            warned_at: AtomicU64::new(0),
        }
    }

    /// Counts a refusal; at most once a second, says how many there were.
    fn note_refusal(&self) {
        self.refused.fetch_add(1, Ordering::Relaxed);
        metrics::counter!(crate::metrics::HTTP_SHED).increment(1);
        let second = crate::events::now_ms().unsigned_abs() / 1000;
        if self.warned_at.swap(second, Ordering::Relaxed) != second {
            let refused = self.refused.swap(0, Ordering::Relaxed);
            tracing::warn!(refused, limit = self.limit, "overloaded: shedding requests");
        }
    }
}

/// Counts one admitted request until it is answered.
pub(crate) struct Admitted(web::Data<InFlight>);

impl Drop for Admitted {
    fn drop(&mut self) {
        self.0.now.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A request refused: [`Shed::answer`] is its 503.
pub(crate) struct Shed(web::Data<InFlight>);

impl Shed {
    /// 503 `cleave.overloaded` with `Retry-After`.
    pub(crate) fn answer(&self) -> HttpResponse {
        HttpResponse::ServiceUnavailable()
            .content_type(PROBLEM_JSON)
            .insert_header((RETRY_AFTER, SHED_RETRY_AFTER_SECS))
            .body(self.0.refusal.clone())
    }
}

/// Admits `req` (the guard counts it until dropped; `None` when the app sheds nothing or the
/// request is a probe), or refuses it. Called first thing by the outermost middleware,
/// [`super::canonical_path_scope`].
pub(crate) fn admit(req: &ServiceRequest) -> Result<Option<Admitted>, Shed> {
    let Some(in_flight) = req.app_data::<web::Data<InFlight>>() else {
        return Ok(None);
    };
    // Probes and scrapes are answered even while shedding: they say what is going on.
    if req.path().starts_with("/health/") || req.path() == "/metrics" {
        return Ok(None);
    }
    if in_flight.now.fetch_add(1, Ordering::Relaxed) >= in_flight.limit {
        in_flight.now.fetch_sub(1, Ordering::Relaxed);
        in_flight.note_refusal();
        return Err(Shed(in_flight.clone()));
    }
    Ok(Some(Admitted(in_flight.clone())))
}

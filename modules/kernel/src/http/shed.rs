//! Load shedding at the edge: past `server.max_in_flight` requests being served by a worker,
//! a new request is answered at once with 503 `cleave.overloaded` and `Retry-After`, before
//! any work is spent on it: it is the outermost middleware (no request scope, no token check,
//! no log line per refusal; one warning a second says how many were refused). Probes
//! (`/health/...`) are exempt, so an overloaded process is not also restarted by its
//! orchestrator.
//!
//! A worker is one event loop: the limit bounds how many requests share it, and so the time
//! an admitted request waits for it (see "Load shedding" in docs/BENCHMARKS.md for the
//! latency of admitted requests at twice the load a process can serve).

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::RETRY_AFTER;
use actix_web::middleware::Next;
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
        let second = crate::events::now_ms().unsigned_abs() / 1000;
        if self.warned_at.swap(second, Ordering::Relaxed) != second {
            let refused = self.refused.swap(0, Ordering::Relaxed);
            tracing::warn!(refused, limit = self.limit, "overloaded: shedding requests");
        }
    }
}

/// Counts one admitted request until it is answered.
struct Admitted<'a>(&'a InFlight);

impl Drop for Admitted<'_> {
    fn drop(&mut self) {
        self.0.now.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Middleware: sheds requests past the worker's in-flight limit (see the module docs).
///
/// # Errors
/// Passes on errors of inner services unchanged.
pub async fn shed_load(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let Some(in_flight) = req.app_data::<web::Data<InFlight>>().cloned() else {
        return Ok(next.call(req).await?.map_into_boxed_body());
    };
    if req.path().starts_with("/health/") {
        return Ok(next.call(req).await?.map_into_boxed_body());
    }
    if in_flight.now.fetch_add(1, Ordering::Relaxed) >= in_flight.limit {
        in_flight.now.fetch_sub(1, Ordering::Relaxed);
        in_flight.note_refusal();
        let res = HttpResponse::ServiceUnavailable()
            .content_type(PROBLEM_JSON)
            .insert_header((RETRY_AFTER, SHED_RETRY_AFTER_SECS))
            .body(in_flight.refusal.clone());
        return Ok(req.into_response(res));
    }
    let _admitted = Admitted(&in_flight);
    Ok(next.call(req).await?.map_into_boxed_body())
}

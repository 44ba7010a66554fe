//! Load shedding at the edge: past `server.max_in_flight` requests being served by a worker,
//! a new request is answered at once with 503 `cleave.overloaded` and `Retry-After`, before
//! any work (token checks included) is spent on it. Probes (`/health/...`) are exempt, so an
//! overloaded process is not also restarted by its orchestrator.
//!
//! A worker is one event loop: the limit bounds how many requests share it, and so the time
//! an admitted request waits for it (see "Load shedding" in docs/BENCHMARKS.md for the
//! latency of admitted requests at twice the load a process can serve).

use std::sync::atomic::{AtomicUsize, Ordering};

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::web;

use crate::error::{Failure, KernelError};

/// `Retry-After` of a shed request, in seconds.
const SHED_RETRY_AFTER_SECS: u64 = 1;

/// Requests in flight on one worker, and how many it admits.
#[derive(Debug)]
pub struct InFlight {
    now: AtomicUsize,
    limit: usize,
}

impl InFlight {
    /// A counter admitting `limit` requests at once.
    pub fn new(limit: usize) -> Self {
        Self {
            now: AtomicUsize::new(0),
            limit: limit.max(1),
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
        let res =
            actix_web::ResponseError::error_response(&Failure::from(KernelError::Overloaded {
                retry_after_secs: SHED_RETRY_AFTER_SECS,
            }));
        return Ok(req.into_response(res));
    }
    let _admitted = Admitted(&in_flight);
    Ok(next.call(req).await?.map_into_boxed_body())
}

//! Load shedding at the edge: past `server.max_in_flight` requests being served by a worker,
//! or while the worker's event loop runs later than `server.max_queue_delay_ms`, a new
//! request is answered at once with 503 `cleave.overloaded` and `Retry-After`, before any work
//! is spent on it: the outermost middleware asks first (no request scope, no token check, no
//! log line per refusal; one warning a second says how many were refused). Probes
//! (`/health/...`) are exempt, so an overloaded process is not also restarted by its
//! orchestrator.
//!
//! A worker is one event loop. The in-flight limit bounds the requests that wait inside it
//! (for a database, another module). It does not see the ones that wait in front of it: a
//! request served without waiting on anything is in flight for one poll only, so a worker
//! flooded with such requests never has more than one in flight while they queue in its
//! sockets. For those the loop's own delay is the measure (as in Node's `toobusy` or
//! Fastify's `under-pressure`): while requests come, a timer on the worker is due every half
//! of `max_queue_delay_ms` (at least 1 ms); how late it fires is how long a ready request
//! waits for the loop. While the last reading (or the time the timer is overdue now) exceeds
//! the limit, new requests are refused, and the backlog drains at the price of a refusal each.
//! See "Load shedding" in docs/BENCHMARKS.md for the latency of admitted requests at twice
//! the load a process can serve.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use actix_web::dev::ServiceRequest;
use actix_web::http::header::RETRY_AFTER;
use actix_web::{HttpResponse, web};

use crate::error::{ApiError, KernelError, PROBLEM_JSON, Problem};

/// `Retry-After` of a shed request, in seconds.
const SHED_RETRY_AFTER_SECS: u64 = 1;

/// Requests in flight on one worker, and how many it admits; how late its loop runs, and how
/// late it may.
#[derive(Debug)]
pub struct InFlight {
    now: AtomicUsize,
    limit: usize,
    /// The loop's delay past which requests are refused; `None`: not watched.
    max_delay: Option<Duration>,
    /// What the loop's delays are measured from.
    epoch: Instant,
    /// When the loop timer is next due, in µs since `epoch`; 0 while it does not run.
    due_us: AtomicU64,
    /// How late the loop timer last fired, in µs.
    late_us: AtomicU64,
    /// Whether the loop timer runs; whether a request came since it last fired.
    timing: AtomicBool,
    busy: AtomicBool,
    /// The answer to a shed request, rendered once.
    refusal: actix_web::web::Bytes,
    /// Refusals since the last warning, and the second of that warning.
    refused: AtomicU64,
    warned_at: AtomicU64,
}

impl InFlight {
    /// A counter admitting `limit` requests at once, and while the loop is at most
    /// `max_delay` late (zero: however late).
    pub fn new(limit: usize, max_delay: Duration) -> Self {
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
            max_delay: Some(max_delay).filter(|d| !d.is_zero()),
            epoch: Instant::now(),
            due_us: AtomicU64::new(0),
            late_us: AtomicU64::new(0),
            timing: AtomicBool::new(false),
            busy: AtomicBool::new(false),
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

impl InFlight {
    fn since_epoch_us(&self, at: Instant) -> u64 {
        u64::try_from(at.saturating_duration_since(self.epoch).as_micros()).unwrap_or(u64::MAX)
    }

    /// Whether the loop runs later than allowed: by the timer's last reading, or by how long
    /// it is overdue now. Starts the timer when it does not run (the first request after a
    /// quiet spell).
    fn loop_too_late(this: &web::Data<Self>, max: Duration) -> bool {
        this.busy.store(true, Ordering::Relaxed);
        let now = Instant::now();
        if !this.timing.swap(true, Ordering::AcqRel) {
            this.late_us.store(0, Ordering::Relaxed);
            this.due_us.store(
                this.since_epoch_us(now + Self::every(max)),
                Ordering::Relaxed,
            );
            actix_web::rt::spawn(Self::time_loop(this.clone(), max));
            return false;
        }
        let max_us = u64::try_from(max.as_micros()).unwrap_or(u64::MAX);
        let due = this.due_us.load(Ordering::Relaxed);
        // 0: the timer is stopping (a request slipped in as it did); nothing is overdue.
        let overdue = if due == 0 {
            0
        } else {
            this.since_epoch_us(now).saturating_sub(due)
        };
        this.late_us.load(Ordering::Relaxed).max(overdue) > max_us
    }

    /// How often the loop timer is due: twice per allowed delay, at least every millisecond
    /// (the timer's resolution).
    fn every(max: Duration) -> Duration {
        (max / 2).max(Duration::from_millis(1))
    }

    /// The loop timer: fires every [`Self::every`], noting how late; stops after a period
    /// without requests (nothing to protect, no wake-ups of an idle worker).
    async fn time_loop(this: web::Data<Self>, max: Duration) {
        let every = Self::every(max);
        loop {
            let due = this.epoch + Duration::from_micros(this.due_us.load(Ordering::Relaxed));
            tokio::time::sleep_until(tokio::time::Instant::from_std(due)).await;
            let now = Instant::now();
            this.late_us.store(
                u64::try_from(now.saturating_duration_since(due).as_micros()).unwrap_or(u64::MAX),
                Ordering::Relaxed,
            );
            if !this.busy.swap(false, Ordering::AcqRel) {
                this.due_us.store(0, Ordering::Relaxed);
                this.late_us.store(0, Ordering::Relaxed);
                this.timing.store(false, Ordering::Release);
                return;
            }
            this.due_us
                .store(this.since_epoch_us(now + every), Ordering::Relaxed);
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
    if in_flight
        .max_delay
        .is_some_and(|max| InFlight::loop_too_late(in_flight, max))
    {
        in_flight.note_refusal();
        return Err(Shed(in_flight.clone()));
    }
    if in_flight.now.fetch_add(1, Ordering::Relaxed) >= in_flight.limit {
        in_flight.now.fetch_sub(1, Ordering::Relaxed);
        in_flight.note_refusal();
        return Err(Shed(in_flight.clone()));
    }
    Ok(Some(Admitted(in_flight.clone())))
}

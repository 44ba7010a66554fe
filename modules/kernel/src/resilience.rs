//! Retries and circuit breaking in the remote-call pipeline ([`crate::client::RemoteClient`]):
//! their settings and the breaker's state; the client's layers apply them.
//!
//! - **Retries** (tower's `Retry` service with its `TpsBudget`, and [`RetryPolicy`] deciding):
//!   a request that was never sent is tried again whatever its operation; one whose answer was
//!   lost, or that got 502/503/504/429, only when its operation is safe to repeat
//!   (read-only, idempotent, or carrying its key). At most `attempts` tries, with full-jitter
//!   backoff (a random wait in `[0, min(cap, base × 2^n)]`, at least a `Retry-After`), only
//!   inside the caller's deadline, and only while the target's retry budget allows (retries
//!   at most `budget_percent` of the calls of the last 10 s, plus `budget_min_per_sec`), so a
//!   dead dependency never sees a retry storm. Never while the breaker is open.
//! - **Circuit breaker** per target module ([`Breaker`]): opens after `consecutive` failures in
//!   a row, or when at least `failure_percent` of the last `window` calls failed (once
//!   `min_calls` were made); failures are "not sent", "answer lost", deadlines and 5xx answers
//!   (4xx are the caller's). While open every call fails at once (`RemoteError::CircuitOpen`);
//!   after `open_for` (doubling on each failed probe up to `max_open_for`, with jitter) one
//!   probe is let through: its success closes the breaker, its failure opens it again.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Retry settings of the calls to one module.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetrySettings {
    /// Most tries of one call, the first included (1: no retries).
    pub attempts: u32,
    /// Backoff base: the first retry waits up to this long.
    pub base: Duration,
    /// Longest backoff.
    pub cap: Duration,
    /// Retries allowed as a share of calls, in percent, over the last 10 seconds.
    pub budget_percent: f32,
    /// Retries allowed per second whatever the calls.
    pub budget_min_per_sec: u32,
}

impl Default for RetrySettings {
    fn default() -> Self {
        Self {
            attempts: 3,
            base: Duration::from_millis(25),
            cap: Duration::from_millis(250),
            budget_percent: 10.0,
            budget_min_per_sec: 10,
        }
    }
}

/// Circuit-breaker settings of the calls to one module.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BreakerSettings {
    /// Failures in a row that open the breaker.
    pub consecutive: u32,
    /// Calls the failure rate is measured over.
    pub window: usize,
    /// Calls needed in the window before the rate counts.
    pub min_calls: usize,
    /// Failure rate (percent of the window) that opens the breaker.
    pub failure_percent: u32,
    /// How long it stays open the first time.
    pub open_for: Duration,
    /// Longest it stays open (the wait doubles after each failed probe).
    pub max_open_for: Duration,
}

impl Default for BreakerSettings {
    fn default() -> Self {
        Self {
            consecutive: 5,
            window: 20,
            min_calls: 10,
            failure_percent: 50,
            open_for: Duration::from_secs(5),
            max_open_for: Duration::from_secs(60),
        }
    }
}

/// A random duration in `[0, max]` (a per-thread generator: jitter needs spread, not secrecy).
pub(crate) fn random_up_to(max: Duration) -> Duration {
    let nanos = u64::try_from(max.as_nanos()).unwrap_or(u64::MAX);
    Duration::from_nanos(fastrand::u64(..=nanos))
}

/// Where a breaker is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    /// Calls go through.
    Closed,
    /// Calls fail at once until the instant; then one probe goes.
    Open,
    /// One probe is out; other calls fail at once.
    HalfOpen,
}

impl BreakerState {
    /// Its name where people read it (`closed`, `half-open`, `open`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Closed => "closed",
            Self::HalfOpen => "half-open",
            Self::Open => "open",
        }
    }

    /// Its value in the `cleave_breaker_state` gauge: 0 closed, 1 half-open, 2 open.
    pub fn gauge_value(self) -> f64 {
        match self {
            Self::Closed => 0.0,
            Self::HalfOpen => 1.0,
            Self::Open => 2.0,
        }
    }
}

struct BreakerInner {
    state: BreakerState,
    /// Outcomes of the last calls (true: failed), newest last.
    window: VecDeque<bool>,
    consecutive: u32,
    open_until: Instant,
    /// How long the next opening lasts.
    open_for: Duration,
}

/// The circuit breaker of one target module (see the module documentation). Shared by every
/// clone of its client.
pub struct Breaker {
    pub(crate) module: &'static str,
    settings: BreakerSettings,
    inner: Mutex<BreakerInner>,
}

impl Breaker {
    /// A closed breaker for `module`.
    pub fn new(module: &'static str, settings: BreakerSettings) -> Arc<Self> {
        Arc::new(Self {
            module,
            settings,
            inner: Mutex::new(BreakerInner {
                state: BreakerState::Closed,
                window: VecDeque::with_capacity(settings.window),
                consecutive: 0,
                open_until: Instant::now(),
                open_for: settings.open_for,
            }),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BreakerInner> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Where it is now.
    pub fn state(&self) -> BreakerState {
        self.lock().state
    }

    /// How long until a call may go: `None` when one may go now (closed, or open long enough
    /// that a probe may go). Changes nothing, unlike [`Breaker::admit`].
    pub(crate) fn wait(&self) -> Option<Duration> {
        let b = self.lock();
        let now = Instant::now();
        match b.state {
            BreakerState::Closed => None,
            BreakerState::Open | BreakerState::HalfOpen if now >= b.open_until => None,
            BreakerState::Open | BreakerState::HalfOpen => Some(b.open_until - now),
        }
    }

    /// Whether a call may go now: closed, or open long enough that this call is the probe.
    /// `Err` holds how long until a probe may go.
    pub(crate) fn admit(&self) -> Result<(), Duration> {
        let mut b = self.lock();
        let now = Instant::now();
        match b.state {
            BreakerState::Closed => Ok(()),
            // The probe's answer is awaited until `open_until`; a probe lost (its caller gave
            // up) lets another go then.
            BreakerState::Open | BreakerState::HalfOpen if now >= b.open_until => {
                b.state = BreakerState::HalfOpen;
                b.open_until = now + b.open_for;
                tracing::info!(module = self.module, "circuit half-open: one probe goes");
                Ok(())
            }
            BreakerState::Open | BreakerState::HalfOpen => Err(b.open_until - now),
        }
    }

    /// Records the outcome of an admitted call.
    pub(crate) fn record(&self, failed: bool) {
        let mut b = self.lock();
        match b.state {
            BreakerState::HalfOpen if failed => {
                let next = b.open_for.saturating_mul(2).min(self.settings.max_open_for);
                self.open(&mut b, next);
            }
            BreakerState::HalfOpen => {
                b.state = BreakerState::Closed;
                b.window.clear();
                b.consecutive = 0;
                b.open_for = self.settings.open_for;
                tracing::info!(module = self.module, "circuit closed: the probe succeeded");
            }
            BreakerState::Open => {}
            BreakerState::Closed => {
                if b.window.len() == self.settings.window {
                    b.window.pop_front();
                }
                b.window.push_back(failed);
                b.consecutive = if failed { b.consecutive + 1 } else { 0 };
                let failures = b.window.iter().filter(|f| **f).count();
                let by_rate = b.window.len() >= self.settings.min_calls
                    && failures * 100 >= b.window.len() * self.settings.failure_percent as usize;
                if b.consecutive >= self.settings.consecutive || by_rate {
                    let first = self.settings.open_for;
                    self.open(&mut b, first);
                }
            }
        }
    }

    fn open(&self, b: &mut BreakerInner, open_for: Duration) {
        // Up to a tenth more, so that callers of one dependency do not probe in step.
        let wait = open_for + random_up_to(open_for / 10);
        b.state = BreakerState::Open;
        b.open_for = open_for;
        b.open_until = Instant::now() + wait;
        b.window.clear();
        b.consecutive = 0;
        tracing::warn!(
            module = self.module,
            open_ms = wait.as_millis() as u64,
            "circuit open: calls fail at once"
        );
    }
}

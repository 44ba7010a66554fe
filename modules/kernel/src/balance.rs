//! Choosing a replica: power of two choices over peak-EWMA cost, the balancer of Finagle and
//! Linkerd. Each replica keeps its calls in flight and a latency estimate that jumps up to
//! any slower answer at once (the peak) and decays towards faster ones; its cost is that
//! estimate times (calls in flight + 1). A call samples two usable replicas at random and
//! takes the clearly cheaper one (by a quarter and [`NOISE`]; closer costs are noise, and the
//! first drawn goes): a slow or busy replica is passed over without every caller herding to
//! the one that looks best. A failed call counts as a slow one ([`FAILURE_PENALTY`]), and an
//! estimate not refreshed for a while decays ([`DECAY`]), so a replica passed over is tried
//! again later instead of never.
//!
//! Written here rather than taken from tower's `p2c::Balance`: that balancer is driven by
//! service readiness, while a replica's usability here is its circuit breaker's, decided per
//! call, and the estimate must see the breaker's failures; the selection itself is these few
//! lines.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// How fast an estimate forgets: the time constant of its exponential decay.
/// A replica passed over after a failure (or a 50 ms answer) is tried again within about ten
/// seconds.
pub(crate) const DECAY: Duration = Duration::from_secs(2);
/// What a failed call counts as, at least.
pub(crate) const FAILURE_PENALTY: Duration = Duration::from_millis(100);
/// How much cheaper a replica must be to be preferred: costs closer than this are treated
/// as equal (measurement noise on loopback is of that order).
const CLEARLY_CHEAPER: f64 = 1.25;
/// A difference of cost below this is noise too, however large a share of it: answers of a
/// tenth of a millisecond and one that waited a millisecond on a busy host's scheduler tell
/// nothing about the replicas (preferring by them starved a healthy replica for seconds).
pub(crate) const NOISE: Duration = Duration::from_millis(1);
/// The estimate of a replica no call has measured yet.
const FIRST_ESTIMATE: Duration = Duration::from_millis(1);

/// One replica's load: calls in flight and the peak-EWMA latency estimate.
#[derive(Debug)]
pub(crate) struct Load {
    in_flight: AtomicU32,
    /// The estimate in nanoseconds, and when it was last set.
    estimate: Mutex<(f64, Instant)>,
}

impl Default for Load {
    fn default() -> Self {
        Self {
            in_flight: AtomicU32::new(0),
            estimate: Mutex::new((FIRST_ESTIMATE.as_nanos() as f64, Instant::now())),
        }
    }
}

/// `estimate` decayed over `elapsed`.
fn decayed(estimate: f64, elapsed: Duration) -> f64 {
    estimate * (-elapsed.as_secs_f64() / DECAY.as_secs_f64()).exp()
}

impl Load {
    fn lock(&self) -> std::sync::MutexGuard<'_, (f64, Instant)> {
        self.estimate
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The replica's cost now: its estimate (decayed since last set) times (calls in flight
    /// + 1).
    pub(crate) fn cost(&self) -> f64 {
        let (estimate, at) = *self.lock();
        let in_flight = f64::from(self.in_flight.load(Ordering::Relaxed));
        decayed(estimate, at.elapsed()) * (in_flight + 1.0)
    }

    /// A call starts: returns when, for [`Load::finish`].
    pub(crate) fn start(&self) -> Instant {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        Instant::now()
    }

    /// The call started at `started` ended, `failed` or not: the estimate takes its latency
    /// (a failure counts as at least [`FAILURE_PENALTY`]).
    pub(crate) fn finish(&self, started: Instant, failed: bool) {
        self.in_flight.fetch_sub(1, Ordering::Relaxed);
        let mut rtt = started.elapsed();
        if failed {
            rtt = rtt.max(FAILURE_PENALTY);
        }
        self.observe(rtt);
    }

    fn observe(&self, rtt: Duration) {
        let rtt = rtt.as_nanos() as f64;
        let mut guard = self.lock();
        let (estimate, at) = *guard;
        let now = Instant::now();
        let old = decayed(estimate, now.duration_since(at));
        // The peak at once; towards a faster answer by the decay's weight.
        let next = if rtt > old {
            rtt
        } else {
            let keep = (-now.duration_since(at).as_secs_f64() / DECAY.as_secs_f64())
                .exp()
                .min(0.9);
            old * keep + rtt * (1.0 - keep)
        };
        *guard = (next, now);
    }

    /// Calls in flight.
    #[cfg(test)]
    fn in_flight(&self) -> u32 {
        self.in_flight.load(Ordering::Relaxed)
    }
}

/// Of `n` replicas, the one a call goes to: two distinct usable ones drawn at random, the
/// cheaper taken; `None` when none is usable.
pub(crate) fn pick(
    n: usize,
    usable: impl Fn(usize) -> bool,
    cost: impl Fn(usize) -> f64,
) -> Option<usize> {
    let candidates: Vec<usize> = (0..n).filter(|i| usable(*i)).collect();
    match candidates.len() {
        0 => None,
        1 => Some(candidates[0]),
        len => {
            let a = fastrand::usize(..len);
            let mut b = fastrand::usize(..len - 1);
            if b >= a {
                b += 1;
            }
            let (a, b) = (candidates[a], candidates[b]);
            // Costs within a quarter and a millisecond of each other are noise: the first
            // drawn (at random) goes, which keeps healthy replicas even; a slow or busy one is
            // clearly dearer.
            let (ca, cb) = (cost(a), cost(b));
            let noise = NOISE.as_nanos() as f64;
            let clearly_cheaper = cb * CLEARLY_CHEAPER + noise < ca;
            Some(if clearly_cheaper { b } else { a })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Costs in nanoseconds, from milliseconds.
    fn ms(costs: [f64; 3]) -> [f64; 3] {
        costs.map(|c| c * 1e6)
    }

    /// How many of 3000 picks each replica gets at these costs.
    fn picks(costs: [f64; 3]) -> [usize; 3] {
        let mut seen = [0usize; 3];
        for _ in 0..3000 {
            seen[pick(3, |_| true, |i| costs[i]).expect("some")] += 1;
        }
        seen
    }

    #[test]
    fn costs_within_a_quarter_or_a_millisecond_are_a_coin_toss() {
        for costs in [ms([10.0, 12.0, 11.0]), ms([0.1, 0.9, 0.5])] {
            let seen = picks(costs);
            assert!(
                seen.iter().all(|n| (800..1200).contains(n)),
                "{costs:?}: {seen:?}"
            );
        }
    }

    #[test]
    fn the_cheaper_of_two_is_taken_and_only_usable_ones() {
        let costs = ms([5.0, 1.0, 9.0]);
        let seen = picks(costs);
        // Replica 2 is the dearest of every pair it is drawn in: never taken. Replica 1
        // wins both pairs it is in (2/3 of draws), replica 0 the one it has with 2.
        assert_eq!(seen[2], 0, "{seen:?}");
        assert!(seen[1] > 1800 && seen[1] < 2200, "{seen:?}");
        assert!(seen[0] > 800 && seen[0] < 1200, "{seen:?}");
        for _ in 0..100 {
            assert_eq!(pick(3, |i| i == 2, |i| costs[i]), Some(2));
        }
        assert_eq!(pick(3, |_| false, |i| costs[i]), None);
        assert_eq!(pick(0, |_| true, |_| 0.0), None);
    }

    #[test]
    fn a_slower_answer_raises_the_estimate_at_once_and_calls_in_flight_multiply_it() {
        let load = Load::default();
        let base = load.cost();
        load.observe(Duration::from_millis(50));
        let slow = load.cost();
        assert!(slow > base * 40.0, "{base} -> {slow}");
        load.start();
        load.start();
        let busy = load.cost();
        assert!(busy > slow * 2.9, "{slow} -> {busy}");
        assert_eq!(load.in_flight(), 2);
    }

    #[test]
    fn a_failure_counts_as_slow_and_faster_answers_bring_the_estimate_down() {
        let load = Load::default();
        let started = load.start();
        load.finish(started, true);
        let failed = load.cost();
        assert!(
            failed >= FAILURE_PENALTY.as_nanos() as f64 * 0.99,
            "{failed}"
        );
        for _ in 0..50 {
            load.observe(Duration::from_micros(100));
        }
        assert!(load.cost() < failed / 10.0, "{failed} -> {}", load.cost());
        assert_eq!(load.in_flight(), 0);
    }

    #[test]
    fn an_estimate_left_alone_decays() {
        let high = 1e9;
        assert!(decayed(high, DECAY * 3) < high / 19.0);
        assert!((decayed(high, Duration::ZERO) - high).abs() < 1.0);
    }
}

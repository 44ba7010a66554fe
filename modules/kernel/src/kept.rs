//! Answers kept a moment, for reads whose caller said a kept answer will do
//! ([`crate::context::CallContext::kept_answer_will_do`]) and for `cached` operations.
//!
//! One [`Kept`] is a bounded map of answers, each good for a time to live, with one rule that
//! makes it safe to fill from reads that race with writes: a read takes a [`Ticket`] before it
//! asks, and its answer is kept only if nothing was forgotten since (a write that finished
//! while the read was under way may have changed what it read). The remote client keeps a
//! module's answers in one; a module may keep what it read of its own data in another.

use std::borrow::Borrow;
use std::collections::HashMap;
use std::fmt;
use std::hash::Hash;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// Answers `V` by key `K`, each kept for at most the time to live, at most `max` of them.
pub struct Kept<K, V> {
    ttl: Duration,
    max: usize,
    answers: Mutex<HashMap<K, (Instant, V)>>,
    /// Bumped by every forget: an answer asked for before it is not kept.
    generation: AtomicU64,
}

/// When a read was asked, as far as [`Kept::keep`] is concerned (see the module's doc).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ticket(u64);

impl<K: Eq + Hash, V: Clone> Kept<K, V> {
    /// Keeps each answer for `ttl` (zero keeps none), at most `max` answers; past `max` the
    /// expired ones go, then all.
    pub fn new(ttl: Duration, max: usize) -> Self {
        Self {
            ttl,
            max,
            answers: Mutex::new(HashMap::new()),
            generation: AtomicU64::new(0),
        }
    }

    /// Whether it keeps anything (a time to live above zero).
    pub fn keeps(&self) -> bool {
        !self.ttl.is_zero()
    }

    /// The answer kept for `key`, if it is younger than the time to live.
    pub fn get<Q>(&self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Eq + Hash + ?Sized,
    {
        let answers = self.answers.lock().unwrap_or_else(PoisonError::into_inner);
        answers
            .get(key)
            .filter(|(at, _)| at.elapsed() < self.ttl)
            .map(|(_, value)| value.clone())
    }

    /// Take before asking; hand to [`Kept::keep`] with the answer.
    pub fn ticket(&self) -> Ticket {
        Ticket(self.generation.load(Ordering::Acquire))
    }

    /// Keeps `value` for `key`, unless something was forgotten since `ticket` was taken (the
    /// value may say what was true before that change) or nothing is kept at all.
    pub fn keep(&self, ticket: Ticket, key: K, value: V) {
        if !self.keeps() {
            return;
        }
        let mut answers = self.answers.lock().unwrap_or_else(PoisonError::into_inner);
        if self.generation.load(Ordering::Acquire) != ticket.0 {
            return;
        }
        if answers.len() >= self.max {
            let ttl = self.ttl;
            answers.retain(|_, (at, _)| at.elapsed() < ttl);
            if answers.len() >= self.max {
                answers.clear();
            }
        }
        answers.insert(key, (Instant::now(), value));
    }

    /// Forgets every answer; says how many there were.
    pub fn forget_all(&self) -> usize {
        let mut answers = self.answers.lock().unwrap_or_else(PoisonError::into_inner);
        self.generation.fetch_add(1, Ordering::AcqRel);
        let kept = answers.len();
        answers.clear();
        kept
    }

    /// Forgets the answers whose key `gone` says changed.
    pub fn forget_where(&self, gone: impl Fn(&K) -> bool) {
        let mut answers = self.answers.lock().unwrap_or_else(PoisonError::into_inner);
        self.generation.fetch_add(1, Ordering::AcqRel);
        answers.retain(|key, _| !gone(key));
    }

    /// Forgets the answers whose key `gone` says changed that were kept before `before`; those
    /// kept since stay, and reads under way may still be kept. For a change whose answers
    /// were forgotten (by key) at `before`: every answer kept since was asked after that
    /// forget, so it shows the change.
    pub fn forget_kept_before(&self, before: Instant, gone: impl Fn(&K) -> bool) {
        let mut answers = self.answers.lock().unwrap_or_else(PoisonError::into_inner);
        answers.retain(|key, (at, _)| *at >= before || !gone(key));
    }

    /// Forgets the answer kept for `key`.
    pub fn forget<Q>(&self, key: &Q)
    where
        K: Borrow<Q>,
        Q: Eq + Hash + ?Sized,
    {
        let mut answers = self.answers.lock().unwrap_or_else(PoisonError::into_inner);
        self.generation.fetch_add(1, Ordering::AcqRel);
        answers.remove(key);
    }

    /// How many answers are kept (expired ones included until they are dropped).
    pub fn len(&self) -> usize {
        self.answers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    /// Whether none is.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Shows the time to live and how many answers are kept, never the answers (they may hold
/// tokens or a shopper's data).
impl<K, V> fmt::Debug for Kept<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kept = self
            .answers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len();
        f.debug_struct("Kept")
            .field("ttl", &self.ttl)
            .field("kept", &kept)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kept() -> Kept<&'static str, u32> {
        Kept::new(Duration::from_secs(60), 2)
    }

    #[test]
    fn an_answer_is_kept_until_it_is_forgotten() {
        let kept = kept();
        kept.keep(kept.ticket(), "a", 1);
        kept.keep(kept.ticket(), "b", 2);
        assert_eq!((kept.get("a"), kept.get("b")), (Some(1), Some(2)));
        kept.forget("a");
        assert_eq!((kept.get("a"), kept.get("b")), (None, Some(2)));
        kept.forget_where(|k| k.starts_with('b'));
        assert!(kept.is_empty());
    }

    #[test]
    fn an_answer_asked_for_before_a_forget_is_not_kept() {
        let kept = kept();
        let ticket = kept.ticket();
        kept.forget("elsewhere");
        kept.keep(ticket, "a", 1);
        assert_eq!(kept.get("a"), None, "it may predate the change");
        kept.keep(kept.ticket(), "a", 2);
        assert_eq!(kept.get("a"), Some(2));
    }

    #[test]
    fn nothing_is_kept_without_a_time_to_live_and_no_more_than_the_bound() {
        let none: Kept<&str, u32> = Kept::new(Duration::ZERO, 2);
        none.keep(none.ticket(), "a", 1);
        assert_eq!(none.get("a"), None);

        let kept = kept();
        for (key, value) in [("a", 1), ("b", 2), ("c", 3)] {
            kept.keep(kept.ticket(), key, value);
        }
        assert!(kept.len() <= 2, "bounded: {kept:?}");
        assert_eq!(kept.get("c"), Some(3), "the newest stays");
    }
}

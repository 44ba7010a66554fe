//! Whether a failed call is tried again, within the target's retry budget.

use super::*;

/// Whether an answer's status says the callee (or what is behind it) failed for now.
fn transient_status(status: u16) -> bool {
    matches!(status, 429 | 502 | 503 | 504)
}

/// Seconds from a `Retry-After` header of an answer (the delay form).
pub(super) fn retry_after(res: &RemoteResponse) -> Option<Duration> {
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
pub(super) fn failed(result: &Result<RemoteResponse, RemoteError>) -> bool {
    match result {
        Ok(res) => res.status >= 500,
        Err(RemoteError::Problem { .. } | RemoteError::Protocol { .. }) => false,
        Err(_) => true,
    }
}

//! Rate limits: keyed GCRA limiters (governor) and the middleware that applies them at the
//! edge, where the client's address is the real one (every process answers every route, so
//! the process a client talks to is the edge, whatever the placement).

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::Method;
use actix_web::middleware::Next;
use actix_web::web;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};

use crate::error::{Failure, KernelError};

/// A limiter of `per_minute` events per key and minute (bursts up to that many).
pub struct RateLimiter {
    limiter: DefaultKeyedRateLimiter<String>,
}

impl RateLimiter {
    /// `per_minute` events per key per minute; 0 is taken as 1.
    pub fn per_minute(per_minute: u32) -> Self {
        let n = NonZeroU32::new(per_minute.max(1)).unwrap_or(NonZeroU32::MIN);
        Self {
            limiter: DefaultKeyedRateLimiter::keyed(Quota::per_minute(n)),
        }
    }

    /// Counts one event for `key`.
    ///
    /// # Errors
    /// How long to wait when the key is over its limit.
    pub fn check(&self, key: &str) -> Result<(), Duration> {
        match self.limiter.check_key(&key.to_owned()) {
            Ok(()) => Ok(()),
            Err(not_until) => Err(not_until.wait_time_from(DefaultClock::default().now())),
        }
    }
}

/// Whole seconds to announce in `Retry-After` (at least 1).
pub fn retry_after_secs(wait: Duration) -> u64 {
    wait.as_secs() + u64::from(wait.subsec_nanos() > 0)
}

/// One edge limit: requests with `method` to `path`, per client address.
pub struct EdgeRule {
    /// The method limited.
    pub method: Method,
    /// The exact path limited.
    pub path: &'static str,
    /// The limiter (keyed by client address).
    pub limiter: RateLimiter,
}

/// The edge limits of a process (app data for [`edge_rate_limit`]).
#[derive(Clone, Default)]
pub struct EdgeRules(pub Arc<Vec<EdgeRule>>);

/// Middleware: refuses requests over an [`EdgeRules`] limit of their client address with 429
/// problem+json (`cleave.rate_limited`) and `Retry-After`.
///
/// # Errors
/// Passes on errors of inner services unchanged.
pub async fn edge_rate_limit(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let over = req.app_data::<web::Data<EdgeRules>>().and_then(|rules| {
        let rule = rules
            .0
            .iter()
            .find(|r| r.method == req.method() && r.path == req.path())?;
        // The TCP peer: forwarded-for headers are the client's to forge.
        let ip = req
            .peer_addr()
            .map_or_else(|| "unknown".to_owned(), |a| a.ip().to_string());
        rule.limiter.check(&ip).err()
    });
    match over {
        None => Ok(next.call(req).await?.map_into_boxed_body()),
        Some(wait) => {
            let res = actix_web::ResponseError::error_response(&Failure::from(
                KernelError::RateLimited {
                    retry_after_secs: retry_after_secs(wait),
                },
            ));
            Ok(req.into_response(res))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_over_its_limit_waits_and_other_keys_do_not() {
        let limiter = RateLimiter::per_minute(3);
        for _ in 0..3 {
            limiter.check("a").expect("within the limit");
        }
        let wait = limiter.check("a").expect_err("over the limit");
        assert!(
            wait > Duration::ZERO && wait <= Duration::from_secs(20),
            "{wait:?}"
        );
        limiter.check("b").expect("another key has its own budget");
        assert_eq!(retry_after_secs(Duration::from_millis(1500)), 2);
        assert_eq!(retry_after_secs(Duration::from_secs(3)), 3);
    }
}

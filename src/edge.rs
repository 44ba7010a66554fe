//! The edge's own limits: which routes are rate-limited per client address (logins and
//! registrations, through the API and the storefront's forms), applied by whichever process
//! the client talks to.

use std::sync::Arc;

use cleave_kernel::call::HttpMethod;
use cleave_kernel::ratelimit::{EdgeRule, EdgeRules, RateLimiter};

/// What a limited route does, which decides its limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limited {
    /// A login (`login_per_ip_per_minute`).
    Login,
    /// A registration (`register_per_ip_per_minute`).
    Register,
    /// A guest token (`guests_per_ip_per_minute`).
    Guest,
}

/// The routes limited per client address: method, path, and what they do.
pub fn limited_routes() -> [(HttpMethod, &'static str, Limited); 5] {
    [
        (
            HttpMethod::Post,
            identity_api::ops::LOGIN.path,
            Limited::Login,
        ),
        (
            HttpMethod::Post,
            identity_api::ops::REGISTER.path,
            Limited::Register,
        ),
        (
            HttpMethod::Post,
            identity_api::ops::GUEST.path,
            Limited::Guest,
        ),
        (HttpMethod::Post, storefront::LOGIN_PATH, Limited::Login),
        (
            HttpMethod::Post,
            storefront::REGISTER_PATH,
            Limited::Register,
        ),
    ]
}

/// The limits of [`limited_routes`], sized by identity's settings.
pub fn rules(identity: &identity::IdentityConfig) -> EdgeRules {
    EdgeRules(Arc::new(
        limited_routes()
            .into_iter()
            .map(|(method, path, limited)| EdgeRule {
                method: actix_web::http::Method::from_bytes(method.as_str().as_bytes())
                    .unwrap_or(actix_web::http::Method::POST),
                path,
                limiter: RateLimiter::per_minute(match limited {
                    Limited::Login => identity.login_per_ip_per_minute,
                    Limited::Register => identity.register_per_ip_per_minute,
                    Limited::Guest => identity.guests_per_ip_per_minute,
                }),
            })
            .collect(),
    ))
}

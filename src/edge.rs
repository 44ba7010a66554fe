//! The edge's own limits: which routes are rate-limited per client address (logins and
//! registrations, through the API and the storefront's forms), applied by whichever process
//! the client talks to.

use std::sync::Arc;

use cleave_kernel::call::HttpMethod;
use cleave_kernel::ratelimit::{EdgeRule, EdgeRules, RateLimiter};

/// The routes limited per client address: method, path, and whether it is a login (else a
/// registration).
pub fn limited_routes() -> [(HttpMethod, &'static str, bool); 4] {
    [
        (HttpMethod::Post, identity_api::ops::LOGIN.path, true),
        (HttpMethod::Post, identity_api::ops::REGISTER.path, false),
        (HttpMethod::Post, storefront::LOGIN_PATH, true),
        (HttpMethod::Post, storefront::REGISTER_PATH, false),
    ]
}

/// The limits of [`limited_routes`], sized by identity's settings.
pub fn rules(identity: &identity::IdentityConfig) -> EdgeRules {
    EdgeRules(Arc::new(
        limited_routes()
            .into_iter()
            .map(|(method, path, login)| EdgeRule {
                method: actix_web::http::Method::from_bytes(method.as_str().as_bytes())
                    .unwrap_or(actix_web::http::Method::POST),
                path,
                limiter: RateLimiter::per_minute(if login {
                    identity.login_per_ip_per_minute
                } else {
                    identity.register_per_ip_per_minute
                }),
            })
            .collect(),
    ))
}

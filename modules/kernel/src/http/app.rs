//! The one middleware stack of every Cleave server: `cleave serve` and the test servers build
//! their apps here, so a test server sees what production does (the canonical path, limits,
//! rate limits, CORS, authentication, load shedding, the request scope, the handler timeout).

use std::sync::Arc;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceFactory, ServiceRequest, ServiceResponse};
use actix_web::middleware::{Condition, from_fn};
use actix_web::{App, web};

use super::{CallerProof, HttpLimits, authenticate, configure_extractors, handler_timeout};
use crate::auth::Authenticator;
use crate::ratelimit::{EdgeRules, edge_rate_limit};

/// What the middleware of a server is configured with.
#[derive(Clone, Default)]
pub struct ServerStack {
    /// Body size, handler timeout, access log.
    pub limits: HttpLimits,
    /// Browser origins allowed to call the API (CORS); empty: CORS off.
    pub cors_allowed_origins: Vec<String>,
    /// Verifies bearer tokens; without it every bearer token is refused.
    pub authenticator: Option<Arc<Authenticator>>,
    /// Per-client limits on sensitive routes.
    pub edge_rules: EdgeRules,
    /// Whether module APIs need a caller proof.
    pub caller_proof: CallerProof,
}

/// CORS for the configured origins: the API's methods and the headers clients send.
fn cors(origins: &[String]) -> actix_cors::Cors {
    use actix_web::http::header;
    let mut cors = actix_cors::Cors::default()
        .allowed_methods(["GET", "POST", "PUT", "DELETE"])
        .allowed_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            header::HeaderName::from_static("idempotency-key"),
        ])
        .expose_headers([header::LOCATION, header::RETRY_AFTER])
        .max_age(600);
    for origin in origins {
        cors = cors.allowed_origin(origin);
    }
    cors
}

/// An app with the whole middleware stack and the kernel's extractor configuration: add the
/// routes with `.configure(..)` / `.service(..)`.
pub fn app(
    stack: ServerStack,
) -> App<
    impl ServiceFactory<
        ServiceRequest,
        Config = (),
        Response = ServiceResponse<impl MessageBody>,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    let limits = stack.limits;
    let mut app = App::new()
        .wrap(from_fn(handler_timeout))
        .wrap(Condition::new(
            !stack.cors_allowed_origins.is_empty(),
            cors(&stack.cors_allowed_origins),
        ))
        .wrap(from_fn(edge_rate_limit))
        .wrap(from_fn(authenticate))
        .wrap(from_fn(super::request_scope))
        .wrap(from_fn(super::canonical_path_scope))
        .app_data(web::Data::new(stack.edge_rules))
        .app_data(web::Data::new(stack.caller_proof))
        // Per worker: the app is built once by each.
        .app_data(web::Data::new(super::InFlight::new(
            limits.max_in_flight,
            limits.max_queue_delay,
        )))
        .configure(move |c| configure_extractors(c, limits));
    if let Some(auth) = stack.authenticator {
        app = app.app_data(web::Data::from(auth));
    }
    app
}

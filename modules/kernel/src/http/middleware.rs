//! The middleware every request passes: the request scope (request id, context, access log,
//! problem bodies), authentication (bearer tokens, caller proof) and the handler timeout.

use std::future::{Ready, ready};
use std::time::Instant;

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::http::StatusCode;
use actix_web::http::header::{CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{FromRequest, HttpMessage, HttpRequest, HttpResponse, web};
use tracing::Instrument;

use crate::context::{
    ANNOUNCED_HEADER, CallContext, DEADLINE_HEADER, REQUEST_ID_HEADER, RequestId, marked,
    within_request,
};
use crate::error::{ApiError, Failure, KernelError, is_problem_json, problem_response};

/// Middleware (use with `actix_web::middleware::from_fn`): gives every request a request id
/// and a [`CallContext`], runs it inside a tracing span carrying the id (so every log line of the
/// request has it), echoes the id in the response, sets `X-Content-Type-Options: nosniff`,
/// turns any bare error response into problem+json and logs an access line (see
/// [`HttpLimits::log_every_request`]).
///
/// # Errors
/// Passes on errors of inner services unchanged.
pub async fn request_scope(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    // The edge starts the deadline: the server's handler timeout, or the caller's own budget
    // (`x-cleave-deadline-ms`) when that is sooner.
    let limits = limits(&req);
    let ctx = context_from_headers(req.headers()).with_timeout(limits.handler_timeout);
    let request_id = ctx.request_id().clone();
    let deadline = ctx.deadline();
    req.extensions_mut().insert(ctx);
    // A span only where someone sees it (`telemetry::request_spans`). Its fields are
    // formatted on every request, so they are few; the route template and the span's name
    // only when traces are exported (the access line has method and path).
    let span = if crate::telemetry::request_spans() {
        let route = crate::telemetry::exporting().then(|| route_of(req.request()));
        let name = route.as_ref().map(|r| format!("{} {r}", req.method()));
        tracing::info_span!(
            "request",
            otel.name = name.as_deref(),
            otel.kind = "server",
            otel.status_code = tracing::field::Empty,
            request_id = %request_id,
            http.route = route.as_deref(),
            http.response.status_code = tracing::field::Empty,
        )
    } else {
        tracing::Span::none()
    };
    let trace = crate::telemetry::continue_trace(&span, req.headers());
    let log_every_request = limits.log_every_request;
    within_request(
        request_id.clone(),
        deadline,
        trace,
        answer(
            req,
            next,
            span,
            request_id,
            trace.sampled,
            log_every_request,
        ),
    )
    .await
}

/// The route template a request matched (`/api/catalog/v1/products/{id}`), or `unmatched`:
/// a label that does not grow with the ids in paths.
fn route_of(req: &HttpRequest) -> String {
    req.match_pattern()
        .unwrap_or_else(|| "unmatched".to_owned())
}

/// The rest of [`request_scope`], inside the request's scope (so its own log lines carry the
/// request id too).
async fn answer(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
    span: tracing::Span,
    request_id: RequestId,
    sampled: bool,
    log_every_request: bool,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let method = req.method().clone();
    let path = req.path().to_owned();
    let started = Instant::now();
    let (res, marks) = marked(next.call(req).instrument(span.clone())).await;
    let res = match res {
        Ok(res) => res,
        Err(e) => {
            // An inner middleware's error (e.g. the handler timeout): rendered by actix.
            span.in_scope(|| tracing::warn!(%method, %path, error = %e, "request failed"));
            return Err(e);
        }
    };
    let mut res = ensure_problem_body(res.map_into_boxed_body(), &request_id);
    // Events the call committed are named to a calling module only (see ANNOUNCED_HEADER);
    // the request's marks are read only when there are such events.
    let module_call = marks.iter().any(|(name, _)| *name == ANNOUNCED_HEADER)
        && crate::client::CallMarks::of(res.request().headers())
            .operation
            .is_some();
    for (name, value) in marks {
        let announced = name == ANNOUNCED_HEADER;
        if announced && !module_call {
            continue;
        }
        let (name, Ok(value)) = (HeaderName::from_static(name), HeaderValue::from_str(&value))
        else {
            continue;
        };
        if announced {
            res.headers_mut().append(name, value);
        } else {
            res.headers_mut().insert(name, value);
        }
    }
    if let Ok(v) = HeaderValue::from_str(request_id.as_str()) {
        res.headers_mut()
            .insert(HeaderName::from_static(REQUEST_ID_HEADER), v);
    }
    // No answer is to be sniffed into another media type (a JSON body rendered as HTML).
    res.headers_mut().insert(
        actix_web::http::header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    let trace_ids = crate::context::current_trace();
    let status = res.status();
    let elapsed_us = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
    let code = status.as_u16();
    // The template the route knows, else the router's answer.
    let route = {
        let req = res.request();
        req.app_data::<crate::metrics::RouteTemplate>()
            .copied()
            .or_else(|| {
                req.extensions()
                    .get::<crate::metrics::RouteTemplate>()
                    .copied()
            })
            .map(|t| t.0)
            .ok_or_else(|| route_of(req))
    };
    if sampled {
        span.record("http.response.status_code", code);
        if status.is_server_error() {
            span.record("otel.status_code", "ERROR");
        }
    }
    crate::metrics::note_request(elapsed_us, || {
        (
            format!(
                "{method} {}",
                match &route {
                    Ok(r) => r,
                    Err(r) => r.as_str(),
                }
            ),
            code,
            crate::telemetry::trace_id_of(&span, trace_ids),
        )
    });
    crate::metrics::record_request(&method, route, code, started);
    span.in_scope(|| {
        if status.is_server_error() {
            tracing::warn!(status = code, %method, %path, elapsed_us, "request completed");
        } else if status.is_client_error() || log_every_request {
            tracing::info!(status = code, %method, %path, elapsed_us, "request completed");
        } else {
            tracing::debug!(status = code, %method, %path, elapsed_us, "request completed");
        }
    });
    Ok(res)
}

/// Error responses made by actix itself (no route, wrong method, unreadable request) have no
/// problem body; give them one so that every error a client sees has the same shape. HTML
/// error pages (the storefront's) are left as they are.
fn ensure_problem_body(
    res: ServiceResponse<BoxBody>,
    request_id: &RequestId,
) -> ServiceResponse<BoxBody> {
    let status = res.status();
    let content_type = res
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    // An HTML error page was written on purpose, for people: keep it.
    let is_page = content_type.is_some_and(|v| v.starts_with("text/html"));
    if !(status.is_client_error() || status.is_server_error())
        || is_problem_json(content_type)
        || is_page
    {
        return res;
    }
    let err = match status {
        StatusCode::NOT_FOUND => KernelError::RouteNotFound,
        StatusCode::METHOD_NOT_ALLOWED => KernelError::MethodNotAllowed,
        StatusCode::PAYLOAD_TOO_LARGE => KernelError::PayloadTooLarge {
            limit_bytes: res
                .request()
                .app_data::<HttpLimits>()
                .map_or(0, |l| l.max_body_bytes),
        },
        StatusCode::UNSUPPORTED_MEDIA_TYPE => KernelError::UnsupportedMediaType,
        s if s.is_client_error() => KernelError::BadRequest {
            detail: s.canonical_reason().unwrap_or("bad request").to_owned(),
        },
        _ => KernelError::Internal,
    };
    // The same problem a handler returning `err` would give, with the status actix chose.
    let mut problem = Failure::from(err).problem().clone();
    problem.status = status.as_u16();
    problem.request_id = Some(request_id.to_string());
    // What actix said about the methods a route takes (`Allow`, RFC 9110 §15.5.6) stays.
    let allow = res.headers().get(actix_web::http::header::ALLOW).cloned();
    let (req, _) = res.into_parts();
    let mut answer = problem_response(status, problem);
    if let Some(allow) = allow {
        answer
            .headers_mut()
            .insert(actix_web::http::header::ALLOW, allow);
    }
    ServiceResponse::new(req, answer)
}

/// Middleware (after [`request_scope`]): puts who is calling in the request's
/// [`CallContext`], for the operations to decide:
///
/// - with `Authorization: Bearer`, the token's principal, verified with the app's
///   [`crate::auth::Authenticator`]; an invalid token is refused with 401 problem+json (and a
///   `WWW-Authenticate` header, the reason logged), whatever the route;
/// - with a client certificate naming modules of the deployment ([`crate::tls::PeerModules`]),
///   those modules, unless the request says it is forwarded on behalf of someone else
///   ([`crate::client::CallMarks::forwarded`]): a process forwarding a client's request does
///   not lend it its own certificate.
///
/// Requests without either pass as anonymous (refused by [`CallerProof`] where required).
///
/// # Errors
/// Passes on errors of inner services unchanged.
pub async fn authenticate(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let peer = req
        .conn_data::<crate::tls::PeerModules>()
        .map(|p| p.0.clone());
    let principal = match bearer_token(req.headers()) {
        None => None,
        Some(token) => match verify(&req, &token).await {
            Ok(principal) => Some(principal),
            Err(err) => {
                let res = refusal(err, "Bearer error=\"invalid_token\"");
                return Ok(req.into_response(res));
            }
        },
    };
    if principal.is_none()
        && peer.is_none()
        && let Some(refusal) = missing_caller_proof(&req)
    {
        return Ok(req.into_response(refusal));
    }
    let modules = peer.filter(|_| !crate::client::CallMarks::of(req.headers()).forwarded);
    if principal.is_some() || modules.is_some() {
        let mut ctx = req
            .extensions()
            .get::<CallContext>()
            .cloned()
            .unwrap_or_else(|| context_from_headers(req.headers()));
        if let Some(principal) = principal {
            ctx = ctx.with_principal(principal);
        }
        if let Some(modules) = modules {
            ctx = ctx.with_caller_modules(modules);
        }
        req.extensions_mut().insert(ctx);
    }
    Ok(next.call(req).await?.map_into_boxed_body())
}

async fn verify(
    req: &ServiceRequest,
    token: &str,
) -> Result<crate::context::Principal, crate::auth::AuthError> {
    match req.app_data::<web::Data<crate::auth::Authenticator>>() {
        Some(auth) => auth.authenticate(token).await,
        None => Err(crate::auth::AuthError::Unauthenticated {
            reason: "this process accepts no access tokens".into(),
        }),
    }
}

/// The answer to a request refused before any route: a 401 carries `WWW-Authenticate` with
/// `challenge` and is logged with its reason, for operators (a token never is).
fn refusal(err: crate::auth::AuthError, challenge: &'static str) -> HttpResponse {
    let unauthenticated = err.status() == StatusCode::UNAUTHORIZED;
    if unauthenticated {
        tracing::info!(code = err.code(), reason = %err, "request refused");
    }
    let mut res = actix_web::ResponseError::error_response(&Failure::from(err));
    if unauthenticated {
        res.headers_mut().insert(
            actix_web::http::header::WWW_AUTHENTICATE,
            HeaderValue::from_static(challenge),
        );
    }
    res
}

/// Whether module APIs of this process answer only callers that prove who they are: a
/// signed-in user (bearer token) or a module of the deployment (client certificate naming
/// `<module>.modules.cleave`, see [`crate::tls::PeerModules`]). For internal processes that
/// only other modules and edge processes reach.
#[derive(Debug, Clone, Copy, Default)]
pub struct CallerProof {
    /// Refuse anonymous calls to `/api/...` (except the API document and the JWKS).
    pub required: bool,
}

/// The 401 for an anonymous call that needed a proof, if this is one. The path is the one
/// the router matches ([`canonical_path`] ran first).
fn missing_caller_proof(req: &ServiceRequest) -> Option<HttpResponse> {
    let required = req
        .app_data::<web::Data<CallerProof>>()
        .is_some_and(|p| p.required);
    let path = req.path();
    let public = path == "/api/openapi.json"
        || path.starts_with("/api/docs")
        || path == "/api/identity/v1/jwks";
    if !required || !path.starts_with("/api/") || public {
        return None;
    }
    let err = crate::auth::AuthError::Unauthenticated {
        reason: "this process answers signed-in users and modules of the deployment only".into(),
    };
    Some(refusal(err, "Bearer"))
}

/// Middleware (outermost): rewrites the request's path to the form the router matches and
/// every check sees ([`canonical_path`]), so that no spelling of a path (percent-encoded
/// letters, doubled slashes, dot segments) reaches a route while passing a check keyed on
/// another spelling.
///
/// # Errors
/// Passes on errors of inner services unchanged.
pub async fn canonical_path_scope(
    mut req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    // Load shedding first: a refused request costs nothing more (see `super::shed`).
    let _admitted = match super::shed::admit(&req) {
        Ok(admitted) => admitted,
        Err(shed) => return Ok(req.into_response(shed.answer())),
    };
    if let std::borrow::Cow::Owned(path) = canonical_path(req.uri().path()) {
        let path_and_query = match req.uri().query() {
            Some(q) => format!("{path}?{q}"),
            None => path,
        };
        let mut parts = req.head().uri.clone().into_parts();
        parts.path_and_query = actix_web::http::uri::PathAndQuery::try_from(path_and_query).ok();
        if parts.path_and_query.is_some()
            && let Ok(uri) = actix_web::http::Uri::from_parts(parts)
        {
            req.match_info_mut().get_mut().update(&uri);
            req.head_mut().uri = uri;
        }
    }
    Ok(next.call(req).await?.map_into_boxed_body())
}

/// The canonical spelling of a request path (RFC 3986 §6.2.2): percent-encoded unreserved
/// characters decoded (`%61` is `a`), other escapes in upper case, empty segments merged
/// (`//` is `/`) and dot segments removed (`/a/./b/../c` is `/a/c`). Borrowed when `raw` is
/// already canonical (the common case costs a scan).
pub fn canonical_path(raw: &str) -> std::borrow::Cow<'_, str> {
    if !raw.contains('%') && !raw.contains("//") && !raw.contains("/.") && raw.starts_with('/') {
        return std::borrow::Cow::Borrowed(raw);
    }
    let bytes = raw.as_bytes();
    let mut decoded = String::with_capacity(raw.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| char::from(b).to_digit(16);
        if bytes[i] == b'%'
            && let (Some(hi), Some(lo)) = (
                bytes.get(i + 1).copied().and_then(hex),
                bytes.get(i + 2).copied().and_then(hex),
            )
        {
            let byte = u8::try_from(hi * 16 + lo).unwrap_or(0);
            if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
                decoded.push(char::from(byte));
            } else {
                decoded.push_str(&format!("%{byte:02X}"));
            }
            i += 3;
        } else {
            decoded.push(char::from(bytes[i]));
            i += 1;
        }
    }
    let mut segments: Vec<&str> = Vec::new();
    let mut trailing = false;
    for segment in decoded
        .split('/')
        .skip(usize::from(decoded.starts_with('/')))
    {
        trailing = matches!(segment, "" | "." | "..");
        match segment {
            "" | "." => {}
            ".." => {
                segments.pop();
            }
            s => segments.push(s),
        }
    }
    let mut path = String::with_capacity(decoded.len());
    for s in &segments {
        path.push('/');
        path.push_str(s);
    }
    if trailing || segments.is_empty() {
        path.push('/');
    }
    if path == raw {
        std::borrow::Cow::Borrowed(raw)
    } else {
        std::borrow::Cow::Owned(path)
    }
}

/// The token of an `Authorization: Bearer <token>` header.
fn bearer_token(headers: &HeaderMap) -> Option<String> {
    let value = headers
        .get(actix_web::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    crate::auth::bearer_token(value).map(str::to_owned)
}

/// The call context a request's headers describe (a fresh request id when it has none).
fn context_from_headers(headers: &HeaderMap) -> CallContext {
    // Names built once: a lookup by `&str` parses the name on every request.
    const H_REQUEST_ID: HeaderName = HeaderName::from_static(REQUEST_ID_HEADER);
    const H_DEADLINE: HeaderName = HeaderName::from_static(DEADLINE_HEADER);
    let header = |name: &HeaderName| headers.get(name).and_then(|v| v.to_str().ok());
    CallContext::new(
        RequestId::from_header(header(&H_REQUEST_ID)),
        CallContext::deadline_from_header(header(&H_DEADLINE)),
    )
}

impl FromRequest for CallContext {
    type Error = actix_web::Error;
    type Future = Ready<Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let ctx = req
            .extensions()
            .get::<CallContext>()
            .cloned()
            .unwrap_or_else(|| context_from_headers(req.headers()));
        ready(Ok(ctx))
    }
}

/// Limits and logging of the HTTP layer.
#[derive(Debug, Clone, Copy)]
pub struct HttpLimits {
    /// Largest JSON body accepted, in bytes.
    pub max_body_bytes: usize,
    /// Log an access line at `info` for every request. Otherwise only 4xx (`info`) and 5xx
    /// (`warn`) are logged, the rest at `debug`: a JSON line per request costs about as much
    /// as serving a catalog read (see docs/BENCHMARKS.md).
    pub log_every_request: bool,
    /// Longest a received request may take to be answered; then 504 `cleave.timeout`.
    pub handler_timeout: std::time::Duration,
    /// Requests a worker serves at once; past it, 503 `cleave.overloaded` (see
    /// `super::shed`).
    pub max_in_flight: usize,
    /// How late a worker's event loop may run; past it, 503 `cleave.overloaded` (see
    /// `super::shed`). Zero: not watched.
    pub max_queue_delay: std::time::Duration,
}

impl Default for HttpLimits {
    fn default() -> Self {
        Self {
            max_body_bytes: 64 * 1024,
            log_every_request: false,
            handler_timeout: std::time::Duration::from_secs(30),
            max_in_flight: 256,
            max_queue_delay: std::time::Duration::ZERO,
        }
    }
}

/// The server's [`HttpLimits`] (the defaults when the app has none).
fn limits(req: &ServiceRequest) -> HttpLimits {
    req.app_data::<HttpLimits>().copied().unwrap_or_default()
}

/// Middleware (innermost): answers 504 problem+json `cleave.timeout` when the handler is not
/// done by the request's deadline (the sooner of [`HttpLimits::handler_timeout`] and the
/// caller's `x-cleave-deadline-ms`); the handler is dropped, cancelling what it awaited. A
/// request whose deadline has already passed is not started.
///
/// # Errors
/// [`KernelError::Timeout`] (rendered as 504), or the inner service's error.
pub async fn handler_timeout(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    // The request's deadline (set by `request_scope`); the server's limit without one.
    let limit = req
        .extensions()
        .get::<CallContext>()
        .and_then(CallContext::remaining)
        .unwrap_or_else(|| limits(&req).handler_timeout);
    if limit.is_zero() {
        return Err(Failure::from(KernelError::Timeout { limit_ms: 0 }).into());
    }
    match tokio::time::timeout(limit, next.call(req)).await {
        Ok(res) => Ok(res?.map_into_boxed_body()),
        Err(_) => Err(Failure::from(KernelError::Timeout {
            limit_ms: u64::try_from(limit.as_millis()).unwrap_or(u64::MAX),
        })
        .into()),
    }
}

#[cfg(test)]
mod tests {
    use super::canonical_path;

    #[test]
    fn every_spelling_of_a_path_has_one_canonical_form() {
        for (raw, canonical) in [
            ("/api/payment/v1/charges", "/api/payment/v1/charges"),
            ("/%61pi/payment/v1/charges", "/api/payment/v1/charges"),
            ("/api/identity/v1/%74okens", "/api/identity/v1/tokens"),
            ("/api/identity/v1/%74OKENS", "/api/identity/v1/tOKENS"),
            ("//api///payment/v1/charges", "/api/payment/v1/charges"),
            ("/api/./payment/v1/charges", "/api/payment/v1/charges"),
            ("/api/docs/../payment/v1/charges", "/api/payment/v1/charges"),
            (
                "/api/docs/%2e%2E/payment/v1/charges",
                "/api/payment/v1/charges",
            ),
            ("/../../api/cart", "/api/cart"),
            ("/api/cart/v1/carts/a%2fb", "/api/cart/v1/carts/a%2Fb"),
            (
                "/api/catalog/v1/products/bad%20id",
                "/api/catalog/v1/products/bad%20id",
            ),
            ("/static/", "/static/"),
            ("/a/b/..", "/a/"),
            ("/", "/"),
            ("", "/"),
        ] {
            assert_eq!(canonical_path(raw), canonical, "{raw}");
        }
        assert!(matches!(
            canonical_path("/api/catalog/v1/products"),
            std::borrow::Cow::Borrowed(_)
        ));
    }
}

//! The error model.
//!
//! Every contract has one error enum implementing [`ApiError`]: each variant has a stable wire
//! code (`"<module>.<snake_case>"`) and an HTTP status. Errors cross the wire as
//! `application/problem+json` ([`Problem`], RFC 9457) whose `code` and `params` members let the
//! remote client rebuild the same variant, so a caller sees the same error whether the module
//! runs in its process or another. [`Failure`] is the one place errors become responses.

use std::fmt;

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// Media type of every error body.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// Whether a `content-type` value is `application/problem+json` (parameters allowed).
pub fn is_problem_json(content_type: Option<&str>) -> bool {
    content_type.is_some_and(|v| v.starts_with(PROBLEM_JSON))
}

/// One row of a contract's error table: what the OpenAPI document and the docs say of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ErrorDoc {
    /// The stable wire code, e.g. `catalog.product_not_found`.
    pub code: &'static str,
    /// The HTTP status it is answered with.
    pub status: u16,
    /// What it means (the variant's doc comment).
    pub description: &'static str,
}

/// Why a caller was not admitted to an operation (see `crate::call::Access`): what a
/// contract error's `#[api(refused)]` variant holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// No token and no certificate: 401 `<module>.unauthenticated`.
    Unauthenticated(String),
    /// Someone who is not among those the operation admits: 403 `<module>.forbidden`.
    Forbidden(String),
}

impl Refusal {
    /// What was missing, or who the operation is for.
    pub fn reason(&self) -> &str {
        match self {
            Self::Unauthenticated(r) | Self::Forbidden(r) => r,
        }
    }
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Unauthenticated(r) => write!(f, "not authenticated: {r}"),
            Self::Forbidden(r) => write!(f, "forbidden: {r}"),
        }
    }
}

/// An error of a module contract (or of the kernel) with a stable code and an HTTP status.
///
/// Derive it (`#[derive(ApiError)]`, re-exported by the kernel): each variant's code, status
/// and description are declared once, on the variant, and the code, the status, the wire form
/// (`{"code": .., "params": {..}}`, also its serde form), the problem round trip and the
/// OpenAPI responses all derive from that row.
pub trait ApiError:
    std::error::Error + Serialize + DeserializeOwned + Send + Sync + Sized + 'static
{
    /// Every error of the contract: its code, status and description.
    const ERRORS: &'static [ErrorDoc];

    /// The codes of the variants marked `#[api(unauthenticated)]` (401) and
    /// `#[api(forbidden)]` (403): what a caller the operation does not admit gets.
    const REFUSALS: [&'static str; 2];

    /// The stable wire code of this error, e.g. `catalog.product_not_found`.
    fn code(&self) -> &'static str;

    /// The HTTP status as a number.
    fn status_u16(&self) -> u16;

    /// The HTTP status the error maps to. 4xx: the caller's mistake; 503/504: a dependency;
    /// 500: a bug in our code.
    fn status(&self) -> StatusCode {
        StatusCode::from_u16(self.status_u16()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    /// The error a caller gets when the module (or one it depends on) cannot be reached.
    fn unavailable(reason: String) -> Self;

    /// The error a caller gets when a dependency failed with an answer of its own that the
    /// caller passes on as itself: a 429 or 504 of the callee's kernel, or a 503 with the
    /// `Retry-After` of an open breaker. Contracts whose unavailable variant has a field
    /// `upstream: Option<Upstream>` keep it; others answer [`ApiError::unavailable`].
    fn passed(reason: String, upstream: Upstream) -> Self;

    /// The error for a bug of ours (500). `reason` is logged, never sent.
    fn internal(reason: String) -> Self;

    /// The error for a caller the operation does not admit (401 or 403).
    fn refused(refusal: Refusal) -> Self;

    /// Whether `detail` and `params` may be sent to the caller: for 4xx, and for 5xx declared
    /// `expose`. The cause of other 5xx may name hosts or internals, so it is logged instead.
    fn expose_detail(&self) -> bool;

    /// Seconds the caller should wait before trying again (`Retry-After`), for the errors
    /// that say (a field `retry_after_secs`).
    fn retry_after_secs(&self) -> Option<u64>;

    /// The fields of this error that may be sent, as a JSON object (`None` without any).
    fn params(&self) -> Option<serde_json::Value>;

    /// Rebuilds the error `code` names from its `params`, if the code is one of this type's.
    fn from_code(code: &str, params: Option<&serde_json::Value>) -> Option<Self>;

    /// A short, human summary that is the same for every occurrence of this code.
    fn title(&self) -> &'static str {
        self.status().canonical_reason().unwrap_or("Error")
    }
}

/// The wire (and serde) form of an [`ApiError`]: `{"code": "..", "params": {..}}`, `params`
/// left out when the error has none to show. Used by the derive.
///
/// # Errors
/// The serializer's.
pub fn serialize_api_error<E: ApiError, S: serde::Serializer>(
    err: &E,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeMap;
    let params = err.params();
    let mut map = serializer.serialize_map(Some(1 + usize::from(params.is_some())))?;
    map.serialize_entry("code", err.code())?;
    if let Some(params) = &params {
        map.serialize_entry("params", params)?;
    }
    map.end()
}

/// Reads the form [`serialize_api_error`] writes.
///
/// # Errors
/// When the value is not that form or names a code `E` does not have.
pub fn deserialize_api_error<'de, E: ApiError, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<E, D::Error> {
    #[derive(Deserialize)]
    struct Wire {
        code: String,
        #[serde(default)]
        params: Option<serde_json::Value>,
    }
    let wire = Wire::deserialize(deserializer)?;
    E::from_code(&wire.code, wire.params.as_ref())
        .ok_or_else(|| serde::de::Error::custom(format!("unknown error code {}", wire.code)))
}

/// An `application/problem+json` body (RFC 9457) with Cleave's extension members.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Problem {
    /// A URI naming the problem type: `urn:cleave:problem:<code>`.
    #[serde(rename = "type", default)]
    pub kind: String,
    /// Short summary of the problem type.
    pub title: String,
    /// HTTP status code.
    pub status: u16,
    /// What went wrong this time. Absent on 5xx: causes are logged, not sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// Stable machine-readable code, e.g. `cart.invalid_quantity`.
    pub code: String,
    /// Typed fields of the error variant, so a remote client can rebuild it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub params: Option<serde_json::Value>,
    /// The request id, to find the logs of this request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
}

impl Problem {
    /// Builds a problem for `code` with the given status.
    pub fn new(status: StatusCode, code: &str, title: &str, detail: Option<String>) -> Self {
        Self {
            kind: format!("urn:cleave:problem:{code}"),
            title: title.to_owned(),
            status: status.as_u16(),
            detail,
            code: code.to_owned(),
            params: None,
            request_id: None,
        }
    }

    /// Rebuilds the typed error this problem describes, if its code is one of `E`'s.
    pub fn decode<E: ApiError>(&self) -> Option<E> {
        E::from_code(&self.code, self.params.as_ref())
    }
}

/// Renders an error with its whole `source()` chain, for logs.
pub fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut out = err.to_string();
    let mut next = err.source();
    while let Some(cause) = next {
        out.push_str(": ");
        out.push_str(&cause.to_string());
        next = cause.source();
    }
    out
}

/// An error on its way to becoming an HTTP response. Handlers return `Result<_, Failure>`;
/// `?` converts any [`ApiError`].
pub struct Failure {
    status: StatusCode,
    // Boxed: handlers return `Result<_, Failure>`, and the success path should stay small.
    problem: Box<Problem>,
    retry_after_secs: Option<u64>,
}

impl Failure {
    /// The status the response will have.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The problem body the response will carry.
    pub fn problem(&self) -> &Problem {
        &self.problem
    }

    /// Seconds the caller should wait before trying again, if the error says.
    pub fn retry_after_secs(&self) -> Option<u64> {
        self.retry_after_secs
    }
}

impl<E: ApiError> From<E> for Failure {
    fn from(err: E) -> Self {
        let status = err.status();
        let mut problem = Problem::new(status, err.code(), err.title(), None);
        // Taken now, inside the request's scope: the answer may be rendered outside it.
        problem.request_id = crate::context::current_request_id().map(|id| id.to_string());
        // 500 is a bug of ours; 503/504 is a dependency having a bad day.
        if status == StatusCode::INTERNAL_SERVER_ERROR {
            tracing::error!(code = err.code(), status = status.as_u16(), error = %error_chain(&err), "request failed");
        } else if status.is_server_error() {
            tracing::warn!(code = err.code(), status = status.as_u16(), error = %error_chain(&err), "request failed");
        }
        if err.expose_detail() {
            problem.detail = Some(err.to_string());
            problem.params = err.params();
        }
        Self {
            status,
            problem: Box::new(problem),
            retry_after_secs: err.retry_after_secs(),
        }
    }
}

impl fmt::Debug for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Failure({} {})", self.status, self.problem.code)
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.problem.code, self.problem.title)
    }
}

impl ResponseError for Failure {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        let mut res = problem_response(self.status, (*self.problem).clone());
        if let Some(secs) = self.retry_after_secs {
            res.headers_mut().insert(
                actix_web::http::header::RETRY_AFTER,
                actix_web::http::header::HeaderValue::from(secs),
            );
        }
        res
    }
}

/// A dependency's failure carried through a contract's unavailable variant as itself (see
/// [`ApiError::passed`]): its status, the kernel code it had (`None` keeps the contract's own
/// `<module>.unavailable`), that code's params and when to try again.
#[derive(Debug, Clone, PartialEq)]
pub struct Upstream {
    /// The status to answer with.
    pub status: u16,
    /// A kernel code answered by the dependency (e.g. `cleave.rate_limited`), or `None`.
    pub code: Option<&'static str>,
    /// The params of that code.
    pub params: Option<serde_json::Value>,
    /// Seconds to wait before trying again (`Retry-After`).
    pub retry_after_secs: Option<u64>,
}

// serde_json values hold no NaN, so equality is an equivalence.
impl Eq for Upstream {}

impl Upstream {
    /// A 503 that says when to try again.
    pub fn unavailable_for(retry_after_secs: u64) -> Self {
        Self {
            status: 503,
            code: None,
            params: None,
            retry_after_secs: Some(retry_after_secs),
        }
    }

    /// What a dependency's error `err` passes on as itself: a kernel failure (a 429, 504,
    /// ...) or a 503 that says when to retry. `None` for the dependency's own errors.
    pub fn of<E: ApiError>(err: &E) -> Option<Self> {
        Self::kernel(
            err.code(),
            err.status_u16(),
            err.params(),
            err.retry_after_secs(),
        )
        .or_else(|| {
            err.retry_after_secs()
                .filter(|_| err.status_u16() == 503)
                .map(Self::unavailable_for)
        })
    }

    /// The kernel failure `code` (a [`KernelError`] code other than `cleave.internal`)
    /// answered with `status`, or `None` for any other code.
    pub fn kernel(
        code: &str,
        status: u16,
        params: Option<serde_json::Value>,
        retry_after_secs: Option<u64>,
    ) -> Option<Self> {
        let doc = KernelError::ERRORS
            .iter()
            .find(|doc| doc.code == code && doc.status != 500)?;
        Some(Self {
            status,
            code: Some(doc.code),
            params,
            retry_after_secs,
        })
    }
}

/// Writes `problem` as an `application/problem+json` response, stamped with the current
/// request id.
pub fn problem_response(status: StatusCode, mut problem: Problem) -> HttpResponse {
    if problem.request_id.is_none() {
        problem.request_id = crate::context::current_request_id().map(|id| id.to_string());
    }
    let body = serde_json::to_vec(&problem).unwrap_or_else(|_| b"{}".to_vec());
    HttpResponse::build(status)
        .content_type(PROBLEM_JSON)
        .body(body)
}

/// Errors raised by the kernel itself, before or around a module's handler. Those that any
/// route may answer (401, 413, 415, 429, 503, 504) are documented once for every route.
#[derive(Debug, Clone, PartialEq, thiserror::Error, cleave_macros::ApiError)]
#[api(module = "cleave", no_refusals)]
pub enum KernelError {
    /// The body is not valid JSON or does not match the expected shape.
    #[api(status = 400)]
    #[error("invalid JSON body: {detail}")]
    InvalidJson {
        /// What the parser said.
        detail: String,
    },
    /// A path segment has the wrong form.
    #[api(status = 400)]
    #[error("invalid path: {detail}")]
    InvalidPath {
        /// What is wrong.
        detail: String,
    },
    /// The query string has the wrong form.
    #[api(status = 400)]
    #[error("invalid query string: {detail}")]
    InvalidQuery {
        /// What is wrong.
        detail: String,
    },
    /// The body is larger than this route accepts.
    #[api(status = 413)]
    #[error("request body is larger than {limit_bytes} bytes")]
    PayloadTooLarge {
        /// The limit in bytes.
        limit_bytes: usize,
    },
    /// The body is not `application/json`.
    #[api(status = 415)]
    #[error("request body must be application/json")]
    UnsupportedMediaType,
    /// No route matches the path.
    #[api(status = 404)]
    #[error("no route matches this path")]
    RouteNotFound,
    /// The route exists but not for this method.
    #[api(status = 405)]
    #[error("this route does not accept this method")]
    MethodNotAllowed,
    /// The request could not be read (other 4xx from the HTTP layer).
    #[api(status = 400)]
    #[error("bad request: {detail}")]
    BadRequest {
        /// What is wrong.
        detail: String,
    },
    /// This process neither hosts the module nor knows where it runs.
    #[api(status = 503, expose)]
    #[error("module {module} is not hosted by this process and has no configured url")]
    ModuleNotPlaced {
        /// The module.
        module: String,
    },
    /// The request took longer than the server allows.
    #[api(status = 504, expose)]
    #[error("the request took longer than {limit_ms} ms")]
    Timeout {
        /// The limit.
        limit_ms: u64,
    },
    /// Too many requests from this client for this route.
    #[api(status = 429)]
    #[error("too many requests; retry in {retry_after_secs} s")]
    RateLimited {
        /// Seconds to wait (also in `Retry-After`).
        retry_after_secs: u64,
    },
    /// The process serves as many requests as it admits at once; this one was not started.
    #[api(status = 503, expose)]
    #[error("the server is overloaded; retry in {retry_after_secs} s")]
    Overloaded {
        /// Seconds to wait (also in `Retry-After`).
        retry_after_secs: u64,
    },
    /// A readiness check failed.
    #[api(unavailable, expose)]
    #[error("not ready: {failed}")]
    NotReady {
        /// The failing checks (they name modules and checks, nothing secret: what an operator
        /// needs to see).
        failed: String,
    },
    /// A bug: something that should not happen did.
    #[api(internal)]
    #[error("internal error")]
    Internal,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn problem_round_trips_a_typed_error_through_code_and_params() {
        let err = KernelError::PayloadTooLarge { limit_bytes: 10 };
        let failure = Failure::from(err.clone());
        assert_eq!(failure.status(), StatusCode::PAYLOAD_TOO_LARGE);
        let wire = serde_json::to_string(failure.problem()).unwrap();
        let back: Problem = serde_json::from_str(&wire).unwrap();
        assert_eq!(back.code, "cleave.payload_too_large");
        assert_eq!(back.decode::<KernelError>(), Some(err));
    }

    #[test]
    fn unit_variants_decode_without_params() {
        let p = Problem::new(
            StatusCode::NOT_FOUND,
            "cleave.route_not_found",
            "Not Found",
            None,
        );
        assert_eq!(p.decode::<KernelError>(), Some(KernelError::RouteNotFound));
    }

    #[test]
    fn unknown_codes_do_not_decode() {
        let p = Problem::new(StatusCode::NOT_FOUND, "cart.nope", "Not Found", None);
        assert_eq!(p.decode::<KernelError>(), None);
    }

    #[test]
    fn server_errors_carry_no_detail() {
        let failure = Failure::from(KernelError::Internal);
        assert!(failure.problem().detail.is_none());
        assert!(failure.problem().params.is_none());
    }
}

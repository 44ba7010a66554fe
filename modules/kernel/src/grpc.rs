//! gRPC between Cleave processes: one more transport under the one call path.
//!
//! Every contract is also a gRPC service, `cleave.<module>.v1.<Module>` (e.g.
//! `cleave.cart.v1.Cart`), with one unary method per operation, named as the operation in
//! upper camel case (`AddItem` for `add_item`). A request message is the operation's
//! arguments as one JSON object, named as the trait method names them (`{"user_id": ..,
//! "product_id": .., "quantity": ..}`); the answer is the operation's result as JSON: gRPC's
//! JSON codec (`application/grpc+json`), so that the contract trait stays the only schema (no
//! second one to keep in step with it) and every operation of every contract has its gRPC
//! method without a line of code per module. Boutique's services, with Boutique's protobuf
//! messages, are served beside them (`src/grpc.rs` of the binary).
//!
//! - Caller side, the gRPC transport (`client/grpc.rs`) is the innermost stage of a module's
//!   [`RemoteClient`](crate::client::RemoteClient) when its url is `grpc://` (`grpcs://`) or its
//!   `transport` is `grpc`: deadline, bulkhead, retries, replicas and breakers are the same
//!   stages as over REST. The deadline travels as `grpc-timeout`; request id, operation,
//!   trace context, the end user's token and contract headers as metadata; the module's
//!   client certificate is presented as over REST (mTLS).
//! - Callee side, [`crate::module::ContractService`] serves a contract from the module as the edge reaches it
//!   (the operations' access rules apply as over REST). A contract error travels as the gRPC
//!   status of its HTTP status, its problem document in the `cleave-problem-bin` trailer, so
//!   the caller rebuilds the contract's typed error; `cleave-code` names its stable code for
//!   clients that read nothing else.

use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::web::Bytes;
use bytes::{Buf as _, BufMut as _};
use hyper::http;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tonic::Status;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};

use crate::auth::Authenticator;
use crate::context::{CallContext, REQUEST_ID_HEADER, RequestId};
use crate::error::{ApiError, Failure, KernelError};
use crate::telemetry::RequestHeaders;

/// Trailer carrying a Cleave error's problem document (JSON), from which the caller rebuilds
/// the contract's typed error.
pub const PROBLEM_METADATA: &str = "cleave-problem-bin";
/// Trailer carrying a Cleave error's stable code (`cart.invalid_quantity`).
pub const CODE_METADATA: &str = "cleave-code";
/// The content type of the contracts' gRPC methods (gRPC's JSON codec).
pub const JSON_CONTENT_TYPE: &str = "application/grpc+json";

/// Messages as the bytes they are: the JSON of the contracts' methods (encoded and decoded
/// by the generated code), or any protobuf message already encoded by prost.
#[derive(Debug, Clone, Copy, Default)]
pub struct RawCodec;

/// [`RawCodec`]'s encoder and decoder.
#[derive(Debug, Clone, Copy, Default)]
pub struct Raw;

impl Codec for RawCodec {
    type Encode = Bytes;
    type Decode = Bytes;
    type Encoder = Raw;
    type Decoder = Raw;

    fn encoder(&mut self) -> Raw {
        Raw
    }

    fn decoder(&mut self) -> Raw {
        Raw
    }
}

impl Encoder for Raw {
    type Item = Bytes;
    type Error = Status;

    fn encode(&mut self, item: Bytes, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.put(item);
        Ok(())
    }
}

impl Decoder for Raw {
    type Item = Bytes;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Bytes>, Status> {
        let len = src.remaining();
        Ok(Some(src.copy_to_bytes(len)))
    }
}

/// The arguments of one call as the JSON object its gRPC message is (built by the generated
/// client, read by the generated dispatcher).
#[derive(Debug, Default)]
pub struct Args {
    fields: serde_json::Map<String, serde_json::Value>,
    failure: Option<String>,
}

impl Args {
    /// No arguments yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// With argument `name` set to `value`.
    #[must_use]
    pub fn arg<T: Serialize + ?Sized>(mut self, name: &str, value: &T) -> Self {
        match serde_json::to_value(value) {
            Ok(v) => {
                self.fields.insert(name.to_owned(), v);
            }
            Err(e) => self.failure = Some(format!("argument {name}: {e}")),
        }
        self
    }

    /// The message.
    ///
    /// # Errors
    /// Why an argument could not be encoded.
    pub fn encode(self) -> Result<Bytes, String> {
        if let Some(failure) = self.failure {
            return Err(failure);
        }
        serde_json::to_vec(&self.fields)
            .map(Bytes::from)
            .map_err(|e| e.to_string())
    }

    /// The arguments a message holds.
    ///
    /// # Errors
    /// `cleave.invalid_json` when it is no JSON object.
    pub fn decode(message: &[u8]) -> Result<Self, Failure> {
        let fields = serde_json::from_slice(message).map_err(|e| {
            Failure::from(KernelError::InvalidJson {
                detail: format!("the message is not a JSON object of arguments: {e}"),
            })
        })?;
        Ok(Self {
            fields,
            failure: None,
        })
    }

    /// Argument `name` (absent is `null`: `None` for an optional one).
    ///
    /// # Errors
    /// `cleave.invalid_json` naming the argument when it is missing or malformed.
    pub fn take<T: DeserializeOwned>(&mut self, name: &str) -> Result<T, Failure> {
        let value = self.fields.remove(name).unwrap_or(serde_json::Value::Null);
        serde_json::from_value(value).map_err(|e| {
            Failure::from(KernelError::InvalidJson {
                detail: format!("argument {name}: {e}"),
            })
        })
    }
}

/// An operation's answer as its JSON message.
///
/// # Errors
/// `cleave.internal` when it cannot be encoded (a bug).
pub fn answer<T: Serialize>(value: &T) -> Result<Bytes, Failure> {
    serde_json::to_vec(value).map(Bytes::from).map_err(|e| {
        tracing::error!(error = %e, "an answer does not encode as JSON");
        Failure::from(KernelError::Internal)
    })
}

/// The gRPC status code for an HTTP status.
pub fn code_of(http_status: u16) -> tonic::Code {
    use tonic::Code;
    match http_status {
        200..=299 => Code::Ok,
        400 | 413 | 415 | 422 => Code::InvalidArgument,
        401 => Code::Unauthenticated,
        403 => Code::PermissionDenied,
        404 => Code::NotFound,
        409 => Code::Aborted,
        429 => Code::ResourceExhausted,
        501 => Code::Unimplemented,
        503 => Code::Unavailable,
        504 => Code::DeadlineExceeded,
        _ => Code::Internal,
    }
}

/// The HTTP status for a gRPC status code (of a callee that sent no problem document).
pub(crate) fn http_status_of(code: tonic::Code) -> u16 {
    use tonic::Code;
    match code {
        Code::Ok => 200,
        Code::InvalidArgument | Code::OutOfRange | Code::FailedPrecondition => 400,
        Code::Unauthenticated => 401,
        Code::PermissionDenied => 403,
        Code::NotFound => 404,
        Code::AlreadyExists | Code::Aborted => 409,
        Code::ResourceExhausted => 429,
        Code::Unimplemented => 501,
        Code::Unavailable => 503,
        Code::DeadlineExceeded | Code::Cancelled => 504,
        _ => 500,
    }
}

/// A failure as a gRPC status: the code of its HTTP status, its detail (or title) as the
/// message, its code in `cleave-code` and its problem document in `cleave-problem-bin`.
pub fn status_of(failure: &Failure) -> Status {
    let problem = failure.problem();
    let message = problem
        .detail
        .clone()
        .unwrap_or_else(|| problem.title.clone());
    let mut status = Status::new(code_of(failure.status().as_u16()), message);
    let meta = status.metadata_mut();
    if let Ok(value) = problem.code.parse() {
        meta.insert(CODE_METADATA, value);
    }
    if let Ok(json) = serde_json::to_vec(problem) {
        meta.insert_bin(
            PROBLEM_METADATA,
            tonic::metadata::MetadataValue::from_bytes(&json),
        );
    }
    if let Some(secs) = failure.retry_after_secs() {
        meta.insert("retry-after", secs.into());
    }
    status
}

/// A contract's error as a gRPC status (see [`status_of`]).
pub fn status<E: ApiError>(err: E) -> Status {
    status_of(&Failure::from(err))
}

impl RequestHeaders for tonic::metadata::MetadataMap {
    fn header(&self, key: &str) -> Option<&str> {
        self.get(key).and_then(|v| v.to_str().ok())
    }

    fn names(&self) -> Vec<&str> {
        Vec::new()
    }
}

/// How a gRPC listener makes the call context of a request (from `[server]`).
#[derive(Clone)]
pub struct Edge {
    /// Verifies bearer tokens; `None`: this process accepts none.
    pub authenticator: Option<Arc<Authenticator>>,
    /// `server.grpc_trusted`: the listener is reachable by the deployment's own processes
    /// only, so every caller is taken as these modules (for services, like Boutique's, that
    /// send no credentials). Off by default.
    pub trusted_as: Option<Arc<[&'static str]>>,
    /// The deployment's modules, as client certificates may name them.
    pub modules: Arc<[&'static str]>,
    /// `server.handler_timeout_ms`: the longest a call may take (a sooner `grpc-timeout` wins).
    pub handler_timeout: Duration,
}

impl Edge {
    /// The call context of a request: its `x-request-id` (or a new one), the deadline its
    /// `grpc-timeout` gives within the handler timeout, the principal of its bearer token
    /// (one that does not verify is refused, as over REST), and the modules its client
    /// certificate proves (or all of them, on a trusted listener).
    ///
    /// # Errors
    /// `UNAUTHENTICATED` for a malformed or invalid token.
    pub async fn context<H: RequestHeaders + ?Sized>(
        &self,
        headers: &H,
        peer: Option<crate::tls::PeerModules>,
    ) -> Result<CallContext, Status> {
        let id = RequestId::from_header(headers.header(REQUEST_ID_HEADER));
        let deadline = headers
            .header("grpc-timeout")
            .and_then(grpc_timeout)
            .map(|budget| Instant::now() + budget);
        let mut ctx = CallContext::new(id, deadline).with_timeout(self.handler_timeout);
        match (peer, &self.trusted_as) {
            (Some(peer), _) => ctx = ctx.with_caller_modules(peer.0),
            (None, Some(modules)) => ctx = ctx.with_caller_modules(modules.clone()),
            (None, None) => {}
        }
        let Some(raw) = headers.header("authorization") else {
            return Ok(ctx);
        };
        let token = crate::auth::bearer_token(raw)
            .ok_or_else(|| Status::unauthenticated("authorization is `Bearer <access token>`"))?;
        let authenticator = self
            .authenticator
            .as_ref()
            .ok_or_else(|| Status::unauthenticated("this process checks no tokens"))?;
        let principal = authenticator.authenticate(token).await.map_err(status)?;
        Ok(ctx.with_principal(principal))
    }

    /// The modules the client certificate of a request's TLS connection names, if any.
    pub fn peer_modules(&self, extensions: &http::Extensions) -> Option<crate::tls::PeerModules> {
        use tonic::transport::server::{TcpConnectInfo, TlsConnectInfo};
        let certs = extensions
            .get::<TlsConnectInfo<TcpConnectInfo>>()?
            .peer_certs()?;
        crate::tls::modules_named_by(certs.first()?, &self.modules)
    }
}

/// A `grpc-timeout` value (at most 8 digits and a unit: `H`, `M`, `S`, `m`, `u`, `n`).
pub fn grpc_timeout(raw: &str) -> Option<Duration> {
    if raw.len() < 2 || raw.len() > 9 {
        return None;
    }
    let (digits, unit) = raw.split_at(raw.len() - 1);
    let n: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(n.checked_mul(3600)?),
        "M" => Duration::from_secs(n.checked_mul(60)?),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
}

/// The connections of a gRPC listener, each with `TCP_NODELAY`: answers go out as they are
/// written (without it, a DATA frame waits behind its HEADERS frame for the peer's delayed
/// ACK, 40 ms a call).
pub fn incoming(
    listener: tokio::net::TcpListener,
) -> impl tokio_stream::Stream<Item = std::io::Result<tokio::net::TcpStream>> {
    tokio_stream::StreamExt::map(
        tokio_stream::wrappers::TcpListenerStream::new(listener),
        |tcp| {
            let tcp = tcp?;
            tcp.set_nodelay(true)?;
            Ok(tcp)
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments_round_trip_and_a_missing_optional_one_is_none() {
        let message = Args::new()
            .arg("user_id", "alice")
            .arg("quantity", &3_i64)
            .encode()
            .expect("encodes");
        let mut args = Args::decode(&message).expect("decodes");
        assert_eq!(args.take::<String>("user_id").expect("user"), "alice");
        assert_eq!(args.take::<i64>("quantity").expect("quantity"), 3);
        assert_eq!(args.take::<Option<String>>("key").expect("absent"), None);
        let err = args.take::<i64>("count").expect_err("required");
        assert_eq!(err.problem().code, "cleave.invalid_json");
        assert!(Args::decode(b"[1]").is_err(), "not an object");
    }

    #[test]
    fn grpc_timeouts_parse_in_every_unit_and_bad_ones_do_not() {
        assert_eq!(grpc_timeout("250m"), Some(Duration::from_millis(250)));
        assert_eq!(grpc_timeout("2S"), Some(Duration::from_secs(2)));
        assert_eq!(grpc_timeout("1H"), Some(Duration::from_secs(3600)));
        assert_eq!(grpc_timeout("5x"), None);
        assert_eq!(grpc_timeout("123456789m"), None);
    }
}

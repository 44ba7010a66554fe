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
//! - Caller side, [`GrpcTransport`] is the innermost stage of a module's
//!   [`RemoteClient`](crate::client::RemoteClient) when its url is `grpc://` (`grpcs://`) or its
//!   `transport` is `grpc`: deadline, bulkhead, retries, replicas and breakers are the same
//!   stages as over REST. The deadline travels as `grpc-timeout`; request id, operation,
//!   trace context, the end user's token and contract headers as metadata; the module's
//!   client certificate is presented as over REST (mTLS).
//! - Callee side, [`ContractService`] serves a contract from the module as the edge reaches it
//!   (the operations' access rules apply as over REST). A contract error travels as the gRPC
//!   status of its HTTP status, its problem document in the `cleave-problem-bin` trailer, so
//!   the caller rebuilds the contract's typed error; `cleave-code` names its stable code for
//!   clients that read nothing else.

use std::convert::Infallible;
use std::marker::PhantomData;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use actix_web::web::Bytes;
use bytes::{Buf as _, BufMut as _};
use hyper::http;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tonic::Status;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tower::Service;

use crate::auth::Authenticator;
use crate::call::BoxFuture;
use crate::client::{OPERATION_HEADER, RemoteError, RemoteRequest, RemoteResponse};
use crate::context::{CallContext, REQUEST_ID_HEADER, RequestId};
use crate::error::{ApiError, Failure, KernelError, Problem};
use crate::module::Contract;
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
fn http_status_of(code: tonic::Code) -> u16 {
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

/// Contract `C` served as its gRPC service `cleave.<module>.v1.<Module>`, from `api` as the
/// edge reaches it.
pub struct ContractService<C: Contract> {
    api: Arc<C::Api>,
    edge: Arc<Edge>,
    max_message_bytes: usize,
    contract: PhantomData<fn() -> C>,
}

impl<C: Contract> Clone for ContractService<C> {
    fn clone(&self) -> Self {
        Self {
            api: self.api.clone(),
            edge: self.edge.clone(),
            max_message_bytes: self.max_message_bytes,
            contract: PhantomData,
        }
    }
}

impl<C: Contract> ContractService<C> {
    /// Serves `api` (already intercepted at the edge: its access rules apply), making call
    /// contexts with `edge`, refusing request messages larger than `max_message_bytes` (as
    /// `server.max_body_bytes` bounds REST bodies).
    pub fn new(api: Arc<C::Api>, edge: Arc<Edge>, max_message_bytes: usize) -> Self {
        Self {
            api,
            edge,
            max_message_bytes,
            contract: PhantomData,
        }
    }
}

impl<C: Contract> tonic::server::NamedService for ContractService<C> {
    const NAME: &'static str = C::GRPC_SERVICE;
}

/// One call's unary handler: the operation `method` of `api` with `ctx`.
struct Unary<C: Contract> {
    api: Arc<C::Api>,
    method: String,
    ctx: CallContext,
}

impl<C: Contract> tonic::server::UnaryService<Bytes> for Unary<C> {
    type Response = Bytes;
    type Future = BoxFuture<'static, Result<tonic::Response<Bytes>, Status>>;

    fn call(&mut self, request: tonic::Request<Bytes>) -> Self::Future {
        let run = C::dispatch(
            self.api.clone(),
            &self.method,
            self.ctx.clone(),
            request.into_inner(),
        );
        Box::pin(async move {
            match run {
                None => Err(Status::unimplemented("no such operation")),
                Some(run) => run
                    .await
                    .map(tonic::Response::new)
                    .map_err(|f| status_of(&f)),
            }
        })
    }
}

impl<C, B> Service<http::Request<B>> for ContractService<C>
where
    C: Contract,
    B: hyper::body::Body + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>> + Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let this = self.clone();
        Box::pin(async move {
            let method = req
                .uri()
                .path()
                .rsplit('/')
                .next()
                .unwrap_or_default()
                .to_owned();
            let peer = this.edge.peer_modules(req.extensions());
            let ctx = match this.edge.context(req.headers(), peer).await {
                Ok(ctx) => ctx,
                Err(status) => return Ok(status.into_http()),
            };
            let span = if crate::telemetry::request_spans() {
                tracing::info_span!(
                    "request",
                    otel.name = format!("{}/{method}", C::GRPC_SERVICE),
                    otel.kind = "server",
                    request_id = %ctx.request_id(),
                    rpc.system = "grpc",
                )
            } else {
                tracing::Span::none()
            };
            let trace = crate::telemetry::continue_trace(&span, req.headers());
            let (request_id, deadline) = (ctx.request_id().clone(), ctx.deadline());
            let unary = Unary::<C> {
                api: this.api.clone(),
                method,
                ctx,
            };
            let mut grpc = tonic::server::Grpc::new(RawCodec)
                .max_decoding_message_size(this.max_message_bytes);
            let res = crate::context::within_request(
                request_id,
                deadline,
                trace,
                tracing::Instrument::instrument(grpc.unary(unary, req), span),
            )
            .await;
            Ok(res)
        })
    }
}

/// The client of a module reached over gRPC: HTTP/2 only (over TLS when the url says so).
pub(crate) type GrpcClient = hyper_util::client::legacy::Client<
    hyper_rustls::HttpsConnector<
        hyper_util::client::legacy::connect::HttpConnector<crate::client::Resolver>,
    >,
    tonic::body::Body,
>;

/// The innermost stage for a replica reached over gRPC: sends a contract call as its gRPC
/// method (see the module docs), and turns the answer back into what the pipeline's other
/// stages read (a status and a JSON or problem body).
#[derive(Clone)]
pub(crate) struct GrpcTransport {
    pub(crate) module: &'static str,
    /// `http(s)://host:port` of the replica; `None` for a url that is none.
    pub(crate) origin: Option<http::Uri>,
    pub(crate) client: GrpcClient,
    pub(crate) max_answer_bytes: usize,
}

impl GrpcTransport {
    /// `grpc://` is plain HTTP/2, `grpcs://` HTTP/2 over TLS; `http(s)://` as they are.
    pub(crate) fn origin_of(url: &url::Url) -> Option<http::Uri> {
        let scheme = match url.scheme() {
            "grpc" | "http" => "http",
            "grpcs" | "https" => "https",
            _ => return None,
        };
        let host = url.host_str()?;
        let port = url.port_or_known_default().or(match url.scheme() {
            "grpc" => Some(80),
            "grpcs" => Some(443),
            _ => None,
        })?;
        let host = if host.contains(':') && !host.starts_with('[') {
            format!("[{host}]")
        } else {
            host.to_owned()
        };
        format!("{scheme}://{host}:{port}").parse().ok()
    }
}

/// Whether a request is a call of a gRPC method (not a REST request being forwarded).
pub(crate) fn is_grpc_call(req: &RemoteRequest) -> bool {
    req.content_type
        .as_deref()
        .is_some_and(|ct| ct.starts_with("application/grpc"))
}

impl Service<RemoteRequest> for GrpcTransport {
    type Response = RemoteResponse;
    type Error = RemoteError;
    type Future = BoxFuture<'static, Result<RemoteResponse, RemoteError>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), RemoteError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: RemoteRequest) -> Self::Future {
        let module = self.module;
        let not_sent = move |reason: String| {
            Box::pin(async move { Err(RemoteError::NotSent { module, reason }) })
                as BoxFuture<'static, _>
        };
        if !is_grpc_call(&req) {
            return not_sent(format!(
                "{module} is reached over gRPC: {} {} is a REST request, which is not sent \
                 there",
                req.method, req.path
            ));
        }
        let Some(origin) = self.origin.clone() else {
            return not_sent("the module's url is no grpc(s):// or http(s):// url".into());
        };
        let path = match http::uri::PathAndQuery::try_from(req.path.as_str()) {
            Ok(path) => path,
            Err(e) => return not_sent(format!("{}: {e}", req.path)),
        };
        let mut request = tonic::Request::new(req.body.clone().unwrap_or_default());
        let headers = metadata_of(&req);
        *request.metadata_mut() = tonic::metadata::MetadataMap::from_headers(headers);
        if let Some(left) = req.ctx.remaining() {
            request.set_timeout(left);
        }
        let limit = self.max_answer_bytes;
        let mut grpc = tonic::client::Grpc::with_origin(self.client.clone(), origin)
            .max_decoding_message_size(limit);
        Box::pin(async move {
            grpc.ready().await.map_err(|e| RemoteError::NotSent {
                module,
                reason: e.to_string(),
            })?;
            match grpc.unary(request, path, RawCodec).await {
                Ok(res) => Ok(RemoteResponse {
                    status: 200,
                    content_type: Some("application/json".to_owned()),
                    body: res.into_inner(),
                    headers: Vec::new(),
                }),
                Err(status) => answer_of(module, &status),
            }
        })
    }
}

/// The metadata of a call: request id, operation and whether it is safe to repeat, trace
/// context, the end user's token, the contract's headers.
fn metadata_of(req: &RemoteRequest) -> http::HeaderMap {
    use http::header::{AUTHORIZATION, HeaderName, HeaderValue};
    const H_REQUEST_ID: HeaderName = HeaderName::from_static(REQUEST_ID_HEADER);
    const H_OPERATION: HeaderName = HeaderName::from_static(OPERATION_HEADER);
    let mut headers = http::HeaderMap::with_capacity(6);
    if let Ok(id) = HeaderValue::from_str(req.ctx.request_id().as_str()) {
        headers.insert(H_REQUEST_ID, id);
    }
    if let Some(op) = req.op {
        headers.insert(H_OPERATION, HeaderValue::from_static(op.id));
    }
    crate::telemetry::inject_current(&mut headers);
    if let Some(token) = req.ctx.principal().and_then(|p| p.access_token.as_deref())
        && let Ok(mut value) = HeaderValue::from_str(&format!("Bearer {token}"))
    {
        value.set_sensitive(true);
        headers.insert(AUTHORIZATION, value);
    }
    for (name, value) in &req.headers {
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) {
            headers.append(name, value);
        }
    }
    headers
}

/// A status the callee answered as the pipeline reads answers: a Cleave error as its problem
/// document under its HTTP status; another callee's status as the HTTP status of its code
/// (with no problem body: the caller's contract error is then its `unavailable`); a status
/// the transport made (the connection failed or broke) as the error it is.
fn answer_of(module: &'static str, status: &Status) -> Result<RemoteResponse, RemoteError> {
    let meta = status.metadata();
    if let Some(json) = meta
        .get_bin(PROBLEM_METADATA)
        .and_then(|v| v.to_bytes().ok())
        && let Ok(problem) = serde_json::from_slice::<Problem>(&json)
    {
        let headers = meta
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .map(|v| vec![("retry-after", v.to_owned())])
            .unwrap_or_default();
        return Ok(RemoteResponse {
            status: problem.status,
            content_type: Some("application/problem+json".to_owned()),
            body: json,
            headers,
        });
    }
    if let Some(source) = std::error::Error::source(status) {
        let reason = crate::error::error_chain(source);
        let connect = std::iter::successors(Some(source), |e| e.source()).any(|e| {
            e.downcast_ref::<hyper_util::client::legacy::Error>()
                .is_some_and(hyper_util::client::legacy::Error::is_connect)
        });
        return Err(if connect {
            RemoteError::NotSent { module, reason }
        } else {
            RemoteError::AnswerLost { module, reason }
        });
    }
    Ok(RemoteResponse {
        status: http_status_of(status.code()),
        content_type: None,
        body: Bytes::new(),
        headers: Vec::new(),
    })
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
    fn a_cleave_error_crosses_as_its_problem_and_status() {
        let failure = Failure::from(KernelError::InvalidJson {
            detail: "argument user_id: bad".into(),
        });
        let status = status_of(&failure);
        assert_eq!(status.code(), tonic::Code::InvalidArgument);
        assert_eq!(
            status
                .metadata()
                .get(CODE_METADATA)
                .and_then(|v| v.to_str().ok()),
            Some("cleave.invalid_json")
        );
        let res = answer_of("cart", &status).expect("an answer");
        assert_eq!(res.status, 400);
        let problem: Problem = serde_json::from_slice(&res.body).expect("problem");
        assert_eq!(problem.code, "cleave.invalid_json");
    }

    #[test]
    fn a_foreign_status_becomes_its_http_status_without_a_problem() {
        let res = answer_of("cart", &Status::unavailable("down")).expect("an answer");
        assert_eq!((res.status, res.content_type), (503, None));
        assert_eq!(http_status_of(tonic::Code::DeadlineExceeded), 504);
        assert_eq!(code_of(404), tonic::Code::NotFound);
    }

    #[test]
    fn grpc_timeouts_parse_in_every_unit_and_bad_ones_do_not() {
        assert_eq!(grpc_timeout("250m"), Some(Duration::from_millis(250)));
        assert_eq!(grpc_timeout("2S"), Some(Duration::from_secs(2)));
        assert_eq!(grpc_timeout("1H"), Some(Duration::from_secs(3600)));
        assert_eq!(grpc_timeout("5x"), None);
        assert_eq!(grpc_timeout("123456789m"), None);
    }

    #[test]
    fn grpc_urls_are_http2_origins() {
        let origin = |u: &str| {
            GrpcTransport::origin_of(&url::Url::parse(u).expect("url")).map(|o| o.to_string())
        };
        assert_eq!(
            origin("grpc://cart:9090").as_deref(),
            Some("http://cart:9090/")
        );
        assert_eq!(
            origin("grpcs://cart:9443").as_deref(),
            Some("https://cart:9443/")
        );
        assert_eq!(origin("https://cart").as_deref(), Some("https://cart:443/"));
        assert_eq!(origin("ftp://cart"), None);
    }
}

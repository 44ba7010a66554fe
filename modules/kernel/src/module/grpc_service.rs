//! A contract served as its gRPC service (see [`crate::grpc`]).

use std::convert::Infallible;
use std::marker::PhantomData;
use std::sync::Arc;
use std::task::{Context, Poll};

use actix_web::web::Bytes;
use hyper::http;
use tonic::Status;
use tower::Service;

use crate::call::BoxFuture;
use crate::context::CallContext;
use crate::grpc::{Edge, RawCodec, status_of};
use crate::module::Contract;

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

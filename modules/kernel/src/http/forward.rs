//! Forwarding a module's public routes to the process that hosts it. A request whose route is
//! one of the contract's operations passes the call path like any call of that operation
//! (caller [`crate::call::EDGE`]), and goes through the same remote-call pipeline as a module
//! call (deadline, request id, operation name, and later layers). The answer is relayed as it
//! is: no decoding and re-encoding of bodies, so a client sees exactly what the hosting
//! process said. A module that cannot be reached answers 503 `<module>.unavailable`, as its
//! own client would.

use actix_web::HttpMessage as _;
use actix_web::http::StatusCode;
use actix_web::http::header::CONTENT_TYPE;
use actix_web::{HttpRequest, HttpResponse, ResponseError, web};

use crate::CallContext;
use crate::call::{CallPath, Operation};
use crate::client::{CONTRACT_HEADERS, Method, RemoteClient, RemoteRequest, RemoteResponse};
use crate::error::{ApiError, Failure};

struct Forward {
    remote: RemoteClient,
    operations: &'static [&'static Operation],
    path: CallPath,
}

/// Answers every route under `/api/<module>` by forwarding it through `remote`; requests
/// whose route is one of `operations` pass `path`. `E` is the module's contract error (its
/// `unavailable` is the answer when the module cannot be reached).
pub fn configure_forward<E: ApiError>(
    cfg: &mut web::ServiceConfig,
    remote: RemoteClient,
    operations: &'static [&'static Operation],
    path: CallPath,
) {
    let module = remote.module();
    cfg.service(
        web::scope(&format!("/api/{module}"))
            .app_data(web::Data::new(Forward {
                remote,
                operations,
                path,
            }))
            .default_service(web::to(forward::<E>)),
    );
}

fn unavailable<E: ApiError>(reason: String) -> HttpResponse {
    Failure::from(E::unavailable(reason)).error_response()
}

async fn forward<E: ApiError>(
    req: HttpRequest,
    ctx: CallContext,
    body: web::Bytes,
    fwd: web::Data<Forward>,
) -> HttpResponse {
    let Ok(method) = Method::from_bytes(req.method().as_str().as_bytes()) else {
        return unavailable::<E>("method cannot be forwarded".into());
    };
    let op = fwd
        .operations
        .iter()
        .copied()
        .find(|op| op.matches(req.method().as_str(), req.path()));
    if let Some(op) = op {
        // The request's metrics and span name by its operation's route, not the catch-all.
        req.extensions_mut()
            .insert(crate::metrics::RouteTemplate(op.path));
    }
    let path = req
        .uri()
        .path_and_query()
        .map_or_else(|| req.path(), |pq| pq.as_str())
        .to_owned();
    let mut remote_req = RemoteRequest::new(ctx.clone(), method, path);
    remote_req.content_type = req
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(String::from);
    remote_req.body = (!body.is_empty()).then(|| body.clone());
    remote_req.headers = CONTRACT_HEADERS
        .iter()
        .filter_map(|&name| {
            let value = req.headers().get(name)?.to_str().ok()?;
            Some((name, value.to_owned()))
        })
        .collect();
    // The callee admits the client, not this process: its certificate proves the hop only.
    remote_req.forwarded = true;
    remote_req.keyed = req.headers().contains_key("idempotency-key");
    remote_req.op = op;
    let module = fwd.remote.module();
    let call = async {
        match fwd.remote.call(remote_req).await {
            // A bug in the other process is, for this one, a dependency failing.
            Ok(res) if res.status == 500 => {
                let reason = "the module answered 500";
                tracing::warn!(module, reason, "forwarded request failed");
                Err(E::unavailable(reason.to_owned()))
            }
            Ok(res) => Ok(res),
            // As for a module call: a deadline is a 504, an open breaker says when to retry.
            Err(e) => {
                tracing::warn!(module, reason = %e, "forwarded request failed");
                Err(e.into_api_error::<E>())
            }
        }
    };
    let result = match op {
        Some(op) => fwd.path.run(op, &ctx, call).await,
        // Not a route of the contract: the hosting process answers its 404 or 405.
        None => call.await,
    };
    match result {
        Ok(res) => relay(res),
        Err(e) => Failure::from(e).error_response(),
    }
}

fn relay(res: RemoteResponse) -> HttpResponse {
    let status = StatusCode::from_u16(res.status).unwrap_or(StatusCode::BAD_GATEWAY);
    let mut out = HttpResponse::build(status);
    if let Some(ct) = res.content_type {
        out.insert_header((CONTENT_TYPE, ct));
    }
    for (name, value) in res.headers {
        out.insert_header((name, value));
    }
    out.body(res.body)
}

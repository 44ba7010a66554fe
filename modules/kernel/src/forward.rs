//! Forwarding a module's public routes to the process that hosts it. The request goes through
//! the same remote-call pipeline as a module call (deadline, request id, and later layers), and
//! the answer is relayed as it is: no decoding and re-encoding of bodies, so a client sees
//! exactly what the hosting process said. A module that cannot be reached answers 503
//! `<module>.unavailable`, as its own client would.

use actix_web::http::StatusCode;
use actix_web::http::header::CONTENT_TYPE;
use actix_web::{HttpRequest, HttpResponse, web};

use crate::CallContext;
use crate::client::{CONTRACT_HEADERS, Method, RemoteClient, RemoteRequest};
use crate::error::{Problem, problem_response};

struct Forward {
    module: &'static str,
    remote: RemoteClient,
}

/// Answers every route under `/api/<module>` by forwarding it through `remote`.
pub fn configure_forward(cfg: &mut web::ServiceConfig, remote: RemoteClient) {
    let module = remote.module();
    cfg.service(
        web::scope(&format!("/api/{module}"))
            .app_data(web::Data::new(Forward { module, remote }))
            .default_service(web::to(forward)),
    );
}

async fn forward(
    req: HttpRequest,
    ctx: CallContext,
    body: web::Bytes,
    fwd: web::Data<Forward>,
) -> HttpResponse {
    let unavailable = |reason: &str| {
        tracing::warn!(module = fwd.module, reason, "forwarded request failed");
        problem_response(
            StatusCode::SERVICE_UNAVAILABLE,
            Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                &format!("{}.unavailable", fwd.module),
                "Service Unavailable",
                None,
            ),
        )
    };
    let Ok(method) = Method::from_bytes(req.method().as_str().as_bytes()) else {
        return unavailable("method cannot be forwarded");
    };
    let path = req
        .uri()
        .path_and_query()
        .map_or_else(|| req.path(), |pq| pq.as_str())
        .to_owned();
    let content_type = req
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(String::from);
    let remote_req = RemoteRequest {
        ctx,
        method,
        path,
        body: (!body.is_empty()).then(|| body.to_vec()),
        content_type,
        headers: CONTRACT_HEADERS
            .iter()
            .filter_map(|&name| {
                let value = req.headers().get(name)?.to_str().ok()?;
                Some((name, value.to_owned()))
            })
            .collect(),
    };
    match fwd.remote.call(remote_req).await {
        // A bug in the other process is, for this one, a dependency failing.
        Ok(res) if res.status == 500 => unavailable("the module answered 500"),
        Ok(res) => {
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
        Err(e) => unavailable(&e.to_string()),
    }
}

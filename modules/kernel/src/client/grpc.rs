//! The gRPC transport: the innermost stage for a replica reached over gRPC (see
//! [`crate::grpc`]).

use actix_web::web::Bytes;
use hyper::http;
use tonic::Status;

use super::{PerThread, RemoteError, RemoteRequest, RemoteResponse, Resolver};
use crate::call::BoxFuture;
use crate::error::Problem;
use crate::grpc::{PROBLEM_METADATA, RawCodec, http_status_of};

/// The client of a module reached over gRPC: HTTP/2 only (over TLS when the url says so).
pub(crate) type GrpcClient = PerThread<
    hyper_util::client::legacy::Client<
        hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector<Resolver>>,
        tonic::body::Body,
    >,
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

impl GrpcTransport {
    /// Sends one try of a call as a gRPC request to the replica.
    pub(super) fn send(
        &self,
        req: RemoteRequest,
    ) -> BoxFuture<'static, Result<RemoteResponse, RemoteError>> {
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
        let mut headers = http::HeaderMap::with_capacity(8);
        super::call_headers(&req, &mut headers);
        *request.metadata_mut() = tonic::metadata::MetadataMap::from_headers(headers);
        if let Some(left) = req.ctx.remaining() {
            request.set_timeout(left);
        }
        let limit = self.max_answer_bytes;
        let mut grpc = tonic::client::Grpc::with_origin(self.client.get(), origin)
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
                    announced: Vec::new(),
                }),
                Err(status) => answer_of(module, &status),
            }
        })
    }
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
            announced: Vec::new(),
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
        announced: Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::{Failure, KernelError};
    use crate::grpc::{CODE_METADATA, code_of, status_of};

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

//! The innermost stage: one replica's transport (REST over hyper's pooled client, or gRPC)
//! and the per-thread connection pools.

use super::*;

/// How one replica is reached: REST over HTTP, or gRPC.
#[derive(Clone)]
pub(super) enum Wire {
    Http(HttpTransport),
    Grpc(grpc::GrpcTransport),
}

impl Wire {
    /// Sends one try of a call to the replica; the answer's future owns what it needs.
    pub(super) fn send(
        &self,
        req: RemoteRequest,
    ) -> BoxFuture<Result<RemoteResponse, RemoteError>> {
        match self {
            Self::Http(t) => t.send(req),
            Self::Grpc(t) => t.send(req),
        }
    }
}

/// The pooled client a target's replicas share: REST's, or gRPC's (HTTP/2 only).
#[derive(Clone)]
pub(super) enum WireClient {
    Http(HttpClient),
    Grpc(grpc::GrpcClient),
}

/// The innermost REST stage: encodes the request and context on the wire (HTTP/1.1).
#[derive(Clone)]
pub(super) struct HttpTransport {
    pub(super) module: &'static str,
    /// Where the replica is, parsed once (the pipeline is cloned per call, so shared);
    /// `None` for a url that is no HTTP url (every call is then refused, not sent).
    pub(super) base: Option<Arc<Base>>,
    pub(super) http: HttpClient,
    pub(super) max_answer_bytes: usize,
}

impl HttpTransport {
    /// Sends one try of a call as a REST request to the replica.
    fn send(&self, req: RemoteRequest) -> BoxFuture<Result<RemoteResponse, RemoteError>> {
        let module = self.module;
        let url = self.url_for(&req.path);
        const H_DEADLINE: HeaderName = HeaderName::from_static(DEADLINE_HEADER);
        let mut headers = HeaderMap::with_capacity(8);
        headers.insert(ACCEPT, HeaderValue::from_static("application/json"));
        if let Some(left) = req.ctx.remaining() {
            let ms = u64::try_from(left.as_millis()).unwrap_or(u64::MAX);
            headers.insert(H_DEADLINE, HeaderValue::from(ms));
        }
        if let Some(ct) = req
            .content_type
            .as_deref()
            .and_then(|v| HeaderValue::from_str(v).ok())
        {
            headers.insert(CONTENT_TYPE, ct);
        }
        call_headers(&req, &mut headers);
        let http = self.http.get();
        let limit = self.max_answer_bytes;
        let request = url.and_then(|url| {
            hyper::Request::builder()
                .method(req.method)
                .uri(url)
                .body(http_body_util::Full::new(req.body.unwrap_or_default()))
                .map_err(|e| e.to_string())
        });
        Box::pin(async move {
            let mut request = request.map_err(|e| RemoteError::NotSent {
                module,
                reason: format!("the request cannot be written: {e}"),
            })?;
            *request.headers_mut() = headers;
            let res = http.request(request).await.map_err(|e| {
                let reason = crate::error::error_chain(&e);
                if e.is_connect() {
                    RemoteError::NotSent { module, reason }
                } else {
                    RemoteError::AnswerLost { module, reason }
                }
            })?;
            let status = res.status().as_u16();
            let content_type = res
                .headers()
                .get(CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .map(String::from);
            let headers = FORWARDED_RESPONSE_HEADERS
                .iter()
                .filter_map(|&name| {
                    let value = res.headers().get(name)?.to_str().ok()?;
                    Some((name, value.to_owned()))
                })
                .collect();
            let announced = res
                .headers()
                .get_all(crate::context::ANNOUNCED_HEADER)
                .iter()
                .filter_map(|v| uuid::Uuid::parse_str(v.to_str().ok()?).ok())
                .collect();
            let body = read_capped(res, limit, module, status).await?;
            Ok(RemoteResponse {
                status,
                content_type,
                body,
                headers,
                announced,
            })
        })
    }
}

/// The headers every call carries, over REST as over gRPC (as metadata): its request id, the
/// operation and whether it is safe to repeat, the trace context, the end user's token (unless
/// a forwarded request brings its own `authorization`), and the contract's headers.
pub(super) fn call_headers(req: &RemoteRequest, headers: &mut HeaderMap) {
    // Header names and fixed values are built once, not parsed per call.
    const H_REQUEST_ID: HeaderName = HeaderName::from_static(REQUEST_ID_HEADER);
    const H_CALL: HeaderName = HeaderName::from_static(CALL_HEADER);
    if let Ok(id) = HeaderValue::from_str(req.ctx.request_id().as_str()) {
        headers.insert(H_REQUEST_ID, id);
    }
    crate::telemetry::inject_current(headers);
    let marks = CallMarks {
        operation: req.op.map(|op| op.id),
        safe: req.op.is_some_and(|op| op.repeat.is_safe(req.keyed)),
        forwarded: req.forwarded,
    };
    if let Some(value) = marks.render().and_then(|v| HeaderValue::from_str(&v).ok()) {
        headers.insert(H_CALL, value);
    }
    let forwards_authorization = req.headers.iter().any(|(n, _)| *n == "authorization");
    if let Some(token) = req
        .ctx
        .principal()
        .and_then(|p| p.access_token.as_deref())
        .filter(|_| !forwards_authorization)
        && let Ok(mut value) = HeaderValue::from_str(&format!("Bearer {token}"))
    {
        // The end user's identity travels with the call (token relay).
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
}

/// A replica's url taken apart once: scheme, authority and the path its routes are under.
pub(super) struct Base {
    scheme: hyper::http::uri::Scheme,
    authority: hyper::http::uri::Authority,
    /// The url's path without its trailing slash (`""` for a url without a path).
    prefix: String,
}

impl Base {
    pub(super) fn of(url: &Url) -> Option<Arc<Self>> {
        let uri: hyper::Uri = url.as_str().parse().ok()?;
        let parts = uri.into_parts();
        Some(Arc::new(Self {
            scheme: parts.scheme?,
            authority: parts.authority?,
            prefix: url.path().trim_end_matches('/').to_owned(),
        }))
    }
}

impl HttpTransport {
    /// The replica's url with `path_and_query` (from the root, maybe with `?query`) under its
    /// path: only the path and query are parsed per call (parsing whole urls, as reqwest
    /// did three times a call, was a sixth of a forwarded read's instructions).
    pub(super) fn url_for(&self, path_and_query: &str) -> Result<hyper::Uri, String> {
        let base = self
            .base
            .as_ref()
            .ok_or_else(|| "the module's url is not an http(s) url".to_owned())?;
        let path = if base.prefix.is_empty() {
            hyper::http::uri::PathAndQuery::try_from(path_and_query)
        } else {
            hyper::http::uri::PathAndQuery::try_from(format!("{}{path_and_query}", base.prefix))
        }
        .map_err(|e| format!("{path_and_query}: {e}"))?;
        let mut parts = hyper::http::uri::Parts::default();
        parts.scheme = Some(base.scheme.clone());
        parts.authority = Some(base.authority.clone());
        parts.path_and_query = Some(path);
        hyper::Uri::from_parts(parts).map_err(|e| e.to_string())
    }
}

/// The body of `res`, refused as soon as it is known to exceed `limit` bytes (by its
/// `Content-Length`, or while it streams in).
async fn read_capped(
    res: hyper::Response<hyper::body::Incoming>,
    limit: usize,
    module: &'static str,
    status: u16,
) -> Result<Bytes, RemoteError> {
    use http_body_util::BodyExt as _;
    let too_large = || RemoteError::Protocol {
        module,
        status,
        reason: format!("answer larger than {limit} bytes"),
    };
    let declared = res
        .headers()
        .get(hyper::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|n| n > u64::try_from(limit).unwrap_or(u64::MAX)) {
        return Err(too_large());
    }
    match http_body_util::Limited::new(res.into_body(), limit)
        .collect()
        .await
    {
        Ok(body) => Ok(body.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(too_large()),
        Err(e) => Err(RemoteError::AnswerLost {
            module,
            reason: crate::error::error_chain(&*e),
        }),
    }
}

/// The HTTP client of a target's calls: hyper's pooled client (keep-alive connections) over
/// rustls. REST calls offer only HTTP/1.1 in TLS's ALPN: on Boutique's mix the split used 12%
/// less CPU per request than with HTTP/2 (hpack, flow control and frames on both ends; see
/// docs/BENCHMARKS.md section 5), and a pool of connections serves concurrent calls as one
/// multiplexed connection did. hyper's own client rather than reqwest: reqwest
/// parses each call's url three times (its redirect policy and its response included), a
/// sixth of a forwarded read's instructions, for features a module call does not use.
type HttpClient = PerThread<
    hyper_util::client::legacy::Client<
        hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector<Resolver>>,
        http_body_util::Full<Bytes>,
    >,
>;

/// A pooled client per calling thread, made the first time the thread calls. hyper drives
/// each connection in a task spawned where it was opened, and a shared pool hands a
/// connection opened on one thread (an actix worker: a runtime of its own) to a call made on
/// another: every call then crosses threads twice (the request to the connection's task, the
/// answer back), each a wake-up of a thread that may be asleep, and waits while the other
/// worker is busy. With a pool per thread a call is written, and its answer read, on the
/// thread that made it.
pub(crate) struct PerThread<C: Send> {
    clients: Arc<thread_local::ThreadLocal<C>>,
    make: Arc<dyn Fn() -> C + Send + Sync>,
}

impl<C: Send> Clone for PerThread<C> {
    fn clone(&self) -> Self {
        Self {
            clients: Arc::clone(&self.clients),
            make: Arc::clone(&self.make),
        }
    }
}

impl<C: Clone + Send> PerThread<C> {
    fn new(make: impl Fn() -> C + Send + Sync + 'static) -> Self {
        Self {
            clients: Arc::new(thread_local::ThreadLocal::new()),
            make: Arc::new(make),
        }
    }

    /// This thread's client.
    pub(crate) fn get(&self) -> C {
        self.clients.get_or(|| (self.make)()).clone()
    }
}

/// Host names to addresses: the pinned one for its host (a replica found by DNS discovery,
/// its certificate still checked against the name), the system's resolver for the rest.
#[derive(Clone)]
pub(crate) struct Resolver(Option<Arc<(String, SocketAddr)>>);

impl Service<hyper_util::client::legacy::connect::dns::Name> for Resolver {
    type Response = std::vec::IntoIter<SocketAddr>;
    type Error = std::io::Error;
    type Future = BoxFuture<Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, name: hyper_util::client::legacy::connect::dns::Name) -> Self::Future {
        let pinned = self
            .0
            .as_ref()
            .filter(|p| p.0 == name.as_str())
            .map(|p| p.1);
        let host = name.as_str().to_owned();
        Box::pin(async move {
            if let Some(addr) = pinned {
                return Ok(vec![addr].into_iter());
            }
            // The connector puts the url's port on what is found.
            let found: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            Ok(found.into_iter())
        })
    }
}

/// The client of a target's calls: pooled keep-alive connections, the deployment's CA (on
/// top of the system's roots), this process's certificate; with `pinned`, every connection to
/// that host name goes to that address.
pub(super) fn wire_client(
    module: &'static str,
    settings: &RemoteSettings,
    pinned: Option<(&str, SocketAddr)>,
) -> Result<WireClient, RemoteError> {
    let unusable = |what: &str, e: &dyn std::fmt::Display| RemoteError::NotSent {
        module,
        reason: format!("{what}: {e}"),
    };
    use rustls::pki_types::pem::PemObject as _;
    let certs_in = |pem: &[u8], what: &str| {
        rustls::pki_types::CertificateDer::pem_slice_iter(pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| unusable(what, &e))
    };
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let extra_roots = match &settings.ca_pem {
        Some(pem) => certs_in(pem, "the CA certificate")?,
        None => Vec::new(),
    };
    let verifier =
        rustls_platform_verifier::Verifier::new_with_extra_roots(extra_roots, provider.clone())
            .map_err(|e| unusable("the certificate verifier", &e))?;
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| unusable("TLS", &e))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier));
    let tls = match &settings.identity_pem {
        Some(pem) => {
            let chain = certs_in(pem, "this process's certificate")?;
            let key = rustls::pki_types::PrivateKeyDer::from_pem_slice(pem)
                .map_err(|e| unusable("this process's key", &e))?;
            tls.with_client_auth_cert(chain, key)
                .map_err(|e| unusable("this process's certificate", &e))?
        }
        None => tls.with_no_client_auth(),
    };
    let mut tcp = hyper_util::client::legacy::connect::HttpConnector::new_with_resolver(Resolver(
        pinned.map(|(host, addr)| Arc::new((host.to_owned(), addr))),
    ));
    tcp.enforce_http(false);
    tcp.set_nodelay(true);
    tcp.set_connect_timeout(Some(settings.connect_timeout));
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http();
    let mut builder =
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new());
    builder
        .pool_idle_timeout(settings.pool_idle_timeout)
        .pool_max_idle_per_host(settings.pool_max_idle_per_host)
        .pool_timer(hyper_util::rt::TokioTimer::new());
    Ok(match settings.transport {
        Transport::Rest => {
            let connector = connector.enable_http1().wrap_connector(tcp);
            WireClient::Http(PerThread::new(move || builder.build(connector.clone())))
        }
        // gRPC is HTTP/2 only: with prior knowledge over plain TCP, by ALPN over TLS. One
        // connection (a thread's) carries every call at once.
        Transport::Grpc => {
            builder
                .http2_only(true)
                .timer(hyper_util::rt::TokioTimer::new());
            let connector = connector.enable_http2().wrap_connector(tcp);
            WireClient::Grpc(PerThread::new(move || builder.build(connector.clone())))
        }
    })
}

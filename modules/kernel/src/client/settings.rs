//! Connection, timeout and discovery settings of the calls to one module.

use super::*;

/// Connection and timeout settings of the calls to one module.
#[derive(Debug, Clone)]
pub struct RemoteSettings {
    /// Longest a single call may take when the caller set no earlier deadline.
    pub timeout: Duration,
    /// Most calls in flight to the module at once (its bulkhead); calls past it are refused
    /// at once with [`RemoteError::Overloaded`].
    pub max_concurrency: usize,
    /// Largest answer body read from the module, in bytes: a larger one is refused while it
    /// streams in ([`RemoteError::Protocol`]), never buffered whole.
    pub max_answer_bytes: usize,
    /// When to try a failed call again.
    pub retry: RetrySettings,
    /// When to stop calling a failing module for a while.
    pub breaker: BreakerSettings,
    /// Longest to wait for a TCP connection.
    pub connect_timeout: Duration,
    /// How long an idle pooled connection is kept.
    pub pool_idle_timeout: Duration,
    /// Most idle connections kept per host.
    pub pool_max_idle_per_host: usize,
    /// PEM of a CA to trust for `https://` modules (besides none: the system store is not
    /// used, module certificates come from the deployment's own CA).
    pub ca_pem: Option<Vec<u8>>,
    /// PEM of this process's client certificate and key, presented to modules that require
    /// mutual TLS.
    pub identity_pem: Option<Vec<u8>>,
    /// The module's replicas (`modules.<m>.urls`); empty: the base url alone.
    pub replicas: Vec<Url>,
    /// How the replicas' addresses are found.
    pub discovery: Discovery,
    /// Longest an answer of a `cached` operation is kept (zero: none is); the module's events
    /// clear them sooner.
    pub cache_ttl: Duration,
    /// How calls travel (a `grpc://` or `grpcs://` url is always gRPC).
    pub transport: Transport,
}

/// How calls to a module travel.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Transport {
    /// REST: each operation its route, JSON bodies, HTTP/1.1 over pooled keep-alive
    /// connections.
    #[default]
    Rest,
    /// gRPC: each operation a method of the contract's service (see [`crate::grpc`]), over
    /// HTTP/2.
    Grpc,
}

impl Transport {
    /// The transport of calls to `url` under `settings`.
    pub fn of(url: &Url, configured: Self) -> Self {
        if matches!(url.scheme(), "grpc" | "grpcs") {
            Self::Grpc
        } else {
            configured
        }
    }
}

/// How a module's replicas are found.
#[derive(Debug, Clone, Default)]
pub enum Discovery {
    /// The configured urls, as they are (each url one replica; its name resolved per
    /// connection).
    #[default]
    Static,
    /// Every address each url's host name resolves to is a replica, resolved again this
    /// often (a Kubernetes headless Service); the certificate is still checked against the
    /// name. When a lookup fails, the last addresses found are kept.
    Dns {
        /// Between lookups.
        every: Duration,
    },
    /// The urls the registry lists under the module (the configured ones, if any, until it
    /// has answered); when it cannot be reached, the last ones it listed.
    Etcd(Arc<crate::registry::Registry>),
}

impl Default for RemoteSettings {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(5),
            max_concurrency: 256,
            max_answer_bytes: 4 * 1024 * 1024,
            retry: RetrySettings::default(),
            breaker: BreakerSettings::default(),
            connect_timeout: Duration::from_secs(1),
            pool_idle_timeout: Duration::from_secs(60),
            pool_max_idle_per_host: 64,
            ca_pem: None,
            identity_pem: None,
            replicas: Vec::new(),
            discovery: Discovery::Static,
            cache_ttl: Duration::from_secs(5),
            transport: Transport::Rest,
        }
    }
}

//! The sections every process has: `[server]`, `[database]`, `[log]`, `[telemetry]`,
//! `[events]`, `[discovery]`, `[remote]`, `[tls]`, with their defaults.

use super::*;

/// `[server]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// Modules to host (`--modules`); absent: every module without a url.
    #[serde(
        deserialize_with = "module_list",
        skip_serializing_if = "Option::is_none"
    )]
    pub modules: Option<Vec<String>>,
    /// Worker threads; 0 means one per core.
    pub workers: usize,
    /// Seconds to let in-flight requests finish after SIGTERM/SIGINT.
    pub shutdown_timeout_secs: u64,
    /// Seconds a stopping process keeps serving, not ready, before it drains: the time
    /// load balancers and callers take to notice (0: drain at once).
    pub drain_secs: u64,
    /// Largest request body accepted, in bytes.
    pub max_body_bytes: usize,
    /// Longest a client may take to send a request's head (slow-loris guard), in ms.
    pub request_timeout_ms: u64,
    /// Longest an idle keep-alive connection is kept, in seconds.
    pub keep_alive_secs: u64,
    /// Longest a received request may take to be answered (then 504), in ms.
    pub handler_timeout_ms: u64,
    /// Requests each worker serves at once; past it, 503 `cleave.overloaded` at once.
    pub max_in_flight: usize,
    /// How late, in ms, a worker's event loop may run before new requests get 503
    /// `cleave.overloaded` at once; 0: not watched.
    pub max_queue_delay_ms: u64,
    /// Origins allowed to call the API from a browser (CORS); empty: CORS off.
    pub cors_allowed_origins: Vec<String>,
    /// `[server.tls]`
    pub tls: TlsConfig,
    /// Module APIs answer only signed-in users and modules of the deployment (client
    /// certificates naming `<module>.modules.cleave`): for internal processes.
    pub require_caller_proof: bool,
    /// Where to serve Online Boutique's gRPC services of the hosted modules (plain HTTP/2;
    /// see src/grpc.rs for which); absent: no gRPC.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub grpc_listen: Option<SocketAddr>,
    /// Takes every gRPC call without credentials as a call of the deployment's own modules
    /// (Online Boutique's services send none): only for a listener nobody else can reach.
    pub grpc_trusted: bool,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            modules: None,
            workers: 0,
            shutdown_timeout_secs: 30,
            drain_secs: 0,
            max_body_bytes: 64 * 1024,
            request_timeout_ms: 5000,
            keep_alive_secs: 30,
            handler_timeout_ms: 30_000,
            max_in_flight: cleave_kernel::http::HttpLimits::default().max_in_flight,
            max_queue_delay_ms: u64::try_from(
                cleave_kernel::http::HttpLimits::default()
                    .max_queue_delay
                    .as_millis(),
            )
            .unwrap_or(u64::MAX),
            cors_allowed_origins: Vec::new(),
            tls: TlsConfig::default(),
            require_caller_proof: false,
            grpc_listen: None,
            grpc_trusted: false,
        }
    }
}

/// Accepts `"a,b"` (handy in env vars) as well as `["a", "b"]`.
fn module_list<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<String>>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        One(String),
        Many(Vec<String>),
    }
    Ok(Some(match Raw::deserialize(d)? {
        Raw::One(s) => s
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(String::from)
            .collect(),
        Raw::Many(v) => v,
    }))
}

/// `[database]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DatabaseConfig {
    /// Connection url (`sqlite://...` or `postgres://...`); absent: a SQLite file in
    /// `data_dir`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Where the default SQLite file lives.
    pub data_dir: PathBuf,
    /// Connection pool size.
    pub max_connections: u32,
    /// Whether `serve` applies the migrations of the modules it hosts.
    pub migrate: bool,
    /// Refuse the embedded default (a SQLite file in `data_dir`): `url` must be given
    /// (production: replicas on local files each see their own data).
    pub require_url: bool,
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        Self {
            url: None,
            data_dir: PathBuf::from("data"),
            max_connections: 10,
            migrate: true,
            require_url: false,
        }
    }
}

impl DatabaseConfig {
    /// The url to connect to.
    pub fn effective_url(&self) -> String {
        self.url.clone().unwrap_or_else(|| {
            format!(
                "sqlite://{}?mode=rwc",
                self.data_dir.join("cleave.db").display()
            )
        })
    }
}

/// `[log]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    /// `auto` (pretty on a terminal, JSON otherwise), `json` or `pretty`.
    pub format: LogFormat,
    /// Filter directive, e.g. `info` or `info,cleave_kernel=debug`; `RUST_LOG` wins.
    pub level: String,
    /// Log every request at `info`; otherwise only 4xx and 5xx (the rest at `debug`).
    pub access: bool,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            format: LogFormat::Auto,
            level: "info".into(),
            access: false,
        }
    }
}

/// `[telemetry]`: metrics and traces.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TelemetryConfig {
    /// Record metrics and serve them at `/metrics` (Prometheus' text format).
    pub metrics: bool,
    /// Where to export traces with OTLP over HTTP (protobuf), e.g.
    /// `http://otel-collector:4318`; unset: traces are not exported (trace ids still travel
    /// and appear in the logs).
    pub otlp_endpoint: Option<String>,
    /// Share of the traces started here that are exported (0.0 to 1.0); a trace started by
    /// a caller keeps the caller's decision.
    pub sampling_ratio: f64,
    /// The service name traces carry; unset: `cleave` for a process hosting every module,
    /// otherwise `cleave-` and its modules joined by `-` (e.g. `cleave-catalog`).
    pub service_name: Option<String>,
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        Self {
            metrics: true,
            otlp_endpoint: None,
            sampling_ratio: 1.0,
            service_name: None,
        }
    }
}

/// `[events]`: delivery of events from the outbox.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EventsConfig {
    /// Whether this process delivers events from the outbox. Turn off to keep events stored
    /// but undelivered (e.g. while a subscriber is being moved); they are delivered by the
    /// next process that relays.
    pub relay: bool,
    /// How often the outbox is checked besides right after each commit.
    pub poll_interval_ms: u64,
    /// Where events go: `in-process` (subscribers in this process only) or `nats` (NATS
    /// JetStream at `nats_url`, for subscribers in other processes).
    pub bus: BusKind,
    /// The NATS server (with `bus = "nats"`).
    pub nats_url: String,
    /// Prefix of the subjects, streams and consumers: one per deployment sharing a server.
    pub nats_prefix: String,
    /// Deliveries of one event to one subscriber before it goes to the dead letters.
    pub max_deliver: i64,
    /// How long published events are kept, in the outbox and in the broker.
    pub retention_hours: u64,
}

/// `events.bus`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BusKind {
    /// Subscribers in this process only.
    InProcess,
    /// NATS JetStream.
    Nats,
}

impl Default for EventsConfig {
    fn default() -> Self {
        Self {
            relay: true,
            poll_interval_ms: 2000,
            bus: BusKind::InProcess,
            nats_url: "nats://127.0.0.1:4222".into(),
            nats_prefix: "cleave".into(),
            max_deliver: 5,
            retention_hours: 72,
        }
    }
}

/// `[discovery]`: how the replicas of a module in other processes are found.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DiscoveryConfig {
    /// `static`: each of `modules.<m>.urls` (or its `url`) is one replica. `dns`: every
    /// address each url's host name resolves to is one (a Kubernetes headless Service),
    /// looked up again every `refresh_secs`. `etcd`: every process registers the modules it
    /// hosts in etcd, and a module neither hosted nor given a url is called at the replicas
    /// registered there.
    pub kind: DiscoveryKind,
    /// Seconds between DNS lookups (`kind = "dns"`).
    pub refresh_secs: u64,
    /// etcd client urls (`kind = "etcd"`).
    pub etcd_endpoints: Vec<String>,
    /// The deployment's key prefix in etcd: processes of one deployment share it.
    pub etcd_prefix: String,
    /// Seconds a dead process's registration outlives it (its lease's time to live).
    pub lease_ttl_secs: u64,
    /// The url other processes reach this one at, as registered in etcd; default: http(s)
    /// and the address it listens on (which must then not be a wildcard address).
    pub advertise_url: Option<String>,
}

/// `discovery.kind`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DiscoveryKind {
    /// The configured urls.
    Static,
    /// Every address of each url's host name.
    Dns,
    /// The urls registered in etcd.
    Etcd,
}

impl Default for DiscoveryConfig {
    fn default() -> Self {
        let registry = RegistrySettings::default();
        Self {
            kind: DiscoveryKind::Static,
            refresh_secs: 5,
            etcd_endpoints: registry.endpoints,
            etcd_prefix: registry.prefix,
            lease_ttl_secs: registry.ttl.as_secs(),
            advertise_url: None,
        }
    }
}

impl DiscoveryConfig {
    /// The registry's settings (`kind = "etcd"`), with the time a request to it may take.
    pub fn registry(&self, timeout: std::time::Duration) -> RegistrySettings {
        RegistrySettings {
            endpoints: self.etcd_endpoints.clone(),
            prefix: self.etcd_prefix.clone(),
            ttl: std::time::Duration::from_secs(self.lease_ttl_secs),
            timeout,
        }
    }

    /// Where a module found in the registry is said to be: `etcd://<first endpoint's
    /// host><prefix>/modules/<module>/`.
    pub fn registry_url(&self, module: &str) -> Url {
        let host = self
            .etcd_endpoints
            .first()
            .and_then(|e| Url::parse(e).ok())
            .and_then(|u| {
                u.host_str()
                    .map(|h| format!("{h}:{}", u.port_or_known_default().unwrap_or(2379)))
            })
            .unwrap_or_else(|| "etcd".into());
        let prefix = self.etcd_prefix.trim_matches('/');
        Url::parse(&format!("etcd://{host}/{prefix}/modules/{module}/"))
            .unwrap_or_else(|_| Url::parse("etcd://etcd/").expect("a valid url"))
    }
}

/// `[remote]`: defaults for calls to modules in other processes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RemoteConfig {
    /// Longest a call may take, unless the caller's deadline is sooner.
    pub timeout_ms: u64,
    /// Longest to wait for a connection.
    pub connect_timeout_ms: u64,
    /// How long idle pooled connections are kept.
    pub pool_idle_timeout_secs: u64,
    /// Most idle connections kept per target.
    pub pool_max_idle_per_host: usize,
    /// PEM file of the CA that signs the modules' certificates (for `https://` module urls).
    pub ca_file: Option<PathBuf>,
    /// PEM certificate this process presents to modules that require mutual TLS.
    pub client_cert_file: Option<PathBuf>,
    /// PEM private key of `client_cert_file`.
    pub client_key_file: Option<PathBuf>,
    /// Most calls in flight from this process to one module (its bulkhead); calls past it
    /// are refused at once with 503.
    pub max_concurrency: usize,
    /// Largest answer read from a module, in bytes (refused while it streams in).
    pub max_answer_bytes: usize,
    /// Longest an answer of a `cached` operation (catalog reads, currency conversions) is
    /// kept by its caller, in ms; the module's events drop them sooner. 0: none is kept.
    pub cache_ttl_ms: u64,
    /// The same, in ms, for a module that announces every change (`#[module(announces)]`:
    /// cart, catalog, ads) when its events reach this process (`events.bus = "nats"`): its
    /// events drop what they change, so this only bounds what a lost event leaves stale.
    pub announced_cache_ttl_ms: u64,
    /// `[remote.retry]`
    pub retry: RetryConfig,
    /// `[remote.breaker]`
    pub breaker: BreakerConfig,
}

/// `[remote.retry]`: when a failed call to another process is tried again.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetryConfig {
    /// Most tries of one call, the first included (1: never retry).
    pub attempts: u32,
    /// Backoff base in ms (full jitter: a random wait up to base × 2^n).
    pub base_ms: u64,
    /// Longest backoff in ms.
    pub cap_ms: u64,
    /// Retries allowed as a percentage of the calls of the last 10 s, per target.
    pub budget_percent: f32,
    /// Retries allowed per second whatever the calls, per target.
    pub budget_min_per_sec: u32,
}

impl Default for RetryConfig {
    fn default() -> Self {
        let d = cleave_kernel::resilience::RetrySettings::default();
        Self {
            attempts: d.attempts,
            base_ms: millis(d.base),
            cap_ms: millis(d.cap),
            budget_percent: d.budget_percent,
            budget_min_per_sec: d.budget_min_per_sec,
        }
    }
}

/// `[remote.breaker]`: when calls to a failing module stop for a while.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BreakerConfig {
    /// Failures in a row that open the breaker.
    pub consecutive: u32,
    /// Calls the failure rate is measured over.
    pub window: usize,
    /// Calls needed in the window before the rate counts.
    pub min_calls: usize,
    /// Failure rate, in percent of the window, that opens the breaker.
    pub failure_percent: u32,
    /// How long it stays open the first time, in ms (doubling after each failed probe).
    pub open_ms: u64,
    /// Longest it stays open, in ms.
    pub max_open_ms: u64,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        let d = cleave_kernel::resilience::BreakerSettings::default();
        Self {
            consecutive: d.consecutive,
            window: d.window,
            min_calls: d.min_calls,
            failure_percent: d.failure_percent,
            open_ms: millis(d.open_for),
            max_open_ms: millis(d.max_open_for),
        }
    }
}

fn millis(d: std::time::Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl Default for RemoteConfig {
    fn default() -> Self {
        let d = RemoteSettings::default();
        Self {
            timeout_ms: u64::try_from(d.timeout.as_millis()).unwrap_or(5000),
            connect_timeout_ms: u64::try_from(d.connect_timeout.as_millis()).unwrap_or(1000),
            pool_idle_timeout_secs: d.pool_idle_timeout.as_secs(),
            pool_max_idle_per_host: d.pool_max_idle_per_host,
            ca_file: None,
            client_cert_file: None,
            client_key_file: None,
            max_concurrency: d.max_concurrency,
            max_answer_bytes: d.max_answer_bytes,
            cache_ttl_ms: u64::try_from(d.cache_ttl.as_millis()).unwrap_or(5000),
            announced_cache_ttl_ms: 60_000,
            retry: RetryConfig::default(),
            breaker: BreakerConfig::default(),
        }
    }
}

/// `[server.tls]`: serve HTTPS instead of HTTP.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM certificate chain; with `key_file`, the listener speaks HTTPS (TLS 1.3 and 1.2).
    pub cert_file: Option<PathBuf>,
    /// PEM private key of `cert_file`.
    pub key_file: Option<PathBuf>,
    /// PEM CA: when set, clients present a certificate it issued (mutual TLS).
    pub client_ca_file: Option<PathBuf>,
    /// With `client_ca_file`: refuse connections without a client certificate (`true`), or
    /// accept them and tell callers apart per request (`false`, with
    /// `server.require_caller_proof`).
    pub client_cert_required: bool,
}

impl Default for TlsConfig {
    fn default() -> Self {
        Self {
            cert_file: None,
            key_file: None,
            client_ca_file: None,
            client_cert_required: true,
        }
    }
}

/// TLS material read from the configured files.
#[derive(Debug, Clone, Default)]
pub struct RemoteTls {
    /// CA PEM for module urls.
    pub ca_pem: Option<Vec<u8>>,
    /// Client certificate and key PEM (concatenated).
    pub identity_pem: Option<Vec<u8>>,
}

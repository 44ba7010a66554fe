//! The application's configuration: the sections every process has (`server`, `database`,
//! `log`, `remote`) and one `[modules.<m>]` section per module, loaded in layers by the
//! kernel and validated here so that start-up fails with the key, its origin and the problem.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use cleave_kernel::client::RemoteSettings;
use cleave_kernel::config::{ConfigError, ConfigSources, Named, layered, section};
use cleave_kernel::module::{Module, ModuleConfigs};
use cleave_kernel::registry::{Registry, RegistrySettings};
use cleave_kernel::telemetry::LogFormat;
use figment::Figment;
use figment::value::{Dict, Value};
use serde::{Deserialize, Deserializer, Serialize};
use url::Url;

use crate::modules::MODULES;

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

/// Everything but the module sections.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct AppConfig {
    /// `[server]`
    pub server: ServerConfig,
    /// `[database]`
    pub database: DatabaseConfig,
    /// `[log]`
    pub log: LogConfig,
    /// `[remote]`
    pub remote: RemoteConfig,
    /// `[events]`
    pub events: EventsConfig,
    /// `[telemetry]`
    pub telemetry: TelemetryConfig,
    /// `[discovery]`
    pub discovery: DiscoveryConfig,
    /// `[modules.*]`, validated per module by [`Settings::load`].
    #[serde(skip_serializing)]
    pub modules: BTreeMap<String, Value>,
}

/// Keys every `[modules.<m>]` section may have, whatever the module: where it runs and how
/// calls to it behave (each over its `[remote]` default).
const PLACEMENT_KEYS: [&str; 8] = [
    "url",
    "urls",
    "protocol",
    "timeout_ms",
    "max_concurrency",
    "cache_ttl_ms",
    "retry",
    "breaker",
];

/// Placement keys of one module (`retry` and `breaker` are read over their `[remote]`
/// defaults by [`over_remote`]).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
struct Placement {
    url: Option<String>,
    urls: Option<Vec<String>>,
    protocol: Option<TransportConfig>,
    timeout_ms: Option<u64>,
    max_concurrency: Option<usize>,
    cache_ttl_ms: Option<u64>,
}

/// `modules.<m>.protocol`: how calls to a module in another process travel.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TransportConfig {
    /// Its REST API (the default for `http(s)://` urls).
    #[default]
    Rest,
    /// Its gRPC service (the only one for `grpc://` and `grpcs://` urls), at the process's
    /// `server.grpc_listen`.
    Grpc,
    /// Online Boutique's gRPC service for it, with Boutique's messages: an existing Boutique
    /// service (or anything serving its proto) as the module. For the modules whose contract
    /// Boutique's service covers: [`BOUTIQUE_CLIENTS`].
    Boutique,
}

/// The modules that may be reached as Online Boutique's services (`modules.<m>.protocol =
/// "boutique"`).
pub const BOUTIQUE_CLIENTS: [&str; 1] = ["recommendation"];

/// Where one remote module given a url is.
#[derive(Debug, Clone, PartialEq)]
pub struct RemoteTarget {
    /// Its base url (the first of its replicas').
    pub url: Url,
    /// Its replicas' base urls (`modules.<m>.urls`, or `url` alone).
    pub urls: Vec<Url>,
    /// How its calls travel (`modules.<m>.protocol`, or gRPC for a `grpc(s)://` url).
    pub transport: TransportConfig,
}

/// How calls to one module behave when it is in another process, however it is found (a
/// url, DNS or etcd): its `[modules.<m>]` keys over `[remote]`.
#[derive(Debug, Clone, PartialEq)]
pub struct ModuleCalls {
    /// Its call timeout (`modules.<m>.timeout_ms`, else `remote.timeout_ms`).
    pub timeout_ms: u64,
    /// Its bulkhead (`modules.<m>.max_concurrency`, else `remote.max_concurrency`).
    pub max_concurrency: usize,
    /// How long its answers are kept (`modules.<m>.cache_ttl_ms`, else
    /// `remote.announced_cache_ttl_ms` or `remote.cache_ttl_ms`: [`cache_ttl_ms`]).
    pub cache_ttl_ms: u64,
    /// `[remote.retry]` with `[modules.<m>.retry]` over it.
    pub retry: RetryConfig,
    /// `[remote.breaker]` with `[modules.<m>.breaker]` over it.
    pub breaker: BreakerConfig,
}

/// How long answers of `module` are kept by callers in other processes: its own
/// `modules.<m>.cache_ttl_ms`, else `remote.announced_cache_ttl_ms` when it announces every
/// change and its events reach this process (over NATS), else `remote.cache_ttl_ms`.
fn cache_ttl_ms(app: &AppConfig, module: &str, own: Option<u64>) -> u64 {
    let announced = app.events.bus == BusKind::Nats
        && crate::modules::find(module).is_some_and(|m| m.announces_changes());
    own.unwrap_or(if announced {
        app.remote.announced_cache_ttl_ms
    } else {
        app.remote.cache_ttl_ms
    })
}

impl ModuleCalls {
    /// `[remote]`'s and the module's answer lifetime, for a module with no keys of its own.
    fn of_module(app: &AppConfig, module: &str) -> Self {
        Self {
            cache_ttl_ms: cache_ttl_ms(app, module, None),
            ..Self::of_remote(&app.remote)
        }
    }

    /// `[remote]`'s.
    fn of_remote(r: &RemoteConfig) -> Self {
        Self {
            timeout_ms: r.timeout_ms,
            max_concurrency: r.max_concurrency,
            cache_ttl_ms: r.cache_ttl_ms,
            retry: r.retry.clone(),
            breaker: r.breaker.clone(),
        }
    }
}

/// `[remote.<part>]` with `[modules.<module>.<part>]` over it, key by key.
fn over_remote<T: Serialize + serde::de::DeserializeOwned + Clone>(
    figment: &Figment,
    module: &str,
    part: &str,
    base: &T,
) -> Result<T, ConfigError> {
    let key = format!("modules.{module}.{part}");
    if figment.find_value(&key).is_err() {
        return Ok(base.clone());
    }
    Figment::from(figment::providers::Serialized::defaults(base))
        .merge(figment.focus(&key))
        .extract()
        .map_err(|e| {
            let mut err = ConfigError::from_figment(e, figment);
            err.key = if err.key == "(root)" {
                key.clone()
            } else {
                format!("{key}.{}", err.key)
            };
            err.origin = cleave_kernel::config::origin_of(figment, &err.key);
            err
        })
}

/// The loaded, validated configuration and the figment it came from (for `config show`).
#[derive(Debug, Clone)]
pub struct Settings {
    /// The merged layers.
    pub figment: Figment,
    /// The common sections.
    pub app: AppConfig,
    /// `modules.<m>.url` of every module that has one.
    pub targets: BTreeMap<String, RemoteTarget>,
    /// The call keys of every module with a `[modules.<m>]` section.
    pub calls: BTreeMap<String, ModuleCalls>,
    /// Every module's `[modules.<m>]` settings, validated.
    pub modules: ModuleConfigs,
    /// The listener's TLS configuration, when `server.tls` is set.
    pub server_tls: Option<Arc<rustls::ServerConfig>>,
    /// TLS material for calls to modules.
    pub remote_tls: RemoteTls,
}

/// Values given on the command line; they override every other layer.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// `--listen`
    pub listen: Option<SocketAddr>,
    /// `--modules`
    pub modules: Option<Vec<String>>,
}

impl Settings {
    /// Loads and validates every layer.
    ///
    /// # Errors
    /// [`ConfigError`] naming the first bad key, where its value came from and what is wrong.
    pub fn load(sources: &ConfigSources, overrides: &Overrides) -> Result<Self, ConfigError> {
        let mut figment = layered(&AppConfig::default(), sources)?;
        if let Some(listen) = overrides.listen {
            figment = figment.merge(Named::new(
                "command line (--listen)",
                ("server.listen", listen.to_string()),
            ));
        }
        if let Some(modules) = &overrides.modules {
            figment = figment.merge(Named::new(
                "command line (--modules)",
                ("server.modules", modules.clone()),
            ));
        }
        check_env_names(&figment, std::env::vars().map(|(k, _)| k))?;
        Self::from_figment(figment)
    }

    /// Validates an already layered figment.
    ///
    /// # Errors
    /// As [`Settings::load`].
    pub fn from_figment(figment: Figment) -> Result<Self, ConfigError> {
        check_sections(&figment)?;
        let app: AppConfig = figment
            .extract()
            .map_err(|e| ConfigError::from_figment(e, &figment))?;
        let (targets, calls) = targets(&figment, &app)?;
        let mut modules = ModuleConfigs::default();
        for entry in &MODULES {
            modules.insert(
                entry.spec().name,
                entry.load_config(&figment, &PLACEMENT_KEYS)?,
            );
        }
        check_values(&figment, &app, &calls)?;
        let server_tls = server_tls(&figment, &app.server.tls)?;
        let remote_tls = remote_tls(&figment, &app.remote)?;
        Ok(Self {
            figment,
            app,
            targets,
            calls,
            modules,
            server_tls,
            remote_tls,
        })
    }

    /// The settings of module `M`.
    pub fn module<M: Module>(&self) -> M::Config {
        self.modules.get::<M>().cloned().unwrap_or_default()
    }

    /// The url this process registers in etcd: `discovery.advertise_url`, or http(s) and
    /// the address it listens on (`addr`, bound).
    pub fn advertise_url(&self, addr: SocketAddr) -> Url {
        let configured = self.app.discovery.advertise_url.as_deref();
        if let Some(url) = configured.and_then(|raw| Url::parse(raw).ok()) {
            return url;
        }
        let scheme = if self.server_tls.is_some() {
            "https"
        } else {
            "http"
        };
        Url::parse(&format!("{scheme}://{addr}"))
            .unwrap_or_else(|_| Url::parse("http://127.0.0.1/").expect("a valid url"))
    }

    /// How calls to `module` travel, if it is remote.
    pub fn protocol(&self, module: &str) -> Option<TransportConfig> {
        self.targets.get(module).map(|t| t.transport)
    }

    /// Call settings for `module` (its `[modules.<m>]` keys over `[remote]`); with
    /// `discovery.kind = "etcd"`, its replicas are followed in `registry`.
    pub fn remote_settings(
        &self,
        module: &str,
        registry: Option<&Arc<Registry>>,
    ) -> RemoteSettings {
        let r = &self.app.remote;
        let calls = self.calls.get(module).map_or_else(
            || std::borrow::Cow::Owned(ModuleCalls::of_module(&self.app, module)),
            std::borrow::Cow::Borrowed,
        );
        let (retry, breaker) = (&calls.retry, &calls.breaker);
        RemoteSettings {
            timeout: std::time::Duration::from_millis(calls.timeout_ms),
            max_concurrency: calls.max_concurrency,
            max_answer_bytes: r.max_answer_bytes,
            cache_ttl: std::time::Duration::from_millis(calls.cache_ttl_ms),
            retry: cleave_kernel::resilience::RetrySettings {
                attempts: retry.attempts,
                base: std::time::Duration::from_millis(retry.base_ms),
                cap: std::time::Duration::from_millis(retry.cap_ms),
                budget_percent: retry.budget_percent,
                budget_min_per_sec: retry.budget_min_per_sec,
            },
            breaker: cleave_kernel::resilience::BreakerSettings {
                consecutive: breaker.consecutive,
                window: breaker.window,
                min_calls: breaker.min_calls,
                failure_percent: breaker.failure_percent,
                open_for: std::time::Duration::from_millis(breaker.open_ms),
                max_open_for: std::time::Duration::from_millis(breaker.max_open_ms),
            },
            connect_timeout: std::time::Duration::from_millis(r.connect_timeout_ms),
            pool_idle_timeout: std::time::Duration::from_secs(r.pool_idle_timeout_secs),
            pool_max_idle_per_host: r.pool_max_idle_per_host,
            ca_pem: self.remote_tls.ca_pem.clone(),
            identity_pem: self.remote_tls.identity_pem.clone(),
            transport: match self.targets.get(module).map(|t| t.transport) {
                Some(TransportConfig::Grpc | TransportConfig::Boutique) => {
                    cleave_kernel::client::Transport::Grpc
                }
                Some(TransportConfig::Rest) | None => cleave_kernel::client::Transport::Rest,
            },
            replicas: self
                .targets
                .get(module)
                .map(|t| t.urls.clone())
                .unwrap_or_default(),
            discovery: match (self.app.discovery.kind, registry) {
                (DiscoveryKind::Dns, _) => cleave_kernel::client::Discovery::Dns {
                    every: std::time::Duration::from_secs(self.app.discovery.refresh_secs),
                },
                (DiscoveryKind::Etcd, Some(registry)) => {
                    cleave_kernel::client::Discovery::Etcd(registry.clone())
                }
                (DiscoveryKind::Static | DiscoveryKind::Etcd, _) => {
                    cleave_kernel::client::Discovery::Static
                }
            },
        }
    }
}

/// `CLEAVE_*` variables that are not configuration keys.
const NOT_KEYS: [&str; 3] = [
    "CLEAVE_ENV",
    "CLEAVE_CONFIG_DIR",
    cleave_kernel::config::TEST_DATABASE_URL_ENV,
];

/// Refuses `CLEAVE_*` variables that set nothing: keys take `__` between levels
/// (`CLEAVE_SERVER__LISTEN`), so `CLEAVE_SERVER_LISTEN` would be silently ignored. Names the
/// nearest key.
fn check_env_names(
    figment: &Figment,
    names: impl Iterator<Item = String>,
) -> Result<(), ConfigError> {
    let Some(unknown) = names
        .filter(|n| n.starts_with("CLEAVE_") && !n.contains("__"))
        .find(|n| !NOT_KEYS.contains(&n.as_str()))
    else {
        return Ok(());
    };
    let mut keys = Vec::new();
    if let Ok(top) = figment.extract::<Dict>() {
        flatten("", &top, &mut keys);
    }
    let env_name = |key: &str| format!("CLEAVE_{}", key.to_uppercase().replace('.', "__"));
    let squash = |name: &str| name.replace('_', "");
    let nearest = keys
        .iter()
        .map(|k| (k, env_name(k)))
        .min_by_key(|(_, name)| strsim::levenshtein(&squash(name), &squash(&unknown)));
    let hint = match nearest {
        Some((key, name)) if strsim::levenshtein(&squash(&name), &squash(&unknown)) <= 3 => {
            format!("; did you mean {name} ({key})?")
        }
        _ => String::new(),
    };
    Err(ConfigError {
        key: unknown.clone(),
        origin: format!("env var {unknown}"),
        message: format!(
            "not a configuration key (keys take a double underscore between levels, \
             e.g. CLEAVE_SERVER__LISTEN){hint}"
        ),
    })
}

/// The dotted keys of `dict`'s leaves, under `prefix`.
fn flatten(prefix: &str, dict: &Dict, out: &mut Vec<String>) {
    for (k, v) in dict {
        let key = if prefix.is_empty() {
            k.clone()
        } else {
            format!("{prefix}.{k}")
        };
        match v.as_dict() {
            Some(inner) if !inner.is_empty() => flatten(&key, inner, out),
            _ => out.push(key),
        }
    }
}

/// The top-level sections a configuration may have.
const SECTIONS: [&str; 8] = [
    "server",
    "database",
    "log",
    "remote",
    "events",
    "telemetry",
    "discovery",
    "modules",
];

/// Refuses unknown top-level sections.
fn check_sections(figment: &Figment) -> Result<(), ConfigError> {
    let top: Dict = figment
        .extract()
        .map_err(|e| ConfigError::from_figment(e, figment))?;
    match top.keys().find(|k| !SECTIONS.contains(&k.as_str())) {
        Some(key) => Err(ConfigError::at(
            figment,
            key,
            format!("unknown section; known: {}", SECTIONS.join(", ")),
        )),
        None => Ok(()),
    }
}

/// `modules.<m>.url` of every module that has one, and the call keys of every module with a
/// section; unknown modules refused.
type Targets = (
    BTreeMap<String, RemoteTarget>,
    BTreeMap<String, ModuleCalls>,
);

fn targets(figment: &Figment, app: &AppConfig) -> Result<Targets, ConfigError> {
    let mut targets = BTreeMap::new();
    let mut calls = BTreeMap::new();
    for name in app.modules.keys() {
        if crate::modules::find(name).is_none() {
            return Err(ConfigError::at(
                figment,
                &format!("modules.{name}"),
                format!(
                    "unknown module; known modules: {}",
                    crate::modules::names().join(", ")
                ),
            ));
        }
        let placement: Placement = section(figment, name)?;
        let r = &app.remote;
        calls.insert(
            name.clone(),
            ModuleCalls {
                timeout_ms: placement.timeout_ms.unwrap_or(r.timeout_ms),
                max_concurrency: placement.max_concurrency.unwrap_or(r.max_concurrency),
                cache_ttl_ms: cache_ttl_ms(app, name, placement.cache_ttl_ms),
                retry: over_remote(figment, name, "retry", &r.retry)?,
                breaker: over_remote(figment, name, "breaker", &r.breaker)?,
            },
        );
        let (key, raws) = match (placement.url, placement.urls) {
            (None, None) => continue,
            (Some(_), Some(_)) => {
                return Err(ConfigError::at(
                    figment,
                    &format!("modules.{name}.urls"),
                    format!("set modules.{name}.url (one replica) or urls (several), not both"),
                ));
            }
            (Some(url), None) => (format!("modules.{name}.url"), vec![url]),
            (None, Some(urls)) if urls.is_empty() => {
                return Err(ConfigError::at(
                    figment,
                    &format!("modules.{name}.urls"),
                    "is empty: list the replicas' urls, or leave it out to host the module",
                ));
            }
            (None, Some(urls)) => (format!("modules.{name}.urls"), urls),
        };
        let mut urls = Vec::with_capacity(raws.len());
        for raw in &raws {
            let url = Url::parse(raw).map_err(|e| {
                ConfigError::at(figment, &key, format!("{raw:?} is not a url: {e}"))
            })?;
            if !matches!(url.scheme(), "http" | "https" | "grpc" | "grpcs")
                || url.host_str().is_none()
            {
                return Err(ConfigError::at(
                    figment,
                    &key,
                    format!(
                        "{raw:?}: must be an http://, https://, grpc:// or grpcs:// url with a \
                         host, e.g. http://catalog:8080 or grpc://catalog:9090"
                    ),
                ));
            }
            urls.push(url);
        }
        let grpc_urls = urls
            .iter()
            .filter(|u| matches!(u.scheme(), "grpc" | "grpcs"))
            .count();
        if placement.protocol == Some(TransportConfig::Boutique)
            && !BOUTIQUE_CLIENTS.contains(&name.as_str())
        {
            return Err(ConfigError::at(
                figment,
                &format!("modules.{name}.protocol"),
                format!(
                    "is boutique, but Cleave calls only {} as Online Boutique's services",
                    BOUTIQUE_CLIENTS.join(", ")
                ),
            ));
        }
        let transport = match (placement.protocol, grpc_urls) {
            (_, 0) => placement.protocol.unwrap_or_default(),
            (None | Some(TransportConfig::Grpc), n) if n == urls.len() => TransportConfig::Grpc,
            (Some(TransportConfig::Boutique), n) if n == urls.len() => TransportConfig::Boutique,
            (Some(TransportConfig::Rest), _) => {
                return Err(ConfigError::at(
                    figment,
                    &format!("modules.{name}.protocol"),
                    "is rest, but the module's url is a grpc:// or grpcs:// one",
                ));
            }
            _ => {
                return Err(ConfigError::at(
                    figment,
                    &key,
                    "mixes grpc(s):// and http(s):// urls: a module's replicas are reached one \
                     way",
                ));
            }
        };
        let url = urls[0].clone();
        targets.insert(
            name.clone(),
            RemoteTarget {
                url,
                urls,
                transport,
            },
        );
    }
    Ok((targets, calls))
}

/// The retry and breaker settings at `at` (`remote` or `modules.<m>`) that serde cannot
/// check.
fn check_resilience(
    figment: &Figment,
    at: &str,
    retry: &RetryConfig,
    breaker: &BreakerConfig,
) -> Result<(), ConfigError> {
    let fail =
        |key: &str, message: String| Err(ConfigError::at(figment, &format!("{at}.{key}"), message));
    if breaker.min_calls > breaker.window {
        return fail(
            "breaker.min_calls",
            format!("must be at most {at}.breaker.window ({})", breaker.window),
        );
    }
    if !(1..=100).contains(&breaker.failure_percent) {
        return fail(
            "breaker.failure_percent",
            "must be between 1 and 100".into(),
        );
    }
    if breaker.max_open_ms < breaker.open_ms {
        return fail(
            "breaker.max_open_ms",
            format!("must be at least {at}.breaker.open_ms"),
        );
    }
    if !(0.0..=100.0).contains(&retry.budget_percent) {
        return fail("retry.budget_percent", "must be between 0 and 100".into());
    }
    Ok(())
}

/// Values serde cannot check: counts and durations of at least 1, CORS origins.
fn check_values(
    figment: &Figment,
    app: &AppConfig,
    modules: &BTreeMap<String, ModuleCalls>,
) -> Result<(), ConfigError> {
    let server = &app.server;
    let mut positive: Vec<(String, u64)> = vec![
        (
            "events.poll_interval_ms".into(),
            app.events.poll_interval_ms,
        ),
        (
            "events.max_deliver".into(),
            u64::try_from(app.events.max_deliver).unwrap_or(0),
        ),
        ("events.retention_hours".into(), app.events.retention_hours),
        ("discovery.refresh_secs".into(), app.discovery.refresh_secs),
        (
            "discovery.lease_ttl_secs".into(),
            app.discovery.lease_ttl_secs,
        ),
        (
            "database.max_connections".into(),
            u64::from(app.database.max_connections),
        ),
        (
            "server.handler_timeout_ms".into(),
            server.handler_timeout_ms,
        ),
        (
            "server.max_in_flight".into(),
            u64::try_from(server.max_in_flight).unwrap_or(u64::MAX),
        ),
        (
            "server.request_timeout_ms".into(),
            server.request_timeout_ms,
        ),
        (
            "server.max_body_bytes".into(),
            u64::try_from(server.max_body_bytes).unwrap_or(u64::MAX),
        ),
        (
            "remote.connect_timeout_ms".into(),
            app.remote.connect_timeout_ms,
        ),
        (
            "remote.max_answer_bytes".into(),
            u64::try_from(app.remote.max_answer_bytes).unwrap_or(u64::MAX),
        ),
    ];
    let remote = ModuleCalls::of_remote(&app.remote);
    let calls: Vec<(String, &ModuleCalls)> = std::iter::once(("remote".to_owned(), &remote))
        .chain(
            modules
                .iter()
                .map(|(name, c)| (format!("modules.{name}"), c)),
        )
        .collect();
    for (at, c) in &calls {
        positive.extend([
            (format!("{at}.timeout_ms"), c.timeout_ms),
            (
                format!("{at}.max_concurrency"),
                u64::try_from(c.max_concurrency).unwrap_or(u64::MAX),
            ),
            (format!("{at}.retry.attempts"), u64::from(c.retry.attempts)),
            (
                format!("{at}.breaker.consecutive"),
                u64::from(c.breaker.consecutive),
            ),
            (
                format!("{at}.breaker.window"),
                u64::try_from(c.breaker.window).unwrap_or(u64::MAX),
            ),
        ]);
    }
    if let Some((key, _)) = positive.iter().find(|(_, v)| *v == 0) {
        return Err(ConfigError::at(figment, key, "must be at least 1"));
    }
    for (at, c) in &calls {
        check_resilience(figment, at, &c.retry, &c.breaker)?;
    }
    let prefix = &app.events.nats_prefix;
    if prefix.is_empty()
        || !prefix
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        return Err(ConfigError::at(
            figment,
            "events.nats_prefix",
            "must be letters, digits, - and _ (it names NATS subjects and streams)",
        ));
    }
    if app.events.bus == BusKind::Nats
        && !app.events.nats_url.starts_with("nats://")
        && !app.events.nats_url.starts_with("tls://")
    {
        return Err(ConfigError::at(
            figment,
            "events.nats_url",
            "must be a nats:// (or tls://) url, e.g. nats://127.0.0.1:4222",
        ));
    }
    check_discovery(figment, &app.discovery, server.listen)?;
    cleave_kernel::telemetry::check_filter(&app.log.level)
        .map_err(|e| ConfigError::at(figment, "log.level", e))?;
    check_telemetry(figment, &app.telemetry)?;
    check_database(figment, &app.database)?;
    let storefront: storefront::StorefrontConfig = figment
        .extract_inner("modules.storefront")
        .unwrap_or_default();
    let currency = storefront.default_currency;
    if !cleave_migrations::currency::seeded_codes().any(|c| c == currency) {
        return Err(ConfigError::at(
            figment,
            "modules.storefront.default_currency",
            format!(
                "{currency:?} is not a supported currency; supported: {}",
                cleave_migrations::currency::seeded_codes()
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ));
    }
    for (i, origin) in server.cors_allowed_origins.iter().enumerate() {
        let ok = url::Url::parse(origin).is_ok_and(|u| {
            matches!(u.scheme(), "http" | "https") && u.host().is_some() && u.path() == "/"
        }) && !origin.ends_with('/');
        if !ok {
            return Err(ConfigError::at(
                figment,
                &format!("server.cors_allowed_origins.{i}"),
                format!("{origin:?} is not an origin like https://shop.example.com"),
            ));
        }
    }
    Ok(())
}

/// The etcd endpoints and advertised url are http(s) urls, the prefix a key path, and a
/// registered process says where it is reached.
fn check_discovery(
    figment: &Figment,
    discovery: &DiscoveryConfig,
    listen: std::net::SocketAddr,
) -> Result<(), ConfigError> {
    let http_url = |raw: &str| {
        Url::parse(raw).is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.has_host())
    };
    if discovery.etcd_endpoints.is_empty() {
        return Err(ConfigError::at(
            figment,
            "discovery.etcd_endpoints",
            "is empty: list etcd's client urls, e.g. [\"http://127.0.0.1:2379\"]",
        ));
    }
    if let Some(bad) = discovery.etcd_endpoints.iter().find(|e| !http_url(e)) {
        return Err(ConfigError::at(
            figment,
            "discovery.etcd_endpoints",
            format!("{bad:?} is not an http(s) url like http://127.0.0.1:2379"),
        ));
    }
    let prefix = discovery.etcd_prefix.trim_matches('/');
    if prefix.is_empty()
        || !prefix
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '/' | '.'))
    {
        return Err(ConfigError::at(
            figment,
            "discovery.etcd_prefix",
            "must be a key path of letters, digits, - _ . and /, e.g. /cleave/shop",
        ));
    }
    if discovery.lease_ttl_secs < 2 {
        return Err(ConfigError::at(
            figment,
            "discovery.lease_ttl_secs",
            "must be at least 2 (the lease is kept alive every third of it)",
        ));
    }
    match &discovery.advertise_url {
        Some(raw) if !http_url(raw) => Err(ConfigError::at(
            figment,
            "discovery.advertise_url",
            format!("{raw:?} is not an http(s) url like https://10.0.0.7:8443"),
        )),
        None if discovery.kind == DiscoveryKind::Etcd && listen.ip().is_unspecified() => {
            Err(ConfigError::at(
                figment,
                "discovery.advertise_url",
                format!(
                    "must be set with discovery.kind = \"etcd\" when server.listen is a \
                     wildcard address ({listen}): the url other processes reach this one at"
                ),
            ))
        }
        _ => Ok(()),
    }
}

/// The database url's scheme is one Cleave speaks, and production names its database.
/// The OTLP endpoint is an http(s) url; the sampling ratio a share.
fn check_telemetry(figment: &Figment, telemetry: &TelemetryConfig) -> Result<(), ConfigError> {
    if let Some(endpoint) = &telemetry.otlp_endpoint {
        let ok = Url::parse(endpoint)
            .is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some());
        if !ok {
            return Err(ConfigError::at(
                figment,
                "telemetry.otlp_endpoint",
                format!("{endpoint:?} is not an http(s) url like http://otel-collector:4318"),
            ));
        }
    }
    if !(0.0..=1.0).contains(&telemetry.sampling_ratio) {
        return Err(ConfigError::at(
            figment,
            "telemetry.sampling_ratio",
            "must be between 0.0 and 1.0",
        ));
    }
    Ok(())
}

fn check_database(figment: &Figment, db: &DatabaseConfig) -> Result<(), ConfigError> {
    match &db.url {
        Some(url) => {
            let scheme = url.split_once("://").map_or("", |(s, _)| s);
            if !matches!(scheme, "sqlite" | "postgres" | "postgresql") {
                return Err(ConfigError::at(
                    figment,
                    "database.url",
                    format!(
                        "unsupported database {scheme:?}; use sqlite://FILE?mode=rwc or postgres://USER@HOST/DB"
                    ),
                ));
            }
        }
        None if db.require_url => {
            return Err(ConfigError::at(
                figment,
                "database.require_url",
                "is set, so database.url must name the database (postgres://... for a shop with \
                 several replicas, or sqlite://FILE?mode=rwc to keep a local file on purpose)",
            ));
        }
        None => {}
    }
    Ok(())
}

/// Both of a pair of files, or neither: `(first, second)` keys and values.
fn pair<T>(
    figment: &Figment,
    first: (&str, Option<T>),
    second: (&str, Option<T>),
) -> Result<Option<(T, T)>, ConfigError> {
    match (first.1, second.1) {
        (None, None) => Ok(None),
        (Some(a), Some(b)) => Ok(Some((a, b))),
        (Some(_), None) => Err(ConfigError::at(
            figment,
            second.0,
            format!("is required with {}", first.0),
        )),
        (None, Some(_)) => Err(ConfigError::at(
            figment,
            first.0,
            format!("is required with {}", second.0),
        )),
    }
}

/// The listener's TLS configuration, when `server.tls` is set.
fn server_tls(
    figment: &Figment,
    tls: &TlsConfig,
) -> Result<Option<Arc<rustls::ServerConfig>>, ConfigError> {
    let files = pair(
        figment,
        ("server.tls.cert_file", tls.cert_file.as_ref()),
        ("server.tls.key_file", tls.key_file.as_ref()),
    )?;
    let Some((cert, key)) = files else {
        if tls.client_ca_file.is_some() {
            return Err(ConfigError::at(
                figment,
                "server.tls.client_ca_file",
                "needs server.tls.cert_file and server.tls.key_file",
            ));
        }
        return Ok(None);
    };
    cleave_kernel::tls::server_config(
        cert,
        key,
        tls.client_ca_file.as_deref(),
        tls.client_cert_required,
    )
    .map(|config| Some(Arc::new(config)))
    .map_err(|msg| ConfigError::at(figment, "server.tls", msg))
}

/// The TLS material of calls to modules: the CA, and the client certificate with its key.
fn remote_tls(figment: &Figment, remote: &RemoteConfig) -> Result<RemoteTls, ConfigError> {
    let read = |key: &str, path: &Option<PathBuf>| -> Result<Option<Vec<u8>>, ConfigError> {
        path.as_ref()
            .map(|p| {
                std::fs::read(p).map_err(|e| {
                    ConfigError::at(figment, key, format!("cannot read {}: {e}", p.display()))
                })
            })
            .transpose()
    };
    let cert = ("remote.client_cert_file", &remote.client_cert_file);
    let key = ("remote.client_key_file", &remote.client_key_file);
    let identity_pem = pair(
        figment,
        (cert.0, read(cert.0, cert.1)?),
        (key.0, read(key.0, key.1)?),
    )?
    .map(|(mut cert, key)| {
        cert.push(b'\n');
        cert.extend(key);
        cert
    });
    Ok(RemoteTls {
        ca_pem: read("remote.ca_file", &remote.ca_file)?,
        identity_pem,
    })
}

#[cfg(test)]
mod tests {
    use figment::providers::{Format, Serialized, Toml};

    use super::*;

    fn load(toml: &str) -> Result<Settings, ConfigError> {
        Settings::from_figment(
            Figment::from(Serialized::defaults(AppConfig::default())).merge(Toml::string(toml)),
        )
    }

    #[test]
    fn a_modules_call_settings_override_remote_key_by_key() {
        let settings = load(
            r#"
            [remote]
            max_concurrency = 100
            cache_ttl_ms = 2000
            [remote.retry]
            attempts = 4
            base_ms = 10
            [modules.payment]
            url = "http://payment:8080"
            max_concurrency = 8
            cache_ttl_ms = 60000
            retry = { attempts = 1 }
            breaker = { consecutive = 3, open_ms = 1000 }
            [modules.cart]
            url = "http://cart:8080"
            [modules.ads]
            timeout_ms = 700
            "#,
        )
        .expect("valid");
        let payment = settings.remote_settings("payment", None);
        assert_eq!(payment.max_concurrency, 8);
        assert_eq!(payment.cache_ttl, std::time::Duration::from_secs(60));
        assert_eq!(payment.retry.attempts, 1);
        assert_eq!(
            payment.retry.base,
            std::time::Duration::from_millis(10),
            "the keys it does not set come from [remote.retry]"
        );
        assert_eq!(payment.breaker.consecutive, 3);
        assert_eq!(payment.breaker.open_for, std::time::Duration::from_secs(1));
        assert_eq!(payment.breaker.window, 20, "the built-in default");
        let cart = settings.remote_settings("cart", None);
        assert_eq!((cart.max_concurrency, cart.retry.attempts), (100, 4));
        assert_eq!(cart.cache_ttl, std::time::Duration::from_secs(2));
        // A module given no url (found through DNS or etcd) takes its own keys too.
        let ads = settings.remote_settings("ads", None);
        assert_eq!(ads.timeout, std::time::Duration::from_millis(700));
        assert_eq!((ads.max_concurrency, ads.retry.attempts), (100, 4));
    }

    #[test]
    fn answers_of_a_module_announcing_its_changes_are_kept_longer_where_its_events_arrive() {
        let keys = r#"
            [remote]
            cache_ttl_ms = 2000
            announced_cache_ttl_ms = 30000
            [modules.ads]
            cache_ttl_ms = 1000
            [modules.catalog]
            timeout_ms = 700
            "#;
        let over_nats = load(&format!("[events]\nbus = \"nats\"\n{keys}")).expect("valid");
        let in_process = load(keys).expect("valid");
        let kept = |s: &Settings, module| s.remote_settings(module, None).cache_ttl.as_millis();
        assert_eq!(
            kept(&over_nats, "cart"),
            30_000,
            "cart announces every change"
        );
        assert_eq!(
            kept(&over_nats, "catalog"),
            30_000,
            "also with a section of its own"
        );
        assert_eq!(
            kept(&over_nats, "currency"),
            2000,
            "currency announces nothing"
        );
        assert_eq!(kept(&over_nats, "ads"), 1000, "the module's own key wins");
        assert_eq!(
            kept(&in_process, "cart"),
            2000,
            "without a bus between processes another process's change is not heard"
        );
    }

    #[test]
    fn bad_per_module_call_settings_are_named_with_their_key() {
        for (toml, key, says) in [
            (
                "[modules.payment]\nurl = \"http://p:1\"\nretry = { atempts = 2 }",
                "modules.payment.retry",
                "atempts",
            ),
            (
                "[modules.payment]\nurl = \"http://p:1\"\nmax_concurrency = 0",
                "modules.payment.max_concurrency",
                "at least 1",
            ),
            (
                "[modules.payment]\nurl = \"http://p:1\"\nbreaker = { open_ms = 90000 }",
                "modules.payment.breaker.max_open_ms",
                "at least modules.payment.breaker.open_ms",
            ),
            (
                "[remote.breaker]\nmin_calls = 30",
                "remote.breaker.min_calls",
                "at most remote.breaker.window",
            ),
        ] {
            let err = load(toml).expect_err(toml);
            assert!(err.key.starts_with(key), "{toml}: {err}");
            assert!(err.to_string().contains(says), "{toml}: {err}");
        }
    }
}

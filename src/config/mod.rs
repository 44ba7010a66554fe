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

mod checks;
mod sections;

use checks::*;
pub use sections::*;

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

//! What loading checks beyond the types: environment variable names, unknown sections, the
//! modules' urls and placements, values in range, discovery, telemetry, the database, TLS
//! files; each failure names the key and where it came from.

use super::*;

/// `CLEAVE_*` variables that are not configuration keys.
const NOT_KEYS: [&str; 3] = [
    "CLEAVE_ENV",
    "CLEAVE_CONFIG_DIR",
    cleave_kernel::config::TEST_DATABASE_URL_ENV,
];

/// Refuses `CLEAVE_*` variables that set nothing: keys take `__` between levels
/// (`CLEAVE_SERVER__LISTEN`), so `CLEAVE_SERVER_LISTEN` would be silently ignored. Names the
/// nearest key.
pub(super) fn check_env_names(
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
pub(super) fn check_sections(figment: &Figment) -> Result<(), ConfigError> {
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
pub(super) type Targets = (
    BTreeMap<String, RemoteTarget>,
    BTreeMap<String, ModuleCalls>,
);

pub(super) fn targets(figment: &Figment, app: &AppConfig) -> Result<Targets, ConfigError> {
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
pub(super) fn check_values(
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

/// The database url's scheme is one Cleave speaks, and production names its database.
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
pub(super) fn server_tls(
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
pub(super) fn remote_tls(
    figment: &Figment,
    remote: &RemoteConfig,
) -> Result<RemoteTls, ConfigError> {
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

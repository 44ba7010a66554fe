//! The composition root: decides where every module runs (from the config), assembles the
//! modules of this process from the one list ([`crate::modules::MODULES`]), mounts their
//! routes (served in process or forwarded), and runs the HTTP server with graceful shutdown.

use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::time::Duration;

use actix_web::{HttpServer, web};
use anyhow::Context as _;
use cleave_kernel::Failure;
use cleave_kernel::auth::{Authenticator, MAX_LEEWAY_SECS, TokenVerifier, UserDirectory};
use cleave_kernel::call::{Access, CallLayers};
use cleave_kernel::db::DatabaseReadiness;
use cleave_kernel::error::KernelError;
use cleave_kernel::events::RelaySettings;
use cleave_kernel::events::Topic;
use cleave_kernel::health::{Draining, configure_health};
use cleave_kernel::http::{CallerProof, HttpLimits, ServerStack};
use cleave_kernel::metrics::{CallMetrics, configure_metrics};
use cleave_kernel::module::{
    Assembly, AssemblyOptions, Contract, Placement, PlacementError, PlacementPlan,
};
use cleave_kernel::nats::{NatsBus, NatsSettings};
use cleave_kernel::registry::{Registration, Registry};
use identity_api::{
    ACTIVE_FOR, CachedUsers, IdentityContract, IdentityKeys, IdentityUsers, UserDeleted,
};
use sea_orm::DatabaseConnection;

use crate::config::{DiscoveryKind, Settings};
use crate::modules::{self, EVENTS, MODULES};

/// The caller name of the token checks every process makes against identity.
const TOKEN_CHECKS: &str = "auth";

/// Whether `module` has tables (and so migrations).
pub fn has_tables(module: &str) -> bool {
    modules::find(module).is_some_and(|e| e.has_tables())
}

/// The migration sets a process hosting `hosted` needs: each module's own, and the kernel's
/// outbox (`events`) when a module there publishes or consumes events.
pub fn migration_sets<'a>(hosted: &[&'a str]) -> Vec<&'a str> {
    let entries = || {
        hosted
            .iter()
            .filter_map(|m| modules::find(m).map(|e| (*m, e)))
    };
    let mut sets: Vec<&str> = entries()
        .filter(|(_, e)| e.has_tables())
        .map(|(m, _)| m)
        .collect();
    if entries().any(|(_, e)| e.uses_events()) {
        sets.push(EVENTS);
    }
    sets
}

/// Decides placements from the settings.
///
/// # Errors
/// When the placement is incomplete or contradictory.
pub fn plan(settings: &Settings) -> Result<PlacementPlan, PlacementError> {
    let mut urls: std::collections::BTreeMap<String, url::Url> = settings
        .targets
        .iter()
        .map(|(k, t)| (k.clone(), t.url.clone()))
        .collect();
    // With a registry, a module neither hosted (`--modules`) nor given a url is found there.
    let discovery = &settings.app.discovery;
    if discovery.kind == DiscoveryKind::Etcd
        && let Some(hosted) = &settings.app.server.modules
    {
        for entry in MODULES {
            let name = entry.spec().name;
            if !hosted.iter().any(|h| h.trim() == name) && !urls.contains_key(name) {
                urls.insert(name.to_owned(), discovery.registry_url(name));
            }
        }
    }
    let specs: Vec<_> = MODULES.iter().map(|e| e.spec()).collect();
    let plan = PlacementPlan::resolve(
        &specs,
        settings.app.server.modules.as_deref(),
        &urls,
        settings.app.server.listen,
    )?;
    check_trust(settings, &plan)?;
    Ok(plan)
}

/// What the operations' access rules need from a placement: identity reachable (every
/// process verifies tokens), and for a hosted module calling operations of a remote one
/// reserved to it (checkout charging), https and this module's certificate.
fn check_trust(settings: &Settings, plan: &PlacementPlan) -> Result<(), PlacementError> {
    let hosted = plan.hosted();
    if matches!(plan.placement(IdentityContract::MODULE), Placement::Absent) {
        return Err(PlacementError::NoTokenVerifier {
            hosted: hosted.join(", "),
        });
    }
    for caller in &hosted {
        let Some(entry) = modules::find(caller) else {
            continue;
        };
        for callee in entry.spec().requires {
            let Placement::Remote(url) = plan.placement(callee) else {
                continue;
            };
            let reserved: Vec<&str> = modules::find(callee)
                .map(|e| e.operations())
                .unwrap_or_default()
                .iter()
                .filter(|op| op.access.contains(&Access::Module(caller)))
                .map(|op| op.id)
                .collect();
            if reserved.is_empty() {
                continue;
            }
            let mut missing = Vec::new();
            // Replicas found in the registry say their scheme when they register.
            if !matches!(url.scheme(), "https" | "grpcs" | "etcd") {
                missing.push(format!(
                    "reach {callee} over https:// or grpcs:// (modules.{callee}.url is {})",
                    cleave_kernel::config::redact_url_password(url.as_str())
                ));
            }
            if settings.remote_tls.identity_pem.is_none() {
                missing.push(format!(
                    "present {caller}'s module certificate (remote.client_cert_file and \
                     remote.client_key_file; `cleave certs issue --module {caller}`)"
                ));
            }
            if !missing.is_empty() {
                return Err(PlacementError::NeedsModuleCertificate {
                    module: caller,
                    callee,
                    operations: reserved.join(", "),
                    missing: missing.join(", and "),
                });
            }
        }
    }
    Ok(())
}

/// Connects to the configured database.
///
/// # Errors
/// When it cannot be opened (the url's password is not shown).
pub async fn connect(settings: &Settings) -> anyhow::Result<DatabaseConnection> {
    let url = settings.app.database.effective_url();
    cleave_kernel::db::connect(&url, settings.app.database.max_connections)
        .await
        .with_context(|| {
            format!(
                "cannot open database {}",
                cleave_kernel::config::redact_url_password(&url)
            )
        })
}

/// Connects to the database and applies the migration sets `sets` (module names, or
/// [`EVENTS`]).
///
/// # Errors
/// When the database is unreachable or a migration fails.
pub async fn migrate(settings: &Settings, sets: &[&str]) -> anyhow::Result<DatabaseConnection> {
    let db = connect(settings).await?;
    for set in sets {
        let result = match modules::find(set) {
            Some(entry) => entry.migrate(&db).await,
            None if *set == EVENTS => modules::migrate_events(&db).await,
            None => anyhow::bail!("no migration set named {set}"),
        };
        result.with_context(|| format!("migrations of {set} failed"))?;
        tracing::debug!(module = set, "migrations applied");
    }
    Ok(db)
}

/// The NATS event bus of the settings, when `events.bus = "nats"`.
///
/// # Errors
/// When the url is malformed.
pub async fn nats_bus(settings: &Settings) -> anyhow::Result<Option<Arc<NatsBus>>> {
    let events = &settings.app.events;
    if events.bus != crate::config::BusKind::Nats {
        return Ok(None);
    }
    let bus = NatsBus::connect(NatsSettings {
        url: events.nats_url.clone(),
        prefix: events.nats_prefix.clone(),
        max_deliver: events.max_deliver,
        ack_wait: std::time::Duration::from_secs(30),
        retention: std::time::Duration::from_secs(events.retention_hours * 3600),
    })
    .await
    .context("cannot set up the NATS event bus (events.nats_url)")?;
    Ok(Some(bus))
}

/// The layers every module call of the process passes: its span, and metrics when
/// `telemetry.metrics` is on (which installs the process's recorder).
fn call_layers(settings: &Settings) -> CallLayers {
    let mut layers: Vec<Arc<dyn cleave_kernel::call::CallLayer>> =
        vec![Arc::new(cleave_kernel::telemetry::CallTracing)];
    if settings.app.telemetry.metrics {
        cleave_kernel::metrics::install();
        layers.push(Arc::new(CallMetrics));
    }
    CallLayers::new(layers)
}

/// The modules of one process, placed, and the middleware they are served behind.
#[derive(Clone)]
pub struct Shop {
    /// The placed modules.
    pub assembly: Arc<Assembly>,
    /// The middleware configuration.
    pub stack: ServerStack,
    /// Whether `/metrics` is served (`telemetry.metrics`).
    pub metrics: bool,
    /// The operator page's view of this process.
    pub operator: Arc<cleave_kernel::operator::Operator>,
    /// Set when it begins to stop: readiness fails from then on.
    pub draining: Draining,
    /// The etcd registry (`discovery.kind = "etcd"`): its hosted modules are registered
    /// there once it listens.
    pub registry: Option<Arc<Registry>>,
}

/// Builds the modules of this process.
///
/// # Errors
/// When the placement is invalid, the database cannot be opened or migrated, or a module
/// fails to start.
pub async fn assemble(settings: &Settings) -> anyhow::Result<Shop> {
    let plan = plan(settings)?;
    let hosted = plan.hosted();
    let needs_db = hosted.iter().any(|m| has_tables(m));
    let db = if needs_db {
        let sets = if settings.app.database.migrate {
            migration_sets(&hosted)
        } else {
            Vec::new()
        };
        Some(migrate(settings, &sets).await?)
    } else {
        None
    };
    let remote_settings = settings.clone();
    let events = &settings.app.events;
    let nats = nats_bus(settings).await?;
    let registry = registry(settings).await?;
    let followed = registry.clone();
    let options = AssemblyOptions {
        layers: call_layers(settings),
        db: db.clone(),
        configs: settings.modules.clone(),
        remote_settings: Box::new(move |m| remote_settings.remote_settings(m, followed.as_ref())),
        relay: RelaySettings {
            enabled: events.relay,
            poll_interval: std::time::Duration::from_millis(events.poll_interval_ms),
            retention: std::time::Duration::from_secs(events.retention_hours * 3600),
            ..RelaySettings::default()
        },
        bus: nats
            .clone()
            .map(|bus| bus as Arc<dyn cleave_kernel::events::EventBus>),
    };
    let identity = settings.module::<identity::IdentityModule>();
    let brokered = nats.is_some();
    let mut assembly = Assembly::build(&MODULES, plan, options, |name, asm| {
        // A module reached as Online Boutique's service: its Boutique client over the
        // module's pipeline, instead of the generated one.
        if settings.protocol(name) == Some(crate::config::TransportConfig::Boutique)
            && let Some(remote) = asm.remote_client(name)
        {
            crate::grpc::connect_boutique(name, remote, asm);
        }
        // Every process verifies tokens itself, from identity's published keys.
        if name == IdentityContract::MODULE
            && let Some(api) = asm.api::<IdentityContract>(TOKEN_CHECKS)
        {
            let asked: Arc<dyn UserDirectory> = Arc::new(IdentityUsers(api.clone()));
            // Every process that hears of deletions (identity here, or events over a broker)
            // watches them; one that asks a remote identity remembers who is active for a
            // while. Elsewhere each token check asks identity.
            let here = asm.plan().placement(IdentityContract::MODULE) == &Placement::Hosted;
            let users = if here || brokered {
                let remember_for = if here { Duration::ZERO } else { ACTIVE_FOR };
                let cached = CachedUsers::new(asked, remember_for);
                asm.bus().watch(UserDeleted::TOPIC, cached.clone());
                cached as Arc<dyn UserDirectory>
            } else {
                asked
            };
            asm.set_authenticator(Arc::new(Authenticator {
                verifier: TokenVerifier::new(
                    &identity.issuer,
                    &identity.audience,
                    MAX_LEEWAY_SECS,
                    Arc::new(IdentityKeys(api)),
                ),
                users: Some(users),
            }));
        }
    })
    .await?;
    if let Some(db) = db {
        assembly.add_check(Arc::new(DatabaseReadiness(db)));
    }
    if let Some(bus) = nats {
        assembly.add_check(Arc::new(cleave_kernel::nats::BrokerReadiness(bus)));
    }
    if let Some(registry) = &registry {
        assembly.add_check(registry.clone());
    }
    let server = &settings.app.server;
    let stack = ServerStack {
        limits: HttpLimits {
            max_body_bytes: server.max_body_bytes,
            log_every_request: settings.app.log.access,
            handler_timeout: std::time::Duration::from_millis(server.handler_timeout_ms),
            max_in_flight: server.max_in_flight,
            max_queue_delay: std::time::Duration::from_millis(server.max_queue_delay_ms),
        },
        cors_allowed_origins: server.cors_allowed_origins.clone(),
        authenticator: assembly.authenticator(),
        edge_rules: crate::edge::rules(&identity),
        caller_proof: CallerProof {
            required: server.require_caller_proof,
        },
    };
    Ok(Shop {
        operator: Arc::new(cleave_kernel::operator::Operator::new(
            crate::VERSION,
            assembly.plan(),
            assembly.remote_clients(),
            assembly.db().cloned(),
        )),
        assembly: Arc::new(assembly),
        stack,
        metrics: settings.app.telemetry.metrics,
        draining: Draining::default(),
        registry,
    })
}

/// The etcd registry of the settings, when `discovery.kind = "etcd"`.
///
/// # Errors
/// When an endpoint is malformed.
pub async fn registry(settings: &Settings) -> anyhow::Result<Option<Arc<Registry>>> {
    let discovery = &settings.app.discovery;
    if discovery.kind != DiscoveryKind::Etcd {
        return Ok(None);
    }
    let timeout = Duration::from_millis(settings.app.remote.connect_timeout_ms.max(1000));
    let registry = Registry::connect(discovery.registry(timeout))
        .await
        .map_err(anyhow::Error::msg)
        .context("cannot set up the etcd registry (discovery.etcd_endpoints)")?;
    Ok(Some(registry))
}

impl Shop {
    /// Where each module runs.
    pub fn plan(&self) -> &PlacementPlan {
        self.assembly.plan()
    }

    /// Mounts the health endpoints and every module's routes: served in process for hosted
    /// modules, forwarded as they are to the hosting process for remote ones, 503 for absent
    /// ones.
    pub fn configure(&self, cfg: &mut web::ServiceConfig) {
        let mut checks = self.assembly.checks();
        checks.push(Arc::new(self.draining.clone()));
        configure_health(cfg, Arc::new(checks));
        if self.metrics {
            configure_metrics(cfg, Arc::new(self.assembly.gauges()));
        }
        cleave_kernel::operator::configure_operator(cfg, self.operator.clone());
        self.assembly.configure(&MODULES, cfg);
        if !self.plan().hosted().contains(&storefront::MODULE) {
            // No shop here: `/` says what this process is, for the person who opens it.
            let index = Arc::new(self.index());
            cfg.route(
                "/",
                web::get().to(move || {
                    let index = index.clone();
                    async move { actix_web::HttpResponse::Ok().json(index.as_ref()) }
                }),
            );
        }
    }

    /// What `/` answers on a process without the storefront: its version, where each module
    /// runs (urls without passwords), and where the API is documented.
    fn index(&self) -> serde_json::Value {
        let modules: serde_json::Map<String, serde_json::Value> = self
            .plan()
            .entries()
            .iter()
            .map(|(spec, placement)| (spec.name.to_owned(), placement.to_string().into()))
            .collect();
        serde_json::json!({
            "service": "cleave",
            "version": crate::VERSION,
            "modules": modules,
            "api_docs": "/api/docs/",
            "openapi": crate::openapi::SPEC_PATH,
            "health": "/health/ready",
        })
    }
}

/// Paths nobody serves: a problem for API callers, the shop's 404 page for people.
async fn not_found(req: actix_web::HttpRequest) -> Result<actix_web::HttpResponse, Failure> {
    let path = req.path();
    if path.starts_with("/api/") || path.starts_with("/health/") {
        return Err(Failure::from(KernelError::RouteNotFound));
    }
    let accepts_html = req
        .headers()
        .get(actix_web::http::header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("text/html"));
    if accepts_html {
        Ok(storefront::not_found(req).await)
    } else {
        Err(Failure::from(KernelError::RouteNotFound))
    }
}

/// A running server.
pub struct Running {
    /// The address actually bound (useful with port 0).
    pub addr: SocketAddr,
    /// Set once it begins to stop (readiness fails from then on).
    pub draining: Draining,
    /// How long it keeps serving after that before it stops (`server.drain_secs`).
    pub drain: std::time::Duration,
    /// Its modules' entries in the etcd registry, taken out when it begins to stop.
    pub registration: Option<Registration>,
    /// Stops the server.
    pub handle: actix_web::dev::ServerHandle,
    /// Completes when the server has stopped.
    pub server: actix_web::dev::Server,
    /// The bound listener of Boutique's gRPC services (`server.grpc_listen`), how it treats
    /// calls, and the modules they call: served by [`run_until_signalled`].
    pub grpc: Option<(std::net::TcpListener, crate::grpc::Options, Arc<Assembly>)>,
}

/// Binds the listen address and builds the server (not yet polled).
///
/// # Errors
/// When the address cannot be bound.
pub fn bind(settings: &Settings, shop: Shop) -> anyhow::Result<Running> {
    let server_cfg = &settings.app.server;
    let listener = TcpListener::bind(server_cfg.listen)
        .with_context(|| format!("cannot listen on {} (server.listen)", server_cfg.listen))?;
    let addr = listener.local_addr()?;
    let workers = if server_cfg.workers == 0 {
        std::thread::available_parallelism().map_or(1, usize::from)
    } else {
        server_cfg.workers
    };
    let api_doc = crate::openapi::document();
    let draining = shop.draining.clone();
    let grpc = match server_cfg.grpc_listen {
        Some(addr) => Some((
            crate::grpc::bind(addr)?,
            crate::grpc::Options {
                trusted: server_cfg.grpc_trusted,
                handler_timeout: std::time::Duration::from_millis(server_cfg.handler_timeout_ms),
                max_message_bytes: server_cfg.max_body_bytes,
                tls: settings.server_tls.clone(),
            },
            shop.assembly.clone(),
        )),
        None => None,
    };
    let registration = shop.registry.as_ref().map(|registry| {
        let url = settings.advertise_url(addr);
        registry.register(&shop.plan().hosted(), &url)
    });
    let server = HttpServer::new(move || {
        let shop = shop.clone();
        cleave_kernel::http::app(shop.stack.clone())
            .configure(crate::openapi::docs_redirect)
            .service(crate::openapi::swagger_ui(api_doc.clone()))
            .configure(move |c| shop.configure(c))
            .default_service(web::to(not_found))
    })
    .workers(workers)
    .client_request_timeout(std::time::Duration::from_millis(
        server_cfg.request_timeout_ms,
    ))
    .keep_alive(std::time::Duration::from_secs(server_cfg.keep_alive_secs))
    // Answers go out as they are written: without it, an HTTP/2 answer's DATA frame waits
    // behind its HEADERS frame for the peer's delayed ACK (tens of ms per module call).
    .tcp_nodelay(true)
    .shutdown_timeout(server_cfg.shutdown_timeout_secs)
    .disable_signals();
    let module_names = modules::names();
    let server = server.on_connect(move |conn, ext| {
        if let Some(peer) = cleave_kernel::tls::peer_modules(conn, &module_names) {
            ext.insert(peer);
        }
    });
    let server = match &settings.server_tls {
        Some(tls) => server.listen_rustls_0_23(listener, (**tls).clone())?,
        None => server.listen(listener)?,
    }
    .run();
    Ok(Running {
        addr,
        draining,
        drain: std::time::Duration::from_secs(server_cfg.drain_secs),
        registration,
        handle: server.handle(),
        server,
        grpc,
    })
}

/// Runs the server until SIGTERM or SIGINT; then readiness fails and it keeps serving for
/// `server.drain_secs` (cut short by a second signal) so that callers and load balancers
/// stop sending to it, then drains in-flight requests (up to
/// `server.shutdown_timeout_secs`) and returns.
///
/// # Errors
/// When the server fails.
pub async fn run_until_signalled(mut running: Running) -> anyhow::Result<()> {
    let handle = running.handle.clone();
    let (draining, drain) = (running.draining.clone(), running.drain);
    let registration = running.registration.take();
    let (stop_grpc, grpc_stopped) = tokio::sync::oneshot::channel::<()>();
    let grpc = match running.grpc.take() {
        Some((listener, options, assembly)) => {
            let stopped = async {
                let _ = grpc_stopped.await;
            };
            Some(crate::grpc::serve(listener, options, &assembly, stopped).await?)
        }
        None => None,
    };
    let (grpc, grpc_health) = grpc.unzip();
    tokio::spawn(async move {
        let signal = wait_for_signal().await;
        draining.start();
        if let Some(health) = &grpc_health {
            health.draining().await;
        }
        if let Some(registration) = registration {
            registration.deregister(Duration::from_secs(2)).await;
        }
        if !drain.is_zero() {
            tracing::info!(
                signal,
                drain_secs = drain.as_secs(),
                "shutdown signal received; not ready any more, serving on while callers notice"
            );
            // A second signal cuts the drain short.
            tokio::select! {
                () = tokio::time::sleep(drain) => {}
                again = wait_for_signal() => {
                    tracing::info!(signal = again, "second signal; stopping now");
                }
            }
        }
        tracing::info!(signal, "stopping: draining in-flight requests");
        let _ = stop_grpc.send(());
        handle.stop(true).await;
    });
    running.server.await.context("server failed")?;
    if let Some(grpc) = grpc {
        let _ = grpc.await;
    }
    tracing::info!("server stopped");
    Ok(())
}

async fn wait_for_signal() -> &'static str {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => tokio::select! {
                _ = term.recv() => "SIGTERM",
                _ = tokio::signal::ctrl_c() => "SIGINT",
            },
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
                "SIGINT"
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
        "SIGINT"
    }
}

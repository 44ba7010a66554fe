//! The composition root: the only place that names module implementations. It decides where
//! every module runs (from the config), builds each hosted module with its dependencies
//! (local modules or HTTP clients), mounts every module's REST routes (served in process or
//! forwarded), and runs the HTTP server with graceful shutdown.

use std::collections::BTreeMap;
use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;

use actix_web::middleware::from_fn;
use actix_web::{App, HttpServer, web};
use ads_api::{AdsApi, AdsClient};
use anyhow::Context as _;
use cart_api::{CartApi, CartClient};
use catalog_api::{CatalogApi, CatalogClient};
use checkout_api::{CheckoutApi, CheckoutClient};
use cleave_kernel::Failure;
use cleave_kernel::auth::{Authenticator, MAX_LEEWAY_SECS, TokenVerifier};
use cleave_kernel::client::RemoteClient;
use cleave_kernel::db::DatabaseReadiness;
use cleave_kernel::error::KernelError;
use cleave_kernel::events::{InProcessBus, Relay, RelaySettings};
use cleave_kernel::forward::configure_forward;
use cleave_kernel::http::{
    CallerProof, HttpLimits, ReadinessCheck, authenticate, configure_extractors, configure_health,
    configure_not_placed, handler_timeout, request_scope,
};
use cleave_kernel::module::{ModuleSpec, Placement, PlacementError, PlacementPlan};
use cleave_kernel::ratelimit::{EdgeRule, EdgeRules, RateLimiter, edge_rate_limit};
use currency_api::{CurrencyApi, CurrencyClient};
use email_api::{EmailApi, EmailClient};
use identity_api::{IdentityApi, IdentityClient, IdentityKeys, IdentityUsers};
use payment_api::{PaymentApi, PaymentClient};
use recommendation_api::{RecommendationApi, RecommendationClient};
use sea_orm::DatabaseConnection;
use shipping_api::{ShippingApi, ShippingClient};

use crate::config::Settings;

/// Every module, in dependency order (a module comes after those it requires).
pub const SPECS: [ModuleSpec; 11] = [
    identity_api::SPEC,
    catalog_api::SPEC,
    currency_api::SPEC,
    cart_api::SPEC,
    recommendation_api::SPEC,
    shipping_api::SPEC,
    payment_api::SPEC,
    ads_api::SPEC,
    email_api::SPEC,
    checkout_api::SPEC,
    storefront::SPEC,
];

/// Modules whose tables live in the database (they need a connection when hosted).
const WITH_TABLES: [&str; 9] = [
    "identity", "catalog", "currency", "cart", "shipping", "payment", "ads", "email", "checkout",
];

/// Modules that publish or consume events: where one is hosted, the outbox table is needed.
const WITH_EVENTS: [&str; 2] = ["checkout", "email"];

/// Whether `module` has tables (and so migrations).
pub fn has_tables(module: &str) -> bool {
    WITH_TABLES.contains(&module)
}

/// The migration sets a process hosting `hosted` needs: each module's own, and the kernel's
/// outbox when a module there publishes or consumes events.
pub fn migration_sets<'a>(hosted: &[&'a str]) -> Vec<&'a str> {
    let mut sets: Vec<&str> = hosted.iter().copied().filter(|m| has_tables(m)).collect();
    if hosted.iter().any(|m| WITH_EVENTS.contains(m)) {
        sets.push("events");
    }
    sets
}

/// The modules of one process: each is its in-process implementation, an HTTP client to the
/// process that hosts it, or absent.
#[derive(Clone)]
pub struct Shop {
    /// Where each module runs.
    pub plan: PlacementPlan,
    /// The catalog, if reachable.
    pub catalog: Option<Arc<dyn CatalogApi>>,
    /// The currency module, if reachable.
    pub currency: Option<Arc<dyn CurrencyApi>>,
    /// The cart, if reachable.
    pub cart: Option<Arc<dyn CartApi>>,
    /// Recommendations, if reachable.
    pub recommendation: Option<Arc<dyn RecommendationApi>>,
    /// Shipping, if reachable.
    pub shipping: Option<Arc<dyn ShippingApi>>,
    /// Payment, if reachable.
    pub payment: Option<Arc<dyn PaymentApi>>,
    /// Ads, if reachable.
    pub ads: Option<Arc<dyn AdsApi>>,
    /// Email, if reachable.
    pub email: Option<Arc<dyn EmailApi>>,
    /// Checkout, if reachable.
    pub checkout: Option<Arc<dyn CheckoutApi>>,
    /// The HTML shop, if hosted here.
    pub storefront: Option<Arc<storefront::Storefront>>,
    /// Identity, if reachable.
    pub identity: Option<Arc<dyn IdentityApi>>,
    /// Verifies bearer tokens (when identity is reachable).
    pub authenticator: Option<Arc<Authenticator>>,
    /// Per-client limits on sensitive routes (login, registration).
    pub edge_rules: EdgeRules,
    /// Whether module APIs need a caller proof here.
    pub caller_proof: CallerProof,
    /// Clients of the modules that run elsewhere: their routes are forwarded through these.
    pub remotes: BTreeMap<&'static str, RemoteClient>,
    /// What `/health/ready` checks.
    pub checks: Vec<Arc<dyn ReadinessCheck>>,
    /// This process's database, when a hosted module needs one.
    pub db: Option<DatabaseConnection>,
}

/// Decides placements from the settings.
///
/// # Errors
/// When the placement is incomplete or contradictory.
pub fn plan(settings: &Settings) -> Result<PlacementPlan, PlacementError> {
    let urls = settings
        .targets
        .iter()
        .map(|(k, t)| (k.clone(), t.url.clone()))
        .collect();
    PlacementPlan::resolve(
        &SPECS,
        settings.app.server.modules.as_deref(),
        &urls,
        settings.app.server.listen,
    )
}

/// Connects to the database and applies the migrations of `modules`.
///
/// # Errors
/// When the database is unreachable or a migration fails.
pub async fn migrate(settings: &Settings, modules: &[&str]) -> anyhow::Result<DatabaseConnection> {
    let url = settings.app.database.effective_url();
    let db = cleave_kernel::db::connect(&url, settings.app.database.max_connections)
        .await
        .with_context(|| {
            format!(
                "cannot open database {}",
                cleave_kernel::config::redact_url_password(&url)
            )
        })?;
    for module in modules {
        cleave_migrations::migrate_up(&db, module)
            .await
            .with_context(|| format!("migrations of module {module} failed"))?;
        tracing::info!(module, "migrations applied");
    }
    Ok(db)
}

fn remote(
    settings: &Settings,
    plan: &PlacementPlan,
    module: &'static str,
) -> anyhow::Result<Option<RemoteClient>> {
    match plan.placement(module) {
        Placement::Remote(url) => Ok(Some(
            RemoteClient::new(module, url.clone(), &settings.remote_settings(module))
                .with_context(|| format!("cannot build the HTTP client for module {module}"))?,
        )),
        _ => Ok(None),
    }
}

/// Builds the modules of this process.
///
/// # Errors
/// When the placement is invalid, the database cannot be opened or migrated, or a module
/// fails to start.
pub async fn assemble(settings: &Settings) -> anyhow::Result<Shop> {
    let plan = plan(settings)?;
    let hosted = plan.hosted();
    let mut checks: Vec<Arc<dyn ReadinessCheck>> = Vec::new();

    let db = if hosted.iter().any(|m| WITH_TABLES.contains(m)) {
        let to_migrate: Vec<&str> = if settings.app.database.migrate {
            migration_sets(&hosted)
        } else {
            Vec::new()
        };
        let db = migrate(settings, &to_migrate).await?;
        checks.push(Arc::new(DatabaseReadiness(db.clone())));
        Some(db)
    } else {
        None
    };
    let conn = || db.clone().context("a hosted module needs the database");

    let mut remotes = BTreeMap::new();
    let mut add_remote = |client: RemoteClient| {
        checks.push(Arc::new(client.clone()));
        remotes.insert(client.module(), client.clone());
        client
    };

    let identity: Option<Arc<dyn IdentityApi>> = match plan.placement("identity") {
        Placement::Hosted => Some(
            identity::IdentityModule::start(conn()?, &settings.identity, identity::IdentityDeps)
                .await
                .map_err(|e| anyhow::anyhow!("identity failed to start: {e}"))?,
        ),
        Placement::Remote(_) => remote(settings, &plan, "identity")?
            .map(|c| IdentityClient::new(add_remote(c)).into_api()),
        Placement::Absent => None,
    };
    // Every process verifies tokens itself, from identity's published keys.
    let authenticator = identity.clone().map(|api| {
        Arc::new(Authenticator {
            verifier: TokenVerifier::new(
                &settings.identity.issuer,
                &settings.identity.audience,
                MAX_LEEWAY_SECS,
                Arc::new(IdentityKeys(api.clone())),
            ),
            users: Some(Arc::new(IdentityUsers(api))),
        })
    });
    let catalog: Option<Arc<dyn CatalogApi>> = match plan.placement("catalog") {
        Placement::Hosted => Some(
            catalog::CatalogModule::start(conn()?, &settings.catalog, catalog::CatalogDeps)
                .await
                .map_err(|e| anyhow::anyhow!("catalog failed to start: {e}"))?,
        ),
        Placement::Remote(_) => remote(settings, &plan, "catalog")?
            .map(|c| CatalogClient::new(add_remote(c)).into_api()),
        Placement::Absent => None,
    };
    let currency: Option<Arc<dyn CurrencyApi>> = match plan.placement("currency") {
        Placement::Hosted => Some(currency::CurrencyModule::new(
            conn()?,
            &settings.currency,
            currency::CurrencyDeps,
        )),
        Placement::Remote(_) => remote(settings, &plan, "currency")?
            .map(|c| CurrencyClient::new(add_remote(c)).into_api()),
        Placement::Absent => None,
    };
    let cart: Option<Arc<dyn CartApi>> = match plan.placement("cart") {
        Placement::Hosted => Some(cart::CartModule::new(
            conn()?,
            &settings.cart,
            cart::CartDeps,
        )),
        Placement::Remote(_) => {
            remote(settings, &plan, "cart")?.map(|c| CartClient::new(add_remote(c)).into_api())
        }
        Placement::Absent => None,
    };
    let recommendation: Option<Arc<dyn RecommendationApi>> = match plan.placement("recommendation")
    {
        Placement::Hosted => Some(recommendation::RecommendationModule::new(
            &settings.recommendation,
            recommendation::RecommendationDeps {
                catalog: catalog.clone().context("recommendation requires catalog")?,
            },
        )),
        Placement::Remote(_) => remote(settings, &plan, "recommendation")?
            .map(|c| RecommendationClient::new(add_remote(c)).into_api()),
        Placement::Absent => None,
    };

    let shipping: Option<Arc<dyn ShippingApi>> = match plan.placement("shipping") {
        Placement::Hosted => Some(shipping::ShippingModule::new(
            conn()?,
            &settings.shipping,
            shipping::ShippingDeps,
        )),
        Placement::Remote(_) => remote(settings, &plan, "shipping")?
            .map(|c| ShippingClient::new(add_remote(c)).into_api()),
        Placement::Absent => None,
    };
    let payment: Option<Arc<dyn PaymentApi>> = match plan.placement("payment") {
        Placement::Hosted => Some(payment::PaymentModule::new(
            conn()?,
            &settings.payment,
            payment::PaymentDeps,
        )),
        Placement::Remote(_) => remote(settings, &plan, "payment")?
            .map(|c| PaymentClient::new(add_remote(c)).into_api()),
        Placement::Absent => None,
    };
    let ads: Option<Arc<dyn AdsApi>> = match plan.placement("ads") {
        Placement::Hosted => Some(
            ads::AdsModule::start(conn()?, &settings.ads, ads::AdsDeps)
                .await
                .map_err(|e| anyhow::anyhow!("ads failed to start: {e}"))?,
        ),
        Placement::Remote(_) => {
            remote(settings, &plan, "ads")?.map(|c| AdsClient::new(add_remote(c)).into_api())
        }
        Placement::Absent => None,
    };

    // Events: one in-process bus and one outbox relay for the process.
    let bus = InProcessBus::new();
    let email: Option<Arc<dyn EmailApi>> = match plan.placement("email") {
        Placement::Hosted => {
            let module = email::EmailModule::new(conn()?, &settings.email, email::EmailDeps);
            module.subscribe(bus.as_ref());
            Some(module)
        }
        Placement::Remote(_) => {
            remote(settings, &plan, "email")?.map(|c| EmailClient::new(add_remote(c)).into_api())
        }
        Placement::Absent => None,
    };
    let relay = match &db {
        Some(db) if hosted.iter().any(|m| WITH_EVENTS.contains(m)) => {
            let events = &settings.app.events;
            Relay::spawn(
                db.clone(),
                bus.clone(),
                RelaySettings {
                    enabled: events.relay,
                    poll_interval: std::time::Duration::from_millis(events.poll_interval_ms),
                    ..RelaySettings::default()
                },
            )
        }
        _ => Relay::disabled(),
    };
    let checkout: Option<Arc<dyn CheckoutApi>> = match plan.placement("checkout") {
        Placement::Hosted => {
            let need = |m: &str| format!("checkout requires {m}");
            Some(checkout::CheckoutModule::new(
                conn()?,
                &settings.checkout,
                checkout::CheckoutDeps {
                    cart: cart.clone().with_context(|| need("cart"))?,
                    catalog: catalog.clone().with_context(|| need("catalog"))?,
                    currency: currency.clone().with_context(|| need("currency"))?,
                    shipping: shipping.clone().with_context(|| need("shipping"))?,
                    payment: payment.clone().with_context(|| need("payment"))?,
                },
                relay,
            ))
        }
        Placement::Remote(_) => remote(settings, &plan, "checkout")?
            .map(|c| CheckoutClient::new(add_remote(c)).into_api()),
        Placement::Absent => None,
    };
    let storefront = match plan.placement("storefront") {
        Placement::Hosted => {
            let need = |m: &str| format!("storefront requires {m}");
            Some(storefront::Storefront::new(
                &settings.storefront,
                storefront::StorefrontDeps {
                    catalog: catalog.clone().with_context(|| need("catalog"))?,
                    currency: currency.clone().with_context(|| need("currency"))?,
                    cart: cart.clone().with_context(|| need("cart"))?,
                    recommendation: recommendation
                        .clone()
                        .with_context(|| need("recommendation"))?,
                    ads: ads.clone().with_context(|| need("ads"))?,
                    shipping: shipping.clone().with_context(|| need("shipping"))?,
                    checkout: checkout.clone().with_context(|| need("checkout"))?,
                    identity: identity.clone().with_context(|| need("identity"))?,
                    authenticator: authenticator.clone().with_context(|| need("identity"))?,
                },
            ))
        }
        _ => None,
    };

    Ok(Shop {
        plan,
        catalog,
        currency,
        cart,
        recommendation,
        shipping,
        payment,
        ads,
        email,
        checkout,
        storefront,
        identity,
        authenticator,
        edge_rules: edge_rules(settings),
        caller_proof: CallerProof {
            required: settings.app.server.require_caller_proof,
        },
        remotes,
        checks,
        db,
    })
}

impl Shop {
    /// Mounts every module's REST routes: served in process for hosted modules, forwarded as
    /// they are to the hosting process for remote ones, 503 for absent ones; and the health
    /// endpoints.
    pub fn configure(&self, cfg: &mut web::ServiceConfig) {
        configure_health(cfg, Arc::new(self.checks.clone()));
        if let Some(auth) = &self.authenticator {
            cfg.app_data(web::Data::from(auth.clone()));
        }
        cfg.app_data(web::Data::new(self.edge_rules.clone()));
        cfg.app_data(web::Data::new(self.caller_proof));
        for spec in SPECS {
            if let Some(remote) = self.remotes.get(spec.name) {
                configure_forward(cfg, remote.clone());
                continue;
            }
            match spec.name {
                "catalog" => self
                    .catalog
                    .clone()
                    .map(|api| catalog_api::http::configure(cfg, api)),
                "currency" => self
                    .currency
                    .clone()
                    .map(|api| currency_api::http::configure(cfg, api)),
                "cart" => self
                    .cart
                    .clone()
                    .map(|api| cart_api::http::configure(cfg, api)),
                "recommendation" => self
                    .recommendation
                    .clone()
                    .map(|api| recommendation_api::http::configure(cfg, api)),
                "shipping" => self
                    .shipping
                    .clone()
                    .map(|api| shipping_api::http::configure(cfg, api)),
                "payment" => self
                    .payment
                    .clone()
                    .map(|api| payment_api::http::configure(cfg, api)),
                "ads" => self
                    .ads
                    .clone()
                    .map(|api| ads_api::http::configure(cfg, api)),
                "email" => self
                    .email
                    .clone()
                    .map(|api| email_api::http::configure(cfg, api)),
                "checkout" => self
                    .checkout
                    .clone()
                    .map(|api| checkout_api::http::configure(cfg, api)),
                "identity" => self
                    .identity
                    .clone()
                    .map(|api| identity_api::http::configure(cfg, api)),
                // Pages, not an API: served where the storefront is hosted, nowhere else.
                "storefront" => {
                    if let Some(shop) = self.storefront.clone() {
                        storefront::configure(cfg, shop);
                    }
                    Some(())
                }
                _ => None,
            }
            .unwrap_or_else(|| configure_not_placed(cfg, spec.name));
        }
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

/// Login and registration limits per client address, applied by whichever process the
/// client talks to.
fn edge_rules(settings: &Settings) -> EdgeRules {
    let id = &settings.identity;
    EdgeRules(Arc::new(vec![
        EdgeRule {
            method: actix_web::http::Method::POST,
            path: "/api/identity/v1/tokens",
            limiter: RateLimiter::per_minute(id.login_per_ip_per_minute),
        },
        EdgeRule {
            method: actix_web::http::Method::POST,
            path: "/api/identity/v1/users",
            limiter: RateLimiter::per_minute(id.register_per_ip_per_minute),
        },
        // The storefront's forms reach the same operations.
        EdgeRule {
            method: actix_web::http::Method::POST,
            path: "/login",
            limiter: RateLimiter::per_minute(id.login_per_ip_per_minute),
        },
        EdgeRule {
            method: actix_web::http::Method::POST,
            path: "/register",
            limiter: RateLimiter::per_minute(id.register_per_ip_per_minute),
        },
    ]))
}

/// CORS for the configured origins: the API's methods and the headers clients send.
fn cors(origins: &[String]) -> actix_cors::Cors {
    let mut cors = actix_cors::Cors::default()
        .allowed_methods(["GET", "POST", "DELETE"])
        .allowed_headers([
            actix_web::http::header::AUTHORIZATION,
            actix_web::http::header::CONTENT_TYPE,
            actix_web::http::header::HeaderName::from_static("idempotency-key"),
        ])
        .expose_headers([
            actix_web::http::header::LOCATION,
            actix_web::http::header::RETRY_AFTER,
        ])
        .max_age(600);
    for origin in origins {
        cors = cors.allowed_origin(origin);
    }
    cors
}

/// A running server.
pub struct Running {
    /// The address actually bound (useful with port 0).
    pub addr: SocketAddr,
    /// Stops the server.
    pub handle: actix_web::dev::ServerHandle,
    /// Completes when the server has stopped.
    pub server: actix_web::dev::Server,
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
    let limits = HttpLimits {
        max_body_bytes: server_cfg.max_body_bytes,
        log_every_request: settings.app.log.access,
        handler_timeout: std::time::Duration::from_millis(server_cfg.handler_timeout_ms),
    };
    let workers = if server_cfg.workers == 0 {
        std::thread::available_parallelism().map_or(1, usize::from)
    } else {
        server_cfg.workers
    };
    let api_doc = crate::openapi::document();
    let cors_origins = server_cfg.cors_allowed_origins.clone();
    let server = HttpServer::new(move || {
        let shop = shop.clone();
        App::new()
            .wrap(from_fn(handler_timeout))
            .wrap(actix_web::middleware::Condition::new(
                !cors_origins.is_empty(),
                cors(&cors_origins),
            ))
            .wrap(from_fn(edge_rate_limit))
            .wrap(from_fn(authenticate))
            .wrap(from_fn(request_scope))
            .configure(|c| configure_extractors(c, limits))
            .service(crate::openapi::swagger_ui(api_doc.clone()))
            .configure(move |c| shop.configure(c))
            .default_service(web::to(not_found))
    })
    .workers(workers)
    .client_request_timeout(std::time::Duration::from_millis(
        server_cfg.request_timeout_ms,
    ))
    .keep_alive(std::time::Duration::from_secs(server_cfg.keep_alive_secs))
    .shutdown_timeout(server_cfg.shutdown_timeout_secs)
    .disable_signals();
    let module_names: Vec<&'static str> = SPECS.iter().map(|s| s.name).collect();
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
        handle: server.handle(),
        server,
    })
}

/// Runs the server until SIGTERM or SIGINT, then drains in-flight requests (up to
/// `server.shutdown_timeout_secs`) and returns.
///
/// # Errors
/// When the server fails.
pub async fn run_until_signalled(running: Running) -> anyhow::Result<()> {
    let handle = running.handle.clone();
    tokio::spawn(async move {
        let signal = wait_for_signal().await;
        tracing::info!(
            signal,
            "shutdown signal received; draining in-flight requests"
        );
        handle.stop(true).await;
    });
    running.server.await.context("server failed")?;
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

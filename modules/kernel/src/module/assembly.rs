//! Assembling a process from the list of modules: each module hosted (started from its
//! dependencies), reached over HTTP, or absent, as the [`PlacementPlan`] says; then every
//! module's routes served, forwarded or answered 503.

use std::any::Any;
use std::collections::HashMap;
use std::marker::PhantomData;
use std::sync::Arc;

use sea_orm::{DatabaseConnection, DbErr};
use sea_orm_migration::MigratorTrait;

use super::{
    Contract, Module, ModuleConfig, ModuleConfigs, ModuleSpec, Placement, PlacementPlan, Start,
    StartError,
};
use crate::auth::Authenticator;
use crate::call::{BoxFuture, CallLayers, CallPath, EDGE, Locality, Operation};
use crate::client::{RemoteClient, RemoteSettings};
use crate::config::{ConfigError, module_section};
use crate::error::{ApiError, ErrorDoc};
use crate::events::{Event, EventBus, EventError, InProcessBus, Relay, RelaySettings, Subscriber};
use crate::health::ReadinessCheck;
use crate::http::configure_not_placed;
use crate::http::forward::configure_forward;

/// A module's migrations, or none.
pub trait MigrationSet: Send + Sync + 'static {
    /// Whether the module has tables (and so needs the database where it is hosted).
    const HAS_TABLES: bool;

    /// Applies every pending migration.
    fn up(db: &DatabaseConnection) -> BoxFuture<'_, Result<(), DbErr>>;

    /// Each migration's name and whether it is applied, oldest first.
    fn status(db: &DatabaseConnection) -> BoxFuture<'_, Result<Vec<(String, bool)>, DbErr>>;

    /// Reverts the last applied migration.
    fn down_one(db: &DatabaseConnection) -> BoxFuture<'_, Result<(), DbErr>>;
}

/// The migrations of a sea-orm `Migrator`.
pub struct Migrations<M>(PhantomData<fn() -> M>);

impl<M: MigratorTrait + Send + Sync + 'static> MigrationSet for Migrations<M> {
    const HAS_TABLES: bool = true;

    fn up(db: &DatabaseConnection) -> BoxFuture<'_, Result<(), DbErr>> {
        Box::pin(M::up(db, None))
    }

    fn status(db: &DatabaseConnection) -> BoxFuture<'_, Result<Vec<(String, bool)>, DbErr>> {
        Box::pin(async move {
            Ok(M::get_migration_with_status(db)
                .await?
                .iter()
                .map(|m| {
                    let applied = matches!(m.status(), sea_orm_migration::MigrationStatus::Applied);
                    (m.name().to_owned(), applied)
                })
                .collect())
        })
    }

    fn down_one(db: &DatabaseConnection) -> BoxFuture<'_, Result<(), DbErr>> {
        Box::pin(M::down(db, Some(1)))
    }
}

/// For modules without tables.
pub struct NoTables;

impl MigrationSet for NoTables {
    const HAS_TABLES: bool = false;

    fn up(_: &DatabaseConnection) -> BoxFuture<'_, Result<(), DbErr>> {
        Box::pin(async { Ok(()) })
    }

    fn status(_: &DatabaseConnection) -> BoxFuture<'_, Result<Vec<(String, bool)>, DbErr>> {
        Box::pin(async { Ok(Vec::new()) })
    }

    fn down_one(_: &DatabaseConnection) -> BoxFuture<'_, Result<(), DbErr>> {
        Box::pin(async { Ok(()) })
    }
}

/// One module of the composition root's list, type-erased: everything the root loops over.
pub trait ModuleEntry: Send + Sync {
    /// Name, what it owns, what it requires.
    fn spec(&self) -> ModuleSpec;
    /// Modules whose events it consumes.
    fn subscribes(&self) -> &'static [&'static str];
    /// Topics it publishes.
    fn publishes(&self) -> &'static [&'static str];
    /// Whether it publishes every change of what it answers ([`super::Module::ANNOUNCES_CHANGES`]).
    fn announces_changes(&self) -> bool;
    /// Whether it needs the outbox where it is hosted (it publishes or consumes events).
    fn uses_events(&self) -> bool {
        !self.publishes().is_empty() || !self.subscribes().is_empty()
    }
    /// Its contract's operations.
    fn operations(&self) -> &'static [&'static Operation];
    /// Its contract's error table.
    fn errors(&self) -> &'static [ErrorDoc];
    /// The codes its contract refuses callers with: unauthenticated (401), forbidden (403).
    fn refusals(&self) -> [&'static str; 2];
    /// Whether it has tables.
    fn has_tables(&self) -> bool;
    /// Applies its pending migrations.
    fn migrate<'a>(&self, db: &'a DatabaseConnection) -> BoxFuture<'a, Result<(), DbErr>>;
    /// Its migrations' names and whether each is applied.
    fn migration_status<'a>(
        &self,
        db: &'a DatabaseConnection,
    ) -> BoxFuture<'a, Result<Vec<(String, bool)>, DbErr>>;
    /// Reverts its last applied migration.
    fn migrate_down_one<'a>(&self, db: &'a DatabaseConnection) -> BoxFuture<'a, Result<(), DbErr>>;
    /// Reads and validates its `[modules.<m>]` section; `extra_keys` are the keys every
    /// section may have (placement).
    ///
    /// # Errors
    /// The first bad key, with its origin.
    fn load_config(
        &self,
        figment: &figment::Figment,
        extra_keys: &[&str],
    ) -> Result<Arc<dyn Any + Send + Sync>, ConfigError>;
    /// Its API document, if it has routes.
    fn openapi(&self) -> Option<utoipa::openapi::OpenApi>;
    /// Starts it in this process.
    fn host<'a>(&'a self, asm: &'a mut Assembly) -> BoxFuture<'a, Result<(), StartError>>;
    /// Reaches it over HTTP through `remote`.
    fn connect(&self, asm: &mut Assembly, remote: RemoteClient);
    /// Serves its routes from the module (or from its client, for a module reached over
    /// gRPC), forwards them, or answers 503.
    fn configure(&self, cfg: &mut actix_web::web::ServiceConfig, asm: &Assembly);
    /// Adds its contract's gRPC service (see [`crate::grpc`]) to `routes` when this process
    /// hosts it, as the edge reaches it, and answers the service's name.
    fn serve_grpc(
        &self,
        routes: &mut tonic::service::RoutesBuilder,
        asm: &Assembly,
        edge: &Arc<crate::grpc::Edge>,
        max_message_bytes: usize,
    ) -> Option<&'static str>;
}

/// A module `M` with its migrations `S`: one entry of the composition root's list.
pub struct Entry<M, S = NoTables>(PhantomData<fn() -> (M, S)>);

impl<M, S> Entry<M, S> {
    /// The entry (a constant: the list is a `static`).
    pub const fn new() -> Self {
        Self(PhantomData)
    }
}

impl<M, S> Default for Entry<M, S> {
    fn default() -> Self {
        Self::new()
    }
}

fn name_of<M: Module>() -> &'static str {
    <M::Contract as Contract>::MODULE
}

/// Clears a remote module's kept answers when it publishes a change: those about the
/// resource the event names (`events::CHANGED_RESOURCE`; of a change made through this
/// process, only those kept before it), else all.
struct ForgetAnswers(RemoteClient);

#[async_trait::async_trait]
impl Subscriber for ForgetAnswers {
    async fn handle(&self, event: &Event) -> Result<(), EventError> {
        if let Some(resource) = crate::events::changed_resource(event) {
            let dropped = if self.0.forget_answers_about_change(event.id, &resource) {
                "a resource changed through this process: the answers kept before it dropped"
            } else {
                "a resource changed: the answers kept about it dropped"
            };
            tracing::debug!(module = self.0.module(), topic = %event.topic, "{dropped}");
        } else if self.0.forget_answers() > 0 {
            tracing::info!(
                module = self.0.module(),
                topic = %event.topic,
                "its data changed: kept answers dropped"
            );
        }
        Ok(())
    }
}

impl<M: Module, S: MigrationSet> ModuleEntry for Entry<M, S> {
    fn spec(&self) -> ModuleSpec {
        ModuleSpec {
            name: name_of::<M>(),
            owns: M::OWNS,
            requires: M::REQUIRES,
            optional: M::OPTIONAL,
        }
    }

    fn subscribes(&self) -> &'static [&'static str] {
        M::SUBSCRIBES
    }

    fn publishes(&self) -> &'static [&'static str] {
        M::PUBLISHES
    }

    fn announces_changes(&self) -> bool {
        M::ANNOUNCES_CHANGES
    }

    fn operations(&self) -> &'static [&'static Operation] {
        M::Contract::OPERATIONS
    }

    fn errors(&self) -> &'static [ErrorDoc] {
        <<M::Contract as Contract>::Error as ApiError>::ERRORS
    }

    fn refusals(&self) -> [&'static str; 2] {
        <<M::Contract as Contract>::Error as ApiError>::REFUSALS
    }

    fn has_tables(&self) -> bool {
        S::HAS_TABLES
    }

    fn migrate<'a>(&self, db: &'a DatabaseConnection) -> BoxFuture<'a, Result<(), DbErr>> {
        S::up(db)
    }

    fn migration_status<'a>(
        &self,
        db: &'a DatabaseConnection,
    ) -> BoxFuture<'a, Result<Vec<(String, bool)>, DbErr>> {
        S::status(db)
    }

    fn migrate_down_one<'a>(&self, db: &'a DatabaseConnection) -> BoxFuture<'a, Result<(), DbErr>> {
        S::down_one(db)
    }

    fn load_config(
        &self,
        figment: &figment::Figment,
        extra_keys: &[&str],
    ) -> Result<Arc<dyn Any + Send + Sync>, ConfigError> {
        let name = name_of::<M>();
        let config: M::Config = module_section(figment, name, extra_keys)?;
        config.validate().map_err(|(key, msg)| {
            ConfigError::at(figment, &format!("modules.{name}.{key}"), msg)
        })?;
        Ok(Arc::new(config))
    }

    fn openapi(&self) -> Option<utoipa::openapi::OpenApi> {
        M::Contract::openapi()
    }

    fn host<'a>(&'a self, asm: &'a mut Assembly) -> BoxFuture<'a, Result<(), StartError>> {
        Box::pin(async move {
            let name = name_of::<M>();
            let config = asm
                .configs
                .get_any(name)
                .and_then(|c| c.downcast_ref::<M::Config>())
                .cloned()
                .unwrap_or_default();
            asm.start::<M>(config).await.map(drop)
        })
    }

    fn connect(&self, asm: &mut Assembly, remote: RemoteClient) {
        if let Some(api) = M::Contract::client(remote.clone()) {
            asm.remotes.insert(name_of::<M>(), remote);
            asm.register::<M::Contract>(api, Locality::Remote);
        }
    }

    fn serve_grpc(
        &self,
        routes: &mut tonic::service::RoutesBuilder,
        asm: &Assembly,
        edge: &Arc<crate::grpc::Edge>,
        max_message_bytes: usize,
    ) -> Option<&'static str> {
        if M::Contract::OPERATIONS.is_empty() || !asm.plan().hosted().contains(&name_of::<M>()) {
            return None;
        }
        let api = asm.api::<M::Contract>(crate::call::EDGE)?;
        routes.add_service(super::ContractService::<M::Contract>::new(
            api,
            edge.clone(),
            max_message_bytes,
        ));
        Some(M::Contract::GRPC_SERVICE)
    }

    fn configure(&self, cfg: &mut actix_web::web::ServiceConfig, asm: &Assembly) {
        let name = name_of::<M>();
        let over_grpc = asm
            .remotes
            .get(name)
            .is_some_and(|r| r.transport() == crate::client::Transport::Grpc);
        if over_grpc && let Some(api) = asm.api::<M::Contract>(EDGE) {
            // No REST request can be relayed over gRPC as it is: the module's routes are
            // served here, each decoded and passed to its client (the access rules decide
            // here, and the module sees this process's certificate and the caller's token).
            M::Contract::configure(cfg, api);
        } else if let Some(remote) = asm.remotes.get(name) {
            let path = CallPath::new(EDGE, name, Locality::Remote, asm.layers.clone());
            configure_forward::<<M::Contract as Contract>::Error>(
                cfg,
                remote.clone(),
                M::Contract::OPERATIONS,
                path,
            );
        } else if let Some(api) = asm.api::<M::Contract>(EDGE) {
            M::Contract::configure(cfg, api);
        } else if !M::Contract::OPERATIONS.is_empty() {
            configure_not_placed(cfg, name);
        }
    }
}

/// A placed module: its contract object (an `Arc<C::Api>` behind `Any`) and where it runs.
struct Placed {
    api: Box<dyn Any + Send + Sync>,
    locality: Locality,
}

/// How to assemble a process.
pub struct AssemblyOptions {
    /// The layers of the call path.
    pub layers: CallLayers,
    /// The database, when a hosted module needs one (already migrated).
    pub db: Option<DatabaseConnection>,
    /// Every module's settings.
    pub configs: ModuleConfigs,
    /// Call settings per remote module.
    pub remote_settings: Box<dyn Fn(&str) -> RemoteSettings + Send + Sync>,
    /// The outbox relay's settings.
    pub relay: RelaySettings,
    /// The event bus (a broker); `None`: in process.
    pub bus: Option<Arc<dyn EventBus>>,
}

/// Readiness of a remote module: required, or only reported (`degraded: ...`).
struct RemoteReadiness {
    client: RemoteClient,
    required: bool,
}

#[async_trait::async_trait]
impl ReadinessCheck for RemoteReadiness {
    fn name(&self) -> String {
        self.client.name()
    }

    async fn check(&self) -> Result<(), String> {
        self.client.check().await
    }

    fn required(&self) -> bool {
        self.required
    }
}

/// Sets [`crate::metrics::BREAKER_STATE`] of every remote module.
struct BreakerGauges(Vec<RemoteClient>);

#[async_trait::async_trait]
impl crate::metrics::Gauges for BreakerGauges {
    async fn record(&self) {
        for client in &self.0 {
            metrics::gauge!(crate::metrics::BREAKER_STATE, "callee" => client.module())
                .set(client.breaker().gauge_value());
        }
    }
}

/// The modules of one process, placed: what routes, readiness and the modules' own
/// dependencies are built from.
pub struct Assembly {
    plan: PlacementPlan,
    layers: CallLayers,
    db: Option<DatabaseConnection>,
    configs: ModuleConfigs,
    placed: HashMap<&'static str, Placed>,
    remotes: HashMap<&'static str, RemoteClient>,
    bus: Arc<dyn EventBus>,
    relay: Relay,
    authenticator: Option<Arc<Authenticator>>,
    checks: Vec<Arc<dyn ReadinessCheck>>,
}

impl Assembly {
    /// Places every module of `entries` (listed after those they require) as `plan` says:
    /// hosted ones are started, remote ones get a client, absent ones nothing. After each
    /// module is placed, `on_placed` may add what depends on it (e.g. the token verifier once
    /// identity is placed). Then the outbox relay starts where a hosted module uses events.
    ///
    /// # Errors
    /// The first module that fails to start or whose client cannot be built.
    pub async fn build(
        entries: &[&dyn ModuleEntry],
        plan: PlacementPlan,
        options: AssemblyOptions,
        mut on_placed: impl FnMut(&'static str, &mut Assembly),
    ) -> Result<Self, StartError> {
        let mut asm = Self::standalone(options.db);
        asm.plan = plan;
        asm.layers = options.layers;
        asm.configs = options.configs;
        if let Some(bus) = options.bus {
            asm.bus = bus;
        }
        let mut uses_events = false;
        for entry in entries {
            let name = entry.spec().name;
            match asm.plan.placement(name).clone() {
                Placement::Hosted => {
                    entry.host(&mut asm).await?;
                    uses_events |= entry.uses_events();
                }
                Placement::Remote(url) => {
                    let remote = RemoteClient::new(name, url, &(options.remote_settings)(name))
                        .map_err(|e| StartError::Failed {
                            module: name,
                            reason: format!("cannot build its HTTP client: {e}"),
                        })?;
                    // Any event the module publishes says its data changed: answers kept of
                    // it go (those of `cached` operations, and reads whose callers said a
                    // kept answer would do).
                    for topic in entry.publishes() {
                        asm.bus
                            .watch(topic, Arc::new(ForgetAnswers(remote.clone())));
                    }
                    entry.connect(&mut asm, remote);
                }
                Placement::Absent => {}
            }
            on_placed(name, &mut asm);
        }
        // A remote module is required for readiness when a hosted module needs it (not only
        // optionally); one this process only forwards to, or can do without, is reported.
        let needed: Vec<&str> = entries
            .iter()
            .map(|e| e.spec())
            .filter(|spec| asm.plan.placement(spec.name) == &Placement::Hosted)
            .flat_map(|spec| {
                spec.requires
                    .iter()
                    .copied()
                    .filter(move |r| !spec.optional.contains(r))
            })
            .collect();
        let mut remotes: Vec<_> = asm.remotes.iter().collect();
        remotes.sort_by_key(|(name, _)| **name);
        let checks: Vec<Arc<dyn ReadinessCheck>> = remotes
            .into_iter()
            .map(|(name, remote)| {
                Arc::new(RemoteReadiness {
                    client: remote.clone(),
                    required: needed.contains(name),
                }) as Arc<dyn ReadinessCheck>
            })
            .collect();
        asm.checks.extend(checks);
        if let Some(db) = &asm.db
            && uses_events
        {
            asm.relay.start(db.clone(), asm.bus.clone(), options.relay);
        }
        Ok(asm)
    }

    /// An assembly of its own, with `db` and nothing placed, for modules started one by one
    /// (tests, admin commands): [`Assembly::provide`] their dependencies, then
    /// [`Assembly::start`] them.
    pub fn standalone(db: Option<DatabaseConnection>) -> Self {
        Self {
            plan: PlacementPlan::empty(),
            layers: CallLayers::default(),
            db,
            configs: ModuleConfigs::default(),
            placed: HashMap::new(),
            remotes: HashMap::new(),
            bus: InProcessBus::new(),
            relay: Relay::new(),
            authenticator: None,
            checks: Vec::new(),
        }
    }

    /// Places `api` as contract `C` in this process (a fake, or a module started elsewhere).
    pub fn provide<C: Contract>(&mut self, api: Arc<C::Api>) {
        self.register::<C>(api, Locality::Local);
    }

    /// Reaches contract `C`'s remote module through `api` instead of its generated client: a
    /// client of another wire contract (Online Boutique's services) over the module's
    /// [`RemoteClient`] (see [`Assembly::remote_client`]).
    pub fn connect_with<C: Contract>(&mut self, api: Arc<C::Api>) {
        self.register::<C>(api, Locality::Remote);
    }

    /// The client of remote module `module`, if this process calls it.
    pub fn remote_client(&self, module: &str) -> Option<RemoteClient> {
        self.remotes.get(module).cloned()
    }

    /// Starts module `M` with `config`, places it, and returns it (without interception).
    ///
    /// # Errors
    /// Its [`StartError`].
    pub async fn start<M: Module>(
        &mut self,
        config: M::Config,
    ) -> Result<Arc<<M::Contract as Contract>::Api>, StartError> {
        let name = name_of::<M>();
        let api = M::start(Start::new(name, M::REQUIRES, &config, self)).await?;
        self.register::<M::Contract>(api.clone(), Locality::Local);
        Ok(api)
    }

    fn register<C: Contract>(&mut self, api: Arc<C::Api>, locality: Locality) {
        self.placed.insert(
            C::MODULE,
            Placed {
                api: Box::new(api),
                locality,
            },
        );
    }

    /// Contract `C` as `caller` reaches it (through the call path), if it is placed.
    pub fn api<C: Contract>(&self, caller: &'static str) -> Option<Arc<C::Api>> {
        let placed = self.placed.get(C::MODULE)?;
        let api = placed.api.downcast_ref::<Arc<C::Api>>()?.clone();
        let path = CallPath::new(caller, C::MODULE, placed.locality, self.layers.clone());
        Some(C::intercept(api, path))
    }

    /// Where each module runs.
    pub fn plan(&self) -> &PlacementPlan {
        &self.plan
    }

    /// The process's database, if a hosted module needs one.
    pub fn db(&self) -> Option<&DatabaseConnection> {
        self.db.as_ref()
    }

    /// The event bus of the process.
    pub fn bus(&self) -> &dyn EventBus {
        self.bus.as_ref()
    }

    /// The outbox relay of the process.
    pub fn relay(&self) -> Relay {
        self.relay.clone()
    }

    /// Sets the verifier of bearer tokens.
    pub fn set_authenticator(&mut self, authenticator: Arc<Authenticator>) {
        self.authenticator = Some(authenticator);
    }

    /// The verifier of bearer tokens, once identity is placed.
    pub fn authenticator(&self) -> Option<Arc<Authenticator>> {
        self.authenticator.clone()
    }

    /// Adds something `/health/ready` checks.
    pub fn add_check(&mut self, check: Arc<dyn ReadinessCheck>) {
        self.checks.push(check);
    }

    /// What `/health/ready` checks: the database and every remote module.
    pub fn checks(&self) -> Vec<Arc<dyn ReadinessCheck>> {
        self.checks.clone()
    }

    /// The clients of the modules this process calls, by module name.
    pub fn remote_clients(&self) -> Vec<RemoteClient> {
        let mut remotes: Vec<RemoteClient> = self.remotes.values().cloned().collect();
        remotes.sort_by_key(RemoteClient::module);
        remotes
    }

    /// What `/metrics` reads when scraped: the breaker of every remote module, and the
    /// database pool and the outbox when the process has a database.
    pub fn gauges(&self) -> Vec<Arc<dyn crate::metrics::Gauges>> {
        let mut gauges: Vec<Arc<dyn crate::metrics::Gauges>> = vec![Arc::new(BreakerGauges(
            self.remotes.values().cloned().collect(),
        ))];
        if let Some(db) = &self.db {
            gauges.push(Arc::new(crate::db::PoolGauges(db.clone())));
            gauges.push(Arc::new(crate::events::OutboxGauges(db.clone())));
        }
        gauges
    }

    /// Serves every module's routes (hosted), forwards them (remote) or answers 503
    /// (absent).
    pub fn configure(&self, entries: &[&dyn ModuleEntry], cfg: &mut actix_web::web::ServiceConfig) {
        for entry in entries {
            entry.configure(cfg, self);
        }
    }
}

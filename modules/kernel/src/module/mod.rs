//! What a module is, described once.
//!
//! A module is a bounded context reached only through its contract. Two descriptors say
//! everything the rest of the system needs to know of it:
//!
//! - its [`Contract`] (in `<m>-api`, derived by `#[contract]`): name, operations, the
//!   interception point of its calls, its HTTP client, its routes and its API document;
//! - its [`Module`] implementation (in `<m>`): what it owns, requires, subscribes to and
//!   publishes, its configuration section, and how it starts from its dependencies
//!   ([`Start`]).
//!
//! The composition root holds one list of [`Entry`] values (a module with its migrations) and
//! loops over it for everything: placement, configuration, migrations, assembly, routes, the
//! API document, `cleave modules`. Adding a module is its crates plus one entry there (see
//! docs/ARCHITECTURE.md).

mod assembly;
mod grpc_service;
mod placement;

use std::any::Any;
use std::fmt;
use std::sync::Arc;

use sea_orm::DatabaseConnection;
use serde::Serialize;
use serde::de::DeserializeOwned;

pub use assembly::{
    Assembly, AssemblyOptions, Entry, MigrationSet, Migrations, ModuleEntry, NoTables,
};
pub use grpc_service::ContractService;
pub use placement::{ModuleSpec, Placement, PlacementError, PlacementPlan};

use crate::auth::Authenticator;
use crate::call::{CallPath, Operation};
use crate::client::RemoteClient;
use crate::error::ApiError;
use crate::events::{EventBus, Relay};

/// A module's contract as the kernel sees it. Derived by `#[contract]` on the contract trait
/// (the storefront, which has pages and no API, implements it by hand).
pub trait Contract: 'static {
    /// The contract object: `dyn <M>Api`.
    type Api: ?Sized + Send + Sync + 'static;
    /// The contract's error.
    type Error: ApiError;
    /// The module's name: its config section, route prefix (`/api/<name>/v1`) and log name.
    const MODULE: &'static str;
    /// Its operations, in declaration order.
    const OPERATIONS: &'static [&'static Operation];

    /// `api` with every call passing `path` (the interception point).
    fn intercept(api: Arc<Self::Api>, path: CallPath) -> Arc<Self::Api>;

    /// The contract over HTTP through `remote`, if the module can be called remotely.
    fn client(remote: RemoteClient) -> Option<Arc<Self::Api>>;

    /// Its gRPC service, `cleave.<module>.v1.<Module>` (see [`crate::grpc`]); `#[contract]`
    /// names it. A contract without operations (none) serves none.
    const GRPC_SERVICE: &'static str = "";

    /// Runs the operation whose gRPC method is `method` on `api` with `ctx` and the JSON
    /// message `args`, answering its result's JSON; `None` for a method the contract does not
    /// have.
    fn dispatch(
        api: Arc<Self::Api>,
        method: &str,
        ctx: crate::CallContext,
        args: actix_web::web::Bytes,
    ) -> Option<crate::call::BoxFuture<'static, Result<actix_web::web::Bytes, crate::Failure>>>
    {
        let _ = (api, method, ctx, args);
        None
    }

    /// Serves the contract's routes from `api`.
    fn configure(cfg: &mut actix_web::web::ServiceConfig, api: Arc<Self::Api>);

    /// The OpenAPI description of the routes, if it has any.
    fn openapi() -> Option<utoipa::openapi::OpenApi>;
}

/// The settings of a module's `[modules.<m>]` section.
pub trait ModuleConfig:
    Serialize + DeserializeOwned + Default + Clone + fmt::Debug + Send + Sync + 'static
{
    /// Checks the values serde cannot.
    ///
    /// # Errors
    /// The key (within the section) and what is wrong with it.
    fn validate(&self) -> Result<(), (&'static str, String)> {
        Ok(())
    }
}

/// Why a module could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// A dependency is neither hosted nor reachable (placement validation prevents this).
    #[error("{module} requires {dependency}, which is not placed")]
    Missing {
        /// The starting module.
        module: &'static str,
        /// What it needs.
        dependency: &'static str,
    },
    /// The module asked for a dependency it does not declare in `REQUIRES` (a bug).
    #[error("{module} asked for {dependency}, which it does not declare in Module::REQUIRES")]
    Undeclared {
        /// The starting module.
        module: &'static str,
        /// What it asked for.
        dependency: &'static str,
    },
    /// The module needs the database and the process has none (a bug in the entry).
    #[error("{0} needs the database")]
    NoDatabase(&'static str),
    /// Bearer tokens cannot be verified here (identity is not placed).
    #[error("{0} needs to verify access tokens, but identity is not placed")]
    NoAuthenticator(&'static str),
    /// The module failed to start.
    #[error("{module} failed to start: {reason}")]
    Failed {
        /// The module.
        module: &'static str,
        /// Why.
        reason: String,
    },
}

/// A module's implementation, described once (in its impl crate).
#[async_trait::async_trait]
pub trait Module: Send + Sync + 'static {
    /// The contract it implements.
    type Contract: Contract;
    /// Its `[modules.<m>]` settings.
    type Config: ModuleConfig;
    /// What data it owns (for `cleave modules` and the docs).
    const OWNS: &'static str;
    /// Modules it calls; they must be hosted or reachable wherever it is hosted. Must match
    /// `allowed-dependencies` in its `Cargo.toml` (checked by `tests/architecture.rs`).
    const REQUIRES: &'static [&'static str] = &[];
    /// Those of [`Module::REQUIRES`] it serves without, degraded (the storefront's pages
    /// without ads or recommendations): when they are remote and down, the process stays
    /// ready and says so.
    const OPTIONAL: &'static [&'static str] = &[];
    /// Modules whose events it consumes (it may use their event types, never call them).
    const SUBSCRIBES: &'static [&'static str] = &[];
    /// Topics it publishes through the outbox.
    const PUBLISHES: &'static [&'static str] = &[];
    /// Whether every change of what its operations answer is published as one of
    /// [`Module::PUBLISHES`] (in the change's transaction): where those events reach the
    /// callers (a bus between processes), their kept answers of it are dropped by the
    /// events, and may be kept longer (`remote.announced_cache_ttl_ms`).
    const ANNOUNCES_CHANGES: bool = false;

    /// Starts the module in this process.
    ///
    /// # Errors
    /// Why it cannot start.
    async fn start(
        start: Start<'_, Self::Config>,
    ) -> Result<Arc<<Self::Contract as Contract>::Api>, StartError>;
}

/// What a module gets to start with: its settings, the database, its dependencies (each
/// through the call path), the event bus and relay, the token verifier.
pub struct Start<'a, C> {
    module: &'static str,
    requires: &'static [&'static str],
    config: &'a C,
    assembly: &'a Assembly,
}

impl<'a, C> Start<'a, C> {
    pub(crate) fn new(
        module: &'static str,
        requires: &'static [&'static str],
        config: &'a C,
        assembly: &'a Assembly,
    ) -> Self {
        Self {
            module,
            requires,
            config,
            assembly,
        }
    }

    /// The module's name.
    pub fn module(&self) -> &'static str {
        self.module
    }

    /// The module's settings.
    pub fn config(&self) -> &'a C {
        self.config
    }

    /// The process's database.
    ///
    /// # Errors
    /// [`StartError::NoDatabase`] when the process has none.
    pub fn db(&self) -> Result<DatabaseConnection, StartError> {
        self.assembly
            .db()
            .cloned()
            .ok_or(StartError::NoDatabase(self.module))
    }

    /// The dependency `D`, reached through the call path from this module.
    ///
    /// # Errors
    /// [`StartError::Undeclared`] when `D` is not in `REQUIRES`, [`StartError::Missing`] when
    /// it is not placed.
    pub fn dep<D: Contract>(&self) -> Result<Arc<D::Api>, StartError> {
        if !self.requires.contains(&D::MODULE) {
            return Err(StartError::Undeclared {
                module: self.module,
                dependency: D::MODULE,
            });
        }
        self.assembly
            .api::<D>(self.module)
            .ok_or(StartError::Missing {
                module: self.module,
                dependency: D::MODULE,
            })
    }

    /// Whether the placement says every caller of this module is in another process (see
    /// [`PlacementPlan::callers_all_remote`]): work done only for callers in this process
    /// (answers kept for them) is waste then.
    pub fn callers_all_remote(&self) -> bool {
        self.assembly.plan().callers_all_remote(self.module)
    }

    /// The process's event bus, to subscribe to events.
    pub fn bus(&self) -> &'a dyn EventBus {
        self.assembly.bus()
    }

    /// The outbox relay, to notify after committing events.
    pub fn relay(&self) -> Relay {
        self.assembly.relay()
    }

    /// The verifier of bearer tokens.
    ///
    /// # Errors
    /// [`StartError::NoAuthenticator`] when identity is not placed.
    pub fn authenticator(&self) -> Result<Arc<Authenticator>, StartError> {
        self.assembly
            .authenticator()
            .ok_or(StartError::NoAuthenticator(self.module))
    }

    /// A [`StartError::Failed`] of this module.
    pub fn failed(&self, reason: impl fmt::Display) -> StartError {
        StartError::Failed {
            module: self.module,
            reason: reason.to_string(),
        }
    }
}

/// The validated settings of every module, by name.
#[derive(Clone, Default)]
pub struct ModuleConfigs(std::collections::BTreeMap<&'static str, Arc<dyn Any + Send + Sync>>);

impl ModuleConfigs {
    /// Records `module`'s settings.
    pub fn insert(&mut self, module: &'static str, config: Arc<dyn Any + Send + Sync>) {
        self.0.insert(module, config);
    }

    /// The settings of `M`, if loaded.
    pub fn get<M: Module>(&self) -> Option<&M::Config> {
        self.0
            .get(<M::Contract as Contract>::MODULE)
            .and_then(|c| c.downcast_ref::<M::Config>())
    }

    pub(crate) fn get_any(&self, module: &str) -> Option<&(dyn Any + Send + Sync)> {
        self.0.get(module).map(|c| &**c)
    }
}

impl fmt::Debug for ModuleConfigs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.0.keys()).finish()
    }
}

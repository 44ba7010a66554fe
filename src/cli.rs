//! The `cleave` command line: `serve` (the default), `migrate`, `config show|check`,
//! `modules`, and the identity admin commands `user create`, `token issue`, `keys rotate`.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use cleave_kernel::config::{ConfigError, ConfigSources, effective};
use cleave_kernel::module::{Placement, PlacementError, PlacementPlan};

use crate::config::{Overrides, Settings};
use crate::modules::{self, EVENTS};
use crate::wiring;

/// Cleave: the whole boutique in one binary, split into services by configuration.
#[derive(Debug, Parser)]
#[command(name = "cleave", version = crate::VERSION, about)]
pub struct Cli {
    /// Extra TOML configuration file, layered over config/default.toml and config/$CLEAVE_ENV.toml.
    #[arg(long, global = true, env = "CLEAVE_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// What to do; `serve` when omitted.
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Sub-commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the shop's HTTP API (default: every module on 127.0.0.1:8080).
    Serve {
        /// Host only these modules (comma-separated); others are called at their
        /// `modules.<m>.url`.
        #[arg(long, value_delimiter = ',', value_name = "MODULES")]
        modules: Option<Vec<String>>,
        /// Address to listen on (overrides server.listen).
        #[arg(long, value_name = "ADDR")]
        listen: Option<SocketAddr>,
    },
    /// Apply database migrations (every module with tables, or one), or show or revert them.
    #[command(args_conflicts_with_subcommands = true)]
    Migrate {
        /// status or down; without one, apply.
        #[command(subcommand)]
        action: Option<MigrateAction>,
        /// Only this module.
        #[arg(long, value_name = "MODULE")]
        module: Option<String>,
    },
    /// See and replay events: the outbox's pending ones, the broker's dead letters.
    Events {
        /// pending, dead-letters or replay.
        #[command(subcommand)]
        action: EventsAction,
    },
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Inspect the configuration.
    Config {
        /// show or check.
        #[command(subcommand)]
        action: ConfigAction,
    },
    /// List the modules: where each runs for this configuration, and what it requires.
    Modules {
        /// As `serve --modules` would see it.
        #[arg(long, value_delimiter = ',', value_name = "MODULES")]
        modules: Option<Vec<String>>,
    },
    /// Manage users (in the configured identity database).
    User {
        /// create.
        #[command(subcommand)]
        action: UserAction,
    },
    /// Issue tokens (for operators and tests).
    Token {
        /// issue.
        #[command(subcommand)]
        action: TokenAction,
    },
    /// Manage the token signing keys.
    Keys {
        /// rotate.
        #[command(subcommand)]
        action: KeysAction,
    },
    /// Ask this machine's `cleave serve` (same configuration) whether it is alive, or ready
    /// with `--ready`; exit 0 when it says 200, else 1. For container probes (the image has
    /// no shell or curl).
    Health {
        /// Ask /health/ready (database, required modules) instead of /health/live.
        #[arg(long)]
        ready: bool,
        /// Give up after this many milliseconds.
        #[arg(long, default_value_t = 3000, value_name = "MS")]
        timeout_ms: u64,
    },
    /// Print the configuration of an edge proxy (nginx or haproxy) routing the public routes
    /// to the processes that host them, from this configuration's module urls.
    Edge {
        /// nginx or haproxy.
        proxy: crate::proxy::Proxy,
        /// Where the proxy listens.
        #[arg(long, default_value = "0.0.0.0:8080", value_name = "ADDR")]
        listen: SocketAddr,
    },
    /// Write deployment files for a placement (deploy/placement.toml): a docker-compose
    /// file, or Kubernetes manifests (a kustomize base and an overlay per placement).
    Deploy {
        /// compose or k8s.
        #[command(subcommand)]
        target: DeployTarget,
    },
    /// Make the deployment's certificates: a CA, a server certificate, and one per module
    /// (what module-only operations need across processes).
    Certs {
        /// init or issue.
        #[command(subcommand)]
        action: CertsAction,
    },
}

/// `certs` sub-commands.
#[derive(Debug, Subcommand)]
pub enum CertsAction {
    /// Create a CA (ca.pem, ca.key) and a server certificate (server.pem, server.key) in DIR.
    Init {
        /// Where the files go.
        #[arg(long, default_value = "certs", value_name = "DIR")]
        dir: PathBuf,
        /// A name or address the listeners are reached at; repeat for several.
        #[arg(long = "host", value_name = "HOST", default_values_t = ["localhost".to_owned(), "127.0.0.1".to_owned()])]
        hosts: Vec<String>,
    },
    /// Create MODULE.pem and MODULE.key in DIR: a certificate naming the module, signed by
    /// the CA there. A process hosting several modules that call others presents one
    /// certificate naming them all: `--module checkout,storefront` writes
    /// checkout+storefront.pem.
    Issue {
        /// The modules the certificate names (comma-separated, or the option repeated).
        #[arg(
            long = "module",
            value_name = "MODULE",
            value_delimiter = ',',
            required = true
        )]
        modules: Vec<String>,
        /// Where the CA is and the files go.
        #[arg(long, default_value = "certs", value_name = "DIR")]
        dir: PathBuf,
    },
}

/// `deploy` sub-commands.
#[derive(Debug, Subcommand)]
pub enum DeployTarget {
    /// Print a docker-compose file running the placement (with PostgreSQL and NATS services
    /// where it needs them).
    Compose {
        /// The placement file.
        #[arg(long, default_value = "deploy/placement.toml", value_name = "FILE")]
        placement: PathBuf,
    },
    /// Write Kubernetes manifests: DIR/base (shared by every placement) and
    /// DIR/overlays/<placement name>.
    K8s {
        /// The placement file.
        #[arg(long, default_value = "deploy/placement.toml", value_name = "FILE")]
        placement: PathBuf,
        /// Where the kustomize tree goes.
        #[arg(long, default_value = "deploy/k8s", value_name = "DIR")]
        out: PathBuf,
    },
}

/// `events` sub-commands.
#[derive(Debug, Subcommand)]
pub enum EventsAction {
    /// Events of the configured database not yet accepted by the bus.
    Pending,
    /// Events a subscriber gave up on (events.bus = "nats").
    DeadLetters,
    /// Send a dead-lettered event to its subscribers again, and remove it from the dead
    /// letters.
    Replay {
        /// The event id.
        id: String,
    },
}

/// `migrate` sub-commands.
#[derive(Debug, Subcommand)]
pub enum MigrateAction {
    /// Each migration and whether it is applied (every module with tables, or one).
    Status {
        /// Only this module.
        #[arg(long, value_name = "MODULE")]
        module: Option<String>,
    },
    /// Revert the last applied migration of one module (its data may go with it).
    Down {
        /// The module.
        #[arg(long, value_name = "MODULE")]
        module: String,
        /// Yes, revert it.
        #[arg(long)]
        yes: bool,
    },
}

/// `user` sub-commands.
#[derive(Debug, Subcommand)]
pub enum UserAction {
    /// Create a user. The password is read from standard input (first line), never from
    /// the command line, where other users of the machine could see it.
    Create {
        /// The user's e-mail address.
        #[arg(long)]
        email: String,
        /// A role; repeat for several (default: shopper).
        #[arg(long = "role", value_name = "ROLE")]
        roles: Vec<String>,
    },
}

/// `token` sub-commands.
#[derive(Debug, Subcommand)]
pub enum TokenAction {
    /// Print a signed access token for `--sub` with the given roles.
    Issue {
        /// The subject (user id).
        #[arg(long)]
        sub: String,
        /// A role; repeat for several.
        #[arg(long = "role", value_name = "ROLE")]
        roles: Vec<String>,
        /// Lifetime in seconds (at most 900).
        #[arg(long, default_value_t = 900)]
        ttl: u64,
    },
}

/// `keys` sub-commands.
#[derive(Debug, Subcommand)]
pub enum KeysAction {
    /// Make a new signing key current; tokens signed by the previous one stay valid until
    /// they expire.
    Rotate,
}

/// `config` sub-commands.
#[derive(Debug, Subcommand)]
pub enum ConfigAction {
    /// Print every effective key, its value (secrets redacted) and where it came from.
    Show,
    /// Validate the configuration and the placement; exit non-zero on any problem.
    Check {
        /// As `serve --modules` would see it.
        #[arg(long, value_delimiter = ',', value_name = "MODULES")]
        modules: Option<Vec<String>>,
    },
}

/// How a command failed, for the exit code.
#[derive(Debug)]
pub enum CliError {
    /// Bad configuration (exit code 2).
    Config(ConfigError),
    /// A placement that cannot work (exit code 2).
    Placement(PlacementError),
    /// A command used wrongly: a bad argument value, a missing confirmation (exit code 2).
    Usage(String),
    /// Anything else (exit code 1).
    Other(anyhow::Error),
}

impl From<PlacementError> for CliError {
    fn from(e: PlacementError) -> Self {
        Self::Placement(e)
    }
}

impl From<ConfigError> for CliError {
    fn from(e: ConfigError) -> Self {
        Self::Config(e)
    }
}

impl From<anyhow::Error> for CliError {
    fn from(e: anyhow::Error) -> Self {
        Self::Other(e)
    }
}

fn load(cli_config: Option<PathBuf>, overrides: &Overrides) -> Result<Settings, ConfigError> {
    Settings::load(&ConfigSources::from_env(cli_config), overrides)
}

/// Runs the parsed command line.
///
/// # Errors
/// [`CliError`] describing what failed.
pub async fn run(cli: Cli) -> Result<(), CliError> {
    match cli.command.unwrap_or(Command::Serve {
        modules: None,
        listen: None,
    }) {
        Command::Serve { modules, listen } => {
            let settings = load(cli.config, &Overrides { listen, modules })?;
            wiring::plan(&settings)?;
            let _log = init_logs(&settings)?;
            serve(settings).await?;
        }
        Command::Migrate { action, module } => {
            let settings = load(cli.config, &Overrides::default())?;
            let _log = init_logs(&settings)?;
            migrate(&settings, action, module).await?;
        }
        Command::Events { action } => {
            let settings = load(cli.config, &Overrides::default())?;
            events(&settings, action).await?;
        }
        Command::Completions { shell } => {
            use clap::CommandFactory;
            clap_complete::generate(shell, &mut Cli::command(), "cleave", &mut std::io::stdout());
        }
        Command::Config {
            action: ConfigAction::Show,
        } => {
            let settings = load(cli.config, &Overrides::default())?;
            for (key, value, origin) in effective(&settings.figment)? {
                println!("{key} = {value}    # {origin}");
            }
        }
        Command::Config {
            action: ConfigAction::Check { modules },
        } => {
            let plan = load_plan(cli.config, modules)?;
            println!(
                "configuration is valid; this process would host: {}",
                plan.hosted().join(", ")
            );
        }
        Command::User {
            action: UserAction::Create { email, roles },
        } => {
            let roles = if roles.is_empty() {
                vec![cleave_kernel::auth::SHOPPER_ROLE.to_owned()]
            } else {
                roles
            };
            if let Some(bad) = roles.iter().find(|r| !identity::valid_role(r)) {
                return Err(CliError::Usage(format!(
                    "--role {bad:?} is not a role name: 1 to 32 of a-z, 0-9, _ and - \
                     (e.g. shopper, admin)"
                )));
            }
            let password = read_password()?;
            let identity = open_identity(cli.config).await?;
            eprintln!("creating the user (hashing the password takes a moment)...");
            let user = identity
                .create_user(&email, &password, &roles)
                .await
                .map_err(|e| match e {
                    identity_api::IdentityError::InvalidEmail { .. }
                    | identity_api::IdentityError::InvalidPassword { .. }
                    | identity_api::IdentityError::CommonPassword => {
                        CliError::Usage(format!("cannot create the user: {e}"))
                    }
                    _ => CliError::Other(anyhow::anyhow!("cannot create the user: {e}")),
                })?;
            println!(
                "created user {} ({}) with roles {}",
                user.user_id,
                user.email,
                user.roles.join(",")
            );
        }
        Command::Health { ready, timeout_ms } => {
            let settings = load(cli.config, &Overrides::default())?;
            let probe = if ready {
                crate::probe::Probe::Ready
            } else {
                crate::probe::Probe::Live
            };
            let timeout = std::time::Duration::from_millis(timeout_ms);
            match crate::probe::check(&settings, probe, timeout).await {
                Ok(line) => println!("{line}"),
                Err(why) => return Err(CliError::Other(anyhow::anyhow!(why))),
            }
        }
        Command::Deploy { target } => deploy(target)?,
        Command::Edge { proxy, listen } => {
            let settings = load(cli.config, &Overrides::default())?;
            let config = crate::proxy::config(&settings, proxy, listen).map_err(CliError::Usage)?;
            print!("{config}");
        }
        Command::Certs {
            action: CertsAction::Init { dir, hosts },
        } => {
            for path in crate::certs::init(&dir, &hosts)? {
                println!("wrote {}", path.display());
            }
        }
        Command::Certs {
            action:
                CertsAction::Issue {
                    modules: named,
                    dir,
                },
        } => {
            if let Some(unknown) = named.iter().find(|m| modules::find(m).is_none()) {
                return Err(CliError::Usage(format!(
                    "unknown module {unknown:?}; modules: {}",
                    modules::names().join(", ")
                )));
            }
            let path = crate::certs::issue(&dir, &named)?;
            println!("wrote {} (and its key)", path.display());
        }
        Command::Token {
            action: TokenAction::Issue { sub, roles, ttl },
        } => {
            if ttl == 0 || ttl > cleave_kernel::auth::MAX_ACCESS_TTL_SECS {
                return Err(CliError::Usage(format!(
                    "--ttl must be 1 to {} seconds",
                    cleave_kernel::auth::MAX_ACCESS_TTL_SECS
                )));
            }
            let identity = open_identity(cli.config).await?;
            let token = identity
                .issue_token(&sub, &roles, ttl)
                .await
                .map_err(|e| anyhow::anyhow!("cannot issue the token: {e}"))?;
            println!("{token}");
        }
        Command::Keys {
            action: KeysAction::Rotate,
        } => {
            let identity = open_identity(cli.config).await?;
            let kid = identity
                .rotate_keys()
                .await
                .map_err(|e| anyhow::anyhow!("cannot rotate the keys: {e}"))?;
            println!(
                "new signing key {kid}; tokens signed by the previous key stay valid until they expire"
            );
        }
        Command::Modules { modules } => {
            let plan = load_plan(cli.config, modules)?;
            println!(
                "{:<16} {:<40} {:<14} OWNS",
                "MODULE", "PLACEMENT", "REQUIRES"
            );
            for (spec, placement) in plan.entries() {
                let requires = if spec.requires.is_empty() {
                    "-".to_owned()
                } else {
                    spec.requires.join(",")
                };
                println!(
                    "{:<16} {:<40} {:<14} {}",
                    spec.name,
                    placement.to_string(),
                    requires,
                    spec.owns
                );
            }
        }
    }
    Ok(())
}

/// `cleave deploy compose | k8s`.
fn deploy(target: DeployTarget) -> Result<(), CliError> {
    let usage = |e: crate::deploy::DeployError| CliError::Usage(e.to_string());
    match target {
        DeployTarget::Compose { placement } => {
            let p = crate::deploy::PlacementFile::load(&placement).map_err(usage)?;
            print!("{}", crate::deploy::compose(&p, &placement));
        }
        DeployTarget::K8s { placement, out } => {
            let p = crate::deploy::PlacementFile::load(&placement).map_err(usage)?;
            for (path, content) in crate::deploy::k8s(&p, &placement) {
                let path = out.join(path);
                if let Some(dir) = path.parent() {
                    std::fs::create_dir_all(dir)
                        .with_context(|| format!("cannot create {}", dir.display()))?;
                }
                std::fs::write(&path, content)
                    .with_context(|| format!("cannot write {}", path.display()))?;
                println!("wrote {}", path.display());
            }
        }
    }
    Ok(())
}

/// The new user's password: prompted for without echo on a terminal, else the first line
/// of standard input (a pipe).
fn read_password() -> Result<identity_api::Secret, CliError> {
    use std::io::IsTerminal;
    let password = if std::io::stdin().is_terminal() {
        rpassword::prompt_password("Password: ")
            .context("cannot read the password from the terminal")?
    } else {
        let mut line = String::new();
        std::io::stdin()
            .read_line(&mut line)
            .context("cannot read the password from standard input")?;
        line.trim_end_matches(['\r', '\n']).to_owned()
    };
    if password.is_empty() {
        return Err(CliError::Usage(
            "no password given (type it at the prompt, or pipe it on standard input)".into(),
        ));
    }
    Ok(identity_api::Secret(password))
}

/// `cleave events pending | dead-letters | replay ID`.
async fn events(settings: &Settings, action: EventsAction) -> Result<(), CliError> {
    if let EventsAction::Pending = action {
        let db = wiring::connect(settings).await?;
        let pending = cleave_kernel::events::pending(&db)
            .await
            .map_err(|e| anyhow::anyhow!("cannot read the outbox: {e}"))?;
        for event in &pending {
            println!(
                "{}  {}  attempts={}  {}",
                event.id,
                event.topic,
                event.attempts,
                event.last_error.as_deref().unwrap_or("-")
            );
        }
        eprintln!("{} pending", pending.len());
        let _ = db.close().await;
        return Ok(());
    }
    let Some(bus) = wiring::nats_bus(settings).await? else {
        return Err(CliError::Usage(
            "events.bus is \"in-process\": there are no dead letters (failed events stay in \
             the outbox and are retried: see `cleave events pending`)"
                .into(),
        ));
    };
    match action {
        EventsAction::DeadLetters => {
            let letters = bus
                .dead_letters()
                .await
                .map_err(|e| anyhow::anyhow!("cannot read the dead letters: {e}"))?;
            for l in &letters {
                println!("{}  {}  {}  {}", l.event_id, l.topic, l.subscriber, l.error);
            }
            eprintln!("{} dead letters", letters.len());
        }
        EventsAction::Replay { id } => {
            let replayed = bus
                .replay(&id)
                .await
                .map_err(|e| anyhow::anyhow!("cannot replay {id}: {e}"))?;
            if replayed == 0 {
                return Err(CliError::Usage(format!(
                    "no dead letter of event {id} (see `cleave events dead-letters`)"
                )));
            }
            println!("replayed {id} to its subscribers");
        }
        EventsAction::Pending => {}
    }
    Ok(())
}

/// The migration sets `module` names (every set with tables when `None`).
fn migration_sets_of(module: Option<&str>) -> Result<Vec<&'static str>, CliError> {
    let names = modules::names();
    let all = wiring::migration_sets(&names);
    match module {
        None => Ok(all),
        Some(m) => match all.iter().find(|s| **s == m) {
            Some(set) => Ok(vec![*set]),
            None if modules::find(m).is_some() => Err(CliError::Usage(format!(
                "module {m} has no tables; modules with tables: {}",
                all.join(", ")
            ))),
            None => Err(CliError::Usage(format!(
                "unknown module {m:?}; modules with tables: {} (and {EVENTS}, the event outbox)",
                all.iter()
                    .filter(|s| **s != EVENTS)
                    .copied()
                    .collect::<Vec<_>>()
                    .join(", ")
            ))),
        },
    }
}

/// `cleave migrate [status | down]`.
async fn migrate(
    settings: &Settings,
    action: Option<MigrateAction>,
    module: Option<String>,
) -> Result<(), CliError> {
    match action {
        None => {
            let sets = migration_sets_of(module.as_deref())?;
            eprintln!("applying the migrations of {}...", sets.join(", "));
            let db = wiring::migrate(settings, &sets).await?;
            let _ = db.close().await;
            println!("migrated: {}", sets.join(", "));
        }
        Some(MigrateAction::Status { module }) => {
            let sets = migration_sets_of(module.as_deref())?;
            let db = wiring::connect(settings).await?;
            for set in sets {
                let status = match modules::find(set) {
                    Some(entry) => entry.migration_status(&db).await,
                    None => modules::events_migration_status(&db).await,
                }
                .map_err(|e| anyhow::anyhow!("cannot read the migrations of {set}: {e}"))?;
                for (name, applied) in status {
                    let state = if applied { "applied" } else { "pending" };
                    println!("{set:<16} {state:<8} {name}");
                }
            }
            let _ = db.close().await;
        }
        Some(MigrateAction::Down { module, yes }) => {
            let sets = migration_sets_of(Some(&module))?;
            if !yes {
                return Err(CliError::Usage(format!(
                    "reverting a migration of {module} may drop its data; say --yes to do it"
                )));
            }
            let db = wiring::connect(settings).await?;
            for set in sets {
                match modules::find(set) {
                    Some(entry) => entry.migrate_down_one(&db).await,
                    None => modules::events_migrate_down_one(&db).await,
                }
                .map_err(|e| anyhow::anyhow!("cannot revert the last migration of {set}: {e}"))?;
                println!("reverted the last applied migration of {set}");
            }
            let _ = db.close().await;
        }
    }
    Ok(())
}

/// The identity module over the configured database (migrated), for the admin commands.
async fn open_identity(
    cli_config: Option<PathBuf>,
) -> Result<std::sync::Arc<identity::IdentityModule>, CliError> {
    let settings = load(cli_config, &Overrides::default())?;
    let db = wiring::migrate(&settings, &wiring::migration_sets(&["identity"])).await?;
    // No relay here: what the command publishes waits in the outbox for a serving process.
    Ok(identity::IdentityModule::start(
        db,
        &settings.module::<identity::IdentityModule>(),
        identity::IdentityDeps,
        cleave_kernel::events::Relay::disabled(),
    )
    .await
    .map_err(|e| anyhow::anyhow!("identity cannot start: {e}"))?)
}

/// The placement this process would have with `--modules modules`.
fn load_plan(
    cli_config: Option<PathBuf>,
    modules: Option<Vec<String>>,
) -> Result<PlacementPlan, CliError> {
    let overrides = Overrides {
        listen: None,
        modules,
    };
    Ok(wiring::plan(&load(cli_config, &overrides)?)?)
}

fn init_logs(settings: &Settings) -> anyhow::Result<cleave_kernel::telemetry::TelemetryGuard> {
    let telemetry = &settings.app.telemetry;
    let service_name = telemetry.service_name.clone().unwrap_or_else(|| {
        let plan = wiring::plan(settings).ok();
        let hosted = plan.map(|p| p.hosted()).unwrap_or_default();
        if hosted.len() == crate::modules::names().len() {
            "cleave".to_owned()
        } else {
            format!("cleave-{}", hosted.join("-"))
        }
    });
    let traces = cleave_kernel::telemetry::TraceSettings {
        otlp_endpoint: telemetry.otlp_endpoint.clone(),
        sampling_ratio: telemetry.sampling_ratio,
        service_name,
    };
    cleave_kernel::telemetry::init(settings.app.log.format, &settings.app.log.level, &traces)
        .map_err(|e| anyhow::anyhow!(e))
}

async fn serve(settings: Settings) -> anyhow::Result<()> {
    let shop = wiring::assemble(&settings).await?;
    let (mut hosted, mut remote, mut absent) = (Vec::new(), Vec::new(), Vec::new());
    for (spec, placement) in shop.plan().entries() {
        match placement {
            Placement::Hosted => hosted.push(spec.name),
            Placement::Remote(url) => remote.push(format!(
                "{}={}",
                spec.name,
                cleave_kernel::config::redact_url_password(url.as_str())
            )),
            Placement::Absent => absent.push(spec.name),
        }
    }
    let files: Vec<String> = settings
        .figment
        .metadata()
        .filter_map(|md| match &md.source {
            Some(figment::Source::File(path)) => Some(path.display().to_string()),
            _ => None,
        })
        .collect();
    let database =
        cleave_kernel::config::redact_url_password(&settings.app.database.effective_url());
    let running = wiring::bind(&settings, shop).context("cannot start the HTTP server")?;
    let scheme = if settings.server_tls.is_some() {
        "https"
    } else {
        "http"
    };
    // One summary: what runs here, where the rest is, what it reads and writes.
    tracing::info!(
        version = crate::VERSION,
        addr = %running.addr,
        scheme,
        hosted = %hosted.join(","),
        remote = %remote.join(","),
        absent = %absent.join(","),
        database = %database,
        config_files = %files.join(","),
        "listening"
    );
    wiring::run_until_signalled(running).await
}

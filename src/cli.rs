//! The `cleave` command line: `serve` (the default), `migrate`, `config show|check`,
//! `modules`.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use cleave_kernel::config::{ConfigError, ConfigSources, effective};
use cleave_kernel::module::{Placement, PlacementError, PlacementPlan};

use crate::config::{Overrides, Settings};
use crate::wiring::{self, SPECS};

/// Cleave: the whole boutique in one binary, split into services by configuration.
#[derive(Debug, Parser)]
#[command(name = "cleave", version, about)]
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
    /// Apply database migrations (every module with tables, or one).
    Migrate {
        /// Only this module.
        #[arg(long, value_name = "MODULE")]
        module: Option<String>,
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
        Command::Migrate { module } => {
            let settings = load(cli.config, &Overrides::default())?;
            let _log = init_logs(&settings)?;
            let names: Vec<&str> = SPECS.iter().map(|s| s.name).collect();
            let all = wiring::migration_sets(&names);
            let modules: Vec<&str> = match &module {
                None => all,
                Some(m) if wiring::has_tables(m) => wiring::migration_sets(&[m.as_str()]),
                Some(m) if SPECS.iter().any(|s| s.name == m) => {
                    println!("module {m} has no tables; nothing to migrate");
                    return Ok(());
                }
                Some(m) => {
                    return Err(anyhow::anyhow!(
                        "unknown module {m:?}; modules with tables: {}",
                        all.join(", ")
                    )
                    .into());
                }
            };
            let db = wiring::migrate(&settings, &modules).await?;
            let _ = db.close().await;
            println!("migrated: {}", modules.join(", "));
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

fn init_logs(settings: &Settings) -> anyhow::Result<cleave_kernel::telemetry::LogGuard> {
    cleave_kernel::telemetry::init(settings.app.log.format, &settings.app.log.level)
        .map_err(|e| anyhow::anyhow!(e))
}

async fn serve(settings: Settings) -> anyhow::Result<()> {
    let shop = wiring::assemble(&settings).await?;
    for (spec, placement) in shop.plan.entries() {
        match placement {
            Placement::Hosted => tracing::info!(module = spec.name, "hosting module"),
            Placement::Remote(url) => {
                let url = cleave_kernel::config::redact_url_password(url.as_str());
                tracing::info!(module = spec.name, %url, "module is remote; calls and routes are forwarded");
            }
            Placement::Absent => {
                tracing::warn!(
                    module = spec.name,
                    "module is neither hosted nor reachable; its routes answer 503"
                );
            }
        }
    }
    let running = wiring::bind(&settings, shop).context("cannot start the HTTP server")?;
    tracing::info!(addr = %running.addr, "listening");
    wiring::run_until_signalled(running).await
}

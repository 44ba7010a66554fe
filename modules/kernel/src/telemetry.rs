//! Logs: JSON lines by default (one object per event, with the request id of the enclosing
//! request span), human-readable when a terminal asks. Written to stdout by a background
//! thread so a slow terminal or pipe does not stall request handling.

use std::io::IsTerminal;

use serde::{Deserialize, Serialize};
use tracing_appender::non_blocking::NonBlockingBuilder;
/// Keeps the log writer thread alive; dropping it flushes queued lines.
pub use tracing_appender::non_blocking::WorkerGuard as LogGuard;
use tracing_subscriber::EnvFilter;

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Pretty on a terminal, JSON otherwise.
    #[default]
    Auto,
    /// One JSON object per line.
    Json,
    /// Human-readable lines.
    Pretty,
}

/// Libraries whose info lines repeat what Cleave says once (each migration step, the HTTP
/// server's workers and its own "listening"): warnings only, unless the filter names them.
const QUIET: [&str; 2] = ["sea_orm_migration", "actix_server"];

/// Checks a `log.level` value: it parses as an `EnvFilter`, and a directive without `=` is a
/// level (`EnvFilter` would take `verbose` for a target name and log nothing else).
///
/// # Errors
/// What is wrong, for the configuration error.
pub fn check_filter(filter: &str) -> Result<(), String> {
    const LEVELS: [&str; 6] = ["off", "error", "warn", "info", "debug", "trace"];
    EnvFilter::try_new(filter).map_err(|e| e.to_string())?;
    for directive in filter.split(',').map(str::trim).filter(|d| !d.is_empty()) {
        if !directive.contains(['=', '[']) && !LEVELS.contains(&directive.to_lowercase().as_str()) {
            return Err(format!(
                "{directive:?} is not a level; use one of {} or target=level, e.g. info,cleave_kernel=debug",
                LEVELS.join(", ")
            ));
        }
    }
    Ok(())
}

/// Parses an `EnvFilter` directive string, quieting [`QUIET`] unless it names them.
///
/// # Errors
/// What does not parse.
pub fn parse_filter(filter: &str) -> Result<EnvFilter, String> {
    let mut parsed = EnvFilter::try_new(filter).map_err(|e| e.to_string())?;
    for target in QUIET.iter().filter(|t| !filter.contains(*t)) {
        let directive = format!("{target}=warn")
            .parse()
            .map_err(|e: tracing_subscriber::filter::ParseError| e.to_string())?;
        parsed = parsed.add_directive(directive);
    }
    Ok(parsed)
}

/// Installs the global subscriber. Keep the returned guard alive until exit: dropping it
/// flushes the lines still queued.
///
/// `filter` is an `EnvFilter` directive such as `info` or `info,cleave_kernel=debug`;
/// `RUST_LOG`, when set, wins.
///
/// # Errors
/// When the filter does not parse or a subscriber is already installed.
pub fn init(format: LogFormat, filter: &str) -> Result<LogGuard, String> {
    let filter = match std::env::var("RUST_LOG") {
        Ok(from_env) if !from_env.is_empty() => parse_filter(&from_env),
        _ => check_filter(filter).and_then(|()| parse_filter(filter)),
    }
    .map_err(|e| format!("log.level does not parse: {e}"))?;
    let pretty = match format {
        LogFormat::Json => false,
        LogFormat::Pretty => true,
        LogFormat::Auto => std::io::stdout().is_terminal(),
    };
    let (writer, guard) = NonBlockingBuilder::default()
        .lossy(false)
        .finish(std::io::stdout());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer);
    let result = if pretty {
        builder.with_target(false).try_init()
    } else {
        builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .try_init()
    };
    result.map_err(|e| e.to_string())?;
    Ok(guard)
}

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
        Ok(from_env) if !from_env.is_empty() => EnvFilter::try_new(from_env),
        _ => EnvFilter::try_new(filter),
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

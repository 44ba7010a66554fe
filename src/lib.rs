//! Cleave's composition root as a library: configuration, wiring and the command line, so that
//! tests can start the real application in process (`wiring::assemble` + `wiring::bind`).

pub mod certs;
pub mod cli;
pub mod config;
pub mod deploy;
pub mod edge;
pub mod grpc;
pub mod modules;
pub mod openapi;
pub mod probe;
pub mod proxy;
pub mod wiring;

/// The version and the git revision built from, e.g. `0.1.0 (3f2a9c1b7d0e)`.
pub const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (",
    env!("BUILT_FROM_GIT_REVISION"),
    ")"
);

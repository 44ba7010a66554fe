//! Cleave's kernel: the runtime plumbing every module shares and no module owns.
//!
//! - [`context`]: the [`context::CallContext`] (request id, deadline, principal) that travels
//!   through every local and remote call.
//! - [`error`]: the error model: stable codes, `application/problem+json`, status mapping,
//!   declared once per contract with `#[contract_error]` (`#[derive(ApiError)]` plus the
//!   failures every contract shares).
//! - [`auth`]: access tokens (claims, JWKS) and their verification.
//! - [`call`]: the call path every call of a contract operation passes, local or remote, and
//!   the operation table (`#[contract]`) it knows calls by.
//! - [`client`]: the one remote-call pipeline (reqwest + tower layers) behind every module
//!   client, down to the choice of a replica (`balance`: power of two choices, peak-EWMA).
//! - [`http`]: the server side: one middleware stack, request ids, problem responses,
//!   extractor limits, contract routes, forwarding to the process that hosts a module.
//! - [`module`]: what a module is ([`module::Contract`], [`module::Module`]), where each runs
//!   ([`module::PlacementPlan`]) and how a process is assembled from the list of modules.
//! - [`openapi`]: the error responses of every documented operation, from the error tables.
//! - [`events`]: events between modules through a transactional outbox and an event bus.
//! - [`config`]: layered configuration (figment) with errors that name the key and its source.
//! - [`db`]: database connections (SQLite by default, PostgreSQL by URL).
//! - [`kept`]: answers kept a moment (for reads that say a kept answer will do), forgotten
//!   on changes.
//! - [`health`], [`ratelimit`], [`tls`], [`telemetry`]: probes, rate limits, TLS, logs.
//!
//! The files depend on each other in one direction (`context` <- `error` <- `auth` <- `http`,
//! `call` <- `client` <- `module`); `tests/architecture.rs` fails on an import loop.

// The macros name the kernel `::cleave_kernel`, also when the kernel uses them itself.
extern crate self as cleave_kernel;

pub mod auth;
mod balance;
pub mod call;
pub mod client;
pub mod config;
pub mod context;
pub mod db;
pub mod error;
pub mod events;
pub mod grpc;
pub mod health;
pub mod http;
pub mod kept;
pub mod metrics;
pub mod module;
pub mod nats;
pub mod openapi;
pub mod operator;
pub mod ratelimit;
pub mod registry;
pub mod resilience;
pub mod telemetry;
pub mod tls;

#[cfg(feature = "test-util")]
pub mod testing;

pub use async_trait::async_trait;
pub use cleave_macros::{ApiError, contract, contract_error, module};
pub use context::CallContext;
pub use error::{ApiError, Failure, Problem, Refusal, Upstream};

/// What the macros' expansions name; not part of the API.
#[doc(hidden)]
pub mod __private {
    pub use actix_web;
    pub use serde;
    pub use serde_json;
    pub use utoipa;
}

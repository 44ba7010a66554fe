//! Cleave's kernel: the runtime plumbing every module shares and no module owns.
//!
//! - [`auth`]: access tokens (claims, JWKS) and their verification.
//! - [`module`]: what a module is ([`module::ModuleSpec`], [`module::Module`]).
//! - [`context`]: the [`context::CallContext`] (request id, deadline, principal) that travels
//!   through every local and remote call.
//! - [`error`]: the error model: stable codes, `application/problem+json`, status mapping.
//! - [`types`]: the shared value types modules refer to each other by (ids, [`types::Money`]).
//! - [`http`]: the server side: request ids, problem responses, extractor limits.
//! - [`client`]: the one remote-call pipeline (reqwest + tower layers) behind every module client.
//! - [`events`]: events between modules through a transactional outbox and an event bus.
//! - [`forward`]: a module's public routes forwarded, through that pipeline, to where it runs.
//! - [`config`]: layered configuration (figment) with errors that name the key and its source.
//! - [`db`]: database connections (SQLite by default, PostgreSQL by URL).
//! - [`telemetry`]: JSON or pretty logs with the request id on every line.

pub mod auth;
pub mod client;
pub mod config;
pub mod context;
pub mod db;
pub mod error;
pub mod events;
pub mod forward;
pub mod http;
pub mod module;
pub mod ratelimit;
pub mod telemetry;
pub mod tls;
pub mod types;

#[cfg(feature = "test-util")]
pub mod testing;

pub use async_trait::async_trait;
pub use context::CallContext;
pub use error::{ApiError, Failure, Problem};

//! The server side shared by every module's REST API: one middleware stack for every server
//! ([`app`]), the request scope (request id, deadline, access log), authentication, extractor
//! limits and errors as problem+json, contract routes ([`Routes`]) and forwarding to the
//! process that hosts a module ([`forward`]).

mod app;
mod extractors;
pub mod forward;
mod middleware;
mod routes;
mod shed;

pub use app::{ServerStack, app};
pub use extractors::{configure_extractors, configure_not_placed};
pub use middleware::{
    CallerProof, HttpLimits, authenticate, canonical_path, canonical_path_scope, handler_timeout,
    request_scope,
};
pub use routes::{Call, Reply, Routes, created, no_content, ok};
pub use shed::InFlight;

//! Cleave's composition root as a library: configuration, wiring and the command line, so that
//! tests can start the real application in process (`wiring::assemble` + `wiring::bind`).

pub mod certs;
pub mod cli;
pub mod config;
pub mod edge;
pub mod modules;
pub mod openapi;
pub mod wiring;

//! End-to-end tests of the `cleave` application: the real app started in process on port 0
//! with a fresh database, and the real binary run as OS processes.

mod api;
mod authorization;
mod browser;
mod checkout_process;
mod checkout_saga;
mod cli;
mod deploy;
mod edge;
mod events;
mod faults;
mod grpc;
mod helpers;
mod identity;
mod observability;
mod openapi;
mod placements;
mod process;
mod replicas;
mod secrets;
mod skew;
mod split;
mod storefront;
mod tls;

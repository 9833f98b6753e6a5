//! The operator console, `/metrics` and the health checks.
pub mod auth;
pub mod config;
pub mod worker;

//! push-connector: keeps a national staff directory in step with the staff lists NHS
//! organisations send, by e-mail or from their own directories.
//!
//! The pipeline: `formats` (read a file) → `validate` (clean rows or per-line reasons) →
//! reconcile → plan → guard → apply → `report`.

pub mod apply;
pub mod bench;
pub mod config;
pub mod deployment;
pub mod directory;
pub mod formats;
pub mod guard;
pub mod mail;
pub mod model;
pub mod pipeline;
pub mod plan;
pub mod reconcile;
pub mod report;
pub mod scim;
pub mod serve;
pub mod service;
pub mod sources;
pub mod store;
pub mod sync;
pub mod validate;

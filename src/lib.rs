//! push-connector: keeps a national staff directory in step with the staff lists NHS
//! organisations send, by e-mail or from their own directories.
//!
//! One flow, whatever the door: a channel (a file, an e-mail, a sync source, a SCIM write)
//! gives rows → `formats` reads them → `validate` gives clean rows or per-line reasons →
//! `reconcile` joins them to accounts → `plan` → `guard` → `apply` (journalled) → `report`.
//! `deployment` resolves the configuration once (rules, policies, backends); `pipeline`
//! drives one submission through the stages; `service` is the `run` loop over every
//! channel.

// The pure core: no I/O, no backend, no store.
pub mod formats;
pub mod guard;
pub mod model;
pub mod plan;
pub mod reconcile;
pub mod report;
pub mod validate;

// Drivers: one deployment, one pipeline, the service loop, and the channels.
pub mod apply;
pub mod deployment;
pub mod lookup;
pub mod pipeline;
pub mod service;
pub mod sync;

// Edges: configuration, state, and the systems the service talks to.
pub mod bench;
pub mod config;
pub mod console;
pub mod directory;
pub mod mail;
pub mod net;
pub mod scim;
pub mod serve;
pub mod sources;
pub mod store;

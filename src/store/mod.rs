//! The state database (`state.sqlite` in the state folder): runs and their journal, what
//! the e-mail connector has received and must send, and what each sync remembers.

pub mod mail;
pub mod runs;
pub mod sqlite;
pub mod sync;

pub use mail::MailStore;
pub use runs::{
    DoneChange, JournalOp, OpOutcomeRow, OpRecord, RunInfo, RunStatus, StateDb, StateError,
};
pub use sync::SyncStore;

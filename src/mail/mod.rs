//! The e-mail push connector: submissions arrive in a mailbox, are checked and acknowledged
//! at once, and the latest of each organisation is applied in the nightly run, with a result
//! report e-mailed back.
//!
//! Stages: `mailbox` (maildir or IMAP: raw messages in, filing out) → `verify` (is the
//! From address the sender's: our MTA's `Authentication-Results`, or DKIM and DMARC
//! checked here) → `message` (sender, attachment, authorisation; pure) → `connector`
//! (intake, nightly step, follow-up of held runs) → `compose` (templates → e-mails) →
//! `outbox` (queue → files or SMTP). `reply` reads an administrator's `CONFIRM`/`CANCEL` reply. The state database (`crate::store`: its `mail` and
//! `outbox` modules) keeps all of it durable; `schedule` says when the nightly run is due.

pub mod compose;
pub mod config;
pub mod connector;
pub mod mailbox;
pub mod message;
pub mod mime;
pub mod outbox;
pub mod reply;
pub mod schedule;
pub mod verify;

//! `/metrics` (the Prometheus text format, by `metrics-exporter-prometheus`) and the
//! readiness checks.
//!
//! In: what the service counts as it works ([`message`], [`nightly`], [`sync`], and the SCIM server's requests)
//! and, at each scrape, the totals the state database holds ([`gather`]). Out: the text a
//! Prometheus server scrapes.
//!
//! What is exported:
//! - `push_connector_messages_total{outcome, reason}`: messages taken or set aside since the
//!   process started (`reason`: a short kind, see [`crate::mail::message::Refusal::kind`]);
//! - `push_connector_submissions_stored`, `push_connector_rows_stored{verdict}`: files kept
//!   in the state database and their rows accepted or refused;
//! - `push_connector_runs{status}`, `push_connector_changes_applied{kind}`: runs by status and
//!   the rows applied runs created, updated, rejected or failed;
//! - `push_connector_guard_holds_total`: runs held for approval since the process started;
//! - `push_connector_outbox{state}`: e-mails waiting, failed, sent, dropped;
//! - `push_connector_last_applied_timestamp_seconds{organisation}`: when each organisation's
//!   last run was applied;
//! - `push_connector_sync_duration_seconds{source}` (histogram) and
//!   `push_connector_sync_entries{source}`: each sync's time and the entries it read;
//! - `push_connector_scim_requests_total{method, status}` and
//!   `push_connector_scim_request_duration_seconds{method}` (histogram), from `serve`.

use std::time::Duration;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

use crate::deployment::Deployment;
use crate::directory::Directory as _;
use crate::mail::connector::NightlySummary;
use crate::mail::mailbox::{AnyMailbox, Mailbox as _};
use crate::model::PortalId;
use crate::sync::{SyncError, Synced};

/// Seconds buckets for the durations.
const BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0,
];

/// Longest a readiness check waits for one system.
const READY_WAIT: Duration = Duration::from_secs(5);

/// The process's recorder.
#[derive(Clone)]
pub struct Metrics {
    handle: PrometheusHandle,
}

impl Metrics {
    /// Installs the process's recorder (once per process; a second call fails).
    pub fn install() -> Result<Metrics, String> {
        let handle = PrometheusBuilder::new()
            .set_buckets(BUCKETS)
            .map_err(|e| e.to_string())?
            .install_recorder()
            .map_err(|e| e.to_string())?;
        describe();
        Ok(Metrics { handle })
    }

    /// The text a scrape gets.
    pub fn render(&self) -> String {
        self.handle.run_upkeep();
        self.handle.render()
    }
}

fn describe() {
    use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
    describe_counter!(
        "push_connector_messages_total",
        "Messages read from the mailbox since the process started, by outcome and reason"
    );
    describe_gauge!(
        "push_connector_submissions_stored",
        "Files kept in the state database"
    );
    describe_gauge!(
        "push_connector_rows_stored",
        "Rows of the files kept, accepted (valid) or refused"
    );
    describe_gauge!("push_connector_runs", "Runs by status");
    describe_gauge!(
        "push_connector_changes_applied",
        "Rows of applied runs, by what was done"
    );
    describe_counter!(
        "push_connector_guard_holds_total",
        "Runs held for approval since the process started"
    );
    describe_gauge!("push_connector_outbox", "E-mails by delivery state");
    describe_gauge!(
        "push_connector_last_applied_timestamp_seconds",
        Unit::Seconds,
        "When each organisation's last run was applied (Unix time)"
    );
    describe_histogram!(
        "push_connector_sync_duration_seconds",
        Unit::Seconds,
        "How long each sync took"
    );
    describe_gauge!(
        "push_connector_sync_entries",
        "Entries the last sync of each source read"
    );
    describe_counter!(
        "push_connector_scim_requests_total",
        "SCIM requests by method and status"
    );
    describe_histogram!(
        "push_connector_scim_request_duration_seconds",
        Unit::Seconds,
        "SCIM request latency by method"
    );
}

/// Counts the runs a nightly step held (a no-op when no recorder is installed).
pub fn nightly(summary: &NightlySummary) {
    if !summary.held.is_empty() {
        metrics::counter!("push_connector_guard_holds_total").increment(summary.held.len() as u64);
    }
}

/// Records one sync: how long it took, the entries it read, and a hold.
pub fn sync(source: &str, synced: &Result<Synced, SyncError>, took: Duration) {
    metrics::histogram!("push_connector_sync_duration_seconds", "source" => source.to_owned())
        .record(took.as_secs_f64());
    if let Ok(s) = synced {
        metrics::gauge!("push_connector_sync_entries", "source" => source.to_owned())
            .set(s.read as f64);
        if s.held() {
            metrics::counter!("push_connector_guard_holds_total").increment(1);
        }
    }
}

/// Counts one message read from the mailbox.
pub fn message(outcome: &'static str, reason: &'static str) {
    metrics::counter!("push_connector_messages_total", "outcome" => outcome, "reason" => reason)
        .increment(1);
}

/// Sets the gauges the state database answers, before a scrape is rendered.
pub async fn gather(d: &Deployment<'_>) -> Result<(), crate::store::StateError> {
    let (files, valid, refused) = d.state.row_totals().await?;
    metrics::gauge!("push_connector_submissions_stored").set(files as f64);
    metrics::gauge!("push_connector_rows_stored", "verdict" => "valid").set(valid as f64);
    metrics::gauge!("push_connector_rows_stored", "verdict" => "refused").set(refused as f64);
    let (by_status, [created, updated, rejected, failed]) = d.state.run_totals().await?;
    for status in ["held", "applying", "applied", "rejected", "reverted"] {
        let n = by_status
            .iter()
            .find(|(s, _)| s == status)
            .map_or(0, |(_, n)| *n);
        metrics::gauge!("push_connector_runs", "status" => status).set(n as f64);
    }
    for (kind, n) in [
        ("created", created),
        ("updated", updated),
        ("rejected", rejected),
        ("failed", failed),
    ] {
        metrics::gauge!("push_connector_changes_applied", "kind" => kind).set(n as f64);
    }
    let by_state = d.state.outbox_totals().await?;
    for state in ["waiting", "failed", "sent", "dropped"] {
        let n = by_state
            .iter()
            .find(|(s, _)| s == state)
            .map_or(0, |(_, n)| *n);
        metrics::gauge!("push_connector_outbox", "state" => state).set(n as f64);
    }
    for (org, at) in d.state.last_applied().await? {
        if let Ok(t) = chrono::DateTime::parse_from_rfc3339(&at) {
            metrics::gauge!("push_connector_last_applied_timestamp_seconds", "organisation" => org)
                .set(t.timestamp() as f64);
        }
    }
    Ok(())
}

/// The readiness checks: the state database, the directory and the mailbox, each within
/// [`READY_WAIT`].
pub async fn ready(d: &Deployment<'_>) -> Vec<(&'static str, Result<(), String>)> {
    async fn within<F: std::future::Future<Output = Result<(), String>>>(
        f: F,
    ) -> Result<(), String> {
        tokio::time::timeout(READY_WAIT, f)
            .await
            .unwrap_or_else(|_| Err(format!("no answer within {} s", READY_WAIT.as_secs())))
    }
    let state = within(async { d.state.ping().await.map_err(|e| e.to_string()) }).await;
    let directory = within(async {
        d.directory
            .by_id(&PortalId::new_unchecked("readyz-probe"))
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    })
    .await;
    let mailbox = within(async {
        let mut mailbox = AnyMailbox::from_config(&d.config.mailbox);
        mailbox.check().await.map(|_| ()).map_err(|e| e.to_string())
    })
    .await;
    vec![
        ("state database", state),
        ("directory", directory),
        ("mailbox", mailbox),
    ]
}

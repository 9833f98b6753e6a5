//! What each console page shows, and what its forms do: read from the state database and
//! the directory, and carried out with the same operations as the CLI verbs
//! ([`pipeline::approve`], [`pipeline::reject`], [`pipeline::revert`], the outbox's retry
//! and drop). Every action is recorded in the audit trail with the operator and the reason.
//!
//! In: the deployment (on the console's worker thread) and what the operator asked. Out: a
//! JSON context for the page's template, or the outcome of an action in words.

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use crate::apply::RandomMinter;
use crate::deployment::{self, Deployment};
use crate::lookup;
use crate::pipeline;
use crate::plan::{Action, Plan};
use crate::store::{AuditEntry, RunStatus, StateError};

/// Rows a page lists at most (the rest are counted).
pub const PAGE_ROWS: usize = 500;

/// An action's outcome as the operator reads it; `Err` is a refusal (nothing done).
pub type Outcome = Result<String, String>;

fn words(e: impl std::fmt::Display) -> String {
    e.to_string()
}

/// Days since an RFC 3339 time, when it can be read.
fn days_since(at: &str, now: DateTime<Utc>) -> Option<i64> {
    DateTime::parse_from_rfc3339(at)
        .ok()
        .map(|t| (now - t.with_timezone(&Utc)).num_days())
}

/// The organisations page: each one's last file, last and next run, held runs, and
/// whether it has gone quiet.
pub async fn organisations(d: &Deployment<'_>, now: DateTime<Utc>) -> Result<Value, String> {
    let configured: Vec<String> = d
        .config
        .organisations
        .iter()
        .map(|o| o.code.clone())
        .collect();
    let rows = d
        .state
        .organisation_overview(&configured)
        .await
        .map_err(words)?;
    let next = crate::mail::schedule::Schedule::from_config(&d.config.schedule)
        .ok()
        .map(|s| s.describe(s.next_after(now)));
    let orgs: Vec<Value> = rows
        .iter()
        .map(|o| {
            let stale_days = d
                .config
                .organisation(&o.organisation)
                .and_then(|c| c.stale_after_days)
                .unwrap_or(d.config.service.stale_after_days);
            let last_seen = [
                o.last_file.as_ref().map(|f| f.received_at.as_str()),
                o.last_run.as_ref().map(|r| r.2.as_str()),
            ]
            .into_iter()
            .flatten()
            .filter_map(|t| days_since(t, now))
            .min();
            let stale = stale_days > 0 && last_seen.is_none_or(|days| days >= i64::from(stale_days));
            json!({
                "code": o.organisation,
                "last_file": o.last_file,
                "last_run": o.last_run.as_ref().map(|(id, status, at, counts)| json!({"id": id, "status": status, "at": at, "counts": counts})),
                "held": o.held,
                "waiting": o.waiting,
                "stale": stale,
                "stale_days": stale_days,
                "quiet_days": last_seen,
            })
        })
        .collect();
    Ok(json!({ "organisations": orgs, "next_nightly": next }))
}

/// The submissions page: the latest files received, and the messages set aside.
pub async fn submissions(d: &Deployment<'_>) -> Result<Value, String> {
    let files = d
        .state
        .recent_submissions(None, PAGE_ROWS as i64)
        .await
        .map_err(words)?;
    let set_aside = d
        .state
        .rejected_messages(PAGE_ROWS as i64)
        .await
        .map_err(words)?;
    Ok(json!({ "files": files, "set_aside": set_aside }))
}

/// One file: its rows' verdicts (every refusal with line, column, value and reason), read
/// again from the bytes stored, with the rules in force now.
pub async fn submission(d: &Deployment<'_>, no: i64) -> Result<Value, String> {
    let Some((row, bytes)) = d.state.submission_file(no).await.map_err(words)? else {
        return Err(format!("there is no submission {no}"));
    };
    let (refusals, valid, read_error) = match crate::formats::read(&bytes, &d.rules.limits) {
        Ok(sub) => {
            let results = crate::validate::validate(&sub, &d.rules);
            let valid = results.iter().filter(|r| r.is_valid()).count();
            let refusals: Vec<Value> = results
                .iter()
                .flat_map(|r| r.issues().iter())
                .take(PAGE_ROWS)
                .map(|i| json!({"line": i.line, "column": i.column, "value": i.value, "reason": i.message}))
                .collect();
            (refusals, valid, None)
        }
        Err(e) => (Vec::new(), 0, Some(e.to_string())),
    };
    let mails: Vec<Value> = d
        .mail
        .outbox_of_submission(no)
        .await
        .map_err(words)?
        .iter()
        .map(|m| {
            json!({"id": m.id, "kind": m.kind, "subject": m.subject, "state": m.state.as_str(),
                   "recipients": m.recipients.join(", "), "sent_at": m.sent_at,
                   "last_error": m.last_error})
        })
        .collect();
    Ok(json!({
        "file": row,
        "mails": mails,
        "refusals": refusals,
        "valid_now": valid,
        "read_error": read_error,
    }))
}

/// The runs page: every run, newest first.
pub async fn runs(d: &Deployment<'_>) -> Result<Value, String> {
    let mut runs = d.state.runs().await.map_err(words)?;
    runs.reverse();
    let held = runs.iter().filter(|r| r.status == RunStatus::Held).count();
    runs.truncate(PAGE_ROWS);
    Ok(json!({ "runs": runs, "held": held }))
}

/// One line of a run's changes table.
fn change_rows(plan: &Plan, show: &str) -> Vec<Value> {
    let mut out = Vec::new();
    for row in &plan.rows {
        match &row.action {
            Action::Update { id, changes, .. } if show == "all" || show == "updates" => {
                for c in changes {
                    out.push(json!({
                        "line": row.line, "kind": "update", "account": id.as_str(),
                        "field": c.field.name(),
                        "before": lookup::value(c.before.as_deref()),
                        "after": lookup::value(c.after.as_deref()),
                    }));
                }
            }
            Action::Create { account } if show == "all" || show == "creates" => {
                out.push(json!({
                    "line": row.line, "kind": "create",
                    "account": account.email().unwrap_or("(address given when applied)"),
                    "field": "", "before": "", "after": row.message,
                }));
            }
            Action::Rejected if show == "all" || show == "refusals" => {
                out.push(json!({
                    "line": row.line, "kind": "refused", "account": "", "field": "",
                    "before": "", "after": row.message,
                }));
            }
            _ => {}
        }
    }
    out
}

/// One run: status, counts, why it is held, its approvals, and its changes (`show`: all,
/// updates, creates or refusals).
pub async fn run(d: &Deployment<'_>, id: &str, show: &str) -> Result<Value, String> {
    let info = d.state.run(id).await.map_err(words)?;
    let approvals = d.state.approvals(id).await.map_err(words)?;
    let mut changes = Vec::new();
    let mut held_why = None;
    let mut size = 0u64;
    if info.status == RunStatus::Held {
        let plan = d.state.held_plan(id).await.map_err(words)?;
        let c = plan.counts();
        size = c.created + c.updated;
        changes = change_rows(&plan, show);
        held_why = info.note.clone();
    } else {
        for done in d.state.done_changes(id).await.map_err(words)? {
            if show == "all" || show == "updates" {
                changes.push(json!({
                    "line": done.line, "kind": "update", "account": done.account.as_str(),
                    "field": done.change.field.name(),
                    "before": lookup::value(done.change.before.as_deref()),
                    "after": lookup::value(done.change.after.as_deref()),
                }));
            }
        }
        if show == "all" || show == "creates" {
            for (account, email) in d.state.created_by(id).await.map_err(words)? {
                changes.push(json!({
                    "line": "", "kind": "create", "account": account, "field": "",
                    "before": "", "after": email.unwrap_or_default(),
                }));
            }
        }
        if show == "all" || show == "refusals" {
            // The rows refused when it was planned: kept with an e-mailed file's submission.
            if let Some(plan) = d.state.submission_plan(id).await.map_err(words)?
                && let Ok(plan) = serde_json::from_str::<Plan>(&plan)
            {
                changes.extend(change_rows(&plan, "refusals"));
            }
            for o in d.state.notable_outcomes(id).await.map_err(words)? {
                if o.state != crate::store::OpState::Done {
                    changes.push(json!({
                        "line": o.line, "kind": "failed", "account": o.account, "field": "",
                        "before": "", "after": o.message.unwrap_or_default(),
                    }));
                }
            }
        }
    }
    let total = changes.len();
    changes.truncate(PAGE_ROWS);
    let console = &d.config.console;
    let needs_two =
        console.second_approver_above > 0 && size > console.second_approver_above as u64;
    Ok(json!({
        "run": info,
        "held": info.status == RunStatus::Held,
        "revertable": info.status == RunStatus::Applied,
        "held_why": held_why,
        "requester": requester(&info),
        "approvals": approvals,
        "needs_two": needs_two,
        "changes": changes,
        "total": total,
        "show": show,
    }))
}

/// Who asked for a run, when the run says: the sender of its file, or the operator.
fn requester(info: &crate::store::RunInfo) -> Option<String> {
    info.provenance.as_ref().and_then(|p| p.sender.clone())
}

fn audit(
    operator: &str,
    action: &str,
    target: &str,
    detail: &str,
    peer: Option<&str>,
) -> AuditEntry {
    AuditEntry {
        at: Utc::now().to_rfc3339(),
        operator: operator.to_owned(),
        action: action.to_owned(),
        target: Some(target.to_owned()),
        detail: Some(detail.to_owned()),
        peer: peer.map(str::to_owned),
    }
}

/// A reason as given, or a refusal when there is none.
fn reason_given(reason: &str, what: &str) -> Result<String, String> {
    let reason = reason.trim();
    if reason.is_empty() {
        return Err(format!(
            "give a reason to {what}: it is kept in the audit trail"
        ));
    }
    Ok(reason.chars().take(1000).collect())
}

/// Approves a held run under the two-person rule: the approver must not be its requester
/// (when so configured and known), and a run over `second_approver_above` changes needs
/// two operators' approvals; the second one applies it.
pub async fn approve(
    d: &Deployment<'_>,
    run: &str,
    operator: &str,
    reason: &str,
    peer: Option<&str>,
) -> Outcome {
    let reason = reason_given(reason, "approve a run")?;
    let info = d.state.run(run).await.map_err(words)?;
    if info.status != RunStatus::Held {
        return Err(format!(
            "run {run} is {}: only a held run can be approved",
            info.status.as_str()
        ));
    }
    let console = &d.config.console;
    if console.approver_not_requester
        && requester(&info).is_some_and(|r| r.eq_ignore_ascii_case(operator))
    {
        return Err(format!(
            "run {run} was requested by {operator}: another operator must approve it"
        ));
    }
    let plan = d.state.held_plan(run).await.map_err(words)?;
    let c = plan.counts();
    let now = Utc::now();
    let needs_two = console.second_approver_above > 0
        && c.created + c.updated > console.second_approver_above as u64;
    // Recorded once per operator; an approval whose apply failed may be given again.
    let first_time = d
        .state
        .add_approval(run, operator, &reason, now)
        .await
        .map_err(words)?;
    let approvers = d.state.approvals(run).await.map_err(words)?;
    if needs_two && approvers.len() < 2 {
        if !first_time {
            return Err(format!(
                "you have already approved run {run}: another operator must approve it too"
            ));
        }
        let _ = d
            .state
            .audit(&audit(
                operator,
                "approve (first of two)",
                run,
                &reason,
                peer,
            ))
            .await;
        return Ok(format!(
            "your approval of run {run} is recorded; it changes {} rows, so a second operator \
             must approve it before it is applied",
            c.created + c.updated
        ));
    }
    let names: Vec<&str> = approvers.iter().map(|a| a.operator.as_str()).collect();
    let approved_by = names.join(" and ");
    let ctx = d.context(&|_, _| {});
    let done = pipeline::approve(&ctx, run, Some(&approved_by), &mut RandomMinter, now).await;
    match done {
        Ok((plan, applied)) => {
            let _ = d
                .state
                .note(run, &format!("approved by {approved_by}: {reason}"))
                .await;
            let _ = d
                .state
                .audit(&audit(operator, "approve", run, &reason, peer))
                .await;
            pipeline::log_run(
                &plan.run,
                plan.organisation.as_str(),
                "applied",
                &applied.counts,
            );
            Ok(format!(
                "run {run} approved by {approved_by} and applied: {}",
                applied.counts.summary()
            ))
        }
        Err(e) => {
            let _ = d
                .state
                .audit(&audit(
                    operator,
                    "approve failed",
                    run,
                    &e.to_string(),
                    peer,
                ))
                .await;
            Err(format!("run {run} could not be applied: {e}"))
        }
    }
}

/// Rejects a held run, keeping the reason with it.
pub async fn reject(
    d: &Deployment<'_>,
    run: &str,
    operator: &str,
    reason: &str,
    peer: Option<&str>,
) -> Outcome {
    let reason = reason_given(reason, "reject a run")?;
    pipeline::reject(&d.state, run, Utc::now())
        .await
        .map_err(words)?;
    let _ = d
        .state
        .note(run, &format!("rejected by {operator}: {reason}"))
        .await;
    let _ = d
        .state
        .audit(&audit(operator, "reject", run, &reason, peer))
        .await;
    Ok(format!("run {run} rejected"))
}

/// What reverting a run would restore and leave, for the preview page.
pub async fn revert_preview(d: &Deployment<'_>, run: &str) -> Result<Value, String> {
    let (rows, created) = pipeline::revert_preview(&d.state, run)
        .await
        .map_err(words)?;
    let restore: Vec<Value> = rows
        .rows
        .iter()
        .flat_map(|r| match &r.action {
            Action::Update { id, changes, .. } => changes
                .iter()
                .map(|c| {
                    json!({
                        "line": r.line, "account": id.as_str(), "field": c.field.name(),
                        "now": lookup::value(c.before.as_deref()),
                        "restored": lookup::value(c.after.as_deref()),
                    })
                })
                .collect::<Vec<_>>(),
            _ => Vec::new(),
        })
        .take(PAGE_ROWS)
        .collect();
    Ok(json!({
        "run": run,
        "restore": restore,
        "left": rows.refused,
        "created": created.iter().map(|(id, e)| json!({"id": id, "email": e})).collect::<Vec<_>>(),
    }))
}

/// Reverts an applied run (as `revert` does), recording who asked and why.
pub async fn revert(
    d: &Deployment<'_>,
    run: &str,
    operator: &str,
    reason: &str,
    peer: Option<&str>,
) -> Outcome {
    let reason = reason_given(reason, "revert a run")?;
    let now = Utc::now();
    let revert_run = deployment::run_id(now);
    let ctx = d.context(&|_, _| {});
    match pipeline::revert(
        &ctx,
        run,
        &revert_run,
        Some(operator),
        &mut RandomMinter,
        now,
    )
    .await
    {
        Ok(r) => {
            let _ = d
                .state
                .audit(&audit(operator, "revert", run, &reason, peer))
                .await;
            let mut text = format!(
                "run {run} reverted by run {revert_run}: {} accounts restored",
                r.applied.counts.updated
            );
            if !r.refused.is_empty() {
                text.push_str(&format!("; left as they are: {}", r.refused.join("; ")));
            }
            Ok(text)
        }
        Err(e) => Err(format!("run {run} could not be reverted: {e}")),
    }
}

/// The account history page: the account `key` names and every change to it.
pub async fn account(
    d: &Deployment<'_>,
    key: &str,
    organisation: Option<&str>,
) -> Result<Value, String> {
    let (account, by) = lookup::find_account(d, key, organisation)
        .await
        .map_err(words)?;
    let history = d.state.history(account.id.as_str()).await.map_err(words)?;
    let changes: Vec<Value> = history
        .iter()
        .rev()
        .take(PAGE_ROWS)
        .map(|e| {
            json!({
                "at": lookup::when(&e.at),
                "run": e.run,
                "what": lookup::what(&e.change),
                "whence": lookup::whence(e),
                "channel": e.provenance.as_ref().map(|p| p.channel.as_str()),
            })
        })
        .collect();
    Ok(json!({
        "account": {
            "id": account.id.as_str(),
            "email": account.email(),
            "external_sync_id": account.external_sync_id(),
            "organisation": account.organisation(),
            "matched_by": by.as_str(),
        },
        "total": history.len(),
        "changes": changes,
    }))
}

/// The outbox page: waiting and failed e-mails (and with `all`, sent and dropped ones).
pub async fn outbox(d: &Deployment<'_>, all: bool) -> Result<Value, String> {
    let mut mails = d.mail.outbox(all).await.map_err(words)?;
    mails.truncate(PAGE_ROWS);
    let rows: Vec<Value> = mails
        .iter()
        .map(|m| {
            json!({
                "id": m.id, "kind": m.kind, "organisation": m.organisation,
                "recipients": m.recipients.join(", "), "subject": m.subject,
                "state": m.state.as_str(), "attempts": m.attempts,
                "created_at": m.created_at, "next_attempt_at": m.next_attempt_at,
                "last_error": m.last_error, "closed_reason": m.closed_reason,
                "open": matches!(m.state.as_str(), "waiting" | "failed"),
            })
        })
        .collect();
    Ok(json!({ "mails": rows, "all": all }))
}

/// Puts an e-mail back in the queue, due now.
pub async fn retry_mail(
    d: &Deployment<'_>,
    id: i64,
    operator: &str,
    peer: Option<&str>,
) -> Outcome {
    if d.mail.retry(id, Utc::now()).await.map_err(words)? {
        let _ = d
            .state
            .audit(&audit(operator, "retry", &format!("e-mail {id}"), "", peer))
            .await;
        Ok(format!(
            "e-mail {id} is queued again; the service sends it on its next pass"
        ))
    } else {
        Err(format!(
            "e-mail {id} is not waiting or failed: nothing to retry"
        ))
    }
}

/// Drops an e-mail for good, with the reason.
pub async fn drop_mail(
    d: &Deployment<'_>,
    id: i64,
    operator: &str,
    reason: &str,
    peer: Option<&str>,
) -> Outcome {
    let reason = reason_given(reason, "drop an e-mail")?;
    if d.mail
        .drop_mail(id, &format!("{reason} (by {operator})"))
        .await
        .map_err(words)?
    {
        let _ = d
            .state
            .audit(&audit(
                operator,
                "drop",
                &format!("e-mail {id}"),
                &reason,
                peer,
            ))
            .await;
        Ok(format!("e-mail {id} dropped"))
    } else {
        Err(format!(
            "e-mail {id} is not waiting or failed: nothing to drop"
        ))
    }
}

/// The sync sources page: each source's schedule, cursor and last runs.
pub async fn sources(d: &Deployment<'_>, now: DateTime<Utc>) -> Result<Value, String> {
    let mut out = Vec::new();
    for s in &d.config.sources {
        let cursor = d.sync.cursor(&s.name).await.map_err(words)?;
        let last = d.sync.last_started(&s.name).await.map_err(words)?;
        let state = d.state.source_state(&s.name).await.map_err(words)?;
        let next = crate::sources::schedule::SourceSchedule::from_config(s)
            .ok()
            .and_then(|sch| sch.next_after(now).map(|t| sch.describe(t)));
        let runs: Vec<Value> = d
            .state
            .runs()
            .await
            .map_err(words)?
            .into_iter()
            .rev()
            .filter(|r| r.source.as_deref() == Some(&format!("sync {}", s.name)))
            .take(1)
            .map(|r| json!({"id": r.id, "status": r.status.as_str(), "counts": r.counts, "note": r.note}))
            .collect();
        out.push(json!({
            "name": s.name,
            "kind": if s.ldap.is_some() { "Active Directory (LDAP)" } else { "SQL table" },
            "organisations": s.organisations.join(", "),
            "cursor": cursor.map(|c| c.0),
            "last_started": last.map(|t| t.to_rfc3339()),
            "last_finished": state.last_finished,
            "unfinished": state.last_started.is_some() && state.last_finished < state.last_started,
            "error": state.last_error,
            "error_at": state.last_error_at,
            "awaiting_retry": state.awaiting_retry,
            "next": next,
            "last_run": runs.into_iter().next(),
        }));
    }
    Ok(json!({ "sources": out }))
}

/// The audit page: the latest operator actions.
pub async fn audit_trail(d: &Deployment<'_>) -> Result<Value, String> {
    let entries = d.state.audit_trail(PAGE_ROWS as i64).await.map_err(words)?;
    Ok(json!({ "entries": entries }))
}

/// Records a sign-in (or a refused one) in the audit trail.
pub async fn record(
    d: &Deployment<'_>,
    operator: &str,
    action: &str,
    peer: Option<&str>,
) -> Result<(), StateError> {
    d.state
        .audit(&AuditEntry {
            at: Utc::now().to_rfc3339(),
            operator: operator.to_owned(),
            action: action.to_owned(),
            target: None,
            detail: None,
            peer: peer.map(str::to_owned),
        })
        .await
}

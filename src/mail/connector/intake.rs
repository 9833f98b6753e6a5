//! Intake: each message read, checked, stored with its reply in one transaction, then filed.
//!
//! One message at a time: a message that cannot be handled (its reply cannot be built, its
//! file kills the process) never stops the pass. Each attempt is counted before it starts;
//! after `[mail] max_attempts` the message is filed to Rejected, unanswered, with the last
//! error. Only the state database or the mailbox failing stops a pass.

use super::*;
use crate::mail::mailbox::Listed;

impl<'a, D: Directory> Connector<'a, D> {
    /// Reads every message in the inbox once.
    /// `minter` gives the codes of acknowledgements, and the IDs of accounts a held run
    /// confirmed by reply creates.
    pub async fn intake<M: Mailbox>(
        &self,
        mailbox: &mut M,
        minter: &mut dyn Minter,
        now: DateTime<Utc>,
    ) -> Result<IntakeSummary, ConnectorError> {
        let mut summary = IntakeSummary::default();
        for listed in mailbox.list().await? {
            self.take_listed(mailbox, &listed, minter, now, &mut summary)
                .await?;
        }
        Ok(summary)
    }

    async fn take_listed<M: Mailbox>(
        &self,
        mailbox: &mut M,
        listed: &Listed,
        minter: &mut dyn Minter,
        now: DateTime<Utc>,
        summary: &mut IntakeSummary,
    ) -> Result<(), ConnectorError> {
        let limit = self.max_message_bytes();
        if listed.size > limit {
            let reason = format!(
                "the message is {} bytes, over the limit of {limit} bytes; it was not read",
                listed.size
            );
            return self
                .set_aside(mailbox, &listed.key, None, reason, now, summary)
                .await;
        }
        let Some(raw) = mailbox.read(&listed.key).await? else {
            return Ok(());
        };
        let fetched = Fetched {
            key: listed.key.clone(),
            raw,
        };
        match self.take(mailbox, &fetched, minter, now, summary).await {
            Ok(()) => Ok(()),
            Err(e) if e.stops_intake() => Err(e),
            Err(e) => {
                self.store
                    .attempt_failed(&fetched.key, &e.to_string())
                    .await?;
                summary.failed += 1;
                tracing::error!(key = %fetched.key, error = %e,
                    "message could not be handled; it will be tried again");
                Ok(())
            }
        }
    }

    pub(super) fn max_message_bytes(&self) -> u64 {
        self.config.mail.max_message_bytes.unwrap_or_else(|| {
            let file = u64::try_from(self.config.service.max_file_bytes).unwrap_or(u64::MAX);
            file.saturating_mul(2).saturating_add(1 << 20)
        })
    }

    /// Files a message to Rejected with a reason and no answer, keeping its record.
    async fn set_aside<M: Mailbox>(
        &self,
        mailbox: &mut M,
        key: &str,
        raw: Option<&[u8]>,
        reason: String,
        now: DateTime<Utc>,
        summary: &mut IntakeSummary,
    ) -> Result<(), ConnectorError> {
        let msg = raw.map(crate::mail::mime::parse);
        let content_key = msg
            .as_ref()
            .map(|m| m.content_key.clone())
            .unwrap_or_default();
        let message_id = msg
            .as_ref()
            .map(|m| m.message_id.clone())
            .unwrap_or_else(|| format!("{key}@push-connector"));
        self.store
            .receive(
                &NewMessage {
                    mailbox_key: key,
                    message_id: &message_id,
                    content_key: &content_key,
                    sender: msg.as_ref().and_then(|m| m.from.as_deref()),
                    subject: msg.as_ref().map_or("", |m| m.subject.as_str()),
                    sent_date: msg.as_ref().and_then(|m| m.date.as_deref()),
                    raw: raw.unwrap_or_default(),
                    folder: Folder::Rejected,
                    reason: Some(reason.clone()),
                },
                None,
                &[],
                now,
            )
            .await?;
        file(mailbox, self.store, key, Folder::Rejected).await?;
        summary.rejected += 1;
        crate::console::metrics::message("rejected", "unhandled");
        tracing::warn!(key, reason = %reason, replied = false, "message set aside");
        Ok(())
    }

    pub(super) async fn take<M: Mailbox>(
        &self,
        mailbox: &mut M,
        f: &Fetched,
        minter: &mut dyn Minter,
        now: DateTime<Utc>,
        summary: &mut IntakeSummary,
    ) -> Result<(), ConnectorError> {
        let msg = crate::mail::mime::parse(&f.raw);
        if let Some(folder) = self
            .store
            .known(&f.key, &msg.message_id, &msg.content_key)
            .await?
        {
            file(mailbox, self.store, &f.key, folder).await?;
            summary.refiled += 1;
            tracing::info!(key = %f.key, message_id = %msg.message_id, folder = folder.as_str(),
                "message already stored; filed");
            return Ok(());
        }
        let attempts = self.store.attempt(&f.key, now).await?;
        if attempts > i64::from(self.config.mail.max_attempts.max(1)) {
            let last = self.store.last_attempt_error(&f.key).await?;
            let reason = format!(
                "the message could not be handled in {} attempts (last: {})",
                attempts - 1,
                last.as_deref()
                    .unwrap_or("the service stopped while handling it")
            );
            return self
                .set_aside(mailbox, &f.key, Some(&f.raw), reason, now, summary)
                .await;
        }
        // After the count: a message whose check kills the process is set aside in time.
        let verdict = self.verifier.verify(&f.raw, msg.from.as_deref()).await;
        if let Verdict::Unavailable(why) = &verdict {
            // Not decided now (DNS did not answer): left in the mailbox for the next pass,
            // and the attempt is given back, so an outage does not use the message's up.
            self.store.attempt_undone(&f.key, why).await?;
            summary.deferred += 1;
            tracing::warn!(key = %f.key, message_id = %msg.message_id, reason = %why,
                "sender verification unavailable; the message waits for the next pass");
            return Ok(());
        }
        // A reply with a command and no file decides a held run or a waiting file.
        if msg.files.is_empty()
            && let Some(cmd) = crate::mail::reply::command(&msg.subject, &msg.written)
        {
            return self
                .take_command(mailbox, f, &msg, &verdict, &cmd, minter, now, summary)
                .await;
        }
        let new_message = |folder, reason| stored(f, &msg, folder, reason);
        match self.decide(&msg, &verdict) {
            Ok(a) if a.refused.len() < a.rows => {
                let valid = a.rows - a.refused.len();
                let replaces = self
                    .store
                    .submissions(Some(a.organisation.as_str()), SubmissionStatus::Pending)
                    .await?
                    .pop();
                let preview = self.preview(&a, now).await;
                let (code, expires) = self.new_code(minter, now);
                let ack = self
                    .acknowledgement(
                        &msg,
                        &a,
                        Ack::Accepted(replaces.as_ref()),
                        &preview,
                        Some((&code, expires)),
                        now,
                    )
                    .await?;
                let sub = NewSubmission {
                    organisation: a.organisation.as_str(),
                    sender: &a.sender,
                    file_name: &a.file.name,
                    file: &a.file.bytes,
                    valid_rows: valid as u64,
                    refused_rows: a.refused.len() as u64,
                };
                let new_code = NewCode {
                    code: &code,
                    organisation: a.organisation.as_str(),
                    purpose: CodePurpose::WaitingFile,
                    expires_at: expires,
                };
                self.store
                    .receive_issuing(
                        &new_message(Folder::Processed, None),
                        Some(&sub),
                        &[ack],
                        Some(&new_code),
                        now,
                    )
                    .await?;
                file(mailbox, self.store, &f.key, Folder::Processed).await?;
                summary.accepted += 1;
                crate::console::metrics::message("accepted", "file");
                tracing::info!(
                    message_id = %msg.message_id,
                    sender = %a.sender,
                    verified = %verdict,
                    organisation = %a.organisation,
                    file = %a.file.name,
                    forwarded = a.file.forwarded.is_some(),
                    rows = a.rows,
                    valid,
                    refused = a.refused.len(),
                    "submission received and acknowledged"
                );
            }
            Ok(a) => {
                // Nothing in the file can be applied: it is answered, and replaces nothing.
                let earlier = self
                    .store
                    .submissions(Some(a.organisation.as_str()), SubmissionStatus::Pending)
                    .await?
                    .pop();
                let ack = self
                    .acknowledgement(
                        &msg,
                        &a,
                        Ack::NothingApplies(earlier.as_ref()),
                        &Preview::default(),
                        None,
                        now,
                    )
                    .await?;
                let reason = "no row of the file can be applied".to_owned();
                self.store
                    .receive(
                        &new_message(Folder::Processed, Some(reason)),
                        None,
                        &[ack],
                        now,
                    )
                    .await?;
                file(mailbox, self.store, &f.key, Folder::Processed).await?;
                summary.accepted += 1;
                crate::console::metrics::message("accepted", "nothing-applies");
                tracing::warn!(
                    message_id = %msg.message_id,
                    sender = %a.sender,
                    organisation = %a.organisation,
                    file = %a.file.name,
                    rows = a.rows,
                    "submission received with no row that can be applied; nothing stored to run"
                );
            }
            Err(refusal) => {
                let replies = self.rejections(&msg, &refusal, now).await?;
                self.store
                    .receive(
                        &new_message(Folder::Rejected, Some(refusal.to_string())),
                        None,
                        &replies,
                        now,
                    )
                    .await?;
                file(mailbox, self.store, &f.key, Folder::Rejected).await?;
                summary.rejected += 1;
                crate::console::metrics::message("rejected", refusal.kind());
                let level_is_automatic = matches!(refusal, Refusal::Automatic(_));
                tracing::warn!(
                    message_id = %msg.message_id,
                    sender = msg.from.as_deref().unwrap_or("-"),
                    reason = %refusal,
                    automatic = level_is_automatic,
                    replied = !replies.is_empty(),
                    "message rejected"
                );
            }
        }
        Ok(())
    }

    /// The answer to a refused message, if it gets one. Never to an unverified, unusable or
    /// automatic sender, nor to ourselves; to an address that is no organisation's
    /// administrator at most one a day (a forged From would otherwise make us send mail to
    /// an innocent party), and then without quoting anything of the message.
    async fn rejections(
        &self,
        msg: &Inbound,
        refusal: &Refusal,
        now: DateTime<Utc>,
    ) -> Result<Vec<QueuedMail>, ConnectorError> {
        let Some(to) = msg.from.as_deref() else {
            return Ok(Vec::new());
        };
        let own = to.eq_ignore_ascii_case(&self.composer.from_address());
        if !refusal.may_reply() || own {
            return Ok(Vec::new());
        }
        let administrator = self.config.organisations.iter().any(|o| {
            o.administrators
                .iter()
                .any(|a| a.trim().eq_ignore_ascii_case(to))
        });
        if !administrator && !self.store.claim_reply(to, now).await? {
            tracing::info!(
                to,
                "a rejection already went to this address today; none sent"
            );
            return Ok(Vec::new());
        }
        Ok(vec![self.rejection(
            msg,
            to,
            refusal,
            administrator,
            now,
        )?])
    }

    /// Checks a message: sender, file, organisation; validates the file.
    pub(super) fn decide<'m>(
        &self,
        msg: &'m Inbound,
        verdict: &Verdict,
    ) -> Result<Accepted<'m>, Refusal> {
        let sender = message::authorise(self.config, msg, verdict)?;
        let file = message::submission_file(msg, self.config.service.max_file_bytes)?;
        let submission =
            formats::read(&file.bytes, &self.rules.limits).map_err(|e| Refusal::BadFile {
                name: file.name.clone(),
                reason: e.to_string(),
            })?;
        let results = validate::validate(&submission, self.rules);
        let named: Vec<String> = results
            .iter()
            .filter_map(|r| match &r.outcome {
                RowOutcome::Valid(p) => Some(p.organisation().to_owned()),
                RowOutcome::Refused(_) => None,
            })
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let organisation =
            message::choose_organisation(self.config, &sender, &named, &msg.subject)?;
        let refused = refused_rows(&results, &organisation);
        Ok(Accepted {
            sender: sender.address,
            organisation,
            file,
            rows: results.len(),
            submission,
            results,
            refused,
        })
    }

    /// The nightly run's verdict on the accepted rows against the directory as it is now (a
    /// dry run: nothing changes, no lock is taken): the rows it would refuse and why it
    /// would be held. A directory that cannot be asked now leaves the preview out; the
    /// file is still accepted.
    pub(super) async fn preview(&self, a: &Accepted<'_>, now: DateTime<Utc>) -> Preview {
        let request = pipeline::Request {
            results: &a.results,
            policy: crate::deployment::policy(self.config, &a.organisation),
            limits: crate::deployment::guard_limits(self.config, &a.organisation),
            run: "preview".to_owned(),
            source: crate::model::Provenance::email(&a.sender, &a.file.name),
            dry_run: true,
            guarded: true,
            supersede: None,
            record_idle: false,
        };
        let progress = |_: u64, _: u64| {};
        let ctx = self.context(&progress);
        match pipeline::submit(&ctx, &request, &mut apply::RandomMinter, now).await {
            Ok(submitted) => {
                let validation: BTreeSet<u64> = a.refused.iter().map(|r| r.line).collect();
                let refused = submitted
                    .plan
                    .rows
                    .iter()
                    .filter(|r| {
                        r.result() == RowResultKind::Rejected && !validation.contains(&r.line)
                    })
                    .map(|r| RowReport {
                        line: r.line,
                        result: RowResultKind::Rejected,
                        message: r.message.clone(),
                    })
                    .collect();
                Preview {
                    refused,
                    held: submitted.held,
                    swapped: submitted.refused,
                }
            }
            Err(e) => {
                tracing::warn!(organisation = %a.organisation, error = %e,
                    "the directory could not be asked for a preview; acknowledged without it");
                Preview::default()
            }
        }
    }

    /// The acknowledgement, naming the organisation's pending file: the one this file
    /// replaces, or (when nothing in this file can be applied) the one that stays.
    pub(super) async fn acknowledgement(
        &self,
        msg: &Inbound,
        a: &Accepted<'_>,
        ack: Ack<'_>,
        preview: &Preview,
        code: Option<(&str, DateTime<Utc>)>,
        now: DateTime<Utc>,
    ) -> Result<QueuedMail, ConnectorError> {
        let refused_file = format!("refused-lines-{}.csv", stem(&a.file.name));
        let budget = self.config.mail.max_reply_bytes;
        let mut all_refused: Vec<RowReport> = a.refused.clone();
        all_refused.extend(preview.refused.iter().cloned());
        all_refused.sort_by_key(|r| r.line);
        let (attachment, attached) = if all_refused.is_empty() {
            (None, 0)
        } else {
            let (csv, attached) = report::write_report_within(
                &a.submission,
                &all_refused,
                ReportRows::Reported,
                budget / 2,
            )?;
            (
                (attached > 0).then(|| (refused_file.clone(), csv)),
                attached,
            )
        };
        let org = a.organisation.to_string();
        let mistakes: Vec<_> = report::mistakes::gather(&all_refused)
            .iter()
            .map(|m| m.shown())
            .collect();
        // A run refused whole says so once (`swapped`), not on every line.
        let listed: Vec<RowReport> = all_refused
            .iter()
            .filter(|r| !r.message.starts_with(crate::reconcile::swapped::ROW_PREFIX))
            .cloned()
            .collect();
        let lines = body_lines(&listed);
        let (nothing_applies, pending) = match ack {
            Ack::Accepted(p) => (false, p),
            Ack::NothingApplies(p) => (true, p),
        };
        let duplicates: Vec<RowReport> = preview
            .refused
            .iter()
            .filter(|r| r.message.starts_with(crate::reconcile::LIKELY_DUPLICATE))
            .cloned()
            .collect();
        let swapped = preview.swapped.as_deref();
        let earlier = pending.map(|s| shorten(&s.file_name, 100));
        let earlier_at = pending.map(|s| self.local(parse_time(&s.received_at)));
        Ok(self.composer.compose(
            &Reply {
                kind: "acknowledgement",
                to: vec![a.sender.clone()],
                subject: format!(
                    "Received: staff list for {org} ({})",
                    shorten(&a.file.name, 100)
                ),
                context: json!({
                    "file_name": shorten(&a.file.name, 100),
                    "forwarded": a.file.forwarded.as_deref().map(|s| shorten(s, 200)),
                    "organisation": org,
                    "organisation_name": self.organisation_name(&org),
                    "received_at": self.local(now),
                    "rows": a.rows,
                    "valid": a.rows - all_refused.len(),
                    "refused": all_refused.len(),
                    "refused_by_directory": preview.refused.len(),
                    "would_hold": preview.held,
                    "mistakes": mistakes,
                    "nothing_applies": nothing_applies,
                    "earlier_file": earlier,
                    "earlier_at": earlier_at,
                    "refused_lines": lines,
                    "more_refused": listed.len().saturating_sub(LINES_IN_BODY),
                    "refused_file": refused_file,
                    "attached_refused": attached,
                    "swapped": swapped.map(|r| shorten(r, 2000)),
                    "duplicate_lines": duplicate_lines(&duplicates),
                    "more_duplicates": duplicates.len().saturating_sub(LINES_IN_BODY),
                    "next_run": self.schedule.describe(self.schedule.next_after(now)),
                    "cancel_code": code.map(|(c, _)| c),
                    "code_expires": code.map(|(_, t)| self.local(t)),
                }),
                attachment,
                in_reply_to: Some(msg.message_id.clone()),
                organisation: Some(org),
            },
            now,
        )?)
    }

    pub(super) fn rejection(
        &self,
        msg: &Inbound,
        to: &str,
        refusal: &Refusal,
        administrator: bool,
        now: DateTime<Utc>,
    ) -> Result<QueuedMail, ConnectorError> {
        let hint = match refusal {
            Refusal::NotAuthorised { .. } => Some(
                "Files are accepted only from the connector administrators each organisation \
                 has registered. Ask your organisation's registered administrator to send it, or \
                 to have you added.",
            ),
            Refusal::BadFile { .. } => Some(
                "The file must have a header row with the new-format or old-format (NHSmail 1) \
                 columns; see the connector's format guide.",
            ),
            _ => None,
        };
        // To anyone but an administrator, nothing of the message is quoted back.
        let subject = if administrator {
            self.redact_keys(&shorten(&msg.subject, 200))
        } else {
            String::new()
        };
        Ok(self.composer.compose(
            &Reply {
                kind: "rejection",
                to: vec![to.to_owned()],
                subject: if subject.is_empty() {
                    "Not accepted: your message to the staff directory connector".to_owned()
                } else {
                    format!("Not accepted: {subject}")
                },
                context: json!({
                    "subject": subject,
                    "received_at": self.local(now),
                    "reason": shorten(&refusal.to_string(), 2000),
                    "hint": hint,
                }),
                attachment: None,
                in_reply_to: Some(msg.message_id.clone()),
                organisation: None,
            },
            now,
        )?)
    }

    /// The text with every organisation's connector key blanked out.
    fn redact_keys(&self, text: &str) -> String {
        use secrecy::ExposeSecret;
        let mut out = text.to_owned();
        for key in self
            .config
            .organisations
            .iter()
            .filter_map(|o| o.connector_key.as_ref())
        {
            let key = key.0.expose_secret();
            if !key.is_empty() {
                out = out.replace(key, "[connector key]");
            }
        }
        out
    }
}

/// The refused lines an e-mail's body lists: the first [`LINES_IN_BODY`], each message
/// shortened (a cell of megabytes is not quoted whole).
pub(super) fn body_lines(refused: &[RowReport]) -> Vec<serde_json::Value> {
    refused
        .iter()
        .take(LINES_IN_BODY)
        .map(|r| json!({"line": r.line, "message": shorten(&r.message, 300)}))
        .collect()
}

/// The likely duplicates of a plan as the e-mails list them under their heading: line and
/// the accounts named (`p10@nhs.net (ID P10)`).
pub(super) fn duplicate_lines(duplicates: &[RowReport]) -> Vec<serde_json::Value> {
    duplicates
        .iter()
        .take(LINES_IN_BODY)
        .map(|r| json!({"line": r.line, "account": likely_account(&r.message)}))
        .collect()
}

/// The accounts a likely-duplicate refusal names.
fn likely_account(message: &str) -> String {
    let named = message
        .strip_prefix(crate::reconcile::LIKELY_DUPLICATE)
        .unwrap_or(message);
    let named = named
        .split_once(", an account of the same name")
        .or_else(|| named.split_once(", accounts of the same name"))
        .map_or(named, |(who, _)| who);
    shorten(named, 300)
}

/// The record of a message read and parsed, filed to `folder` (with `reason`, when refused).
pub(super) fn stored<'m>(
    f: &'m Fetched,
    msg: &'m Inbound,
    folder: Folder,
    reason: Option<String>,
) -> NewMessage<'m> {
    NewMessage {
        mailbox_key: &f.key,
        message_id: &msg.message_id,
        content_key: &msg.content_key,
        sender: msg.from.as_deref(),
        subject: &msg.subject,
        sent_date: msg.date.as_deref(),
        raw: &f.raw,
        folder,
        reason,
    }
}

/// At most `max` characters, with `…` when cut.
pub(super) fn shorten(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        None => text.to_owned(),
        Some((i, _)) => format!("{}…", &text[..i]),
    }
}

/// What the directory as it is now says of an accepted file (see `Connector::preview`).
#[derive(Debug, Default)]
pub(super) struct Preview {
    /// Rows valid in themselves that the nightly run would refuse.
    pub refused: Vec<RowReport>,
    /// Why the nightly run would be held.
    pub held: Vec<String>,
    /// Why the nightly run would refuse every row, said once (its columns look swapped).
    pub swapped: Option<String>,
}

/// Which acknowledgement, with the organisation's latest pending file, if any.
pub(super) enum Ack<'s> {
    /// The file will be run; it replaces the pending one.
    Accepted(Option<&'s StoredSubmission>),
    /// Nothing in the file can be applied; the pending one stays.
    NothingApplies(Option<&'s StoredSubmission>),
}

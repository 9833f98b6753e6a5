//! Intake: each message read, checked, stored with its reply in one transaction, then filed.

use super::*;

impl<'a, D: Directory> Connector<'a, D> {
    /// Reads every message in the inbox once.
    pub async fn intake<M: Mailbox>(
        &self,
        mailbox: &mut M,
        now: DateTime<Utc>,
    ) -> Result<IntakeSummary, ConnectorError> {
        let mut summary = IntakeSummary::default();
        for fetched in mailbox.fetch().await? {
            self.take(mailbox, fetched, now, &mut summary).await?;
        }
        Ok(summary)
    }

    pub(super) async fn take<M: Mailbox>(
        &self,
        mailbox: &mut M,
        f: Fetched,
        now: DateTime<Utc>,
        summary: &mut IntakeSummary,
    ) -> Result<(), ConnectorError> {
        let msg = message::parse(&f.raw);
        if let Some(folder) = self.store.known(&f.key, &msg.message_id).await? {
            file(mailbox, self.store, &f.key, folder).await?;
            summary.refiled += 1;
            tracing::info!(key = %f.key, message_id = %msg.message_id, folder = folder.as_str(),
                "message already stored; filed");
            return Ok(());
        }
        let sender = msg.from.clone();
        let new_message = |folder, reason| NewMessage {
            mailbox_key: &f.key,
            message_id: &msg.message_id,
            sender: msg.from.as_deref(),
            subject: &msg.subject,
            sent_date: msg.date.as_deref(),
            raw: &f.raw,
            folder,
            reason,
        };
        match self.decide(&msg) {
            Ok(a) => {
                let valid = a.rows - a.refused.len();
                let ack = self.acknowledgement(&msg, &a, now)?;
                let sub = NewSubmission {
                    organisation: a.organisation.as_str(),
                    sender: &a.sender,
                    file_name: &a.file.name,
                    file: &a.file.bytes,
                    valid_rows: valid as u64,
                    refused_rows: a.refused.len() as u64,
                };
                self.store
                    .receive(
                        &new_message(Folder::Processed, None),
                        Some(&sub),
                        &[ack],
                        now,
                    )
                    .await?;
                file(mailbox, self.store, &f.key, Folder::Processed).await?;
                summary.accepted += 1;
                tracing::info!(
                    message_id = %msg.message_id,
                    sender = %a.sender,
                    organisation = %a.organisation,
                    file = %a.file.name,
                    rows = a.rows,
                    valid,
                    refused = a.refused.len(),
                    "submission received and acknowledged"
                );
            }
            Err(refusal) => {
                let own = sender
                    .as_deref()
                    .is_some_and(|s| s.eq_ignore_ascii_case(&self.composer.from_address()));
                let replies = match (&sender, refusal.may_reply() && !own) {
                    (Some(to), true) => vec![self.rejection(&msg, to, &refusal, now)?],
                    _ => Vec::new(),
                };
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
                tracing::warn!(
                    message_id = %msg.message_id,
                    sender = sender.as_deref().unwrap_or("-"),
                    reason = %refusal,
                    replied = !replies.is_empty(),
                    "message rejected"
                );
            }
        }
        Ok(())
    }

    /// Checks a message: sender, file, organisation; validates the file.
    pub(super) fn decide<'m>(&self, msg: &'m Inbound) -> Result<Accepted<'m>, Refusal> {
        let sender = message::authorise(self.config, msg)?;
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
                RowOutcome::Valid(p) => Some(p.organisation.to_string()),
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
            refused,
        })
    }

    pub(super) fn acknowledgement(
        &self,
        msg: &Inbound,
        a: &Accepted<'_>,
        now: DateTime<Utc>,
    ) -> Result<QueuedMail, ConnectorError> {
        let refused_file = format!("refused-lines-{}.csv", stem(&a.file.name));
        let attachment = if a.refused.is_empty() {
            None
        } else {
            let mut csv = Vec::new();
            report::write_report(&mut csv, &a.submission, &a.refused, ReportRows::Reported)?;
            Some((refused_file.clone(), csv))
        };
        let org = a.organisation.to_string();
        let lines: Vec<_> = a
            .refused
            .iter()
            .take(LINES_IN_BODY)
            .map(|r| json!({"line": r.line, "message": r.message}))
            .collect();
        Ok(self.composer.compose(
            &Reply {
                kind: "acknowledgement",
                to: vec![a.sender.clone()],
                subject: format!("Received: staff list for {org} ({})", a.file.name),
                context: json!({
                    "file_name": a.file.name,
                    "organisation": org,
                    "organisation_name": self.organisation_name(&org),
                    "received_at": self.local(now),
                    "rows": a.rows,
                    "valid": a.rows - a.refused.len(),
                    "refused": a.refused.len(),
                    "refused_lines": lines,
                    "more_refused": a.refused.len().saturating_sub(LINES_IN_BODY),
                    "refused_file": refused_file,
                    "next_run": self.schedule.describe(self.schedule.next_after(now)),
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
        Ok(self.composer.compose(
            &Reply {
                kind: "rejection",
                to: vec![to.to_owned()],
                subject: format!("Not accepted: {}", msg.subject),
                context: json!({
                    "subject": msg.subject,
                    "received_at": self.local(now),
                    "reason": refusal.to_string(),
                    "hint": hint,
                }),
                attachment: None,
                in_reply_to: Some(msg.message_id.clone()),
                organisation: None,
            },
            now,
        )?)
    }
}

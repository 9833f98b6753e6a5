//! Replies that decide: `CONFIRM <code>` approves a held run, `CANCEL <code>` drops a held
//! run or withdraws a file waiting for the nightly run.
//!
//! In: a message without a file whose first written lines or subject carry a command
//! ([`crate::mail::reply`]), its sender verdict, the code it names. Out: the run approved
//! (through [`pipeline::approve`], as `approve RUN`; its result e-mail goes out in the
//! follow-up, as for an operator's approval), dropped ([`pipeline::reject`]) or the file
//! withdrawn, or nothing; in every case a record in `mail_commands` and an answer to the
//! sender (none to machine mail, to an unverified sender or to ourselves; at most one a day
//! to an address that is no organisation's administrator). The sender must pass the same
//! checks as a file's sender and be an administrator of the code's organisation.

use super::*;
use crate::guard::Confirmers;
use crate::mail::reply::{Command, Verb};
use crate::store::mail::{CodePurpose, CommandOutcome, CommandRecord, StoredCode};

/// What a reply came to.
struct Decision {
    outcome: CommandOutcome,
    /// Why, in words the sender can act on (also the record's reason).
    reason: String,
    code: Option<StoredCode>,
    /// Whom the answer goes to; none for machine mail and unverified senders.
    answer: Option<String>,
}

impl Decision {
    fn refused(reason: String, code: Option<StoredCode>, answer: Option<String>) -> Decision {
        Decision {
            outcome: CommandOutcome::Refused,
            reason,
            code,
            answer,
        }
    }
}

impl<'a, D: Directory> Connector<'a, D> {
    /// Decides a reply, answers it and records it, in one transaction with the message; then
    /// files the message (Processed when it changed something, Rejected when not).
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn take_command<M: Mailbox>(
        &self,
        mailbox: &mut M,
        f: &Fetched,
        msg: &Inbound,
        verdict: &Verdict,
        cmd: &Command,
        minter: &mut dyn Minter,
        now: DateTime<Utc>,
        summary: &mut IntakeSummary,
    ) -> Result<(), ConnectorError> {
        let d = self.decide_command(msg, verdict, cmd, minter, now).await?;
        let acted = matches!(
            d.outcome,
            CommandOutcome::Approved
                | CommandOutcome::AwaitingSecond
                | CommandOutcome::Rejected
                | CommandOutcome::Withdrawn
        );
        let folder = if acted {
            Folder::Processed
        } else {
            Folder::Rejected
        };
        let mut replies = Vec::new();
        if let Some(to) = &d.answer {
            replies.push(self.command_answer(msg, to, cmd, &d, now)?);
        }
        let record = CommandRecord {
            message_id: msg.message_id.clone(),
            sender: msg.from.clone(),
            command: cmd.verb,
            code_no: d.code.as_ref().map(|c| c.no),
            organisation: d.code.as_ref().map(|c| c.organisation.clone()),
            run_id: d.code.as_ref().and_then(|c| c.run_id.clone()),
            submission_no: d.code.as_ref().and_then(|c| c.submission_no),
            outcome: d.outcome,
            reason: d.reason.clone(),
        };
        let message = intake::stored(f, msg, folder, (!acted).then(|| d.reason.clone()));
        self.store
            .answer_command(&message, &record, &replies, now)
            .await?;
        file(mailbox, self.store, &f.key, folder).await?;
        if acted {
            summary.accepted += 1;
            crate::console::metrics::message("accepted", "command");
        } else {
            summary.rejected += 1;
            crate::console::metrics::message("rejected", "command");
        }
        tracing::info!(
            message_id = %msg.message_id,
            sender = msg.from.as_deref().unwrap_or("-"),
            command = cmd.verb.as_str(),
            organisation = record.organisation.as_deref().unwrap_or("-"),
            run = record.run_id.as_deref().unwrap_or("-"),
            outcome = d.outcome.as_str(),
            reason = %d.reason,
            answered = !replies.is_empty(),
            "reply with a command handled"
        );
        Ok(())
    }

    async fn decide_command(
        &self,
        msg: &Inbound,
        verdict: &Verdict,
        cmd: &Command,
        minter: &mut dyn Minter,
        now: DateTime<Utc>,
    ) -> Result<Decision, ConnectorError> {
        let sender = match message::authorise(self.config, msg, verdict) {
            Ok(s) => s,
            Err(refusal) => {
                let outcome = if matches!(refusal, Refusal::Automatic(_)) {
                    CommandOutcome::Ignored
                } else {
                    CommandOutcome::Refused
                };
                let answer = self.may_answer(msg, &refusal, now).await?;
                return Ok(Decision {
                    outcome,
                    reason: refusal.to_string(),
                    code: None,
                    answer,
                });
            }
        };
        let to = Some(sender.address.clone());
        let Some(code) = self.store.find_code(&cmd.code).await? else {
            let reason = if cmd.code.is_empty() {
                format!(
                    "the reply has no code after {}: write the code from the e-mail you \
                     are answering, as in {} ABCDE-FGHJK",
                    cmd.verb.as_str().to_uppercase(),
                    cmd.verb.as_str().to_uppercase()
                )
            } else {
                format!(
                    "\"{}\" is not a code this connector issued: copy it from the e-mail you \
                     are answering (codes are 10 letters and digits, as ABCDE-FGHJK)",
                    intake::shorten(&cmd.code, 20)
                )
            };
            return Ok(Decision::refused(reason, None, to));
        };
        if !sender
            .organisations
            .iter()
            .any(|o| o.as_str().eq_ignore_ascii_case(&code.organisation))
        {
            let mine: Vec<&str> = sender.organisations.iter().map(|o| o.as_str()).collect();
            let reason = format!(
                "the code is for another organisation's staff list; {} is a connector \
                 administrator of {} only",
                sender.address,
                mine.join(", ")
            );
            return Ok(Decision::refused(reason, Some(code), to));
        }
        if let Some((at, by)) = &code.used {
            let reason = format!(
                "the code was already used, by {by} at {}: each code works once",
                self.local(parse_time(at))
            );
            return Ok(Decision::refused(reason, Some(code), to));
        }
        if now > code.expires_at {
            let reason = format!(
                "the code expired at {} (codes last {} days); ask an operator",
                self.local(code.expires_at),
                self.config.mail.confirm_code_days
            );
            return Ok(Decision::refused(reason, Some(code), to));
        }
        match (code.purpose, cmd.verb) {
            (CodePurpose::WaitingFile, Verb::Confirm) => {
                let reason = format!(
                    "a file waiting for the nightly run needs no confirmation: it is applied \
                     {}; this code can only withdraw it (CANCEL)",
                    self.schedule.describe(self.schedule.next_after(now))
                );
                Ok(Decision::refused(reason, Some(code), to))
            }
            (CodePurpose::WaitingFile, Verb::Cancel) => {
                self.withdraw(code, &sender.address, now).await
            }
            (CodePurpose::HeldRun, verb) => {
                self.decide_held(code, verb, &sender.address, minter, now)
                    .await
            }
        }
    }

    /// `CANCEL` of a waiting file.
    async fn withdraw(
        &self,
        code: StoredCode,
        sender: &str,
        now: DateTime<Utc>,
    ) -> Result<Decision, ConnectorError> {
        let to = Some(sender.to_owned());
        let Some(no) = code.submission_no else {
            return Err(StoreError::Corrupt(format!("code {} names no file", code.no)).into());
        };
        let (name, status, received) = self.store.submission_state(no).await?.unwrap_or_default();
        if !self.store.claim_code(code.no, sender, now).await? {
            return Ok(Decision::refused(
                "the code was already used: each code works once".into(),
                Some(code),
                to,
            ));
        }
        let Some(older) = self.store.withdraw(no, now).await? else {
            self.store.release_code(code.no).await?;
            let reason = format!(
                "the file \"{name}\" no longer waits for the nightly run (it is {status}): \
                 nothing was withdrawn"
            );
            return Ok(Decision::refused(reason, Some(code), to));
        };
        let mut reason = format!(
            "the file \"{name}\" received at {} is withdrawn: the nightly run will not apply \
             it",
            self.local(parse_time(&received))
        );
        if !older.is_empty() {
            reason.push_str(&format!(
                ", nor the earlier file{} it replaced ({})",
                if older.len() == 1 { "" } else { "s" },
                older.join(", ")
            ));
        }
        Ok(Decision {
            outcome: CommandOutcome::Withdrawn,
            reason,
            code: Some(code),
            answer: to,
        })
    }

    /// `CONFIRM` or `CANCEL` of a held run.
    async fn decide_held(
        &self,
        code: StoredCode,
        verb: Verb,
        sender: &str,
        minter: &mut dyn Minter,
        now: DateTime<Utc>,
    ) -> Result<Decision, ConnectorError> {
        let to = Some(sender.to_owned());
        let Some(run) = code.run_id.clone() else {
            return Err(StoreError::Corrupt(format!("code {} names no run", code.no)).into());
        };
        let info = self.state.run(&run).await?;
        if info.status != RunStatus::Held {
            let reason = format!(
                "run {run} is no longer held (it is {}): nothing was changed",
                info.status.as_str()
            );
            return Ok(Decision::refused(reason, Some(code), to));
        }
        if verb == Verb::Cancel {
            if !self.store.claim_code(code.no, sender, now).await? {
                return Ok(Decision::refused(
                    "the code was already used: each code works once".into(),
                    Some(code),
                    to,
                ));
            }
            pipeline::reject(self.state, &run, now).await?;
            self.state
                .note(&run, &format!("rejected by reply from {sender}"))
                .await?;
            return Ok(Decision {
                outcome: CommandOutcome::Rejected,
                reason: format!("run {run} is dropped: nothing was changed"),
                code: Some(code),
                answer: to,
            });
        }
        let plan = self.state.held_plan(&run).await?;
        let counts = plan.counts();
        let changed = counts.created + counts.updated;
        let org = OdsCode::new_unchecked(code.organisation.clone());
        let limits = crate::deployment::guard_limits(self.config, &org);
        let mut by = vec![sender.to_owned()];
        match limits.confirmers(changed) {
            Confirmers::Operator { max } => {
                let why = match max {
                    None => format!("administrators of {org} may not approve runs by reply"),
                    Some(max) => format!(
                        "the run would change {changed} accounts, more than the {max} an \
                         administrator of {org} may approve by reply"
                    ),
                };
                let reason = format!(
                    "{why}: an operator must approve it (push-connector approve {run}); reply \
                     CANCEL with the code to drop it"
                );
                return Ok(Decision::refused(reason, Some(code), to));
            }
            Confirmers::OneAdministrator => {}
            Confirmers::TwoAdministrators => {
                let firsts = self.store.first_confirmations(code.no).await?;
                if firsts.iter().any(|f| f.eq_ignore_ascii_case(sender)) {
                    let reason = format!(
                        "you have already confirmed run {run}: it changes {changed} accounts, \
                         so a second, different administrator of {org} must confirm it too"
                    );
                    return Ok(Decision::refused(reason, Some(code), to));
                }
                let Some(first) = firsts.first() else {
                    let reason = format!(
                        "your confirmation of run {run} is recorded; it changes {changed} \
                         accounts, so a second, different administrator of {org} must also \
                         reply CONFIRM with the code before it is applied"
                    );
                    return Ok(Decision {
                        outcome: CommandOutcome::AwaitingSecond,
                        reason,
                        code: Some(code),
                        answer: to,
                    });
                };
                by.insert(0, first.clone());
            }
        }
        if !self.store.claim_code(code.no, sender, now).await? {
            return Ok(Decision::refused(
                "the code was already used: each code works once".into(),
                Some(code),
                to,
            ));
        }
        let progress = |_: u64, _: u64| {};
        let ctx = self.context(&progress);
        let approvers = format!("{} (by reply)", by.join(" and "));
        match pipeline::approve(&ctx, &run, Some(&approvers), minter, now).await {
            Ok((_, applied)) => {
                let note = format!("approved by reply from {}", by.join(" and "));
                self.state.note(&run, &note).await?;
                pipeline::log_run(&run, org.as_str(), "applied", &applied.counts);
                Ok(Decision {
                    outcome: CommandOutcome::Approved,
                    reason: format!(
                        "run {run} is approved ({note}) and applied: {}; the result report \
                         follows",
                        applied.counts.summary()
                    ),
                    code: Some(code),
                    answer: to,
                })
            }
            Err(e) => {
                self.store.release_code(code.no).await?;
                Ok(Decision {
                    outcome: CommandOutcome::Failed,
                    reason: format!(
                        "run {run} could not be applied now ({e}); it stays held and the code \
                         can be used again"
                    ),
                    code: Some(code),
                    answer: to,
                })
            }
        }
    }

    /// Whom a refused reply is answered: as a refused file is (see `rejections`).
    async fn may_answer(
        &self,
        msg: &Inbound,
        refusal: &Refusal,
        now: DateTime<Utc>,
    ) -> Result<Option<String>, ConnectorError> {
        let Some(to) = msg.from.as_deref() else {
            return Ok(None);
        };
        if !refusal.may_reply() || to.eq_ignore_ascii_case(&self.composer.from_address()) {
            return Ok(None);
        }
        let administrator = self.config.organisations.iter().any(|o| {
            o.administrators
                .iter()
                .any(|a| a.trim().eq_ignore_ascii_case(to))
        });
        if !administrator && !self.store.claim_reply(to, now).await? {
            return Ok(None);
        }
        Ok(Some(to.to_owned()))
    }

    fn command_answer(
        &self,
        msg: &Inbound,
        to: &str,
        cmd: &Command,
        d: &Decision,
        now: DateTime<Utc>,
    ) -> Result<QueuedMail, ConnectorError> {
        let verb = cmd.verb.as_str().to_uppercase();
        let run = d.code.as_ref().and_then(|c| c.run_id.clone());
        let org = d.code.as_ref().map(|c| c.organisation.clone());
        let what = match (&run, &org) {
            (Some(run), _) => format!("run {run}"),
            (None, Some(org)) => format!("staff list for {org}"),
            _ => "your reply".to_owned(),
        };
        let subject = match d.outcome {
            CommandOutcome::Approved => format!("Approved: {what}"),
            CommandOutcome::AwaitingSecond => {
                format!("Recorded, a second administrator must confirm: {what}")
            }
            CommandOutcome::Rejected => format!("Dropped: {what}"),
            CommandOutcome::Withdrawn => format!("Withdrawn: {what}"),
            CommandOutcome::Refused | CommandOutcome::Ignored | CommandOutcome::Failed => {
                format!("Not done: {verb} ({what})")
            }
        };
        Ok(self.composer.compose(
            &Reply {
                kind: "command",
                to: vec![to.to_owned()],
                subject,
                context: json!({
                    "command": verb,
                    "outcome": d.outcome.as_str(),
                    "done": !matches!(d.outcome, CommandOutcome::Refused
                        | CommandOutcome::Failed | CommandOutcome::Ignored),
                    "reason": intake::shorten(&d.reason, 2000),
                    "received_at": self.local(now),
                    "run": run,
                    "organisation": org,
                }),
                attachment: None,
                in_reply_to: Some(msg.message_id.clone()),
                organisation: org.clone(),
            },
            now,
        )?)
    }
}

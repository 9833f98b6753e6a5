//! The nightly step (latest submission per organisation → pipeline → result e-mail), the
//! result of held runs decided since, and recovery of a run a stop interrupted.

use super::*;
use crate::guard::Confirmers;
use crate::reconcile;

impl<'a, D: Directory> Connector<'a, D> {
    /// The nightly step: per organisation, the latest pending submission is applied and the
    /// older ones are superseded.
    pub async fn nightly(
        &self,
        minter: &mut dyn Minter,
        now: DateTime<Utc>,
    ) -> Result<NightlySummary, ConnectorError> {
        let no = self.store.nightly_started(now).await?;
        let mut summary = NightlySummary::default();
        tracing::info!("nightly run started");
        for org in self.store.organisations_waiting().await? {
            if let Err(e) = self.nightly_org(&org, minter, now, &mut summary).await {
                tracing::error!(organisation = %org, error = %e, "nightly run failed for the organisation; its submission waits for the next run");
                summary.failed.push((org, e.to_string()));
            }
        }
        self.store.nightly_finished(no, now).await?;
        tracing::info!(
            applied = summary.applied.len(),
            held = summary.held.len(),
            superseded = summary.superseded,
            failed = summary.failed.len(),
            "nightly run finished"
        );
        Ok(summary)
    }

    pub(super) async fn nightly_org(
        &self,
        org: &str,
        minter: &mut dyn Minter,
        now: DateTime<Utc>,
        summary: &mut NightlySummary,
    ) -> Result<(), ConnectorError> {
        // A submission a stopped process left running goes first, under its own run ID.
        for s in self
            .store
            .submissions(Some(org), SubmissionStatus::Running)
            .await?
        {
            self.recover(&s, minter, now, summary).await?;
        }
        let pending = self
            .store
            .submissions(Some(org), SubmissionStatus::Pending)
            .await?;
        let Some((latest, older)) = pending.split_last() else {
            return Ok(());
        };
        for s in older {
            let mail = self.composer.compose(
                &Reply {
                    kind: "superseded",
                    to: vec![s.sender.clone()],
                    subject: format!("Superseded: staff list for {org} ({})", s.file_name),
                    context: json!({
                        "file_name": s.file_name,
                        "organisation": org,
                        "received_at": self.local(parse_time(&s.received_at)),
                        "by_file_name": latest.file_name,
                        "by_received_at": self.local(parse_time(&latest.received_at)),
                    }),
                    attachment: None,
                    in_reply_to: Some(s.message_id.clone()),
                    organisation: Some(org.to_owned()),
                },
                now,
            )?;
            self.store
                .advance(s.no, SubmissionStatus::Superseded, None, None, &[mail], now)
                .await?;
            summary.superseded += 1;
            tracing::info!(organisation = %org, sender = %s.sender, message_id = %s.message_id,
                "submission superseded by a later one");
        }
        let run = crate::deployment::run_id(now);
        self.store
            .advance(
                latest.no,
                SubmissionStatus::Running,
                Some(&run),
                None,
                &[],
                now,
            )
            .await?;
        self.run(latest, &run, minter, now, summary).await
    }

    /// Plans, guards and applies one submission under `run`, and queues its e-mail.
    pub(super) async fn run(
        &self,
        s: &StoredSubmission,
        run: &str,
        minter: &mut dyn Minter,
        now: DateTime<Utc>,
        summary: &mut NightlySummary,
    ) -> Result<(), ConnectorError> {
        let (submission, results) = self.reread(s)?;
        let org = OdsCode::new_unchecked(s.organisation.clone());
        let request = pipeline::Request {
            results: &results,
            policy: crate::deployment::policy(self.config, &org),
            limits: crate::deployment::guard_limits(self.config, &org),
            run: run.to_owned(),
            source: crate::model::Provenance::email(&s.sender, &s.file_name),
            dry_run: false,
            guarded: true,
            supersede: None,
            record_idle: true,
        };
        let progress = |_: u64, _: u64| {};
        let ctx = self.context(&progress);
        let submitted = pipeline::submit(&ctx, &request, minter, now).await?;
        match &submitted.applied {
            Some(applied) => {
                self.finish(
                    s,
                    &submission,
                    &submitted.plan,
                    &applied.reports,
                    applied.counts,
                    submitted.refused.as_deref(),
                    now,
                )
                .await?;
                summary
                    .applied
                    .push((s.organisation.clone(), run.to_owned(), applied.counts));
            }
            None => {
                self.held(s, &submitted.plan, &submitted.held, minter, now)
                    .await?;
                summary.held.push((s.organisation.clone(), run.to_owned()));
            }
        }
        Ok(())
    }

    /// The result e-mail of an applied run. `refused` says why no row was applied (the
    /// file's columns look swapped), once at the top; likely duplicates are gathered under
    /// their own heading with the remedy, and the other refusals listed as they are.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn finish(
        &self,
        s: &StoredSubmission,
        submission: &Submission,
        plan: &Plan,
        reports: &[RowReport],
        counts: Counts,
        refused: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<(), ConnectorError> {
        let (csv, attached) = report::write_report_within(
            submission,
            reports,
            ReportRows::All,
            self.config.mail.max_reply_bytes / 2,
        )?;
        let mut attention: Vec<RowReport> = reports
            .iter()
            .filter(|r| r.result.needs_attention())
            .filter(|r| !r.message.starts_with(reconcile::swapped::ROW_PREFIX))
            .cloned()
            .collect();
        attention.sort_by_key(|r| r.line);
        let (duplicates, attention): (Vec<RowReport>, Vec<RowReport>) = attention
            .into_iter()
            .partition(|r| r.message.starts_with(reconcile::LIKELY_DUPLICATE));
        let duplicate_lines = intake::duplicate_lines(&duplicates);
        let report_file = format!("result-{}-{}.csv", stem(&s.file_name), plan.run);
        let org = &s.organisation;
        let mail = self.composer.compose(
            &Reply {
                kind: "result",
                to: vec![s.sender.clone()],
                subject: format!("Result: staff list for {org}, run {}", plan.run),
                context: json!({
                    "file_name": s.file_name,
                    "organisation": org,
                    "organisation_name": self.organisation_name(org),
                    "received_at": self.local(parse_time(&s.received_at)),
                    "run": plan.run,
                    "finished_at": self.local(now),
                    "counts": counts,
                    "report_file": report_file,
                    "rows": submission.rows.len(),
                    "attached_rows": attached,
                    "mistakes": report::mistakes::gather(&attention)
                        .iter()
                        .map(|m| m.shown())
                        .collect::<Vec<_>>(),
                    "attention_lines": intake::body_lines(&attention),
                    "more_attention": attention.len().saturating_sub(LINES_IN_BODY),
                    "refused_run": refused.map(|r| intake::shorten(r, 2000)),
                    "duplicate_lines": duplicate_lines,
                    "more_duplicates": duplicates.len().saturating_sub(LINES_IN_BODY),
                }),
                attachment: Some((report_file.clone(), csv)),
                in_reply_to: Some(s.message_id.clone()),
                organisation: Some(org.clone()),
            },
            now,
        )?;
        self.store
            .advance(s.no, SubmissionStatus::Applied, None, None, &[mail], now)
            .await?;
        tracing::info!(
            organisation = %org,
            sender = %s.sender,
            run = %plan.run,
            created = counts.created,
            updated = counts.updated,
            unchanged = counts.unchanged,
            rejected = counts.rejected,
            failed = counts.failed,
            "run applied; result e-mail queued"
        );
        Ok(())
    }

    /// The held notice, to the sender and the operators (and, when two administrators
    /// must confirm it, the organisation's other administrators), with the code that
    /// confirms or drops the run by reply.
    pub(super) async fn held(
        &self,
        s: &StoredSubmission,
        plan: &Plan,
        reasons: &[String],
        minter: &mut dyn Minter,
        now: DateTime<Utc>,
    ) -> Result<(), ConnectorError> {
        let org = &s.organisation;
        let counts = plan.counts();
        let changed = counts.created + counts.updated;
        let confirmers =
            crate::deployment::guard_limits(self.config, &plan.organisation).confirmers(changed);
        let mut to = vec![s.sender.clone()];
        let mut others: Vec<String> = Vec::new();
        if confirmers == Confirmers::TwoAdministrators {
            others = self
                .config
                .organisation(org)
                .map(|o| {
                    o.administrators
                        .iter()
                        .map(|a| a.trim().to_owned())
                        .collect()
                })
                .unwrap_or_default();
        }
        for op in others.iter().chain(&self.config.mail.operators) {
            if !to.iter().any(|t| t.eq_ignore_ascii_case(op)) {
                to.push(op.clone());
            }
        }
        let (code, expires) = self.new_code(minter, now);
        let (confirm, operator_only) = match confirmers {
            Confirmers::Operator { max: None } => (false, None),
            Confirmers::Operator { max: Some(max) } => (false, Some(max)),
            _ => (true, None),
        };
        let mail = self.composer.compose(
            &Reply {
                kind: "held",
                to,
                subject: format!("Held for approval: staff list for {org}, run {}", plan.run),
                context: json!({
                    "file_name": s.file_name,
                    "organisation": org,
                    "sender": s.sender,
                    "run": plan.run,
                    "reasons": reasons,
                    "counts": counts,
                    "code": code,
                    "code_expires": self.local(expires),
                    "confirm": confirm,
                    "two_person": confirmers == Confirmers::TwoAdministrators,
                    "changed": changed,
                    "confirm_max": operator_only,
                }),
                attachment: None,
                in_reply_to: Some(s.message_id.clone()),
                organisation: Some(org.clone()),
            },
            now,
        )?;
        let plan_json =
            serde_json::to_string(plan).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let new_code = NewCode {
            code: &code,
            organisation: org,
            purpose: CodePurpose::HeldRun,
            expires_at: expires,
        };
        self.store
            .advance_issuing(
                s.no,
                SubmissionStatus::Held,
                Some(&plan.run),
                Some(&plan_json),
                &[mail],
                Some(&new_code),
                now,
            )
            .await?;
        tracing::warn!(organisation = %org, sender = %s.sender, run = %plan.run,
            reasons = %reasons.join("; "), "run held for approval; notice queued");
        Ok(())
    }

    /// Finishes a submission a stopped process left running.
    pub(super) async fn recover(
        &self,
        s: &StoredSubmission,
        minter: &mut dyn Minter,
        now: DateTime<Utc>,
        summary: &mut NightlySummary,
    ) -> Result<(), ConnectorError> {
        let Some(run) = s.run_id.clone() else {
            return self
                .run(s, &crate::deployment::run_id(now), minter, now, summary)
                .await;
        };
        let info = match self.state.run(&run).await {
            Err(StateError::NoSuchRun(_)) => {
                return self.run(s, &run, minter, now, summary).await;
            }
            other => other?,
        };
        tracing::info!(organisation = %s.organisation, run = %run, status = info.status.as_str(),
            "finishing a submission a stopped process left running");
        match info.status {
            RunStatus::Held => {
                let plan = self.state.held_plan(&run).await?;
                let reasons = vec![
                    info.note
                        .clone()
                        .unwrap_or_else(|| "over the guard's thresholds".into()),
                ];
                self.held(s, &plan, &reasons, minter, now).await?;
                summary.held.push((s.organisation.clone(), run));
            }
            RunStatus::Applying | RunStatus::Applied => {
                let progress = |_: u64, _: u64| {};
                let ctx = self.context(&progress);
                pipeline::resume_unfinished(&ctx, minter, now).await?;
                let (submission, planned) = self.replanned(s, &run).await?;
                let reports = apply::reports(self.state, &planned, Planned::Again).await?;
                let counts = counts_of(&reports);
                let plan = Plan {
                    run: run.clone(),
                    organisation: OdsCode::new_unchecked(s.organisation.clone()),
                    rows: Vec::new(),
                };
                self.finish(s, &submission, &plan, &reports, counts, None, now)
                    .await?;
                summary.applied.push((s.organisation.clone(), run, counts));
            }
            RunStatus::Rejected | RunStatus::Reverted => {
                self.store
                    .advance(s.no, SubmissionStatus::Dropped, None, None, &[], now)
                    .await?;
            }
        }
        Ok(())
    }

    /// The rows of a run whose plan was lost with a stopped process, planned again: what was
    /// applied now plans as unchanged, so the report lays the journal's outcomes over them.
    pub(super) async fn replanned(
        &self,
        s: &StoredSubmission,
        run: &str,
    ) -> Result<(Submission, Plan), ConnectorError> {
        let (submission, results) = self.reread(s)?;
        let org = OdsCode::new_unchecked(s.organisation.clone());
        let policy = crate::deployment::policy(self.config, &org);
        let planned = pipeline::plan(self.directory, run, &results, &policy)
            .await
            .map_err(ApplyError::from)?;
        Ok((submission, planned.plan))
    }

    /// Held runs decided since (`approve RUN` / `reject RUN`): the result or a "dropped"
    /// e-mail goes out.
    pub async fn follow_up(&self, now: DateTime<Utc>) -> Result<usize, ConnectorError> {
        let mut done = 0;
        for s in self.store.submissions(None, SubmissionStatus::Held).await? {
            let Some(run) = &s.run_id else { continue };
            let info = self.state.run(run).await?;
            match info.status {
                RunStatus::Applied | RunStatus::Reverted => {
                    let plan: Plan = serde_json::from_str(s.plan.as_deref().unwrap_or(""))
                        .map_err(|e| StoreError::Corrupt(format!("held plan of {run}: {e}")))?;
                    let reports = apply::reports(self.state, &plan, Planned::AsApplied).await?;
                    let (submission, _) = self.reread(&s)?;
                    self.finish(&s, &submission, &plan, &reports, info.counts, None, now)
                        .await?;
                    done += 1;
                }
                RunStatus::Rejected => {
                    let mail = self.composer.compose(
                        &Reply {
                            kind: "dropped",
                            to: vec![s.sender.clone()],
                            subject: format!(
                                "Not applied: staff list for {}, run {run}",
                                s.organisation
                            ),
                            context: json!({"run": run, "file_name": s.file_name,
                                "organisation": s.organisation}),
                            attachment: None,
                            in_reply_to: Some(s.message_id.clone()),
                            organisation: Some(s.organisation.clone()),
                        },
                        now,
                    )?;
                    self.store
                        .advance(s.no, SubmissionStatus::Dropped, None, None, &[mail], now)
                        .await?;
                    tracing::info!(organisation = %s.organisation, run = %run, "held run dropped; sender told");
                    done += 1;
                }
                RunStatus::Held | RunStatus::Applying => {}
            }
        }
        Ok(done)
    }
}

/// A report's counts, from its rows.
fn counts_of(reports: &[RowReport]) -> Counts {
    let mut counts = Counts::default();
    for r in reports {
        match r.result {
            RowResultKind::Created => counts.created += 1,
            RowResultKind::Updated => counts.updated += 1,
            RowResultKind::Unchanged => counts.unchanged += 1,
            RowResultKind::Failed => counts.failed += 1,
            _ => counts.rejected += 1,
        }
    }
    counts
}

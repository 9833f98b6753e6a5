//! Reminders to organisations that have gone quiet: one to the administrators and a notice
//! to the operators when an organisation's last accepted file, run or sync is older than its
//! `stale_after_days`; one per quiet period (a file or sync ends the period).

use chrono::{DateTime, Utc};
use serde_json::json;

use super::{Connector, ConnectorError};
use crate::config::OrganisationConfig;
use crate::directory::Directory;
use crate::mail::compose::Reply;
use crate::store::outbox::QueuedMail;

/// An organisation found quiet, and reminded of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reminded {
    pub organisation: String,
    pub quiet_since: DateTime<Utc>,
    /// Whether it never sent anything since the service first saw it.
    pub never: bool,
}

impl<D: Directory> Connector<'_, D> {
    /// Reminds each organisation quiet for longer than its `stale_after_days` that has not
    /// been reminded of this quiet period yet.
    pub async fn remind_quiet(&self, now: DateTime<Utc>) -> Result<Vec<Reminded>, ConnectorError> {
        let mut reminded = Vec::new();
        for org in &self.config.organisations {
            let days = org
                .stale_after_days
                .unwrap_or(self.config.service.stale_after_days);
            if days == 0 {
                continue;
            }
            let sources: Vec<String> = self
                .config
                .sources
                .iter()
                .filter(|s| {
                    s.organisations
                        .iter()
                        .any(|o| o.eq_ignore_ascii_case(&org.code))
                })
                .map(|s| s.name.clone())
                .collect();
            let activity = self.store.activity(&org.code, &sources, now).await?;
            let since = activity.quiet_since();
            if now - since <= chrono::Duration::days(i64::from(days))
                || activity.reminded_since == Some(since)
            {
                continue;
            }
            let never = activity.last.is_none();
            let mails = self.quiet_mails(org, days, since, never, now)?;
            if mails.is_empty() {
                continue;
            }
            self.store.reminded(&org.code, since, &mails, now).await?;
            tracing::warn!(organisation = %org.code, quiet_since = %since, days,
                "organisation quiet; reminder queued");
            reminded.push(Reminded {
                organisation: org.code.clone(),
                quiet_since: since,
                never,
            });
        }
        Ok(reminded)
    }

    /// The reminder to the administrators and the notice to the operators (either left out
    /// when it has no one to go to).
    fn quiet_mails(
        &self,
        org: &OrganisationConfig,
        days: u32,
        since: DateTime<Utc>,
        never: bool,
        now: DateTime<Utc>,
    ) -> Result<Vec<QueuedMail>, ConnectorError> {
        let name = org.name.clone().unwrap_or_else(|| org.code.clone());
        let mut mails = Vec::new();
        for (to, to_operators) in [
            (org.administrators.clone(), false),
            (self.config.mail.operators.clone(), true),
        ] {
            if to.is_empty() {
                continue;
            }
            let subject = if to_operators {
                format!("{} ({}) has sent nothing for {days} days", name, org.code)
            } else {
                format!("Reminder: no staff list from {} for {days} days", org.code)
            };
            mails.push(self.composer.compose(
                &Reply {
                    kind: "quiet",
                    to,
                    subject,
                    context: json!({
                        "organisation": org.code,
                        "name": name,
                        "days": days,
                        "since": self.local(since),
                        "never": never,
                        "to_operators": to_operators,
                        "address": self.composer.from_address(),
                        "administrators": org.administrators,
                    }),
                    attachment: None,
                    in_reply_to: None,
                    organisation: Some(org.code.clone()),
                },
                now,
            )?);
        }
        Ok(mails)
    }
}

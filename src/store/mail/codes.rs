//! One-time codes of held notices and acknowledgements, and the record of every
//! `CONFIRM`/`CANCEL` reply.
//!
//! In: a code minted from random bytes (passed in), bound when it is stored to exactly one
//! organisation, one purpose and one held run or waiting file; replies' outcomes. Out: the
//! code a reply names (found by its hash: the code itself is never stored), claimed once.
//! A code is used up by the reply that decides its run or file; under the two-person rule
//! the first administrator's `CONFIRM` is recorded ([`CommandOutcome::AwaitingSecond`]) and
//! the code stays for the second.

use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};
use sqlx::Row;

use super::{MailStore, NewMessage, StoreError, insert_message};
use crate::store::mail::outbox::{QueuedMail, enqueue};

/// The characters of a code: no `0`/`O`, `1`/`I`/`L` or `U`, which are misread.
pub const ALPHABET: &[u8] = b"ABCDEFGHJKMNPQRSTVWXYZ23456789";
/// Characters of a code (about 49 bits).
pub const CODE_CHARS: usize = 10;

stored_enum! {
    /// What a code is for.
    pub enum CodePurpose ("code purpose") {
        /// `CONFIRM` approves the held run, `CANCEL` drops it.
        HeldRun = "held run",
        /// `CANCEL` withdraws the file before the nightly run.
        WaitingFile = "waiting file",
    }
}

stored_enum! {
    /// What a reply asks for.
    pub enum Verb ("reply command") {
        /// `CONFIRM <code>`: approve the held run.
        Confirm = "confirm",
        /// `CANCEL <code>`: drop the held run, or withdraw the waiting file.
        Cancel = "cancel",
    }
}

stored_enum! {
    /// What became of a reply.
    pub enum CommandOutcome ("command outcome") {
        /// The held run was approved and applied.
        Approved = "approved",
        /// The first of two administrators confirmed; the run waits for the second.
        AwaitingSecond = "awaiting second",
        /// The held run was dropped.
        Rejected = "rejected",
        /// The waiting file was withdrawn.
        Withdrawn = "withdrawn",
        /// Nothing was changed; the sender was told why (when they may be answered).
        Refused = "refused",
        /// Sent by a machine (an auto-reply quoting the code): not acted on, not answered.
        Ignored = "ignored",
        /// Allowed, but applying failed; the run stays held.
        Failed = "failed",
    }
}

/// A code as shown: `ABCDE-FGHJK`, from random bytes.
pub fn mint(random: [u8; 16]) -> String {
    let mut n = u128::from_le_bytes(random);
    let base = ALPHABET.len() as u128;
    let mut code = String::with_capacity(CODE_CHARS + 1);
    for i in 0..CODE_CHARS {
        if i == CODE_CHARS / 2 {
            code.push('-');
        }
        code.push(char::from(ALPHABET[(n % base) as usize]));
        n /= base;
    }
    code
}

/// What is stored of a code: the SHA-256 of its characters (upper-cased, no `-`), hex.
pub fn hash(code: &str) -> String {
    let normal: String = code
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_uppercase())
        .collect();
    Sha256::digest(format!("push-connector code {normal}").as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A code to store with the e-mail that carries it.
#[derive(Debug, Clone)]
pub struct NewCode<'a> {
    /// The code as the e-mail shows it (only its hash is stored).
    pub code: &'a str,
    pub organisation: &'a str,
    pub purpose: CodePurpose,
    pub expires_at: DateTime<Utc>,
}

/// A stored code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredCode {
    pub no: i64,
    pub organisation: String,
    pub purpose: CodePurpose,
    pub run_id: Option<String>,
    pub submission_no: Option<i64>,
    pub expires_at: DateTime<Utc>,
    /// When and by whom it was used up.
    pub used: Option<(String, String)>,
}

/// One reply's record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandRecord {
    pub message_id: String,
    pub sender: Option<String>,
    pub command: Verb,
    pub code_no: Option<i64>,
    pub organisation: Option<String>,
    pub run_id: Option<String>,
    pub submission_no: Option<i64>,
    pub outcome: CommandOutcome,
    pub reason: String,
}

pub(super) async fn insert(
    tx: &mut sqlx::Transaction<'static, sqlx::Sqlite>,
    code: &NewCode<'_>,
    run_id: Option<&str>,
    submission_no: Option<i64>,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO mail_codes (code_hash, organisation, purpose, run_id, submission_no,
         created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(hash(code.code))
    .bind(code.organisation)
    .bind(code.purpose.as_str())
    .bind(run_id)
    .bind(submission_no)
    .bind(now.to_rfc3339())
    .bind(code.expires_at.to_rfc3339())
    .execute(&mut **tx)
    .await?;
    Ok(())
}

fn time(s: &str) -> Result<DateTime<Utc>, StoreError> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| StoreError::Corrupt(format!("code time {s}: {e}")))
}

impl MailStore {
    /// The code a reply names, if this service issued it.
    pub async fn find_code(&self, code: &str) -> Result<Option<StoredCode>, StoreError> {
        let Some(r) = sqlx::query(
            "SELECT no, organisation, purpose, run_id, submission_no, expires_at, used_at,
             used_by FROM mail_codes WHERE code_hash = ?",
        )
        .bind(hash(code))
        .fetch_optional(&self.pool)
        .await?
        else {
            return Ok(None);
        };
        let purpose: String = r.try_get("purpose")?;
        let used_at: Option<String> = r.try_get("used_at")?;
        let used_by: Option<String> = r.try_get("used_by")?;
        Ok(Some(StoredCode {
            no: r.try_get("no")?,
            organisation: r.try_get("organisation")?,
            purpose: purpose.parse()?,
            run_id: r.try_get("run_id")?,
            submission_no: r.try_get("submission_no")?,
            expires_at: time(&r.try_get::<String, _>("expires_at")?)?,
            used: used_at.map(|at| (at, used_by.unwrap_or_default())),
        }))
    }

    /// Uses a code up, once: true when this call did, false when it was used already.
    pub async fn claim_code(
        &self,
        no: i64,
        by: &str,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE mail_codes SET used_at = ?, used_by = ? WHERE no = ? AND used_at IS NULL",
        )
        .bind(now.to_rfc3339())
        .bind(by)
        .bind(no)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Gives a claimed code back (what it was to decide could not be done).
    pub async fn release_code(&self, no: i64) -> Result<(), StoreError> {
        sqlx::query("UPDATE mail_codes SET used_at = NULL, used_by = NULL WHERE no = ?")
            .bind(no)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Who has confirmed with this code and waits for a second administrator.
    pub async fn first_confirmations(&self, code_no: i64) -> Result<Vec<String>, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT sender FROM mail_commands WHERE code_no = ? AND outcome = ? ORDER BY no",
        )
        .bind(code_no)
        .bind(CommandOutcome::AwaitingSecond.as_str())
        .fetch_all(&self.pool)
        .await?)
    }

    /// Withdraws a waiting file, and the organisation's older waiting files (which it had
    /// replaced): in one transaction, only while it still waits. Returns the older files'
    /// names, or `None` when it no longer waits.
    pub async fn withdraw(
        &self,
        submission_no: i64,
        now: DateTime<Utc>,
    ) -> Result<Option<Vec<String>>, StoreError> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let org: Option<String> = sqlx::query_scalar(
            "SELECT organisation FROM mail_submissions WHERE no = ? AND status = 'pending'",
        )
        .bind(submission_no)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(org) = org else {
            return Ok(None);
        };
        let now_s = now.to_rfc3339();
        sqlx::query(
            "UPDATE mail_submissions SET status = 'withdrawn', updated_at = ? WHERE no = ?",
        )
        .bind(&now_s)
        .bind(submission_no)
        .execute(&mut *tx)
        .await?;
        let older: Vec<String> = sqlx::query_scalar(
            "UPDATE mail_submissions SET status = 'superseded', updated_at = ?
             WHERE organisation = ? AND status = 'pending' AND no < ? RETURNING file_name",
        )
        .bind(&now_s)
        .bind(&org)
        .bind(submission_no)
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Some(older))
    }

    /// A submission's file name, status and time received.
    pub async fn submission_state(
        &self,
        no: i64,
    ) -> Result<Option<(String, String, String)>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT file_name, status, received_at FROM mail_submissions WHERE no = ?",
        )
        .bind(no)
        .fetch_optional(&self.pool)
        .await?)
    }

    /// Stores a reply with its record and its answer in one transaction (as
    /// [`MailStore::receive`] stores a submission).
    pub async fn answer_command(
        &self,
        m: &NewMessage<'_>,
        record: &CommandRecord,
        replies: &[QueuedMail],
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        insert_message(&mut tx, m, "command", now).await?;
        sqlx::query(
            "INSERT INTO mail_commands (at, message_id, sender, command, code_no, organisation,
             run_id, submission_no, outcome, reason) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(now.to_rfc3339())
        .bind(&record.message_id)
        .bind(record.sender.as_deref())
        .bind(record.command.as_str())
        .bind(record.code_no)
        .bind(record.organisation.as_deref())
        .bind(record.run_id.as_deref())
        .bind(record.submission_no)
        .bind(record.outcome.as_str())
        .bind(&record.reason)
        .execute(&mut *tx)
        .await?;
        enqueue(&mut tx, replies, now, None).await?;
        sqlx::query("DELETE FROM mail_attempts WHERE mailbox_key = ?")
            .bind(m.mailbox_key)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Every reply's record, oldest first.
    pub async fn commands(&self) -> Result<Vec<CommandRecord>, StoreError> {
        let rows = sqlx::query(
            "SELECT message_id, sender, command, code_no, organisation, run_id, submission_no,
             outcome, reason FROM mail_commands ORDER BY no",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let outcome: String = r.try_get("outcome")?;
                let command: String = r.try_get("command")?;
                Ok(CommandRecord {
                    message_id: r.try_get("message_id")?,
                    sender: r.try_get("sender")?,
                    command: command.parse()?,
                    code_no: r.try_get("code_no")?,
                    organisation: r.try_get("organisation")?,
                    run_id: r.try_get("run_id")?,
                    submission_no: r.try_get("submission_no")?,
                    outcome: outcome.parse()?,
                    reason: r.try_get("reason")?,
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::mail::{Folder, NewSubmission, SubmissionStatus};

    fn message<'a>(key: &'a str) -> NewMessage<'a> {
        NewMessage {
            mailbox_key: key,
            message_id: key,
            content_key: key,
            sender: Some("admin@rxx.nhs.uk"),
            subject: "staff list",
            sent_date: None,
            raw: b"raw",
            folder: Folder::Processed,
            reason: None,
        }
    }

    #[test]
    fn codes_are_ten_unambiguous_characters_and_hash_as_typed() {
        let a = mint([7; 16]);
        let b = mint([8; 16]);
        assert_ne!(a, b);
        assert_eq!(a.len(), CODE_CHARS + 1);
        assert_eq!(&a[5..6], "-");
        assert!(a.replace('-', "").bytes().all(|c| ALPHABET.contains(&c)));
        assert_eq!(hash(&a), hash(&a.to_lowercase().replace('-', "")));
        assert_ne!(hash(&a), hash(&b));
    }

    #[tokio::test]
    async fn a_code_is_bound_to_its_file_and_used_once() {
        let dir = tempfile::tempdir().unwrap();
        let store = MailStore::open(dir.path()).await.unwrap();
        let now = Utc::now();
        let code = mint([1; 16]);
        let sub = NewSubmission {
            organisation: "RXX",
            sender: "admin@rxx.nhs.uk",
            file_name: "staff.csv",
            file: b"a,b\r\n",
            valid_rows: 1,
            refused_rows: 0,
        };
        let new = NewCode {
            code: &code,
            organisation: "RXX",
            purpose: CodePurpose::WaitingFile,
            expires_at: now + chrono::Duration::days(7),
        };
        store
            .receive(&message("older"), Some(&sub), &[], now)
            .await
            .unwrap();
        store
            .receive_issuing(&message("m1"), Some(&sub), &[], Some(&new), now)
            .await
            .unwrap();
        let pending = store
            .submissions(Some("RXX"), SubmissionStatus::Pending)
            .await
            .unwrap();
        let found = store.find_code(&code).await.unwrap().unwrap();
        assert_eq!(found.organisation, "RXX");
        assert_eq!(found.purpose, CodePurpose::WaitingFile);
        assert_eq!(found.submission_no, Some(pending[1].no));
        assert_eq!(found.run_id, None);
        assert_eq!(found.used, None);
        // Not stored as itself; another code, or a forged one, finds nothing.
        let raw: Vec<String> = sqlx::query_scalar("SELECT code_hash FROM mail_codes")
            .fetch_all(&store.pool)
            .await
            .unwrap();
        assert!(raw.iter().all(|h| !h.contains(&code.replace('-', ""))));
        assert!(store.find_code(&mint([2; 16])).await.unwrap().is_none());

        assert!(
            store
                .claim_code(found.no, "admin@rxx.nhs.uk", now)
                .await
                .unwrap()
        );
        assert!(
            !store
                .claim_code(found.no, "other@rxx.nhs.uk", now)
                .await
                .unwrap()
        );
        let used = store.find_code(&code).await.unwrap().unwrap();
        assert_eq!(used.used.unwrap().1, "admin@rxx.nhs.uk");
        store.release_code(found.no).await.unwrap();
        assert!(
            store
                .claim_code(found.no, "other@rxx.nhs.uk", now)
                .await
                .unwrap()
        );

        // Withdrawing the file also takes the older file it had replaced; only once.
        let older = store.withdraw(pending[1].no, now).await.unwrap().unwrap();
        assert_eq!(older, ["staff.csv"]);
        assert!(store.withdraw(pending[1].no, now).await.unwrap().is_none());
        assert!(
            store
                .submissions(Some("RXX"), SubmissionStatus::Pending)
                .await
                .unwrap()
                .is_empty()
        );
        let record = CommandRecord {
            message_id: "r1".into(),
            sender: Some("admin@rxx.nhs.uk".into()),
            command: Verb::Confirm,
            code_no: Some(found.no),
            organisation: Some("RXX".into()),
            run_id: None,
            submission_no: None,
            outcome: CommandOutcome::AwaitingSecond,
            reason: "first of two".into(),
        };
        store
            .answer_command(&message("r1"), &record, &[], now)
            .await
            .unwrap();
        assert_eq!(
            store.first_confirmations(found.no).await.unwrap(),
            ["admin@rxx.nhs.uk"]
        );
        assert_eq!(store.commands().await.unwrap(), [record]);
    }
}

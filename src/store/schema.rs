//! The state database's schema: one ordered list of versions for every table of
//! `state.sqlite` (runs and journal, sync, e-mail), applied by [`sqlite::migrate`].
//!
//! Versions keep the numbers they shipped with: the run journal's from 1, the sync tables'
//! from 101, the e-mail tables' from 201; a new version takes the next number of its part
//! and goes at the end of the list. The e-mail tables once noted their versions apart, in
//! `mail_schema` (1 and 2): [`adopt_earlier_versions`] moves those notes into
//! `schema_migrations` (as 201 and 202) once, so a database written then opens and upgrades
//! like any other.

use sqlx::sqlite::SqlitePool;

use super::StateError;
use super::sqlite::{self, Migration};

/// The versions, in the order they apply. Append; never change one that has shipped.
pub(super) const MIGRATIONS: &[Migration] = &[
    (
        1,
        "runs and journal",
        "CREATE TABLE runs (
        no INTEGER PRIMARY KEY,
        id TEXT NOT NULL UNIQUE,
        organisation TEXT NOT NULL,
        kind TEXT NOT NULL,
        source TEXT,
        status TEXT NOT NULL,
        created_at TEXT NOT NULL,
        finished_at TEXT,
        plan TEXT,
        note TEXT,
        created INTEGER NOT NULL DEFAULT 0,
        updated INTEGER NOT NULL DEFAULT 0,
        unchanged INTEGER NOT NULL DEFAULT 0,
        rejected INTEGER NOT NULL DEFAULT 0,
        failed INTEGER NOT NULL DEFAULT 0
    );
    CREATE INDEX runs_status ON runs (status);
    CREATE TABLE journal (
        run_id TEXT NOT NULL REFERENCES runs (id),
        seq INTEGER NOT NULL,
        op INTEGER NOT NULL,
        line INTEGER NOT NULL,
        kind TEXT NOT NULL,
        account_id TEXT NOT NULL,
        field TEXT,
        before_value TEXT,
        after_value TEXT,
        payload TEXT,
        state TEXT NOT NULL,
        message TEXT,
        PRIMARY KEY (run_id, seq)
    );
    CREATE INDEX journal_op ON journal (run_id, op);
    CREATE INDEX journal_account ON journal (account_id, field);",
    ),
    (
        101,
        "sync cursors and fingerprints",
        "CREATE TABLE sync_sources (
        source TEXT PRIMARY KEY,
        cursor TEXT,
        last_started TEXT,
        last_finished TEXT
    );
    CREATE TABLE sync_seen (
        source TEXT NOT NULL,
        anchor TEXT NOT NULL,
        fingerprint TEXT NOT NULL,
        PRIMARY KEY (source, anchor)
    );",
    ),
    (
        201,
        "mail messages, submissions, outbox and nightly runs",
        "CREATE TABLE mail_messages (
        no INTEGER PRIMARY KEY,
        mailbox_key TEXT NOT NULL UNIQUE,
        message_id TEXT NOT NULL UNIQUE,
        sender TEXT,
        subject TEXT NOT NULL,
        sent_date TEXT,
        received_at TEXT NOT NULL,
        raw BLOB NOT NULL,
        verdict TEXT NOT NULL,
        reason TEXT,
        folder TEXT NOT NULL,
        filed INTEGER NOT NULL DEFAULT 0
    );
    CREATE TABLE mail_submissions (
        no INTEGER PRIMARY KEY,
        message_no INTEGER NOT NULL UNIQUE REFERENCES mail_messages (no),
        organisation TEXT NOT NULL,
        sender TEXT NOT NULL,
        message_id TEXT NOT NULL,
        file_name TEXT NOT NULL,
        file BLOB NOT NULL,
        received_at TEXT NOT NULL,
        valid_rows INTEGER NOT NULL,
        refused_rows INTEGER NOT NULL,
        status TEXT NOT NULL,
        run_id TEXT,
        plan TEXT,
        updated_at TEXT NOT NULL
    );
    CREATE INDEX mail_submissions_status ON mail_submissions (status, organisation);
    CREATE TABLE mail_outbox (
        id INTEGER PRIMARY KEY,
        kind TEXT NOT NULL,
        organisation TEXT,
        recipients TEXT NOT NULL,
        message BLOB NOT NULL,
        created_at TEXT NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        next_attempt_at TEXT NOT NULL,
        last_error TEXT,
        sent_at TEXT
    );
    CREATE INDEX mail_outbox_due ON mail_outbox (sent_at, next_attempt_at);
    CREATE TABLE mail_nightly (
        no INTEGER PRIMARY KEY,
        started_at TEXT NOT NULL,
        finished_at TEXT
    );",
    ),
    (
        202,
        "mail content keys, delivery states, attempts and reply limits",
        // A Message-ID alone no longer makes a message known (senders reuse them): the
        // content key joins it, so mail_messages is rebuilt without UNIQUE (message_id).
        // Outbox e-mails get a delivery state; intake counts attempts per message; replies
        // to unknown senders are limited per address and day.
        "CREATE TABLE mail_messages_v2 (
        no INTEGER PRIMARY KEY,
        mailbox_key TEXT NOT NULL UNIQUE,
        message_id TEXT NOT NULL,
        content_key TEXT NOT NULL DEFAULT '',
        sender TEXT,
        subject TEXT NOT NULL,
        sent_date TEXT,
        received_at TEXT NOT NULL,
        raw BLOB,
        verdict TEXT NOT NULL,
        reason TEXT,
        folder TEXT NOT NULL,
        filed INTEGER NOT NULL DEFAULT 0
    );
    INSERT INTO mail_messages_v2 (no, mailbox_key, message_id, sender, subject, sent_date,
        received_at, raw, verdict, reason, folder, filed)
        SELECT no, mailbox_key, message_id, sender, subject, sent_date, received_at, raw,
        verdict, reason, folder, filed FROM mail_messages;
    DROP TABLE mail_messages;
    ALTER TABLE mail_messages_v2 RENAME TO mail_messages;
    CREATE INDEX mail_messages_id ON mail_messages (message_id, content_key);
    CREATE INDEX mail_messages_received ON mail_messages (received_at);
    ALTER TABLE mail_outbox ADD COLUMN state TEXT NOT NULL DEFAULT 'waiting';
    ALTER TABLE mail_outbox ADD COLUMN closed_reason TEXT;
    ALTER TABLE mail_outbox ADD COLUMN operators_told INTEGER NOT NULL DEFAULT 0;
    UPDATE mail_outbox SET state = 'sent' WHERE sent_at IS NOT NULL;
    CREATE INDEX mail_outbox_state ON mail_outbox (state, next_attempt_at);
    CREATE TABLE mail_attempts (
        mailbox_key TEXT PRIMARY KEY,
        attempts INTEGER NOT NULL,
        last_error TEXT,
        updated_at TEXT NOT NULL
    );
    CREATE TABLE mail_reply_limits (
        address TEXT NOT NULL,
        day TEXT NOT NULL,
        PRIMARY KEY (address, day)
    );",
    ),
    (
        2,
        "runs count renames",
        "ALTER TABLE runs ADD COLUMN renamed INTEGER NOT NULL DEFAULT 0;",
    ),
    (
        3,
        "runs record their provenance; sync runs their lines' entries",
        // A run before this keeps its free-text `source` only (its channel is NULL).
        "ALTER TABLE runs ADD COLUMN channel TEXT;
    ALTER TABLE runs ADD COLUMN source_name TEXT;
    ALTER TABLE runs ADD COLUMN sender TEXT;
    ALTER TABLE runs ADD COLUMN approved_by TEXT;
    ALTER TABLE runs ADD COLUMN applied_at TEXT;
    CREATE TABLE run_entries (
        run_id TEXT NOT NULL REFERENCES runs (id),
        line INTEGER NOT NULL,
        entry TEXT NOT NULL,
        PRIMARY KEY (run_id, line)
    );",
    ),
    (
        210,
        "reminders to organisations that have sent nothing for a while",
        // One row per organisation the service has seen: when it was first seen (the start
        // of its quiet period if it never sends anything) and the quiet period its last
        // reminder was about, so each period gets one reminder.
        "CREATE TABLE organisation_reminders (
        organisation TEXT PRIMARY KEY,
        first_seen TEXT NOT NULL,
        reminded_at TEXT,
        reminded_since TEXT
    );",
    ),
    (
        203,
        "mail confirmation codes and the record of replies using them",
        // A code is kept only as its hash, bound to one organisation and one held run or
        // waiting file; every CONFIRM/CANCEL reply is recorded, whatever became of it.
        "CREATE TABLE mail_codes (
        no INTEGER PRIMARY KEY,
        code_hash TEXT NOT NULL UNIQUE,
        organisation TEXT NOT NULL,
        purpose TEXT NOT NULL,
        run_id TEXT,
        submission_no INTEGER,
        created_at TEXT NOT NULL,
        expires_at TEXT NOT NULL,
        used_at TEXT,
        used_by TEXT
    );
    CREATE INDEX mail_codes_run ON mail_codes (run_id);
    CREATE TABLE mail_commands (
        no INTEGER PRIMARY KEY,
        at TEXT NOT NULL,
        message_id TEXT NOT NULL,
        sender TEXT,
        command TEXT NOT NULL,
        code_no INTEGER,
        organisation TEXT,
        run_id TEXT,
        submission_no INTEGER,
        outcome TEXT NOT NULL,
        reason TEXT NOT NULL
    );
    CREATE INDEX mail_commands_code ON mail_commands (code_no, outcome);",
    ),
    (
        301,
        "operator audit and approvals",
        // Every operator action of the console, and the approvals a held run has gathered
        // (a run over the two-person size needs two).
        "CREATE TABLE operator_audit (
        no INTEGER PRIMARY KEY,
        at TEXT NOT NULL,
        operator TEXT NOT NULL,
        action TEXT NOT NULL,
        target TEXT,
        detail TEXT,
        peer TEXT
    );
    CREATE TABLE run_approvals (
        run_id TEXT NOT NULL,
        operator TEXT NOT NULL,
        reason TEXT NOT NULL,
        at TEXT NOT NULL,
        PRIMARY KEY (run_id, operator)
    );",
    ),
    (
        102,
        "sync sources: the last scheduled sync's error",
        "ALTER TABLE sync_sources ADD COLUMN last_error TEXT;
    ALTER TABLE sync_sources ADD COLUMN last_error_at TEXT;",
    ),
    (
        204,
        "mail outbox: the submission each e-mail is about",
        "ALTER TABLE mail_outbox ADD COLUMN submission_no INTEGER;
    CREATE INDEX mail_outbox_submission ON mail_outbox (submission_no);",
    ),
];

/// The e-mail tables' earlier notes: (version in `mail_schema`, version in [`MIGRATIONS`]).
const MAIL_SCHEMA: &[(i64, i64)] = &[(1, 201), (2, 202)];

/// Moves the versions noted in `mail_schema` into `schema_migrations` (see the module's
/// header) and drops `mail_schema`, in one transaction; without it, nothing is done.
pub(super) async fn adopt_earlier_versions(pool: &SqlitePool) -> Result<(), StateError> {
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
    let earlier: Option<String> = sqlx::query_scalar(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name = 'mail_schema'",
    )
    .fetch_optional(&mut *tx)
    .await?;
    if earlier.is_none() {
        return Ok(tx.commit().await?);
    }
    sqlx::raw_sql(sqlite::VERSIONS_TABLE)
        .execute(&mut *tx)
        .await?;
    let noted: Vec<i64> = sqlx::query_scalar("SELECT version FROM mail_schema")
        .fetch_all(&mut *tx)
        .await?;
    for (was, now) in MAIL_SCHEMA {
        if !noted.contains(was) {
            continue;
        }
        let description = MIGRATIONS
            .iter()
            .find(|(v, _, _)| v == now)
            .map_or("", |(_, d, _)| d);
        sqlx::query("INSERT OR IGNORE INTO schema_migrations (version, description) VALUES (?, ?)")
            .bind(now)
            .bind(description)
            .execute(&mut *tx)
            .await?;
    }
    sqlx::query("DROP TABLE mail_schema")
        .execute(&mut *tx)
        .await?;
    Ok(tx.commit().await?)
}

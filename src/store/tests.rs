//! The state database's schema across versions: a file written before one list covered it
//! opens and upgrades, with its rows intact.

use super::*;
use crate::model::Field;
use crate::sources::Cursor;
use crate::store::mail::{Folder, SubmissionStatus};

// The schema as the earlier code wrote it, each part opening the file on its own: the run
// journal and the sync tables noted in `schema_migrations` (versions 1 and 101), the e-mail
// tables in `mail_schema` (versions 1 and 2).
const OLD_RUNS: &str = "CREATE TABLE runs (
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
    CREATE INDEX journal_account ON journal (account_id, field);";
const OLD_SYNC: &str = "CREATE TABLE sync_sources (
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
    );";
const OLD_MAIL_1: &str = "CREATE TABLE mail_messages (
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
    );";
const OLD_MAIL_2: &str = "CREATE TABLE mail_messages_v2 (
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
    );";

const OLD_VERSIONS: &str = "CREATE TABLE schema_migrations (
    version INTEGER PRIMARY KEY,
    description TEXT NOT NULL
)";

async fn raw_pool(dir: &Path) -> SqlitePool {
    let options = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(dir.join("state.sqlite"))
        .create_if_missing(true);
    SqlitePool::connect_with(options).await.unwrap()
}

async fn exec(pool: &SqlitePool, sql: &str) {
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned()))
        .execute(pool)
        .await
        .unwrap();
}

async fn versions(db: &StateDb) -> Vec<i64> {
    sqlx::query_scalar("SELECT version FROM schema_migrations ORDER BY version")
        .fetch_all(&db.pool)
        .await
        .unwrap()
}

async fn tables(pool: &SqlitePool) -> Vec<(String, String, Option<String>)> {
    sqlx::query_as(
        "SELECT type, name, sql FROM sqlite_master WHERE name NOT LIKE 'sqlite_%' ORDER BY name",
    )
    .fetch_all(pool)
    .await
    .unwrap()
}

const RAW: &[u8] = b"Subject: staff\r\nMessage-ID: <m1@rxx>\r\n\r\nbody\r\n";

#[tokio::test]
async fn a_database_written_before_one_schema_list_opens_and_upgrades() {
    let dir = tempfile::tempdir().unwrap();
    let old = raw_pool(dir.path()).await;
    exec(&old, OLD_VERSIONS).await;
    exec(&old, OLD_RUNS).await;
    exec(&old, OLD_SYNC).await;
    exec(
        &old,
        "INSERT INTO schema_migrations VALUES (1, 'runs and journal'),
         (101, 'sync cursors and fingerprints')",
    )
    .await;
    exec(
        &old,
        "CREATE TABLE mail_schema (version INTEGER PRIMARY KEY)",
    )
    .await;
    exec(&old, OLD_MAIL_1).await;
    exec(&old, OLD_MAIL_2).await;
    exec(&old, "INSERT INTO mail_schema VALUES (1), (2)").await;
    exec(
        &old,
        "INSERT INTO runs (id, organisation, kind, status, created_at, updated)
         VALUES ('r1', 'RXX', 'apply', 'applied', '2026-01-01T00:00:00+00:00', 1);
         INSERT INTO journal (run_id, seq, op, line, kind, account_id, field, before_value,
         after_value, state) VALUES ('r1', 0, 0, 2, 'update', 'P1', 'JobTitle', 'Nurse',
         'Sister', 'done');
         INSERT INTO sync_sources (source, cursor) VALUES ('ad', 'c1');
         INSERT INTO sync_seen VALUES ('ad', 'a1', 'f1');
         INSERT INTO mail_outbox (kind, recipients, message, created_at, next_attempt_at)
         VALUES ('ack', '[\"admin@rxx.nhs.uk\"]', X'00', '2026-01-01T00:00:00+00:00',
         '2026-01-01T00:00:00+00:00');",
    )
    .await;
    // A message stored before content keys were kept, with its submission.
    sqlx::query(
        "INSERT INTO mail_messages (no, mailbox_key, message_id, subject, received_at, raw,
         verdict, folder) VALUES (1, 'k1', 'm1@rxx', 'staff', '2026-01-01T00:00:00+00:00', ?,
         'accepted', 'processed')",
    )
    .bind(RAW)
    .execute(&old)
    .await
    .unwrap();
    exec(
        &old,
        "INSERT INTO mail_submissions (message_no, organisation, sender, message_id,
         file_name, file, received_at, valid_rows, refused_rows, status, updated_at)
         VALUES (1, 'RXX', 'admin@rxx.nhs.uk', 'm1@rxx', 'staff.csv', X'00',
         '2026-01-01T00:00:00+00:00', 1, 0, 'pending', '2026-01-01T00:00:00+00:00')",
    )
    .await;
    old.close().await;

    let db = StateDb::open(dir.path()).await.unwrap();
    assert_eq!(
        versions(&db).await,
        [1, 2, 3, 101, 102, 201, 202, 203, 204, 210, 301]
    );
    let names: Vec<String> = tables(&db.pool).await.into_iter().map(|t| t.1).collect();
    assert!(!names.contains(&"mail_schema".to_owned()), "{names:?}");

    // Every part reads its rows back.
    let run = db.run("r1").await.unwrap();
    assert_eq!(run.status, RunStatus::Applied);
    assert_eq!(run.counts.updated, 1);
    let done = db.done_changes("r1").await.unwrap();
    assert_eq!(done.len(), 1);
    assert_eq!(done[0].change.field, Field::JobTitle);
    let sync = db.sync();
    assert_eq!(
        sync.cursor("ad").await.unwrap(),
        Some(Cursor("c1".to_owned()))
    );
    assert_eq!(sync.fingerprints("ad").await.unwrap().len(), 1);
    let mail = db.mail();
    let key = crate::store::mail::content_key(RAW);
    assert_eq!(
        mail.known("elsewhere", "m1@rxx", &key).await.unwrap(),
        Some(Folder::Processed),
        "the old message got its content key"
    );
    let pending = mail
        .submissions(Some("RXX"), SubmissionStatus::Pending)
        .await;
    assert_eq!(pending.unwrap().len(), 1);
    assert_eq!(
        mail.unsent(chrono::Utc::now(), true).await.unwrap().len(),
        1
    );

    // The upgraded file has the schema a new one gets, and opening it again changes nothing.
    let fresh = tempfile::tempdir().unwrap();
    let new = StateDb::open(fresh.path()).await.unwrap();
    assert_eq!(tables(&db.pool).await, tables(&new.pool).await);
    drop(db);
    let again = StateDb::open(dir.path()).await.unwrap();
    assert_eq!(
        versions(&again).await,
        [1, 2, 3, 101, 102, 201, 202, 203, 204, 210, 301]
    );
    assert_eq!(again.runs().await.unwrap().len(), 1);
}

#[tokio::test]
async fn a_database_with_the_first_mail_tables_only_gets_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let old = raw_pool(dir.path()).await;
    exec(
        &old,
        "CREATE TABLE mail_schema (version INTEGER PRIMARY KEY)",
    )
    .await;
    exec(&old, OLD_MAIL_1).await;
    exec(&old, "INSERT INTO mail_schema VALUES (1)").await;
    sqlx::query(
        "INSERT INTO mail_messages (no, mailbox_key, message_id, subject, received_at, raw,
         verdict, folder) VALUES (7, 'k7', 'm7@rxx', 'staff', '2026-01-01T00:00:00+00:00', ?,
         'accepted', 'processed')",
    )
    .bind(RAW)
    .execute(&old)
    .await
    .unwrap();
    exec(
        &old,
        "INSERT INTO mail_submissions (message_no, organisation, sender, message_id,
         file_name, file, received_at, valid_rows, refused_rows, status, updated_at)
         VALUES (7, 'RXX', 'admin@rxx.nhs.uk', 'm7@rxx', 'staff.csv', X'00',
         '2026-01-01T00:00:00+00:00', 1, 0, 'pending', '2026-01-01T00:00:00+00:00')",
    )
    .await;
    old.close().await;

    // Version 202 rebuilds the messages table the submissions refer to: the reference holds.
    let db = StateDb::open(dir.path()).await.unwrap();
    assert_eq!(
        versions(&db).await,
        [1, 2, 3, 101, 102, 201, 202, 203, 204, 210, 301]
    );
    let mail = db.mail();
    let key = crate::store::mail::content_key(RAW);
    assert_eq!(
        mail.known("other", "m7@rxx", &key).await.unwrap(),
        Some(Folder::Processed)
    );
    let joined: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM mail_submissions s JOIN mail_messages m ON m.no = s.message_no",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(joined, 1);
    assert!(db.runs().await.unwrap().is_empty());
    assert_eq!(db.sync().cursor("ad").await.unwrap(), None);
    let fk: i64 = sqlx::query_scalar("PRAGMA foreign_keys")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(fk, 1, "foreign keys are enforced again after the upgrade");
}

#[tokio::test]
async fn an_upgrade_that_leaves_a_dangling_reference_is_refused_whole() {
    let dir = tempfile::tempdir().unwrap();
    let pool = sqlite::open(&dir.path().join("x.sqlite")).await.unwrap();
    let good: &[sqlite::Migration] = &[(
        1,
        "parents and children",
        "CREATE TABLE parents (id INTEGER PRIMARY KEY);
         CREATE TABLE children (parent INTEGER NOT NULL REFERENCES parents (id));
         INSERT INTO parents VALUES (1); INSERT INTO children VALUES (1);",
    )];
    assert_eq!(sqlite::migrate(&pool, good).await.unwrap(), [1]);
    assert!(sqlite::migrate(&pool, good).await.unwrap().is_empty());
    let bad: &[sqlite::Migration] = &[good[0], (2, "drops the parents", "DELETE FROM parents;")];
    let err = sqlite::migrate(&pool, bad).await.unwrap_err();
    assert!(
        matches!(
            err,
            SqliteError::ForeignKeys {
                version: 2,
                rows: 1
            }
        ),
        "{err}"
    );
    let noted: Vec<i64> = sqlx::query_scalar("SELECT version FROM schema_migrations")
        .fetch_all(&pool)
        .await
        .unwrap();
    assert_eq!(noted, [1], "nothing of the refused upgrade stays");
    let parents: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM parents")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(parents, 1);
}

fn one_update_plan(run: &str) -> crate::plan::Plan {
    use crate::model::Change;
    use crate::model::{OdsCode, PortalId};
    use crate::plan::{Action, Plan, PlannedRow};
    Plan {
        run: run.to_owned(),
        organisation: OdsCode::new_unchecked("RXX"),
        rows: vec![PlannedRow {
            line: 2,
            action: Action::Update {
                id: PortalId::new_unchecked("P1"),
                changes: vec![Change {
                    field: Field::JobTitle,
                    before: Some("Nurse".to_owned()),
                    after: Some("Sister".to_owned()),
                }],
                renamed: false,
            },
            message: String::new(),
        }],
    }
}

#[tokio::test]
async fn an_unknown_journal_state_or_kind_reads_as_corrupt() {
    let dir = tempfile::tempdir().unwrap();
    let db = StateDb::open(dir.path()).await.unwrap();
    let now = chrono::Utc::now();
    db.journal(&one_update_plan("r1"), "apply", None, &[], now)
        .await
        .unwrap();
    assert_eq!(db.outcomes("r1").await.unwrap()[0].state, OpState::Intended);

    exec(&db.pool, "UPDATE journal SET state = 'half-done'").await;
    let err = db.outcomes("r1").await.unwrap_err();
    assert!(
        matches!(&err, StateError::Corrupt(what) if what.contains("half-done")),
        "{err}"
    );
    assert!(err.to_string().contains("cannot read"), "{err}");

    exec(
        &db.pool,
        "UPDATE journal SET state = 'intended', kind = 'delete'",
    )
    .await;
    let err = db.pending("r1", 0, 10).await.unwrap_err();
    assert!(
        matches!(&err, StateError::Corrupt(what) if what.contains("delete")),
        "an unknown kind is not taken for an update: {err}"
    );

    exec(&db.pool, "UPDATE runs SET status = 'paused'").await;
    let err = db.run("r1").await.unwrap_err();
    assert!(
        matches!(&err, StateError::Corrupt(what) if what.contains("paused")),
        "{err}"
    );
}

#[test]
fn every_stored_name_reads_back_as_itself() {
    for kind in [OpKind::Create, OpKind::Update] {
        assert_eq!(kind.as_str().parse::<OpKind>().unwrap(), kind);
    }
    for state in [OpState::Intended, OpState::Done, OpState::Failed] {
        assert_eq!(state.as_str().parse::<OpState>().unwrap(), state);
    }
    for status in [
        RunStatus::Held,
        RunStatus::Applying,
        RunStatus::Applied,
        RunStatus::Rejected,
        RunStatus::Reverted,
    ] {
        assert_eq!(status.as_str().parse::<RunStatus>().unwrap(), status);
    }
    // Names are matched as stored: another spelling is not one of them.
    assert!(matches!(
        "Done".parse::<OpState>(),
        Err(StateError::Corrupt(_))
    ));
}

#[tokio::test]
async fn a_database_that_counts_renames_keeps_its_versions_and_counts() {
    let dir = tempfile::tempdir().unwrap();
    let old = raw_pool(dir.path()).await;
    exec(&old, OLD_VERSIONS).await;
    exec(&old, OLD_RUNS).await;
    exec(
        &old,
        "ALTER TABLE runs ADD COLUMN renamed INTEGER NOT NULL DEFAULT 0;
         INSERT INTO schema_migrations VALUES (1, 'runs and journal'), (2, 'runs count renames');
         INSERT INTO runs (id, organisation, kind, status, created_at, updated, renamed)
         VALUES ('r1', 'RXX', 'apply', 'applied', '2026-01-01T00:00:00+00:00', 3, 2);
         INSERT INTO runs (id, organisation, kind, source, status, created_at, updated)
         VALUES ('r2', 'RXX', 'apply', 'e-mail from admin@rxx.nhs.uk (staff.csv)', 'applied',
         '2026-01-02T00:00:00+00:00', 1);
         INSERT INTO journal (run_id, seq, op, line, kind, account_id, field, before_value,
         after_value, state) VALUES ('r2', 0, 0, 4, 'update', 'P1', 'JobTitle', 'Nurse',
         'Sister', 'done');",
    )
    .await;
    exec(
        &old,
        "CREATE TABLE mail_schema (version INTEGER PRIMARY KEY)",
    )
    .await;
    exec(&old, OLD_MAIL_1).await;
    exec(&old, OLD_MAIL_2).await;
    exec(&old, "INSERT INTO mail_schema VALUES (1), (2)").await;
    old.close().await;

    let db = StateDb::open(dir.path()).await.unwrap();
    assert_eq!(
        versions(&db).await,
        [1, 2, 3, 101, 102, 201, 202, 203, 204, 210, 301]
    );
    let counts = db.run("r1").await.unwrap().counts;
    assert_eq!((counts.updated, counts.renamed), (3, 2));
    // A run recorded before runs kept their provenance shows its source as it was written.
    let old_run = db.run("r2").await.unwrap();
    assert_eq!(
        old_run.source.as_deref(),
        Some("e-mail from admin@rxx.nhs.uk (staff.csv)")
    );
    assert_eq!((old_run.provenance, old_run.approved_by), (None, None));
    let history = db.history("P1").await.unwrap();
    assert_eq!(history.len(), 1);
    let h = &history[0];
    assert_eq!(
        (h.run.as_str(), h.line, h.at.as_str()),
        ("r2", 4, "2026-01-02T00:00:00+00:00")
    );
    assert_eq!(
        h.source.as_deref(),
        Some("e-mail from admin@rxx.nhs.uk (staff.csv)")
    );
    assert_eq!((&h.provenance, &h.entry), (&None, &None));
    assert_eq!(
        h.change,
        HistoryChange::Field {
            field: Field::JobTitle,
            before: Some("Nurse".to_owned()),
            after: Some("Sister".to_owned()),
        }
    );
    // A run recorded now keeps its typed provenance and per-line entries beside the old.
    let mut p =
        crate::model::Provenance::sync("rxx-sql", [(2, "42".to_owned())].into_iter().collect());
    db.journal(
        &one_update_plan("r3"),
        "apply",
        Some(&p),
        &[],
        chrono::Utc::now(),
    )
    .await
    .unwrap();
    let new_run = db.run("r3").await.unwrap();
    assert_eq!(new_run.source.as_deref(), Some("sync rxx-sql"));
    p.entries.clear();
    assert_eq!(new_run.provenance, Some(p));
    let entry: String =
        sqlx::query_scalar("SELECT entry FROM run_entries WHERE run_id = 'r3' AND line = 2")
            .fetch_one(&db.pool)
            .await
            .unwrap();
    assert_eq!(entry, "42");
    assert!(db.sync().fingerprints("ad").await.unwrap().is_empty());
    assert_eq!(db.mail().summary().await.unwrap(), (0, 0, 0));
}

/// The schema copied above is the one that shipped: a version that has shipped is never
/// changed (the list is only appended to), so the copies and the list must agree.
#[test]
fn the_versions_that_shipped_are_never_changed() {
    let words = |sql: &str| sql.split_whitespace().collect::<Vec<_>>().join(" ");
    let shipped = |version: i64| {
        schema::MIGRATIONS
            .iter()
            .find(|m| m.0 == version)
            .map(|m| words(m.2))
    };
    assert_eq!(shipped(1), Some(words(OLD_RUNS)));
    assert_eq!(shipped(101), Some(words(OLD_SYNC)));
    assert_eq!(shipped(201), Some(words(OLD_MAIL_1)));
    assert_eq!(shipped(202), Some(words(OLD_MAIL_2)));
}

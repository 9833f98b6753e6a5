//! Directory sync from SQL tables, through the library's `sync::sync`, against real
//! PostgreSQL and MariaDB (as `scripts/sql/up.sh` starts them on loopback) and SQLite (a file
//! in a temporary folder), into the embedded directory. Endpoints come from `PG_URL` and
//! `MARIADB_URL` (`scripts/test.sh` sets them); without them the PostgreSQL and MariaDB tests
//! fail and say so. Every test works on tables of its own.

// Test code: a failure is a panic.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU32, Ordering};

use sqlx::AnyConnection;
use sqlx::{AssertSqlSafe, Connection};

use push_connector::apply::{Context, SequenceMinter};
use push_connector::config::Config;
use push_connector::directory::local::LocalDirectory;
use push_connector::directory::{Account, Directory, Status};
use push_connector::model::{Field, OdsCode, PortalId};
use push_connector::report::RowResultKind;
use push_connector::sources::config::SqlConfig;
use push_connector::sources::sql::SqlSource;
use push_connector::sources::{AnySource, Source, SourceError, WriteBack};
use push_connector::store::StateDb;
use push_connector::store::SyncStore;
use push_connector::sync::{self, SyncOptions, Synced};
use push_connector::validate::Rules;

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!(
            "{name} is not set: the SQL source tests need the test SQL servers. Run them with \
             scripts/test.sh (it installs and starts PostgreSQL and MariaDB, and sets PG_URL \
             and MARIADB_URL), or: scripts/sql/up.sh; source /tmp/push-connector-sql/env.sh"
        )
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Postgres,
    MariaDb,
    Sqlite,
}

/// One database to test against, and how to say things in its dialect.
struct Backend {
    kind: Kind,
    url: String,
    /// Keeps a SQLite file alive.
    _dir: Option<tempfile::TempDir>,
}

impl Backend {
    fn postgres() -> Backend {
        Backend {
            kind: Kind::Postgres,
            url: env("PG_URL"),
            _dir: None,
        }
    }

    fn mariadb() -> Backend {
        Backend {
            kind: Kind::MariaDb,
            url: env("MARIADB_URL"),
            _dir: None,
        }
    }

    fn sqlite() -> Backend {
        let dir = tempfile::tempdir().unwrap();
        let url = format!(
            "sqlite://{}?mode=rwc",
            dir.path().join("source.sqlite").display()
        );
        Backend {
            kind: Kind::Sqlite,
            url,
            _dir: Some(dir),
        }
    }

    async fn connect(&self) -> AnyConnection {
        sqlx::any::install_default_drivers();
        AnyConnection::connect(&self.url)
            .await
            .unwrap_or_else(|e| panic!("connecting to {:?}: {e}", self.kind))
    }

    /// `CREATE TABLE` with an `updated_at` the database moves on every UPDATE. `anchor` is
    /// the type of the `emp_no` column.
    fn staff_table(&self, table: &str, anchor_type: &str) -> Vec<String> {
        let columns = "first_name VARCHAR(100), last_name VARCHAR(100), email VARCHAR(200), \
                       job_title VARCHAR(200), portal_id VARCHAR(64), nhs_email VARCHAR(200), \
                       active INTEGER NOT NULL DEFAULT 1";
        match self.kind {
            Kind::Postgres => vec![
                format!(
                    "CREATE TABLE {table} (emp_no {anchor_type} PRIMARY KEY, {columns}, \
                     updated_at TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp())"
                ),
                format!(
                    "CREATE FUNCTION {table}_touch() RETURNS trigger LANGUAGE plpgsql AS \
                     $$ BEGIN NEW.updated_at := clock_timestamp(); RETURN NEW; END $$"
                ),
                format!(
                    "CREATE TRIGGER {table}_touch BEFORE UPDATE ON {table} FOR EACH ROW \
                     EXECUTE FUNCTION {table}_touch()"
                ),
            ],
            Kind::MariaDb => vec![format!(
                "CREATE TABLE {table} (emp_no {anchor_type} PRIMARY KEY, {columns}, \
                 updated_at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) \
                 ON UPDATE CURRENT_TIMESTAMP(6))"
            )],
            Kind::Sqlite => vec![
                format!(
                    "CREATE TABLE {table} (emp_no {anchor_type} PRIMARY KEY, {columns}, \
                     updated_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f', 'now')))"
                ),
                format!(
                    "CREATE TRIGGER {table}_touch AFTER UPDATE ON {table} FOR EACH ROW \
                     WHEN NEW.updated_at = OLD.updated_at BEGIN \
                     UPDATE {table} SET updated_at = strftime('%Y-%m-%d %H:%M:%f', 'now') \
                     WHERE emp_no = NEW.emp_no; END"
                ),
            ],
        }
    }

    /// The type of an anchor column holding whole numbers.
    fn integer(&self) -> &'static str {
        match self.kind {
            Kind::Postgres => "INTEGER",
            Kind::MariaDb => "INT",
            Kind::Sqlite => "INTEGER",
        }
    }

    /// A parameter in this dialect (1-based).
    fn p(&self, n: usize) -> String {
        match self.kind {
            Kind::Postgres => format!("${n}"),
            Kind::MariaDb | Kind::Sqlite => "?".to_owned(),
        }
    }
}

/// A table name no other test (or earlier run) uses.
fn unique(prefix: &str) -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let random = uuid::Uuid::new_v4().simple().to_string();
    format!(
        "{prefix}_{}_{}",
        NEXT.fetch_add(1, Ordering::Relaxed),
        &random[..8]
    )
}

async fn exec(conn: &mut AnyConnection, sql: &str) {
    sqlx::query(AssertSqlSafe(sql.to_owned()))
        .execute(conn)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

/// Runs a statement with text parameters (NULL for `None`).
async fn exec_with(conn: &mut AnyConnection, sql: &str, params: &[Option<&str>]) {
    let mut q = sqlx::query(AssertSqlSafe(sql.to_owned()));
    for p in params {
        q = q.bind(p.map(str::to_owned));
    }
    q.execute(conn)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

/// One text column of the row with this anchor.
async fn cell(b: &Backend, table: &str, column: &str, anchor: &str) -> Option<String> {
    let mut conn = b.connect().await;
    let text = match b.kind {
        Kind::Postgres => format!("CAST({column} AS text)"),
        Kind::MariaDb => format!("CAST({column} AS CHAR)"),
        Kind::Sqlite => format!("CAST({column} AS TEXT)"),
    };
    let anchor_text = match b.kind {
        Kind::Postgres => "CAST(emp_no AS text)",
        Kind::MariaDb => "CAST(emp_no AS CHAR)",
        Kind::Sqlite => "CAST(emp_no AS TEXT)",
    };
    let sql = format!(
        "SELECT {text} FROM {table} WHERE {anchor_text} = {}",
        b.p(1)
    );
    sqlx::query_scalar::<_, Option<String>>(AssertSqlSafe(sql))
        .bind(anchor.to_owned())
        .fetch_one(&mut conn)
        .await
        .unwrap()
}

async fn count(b: &Backend, table: &str) -> i64 {
    let mut conn = b.connect().await;
    sqlx::query_scalar::<_, i64>(AssertSqlSafe(format!("SELECT COUNT(*) FROM {table}")))
        .fetch_one(&mut conn)
        .await
        .unwrap()
}

/// (emp_no, first, last, email, job title)
const PEOPLE: &[(&str, &str, &str, &str, &str)] = &[
    ("1001", "Anne", "Lee", "anne.lee@nhs.net", "Consultant"),
    ("1002", "Ben", "Carter", "ben.carter@nhs.net", "Staff Nurse"),
    (
        "1003",
        "Chloe",
        "Patel",
        "chloe.patel@nhs.net",
        "Pharmacist",
    ),
    ("1004", "Dev", "Singh", "dev.singh@nhs.net", "Porter"),
    ("1005", "Erin", "O'Neill", "erin.oneill@nhs.net", "Midwife"),
    (
        "1006",
        "Femi",
        "Adeyemi",
        "femi.adeyemi@nhs.net",
        "Radiographer",
    ),
];

/// Inserts rows; PostgreSQL needs to be told when `emp_no` is a number.
async fn insert_people(b: &Backend, table: &str, people: &[(&str, &str, &str, &str, &str)]) {
    let mut conn = b.connect().await;
    let numeric = people
        .iter()
        .all(|p| p.0.chars().all(|c| c.is_ascii_digit()));
    let sql = format!(
        "INSERT INTO {table} (emp_no, first_name, last_name, email, job_title) \
         VALUES ({}, {}, {}, {}, {})",
        match b.kind {
            Kind::Postgres if numeric => "CAST($1 AS INTEGER)".to_owned(),
            _ => b.p(1),
        },
        b.p(2),
        b.p(3),
        b.p(4),
        b.p(5)
    );
    for (id, first, last, email, job) in people {
        exec_with(
            &mut conn,
            &sql,
            &[Some(id), Some(first), Some(last), Some(email), Some(job)],
        )
        .await;
    }
}

/// A connector deployment (embedded directory and state in a temporary folder) with one SQL
/// source, `hr`.
struct Deployment {
    dir: tempfile::TempDir,
    config: Config,
    directory: LocalDirectory,
    state: StateDb,
    store: SyncStore,
    rules: Rules,
    minter: SequenceMinter,
    runs: u32,
}

impl Deployment {
    /// `sql` is the body of `[source.sql]` after the URL.
    async fn new(b: &Backend, sql: &str) -> Deployment {
        let dir = tempfile::tempdir().unwrap();
        let codes = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("samples/codes");
        let toml = format!(
            "[service]\ndomains = [\"nhs.net\"]\nstate_dir = \"{state}\"\n\
             [validation]\ntitles = \"{c}/titles.txt\"\n\
             [directory]\npath = \"{state}/directory.sqlite\"\n\
             [[organisation]]\ncode = \"RXX\"\n\
             [[source]]\nname = \"hr\"\norganisations = [\"RXX\"]\ncreate_accounts = true\n\
             [source.sql]\nurl = \"{url}\"\n{sql}\n\
             [source.map]\nFirstName = \"first_name\"\nLastName = \"last_name\"\n\
             Email = \"email\"\nJobTitle = \"job_title\"\n\
             [source.constant]\nOrganisation = \"RXX\"\n\
             [source.write_back]\nID = \"portal_id\"\nEmail = \"nhs_email\"\n",
            state = dir.path().display(),
            c = codes.display(),
            url = b.url,
        );
        let path = dir.path().join("connector.toml");
        std::fs::write(&path, toml).unwrap();
        let config = Config::load_with_env(Some(&path), &BTreeMap::new()).unwrap();
        let directory = LocalDirectory::open(&config.directory.path).await.unwrap();
        directory.add_organisation("RXX", &[]).await.unwrap();
        let state = StateDb::open(&config.service.state_dir).await.unwrap();
        let store = SyncStore::open(&config.service.state_dir).await.unwrap();
        let rules = Rules::from_config(&config).unwrap();
        Deployment {
            dir,
            config,
            directory,
            state,
            store,
            rules,
            minter: SequenceMinter {
                prefix: "P".to_owned(),
                next: 0,
            },
            runs: 0,
        }
    }

    async fn source(&self) -> AnySource {
        let source = self.config.source("hr").unwrap();
        AnySource::open(source)
            .await
            .unwrap_or_else(|e| panic!("opening the source: {e}"))
    }

    async fn sync(&mut self, options: SyncOptions) -> Synced {
        let source_config = self.config.source("hr").unwrap().clone();
        let mut source = self.source().await;
        self.runs += 1;
        let ctx = Context {
            directory: &self.directory,
            state: &self.state,
            passwords: self.dir.path().join("initial-passwords.csv"),
            progress: &|_, _| {},
        };
        sync::sync(
            &self.config,
            &source_config,
            &mut source,
            &self.rules,
            &ctx,
            &self.store,
            &options,
            &format!("sync-{}", self.runs),
            &mut self.minter,
            chrono::Utc::now(),
        )
        .await
        .unwrap_or_else(|e| panic!("sync: {e}"))
    }

    async fn delta(&mut self) -> Synced {
        self.sync(SyncOptions::default()).await
    }

    async fn account(&self, anchor: &str) -> Account {
        self.directory
            .by_external_sync_id("RXX", anchor)
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("no account for {anchor}"))
    }

    /// `history ACCOUNT --json` through the binary, on this deployment.
    fn history(&self, account: &str) -> serde_json::Value {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_push-connector"))
            .arg("--config")
            .arg(self.dir.path().join("connector.toml"))
            .args(["history", account, "--json"])
            .env_remove("PUSH_CONNECTOR_CONFIG")
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        serde_json::from_slice(&out.stdout).unwrap()
    }

    async fn cursor(&self) -> Option<String> {
        self.store.cursor("hr").await.unwrap().map(|c| c.0)
    }
}

/// Rows of a sync by result, as (ExternalSyncID, result), sorted.
fn results(s: &Synced) -> Vec<(String, RowResultKind)> {
    let column = s.submission.column_of(Field::ExternalSyncId).unwrap();
    let mut rows: Vec<(String, RowResultKind)> = s
        .reports
        .iter()
        .map(|r| {
            let row = &s.submission.rows[(r.line - 2) as usize];
            (row.cells.get(column).unwrap().to_owned(), r.result)
        })
        .collect();
    rows.sort();
    rows
}

/// Planned nothing and wrote nothing back.
fn quiet(s: &Synced) -> bool {
    s.submission.rows.is_empty() && s.write_back.is_empty()
}

/// Full sync, write-back, no loop, a three-row delta, and a dry run, on one backend.
async fn round_trip(b: Backend) {
    let table = unique("staff");
    let mut conn = b.connect().await;
    for sql in b.staff_table(&table, b.integer()) {
        exec(&mut conn, &sql).await;
    }
    insert_people(&b, &table, PEOPLE).await;
    let mut d = Deployment::new(
        &b,
        &format!("table = \"{table}\"\nanchor = \"emp_no\"\nchange_column = \"updated_at\""),
    )
    .await;
    // 1002 has an account already (a porter until now); another account is not the
    // source's business.
    let org = OdsCode::new_unchecked("RXX");
    let mut existing = Account::new(PortalId::new_unchecked("OLD0001"), Status::Active, &org);
    existing.set(Field::ExternalSyncId, Some("1002"));
    existing.set(Field::FirstName, Some("Ben"));
    existing.set(Field::LastName, Some("Carter"));
    existing.set(Field::Email, Some("ben.carter@nhs.net"));
    existing.set(Field::JobTitle, Some("Porter"));
    let mut other = Account::new(PortalId::new_unchecked("OLD0002"), Status::Active, &org);
    other.set(Field::ExternalSyncId, Some("9999"));
    other.set(Field::FirstName, Some("Zed"));
    other.set(Field::LastName, Some("Other"));
    other.set(Field::JobTitle, Some("Cleaner"));
    d.directory
        .insert_unchecked(&[existing, other])
        .await
        .unwrap();

    // Full sync: five accounts created, one updated, IDs and addresses written back.
    let first = d.delta().await;
    assert!(first.full && first.cursor_advanced, "{:?}", b.kind);
    assert_eq!(first.read, 6);
    // `--only` text an integer anchor column cannot hold is refused, not read as nothing.
    let source = d.source().await;
    let why = source.anchor_problem("not-a-number").expect("refused");
    assert!(why.contains("anchor column emp_no"), "{why}");
    assert_eq!(source.anchor_problem("1002"), None);
    // `check` counts the rows in scope; a `where` that keeps none counts 0.
    let AnySource::Sql(mut sql) = source else {
        panic!("a SQL source")
    };
    assert_eq!(sql.count_in_scope().await.unwrap(), 6);
    let none = Deployment::new(
        &b,
        &format!("table = \"{table}\"\nanchor = \"emp_no\"\nwhere = \"1 = 0\""),
    )
    .await;
    let AnySource::Sql(mut sql) = none.source().await else {
        panic!("a SQL source")
    };
    assert_eq!(sql.count_in_scope().await.unwrap(), 0);
    let created = |id: &str| (id.to_owned(), RowResultKind::Created);
    assert_eq!(
        results(&first),
        [
            created("1001"),
            ("1002".to_owned(), RowResultKind::Updated),
            created("1003"),
            created("1004"),
            created("1005"),
            created("1006"),
        ]
    );
    assert_eq!(d.account("1002").await.id.as_str(), "OLD0001");
    assert_eq!(
        d.account("1002").await.get(Field::JobTitle),
        Some("Staff Nurse")
    );
    // Each change's history names the sync source and the row's key.
    let history = d.history("1002");
    let changes = history["changes"].as_array().unwrap();
    assert_eq!(history["account"]["id"], "OLD0001", "{history:#}");
    assert_eq!(history["account"]["matched_by"], "ExternalSyncID");
    let job = changes
        .iter()
        .find(|c| c["field"] == "JobTitle")
        .unwrap_or_else(|| panic!("{history:#}"));
    assert_eq!(
        (&job["before"], &job["after"]),
        (
            &serde_json::json!("Porter"),
            &serde_json::json!("Staff Nurse")
        )
    );
    for c in changes {
        assert_eq!(c["channel"], "sync", "{c}");
        assert_eq!(c["sync_source"], "hr", "{c}");
        assert_eq!(c["entry"], "1002", "{c}");
        assert_eq!(c["run"], "sync-1", "{c}");
    }
    let created = d.history("1004");
    assert_eq!(created["changes"][0]["field"], "created", "{created:#}");
    assert_eq!(created["changes"][0]["entry"], "1004", "{created:#}");
    assert_eq!(
        d.account("9999").await.get(Field::JobTitle),
        Some("Cleaner")
    );
    assert_eq!(
        d.account("1005").await.get(Field::LastName),
        Some("O'Neill")
    );
    assert_eq!(first.write_back.len(), 6);
    assert!(
        first.write_back.iter().all(|w| w.outcome == Some(Ok(()))),
        "{:?}",
        first.write_back
    );
    for (id, ..) in PEOPLE {
        let account = d.account(id).await;
        assert_eq!(
            cell(&b, &table, "portal_id", id).await.as_deref(),
            Some(account.id.as_str()),
            "{id}"
        );
        assert_eq!(
            cell(&b, &table, "nhs_email", id).await.as_deref(),
            account.email(),
            "{id}"
        );
    }
    assert_eq!(
        cell(&b, &table, "portal_id", "1002").await.as_deref(),
        Some("OLD0001")
    );

    // The write-back moved updated_at on every row; the next deltas read them and plan
    // nothing: no loop.
    for _ in 0..2 {
        let again = d.delta().await;
        assert!(!again.full);
        assert!(quiet(&again), "{:?}: {:?}", b.kind, results(&again));
        assert!(
            again.read >= 1,
            "rows at the last change time are read again"
        );
        assert_eq!(again.unchanged_in_source, again.read);
    }

    // Three rows change: the delta touches exactly those three.
    for (job, id) in [
        ("Sister", "1001"),
        ("Matron", "1003"),
        ("Chief Porter", "1004"),
    ] {
        exec_with(
            &mut conn,
            &format!(
                "UPDATE {table} SET job_title = {} WHERE emp_no = {}",
                b.p(1),
                match b.kind {
                    Kind::Postgres => "CAST($2 AS INTEGER)".to_owned(),
                    _ => b.p(2),
                }
            ),
            &[Some(job), Some(id)],
        )
        .await;
    }
    let three = d.delta().await;
    let updated = |id: &str| (id.to_owned(), RowResultKind::Updated);
    assert_eq!(
        results(&three),
        [updated("1001"), updated("1003"), updated("1004")],
        "{:?}",
        b.kind
    );
    assert_eq!(three.read - three.unchanged_in_source, 3);
    assert!(three.write_back.is_empty());
    assert_eq!(d.account("1003").await.get(Field::JobTitle), Some("Matron"));
    assert!(quiet(&d.delta().await));

    // A dry run changes nothing (directory, rows, cursor) and says what it would write back.
    let pg_id = |n: usize| match b.kind {
        Kind::Postgres => format!("CAST(${n} AS INTEGER)"),
        _ => b.p(n),
    };
    exec_with(
        &mut conn,
        &format!(
            "UPDATE {table} SET job_title = {} WHERE emp_no = {}",
            b.p(1),
            pg_id(2)
        ),
        &[Some("Head Porter"), Some("1004")],
    )
    .await;
    exec_with(
        &mut conn,
        &format!(
            "UPDATE {table} SET portal_id = NULL WHERE emp_no = {}",
            pg_id(1)
        ),
        &[Some("1005")],
    )
    .await;
    let cursor = d.cursor().await;
    let dry = d
        .sync(SyncOptions {
            dry_run: true,
            ..SyncOptions::default()
        })
        .await;
    assert_eq!(
        results(&dry),
        [
            updated("1004"),
            ("1005".to_owned(), RowResultKind::Unchanged)
        ]
    );
    assert_eq!(dry.write_back.len(), 1);
    let pending = &dry.write_back[0];
    assert_eq!(pending.outcome, None);
    assert_eq!(pending.write.locator, "1005");
    let erin = d.account("1005").await;
    assert_eq!(
        pending.write.values,
        [("portal_id".to_owned(), erin.id.to_string())]
    );
    assert!(!dry.cursor_advanced);
    assert_eq!(d.cursor().await, cursor);
    assert_eq!(
        d.account("1004").await.get(Field::JobTitle),
        Some("Chief Porter")
    );
    assert_eq!(cell(&b, &table, "portal_id", "1005").await, None);

    // The real run does it, and then there is nothing left to do.
    let real = d.delta().await;
    assert_eq!(real.write_back.len(), 1);
    assert_eq!(real.write_back[0].outcome, Some(Ok(())));
    assert_eq!(
        d.account("1004").await.get(Field::JobTitle),
        Some("Head Porter")
    );
    assert_eq!(
        cell(&b, &table, "portal_id", "1005").await.as_deref(),
        Some(erin.id.as_str())
    );
    assert!(quiet(&d.delta().await));
    assert_eq!(d.directory.count().await.unwrap(), 7);
}

#[tokio::test]
async fn postgres_round_trip() {
    round_trip(Backend::postgres()).await;
}

#[tokio::test]
async fn mariadb_round_trip() {
    round_trip(Backend::mariadb()).await;
}

#[tokio::test]
async fn sqlite_round_trip() {
    round_trip(Backend::sqlite()).await;
}

/// Quotes, SQL and LDAP filter syntax in data, anchors and write-back values are only text.
async fn hostile_values(b: Backend) {
    let table = unique("hostile");
    let mut conn = b.connect().await;
    for sql in b.staff_table(&table, "VARCHAR(64)") {
        exec(&mut conn, &sql).await;
    }
    let drop = format!("'); DROP TABLE {table}; --");
    let people: &[(&str, &str, &str, &str, &str)] = &[
        ("H1", "Anne", "O'Brien", "anne.obrien@nhs.net", &drop),
        (
            "' OR '1'='1",
            "*)(",
            "Quo\"te",
            "quote@nhs.net",
            "`back`ticks",
        ),
        ("H3", "Robert", "Tables", "bobby@nhs.net", "x\\'; --"),
    ];
    insert_people(&b, &table, people).await;
    let mut d = Deployment::new(
        &b,
        &format!("table = \"{table}\"\nanchor = \"emp_no\"\nchange_column = \"updated_at\""),
    )
    .await;
    let mut source = d.source().await;
    let attributes: Vec<String> = ["first_name", "last_name", "job_title", "portal_id"]
        .map(str::to_owned)
        .to_vec();

    let batch = source.read(&attributes, None).await.unwrap();
    assert_eq!(batch.entries.len(), 3);
    for (anchor, first, last, _, job) in people {
        let e = batch
            .entries
            .iter()
            .find(|e| e.anchor == *anchor)
            .unwrap_or_else(|| panic!("{anchor} was not read"));
        assert_eq!(e.locator, *anchor);
        assert_eq!(e.first("first_name"), Some(*first));
        assert_eq!(e.first("last_name"), Some(*last));
        assert_eq!(e.first("job_title"), Some(*job));
        assert!(!e.values.contains_key("portal_id"), "NULL is absent");
    }

    let asked: Vec<String> = [
        drop.as_str(),
        "*)(",
        "' OR '1'='1",
        "H1",
        "H1",
        "nobody') OR 1=1 --",
    ]
    .map(str::to_owned)
    .to_vec();
    let mut found: Vec<String> = source
        .read_anchors(&attributes, &asked)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.anchor)
        .collect();
    found.sort();
    assert_eq!(found, ["' OR '1'='1", "H1"]);

    let write = |locator: &str, column: &str, value: &str| WriteBack {
        locator: locator.to_owned(),
        values: vec![(column.to_owned(), value.to_owned())],
    };
    let outcomes = source
        .write_back(&[
            write("H1", "portal_id", &drop),
            write("' OR '1'='1", "nhs_email", "q'@nhs.net"),
            write("H9' OR '1'='1", "portal_id", "X"),
        ])
        .await
        .unwrap();
    assert_eq!(outcomes[..2], [Ok(()), Ok(())]);
    assert!(
        outcomes[2].as_ref().is_err_and(|e| e.contains("no row of")),
        "{outcomes:?}"
    );
    assert_eq!(
        cell(&b, &table, "portal_id", "H1").await.as_deref(),
        Some(drop.as_str())
    );
    assert_eq!(
        cell(&b, &table, "nhs_email", "' OR '1'='1")
            .await
            .as_deref(),
        Some("q'@nhs.net")
    );
    assert_eq!(cell(&b, &table, "nhs_email", "H1").await, None);

    // A value the database refuses is that row's error; the rest of the batch is written.
    if b.kind != Kind::Sqlite {
        let long = "x".repeat(100);
        let outcomes = source
            .write_back(&[
                write("H1", "nhs_email", "anne@nhs.net"),
                write("H3", "portal_id", &long),
                write("' OR '1'='1", "portal_id", "P-2"),
            ])
            .await
            .unwrap();
        assert_eq!(outcomes[0], Ok(()));
        assert!(outcomes[1].is_err(), "{outcomes:?}");
        assert_eq!(outcomes[2], Ok(()));
        assert_eq!(
            cell(&b, &table, "nhs_email", "H1").await.as_deref(),
            Some("anne@nhs.net")
        );
        assert_eq!(cell(&b, &table, "portal_id", "H3").await, None);
        assert_eq!(
            cell(&b, &table, "portal_id", "' OR '1'='1")
                .await
                .as_deref(),
            Some("P-2")
        );
    }

    // Through the whole sync: rows are accepted or refused as data, the table stays.
    let synced = d.delta().await;
    assert_eq!(synced.read, 3);
    assert_eq!(synced.reports.len(), 3);
    assert_eq!(count(&b, &table).await, 3);
}

#[tokio::test]
async fn postgres_hostile_values() {
    hostile_values(Backend::postgres()).await;
}

#[tokio::test]
async fn mariadb_hostile_values() {
    hostile_values(Backend::mariadb()).await;
}

#[tokio::test]
async fn sqlite_hostile_values() {
    hostile_values(Backend::sqlite()).await;
}

/// A view as `table` (with a `where` of its own), the base table as `write_table`.
async fn view_over_a_table(b: Backend) {
    let base = unique("base");
    let view = format!("{base}_v");
    let mut conn = b.connect().await;
    for sql in b.staff_table(&base, b.integer()) {
        exec(&mut conn, &sql).await;
    }
    exec(
        &mut conn,
        &format!(
            "CREATE VIEW {view} AS SELECT emp_no, first_name, last_name, email, job_title, \
             portal_id, nhs_email, updated_at FROM {base} WHERE active = 1"
        ),
    )
    .await;
    insert_people(&b, &base, &PEOPLE[..4]).await;
    exec(
        &mut conn,
        &format!("UPDATE {base} SET active = 0 WHERE first_name = 'Chloe'"),
    )
    .await;
    exec(
        &mut conn,
        &format!("UPDATE {base} SET job_title = 'Locum' WHERE first_name = 'Dev'"),
    )
    .await;
    let mut d = Deployment::new(
        &b,
        &format!(
            "table = \"{view}\"\nwrite_table = \"{base}\"\nanchor = \"emp_no\"\n\
             change_column = \"updated_at\"\nwhere = \"job_title <> 'Locum'\""
        ),
    )
    .await;
    let first = d.delta().await;
    assert_eq!(
        results(&first),
        [
            ("1001".to_owned(), RowResultKind::Created),
            ("1002".to_owned(), RowResultKind::Created)
        ]
    );
    assert!(first.write_back.iter().all(|w| w.outcome == Some(Ok(()))));
    for id in ["1001", "1002"] {
        let account = d.account(id).await;
        assert_eq!(
            cell(&b, &base, "portal_id", id).await.as_deref(),
            Some(account.id.as_str())
        );
        assert_eq!(
            cell(&b, &view, "portal_id", id).await.as_deref(),
            Some(account.id.as_str())
        );
    }
    assert_eq!(cell(&b, &base, "portal_id", "1003").await, None);
    assert!(quiet(&d.delta().await));
    assert!(quiet(&d.delta().await));
}

#[tokio::test]
async fn postgres_view_over_a_table() {
    view_over_a_table(Backend::postgres()).await;
}

#[tokio::test]
async fn mariadb_view_over_a_table() {
    view_over_a_table(Backend::mariadb()).await;
}

#[tokio::test]
async fn sqlite_view_over_a_table() {
    view_over_a_table(Backend::sqlite()).await;
}

/// Without a change column every run reads every row, and plans only what changed.
async fn without_change_column(b: Backend) {
    let table = unique("nochange");
    let mut conn = b.connect().await;
    for sql in b.staff_table(&table, b.integer()) {
        exec(&mut conn, &sql).await;
    }
    insert_people(&b, &table, PEOPLE).await;
    let mut d = Deployment::new(&b, &format!("table = \"{table}\"\nanchor = \"emp_no\"")).await;
    let first = d.delta().await;
    assert!(first.full && !first.cursor_advanced);
    assert_eq!(first.read, 6);
    assert_eq!(d.cursor().await, None);
    assert_eq!(first.write_back.len(), 6);

    let second = d.delta().await;
    assert!(second.full);
    assert_eq!(second.read, 6);
    assert!(second.write_back.is_empty());
    assert!(
        results(&second)
            .iter()
            .all(|(_, r)| *r == RowResultKind::Unchanged),
        "{:?}",
        results(&second)
    );

    exec(
        &mut conn,
        &format!("UPDATE {table} SET job_title = 'Sister' WHERE first_name = 'Erin'"),
    )
    .await;
    let third = d.delta().await;
    assert_eq!(third.read, 6);
    let changed: Vec<_> = results(&third)
        .into_iter()
        .filter(|(_, r)| *r != RowResultKind::Unchanged)
        .collect();
    assert_eq!(changed, [("1005".to_owned(), RowResultKind::Updated)]);
    assert_eq!(d.account("1005").await.get(Field::JobTitle), Some("Sister"));
}

#[tokio::test]
async fn postgres_without_change_column() {
    without_change_column(Backend::postgres()).await;
}

#[tokio::test]
async fn mariadb_without_change_column() {
    without_change_column(Backend::mariadb()).await;
}

#[tokio::test]
async fn sqlite_without_change_column() {
    without_change_column(Backend::sqlite()).await;
}

fn sql_config(url: &str, table: &str) -> SqlConfig {
    toml::from_str(&format!(
        "url = \"{url}\"\ntable = \"{table}\"\nanchor = \"emp_no\"\ntimeout_seconds = 5"
    ))
    .unwrap()
}

/// A wrong password is a credentials error that does not show the password.
async fn wrong_password(b: Backend) {
    const WRONG: &str = "Wr0ng-pa55word-4-test";
    let url = b.url.replace(":secret@", &format!(":{WRONG}@"));
    assert_ne!(url, b.url, "the test URL has the password \"secret\"");
    let error = match SqlSource::open(&sql_config(&url, "staff")).await {
        Err(e) => e,
        Ok(_) => panic!("{:?} accepted a wrong password", b.kind),
    };
    let text = format!("{error} {error:?}");
    assert!(
        matches!(error, SourceError::Credentials { .. }),
        "{:?}: {text}",
        b.kind
    );
    assert!(!text.contains(WRONG), "{text}");
    assert!(text.contains("connector@127.0.0.1"), "{text}");
}

#[tokio::test]
async fn postgres_wrong_password() {
    wrong_password(Backend::postgres()).await;
}

#[tokio::test]
async fn mariadb_wrong_password() {
    wrong_password(Backend::mariadb()).await;
}

#[tokio::test]
async fn configuration_mistakes_are_named() {
    let b = Backend::sqlite();
    let table = unique("conf");
    let mut conn = b.connect().await;
    for sql in b.staff_table(&table, "INTEGER") {
        exec(&mut conn, &sql).await;
    }
    let open = |config: SqlConfig| async move {
        match SqlSource::open(&config).await {
            Err(e) => e,
            Ok(_) => panic!("opened"),
        }
    };
    let e = open(sql_config(&b.url, "staff; DROP TABLE x")).await;
    assert!(matches!(e, SourceError::Config(_)), "{e}");
    let e = open(sql_config(&b.url, "no_such_table")).await;
    assert!(
        matches!(&e, SourceError::Config(m) if m.contains("no table or view")),
        "{e}"
    );
    let mut config = sql_config(&b.url, &table);
    config.change_column = Some("changed".to_owned());
    let e = open(config).await;
    assert!(
        matches!(&e, SourceError::Config(m) if m.contains("no column \"changed\"") && m.contains("updated_at")),
        "{e}"
    );
    let mut source = SqlSource::open(&sql_config(&b.url, &table)).await.unwrap();
    let e = source
        .read(&["first_name".to_owned(), "nickname".to_owned()], None)
        .await
        .unwrap_err();
    assert!(
        matches!(&e, SourceError::Config(m) if m.contains("nickname")),
        "{e}"
    );
    let missing = b.url.replace("source.sqlite?mode=rwc", "missing.sqlite");
    let e = open(sql_config(&missing, &table)).await;
    assert!(matches!(e, SourceError::Connect { .. }), "{e}");
    let e = open(sql_config("oracle://db/staff", &table)).await;
    assert!(matches!(e, SourceError::Config(_)), "{e}");
}

#[tokio::test]
async fn an_unreachable_server_is_a_connect_error() {
    let e = match SqlSource::open(&sql_config(
        "postgres://connector:secret@127.0.0.1:9/staff",
        "staff",
    ))
    .await
    {
        Err(e) => e,
        Ok(_) => panic!("connected to port 9"),
    };
    assert!(matches!(e, SourceError::Connect { .. }), "{e}");
    assert!(!e.to_string().contains("secret"), "{e}");
}

/// Peak resident memory of this process, in MiB (Linux).
fn peak_mib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        })
        .map_or(0, |kib| kib / 1024)
}

/// A full read of 100,000 rows from PostgreSQL, streamed row by row into entries. Prints the
/// time; run with `cargo test --release --test sync_sql -- --ignored --nocapture`.
#[tokio::test]
#[ignore = "timing: run on its own with --release -- --ignored"]
async fn postgres_full_read_of_100k_rows() {
    let b = Backend::postgres();
    let table = unique("big");
    let mut conn = b.connect().await;
    for sql in b.staff_table(&table, "INTEGER") {
        exec(&mut conn, &sql).await;
    }
    exec(
        &mut conn,
        &format!(
            "INSERT INTO {table} (emp_no, first_name, last_name, email, job_title, portal_id) \
             SELECT g, 'First' || g, 'Last' || g, 'person' || g || '@nhs.net', 'Staff Nurse', \
             'P' || g FROM generate_series(1, 100000) g"
        ),
    )
    .await;
    let d = Deployment::new(
        &b,
        &format!("table = \"{table}\"\nanchor = \"emp_no\"\nchange_column = \"updated_at\""),
    )
    .await;
    let mut source = d.source().await;
    let attributes: Vec<String> = [
        "email",
        "first_name",
        "job_title",
        "last_name",
        "nhs_email",
        "portal_id",
    ]
    .map(str::to_owned)
    .to_vec();
    let before = peak_mib();
    let started = std::time::Instant::now();
    let batch = source.read(&attributes, None).await.unwrap();
    let elapsed = started.elapsed();
    assert_eq!(batch.entries.len(), 100_000);
    assert!(batch.cursor.is_some());
    println!(
        "full read of 100,000 rows: {:.2} s, peak memory {} MiB (before the read {} MiB)",
        elapsed.as_secs_f64(),
        peak_mib(),
        before
    );
    exec(&mut conn, &format!("DROP TABLE {table}")).await;
}

/// An HR table that brings a person the portal already has, made by hand without a key:
/// refused in the source's terms, then joined once the table gives the account's address.
async fn a_namesake_made_by_hand(b: Backend) {
    let table = unique("namesake");
    let mut conn = b.connect().await;
    for sql in b.staff_table(&table, b.integer()) {
        exec(&mut conn, &sql).await;
    }
    insert_people(
        &b,
        &table,
        &[
            ("2001", "SIOBHAN", "O NEILL", "", "Midwife"),
            ("2002", "Ben", "Carter", "", "Porter"),
        ],
    )
    .await;
    let mut d = Deployment::new(
        &b,
        &format!("table = \"{table}\"\nanchor = \"emp_no\"\nchange_column = \"updated_at\""),
    )
    .await;
    let mut by_hand = Account::new(
        PortalId::new_unchecked("H1"),
        Status::Active,
        &OdsCode::new_unchecked("RXX"),
    );
    by_hand.set(Field::FirstName, Some("Siobhán"));
    by_hand.set(Field::LastName, Some("O'Neill"));
    by_hand.set(Field::Email, Some("siobhan.oneill@nhs.net"));
    d.directory.insert_unchecked(&[by_hand]).await.unwrap();

    let first = d.delta().await;
    assert_eq!(
        results(&first),
        [
            ("2001".to_owned(), RowResultKind::Rejected),
            ("2002".to_owned(), RowResultKind::Created)
        ]
    );
    let refused = first
        .reports
        .iter()
        .find(|r| r.result == RowResultKind::Rejected)
        .unwrap();
    assert_eq!(
        refused.message,
        "possibly the same person as siobhan.oneill@nhs.net (ID H1), an account of the same name \
         without an ExternalSyncID, so nothing was created: to update that account, write its \
         address siobhan.oneill@nhs.net to this entry's attribute email; if this is another \
         person with the same name, map NewAccount to an attribute and set it to yes on this \
         entry",
        "{:?}",
        b.kind
    );
    assert_eq!(d.directory.count().await.unwrap(), 2, "no duplicate of H1");

    exec(
        &mut conn,
        &format!("UPDATE {table} SET email = 'siobhan.oneill@nhs.net' WHERE emp_no = 2001"),
    )
    .await;
    let second = d.delta().await;
    assert_eq!(
        results(&second),
        [("2001".to_owned(), RowResultKind::Updated)],
        "{:?}",
        second.reports
    );
    let joined = d.account("2001").await;
    assert_eq!(
        joined.id.as_str(),
        "H1",
        "the hand-made account took the key"
    );
}

#[tokio::test]
async fn postgres_a_namesake_made_by_hand() {
    a_namesake_made_by_hand(Backend::postgres()).await;
}

#[tokio::test]
async fn mariadb_a_namesake_made_by_hand() {
    a_namesake_made_by_hand(Backend::mariadb()).await;
}

#[tokio::test]
async fn sqlite_a_namesake_made_by_hand() {
    a_namesake_made_by_hand(Backend::sqlite()).await;
}

//! `bench apply`: plan and apply generated submissions against a generated embedded
//! directory, in a temporary folder, and print timings and peak memory.
//!
//! The directory: `--accounts` accounts, 80% in one large organisation (RBIG), the rest in
//! 30 others. Each submission of `--rows` rows for RBIG: 90% updates of existing accounts (a
//! changed job title), 10% creates. Rows are generated already validated: the figures are
//! the plan time (index loads and reconcile, as `pipeline::plan` does them), and the apply
//! rate of updates and of creates (journal, directory writes and history included), each
//! beside its floor measured in the same run: the same keys looked up by a plain query, and
//! the same number of rows inserted raw with the same durability. Then creates of names many
//! accounts share (each new address numbered past its namesakes'), beside as many creates of
//! names of their own. Not a test: a measurement (release build).

use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context as _;

use push_connector::apply::{self, Context, SequenceMinter};
use push_connector::config::Config;
use push_connector::directory::local::LocalDirectory;
use push_connector::directory::{Account, Status};
use push_connector::model::{ExternalSyncId, Field, OdsCode, Person, PortalId};
use push_connector::pipeline;
use push_connector::plan::{Action, Plan};
use push_connector::store::StateDb;
use push_connector::validate::{RowOutcome, RowResult};

use crate::cli::common;

#[derive(Debug, clap::Args)]
pub struct ApplyArgs {
    /// Accounts in the generated directory.
    #[arg(long, default_value_t = 1_500_000)]
    pub accounts: usize,
    /// Submission sizes, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "10000,100000,1000000")]
    pub rows: Vec<usize>,
    /// Shared names: creates of this many rows (0: none), in an organisation of their own
    /// whose accounts share `--shared-names` names, beside as many creates of names of their
    /// own in the same run.
    #[arg(long, default_value_t = 20_000)]
    pub shared_rows: usize,
    /// Accounts of the shared names' organisation.
    #[arg(long, default_value_t = 50_000)]
    pub shared_accounts: usize,
    /// Names the shared-name accounts and rows share.
    #[arg(long, default_value_t = 200)]
    pub shared_names: usize,
}

/// Letters for a number (names may not hold digits).
fn letters(mut n: usize) -> String {
    let mut s = String::new();
    loop {
        s.push((b'a' + (n % 26) as u8) as char);
        n /= 26;
        if n == 0 {
            return s;
        }
    }
}

fn big_share(accounts: usize) -> usize {
    accounts * 4 / 5
}

fn peak_memory_mib() -> f64 {
    push_connector::bench::peak_memory().unwrap_or(0) as f64 / 1_048_576.0
}

pub fn run(_config: &Config, args: ApplyArgs) -> anyhow::Result<ExitCode> {
    let dir = tempfile_dir()?;
    println!(
        "bench apply: {} accounts, submissions of {:?} rows, in {}",
        args.accounts,
        args.rows,
        dir.display()
    );
    let rt = common::runtime()?;
    rt.block_on(async {
        let directory = LocalDirectory::open(&dir.join("directory.sqlite")).await?;
        let state = StateDb::open(&dir).await?;
        let started = Instant::now();
        directory.add_organisation("RBIG", &[]).await?;
        for o in 0..30 {
            directory.add_organisation(&format!("R{o:02}"), &[]).await?;
        }
        let big = big_share(args.accounts);
        let mut chunk = Vec::with_capacity(100_000);
        for i in 0..args.accounts {
            let org = if i < big {
                "RBIG".to_owned()
            } else {
                format!("R{:02}", i % 30)
            };
            let mut a = Account::new(
                PortalId::new_unchecked(format!("P{i:09}")),
                Status::Active,
                &OdsCode::new_unchecked(org),
            );
            let last = format!("Smith{}", letters(i));
            a.set(Field::ExternalSyncId, Some(&format!("E{i:09}")));
            a.set(Field::FirstName, Some("Alex"));
            a.set(Field::LastName, Some(&last));
            a.set(
                Field::DisplayName,
                Some(&format!("{last}, Alex ({})", a.organisation())),
            );
            a.set(
                Field::Email,
                Some(&format!("alex.{}@nhs.net", last.to_lowercase())),
            );
            a.set(Field::JobTitle, Some("Nurse"));
            a.set(Field::MobilePhone, Some("+447911023456"));
            chunk.push(a);
            if chunk.len() == 100_000 {
                directory.insert_unchecked(&chunk).await?;
                chunk.clear();
            }
        }
        directory.insert_unchecked(&chunk).await?;
        drop(chunk);
        println!(
            "seeded {} accounts in {:.1} s",
            directory.count().await?,
            started.elapsed().as_secs_f64()
        );

        let config = Config::default();
        let policy = push_connector::deployment::policy(&config, &OdsCode::new_unchecked("RBIG"));
        let mut offset = 0usize;
        for (round, &rows) in args.rows.iter().enumerate() {
            let updates = rows * 9 / 10;
            if offset + updates > big {
                offset = 0;
            }
            let title = format!("Charge Nurse {round}");
            let results: Vec<RowResult> = (0..rows)
                .map(|r| {
                    let (ext, last) = if r < updates {
                        let i = offset + r;
                        (format!("E{i:09}"), format!("Smith{}", letters(i)))
                    } else {
                        // Each new person a name of their own: one name on several rows
                        // of a file would be refused as likely duplicates of its first row.
                        (format!("N{round}-{r:09}"), format!("Newman{}", letters(r)))
                    };
                    generated_row(GeneratedRow {
                        line: r,
                        ext,
                        organisation: "RBIG",
                        first: "Alex",
                        last,
                        job_title: &title,
                        new_account: false,
                    })
                })
                .collect();
            offset += updates;

            let t = Instant::now();
            let plan = pipeline::plan(&directory, &format!("bench-{round}"), &results, &policy)
                .await?
                .plan;
            let plan_time = t.elapsed();
            let floor = lookup_floor(&dir.join("directory.sqlite"), &results).await?;
            drop(results);
            let counts = plan.counts();
            println!(
                "{rows} rows: plan {:.2} s (index load and reconcile, {} rows at a time): {}",
                plan_time.as_secs_f64(),
                pipeline::PLAN_CHUNK,
                counts.summary()
            );
            println!(
                "  floor: the same keys looked up raw {:.2} s, plan / floor {:.1}",
                floor,
                plan_time.as_secs_f64() / floor.max(1e-9)
            );

            let (update_rows, create_rows): (Vec<_>, Vec<_>) = plan
                .rows
                .into_iter()
                .partition(|r| matches!(r.action, Action::Update { .. }));
            let ctx = Context {
                directory: &directory,
                state: &state,
                passwords: dir.join("initial-passwords.csv"),
                progress: &|_, _| {},
            };
            let mut minter = SequenceMinter {
                prefix: format!("B{round}-"),
                next: 0,
            };
            for (what, rows) in [("updates", update_rows), ("creates", create_rows)] {
                let n = rows.len();
                let plan = Plan {
                    run: format!("bench-{round}-{what}"),
                    organisation: OdsCode::new_unchecked("RBIG"),
                    rows,
                };
                let t = Instant::now();
                let applied =
                    apply::apply_plan(&ctx, &plan, "apply", None, &mut minter, chrono::Utc::now())
                        .await?;
                let secs = t.elapsed().as_secs_f64();
                let floor =
                    insert_floor(&dir.join(format!("floor-{round}-{what}.sqlite")), n).await?;
                println!(
                    "  apply {n} {what}: {secs:.2} s, {:.0}/s ({}); floor: {n} rows inserted raw \
                     {floor:.2} s, apply / floor {:.1}",
                    n as f64 / secs.max(1e-9),
                    applied.counts.summary(),
                    secs / floor.max(1e-9)
                );
            }
            println!("  peak memory so far: {:.0} MiB", peak_memory_mib());
        }
        if args.shared_rows > 0 {
            shared_names(&directory, &state, &dir, &args).await?;
        }
        anyhow::Ok(())
    })?;
    println!("peak memory (VmHWM): {:.0} MiB", peak_memory_mib());
    std::fs::remove_dir_all(&dir).with_context(|| format!("removing {}", dir.display()))?;
    Ok(ExitCode::SUCCESS)
}

/// What a generated row gives; every other field is blank.
struct GeneratedRow<'a> {
    /// The row's index in the file (its line is two more: the header is line 1).
    line: usize,
    ext: String,
    organisation: &'a str,
    first: &'a str,
    last: String,
    job_title: &'a str,
    /// Said to be a new person (`NewAccount` yes), so no namesake holds it.
    new_account: bool,
}

/// A valid row of a generated file.
fn generated_row(row: GeneratedRow<'_>) -> RowResult {
    let person = Person {
        line: row.line as u64 + 2,
        id: None,
        external_sync_id: ExternalSyncId::new_unchecked(row.ext),
        organisation: OdsCode::new_unchecked(row.organisation),
        organisation_unit: None,
        email: None,
        title: None,
        first_name: row.first.into(),
        last_name: row.last,
        display_name: None,
        job_title: Some(row.job_title.to_owned()),
        office_phone: None,
        mobile_phone: None,
        fax: None,
        pager: None,
        notes: None,
        clinical_role: None,
        clinical_speciality: None,
        work_area: None,
        new_account: row.new_account,
    };
    RowResult {
        line: person.line,
        outcome: RowOutcome::Valid(push_connector::model::PackedPerson::from(person)),
    }
}

/// A row creating a new person of this name (said to be new, so no namesake holds it).
fn new_person(line: usize, ext: String, first: &str, last: String, org: &str) -> RowResult {
    generated_row(GeneratedRow {
        line,
        ext,
        organisation: org,
        first,
        last,
        job_title: "Nurse",
        new_account: true,
    })
}

/// Creates whose names many accounts share: `--shared-accounts` accounts of `--shared-names`
/// names (numbered addresses `sam.lee{name}{n}@nhs.net`), then `--shared-rows` creates of
/// those names, planned and applied, beside the same number of creates of names of their
/// own (the peer) against the same organisation.
async fn shared_names(
    directory: &LocalDirectory,
    state: &StateDb,
    dir: &std::path::Path,
    args: &ApplyArgs,
) -> anyhow::Result<()> {
    let org = "RSHR";
    directory.add_organisation(org, &[]).await?;
    let names = args.shared_names.max(1);
    let name = |i: usize| format!("Lee{}", letters(i % names));
    let mut seed = Vec::with_capacity(args.shared_accounts);
    for i in 0..args.shared_accounts {
        let mut a = Account::new(
            PortalId::new_unchecked(format!("S{i:09}")),
            Status::Active,
            &OdsCode::new_unchecked(org),
        );
        let last = name(i);
        let address = push_connector::model::naming::numbered(
            &format!("sam.{}@nhs.net", last.to_lowercase()),
            (i / names + 1) as u32,
        );
        a.set(Field::ExternalSyncId, Some(&format!("S{i:09}")));
        a.set(Field::FirstName, Some("Sam"));
        a.set(Field::LastName, Some(&last));
        a.set(Field::Email, Some(&address));
        seed.push(a);
    }
    directory.insert_unchecked(&seed).await?;
    drop(seed);
    let config = Config::default();
    let policy = push_connector::deployment::policy(&config, &OdsCode::new_unchecked(org));
    let rows = args.shared_rows;
    let shared: Vec<RowResult> = (0..rows)
        .map(|r| new_person(r, format!("T{r:09}"), "Sam", name(r), org))
        .collect();
    let own: Vec<RowResult> = (0..rows)
        .map(|r| {
            new_person(
                r,
                format!("U{r:09}"),
                "Una",
                format!("Own{}", letters(r)),
                org,
            )
        })
        .collect();
    let mut minter = SequenceMinter {
        prefix: "BS-".to_owned(),
        next: 0,
    };
    let ctx = Context {
        directory,
        state,
        passwords: dir.join("initial-passwords.csv"),
        progress: &|_, _| {},
    };
    let mut secs = Vec::new();
    for (what, results) in [("shared names", &shared), ("names of their own", &own)] {
        let t = Instant::now();
        let plan = pipeline::plan(directory, &format!("bench-{what}"), results, &policy)
            .await?
            .plan;
        let planned = t.elapsed().as_secs_f64();
        let applied =
            apply::apply_plan(&ctx, &plan, "apply", None, &mut minter, chrono::Utc::now()).await?;
        let total = t.elapsed().as_secs_f64();
        println!(
            "{rows} creates of {what} ({} accounts of {names} names in {org}): plan {planned:.2} s, plan and apply {total:.2} s, {:.0}/s ({})",
            args.shared_accounts,
            rows as f64 / total.max(1e-9),
            applied.counts.summary()
        );
        secs.push(total);
    }
    println!(
        "  shared names / names of their own {:.2}; peak memory so far: {:.0} MiB",
        secs[0] / secs[1].max(1e-9),
        peak_memory_mib()
    );
    Ok(())
}

/// The floor of a plan's look-ups: the rows' ExternalSyncIDs looked up in the same
/// directory file by a plain indexed query, 100,000 keys a statement, each account's columns
/// read as they are (no JSON, no index in memory, no reconcile). Seconds.
async fn lookup_floor(path: &std::path::Path, results: &[RowResult]) -> anyhow::Result<f64> {
    use sqlx::Row as _;
    let pool = sqlx::sqlite::SqlitePoolOptions::new()
        .max_connections(1)
        .connect_with(
            sqlx::sqlite::SqliteConnectOptions::new()
                .filename(path)
                .read_only(true),
        )
        .await?;
    let keys: Vec<String> = results
        .iter()
        .filter_map(|r| match &r.outcome {
            RowOutcome::Valid(p) => Some(p.external_sync_id().to_lowercase()),
            RowOutcome::Refused(_) => None,
        })
        .collect();
    let t = Instant::now();
    let mut found = 0usize;
    for chunk in keys.chunks(100_000) {
        let rows = sqlx::query(
            "SELECT a.id, a.status, a.external_sync_id, a.first_name, a.last_name, \
             a.display_name, a.email, a.job_title, a.mobile_phone \
             FROM json_each(?) j CROSS JOIN accounts a \
             WHERE a.organisation = 'RBIG' AND a.external_sync_key = j.value",
        )
        .bind(serde_json::to_string(chunk)?)
        .fetch_all(&pool)
        .await?;
        found += rows
            .iter()
            .filter(|r| r.try_get::<String, _>(0).is_ok())
            .count();
    }
    let secs = t.elapsed().as_secs_f64();
    pool.close().await;
    anyhow::ensure!(
        found <= keys.len(),
        "the floor found more accounts than keys"
    );
    Ok(secs)
}

/// The floor of applying `n` operations: `n` rows of an account's width (20 text columns)
/// inserted into a fresh table of a file of its own, with the directory's durability (WAL,
/// `synchronous = FULL`), in transactions of 5,000 rows, as apply batches them. Seconds.
async fn insert_floor(path: &std::path::Path, n: usize) -> anyhow::Result<f64> {
    let pool = sqlx::sqlite::SqlitePoolOptions::new()
        .max_connections(1)
        .connect_with(
            sqlx::sqlite::SqliteConnectOptions::new()
                .filename(path)
                .create_if_missing(true)
                .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal)
                .synchronous(sqlx::sqlite::SqliteSynchronous::Full),
        )
        .await?;
    sqlx::query(
        "CREATE TABLE floor (id TEXT PRIMARY KEY, c0 TEXT, c1 TEXT, c2 TEXT, c3 TEXT, c4 TEXT, \
         c5 TEXT, c6 TEXT, c7 TEXT, c8 TEXT, c9 TEXT, c10 TEXT, c11 TEXT, c12 TEXT, c13 TEXT, \
         c14 TEXT, c15 TEXT, c16 TEXT, c17 TEXT, c18 TEXT, c19 TEXT)",
    )
    .execute(&pool)
    .await?;
    let t = Instant::now();
    let mut done = 0usize;
    while done < n {
        let batch = (n - done).min(5_000);
        let mut tx = pool.begin().await?;
        // 21 binds a row, within SQLite's 32,766.
        for start in (0..batch).step_by(1_500) {
            let rows = (batch - start).min(1_500);
            let mut q: sqlx::QueryBuilder<sqlx::Sqlite> =
                sqlx::QueryBuilder::new("INSERT INTO floor ");
            q.push_values(0..rows, |mut b, r| {
                b.push_bind(uuid::Uuid::new_v4().to_string());
                for c in 0..20 {
                    b.push_bind(format!("value {c} of row {}", done + start + r));
                }
            });
            q.build().execute(&mut *tx).await?;
        }
        tx.commit().await?;
        done += batch;
    }
    let secs = t.elapsed().as_secs_f64();
    pool.close().await;
    std::fs::remove_file(path).ok();
    Ok(secs)
}

fn tempfile_dir() -> anyhow::Result<std::path::PathBuf> {
    let dir = std::env::temp_dir().join(format!(
        "push-connector-bench-{}",
        uuid::Uuid::new_v4().simple()
    ));
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    Ok(dir)
}

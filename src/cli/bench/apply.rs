//! `bench apply`: plan and apply generated submissions against a generated embedded
//! directory, in a temporary folder, and print timings and peak memory.
//!
//! The directory: `--accounts` accounts, 80% in one large organisation (RBIG), the rest in
//! 30 others. Each submission of `--rows` rows for RBIG: 90% updates of existing accounts (a
//! changed job title), 10% creates. Rows are generated already validated: the figures are
//! the plan time (index loads and reconcile, as `pipeline::plan` does them), and the apply
//! rate of updates and of creates (journal, directory writes and history included). Not a
//! test: a measurement (release build).

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
                        (
                            format!("N{round}-{r:09}"),
                            format!("Newman{}", letters(r % 5000)),
                        )
                    };
                    let person = Person {
                        line: r as u64 + 2,
                        id: None,
                        external_sync_id: ExternalSyncId::new_unchecked(ext),
                        organisation: OdsCode::new_unchecked("RBIG"),
                        organisation_unit: None,
                        email: None,
                        title: None,
                        first_name: "Alex".into(),
                        last_name: last,
                        display_name: None,
                        job_title: Some(title.clone()),
                        office_phone: None,
                        mobile_phone: None,
                        fax: None,
                        pager: None,
                        notes: None,
                        clinical_role: None,
                        clinical_speciality: None,
                        work_area: None,
                        new_account: false,
                    };
                    RowResult {
                        line: person.line,
                        outcome: RowOutcome::Valid(Box::new(person)),
                    }
                })
                .collect();
            offset += updates;

            let t = Instant::now();
            let plan = pipeline::plan(&directory, &format!("bench-{round}"), &results, &policy)
                .await?
                .plan;
            let plan_time = t.elapsed();
            drop(results);
            let counts = plan.counts();
            println!(
                "{rows} rows: plan {:.2} s (index load and reconcile, {} rows at a time): {}",
                plan_time.as_secs_f64(),
                pipeline::PLAN_CHUNK,
                counts.summary()
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
                println!(
                    "  apply {n} {what}: {secs:.2} s, {:.0}/s ({})",
                    n as f64 / secs.max(1e-9),
                    applied.counts.summary()
                );
            }
            println!("  peak memory so far: {:.0} MiB", peak_memory_mib());
        }
        anyhow::Ok(())
    })?;
    println!("peak memory (VmHWM): {:.0} MiB", peak_memory_mib());
    std::fs::remove_dir_all(&dir).with_context(|| format!("removing {}", dir.display()))?;
    Ok(ExitCode::SUCCESS)
}

fn tempfile_dir() -> anyhow::Result<std::path::PathBuf> {
    let dir = std::env::temp_dir().join(format!(
        "push-connector-bench-{}",
        uuid::Uuid::new_v4().simple()
    ));
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    Ok(dir)
}

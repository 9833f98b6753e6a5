//! `bench scim`: creates/s and updates/s through the SCIM backend against a running SCIM
//! service provider, at several concurrencies, with and without `/Bulk`, beside a naive
//! client (one request at a time: a look-up, then a POST or PATCH, per row).
//!
//! In: the provider's base URL (`--url`, else `[directory] url`) and its bearer token
//! (`[directory] token`, `PUSH_CONNECTOR__DIRECTORY__TOKEN`). Out: one table line per case.
//! Each case runs in a child process of its own, so the client's peak memory is its own; with
//! `--server-pid` the server's peak memory (VmHWM, since it started) is read after each case.
//!
//! Each case writes its own accounts: `--rows` people generated like `bench validate`'s files
//! (names with accents, phones, roles, work areas), validated, then given an organisation and
//! addresses of the case's own, so cases never collide on one server. `{case}` in the URL is
//! replaced by the case's name: a scim2-server tenant per case keeps its in-memory store
//! (which it scans for every filter) as small as one case. Creates are applied in batches of
//! 5,000, as `apply` does; updates then change every created account's job title.

use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use reqwest::StatusCode;
use secrecy::ExposeSecret as _;
use serde_json::{Value, json};

use push_connector::bench::{peak_memory, peak_memory_of, submission};
use push_connector::config::{Config, DirectoryBackend, DirectoryConfig, Secret};
use push_connector::directory::scim::ScimDirectory;
use push_connector::directory::{Account, Change, Directory, NewAccount, Op, OpOutcome, Status};
use push_connector::formats;
use push_connector::model::{Field, OdsCode, PortalId};
use push_connector::scim::filter::quote;
use push_connector::scim::{NHS_USER, PATCH_OP};
use push_connector::validate::{self, RowOutcome};

use crate::cli::common;

/// Operations given to the backend at once (as `apply` does).
const BATCH: usize = 5000;
/// The job title every update sets.
const NEW_TITLE: &str = "Charge Nurse";

#[derive(Debug, clap::Args)]
pub struct ScimArgs {
    /// Base URL of the SCIM API (up to `/v2`), instead of `[directory] url`; `{case}` is
    /// replaced by each case's name (a scim2-server tenant per case).
    #[arg(long)]
    pub url: Option<String>,
    /// The target's name in the table.
    #[arg(long, default_value = "scim")]
    pub name: String,
    /// Accounts created then updated per case, comma-separated sizes.
    #[arg(long, value_delimiter = ',', default_value = "1000")]
    pub rows: Vec<usize>,
    /// Requests in flight for the SCIM backend, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "1,8,32")]
    pub concurrency: Vec<usize>,
    /// Skip the naive one-request-at-a-time client.
    #[arg(long)]
    pub no_naive: bool,
    /// The server's process ID, to report its peak memory (VmHWM) after each case.
    #[arg(long)]
    pub server_pid: Option<u32>,
    /// Run one case in this process (`naive`, or `c<N>` / `c<N>-bulk`; used by the parent).
    #[arg(long, hide = true)]
    pub case: Option<String>,
}

/// Which client a case measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Client {
    /// Sequential: a look-up, then a POST or PATCH, per row; no Bulk, no concurrency.
    Naive,
    /// The connector's SCIM backend.
    Backend { concurrency: usize, bulk: bool },
}

impl Client {
    fn name(self) -> String {
        match self {
            Client::Naive => "naive".to_owned(),
            Client::Backend { concurrency, bulk } => {
                format!("c{concurrency}{}", if bulk { "-bulk" } else { "" })
            }
        }
    }

    fn parse(text: &str) -> Option<Client> {
        if text == "naive" {
            return Some(Client::Naive);
        }
        let rest = text.strip_prefix('c')?;
        let (n, bulk) = match rest.strip_suffix("-bulk") {
            Some(n) => (n, true),
            None => (rest, false),
        };
        Some(Client::Backend {
            concurrency: n.parse().ok().filter(|n| *n > 0)?,
            bulk,
        })
    }
}

pub fn run(config: &Config, args: ScimArgs) -> anyhow::Result<ExitCode> {
    let url = args
        .url
        .clone()
        .or_else(|| config.directory.url.clone())
        .context("bench scim needs --url or [directory] url")?;
    if let Some(case) = &args.case {
        let client = Client::parse(case).with_context(|| format!("unknown case {case}"))?;
        let [rows] = args.rows[..] else {
            bail!("a case takes one size")
        };
        return one_case(config, &args, &url, client, rows);
    }
    let mut clients = Vec::new();
    if !args.no_naive {
        clients.push(Client::Naive);
    }
    for &concurrency in &args.concurrency {
        for bulk in [false, true] {
            clients.push(Client::Backend { concurrency, bulk });
        }
    }
    println!(
        "{:<8} {:>6} {:<9} {:>9} {:>10} {:>9} {:>10} {:>9} {:>8} {:>11} {:>11} {:>7}",
        "target",
        "rows",
        "client",
        "create s",
        "creates/s",
        "update s",
        "updates/s",
        "writes/s",
        "× naive",
        "client MiB",
        "server MiB",
        "failed"
    );
    let exe = std::env::current_exe().context("finding this program")?;
    let token = config
        .directory
        .token
        .as_ref()
        .map(|t| t.0.expose_secret().to_owned());
    for &rows in &args.rows {
        let mut naive_rate = None;
        for &client in &clients {
            let mut child = Command::new(&exe);
            child.args([
                "bench",
                "scim",
                "--url",
                &url,
                "--name",
                &args.name,
                "--rows",
                &rows.to_string(),
                "--case",
                &client.name(),
            ]);
            if let Some(pid) = args.server_pid {
                child.args(["--server-pid", &pid.to_string()]);
            }
            if let Some(t) = &token {
                child.env("PUSH_CONNECTOR__DIRECTORY__TOKEN", t);
            }
            let out = child.output().context("running a benchmark child")?;
            if !out.status.success() {
                bail!(
                    "the case {} ({rows} rows) failed: {}",
                    client.name(),
                    String::from_utf8_lossy(&out.stderr)
                );
            }
            let measured: Measured = serde_json::from_slice(&out.stdout)
                .with_context(|| format!("reading what the case {} measured", client.name()))?;
            if measured.failed >= 2 * rows {
                bail!(
                    "every write of the case {} ({rows} rows) failed: the server refused them all",
                    client.name()
                );
            }
            if client == Client::Naive {
                naive_rate = Some(measured.writes_per_second(rows));
            }
            println!("{}", measured.line(&args.name, rows, client, naive_rate));
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// One case: creates, then updates of the same accounts; one table line.
fn one_case(
    config: &Config,
    args: &ScimArgs,
    url: &str,
    client: Client,
    rows: usize,
) -> anyhow::Result<ExitCode> {
    let tag = case_code()?;
    let url = url.replace("{case}", &format!("bench-{tag}"));
    let accounts = generate(rows, &tag)?;
    let mut directory = config.directory.clone();
    directory.backend = DirectoryBackend::Scim;
    directory.url = Some(url.clone());
    let rt = common::runtime()?;
    let (create, update, failed) = rt.block_on(async {
        match client {
            Client::Naive => naive(&directory, &url, &accounts).await,
            Client::Backend { concurrency, bulk } => {
                backend(&directory, concurrency, bulk, &accounts).await
            }
        }
    })?;
    let measured = Measured {
        create_seconds: create.as_secs_f64(),
        update_seconds: update.as_secs_f64(),
        client_bytes: peak_memory(),
        server_bytes: args.server_pid.and_then(peak_memory_of),
        failed,
    };
    println!("{}", serde_json::to_string(&measured)?);
    Ok(ExitCode::SUCCESS)
}

/// What one case measured, as its child process tells the parent.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct Measured {
    create_seconds: f64,
    update_seconds: f64,
    /// Peak resident memory of the client (the case's process) and of the server.
    client_bytes: Option<u64>,
    server_bytes: Option<u64>,
    /// Writes that did not succeed.
    failed: usize,
}

impl Measured {
    /// Creates and updates together, per second.
    fn writes_per_second(&self, rows: usize) -> f64 {
        (2 * rows) as f64 / (self.create_seconds + self.update_seconds).max(1e-9)
    }

    /// The table line, with the throughput as a multiple of the naive client's in the same
    /// run (`naive`, when it was measured).
    fn line(&self, target: &str, rows: usize, client: Client, naive: Option<f64>) -> String {
        let mib =
            |b: Option<u64>| b.map_or("-".to_owned(), |b| format!("{:.0}", b as f64 / 1048576.0));
        let rate = self.writes_per_second(rows);
        let ratio = naive.map_or("-".to_owned(), |n| format!("{:.2}", rate / n.max(1e-9)));
        format!(
            "{:<8} {:>6} {:<9} {:>9.2} {:>10.0} {:>9.2} {:>10.0} {:>9.0} {:>8} {:>11} {:>11} {:>7}",
            target,
            rows,
            client.name(),
            self.create_seconds,
            rows as f64 / self.create_seconds.max(1e-9),
            self.update_seconds,
            rows as f64 / self.update_seconds.max(1e-9),
            rate,
            ratio,
            mib(self.client_bytes),
            mib(self.server_bytes),
            self.failed
        )
    }
}

/// An organisation code of a case's own: `B` and four upper-case hexadecimal digits (an ODS
/// code as the rules take it, 3 to 5 letters and digits), random, so cases never share one.
fn case_code() -> anyhow::Result<String> {
    let code = format!(
        "B{}",
        &uuid::Uuid::new_v4().simple().to_string()[..4].to_ascii_uppercase()
    );
    validate::ods_code(&code).map_err(|why| anyhow::anyhow!("the case code {code} {why}"))?;
    Ok(code)
}

/// `rows` valid generated people as new accounts of the organisation `tag`, with addresses
/// of their own.
fn generate(rows: usize, tag: &str) -> anyhow::Result<Vec<Account>> {
    // About one row in 200 is refused by validation: generate a few more.
    let bytes = submission((rows + rows / 50 + 10) as u64, 42);
    let sub = formats::read(&bytes, &BENCH_LIMITS).context("reading the generated file")?;
    let results = validate::validate(&sub, &validate::Rules::default());
    let organisation = OdsCode::new_unchecked(tag.to_ascii_uppercase());
    let ascii = |s: &str| -> String {
        deunicode::deunicode(s)
            .chars()
            .filter(char::is_ascii_alphanumeric)
            .collect::<String>()
            .to_lowercase()
    };
    let accounts: Vec<Account> = results
        .into_iter()
        .filter_map(|r| match r.outcome {
            RowOutcome::Valid(person) => Some(person),
            _ => None,
        })
        .take(rows)
        .enumerate()
        .map(|(i, person)| {
            let mut person = person.person();
            person.organisation = organisation.clone();
            let mut a = Account::from_person(PortalId::new_unchecked(""), Status::Active, &person);
            let email = format!(
                "{}.{}.{i}.{}@nhs.net",
                ascii(&person.first_name),
                ascii(&person.last_name),
                tag.to_ascii_lowercase()
            );
            a.set(Field::Email, Some(&email));
            a
        })
        .collect();
    if accounts.len() < rows {
        bail!("generated only {} valid rows of {rows}", accounts.len());
    }
    Ok(accounts)
}

/// The connector's backend: creates, then an update of each created account.
async fn backend(
    config: &DirectoryConfig,
    concurrency: usize,
    bulk: bool,
    accounts: &[Account],
) -> anyhow::Result<(Duration, Duration, usize)> {
    let directory = ScimDirectory::open(config)
        .await
        .context("connecting to the SCIM service")?
        .with_concurrency(concurrency)
        .with_bulk(bulk);
    let mut failed = 0;
    let mut created = Vec::with_capacity(accounts.len());
    let started = Instant::now();
    for part in accounts.chunks(BATCH) {
        let ops: Vec<Op> = part
            .iter()
            .map(|a| {
                Op::Create(NewAccount {
                    account: a.clone(),
                    run: String::new(),
                })
            })
            .collect();
        for outcome in directory.apply(&ops).await? {
            match outcome {
                OpOutcome::Created(a) => created.push(a),
                _ => failed += 1,
            }
        }
    }
    let create = started.elapsed();
    let started = Instant::now();
    for part in created.chunks(BATCH) {
        let ops: Vec<Op> = part
            .iter()
            .map(|a| Op::Update {
                id: a.id.clone(),
                changes: vec![Change {
                    field: Field::JobTitle,
                    before: a.get(Field::JobTitle).map(str::to_owned),
                    after: Some(NEW_TITLE.to_owned()),
                }],
                run: "bench".to_owned(),
            })
            .collect();
        failed += directory
            .apply(&ops)
            .await?
            .iter()
            .filter(|o| !matches!(o, OpOutcome::Updated))
            .count();
    }
    Ok((create, started.elapsed(), failed))
}

/// What a simple script would do: for each row, look the person up by externalId, then
/// POST (or PATCH the job title), one request at a time, without `If-Match` or Bulk.
async fn naive(
    config: &DirectoryConfig,
    url: &str,
    accounts: &[Account],
) -> anyhow::Result<(Duration, Duration, usize)> {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(config.timeout_seconds))
        .no_proxy()
        .build()
        .context("HTTP client")?;
    let token = config
        .token
        .as_ref()
        .map(|t: &Secret| t.0.expose_secret().to_owned())
        .unwrap_or_default();
    let find = async |account: &Account| -> anyhow::Result<Option<String>> {
        let filter = format!(
            "externalId eq {} and {NHS_USER}:organisation eq {}",
            quote(account.external_sync_id().unwrap_or_default()),
            quote(account.organisation())
        );
        let r = http
            .get(format!("{url}/Users"))
            .query(&[("filter", filter)])
            .bearer_auth(&token)
            .send()
            .await?;
        let status = r.status();
        let body: Value = r.json().await.unwrap_or(Value::Null);
        if status != StatusCode::OK {
            bail!("a look-up answered {status}: {body}");
        }
        Ok(body["Resources"][0]["id"].as_str().map(str::to_owned))
    };
    let mut failed = 0;
    let started = Instant::now();
    for account in accounts {
        if find(account).await?.is_some() {
            failed += 1;
            continue;
        }
        let r = http
            .post(format!("{url}/Users"))
            .bearer_auth(&token)
            .header("content-type", "application/scim+json")
            .body(ScimDirectory::create_body(account).to_string())
            .send()
            .await?;
        if r.status() != StatusCode::CREATED {
            failed += 1;
        }
        r.bytes().await?;
    }
    let create = started.elapsed();
    let patch = json!({"schemas": [PATCH_OP],
        "Operations": [{"op": "replace", "path": "title", "value": NEW_TITLE}]})
    .to_string();
    let started = Instant::now();
    for account in accounts {
        let Some(id) = find(account).await? else {
            failed += 1;
            continue;
        };
        let r = http
            .patch(format!("{url}/Users/{id}"))
            .bearer_auth(&token)
            .header("content-type", "application/scim+json")
            .body(patch.clone())
            .send()
            .await?;
        if !r.status().is_success() {
            failed += 1;
        }
        r.bytes().await?;
    }
    Ok((create, started.elapsed(), failed))
}

/// A generated benchmark file may be larger than any submission: only its rows are measured.
const BENCH_LIMITS: formats::Limits = formats::Limits {
    max_cells: u64::MAX,
    max_columns: 256,
    max_decompressed_bytes: 200 * 1024 * 1024,
    max_lines_named: 10,
};

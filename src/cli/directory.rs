//! `directory import FILE` and `directory export [FILE]`: seed the embedded directory from a
//! portal-style export, and write it out in the same shape (stable order: organisation,
//! address, ID). Import skips accounts already present, with a note, so it can run twice.
//! An export to FILE is UTF-8 with a BOM (for Excel) and says how many accounts it holds; to
//! stdout it is the CSV alone.
//! `directory add-organisation CODE [--name NAME] [--unit UNIT…]` adds an organisation (an
//! import adds those its accounts name; a first sync or file for an organisation with no
//! account yet needs it added first); `directory organisations` lists them.
//! Exit 0, 1 when some lines of the import could not be used, 2 on an error.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;

use push_connector::apply::RandomMinter;
use push_connector::config::Config;
use push_connector::deployment::Deployment;
use push_connector::directory::any::AnyDirectory;
use push_connector::directory::portable;
use push_connector::pipeline;

use super::common;

#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Seed the directory from a portal-style export (new-format columns, ID, Status).
    Import { file: PathBuf },
    /// Write the directory as a portal-style export (to stdout without FILE).
    Export { file: Option<PathBuf> },
    /// Add an organisation (its ODS code), or name one already there; add units to it.
    AddOrganisation {
        /// The ODS code (letters and digits).
        code: String,
        /// The organisation's name.
        #[arg(long)]
        name: Option<String>,
        /// An organisation unit accounts may be in; repeatable.
        #[arg(long = "unit", value_name = "UNIT")]
        units: Vec<String>,
    },
    /// List the organisations of the embedded directory, with their names and units.
    Organisations,
}

pub fn run(config: &Config, command: Command) -> anyhow::Result<ExitCode> {
    let rt = common::runtime()?;
    match command {
        Command::Import { file } => {
            let bytes =
                std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
            let parsed = portable::read(&bytes).with_context(|| format!("{}", file.display()))?;
            let outcome = rt.block_on(async {
                let deployment = Deployment::open(config).await?;
                let local = deployment.directory.local().ok_or_else(|| {
                    anyhow::anyhow!(
                        "directory import is for the embedded directory (backend = \"local\")"
                    )
                })?;
                anyhow::Ok(local.import(&parsed.accounts).await?)
            })?;
            println!(
                "imported {} {} from {}",
                outcome.imported,
                if outcome.imported == 1 {
                    "account"
                } else {
                    "accounts"
                },
                file.display()
            );
            if outcome.already_present > 0 {
                println!(
                    "  {} {} already in the directory (same ID): skipped",
                    outcome.already_present,
                    if outcome.already_present == 1 {
                        "account was"
                    } else {
                        "accounts were"
                    }
                );
            }
            for note in &outcome.skipped {
                println!("  note: {note}");
            }
            for p in &parsed.problems {
                println!("  not imported: {p}");
            }
            Ok(ExitCode::from(u8::from(!parsed.problems.is_empty())))
        }
        Command::AddOrganisation { code, name, units } => {
            let code = push_connector::validate::ods_code(&code)
                .map_err(|why| anyhow::anyhow!("\"{code}\" {why}"))?;
            let name = name.map(|n| n.trim().to_owned()).filter(|n| !n.is_empty());
            let added = rt.block_on(async {
                let directory = push_connector::deployment::open_directory(config).await?;
                let local = local_directory(&directory, "directory add-organisation")?;
                anyhow::Ok(
                    local
                        .set_organisation(&code, name.as_deref(), &units)
                        .await?,
                )
            })?;
            println!(
                "organisation {code} {}{}",
                if added {
                    "added to the directory"
                } else {
                    "is already in the directory"
                },
                match (&name, added) {
                    (Some(n), true) => format!(" as \"{n}\""),
                    (Some(n), false) => format!(", now named \"{n}\""),
                    (None, _) => String::new(),
                }
            );
            if !units.is_empty() {
                println!("  units: {}", units.join(", "));
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Organisations => {
            let orgs = rt.block_on(async {
                let directory = push_connector::deployment::open_directory(config).await?;
                let local = local_directory(&directory, "directory organisations")?;
                anyhow::Ok(local.organisations().await?)
            })?;
            if orgs.is_empty() {
                println!(
                    "no organisation is in the directory: add one with `push-connector directory \
                     add-organisation CODE --name NAME`"
                );
            }
            for (code, name, units) in orgs {
                println!(
                    "{code}\t{}{}",
                    name.unwrap_or_default(),
                    if units.is_empty() {
                        String::new()
                    } else {
                        format!("\tunits: {}", units.join(", "))
                    }
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Export { file } => {
            let accounts = rt.block_on(async {
                let deployment = Deployment::open(config).await?;
                let ctx = deployment.context(&|_, _| {});
                pipeline::resume_unfinished(&ctx, &mut RandomMinter, chrono::Utc::now()).await?;
                let local = deployment.directory.local().ok_or_else(|| {
                    anyhow::anyhow!(
                        "directory export is for the embedded directory (backend = \"local\")"
                    )
                })?;
                anyhow::Ok(local.all().await?)
            })?;
            let Some(path) = &file else {
                // To stdout (a pipe): the CSV alone.
                let mut out = std::io::stdout().lock();
                portable::write(&mut out, &accounts).context("writing the export")?;
                out.flush()?;
                return Ok(ExitCode::SUCCESS);
            };
            // A file is opened by a person, in Excel: UTF-8 with a BOM, as the reports are,
            // so that accents read right.
            let mut out = std::io::BufWriter::new(
                std::fs::File::create(path)
                    .with_context(|| format!("creating {}", path.display()))?,
            );
            out.write_all(b"\xEF\xBB\xBF")
                .and_then(|()| {
                    portable::write(&mut out, &accounts).map_err(std::io::Error::other)?;
                    out.flush()
                })
                .with_context(|| format!("writing {}", path.display()))?;
            let n = accounts.len();
            println!(
                "exported {n} account{} to {}",
                if n == 1 { "" } else { "s" },
                path.display()
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// The embedded directory, or why a verb needs it.
fn local_directory<'a>(
    directory: &'a AnyDirectory,
    verb: &str,
) -> anyhow::Result<&'a push_connector::directory::local::LocalDirectory> {
    directory.local().ok_or_else(|| {
        anyhow::anyhow!(
            "{verb} is for the embedded directory (backend = \"local\"); in the portal, \
             organisations are set up by the portal's administrators"
        )
    })
}

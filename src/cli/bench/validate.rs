//! `bench validate`: throughput and peak memory of reading + validating generated files of
//! realistic sizes, beside a raw `csv` pass over the same bytes (the physical floor).
//!
//! Each size runs in a child process of its own, so its peak memory is its own.

use std::process::{Command, ExitCode};
use std::time::Instant;

use anyhow::{Context, bail};

use push_connector::bench::{peak_memory, submission};
use push_connector::{formats, validate};

#[derive(Debug, clap::Args)]
pub struct ValidateArgs {
    /// Row counts, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "10000,100000,1000000")]
    pub rows: Vec<u64>,
    /// Run one size in this process (used by the parent run).
    #[arg(long, hide = true)]
    pub child: bool,
}

pub fn run(args: ValidateArgs) -> anyhow::Result<ExitCode> {
    if args.child {
        let [n] = args.rows[..] else {
            bail!("--child takes one size")
        };
        return validate_one(n);
    }
    println!(
        "{:>9} {:>9} {:>11} {:>8} {:>12} {:>12} {:>7} {:>10} {:>9}",
        "rows", "MB", "raw csv s", "read s", "pipeline s", "rows/s", "x raw", "peak MiB", "refused"
    );
    let exe = std::env::current_exe().context("finding this program")?;
    for n in args.rows {
        let out = Command::new(&exe)
            .args(["bench", "validate", "--child", "--rows", &n.to_string()])
            .output()
            .context("running a benchmark child")?;
        if !out.status.success() {
            bail!(
                "the {n}-row run failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        print!("{}", String::from_utf8_lossy(&out.stdout));
    }
    Ok(ExitCode::SUCCESS)
}

fn validate_one(n: u64) -> anyhow::Result<ExitCode> {
    let bytes = submission(n, 42);

    // The floor: every record parsed, nothing kept.
    let start = Instant::now();
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(&bytes[..]);
    let mut record = csv::ByteRecord::new();
    let mut records = 0u64;
    while reader.read_byte_record(&mut record)? {
        records += 1;
    }
    let raw = start.elapsed().as_secs_f64();

    let start = Instant::now();
    let size = bytes.len();
    // As `validate FILE` reads: the file's bytes handed over, not held beside its rows.
    let sub = formats::read_owned(bytes, &BENCH_LIMITS).context("reading the generated file")?;
    let read = start.elapsed().as_secs_f64();
    let results = validate::validate(&sub, &validate::Rules::default());
    let pipeline = start.elapsed().as_secs_f64();
    let counts = validate::counts(&results);
    if records != n + 1 || results.len() as u64 != n {
        bail!("read {records} records and {} rows for {n}", results.len());
    }
    println!(
        "{:>9} {:>9.1} {:>11.3} {:>8.3} {:>12.3} {:>12.0} {:>7.1} {:>10.0} {:>9}",
        n,
        size as f64 / 1e6,
        raw,
        read,
        pipeline,
        n as f64 / pipeline,
        pipeline / raw,
        peak_memory().unwrap_or(0) as f64 / 1048576.0,
        counts.refused
    );
    Ok(ExitCode::SUCCESS)
}

/// A generated benchmark file may be larger than any submission: only its rows are measured.
const BENCH_LIMITS: formats::Limits = formats::Limits {
    max_cells: u64::MAX,
    max_columns: 256,
    max_decompressed_bytes: 200 * 1024 * 1024,
    max_lines_named: 10,
};

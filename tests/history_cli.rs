//! `history ACCOUNT` through the binary, on the embedded directory: every change made to an
//! account, with the run, the channel, the file and line, found by ID, e-mail address or
//! ExternalSyncID alike.

// Test code: a failure is a panic.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::Path;
use std::process::{Command, Output};

use serde_json::{Value, json};

fn pc(dir: &Path, args: &[&str], user: &str) -> Output {
    Command::new(env!("CARGO_BIN_EXE_push-connector"))
        .args(args)
        .current_dir(dir)
        .env_remove("PUSH_CONNECTOR_CONFIG")
        .env_remove("PUSH_CONNECTOR_LOG")
        .env("USER", user)
        .output()
        .expect("runs the binary")
}

fn ok(dir: &Path, args: &[&str]) -> String {
    let o = pc(dir, args, "ops");
    assert!(
        o.status.success(),
        "{args:?}: {}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout).unwrap()
}

fn json_of(dir: &Path, args: &[&str]) -> Value {
    serde_json::from_str(&ok(dir, args)).unwrap()
}

const HEADER: &str = "ExternalSyncID,FirstName,LastName,JobTitle,Organisation\n";

/// The sample directory, with an account in RYY that uses RXX0001, Anne Lee's
/// ExternalSyncID in RXX, as its own.
fn seeded() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let mut csv = std::fs::read_to_string(common::root().join("samples/directory.csv")).unwrap();
    csv.push_str(
        "2000099,RXX0001,Mr,Owen,Price,\"Price, Owen (RYY)\",owen.price@nhs.net,GP,RYY,,,,,,,GP,,,Active,\n",
    );
    std::fs::write(dir.path().join("directory.csv"), csv).unwrap();
    ok(dir.path(), &["directory", "import", "directory.csv"]);
    dir
}

#[test]
fn history_shows_each_change_with_its_run_channel_file_and_line() {
    let dir = seeded();
    let d = dir.path();
    std::fs::write(
        d.join("first.csv"),
        format!(
            "{HEADER}RXX0002,Ben,Carter,Charge Nurse,RXX\nRXX0001,Anne,Lee,Clinical Lead,RXX\n"
        ),
    )
    .unwrap();
    std::fs::write(
        d.join("second.csv"),
        format!("{HEADER}RXX0001,Anne,Lee,Medical Director,RXX\n"),
    )
    .unwrap();
    let first = json_of(d, &["apply", "first.csv", "--json"]);
    let second = json_of(d, &["apply", "second.csv", "--json"]);
    let revert = json_of(d, &["revert", second["run"].as_str().unwrap(), "--json"]);

    let v = json_of(d, &["history", "anne.lee@nhs.net", "--json"]);
    assert_eq!(v["account"]["id"], "1000001");
    assert_eq!(v["account"]["matched_by"], "e-mail");
    assert_eq!(v["total"], 3);
    let changes = v["changes"].as_array().unwrap();
    let seen: Vec<_> = changes
        .iter()
        .map(|c| {
            (
                c["run"].clone(),
                c["channel"].clone(),
                c["file"].clone(),
                c["line"].clone(),
                c["field"].clone(),
                c["before"].clone(),
                c["after"].clone(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            (
                first["run"].clone(),
                json!("file"),
                json!("first.csv"),
                json!(3),
                json!("JobTitle"),
                json!("Consultant Cardiologist"),
                json!("Clinical Lead")
            ),
            (
                second["run"].clone(),
                json!("file"),
                json!("second.csv"),
                json!(2),
                json!("JobTitle"),
                json!("Clinical Lead"),
                json!("Medical Director")
            ),
            (
                revert["run"].clone(),
                json!("revert"),
                Value::Null,
                json!(2),
                json!("JobTitle"),
                json!("Medical Director"),
                json!("Clinical Lead")
            ),
        ]
    );
    // The revert names the run it restores and who ran it.
    assert_eq!(changes[2]["reverts"], second["run"]);
    assert_eq!(changes[2]["sender"], "ops");
    assert!(changes.iter().all(|c| c["organisation"] == "RXX"));
    let times: Vec<&str> = changes.iter().map(|c| c["at"].as_str().unwrap()).collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "{times:?}");

    // The portal ID, and the ExternalSyncID within its organisation, find the same history.
    let by_id = json_of(d, &["history", "1000001", "--json"]);
    assert_eq!(by_id["account"]["matched_by"], "ID");
    assert_eq!(by_id["changes"], v["changes"]);
    let by_key = json_of(
        d,
        &["history", "RXX0001", "--organisation", "RXX", "--json"],
    );
    assert_eq!(by_key["account"]["matched_by"], "ExternalSyncID");
    assert_eq!(by_key["changes"], v["changes"]);

    // Without an organisation, an ExternalSyncID two organisations use names both accounts.
    let o = pc(d, &["history", "RXX0001"], "ops");
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("several organisations")
            && err.contains("RXX has anne.lee@nhs.net (ID 1000001)")
            && err.contains("RYY has owen.price@nhs.net (ID 2000099)")
            && err.contains("--organisation"),
        "{err}"
    );
    let o = pc(d, &["history", "no.one@nhs.net"], "ops");
    assert_eq!(o.status.code(), Some(2));

    // The listing: one line per change, then where it came from.
    let text = ok(d, &["history", "anne.lee@nhs.net"]);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines[0],
        "anne.lee@nhs.net (ID 1000001, RXX), found by e-mail: 3 changes, oldest first"
    );
    assert!(
        lines[1].ends_with(&format!(
            "run {}  JobTitle: \"Consultant Cardiologist\" → \"Clinical Lead\"",
            first["run"].as_str().unwrap()
        )),
        "{text}"
    );
    assert_eq!(lines[2], "    file first.csv, line 3");
    assert_eq!(lines[4], "    file second.csv, line 2");
    assert_eq!(
        lines[6],
        format!(
            "    revert of run {} by ops (line 2)",
            second["run"].as_str().unwrap()
        )
    );
    // `--limit` keeps the most recent.
    let last = json_of(d, &["history", "1000001", "--limit", "1", "--json"]);
    assert_eq!(last["total"], 3);
    assert_eq!(last["changes"].as_array().unwrap().len(), 1);
    assert_eq!(last["changes"][0]["run"], revert["run"]);
}

#[test]
fn a_created_account_shows_its_initial_values_and_an_approval_keeps_the_file() {
    let dir = seeded();
    let d = dir.path();
    // Creating 2 accounts in RXX is over a guard of 1: the run is held, then approved.
    std::fs::write(d.join("c.toml"), "[guard]\nfloor = 1\nmax_created = 1\n").unwrap();
    std::fs::write(
        d.join("new.csv"),
        format!("{HEADER}RXX0300,Nia,Roberts,Porter,RXX\nRXX0301,Omar,Shah,Porter,RXX\n"),
    )
    .unwrap();
    let o = pc(
        d,
        &["--config", "c.toml", "apply", "new.csv", "--json"],
        "ops",
    );
    let held: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(held["status"], "held", "{held}");
    let run = held["run"].as_str().unwrap();
    let o = pc(d, &["--config", "c.toml", "approve", run], "alice");
    assert!(o.status.success(), "{o:?}");

    let v = json_of(
        d,
        &[
            "--config",
            "c.toml",
            "history",
            "nia.roberts@nhs.net",
            "--json",
        ],
    );
    let changes = v["changes"].as_array().unwrap();
    assert_eq!(changes.len(), 1, "{v:#}");
    let c = &changes[0];
    assert_eq!(c["field"], "created");
    assert_eq!(c["after"], "nia.roberts@nhs.net");
    assert_eq!(c["values"]["FirstName"], "Nia");
    assert_eq!(c["values"]["JobTitle"], "Porter");
    assert_eq!(c["values"]["ExternalSyncID"], "RXX0300");
    assert!(
        !c.to_string().to_lowercase().contains("password"),
        "never the initial password: {c}"
    );
    assert_eq!(
        (c["file"].clone(), c["line"].clone()),
        (json!("new.csv"), json!(2))
    );
    assert_eq!(c["channel"], "file");
    assert_eq!(c["run"], run);
    assert_eq!(c["approved_by"], "alice");
}

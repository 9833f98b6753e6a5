//! The run verbs through the binary, on the embedded SQLite directory in temporary folders.

// Test code: a failure is a panic.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_push-connector");

fn samples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("samples")
}

fn pc(dir: &Path, args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .current_dir(dir)
        .env_remove("PUSH_CONNECTOR_CONFIG")
        .env_remove("PUSH_CONNECTOR_LOG")
        .output()
        .expect("runs the binary")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn json(o: &Output) -> serde_json::Value {
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}): {}\n{}",
            stdout(o),
            String::from_utf8_lossy(&o.stderr)
        )
    })
}

fn seeded() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let o = pc(
        dir.path(),
        &[
            "directory",
            "import",
            samples().join("directory.csv").to_str().unwrap(),
        ],
    );
    assert!(o.status.success(), "{}", stdout(&o));
    assert!(
        stdout(&o).contains("imported 20 accounts"),
        "{}",
        stdout(&o)
    );
    dir
}

fn results(v: &serde_json::Value) -> Vec<(u64, String)> {
    v["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["line"].as_u64().unwrap(),
                r["result"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// Compares with a golden file; `UPDATE_GOLDEN=1` rewrites it; a mismatch writes `.failed`.
fn golden(name: &str, actual: &str) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(name);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_default();
    if expected != actual {
        let failed = path.with_file_name(format!("{name}.failed"));
        std::fs::write(&failed, actual).unwrap();
        let diff = Command::new("diff")
            .arg("-u")
            .arg(&path)
            .arg(&failed)
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default();
        panic!(
            "{} differs from the golden file (new output in {}):\n{diff}",
            path.display(),
            failed.display()
        );
    }
}

#[test]
fn quick_start_applies_then_finds_nothing_to_do() {
    let dir = seeded();
    let sub = samples().join("submission-rxx.csv");
    let sub = sub.to_str().unwrap();

    // The plan changes nothing, and matches the golden plan.
    let plan = pc(dir.path(), &["plan", sub, "--json"]);
    assert_eq!(plan.status.code(), Some(1));
    let mut v = json(&plan);
    assert_eq!(v["status"], "planned");
    v["run"] = "RUN".into();
    golden(
        "plan-submission-rxx.json",
        &(serde_json::to_string_pretty(&v).unwrap() + "\n"),
    );

    let first = pc(
        dir.path(),
        &["apply", sub, "--json", "--report", "var/report-rxx.csv"],
    );
    assert_eq!(first.status.code(), Some(1), "rows were refused");
    let v = json(&first);
    let got = results(&v);
    let count = |r: &str| got.iter().filter(|(_, x)| x == r).count();
    assert_eq!(
        (
            count("Created"),
            count("Updated"),
            count("Unchanged"),
            count("Rejected")
        ),
        (2, 3, 4, 7)
    );
    assert_eq!(v["organisation"], "RXX");

    // The report: rows as sent, Result and Message.
    let report = std::fs::read_to_string(dir.path().join("var/report-rxx.csv")).unwrap();
    let lines: Vec<&str> = report
        .trim_start_matches('\u{feff}')
        .split("\r\n")
        .collect();
    assert!(lines[0].ends_with("WorkArea,Result,Message"));
    assert!(
        lines[5].ends_with("Created,grace.hughes@nhs.net"),
        "{}",
        lines[5]
    );
    // The second Anne Lee of the file, a new starter not marked NewAccount, is asked about.
    assert!(
        lines[6].contains("Rejected,\"possibly the same person as line 2 of this file (Anne Lee"),
        "{}",
        lines[6]
    );
    assert!(
        lines[2]
            .contains("Updated,\"ben.carter@nhs.net (ID 1000002): changed JobTitle, MobilePhone\"")
    );
    assert!(lines[10].contains("Rejected") && lines[10].contains("organisation RYY"));

    // The password file is the owner's alone and holds the two new accounts.
    let pw = dir.path().join("var/initial-passwords.csv");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&pw).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert_eq!(std::fs::read_to_string(&pw).unwrap().lines().count(), 3);
    assert!(!stdout(&first).contains(&std::fs::read_to_string(&pw).unwrap()[20..]));

    // Second run: every accepted row unchanged.
    let second = pc(dir.path(), &["apply", sub, "--json"]);
    let got = results(&json(&second));
    assert!(
        got.iter().all(|(_, r)| r == "Unchanged" || r == "Rejected"),
        "{got:?}"
    );
    assert_eq!(got.iter().filter(|(_, r)| r == "Unchanged").count(), 9);

    // The export shows the changes, with the filled-in ExternalSyncID and new accounts.
    let export = pc(dir.path(), &["directory", "export"]);
    let text = stdout(&export);
    assert_eq!(text.lines().count(), 1 + 22);
    assert!(text.contains(",RXX0104,Mrs,Deborah,Evans,"));
    assert!(text.contains("\"Davies-Smith, Chloe (RXX)\",chloe.davies@nhs.net"));
    assert!(text.contains(",RXX0202,Ms,Zoë,Brontë,\"Brontë, Zoë (RXX)\",zoe.bronte@nhs.net,"));
    // A created account's portal ID has the one shape every minted ID has (as serve's).
    let created = text
        .lines()
        .find(|l| l.contains(",RXX0202,"))
        .and_then(|l| l.split(',').next())
        .unwrap();
    assert!(common::is_minted_id(created), "{created}");

    // Runs are listed with their counts.
    let runs = json(&pc(dir.path(), &["runs", "--json"]));
    let runs = runs.as_array().unwrap();
    assert_eq!(runs.len(), 2);
    assert_eq!(runs[0]["counts"]["created"], 2);
    assert_eq!(runs[1]["counts"]["unchanged"], 9);
}

/// The human plan: every update field by field, every create and every refusal, grouped,
/// each group cut at `--limit` with the number left out.
#[test]
fn plan_lists_every_change_grouped() {
    let dir = seeded();
    let sub = samples().join("submission-rxx.csv");
    let sub = sub.to_str().unwrap();
    let o = pc(dir.path(), &["plan", sub]);
    assert_eq!(o.status.code(), Some(1));
    let out = stdout(&o);
    let run = out.split_whitespace().nth(2).unwrap().trim_end_matches(':');
    golden("plan-submission-rxx.txt", &out.replace(run, "RUN"));

    let o = pc(dir.path(), &["plan", sub, "--limit", "1"]);
    let out = stdout(&o);
    let lines: Vec<&str> = out.lines().collect();
    let at = |heading: &str| lines.iter().position(|l| l.trim() == heading).unwrap();
    let update = at("would update 3 rows:");
    // The one row shown has two changed fields; the two other rows are counted.
    assert!(lines[update + 1].contains("line 3, ben.carter@nhs.net (ID 1000002): JobTitle:"));
    assert!(lines[update + 2].contains("line 3, ben.carter@nhs.net (ID 1000002): MobilePhone:"));
    assert!(lines[update + 3].contains("… and 2 more rows"), "{out}");
    let refused = at("refused 7 rows:");
    assert!(
        lines[refused + 1].contains("line 7: possibly the same person as line 2 of this file"),
        "{out}"
    );
    assert!(lines[refused + 2].contains("… and 6 more rows"), "{out}");
    assert!(!out.contains("line 10"), "{out}");
}

/// An export to a file is for Excel: UTF-8 with a BOM, so its accents read right; the command
/// says what it wrote; and the file imports again as it is.
#[test]
fn an_export_file_has_a_bom_and_says_what_it_holds() {
    let dir = seeded();
    let o = pc(dir.path(), &["directory", "export", "out.csv"]);
    assert!(o.status.success());
    assert_eq!(stdout(&o).trim(), "exported 20 accounts to out.csv");
    let bytes = std::fs::read(dir.path().join("out.csv")).unwrap();
    assert!(
        bytes.starts_with(b"\xEF\xBB\xBFID,ExternalSyncID,"),
        "{:?}",
        &bytes[..12]
    );
    let o = pc(dir.path(), &["directory", "import", "out.csv"]);
    assert!(
        stdout(&o).contains("20 accounts were already in the directory"),
        "{}",
        stdout(&o)
    );
    // To stdout, for a pipe: the CSV alone.
    let o = pc(dir.path(), &["directory", "export"]);
    assert!(o.stdout.starts_with(b"ID,"));
}

fn write_config(dir: &Path, text: &str) -> String {
    let path = dir.join("connector.toml");
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

#[test]
fn held_run_waits_for_approval_or_rejection() {
    let dir = seeded();
    let config = write_config(
        dir.path(),
        "[guard]\nfloor = 1\nmax_updated = 2\nmax_created = 100\nmax_created_share = 1.0\n",
    );
    let sub = samples().join("submission-rxx.csv");
    let sub = sub.to_str().unwrap();
    // The preview runs the same guard: it says the run would be held, and why.
    let preview = pc(dir.path(), &["--config", &config, "plan", sub, "--json"]);
    assert_eq!(preview.status.code(), Some(1));
    let preview = json(&preview);
    assert_eq!(preview["status"], "held");
    let text = stdout(&pc(dir.path(), &["--config", &config, "plan", sub]));
    assert!(
        text.contains("the real run would be HELD for approval, because:")
            && text.contains("it would update 3 accounts of RXX, more than the limit of 2"),
        "{text}"
    );
    let o = pc(dir.path(), &["--config", &config, "apply", sub, "--json"]);
    assert_eq!(o.status.code(), Some(1));
    let v = json(&o);
    assert_eq!(v["status"], "held");
    assert_eq!(v["held"], preview["held"]);
    assert_eq!(v["counts"], preview["counts"]);
    assert!(!v["held"].as_array().unwrap().is_empty());
    let run = v["run"].as_str().unwrap().to_owned();
    assert!(results(&v).iter().any(|(_, r)| r == "Held"));
    // Nothing changed yet.
    let export = stdout(&pc(dir.path(), &["directory", "export"]));
    assert!(!export.contains("grace.hughes"));
    assert!(export.contains("Staff Nurse,RXX,RXX01,'+441134960124"));

    // Rejecting drops it; it cannot then be approved.
    let o = pc(dir.path(), &["--config", &config, "reject", &run]);
    assert!(o.status.success(), "{}", stdout(&o));
    let o = pc(dir.path(), &["--config", &config, "approve", &run]);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains(&format!(
            "run {run} is rejected: only a held run can be approved"
        )),
        "{err}"
    );
    assert!(
        !err.contains("cannot read"),
        "a refusal, not corruption: {err}"
    );
    let o = pc(dir.path(), &["--config", &config, "reject", &run]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("is rejected: only a held run can be rejected"),
        "{err}"
    );
    let o = pc(dir.path(), &["--config", &config, "revert", &run]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("is rejected: only an applied run can be reverted"),
        "{err}"
    );

    // A held run speaks in the conditional: nothing was created.
    let o = pc(dir.path(), &["--config", &config, "apply", sub]);
    let out = stdout(&o);
    assert!(
        out.contains(": would create ") && out.contains("HELD for approval"),
        "{out}"
    );
    assert!(!out.contains(" created, "), "{out}");
    // It lists what approving it would change.
    assert!(out.contains("  would update 3 rows:"), "{out}");
    assert!(
        out.contains(
            "line 4, chloe.davies@nhs.net (ID 1000003): LastName: \"Davies\" → \"Davies-Smith\""
        ),
        "{out}"
    );
    assert!(
        out.contains("  would create 2 rows:\n    line 6: grace.hughes@nhs.net, Grace Hughes"),
        "{out}"
    );
    let held = out
        .split_whitespace()
        .nth(2)
        .unwrap()
        .trim_end_matches(':')
        .to_owned();
    // The same file applied again: the run still held is superseded, not left beside it.
    let v = json(&pc(
        dir.path(),
        &["--config", &config, "apply", sub, "--json"],
    ));
    let again = v["run"].as_str().unwrap().to_owned();
    let runs = json(&pc(dir.path(), &["--config", &config, "runs", "--json"]));
    let earlier = runs
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == held.as_str())
        .unwrap();
    assert_eq!(earlier["status"], "rejected", "{earlier}");
    assert!(
        earlier["note"]
            .as_str()
            .unwrap_or_default()
            .contains(&format!("superseded by {again}")),
        "{earlier}"
    );
    assert!(
        pc(dir.path(), &["--config", &config, "reject", &again])
            .status
            .success()
    );

    // A new held run, approved.
    let v = json(&pc(
        dir.path(),
        &["--config", &config, "apply", sub, "--json"],
    ));
    let run = v["run"].as_str().unwrap().to_owned();
    let o = pc(
        dir.path(),
        &["--config", &config, "approve", &run, "--json"],
    );
    let v = json(&o);
    assert_eq!(v["status"], "applied");
    assert_eq!(
        results(&v)
            .iter()
            .filter(|(_, r)| r == "Created" || r == "Updated")
            .count(),
        5
    );
    let export = stdout(&pc(dir.path(), &["directory", "export"]));
    assert!(export.contains("grace.hughes@nhs.net"));
    let runs = stdout(&pc(dir.path(), &["--config", &config, "runs"]));
    assert!(
        runs.contains("rejected") && runs.contains("applied"),
        "{runs}"
    );
    // An applied run cannot be approved or rejected again: a plain refusal saying it is
    // applied, not a database that cannot be read.
    for (verb, done) in [("approve", "approved"), ("reject", "rejected")] {
        let o = pc(dir.path(), &["--config", &config, verb, &run]);
        assert_eq!(o.status.code(), Some(2));
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(
            err.contains(&format!(
                "run {run} is applied: only a held run can be {done}"
            )) && !err.contains("cannot read"),
            "{verb}: {err}"
        );
    }
}

#[test]
fn revert_restores_fields_except_those_changed_since() {
    let dir = seeded();
    let header = "ExternalSyncID,FirstName,LastName,JobTitle,Organisation,MobilePhone\n";
    let first = format!(
        "{header}RXX0002,Ben,Carter,Charge Nurse,RXX,07911 023457\nRXX0007,George,Harris,Chief Pharmacist,RXX,\nRXX0300,Nia,Roberts,Porter,RXX,\n"
    );
    let second = format!("{header}RXX0007,George,Harris,Lead Pharmacist,RXX,\n");
    std::fs::write(dir.path().join("first.csv"), first).unwrap();
    std::fs::write(dir.path().join("second.csv"), second).unwrap();
    let v = json(&pc(dir.path(), &["apply", "first.csv", "--json"]));
    let run = v["run"].as_str().unwrap().to_owned();
    assert_eq!(
        results(&v),
        [
            (2, "Updated".to_owned()),
            (3, "Updated".to_owned()),
            (4, "Created".to_owned())
        ]
    );
    let o = pc(dir.path(), &["apply", "second.csv"]);
    assert!(o.status.success(), "{}", stdout(&o));

    let o = pc(dir.path(), &["revert", &run, "--json"]);
    assert_eq!(o.status.code(), Some(1), "one field was left");
    let v = json(&o);
    assert_eq!(v["restored"], 1);
    let refused = v["refused"].as_array().unwrap();
    assert_eq!(refused.len(), 1);
    assert!(
        refused[0]
            .as_str()
            .unwrap()
            .contains("JobTitle of account ID 1000007"),
        "{refused:?}"
    );
    assert_eq!(v["created_accounts"][0]["email"], "nia.roberts@nhs.net");

    let export = stdout(&pc(dir.path(), &["directory", "export"]));
    // Ben's job title and mobile are back; George keeps the later run's title.
    assert!(
        export.contains(
            "Carter, Ben (RXX)\",ben.carter@nhs.net,Staff Nurse,RXX,RXX01,'+441134960124,,"
        ),
        "{export}"
    );
    assert!(export.contains("george.harris@nhs.net,Lead Pharmacist,"));
    // The created account stays: a connector never deletes.
    assert!(export.contains("nia.roberts@nhs.net"));
    let runs = stdout(&pc(dir.path(), &["runs"]));
    assert!(
        runs.contains("reverted") && runs.contains("revert "),
        "{runs}"
    );
}

#[test]
fn two_applies_at_once_do_not_duplicate() {
    let dir = seeded();
    let mut text = String::from("ExternalSyncID,FirstName,LastName,Organisation\n");
    for i in 0..40 {
        // Forty people, each their own name (one name on many rows would be refused as
        // likely duplicates of its first row).
        let suffix: String = [b'a' + (i / 26) as u8, b'a' + (i % 26) as u8]
            .iter()
            .map(|&b| char::from(b))
            .collect();
        text.push_str(&format!("C{i:03},Sam,Taylor{suffix},RXX\n"));
    }
    std::fs::write(dir.path().join("new.csv"), text).unwrap();
    let spawn = || {
        Command::new(BIN)
            .args(["apply", "new.csv", "--json"])
            .current_dir(dir.path())
            .env_remove("PUSH_CONNECTOR_CONFIG")
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let a = spawn();
    let b = spawn();
    let a = a.wait_with_output().unwrap();
    let b = b.wait_with_output().unwrap();
    let ra = results(&json(&a));
    let rb = results(&json(&b));
    let created = |r: &[(u64, String)]| r.iter().filter(|(_, x)| x == "Created").count();
    let unchanged = |r: &[(u64, String)]| r.iter().filter(|(_, x)| x == "Unchanged").count();
    assert_eq!(created(&ra) + created(&rb), 40, "{ra:?} {rb:?}");
    assert_eq!(unchanged(&ra) + unchanged(&rb), 40);
    let export = stdout(&pc(dir.path(), &["directory", "export"]));
    assert_eq!(export.matches("sam.taylor").count(), 40);
    for i in 0..40 {
        assert_eq!(export.matches(&format!("C{i:03},")).count(), 1, "{export}");
    }
}

#[test]
fn a_file_with_nothing_to_apply_records_no_run() {
    let dir = seeded();
    std::fs::write(
        dir.path().join("header-only.csv"),
        "ExternalSyncID,FirstName,LastName,Organisation\r\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("all-refused.csv"),
        "ExternalSyncID,FirstName,LastName,Organisation\r\nE1,=x,Lee,RXX\r\n",
    )
    .unwrap();
    for (file, why) in [
        ("header-only.csv", "the file has no rows"),
        ("all-refused.csv", "none of its 1 row(s) can be applied"),
    ] {
        let o = pc(dir.path(), &["apply", file]);
        assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));
        let out = stdout(&o);
        assert!(
            out.contains("nothing to apply, and no run was recorded"),
            "{out}"
        );
        assert!(out.contains(why), "{out}");
        assert!(!out.contains("UNKNOWN"), "{out}");
    }
    let runs = stdout(&pc(dir.path(), &["runs", "--json"]));
    assert_eq!(runs.trim(), "[]", "no run recorded");
}

#[test]
fn importing_again_says_so_in_one_line() {
    let dir = seeded();
    let csv = samples().join("directory.csv");
    let o = pc(dir.path(), &["directory", "import", csv.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stdout(&o));
    let out = stdout(&o);
    assert!(out.contains("imported 0 accounts"), "{out}");
    assert!(
        out.contains("20 accounts were already in the directory (same ID): skipped"),
        "{out}"
    );
    assert_eq!(out.lines().count(), 2, "{out}");
}

#[test]
fn keys_a_spreadsheet_damaged_create_nothing_and_name_the_account_meant() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("directory.csv"),
        "ID,ExternalSyncID,FirstName,LastName,DisplayName,Email,Organisation,Status\n\
         1000001,000123,Anne,Lee,\"Lee, Anne (RXX)\",anne.lee@nhs.net,RXX,Active\n\
         1000002,456,Ben,Carter,\"Carter, Ben (RXX)\",ben.carter@nhs.net,RXX,Active\n",
    )
    .unwrap();
    let o = pc(dir.path(), &["directory", "import", "directory.csv"]);
    assert!(stdout(&o).contains("imported 2 accounts"), "{}", stdout(&o));
    std::fs::write(
        dir.path().join("excel.csv"),
        "ExternalSyncID,FirstName,LastName,Organisation\n\
         123,Anne,Lee,RXX\n456.0,Ben,Carter,RXX\n456,Ben,Carter,RXX\n",
    )
    .unwrap();
    let o = pc(dir.path(), &["apply", "excel.csv", "--json"]);
    assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));
    let v = json(&o);
    assert_eq!(
        results(&v),
        [
            (2, "Rejected".to_owned()),
            (3, "Rejected".to_owned()),
            (4, "Unchanged".to_owned())
        ]
    );
    assert_eq!(v["counts"]["created"], 0);
    let message = |line: usize| v["rows"][line]["message"].as_str().unwrap().to_owned();
    assert!(
        message(0).contains(
            "Excel removes leading zeros when it opens a CSV; the account with ExternalSyncID \
             000123 is anne.lee@nhs.net (ID 1000001): format the column as text and send the \
             file again"
        ),
        "{}",
        message(0)
    );
    assert!(
        message(1).contains("the account with ExternalSyncID 456 is ben.carter@nhs.net"),
        "{}",
        message(1)
    );
    let o = pc(dir.path(), &["directory", "export"]);
    assert_eq!(
        stdout(&o).lines().count(),
        3,
        "nothing created: {}",
        stdout(&o)
    );
}

#[test]
fn a_run_that_replaces_one_field_on_too_many_accounts_is_held_naming_it() {
    let dir = seeded();
    // Four of RXX's twelve accounts get a new job title: each row on its own is a plain
    // update, together a third of the organisation's job titles replaced.
    let mut file = String::from("ExternalSyncID,FirstName,LastName,JobTitle,Organisation\n");
    for (key, first, last) in [
        ("RXX0001", "Anne", "Lee"),
        ("RXX0002", "Ben", "Carter"),
        ("RXX0003", "Chloe", "Davies"),
        ("RXX0007", "George", "Harris"),
    ] {
        file.push_str(&format!("{key},{first},{last},Locum,RXX\n"));
    }
    let sub = dir.path().join("titles.csv");
    std::fs::write(&sub, file).unwrap();
    let sub = sub.to_str().unwrap();
    let config = write_config(
        dir.path(),
        "[guard]\nfloor = 2\nmax_updated_share = 1.0\nmax_field_share = 0.25\n\
         [[organisation]]\ncode = \"RXX\"\n",
    );
    let o = pc(dir.path(), &["--config", &config, "apply", sub, "--json"]);
    assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));
    let v = json(&o);
    assert_eq!(v["status"], "held");
    assert_eq!(
        v["held"],
        serde_json::json!([
            "it would replace or clear JobTitle on 4 of RXX's 12 accounts, more than 25% for one field"
        ])
    );
    let export = stdout(&pc(dir.path(), &["directory", "export"]));
    assert!(!export.contains("Locum"), "nothing changed while held");

    // The organisation's own share lets the same file through.
    let config = write_config(
        dir.path(),
        "[guard]\nfloor = 2\nmax_updated_share = 1.0\nmax_field_share = 0.25\n\
         [[organisation]]\ncode = \"RXX\"\n[organisation.guard]\nmax_field_share = 0.5\n",
    );
    let o = pc(dir.path(), &["--config", &config, "apply", sub, "--json"]);
    assert!(o.status.success(), "{}", stdout(&o));
    assert_eq!(json(&o)["counts"]["updated"], 4);
    let export = stdout(&pc(dir.path(), &["directory", "export"]));
    assert_eq!(export.matches(",Locum,").count(), 4);
}

/// A directory of four accounts of RXX: Siobhán O'Neill made by hand (no ExternalSyncID),
/// the others with their staff numbers.
fn namesake_directory() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("directory.csv"),
        "ID,ExternalSyncID,FirstName,LastName,DisplayName,Email,Organisation,Status\n\
         2000001,,Siobhán,O'Neill,\"O'Neill, Siobhán (RXX)\",siobhan.oneill@nhs.net,RXX,Active\n\
         2000002,HR2,Ben,Carter,\"Carter, Ben (RXX)\",ben.carter@nhs.net,RXX,Active\n\
         2000003,HR3,Chloe,Davies,\"Davies, Chloe (RXX)\",chloe.davies@nhs.net,RXX,Active\n\
         2000004,HR4,Dev,Patel,\"Patel, Dev (RXX)\",dev.patel@nhs.net,RXX,Active\n",
    )
    .unwrap();
    let o = pc(dir.path(), &["directory", "import", "directory.csv"]);
    assert!(stdout(&o).contains("imported 4 accounts"), "{}", stdout(&o));
    dir
}

#[test]
fn a_likely_duplicate_is_not_created_until_the_row_says_who_it_is() {
    let dir = namesake_directory();
    let before = stdout(&pc(dir.path(), &["directory", "export"]));
    // The HR feed brings the hand-made account's person with her staff number, spelt as the
    // HR system spells her; and another Ben Carter, who has a staff number of his own.
    std::fs::write(
        dir.path().join("staff.csv"),
        "ExternalSyncID,FirstName,LastName,Organisation\n\
         HR1,SIOBHAN,O NEILL,RXX\n\
         HR9,Ben,Carter,RXX\n",
    )
    .unwrap();
    let o = pc(dir.path(), &["plan", "staff.csv", "--json"]);
    let v = json(&o);
    assert_eq!(
        results(&v),
        [(2, "Rejected".to_owned()), (3, "Created".to_owned())]
    );
    assert_eq!(
        v["rows"][0]["message"],
        "possibly the same person as siobhan.oneill@nhs.net (ID 2000001), an account of the \
         same name without an ExternalSyncID, so nothing was created: to update that account, \
         put its ID 2000001 in the row's ID column; if this is another person with the same \
         name, set the row's NewAccount column to yes"
    );
    let o = pc(dir.path(), &["apply", "staff.csv", "--json"]);
    assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));
    let after = stdout(&pc(dir.path(), &["directory", "export"]));
    assert_eq!(after.lines().count(), before.lines().count() + 1, "{after}");
    assert!(
        !after.contains("HR1"),
        "Siobhán was not created again: {after}"
    );

    // Given the ID, the row updates her account, which takes the staff number.
    std::fs::write(
        dir.path().join("staff.csv"),
        "ID,ExternalSyncID,FirstName,LastName,Organisation\n\
         2000001,HR1,Siobhán,O'Neill,RXX\n",
    )
    .unwrap();
    let v = json(&pc(dir.path(), &["apply", "staff.csv", "--json"]));
    assert_eq!(results(&v), [(2, "Updated".to_owned())], "{v}");
    // Another Siobhán O'Neill: NewAccount says so, in either layout.
    std::fs::write(
        dir.path().join("old.csv"),
        "Organisation Code,Local Unique Identifier,First Name,Last Name,New Account\n\
         RXX,HR7,Ben,Carter,maybe\n",
    )
    .unwrap();
    let v = json(&pc(dir.path(), &["plan", "old.csv", "--json"]));
    assert_eq!(
        v["rows"][0]["message"],
        "New Account \"maybe\" must be yes or no (blank means no): yes says the row is a person \
         with no account yet, although an account of the same name exists"
    );
    let o = pc(dir.path(), &["directory", "import", "directory.csv"]);
    assert!(o.status.success(), "{}", stdout(&o));
}

#[test]
fn new_account_yes_creates_a_namesake() {
    let dir = namesake_directory();
    std::fs::write(
        dir.path().join("staff.csv"),
        "ExternalSyncID,FirstName,LastName,Organisation,NewAccount\n\
         HR1,Siobhan,O'Neill,RXX,Yes\n",
    )
    .unwrap();
    let v = json(&pc(dir.path(), &["apply", "staff.csv", "--json"]));
    assert_eq!(results(&v), [(2, "Created".to_owned())], "{v}");
    assert_eq!(v["rows"][0]["message"], "siobhan.oneill2@nhs.net");
}

#[test]
fn a_file_with_its_name_columns_swapped_is_refused_whole() {
    let dir = namesake_directory();
    let before = stdout(&pc(dir.path(), &["directory", "export"]));
    std::fs::write(
        dir.path().join("swapped.csv"),
        "ExternalSyncID,FirstName,LastName,Organisation,JobTitle\n\
         HR2,Carter,Ben,RXX,Nurse\n\
         HR3,Davies,Chloe,RXX,Nurse\n\
         HR4,Patel,Dev,RXX,Nurse\n\
         HR5,Ng,Bo,RXX,Nurse\n",
    )
    .unwrap();
    let o = pc(dir.path(), &["apply", "swapped.csv"]);
    assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));
    let why = "the FirstName and LastName columns look swapped: 3 of 3 rows that match an \
               account give them the other way round (line 2 gives FirstName \"Carter\" and \
               LastName \"Ben\" for ben.carter@nhs.net (ID 2000002); line 3 gives FirstName \
               \"Davies\" and LastName \"Chloe\" for chloe.davies@nhs.net (ID 2000003); line 4 \
               gives FirstName \"Patel\" and LastName \"Dev\" for dev.patel@nhs.net (ID \
               2000004)); every row is refused: put each value in its own column and send the \
               file again";
    assert!(
        stdout(&o).contains(&format!("  NOTHING was applied: {why}\n")),
        "{}",
        stdout(&o)
    );
    let v = json(&pc(dir.path(), &["apply", "swapped.csv", "--json"]));
    assert_eq!(v["refused"], why);
    assert_eq!(v["counts"]["rejected"], 4, "{v}");
    for row in v["rows"].as_array().unwrap() {
        assert_eq!(
            row["message"],
            "every row is refused: the FirstName and LastName columns look swapped (3 of 3 rows \
             that match an account give them the other way round)"
        );
    }
    assert_eq!(
        stdout(&pc(dir.path(), &["directory", "export"])),
        before,
        "nothing renamed or created"
    );
}

#[test]
fn the_shipped_samples_raise_neither_a_likely_duplicate_nor_swapped_columns() {
    let dir = seeded();
    let mut files: Vec<PathBuf> = Vec::new();
    for folder in [samples(), samples().join("messy")] {
        for entry in std::fs::read_dir(folder).unwrap() {
            let path = entry.unwrap().path();
            let name = path.to_string_lossy().to_string();
            if path.is_file()
                && !name.ends_with(".json")
                && !name.ends_with(".toml")
                && !name.ends_with("directory.csv")
            {
                files.push(path);
            }
        }
    }
    let mut planned = 0;
    for file in &files {
        let o = pc(dir.path(), &["plan", file.to_str().unwrap(), "--json"]);
        let Ok(v) = serde_json::from_slice::<serde_json::Value>(&o.stdout) else {
            continue;
        };
        assert!(v["refused"].is_null(), "{}: {v}", file.display());
        for row in v["rows"].as_array().into_iter().flatten() {
            let message = row["message"].as_str().unwrap_or_default();
            // A row may repeat an earlier row's name (the sample's second Anne Lee, a new
            // starter not marked NewAccount): that is the file's own question to answer. No
            // account of the sample directory is anyone's likely duplicate.
            assert!(
                !message.starts_with("possibly the same person")
                    || message.starts_with("possibly the same person as line "),
                "{}: {message}",
                file.display()
            );
            planned += 1;
        }
    }
    assert!(planned > 30, "{planned} rows planned");
}

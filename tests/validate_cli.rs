//! `validate FILE`: the JSON contract, exit codes and golden results for messy real-world files.

// Test code: a failure is a panic.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::Path;

use common::{assert_golden, root, run_in};
use serde_json::Value;

/// Runs `validate --json` and returns (exit code, the one JSON object on stdout).
fn validate_json(file: &Path) -> (i32, Value) {
    let out = run_in(&root(), &["validate", "--json", file.to_str().unwrap()]);
    let stdout = String::from_utf8(out.stdout).expect("utf-8 stdout");
    let value: Value = serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("stdout is not one JSON object ({e}): {stdout}"));
    (out.status.code().expect("exit code"), value)
}

fn messy(name: &str) -> std::path::PathBuf {
    root().join("samples/messy").join(name)
}

#[test]
fn every_messy_sample_matches_its_golden_result() {
    let mut names: Vec<String> = std::fs::read_dir(root().join("samples/messy"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| !n.ends_with(".json") && !n.ends_with(".failed"))
        .collect();
    names.sort();
    assert!(names.len() >= 8, "{names:?}");
    for name in names {
        let (code, value) = validate_json(&messy(&name));
        let golden = serde_json::json!({ "exit_code": code, "output": value });
        let text = serde_json::to_string_pretty(&golden).unwrap() + "\n";
        assert_golden(&messy(&format!("{name}.expected.json")), &text);
    }
}

fn row(value: &Value, line: u64) -> &Value {
    value["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["line"] == line)
        .unwrap_or_else(|| panic!("no row for line {line}: {value}"))
}

#[test]
fn excel_bom_crlf_file_reports_each_refused_line() {
    let (code, v) = validate_json(&messy("new-excel-bom-crlf.csv"));
    assert_eq!(code, 1, "some rows refused");
    assert_eq!(v["format"], "new");
    assert_eq!(v["encoding"], "UTF-8 with BOM");
    assert_eq!(row(&v, 2)["status"], "valid");
    assert_eq!(row(&v, 3)["status"], "valid");
    // Line 4 is blank: skipped, and the following lines keep their own numbers.
    assert!(v["rows"].as_array().unwrap().iter().all(|r| r["line"] != 4));
    let contact = &row(&v, 5)["issues"][0];
    assert_eq!(contact["column"], "Email");
    assert_eq!(contact["value"], "raj.patel@gmail.com");
    assert!(contact["message"].as_str().unwrap().contains("contacts"));
    let issues = row(&v, 6)["issues"].as_array().unwrap();
    let columns: Vec<&str> = issues
        .iter()
        .map(|i| i["column"].as_str().unwrap())
        .collect();
    assert_eq!(
        columns,
        ["FirstName", "Title", "OfficePhone", "MobilePhone"]
    );
    assert!(
        row(&v, 7)["issues"][0]["message"]
            .as_str()
            .unwrap()
            .contains("scientific")
    );
}

#[test]
fn legacy_windows_1252_file_keeps_its_accents() {
    let out = run_in(
        &root(),
        &["validate", messy("old-windows-1252.csv").to_str().unwrap()],
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("old format, windows-1252"), "{text}");
    assert!(text.contains("connector: RXX Connector"), "{text}");
    assert!(
        text.contains("\"Department\" has no portal field"),
        "{text}"
    );
    assert!(
        text.contains("line 5:") && text.contains("Mobile \"0113 496 0789\""),
        "{text}"
    );
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn text_read_in_the_wrong_encoding_is_refused_per_cell_and_accents_pass() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("mojibake.csv");
    std::fs::write(
        &file,
        "ExternalSyncID,FirstName,LastName,Organisation,Title\n\
         E1,Zo\u{eb},M\u{fc}ller,RXX,Dr\n\
         E2,Jos\u{c3}\u{a9},\u{d3} Briain,RXX,\n\
         E3,Si\u{e2}n,O\u{e2}\u{20ac}\u{2122}Brien,RXX,\n\
         E4,Ann,Le\u{fffd},RXX,\n",
    )
    .unwrap();
    let (code, v) = validate_json(&file);
    assert_eq!(code, 1, "{v}");
    assert_eq!(row(&v, 2)["status"], "valid", "{v}");
    for (line, column, value) in [
        (3, "FirstName", "Jos\u{c3}\u{a9}"),
        (4, "LastName", "O\u{e2}\u{20ac}\u{2122}Brien"),
        (5, "LastName", "Le\u{fffd}"),
    ] {
        let issues = row(&v, line)["issues"].as_array().unwrap();
        assert_eq!(issues.len(), 1, "line {line}: {issues:?}");
        assert_eq!(issues[0]["column"], column);
        assert_eq!(issues[0]["value"], value);
        let message = issues[0]["message"].as_str().unwrap();
        assert!(
            message.ends_with(
                "the file was saved in a different encoding than it was read in: \
                 save it as CSV UTF-8"
            ),
            "{message}"
        );
    }
}

#[test]
fn a_file_in_neither_format_is_rejected_with_exit_2() {
    let (code, v) = validate_json(&messy("not-a-submission.csv"));
    assert_eq!(code, 2);
    assert_eq!(v["format"], Value::Null);
    let message = v["file_issues"][0]["message"].as_str().unwrap();
    assert!(
        message.contains("ExternalSyncID, FirstName, LastName, Organisation"),
        "{message}"
    );
    assert!(message.contains("Local Unique Identifier"), "{message}");
}

#[test]
fn a_clean_file_exits_0_and_a_missing_file_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("ok.csv");
    std::fs::write(
        &file,
        "ExternalSyncID,FirstName,LastName,Organisation\nE1,Ann,Lee,RXX\n",
    )
    .unwrap();
    let (code, v) = validate_json(&file);
    assert_eq!((code, v["rows"][0]["status"].as_str()), (0, Some("valid")));
    let out = run_in(dir.path(), &["validate", "missing.csv"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("missing.csv"));
}

#[test]
fn a_report_sent_back_without_its_two_columns_reads_as_the_original() {
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("report.csv");
    let source = messy("new-excel-bom-crlf.csv");
    let out = run_in(
        &root(),
        &[
            "validate",
            source.to_str().unwrap(),
            "--report",
            report.to_str().unwrap(),
        ],
    );
    assert_eq!(out.status.code(), Some(1));

    // Remove Result and Message, as an administrator would before sending it again.
    let mut reader = csv::Reader::from_path(&report).unwrap();
    let headers = reader.headers().unwrap().clone();
    assert_eq!(
        headers.iter().rev().take(2).collect::<Vec<_>>(),
        ["Message", "Result"]
    );
    let resubmitted = dir.path().join("again.csv");
    let mut writer = csv::Writer::from_path(&resubmitted).unwrap();
    writer
        .write_record(
            headers
                .iter()
                .take(headers.len() - 2)
                .map(|h| h.trim_start_matches('\u{feff}')),
        )
        .unwrap();
    let mut results = Vec::new();
    for record in reader.records() {
        let record = record.unwrap();
        results.push(record[record.len() - 2].to_owned());
        writer
            .write_record(record.iter().take(record.len() - 2))
            .unwrap();
    }
    writer.flush().unwrap();
    assert_eq!(results, ["Rejected", "Rejected", "Rejected"]);

    let mut original =
        push_connector::formats::read(&std::fs::read(&source).unwrap(), &Default::default())
            .unwrap();
    original.rows.retain(|r| [5, 6, 7].contains(&r.line));
    let again =
        push_connector::formats::read(&std::fs::read(&resubmitted).unwrap(), &Default::default())
            .unwrap();
    let rules = push_connector::validate::Rules::default();
    let a = push_connector::validate::validate(&original, &rules);
    let b = push_connector::validate::validate(&again, &rules);
    let strip = |r: &[push_connector::validate::RowResult]| {
        r.iter()
            .map(|r| match &r.outcome {
                push_connector::validate::RowOutcome::Valid(p) => format!(
                    "{:?}",
                    push_connector::model::Person {
                        line: 0,
                        ..p.person()
                    }
                ),
                push_connector::validate::RowOutcome::Refused(i) => format!(
                    "{:?}",
                    i.iter()
                        .map(|i| (&i.column, &i.value, &i.message))
                        .collect::<Vec<_>>()
                ),
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(strip(&a), strip(&b));
}

/// Excel for Mac's "CSV (Macintosh)" ends lines with CR alone: each refused row is named by
/// its own line, as in the LF and CRLF forms of the same file.
#[test]
fn cr_only_lf_and_crlf_files_name_the_same_lines() {
    let dir = tempfile::tempdir().unwrap();
    let rows = [
        "ExternalSyncID,FirstName,LastName,Organisation",
        "A1,Ann,Lee,RXX",
        "A2,,Ng,RXX",
        "",
        "A3,Cy,,RXX",
    ];
    for (name, end) in [("cr", "\r"), ("lf", "\n"), ("crlf", "\r\n")] {
        let path = dir.path().join(format!("{name}.csv"));
        std::fs::write(&path, rows.join(end) + end).unwrap();
        let (code, v) = validate_json(&path);
        assert_eq!(code, 1, "{name}: {v}");
        let lines: Vec<(u64, &str)> = v["rows"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| (r["line"].as_u64().unwrap(), r["status"].as_str().unwrap()))
            .collect();
        assert_eq!(
            lines,
            [(2, "valid"), (3, "refused"), (5, "refused")],
            "{name}: {v}"
        );
    }
}

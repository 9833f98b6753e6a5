//! A run killed (SIGKILL) at random moments, many times, ends in the state of an
//! uninterrupted run: same accounts, same fields, no duplicates.

// Test code: a failure is a panic.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_push-connector");

/// A name part from a number: letters only (names may not hold digits).
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

fn pc(dir: &Path, args: &[&str]) -> std::process::Output {
    Command::new(BIN)
        .arg("--config")
        .arg(dir.join("connector.toml"))
        .args(args)
        .current_dir(dir)
        .env_remove("PUSH_CONNECTOR_CONFIG")
        .output()
        .expect("runs")
}

/// A directory of 1,500 accounts and a submission of 3,000 rows: 1,500 updates (half of
/// them a changed job title) and 1,500 creates, some sharing a name (said to be new people,
/// so they are not refused as likely duplicates of each other).
fn setup(dir: &Path) {
    let mut seed =
        String::from("ID,ExternalSyncID,FirstName,LastName,Email,JobTitle,Organisation,Status\n");
    let mut sub =
        String::from("ExternalSyncID,FirstName,LastName,JobTitle,Organisation,NewAccount\n");
    for i in 0..1500 {
        seed.push_str(&format!(
            "P{i:05},E{i:05},Alex,Smith{l},alex.smith{l}@nhs.net,Nurse,RKK,Active\n",
            l = letters(i)
        ));
        let title = if i % 2 == 0 { "Nurse" } else { "Sister" };
        sub.push_str(&format!("E{i:05},Alex,Smith{},{title},RKK,\n", letters(i)));
    }
    for i in 0..1500 {
        sub.push_str(&format!(
            "N{i:05},Jo,Brown{},Porter,RKK,yes\n",
            letters(i % 300)
        ));
    }
    // The guard would hold a run this size; this test is about resuming.
    std::fs::write(dir.join("connector.toml"), "[guard]\nfloor = 1000000\n").unwrap();
    std::fs::write(dir.join("seed.csv"), seed).unwrap();
    std::fs::write(dir.join("sub.csv"), sub).unwrap();
    let o = pc(dir, &["directory", "import", "seed.csv"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stdout));
}

/// The export with portal IDs masked (new accounts get random IDs).
fn export(dir: &Path) -> Vec<String> {
    let o = pc(dir, &["directory", "export"]);
    assert!(o.status.success());
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(|l| match l.split_once(',') {
            Some((id, _)) if id.starts_with('P') || id == "ID" => l.to_owned(),
            Some((_, rest)) => format!("NEW,{rest}"),
            None => l.to_owned(),
        })
        .collect()
}

/// A small deterministic generator (xorshift), seeded from the clock and printed.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

#[test]
fn killed_runs_resume_to_the_uninterrupted_state() {
    let reference = tempfile::tempdir().unwrap();
    setup(reference.path());
    let started = Instant::now();
    let o = pc(reference.path(), &["apply", "sub.csv"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stdout));
    let full = started.elapsed();
    let want = export(reference.path());
    assert_eq!(want.len(), 1 + 3000);

    let dir = tempfile::tempdir().unwrap();
    setup(dir.path());
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(1, |d| d.as_nanos() as u64)
        | 1;
    eprintln!("kill-and-resume seed {seed}, uninterrupted run {full:?}");
    let mut rng = Rng(seed);
    // Kill moments spread over most of a run: the writing phase is a short part of it, and a
    // window of only its first half can let every kill land before anything is journalled,
    // and one of the whole run lets too many runs finish.
    let window = (full.as_millis() as u64 * 3 / 4).max(20);
    let mut kills = 0;
    let mut attempts = 0;
    while kills < 20 && attempts < 80 {
        attempts += 1;
        let mut child = Command::new(BIN)
            .arg("--config")
            .arg(dir.path().join("connector.toml"))
            .args(["apply", "sub.csv"])
            .current_dir(dir.path())
            .env_remove("PUSH_CONNECTOR_CONFIG")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(rng.next() % window));
        if child.try_wait().unwrap().is_none() {
            child.kill().unwrap(); // SIGKILL
            kills += 1;
        }
        child.wait().unwrap();
    }
    eprintln!("{kills} of {attempts} runs killed");
    assert!(kills >= 15, "only {kills} kills landed");
    // Let it finish: the next apply resumes what was left and finds the rest done.
    let o = pc(dir.path(), &["apply", "sub.csv", "--json"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stdout));
    let got = export(dir.path());
    assert_eq!(got.len(), want.len(), "same number of accounts");
    assert_eq!(got, want, "every field as in the uninterrupted run");
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(
        v["rows"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["result"] == "Unchanged"),
        "after resume the file is all applied"
    );
}

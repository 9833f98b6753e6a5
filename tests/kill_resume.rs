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

/// A Bulk request of `n` creates of organisation `org`, with externalIds `{org}-{i}`.
fn bulk_of_creates(org: &str, n: usize) -> serde_json::Value {
    let ops: Vec<serde_json::Value> = (0..n)
        .map(|i| {
            let last = format!("Kay{}", letters(i));
            serde_json::json!({
                "method": "POST",
                "path": "/Users",
                "bulkId": format!("k{i}"),
                "data": {
                    "schemas": [
                        "urn:ietf:params:scim:schemas:core:2.0:User",
                        push_connector::scim::NHS_USER
                    ],
                    "userName": format!("ann.{}.{}@nhs.net", last.to_lowercase(), org.to_lowercase()),
                    "externalId": format!("{org}-{i}"),
                    "name": {"givenName": "Ann", "familyName": last},
                    push_connector::scim::NHS_USER: {"organisation": org},
                }
            })
        })
        .collect();
    serde_json::json!({"schemas": [push_connector::scim::BULK_REQUEST], "Operations": ops})
}

/// The externalIds of `org`'s accounts, read from the directory file itself (no run is
/// resumed by reading it).
async fn externals_of(dir: &Path, org: &str) -> Vec<String> {
    let d =
        push_connector::directory::local::LocalDirectory::open(&dir.join("var/directory.sqlite"))
            .await
            .unwrap();
    let mut ext: Vec<String> = d
        .all()
        .await
        .unwrap()
        .iter()
        .filter(|a| a.organisation() == org)
        .filter_map(|a| a.external_sync_id().map(str::to_owned))
        .collect();
    ext.sort();
    ext
}

mod common;

const TOKEN: &str = "kill-test-token";

fn serve(dir: &Path) -> common::Serve {
    common::start_serve(
        dir,
        None,
        "127.0.0.1:0",
        &[
            ("PUSH_CONNECTOR__SERVE__TOKEN", TOKEN),
            ("PUSH_CONNECTOR__SERVE__TOKEN_ORGANISATIONS", "[\"*\"]"),
        ],
    )
}

/// POSTs a Bulk request; the statuses of its operations, or none when serve went away.
async fn post_bulk(url: String, body: String) -> Option<Vec<String>> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let h = reqwest::Client::builder()
        .timeout(Duration::from_secs(120))
        .build()
        .unwrap();
    let r = h
        .post(format!("{url}/Bulk"))
        .bearer_auth(TOKEN)
        .header("content-type", "application/scim+json")
        .body(body)
        .send()
        .await
        .ok()?;
    let v: serde_json::Value = r.json().await.ok()?;
    Some(
        v["Operations"]
            .as_array()?
            .iter()
            .map(|o| o["status"].as_str().unwrap_or_default().to_owned())
            .collect(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bulk_request_killed_in_flight_is_applied_whole_or_not_at_all_and_its_retry_duplicates_nothing()
 {
    const N: usize = 1000;
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    // The uninterrupted request: one run of N creates.
    let s = serve(dir);
    let started = Instant::now();
    let statuses = post_bulk(s.url.clone(), bulk_of_creates("RKA", N).to_string())
        .await
        .unwrap();
    let full = started.elapsed();
    assert!(statuses.iter().all(|s| s == "201"), "{statuses:?}");
    drop(s);
    assert_eq!(externals_of(dir, "RKA").await.len(), N);

    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(1, |d| d.as_nanos() as u64)
        | 1;
    eprintln!("Bulk kill seed {seed}, uninterrupted request {full:?}");
    let mut rng = Rng(seed);
    let (mut none, mut all) = (0, 0);
    for round in 0..6 {
        let org = format!("RK{round}");
        let body = bulk_of_creates(&org, N).to_string();
        let s = serve(dir);
        let request = tokio::spawn(post_bulk(s.url.clone(), body.clone()));
        // Kill moments over the whole request: reading and checking it, then its commit.
        let window = (full.as_millis() as u64).max(20);
        tokio::time::sleep(Duration::from_millis(rng.next() % window)).await;
        drop(s); // SIGKILL
        let answered = request.await.unwrap();
        let found = externals_of(dir, &org).await;
        match found.len() {
            0 => none += 1,
            n if n == N => all += 1,
            n => panic!("round {round}: {n} of {N} operations applied"),
        }
        eprintln!(
            "round {round}: answered {}, {} applied",
            answered.is_some(),
            found.len()
        );
        // The retry, after a restart: every operation created or found taken, nothing twice.
        let s = serve(dir);
        let statuses = post_bulk(s.url.clone(), body).await.unwrap();
        assert_eq!(statuses.len(), N);
        let created = statuses.iter().filter(|s| *s == "201").count();
        assert!(
            statuses.iter().all(|s| s == "201" || s == "409"),
            "round {round}: {statuses:?}"
        );
        drop(s);
        let after = externals_of(dir, &org).await;
        let mut distinct = after.clone();
        distinct.dedup();
        assert_eq!(after.len(), N, "round {round}: no duplicate, none missing");
        assert_eq!(distinct.len(), N, "round {round}: each externalId once");
        // Killed after its journal and before its commit, the run was finished on restart
        // (and the retry finds every User taken); before its journal, the retry creates all.
        assert!(
            created == 0 || created == N,
            "round {round}: the retry created {created}"
        );
        if found.len() == N {
            assert_eq!(created, 0, "round {round}: the retry created none again");
        }
    }
    eprintln!("killed Bulk requests: {none} applied none, {all} applied all");
}

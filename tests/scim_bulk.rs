//! `/Bulk` through `push-connector serve`: a request is carried out as one run (one plan,
//! one journal, one commit), with each operation answered as the same write alone would
//! be (201 with location and version, 400 `invalidValue` with the validator's text, 409
//! `uniqueness`); `runs` lists the request once and `revert` undoes all of it. A `bulkId:`
//! reference to a User created earlier in the request, or two writes of one userName, still
//! behave as if the operations ran one after the other, and `failOnErrors` stops the
//! request at the right operation.

// Test code: a failure is a panic.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::Path;
use std::time::Duration;

use serde_json::{Value, json};

use push_connector::scim::{BULK_REQUEST, NHS_USER, PATCH_OP};

const TOKEN: &str = "bulk-test-token";
/// A sample account of RXX (samples/directory.csv).
const SAMPLE: &str = "1000002";

fn serve(dir: &Path) -> common::Serve {
    std::fs::write(dir.join("c.toml"), "").unwrap();
    common::start_serve(
        dir,
        Some("c.toml"),
        "127.0.0.1:0",
        &[
            ("PUSH_CONNECTOR__SERVE__TOKEN", TOKEN),
            ("PUSH_CONNECTOR__SERVE__TOKEN_ORGANISATIONS", "[\"*\"]"),
        ],
    )
}

fn http() -> reqwest::Client {
    common::http(Duration::from_secs(60), false)
}

/// A new User of RXX: `first.last@nhs.net`, externalId `ext`.
fn user(first: &str, last: &str, ext: &str) -> Value {
    json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", NHS_USER],
        "userName": format!("{}.{}@nhs.net", first.to_lowercase(), last.to_lowercase()),
        "externalId": ext,
        "name": {"givenName": first, "familyName": last},
        "title": "Porter",
        NHS_USER: {"organisation": "RXX"},
    })
}

fn retitle(title: &str) -> Value {
    json!({"schemas": [PATCH_OP], "Operations": [
        {"op": "replace", "path": "title", "value": title}]})
}

fn post(bulk_id: &str, data: Value) -> Value {
    json!({"method": "POST", "path": "/Users", "bulkId": bulk_id, "data": data})
}

fn patch(path: &str, data: Value) -> Value {
    json!({"method": "PATCH", "path": path, "data": data})
}

async fn bulk(h: &reqwest::Client, url: &str, ops: Vec<Value>, fail_on: Option<u64>) -> Value {
    let mut body = json!({"schemas": [BULK_REQUEST], "Operations": ops});
    if let Some(n) = fail_on {
        body["failOnErrors"] = json!(n);
    }
    let r = h
        .post(format!("{url}/Bulk"))
        .bearer_auth(TOKEN)
        .header("content-type", "application/scim+json")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    r.json().await.unwrap()
}

fn statuses(answer: &Value) -> Vec<String> {
    answer["Operations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["status"].as_str().unwrap().to_owned())
        .collect()
}

async fn get(h: &reqwest::Client, url: &str) -> (u16, Value) {
    let r = h.get(url).bearer_auth(TOKEN).send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

/// How many Users have the externalId `ext`.
async fn with_external(h: &reqwest::Client, url: &str, ext: &str) -> u64 {
    let filter = format!("externalId eq \"{ext}\"");
    let r = h
        .get(format!("{url}/Users"))
        .query(&[("filter", filter.as_str()), ("count", "0")])
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    let v: Value = r.json().await.unwrap();
    v["totalResults"].as_u64().unwrap()
}

fn runs(dir: &Path) -> Vec<Value> {
    let out = common::run_in(dir, &["--config", "c.toml", "runs", "--json"]);
    assert!(out.status.success(), "{out:?}");
    serde_json::from_slice(&out.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bulk_request_is_one_run_answered_per_operation_and_reverted_whole() {
    let dir = tempfile::tempdir().unwrap();
    common::import_samples(dir.path());
    let s = serve(dir.path());
    let h = http();
    let (_, before) = get(&h, &format!("{}/Users/{SAMPLE}", s.url)).await;

    let answer = bulk(
        &h,
        &s.url,
        vec![
            post("a", user("Ada", "Quill", "RXX7001")),
            post("b", user("Bea", "Quill", "RXX7002")),
            post("c", {
                let mut u = user("Cy", "Quill", "RXX7003");
                u["userName"] = json!("cy.quill@gmail.com");
                u
            }),
            patch(&format!("/Users/{SAMPLE}"), retitle("Ward Manager")),
        ],
        None,
    )
    .await;
    assert_eq!(
        statuses(&answer),
        ["201", "201", "400", "200"],
        "{answer:#}"
    );
    let ops = answer["Operations"].as_array().unwrap();
    for op in [&ops[0], &ops[1], &ops[3]] {
        let location = op["location"].as_str().unwrap();
        let (status, stored) = get(&h, location).await;
        assert_eq!(status, 200, "{op}");
        assert_eq!(op["version"], stored["meta"]["version"], "{op} {stored}");
    }
    assert_eq!(ops[0]["bulkId"], "a");
    let refused = &ops[2]["response"];
    assert_eq!(refused["scimType"], "invalidValue", "{refused}");
    let detail = refused["detail"].as_str().unwrap();
    assert!(
        detail.starts_with("userName: ") && detail.contains("cy.quill@gmail.com"),
        "{detail}"
    );
    assert_eq!(with_external(&h, &s.url, "RXX7003").await, 0);

    // One run: two creates and one update, its source the Bulk request, each line the
    // operation's own request in the history.
    let listed = runs(dir.path());
    assert_eq!(listed.len(), 1, "{listed:#?}");
    let run = &listed[0];
    assert_eq!(
        run["source"], "SCIM POST /v2/Bulk by the fixed token",
        "{run}"
    );
    assert_eq!(
        (&run["counts"]["created"], &run["counts"]["updated"]),
        (&json!(2), &json!(1)),
        "{run}"
    );
    let out = common::run_in(
        dir.path(),
        &["--config", "c.toml", "history", SAMPLE, "--json"],
    );
    assert!(out.status.success(), "{out:?}");
    let history: Value = serde_json::from_slice(&out.stdout).unwrap();
    let last = history["changes"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert_eq!(
        last["entry"],
        json!(format!("PATCH /v2/Users/{SAMPLE}")),
        "{last}"
    );
    assert_eq!(last["run"], run["id"], "{last}");

    // Revert undoes the whole request's changes.
    let out = common::run_in(
        dir.path(),
        &["--config", "c.toml", "revert", run["id"].as_str().unwrap()],
    );
    assert!(out.status.success(), "{out:?}");
    let (_, after) = get(&h, &format!("{}/Users/{SAMPLE}", s.url)).await;
    assert_eq!(after["title"], before["title"], "{after}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn references_and_repeated_keys_behave_as_if_one_after_the_other() {
    let dir = tempfile::tempdir().unwrap();
    common::import_samples(dir.path());
    let s = serve(dir.path());
    let h = http();
    let answer = bulk(
        &h,
        &s.url,
        vec![
            post("e", user("Eve", "Rowe", "RXX7101")),
            patch("/Users/bulkId:e", retitle("Ward Clerk")),
            // The userName the first operation took, and then its externalId.
            post("f", user("Eve", "Rowe", "RXX7102")),
            post("g", {
                let mut u = user("Gus", "Rowe", "RXX7101");
                u["userName"] = json!("gus.rowe@nhs.net");
                u
            }),
            patch("/Users/bulkId:nothing", retitle("Ward Clerk")),
            patch(&format!("/Users/{SAMPLE}"), retitle("Sister")),
            patch(&format!("/Users/{SAMPLE}"), retitle("Charge Nurse")),
        ],
        None,
    )
    .await;
    assert_eq!(
        statuses(&answer),
        ["201", "200", "409", "409", "409", "200", "200"],
        "{answer:#}"
    );
    let ops = answer["Operations"].as_array().unwrap();
    assert_eq!(ops[2]["response"]["scimType"], "uniqueness");
    assert_eq!(ops[3]["response"]["scimType"], "uniqueness");
    let (_, eve) = get(&h, ops[0]["location"].as_str().unwrap()).await;
    assert_eq!(eve["title"], "Ward Clerk", "{eve}");
    let (_, sample) = get(&h, &format!("{}/Users/{SAMPLE}", s.url)).await;
    assert_eq!(sample["title"], "Charge Nurse", "{sample}");
    assert_eq!(ops[6]["version"], sample["meta"]["version"]);
    assert_eq!(with_external(&h, &s.url, "RXX7101").await, 1);
    assert_eq!(with_external(&h, &s.url, "RXX7102").await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fail_on_errors_stops_after_that_many_errors_in_operation_order() {
    let dir = tempfile::tempdir().unwrap();
    common::import_samples(dir.path());
    let s = serve(dir.path());
    let h = http();
    let invalid = |ext: &str| {
        let mut u = user("Ivy", "Stone", ext);
        u["userName"] = json!(format!("ivy.{}@gmail.com", ext.to_lowercase()));
        u
    };
    let ops = vec![
        post("1", user("Hal", "Stone", "RXX7201")),
        post("2", invalid("RXX7202")),
        post("3", user("Ian", "Stone", "RXX7203")),
        post("4", invalid("RXX7204")),
        post("5", user("Jon", "Stone", "RXX7205")),
    ];
    let answer = bulk(&h, &s.url, ops.clone(), Some(2)).await;
    assert_eq!(
        statuses(&answer),
        ["201", "400", "201", "400"],
        "{answer:#}"
    );
    assert_eq!(with_external(&h, &s.url, "RXX7205").await, 0);

    // Again: the creates are now taken (409), so the first error stops the request.
    let answer = bulk(&h, &s.url, ops, Some(1)).await;
    assert_eq!(statuses(&answer), ["409"], "{answer:#}");
    assert_eq!(with_external(&h, &s.url, "RXX7205").await, 0);
}

/// Sends one request; its status and body.
async fn send(
    h: &reqwest::Client,
    method: reqwest::Method,
    url: String,
    body: Value,
    if_match: Option<String>,
) -> (u16, Value) {
    let mut r = h
        .request(method, url)
        .bearer_auth(TOKEN)
        .header("content-type", "application/scim+json")
        .body(body.to_string());
    if let Some(v) = if_match {
        r = r.header("if-match", v);
    }
    let r = r.send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_single_writes_share_commits_and_one_account_is_written_in_turn() {
    const N: usize = 200;
    let dir = tempfile::tempdir().unwrap();
    common::import_samples(dir.path());
    let s = serve(dir.path());
    let h = http();
    let names: Vec<String> = (0..N)
        .map(|i| {
            let mut n = String::from("Lee");
            for d in i.to_string().chars() {
                n.push((b'a' + d.to_digit(10).unwrap() as u8) as char);
            }
            n
        })
        .collect();
    let posts = names.iter().enumerate().map(|(i, last)| {
        send(
            &h,
            reqwest::Method::POST,
            format!("{}/Users", s.url),
            user("Max", last, &format!("RXX8{i:03}")),
            None,
        )
    });
    let answers = futures_util::future::join_all(posts).await;
    for (status, body) in &answers {
        assert_eq!(*status, 201, "{body}");
    }
    // Every write journalled once, in fewer runs than writes.
    let listed = runs(dir.path());
    let created: u64 = listed
        .iter()
        .map(|r| r["counts"]["created"].as_u64().unwrap())
        .sum();
    assert_eq!(created, N as u64, "{listed:#?}");
    assert!(listed.len() < N, "{} runs for {N} writes", listed.len());
    assert_eq!(
        listed[0]["source"],
        "SCIM POST /v2/Users by the fixed token"
    );

    // Eight PATCHes of one User, each under the version read before any of them: one
    // applies, the others find it changed (412), as if they came one after the other.
    let url = format!("{}/Users/{SAMPLE}", s.url);
    let (_, before) = get(&h, &url).await;
    let version = before["meta"]["version"].as_str().unwrap().to_owned();
    let patches = (0..8).map(|i| {
        send(
            &h,
            reqwest::Method::PATCH,
            url.clone(),
            retitle(&format!(
                "Title {}",
                ["A", "B", "C", "D", "E", "F", "G", "H"][i]
            )),
            Some(version.clone()),
        )
    });
    let answers = futures_util::future::join_all(patches).await;
    let ok: Vec<&Value> = answers
        .iter()
        .filter(|(s, _)| *s == 200)
        .map(|(_, b)| b)
        .collect();
    assert_eq!(ok.len(), 1, "{answers:?}");
    assert!(
        answers.iter().all(|(s, _)| *s == 200 || *s == 412),
        "{answers:?}"
    );
    let (_, after) = get(&h, &url).await;
    assert_eq!(after["title"], ok[0]["title"], "{after}");
}

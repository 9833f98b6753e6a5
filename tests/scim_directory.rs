//! The SCIM backend end to end, through the binary: against `push-connector serve` (started
//! here on a free port) and against the third-party `scim2-server` (started by
//! `scripts/scim/up.sh`; `scripts/test.sh` does it and exports `SCIM_URL` / `SCIM_TOKEN`).
//! A small proxy in the test injects a lost create answer and a storm of 429s.

// Test code: a failure is a panic.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use push_connector::scim::{NHS_USER, user_json};

const BIN: &str = env!("CARGO_BIN_EXE_push-connector");

fn samples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("samples")
}

/// The third-party server's endpoint; absent means the suite was not started by its script.
fn scim2_server() -> (String, String) {
    match (std::env::var("SCIM_URL"), std::env::var("SCIM_TOKEN")) {
        (Ok(u), Ok(t)) => (u, t),
        _ => panic!(
            "SCIM_URL and SCIM_TOKEN are not set: run the suite with scripts/test.sh, which \
             installs and starts scim2-server (scripts/scim/up.sh)"
        ),
    }
}

fn tenant(name: &str) -> String {
    let (url, _) = scim2_server();
    let unique = uuid::Uuid::new_v4().simple().to_string();
    format!("{url}/{name}-{}/v2", &unique[..8])
}

fn provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// `serve` over a directory seeded with the sample export; killed on drop.
const SERVE_TOKEN: &str = "serve-test-token";

fn serve_seeded() -> common::Serve {
    common::serve_seeded(SERVE_TOKEN)
}

/// Seeds a scim2-server tenant with the sample export (IDs are the server's own).
async fn seed(base: &str, token: &str) {
    let bytes = std::fs::read(samples().join("directory.csv")).unwrap();
    let parsed = push_connector::directory::portable::read(&bytes).unwrap();
    let http = reqwest::Client::new();
    for account in parsed.accounts {
        let mut user = user_json(&account);
        user.as_object_mut().unwrap().remove("id");
        user.as_object_mut().unwrap().remove("active");
        user["emails"] = json!([{"value": account.email(), "type": "work", "primary": true}]);
        let r = http
            .post(format!("{base}/Users"))
            .bearer_auth(token)
            .header("content-type", "application/scim+json")
            .body(user.to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    }
}

/// `apply --json` of the sample submission against a SCIM directory.
fn apply(dir: &Path, url: &str, token: &str, extra: &str) -> (Value, Output) {
    let config = dir.join("connector.toml");
    std::fs::write(
        &config,
        format!("[directory]\nbackend = \"scim\"\nurl = \"{url}\"\nconcurrency = 4\n{extra}\n"),
    )
    .unwrap();
    let o = Command::new(BIN)
        .arg("--config")
        .arg(&config)
        .arg("apply")
        .arg(samples().join("submission-rxx.csv"))
        .arg("--json")
        .current_dir(dir)
        .env_remove("PUSH_CONNECTOR_CONFIG")
        .env("PUSH_CONNECTOR__DIRECTORY__TOKEN", token)
        .output()
        .unwrap();
    let v = serde_json::from_slice(&o.stdout).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}): {}\n{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        )
    });
    (v, o)
}

fn counts(v: &Value) -> (u64, u64, u64, u64, u64) {
    let c = &v["counts"];
    let n = |k: &str| c[k].as_u64().unwrap_or(0);
    (
        n("created"),
        n("updated"),
        n("unchanged"),
        n("rejected"),
        n("failed"),
    )
}

async fn apply_async(dir: PathBuf, url: String, token: String, extra: String) -> (Value, Output) {
    tokio::task::spawn_blocking(move || apply(&dir, &url, &token, &extra))
        .await
        .unwrap()
}

/// Users of a directory whose externalId is `external`.
async fn with_external(base: &str, token: &str, external: &str) -> usize {
    let r: Value = reqwest::Client::new()
        .get(format!("{base}/Users"))
        .query(&[("filter", format!("externalId eq \"{external}\""))])
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    r["totalResults"].as_u64().unwrap() as usize
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apply_through_our_serve_then_nothing_to_do() {
    provider();
    let serve = serve_seeded();
    let dir = tempfile::tempdir().unwrap();
    let (first, _) = apply_async(
        dir.path().into(),
        serve.url.clone(),
        SERVE_TOKEN.into(),
        String::new(),
    )
    .await;
    // The same outcome as on the embedded directory (tests/apply_cli.rs).
    assert_eq!(counts(&first), (2, 3, 4, 7, 0), "{first:#}");
    let (second, _) = apply_async(
        dir.path().into(),
        serve.url.clone(),
        SERVE_TOKEN.into(),
        String::new(),
    )
    .await;
    assert_eq!(counts(&second), (0, 0, 9, 7, 0), "{second:#}");
    // The history reads this side's journal: the SCIM directory keeps none of ours.
    let history = |key: &str| {
        let o = Command::new(BIN)
            .arg("--config")
            .arg(dir.path().join("connector.toml"))
            .args(["history", key, "--json"])
            .current_dir(dir.path())
            .env_remove("PUSH_CONNECTOR_CONFIG")
            .env("PUSH_CONNECTOR__DIRECTORY__TOKEN", SERVE_TOKEN)
            .output()
            .unwrap();
        assert!(o.status.success(), "{o:?}");
        serde_json::from_slice::<Value>(&o.stdout).unwrap()
    };
    let by_email = history("ben.carter@nhs.net");
    let changes = by_email["changes"].as_array().unwrap();
    let fields: Vec<&Value> = changes.iter().map(|c| &c["field"]).collect();
    assert_eq!(
        fields,
        [&json!("JobTitle"), &json!("MobilePhone")],
        "{by_email:#}"
    );
    let file = samples().join("submission-rxx.csv");
    for c in changes {
        assert_eq!(c["channel"], "file", "{c}");
        assert_eq!(c["file"], json!(file.display().to_string()), "{c}");
        assert_eq!(c["line"], 3, "{c}");
        assert_eq!(c["run"], first["run"], "{c}");
    }
    // An ExternalSyncID is looked for in the organisations runs were recorded for.
    let by_key = history("RXX0002");
    assert_eq!(by_key["account"]["matched_by"], "ExternalSyncID");
    assert_eq!(by_key["changes"], by_email["changes"]);
    assert_eq!(with_external(&serve.url, SERVE_TOKEN, "RXX0200").await, 1);
    // The account serve created has an ID of the one shape every minted ID has.
    let r: Value = reqwest::Client::new()
        .get(format!("{}/Users", serve.url))
        .query(&[("filter", "externalId eq \"RXX0200\"")])
        .bearer_auth(SERVE_TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = r["Resources"][0]["id"].as_str().unwrap();
    assert!(common::is_minted_id(id), "{id}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_guards_writes_with_tokens_and_etags() {
    provider();
    let serve = serve_seeded();
    let http = reqwest::Client::new();
    let user = format!("{}/Users/1000001", serve.url);
    let r = http.get(&user).send().await.unwrap();
    assert_eq!(r.status(), 401);
    let r = http.get(&user).bearer_auth("wrong").send().await.unwrap();
    assert_eq!(r.status(), 401);
    let r = http
        .get(&user)
        .bearer_auth(SERVE_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let etag = r.headers()["etag"].to_str().unwrap().to_owned();
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["meta"]["version"], etag.as_str());
    assert_eq!(body["externalId"], "RXX0001");
    assert_eq!(body[NHS_USER]["organisation"], "RXX");
    let patch = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{"op": "replace", "path": "title", "value": "Consultant"}]});
    let send = |tag: &str| {
        http.patch(&user)
            .bearer_auth(SERVE_TOKEN)
            .header("if-match", tag)
            .header("content-type", "application/scim+json")
            .body(patch.to_string())
            .send()
    };
    let r = send(&etag).await.unwrap();
    assert_eq!(r.status(), 200);
    let r = send(&etag).await.unwrap();
    assert_eq!(r.status(), 412, "a stale version is refused");
    let err: Value = r.json().await.unwrap();
    assert_eq!(
        err["schemas"][0],
        "urn:ietf:params:scim:api:messages:2.0:Error"
    );
    assert_eq!(err["status"], "412");
    // Organisation is immutable; DELETE is not offered.
    let r = http
        .patch(&user)
        .bearer_auth(SERVE_TOKEN)
        .body(
            json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                "Operations": [{"op": "replace", "path": format!("{NHS_USER}:organisation"), "value": "RYY"}]})
            .to_string(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(r.json::<Value>().await.unwrap()["scimType"], "mutability");
    let r = http
        .delete(&user)
        .bearer_auth(SERVE_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 405);
    // Filter and paging.
    let r: Value = http
        .get(format!("{}/Users", serve.url))
        .query(&[
            ("filter", format!("{NHS_USER}:organisation eq \"RXX\"")),
            ("startIndex", "3".into()),
            ("count", "5".into()),
        ])
        .bearer_auth(SERVE_TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(r["startIndex"], 3);
    assert_eq!(r["itemsPerPage"], 5);
    assert!(r["totalResults"].as_u64().unwrap() > 10);
    // Sorting (RFC 7644 §3.4.2.3), advertised.
    let spc: Value = http
        .get(format!("{}/ServiceProviderConfig", serve.url))
        .bearer_auth(SERVE_TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(spc["sort"]["supported"], true);
    let sorted = |order: &'static str| {
        let http = http.clone();
        let url = format!("{}/Users", serve.url);
        async move {
            let r: Value = http
                .get(url)
                .query(&[
                    ("filter", format!("{NHS_USER}:organisation eq \"RXX\"")),
                    ("sortBy", "name.familyName".into()),
                    ("sortOrder", order.into()),
                ])
                .bearer_auth(SERVE_TOKEN)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            r["Resources"]
                .as_array()
                .unwrap()
                .iter()
                .map(|u| {
                    u["name"]["familyName"]
                        .as_str()
                        .unwrap_or("")
                        .to_lowercase()
                })
                .collect::<Vec<_>>()
        }
    };
    let up = sorted("ascending").await;
    let down = sorted("descending").await;
    assert!(up.len() > 10);
    assert!(up.windows(2).all(|w| w[0] <= w[1]), "{up:?}");
    assert!(down.windows(2).all(|w| w[0] >= w[1]), "{down:?}");
    assert_ne!(up, down);
    let r = http
        .get(format!("{}/Users", serve.url))
        .query(&[("sortBy", "userName"), ("sortOrder", "sideways")])
        .bearer_auth(SERVE_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apply_against_scim2_server_then_nothing_to_do() {
    provider();
    let (_, token) = scim2_server();
    let base = tenant("apply");
    seed(&base, &token).await;
    let dir = tempfile::tempdir().unwrap();
    let (first, _) = apply_async(
        dir.path().into(),
        base.clone(),
        token.clone(),
        String::new(),
    )
    .await;
    // As on the embedded directory. (The row naming ID 1000007 is refused here because the
    // server gave that account an ID of its own, there because its keys name two accounts.)
    assert_eq!(counts(&first), (2, 3, 4, 7, 0), "{first:#}");
    let (second, _) = apply_async(
        dir.path().into(),
        base.clone(),
        token.clone(),
        String::new(),
    )
    .await;
    assert_eq!(counts(&second), (0, 0, 9, 7, 0), "{second:#}");
    for external in ["RXX0200", "RXX0202"] {
        assert_eq!(
            with_external(&base, &token, external).await,
            1,
            "{external}"
        );
    }
}

/// What the proxy does to requests.
#[derive(Clone, Copy)]
enum Fault {
    /// Forward the first create (POST /Users or /Bulk), then answer only after the client
    /// has given up.
    LoseFirstCreate,
    /// Answer the first N requests with 429 and `Retry-After: 1`.
    RateLimit(usize),
    /// Forward everything, but announce small Bulk limits (2 operations, 1,500 bytes) in
    /// ServiceProviderConfig, and note what each `/Bulk` request held.
    SmallBulk,
    /// Before forwarding the first `/Bulk` request with PATCH operations, change upstream
    /// (without `If-Match`) the attribute its first PATCH replaces with a string.
    ChangeBeforeBulk,
    /// Forward everything.
    Nothing,
    /// Answer a list whose filter holds an `or` with this status (400 `invalidFilter`, as a
    /// portal that takes only simple filters does; 414, a request line too long; 501).
    RefuseOr(u16),
}

/// What a forwarding proxy saw.
#[derive(Debug, Default)]
struct Seen {
    /// Method and path (without the query) of every request.
    requests: Vec<(Method, String)>,
    /// Operations and body size of every `/Bulk` request.
    bulks: Vec<(usize, usize)>,
    /// Statuses of the operations of every `/Bulk` answer.
    bulk_statuses: Vec<String>,
    /// The filter of every list request, and whether it was refused.
    filters: Vec<(String, bool)>,
}

struct Proxy {
    upstream: String,
    fault: Fault,
    seen: AtomicUsize,
    faults: AtomicUsize,
    log: std::sync::Mutex<Seen>,
    http: reqwest::Client,
}

/// Changes upstream the attribute the first PATCH of a Bulk request replaces with a string;
/// true when there was one.
async fn change_meanwhile(p: &Proxy, bulk: &Value, headers: &HeaderMap) -> bool {
    let Some((path, attr, value)) = bulk["Operations"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|op| op["method"] == "PATCH")
        .find_map(|op| {
            let first = &op["data"]["Operations"][0];
            Some((
                op["path"].as_str()?.to_owned(),
                first["path"].as_str()?.to_owned(),
                first["value"].as_str()?.to_owned(),
            ))
        })
    else {
        return false;
    };
    let patch = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{"op": "replace", "path": attr, "value": format!("{value} meanwhile")}]});
    let r = p
        .http
        .patch(format!("{}{path}", p.upstream))
        .header("authorization", headers["authorization"].clone())
        .header("content-type", "application/scim+json")
        .body(patch.to_string())
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.text().await.unwrap());
    true
}

async fn forward(
    State(p): State<Arc<Proxy>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let n = p.seen.fetch_add(1, Ordering::SeqCst);
    if let Fault::RateLimit(storm) = p.fault
        && n < storm
    {
        p.faults.fetch_add(1, Ordering::SeqCst);
        return (
            StatusCode::TOO_MANY_REQUESTS,
            [("retry-after", "1")],
            "slow down",
        )
            .into_response();
    }
    let is_bulk = method == Method::POST && uri.path().ends_with("/Bulk");
    if method == Method::GET && uri.path().ends_with("/Users") {
        let filter = form_urlencoded::parse(uri.query().unwrap_or_default().as_bytes())
            .find(|(k, _)| k == "filter")
            .map(|(_, v)| v.into_owned());
        if let Some(filter) = filter {
            let refusal = match p.fault {
                Fault::RefuseOr(status) if filter.to_lowercase().contains(" or ") => Some(status),
                _ => None,
            };
            let refuse = refusal.is_some();
            p.log.lock().unwrap().filters.push((filter, refuse));
            if refuse {
                let body = json!({
                    "schemas": ["urn:ietf:params:scim:api:messages:2.0:Error"],
                    "status": "400",
                    "scimType": "invalidFilter",
                    "detail": "or is not supported",
                });
                return (
                    StatusCode::from_u16(refusal.unwrap_or(400)).unwrap(),
                    [("content-type", "application/scim+json")],
                    body.to_string(),
                )
                    .into_response();
            }
        }
    }
    p.log
        .lock()
        .unwrap()
        .requests
        .push((method.clone(), uri.path().to_owned()));
    if is_bulk {
        let v: Value = serde_json::from_slice(&body).unwrap();
        let n = v["Operations"].as_array().map_or(0, Vec::len);
        p.log.lock().unwrap().bulks.push((n, body.len()));
        if matches!(p.fault, Fault::ChangeBeforeBulk)
            && p.faults.load(Ordering::SeqCst) == 0
            && change_meanwhile(&p, &v, &headers).await
        {
            p.faults.fetch_add(1, Ordering::SeqCst);
        }
    }
    let path = uri.path_and_query().map_or("/", |x| x.as_str());
    let path = path.strip_prefix("/v2").unwrap_or(path);
    let mut request = p
        .http
        .request(method.clone(), format!("{}{path}", p.upstream))
        .body(body);
    for (k, v) in &headers {
        if k != "host" && k != "content-length" {
            request = request.header(k, v);
        }
    }
    let r = request.send().await.unwrap();
    let is_create =
        method == Method::POST && (uri.path().ends_with("/Users") || uri.path().ends_with("/Bulk"));
    if matches!(p.fault, Fault::LoseFirstCreate)
        && is_create
        && p.faults.fetch_add(1, Ordering::SeqCst) == 0
    {
        // The create happened upstream; the client times out before hearing so.
        tokio::time::sleep(Duration::from_secs(4)).await;
    }
    let status = StatusCode::from_u16(r.status().as_u16()).unwrap();
    let mut out = Response::builder().status(status);
    for (k, v) in r.headers() {
        if k != "content-length" && k != "transfer-encoding" && k != "connection" {
            out = out.header(k, v);
        }
    }
    let mut bytes = r.bytes().await.unwrap();
    if is_bulk && let Ok(v) = serde_json::from_slice::<Value>(&bytes) {
        let statuses = v["Operations"].as_array().into_iter().flatten();
        p.log
            .lock()
            .unwrap()
            .bulk_statuses
            .extend(statuses.map(|op| op["status"].as_str().unwrap_or_default().to_owned()));
    }
    if matches!(p.fault, Fault::SmallBulk) && uri.path().ends_with("/ServiceProviderConfig") {
        let mut v: Value = serde_json::from_slice(&bytes).unwrap();
        v["bulk"]["maxOperations"] = json!(2);
        v["bulk"]["maxPayloadSize"] = json!(1500);
        bytes = Bytes::from(v.to_string());
    }
    out.body(axum::body::Body::from(bytes)).unwrap()
}

async fn start_proxy(upstream: &str, fault: Fault) -> (String, Arc<Proxy>) {
    let proxy = Arc::new(Proxy {
        upstream: upstream.to_owned(),
        fault,
        seen: AtomicUsize::new(0),
        faults: AtomicUsize::new(0),
        log: std::sync::Mutex::new(Seen::default()),
        http: reqwest::Client::new(),
    });
    let app = axum::Router::new()
        .fallback(forward)
        .with_state(proxy.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}/v2"), proxy)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_create_whose_answer_is_lost_is_not_duplicated() {
    provider();
    let (_, token) = scim2_server();
    for bulk in [false, true] {
        let base = tenant("lost");
        seed(&base, &token).await;
        let (url, proxy) = start_proxy(&base, Fault::LoseFirstCreate).await;
        let dir = tempfile::tempdir().unwrap();
        let extra = format!("timeout_seconds = 2\nbulk = {bulk}\n");
        let (first, _) = apply_async(dir.path().into(), url, token.clone(), extra).await;
        assert!(
            proxy.faults.load(Ordering::SeqCst) >= 1,
            "the fault was injected"
        );
        assert_eq!(counts(&first), (2, 3, 4, 7, 0), "bulk {bulk}: {first:#}");
        for external in ["RXX0200", "RXX0202"] {
            assert_eq!(
                with_external(&base, &token, external).await,
                1,
                "bulk {bulk}: {external} created once"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_storm_of_429s_is_ridden_out() {
    provider();
    let (_, token) = scim2_server();
    let base = tenant("storm");
    seed(&base, &token).await;
    let (url, proxy) = start_proxy(&base, Fault::RateLimit(4)).await;
    let dir = tempfile::tempdir().unwrap();
    let started = std::time::Instant::now();
    let (first, _) = apply_async(dir.path().into(), url, token.clone(), String::new()).await;
    assert_eq!(proxy.faults.load(Ordering::SeqCst), 4);
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "Retry-After was honoured"
    );
    assert_eq!(counts(&first), (2, 3, 4, 7, 0), "{first:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_token_stops_the_run_with_a_reason() {
    provider();
    let serve = serve_seeded();
    let dir = tempfile::tempdir().unwrap();
    let (v, o) = tokio::task::spawn_blocking({
        let dir = dir.path().to_owned();
        let url = serve.url.clone();
        move || {
            std::fs::write(
                dir.join("c.toml"),
                format!("[directory]\nbackend = \"scim\"\nurl = \"{url}\"\n"),
            )
            .unwrap();
            let o = Command::new(BIN)
                .args(["--config", "c.toml", "apply"])
                .arg(samples().join("submission-rxx.csv"))
                .current_dir(&dir)
                .env("PUSH_CONNECTOR__DIRECTORY__TOKEN", "wrong")
                .output()
                .unwrap();
            (String::from_utf8_lossy(&o.stderr).into_owned(), o)
        }
    })
    .await
    .unwrap();
    assert_eq!(o.status.code(), Some(2), "{v}");
    assert!(v.contains("refused the credentials"), "{v}");
}

/// The sample submission with `bulk = true` through a proxy announcing small Bulk limits: the
/// updates go in `/Bulk` requests within those limits (no PATCH of its own), with the same
/// outcome as one by one; a second run finds nothing to do.
async fn bulk_updates_within_the_limits(base: &str, token: &str) {
    let (url, proxy) = start_proxy(base, Fault::SmallBulk).await;
    let dir = tempfile::tempdir().unwrap();
    let extra = "bulk = true\n".to_owned();
    let (first, _) = apply_async(dir.path().into(), url.clone(), token.into(), extra.clone()).await;
    assert_eq!(counts(&first), (2, 3, 4, 7, 0), "{first:#}");
    {
        let seen = proxy.log.lock().unwrap();
        let patches = seen
            .requests
            .iter()
            .filter(|(m, _)| m == Method::PATCH || m == Method::PUT)
            .count();
        assert_eq!(
            patches, 0,
            "updates went through /Bulk: {:?}",
            seen.requests
        );
        // 2 creates and 3 updates, at most 2 a request.
        assert!(seen.bulks.len() >= 3, "{:?}", seen.bulks);
        for (ops, bytes) in &seen.bulks {
            assert!(*ops <= 2 && *bytes <= 1500, "{:?}", seen.bulks);
        }
        let done = |s: &str| seen.bulk_statuses.iter().filter(|x| *x == s).count();
        assert_eq!(
            (done("201"), done("200")),
            (2, 3),
            "{:?}",
            seen.bulk_statuses
        );
    }
    let (second, _) = apply_async(dir.path().into(), url, token.into(), extra).await;
    assert_eq!(counts(&second), (0, 0, 9, 7, 0), "{second:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bulk_updates_through_our_serve() {
    provider();
    let serve = serve_seeded();
    bulk_updates_within_the_limits(&serve.url, SERVE_TOKEN).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bulk_updates_against_scim2_server() {
    provider();
    let (_, token) = scim2_server();
    let base = tenant("bulk-updates");
    seed(&base, &token).await;
    bulk_updates_within_the_limits(&base, &token).await;
}

/// A User changed between the connector's read and its Bulk PATCH: that operation answers
/// 412, and the row fails saying the account changed, while the others are applied.
async fn a_change_meanwhile_fails_only_its_row(base: &str, token: &str) {
    let (url, proxy) = start_proxy(base, Fault::ChangeBeforeBulk).await;
    let dir = tempfile::tempdir().unwrap();
    let (first, _) = apply_async(dir.path().into(), url, token.into(), "bulk = true".into()).await;
    assert_eq!(
        proxy.faults.load(Ordering::SeqCst),
        1,
        "the change was made"
    );
    {
        let seen = proxy.log.lock().unwrap();
        assert!(
            seen.bulk_statuses.iter().any(|s| s == "412"),
            "{:?}",
            seen.bulk_statuses
        );
    }
    assert_eq!(counts(&first), (2, 2, 4, 7, 1), "{first:#}");
    let failed: Vec<&Value> = first["rows"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["result"] == "Failed")
        .collect();
    assert_eq!(failed.len(), 1, "{first:#}");
    let message = failed[0]["message"].as_str().unwrap();
    assert!(
        message.contains("was changed in the directory since this run was planned"),
        "{message}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_meanwhile_fails_only_its_row_on_serve() {
    provider();
    let serve = serve_seeded();
    a_change_meanwhile_fails_only_its_row(&serve.url, SERVE_TOKEN).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_meanwhile_fails_only_its_row_on_scim2_server() {
    provider();
    let (_, token) = scim2_server();
    let base = tenant("meanwhile");
    seed(&base, &token).await;
    a_change_meanwhile_fails_only_its_row(&base, &token).await;
}

/// The SCIM backend answers no name keys, but the organisation's listing it makes for a plan
/// holds the namesake: a likely duplicate is refused as on the embedded directory.
#[tokio::test]
async fn a_likely_duplicate_is_refused_against_scim2_server() {
    provider();
    let (_, token) = scim2_server();
    let base = tenant("namesake");
    seed(&base, &token).await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("connector.toml"),
        format!("[directory]\nbackend = \"scim\"\nurl = \"{base}\"\nconcurrency = 4\n"),
    )
    .unwrap();
    // Deborah Evans has no ExternalSyncID in the sample export.
    std::fs::write(
        dir.path().join("staff.csv"),
        "ExternalSyncID,FirstName,LastName,Organisation\nRXX0300,DEBORAH,EVANS,RXX\n",
    )
    .unwrap();
    let dir_path = dir.path().to_owned();
    let o = tokio::task::spawn_blocking(move || {
        Command::new(BIN)
            .args(["--config", "connector.toml", "apply", "staff.csv", "--json"])
            .current_dir(&dir_path)
            .env_remove("PUSH_CONNECTOR_CONFIG")
            .env("PUSH_CONNECTOR__DIRECTORY__TOKEN", &token)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let v: Value = serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&o.stderr)));
    assert_eq!(counts(&v), (0, 0, 0, 1, 0), "{v:#}");
    let message = v["rows"][0]["message"].as_str().unwrap();
    assert!(
        message.starts_with("possibly the same person as deborah.evans@nhs.net (ID "),
        "{message}"
    );
    assert!(
        message.ends_with("set the row's NewAccount column to yes"),
        "{message}"
    );
}

/// The sample submission with `bulk = true` through `fault`: the outcome, and the filters
/// and GETs of single Users the proxy saw.
async fn run_through(
    base: &str,
    token: &str,
    dir: &Path,
    fault: Fault,
) -> (Value, Vec<(String, bool)>, usize) {
    let (url, proxy) = start_proxy(base, fault).await;
    let (v, _) = apply_async(dir.into(), url, token.into(), "bulk = true\n".into()).await;
    let seen = proxy.log.lock().unwrap();
    let gets = seen
        .requests
        .iter()
        .filter(|(m, p)| m == Method::GET && p.contains("/Users/"))
        .count();
    (v, seen.filters.clone(), gets)
}

fn is_or(filter: &str) -> bool {
    filter.to_lowercase().contains(" or ")
}

/// A portal that refuses `or` filters (400, 414 or 501) is asked one key a request from then on, with
/// the same outcome as where they are taken (where the backend asks many keys a request).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_portal_refusing_or_filters_is_asked_one_key_a_request() {
    provider();
    // Where `or` filters are taken: the creates' ExternalSyncIDs in one filter, the updated
    // Users read in one list, no GET of a single User.
    let serve = serve_seeded();
    let dir = tempfile::tempdir().unwrap();
    let (first, filters, gets) =
        run_through(&serve.url, SERVE_TOKEN, dir.path(), Fault::Nothing).await;
    assert_eq!(counts(&first), (2, 3, 4, 7, 0), "{first:#}");
    let ors: Vec<&String> = filters
        .iter()
        .map(|(f, _)| f)
        .filter(|f| is_or(f))
        .collect();
    assert!(
        ors.iter()
            .any(|f| f.contains("\"RXX0200\"") && f.contains("\"RXX0202\"")),
        "{filters:?}"
    );
    assert!(ors.iter().any(|f| f.starts_with("id eq ")), "{filters:?}");
    assert_eq!(gets, 0, "{filters:?}");
    drop(serve);

    // Refused as a portal that takes only simple filters (400), one whose request line
    // is too long for it (414), and one that has no filters beyond the simplest (501).
    for status in [400, 414, 501] {
        let serve = serve_seeded();
        let dir = tempfile::tempdir().unwrap();
        let (first, filters, gets) =
            run_through(&serve.url, SERVE_TOKEN, dir.path(), Fault::RefuseOr(status)).await;
        assert_eq!(counts(&first), (2, 3, 4, 7, 0), "{status}: {first:#}");
        // One `or` filter asked, refused; every look-up after it of one key.
        let ors: Vec<&(String, bool)> = filters.iter().filter(|(f, _)| is_or(f)).collect();
        assert_eq!(ors.len(), 1, "{filters:?}");
        assert!(ors[0].1, "{filters:?}");
        let after: Vec<&String> = filters
            .iter()
            .skip_while(|(f, _)| !is_or(f))
            .skip(1)
            .map(|(f, _)| f)
            .collect();
        for key in ["RXX0200", "RXX0202"] {
            assert!(
                after
                    .iter()
                    .any(|f| f.starts_with(&format!("externalId eq \"{key}\" and "))),
                "{key}: {filters:?}"
            );
        }
        // The three updated Users read one by one.
        assert!(gets >= 3, "{gets}: {filters:?}");
        let (second, filters, _) =
            run_through(&serve.url, SERVE_TOKEN, dir.path(), Fault::RefuseOr(status)).await;
        assert_eq!(counts(&second), (0, 0, 9, 7, 0), "{status}: {second:#}");
        assert!(
            filters.iter().filter(|(f, _)| is_or(f)).count() <= 1,
            "{filters:?}"
        );
        // Created once each.
        for external in ["RXX0200", "RXX0202"] {
            assert_eq!(with_external(&serve.url, SERVE_TOKEN, external).await, 1);
        }
    }
}

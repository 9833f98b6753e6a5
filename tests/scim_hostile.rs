//! `serve` under hostile requests, through the binary, each run under a memory cap
//! (`prlimit --as`) and with every request under a time limit: filters built to overflow the
//! stack, idle and half-open sockets by the hundred (HTTP and HTTPS), unindexed filters over
//! a directory of 100,000 accounts, credentials reaching for another organisation's people,
//! and a guessing storm at the token endpoint. Hostile inputs are made here, not shipped.

// Test code: a failure is a panic.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use push_connector::directory::local::LocalDirectory;
use push_connector::directory::{Account, Status};
use push_connector::model::{Field, OdsCode, PortalId};
use push_connector::scim::NHS_USER;

const TOKEN: &str = "hostile-test-token";
const GIB: u64 = 1024 * 1024 * 1024;

fn memory_cap() -> String {
    format!("--as={GIB}")
}

/// `serve` over `dir` with `[serve]` settings `settings`, the fixed token acting for
/// `organisations`, under a 1 GiB address-space cap and the further `prlimit` arguments.
fn serve(dir: &Path, settings: &str, organisations: &str, prlimit: &[&str]) -> common::Serve {
    std::fs::write(dir.join("serve.toml"), format!("[serve]\n{settings}\n")).unwrap();
    let cap = memory_cap();
    let mut limits = vec![cap.as_str()];
    limits.extend_from_slice(prlimit);
    common::start_serve_capped(
        dir,
        Some("serve.toml"),
        "127.0.0.1:0",
        &[
            ("PUSH_CONNECTOR__SERVE__TOKEN", TOKEN),
            ("PUSH_CONNECTOR__SERVE__TOKEN_ORGANISATIONS", organisations),
            ("TEST_CLIENT_SECRET", "right-secret"),
        ],
        &limits,
    )
}

fn http() -> reqwest::Client {
    common::http(Duration::from_secs(20), true)
}

async fn search(h: &reqwest::Client, url: &str, token: &str, filter: &str) -> (u16, Value) {
    let r = h
        .post(format!("{url}/Users/.search"))
        .bearer_auth(token)
        .header("content-type", "application/scim+json")
        .body(json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"], "filter": filter}).to_string())
        .send()
        .await
        .expect("serve answers");
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

async fn alive(h: &reqwest::Client, url: &str) {
    let r = h
        .get(format!("{url}/Users?count=1"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .expect("serve still answers");
    assert_eq!(r.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filters_built_to_overflow_the_stack_are_refused_and_serve_carries_on() {
    let dir = tempfile::tempdir().unwrap();
    common::import_samples(dir.path());
    // The length limit raised, so the depth and term limits are what refuses.
    let mut s = serve(dir.path(), "filter_max_length = 1048576", "[\"*\"]", &[]);
    let h = http();
    let parens = format!("{}userName pr{}", "(".repeat(3000), ")".repeat(3000));
    let nots = format!("{}userName pr", "not ".repeat(10_000));
    let ors = vec!["userName eq \"x\""; 12_000].join(" or ");
    let brackets = format!("{}value pr{}", "emails[".repeat(3000), "]".repeat(3000));
    for (filter, limit) in [
        (&parens, "nested deeper than 16 levels"),
        (&nots, "nested deeper than 16 levels"),
        (&brackets, "nested deeper than 16 levels"),
        (&ors, "more than 64 comparisons"),
    ] {
        let (status, body) = search(&h, &s.url, TOKEN, filter).await;
        assert_eq!(status, 400, "{body}");
        assert_eq!(body["scimType"], "invalidFilter", "{body}");
        let detail = body["detail"].as_str().unwrap_or_default();
        assert!(detail.contains(limit), "{detail}");
        alive(&h, &s.url).await;
    }
    // In the query string too.
    let r = h
        .get(format!("{}/Users", s.url))
        .query(&[("filter", &parens)])
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert!(s.is_running());
    drop(s);

    // With the default limits, the 12,000 terms are refused by their length.
    let mut s = serve(dir.path(), "", "[\"*\"]", &[]);
    let (status, body) = search(&h, &s.url, TOKEN, &ors).await;
    assert_eq!(
        (status, body["scimType"].as_str()),
        (400, Some("invalidFilter"))
    );
    assert!(
        body["detail"].as_str().unwrap().contains("at most 4096"),
        "{body}"
    );
    // A filter within the limits still works.
    let (status, body) = search(&h, &s.url, TOKEN, "((userName eq \"anne.lee@nhs.net\"))").await;
    assert_eq!(
        (status, body["totalResults"].as_u64()),
        (200, Some(1)),
        "{body}"
    );
    assert!(s.is_running());
}

/// Opens `n` sockets that say nothing (or, every tenth, half a request's headers).
fn idle_sockets(addr: &str, n: usize) -> Vec<TcpStream> {
    (0..n)
        .map(|i| {
            let mut s = TcpStream::connect(addr).expect("connect");
            if i % 10 == 0 {
                let _ = s.write_all(b"GET /v2/Users HTTP/1.1\r\nHost: x\r\n");
            }
            s
        })
        .collect()
}

/// Waits until every socket has been closed by the server, at most `within`; the number
/// still open then.
fn still_open(sockets: &mut [TcpStream], within: Duration) -> usize {
    let deadline = Instant::now() + within;
    let mut open = 0;
    for s in sockets.iter_mut() {
        let left = deadline.saturating_duration_since(Instant::now());
        s.set_read_timeout(Some(left.max(Duration::from_millis(10))))
            .unwrap();
        let mut buf = [0u8; 512];
        // EOF (or a reset) is a closed socket; a timeout is one still held open.
        let closed = loop {
            match s.read(&mut buf) {
                Ok(0) => break true,
                Ok(_) => continue,
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break true,
                Err(_) => break false,
            }
        };
        if !closed {
            open += 1;
        }
    }
    open
}

/// 600 idle sockets against `serve` allowed 256 file descriptors and `max_connections`.
async fn many_idle_sockets(tls: bool, max_connections: usize) {
    let dir = tempfile::tempdir().unwrap();
    common::import_samples(dir.path());
    let mut settings = format!(
        "header_timeout_seconds = 2\nidle_timeout_seconds = 3\nmax_connections = {max_connections}\n"
    );
    if tls {
        common::make_certificates(dir.path());
        settings.push_str("tls_cert = \"server.crt\"\ntls_key = \"server.key\"\n");
    }
    // 256 descriptors: without a connection limit, 600 sockets would exhaust them; with a
    // limit above that, running out closes idle connections too.
    let mut s = serve(dir.path(), &settings, "[\"*\"]", &["--nofile=256"]);
    let addr = s
        .url
        .split("://")
        .nth(1)
        .and_then(|r| r.split('/').next())
        .unwrap()
        .to_owned();
    let opened = Instant::now();
    let sockets = tokio::task::spawn_blocking({
        let addr = addr.clone();
        move || idle_sockets(&addr, 600)
    })
    .await
    .unwrap();
    // A legitimate request gets its answer at once, though 600 sockets sit idle.
    let h = http();
    let asked = Instant::now();
    let r = h
        .get(format!("{}/Users?count=1", s.url))
        .bearer_auth(TOKEN)
        .timeout(Duration::from_secs(5))
        .send()
        .await
        .expect("an answer despite the idle sockets");
    assert_eq!(r.status(), 200);
    assert!(
        asked.elapsed() < Duration::from_secs(3),
        "{:?}",
        asked.elapsed()
    );
    // Every idle socket is closed: evicted to make room, or timed out (2 s for headers).
    let mut sockets = sockets;
    let open =
        tokio::task::spawn_blocking(move || still_open(&mut sockets, Duration::from_secs(8)))
            .await
            .unwrap();
    assert_eq!(
        open,
        0,
        "sockets still open {:?} after they were opened",
        opened.elapsed()
    );
    // A kept-alive connection idle past the timeout is closed too; a new request is answered.
    let mut kept = TcpStream::connect(&addr).unwrap();
    if !tls {
        kept.write_all(
            format!(
                "GET /v2/ServiceProviderConfig HTTP/1.1\r\nHost: x\r\n\
                 Authorization: Bearer {TOKEN}\r\n\r\n"
            )
            .as_bytes(),
        )
        .unwrap();
        let mut first = [0u8; 12];
        kept.read_exact(&mut first).unwrap();
        assert_eq!(&first, b"HTTP/1.1 200");
    }
    let open = tokio::task::spawn_blocking(move || {
        still_open(std::slice::from_mut(&mut kept), Duration::from_secs(6))
    })
    .await
    .unwrap();
    assert_eq!(open, 0, "an idle kept-alive connection is closed");
    alive(&h, &s.url).await;
    assert!(s.is_running());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_sockets_neither_lock_clients_out_nor_stay_open_over_http() {
    many_idle_sockets(false, 50).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn running_out_of_file_descriptors_closes_idle_connections_first() {
    many_idle_sockets(false, 512).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_sockets_neither_lock_clients_out_nor_stay_open_over_https() {
    many_idle_sockets(true, 50).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_body_is_cut_off_and_a_large_one_refused() {
    let dir = tempfile::tempdir().unwrap();
    common::import_samples(dir.path());
    let s = serve(
        dir.path(),
        "body_timeout_seconds = 1\nmax_body_bytes = 65536",
        "[\"*\"]",
        &[],
    );
    let addr = s
        .url
        .trim_start_matches("http://")
        .trim_end_matches("/v2")
        .to_owned();
    let slow = tokio::task::spawn_blocking(move || {
        let mut c = TcpStream::connect(&addr).unwrap();
        c.write_all(
            format!(
                "POST /v2/Users HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n\
                 Content-Type: application/scim+json\r\nContent-Length: 1000\r\n\r\n{{"
            )
            .as_bytes(),
        )
        .unwrap();
        c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut answer = String::new();
        let _ = c.read_to_string(&mut answer);
        answer
    });
    let answer = slow.await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    let r = http()
        .post(format!("{}/Users", s.url))
        .bearer_auth(TOKEN)
        .header("content-type", "application/scim+json")
        .body(vec![b' '; 70_000])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
}

/// Seeds `dir`'s directory with `n` accounts of `org` straight through the library.
async fn seed(dir: &Path, org: &str, n: usize) {
    std::fs::create_dir_all(dir.join("var")).unwrap();
    let d = LocalDirectory::open(&dir.join("var/directory.sqlite"))
        .await
        .unwrap();
    d.add_organisation(org, &[]).await.unwrap();
    let accounts: Vec<Account> = (0..n)
        .map(|i| {
            let mut a = Account::new(
                PortalId::new_unchecked(format!("{org}-{i:06}")),
                Status::Active,
                &OdsCode::new_unchecked(org),
            );
            a.set(Field::FirstName, Some("Sam"));
            a.set(Field::LastName, Some(&format!("Person{i}")));
            a.set(
                Field::Email,
                Some(&format!("sam.person{i}@{}.nhs.net", org.to_lowercase())),
            );
            a.set(Field::ExternalSyncId, Some(&format!("E{i}")));
            a.set(
                Field::JobTitle,
                Some(if i % 7 == 0 { "Staff Nurse" } else { "Porter" }),
            );
            a
        })
        .collect();
    for chunk in accounts.chunks(20_000) {
        d.insert_unchecked(chunk).await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unindexed_filters_over_100k_accounts_stay_within_memory() {
    let dir = tempfile::tempdir().unwrap();
    seed(dir.path(), "RBIG", 85_000).await;
    seed(dir.path(), "RMID", 15_000).await;
    let mut s = serve(dir.path(), "", "[\"*\"]", &[]);
    let h = http();
    let org = format!("{NHS_USER}:organisation");
    let filters = [
        "title co \"nurse\"".to_owned(),
        "name.familyName ew \"99\"".to_owned(),
        format!("{org} eq \"RMID\" and title co \"nurse\""),
        format!("{org} eq \"RBIG\" and not (title eq \"Porter\")"),
    ];
    let started = Instant::now();
    let mut tasks = Vec::new();
    for i in 0..8 {
        let (h, url, f) = (h.clone(), s.url.clone(), filters[i % filters.len()].clone());
        tasks.push(tokio::spawn(async move {
            let (status, body) = search(&h, &url, TOKEN, &f).await;
            (f, status, body)
        }));
    }
    for t in tasks {
        let (f, status, body) = t.await.unwrap();
        match status {
            200 => {
                assert!(f.contains("RMID"), "{f} answered from a full scan");
                // Every seventh of RMID's 15,000 is a Staff Nurse.
                assert_eq!(body["totalResults"], 15_000 / 7 + 1, "{f}");
            }
            400 => {
                assert_eq!(body["scimType"], "tooMany", "{f}: {body}");
                assert!(
                    body["detail"].as_str().unwrap().contains("at most 20000"),
                    "{body}"
                );
            }
            other => panic!("{f}: {other} {body}"),
        }
    }
    eprintln!(
        "8 parallel unindexed searches over 100,000 accounts: {:?}, serve peak {:?} KiB",
        started.elapsed(),
        s.peak_kib()
    );
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "{:?}",
        started.elapsed()
    );
    // Indexed filters answer from the index, in any organisation, however large; an
    // organisation within the scan limit is examined.
    for (f, n) in [
        ("userName eq \"sam.person4242@rbig.nhs.net\"".to_owned(), 1),
        ("externalId eq \"E4242\"".to_owned(), 2),
        (format!("{org} eq \"RBIG\" and externalId eq \"E4242\""), 1),
        ("id eq \"RBIG-004242\" and title pr".to_owned(), 1),
        // ODS codes compare without regard to case, as SCIM strings do.
        (format!("{org} eq \"rmid\" and title co \"NURSE\""), 2143),
    ] {
        let (status, body) = search(&h, &s.url, TOKEN, &f).await;
        assert_eq!(
            (status, body["totalResults"].as_u64()),
            (200, Some(n)),
            "{f}: {body}"
        );
    }
    // A plain list pages in the database.
    let r: Value = h
        .get(format!("{}/Users?startIndex=99990&count=20", s.url))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(r["totalResults"], 100_000);
    assert_eq!(r["itemsPerPage"], 11);
    assert!(s.is_running());
}

/// `serve` over the sample export (RXX: 12 people, RYY: 8), the fixed token for RXX only,
/// and OAuth2 clients for RYY and for all organisations.
fn scoped_serve(dir: &Path) -> common::Serve {
    common::import_samples(dir);
    scoped_serve_over(dir)
}

/// [`scoped_serve`] over the directory `dir` already holds.
fn scoped_serve_over(dir: &Path) -> common::Serve {
    serve(
        dir,
        "clients = [\n\
         { id = \"ryy\", secret_env = \"TEST_CLIENT_SECRET\", organisations = [\"RYY\"] },\n\
         { id = \"operator\", secret_env = \"TEST_CLIENT_SECRET\", organisations = [\"*\"] },\n]",
        "[\"RXX\"]",
        &[],
    )
}

async fn token_for(h: &reqwest::Client, s: &common::Serve, client: &str) -> String {
    let r: Value = h
        .post(format!("{}/oauth/token", s.root()))
        .basic_auth(client, Some("right-secret"))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    r["access_token"].as_str().unwrap().to_owned()
}

async fn users(h: &reqwest::Client, url: &str, token: &str, filter: Option<&str>) -> Vec<Value> {
    let mut req = h.get(format!("{url}/Users")).bearer_auth(token);
    if let Some(f) = filter {
        req = req.query(&[("filter", f)]);
    }
    let r: Value = req.send().await.unwrap().json().await.unwrap();
    r["Resources"].as_array().cloned().unwrap_or_default()
}

fn org_of(user: &Value) -> &str {
    user[NHS_USER]["organisation"].as_str().unwrap_or_default()
}

async fn send(
    h: &reqwest::Client,
    method: reqwest::Method,
    url: String,
    token: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut req = h.request(method, url).bearer_auth(token);
    if let Some(b) = body {
        req = req
            .header("content-type", "application/scim+json")
            .body(b.to_string());
    }
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_credential_reads_and_changes_only_its_own_organisations() {
    use reqwest::Method;
    let dir = tempfile::tempdir().unwrap();
    let s = scoped_serve(dir.path());
    let h = http();
    let operator = token_for(&h, &s, "operator").await;
    let everyone = users(&h, &s.url, &operator, None).await;
    assert_eq!(everyone.len(), 20);
    let ryy_user = everyone
        .iter()
        .find(|u| org_of(u) == "RYY")
        .unwrap()
        .clone();
    let rxx_user = everyone
        .iter()
        .find(|u| org_of(u) == "RXX")
        .unwrap()
        .clone();
    let ryy_id = ryy_user["id"].as_str().unwrap();
    let rxx_id = rxx_user["id"].as_str().unwrap();
    let ryy_name = ryy_user["userName"].as_str().unwrap();

    // Lists, filters and searches hold only the token's organisation.
    let mine = users(&h, &s.url, TOKEN, None).await;
    assert_eq!(mine.len(), 12);
    assert!(mine.iter().all(|u| org_of(u) == "RXX"));
    let org = format!("{NHS_USER}:organisation");
    for f in [
        format!("userName eq \"{ryy_name}\""),
        format!("{org} eq \"RYY\""),
        format!("id eq \"{ryy_id}\""),
        format!(
            "externalId eq \"{}\"",
            ryy_user["externalId"].as_str().unwrap()
        ),
        "userName pr".to_owned(),
    ] {
        let found = users(&h, &s.url, TOKEN, Some(&f)).await;
        assert!(found.iter().all(|u| org_of(u) == "RXX"), "{f}: {found:?}");
        let (_, body) = search(&h, &s.url, TOKEN, &f).await;
        let found = body["Resources"].as_array().cloned().unwrap_or_default();
        assert!(found.iter().all(|u| org_of(u) == "RXX"), "{f}: {found:?}");
    }
    let ryy = token_for(&h, &s, "ryy").await;
    let theirs = users(&h, &s.url, &ryy, None).await;
    assert_eq!(theirs.len(), 8);
    assert!(theirs.iter().all(|u| org_of(u) == "RYY"));

    // Another organisation's User is answered as if it did not exist.
    let (status, other) = send(
        &h,
        Method::GET,
        format!("{}/Users/{ryy_id}", s.url),
        TOKEN,
        None,
    )
    .await;
    let (_, none) = send(
        &h,
        Method::GET,
        format!("{}/Users/nobody", s.url),
        TOKEN,
        None,
    )
    .await;
    assert_eq!(status, 404);
    assert_eq!(
        other["detail"].as_str().unwrap().replace(ryy_id, "X"),
        none["detail"].as_str().unwrap().replace("nobody", "X")
    );
    let mut changed = ryy_user.clone();
    changed["title"] = json!("Changed");
    let (status, _) = send(
        &h,
        Method::PUT,
        format!("{}/Users/{ryy_id}", s.url),
        TOKEN,
        Some(changed.clone()),
    )
    .await;
    assert_eq!(status, 404);
    let retitle = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{"op": "replace", "path": "title", "value": "Changed"}]});
    let (status, _) = send(
        &h,
        Method::PATCH,
        format!("{}/Users/{ryy_id}", s.url),
        TOKEN,
        Some(retitle.clone()),
    )
    .await;
    assert_eq!(status, 404);
    let (status, _) = send(
        &h,
        Method::DELETE,
        format!("{}/Users/{ryy_id}", s.url),
        TOKEN,
        None,
    )
    .await;
    assert_eq!(status, 405, "nothing is deleted, for anyone");

    // Creating in another organisation, or moving one's own User there, is refused.
    let new_user = |org: &str| {
        json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", NHS_USER],
            "userName": format!("new.person.{}@nhs.net", org.to_lowercase()),
            "externalId": format!("{org}NEW1"),
            "name": {"givenName": "New", "familyName": "Person"},
            NHS_USER: {"organisation": org}
        })
    };
    let (status, body) = send(
        &h,
        Method::POST,
        format!("{}/Users", s.url),
        TOKEN,
        Some(new_user("RYY")),
    )
    .await;
    assert_eq!(status, 403, "{body}");
    let mut moved = rxx_user.clone();
    moved[NHS_USER]["organisation"] = json!("RYY");
    let (status, body) = send(
        &h,
        Method::PUT,
        format!("{}/Users/{rxx_id}", s.url),
        TOKEN,
        Some(moved),
    )
    .await;
    assert_eq!(status, 403, "{body}");
    let move_patch = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{"op": "replace", "path": format!("{NHS_USER}:organisation"), "value": "RYY"}]});
    let (status, body) = send(
        &h,
        Method::PATCH,
        format!("{}/Users/{rxx_id}", s.url),
        TOKEN,
        Some(move_patch),
    )
    .await;
    assert_eq!(status, 403, "{body}");
    // A taken userName of another organisation is a conflict that names nobody.
    let mut taken = new_user("RXX");
    taken["userName"] = json!(ryy_name);
    let (status, body) = send(
        &h,
        Method::POST,
        format!("{}/Users", s.url),
        TOKEN,
        Some(taken),
    )
    .await;
    assert_eq!(status, 409);
    assert!(!body["detail"].as_str().unwrap().contains(ryy_id), "{body}");

    // Bulk: each operation checked on its own.
    let bulk = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:BulkRequest"], "Operations": [
        {"method": "POST", "path": "/Users", "bulkId": "a", "data": new_user("RYY")},
        {"method": "PATCH", "path": format!("/Users/{ryy_id}"), "data": retitle},
        {"method": "PUT", "path": format!("/Users/{ryy_id}"), "data": changed},
        {"method": "PATCH", "path": format!("/Users/{rxx_id}"), "data": retitle},
        {"method": "POST", "path": "/Users", "bulkId": "b", "data": new_user("RXX")},
    ]});
    let (status, body) = send(
        &h,
        Method::POST,
        format!("{}/Bulk", s.url),
        TOKEN,
        Some(bulk),
    )
    .await;
    assert_eq!(status, 200);
    let statuses: Vec<&str> = body["Operations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["403", "404", "404", "200", "201"], "{body}");

    // The other organisation's User is untouched.
    let (status, after) = send(
        &h,
        Method::GET,
        format!("{}/Users/{ryy_id}", s.url),
        &operator,
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(after["title"], ryy_user["title"]);
    assert_eq!(users(&h, &s.url, &ryy, None).await.len(), 8);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guessing_client_secrets_is_throttled() {
    let dir = tempfile::tempdir().unwrap();
    common::import_samples(dir.path());
    let s = serve(
        dir.path(),
        "token_failure_window_seconds = 2\n\
         clients = [{ id = \"connector\", secret_env = \"TEST_CLIENT_SECRET\", organisations = [\"RXX\"] }]",
        "[\"RXX\"]",
        &[],
    );
    let h = http();
    let token_url = format!("{}/oauth/token", s.root());
    let attempt = |id: &'static str, secret: &'static str| {
        let (h, url) = (h.clone(), token_url.clone());
        async move {
            let r = h
                .post(url)
                .basic_auth(id, Some(secret))
                .form(&[("grant_type", "client_credentials")])
                .send()
                .await
                .unwrap();
            let retry = r
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok());
            (r.status().as_u16(), retry)
        }
    };
    let mut statuses = Vec::new();
    for _ in 0..300 {
        statuses.push(attempt("connector", "wrong").await);
    }
    let refused = statuses.iter().filter(|(s, _)| *s == 401).count();
    assert_eq!(
        refused,
        5,
        "only five secrets are checked: {:?}",
        &statuses[..8]
    );
    assert!(
        statuses[5..]
            .iter()
            .all(|(s, r)| *s == 429 && r.is_some_and(|r| (1..=2).contains(&r)))
    );
    // Blocked means blocked: the right secret too, and from this address another client ID.
    assert_eq!(attempt("connector", "right-secret").await.0, 429);
    assert_eq!(attempt("someone-else", "x").await.0, 429);
    // The block lapses; later blocks last longer (here: one window, then two).
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_eq!(attempt("connector", "right-secret").await.0, 200);
}

/// IDs of the Users a filter finds (GET, ID order), the total announced, and the IDs of the
/// same list read `count` at a time.
async fn found_ids(h: &reqwest::Client, url: &str, token: &str, filter: &str) -> Vec<String> {
    let page = |start: usize, count: usize| {
        let req = h.get(format!("{url}/Users")).bearer_auth(token).query(&[
            ("filter", filter.to_owned()),
            ("startIndex", start.to_string()),
            ("count", count.to_string()),
        ]);
        async move {
            let r = req.send().await.unwrap();
            assert_eq!(r.status(), 200, "{filter}");
            r.json::<Value>().await.unwrap()
        }
    };
    let ids = |v: &Value| -> Vec<String> {
        v["Resources"]
            .as_array()
            .unwrap()
            .iter()
            .map(|u| u["id"].as_str().unwrap().to_owned())
            .collect()
    };
    let all = page(1, 1000).await;
    let out = ids(&all);
    assert_eq!(all["totalResults"], out.len(), "{filter}: {all}");
    // Two at a time: the same Users, in the same order, each once.
    let mut paged = Vec::new();
    loop {
        let v = page(paged.len() + 1, 2).await;
        assert_eq!(v["totalResults"], out.len(), "{filter}: {v}");
        let got = ids(&v);
        if got.is_empty() {
            break;
        }
        paged.extend(got);
    }
    assert_eq!(paged, out, "{filter}: paged");
    out
}

/// An `or` of userName, e-mail, id and externalId equalities, which serve answers from its
/// indexes, finds exactly what the same filter evaluated on a scan finds (`not (not (…))`,
/// which no index answers): case-insensitive userName and e-mails, case-exact id and
/// externalId, the organisation term, paging, and never a User outside the credential's
/// organisations.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_or_of_keys_finds_what_a_scan_finds_within_the_scope() {
    use reqwest::Method;
    let dir = tempfile::tempdir().unwrap();
    // The sample export and one RXX person with a second address.
    let mut export = std::fs::read_to_string(common::root().join("samples/directory.csv")).unwrap();
    export.push_str(
        "3000001,RXX0901,Dr,Alias,Person,\"Person, Alias (RXX)\",alias.person@nhs.net,GP,RXX,\
         ,,,,,,,,,Active,or.alias@nhs.net\n",
    );
    std::fs::write(dir.path().join("export.csv"), export).unwrap();
    let o = common::run_in(dir.path(), &["directory", "import", "export.csv"]);
    assert!(o.status.success(), "{o:?}");
    let s = scoped_serve_over(dir.path());
    let h = http();
    let operator = token_for(&h, &s, "operator").await;
    let ryy = token_for(&h, &s, "ryy").await;
    // Two Users with minted IDs (lower-case hexadecimal).
    let mut minted = Vec::new();
    for org in ["RXX", "RYY"] {
        let user = json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", NHS_USER],
            "userName": format!("or.person.{}@nhs.net", org.to_lowercase()),
            "externalId": format!("{org}OR1"),
            "name": {"givenName": "Or", "familyName": "Person"},
            NHS_USER: {"organisation": org}
        });
        let (status, body) = send(
            &h,
            Method::POST,
            format!("{}/Users", s.url),
            &operator,
            Some(user),
        )
        .await;
        assert_eq!(status, 201, "{body}");
        let id = body["id"].as_str().unwrap().to_owned();
        assert!(common::is_minted_id(&id), "{id}");
        minted.push(id);
    }
    let (rxx_new, ryy_new) = (minted[0].as_str(), minted[1].as_str());
    let org = format!("{NHS_USER}:organisation");
    let names: Vec<String> = [
        "anne.lee",
        "ben.carter",
        "chloe.davies",
        "ian.jones",
        "kit.lewis",
        "michael.nolan",
        "nadia.owen",
        "sam.turner",
        "tom.walsh",
        "anne.lee2",
    ]
    .iter()
    .map(|n| format!("userName eq \"{}@NHS.net\"", n.to_uppercase()))
    .collect();
    let many = names.join(" or ");
    // (filter, what the operator finds, what the RXX token finds); `None`: only compared.
    type Expected<'a> = Option<(Vec<&'a str>, Vec<&'a str>)>;
    let cases: Vec<(String, Expected)> = vec![
        (
            "userName eq \"ANNE.LEE@nhs.net\" or userName eq \"Michael.Nolan@NHS.net\" or \
             userName eq \"nobody@nhs.net\""
                .into(),
            Some((vec!["1000001", "2000001"], vec!["1000001"])),
        ),
        (
            "externalId eq \"RXX0002\" or externalId eq \"ryy0002\" or externalId eq \"RYY0003\" \
             or externalId eq \"rxx0003\""
                .into(),
            Some((vec!["1000002", "2000003"], vec!["1000002"])),
        ),
        (
            format!(
                "id eq \"{rxx_new}\" or id eq \"{}\" or id eq \"{ryy_new}\" or id eq \"1000003\" \
                 or id eq \"{}\"",
                ryy_new.to_uppercase(),
                rxx_new.to_uppercase()
            ),
            Some((
                {
                    let mut v = vec![rxx_new, ryy_new, "1000003"];
                    v.sort_unstable();
                    v
                },
                {
                    let mut v = vec![rxx_new, "1000003"];
                    v.sort_unstable();
                    v
                },
            )),
        ),
        (
            "emails eq \"Ben.Carter@nhs.net\" or emails.value eq \"NADIA.OWEN@nhs.net\" or \
             emails.value eq \"OR.ALIAS@nhs.net\" or userName eq \"or.alias@nhs.net\""
                .into(),
            Some((
                vec!["1000002", "2000002", "3000001"],
                vec!["1000002", "3000001"],
            )),
        ),
        (
            format!(
                "(userName eq \"anne.lee@nhs.net\" or userName eq \"anne.lee2@nhs.net\" or \
                 externalId eq \"RXX0003\" or id eq \"2000004\" or externalId eq \"RYYOR1\") \
                 and {org} eq \"RYY\""
            ),
            Some((vec!["2000004", "2000007", ryy_new], vec![])),
        ),
        (
            format!(
                "{org} eq \"RXX\" and (externalId eq \"RXX0001\" or externalId eq \"RYY0001\")"
            ),
            Some((vec!["1000001"], vec!["1000001"])),
        ),
        (
            format!(
                "(externalId eq \"RXX0001\" or externalId eq \"RYY0001\") and {org} eq \"rxx\""
            ),
            None,
        ),
        (
            "(userName eq \"anne.lee@nhs.net\" or id eq \"2000001\") and title eq \
             \"Consultant\""
                .into(),
            Some((vec!["2000001"], vec![])),
        ),
        (
            format!("({many}) and (title pr or title eq \"Consultant\")"),
            None,
        ),
        (many.clone(), None),
    ];
    for (filter, expected) in &cases {
        let slow = format!("not (not ({filter}))");
        for (who, token) in [
            ("operator", &operator),
            ("RXX", &TOKEN.to_owned()),
            ("RYY", &ryy),
        ] {
            let fast_ids = found_ids(&h, &s.url, token, filter).await;
            let slow_ids = found_ids(&h, &s.url, token, &slow).await;
            assert_eq!(fast_ids, slow_ids, "{who}: {filter}");
            if who == "RXX" {
                // The RXX token's Users, and only they.
                let (_, body) = search(&h, &s.url, TOKEN, filter).await;
                for u in body["Resources"].as_array().unwrap() {
                    assert_eq!(org_of(u), "RXX", "{filter}: {u}");
                }
            }
            if let Some((everyone, rxx)) = expected {
                let want: &[&str] = match who {
                    "operator" => everyone,
                    "RXX" => rxx,
                    _ => continue,
                };
                assert_eq!(fast_ids, want, "{who}: {filter}");
            }
        }
    }
    // The ten names: all ten for the operator, in pages of two; RXX's five for its token.
    assert_eq!(found_ids(&h, &s.url, &operator, &many).await.len(), 10);
    assert_eq!(found_ids(&h, &s.url, TOKEN, &many).await.len(), 5);
    assert_eq!(found_ids(&h, &s.url, &ryy, &many).await.len(), 5);
}

//! OAuth2 client credentials end to end: `serve` as the token endpoint (`[serve] clients`,
//! `POST /oauth/token`, RFC 6749 §4.4) and the SCIM backend fetching, caching and renewing
//! its bearer tokens (`[directory] token_url`, `client_id`, `client_secret`).

// Test code: a failure is a panic.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::IntoResponse;
use serde_json::Value;

use push_connector::config::{DirectoryBackend, DirectoryConfig, Secret};
use push_connector::directory::Directory as _;
use push_connector::directory::scim::ScimDirectory;

const BIN: &str = env!("CARGO_BIN_EXE_push-connector");
const SECRET: &str = "s3cret+with/odd=chars";

fn samples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("samples")
}

/// `serve` with one OAuth2 client (`connector`) and no fixed token, over the sample export.
fn serve(dir: &Path, token_seconds: u64, listen: &str) -> common::Serve {
    if !dir.join("var/directory.sqlite").exists() {
        common::import_samples(dir);
    }
    std::fs::write(
        dir.join("serve.toml"),
        format!(
            "[serve]\ntoken_seconds = {token_seconds}\n\
             clients = [{{ id = \"connector\", secret_env = \"TEST_CLIENT_SECRET\", \
             organisations = [\"*\"] }}]\n"
        ),
    )
    .unwrap();
    common::start_serve(
        dir,
        Some("serve.toml"),
        listen,
        &[("TEST_CLIENT_SECRET", SECRET)],
    )
}

fn apply(dir: &Path, root: &str, secret: &str) -> std::process::Output {
    std::fs::write(
        dir.join("apply.toml"),
        format!(
            "[directory]\nbackend = \"scim\"\nurl = \"{root}/v2\"\n\
             token_url = \"{root}/oauth/token\"\nclient_id = \"connector\"\n"
        ),
    )
    .unwrap();
    Command::new(BIN)
        .args(["--config", "apply.toml", "apply", "--json"])
        .arg(samples().join("submission-rxx.csv"))
        .current_dir(dir)
        .env_remove("PUSH_CONNECTOR_CONFIG")
        .env("PUSH_CONNECTOR__DIRECTORY__CLIENT_SECRET", secret)
        .output()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_token_endpoint_follows_rfc_6749() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().unwrap();
    let serve = serve(dir.path(), 300, "127.0.0.1:0");
    let http = reqwest::Client::new();
    let token_url = format!("{}/oauth/token", serve.root());
    let users = format!("{}/v2/Users?count=1", serve.root());

    // Credentials in the body.
    let r = http
        .post(&token_url)
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", "connector"),
            ("client_secret", SECRET),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["cache-control"], "no-store");
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 300);
    let token = body["access_token"].as_str().unwrap().to_owned();
    let r = http.get(&users).bearer_auth(&token).send().await.unwrap();
    assert_eq!(r.status(), 200, "an issued token opens the SCIM API");
    let r = http
        .get(&users)
        .bearer_auth("made-up")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);

    // HTTP Basic (§2.3.1: each part form-urlencoded before base64).
    let r = http
        .post(&token_url)
        .basic_auth("connector", Some("s3cret%2Bwith%2Fodd%3Dchars"))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    // Errors of §5.2.
    let error = |r: reqwest::Response| async move {
        let status = r.status().as_u16();
        let v: Value = r.json().await.unwrap();
        (status, v["error"].as_str().unwrap().to_owned())
    };
    let r = http
        .post(&token_url)
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", "connector"),
            ("client_secret", "wrong"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(error(r).await, (401, "invalid_client".to_owned()));
    let r = http
        .post(&token_url)
        .form(&[("grant_type", "password"), ("client_id", "connector")])
        .send()
        .await
        .unwrap();
    assert_eq!(error(r).await, (400, "unsupported_grant_type".to_owned()));
    let r = http
        .post(&token_url)
        .basic_auth("connector", Some(SECRET))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", "connector"),
            ("client_secret", SECRET),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(
        error(r).await,
        (400, "invalid_request".to_owned()),
        "one way only"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apply_with_client_credentials() {
    let server_dir = tempfile::tempdir().unwrap();
    let serve = serve(server_dir.path(), 300, "127.0.0.1:0");
    let dir = tempfile::tempdir().unwrap();
    let root = serve.root().to_owned();
    let (good, bad) = tokio::task::spawn_blocking(move || {
        let bad = apply(dir.path(), &root, "wrong");
        (apply(dir.path(), &root, SECRET), bad)
    })
    .await
    .unwrap();
    let stderr = String::from_utf8_lossy(&bad.stderr);
    assert_eq!(bad.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("refused the client credentials"),
        "{stderr}"
    );
    let v: Value = serde_json::from_slice(&good.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&good.stderr)));
    let c = &v["counts"];
    assert_eq!(
        (
            c["created"].as_u64(),
            c["updated"].as_u64(),
            c["failed"].as_u64()
        ),
        (Some(2), Some(3), Some(0)),
        "{v:#}"
    );
}

/// Counts the token requests it forwards to `serve`.
struct TokenProxy {
    upstream: String,
    fetched: AtomicUsize,
    http: reqwest::Client,
}

async fn forward_token(
    State(p): State<Arc<TokenProxy>>,
    headers: HeaderMap,
    body: Bytes,
) -> axum::response::Response {
    p.fetched.fetch_add(1, Ordering::SeqCst);
    let mut request = p.http.post(&p.upstream).body(body);
    for (k, v) in &headers {
        if k != "host" && k != "content-length" {
            request = request.header(k, v);
        }
    }
    let r = request.send().await.unwrap();
    let status = axum::http::StatusCode::from_u16(r.status().as_u16()).unwrap();
    (status, r.bytes().await.unwrap()).into_response()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_are_cached_renewed_when_expired_and_refetched_when_revoked() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().unwrap();
    let first = serve(dir.path(), 2, "127.0.0.1:0");
    let proxy = Arc::new(TokenProxy {
        upstream: format!("{}/oauth/token", first.root()),
        fetched: AtomicUsize::new(0),
        http: reqwest::Client::new(),
    });
    let app = axum::Router::new()
        .route("/token", axum::routing::post(forward_token))
        .with_state(proxy.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let proxy_addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });

    let config = DirectoryConfig {
        backend: DirectoryBackend::Scim,
        url: Some(format!("{}/v2", first.root())),
        token_url: Some(format!("http://{proxy_addr}/token")),
        client_id: Some("connector".into()),
        client_secret: Some(Secret(SECRET.to_owned().into())),
        retries: 2,
        ..DirectoryConfig::default()
    };
    // Discovery (three requests) and a look-up share one token.
    let directory = ScimDirectory::open(&config).await.unwrap();
    let found = directory.by_email("anne.lee@nhs.net").await.unwrap();
    assert_eq!(proxy.fetched.load(Ordering::SeqCst), 1);
    assert!(found.is_some());

    // Expired (2 s): a new one before the next request.
    tokio::time::sleep(Duration::from_millis(2300)).await;
    assert!(
        directory
            .by_email("anne.lee@nhs.net")
            .await
            .unwrap()
            .is_some()
    );
    assert_eq!(proxy.fetched.load(Ordering::SeqCst), 2);

    // Revoked (the server restarted and forgot its tokens): 401, a new token, the same
    // request again.
    let listen = first.root().strip_prefix("http://").unwrap().to_owned();
    drop(first);
    let _second = serve(dir.path(), 300, &listen);
    assert!(
        directory
            .by_email("anne.lee@nhs.net")
            .await
            .unwrap()
            .is_some()
    );
    assert_eq!(proxy.fetched.load(Ordering::SeqCst), 3);
}

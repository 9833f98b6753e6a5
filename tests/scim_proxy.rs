//! The SCIM backend's `[directory] proxy` through a real HTTP proxy: Debian's tinyproxy,
//! started by `scripts/proxy/up.sh` (`scripts/test.sh` does it and exports `PROXY_URL` and
//! `PROXY_LOG`), in front of `push-connector serve`.

// Test code: a failure is a panic.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_push-connector");
const TOKEN: &str = "proxy-test-token";

fn samples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("samples")
}

fn proxy() -> (String, PathBuf) {
    match (std::env::var("PROXY_URL"), std::env::var("PROXY_LOG")) {
        (Ok(u), Ok(l)) => (u, l.into()),
        _ => panic!(
            "PROXY_URL and PROXY_LOG are not set: run the suite with scripts/test.sh, which \
             installs and starts tinyproxy (scripts/proxy/up.sh)"
        ),
    }
}

fn serve_seeded() -> common::Serve {
    common::serve_seeded(TOKEN)
}

fn apply(dir: &Path, url: &str, proxy: &str) -> Output {
    std::fs::write(
        dir.join("c.toml"),
        format!(
            "[directory]\nbackend = \"scim\"\nurl = \"{url}\"\nproxy = \"{proxy}\"\nretries = 2\n"
        ),
    )
    .unwrap();
    Command::new(BIN)
        .args(["--config", "c.toml", "apply", "--json"])
        .arg(samples().join("submission-rxx.csv"))
        .current_dir(dir)
        .env_remove("PUSH_CONNECTOR_CONFIG")
        .env("PUSH_CONNECTOR__DIRECTORY__TOKEN", TOKEN)
        .output()
        .unwrap()
}

#[test]
fn requests_go_through_the_proxy() {
    let (proxy, log) = proxy();
    let serve = serve_seeded();
    let dir = tempfile::tempdir().unwrap();
    let o = apply(dir.path(), &serve.url, &proxy);
    let v: Value = serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&o.stderr)));
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
    // tinyproxy logs each request it forwards: "Request (file descriptor N): GET http://…".
    let log = std::fs::read_to_string(&log).unwrap();
    let through = |method: &str, path: &str| {
        log.lines()
            .filter(|l| l.contains(&format!("{method} {}{path}", serve.url)))
            .count()
    };
    assert!(through("GET", "/ServiceProviderConfig ") > 0, "{log}");
    assert!(through("GET", "/Users?") > 0, "{log}");
    assert!(through("POST", "/Bulk ") > 0, "{log}");
}

#[test]
fn a_wrong_proxy_stops_the_run_naming_it() {
    // A port nobody listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let wrong = format!("http://127.0.0.1:{port}");
    let serve = serve_seeded();
    let dir = tempfile::tempdir().unwrap();
    let o = apply(dir.path(), &serve.url, &wrong);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(&format!("through the proxy {wrong}")),
        "{stderr}"
    );
    assert!(stderr.contains("onnect"), "{stderr}");
}

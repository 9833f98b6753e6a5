//! `serve` over HTTPS (`[serve] tls_cert` / `tls_key`) and the SCIM backend trusting a private
//! CA (`[directory] ca_file`), end to end through the binary. The CA and the server
//! certificate are made here with the `openssl` command.

// Test code: a failure is a panic.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_push-connector");
const TOKEN: &str = "tls-test-token";

fn samples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("samples")
}

/// `serve` over HTTPS on a free port, over a directory seeded with the sample export.
fn serve_https(dir: &Path) -> common::Serve {
    common::import_samples(dir);
    std::fs::write(
        dir.join("serve.toml"),
        "[serve]\ntls_cert = \"server.crt\"\ntls_key = \"server.key\"\n",
    )
    .unwrap();
    common::start_serve(
        dir,
        Some("serve.toml"),
        "127.0.0.1:0",
        &[
            ("PUSH_CONNECTOR__SERVE__TOKEN", TOKEN),
            ("PUSH_CONNECTOR__SERVE__TOKEN_ORGANISATIONS", "[\"*\"]"),
        ],
    )
}

/// `apply --json` of the sample submission against `url`, with `extra` in `[directory]`.
fn apply(dir: &Path, url: &str, extra: &str) -> Output {
    let config = dir.join("apply.toml");
    std::fs::write(
        &config,
        format!("[directory]\nbackend = \"scim\"\nurl = \"{url}\"\n{extra}\n"),
    )
    .unwrap();
    Command::new(BIN)
        .arg("--config")
        .arg(&config)
        .arg("apply")
        .arg(samples().join("submission-rxx.csv"))
        .arg("--json")
        .current_dir(dir)
        .env_remove("PUSH_CONNECTOR_CONFIG")
        .env("PUSH_CONNECTOR__DIRECTORY__TOKEN", TOKEN)
        .output()
        .unwrap()
}

#[test]
fn apply_over_https_trusting_a_private_ca() {
    let server_dir = tempfile::tempdir().unwrap();
    common::make_certificates(server_dir.path());
    let serve = serve_https(server_dir.path());
    assert!(serve.url.starts_with("https://127.0.0.1:"), "{}", serve.url);
    let ca = server_dir.path().join("ca.crt");

    // Without the CA: refused at once, saying why (not retried as if the network failed).
    let dir = tempfile::tempdir().unwrap();
    let started = std::time::Instant::now();
    let o = apply(dir.path(), &serve.url, "");
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("TLS with the portal failed"), "{stderr}");
    assert!(stderr.to_lowercase().contains("certificate"), "{stderr}");
    assert!(started.elapsed().as_secs() < 5, "not retried");

    // With it: the same outcome as over plain HTTP, and User locations are https URLs.
    let o = apply(
        dir.path(),
        &serve.url,
        &format!("ca_file = \"{}\"", ca.display()),
    );
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
    let o = Command::new("curl")
        .args(["-sS", "--cacert"])
        .arg(&ca)
        .args(["-H", &format!("Authorization: Bearer {TOKEN}")])
        .arg(format!("{}/Users/1000001", serve.url))
        .output()
        .unwrap();
    let user: Value = serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {o:?}"));
    let location = user["meta"]["location"].as_str().unwrap();
    assert!(location.starts_with("https://127.0.0.1:"), "{location}");
}

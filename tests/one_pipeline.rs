//! One deployment, one pipeline: with a SCIM directory that publishes its code lists, a file
//! gets the same verdict through `validate`, `apply` and the e-mail service, and `apply`
//! reads the directory's discovery documents once.
//!
//! The directory is our own `serve` (which publishes its code lists as canonicalValues),
//! reached through a small counting relay so the test can see which requests the connector
//! makes; the connector's own configuration has no code lists at all.

// Test code: a failure is a panic.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use serde_json::Value;

const TOKEN: &str = "one-pipeline-token";

/// Counts the requests for the discovery documents passing through to `upstream`.
struct Relay {
    port: u16,
    schemas: Arc<AtomicUsize>,
    config: Arc<AtomicUsize>,
}

impl Relay {
    fn start(upstream: String) -> Relay {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let schemas = Arc::new(AtomicUsize::new(0));
        let config = Arc::new(AtomicUsize::new(0));
        let (s, c) = (schemas.clone(), config.clone());
        std::thread::spawn(move || {
            for client in listener.incoming().take(1000) {
                let Ok(client) = client else { continue };
                let Ok(server) = TcpStream::connect(&upstream) else {
                    continue;
                };
                let (s, c) = (s.clone(), c.clone());
                let (mut client_r, mut server_w) =
                    (client.try_clone().unwrap(), server.try_clone().unwrap());
                let (mut server_r, mut client_w) = (server, client);
                std::thread::spawn(move || {
                    // Request lines start a line; a read may split one, so the tail of the
                    // previous read is searched with the next.
                    let mut carry: Vec<u8> = Vec::new();
                    let mut buf = [0u8; 16 * 1024];
                    loop {
                        let n = match client_r.read(&mut buf) {
                            Ok(0) | Err(_) => break,
                            Ok(n) => n,
                        };
                        carry.extend_from_slice(&buf[..n]);
                        let text = String::from_utf8_lossy(&carry).into_owned();
                        s.fetch_add(text.matches("GET /v2/Schemas").count(), Ordering::SeqCst);
                        c.fetch_add(
                            text.matches("GET /v2/ServiceProviderConfig").count(),
                            Ordering::SeqCst,
                        );
                        if server_w.write_all(&buf[..n]).is_err() {
                            break;
                        }
                        // Keep what may be the start of a request line cut by the read.
                        let keep = carry.len().min(40);
                        let tail = carry[carry.len() - keep..].to_vec();
                        let cut = tail.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
                        carry = tail[cut..].to_vec();
                        // A complete request line was counted above: drop it.
                        if carry.starts_with(b"GET /v2/Schemas")
                            || carry.starts_with(b"GET /v2/ServiceProviderConfig")
                        {
                            carry.clear();
                        }
                    }
                    let _ = server_w.shutdown(std::net::Shutdown::Write);
                });
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut server_r, &mut client_w);
                    let _ = client_w.shutdown(std::net::Shutdown::Write);
                });
            }
        });
        Relay {
            port,
            schemas,
            config,
        }
    }

    fn reset(&self) {
        self.schemas.store(0, Ordering::SeqCst);
        self.config.store(0, Ordering::SeqCst);
    }
}

/// The submission: one row with a clinical role the portal does not list, one valid row.
const FILE: &str = "ExternalSyncID,Title,FirstName,LastName,JobTitle,Organisation,ClinicalRole\n\
    RXX0001,Dr,Anne,Lee,Consultant Cardiologist,RXX,Wizard\n\
    RXX0002,Mr,Ben,Carter,Senior Staff Nurse,RXX,Nurse\n";

fn connector_config(dir: &Path, relay: &Relay) {
    std::fs::write(
        dir.join("connector.toml"),
        format!(
            "[directory]\nbackend = \"scim\"\nurl = \"http://127.0.0.1:{}/v2\"\nbulk = false\n\
             [mail]\naddress = \"connector@connector.test\"\n\
             [[organisation]]\ncode = \"RXX\"\nadministrators = [\"admin@rxx.nhs.uk\"]\n",
            relay.port
        ),
    )
    .unwrap();
    std::fs::write(dir.join("staff.csv"), FILE).unwrap();
}

fn run(dir: &Path, args: &[&str]) -> std::process::Output {
    let mut all = vec!["--config", "connector.toml"];
    all.extend_from_slice(args);
    std::process::Command::new(env!("CARGO_BIN_EXE_push-connector"))
        .args(&all)
        .current_dir(dir)
        .env_remove("PUSH_CONNECTOR_CONFIG")
        .env("PUSH_CONNECTOR__DIRECTORY__TOKEN", TOKEN)
        .output()
        .unwrap()
}

fn json(out: &std::process::Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{e}: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

#[test]
fn a_file_gets_the_portals_verdict_through_every_door() {
    // The portal: serve over the sample directory, publishing the sample code lists.
    let portal = tempfile::tempdir().unwrap();
    common::import_samples(portal.path());
    let codes = common::root().join("samples/codes");
    std::fs::write(
        portal.path().join("serve.toml"),
        format!(
            "[validation]\nclinical_roles = \"{}\"\n",
            codes.join("clinical-roles.txt").display()
        ),
    )
    .unwrap();
    let serve = common::start_serve(
        portal.path(),
        Some("serve.toml"),
        "127.0.0.1:0",
        &[
            ("PUSH_CONNECTOR__SERVE__TOKEN", TOKEN),
            ("PUSH_CONNECTOR__SERVE__TOKEN_ORGANISATIONS", "[\"*\"]"),
        ],
    );
    let upstream = serve
        .url
        .strip_prefix("http://")
        .and_then(|u| u.strip_suffix("/v2"))
        .unwrap()
        .to_owned();
    let relay = Relay::start(upstream);
    let dir = tempfile::tempdir().unwrap();
    connector_config(dir.path(), &relay);

    // validate: the role is checked against the portal's list.
    let v = json(&run(dir.path(), &["validate", "staff.csv", "--json"]));
    let rows = v["rows"].as_array().unwrap();
    assert_eq!(rows[0]["status"], "refused", "{v}");
    assert_eq!(rows[1]["status"], "valid", "{v}");
    let issue = &rows[0]["issues"][0];
    assert_eq!(issue["column"], "ClinicalRole", "{v}");
    assert_eq!(issue["value"], "Wizard", "{v}");
    let reason = issue["message"].as_str().unwrap().to_owned();
    assert!(reason.contains("not on the list"), "{reason}");

    // apply: the same refusal, and the discovery documents read once.
    relay.reset();
    let out = run(dir.path(), &["apply", "staff.csv", "--json"]);
    let a = json(&out);
    let first = a["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["line"] == 2)
        .unwrap();
    assert_eq!(first["result"], "Rejected", "{a}");
    assert!(
        first["message"].as_str().unwrap().contains(&reason),
        "{a}\nexpected: {reason}"
    );
    assert_eq!(relay.schemas.load(Ordering::SeqCst), 1, "GET /Schemas");
    assert_eq!(
        relay.config.load(Ordering::SeqCst),
        1,
        "GET /ServiceProviderConfig"
    );

    // The e-mail service: the acknowledgement refuses the same line for the same reason.
    let inbox = dir.path().join("var/mail/inbox/new");
    std::fs::create_dir_all(&inbox).unwrap();
    let message = format!(
        "From: Admin <admin@rxx.nhs.uk>\r\nTo: connector@connector.test\r\n\
         Subject: staff list\r\nMessage-ID: <one-pipeline@rxx>\r\n\
         Date: Tue, 1 Dec 2026 10:00:00 +0000\r\nMIME-Version: 1.0\r\n\
         Content-Type: multipart/mixed; boundary=\"B\"\r\n\r\n\
         --B\r\nContent-Type: text/plain\r\n\r\nPlease apply.\r\n\
         --B\r\nContent-Type: text/csv; name=\"staff.csv\"\r\n\
         Content-Disposition: attachment; filename=\"staff.csv\"\r\n\r\n{}\r\n--B--\r\n",
        FILE.replace('\n', "\r\n")
    );
    std::fs::write(inbox.join("1.msg"), message).unwrap();
    let out = run(dir.path(), &["run", "--once"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let outbox = dir.path().join("var/outbox");
    let mut ack = String::new();
    for path in std::fs::read_dir(&outbox).unwrap() {
        let path = path.unwrap().path();
        if path.extension().is_none_or(|x| x != "eml") {
            continue;
        }
        let raw = std::fs::read(&path).unwrap();
        let m = mail_parser::MessageParser::default().parse(&raw).unwrap();
        ack.push_str(&m.body_text(0).unwrap_or_default());
        for a in m.attachments() {
            ack.push_str(&String::from_utf8_lossy(a.contents()));
        }
    }
    assert!(ack.contains("Wizard"), "{ack}");
    assert!(
        ack.contains("not on the list"),
        "the acknowledgement refuses the role as validate did:\n{ack}"
    );
}

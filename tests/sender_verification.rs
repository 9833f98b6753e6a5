//! `dkim` mode against a real DNS server and a real signer: dnsmasq serving the test domains'
//! DKIM keys and DMARC records, and dkimpy signing with the matching private keys, as
//! `scripts/dns/up.sh` starts them on loopback. Endpoints come from the `DNS_*` variables
//! that `scripts/test.sh` sets; without them these tests fail and say so.
//!
//! The records (see scripts/dns/up.sh): rxx.nhs.uk has a key and `p=reject`; ryy.nhs.uk a
//! key and no DMARC record; evil.test a key and `p=none`.

// Test code: a failure is a panic.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use push_connector::mail::config::{MailConfig, SenderVerification};
use push_connector::mail::verify::{Verdict, Verifier};

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!(
            "{name} is not set: these tests need the test DNS server. Run them with \
             scripts/test.sh (it installs and starts dnsmasq, and sets DNS_*)"
        )
    })
}

fn verifier(servers: &[String]) -> Verifier {
    let mail = MailConfig {
        require_dmarc_pass: true,
        sender_verification: SenderVerification::Dkim,
        dns_servers: servers.to_vec(),
        dns_timeout_seconds: 1,
        ..MailConfig::default()
    };
    Verifier::from_config(&mail).expect("a resolver")
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn message(from: &str, extra_headers: &str, body: &str) -> Vec<u8> {
    format!(
        "{extra_headers}From: Admin <{from}>\r\nTo: connector@connector.test\r\n\
         Subject: staff list\r\nMessage-ID: <v1@rxx>\r\nDate: Tue, 3 Jun 2025 10:00:00 +0100\r\n\
         MIME-Version: 1.0\r\nContent-Type: text/plain\r\n\r\n{body}\r\n"
    )
    .into_bytes()
}

/// The message signed by the test key of `domain` (the real signer, dkimpy).
fn signed(domain: &str, raw: &[u8]) -> Vec<u8> {
    let mut child = Command::new(env("DNS_SIGN_CMD"))
        .arg(domain)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("the signer runs");
    child.stdin.take().unwrap().write_all(raw).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "the signer failed");
    assert!(out.stdout.starts_with(b"DKIM-Signature:"));
    out.stdout
}

fn verdict(raw: &[u8], from: &str) -> Verdict {
    let v = verifier(&[env("DNS_SERVER")]);
    runtime().block_on(v.verify(raw, Some(from)))
}

fn fails(raw: &[u8], from: &str) -> String {
    match verdict(raw, from) {
        Verdict::Fail(why) => why,
        other => panic!("expected a failure, got {other:?}"),
    }
}

const ADMIN: &str = "admin@rxx.nhs.uk";

#[test]
fn a_good_signature_of_the_from_domain_passes() {
    let raw = signed("rxx.nhs.uk", &message(ADMIN, "", "Please apply."));
    match verdict(&raw, ADMIN) {
        Verdict::Pass(how) => {
            assert!(how.contains("rxx.nhs.uk"), "{how}");
            assert!(how.contains("p=reject"), "{how}");
        }
        other => panic!("expected a pass, got {other:?}"),
    }
}

#[test]
fn a_tampered_body_or_from_fails() {
    let raw = signed("rxx.nhs.uk", &message(ADMIN, "", "Please apply."));
    let text = String::from_utf8(raw).unwrap();
    let body = text.replace("Please apply.", "Please apply this.");
    let why = fails(body.as_bytes(), ADMIN);
    assert!(why.contains("p=reject"), "{why}");
    assert!(why.contains("rxx.nhs.uk: neutral"), "{why}");
    // The signed From header changed to another administrator of the same domain.
    let from = text.replace("<admin@rxx.nhs.uk>", "<boss@rxx.nhs.uk>");
    let why = fails(from.as_bytes(), "boss@rxx.nhs.uk");
    assert!(why.contains("signature by rxx.nhs.uk: fail"), "{why}");
}

#[test]
fn a_missing_signature_fails_under_p_reject() {
    let why = fails(&message(ADMIN, "", "Please apply."), ADMIN);
    assert!(why.contains("p=reject"), "{why}");
    assert!(why.contains("no DKIM signature"), "{why}");
}

#[test]
fn a_valid_signature_of_another_domain_is_not_aligned() {
    let raw = signed("evil.test", &message(ADMIN, "", "Please apply."));
    let why = fails(&raw, ADMIN);
    assert!(why.contains("signature by evil.test: pass"), "{why}");
    assert!(why.contains("no valid DKIM signature is aligned"), "{why}");
}

#[test]
fn a_forged_authentication_results_header_is_irrelevant_in_dkim_mode() {
    let forged = "Authentication-Results: mx.connector.test; dkim=pass header.d=rxx.nhs.uk; \
                  dmarc=pass header.from=rxx.nhs.uk\r\n";
    fails(&message(ADMIN, forged, "Please apply."), ADMIN);
    // Nor does a failing one spoil a good signature.
    let bad = "Authentication-Results: mx.connector.test; dmarc=fail header.from=rxx.nhs.uk\r\n";
    let raw = signed("rxx.nhs.uk", &message(ADMIN, bad, "Please apply."));
    assert!(matches!(verdict(&raw, ADMIN), Verdict::Pass(_)));
}

#[test]
fn a_domain_without_a_dmarc_record_fails_even_when_signed() {
    let from = "admin@ryy.nhs.uk";
    let raw = signed("ryy.nhs.uk", &message(from, "", "Please apply."));
    let why = fails(&raw, from);
    assert!(
        why.contains("ryy.nhs.uk publishes no DMARC record"),
        "{why}"
    );
    assert!(why.contains("signature by ryy.nhs.uk: pass"), "{why}");
}

#[test]
fn p_none_still_needs_an_aligned_signature() {
    let from = "intruder@evil.test";
    let why = fails(&message(from, "", "Please apply."), from);
    assert!(why.contains("p=none"), "{why}");
    let raw = signed("evil.test", &message(from, "", "Please apply."));
    assert!(matches!(verdict(&raw, from), Verdict::Pass(_)));
}

#[test]
fn a_dns_server_that_does_not_answer_defers_the_message() {
    // A port nothing listens on: every query fails, the message waits.
    let closed = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let v = verifier(&[format!("127.0.0.1:{port}")]);
    let raw = signed("rxx.nhs.uk", &message(ADMIN, "", "Please apply."));
    let start = Instant::now();
    let got = runtime().block_on(v.verify(&raw, Some(ADMIN)));
    assert!(matches!(got, Verdict::Unavailable(_)), "{got:?}");
    // Two attempts of one second for each of the few queries (the key, the DMARC record).
    assert!(
        start.elapsed() < Duration::from_secs(10),
        "{:?}",
        start.elapsed()
    );
}

#[test]
fn many_signatures_are_refused_without_looking_them_up() {
    let mut raw = message(ADMIN, "", "Please apply.");
    for _ in 0..20 {
        raw = signed("evil.test", &raw);
    }
    let why = fails(&raw, ADMIN);
    assert!(why.contains("20 DKIM signatures"), "{why}");
}

#[test]
fn thousands_of_signatures_over_a_large_body_are_refused_at_once() {
    // Each with its own body length: parsed, each would cost a pass over the body.
    let mut headers = String::new();
    for l in 0..5_000 {
        headers.push_str(&format!(
            "DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d=rxx.nhs.uk; s=sel; \
             l={l}; h=from; bh=AAAA; b=AAAA\r\n"
        ));
    }
    let raw = message(ADMIN, &headers, &"x".repeat(20 << 20));
    let start = Instant::now();
    let why = fails(&raw, ADMIN);
    assert!(why.contains("5000 DKIM signatures"), "{why}");
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "{:?}",
        start.elapsed()
    );
}

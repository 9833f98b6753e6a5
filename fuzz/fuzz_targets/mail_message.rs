//! Any bytes as an incoming e-mail: reading it (From, Authentication-Results, the MIME walk)
//! and checking it must answer, never panic; and a sender the checks let through can always
//! be answered (a reply that cannot be built would stop intake).
#![no_main]

use std::collections::BTreeMap;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use push_connector::config::Config;
use push_connector::mail::compose::{Composer, Reply};
use push_connector::mail::message;
use push_connector::mail::mime;
use push_connector::mail::verify::{Verdict, mta};

fn config() -> &'static Config {
    static CONFIG: OnceLock<Config> = OnceLock::new();
    CONFIG.get_or_init(|| {
        let dir = std::env::temp_dir().join("push-connector-fuzz-mail");
        let _ = std::fs::create_dir_all(&dir);
        let path = dir.join("c.toml");
        let _ = std::fs::write(
            &path,
            "[[organisation]]\ncode = \"RXX\"\nadministrators = [\"admin@rxx.nhs.uk\"]\n",
        );
        Config::load_with_env(Some(&path), &BTreeMap::new()).expect("the fuzz configuration")
    })
}

fn composer() -> &'static Composer {
    static COMPOSER: OnceLock<Composer> = OnceLock::new();
    COMPOSER.get_or_init(|| Composer::new(&config().mail).expect("the composer"))
}

fuzz_target!(|data: &[u8]| {
    let msg = push_connector::mail::mime::parse(data);
    if let Some(from) = &msg.from {
        assert!(mime::is_plain_address(from), "{from:?} was taken as a sender");
        let reply = Reply {
            kind: "rejection",
            to: vec![from.clone()],
            subject: format!("Not accepted: {}", msg.subject.chars().take(200).collect::<String>()),
            context: serde_json::json!({"subject": msg.subject, "received_at": "now",
                "reason": "fuzz", "hint": null}),
            attachment: None,
            in_reply_to: Some(msg.message_id.clone()),
            organisation: None,
        };
        let now = chrono::DateTime::from_timestamp(1_750_000_000, 0).expect("a time");
        if let Err(e) = composer().compose(&reply, now) {
            panic!("a reply to {from:?} cannot be built: {e}");
        }
    }
    let _ = message::authorise(config(), &msg, &Verdict::NotRequired);
    // Our MTA's verdict (header position rule and the RFC 8601 parser) on the same bytes.
    let _ = mta::verdict(data, "mx.connector.test", "rxx.nhs.uk");
    let _ = message::submission_file(&msg, 1 << 20);
});

//! Organisations that go quiet: one reminder to the administrators and one notice to the
//! operators per quiet period, through the service's own connector on the embedded default
//! (maildir in, file outbox), with the clock passed in.

// Test code: a failure is a panic.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::Path;

use chrono::{DateTime, Duration, Utc};
use mail_parser::MessageParser;
use push_connector::config::Config;
use push_connector::deployment::Deployment;
use push_connector::mail::mailbox::AnyMailbox;
use push_connector::mail::outbox::AnyOutbox;
use push_connector::service::Service;

fn config(dir: &Path) -> Config {
    let codes = common::root().join("samples/codes");
    let d = dir.display();
    let text = format!(
        "[service]\nstate_dir = \"{d}/var\"\nstale_after_days = 30\n\
         [directory]\npath = \"{d}/directory.sqlite\"\n\
         [mailbox]\nkind = \"maildir\"\npath = \"{d}/mail\"\n\
         [outbox]\nkind = \"file\"\npath = \"{d}/outbox\"\n\
         [validation]\ntitles = \"{c}/titles.txt\"\nclinical_roles = \"{c}/clinical-roles.txt\"\n\
         clinical_specialities = \"{c}/clinical-specialities.txt\"\nwork_areas = \"{c}/work-areas.txt\"\n\
         [mail]\naddress = \"connector@connector.test\"\noperators = [\"portal.team@nhs.net\"]\n\
         [[organisation]]\ncode = \"RXX\"\nname = \"Example Hospitals\"\n\
         administrators = [\"admin@rxx.nhs.uk\"]\n\
         [[organisation]]\ncode = \"RYY\"\nadministrators = [\"admin@ryy.nhs.uk\"]\nstale_after_days = 0\n\
         [[organisation]]\ncode = \"RZZ\"\nadministrators = [\"admin@rzz.nhs.uk\"]\nstale_after_days = 90\n",
        c = codes.display()
    );
    let path = dir.join("connector.toml");
    std::fs::write(&path, text).unwrap();
    Config::load_from(Some(&path), &Default::default(), true).unwrap()
}

fn message(from: &str, id: &str, csv: &[u8]) -> Vec<u8> {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(csv);
    format!(
        "From: Admin <{from}>\r\nTo: connector@connector.test\r\nSubject: staff list\r\n\
         Message-ID: <{id}>\r\nDate: Tue, 3 Jun 2025 10:00:00 +0100\r\nMIME-Version: 1.0\r\n\
         Content-Type: multipart/mixed; boundary=\"B\"\r\n\r\n\
         --B\r\nContent-Type: text/plain\r\n\r\nPlease apply.\r\n\
         --B\r\nContent-Type: text/csv; name=\"staff.csv\"\r\n\
         Content-Disposition: attachment; filename=\"staff.csv\"\r\n\
         Content-Transfer-Encoding: base64\r\n\r\n{b64}\r\n--B--\r\n"
    )
    .into_bytes()
}

/// (recipients, subject) of every queued e-mail of kind `quiet`, in the order queued.
async fn quiet_mails(d: &Deployment<'_>) -> Vec<(Vec<String>, String)> {
    let mut records = d.mail.outbox(true).await.unwrap();
    records.retain(|r| r.kind == "quiet");
    records.sort_by_key(|r| r.id);
    records
        .into_iter()
        .map(|r| (r.recipients, r.subject))
        .collect()
}

#[tokio::test]
async fn a_quiet_organisation_is_reminded_once_per_quiet_period() {
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path());
    let deployment = Deployment::open(&config).await.unwrap();
    let service = Service::new(&deployment).unwrap();
    let c = &service.connector;
    let t0: DateTime<Utc> = Utc::now();

    // First seen now: nobody is quiet yet, nor after 30 days exactly.
    assert!(c.remind_quiet(t0).await.unwrap().is_empty());
    assert!(
        c.remind_quiet(t0 + Duration::days(30))
            .await
            .unwrap()
            .is_empty()
    );

    // After 31 days RXX has never sent anything: one reminder to its administrators, one
    // notice to the operators. RYY never (0), RZZ only after 90 days.
    let t1 = t0 + Duration::days(31);
    let reminded = c.remind_quiet(t1).await.unwrap();
    assert_eq!(reminded.len(), 1, "{reminded:?}");
    assert_eq!(reminded[0].organisation, "RXX");
    assert!(reminded[0].never);
    let mails = quiet_mails(&deployment).await;
    assert_eq!(
        mails,
        [
            (
                vec!["admin@rxx.nhs.uk".to_owned()],
                "Reminder: no staff list from RXX for 30 days".to_owned()
            ),
            (
                vec!["portal.team@nhs.net".to_owned()],
                "Example Hospitals (RXX) has sent nothing for 30 days".to_owned()
            ),
        ]
    );

    // The same quiet period is not reminded of again.
    assert!(
        c.remind_quiet(t1 + Duration::days(5))
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(quiet_mails(&deployment).await.len(), 2);

    // A file from RXX's administrator ends the period.
    let new = dir.path().join("mail/inbox/new");
    std::fs::create_dir_all(&new).unwrap();
    let csv = std::fs::read(common::root().join("samples/submission-rxx.csv")).unwrap();
    std::fs::write(
        new.join("1.eml"),
        message("admin@rxx.nhs.uk", "file-1@rxx", &csv),
    )
    .unwrap();
    let mut mailbox = AnyMailbox::from_config(&config.mailbox);
    let t2 = t1 + Duration::days(10);
    let intake = c
        .intake(&mut mailbox, &mut push_connector::apply::RandomMinter, t2)
        .await
        .unwrap();
    assert_eq!(intake.accepted, 1, "{intake:?}");
    assert!(
        c.remind_quiet(t2 + Duration::days(30))
            .await
            .unwrap()
            .is_empty()
    );

    // 31 days after the file, a second period: reminded again, and RZZ (90 days) too.
    let t3 = t0 + Duration::days(91);
    assert!(t3 > t2 + Duration::days(30));
    let mut reminded: Vec<(String, bool)> = c
        .remind_quiet(t3)
        .await
        .unwrap()
        .into_iter()
        .map(|r| (r.organisation, r.never))
        .collect();
    reminded.sort();
    assert_eq!(
        reminded,
        [("RXX".to_owned(), false), ("RZZ".to_owned(), true)]
    );
    let mails = quiet_mails(&deployment).await;
    assert_eq!(mails.len(), 6, "{mails:?}");

    // The administrators' reminder says what to do and where to send the list; the
    // operators' notice says who was reminded.
    let outbox = AnyOutbox::from_config(&config.outbox).unwrap();
    c.flush(&outbox, t3, false).await.unwrap();
    let mut texts = Vec::new();
    for entry in std::fs::read_dir(dir.path().join("outbox")).unwrap() {
        let raw = std::fs::read(entry.unwrap().path()).unwrap();
        let m = MessageParser::default().parse(&raw[..]).unwrap();
        texts.push((
            m.subject().unwrap_or_default().to_owned(),
            m.body_text(0).unwrap_or_default().into_owned(),
        ));
    }
    let admin = texts
        .iter()
        .find(|(s, t)| s.starts_with("Reminder: no staff list from RXX") && !t.contains("set up"))
        .expect("the second reminder of RXX");
    assert!(
        admin
            .1
            .contains("send the current staff list to connector@connector.test"),
        "{}",
        admin.1
    );
    let operators = texts
        .iter()
        .find(|(s, _)| s.starts_with("RZZ (RZZ) has sent nothing for 90 days"))
        .expect("the operators' notice of RZZ");
    assert!(
        operators
            .1
            .contains("Its administrators (admin@rzz.nhs.uk) have been sent a reminder"),
        "{}",
        operators.1
    );
}

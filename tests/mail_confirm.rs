//! Confirming and cancelling by reply, against the real mail servers (`scripts/mail/up.sh`:
//! Postfix delivering into Dovecot, endpoints from `MAIL_*`): administrators answer the held
//! notice or the acknowledgement the connector sent them, in the shapes their clients write,
//! through the server's verified port (its own DMARC pass for the test administrators).

// Test code: a failure is a panic.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
#[path = "common/mail.rs"]
mod mail;

use std::sync::Mutex;

use lettre::transport::smtp::client::Tls;
use lettre::{AsyncSmtpTransport, Tokio1Executor};
use mail::{Mail, base64, clean, env, parse, port, results, runtime, send_with, settle, wait_for};

/// The servers' mailboxes are shared: one test at a time.
static SERVERS: Mutex<()> = Mutex::new(());

/// A deployment reading connector@connector.test over IMAPS, sending by submission, whose
/// guard holds any run that changes an account, and lets administrators confirm by reply.
struct Deployment {
    dir: tempfile::TempDir,
}

impl Deployment {
    /// `guard`: lines added to `[guard]`; `rxx_admins`: RXX's administrators.
    fn new(guard: &str, rxx_admins: &str) -> Deployment {
        let dir = tempfile::tempdir().unwrap();
        let codes = common::root().join("samples/codes");
        std::fs::write(
            dir.path().join("connector.toml"),
            format!(
                "[validation]\ntitles = \"{c}/titles.txt\"\nclinical_roles = \"{c}/clinical-roles.txt\"\n\
                 clinical_specialities = \"{c}/clinical-specialities.txt\"\nwork_areas = \"{c}/work-areas.txt\"\n\
                 [mailbox]\nkind = \"imap\"\nhost = \"{host}\"\nport = {imaps}\ntls = \"tls\"\n\
                 ca_file = \"{ca}\"\nuser = \"connector@connector.test\"\npoll_seconds = 1\n\
                 [outbox]\nkind = \"smtp\"\nhost = \"{host}\"\nport = {sub}\ntls = \"starttls\"\n\
                 ca_file = \"{ca}\"\nuser = \"connector@connector.test\"\n\
                 [mail]\naddress = \"connector@connector.test\"\nrequire_dmarc_pass = true\n\
                 trusted_authserv_id = \"mx.connector.test\"\noperators = [\"operator@connector.test\"]\n\
                 [guard]\nfloor = 0\nmax_updated = 0\nmax_created = 0\nmax_renamed = 0\n{guard}\n\
                 [[organisation]]\ncode = \"RXX\"\nadministrators = [{rxx_admins}]\n\
                 [[organisation]]\ncode = \"RYY\"\nadministrators = [\"admin@ryy.nhs.uk\"]\n",
                c = codes.display(),
                host = env("MAIL_HOST"),
                imaps = port("MAIL_IMAPS_PORT"),
                sub = port("MAIL_SUBMISSION_PORT"),
                ca = env("MAIL_CA_FILE"),
            ),
        )
        .unwrap();
        common::import_samples(dir.path());
        Deployment { dir }
    }

    fn run(&self, args: &[&str]) -> std::process::Output {
        mail::binary(self.dir.path(), args)
            .output()
            .expect("the binary runs")
    }

    fn once(&self, nightly: bool) -> String {
        mail::once(self.dir.path(), nightly)
    }

    fn text(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(out.status.success(), "{out:?}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn export(&self) -> String {
        self.text(&["directory", "export"])
    }

    /// The status word `runs` shows for a run, and the lines below it.
    fn run_listing(&self, run: &str) -> String {
        let runs = self.text(&["runs"]);
        let start = runs.find(run).unwrap_or_else(|| panic!("{run} in {runs}"));
        runs[start..].to_owned()
    }

    /// Every reply's record: (sender, command, outcome).
    fn commands(&self) -> Vec<(String, String, String)> {
        let db = self.dir.path().join("var/state.sqlite");
        runtime().block_on(async {
            let pool = sqlx::SqlitePool::connect(&format!("sqlite:{}", db.display()))
                .await
                .unwrap();
            let rows: Vec<(Option<String>, String, String)> =
                sqlx::query_as("SELECT sender, command, outcome FROM mail_commands ORDER BY no")
                    .fetch_all(&pool)
                    .await
                    .unwrap();
            pool.close().await;
            rows.into_iter()
                .map(|(s, c, o)| (s.unwrap_or_default(), c, o))
                .collect()
        })
    }
}

fn verified() -> AsyncSmtpTransport<Tokio1Executor> {
    AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(env("MAIL_HOST"))
        .port(port("MAIL_VERIFIED_PORT"))
        .tls(Tls::None)
        .build()
}

/// Sends through the verified port (the server writes a DMARC pass for the administrators).
async fn send_verified(from: &str, raw: &[u8]) {
    send_with(&verified(), from, "connector@connector.test", raw).await;
}

fn submission(from: &str, id: &str) -> Vec<u8> {
    let csv = std::fs::read(common::root().join("samples/submission-rxx.csv")).unwrap();
    format!(
        "From: Admin <{from}>\r\nTo: connector@connector.test\r\nSubject: staff list\r\n\
         Message-ID: <{id}>\r\nDate: Tue, 3 Jun 2025 10:00:00 +0100\r\nMIME-Version: 1.0\r\n\
         Content-Type: multipart/mixed; boundary=\"B\"\r\n\r\n--B\r\nContent-Type: text/plain\r\n\r\n\
         Please apply.\r\n--B\r\nContent-Type: text/csv; name=\"staff.csv\"\r\n\
         Content-Disposition: attachment; filename=\"staff.csv\"\r\n\
         Content-Transfer-Encoding: base64\r\n\r\n{}\r\n--B--\r\n",
        base64(&csv)
    )
    .into_bytes()
}

/// A reply as Outlook writes it: the command on top, the original below a `From:` block
/// (not `>`-quoted, so it carries the notice's own lines), and an HTML alternative.
fn outlook_reply(from: &str, id: &str, to: &Mail, command: &str) -> Vec<u8> {
    let original = to.text.replace("\r\n", "\n").replace('\n', "\r\n");
    let html_original = to.text.replace('\n', "<br>");
    format!(
        "From: Administrator <{from}>\r\nTo: Staff directory connector <connector@connector.test>\r\n\
         Subject: RE: {subject}\r\nMessage-ID: <{id}>\r\nIn-Reply-To: {irt}\r\n\
         Thread-Topic: {subject}\r\nDate: Wed, 2 Dec 2026 09:00:00 +0000\r\nMIME-Version: 1.0\r\n\
         Content-Type: multipart/alternative; boundary=\"_000_outlook_\"\r\n\r\n\
         --_000_outlook_\r\nContent-Type: text/plain; charset=\"utf-8\"\r\n\
         Content-Transfer-Encoding: 8bit\r\n\r\n\
         {command}\r\n\r\nKind regards,\r\nJo Bloggs\r\n\r\n________________________________\r\n\
         From: Staff directory connector <connector@connector.test>\r\n\
         Sent: 02 December 2026 04:00\r\nTo: Administrator <{from}>\r\nSubject: {subject}\r\n\r\n\
         {original}\r\n\r\n--_000_outlook_\r\nContent-Type: text/html; charset=\"utf-8\"\r\n\r\n\
         <html><body><div>{command}</div><div>Kind regards,<br>Jo Bloggs</div>\
         <hr><div id=\"divRplyFwdMsg\"><b>From:</b> Staff directory connector</div>\
         <div>{html_original}</div></body></html>\r\n--_000_outlook_--\r\n",
        subject = to.subject,
        irt = to.message_id.as_deref().map(|m| format!("<{m}>")).unwrap_or_default(),
    )
    .into_bytes()
}

/// A reply as Thunderbird writes it: the command on top, the original `>`-quoted below.
fn thunderbird_reply(from: &str, id: &str, to: &Mail, command: &str) -> Vec<u8> {
    let quoted: String = to.text.lines().map(|l| format!("> {l}\r\n")).collect();
    format!(
        "From: Administrator <{from}>\r\nTo: connector@connector.test\r\nSubject: Re: {}\r\n\
         Message-ID: <{id}>\r\nDate: Wed, 2 Dec 2026 09:00:00 +0000\r\nMIME-Version: 1.0\r\n\
         Content-Type: text/plain; charset=UTF-8; format=flowed\r\n\r\n{command}\r\n\r\n\
         On 02/12/2026 04:00, Staff directory connector wrote:\r\n{quoted}",
        to.subject
    )
    .into_bytes()
}

/// The code after `word` (`CONFIRM ` or `CANCEL `) in an e-mail's text.
fn code_in(text: &str, word: &str) -> String {
    let at = text
        .find(word)
        .unwrap_or_else(|| panic!("{word} in {text}"));
    text[at + word.len()..].chars().take(11).collect()
}

fn latest(user: &str, n: usize) -> Mail {
    let got = runtime().block_on(wait_for(user, n));
    assert!(got.len() >= n, "{user} has {} messages, not {n}", got.len());
    parse(&got[n - 1])
}

/// The run ID in a held notice's subject.
fn run_of(held: &Mail) -> String {
    held.subject
        .rsplit("run ")
        .next()
        .unwrap()
        .trim()
        .to_owned()
}

#[test]
fn a_held_run_is_confirmed_by_an_outlook_reply_and_bad_replies_change_nothing() {
    let _one = SERVERS.lock().unwrap_or_else(|e| e.into_inner());
    let rt = runtime();
    rt.block_on(clean());
    let d = Deployment::new("admin_confirm_max = 1000", "\"admin@rxx.nhs.uk\"");
    rt.block_on(send_verified(
        "admin@rxx.nhs.uk",
        &submission("admin@rxx.nhs.uk", "s1@rxx"),
    ));
    rt.block_on(wait_for("connector@connector.test", 1));
    d.once(false);
    let ack = latest("admin@rxx.nhs.uk", 1);
    assert!(ack.subject.starts_with("Received"), "{}", ack.subject);
    let out = d.once(true);
    assert!(out.contains("HELD"), "{out}");
    let held = latest("admin@rxx.nhs.uk", 2);
    assert!(
        held.subject.starts_with("Held for approval"),
        "{}",
        held.subject
    );
    let run = run_of(&held);
    let code = code_in(&held.text, "CONFIRM ");
    assert_eq!(code, code_in(&held.text, "CANCEL "));
    assert_ne!(code, code_in(&ack.text, "CANCEL "), "one code per purpose");
    let before = d.export();
    let mut inbox = 2;

    // Each of these is refused and answered; nothing is applied.
    let refused: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "admin@rxx.nhs.uk",
            outlook_reply(
                "admin@rxx.nhs.uk",
                "forged@rxx",
                &held,
                "CONFIRM AAAAA-BBBBB",
            ),
            "is not a code this connector issued",
        ),
        (
            "admin@ryy.nhs.uk",
            thunderbird_reply(
                "admin@ryy.nhs.uk",
                "other-org@ryy",
                &held,
                &format!("CONFIRM {code}"),
            ),
            "another organisation",
        ),
        (
            "admin@rxx.nhs.uk",
            thunderbird_reply(
                "admin@rxx.nhs.uk",
                "wrong-purpose@rxx",
                &ack,
                &format!("CONFIRM {}", code_in(&ack.text, "CANCEL ")),
            ),
            "needs no confirmation",
        ),
    ];
    for (from, raw, why) in &refused {
        rt.block_on(send_verified(from, raw));
        rt.block_on(wait_for("connector@connector.test", 1));
        let out = d.once(false);
        assert!(out.contains("intake: 0 accepted, 1 rejected"), "{out}");
        let answer = if *from == "admin@rxx.nhs.uk" {
            inbox += 1;
            latest(from, inbox)
        } else {
            latest(from, 1)
        };
        assert!(
            answer.subject.starts_with("Not done: CONFIRM"),
            "{}",
            answer.subject
        );
        assert!(
            answer.text.contains("Nothing was changed"),
            "{}",
            answer.text
        );
        assert!(answer.text.contains(why), "{why}: {}", answer.text);
        assert!(
            d.run_listing(&run).contains("held"),
            "{}",
            d.run_listing(&run)
        );
    }

    // An auto-reply quoting the code is machine mail: not acted on, not answered.
    let mut auto = thunderbird_reply(
        "admin@rxx.nhs.uk",
        "auto@rxx",
        &held,
        &format!("CONFIRM {code}"),
    );
    auto.splice(0..0, b"Auto-Submitted: auto-replied\r\n".iter().copied());
    rt.block_on(send_verified("admin@rxx.nhs.uk", &auto));
    rt.block_on(wait_for("connector@connector.test", 1));
    d.once(false);
    rt.block_on(settle());
    assert_eq!(
        rt.block_on(wait_for("admin@rxx.nhs.uk", inbox)).len(),
        inbox
    );
    assert_eq!(d.export(), before);

    // The administrator's Outlook reply: approved, applied, answered, and the result follows.
    rt.block_on(send_verified(
        "admin@rxx.nhs.uk",
        &outlook_reply(
            "admin@rxx.nhs.uk",
            "yes@rxx",
            &held,
            &format!("CONFIRM {code}"),
        ),
    ));
    rt.block_on(wait_for("connector@connector.test", 1));
    let out = d.once(false);
    assert!(out.contains("intake: 1 accepted, 0 rejected"), "{out}");
    let got = rt.block_on(wait_for("admin@rxx.nhs.uk", inbox + 2));
    let mails: Vec<Mail> = got[inbox..].iter().map(|m| parse(m)).collect();
    let approved = mails
        .iter()
        .find(|m| m.subject.starts_with("Approved"))
        .expect("answer");
    assert!(
        approved
            .text
            .contains("approved by reply from admin@rxx.nhs.uk"),
        "{}",
        approved.text
    );
    let result = mails
        .iter()
        .find(|m| m.subject.starts_with("Result"))
        .expect("result");
    let (_, csv) = result.attachment.clone().expect("result CSV");
    assert!(
        results(&csv)
            .values()
            .any(|r| r == "Updated" || r == "Created")
    );
    assert_ne!(d.export(), before);
    let listing = d.run_listing(&run);
    assert!(listing.contains("applied"), "{listing}");
    assert!(
        listing.contains("approved by reply from admin@rxx.nhs.uk"),
        "{listing}"
    );
    inbox += 2;

    // The same code again: used.
    rt.block_on(send_verified(
        "admin@rxx.nhs.uk",
        &outlook_reply(
            "admin@rxx.nhs.uk",
            "again@rxx",
            &held,
            &format!("CONFIRM {code}"),
        ),
    ));
    rt.block_on(wait_for("connector@connector.test", 1));
    d.once(false);
    let replay = latest("admin@rxx.nhs.uk", inbox + 1);
    assert!(replay.subject.starts_with("Not done"), "{}", replay.subject);
    assert!(replay.text.contains("already used"), "{}", replay.text);

    let outcomes: Vec<String> = d.commands().into_iter().map(|(_, _, o)| o).collect();
    assert_eq!(
        outcomes,
        [
            "refused", "refused", "refused", "ignored", "approved", "refused"
        ]
    );
}

#[test]
fn a_waiting_file_cancelled_by_reply_is_not_applied() {
    let _one = SERVERS.lock().unwrap_or_else(|e| e.into_inner());
    let rt = runtime();
    rt.block_on(clean());
    let d = Deployment::new("", "\"admin@rxx.nhs.uk\"");
    rt.block_on(send_verified(
        "admin@rxx.nhs.uk",
        &submission("admin@rxx.nhs.uk", "c1@rxx"),
    ));
    rt.block_on(wait_for("connector@connector.test", 1));
    d.once(false);
    let ack = latest("admin@rxx.nhs.uk", 1);
    let code = code_in(&ack.text, "CANCEL ");
    let before = d.export();

    rt.block_on(send_verified(
        "admin@rxx.nhs.uk",
        &thunderbird_reply(
            "admin@rxx.nhs.uk",
            "cancel@rxx",
            &ack,
            &format!("Cancel {code}"),
        ),
    ));
    rt.block_on(wait_for("connector@connector.test", 1));
    let out = d.once(false);
    assert!(out.contains("intake: 1 accepted, 0 rejected"), "{out}");
    let answer = latest("admin@rxx.nhs.uk", 2);
    assert!(
        answer.subject.starts_with("Withdrawn"),
        "{}",
        answer.subject
    );
    assert!(
        answer.text.contains("the nightly run will not apply it"),
        "{}",
        answer.text
    );

    let out = d.once(true);
    assert!(out.contains("nightly: no submission waiting"), "{out}");
    rt.block_on(settle());
    assert_eq!(
        rt.block_on(wait_for("admin@rxx.nhs.uk", 2)).len(),
        2,
        "no result e-mail"
    );
    assert_eq!(d.export(), before);
    assert_eq!(
        d.commands(),
        [(
            "admin@rxx.nhs.uk".into(),
            "cancel".into(),
            "withdrawn".into()
        )]
    );
}

#[test]
fn two_administrators_must_confirm_a_large_run_and_the_same_one_twice_does_not_count() {
    let _one = SERVERS.lock().unwrap_or_else(|e| e.into_inner());
    let rt = runtime();
    rt.block_on(clean());
    // admin@ryy.nhs.uk is RXX's second administrator here.
    let d = Deployment::new(
        "admin_confirm_max = 1000\nadmin_confirm_two_person_above = 0",
        "\"admin@rxx.nhs.uk\", \"admin@ryy.nhs.uk\"",
    );
    rt.block_on(send_verified(
        "admin@rxx.nhs.uk",
        &submission("admin@rxx.nhs.uk", "t1@rxx"),
    ));
    rt.block_on(wait_for("connector@connector.test", 1));
    d.once(false);
    d.once(true);
    let held = latest("admin@rxx.nhs.uk", 2);
    let run = run_of(&held);
    assert!(
        held.text.contains("two different administrators"),
        "{}",
        held.text
    );
    // The second administrator gets the notice too.
    let second = latest("admin@ryy.nhs.uk", 1);
    assert_eq!(second.subject, held.subject);
    let code = code_in(&held.text, "CONFIRM ");
    let before = d.export();

    let reply = |from: &str, id: &str| {
        rt.block_on(send_verified(
            from,
            &outlook_reply(from, id, &held, &format!("CONFIRM {code}")),
        ));
        rt.block_on(wait_for("connector@connector.test", 1));
        d.once(false)
    };
    reply("admin@rxx.nhs.uk", "first@rxx");
    let recorded = latest("admin@rxx.nhs.uk", 3);
    assert!(
        recorded.subject.starts_with("Recorded"),
        "{}",
        recorded.subject
    );
    assert!(
        recorded.text.contains("second, different administrator"),
        "{}",
        recorded.text
    );
    assert_eq!(d.export(), before);

    reply("admin@rxx.nhs.uk", "first-again@rxx");
    let twice = latest("admin@rxx.nhs.uk", 4);
    assert!(twice.subject.starts_with("Not done"), "{}", twice.subject);
    assert!(twice.text.contains("already confirmed"), "{}", twice.text);
    assert_eq!(d.export(), before);
    assert!(d.run_listing(&run).contains("held"));

    reply("admin@ryy.nhs.uk", "second@ryy");
    let approved = latest("admin@ryy.nhs.uk", 2);
    assert!(
        approved.subject.starts_with("Approved"),
        "{}",
        approved.subject
    );
    let result = latest("admin@rxx.nhs.uk", 5);
    assert!(result.subject.starts_with("Result"), "{}", result.subject);
    assert_ne!(d.export(), before);
    let listing = d.run_listing(&run);
    assert!(
        listing.contains("approved by reply from admin@rxx.nhs.uk and admin@ryy.nhs.uk"),
        "{listing}"
    );
    let outcomes: Vec<(String, String)> =
        d.commands().into_iter().map(|(s, _, o)| (s, o)).collect();
    assert_eq!(
        outcomes,
        [
            ("admin@rxx.nhs.uk".to_owned(), "awaiting second".to_owned()),
            ("admin@rxx.nhs.uk".to_owned(), "refused".to_owned()),
            ("admin@ryy.nhs.uk".to_owned(), "approved".to_owned()),
        ]
    );
}

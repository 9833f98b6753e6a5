//! The operator console, through the binary (`run` with `[console] listen`) and a real
//! browser: Debian's chromium driven through chromedriver (WebDriver, with `fantoccini`),
//! axe-core run in every page, and Debian's Prometheus scraping `/metrics`.
//!
//! Needs scripts/console/up.sh (chromedriver and Prometheus on loopback; its env.sh gives
//! `CONSOLE_*`). Screenshots go to `$CARGO_TARGET_TMPDIR/console/`.

// Test code: a failure is a panic.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};

/// Every operator's password in these tests.
const PASSWORD: &str = "correct horse battery staple";

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!(
            "{name} is not set: the console tests need chromedriver and Prometheus. Run them \
             with scripts/test.sh, or start scripts/console/up.sh and source its env.sh"
        )
    })
}

/// One argon2id hash of [`PASSWORD`], made by the binary's own `hash-password`.
fn password_hash() -> &'static str {
    static HASH: OnceLock<String> = OnceLock::new();
    HASH.get_or_init(|| {
        let mut child = Command::new(env!("CARGO_BIN_EXE_push-connector"))
            .arg("hash-password")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write as _;
        writeln!(child.stdin.take().unwrap(), "{PASSWORD}").unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "{out:?}");
        let hash = String::from_utf8(out.stdout).unwrap().trim().to_owned();
        assert!(hash.starts_with("$argon2id$"), "{hash}");
        assert!(!hash.contains(PASSWORD));
        hash
    })
}

/// A deployment in a temporary folder with the console on, and its `run` once started.
struct Site {
    dir: tempfile::TempDir,
    child: Option<Child>,
    base: String,
    log: Arc<Mutex<String>>,
}

impl Drop for Site {
    fn drop(&mut self) {
        if let Some(child) = &mut self.child {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Site {
    /// A deployment of RXX with every run held (guard limits 0), operators ada and bob, and
    /// `extra` appended to `[console]`.
    fn new(extra: &str) -> Site {
        let dir = tempfile::tempdir().unwrap();
        let codes = common::root().join("samples/codes");
        let hash = password_hash();
        std::fs::write(
            dir.path().join("connector.toml"),
            format!(
                "[validation]\ntitles = \"{c}/titles.txt\"\nclinical_roles = \"{c}/clinical-roles.txt\"\n\
                 clinical_specialities = \"{c}/clinical-specialities.txt\"\nwork_areas = \"{c}/work-areas.txt\"\n\
                 [mail]\naddress = \"connector@connector.test\"\n\
                 [mailbox]\npoll_seconds = 1\n\
                 [[organisation]]\ncode = \"RXX\"\nadministrators = [\"admin@rxx.nhs.uk\"]\n\
                 [[organisation]]\ncode = \"RYY\"\nadministrators = [\"admin@ryy.nhs.uk\"]\n\
                 [guard]\nfloor = 0\nmax_updated = 0\nmax_created = 0\nmax_renamed = 0\n\
                 [console]\nlisten = \"127.0.0.1:0\"\nlogin_failures = 3\n{extra}\n\
                 [[console.operator]]\nname = \"ada\"\npassword_hash = \"{hash}\"\n\
                 [[console.operator]]\nname = \"bob\"\npassword_hash = \"{hash}\"\n",
                c = codes.display()
            ),
        )
        .unwrap();
        common::import_samples(dir.path());
        Site {
            dir,
            child: None,
            base: String::new(),
            log: Arc::default(),
        }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn cli(&self, args: &[&str]) -> String {
        let mut all = vec!["--config", "connector.toml"];
        all.extend_from_slice(args);
        let out = common::run_in(self.path(), &all);
        assert!(out.status.success(), "{args:?}: {out:?}");
        String::from_utf8(out.stdout).unwrap()
    }

    /// `approve RUN` (which exits 1 when some rows were refused, as these files' are).
    fn approve(&self, run: &str) {
        let out = common::run_in(self.path(), &["--config", "connector.toml", "approve", run]);
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("approved and applied"), "{out:?}");
    }

    /// Delivers `csv` as RXX's administrator's file and runs intake and the nightly step:
    /// the run it holds.
    fn held_run(&self, id: &str, csv: &[u8]) -> String {
        let new = self.path().join("var/mail/inbox/new");
        std::fs::create_dir_all(&new).unwrap();
        std::fs::write(new.join(format!("{id}.eml")), message(id, csv)).unwrap();
        self.cli(&["run", "--once"]);
        let out = self.cli(&["run", "--once", "--now"]);
        let at = out.find("run ").expect("a run") + 4;
        let run: String = out[at..]
            .chars()
            .take_while(|c| !c.is_whitespace())
            .collect();
        assert!(out.contains("HELD"), "{out}");
        run
    }

    /// Starts `run` and waits for the console to listen.
    fn start(&mut self) {
        self.start_with(&[]);
    }

    /// As [`Site::start`], with more environment.
    fn start_with(&mut self, env: &[(&str, &str)]) {
        let mut child = Command::new(env!("CARGO_BIN_EXE_push-connector"))
            .args(["--config", "connector.toml", "run"])
            .current_dir(self.path())
            .env_remove("PUSH_CONNECTOR_CONFIG")
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        self.child = Some(child);
        let (tx, rx) = std::sync::mpsc::channel();
        let log = self.log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(at) = line.find("console listening on ") {
                    let url: String = line[at + 21..]
                        .chars()
                        .take_while(|c| !c.is_whitespace())
                        .collect();
                    let _ = tx.send(url.trim_end_matches('/').to_owned());
                }
                let mut l = log.lock().unwrap();
                l.push_str(&line);
                l.push('\n');
            }
        });
        self.base = rx
            .recv_timeout(Duration::from_secs(30))
            .unwrap_or_else(|_| panic!("the console did not start:\n{}", self.log()));
    }

    fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// The subjects of the e-mails written to the outbox folder so far.
    fn sent_subjects(&self) -> Vec<String> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(self.path().join("var/outbox"))
            .map(|d| d.map(|e| e.unwrap().path()).collect())
            .unwrap_or_default();
        files.retain(|p| p.extension().is_some_and(|e| e == "eml"));
        files.sort();
        files
            .iter()
            .filter_map(|p| {
                let raw = std::fs::read_to_string(p).ok()?;
                raw.lines()
                    .find_map(|l| l.strip_prefix("Subject: "))
                    .map(str::to_owned)
            })
            .collect()
    }

    /// Waits up to 20 s for an e-mail whose subject starts with `prefix` and names `run`.
    fn wait_for_mail(&self, prefix: &str, run: &str) -> String {
        let until = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(s) = self
                .sent_subjects()
                .into_iter()
                .find(|s| s.starts_with(prefix) && s.contains(run))
            {
                return s;
            }
            assert!(
                Instant::now() < until,
                "no e-mail \"{prefix}… {run}\": {:?}\n{}",
                self.sent_subjects(),
                self.log()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

/// RXX's administrator's message carrying `csv`.
fn message(id: &str, csv: &[u8]) -> Vec<u8> {
    format!(
        "From: Admin <admin@rxx.nhs.uk>\r\nTo: connector@connector.test\r\nSubject: staff list\r\n\
         Message-ID: <{id}@rxx>\r\nDate: Tue, 3 Jun 2025 10:00:00 +0100\r\nMIME-Version: 1.0\r\n\
         Content-Type: multipart/mixed; boundary=\"B\"\r\n\r\n--B\r\nContent-Type: text/plain\r\n\r\n\
         Please apply.\r\n--B\r\nContent-Type: text/csv; name=\"staff.csv\"\r\n\
         Content-Disposition: attachment; filename=\"staff.csv\"\r\n\
         Content-Transfer-Encoding: base64\r\n\r\n{}\r\n--B--\r\n",
        base64::Engine::encode(&base64::engine::general_purpose::STANDARD, csv)
    )
    .into_bytes()
}

fn sample_csv() -> Vec<u8> {
    std::fs::read(common::root().join("samples/submission-rxx.csv")).unwrap()
}

/// Browsers are started one at a time: two cores do not run several chromiums well.
static BROWSER: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A headless chromium session.
async fn browser() -> Client {
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": env("CONSOLE_CHROMIUM"),
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--window-size=1280,1800", "--lang=en-GB"],
        }),
    );
    let connector = hyper_util::client::legacy::connect::HttpConnector::new();
    ClientBuilder::new(connector)
        .capabilities(caps)
        .connect(&env("CONSOLE_WEBDRIVER_URL"))
        .await
        .expect("a chromium session through chromedriver")
}

/// Saves a screenshot as `$CARGO_TARGET_TMPDIR/console/NAME.png`.
async fn screenshot(b: &Client, name: &str) {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("console");
    std::fs::create_dir_all(&dir).unwrap();
    let png = b.screenshot().await.unwrap();
    assert!(png.starts_with(b"\x89PNG"), "a PNG");
    std::fs::write(dir.join(format!("{name}.png")), png).unwrap();
}

/// Runs axe-core in the page: the serious and critical violations (WCAG 2.x A and AA).
async fn axe(b: &Client) -> Vec<Value> {
    static AXE: OnceLock<String> = OnceLock::new();
    let source = AXE.get_or_init(|| std::fs::read_to_string(env("CONSOLE_AXE_JS")).unwrap());
    b.execute(source, vec![]).await.expect("axe-core loads");
    let result = b
        .execute_async(
            "const done = arguments[arguments.length - 1];
             axe.run(document, {runOnly: {type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'wcag22aa']}})
                .then(r => done(r.violations.map(v => ({id: v.id, impact: v.impact, help: v.help,
                    nodes: v.nodes.map(n => n.html).slice(0, 3)}))))
                .catch(e => done([{id: 'axe-error', impact: 'critical', help: String(e)}]));",
            vec![],
        )
        .await
        .expect("axe-core runs");
    result
        .as_array()
        .unwrap()
        .iter()
        .filter(|v| matches!(v["impact"].as_str(), Some("serious" | "critical")))
        .cloned()
        .collect()
}

/// Opens `path`, checks it with axe and saves a screenshot.
async fn visit(b: &Client, site: &Site, path: &str, shot: &str) {
    b.goto(&site.url(path)).await.unwrap();
    let bad = axe(b).await;
    assert!(bad.is_empty(), "{path}: accessibility violations: {bad:#?}");
    screenshot(b, shot).await;
}

/// Clicks `locator` and waits until the page it loads has replaced this one (a form posted
/// and redirected may come back to the same address, so the address cannot tell).
async fn click_to_load(b: &Client, locator: Locator<'_>) {
    let old = b.find(Locator::Css("html")).await.unwrap();
    b.find(locator).await.unwrap().click().await.unwrap();
    let until = Instant::now() + Duration::from_secs(20);
    while old.tag_name().await.is_ok() {
        assert!(
            Instant::now() < until,
            "the page did not change after the click"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    loop {
        let state = b
            .execute("return document.readyState;", vec![])
            .await
            .unwrap_or(Value::Null);
        if state == "complete" {
            break;
        }
        assert!(Instant::now() < until, "the page did not finish loading");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn text(b: &Client, css: &str) -> String {
    b.find(Locator::Css(css))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

async fn sign_in(b: &Client, site: &Site, name: &str, password: &str) {
    b.goto(&site.url("/signin")).await.unwrap();
    b.find(Locator::Id("name"))
        .await
        .unwrap()
        .send_keys(name)
        .await
        .unwrap();
    b.find(Locator::Id("password"))
        .await
        .unwrap()
        .send_keys(password)
        .await
        .unwrap();
    click_to_load(b, Locator::Id("signin")).await;
}

async fn decide(b: &Client, button: &str, reason: &str) {
    if !reason.is_empty() {
        b.find(Locator::Id("reason"))
            .await
            .unwrap()
            .send_keys(reason)
            .await
            .unwrap();
    }
    click_to_load(b, Locator::Id(button)).await;
}

#[tokio::test]
async fn a_held_run_is_read_approved_with_a_reason_and_its_result_mailed_and_in_history() {
    let mut site = Site::new("");
    let run = site.held_run("f1", &sample_csv());
    site.start();
    let _one = BROWSER.lock().await;
    let b = browser().await;

    visit(&b, &site, "/signin", "signin").await;
    sign_in(&b, &site, "ada", PASSWORD).await;
    assert_eq!(text(&b, "#operator").await, "ada");
    visit(&b, &site, "/", "organisations").await;
    let rxx = text(&b, "#org-RXX").await;
    assert!(
        rxx.contains("staff.csv") && rxx.contains("14 / 2") && rxx.contains("1 held"),
        "{rxx}"
    );

    // The held run, from the runs list.
    visit(&b, &site, "/runs", "runs").await;
    click_to_load(&b, Locator::LinkText(&run)).await;
    assert_eq!(text(&b, "#status").await, "held");
    assert!(text(&b, "#note").await.contains("more than the limit of 0"));
    let changes = text(&b, "#changes").await;
    assert!(
        changes.contains("1000002 JobTitle \"Staff Nurse\" \"Senior Staff Nurse\""),
        "{changes}"
    );
    assert!(changes.contains("create grace.hughes@nhs.net"), "{changes}");
    assert!(
        changes.contains("OfficePhone \"12345\" is too short"),
        "{changes}"
    );
    let bad = axe(&b).await;
    assert!(bad.is_empty(), "run page: {bad:#?}");
    screenshot(&b, "run-held").await;

    // Only refusals.
    b.goto(&site.url(&format!("/runs/{run}?show=refusals")))
        .await
        .unwrap();
    let refusals = text(&b, "#changes").await;
    assert!(
        !refusals.contains("JobTitle") && refusals.contains("refused"),
        "{refusals}"
    );
    b.goto(&site.url(&format!("/runs/{run}"))).await.unwrap();

    // No reason: refused, nothing applied.
    decide(&b, "approve", "").await;
    assert!(text(&b, "#flash").await.contains("give a reason"));
    assert_eq!(text(&b, "#status").await, "held");
    assert!(
        site.cli(&["directory", "export"])
            .contains("Staff Nurse,RXX")
    );

    decide(&b, "approve", "Checked with RXX's administrator by phone").await;
    let flash = text(&b, "#flash").await;
    assert!(
        flash.contains("approved by ada and applied: 2 created, 3 updated"),
        "{flash}"
    );
    assert_eq!(text(&b, "#status").await, "applied");
    screenshot(&b, "run-approved").await;
    b.goto(&site.url("/")).await.unwrap();
    let rxx = text(&b, "#org-RXX").await;
    assert!(
        rxx.contains("applied") && rxx.contains("2 created, 3 updated, 7 rejected, 0 failed"),
        "{rxx}"
    );
    b.goto(&site.url(&format!("/runs/{run}"))).await.unwrap();
    // The service was woken: the result e-mail goes out without waiting for the schedule.
    site.wait_for_mail("Result:", &run);
    assert!(
        site.cli(&["directory", "export"])
            .contains("Senior Staff Nurse")
    );

    // The account's history shows the change, its run and where it came from.
    b.goto(&site.url("/accounts")).await.unwrap();
    b.find(Locator::Id("q"))
        .await
        .unwrap()
        .send_keys("ben.carter@nhs.net")
        .await
        .unwrap();
    click_to_load(&b, Locator::Id("find")).await;
    let history = text(&b, "#history").await;
    assert!(
        history.contains("JobTitle: \"Staff Nurse\" → \"Senior Staff Nurse\"")
            && history.contains(&run)
            && history.contains("e-mail from admin@rxx.nhs.uk, staff.csv line 3")
            && history.contains("approved by ada"),
        "{history}"
    );
    let bad = axe(&b).await;
    assert!(bad.is_empty(), "history page: {bad:#?}");
    screenshot(&b, "account-history").await;

    // The sent e-mails and the audit trail.
    visit(&b, &site, "/outbox?all=1", "outbox").await;
    assert!(
        text(&b, "#mails")
            .await
            .contains(&format!("Result: staff list for RXX, run {run}"))
    );
    visit(&b, &site, "/audit", "audit").await;
    let audit = text(&b, "#audit").await;
    assert!(
        audit.contains(&format!(
            "ada approve {run} Checked with RXX's administrator by phone"
        )) && audit.contains("ada sign-in"),
        "{audit}"
    );
    b.close().await.unwrap();
}

#[tokio::test]
async fn a_held_run_is_rejected_with_its_reason_and_nothing_changes() {
    let mut site = Site::new("");
    let run = site.held_run("f1", &sample_csv());
    let before = site.cli(&["directory", "export"]);
    site.start();
    let _one = BROWSER.lock().await;
    let b = browser().await;
    sign_in(&b, &site, "bob", PASSWORD).await;
    b.goto(&site.url(&format!("/runs/{run}"))).await.unwrap();
    decide(&b, "reject", "Wrong file: RXX sent last month's list").await;
    assert!(
        text(&b, "#flash")
            .await
            .contains(&format!("run {run} rejected"))
    );
    assert_eq!(text(&b, "#status").await, "rejected");
    assert!(
        text(&b, "#note")
            .await
            .contains("rejected by bob: Wrong file")
    );
    screenshot(&b, "run-rejected").await;
    assert_eq!(site.cli(&["directory", "export"]), before);
    // A rejected run cannot be approved after all.
    assert!(b.find(Locator::Id("approve")).await.is_err());
    b.close().await.unwrap();
}

#[tokio::test]
async fn revert_shows_what_it_would_restore_and_what_a_later_run_changed_then_restores() {
    let mut site = Site::new("");
    let first = site.held_run("f1", &sample_csv());
    site.approve(&first);
    // A later run changes Ben Carter's job title again.
    let later = String::from_utf8(sample_csv())
        .unwrap()
        .replace("Senior Staff Nurse", "Charge Nurse");
    let second = site.held_run("f2", later.as_bytes());
    site.approve(&second);
    site.start();
    let _one = BROWSER.lock().await;
    let b = browser().await;
    sign_in(&b, &site, "ada", PASSWORD).await;
    b.goto(&site.url(&format!("/runs/{first}"))).await.unwrap();
    click_to_load(&b, Locator::Id("revert")).await;
    let restore = text(&b, "#restore").await;
    assert!(
        restore.contains("1000003 LastName \"Davies-Smith\" \"Davies\""),
        "{restore}"
    );
    assert!(!restore.contains("JobTitle"), "{restore}");
    let left = text(&b, "#left").await;
    assert!(
        left.contains(&format!(
            "JobTitle of account ID 1000002 was changed again by run {second}"
        )),
        "{left}"
    );
    assert!(text(&b, "#created").await.contains("grace.hughes@nhs.net"));
    let bad = axe(&b).await;
    assert!(bad.is_empty(), "revert page: {bad:#?}");
    screenshot(&b, "revert-preview").await;
    // The preview changed nothing.
    assert!(site.cli(&["directory", "export"]).contains("Davies-Smith"));

    decide(&b, "confirm", "RXX asked to undo the rename").await;
    let flash = text(&b, "#flash").await;
    assert!(
        flash.contains(&format!("run {first} reverted by run")),
        "{flash}"
    );
    assert_eq!(text(&b, "#status").await, "reverted");
    let export = site.cli(&["directory", "export"]);
    assert!(
        export.contains("1000003,RXX0003,Ms,Chloe,Davies,"),
        "{export}"
    );
    assert!(export.contains("Charge Nurse"), "the later change stays");
    b.close().await.unwrap();
}

#[tokio::test]
async fn a_wrong_password_and_a_form_without_its_token_are_refused_in_the_browser() {
    let mut site = Site::new("");
    let run = site.held_run("f1", &sample_csv());
    site.start();
    let _one = BROWSER.lock().await;
    let b = browser().await;
    sign_in(&b, &site, "ada", "not the password").await;
    assert!(text(&b, "#error").await.contains("not right"));
    assert!(
        b.find(Locator::Id("operator")).await.is_err(),
        "not signed in"
    );
    let bad = axe(&b).await;
    assert!(bad.is_empty(), "sign-in with an error: {bad:#?}");
    screenshot(&b, "signin-wrong").await;

    sign_in(&b, &site, "ada", PASSWORD).await;
    b.goto(&site.url(&format!("/runs/{run}"))).await.unwrap();
    b.find(Locator::Id("reason"))
        .await
        .unwrap()
        .send_keys("looks fine")
        .await
        .unwrap();
    // As a forged form would: the same fields, without the token.
    b.execute(
        "document.querySelectorAll('input[name=csrf]').forEach(e => e.remove());",
        vec![],
    )
    .await
    .unwrap();
    click_to_load(&b, Locator::Id("approve")).await;
    assert!(
        b.source()
            .await
            .unwrap()
            .contains("was not sent from this console")
    );
    screenshot(&b, "csrf-refused").await;
    b.goto(&site.url(&format!("/runs/{run}"))).await.unwrap();
    assert_eq!(text(&b, "#status").await, "held");
    b.close().await.unwrap();
}

#[tokio::test]
async fn every_page_passes_axe_and_is_saved() {
    let mut site = Site::new("");
    let first = site.held_run("f1", &sample_csv());
    site.approve(&first);
    let held = site.held_run(
        "f2",
        String::from_utf8(sample_csv())
            .unwrap()
            .replace("Ward Manager", "Matron")
            .as_bytes(),
    );
    site.start();
    let _one = BROWSER.lock().await;
    let b = browser().await;
    sign_in(&b, &site, "ada", PASSWORD).await;
    let pages = [
        ("/", "page-organisations"),
        ("/submissions", "page-submissions"),
        ("/submissions/1", "page-submission"),
        ("/runs", "page-runs"),
        (&format!("/runs/{held}") as &str, "page-run-held"),
        (&format!("/runs/{first}"), "page-run-applied"),
        (&format!("/runs/{first}/revert"), "page-revert"),
        ("/accounts", "page-accounts"),
        ("/accounts?q=RXX0002", "page-account-history"),
        ("/outbox?all=1", "page-outbox"),
        ("/sources", "page-sources"),
        ("/audit", "page-audit"),
        ("/no-such-page", "page-not-found"),
    ];
    for (path, shot) in pages {
        visit(&b, &site, path, shot).await;
    }
    // The check can fail: an unlabelled field and an image without text are found.
    b.goto(&site.url("/")).await.unwrap();
    b.execute(
        "const i = document.createElement('input'); i.type = 'text'; document.querySelector('main').appendChild(i);
         const g = document.createElement('img'); g.src = '/assets/images/nhsuk-icon-cross.svg'; document.querySelector('main').appendChild(g);",
        vec![],
    )
    .await
    .unwrap();
    let found: Vec<String> = axe(&b)
        .await
        .iter()
        .map(|v| v["id"].as_str().unwrap_or("").to_owned())
        .collect();
    assert!(
        found.contains(&"label".to_owned()) && found.contains(&"image-alt".to_owned()),
        "{found:?}"
    );
    // The submission's refusals, each with line, column, value and reason.
    b.goto(&site.url("/submissions/1")).await.unwrap();
    let refusals = text(&b, "#refusals").await;
    assert!(refusals.contains("9 OfficePhone 12345"), "{refusals}");
    // And its e-mails: the acknowledgement, the held notice and the result of its approval.
    let mails = text(&b, "#mails").await;
    assert!(
        mails.contains("acknowledgement")
            && mails.contains(&format!(
                "Held for approval: staff list for RXX, run {first}"
            ))
            && mails.contains(&format!("Result: staff list for RXX, run {first}")),
        "{mails}"
    );
    b.close().await.unwrap();
}

/// A plain HTTP client that keeps no cookies unless told.
fn http() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .redirect(reqwest::redirect::Policy::none())
        .danger_accept_invalid_certs(true)
        .build()
        .unwrap()
}

/// The value of `name="csrf"` in a page.
fn csrf_in(html: &str) -> String {
    let at = html.find("name=\"csrf\" value=\"").expect("a csrf field") + 19;
    html[at..].chars().take_while(|c| *c != '"').collect()
}

/// A page's HTML, for the session of `cookie`.
async fn page_of(c: &reqwest::Client, url: &str, cookie: &str) -> String {
    c.get(url)
        .header("cookie", cookie)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// Posts a held run's Approve/Reject form as its page gives it (with the page's token).
async fn post_decision(
    c: &reqwest::Client,
    base: &str,
    run: &str,
    cookie: &str,
    reason: &str,
) -> reqwest::Response {
    let page = page_of(c, &format!("{base}/runs/{run}"), cookie).await;
    c.post(format!("{base}/runs/{run}/decide"))
        .header("cookie", cookie)
        .form(&[
            ("csrf", csrf_in(&page).as_str()),
            ("decision", "approve"),
            ("reason", reason),
        ])
        .send()
        .await
        .unwrap()
}

/// Signs in over HTTP: the session cookie.
async fn http_sign_in(c: &reqwest::Client, base: &str, name: &str) -> String {
    let page = c.get(format!("{base}/signin")).send().await.unwrap();
    let nonce_cookie = page
        .headers()
        .get("set-cookie")
        .unwrap()
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let nonce = csrf_in(&page.text().await.unwrap());
    let r = c
        .post(format!("{base}/signin"))
        .header("cookie", nonce_cookie)
        .form(&[
            ("csrf", nonce.as_str()),
            ("name", name),
            ("password", PASSWORD),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let set = r
        .headers()
        .get("set-cookie")
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        set.contains("HttpOnly") && set.contains("SameSite=Strict"),
        "{set}"
    );
    set.split(';').next().unwrap().to_owned()
}

#[tokio::test]
async fn the_two_person_rule_needs_a_second_operator_for_a_large_run() {
    let mut site = Site::new("second_approver_above = 3\n");
    let run = site.held_run("f1", &sample_csv());
    site.start();
    let c = http();
    let base = site.base.clone();
    let ada = http_sign_in(&c, &base, "ada").await;
    let bob = http_sign_in(&c, &base, "bob").await;
    let approve = |cookie: String, reason: &'static str| {
        let c = c.clone();
        let url = format!("{base}/runs/{run}");
        async move {
            let page = c.get(&url).header("cookie", &cookie).send().await.unwrap();
            let csrf = csrf_in(&page.text().await.unwrap());
            let r = c
                .post(format!("{url}/decide"))
                .header("cookie", &cookie)
                .form(&[
                    ("csrf", csrf.as_str()),
                    ("decision", "approve"),
                    ("reason", reason),
                ])
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 303);
            let flash = r
                .headers()
                .get("set-cookie")
                .unwrap()
                .to_str()
                .unwrap()
                .to_owned();
            c.get(&url)
                .header(
                    "cookie",
                    format!("{cookie}; {}", flash.split(';').next().unwrap()),
                )
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap()
        }
    };
    let first = approve(ada.clone(), "looks right").await;
    assert!(
        first.contains("a second operator must approve it"),
        "{first}"
    );
    assert!(first.contains("id=\"status\">held"), "{first}");
    let again = approve(ada.clone(), "really").await;
    assert!(again.contains("you have already approved run"), "{again}");
    let second = approve(bob, "agreed").await;
    assert!(
        second.contains("approved by ada and bob and applied"),
        "{second}"
    );
    assert!(site.cli(&["runs"]).contains("approved by ada and bob"));
}

#[tokio::test]
async fn the_requester_cannot_approve_their_own_run() {
    let mut site = Site::new("");
    // The run's requester is its sender's address; an operator named so is refused.
    let hash = password_hash();
    let config = site.path().join("connector.toml");
    let mut toml = std::fs::read_to_string(&config).unwrap();
    toml.push_str(&format!(
        "[[console.operator]]\nname = \"admin@rxx.nhs.uk\"\npassword_hash = \"{hash}\"\n"
    ));
    std::fs::write(&config, toml).unwrap();
    let run = site.held_run("f1", &sample_csv());
    site.start();
    let c = http();
    let base = site.base.clone();
    let me = http_sign_in(&c, &base, "admin@rxx.nhs.uk").await;
    let r = post_decision(&c, &base, &run, &me, "mine").await;
    let flash = r.headers().get("set-cookie").unwrap().to_str().unwrap();
    assert!(flash.contains("another+operator+must+approve"), "{flash}");
    assert!(site.cli(&["runs"]).contains("held"));
}

#[tokio::test]
async fn pages_need_a_session_no_get_acts_sign_in_is_throttled_and_secrets_stay_out() {
    let mut site = Site::new("");
    let run = site.held_run("f1", &sample_csv());
    site.start();
    let c = http();
    let base = site.base.clone();
    for path in [
        "/",
        "/submissions",
        "/submissions/1",
        "/runs",
        &format!("/runs/{run}"),
        &format!("/runs/{run}/revert"),
        "/accounts?q=ben.carter@nhs.net",
        "/outbox",
        "/sources",
        "/audit",
    ] {
        let r = c.get(format!("{base}{path}")).send().await.unwrap();
        assert_eq!(r.status(), 303, "{path}");
        assert_eq!(r.headers()["location"], "/signin", "{path}");
    }
    // Actions without a session are refused, and no GET acts.
    for path in [
        format!("/runs/{run}/decide"),
        format!("/runs/{run}/revert"),
        "/outbox/1/retry".into(),
    ] {
        let r = c
            .post(format!("{base}{path}"))
            .form(&[("decision", "approve"), ("reason", "x")])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401, "{path}");
    }
    let me = http_sign_in(&c, &base, "ada").await;
    let r = c
        .get(format!(
            "{base}/runs/{run}/decide?decision=approve&reason=x"
        ))
        .header("cookie", &me)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 405);
    // A token from another session does not do.
    let other = http_sign_in(&c, &base, "bob").await;
    let bobs_page = c
        .get(format!("{base}/runs/{run}"))
        .header("cookie", &other)
        .send()
        .await
        .unwrap();
    let headers = bobs_page.headers().clone();
    let bobs = csrf_in(&bobs_page.text().await.unwrap());
    let r = c
        .post(format!("{base}/runs/{run}/decide"))
        .header("cookie", &me)
        .form(&[
            ("csrf", bobs.as_str()),
            ("decision", "approve"),
            ("reason", "x"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert!(site.cli(&["runs"]).contains("held"));
    assert!(
        headers["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("script-src 'none'")
    );
    assert_eq!(headers["x-frame-options"], "DENY");
    assert_eq!(headers["cache-control"], "no-store");

    // Sign-in failures: after three, refused with 429 even with the right password.
    let wrong = |password: &'static str| {
        let c = c.clone();
        let base = base.clone();
        async move {
            let page = c.get(format!("{base}/signin")).send().await.unwrap();
            let cookie = page.headers()["set-cookie"]
                .to_str()
                .unwrap()
                .split(';')
                .next()
                .unwrap()
                .to_owned();
            let nonce = csrf_in(&page.text().await.unwrap());
            c.post(format!("{base}/signin"))
                .header("cookie", cookie)
                .form(&[
                    ("csrf", nonce.as_str()),
                    ("name", "ada"),
                    ("password", password),
                ])
                .send()
                .await
                .unwrap()
        }
    };
    for _ in 0..2 {
        assert_eq!(wrong("guess").await.status(), 401);
    }
    let blocked = wrong("guess").await;
    assert_eq!(blocked.status(), 429);
    assert!(blocked.headers().contains_key("retry-after"));
    assert_eq!(wrong(PASSWORD).await.status(), 429);
    // A sign-in form posted without its nonce cookie is refused.
    let r = c
        .post(format!("{base}/signin"))
        .form(&[("csrf", "x"), ("name", "bob"), ("password", PASSWORD)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);

    // Approve, so accounts are created with initial passwords; none shows anywhere.
    post_decision(&c, &base, &run, &other, "ok").await;
    let passwords = std::fs::read_to_string(site.path().join("var/initial-passwords.csv")).unwrap();
    let secrets: Vec<String> = passwords
        .lines()
        .skip(1)
        .filter_map(|l| l.rsplit(',').next().map(str::to_owned))
        .filter(|p| p.len() >= 8)
        .collect();
    assert!(
        !secrets.is_empty(),
        "the run created accounts with initial passwords"
    );
    let mut seen = String::new();
    for path in [
        "/",
        "/submissions",
        "/submissions/1",
        "/runs",
        &format!("/runs/{run}"),
        "/accounts?q=grace.hughes@nhs.net",
        "/outbox?all=1",
        "/audit",
    ] {
        seen.push_str(&page_of(&c, &format!("{base}{path}"), &other).await);
    }
    seen.push_str(&site.log());
    for s in secrets
        .iter()
        .map(String::as_str)
        .chain([PASSWORD, "guess", password_hash()])
    {
        assert!(!seen.contains(s), "{s:?} shows in a page or the log");
    }
    let session_token = other.split('=').nth(1).unwrap();
    assert!(!seen.contains(session_token), "a session token shows");
}

#[tokio::test]
async fn health_and_readiness_answer_without_a_session() {
    let mut site = Site::new("");
    site.start();
    let c = http();
    let r = c.get(site.url("/healthz")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let r = c.get(site.url("/readyz")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let body = r.text().await.unwrap();
    assert!(
        body.contains("state database: ok")
            && body.contains("directory: ok")
            && body.contains("mailbox: ok"),
        "{body}"
    );
}

#[tokio::test]
async fn readiness_fails_when_the_directory_stops_answering() {
    // The portal: our own SCIM server over the sample accounts.
    let portal = common::serve_seeded("portal-token");
    let mut site = Site::new("");
    let config = site.path().join("connector.toml");
    let mut toml = std::fs::read_to_string(&config).unwrap();
    toml.push_str(&format!(
        "[directory]\nbackend = \"scim\"\nurl = \"{}\"\ntoken = \"portal-token\"\n",
        portal.url
    ));
    std::fs::write(&config, toml).unwrap();
    site.start();
    let c = http();
    let r = c.get(site.url("/readyz")).send().await.unwrap();
    let body = r.text().await.unwrap();
    assert!(body.contains("directory: ok"), "{body}");
    drop(portal);
    let r = c.get(site.url("/readyz")).send().await.unwrap();
    assert_eq!(r.status(), 503);
    let body = r.text().await.unwrap();
    assert!(
        body.contains("state database: ok") && !body.contains("directory: ok"),
        "{body}"
    );
    // Alive all the same.
    assert_eq!(
        c.get(site.url("/healthz")).send().await.unwrap().status(),
        200
    );
}

/// The value of a PromQL query through Prometheus's HTTP API (the first series), once it
/// equals `want`; panics after 30 s.
async fn prometheus_until(query: &str, want: f64) {
    let c = http();
    let until = Instant::now() + Duration::from_secs(30);
    let mut last = Value::Null;
    while Instant::now() < until {
        let r: Value = c
            .get(format!("{}/api/v1/query", env("CONSOLE_PROMETHEUS_URL")))
            .query(&[("query", query)])
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if let Some(v) = r["data"]["result"][0]["value"][1].as_str()
            && v.parse::<f64>().ok() == Some(want)
        {
            return;
        }
        last = r;
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    panic!("{query}: not {want} within 30 s; last answer {last}");
}

#[tokio::test]
async fn prometheus_scrapes_the_counts_the_service_produced() {
    let mut site = Site::new("");
    let run = site.held_run("f1", &sample_csv());
    site.start();
    // While it runs: one file, one message from a stranger, and the held run approved.
    let new = site.path().join("var/mail/inbox/new");
    std::fs::write(
        new.join("stranger.eml"),
        message("s1", &sample_csv())
            .into_iter()
            .collect::<Vec<u8>>()
            .replace_sender("intruder@example.org"),
    )
    .unwrap();
    let c = http();
    let base = site.base.clone();
    let me = http_sign_in(&c, &base, "ada").await;
    post_decision(&c, &base, &run, &me, "ok").await;
    let target = base.trim_start_matches("http://").to_owned();
    let job = format!("console-{}", target.replace([':', '.'], "-"));
    let targets = PathBuf::from(env("CONSOLE_TARGETS_DIR")).join(format!("{job}.json"));
    std::fs::write(
        &targets,
        json!([{"targets": [target], "labels": {"site": job}}]).to_string(),
    )
    .unwrap();
    let scoped = |q: &str| q.replace("SITE", &format!("site=\"{job}\""));
    prometheus_until(&scoped("up{SITE}"), 1.0).await;
    prometheus_until(
        &scoped("sum(push_connector_messages_total{SITE,outcome=\"rejected\",reason=\"not-authorised\"})"),
        1.0,
    )
    .await;
    prometheus_until(&scoped("push_connector_runs{SITE,status=\"applied\"}"), 1.0).await;
    prometheus_until(&scoped("push_connector_runs{SITE,status=\"held\"}"), 0.0).await;
    prometheus_until(
        &scoped("push_connector_rows_stored{SITE,verdict=\"refused\"}"),
        2.0,
    )
    .await;
    prometheus_until(
        &scoped("push_connector_changes_applied{SITE,kind=\"created\"}"),
        2.0,
    )
    .await;
    prometheus_until(
        &scoped("count(push_connector_last_applied_timestamp_seconds{SITE,organisation=\"RXX\"} > 1700000000)"),
        1.0,
    )
    .await;
    let _ = std::fs::remove_file(targets);
}

/// Rewrites the From address of a message.
trait ReplaceSender {
    fn replace_sender(self, to: &str) -> Vec<u8>;
}

impl ReplaceSender for Vec<u8> {
    fn replace_sender(self, to: &str) -> Vec<u8> {
        String::from_utf8(self)
            .unwrap()
            .replace("admin@rxx.nhs.uk", to)
            .into_bytes()
    }
}

#[test]
fn the_shipped_stylesheet_is_the_nhs_frontend_release_unchanged() {
    let dir = PathBuf::from(env("CONSOLE_NHSUK_DIR"));
    let npm = std::fs::read_to_string(dir.join("nhsuk-frontend.min.css")).unwrap();
    assert_eq!(
        push_connector::console::STYLESHEET,
        npm,
        "templates/console/assets/nhsuk-frontend.min.css differs from the npm package"
    );
    for icon in ["arrow-down", "arrow-up-down", "arrow-up", "cross"] {
        let name = format!("nhsuk-icon-{icon}.svg");
        let shipped = std::fs::read(
            common::root()
                .join("templates/console/assets/images")
                .join(&name),
        )
        .unwrap();
        assert_eq!(
            shipped,
            std::fs::read(dir.join("assets/images").join(&name)).unwrap(),
            "{name}"
        );
    }
}

#[tokio::test]
async fn over_https_the_session_cookie_is_secure_and_plain_http_is_not_served() {
    let mut site = Site::new("tls_cert = \"server.crt\"\ntls_key = \"server.key\"\n");
    common::make_certificates(site.path());
    site.start();
    assert!(site.base.starts_with("https://127.0.0.1:"), "{}", site.base);
    let c = http();
    let base = site.base.clone();
    let page = c.get(format!("{base}/signin")).send().await.unwrap();
    let nonce_cookie = page.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(nonce_cookie.contains("Secure"), "{nonce_cookie}");
    let nonce = csrf_in(&page.text().await.unwrap());
    let r = c
        .post(format!("{base}/signin"))
        .header("cookie", nonce_cookie.split(';').next().unwrap())
        .form(&[
            ("csrf", nonce.as_str()),
            ("name", "ada"),
            ("password", PASSWORD),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let set = r.headers()["set-cookie"].to_str().unwrap();
    assert!(
        set.contains("Secure") && set.contains("HttpOnly") && set.contains("SameSite=Strict"),
        "{set}"
    );
    let plain = base.replace("https://", "http://");
    assert!(c.get(format!("{plain}/healthz")).send().await.is_err());
}

#[tokio::test]
async fn serve_counts_and_times_its_scim_requests_for_prometheus() {
    let serve = common::serve_seeded("scim-token");
    let c = http();
    for _ in 0..3 {
        let r = c
            .get(format!("{}/Users?count=1", serve.url))
            .bearer_auth("scim-token")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    let r = c.get(format!("{}/Users", serve.url)).send().await.unwrap();
    assert_eq!(r.status(), 401);
    let text = c
        .get(format!("{}/metrics", serve.root()))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let line = |needle: &str| {
        text.lines()
            .find(|l| l.starts_with(needle))
            .unwrap_or_else(|| panic!("no {needle} in:\n{text}"))
            .rsplit(' ')
            .next()
            .unwrap()
            .to_owned()
    };
    assert_eq!(
        line(
            "push_connector_scim_requests_total{method=\"GET\",endpoint=\"Users\",status=\"200\"}"
        ),
        "3"
    );
    assert_eq!(
        line(
            "push_connector_scim_requests_total{method=\"GET\",endpoint=\"Users\",status=\"401\"}"
        ),
        "1"
    );
    assert_eq!(
        line(
            "push_connector_scim_request_duration_seconds_count{method=\"GET\",endpoint=\"Users\"}"
        ),
        "4"
    );
    assert!(text.contains("push_connector_scim_request_duration_seconds_bucket{"));
}

#[tokio::test]
async fn a_scheduled_sync_that_fails_shows_its_error_on_the_sources_page() {
    let mut site = Site::new("");
    // A PostgreSQL source on a loopback port nothing listens on.
    let free = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let config = site.path().join("connector.toml");
    let mut toml = std::fs::read_to_string(&config).unwrap();
    toml.push_str(&format!(
        "[[source]]\nname = \"hr\"\norganisations = [\"RXX\"]\n\
         [source.sql]\nurl = \"postgres://sync@{free}/hr\"\ntable = \"staff\"\nanchor = \"id\"\n\
         timeout_seconds = 2\n\
         [source.map]\nFirstName = \"first_name\"\nLastName = \"last_name\"\n\
         [source.constant]\nOrganisation = \"RXX\"\n"
    ));
    std::fs::write(&config, toml).unwrap();
    // `run --once --now` syncs every source (and says the sync failed).
    let out = common::run_in(
        site.path(),
        &["--config", "connector.toml", "run", "--once", "--now"],
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("sync: hr: FAILED"),
        "{out:?}"
    );
    site.start();
    let c = http();
    let me = http_sign_in(&c, &site.base, "ada").await;
    let page = page_of(&c, &site.url("/sources"), &me).await;
    let row = &page[page.find("<td>hr</td>").expect("the source's row")..];
    let row = &row[..row.find("</tr>").unwrap()];
    assert!(row.contains("SQL table") && row.contains("RXX"), "{row}");
    assert!(row.contains(">Failed</strong>"), "{row}");
    assert!(
        row.contains(&free.to_string()) || row.contains("onnect"),
        "{row}"
    );
}

/// Waits up to 20 s for the element `css` to appear in the page.
async fn wait_for(b: &Client, css: &str) -> fantoccini::elements::Element {
    let until = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(e) = b.find(Locator::Css(css)).await {
            return e;
        }
        assert!(
            Instant::now() < until,
            "no {css} in {}:\n{}",
            b.current_url().await.unwrap(),
            b.source().await.unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Signs in at the test OpenID provider as `login` (its development login and consent pages).
async fn provider_sign_in(b: &Client, login: &str) {
    wait_for(b, "input[name=login]")
        .await
        .send_keys(login)
        .await
        .unwrap();
    b.find(Locator::Css("input[name=password]"))
        .await
        .unwrap()
        .send_keys("anything")
        .await
        .unwrap();
    click_to_load(b, Locator::Css("button[type=submit]")).await;
    // The consent page, the first time a client asks for this account.
    if b.current_url()
        .await
        .unwrap()
        .as_str()
        .contains("/interaction/")
    {
        click_to_load(b, Locator::Css("button[type=submit]")).await;
    }
}

#[tokio::test]
async fn an_operator_signs_in_with_openid_connect_and_a_stranger_is_refused() {
    let port = env("CONSOLE_OIDC_CONSOLE_PORT");
    let issuer = env("CONSOLE_OIDC_ISSUER");
    let mut site = Site::new(&format!(
        "[console.oidc]\nissuer = \"{issuer}\"\nclient_id = \"{}\"\n\
         redirect_url = \"http://127.0.0.1:{port}/signin/oidc/callback\"\n\
         label = \"Sign in with NHS identity\"\n\
         [[console.operator]]\nname = \"Ada.Lovelace@nhs.net\"\n",
        env("CONSOLE_OIDC_CLIENT_ID")
    ));
    let config = site.path().join("connector.toml");
    let toml = std::fs::read_to_string(&config).unwrap().replace(
        "listen = \"127.0.0.1:0\"",
        &format!("listen = \"127.0.0.1:{port}\""),
    );
    std::fs::write(&config, toml).unwrap();
    let secret = env("CONSOLE_OIDC_CLIENT_SECRET");
    site.start_with(&[(
        "PUSH_CONNECTOR__CONSOLE__OIDC__CLIENT_SECRET",
        secret.as_str(),
    )]);
    let _one = BROWSER.lock().await;
    let b = browser().await;

    visit(&b, &site, "/signin", "signin-oidc").await;
    assert_eq!(text(&b, "#oidc").await, "Sign in with NHS identity");
    click_to_load(&b, Locator::Id("oidc")).await;
    assert!(b.current_url().await.unwrap().as_str().starts_with(&issuer));
    provider_sign_in(&b, "ada.lovelace@nhs.net").await;
    // Back on the console, signed in as the configured operator the claim names.
    let operator = wait_for(&b, "#operator").await.text().await.unwrap();
    assert_eq!(operator, "Ada.Lovelace@nhs.net");
    visit(&b, &site, "/audit", "audit-oidc").await;
    assert!(
        text(&b, "#audit")
            .await
            .contains("Ada.Lovelace@nhs.net sign-in (OpenID Connect)")
    );
    b.close().await.unwrap();

    // Someone the provider knows but who is not an operator.
    let b = browser().await;
    b.goto(&site.url("/signin")).await.unwrap();
    click_to_load(&b, Locator::Id("oidc")).await;
    provider_sign_in(&b, "mallory@example.org").await;
    let error = wait_for(&b, "#error").await.text().await.unwrap();
    assert!(
        error.contains("mallory@example.org is not an operator"),
        "{error}"
    );
    assert!(b.find(Locator::Id("operator")).await.is_err());
    screenshot(&b, "oidc-refused").await;
    // A callback with a state this browser did not start is refused.
    b.goto(&site.url("/signin/oidc/callback?code=x&state=forged"))
        .await
        .unwrap();
    assert!(text(&b, "#error").await.contains("another browser"));
    b.close().await.unwrap();
    assert!(!site.log().contains(&secret), "the client secret is logged");
}

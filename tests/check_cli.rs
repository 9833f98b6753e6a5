//! `check` on a deployment with nothing set up says so, plainly, and on a configured one
//! does not.

// Test code: a failure is a panic.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

#[test]
fn check_warns_about_what_is_not_set_up() {
    let dir = tempfile::tempdir().unwrap();
    let out = common::run_in(dir.path(), &["check"]);
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8_lossy(&out.stdout);
    for warning in [
        "WARNING no organisation is configured",
        "WARNING the embedded directory var/directory.sqlite is empty",
        "WARNING the nightly window is the default",
        "WARNING the mailbox is the embedded default",
        "WARNING the outbox is the embedded default",
    ] {
        assert!(text.contains(warning), "{warning}\n{text}");
    }

    std::fs::write(
        dir.path().join("c.toml"),
        "[schedule]\nnightly_at = \"01:30\"\n\
         [[organisation]]\ncode = \"RXX\"\nadministrators = [\"admin@rxx.nhs.uk\"]\n\
         [[organisation]]\ncode = \"RYY\"\n",
    )
    .unwrap();
    let csv = common::root().join("samples/directory.csv");
    let out = common::run_in(
        dir.path(),
        &[
            "--config",
            "c.toml",
            "directory",
            "import",
            csv.to_str().unwrap(),
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = common::run_in(dir.path(), &["--config", "c.toml", "check"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!text.contains("no organisation is configured"), "{text}");
    assert!(!text.contains("is empty"), "{text}");
    assert!(!text.contains("nightly window is the default"), "{text}");
    assert!(
        text.contains("WARNING organisation RYY has no administrators"),
        "{text}"
    );
}

/// A configuration with several mistakes: `check` names every one at once, each with its
/// place and line, the nearest setting for a misspelt key, and the missing IMAP password.
#[test]
fn check_reports_every_configuration_problem_at_once() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("c.toml"),
        "[bogus]\nx = 1\n\
         [service]\ndomian = \"nhs.net\"\n\
         [mailbox]\nkind = \"imap\"\nhost = \"127.0.0.1\"\nuser = \"connector\"\npoll_seconds = \"ten\"\n\
         [guard]\nmax_updated_share = 1.5\n\
         [[organisation]]\ncode = \"RXX\"\nadmins = [\"admin@rxx.nhs.uk\"]\n\
         [[organisation]]\nname = \"no code\"\n",
    )
    .unwrap();
    let expected = [
        "[bogus] is not a section (line 1): the sections are service, validation,",
        "service.domian is not a setting (line 4): did you mean service.domains?",
        "mailbox.poll_seconds (line 9): invalid type: string \"ten\", expected a whole number",
        "organisation[0].admins is not a setting (line 14): did you mean \
         organisation[0].administrators?",
        "organisation[1] (line 15): code is required",
        "guard.max_updated_share must be between 0 and 1, not 1.5",
    ];
    let password = "mailbox.password must be set for kind = \"imap\"";

    let out = common::run_in(dir.path(), &["--config", "c.toml", "check"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    for want in expected.iter().chain([&password]) {
        assert!(err.contains(want), "{want}\n---\n{err}");
    }
    // In the order of the file, one line each.
    let at = |s: &str| err.find(s).unwrap();
    assert!(at("[bogus]") < at("service.domian") && at("service.domian") < at("organisation[1]"));
    assert_eq!(err.matches("\n  - ").count(), expected.len() + 1, "{err}");
    assert!(
        !dir.path().join("var").exists(),
        "nothing is set up from a bad configuration"
    );

    // A verb that does not use the mailbox names the same problems, without the password.
    let sample = common::root().join("samples/submission-rxx.csv");
    let out = common::run_in(
        dir.path(),
        &["--config", "c.toml", "validate", sample.to_str().unwrap()],
    );
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    for want in expected {
        assert!(err.contains(want), "{want}\n---\n{err}");
    }
    assert!(!err.contains(password), "{err}");
}

/// A deployment with an AD source whose password is not set (it is only needed to sync).
const AD_SOURCE: &str = "[[source]]\nname = \"ad\"\norganisations = [\"RXX\"]\n\
    [source.ldap]\nurl = \"ldaps://127.0.0.1:1\"\nbind_dn = \"CN=svc\"\nbase_dn = \"DC=x\"\n\
    [source.constant]\nOrganisation = \"RXX\"\n";

#[test]
fn organisations_are_added_by_a_verb_and_the_ldap_password_is_needed_only_to_sync() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("c.toml"), AD_SOURCE).unwrap();
    let run = |args: &[&str]| {
        let mut all = vec!["--config", "c.toml"];
        all.extend_from_slice(args);
        common::run_in(dir.path(), &all)
    };
    let text = |out: &std::process::Output| {
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    };

    let csv = common::root().join("samples/directory.csv");
    let import = run(&["directory", "import", csv.to_str().unwrap()]);
    assert!(import.status.success(), "{}", text(&import));

    let none = run(&["directory", "organisations"]);
    assert!(!text(&none).contains("RZZ\t"), "{}", text(&none));
    let added = run(&[
        "directory",
        "add-organisation",
        "rzz",
        "--name",
        "Example Hospitals NHS Trust",
        "--unit",
        "Wards",
    ]);
    assert!(added.status.success(), "{}", text(&added));
    assert!(
        text(&added)
            .contains("organisation RZZ added to the directory as \"Example Hospitals NHS Trust\""),
        "{}",
        text(&added)
    );
    let again = run(&["directory", "add-organisation", "RZZ"]);
    assert!(again.status.success());
    assert!(
        text(&again).contains("RZZ is already in the directory"),
        "{}",
        text(&again)
    );
    let list = run(&["directory", "organisations"]);
    assert!(
        text(&list).contains("RZZ\tExample Hospitals NHS Trust\tunits: Wards"),
        "{}",
        text(&list)
    );
    let bad = run(&["directory", "add-organisation", "R-X"]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(text(&bad).contains("is not an ODS code"), "{}", text(&bad));

    // `check` says what a sync would need.
    let check = run(&["check"]);
    assert_eq!(check.status.code(), Some(2), "{}", text(&check));
    assert!(
        text(&check).contains("FAILED  source ad:")
            && text(&check).contains("PUSH_CONNECTOR__SOURCE__N__LDAP__BIND_PASSWORD"),
        "{}",
        text(&check)
    );
}

#[test]
fn plain_ldap_to_a_host_that_is_not_loopback_is_refused_and_ignored_with_ldaps() {
    let dir = tempfile::tempdir().unwrap();
    // 192.0.2.0/24 is for documentation: nothing is ever sent there, the configuration is
    // refused before any connection.
    let plain = AD_SOURCE.replace(
        "url = \"ldaps://127.0.0.1:1\"",
        "url = \"ldap://192.0.2.10\"\ntls = \"plain\"\nbind_password = \"pw\"",
    );
    std::fs::write(dir.path().join("c.toml"), &plain).unwrap();
    let out = common::run_in(dir.path(), &["--config", "c.toml", "check"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("not a loopback address") && err.contains("allow_plain_over_network"),
        "{err}"
    );
    let allowed = plain.replace(
        "tls = \"plain\"",
        "tls = \"plain\"\nallow_plain_over_network = true",
    );
    std::fs::write(dir.path().join("c.toml"), &allowed).unwrap();
    let out = common::run_in(
        dir.path(),
        &["--config", "c.toml", "directory", "organisations"],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let ignored = AD_SOURCE.replace(
        "url = \"ldaps://127.0.0.1:1\"",
        "url = \"ldaps://127.0.0.1:1\"\ntls = \"plain\"",
    );
    std::fs::write(dir.path().join("c.toml"), &ignored).unwrap();
    let out = common::run_in(dir.path(), &["--config", "c.toml", "check"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("WARNING source \"ad\": ldap.tls = \"plain\" is ignored"),
        "{text}"
    );
}

/// A reader that stops early (`push-connector validate … | head -1`) ends the verb quietly,
/// as for any Unix program: no panic on stderr.
#[test]
fn output_into_a_closed_pipe_ends_quietly() {
    use std::io::Read as _;
    let dir = tempfile::tempdir().unwrap();
    // Enough rows that the output cannot fit in the pipe's buffer.
    let mut csv = String::from("ExternalSyncID,FirstName,LastName,Organisation\n");
    for i in 0..20_000 {
        csv.push_str(&format!("E{i},Ann,Lee,RXX!\n"));
    }
    std::fs::write(dir.path().join("big.csv"), csv).unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_push-connector"))
        .args(["validate", "big.csv"])
        .current_dir(dir.path())
        .env_remove("PUSH_CONNECTOR_CONFIG")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut first = [0u8; 64];
    let _ = stdout.read(&mut first).unwrap();
    drop(stdout);
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    let status = child.wait().unwrap();
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(status.code(), Some(141), "{err}");
}

//! `check` on a deployment with nothing set up says so, plainly, and on a configured one
//! does not.

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

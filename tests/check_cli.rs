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

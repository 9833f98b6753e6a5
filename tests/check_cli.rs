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

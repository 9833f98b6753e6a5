use super::*;
use secrecy::ExposeSecret;

#[test]
fn no_file_gives_the_embedded_defaults() {
    let c = Config::load_with_env(None, &BTreeMap::new()).expect("defaults");
    assert_eq!(c.service.domains, ["nhs.net"]);
    assert!(c.organisations.is_empty());
}

#[test]
fn environment_overrides_file_and_reads_secrets_from_files() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("c.toml");
    std::fs::write(
        &file,
        "[service]\ndomains = [\"nhs.net\"]\n[[organisation]]\ncode = \"RXX\"\n",
    )
    .unwrap();
    let secret = dir.path().join("key");
    std::fs::write(&secret, "s3cret\n").unwrap();
    let env = BTreeMap::from([
        (
            "PUSH_CONNECTOR__SERVICE__DOMAINS".to_owned(),
            "[\"test.nhs.uk\"]".to_owned(),
        ),
        (
            "PUSH_CONNECTOR__ORGANISATIONS__0__CONNECTOR_KEY_FILE".to_owned(),
            secret.display().to_string(),
        ),
    ]);
    let c = Config::load_with_env(Some(&file), &env).expect("loads");
    assert_eq!(c.service.domains, ["test.nhs.uk"]);
    let key = c.organisations[0].connector_key.as_ref().expect("key");
    assert_eq!(key.0.expose_secret(), "s3cret");
    assert_eq!(format!("{key:?}"), "[redacted]");
}

#[test]
fn settings_ending_in_file_are_set_from_the_environment_and_only_secrets_from_files() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("c.toml");
    std::fs::write(
        &file,
        "[[source]]\nname = \"ad\"\norganisations = [\"RXX\"]\n\
         [source.ldap]\nurl = \"ldaps://dc1\"\nbind_dn = \"CN=svc\"\nbase_dn = \"DC=x\"\n\
         bind_password = \"pw\"\n[source.constant]\nOrganisation = \"RXX\"\n",
    )
    .unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, "not read while loading").unwrap();
    let cert = dir.path().join("cert.pem");
    std::fs::write(&cert, "").unwrap();
    let ca_text = ca.display().to_string();
    let env = BTreeMap::from([
        (
            "PUSH_CONNECTOR__SOURCE__0__LDAP__CA_FILE".to_owned(),
            ca_text.clone(),
        ),
        (
            "PUSH_CONNECTOR__DIRECTORY__CA_FILE".to_owned(),
            ca_text.clone(),
        ),
        (
            "PUSH_CONNECTOR__MAILBOX__CA_FILE".to_owned(),
            ca_text.clone(),
        ),
        (
            "PUSH_CONNECTOR__OUTBOX__CA_FILE".to_owned(),
            ca_text.clone(),
        ),
        (
            "PUSH_CONNECTOR__SERVE__TLS_CERT".to_owned(),
            cert.display().to_string(),
        ),
        (
            "PUSH_CONNECTOR__SERVE__TLS_KEY".to_owned(),
            cert.display().to_string(),
        ),
    ]);
    let c = Config::load_with_env(Some(&file), &env).expect("loads");
    let ldap = c.sources[0].ldap.as_ref().expect("ldap");
    assert_eq!(ldap.ca_file.as_deref(), Some(ca.as_path()));
    assert_eq!(c.directory.ca_file.as_deref(), Some(ca.as_path()));
    assert_eq!(c.mailbox.ca_file.as_deref(), Some(ca.as_path()));
    assert_eq!(c.outbox.ca_file.as_deref(), Some(ca.as_path()));
    assert_eq!(c.serve.tls_cert.as_deref(), Some(cert.as_path()));
    assert_eq!(c.serve.tls_key.as_deref(), Some(cert.as_path()));

    // A path is not a secret: its `_FILE` form is refused, and the message says so.
    let env = BTreeMap::from([(
        "PUSH_CONNECTOR__SERVE__TLS_KEY_FILE".to_owned(),
        cert.display().to_string(),
    )]);
    let err = Config::load_with_env(Some(&file), &env)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("tls_key is not a secret")
            && err.contains("PUSH_CONNECTOR__SERVE__TLS_KEY=VALUE"),
        "{err}"
    );
}

/// Every secret setting can be read from a file, and every setting whose name ends in
/// `_file` is set by that name: the lists match the configuration's fields.
#[test]
fn the_lists_of_secret_and_file_settings_match_the_fields() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut secrets = std::collections::BTreeSet::new();
    let mut files = std::collections::BTreeSet::new();
    let mut stack = vec![root];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            for line in std::fs::read_to_string(&path).unwrap().lines() {
                let Some((name, ty)) = line
                    .trim()
                    .strip_prefix("pub ")
                    .and_then(|l| l.split_once(": "))
                else {
                    continue;
                };
                if ty.starts_with("Secret") || ty.starts_with("Option<Secret>") {
                    secrets.insert(name.to_owned());
                }
                if name.ends_with("_file") && ty.contains("PathBuf") {
                    files.insert(name.to_owned());
                }
            }
        }
    }
    let want: std::collections::BTreeSet<String> =
        env::SECRET_SETTINGS.iter().map(|s| s.to_string()).collect();
    assert_eq!(secrets, want);
    let want: std::collections::BTreeSet<String> =
        env::FILE_SETTINGS.iter().map(|s| s.to_string()).collect();
    assert_eq!(files, want);
}

#[test]
fn a_syntax_error_names_its_line_but_does_not_quote_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.toml");
    std::fs::write(&path, "[serve]\ntoken = \"s3cr3t-value\" extra\n").unwrap();
    let err = Config::load_with_env(Some(&path), &BTreeMap::new())
        .unwrap_err()
        .to_string();
    assert!(err.contains("line 2"), "{err}");
    assert!(!err.contains("s3cr3t"), "{err}");
}

#[test]
fn a_source_password_comes_from_the_environment_or_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("c.toml");
    std::fs::write(
        &file,
        "[[source]]\nname = \"ad\"\norganisations = [\"RXX\"]\n\
         [source.ldap]\nurl = \"ldaps://dc1\"\nbind_dn = \"CN=svc\"\nbase_dn = \"DC=x\"\n\
         [source.constant]\nOrganisation = \"RXX\"\n",
    )
    .unwrap();
    // Only a sync needs the password: every other verb loads without it.
    let without = Config::load_with_env(Some(&file), &BTreeMap::new()).expect("loads");
    assert!(
        without.sources[0]
            .ldap
            .as_ref()
            .unwrap()
            .bind_password
            .is_none()
    );
    // A secret file holding digits is still a password, not a number.
    let secret = dir.path().join("pw");
    std::fs::write(&secret, "123456\n").unwrap();
    let env = BTreeMap::from([(
        "PUSH_CONNECTOR__SOURCE__0__LDAP__BIND_PASSWORD_FILE".to_owned(),
        secret.display().to_string(),
    )]);
    let c = Config::load_with_env(Some(&file), &env).expect("loads");
    let ldap = c.sources[0].ldap.as_ref().expect("ldap");
    let pw = ldap.bind_password.as_ref().expect("password");
    assert_eq!(pw.0.expose_secret(), "123456");
}

#[test]
fn all_problems_are_reported_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("c.toml");
    std::fs::write(
        &file,
        "[validation]\nwork_areas = \"/nonexistent\"\n[[organisation]]\ncode = \"R-X\"\n[[organisation]]\ncode = \"r-x\"\n",
    )
    .unwrap();
    let err = Config::load_with_env(Some(&file), &BTreeMap::new()).unwrap_err();
    assert_eq!(err.problems.len(), 4, "{err}");
}

#[test]
fn a_serve_credential_must_name_its_organisations() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("c.toml");
    std::fs::write(
        &file,
        "[serve]\nclients = [{ id = \"c\", secret = \"s\" }, \
         { id = \"d\", secret = \"s\", organisations = [\"*\", \"RXX\"] }]\n",
    )
    .unwrap();
    let env: BTreeMap<String, String> =
        [("PUSH_CONNECTOR__SERVE__TOKEN".to_owned(), "t".to_owned())].into();
    let config = Config::load_with_env(Some(&file), &env).expect("other verbs still start");
    let problems = config.serve_scope_problems();
    let text = problems.join("\n");
    assert_eq!(problems.len(), 3, "{text}");
    assert!(
        text.contains("client c: organisations is required"),
        "{text}"
    );
    assert!(text.contains("token_organisations"), "{text}");
    assert!(text.contains("[\"*\"] for all organisations"), "{text}");
    let mut env = env;
    env.insert(
        "PUSH_CONNECTOR__SERVE__TOKEN_ORGANISATIONS".to_owned(),
        "[\"RXX\", \"ryy\"]".to_owned(),
    );
    std::fs::write(&file, "[serve]\nscan_limit = 0\n").unwrap();
    let err = Config::load_with_env(Some(&file), &env).unwrap_err();
    assert_eq!(err.problems, ["serve.scan_limit must be above 0"]);
    std::fs::write(&file, "").unwrap();
    let c = Config::load_with_env(Some(&file), &env).unwrap();
    assert_eq!(c.serve.token_organisations, ["RXX", "ryy"]);
    assert!(c.serve_scope_problems().is_empty());
}

#[test]
fn the_sample_configuration_loads() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let cwd = std::env::current_dir().unwrap();
    assert_eq!(cwd, root, "tests run in the crate folder");
    let c = Config::load_with_env(Some(&root.join("samples/connector.toml")), &BTreeMap::new())
        .expect("sample loads");
    assert_eq!(c.organisations.len(), 2);
    assert_eq!(c.directory.path, PathBuf::from("var/directory.sqlite"));
    let rxx = c.guard.with(&c.organisations[0].guard);
    assert_eq!(rxx.max_updated_share, 0.3);
    assert_eq!(rxx.floor, 50);
    assert!(!c.organisations[1].create_accounts);
}

#[test]
fn unknown_fields_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("c.toml");
    std::fs::write(&file, "[service]\ndomian = \"x\"\n").unwrap();
    let err = Config::load_with_env(Some(&file), &BTreeMap::new()).unwrap_err();
    assert!(err.to_string().contains("domian"), "{err}");
}

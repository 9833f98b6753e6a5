use std::collections::BTreeMap;
use std::path::Path;

use crate::config::Config;

/// The commented-out `[[source]]` of `samples/connector.toml`, uncommented, is a valid
/// AD source.
#[test]
fn the_sample_ad_source_loads() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let sample = std::fs::read_to_string(root.join("samples/connector.toml")).unwrap();
    let start = sample.find("# [[source]]").expect("the commented example");
    let example: String = sample[start..]
        .lines()
        .take_while(|l| l.starts_with('#'))
        .map(|l| l.strip_prefix("# ").unwrap_or(l.trim_start_matches('#')))
        .map(|l| format!("{l}\n"))
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("c.toml");
    std::fs::write(&file, format!("{}\n{example}", &sample[..start])).unwrap();
    let env = BTreeMap::from([(
        "PUSH_CONNECTOR__SOURCE__0__LDAP__BIND_PASSWORD".to_owned(),
        "secret".to_owned(),
    )]);
    let c = Config::load_with_env(Some(&file), &env).expect("the example loads");
    let source = c.source("rxx-ad").expect("the source");
    let ldap = source.ldap.as_ref().expect("[source.ldap]");
    assert_eq!(ldap.base_dn, "OU=Staff,DC=rxx,DC=nhs,DC=uk");
    assert_eq!(source.write_back["ID"], "info");
    assert!(super::filter::check(ldap).is_ok());
}

//! LDAP filters and values for the AD source, as pure functions.
//!
//! In: the `[source.ldap]` scope (filter as written, `match` equalities), a USN to read from,
//! or anchors to look up. Out: search filters in which every value from configuration or
//! input is escaped (RFC 4515), so text such as `*)(objectClass=*` matches itself and
//! nothing else; and `objectGUID` values rendered as GUID strings and back.

use ldap3::ldap_escape;
use uuid::Uuid;

use crate::sources::config::LdapConfig;

/// Anchors per OR filter when entries are looked up by anchor.
pub const ANCHORS_PER_FILTER: usize = 100;

/// Whether an attribute holds a GUID in binary (rendered as a GUID string).
pub fn is_guid_attribute(attribute: &str) -> bool {
    attribute.eq_ignore_ascii_case("objectGUID")
}

/// A 16-byte `objectGUID` value as AD writes it (`{…}` without braces, lower case):
/// the first three groups are little-endian in the binary value.
pub fn guid_text(bytes: &[u8]) -> Option<String> {
    let bytes: [u8; 16] = bytes.try_into().ok()?;
    Some(Uuid::from_bytes_le(bytes).hyphenated().to_string())
}

/// The filter value matching a GUID string's binary `objectGUID` (`\xx` per byte); `None`
/// for text that is not a GUID.
pub fn guid_value(text: &str) -> Option<String> {
    let uuid = Uuid::parse_str(text.trim()).ok()?;
    Some(
        uuid.to_bytes_le()
            .iter()
            .map(|b| format!("\\{b:02x}"))
            .collect(),
    )
}

/// Attribute names the configuration may use in filters: a name or OID, with options.
fn is_attribute_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | ';'))
}

/// Problems with the names the filters are built from (the values are always escaped).
pub fn check(config: &LdapConfig) -> Result<(), String> {
    let bad: Vec<&str> = std::iter::once(config.anchor.as_str())
        .chain(config.matches.keys().map(String::as_str))
        .filter(|name| !is_attribute_name(name))
        .collect();
    if !bad.is_empty() {
        return Err(format!(
            "not attribute names (ldap.anchor and the keys of ldap.match): \"{}\"",
            bad.join("\", \"")
        ));
    }
    if ldap3::parse_filter(configured(config)).is_err() {
        return Err(format!(
            "ldap.filter {:?} is not an LDAP filter (RFC 4515: parentheses balanced, each \
             item attribute=value, & | ! before their items)",
            config.filter
        ));
    }
    Ok(())
}

/// The configured filter, in parentheses when written without.
fn configured(config: &LdapConfig) -> String {
    let f = config.filter.trim();
    if f.starts_with('(') {
        f.to_owned()
    } else {
        format!("({f})")
    }
}

/// The scope and the `match` equalities, then `extra`, all ANDed.
fn and(config: &LdapConfig, extra: &str) -> String {
    let mut filter = format!("(&{}", configured(config));
    for (attribute, value) in &config.matches {
        filter.push_str(&format!("({attribute}={})", ldap_escape(value.as_str())));
    }
    filter.push_str(extra);
    filter.push(')');
    filter
}

/// The filter of a read: everything in scope, or only what changed at or after `from_usn`.
pub fn search(config: &LdapConfig, from_usn: Option<u64>) -> String {
    match from_usn {
        Some(usn) => and(config, &format!("(uSNChanged>={usn})")),
        None => and(config, ""),
    }
}

/// Filters finding the entries in scope whose anchor is one of `anchors`, a batch of
/// anchors each. Text that cannot be an `objectGUID` matches nothing, so it is left out.
pub fn anchors(config: &LdapConfig, anchors: &[String]) -> Vec<String> {
    any_of(config, &config.anchor, anchors)
}

/// Filters finding the entries in scope with these `objectGUID`s (GUID strings).
pub fn guids(config: &LdapConfig, guids: &[String]) -> Vec<String> {
    any_of(config, "objectGUID", guids)
}

fn any_of(config: &LdapConfig, attribute: &str, texts: &[String]) -> Vec<String> {
    let values: Vec<String> = texts
        .iter()
        .filter_map(|a| {
            if is_guid_attribute(attribute) {
                guid_value(a)
            } else {
                Some(ldap_escape(a.as_str()).into_owned())
            }
        })
        .collect();
    values
        .chunks(ANCHORS_PER_FILTER)
        .map(|chunk| {
            let any: String = chunk.iter().map(|v| format!("({attribute}={v})")).collect();
            and(config, &format!("(|{any})"))
        })
        .collect()
}

/// The configured filter alone (a DirSync search: the `match` equalities are applied when
/// the changed entries are read whole).
pub fn people(config: &LdapConfig) -> String {
    configured(config)
}

/// Whether `dn` is `base` or below it (case and spaces around commas aside).
pub fn within(dn: &str, base: &str) -> bool {
    let plain = |s: &str| {
        s.split(',')
            .map(|p| p.trim().to_ascii_lowercase())
            .collect::<Vec<_>>()
            .join(",")
    };
    let (dn, base) = (plain(dn), plain(base));
    dn == base || dn.ends_with(&format!(",{base}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(extra: &str) -> LdapConfig {
        toml::from_str(&format!(
            "url = \"ldap://dc\"\nbind_dn = \"CN=svc\"\nbase_dn = \"DC=x\"\n{extra}"
        ))
        .expect("config")
    }

    #[test]
    fn guids_render_as_ad_writes_them_and_back() {
        // objectGUID {7afc3813-4131-4f1d-abb7-3b2a7adf9bab} as the DC sends it.
        let bytes = [
            0x13, 0x38, 0xfc, 0x7a, 0x31, 0x41, 0x1d, 0x4f, 0xab, 0xb7, 0x3b, 0x2a, 0x7a, 0xdf,
            0x9b, 0xab,
        ];
        let text = guid_text(&bytes).expect("16 bytes");
        assert_eq!(text, "7afc3813-4131-4f1d-abb7-3b2a7adf9bab");
        assert_eq!(
            guid_value("7AFC3813-4131-4F1D-ABB7-3B2A7ADF9BAB").as_deref(),
            Some("\\13\\38\\fc\\7a\\31\\41\\1d\\4f\\ab\\b7\\3b\\2a\\7a\\df\\9b\\ab")
        );
        assert_eq!(guid_text(&bytes[..15]), None);
        assert_eq!(guid_value("*)(objectClass=*"), None);
    }

    #[test]
    fn match_values_and_anchors_are_taken_literally() {
        let c = config("[match]\ndepartment = \"Ward *)(3\"\ncompany = \"*)(objectClass=*\"");
        assert_eq!(
            search(&c, None),
            "(&(&(objectCategory=person)(objectClass=user))\
             (company=\\2a\\29\\28objectClass=\\2a)(department=Ward \\2a\\29\\283))"
        );
        assert!(search(&c, Some(42)).ends_with("(uSNChanged>=42))"));
        // Not a GUID: no filter at all, so nothing is read.
        assert!(anchors(&c, &["*)(".to_owned(), "*".to_owned()]).is_empty());
        let by_id = config("anchor = \"employeeID\"\nfilter = \"objectClass=user\"");
        assert_eq!(
            anchors(&by_id, &["E1".to_owned(), "*)(".to_owned()]),
            ["(&(objectClass=user)(|(employeeID=E1)(employeeID=\\2a\\29\\28)))"]
        );
    }

    #[test]
    fn anchors_are_looked_up_in_batches() {
        let c = config("");
        let many: Vec<String> = (0..250)
            .map(|i| format!("00000000-0000-4000-8000-{i:012}"))
            .collect();
        let filters = anchors(&c, &many);
        assert_eq!(filters.len(), 3);
        assert_eq!(filters[2].matches("(objectGUID=").count(), 50);
    }

    #[test]
    fn within_the_base() {
        let base = "OU=Staff, DC=x";
        assert!(within("CN=A,OU=Staff,DC=x", base));
        assert!(within("ou=staff,dc=x", base));
        assert!(!within("CN=A,OU=OtherStaff,DC=x", base));
        assert!(!within("CN=A,OU=Staff,DC=y", base));
    }

    #[test]
    fn attribute_names_in_configuration_are_checked() {
        assert!(check(&config("[match]\ndepartment = \"x\"")).is_ok());
        let bad = check(&config("anchor = \"x)(cn=*\"\n[match]\n\"a=b\" = \"x\""));
        assert_eq!(
            bad.unwrap_err(),
            "not attribute names (ldap.anchor and the keys of ldap.match): \"x)(cn=*\", \"a=b\""
        );
    }

    #[test]
    fn a_broken_filter_is_named() {
        for good in [
            "(&(objectCategory=person)(objectClass=user))",
            "objectClass=user",
            "(&(objectClass=user)(!(userAccountControl:1.2.840.113556.1.4.803:=2)))",
        ] {
            assert!(
                check(&config(&format!("filter = {good:?}"))).is_ok(),
                "{good}"
            );
        }
        for bad in [
            "(&(objectClass=user)",
            "(objectClass=user))",
            "(&(objectClass=user)(cn=a(b))",
            "objectClass",
        ] {
            let why = check(&config(&format!("filter = {bad:?}"))).unwrap_err();
            assert!(
                why.contains(&format!("ldap.filter {bad:?} is not an LDAP filter")),
                "{why}"
            );
        }
    }
}

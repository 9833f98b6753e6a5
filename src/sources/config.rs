//! The `[[source]]` sections: directories and databases a sync reads staff from.
//!
//! In: TOML (through the configuration's loader). Out: one [`SourceConfig`] per source (its
//! connection under `[source.ldap]` or `[source.sql]`, the attribute mapping, the write-back
//! targets, the schedule), and the problems serde cannot express, for the config's list.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;

use crate::config::secret::Secret;
use crate::model::Field;

/// One source of a directory sync.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceConfig {
    /// The name `sync NAME` and the logs use (letters, digits, `-` and `_`).
    pub name: String,
    /// The organisations (ODS codes) this source may speak for; rows naming any other are
    /// refused.
    pub organisations: Vec<String>,
    /// Whether a person with no account gets one. Off by default for sync sources.
    #[serde(default)]
    pub create_accounts: bool,
    /// When the `run` service syncs this source: cron syntax (`min hour day month weekday`,
    /// or with seconds first), in `timezone`. Default: 01:30 every night.
    #[serde(default = "default_schedule")]
    pub schedule: String,
    /// Time zone of `schedule` (IANA name).
    #[serde(default = "default_timezone")]
    pub timezone: String,
    /// Allow a schedule that fires during 08:00–17:00 (refused by default).
    #[serde(default)]
    pub allow_working_hours: bool,
    /// An LDAP directory (Active Directory).
    pub ldap: Option<LdapConfig>,
    /// A SQL table or view.
    pub sql: Option<SqlConfig>,
    /// Person field (`FirstName`, …, as in the new file layout) → source attribute or column.
    #[serde(default)]
    pub map: BTreeMap<String, String>,
    /// Person field → a constant value (for example `Organisation = "RXX"`).
    #[serde(default)]
    pub constant: BTreeMap<String, String>,
    /// `ID`, `ExternalSyncID` or `Email` → the attribute or column the portal's value is
    /// written back to (only when it differs).
    #[serde(default)]
    pub write_back: BTreeMap<String, String>,
}

fn default_schedule() -> String {
    "30 1 * * *".to_owned()
}

fn default_timezone() -> String {
    "Europe/London".to_owned()
}

/// How the LDAP connection is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LdapTls {
    /// `ldaps://` URLs are TLS from the first byte; `ldap://` URLs upgrade with StartTLS.
    #[default]
    Auto,
    /// No encryption on an `ldap://` URL: loopback test servers only.
    Plain,
}

/// How a delta run finds what changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LdapDelta {
    /// `uSNChanged` above the high-water mark of the last run (any account that can read).
    #[default]
    Usn,
    /// The DirSync control (needs "Replicating Directory Changes").
    Dirsync,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LdapConfig {
    /// `ldaps://host:636` or `ldap://host:389` (StartTLS unless `tls = "plain"`).
    pub url: String,
    /// `auto` (default) or `plain` (an unencrypted `ldap://` URL: refused for a host that is
    /// not loopback unless `allow_plain_over_network`; ignored with `ldaps://`).
    #[serde(default)]
    pub tls: LdapTls,
    /// Allow `tls = "plain"` to a host that is not loopback (the password and the staff
    /// data then cross the network unencrypted). Off by default.
    #[serde(default)]
    pub allow_plain_over_network: bool,
    /// PEM file of the CA that signed the server's certificate; the system's roots when unset.
    pub ca_file: Option<PathBuf>,
    /// The service account's DN (simple bind).
    pub bind_dn: String,
    /// Its password (`PUSH_CONNECTOR__SOURCE__0__LDAP__BIND_PASSWORD` or `..._FILE`).
    pub bind_password: Option<Secret>,
    /// Where the people are.
    pub base_dn: String,
    /// Which entries are people (an LDAP filter, used as written).
    #[serde(default = "default_filter")]
    pub filter: String,
    /// Attribute → value equalities every entry must also match; the values are escaped, so
    /// any text is taken literally.
    #[serde(default, rename = "match")]
    pub matches: BTreeMap<String, String>,
    /// The attribute that identifies an entry for good (rendered as text; `objectGUID` as a
    /// GUID string).
    #[serde(default = "default_anchor")]
    pub anchor: String,
    /// Entries per page of the paged search.
    #[serde(default = "default_page_size")]
    pub page_size: i32,
    /// `usn` (default) or `dirsync`.
    #[serde(default)]
    pub delta: LdapDelta,
    /// Seconds to wait for the server on each operation.
    #[serde(default = "default_timeout")]
    pub timeout_seconds: u64,
}

fn default_filter() -> String {
    "(&(objectCategory=person)(objectClass=user))".to_owned()
}

fn default_anchor() -> String {
    "objectGUID".to_owned()
}

fn default_page_size() -> i32 {
    500
}

fn default_timeout() -> u64 {
    60
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SqlConfig {
    /// `postgres://…`, `mysql://…` (MariaDB too) or `sqlite://…`. Put the password in
    /// `PUSH_CONNECTOR__SOURCE__0__SQL__URL` (or `..._FILE`) rather than in the file.
    pub url: Secret,
    /// The table or view people are read from (`schema.table` allowed).
    pub table: String,
    /// The table written back to, when `table` is a view that cannot be updated.
    pub write_table: Option<String>,
    /// The column that identifies a row for good.
    pub anchor: String,
    /// A column that grows whenever a row changes (`updated_at`, a row version): delta runs
    /// read only rows above the last run's highest value. Without it every run is full.
    pub change_column: Option<String>,
    /// Extra condition on the rows (SQL, used as written: it is configuration, not input).
    #[serde(rename = "where")]
    pub condition: Option<String>,
    /// Seconds to wait for the database on each statement.
    #[serde(default = "default_timeout")]
    pub timeout_seconds: u64,
}

impl SourceConfig {
    /// The mapped field for each mapping key; unknown names are problems (`NewAccount` is
    /// not a person field, and is left to the caller).
    pub fn fields(
        names: &BTreeMap<String, String>,
        section: &str,
        problems: &mut Vec<String>,
    ) -> Vec<(Field, String)> {
        names
            .iter()
            .filter(|(name, _)| !name.eq_ignore_ascii_case(NEW_ACCOUNT))
            .filter_map(|(name, value)| match field_named(name) {
                Some(f) => Some((f, value.clone())),
                None => {
                    problems.push(format!(
                        "{section}: \"{name}\" is not a person field (use the new layout's \
                         column names, e.g. FirstName)"
                    ));
                    None
                }
            })
            .collect()
    }
}

/// The mapping key of the attribute that says an entry is a person with no account yet
/// (`yes`), although an account of the same name exists: only `map` may give it.
pub const NEW_ACCOUNT: &str = "NewAccount";

/// The attribute `map` gives `NewAccount`, its key in any case.
pub fn mapped_new_account(names: &BTreeMap<String, String>) -> Option<&String> {
    names
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(NEW_ACCOUNT))
        .map(|(_, v)| v)
}

/// The person field a mapping key names, in any case (an environment variable's key comes
/// in lower case: `PUSH_CONNECTOR__SOURCE__0__WRITE_BACK__EXTERNALSYNCID`).
pub fn field_named(name: &str) -> Option<Field> {
    Field::ALL
        .into_iter()
        .find(|f| f.name().eq_ignore_ascii_case(name))
}

/// The value a mapping gives a field (`map`, `constant` or `write_back`), its key in any
/// case.
pub fn mapped(names: &BTreeMap<String, String>, field: Field) -> Option<&String> {
    names
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(field.name()))
        .map(|(_, v)| v)
}

/// Problems of the `[[source]]` sections' settings, for the configuration's list (their
/// schedules are checked by `sources::schedule`).
pub fn problems(sources: &[SourceConfig]) -> Vec<String> {
    let mut problems = Vec::new();
    let mut names = std::collections::HashSet::new();
    for s in sources {
        let at = format!("source \"{}\"", s.name);
        if s.name.is_empty()
            || !s
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            problems.push(format!(
                "{at}: the name must be letters, digits, '-' or '_'"
            ));
        }
        if !names.insert(s.name.clone()) {
            problems.push(format!("{at} is configured twice"));
        }
        if s.organisations.is_empty() {
            problems.push(format!(
                "{at}: organisations must list the ODS codes it may speak for"
            ));
        }
        match (&s.ldap, &s.sql) {
            (Some(_), Some(_)) => problems.push(format!(
                "{at}: give either [source.ldap] or [source.sql], not both"
            )),
            (None, None) => problems.push(format!("{at}: needs [source.ldap] or [source.sql]")),
            (Some(l), None) => {
                if !(l.url.starts_with("ldap://") || l.url.starts_with("ldaps://")) {
                    problems.push(format!(
                        "{at}: ldap.url must start with ldap:// or ldaps://"
                    ));
                }
                if l.tls == LdapTls::Plain
                    && l.url.starts_with("ldap://")
                    && !l.allow_plain_over_network
                    && !is_loopback_url(&l.url)
                {
                    problems.push(format!(
                        "{at}: ldap.tls = \"plain\" sends the password and the staff data \
                         unencrypted, and {} is not a loopback address: use ldaps:// or \
                         StartTLS (tls = \"auto\"), or set ldap.allow_plain_over_network = \
                         true",
                        l.url
                    ));
                }
                if l.page_size <= 0 {
                    problems.push(format!("{at}: ldap.page_size must be above 0"));
                }
            }
            (None, Some(_)) => {}
        }
        let map = SourceConfig::fields(&s.map, &format!("{at} map"), &mut problems);
        let constant = SourceConfig::fields(&s.constant, &format!("{at} constant"), &mut problems);
        for (section, names) in [("constant", &s.constant), ("write_back", &s.write_back)] {
            if mapped_new_account(names).is_some() {
                problems.push(format!(
                    "{at} {section}: NewAccount can only be mapped to an attribute or column \
                     (map.NewAccount), whose value yes says an entry is a new person"
                ));
            }
        }
        for (f, _) in &map {
            if constant.iter().any(|(c, _)| c == f) {
                problems.push(format!("{at}: {} is both mapped and constant", f.name()));
            }
        }
        if !map
            .iter()
            .chain(&constant)
            .any(|(f, _)| *f == Field::Organisation)
        {
            problems.push(format!(
                "{at}: map or constant must give Organisation (for one organisation: \
                 constant.Organisation = \"RXX\")"
            ));
        }
        for (f, _) in
            SourceConfig::fields(&s.write_back, &format!("{at} write_back"), &mut problems)
        {
            if !matches!(f, Field::Id | Field::ExternalSyncId | Field::Email) {
                problems.push(format!(
                    "{at}: write_back can only hold ID, ExternalSyncID and Email, not {}",
                    f.name()
                ));
            }
        }
    }
    problems
}

/// What works but is probably not what the deployment means, for `check` and the logs.
pub fn warnings(sources: &[SourceConfig]) -> Vec<String> {
    sources
        .iter()
        .filter_map(|s| {
            let l = s.ldap.as_ref()?;
            (l.tls == LdapTls::Plain && l.url.to_ascii_lowercase().starts_with("ldaps://")).then(
                || {
                    format!(
                        "source \"{}\": ldap.tls = \"plain\" is ignored: {} is TLS from the \
                         first byte",
                        s.name, l.url
                    )
                },
            )
        })
        .collect()
}

/// Whether an `ldap://` or `ldaps://` URL names a loopback host (`localhost`, 127.0.0.0/8,
/// `::1`).
pub fn is_loopback_url(url: &str) -> bool {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split('/').next().unwrap_or_default();
    let authority = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or_default(),
        None => authority.split(':').next().unwrap_or_default(),
    };
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_urls_are_told_apart() {
        for (url, loopback) in [
            ("ldap://127.0.0.1:389", true),
            ("ldap://127.8.9.10", true),
            ("ldap://localhost", true),
            ("ldap://[::1]:389/", true),
            ("ldap://dc1.rxx.nhs.uk", false),
            ("ldap://10.0.0.5:389", false),
            ("ldap://127.0.0.1.example.com", false),
            ("ldap://[2001:db8::1]", false),
            ("ldap://localhost.evil.example", false),
        ] {
            assert_eq!(is_loopback_url(url), loopback, "{url}");
        }
    }

    fn source(url: &str, extra: &str) -> SourceConfig {
        toml::from_str(&format!(
            "name = \"ad\"\norganisations = [\"RXX\"]\n[constant]\nOrganisation = \"RXX\"\n\
             [ldap]\nurl = \"{url}\"\nbind_dn = \"CN=svc\"\nbase_dn = \"DC=x\"\n{extra}"
        ))
        .expect("source")
    }

    #[test]
    fn plain_ldap_is_for_loopback_unless_allowed_and_ignored_with_ldaps() {
        let plain = "tls = \"plain\"\n";
        let p = problems(&[source("ldap://dc1.rxx.nhs.uk", plain)]);
        assert!(
            p.iter().any(|p| p.contains("not a loopback address")),
            "{p:?}"
        );
        assert!(problems(&[source("ldap://127.0.0.1:389", plain)]).is_empty());
        assert!(problems(&[source("ldap://dc1.rxx.nhs.uk", "")]).is_empty());
        let allowed = format!("{plain}allow_plain_over_network = true\n");
        assert!(problems(&[source("ldap://dc1.rxx.nhs.uk", &allowed)]).is_empty());
        let ignored = source("ldaps://dc1.rxx.nhs.uk", plain);
        assert!(problems(std::slice::from_ref(&ignored)).is_empty());
        let w = warnings(&[ignored]);
        assert!(w.len() == 1 && w[0].contains("is ignored"), "{w:?}");
        assert!(warnings(&[source("ldap://127.0.0.1", plain)]).is_empty());
    }

    #[test]
    fn new_account_may_be_mapped_to_an_attribute_and_nothing_else() {
        let mut s = source("ldap://127.0.0.1", "");
        s.map
            .insert("newaccount".to_owned(), "extensionAttribute9".to_owned());
        assert!(problems(std::slice::from_ref(&s)).is_empty());
        assert_eq!(
            mapped_new_account(&s.map).map(String::as_str),
            Some("extensionAttribute9")
        );
        s.constant.insert("NewAccount".to_owned(), "yes".to_owned());
        s.write_back
            .insert("NewAccount".to_owned(), "info".to_owned());
        let p = problems(&[s]);
        assert_eq!(p.len(), 2, "{p:?}");
        assert!(
            p[0].starts_with("source \"ad\" constant: NewAccount can only be mapped"),
            "{p:?}"
        );
    }
}

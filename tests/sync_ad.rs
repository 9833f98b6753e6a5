//! Directory sync from Active Directory: the AD source and the sync driver against a real
//! Samba AD DC, as `scripts/ad/up.sh` starts it on loopback. Endpoints come from the `AD_*`
//! variables that `scripts/test.sh` sets; without them these tests fail and say so.
//!
//! The tests run in parallel against one DC. Each makes its own OU below `OU=Staff` (where
//! the service account may write `info`, `employeeID` and `mail`) with its own users, and
//! removes it at the end; one reads the 1,000 seeded users of `OU=Staff` itself, which it
//! tells apart from the others' users by their ODS code attribute.

// Test code: a failure is a panic.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;

use chrono::Utc;
use ldap3::{Ldap, LdapConnAsync, Mod, Scope, SearchEntry};

mod common;

use push_connector::apply::{Context, SequenceMinter};
use push_connector::config::Config;
use push_connector::directory::Account;
use push_connector::directory::local::LocalDirectory;
use push_connector::model::Field;
use push_connector::report::RowResultKind;
use push_connector::sources::config::LdapConfig;
use push_connector::sources::ldap::LdapSource;
use push_connector::sources::{Cursor, Source, SourceError, WriteBack};
use push_connector::store::StateDb;
use push_connector::store::SyncStore;
use push_connector::sync::mapping::Mapping;
use push_connector::sync::{self, SyncOptions, Synced};
use push_connector::validate::Rules;

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!(
            "{name} is not set: these tests need the test Active Directory. Run them with \
             scripts/test.sh, or: scripts/ad/install.sh && scripts/ad/up.sh >/dev/null && \
             source /tmp/push-connector-ad/env.sh"
        )
    })
}

fn staff_ou() -> String {
    format!("OU=Staff,{}", env("AD_BASE_DN"))
}

fn random() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..8].to_owned()
}

// ---------------------------------------------------------------------------------------
// The DC as its administrator sees it.

/// A connection bound as the domain's administrator.
async fn admin() -> Ldap {
    let (conn, mut ldap) = LdapConnAsync::new(&env("AD_URL")).await.expect("connect");
    tokio::spawn(conn.drive());
    ldap.simple_bind(&env("AD_ADMIN_DN"), &env("AD_ADMIN_PASSWORD"))
        .await
        .expect("bind")
        .success()
        .expect("admin bind");
    ldap
}

/// An entry's attributes as the administrator reads them (names in lower case; objectGUID
/// as a GUID string).
async fn read_as_admin(ldap: &mut Ldap, dn: &str) -> HashMap<String, Vec<String>> {
    let (entries, _) = ldap
        .search(dn, Scope::Base, "(objectClass=*)", vec!["*", "objectGUID"])
        .await
        .expect("search")
        .success()
        .expect("entry");
    let entry = SearchEntry::construct(entries.into_iter().next().expect("one entry"));
    attributes(entry)
}

fn attributes(entry: SearchEntry) -> HashMap<String, Vec<String>> {
    let mut values: HashMap<String, Vec<String>> = entry
        .attrs
        .into_iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), v))
        .collect();
    for (k, v) in entry.bin_attrs {
        if k.eq_ignore_ascii_case("objectGUID") {
            let guid: [u8; 16] = v[0].clone().try_into().expect("16 bytes");
            let text = uuid::Uuid::from_bytes_le(guid).hyphenated().to_string();
            values.insert("objectguid".to_owned(), vec![text]);
        }
    }
    if let Some(g) = values.get_mut("objectguid")
        && g[0].len() == 16
    {
        // A GUID whose bytes happen to be UTF-8.
        let guid: [u8; 16] = g[0].as_bytes().try_into().expect("16 bytes");
        g[0] = uuid::Uuid::from_bytes_le(guid).hyphenated().to_string();
    }
    values
}

fn first<'a>(values: &'a HashMap<String, Vec<String>>, name: &str) -> Option<&'a str> {
    values.get(name).and_then(|v| v.first()).map(String::as_str)
}

/// An OU of one test's own, below `OU=Staff`.
struct TestOu {
    dn: String,
    tag: String,
    admin: Ldap,
}

/// A test user: CN parts and extra attributes.
struct User<'a> {
    given: &'a str,
    sn: &'a str,
    extra: &'a [(&'a str, &'a str)],
}

fn user<'a>(given: &'a str, sn: &'a str, extra: &'a [(&'a str, &'a str)]) -> User<'a> {
    User { given, sn, extra }
}

impl TestOu {
    async fn new(name: &str) -> TestOu {
        let tag = random();
        let dn = format!("OU={name}-{tag},{}", staff_ou());
        let mut admin = admin().await;
        admin
            .add(
                &dn,
                vec![("objectClass", HashSet::from(["top", "organizationalUnit"]))],
            )
            .await
            .expect("add OU")
            .success()
            .expect("OU added");
        TestOu { dn, tag, admin }
    }

    /// Adds users (enabled, no password, as the seeded ones) and returns their DNs.
    async fn add_users(&mut self, users: &[User<'_>]) -> Vec<String> {
        let mut dns = Vec::new();
        for (i, u) in users.iter().enumerate() {
            let dn = format!("CN={} {},{}", u.given, u.sn, self.dn);
            let account = format!("t{}{i:03}", self.tag);
            let mut attrs: Vec<(&str, HashSet<&str>)> = vec![
                (
                    "objectClass",
                    HashSet::from(["top", "person", "organizationalPerson", "user"]),
                ),
                ("sAMAccountName", HashSet::from([account.as_str()])),
                ("userAccountControl", HashSet::from(["544"])),
                ("givenName", HashSet::from([u.given])),
                ("sn", HashSet::from([u.sn])),
            ];
            for (a, v) in u.extra {
                attrs.push((a, HashSet::from([*v])));
            }
            self.admin
                .add(&dn, attrs)
                .await
                .expect("add user")
                .success()
                .unwrap_or_else(|e| panic!("adding {dn}: {e}"));
            dns.push(dn);
        }
        dns
    }

    /// Replaces (or, with "", removes) attributes of an entry.
    async fn set(&mut self, dn: &str, values: &[(&str, &str)]) {
        let mods = values
            .iter()
            .map(|(a, v)| {
                let set = if v.is_empty() {
                    HashSet::new()
                } else {
                    HashSet::from([*v])
                };
                Mod::Replace(*a, set)
            })
            .collect();
        self.admin
            .modify(dn, mods)
            .await
            .expect("modify")
            .success()
            .unwrap_or_else(|e| panic!("modifying {dn}: {e}"));
    }

    async fn read(&mut self, dn: &str) -> HashMap<String, Vec<String>> {
        read_as_admin(&mut self.admin, dn).await
    }

    /// Removes the OU and everything below it (the tree-delete control).
    async fn remove(mut self) {
        let tree_delete = ldap3::controls::RawControl {
            ctype: "1.2.840.113556.1.4.805".to_owned(),
            crit: true,
            val: None,
        };
        let done = self
            .admin
            .with_controls(tree_delete)
            .delete(&self.dn)
            .await
            .expect("delete");
        assert_eq!(done.rc, 0, "removing {}: {done}", self.dn);
    }
}

// ---------------------------------------------------------------------------------------
// A connector deployment with one `[[source]]`.

/// What a test varies in the configuration.
#[derive(Clone)]
struct Spec {
    url: String,
    base_dn: String,
    /// More `[source.ldap]` lines.
    ldap: String,
    /// `[source.map]`, `[source.constant]` and `[source.write_back]` lines.
    map: String,
    constant: String,
    write_back: String,
    guard: String,
}

impl Spec {
    fn new(base_dn: &str) -> Spec {
        Spec {
            url: env("AD_URL"),
            base_dn: base_dn.to_owned(),
            ldap: String::new(),
            map: "FirstName = \"givenName\"\nLastName = \"sn\"\nJobTitle = \"title\"\n\
                  OfficePhone = \"telephoneNumber\"\n"
                .to_owned(),
            constant: "Organisation = \"RXX\"\n".to_owned(),
            write_back: "ID = \"info\"\nEmail = \"mail\"\n".to_owned(),
            guard: "floor = 100000\n".to_owned(),
        }
    }
}

struct Deployment {
    dir: tempfile::TempDir,
    config: Config,
    directory: LocalDirectory,
    state: StateDb,
    store: SyncStore,
    minter: SequenceMinter,
    runs: u32,
}

impl Deployment {
    async fn new(spec: &Spec) -> Deployment {
        let dir = tempfile::tempdir().unwrap();
        let config = configure(&dir, spec);
        let directory = LocalDirectory::open(&config.directory.path).await.unwrap();
        directory.add_organisation("RXX", &[]).await.unwrap();
        let state = StateDb::open(&config.service.state_dir).await.unwrap();
        let store = SyncStore::open(&config.service.state_dir).await.unwrap();
        Deployment {
            dir,
            config,
            directory,
            state,
            store,
            // Portal IDs of their own, so runs against the same DC never write equal values.
            minter: SequenceMinter {
                prefix: format!("P{}-", random()),
                next: 0,
            },
            runs: 0,
        }
    }

    fn reconfigure(&mut self, spec: &Spec) {
        self.config = configure(&self.dir, spec);
    }

    fn ldap(&self) -> &LdapConfig {
        self.config.sources[0].ldap.as_ref().unwrap()
    }

    async fn sync(&mut self, options: SyncOptions) -> Synced {
        self.runs += 1;
        let mut source = LdapSource::open(self.ldap())
            .await
            .expect("open the source");
        let rules = Rules::from_config(&self.config).unwrap();
        let progress = |_: u64, _: u64| {};
        let ctx = Context {
            directory: &self.directory,
            state: &self.state,
            passwords: self.dir.path().join("passwords.csv"),
            progress: &progress,
        };
        let run = format!("20261123-sync{:03}", self.runs);
        sync::sync(
            &self.config,
            &self.config.sources[0],
            &mut source,
            &rules,
            &ctx,
            &self.store,
            &options,
            &run,
            &mut self.minter,
            Utc::now(),
        )
        .await
        .expect("sync")
    }

    async fn accounts(&self) -> Vec<Account> {
        self.directory.all().await.unwrap()
    }

    async fn cursor(&self) -> Option<Cursor> {
        self.store.cursor("ad").await.unwrap()
    }
}

/// A deployment's configuration. Pages of 200: the seeded users take five (Samba has no
/// page limit of its own, so this is what tests the paging).
fn configure(dir: &tempfile::TempDir, spec: &Spec) -> Config {
    let codes = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("samples/codes");
    let d = dir.path().display();
    let text = format!(
        "[service]\nstate_dir = \"{d}/state\"\n\
         [validation]\ntitles = \"{c}/titles.txt\"\n\
         [directory]\nbackend = \"local\"\npath = \"{d}/directory.sqlite\"\n\
         [guard]\n{guard}\
         [[organisation]]\ncode = \"RXX\"\n\
         [[source]]\nname = \"ad\"\norganisations = [\"RXX\"]\ncreate_accounts = true\n\
         [source.ldap]\nurl = \"{url}\"\nca_file = \"{ca}\"\nbind_dn = \"{bind}\"\n\
         bind_password = \"{password}\"\nbase_dn = \"{base}\"\npage_size = 200\n{ldap}\
         [source.map]\n{map}[source.constant]\n{constant}[source.write_back]\n{write_back}",
        c = codes.display(),
        guard = spec.guard,
        url = spec.url,
        ca = env("AD_CA_FILE"),
        bind = env("AD_BIND_DN"),
        password = env("AD_BIND_PASSWORD"),
        base = spec.base_dn,
        ldap = spec.ldap,
        map = spec.map,
        constant = spec.constant,
        write_back = spec.write_back,
    );
    std::fs::create_dir_all(dir.path().join("state")).unwrap();
    let path = dir.path().join("connector.toml");
    std::fs::write(&path, text).unwrap();
    Config::load_with_env(Some(&path), &BTreeMap::new()).expect("configuration")
}

/// The rows a sync reported, as (Source column, result).
fn rows(synced: &Synced) -> Vec<(String, RowResultKind)> {
    synced
        .reports
        .iter()
        .map(|r| {
            let row = &synced.submission.rows[(r.line - 2) as usize];
            (row.cells.get(0).unwrap_or_default().to_owned(), r.result)
        })
        .collect()
}

fn count(synced: &Synced, kind: RowResultKind) -> usize {
    synced.reports.iter().filter(|r| r.result == kind).count()
}

fn by_external(accounts: &[Account]) -> HashMap<String, Account> {
    accounts
        .iter()
        .map(|a| (a.get(Field::ExternalSyncId).unwrap().to_owned(), a.clone()))
        .collect()
}

// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn the_seeded_staff_sync_once_write_back_and_do_not_come_back() {
    let mut spec = Spec::new(&staff_ou());
    // Only the seeded users: the other tests' users below OU=Staff carry no ODS code.
    spec.ldap = "match = { \"msDS-cloudExtensionAttribute1\" = \"RXX\" }\n".to_owned();
    spec.constant = String::new();
    spec.map
        .push_str("Organisation = \"msDS-cloudExtensionAttribute1\"\nMobilePhone = \"mobile\"\n");
    let mut d = Deployment::new(&spec).await;

    let started = std::time::Instant::now();
    let full = d.sync(SyncOptions::default()).await;
    eprintln!("full sync of 1000: {:?}", started.elapsed());
    assert!(full.full);
    assert_eq!(full.read, 1000);
    assert_eq!(
        count(&full, RowResultKind::Created),
        1000,
        "{:?}",
        full.reports.first()
    );
    assert_eq!(full.organisations.len(), 1);
    assert_eq!(full.organisations[0].status(), "applied");
    assert!(full.cursor_advanced);
    let accounts = d.accounts().await;
    assert_eq!(accounts.len(), 1000);
    assert_eq!(full.write_back.len(), 1000);
    assert!(
        full.write_back
            .iter()
            .all(|w| w.outcome == Some(Ok(())) && w.write.values.iter().any(|(a, _)| a == "info")),
        "{:?}",
        full.write_back.iter().find(|w| w.outcome != Some(Ok(())))
    );

    // What the administrator sees: every user carries its account's ID and address.
    let mut admin = admin().await;
    let (entries, _) = admin
        .search(
            &staff_ou(),
            Scope::Subtree,
            "(&(objectClass=user)(msDS-cloudExtensionAttribute1=RXX))",
            vec!["objectGUID", "info", "mail", "title"],
        )
        .await
        .unwrap()
        .success()
        .unwrap();
    assert_eq!(entries.len(), 1000);
    let accounts = by_external(&accounts);
    for entry in entries {
        let values = attributes(SearchEntry::construct(entry));
        let account = &accounts[first(&values, "objectguid").unwrap()];
        assert_eq!(first(&values, "info"), Some(account.id.as_str()));
        assert_eq!(first(&values, "mail"), account.email());
        assert_eq!(first(&values, "title"), account.get(Field::JobTitle));
    }

    // The next delta sees our own write-back come back, and nothing to do.
    let cursor = d.cursor().await;
    let second = d.sync(SyncOptions::default()).await;
    assert!(!second.full);
    assert_eq!(second.read, 1000, "the write-back raised uSNChanged");
    assert_eq!(second.unchanged_in_source, 1000);
    assert!(second.submission.rows.is_empty());
    assert!(second.organisations.is_empty());
    assert!(second.write_back.is_empty());
    assert!(second.cursor_advanced);
    assert_ne!(d.cursor().await, cursor);
    // And then nothing is read at all.
    let third = d.sync(SyncOptions::default()).await;
    assert_eq!((third.full, third.read), (false, 0));
}

#[tokio::test]
async fn a_delta_reads_only_what_the_administrator_changed() {
    let mut ou = TestOu::new("delta").await;
    let names = ["Ann", "Bob", "Cy", "Dee", "Eve", "Fay"];
    let users: Vec<User> = names
        .iter()
        .map(|n| {
            user(
                n,
                "Delta",
                &[("title", "Nurse"), ("telephoneNumber", "0113 496 0100")],
            )
        })
        .collect();
    let dns = ou.add_users(&users).await;
    let mut d = Deployment::new(&Spec::new(&ou.dn)).await;
    let full = d.sync(SyncOptions::default()).await;
    assert_eq!(count(&full, RowResultKind::Created), 6);
    assert!(full.write_back.iter().all(|w| w.outcome == Some(Ok(()))));

    let changed = [&dns[0], &dns[2], &dns[4]];
    for dn in changed {
        ou.set(
            dn,
            &[
                ("title", "Ward Sister"),
                ("telephoneNumber", "0113 496 0999"),
            ],
        )
        .await;
    }
    let delta = d.sync(SyncOptions::default()).await;
    assert!(!delta.full);
    // All six come back (our write-back touched them), three are dropped by fingerprint.
    assert_eq!(delta.read, 6);
    assert_eq!(delta.unchanged_in_source, 3);
    let mut rows = rows(&delta);
    rows.sort();
    let mut expected: Vec<(String, RowResultKind)> = changed
        .iter()
        .map(|dn| (dn.to_string(), RowResultKind::Updated))
        .collect();
    expected.sort();
    assert_eq!(rows, expected);
    assert!(delta.write_back.is_empty());

    // The cursor names the DC it counted on; one from another DC reads everything again.
    let cursor = d.cursor().await.expect("a cursor");
    let stored: serde_json::Value = serde_json::from_str(&cursor.0).unwrap();
    assert!(stored["invocation_id"].is_string(), "{stored}");
    let other = Cursor(cursor.0.replace("CN=DC1,", "CN=DC2,"));
    assert_ne!(other, cursor);
    let mut source = LdapSource::open(d.ldap()).await.unwrap();
    let attributes = Mapping::from_config(&d.config.sources[0])
        .attributes()
        .to_vec();
    let again = source.read(&attributes, Some(&other)).await.unwrap();
    assert!(again.full);
    assert_eq!(again.entries.len(), 6);
    assert_eq!(
        again
            .entries
            .iter()
            .filter(|e| e.first("info").is_some())
            .count(),
        6
    );
    let same = source.read(&attributes, Some(&cursor)).await.unwrap();
    assert!(!same.full);
    // Another mapping (scope) needs every entry once.
    let wider = source
        .read(&["department".to_owned()], Some(&cursor))
        .await
        .unwrap();
    assert!(wider.full);

    let sisters = d
        .accounts()
        .await
        .into_iter()
        .filter(|a| {
            a.get(Field::JobTitle) == Some("Ward Sister")
                && a.get(Field::OfficePhone)
                    .is_some_and(|p| p.ends_with("0999"))
        })
        .count();
    assert_eq!(sisters, 3);
    ou.remove().await;
}

#[tokio::test]
async fn a_dirsync_delta_reads_only_what_changed() {
    let mut ou = TestOu::new("dirsync").await;
    let users: Vec<User> = ["Wes", "Xia", "Yan", "Zoe"]
        .iter()
        .map(|n| user(n, "Dirsync", &[("title", "Nurse")]))
        .collect();
    let dns = ou.add_users(&users).await;
    let mut spec = Spec::new(&ou.dn);
    spec.ldap = "delta = \"dirsync\"\n".to_owned();
    let mut d = Deployment::new(&spec).await;
    let full = d.sync(SyncOptions::default()).await;
    assert!(full.full);
    assert_eq!(count(&full, RowResultKind::Created), 4);
    assert!(full.write_back.iter().all(|w| w.outcome == Some(Ok(()))));

    ou.set(&dns[1], &[("title", "Charge Nurse")]).await;
    ou.set(&dns[3], &[("title", "Charge Nurse")]).await;
    let delta = d.sync(SyncOptions::default()).await;
    assert!(!delta.full);
    // DirSync echoes our write-back too; the fingerprints drop it.
    assert_eq!(delta.read, 4);
    assert_eq!(delta.unchanged_in_source, 2);
    assert_eq!(
        rows(&delta),
        [
            (dns[1].clone(), RowResultKind::Updated),
            (dns[3].clone(), RowResultKind::Updated)
        ]
    );
    assert!(delta.cursor_advanced);
    let next = d.sync(SyncOptions::default()).await;
    assert_eq!((next.full, next.read), (false, 0));

    // The cookie of a full read (whose DirSync pass asks for no mapped attribute) starts
    // a delta of just what changed after it.
    let mut source = LdapSource::open(d.ldap()).await.unwrap();
    let attributes = Mapping::from_config(&d.config.sources[0])
        .attributes()
        .to_vec();
    let whole = source.read(&attributes, None).await.unwrap();
    assert_eq!((whole.full, whole.entries.len()), (true, 4));
    ou.set(&dns[0], &[("telephoneNumber", "0113 496 0555")])
        .await;
    let changed = source
        .read(&attributes, whole.cursor.as_ref())
        .await
        .unwrap();
    assert!(!changed.full);
    let found: Vec<&str> = changed.entries.iter().map(|e| e.locator.as_str()).collect();
    assert_eq!(found, [dns[0].as_str()]);
    ou.remove().await;
}

#[tokio::test]
async fn a_dry_run_reports_the_plan_and_changes_nothing() {
    let mut ou = TestOu::new("dry").await;
    let dns = ou
        .add_users(&[
            user("Gil", "Dry", &[("title", "Porter")]),
            user("Hal", "Dry", &[("title", "Porter")]),
            user("Ivy", "Dry", &[("title", "Porter")]),
        ])
        .await;
    let mut d = Deployment::new(&Spec::new(&ou.dn)).await;
    d.sync(SyncOptions::default()).await;
    ou.set(&dns[0], &[("title", "Head Porter")]).await;
    ou.set(&dns[1], &[("info", "")]).await;

    let accounts = d.accounts().await;
    let cursor = d.cursor().await;
    let dry = d
        .sync(SyncOptions {
            dry_run: true,
            ..SyncOptions::default()
        })
        .await;
    assert_eq!(
        rows(&dry),
        [
            (dns[0].clone(), RowResultKind::Updated),
            (dns[1].clone(), RowResultKind::Unchanged)
        ]
    );
    assert_eq!(dry.organisations[0].status(), "planned");
    assert_eq!(dry.write_back.len(), 1);
    let pending = &dry.write_back[0];
    assert_eq!(pending.write.locator, dns[1]);
    assert_eq!(pending.write.values[0].0, "info");
    assert_eq!(pending.outcome, None);
    assert!(!dry.cursor_advanced);

    assert_eq!(d.accounts().await, accounts);
    assert_eq!(d.cursor().await, cursor);
    assert_eq!(first(&ou.read(&dns[1]).await, "info"), None);
    assert_eq!(
        first(&ou.read(&dns[0]).await, "info").map(str::to_owned),
        by_external(&accounts)
            .values()
            .find(|a| a.get(Field::JobTitle) == Some("Porter")
                && a.get(Field::FirstName) == Some("Gil"))
            .map(|a| a.id.to_string())
    );
    ou.remove().await;
}

#[tokio::test]
async fn filter_text_in_match_values_and_anchors_is_taken_literally() {
    let mut ou = TestOu::new("inject").await;
    let dns = ou
        .add_users(&[
            user(
                "Jo",
                "Ward",
                &[("department", "Ward *)(3"), ("employeeID", "E9000001")],
            ),
            user(
                "Kit",
                "Ward",
                &[("department", "Ward 3"), ("employeeID", "E9000002")],
            ),
            user(
                "Lu",
                "Ward",
                &[("department", "Ward *"), ("employeeID", "*")],
            ),
        ])
        .await;
    let guid = first(&ou.read(&dns[0]).await, "objectguid")
        .unwrap()
        .to_owned();
    let attrs = ["department".to_owned()];
    let open = |extra: &str| {
        let mut spec = Spec::new(&ou.dn);
        spec.ldap = extra.to_owned();
        let dir = tempfile::tempdir().unwrap();
        let config = configure(&dir, &spec);
        config.sources[0].ldap.clone().unwrap()
    };

    let injected = open("match = { department = \"*)(objectClass=*\" }\n");
    let mut source = LdapSource::open(&injected).await.unwrap();
    assert!(source.read(&attrs, None).await.unwrap().entries.is_empty());

    let literal = open("match = { department = \"Ward *)(3\" }\n");
    let mut source = LdapSource::open(&literal).await.unwrap();
    let batch = source.read(&attrs, None).await.unwrap();
    let found: Vec<&str> = batch.entries.iter().map(|e| e.locator.as_str()).collect();
    assert_eq!(found, [dns[0].as_str()]);
    assert_eq!(batch.entries[0].anchor, guid);
    assert_eq!(batch.entries[0].first("department"), Some("Ward *)(3"));

    let mut source = LdapSource::open(&open("")).await.unwrap();
    let none = source
        .read_anchors(&attrs, &["*)(objectClass=*".to_owned(), "*".to_owned()])
        .await
        .unwrap();
    assert!(none.is_empty());
    let one = source
        .read_anchors(&attrs, &["*)(".to_owned(), guid.to_uppercase()])
        .await
        .unwrap();
    assert_eq!(one.len(), 1);
    assert_eq!(one[0].locator, dns[0]);

    let mut source = LdapSource::open(&open("anchor = \"employeeID\"\n"))
        .await
        .unwrap();
    let by_id = source
        .read_anchors(
            &attrs,
            &["E9*".to_owned(), "*)(cn=*".to_owned(), "*".to_owned()],
        )
        .await
        .unwrap();
    let found: Vec<&str> = by_id.iter().map(|e| e.locator.as_str()).collect();
    assert_eq!(
        found,
        [dns[2].as_str()],
        "only the user whose employeeID is \"*\""
    );
    ou.remove().await;
}

#[tokio::test]
async fn ldaps_and_starttls_with_the_test_ca_and_a_wrong_password() {
    let mut ou = TestOu::new("tls").await;
    ou.add_users(&[user("Max", "Secure", &[])]).await;
    let config = |url: &str, extra: &str| {
        let mut spec = Spec::new(&ou.dn);
        spec.url = url.to_owned();
        spec.ldap = extra.to_owned();
        let dir = tempfile::tempdir().unwrap();
        configure(&dir, &spec).sources[0].ldap.clone().unwrap()
    };
    let attrs = ["givenname".to_owned()];
    for c in [
        config(&env("AD_LDAPS_URL"), ""),
        config(&env("AD_URL"), ""),
        config(&env("AD_URL"), "tls = \"plain\"\n"),
    ] {
        let mut source = LdapSource::open(&c)
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", c.url));
        let batch = source.read(&attrs, None).await.unwrap();
        assert_eq!(batch.entries.len(), 1, "{}", c.url);
        assert_eq!(batch.entries[0].first("givenName"), Some("Max"));
    }

    // Without the test CA the certificate is not trusted, over LDAPS and StartTLS alike.
    for url in [env("AD_LDAPS_URL"), env("AD_URL")] {
        let mut untrusted = config(&url, "");
        untrusted.ca_file = None;
        match LdapSource::open(&untrusted).await {
            Err(SourceError::Connect { reason, .. }) => {
                assert!(reason.contains("certificate"), "{url}: {reason}")
            }
            other => panic!("{url}: expected a connection error, got {:?}", other.err()),
        }
    }

    let mut wrong = config(&env("AD_LDAPS_URL"), "");
    wrong.bind_password = Some(
        toml::from_str::<HashMap<String, push_connector::config::Secret>>(
            "p = \"Wrong-Secret-42\"",
        )
        .unwrap()
        .remove("p")
        .unwrap(),
    );
    match LdapSource::open(&wrong).await {
        Err(e @ SourceError::Credentials { .. }) => {
            let text = e.to_string();
            assert!(text.contains(&env("AD_BIND_DN")), "{text}");
            assert!(text.contains("invalidCredentials"), "{text}");
            assert!(!text.contains("Wrong-Secret-42"), "{text}");
        }
        other => panic!("expected a credentials error, got {:?}", other.err()),
    }
    ou.remove().await;
}

#[tokio::test]
async fn a_write_the_service_account_may_not_make_fails_alone() {
    let mut ou = TestOu::new("rights").await;
    let dns = ou
        .add_users(&[
            user("Ned", "Rights", &[]),
            user("Olly", "Rights", &[]),
            user("Pam", "Rights", &[]),
        ])
        .await;
    // Ned's title already holds what would be written there: only his info is written.
    let guid = first(&ou.read(&dns[0]).await, "objectguid")
        .unwrap()
        .to_owned();
    ou.set(&dns[0], &[("title", &guid)]).await;
    let mut spec = Spec::new(&ou.dn);
    spec.map = "FirstName = \"givenName\"\nLastName = \"sn\"\n".to_owned();
    spec.write_back = "ID = \"info\"\nExternalSyncID = \"title\"\n".to_owned();
    let mut d = Deployment::new(&spec).await;
    let synced = d.sync(SyncOptions::default()).await;
    assert_eq!(count(&synced, RowResultKind::Created), 3);
    let outcomes: Vec<(&str, &Option<Result<(), String>>)> = synced
        .write_back
        .iter()
        .map(|w| (w.write.locator.as_str(), &w.outcome))
        .collect();
    assert_eq!(outcomes.len(), 3);
    assert_eq!(outcomes[0], (dns[0].as_str(), &Some(Ok(()))));
    for (i, (dn, outcome)) in outcomes.iter().enumerate().skip(1) {
        assert_eq!(*dn, dns[i]);
        let why = outcome.as_ref().unwrap().as_ref().unwrap_err();
        assert!(
            why.contains("info was written; the service account may not write title"),
            "{why}"
        );
    }
    let accounts = by_external(&d.accounts().await);
    assert_eq!(
        first(&ou.read(&dns[0]).await, "info"),
        Some(accounts[&guid].id.as_str())
    );
    // The ID goes first, on its own: a right missing for another attribute does not keep
    // the entry from being joined to its account.
    for dn in &dns[1..] {
        let values = ou.read(dn).await;
        let guid = first(&values, "objectguid").unwrap();
        assert_eq!(first(&values, "info"), Some(accounts[guid].id.as_str()));
        assert_eq!(first(&values, "title"), None);
    }

    // A delta tries the refused entries again, though nothing changed in them.
    let again = d.sync(SyncOptions::default()).await;
    assert!(!again.full);
    assert_eq!(again.read, 3, "Ned's write-back, and the two to retry");
    assert_eq!(again.unchanged_in_source, 1);
    let retried: Vec<&str> = again
        .write_back
        .iter()
        .filter(|w| w.outcome.as_ref().is_some_and(|o| o.is_err()))
        .map(|w| w.write.locator.as_str())
        .collect();
    assert_eq!(retried, [dns[1].as_str(), dns[2].as_str()]);

    // The source on its own: one result per write, in order.
    let mut source = LdapSource::open(d.ldap()).await.unwrap();
    let write = |dn: &str, attribute: &str| WriteBack {
        locator: dn.to_owned(),
        values: vec![(attribute.to_owned(), "x-1".to_owned())],
    };
    let results = source
        .write_back(&[
            write(&dns[1], "employeeID"),
            write(&dns[1], "title"),
            write(&format!("CN=Nobody,{}", ou.dn), "info"),
            write(&dns[2], "info"),
        ])
        .await
        .unwrap();
    assert_eq!(results[0], Ok(()));
    assert!(
        results[1]
            .as_ref()
            .unwrap_err()
            .contains("may not write title")
    );
    assert!(results[2].as_ref().unwrap_err().contains("gone"));
    assert_eq!(results[3], Ok(()));
    assert_eq!(first(&ou.read(&dns[1]).await, "employeeid"), Some("x-1"));
    ou.remove().await;
}

#[tokio::test]
async fn a_sync_over_the_guard_is_held_whole() {
    let mut ou = TestOu::new("guard").await;
    let names = ["Quin", "Rae", "Sam", "Tom", "Uma", "Val"];
    let users: Vec<User> = names
        .iter()
        .map(|n| user(n, "Guard", &[("title", "Nurse")]))
        .collect();
    let dns = ou.add_users(&users).await;
    let mut spec = Spec::new(&ou.dn);
    let mut d = Deployment::new(&spec).await;
    let created = d.sync(SyncOptions::default()).await;
    assert_eq!(count(&created, RowResultKind::Created), 6);

    for dn in &dns[..3] {
        ou.set(dn, &[("title", "Matron")]).await;
    }
    ou.set(&dns[0], &[("info", "")]).await;
    spec.guard = "floor = 1\nmax_updated = 2\n".to_owned();
    d.reconfigure(&spec);
    let accounts = d.accounts().await;
    let cursor = d.cursor().await;
    let held = d
        .sync(SyncOptions {
            full: true,
            ..SyncOptions::default()
        })
        .await;
    assert!(held.held());
    assert_eq!(held.organisations[0].status(), "held");
    assert_eq!(count(&held, RowResultKind::Held), 3);
    assert!(held.write_back.is_empty());
    assert!(!held.cursor_advanced);
    assert_eq!(d.accounts().await, accounts);
    assert_eq!(d.cursor().await, cursor);
    assert_eq!(first(&ou.read(&dns[0]).await, "info"), None);
    ou.remove().await;
}

// ---------------------------------------------------------------------------------------
// The command line: `sync`, `check` and the `run` service's schedule, through the binary.

fn json(out: &std::process::Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}): {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

#[tokio::test]
async fn the_sync_verb_dry_runs_applies_and_reports() {
    let mut ou = TestOu::new("cli").await;
    let dns = ou
        .add_users(&[
            user("Jon", "Cli", &[("title", "Porter")]),
            user("Kay", "Cli", &[("title", "Porter")]),
            user("Lou", "Cli", &[("title", "=1+1")]),
        ])
        .await;
    let d = Deployment::new(&Spec::new(&ou.dn)).await;
    let dir = d.dir.path();
    let config = dir.join("connector.toml");
    let config = config.to_str().unwrap();
    let run = |args: &[&str]| {
        let mut all = vec!["--config", config];
        all.extend_from_slice(args);
        common::run_in(dir, &all)
    };

    let check = run(&["check"]);
    let text = String::from_utf8_lossy(&check.stdout);
    assert!(text.contains("ok      source ad:"), "{text}");

    // A dry run: the pending changes as CSV and JSON; nothing changed.
    let pending = dir.join("pending");
    let dry = run(&[
        "sync",
        "ad",
        "--dry-run",
        "--out",
        pending.to_str().unwrap(),
    ]);
    assert_eq!(
        dry.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&dry.stderr)
    );
    let files: Vec<PathBuf> = std::fs::read_dir(&pending)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    let csv = files
        .iter()
        .find(|p| p.extension().is_some_and(|e| e == "csv"));
    let csv = std::fs::read_to_string(csv.expect("a pending CSV")).unwrap();
    assert!(csv.starts_with("\u{feff}Source,"), "{csv}");
    assert_eq!(csv.matches("Created").count(), 2, "{csv}");
    assert!(
        csv.contains("Rejected") && csv.contains("'=1+1"),
        "the formula-like title is refused and neutralised: {csv}"
    );
    assert!(
        files
            .iter()
            .any(|p| p.extension().is_some_and(|e| e == "json"))
    );
    assert!(d.accounts().await.is_empty());
    assert_eq!(first(&ou.read(&dns[0]).await, "info"), None);

    // The real run: two created and written back, the third refused (exit 1).
    let report = dir.join("report.csv");
    let out = run(&["sync", "ad", "--json", "--report", report.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let v = json(&out);
    assert_eq!(v["full"], true);
    assert_eq!(v["read"], 3);
    assert_eq!(v["organisations"][0]["status"], "applied");
    let results: Vec<(&str, &str)> = v["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["source"].as_str().unwrap(), r["result"].as_str().unwrap()))
        .collect();
    assert_eq!(
        results,
        [
            (dns[0].as_str(), "Created"),
            (dns[1].as_str(), "Created"),
            (dns[2].as_str(), "Rejected")
        ]
    );
    assert_eq!(
        v["write_back"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|w| w["result"] == "written")
            .count(),
        2
    );
    assert!(
        std::fs::read_to_string(&report)
            .unwrap()
            .contains("Rejected")
    );
    let ids: Vec<String> = d
        .accounts()
        .await
        .iter()
        .map(|a| a.id.to_string())
        .collect();
    assert_eq!(ids.len(), 2);
    let info = first(&ou.read(&dns[0]).await, "info").map(str::to_owned);
    assert!(info.is_some_and(|i| ids.contains(&i)));

    // Correcting the refused entry: the next run of the service (`run --once --now`)
    // syncs the source and creates exactly that one.
    ou.set(&dns[2], &[("title", "Porter")]).await;
    let service = run(&["run", "--once", "--now"]);
    let text = String::from_utf8_lossy(&service.stdout);
    assert_eq!(service.status.code(), Some(0), "{text}");
    // It reads the two entries our write-back touched too, and plans only the third.
    assert!(
        text.contains("sync: ad: 3 read, 1 row(s) planned"),
        "{text}"
    );
    assert_eq!(d.accounts().await.len(), 3);

    // Nothing new: a delta reads our own write-back and plans nothing (exit 0).
    let again = run(&["sync", "ad", "--json"]);
    assert_eq!(again.status.code(), Some(0));
    let v = json(&again);
    assert_eq!(v["rows"].as_array().unwrap().len(), 0, "{v}");

    let unknown = run(&["sync", "nope"]);
    assert_eq!(unknown.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("configured: ad"));
    ou.remove().await;
}

/// The binary with a deployment's configuration and more environment (the variables of the
/// configuration overlay).
fn cli(
    dir: &std::path::Path,
    config: &str,
    args: &[&str],
    env: &[(&str, &str)],
) -> std::process::Output {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_push-connector"));
    command
        .arg("--config")
        .arg(config)
        .args(args)
        .current_dir(dir)
        .env_remove("PUSH_CONNECTOR_CONFIG");
    for (k, v) in env {
        command.env(k, v);
    }
    command.output().expect("the binary runs")
}

fn text(out: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[tokio::test]
async fn a_first_load_previews_as_held_and_approve_writes_the_ids_back() {
    let mut ou = TestOu::new("first").await;
    let names = ["Ann", "Ben", "Cat", "Dan"];
    let users: Vec<User> = names
        .iter()
        .map(|n| user(n, "First", &[("title", "Nurse")]))
        .collect();
    let dns = ou.add_users(&users).await;
    let mut spec = Spec::new(&ou.dn);
    // The guard as shipped, but for a floor below this OU's four people.
    spec.guard = "floor = 1\n".to_owned();
    let d = Deployment::new(&spec).await;
    let dir = d.dir.path();
    let config = dir.join("connector.toml");
    let config = config.to_str().unwrap();
    let pending = dir.join("pending");
    let pending = pending.to_str().unwrap();

    // The preview: held, with the numbers and reasons of the real run, and every value
    // the approved run writes back, the new IDs included.
    let dry = cli(
        dir,
        config,
        &["sync", "ad", "--dry-run", "--json", "--out", pending],
        &[],
    );
    assert_eq!(dry.status.code(), Some(1), "{}", text(&dry));
    let preview = json(&dry);
    let org = &preview["organisations"][0];
    assert_eq!(org["status"], "held", "{preview}");
    assert_eq!(org["counts"]["created"], 4);
    let reasons = org["held"].as_array().unwrap();
    assert!(
        reasons[0]
            .as_str()
            .unwrap()
            .contains("would create 4 of RXX's 0 accounts"),
        "{reasons:?}"
    );
    let writes = preview["write_back"].as_array().unwrap();
    assert_eq!(writes.len(), 4, "{preview}");
    for (w, dn) in writes.iter().zip(&dns) {
        assert_eq!(w["source"], dn.as_str());
        assert_eq!(w["new_id"], true);
        assert_eq!(w["values"]["info"], "(new ID)");
        assert!(w["values"]["mail"].as_str().unwrap().contains('@'), "{w}");
        assert_eq!(w["result"], "planned");
    }
    assert!(d.accounts().await.is_empty());
    let summary = cli(
        dir,
        config,
        &["sync", "ad", "--dry-run", "--out", pending],
        &[],
    );
    let summary = text(&summary);
    assert!(
        summary.contains("the real run would be HELD for approval"),
        "{summary}"
    );
    assert!(
        summary.contains("write-back: 4 entries would be written (4 with the ID"),
        "{summary}"
    );

    // The real run holds the same plan.
    let held = json(&cli(dir, config, &["sync", "ad", "--json"], &[]));
    let org = &held["organisations"][0];
    assert_eq!(org["status"], "held");
    assert_eq!(org["held"], preview["organisations"][0]["held"]);
    assert_eq!(org["counts"], preview["organisations"][0]["counts"]);
    let run = org["run"].as_str().unwrap().to_owned();
    assert_eq!(first(&ou.read(&dns[0]).await, "info"), None);

    // Approve applies it and writes the IDs back, in one step.
    let approved = cli(dir, config, &["approve", &run, "--json"], &[]);
    assert_eq!(approved.status.code(), Some(0), "{}", text(&approved));
    let v = json(&approved);
    assert_eq!(v["status"], "applied");
    assert_eq!(v["counts"]["created"], 4);
    let written: Vec<&str> = v["sync"]["write_back"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|w| w["result"] == "written")
        .map(|w| w["source"].as_str().unwrap())
        .collect();
    assert_eq!(written.len(), 4, "{v}");
    let accounts = by_external(&d.accounts().await);
    for dn in &dns {
        let values = ou.read(dn).await;
        let account = &accounts[first(&values, "objectguid").unwrap()];
        assert_eq!(first(&values, "info"), Some(account.id.as_str()));
        assert_eq!(first(&values, "mail"), account.get(Field::Email));
    }
    // The approved run counts as its plan did.
    let runs = json(&cli(dir, config, &["runs", "--json"], &[]));
    let approved_run = runs
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == run.as_str())
        .expect("the run");
    assert_eq!(approved_run["status"], "applied");
    assert_eq!(
        approved_run["counts"],
        preview["organisations"][0]["counts"]
    );

    // Renames: the applied run's counts equal its plan's, `renamed` included.
    for dn in &dns[..2] {
        ou.set(dn, &[("givenName", "Renamed")]).await;
    }
    let loose = [("PUSH_CONNECTOR__GUARD__FLOOR", "1000")];
    let plan = json(&cli(
        dir,
        config,
        &["sync", "ad", "--dry-run", "--json", "--out", pending],
        &loose,
    ));
    assert_eq!(plan["organisations"][0]["counts"]["renamed"], 2, "{plan}");
    let applied = json(&cli(dir, config, &["sync", "ad", "--json"], &loose));
    let org = &applied["organisations"][0];
    assert_eq!(org["status"], "applied");
    assert_eq!(org["counts"], plan["organisations"][0]["counts"]);
    let runs = json(&cli(dir, config, &["runs", "--json"], &[]));
    let last = runs.as_array().unwrap().last().unwrap();
    assert_eq!(last["id"], org["run"]);
    assert_eq!(last["counts"], plan["organisations"][0]["counts"]);
    ou.remove().await;
}

#[tokio::test]
async fn check_finds_a_missing_base_dn_a_broken_filter_an_empty_scope_and_a_missing_right() {
    let mut ou = TestOu::new("check").await;
    let dns = ou
        .add_users(&[user("Eve", "Check", &[]), user("Fay", "Check", &[])])
        .await;
    let d = Deployment::new(&Spec::new(&ou.dn)).await;
    let dir = d.dir.path();
    let config = dir.join("connector.toml");
    let config = config.to_str().unwrap();
    let source_lines = |out: &std::process::Output| -> String {
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| l.contains("source ad"))
            .collect::<Vec<_>>()
            .join("\n")
    };

    let good = cli(dir, config, &["check"], &[]);
    let lines = source_lines(&good);
    assert!(
        lines.contains(&format!("ok      source ad: base_dn {} exists", ou.dn)),
        "{lines}"
    );
    assert!(
        lines.contains("ok      source ad: 2 entries in scope"),
        "{lines}"
    );
    assert!(lines.contains("may write info, mail"), "{lines}");
    assert!(!lines.contains("FAILED"), "{lines}");
    assert!(
        lines.contains("next sync ") && lines.contains("(Europe/London)"),
        "{lines}"
    );

    let missing = format!("OU=Missing-{},{}", ou.tag, staff_ou());
    let out = cli(
        dir,
        config,
        &["check"],
        &[("PUSH_CONNECTOR__SOURCE__0__LDAP__BASE_DN", &missing)],
    );
    assert_eq!(out.status.code(), Some(2));
    let lines = source_lines(&out);
    assert!(
        lines.contains(&format!(
            "FAILED  source ad: base_dn {missing} cannot be read: rc=32"
        )),
        "{lines}"
    );

    let broken = "\"(&(objectClass=user)(sn=Check)\"";
    let out = cli(
        dir,
        config,
        &["check"],
        &[("PUSH_CONNECTOR__SOURCE__0__LDAP__FILTER", broken)],
    );
    assert_eq!(out.status.code(), Some(2));
    let lines = source_lines(&out);
    assert!(
        lines.contains("FAILED  source ad:")
            && lines
                .contains("ldap.filter \"(&(objectClass=user)(sn=Check)\" is not an LDAP filter"),
        "{lines}"
    );
    // `sync` says the same, naming the filter.
    let out = cli(
        dir,
        config,
        &["sync", "ad"],
        &[("PUSH_CONNECTOR__SOURCE__0__LDAP__FILTER", broken)],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out).contains("is not an LDAP filter"),
        "{}",
        text(&out)
    );

    // Every account disabled, and a filter that leaves disabled accounts out: 0 in scope.
    for dn in &dns {
        ou.set(dn, &[("userAccountControl", "546")]).await;
    }
    let enabled = "\"(&(objectCategory=person)(objectClass=user)\
                   (!(userAccountControl:1.2.840.113556.1.4.803:=2)))\"";
    let out = cli(
        dir,
        config,
        &["check"],
        &[("PUSH_CONNECTOR__SOURCE__0__LDAP__FILTER", enabled)],
    );
    assert_eq!(out.status.code(), Some(2));
    let lines = source_lines(&out);
    assert!(
        lines.contains("FAILED  source ad: no entry is in scope"),
        "{lines}"
    );

    // A write-back attribute the service account may not write.
    let out = cli(
        dir,
        config,
        &["check"],
        &[(
            "PUSH_CONNECTOR__SOURCE__0__WRITE_BACK__EXTERNALSYNCID",
            "title",
        )],
    );
    assert_eq!(out.status.code(), Some(2));
    let lines = source_lines(&out);
    assert!(
        lines.contains(&format!(
            "FAILED  source ad: {} may not write title of",
            env("AD_BIND_DN")
        )) && lines.contains("grant it write property on title"),
        "{lines}"
    );
    ou.remove().await;
}

#[tokio::test]
async fn ca_file_from_the_environment_plain_to_a_network_host_and_a_malformed_only() {
    let ou = TestOu::new("env").await;
    let mut spec = Spec::new(&ou.dn);
    spec.url = env("AD_LDAPS_URL");
    let d = Deployment::new(&spec).await;
    let dir = d.dir.path();
    // The same deployment with the CA only in the environment.
    let text_config = std::fs::read_to_string(dir.join("connector.toml")).unwrap();
    let without_ca: String = text_config
        .lines()
        .filter(|l| !l.starts_with("ca_file"))
        .map(|l| format!("{l}\n"))
        .collect();
    assert!(!without_ca.contains("ca_file"));
    let config = dir.join("no-ca.toml");
    std::fs::write(&config, without_ca).unwrap();
    let config = config.to_str().unwrap();
    let ca = env("AD_CA_FILE");
    let with_ca = [("PUSH_CONNECTOR__SOURCE__0__LDAP__CA_FILE", ca.as_str())];

    let out = cli(dir, config, &["check"], &with_ca);
    let lines = text(&out);
    assert!(lines.contains("ok      source ad: ldaps://"), "{lines}");
    // Bound over TLS and searched: the OU is empty.
    assert!(
        lines.contains("FAILED  source ad: no entry is in scope"),
        "{lines}"
    );
    // Without it the DC's certificate is not trusted: the CA really came from there.
    let out = cli(dir, config, &["check"], &[]);
    assert!(text(&out).contains("FAILED  source ad:"), "{}", text(&out));

    // tls = "plain" to an address that is not loopback is refused before connecting
    // (192.0.2.0/24 is for documentation: nothing is sent there).
    let out = cli(
        dir,
        config,
        &["sync", "ad"],
        &[
            (
                "PUSH_CONNECTOR__SOURCE__0__LDAP__URL",
                "ldap://192.0.2.10:389",
            ),
            ("PUSH_CONNECTOR__SOURCE__0__LDAP__TLS", "plain"),
        ],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out).contains("not a loopback address"),
        "{}",
        text(&out)
    );
    // To the suite's DC on loopback it is allowed.
    let out = cli(
        dir,
        config,
        &["sync", "ad", "--dry-run"],
        &[
            ("PUSH_CONNECTOR__SOURCE__0__LDAP__URL", &env("AD_URL")),
            ("PUSH_CONNECTOR__SOURCE__0__LDAP__TLS", "plain"),
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));

    // `--only` with text that is no objectGUID is refused, not read as nothing.
    let out = cli(
        dir,
        config,
        &["sync", "ad", "--only", "not-a-guid"],
        &with_ca,
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out).contains("\"not-a-guid\" is not an objectGUID"),
        "{}",
        text(&out)
    );
    let unknown = uuid::Uuid::new_v4().to_string();
    let out = cli(dir, config, &["sync", "ad", "--only", &unknown], &with_ca);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let said = text(&out);
    assert!(said.contains("(only the 1 entry asked for)"), "{said}");
    assert!(
        said.contains(&format!("not found in scope: {unknown}")),
        "{said}"
    );
    ou.remove().await;
}

#[tokio::test]
async fn entries_without_their_anchor_are_counted_and_reported() {
    let mut ou = TestOu::new("anchor").await;
    let dns = ou
        .add_users(&[
            user("Gus", "Anchor", &[("employeeID", "E-1")]),
            user("Hex", "Anchor", &[]),
        ])
        .await;
    let mut spec = Spec::new(&ou.dn);
    spec.ldap = "anchor = \"employeeID\"\n".to_owned();
    let mut d = Deployment::new(&spec).await;
    let synced = d.sync(SyncOptions::default()).await;
    assert_eq!(synced.without_anchor, 1);
    assert_eq!(
        rows(&synced),
        [
            (dns[0].clone(), RowResultKind::Created),
            (dns[1].clone(), RowResultKind::Rejected)
        ]
    );
    let refused = &synced.reports[1].message;
    assert!(refused.contains("no value for employeeID"), "{refused}");

    // Through the binary: in the summary, the JSON and the report.
    let dir = d.dir.path();
    let config = dir.join("connector.toml");
    let config = config.to_str().unwrap();
    let report = dir.join("report.csv");
    let out = cli(
        dir,
        config,
        &[
            "sync",
            "ad",
            "--full",
            "--json",
            "--report",
            report.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(1));
    let v = json(&out);
    assert_eq!(v["without_anchor"], 1);
    let csv = std::fs::read_to_string(&report).unwrap();
    assert!(
        csv.contains(&dns[1]) && csv.contains("no value for employeeID"),
        "{csv}"
    );
    let out = cli(dir, config, &["sync", "ad", "--full"], &[]);
    let said = text(&out);
    assert!(
        said.contains("1 entry without the anchor attribute left out"),
        "{said}"
    );
    ou.remove().await;
}

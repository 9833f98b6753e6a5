//! The sync driver against an in-memory source (the real LDAP and SQL sources are tested
//! against real servers in `tests/`): delta by cursor and fingerprint, write-back without a
//! loop, held runs keeping the cursor, dry runs changing nothing.

use chrono::{DateTime, Utc};

use super::*;
use crate::apply::SequenceMinter;
use crate::directory::local::LocalDirectory;
use crate::sources::{Batch, Cursor};
use crate::store::StateDb;

/// A directory in memory that counts changes like `uSNChanged`.
struct Memory {
    entries: Vec<(u64, SourceEntry)>,
    /// Entries in scope without an anchor (given apart by every full read).
    anchorless: Vec<SourceEntry>,
    usn: u64,
    writes: usize,
}

impl Memory {
    fn new(n: usize) -> Memory {
        let mut m = Memory {
            entries: Vec::new(),
            anchorless: Vec::new(),
            usn: 0,
            writes: 0,
        };
        for i in 0..n {
            m.usn += 1;
            let values = [
                ("givenname", format!("Anne{}", letters(i))),
                ("sn", "Lee".to_owned()),
                ("title", "Nurse".to_owned()),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), vec![v]))
            .collect();
            m.entries.push((
                m.usn,
                SourceEntry {
                    locator: format!("CN=Person {i:03},OU=Staff"),
                    anchor: format!("guid-{i:03}"),
                    values,
                },
            ));
        }
        m
    }

    fn set(&mut self, i: usize, attribute: &str, value: &str) {
        self.usn += 1;
        let (usn, entry) = &mut self.entries[i];
        *usn = self.usn;
        entry
            .values
            .insert(attribute.to_owned(), vec![value.to_owned()]);
    }

    fn value(&self, i: usize, attribute: &str) -> Option<&str> {
        self.entries[i].1.first(attribute)
    }
}

/// Names are letters only: `0` → `a`, `27` → `bb`.
fn letters(i: usize) -> String {
    let c = char::from(b'a' + (i % 26) as u8);
    std::iter::repeat_n(c, i / 26 + 1).collect()
}

impl Source for Memory {
    fn describe(&self) -> String {
        "memory".to_owned()
    }

    async fn read(
        &mut self,
        _attributes: &[String],
        since: Option<&Cursor>,
    ) -> Result<Batch, SourceError> {
        let from: Option<u64> = since.and_then(|c| c.0.parse().ok());
        Ok(Batch {
            entries: self
                .entries
                .iter()
                .filter(|(usn, _)| from.is_none_or(|f| *usn > f))
                .map(|(_, e)| e.clone())
                .collect(),
            cursor: Some(Cursor(self.usn.to_string())),
            full: from.is_none(),
            without_anchor: if from.is_none() {
                self.anchorless.clone()
            } else {
                Vec::new()
            },
        })
    }

    fn anchor_problem(&self, anchor: &str) -> Option<String> {
        (!anchor.starts_with("guid-")).then(|| format!("{anchor} is not guid-N"))
    }

    async fn read_anchors(
        &mut self,
        _attributes: &[String],
        anchors: &[String],
    ) -> Result<Vec<SourceEntry>, SourceError> {
        Ok(self
            .entries
            .iter()
            .filter(|(_, e)| anchors.contains(&e.anchor))
            .map(|(_, e)| e.clone())
            .collect())
    }

    async fn write_back(
        &mut self,
        writes: &[WriteBack],
    ) -> Result<Vec<Result<(), String>>, SourceError> {
        let mut out = Vec::new();
        for w in writes {
            match self
                .entries
                .iter()
                .position(|(_, e)| e.locator == w.locator)
            {
                Some(i) => {
                    for (attribute, value) in &w.values {
                        self.set(i, attribute, value);
                    }
                    self.writes += 1;
                    out.push(Ok(()));
                }
                None => out.push(Err(format!("no entry {}", w.locator))),
            }
        }
        Ok(out)
    }
}

struct Fixture {
    _dir: tempfile::TempDir,
    config: Config,
    directory: LocalDirectory,
    state: StateDb,
    store: SyncStore,
    minter: SequenceMinter,
}

const CONFIG: &str = r#"
[service]
domains = ["nhs.net"]
[guard]
floor = 100000
[[source]]
name = "ad"
organisations = ["RXX"]
create_accounts = true
[source.map]
FirstName = "givenName"
LastName = "sn"
JobTitle = "title"
ID = "info"
[source.constant]
Organisation = "RXX"
[source.write_back]
ID = "info"
Email = "mail"
"#;

async fn fixture(extra: &str) -> Fixture {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config: Config = toml::from_str(&format!("{CONFIG}{extra}")).expect("config");
    config.service.state_dir = dir.path().to_owned();
    let directory = LocalDirectory::open(&dir.path().join("directory.sqlite"))
        .await
        .expect("directory");
    directory.add_organisation("RXX", &[]).await.expect("org");
    let state = StateDb::open(dir.path()).await.expect("state");
    let store = SyncStore::open(dir.path()).await.expect("store");
    Fixture {
        _dir: dir,
        config,
        directory,
        state,
        store,
        minter: SequenceMinter {
            prefix: "P".to_owned(),
            next: 0,
        },
    }
}

fn now() -> DateTime<Utc> {
    "2026-11-23T01:30:00Z".parse().expect("time")
}

impl Fixture {
    async fn sync(&mut self, source: &mut Memory, options: SyncOptions, run: &str) -> Synced {
        self.try_sync(source, options, run).await.expect("sync")
    }

    async fn try_sync(
        &mut self,
        source: &mut Memory,
        options: SyncOptions,
        run: &str,
    ) -> Result<Synced, SyncError> {
        let rules = Rules::from_config(&self.config).expect("rules");
        let ctx = Context {
            directory: &self.directory,
            state: &self.state,
            passwords: self._dir.path().join("initial-passwords.csv"),
            progress: &|_, _| {},
        };
        let source_config = self.config.sources[0].clone();
        sync(
            &self.config,
            &source_config,
            source,
            &rules,
            &ctx,
            &self.store,
            &options,
            run,
            &mut self.minter,
            now(),
        )
        .await
    }
}

fn results(s: &Synced) -> Vec<RowResultKind> {
    s.reports.iter().map(|r| r.result).collect()
}

fn count(s: &Synced, kind: RowResultKind) -> usize {
    s.reports.iter().filter(|r| r.result == kind).count()
}

#[tokio::test]
async fn write_back_does_not_come_back_as_a_change() {
    let mut f = fixture("").await;
    let mut source = Memory::new(30);
    let first = f.sync(&mut source, SyncOptions::default(), "r1").await;
    assert!(first.full);
    assert_eq!(count(&first, RowResultKind::Created), 30);
    assert!(first.cursor_advanced);
    // The portal's ID and address went back into every entry.
    assert_eq!(source.writes, 30);
    let id = source.value(0, "info").expect("ID written back").to_owned();
    let account = f
        .directory
        .by_id(&crate::model::PortalId::new_unchecked(id))
        .await
        .expect("lookup")
        .expect("account");
    assert_eq!(source.value(0, "mail"), account.email());

    // Every entry changed (our write-back), yet none is planned again and none rewritten.
    let second = f.sync(&mut source, SyncOptions::default(), "r2").await;
    assert!(!second.full);
    assert_eq!(second.read, 30);
    assert_eq!(second.unchanged_in_source, 30);
    assert!(second.reports.is_empty(), "{:?}", results(&second));
    assert_eq!(source.writes, 30);

    // And the cursor moved past them.
    let third = f.sync(&mut source, SyncOptions::default(), "r3").await;
    assert_eq!(third.read, 0);
}

#[tokio::test]
async fn a_delta_touches_exactly_the_changed_entries() {
    let mut f = fixture("").await;
    let mut source = Memory::new(30);
    f.sync(&mut source, SyncOptions::default(), "r1").await;
    f.sync(&mut source, SyncOptions::default(), "r2").await;
    for i in [3, 14, 27] {
        source.set(i, "title", "Ward Sister");
    }
    // A change the mapping does not read is no change at all.
    source.set(5, "lastlogontimestamp", "133000000000000000");
    let delta = f.sync(&mut source, SyncOptions::default(), "r3").await;
    assert_eq!(delta.read, 4);
    assert_eq!(delta.unchanged_in_source, 1);
    assert_eq!(results(&delta), vec![RowResultKind::Updated; 3]);
    let lines: Vec<&str> = delta
        .reports
        .iter()
        .map(|r| {
            delta.submission.rows[(r.line - 2) as usize]
                .cells
                .get(0)
                .unwrap_or("")
        })
        .collect();
    assert_eq!(
        lines,
        [
            "CN=Person 003,OU=Staff",
            "CN=Person 014,OU=Staff",
            "CN=Person 027,OU=Staff"
        ]
    );
    // --full reads and plans everything again, and finds nothing else to do.
    let full = f
        .sync(
            &mut source,
            SyncOptions {
                full: true,
                ..SyncOptions::default()
            },
            "r4",
        )
        .await;
    assert_eq!(full.read, 30);
    assert_eq!(count(&full, RowResultKind::Unchanged), 30);
}

#[tokio::test]
async fn a_dry_run_changes_nothing_and_lists_the_write_back() {
    let mut f = fixture("").await;
    let mut source = Memory::new(10);
    let dry = f
        .sync(
            &mut source,
            SyncOptions {
                dry_run: true,
                ..SyncOptions::default()
            },
            "r1",
        )
        .await;
    assert_eq!(count(&dry, RowResultKind::Created), 10);
    assert!(!dry.cursor_advanced);
    assert_eq!(f.directory.count().await.expect("count"), 0);
    assert_eq!(source.writes, 0);
    assert!(f.store.cursor("ad").await.expect("cursor").is_none());
    // New accounts have no ID yet, but the real run writes one back to each, and their
    // addresses: the preview lists both, the ID as a new one.
    assert_eq!(dry.write_back.len(), 10);
    for w in &dry.write_back {
        assert!(w.new_id, "{w:?}");
        assert_eq!(w.write.values[0], ("info".to_owned(), String::new()));
        assert_eq!(w.write.values[1].0, "mail");
        assert!(w.write.values[1].1.ends_with("@nhs.net"), "{w:?}");
    }
    let real = f.sync(&mut source, SyncOptions::default(), "r1b").await;
    let written: Vec<(u64, Vec<&str>)> = real
        .write_back
        .iter()
        .map(|w| {
            (
                w.line,
                w.write.values.iter().map(|(a, _)| a.as_str()).collect(),
            )
        })
        .collect();
    let previewed: Vec<(u64, Vec<&str>)> = dry
        .write_back
        .iter()
        .map(|w| {
            (
                w.line,
                w.write.values.iter().map(|(a, _)| a.as_str()).collect(),
            )
        })
        .collect();
    assert_eq!(previewed, written);
    assert!(real.write_back.iter().all(|w| !w.new_id));
    // Back to a directory with nothing in it, for what follows.
    let mut f = fixture("").await;
    let mut source = Memory::new(10);

    f.sync(&mut source, SyncOptions::default(), "r2").await;
    source.entries[0].1.values.remove("info");
    source.set(0, "title", "Matron");
    let dry = f
        .sync(
            &mut source,
            SyncOptions {
                dry_run: true,
                ..SyncOptions::default()
            },
            "r3",
        )
        .await;
    assert_eq!(dry.write_back.len(), 1);
    assert_eq!(dry.write_back[0].outcome, None);
    assert_eq!(dry.write_back[0].write.values[0].0, "info");
    assert_eq!(source.value(0, "info"), None);
}

#[tokio::test]
async fn a_dry_run_says_the_real_run_would_be_held_with_its_numbers() {
    let mut f = fixture("").await;
    f.config.guard.floor = 0;
    f.config.guard.max_created = 5;
    let mut source = Memory::new(8);
    let dry = f
        .sync(
            &mut source,
            SyncOptions {
                dry_run: true,
                ..SyncOptions::default()
            },
            "r1",
        )
        .await;
    assert_eq!(dry.organisations[0].status(), "held");
    assert!(dry.held());
    assert_eq!(count(&dry, RowResultKind::Held), 8);
    // Nothing is held in fact: no run is recorded.
    assert!(f.state.run("r1").await.is_err());
    // Every ID the approved run writes back is listed.
    assert_eq!(dry.write_back.iter().filter(|w| w.new_id).count(), 8);

    let real = f.sync(&mut source, SyncOptions::default(), "r2").await;
    assert_eq!(real.organisations[0].status(), "held");
    assert_eq!(
        dry.organisations[0].submitted.held,
        real.organisations[0].submitted.held
    );
    assert_eq!(
        dry.organisations[0].counts(),
        real.organisations[0].counts()
    );
    assert!(
        real.organisations[0].submitted.held[0].contains("would create 8 accounts"),
        "{:?}",
        real.organisations[0].submitted.held
    );
}

#[tokio::test]
async fn a_held_run_keeps_the_cursor_and_writes_nothing_back() {
    let mut f = fixture("").await;
    let mut source = Memory::new(20);
    f.sync(&mut source, SyncOptions::default(), "r1").await;
    f.config.guard.floor = 0;
    f.config.guard.max_updated = 2;
    for i in 0..5 {
        source.set(i, "title", "Porter");
        source.entries[i].1.values.remove("mail");
    }
    let writes = source.writes;
    let held = f.sync(&mut source, SyncOptions::default(), "r2").await;
    assert!(held.held());
    assert!(!held.cursor_advanced);
    assert_eq!(source.writes, writes);
    // The next sync reads the same changes again, and the held run gives way to it.
    f.config.guard.max_updated = 5000;
    f.config.guard.max_updated_share = 1.0;
    f.config.guard.max_field_share = 1.0;
    let again = f.sync(&mut source, SyncOptions::default(), "r3").await;
    assert_eq!(count(&again, RowResultKind::Updated), 5);
    assert_eq!(source.writes, writes + 5);
    let r2 = f.state.run("r2").await.expect("run r2");
    assert_eq!(r2.status, crate::store::RunStatus::Rejected);
}

#[tokio::test]
async fn refused_entries_name_their_reason_and_are_read_again() {
    let mut f = fixture("").await;
    let mut source = Memory::new(3);
    source.set(1, "givenname", "=cmd|' /C calc'!A0");
    let synced = f.sync(&mut source, SyncOptions::default(), "r1").await;
    assert_eq!(
        results(&synced),
        [
            RowResultKind::Created,
            RowResultKind::Rejected,
            RowResultKind::Created
        ]
    );
    assert!(
        synced.reports[1].message.contains("FirstName"),
        "{}",
        synced.reports[1].message
    );
    // The refused entry has no fingerprint: once corrected it is planned, whatever changed.
    source.set(1, "givenname", "Bob");
    let next = f.sync(&mut source, SyncOptions::default(), "r2").await;
    assert_eq!(results(&next), [RowResultKind::Created]);
}

#[tokio::test]
async fn creation_is_off_unless_configured_and_other_organisations_are_refused() {
    let mut f = fixture("").await;
    f.config.sources[0].create_accounts = false;
    f.config.sources[0].constant.remove("Organisation");
    f.config.sources[0]
        .map
        .insert("Organisation".to_owned(), "company".to_owned());
    let mut source = Memory::new(2);
    source.set(0, "company", "RXX");
    source.set(1, "company", "RYY");
    let synced = f.sync(&mut source, SyncOptions::default(), "r1").await;
    assert_eq!(results(&synced), vec![RowResultKind::Rejected; 2]);
    assert!(synced.reports[1].message.contains("may only speak for RXX"));
    assert_eq!(f.directory.count().await.expect("count"), 0);
}

#[tokio::test]
async fn an_applied_run_counts_what_its_plan_counted_renames_included() {
    let mut f = fixture("").await;
    let mut source = Memory::new(6);
    f.sync(&mut source, SyncOptions::default(), "r1").await;
    for i in 0..3 {
        source.set(i, "givenname", &format!("Renamed{}", letters(i)));
    }
    source.set(3, "title", "Porter");
    let synced = f.sync(&mut source, SyncOptions::default(), "r2").await;
    let org = &synced.organisations[0];
    assert_eq!(org.status(), "applied");
    let planned = org.submitted.plan.counts();
    assert_eq!(planned.renamed, 3);
    assert_eq!(planned.updated, 4);
    assert_eq!(org.counts(), planned);
    assert_eq!(f.state.run("r2").await.expect("run").counts, planned);
}

#[tokio::test]
async fn entries_without_an_anchor_are_counted_and_reported_as_refused_rows() {
    let mut f = fixture("").await;
    let mut source = Memory::new(3);
    source.anchorless.push(SourceEntry {
        locator: "CN=No Anchor,OU=Staff".to_owned(),
        anchor: String::new(),
        values: [("givenname", "Nora"), ("sn", "Anchor")]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), vec![v.to_owned()]))
            .collect(),
    });
    let synced = f.sync(&mut source, SyncOptions::default(), "r1").await;
    assert_eq!(synced.without_anchor, 1);
    assert_eq!(
        results(&synced),
        [
            RowResultKind::Created,
            RowResultKind::Created,
            RowResultKind::Created,
            RowResultKind::Rejected
        ]
    );
    let last = synced.reports.last().expect("a row");
    assert!(
        last.message
            .contains("no value for the source's anchor: it cannot be joined"),
        "{}",
        last.message
    );
    let row = synced.submission.rows.last().expect("its row");
    assert_eq!(row.line, last.line);
    assert_eq!(row.cells.get(0), Some("CN=No Anchor,OU=Staff"));
    // Only the three with anchors were written back and remembered.
    assert_eq!(synced.write_back.len(), 3);
    assert_eq!(f.directory.count().await.expect("count"), 3);
}

#[tokio::test]
async fn only_refuses_text_that_cannot_be_an_anchor_and_names_what_it_did_not_find() {
    let mut f = fixture("").await;
    let mut source = Memory::new(3);
    f.sync(&mut source, SyncOptions::default(), "r1").await;
    let only = |anchors: &[&str]| SyncOptions {
        only: anchors.iter().map(|a| a.to_string()).collect(),
        ..SyncOptions::default()
    };
    let err = f
        .try_sync(&mut source, only(&["guid-001", "not-a-guid"]), "r2")
        .await
        .expect_err("refused");
    assert!(
        matches!(&err, SyncError::BadAnchors(b) if b.len() == 1 && b[0].contains("not-a-guid")),
        "{err}"
    );
    let synced = f
        .sync(&mut source, only(&["guid-001", "guid-999"]), "r3")
        .await;
    assert_eq!(synced.read, 1);
    assert_eq!(synced.not_found, ["guid-999"]);
    // GUIDs compare in any spelling.
    assert_eq!(
        anchor_key("{9F0C2D6E-1B2A-4C3D-8E4F-5A6B7C8D9E0F}"),
        anchor_key("9f0c2d6e1b2a4c3d8e4f5a6b7c8d9e0f")
    );
    assert_ne!(anchor_key("guid-001"), anchor_key("guid-002"));
}

#[tokio::test]
async fn a_preview_lists_what_the_plan_fills_in_and_the_real_run_writes_back() {
    let mut f = fixture("").await;
    f.config.sources[0]
        .write_back
        .insert("ExternalSyncID".to_owned(), "employeeid".to_owned());
    // An account the entry names by its ID, with no ExternalSyncID yet: the plan fills it
    // in, and the real run then writes it back.
    let org = OdsCode::new_unchecked("RXX");
    let mut account = Account::new(
        crate::model::PortalId::new_unchecked("P-OLD"),
        crate::directory::Status::Active,
        &org,
    );
    account.set(Field::FirstName, Some("Annea"));
    account.set(Field::LastName, Some("Lee"));
    account.set(Field::JobTitle, Some("Nurse"));
    account.set(Field::Email, Some("annea.lee@nhs.net"));
    f.directory
        .insert_unchecked(&[account])
        .await
        .expect("insert");
    let mut source = Memory::new(1);
    source.set(0, "info", "P-OLD");
    source.set(0, "mail", "annea.lee@nhs.net");
    let dry = f
        .sync(
            &mut source,
            SyncOptions {
                dry_run: true,
                ..SyncOptions::default()
            },
            "r1",
        )
        .await;
    assert_eq!(results(&dry), [RowResultKind::Updated]);
    let preview: Vec<(String, String)> = dry
        .write_back
        .iter()
        .flat_map(|w| w.write.values.clone())
        .collect();
    assert_eq!(
        preview,
        [("employeeid".to_owned(), "guid-000".to_owned())],
        "{dry:?}"
    );
    let real = f.sync(&mut source, SyncOptions::default(), "r2").await;
    let written: Vec<(String, String)> = real
        .write_back
        .iter()
        .flat_map(|w| w.write.values.clone())
        .collect();
    assert_eq!(written, preview);
}

#[tokio::test]
async fn each_change_names_its_source_and_entry_and_an_approval_keeps_them() {
    let mut f = fixture("").await;
    f.config.guard.floor = 0;
    f.config.guard.max_created = 2;
    let mut source = Memory::new(3);
    let held = f.sync(&mut source, SyncOptions::default(), "r1").await;
    assert!(held.held());
    let ctx = Context {
        directory: &f.directory,
        state: &f.state,
        passwords: f._dir.path().join("initial-passwords.csv"),
        progress: &|_, _| {},
    };
    let (_, applied) = crate::pipeline::approve(&ctx, "r1", Some("alice"), &mut f.minter, now())
        .await
        .expect("approve");
    assert_eq!(applied.counts.created, 3);
    // The next sync writes the IDs back; then one entry changes.
    f.config.guard.floor = 100_000;
    f.sync(&mut source, SyncOptions::default(), "r2").await;
    source.set(1, "title", "Sister");
    let delta = f.sync(&mut source, SyncOptions::default(), "r3").await;
    assert_eq!(count(&delta, RowResultKind::Updated), 1);

    let id = source.value(1, "info").expect("ID written back").to_owned();
    let history = f.state.history(&id).await.expect("history");
    let seen: Vec<_> = history
        .iter()
        .map(|h| {
            (
                h.run.as_str(),
                h.provenance.as_ref().map(|p| (p.channel, p.name.as_str())),
                h.entry.as_deref(),
                h.approved_by.as_deref(),
            )
        })
        .collect();
    let ad = Some((crate::model::Channel::Sync, "ad"));
    let dn = Some("CN=Person 001,OU=Staff");
    assert_eq!(
        seen,
        [("r1", ad, dn, Some("alice")), ("r3", ad, dn, None)],
        "{history:#?}"
    );
    assert!(matches!(
        &history[1].change,
        crate::store::HistoryChange::Field { field: Field::JobTitle, before, after }
            if before.as_deref() == Some("Nurse") && after.as_deref() == Some("Sister")
    ));
    assert_eq!(
        f.state.run("r1").await.expect("run").source.as_deref(),
        Some("sync ad")
    );
}

#[tokio::test]
async fn a_namesake_without_a_key_is_refused_in_the_sync_s_terms_until_new_account_says_yes() {
    let mut f = fixture("").await;
    // Made by hand in the portal, before the sync: the same person as entry 0.
    let mut by_hand = crate::directory::Account::new(
        crate::model::PortalId::new_unchecked("H1"),
        crate::directory::Status::Active,
        &crate::model::OdsCode::new_unchecked("RXX"),
    );
    by_hand.set(Field::FirstName, Some("Annea"));
    by_hand.set(Field::LastName, Some("Lee"));
    by_hand.set(Field::Email, Some("annea.lee@nhs.net"));
    f.directory
        .insert_unchecked(&[by_hand])
        .await
        .expect("insert");
    let mut source = Memory::new(2);
    let synced = f.sync(&mut source, SyncOptions::default(), "r1").await;
    assert_eq!(
        results(&synced),
        [RowResultKind::Rejected, RowResultKind::Created]
    );
    assert_eq!(
        synced.reports[0].message,
        "possibly the same person as annea.lee@nhs.net (ID H1), an account of the same name \
         without an ExternalSyncID, so nothing was created: to update that account, write its \
         ID H1 to this entry's attribute info; if this is another person with the same name, \
         map NewAccount to an attribute and set it to yes on this entry"
    );

    // Another Annea Lee: the attribute mapped to NewAccount says so.
    f.config.sources[0]
        .map
        .insert("NewAccount".to_owned(), "extensionAttribute9".to_owned());
    source.set(0, "extensionattribute9", "yes");
    let synced = f.sync(&mut source, SyncOptions::default(), "r2").await;
    // (The new mapping reads every entry again: entry 1 is unchanged.)
    assert_eq!(
        results(&synced),
        [RowResultKind::Created, RowResultKind::Unchanged],
        "{:?}",
        synced.reports
    );
    assert_eq!(synced.reports[0].message, "annea.lee2@nhs.net");
    assert_eq!(f.directory.count().await.expect("count"), 3);
}

#[tokio::test]
async fn a_run_whose_entries_give_the_name_attributes_exchanged_is_refused_whole() {
    let mut f = fixture("").await;
    let mut source = Memory::new(4);
    f.sync(&mut source, SyncOptions::default(), "r1").await;
    for i in 0..4 {
        let first = source.value(i, "givenname").expect("name").to_owned();
        source.set(i, "givenname", "Lee");
        source.set(i, "sn", &first);
    }
    let synced = f.sync(&mut source, SyncOptions::default(), "r2").await;
    assert_eq!(results(&synced), vec![RowResultKind::Rejected; 4]);
    let refused = synced.organisations[0]
        .submitted
        .refused
        .clone()
        .expect("refused whole");
    assert!(
        refused.starts_with(
            "the attributes givenname (mapped to FirstName) and sn (mapped to LastName) look \
             swapped: 4 of 4 rows that match an account give them the other way round (line 2 \
             gives FirstName \"Lee\" and LastName \"Annea\""
        ),
        "{refused}"
    );
    assert!(
        refused.ends_with("correct the source's mapping and run the sync again"),
        "{refused}"
    );
    assert_eq!(source.writes, 4, "nothing written back by the refused run");
}

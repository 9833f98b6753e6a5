//! The embedded directory's batch writes and the journal's batch outcomes: a batch mixing
//! every kind of operation ends as the same operations one at a time would leave it.

// Test code: a failure is a panic.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use push_connector::directory::Status;
use push_connector::directory::local::LocalDirectory;
use push_connector::directory::{Account, Change, Directory, Keys, NewAccount, Op, OpOutcome};
use push_connector::model::{Field, OdsCode, PortalId, numeric_key};
use push_connector::plan::{Action, Plan, PlannedRow};
use push_connector::store::{OpRecord, StateDb};

fn account(id: &str, ext: Option<&str>, email: &str) -> Account {
    let mut a = Account::new(
        PortalId::new_unchecked(id),
        Status::Active,
        &OdsCode::new_unchecked("RKK"),
    );
    a.set(Field::ExternalSyncId, ext);
    a.set(Field::FirstName, Some("Alex"));
    a.set(Field::LastName, Some(id));
    a.set(Field::Email, Some(email));
    a.set(Field::JobTitle, Some("Nurse"));
    a
}

fn change(field: Field, before: Option<&str>, after: Option<&str>) -> Change {
    Change {
        field,
        before: before.map(str::to_owned),
        after: after.map(str::to_owned),
    }
}

fn update(id: &str, changes: Vec<Change>) -> Op {
    Op::Update {
        id: PortalId::new_unchecked(id),
        changes,
        run: "r1".to_owned(),
    }
}

#[tokio::test]
async fn a_mixed_batch_applies_like_one_operation_at_a_time() {
    let dir = tempfile::tempdir().unwrap();
    let d = LocalDirectory::open(&dir.path().join("directory.sqlite"))
        .await
        .unwrap();
    d.add_organisation("RKK", &[]).await.unwrap();
    d.insert_unchecked(&[
        account("PA", Some("EA"), "a@nhs.net"),
        account("PB", None, "b@nhs.net"),
        account("PC", Some("EC"), "c@nhs.net"),
        account("PD", Some("ED"), "d@nhs.net"),
    ])
    .await
    .unwrap();

    let mut new = account("PN", Some("EN"), "c@nhs.net");
    new.set(Field::LastName, Some("New"));
    let ops = vec![
        update(
            "PA",
            vec![change(Field::JobTitle, Some("Nurse"), Some("Sister"))],
        ),
        // A blank ExternalSyncID is filled in; its look-up key follows.
        update(
            "PB",
            vec![change(Field::ExternalSyncId, None, Some("EB-Mixed"))],
        ),
        // Changed since the plan: refused whole.
        update(
            "PC",
            vec![
                change(Field::Notes, None, Some("x")),
                change(Field::JobTitle, Some("Porter"), Some("Sister")),
            ],
        ),
        update(
            "PD",
            vec![change(Field::Email, Some("d@nhs.net"), Some("d2@nhs.net"))],
        ),
        // The same account again in the batch: applied on top of the first change.
        update(
            "PA",
            vec![change(Field::JobTitle, Some("Sister"), Some("Matron"))],
        ),
        Op::Create(NewAccount {
            account: new,
            run: "r1".to_owned(),
        }),
        Op::Create(NewAccount {
            account: account("PX", Some("ea"), "x@nhs.net"),
            run: "r1".to_owned(),
        }),
    ];
    let outcomes = d.apply(&ops).await.unwrap();
    assert_eq!(outcomes[0], OpOutcome::Updated);
    assert_eq!(outcomes[1], OpOutcome::Updated);
    assert!(matches!(&outcomes[2], OpOutcome::Failed(m) if m.contains("since this run")));
    assert_eq!(outcomes[3], OpOutcome::Updated);
    assert_eq!(outcomes[4], OpOutcome::Updated);
    // The address was taken: the new account gets the next free one.
    match &outcomes[5] {
        OpOutcome::Created(a) => assert_eq!(a.email(), Some("c2@nhs.net")),
        other => panic!("{other:?}"),
    }
    assert!(matches!(&outcomes[6], OpOutcome::Exists(a) if a.id.as_str() == "PA"));

    let get = |id: &'static str| {
        let d = &d;
        async move {
            d.by_id(&PortalId::new_unchecked(id))
                .await
                .unwrap()
                .unwrap()
        }
    };
    assert_eq!(get("PA").await.get(Field::JobTitle), Some("Matron"));
    assert_eq!(
        d.by_external_sync_id("RKK", "eb-mixed")
            .await
            .unwrap()
            .map(|a| a.id.to_string()),
        Some("PB".to_owned())
    );
    let c = get("PC").await;
    assert_eq!(
        (c.get(Field::Notes), c.get(Field::JobTitle)),
        (None, Some("Nurse"))
    );
    let pd = get("PD").await;
    assert_eq!(pd.email(), Some("d2@nhs.net"));
    assert_eq!(
        pd.secondary.iter().map(|e| e.as_str()).collect::<Vec<_>>(),
        ["d@nhs.net"]
    );
    assert_eq!(
        d.by_email("d@nhs.net")
            .await
            .unwrap()
            .map(|a| a.id.to_string()),
        Some("PD".to_owned())
    );
    assert_eq!(d.count().await.unwrap(), 5);
    // History: every change made, none of the refused ones.
    assert_eq!(d.history("PA").await.unwrap().len(), 2);
    assert!(d.history("PC").await.unwrap().is_empty());
    // A creation is in the history too, with the run that made it.
    let pn = d.history("PN").await.unwrap();
    assert_eq!(pn.len(), 1);
    assert_eq!(
        (pn[0].0.as_str(), pn[0].3.as_deref()),
        ("created", Some("r1"))
    );

    // Applying the same batch again changes nothing and duplicates nothing.
    let again = d.apply(&ops).await.unwrap();
    assert_eq!(again[1], OpOutcome::Updated);
    assert!(matches!(&again[0], OpOutcome::Failed(_)));
    assert!(matches!(&again[5], OpOutcome::Created(a) if a.id.as_str() == "PN"));
    assert_eq!(d.count().await.unwrap(), 5);
    assert_eq!(d.history("PA").await.unwrap().len(), 2);

    // The index finds accounts by every key at once, each account once.
    let index = d
        .index_for(&Keys {
            ids: vec!["PA".to_owned()],
            external: vec![("RKK".to_owned(), "ea".to_owned())],
            emails: vec!["a@nhs.net".to_owned(), "d@nhs.net".to_owned()],
            stems: vec!["c@nhs.net".to_owned()],
            near_external: Vec::new(),
            names: Vec::new(),
            organisations: vec!["RKK".to_owned()],
        })
        .await
        .unwrap();
    assert_eq!(index.len(), 2);
    assert!(index.is_taken("c2@nhs.net"));
    assert_eq!(index.organisation("RKK").map(|o| o.accounts), Some(5));
}

#[tokio::test]
async fn outcomes_are_recorded_per_operation() {
    let dir = tempfile::tempdir().unwrap();
    let state = StateDb::open(dir.path()).await.unwrap();
    let row = |line: u64, action: Action| PlannedRow {
        line,
        action,
        message: String::new(),
    };
    let plan = Plan {
        run: "r1".to_owned(),
        organisation: OdsCode::new_unchecked("RKK"),
        rows: vec![
            row(
                2,
                Action::Update {
                    id: PortalId::new_unchecked("PA"),
                    changes: vec![
                        change(Field::JobTitle, Some("Nurse"), Some("Sister")),
                        change(Field::Notes, None, Some("x")),
                    ],
                    renamed: false,
                },
            ),
            row(3, Action::Rejected),
            row(
                4,
                Action::Update {
                    id: PortalId::new_unchecked("PB"),
                    changes: vec![change(Field::JobTitle, Some("Nurse"), Some("Sister"))],
                    renamed: false,
                },
            ),
            row(
                5,
                Action::Create {
                    account: Box::new(account("", Some("EN"), "n@nhs.net")),
                },
            ),
            row(
                6,
                Action::Update {
                    id: PortalId::new_unchecked("PC"),
                    changes: vec![change(Field::JobTitle, Some("Nurse"), Some("Sister"))],
                    renamed: false,
                },
            ),
        ],
    };
    let minted = [PortalId::new_unchecked("PN")];
    state
        .journal(&plan, "apply", None, &minted, chrono::Utc::now())
        .await
        .unwrap();
    assert_eq!(state.op_count("r1").await.unwrap(), 4);
    assert_eq!(state.pending("r1", 0, 10).await.unwrap().len(), 4);
    state
        .record(
            "r1",
            &[
                OpRecord {
                    op: 0,
                    done: true,
                    account: None,
                    message: None,
                },
                OpRecord {
                    op: 1,
                    done: false,
                    account: None,
                    message: Some("changed since".to_owned()),
                },
                OpRecord {
                    op: 2,
                    done: true,
                    account: Some(("PN".to_owned(), Some("n2@nhs.net".to_owned()))),
                    message: None,
                },
            ],
        )
        .await
        .unwrap();
    let outcomes = state.outcomes("r1").await.unwrap();
    let summary: Vec<_> = outcomes
        .iter()
        .map(|o| {
            (
                o.line,
                o.state.as_str(),
                o.account.as_str(),
                o.address.as_deref(),
                o.message.as_deref(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            (2, "done", "PA", Some("Sister"), None),
            (4, "failed", "PB", Some("Sister"), Some("changed since")),
            (5, "done", "PN", Some("n2@nhs.net"), None),
            (6, "intended", "PC", Some("Sister"), None),
        ]
    );
    // Both changes of the first operation are done.
    assert_eq!(state.done_changes("r1").await.unwrap().len(), 2);
    let notable: Vec<u64> = state
        .notable_outcomes("r1")
        .await
        .unwrap()
        .iter()
        .map(|o| o.line)
        .collect();
    assert_eq!(notable, [4, 5, 6]);
    // Only the operation not yet recorded is pending.
    let pending = state.pending("r1", 0, 10).await.unwrap();
    assert_eq!(pending.iter().map(|p| p.op()).collect::<Vec<_>>(), [3]);
}

#[tokio::test]
async fn a_plan_made_in_parts_equals_one_made_whole() {
    use push_connector::model::{ExternalSyncId, Person};
    use push_connector::reconcile::{self, Policy};
    use push_connector::validate::{RowOutcome, RowResult};

    let dir = tempfile::tempdir().unwrap();
    let d = LocalDirectory::open(&dir.path().join("directory.sqlite"))
        .await
        .unwrap();
    d.add_organisation("RKK", &[]).await.unwrap();
    let mut seed = Vec::new();
    for i in 0..6 {
        let mut a = account(
            &format!("P{i}"),
            Some(&format!("E{i}")),
            &format!("p{i}@nhs.net"),
        );
        a.set(Field::LastName, Some("Lee"));
        seed.push(a);
    }
    seed.push(account("PJ", Some("EJ"), "jo.brown@nhs.net"));
    d.insert_unchecked(&seed).await.unwrap();
    // Updates, and creates whose generated addresses clash with the directory and with
    // each other across parts.
    let results: Vec<RowResult> = (0..12u64)
        .map(|i| {
            let (ext, first, last) = if i % 2 == 0 {
                (format!("E{}", i / 2), "Alex", "Lee")
            } else {
                (format!("N{i}"), "Jo", "Brown")
            };
            let person = Person {
                line: i + 2,
                id: None,
                external_sync_id: ExternalSyncId::new_unchecked(ext),
                organisation: OdsCode::new_unchecked("RKK"),
                organisation_unit: None,
                email: None,
                title: None,
                first_name: first.into(),
                last_name: last.into(),
                display_name: None,
                job_title: Some(format!("Title {}", i % 3)),
                office_phone: None,
                mobile_phone: None,
                fax: None,
                pager: None,
                notes: None,
                clinical_role: None,
                clinical_speciality: None,
                work_area: None,
                // Six new people named Jo Brown, each said to be new (else the later ones
                // would be refused as likely duplicates of the first).
                new_account: last == "Brown",
            };
            RowResult {
                line: person.line,
                outcome: RowOutcome::Valid(push_connector::model::PackedPerson::from(person)),
            }
        })
        .collect();
    let policy = Policy {
        organisation: OdsCode::new_unchecked("RKK"),
        domain: "nhs.net".to_owned(),
        create_accounts: true,
        blank_means_keep: true,
        name_change_new_address: false,
        channel: Default::default(),
    };
    let index = d
        .index_for(&reconcile::keys(&results, &policy))
        .await
        .unwrap();
    let whole = reconcile::reconcile("r1", &results, &index, &policy);
    for part in [1, 2, 5, 100] {
        let planned = push_connector::pipeline::plan_in_parts(&d, "r1", &results, &policy, part)
            .await
            .unwrap();
        assert_eq!(planned.plan, whole, "parts of {part}");
        assert_eq!(planned.accounts, 7);
    }
    let addresses: Vec<_> = whole
        .rows
        .iter()
        .filter(|r| matches!(r.action, Action::Create { .. }))
        .map(|r| r.message.as_str())
        .collect();
    assert_eq!(
        addresses,
        [
            "jo.brown2@nhs.net",
            "jo.brown3@nhs.net",
            "jo.brown4@nhs.net",
            "jo.brown5@nhs.net",
            "jo.brown6@nhs.net",
            "jo.brown7@nhs.net"
        ]
    );
}

#[tokio::test]
async fn the_index_finds_the_stored_keys_a_damaged_number_meant_in_its_organisation_only() {
    let dir = tempfile::tempdir().unwrap();
    let d = LocalDirectory::open(&dir.path().join("directory.sqlite"))
        .await
        .unwrap();
    d.add_organisation("RKK", &[]).await.unwrap();
    d.add_organisation("RLL", &[]).await.unwrap();
    let mut elsewhere = Account::new(
        PortalId::new_unchecked("PL"),
        Status::Active,
        &OdsCode::new_unchecked("RLL"),
    );
    elsewhere.set(Field::ExternalSyncId, Some("000123"));
    elsewhere.set(Field::Email, Some("l@nhs.net"));
    elsewhere.set(Field::FirstName, Some("Lee"));
    elsewhere.set(Field::LastName, Some("Lane"));
    d.insert_unchecked(&[
        account("PA", Some("000123"), "a@nhs.net"),
        account("PB", Some("0123"), "b@nhs.net"),
        account("PC", Some("A0123"), "c@nhs.net"),
        account("PD", Some("456"), "d@nhs.net"),
        account("PE", Some("0456"), "e@nhs.net"),
        elsewhere,
    ])
    .await
    .unwrap();
    let near = |org: &str, number: &str| Keys {
        external: vec![("RKK".to_owned(), number.to_owned())],
        near_external: vec![(org.to_owned(), numeric_key(number).unwrap())],
        ..Keys::default()
    };
    let index = d.index_for(&near("RKK", "123")).await.unwrap();
    let ids = |accounts: Vec<&Account>| -> Vec<String> {
        accounts.iter().map(|a| a.id.to_string()).collect()
    };
    assert_eq!(ids(index.near_external("RKK", "123")), ["PA", "PB"]);
    assert_eq!(ids(index.near_external("RKK", "123.0")), ["PA", "PB"]);
    assert!(
        index.near_external("RLL", "123").is_empty(),
        "not asked for"
    );
    assert_eq!(index.len(), 2, "neither A0123 nor RLL's key is near");
    // A key that joins exactly needs no near look-up: 0456 is not fetched for 456.
    let index = d.index_for(&near("RKK", "456")).await.unwrap();
    assert_eq!(index.len(), 1);
    assert!(index.near_external("RKK", "456").is_empty());
    let index = d.index_for(&near("RKK", "00456")).await.unwrap();
    assert_eq!(ids(index.near_external("RKK", "00456")), ["PE", "PD"]);
    let index = d
        .index_for(&Keys {
            near_external: vec![("RLL".to_owned(), "123".to_owned())],
            ..Keys::default()
        })
        .await
        .unwrap();
    assert_eq!(ids(index.near_external("RLL", "123")), ["PL"]);
}

#[tokio::test]
async fn the_index_finds_live_namesakes_by_their_folded_name_in_their_organisation() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("directory.sqlite");
    let d = LocalDirectory::open(&path).await.unwrap();
    d.add_organisation("RKK", &[]).await.unwrap();
    d.add_organisation("RLL", &[]).await.unwrap();
    let named = |id: &str, org: &str, first: &str, last: &str, status: Status| {
        let mut a = account(id, None, &format!("{}@nhs.net", id.to_lowercase()));
        a.status = status;
        a.set(Field::Organisation, Some(org));
        a.set(Field::FirstName, Some(first));
        a.set(Field::LastName, Some(last));
        a
    };
    d.insert_unchecked(&[
        named("PA", "RKK", "Siobhán", "O'Neill", Status::Active),
        named("PB", "RKK", "SIOBHAN", "ONEILL", Status::Leaver),
        named("PC", "RLL", "Siobhan", "O Neill", Status::Active),
        named("PD", "RKK", "Bo", "Ng", Status::Pending),
    ])
    .await
    .unwrap();
    let names = Keys {
        names: vec![("RKK".to_owned(), "siobhan|oneill".to_owned())],
        ..Keys::default()
    };
    let ids = |index: &push_connector::model::DirectoryIndex| -> Vec<String> {
        index
            .namesakes("RKK", "siobhan|oneill")
            .iter()
            .map(|a| a.id.to_string())
            .collect()
    };
    let index = d.index_for(&names).await.unwrap();
    assert_eq!(ids(&index), ["PA"], "live, of RKK");
    assert_eq!(index.len(), 1, "nothing else fetched");

    // A rename moves the account's name key with its name.
    let rename = |field: Field, before: &str, after: &str| Change {
        field,
        before: Some(before.to_owned()),
        after: Some(after.to_owned()),
    };
    let outcomes = d
        .apply(&[update(
            "PD",
            vec![
                rename(Field::FirstName, "Bo", "Siobhan"),
                rename(Field::LastName, "Ng", "O'Neill"),
            ],
        )])
        .await
        .unwrap();
    assert!(matches!(outcomes[0], OpOutcome::Updated), "{outcomes:?}");
    assert_eq!(ids(&d.index_for(&names).await.unwrap()), ["PA", "PD"]);

    // A directory written before accounts had name keys gets them when it is opened.
    drop(d);
    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", path.display()))
        .await
        .unwrap();
    sqlx::query("UPDATE accounts SET name_key = NULL")
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;
    let d = LocalDirectory::open(&path).await.unwrap();
    assert_eq!(ids(&d.index_for(&names).await.unwrap()), ["PA", "PD"]);
}

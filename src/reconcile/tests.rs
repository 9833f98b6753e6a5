use super::*;
use crate::model::OrganisationInfo;
use crate::model::{Email, ExternalSyncId};
use crate::report::RowResultKind;
use crate::validate::RowOutcome;

fn org(code: &str) -> OdsCode {
    OdsCode::new_unchecked(code)
}

fn account(id: &str, o: &str, ext: Option<&str>, email: &str, status: Status) -> Account {
    let mut a = Account::new(PortalId::new_unchecked(id), status, &org(o));
    a.set(Field::ExternalSyncId, ext);
    a.set(Field::Email, Some(email));
    a.set(Field::FirstName, Some("Anne"));
    a.set(Field::LastName, Some("Lee"));
    a.set(Field::DisplayName, Some("Lee, Anne (RXX)"));
    a.set(Field::JobTitle, Some("Nurse"));
    a
}

fn person(ext: &str) -> Person {
    Person {
        line: 2,
        id: None,
        external_sync_id: ExternalSyncId::new_unchecked(ext),
        organisation: org("RXX"),
        organisation_unit: None,
        email: None,
        title: None,
        first_name: "Anne".into(),
        last_name: "Lee".into(),
        display_name: None,
        job_title: Some("Nurse".into()),
        office_phone: None,
        mobile_phone: None,
        fax: None,
        pager: None,
        notes: None,
        clinical_role: None,
        clinical_speciality: None,
        work_area: None,
        new_account: false,
    }
}

fn index() -> DirectoryIndex {
    let mut secondary = account("P5", "RXX", Some("E5"), "bo.ng@nhs.net", Status::Active);
    secondary.secondary = vec![Email::new_unchecked("old.ng@nhs.net")];
    let mut idx = DirectoryIndex::new(vec![
        account("P1", "RXX", Some("E1"), "anne.lee@nhs.net", Status::Active),
        account("P2", "RXX", None, "anne.lee2@nhs.net", Status::Pending),
        account("P3", "RYY", Some("E3"), "anne.lee3@nhs.net", Status::Active),
        account("P4", "RXX", Some("E4"), "anne.lee4@nhs.net", Status::Leaver),
        secondary,
    ]);
    idx.add_organisation(
        "RXX",
        OrganisationInfo {
            units: ["RXX01".to_owned()].into_iter().collect(),
            accounts: 4,
        },
    );
    idx
}

fn policy() -> Policy {
    Policy {
        organisation: org("RXX"),
        domain: "nhs.net".into(),
        create_accounts: true,
        blank_means_keep: true,
        name_change_new_address: false,
        channel: Default::default(),
    }
}

fn plan_one(p: Person, policy: &Policy) -> PlannedRow {
    let results = vec![RowResult {
        line: p.line,
        outcome: RowOutcome::Valid(crate::model::PackedPerson::from(p)),
    }];
    let mut plan = reconcile("r", &results, &index(), policy);
    plan.rows.remove(0)
}

fn changed_fields(row: &PlannedRow) -> Vec<Field> {
    match &row.action {
        Action::Update { changes, .. } => changes.iter().map(|c| c.field).collect(),
        _ => Vec::new(),
    }
}

#[test]
fn join_and_policy_cases() {
    type Setup = fn(&mut Person, &mut Policy);
    // (case, setup, expected result, expected text in the message)
    let cases: Vec<(&str, Setup, RowResultKind, &str)> = vec![
        (
            "same values: unchanged",
            |_, _| {},
            RowResultKind::Unchanged,
            "no change",
        ),
        (
            "ExternalSyncID differs only in case: still the same account",
            |p, _| p.external_sync_id = ExternalSyncId::new_unchecked("e1"),
            RowResultKind::Unchanged,
            "P1",
        ),
        (
            "a changed field: update",
            |p, _| p.job_title = Some("Sister".into()),
            RowResultKind::Updated,
            "changed JobTitle",
        ),
        (
            "ID, ExternalSyncID and e-mail agree",
            |p, _| {
                p.id = Some(PortalId::new_unchecked("P1"));
                p.email = Some(Email::new_unchecked("anne.lee@nhs.net"));
            },
            RowResultKind::Unchanged,
            "",
        ),
        (
            "ID names another account than ExternalSyncID: conflict naming both",
            |p, _| p.id = Some(PortalId::new_unchecked("P2")),
            RowResultKind::Rejected,
            "anne.lee2@nhs.net (ID P2) but ExternalSyncID \"E1\" is anne.lee@nhs.net (ID P1)",
        ),
        (
            "e-mail on another account: conflict",
            |p, _| p.email = Some(Email::new_unchecked("anne.lee2@nhs.net")),
            RowResultKind::Rejected,
            "two different accounts",
        ),
        (
            "unknown ID: refused",
            |p, _| p.id = Some(PortalId::new_unchecked("P99")),
            RowResultKind::Rejected,
            "ID \"P99\" is not an account",
        ),
        (
            "joined by e-mail, different ExternalSyncID on the account: conflict",
            |p, _| {
                p.external_sync_id = ExternalSyncId::new_unchecked("X9");
                p.email = Some(Email::new_unchecked("anne.lee@nhs.net"));
            },
            RowResultKind::Rejected,
            "differs from ExternalSyncID \"E1\"",
        ),
        (
            "joined by e-mail, blank ExternalSyncID on the account: filled in",
            |p, _| {
                p.external_sync_id = ExternalSyncId::new_unchecked("E2");
                p.email = Some(Email::new_unchecked("anne.lee2@nhs.net"));
            },
            RowResultKind::Updated,
            "ExternalSyncID",
        ),
        (
            "joined by a secondary address",
            |p, _| {
                p.external_sync_id = ExternalSyncId::new_unchecked("E5");
                p.email = Some(Email::new_unchecked("old.ng@nhs.net"));
            },
            RowResultKind::Updated,
            "bo.ng@nhs.net",
        ),
        (
            "account of another organisation: mover refused",
            |p, _| {
                p.external_sync_id = ExternalSyncId::new_unchecked("X1");
                p.email = Some(Email::new_unchecked("anne.lee3@nhs.net"));
            },
            RowResultKind::Rejected,
            "organisation RYY",
        ),
        (
            "mover by ID",
            |p, _| {
                p.id = Some(PortalId::new_unchecked("P3"));
                p.external_sync_id = ExternalSyncId::new_unchecked("E3");
            },
            RowResultKind::Rejected,
            "transferred in the portal",
        ),
        (
            "leaver refused",
            |p, _| p.external_sync_id = ExternalSyncId::new_unchecked("E4"),
            RowResultKind::Rejected,
            "status is Leaver",
        ),
        (
            "no candidate: create",
            |p, _| p.external_sync_id = ExternalSyncId::new_unchecked("NEW1"),
            RowResultKind::Created,
            "anne.lee5@nhs.net",
        ),
        (
            "no candidate, creation off: refused",
            |p, pol| {
                p.external_sync_id = ExternalSyncId::new_unchecked("NEW1");
                pol.create_accounts = false;
            },
            RowResultKind::Rejected,
            "does not create accounts",
        ),
        (
            "create in a unit that does not exist",
            |p, _| {
                p.external_sync_id = ExternalSyncId::new_unchecked("NEW1");
                p.organisation_unit = Some(org("RXX99"));
            },
            RowResultKind::Rejected,
            "OrganisationUnit \"RXX99\" does not exist",
        ),
        (
            "create in an existing unit",
            |p, _| {
                p.external_sync_id = ExternalSyncId::new_unchecked("NEW1");
                p.organisation_unit = Some(org("RXX01"));
            },
            RowResultKind::Created,
            "",
        ),
        (
            "unit move refused",
            |p, _| p.organisation_unit = Some(org("RXX01")),
            RowResultKind::Rejected,
            "cannot move people between organisation units",
        ),
        (
            "unit given as the organisation itself: no move",
            |p, _| p.organisation_unit = Some(org("RXX")),
            RowResultKind::Unchanged,
            "",
        ),
        (
            "row for another organisation",
            |p, _| p.organisation = org("RYY"),
            RowResultKind::Rejected,
            "this file is for RXX",
        ),
        (
            "blank keeps by default",
            |p, _| p.job_title = None,
            RowResultKind::Unchanged,
            "",
        ),
        (
            "blank clears when configured",
            |p, pol| {
                p.job_title = None;
                pol.blank_means_keep = false;
            },
            RowResultKind::Updated,
            "JobTitle",
        ),
    ];
    for (name, setup, want, text) in cases {
        let mut p = person("E1");
        // P2 (Anne Lee without a key) is another person: the namesake rules have their own
        // cases below.
        p.new_account = true;
        let mut pol = policy();
        setup(&mut p, &mut pol);
        let row = plan_one(p, &pol);
        assert_eq!(row.result(), want, "{name}: {}", row.message);
        assert!(row.message.contains(text), "{name}: {}", row.message);
    }
}

#[test]
fn name_change_regenerates_display_name_and_keeps_address_by_default() {
    let mut p = person("E1");
    p.last_name = "Smith".into();
    let row = plan_one(p.clone(), &policy());
    assert_eq!(
        changed_fields(&row),
        [Field::LastName, Field::DisplayName],
        "{}",
        row.message
    );
    let Action::Update {
        changes, renamed, ..
    } = &row.action
    else {
        panic!("update expected")
    };
    assert!(renamed);
    assert_eq!(changes[1].after.as_deref(), Some("Smith, Anne (RXX)"));
    assert_eq!(changes[1].before.as_deref(), Some("Lee, Anne (RXX)"));

    // A display name in the row wins over the generated one.
    p.display_name = Some("Annie Smith".into());
    let row = plan_one(p.clone(), &policy());
    let Action::Update { changes, .. } = &row.action else {
        panic!("update expected")
    };
    assert_eq!(changes[1].after.as_deref(), Some("Annie Smith"));

    // With the option on, a new primary address.
    let mut pol = policy();
    pol.name_change_new_address = true;
    p.display_name = None;
    let row = plan_one(p, &pol);
    let Action::Update { changes, .. } = &row.action else {
        panic!("update expected")
    };
    let email = changes.iter().find(|c| c.field == Field::Email);
    assert_eq!(
        email.and_then(|c| c.after.as_deref()),
        Some("anne.smith@nhs.net")
    );
}

#[test]
fn creates_get_distinct_addresses_within_one_plan_and_rejected_rows_keep_reasons() {
    // Each a new person besides P2 (Anne Lee without a key).
    let mut a = person("N1");
    a.line = 2;
    a.new_account = true;
    let mut b = person("N2");
    b.line = 3;
    b.new_account = true;
    let mut c = person("N3");
    c.line = 4;
    c.new_account = true;
    c.email = Some(Email::new_unchecked("anne.lee6@nhs.net"));
    let results = vec![
        RowResult {
            line: 2,
            outcome: RowOutcome::Valid(crate::model::PackedPerson::from(a)),
        },
        RowResult {
            line: 3,
            outcome: RowOutcome::Valid(crate::model::PackedPerson::from(b)),
        },
        RowResult {
            line: 4,
            outcome: RowOutcome::Valid(crate::model::PackedPerson::from(c)),
        },
        RowResult {
            line: 5,
            outcome: RowOutcome::Refused(vec![crate::model::RowIssue {
                line: 5,
                column: "MobilePhone".into(),
                value: "0113".into(),
                message: "is not a UK mobile".into(),
            }]),
        },
    ];
    let plan = reconcile("r", &results, &index(), &policy());
    let messages: Vec<&str> = plan.rows.iter().map(|r| r.message.as_str()).collect();
    // anne.lee6 is claimed by line 4's own address, so line 3 skips it.
    assert_eq!(
        messages,
        [
            "anne.lee5@nhs.net",
            "anne.lee7@nhs.net",
            "anne.lee6@nhs.net",
            "MobilePhone \"0113\" is not a UK mobile"
        ]
    );
    let Action::Create { account } = &plan.rows[0].action else {
        panic!("create expected")
    };
    assert_eq!(account.get(Field::DisplayName), Some("Lee, Anne (RXX)"));
    assert_eq!(account.status, Status::Active);
}

/// An index of RXX holding keys of digits only, beside one of another organisation.
fn numeric_index() -> DirectoryIndex {
    let mut idx = DirectoryIndex::new(vec![
        account(
            "P1",
            "RXX",
            Some("000123"),
            "anne.lee@nhs.net",
            Status::Active,
        ),
        account(
            "P2",
            "RXX",
            Some("123000000000"),
            "bo.ng@nhs.net",
            Status::Active,
        ),
        account("P3", "RXX", Some("456"), "cy.ray@nhs.net", Status::Active),
        account("P4", "RXX", Some("0456"), "di.fox@nhs.net", Status::Active),
        account(
            "P5",
            "RYY",
            Some("000789"),
            "ed.kay@nhs.net",
            Status::Active,
        ),
        account(
            "P6",
            "RXX",
            Some("A0123"),
            "fay.orr@nhs.net",
            Status::Active,
        ),
    ]);
    for code in ["RXX", "RYY"] {
        idx.add_organisation(code, OrganisationInfo::default());
    }
    idx
}

#[test]
fn keys_a_spreadsheet_damaged_are_refused_naming_the_account_meant() {
    // (sent ExternalSyncID, expected result, expected text in the message)
    let cases = [
        (
            "123",
            RowResultKind::Rejected,
            "Excel removes leading zeros when it opens a CSV; the account with ExternalSyncID \
             000123 is anne.lee@nhs.net (ID P1): format the column as text",
        ),
        (
            "0123",
            RowResultKind::Rejected,
            "ExternalSyncID 000123 is anne.lee@nhs.net",
        ),
        (
            "123.0",
            RowResultKind::Rejected,
            "writes it back with a decimal part; the account with ExternalSyncID 000123",
        ),
        (
            "123000000000.0",
            RowResultKind::Rejected,
            "ExternalSyncID 123000000000 is bo.ng@nhs.net (ID P2)",
        ),
        (
            "1.23E+11",
            RowResultKind::Rejected,
            "Excel shortens a long number to scientific notation",
        ),
        (
            "00456",
            RowResultKind::Rejected,
            "differs from a stored key only in its leading zeros; the account with \
             ExternalSyncID 0456 is di.fox@nhs.net (ID P4); the account with ExternalSyncID 456 \
             is cy.ray@nhs.net (ID P3)",
        ),
        // An exact key joins as always: no refusal for its near neighbours.
        ("456", RowResultKind::Updated, "cy.ray@nhs.net"),
        ("000123", RowResultKind::Updated, "anne.lee@nhs.net"),
        // Another organisation's key, a key with letters, another number: a new account.
        ("789", RowResultKind::Created, ""),
        ("0123A", RowResultKind::Created, ""),
        ("1234", RowResultKind::Created, ""),
        ("123.5", RowResultKind::Created, ""),
    ];
    for (sent, kind, text) in cases {
        let mut p = person(sent);
        p.first_name = "Zed".into();
        let results = vec![RowResult {
            line: 2,
            outcome: RowOutcome::Valid(crate::model::PackedPerson::from(p)),
        }];
        let plan = reconcile("r", &results, &numeric_index(), &policy());
        let row = &plan.rows[0];
        assert_eq!(row.result(), kind, "{sent}: {}", row.message);
        assert!(row.message.contains(text), "{sent}: {}", row.message);
        if kind == RowResultKind::Rejected {
            assert!(
                row.message.contains("nothing was created"),
                "{}",
                row.message
            );
        }
    }
}

#[test]
fn the_keys_of_a_file_ask_for_the_near_keys_of_numeric_ids() {
    let rows: Vec<RowResult> = ["000123", "123.0", "E12", "1.23E+11"]
        .iter()
        .enumerate()
        .map(|(i, ext)| RowResult {
            line: i as u64 + 2,
            outcome: RowOutcome::Valid(crate::model::PackedPerson::from(person(ext))),
        })
        .collect();
    let near = keys(&rows, &policy()).near_external;
    let want: Vec<(String, String)> = [("RXX", "123"), ("RXX", "123"), ("RXX", "123000000000")]
        .iter()
        .map(|(o, n)| (o.to_string(), n.to_string()))
        .collect();
    assert_eq!(near, want);
}

/// Accounts for the likely-duplicate rules: one of each status and kind of key.
fn namesake_index() -> DirectoryIndex {
    let named = |id: &str, o: &str, ext: Option<&str>, first: &str, last: &str, status| {
        let mut a = account(
            id,
            o,
            ext,
            &format!("{}@nhs.net", id.to_lowercase()),
            status,
        );
        a.set(Field::FirstName, Some(first));
        a.set(Field::LastName, Some(last));
        a
    };
    let mut idx = DirectoryIndex::new(vec![
        named("P10", "RXX", None, "Siobhán", "O'Neill", Status::Active),
        named("P11", "RXX", Some("H11"), "Bo", "Ng", Status::Active),
        named("P12", "RXX", None, "Cy", "Ray", Status::Leaver),
        named("P13", "RXX", None, "Di", "Fox", Status::Deleted),
        named("P14", "RYY", None, "Ed", "Moss", Status::Active),
        named("P15", "RXX", None, "Fay", "Hill", Status::Pending),
        named("P16", "RXX", None, "Gil", "Hart", Status::Active),
        named("P17", "RXX", None, "Gil", "Hart", Status::Active),
    ]);
    idx.add_organisation("RXX", OrganisationInfo::default());
    idx
}

#[test]
fn a_row_that_would_create_a_namesake_of_an_account_without_a_key_is_refused() {
    type Setup = fn(&mut Person, &mut Policy);
    let file = "possibly the same person as p10@nhs.net (ID P10), an account of the same name \
                without an ExternalSyncID, so nothing was created: to update that account, put \
                its ID P10 in the row's ID column; if this is another person with the same \
                name, set the row's NewAccount column to yes";
    // (case, first name, last name, setup, result, the whole message when refused)
    let cases: Vec<(&str, &str, &str, Setup, RowResultKind, &str)> = vec![
        (
            "the same spelling",
            "Siobhán",
            "O'Neill",
            |_, _| {},
            RowResultKind::Rejected,
            file,
        ),
        (
            "case, accents, punctuation",
            "SIOBHAN",
            "O NEILL",
            |_, _| {},
            RowResultKind::Rejected,
            file,
        ),
        (
            "folded to letters",
            "siobhan",
            "oneill",
            |_, _| {},
            RowResultKind::Rejected,
            file,
        ),
        (
            "NewAccount yes",
            "Siobhan",
            "ONeill",
            |p, _| p.new_account = true,
            RowResultKind::Created,
            "",
        ),
        (
            "a SCIM write asks for a new User",
            "Siobhan",
            "ONeill",
            |_, pol| pol.channel = Channel::Scim,
            RowResultKind::Created,
            "",
        ),
        (
            "another first name",
            "Sinead",
            "O'Neill",
            |_, _| {},
            RowResultKind::Created,
            "",
        ),
        (
            "the namesake has its own ExternalSyncID",
            "Bo",
            "Ng",
            |_, _| {},
            RowResultKind::Created,
            "",
        ),
        (
            "a leaver does not count",
            "Cy",
            "Ray",
            |_, _| {},
            RowResultKind::Created,
            "",
        ),
        (
            "a deleted account does not count",
            "Di",
            "Fox",
            |_, _| {},
            RowResultKind::Created,
            "",
        ),
        (
            "another organisation's account does not count",
            "Ed",
            "Moss",
            |_, _| {},
            RowResultKind::Created,
            "",
        ),
        (
            "a pending account counts",
            "Fay",
            "Hill",
            |_, _| {},
            RowResultKind::Rejected,
            "possibly the same person as p15@nhs.net (ID P15), an account of the same name",
        ),
        (
            "two namesakes are both named",
            "Gil",
            "Hart",
            |_, _| {},
            RowResultKind::Rejected,
            "possibly the same person as p16@nhs.net (ID P16) or p17@nhs.net (ID P17), accounts \
             of the same name without an ExternalSyncID, so nothing was created: to update that \
             account, put its ID P16 in",
        ),
        (
            "creation off: the namesake is said rather than asking the helpdesk for a duplicate",
            "Siobhan",
            "O'Neill",
            |_, pol| pol.create_accounts = false,
            RowResultKind::Rejected,
            file,
        ),
        (
            "a sync names its mapped attributes",
            "Siobhan",
            "O'Neill",
            |_, pol| {
                pol.channel = Channel::Sync {
                    attributes: vec![(Field::Id, "employeeid".into())],
                    new_account: Some("extensionattribute9".into()),
                }
            },
            RowResultKind::Rejected,
            "so nothing was created: to update that account, write its ID P10 to this entry's \
             attribute employeeid; if this is another person with the same name, set this \
             entry's attribute extensionattribute9 to yes",
        ),
        (
            "a sync without ID or NewAccount mapped",
            "Siobhan",
            "O'Neill",
            |_, pol| {
                pol.channel = Channel::Sync {
                    attributes: vec![(Field::Email, "mail".into())],
                    new_account: None,
                }
            },
            RowResultKind::Rejected,
            "write its address p10@nhs.net to this entry's attribute mail; if this is another \
             person with the same name, map NewAccount to an attribute and set it to yes on this \
             entry",
        ),
    ];
    for (case, first, last, setup, kind, text) in cases {
        let mut p = person("NEW1");
        p.first_name = first.into();
        p.last_name = last.into();
        let mut pol = policy();
        setup(&mut p, &mut pol);
        let results = vec![RowResult {
            line: 2,
            outcome: RowOutcome::Valid(crate::model::PackedPerson::from(p)),
        }];
        let row = reconcile("r", &results, &namesake_index(), &pol)
            .rows
            .remove(0);
        assert_eq!(row.result(), kind, "{case}: {}", row.message);
        if kind == RowResultKind::Rejected {
            assert!(row.message.contains(text), "{case}: {}", row.message);
            assert!(row.message.starts_with(LIKELY_DUPLICATE), "{case}");
        }
    }
}

#[test]
fn a_second_row_of_one_file_creating_the_same_name_is_a_likely_duplicate() {
    let rows = |first: &str, last: &str, second_is_new: bool| -> Vec<RowResult> {
        ["HR1", "HR2"]
            .iter()
            .enumerate()
            .map(|(i, ext)| {
                let mut p = person(ext);
                p.line = i as u64 + 2;
                p.first_name = first.into();
                p.last_name = last.into();
                p.new_account = second_is_new && i == 1;
                RowResult {
                    line: p.line,
                    outcome: RowOutcome::Valid(crate::model::PackedPerson::from(p)),
                }
            })
            .collect()
    };
    // No account of the name: the first row is created, the second (the same name folded,
    // another key) is refused naming the first, with both ways out.
    let plan = reconcile(
        "r",
        &rows("Zoë", "Brontë", false),
        &namesake_index(),
        &policy(),
    );
    assert_eq!(plan.rows[0].message, "zoe.bronte@nhs.net");
    assert_eq!(plan.rows[1].result(), RowResultKind::Rejected);
    assert_eq!(
        plan.rows[1].message,
        "possibly the same person as line 2 of this file (Zoë Brontë, ExternalSyncID HR1), \
         which gives the same name, so nothing was created for this row: if it is the same \
         person, keep one of the two rows; if it is another person with the same name, set this \
         row's NewAccount column to yes"
    );
    // NewAccount yes on the second: two people, two addresses.
    let plan = reconcile(
        "r",
        &rows("Zoe", "Bronte", true),
        &namesake_index(),
        &policy(),
    );
    let made: Vec<&str> = plan.rows.iter().map(|r| r.message.as_str()).collect();
    assert_eq!(made, ["zoe.bronte@nhs.net", "zoe.bronte2@nhs.net"]);
    // A sync's entries are distinct objects of its own directory: both are created.
    let sync = Policy {
        channel: Channel::Sync {
            attributes: Vec::new(),
            new_account: None,
        },
        ..policy()
    };
    let plan = reconcile("r", &rows("Zoë", "Brontë", false), &namesake_index(), &sync);
    assert_eq!(plan.counts().created, 2);
    // Planned in parts, the second part still knows the first part's creates.
    let all = rows("Zoë", "Brontë", false);
    let mut allocated = Allocated::new(&all);
    let mut parted = reconcile_part(&all[..1], &namesake_index(), &policy(), &mut allocated);
    parted.extend(reconcile_part(
        &all[1..],
        &namesake_index(),
        &policy(),
        &mut allocated,
    ));
    assert_eq!(
        parted,
        reconcile("r", &all, &namesake_index(), &policy()).rows
    );
    // An account of the name without a key: each row may be that person, so both are refused.
    let plan = reconcile(
        "r",
        &rows("Siobhan", "O'Neill", false),
        &namesake_index(),
        &policy(),
    );
    for row in &plan.rows {
        assert_eq!(row.result(), RowResultKind::Rejected, "{}", row.message);
        assert!(row.message.contains("(ID P10)"), "{}", row.message);
    }
}

#[test]
fn only_rows_that_would_create_ask_for_their_namesakes() {
    let mut joined = person("H11");
    joined.first_name = "Bo".into();
    joined.last_name = "Ng".into();
    let mut by_email = person("X1");
    by_email.email = Some(Email::new_unchecked("p10@nhs.net"));
    let mut new = person("X2");
    new.first_name = "Siobhán".into();
    new.last_name = "O'Neill".into();
    let mut said_new = person("X3");
    said_new.new_account = true;
    let results: Vec<RowResult> = [joined, by_email, new, said_new]
        .into_iter()
        .map(|p| RowResult {
            line: p.line,
            outcome: RowOutcome::Valid(crate::model::PackedPerson::from(p)),
        })
        .collect();
    assert_eq!(
        name_keys(&results, &namesake_index(), &policy()),
        [("RXX".to_owned(), "siobhan|oneill".to_owned())]
    );
    let mut scim = policy();
    scim.channel = Channel::Scim;
    assert!(name_keys(&results, &namesake_index(), &scim).is_empty());
}

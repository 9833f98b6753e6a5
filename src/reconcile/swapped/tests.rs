use super::*;
use crate::model::{Account, ExternalSyncId, OdsCode, Person, PortalId, Status};

const NAMES: [(&str, &str); 6] = [
    ("Anne", "Lee"),
    ("Siobhán", "O'Neill"),
    ("Bo", "Ng"),
    ("Cy", "Ray"),
    ("Di", "Fox"),
    ("Ed", "Moss"),
];

fn policy(channel: Channel) -> Policy {
    Policy {
        organisation: OdsCode::new_unchecked("RXX"),
        domain: "nhs.net".into(),
        create_accounts: true,
        blank_means_keep: true,
        name_change_new_address: false,
        channel,
    }
}

/// An account per name, E1… as keys, with office and mobile numbers.
fn index() -> DirectoryIndex {
    DirectoryIndex::new(
        NAMES
            .iter()
            .enumerate()
            .map(|(i, (first, last))| {
                let mut a = Account::new(
                    PortalId::new_unchecked(format!("P{i}")),
                    Status::Active,
                    &OdsCode::new_unchecked("RXX"),
                );
                a.set(Field::ExternalSyncId, Some(&format!("E{i}")));
                a.set(Field::FirstName, Some(first));
                a.set(Field::LastName, Some(last));
                a.set(Field::Email, Some(&format!("p{i}@nhs.net")));
                a.set(Field::OfficePhone, Some(&format!("020 7946 00{i:02}")));
                a.set(Field::MobilePhone, Some(&format!("07700 9000{i:02}")));
                a
            })
            .collect(),
    )
}

/// Rows for the accounts, the first `swapped` with first and last name (or office and mobile
/// number) exchanged, as a spreadsheet with its columns the other way round gives them.
fn rows(swapped: usize, phones: bool, accounts: usize) -> Vec<RowResult> {
    (0..accounts)
        .map(|i| {
            let (mut first, mut last) = (NAMES[i].0.to_owned(), NAMES[i].1.to_owned());
            let (mut office, mut mobile) =
                (format!("020 7946 00{i:02}"), format!("07700 9000{i:02}"));
            if i < swapped {
                if phones {
                    std::mem::swap(&mut office, &mut mobile);
                } else {
                    // Folded: case, accents and punctuation do not hide a swap.
                    (first, last) = (last.to_uppercase().replace('\'', " "), first);
                }
            }
            let p = Person {
                line: i as u64 + 2,
                id: None,
                external_sync_id: ExternalSyncId::new_unchecked(format!("E{i}")),
                organisation: OdsCode::new_unchecked("RXX"),
                organisation_unit: None,
                email: None,
                title: None,
                first_name: first,
                last_name: last,
                display_name: None,
                job_title: None,
                office_phone: Some(crate::model::Phone::new_unchecked(office)),
                mobile_phone: Some(crate::model::Phone::new_unchecked(mobile)),
                fax: None,
                pager: None,
                notes: None,
                clinical_role: None,
                clinical_speciality: None,
                work_area: None,
                new_account: false,
            };
            RowResult {
                line: p.line,
                outcome: RowOutcome::Valid(crate::model::PackedPerson::from(p)),
            }
        })
        .collect()
}

#[test]
fn most_joined_rows_exchanged_make_a_swapped_file_and_a_few_do_not() {
    // (case, swapped rows, phones, rows, the pair found with its counts)
    type Found = Option<((Field, Field), u64, u64)>;
    let cases: Vec<(&str, usize, bool, usize, Found)> = vec![
        ("no row swapped", 0, false, 6, None),
        ("one \"Lee Anne\" is a rename", 1, false, 6, None),
        ("half is not most", 3, false, 6, None),
        (
            "four of six names",
            4,
            false,
            6,
            Some(((Field::FirstName, Field::LastName), 4, 6)),
        ),
        (
            "every name",
            6,
            false,
            6,
            Some(((Field::FirstName, Field::LastName), 6, 6)),
        ),
        ("two of two is fewer than three", 2, false, 2, None),
        (
            "office and mobile exchanged",
            5,
            true,
            6,
            Some(((Field::OfficePhone, Field::MobilePhone), 5, 6)),
        ),
    ];
    for (case, swapped, phones, n, want) in cases {
        let mut tally = Tally::default();
        let results = rows(swapped, phones, n);
        // Two parts, as a large file is planned: the counts carry over.
        let (a, b) = results.split_at(n / 2);
        tally.add(a, &index(), &policy(Channel::File));
        tally.add(b, &index(), &policy(Channel::File));
        let got = tally.verdict().map(|s| (s.fields, s.swapped, s.comparable));
        assert_eq!(got, want, "{case}");
    }
}

#[test]
fn rows_that_join_no_account_and_scim_writes_are_not_counted() {
    let mut results = rows(6, false, 6);
    for r in &mut results {
        if let RowOutcome::Valid(p) = &mut r.outcome {
            let mut person = p.person();
            person.external_sync_id = ExternalSyncId::new_unchecked(format!("NEW-{}", r.line));
            *p = PackedPerson::pack(&person);
        }
    }
    let mut tally = Tally::default();
    tally.add(&results, &index(), &policy(Channel::File));
    assert_eq!(tally.verdict(), None);
    let mut tally = Tally::default();
    tally.add(&rows(6, false, 6), &index(), &policy(Channel::Scim));
    assert_eq!(tally.verdict(), None);
}

#[test]
fn the_refusal_names_the_columns_or_the_mapped_attributes_with_examples() {
    let mut tally = Tally::default();
    tally.add(&rows(5, false, 6), &index(), &policy(Channel::File));
    let swapped = tally.verdict().unwrap();
    assert_eq!(
        swapped.refusal(&Channel::File),
        "the FirstName and LastName columns look swapped: 5 of 6 rows that match an account \
         give them the other way round (line 2 gives FirstName \"LEE\" and LastName \"Anne\" \
         for p0@nhs.net (ID P0); line 3 gives FirstName \"O NEILL\" and LastName \"Siobhán\" \
         for p1@nhs.net (ID P1); line 4 gives FirstName \"NG\" and LastName \"Bo\" for \
         p2@nhs.net (ID P2)); every row is refused: put each value in its own column and send \
         the file again"
    );
    let sync = Channel::Sync {
        attributes: vec![
            (Field::FirstName, "sn".into()),
            (Field::LastName, "givenname".into()),
        ],
        new_account: None,
    };
    assert_eq!(
        swapped.row_message(&sync),
        "every row is refused: the attributes sn (mapped to FirstName) and givenname (mapped to \
         LastName) look swapped (5 of 6 rows that match an account give them the other way \
         round)"
    );
    assert!(
        swapped
            .refusal(&sync)
            .ends_with("correct the source's mapping and run the sync again")
    );
}

//! Row rules, end to end from file text to verdicts.

use super::*;
use crate::formats;

const HEAD: &str =
    "ExternalSyncID,FirstName,LastName,Organisation,Email,MobilePhone,OfficePhone,Title,WorkArea";

fn check(rows: &str) -> Vec<RowResult> {
    let sub =
        formats::read(format!("{HEAD}\n{rows}").as_bytes(), &Limits::default()).expect("readable");
    validate(&sub, &Rules::default())
}

fn messages(r: &RowResult) -> Vec<String> {
    r.issues()
        .iter()
        .map(|i| format!("{}|{}|{}", i.column, i.value, i.message))
        .collect()
}

#[test]
fn a_clean_row_is_normalised() {
    let r = check(
        "E1, anne ,O\u{2019}Brien,rxx,Anne.OBrien@NHS.net,07911 123456,0113 496 0123,dr.,Ward 1; Ward 2;Ward 1\n",
    );
    let RowOutcome::Valid(p) = &r[0].outcome else {
        panic!("{:?}", r[0])
    };
    let p = &p.person();
    assert_eq!(p.first_name, "anne");
    assert_eq!(p.last_name, "O'Brien");
    assert_eq!(p.organisation.as_str(), "RXX");
    assert_eq!(p.email.as_ref().unwrap().as_str(), "anne.obrien@nhs.net");
    assert_eq!(p.mobile_phone.as_ref().unwrap().as_str(), "+447911123456");
    assert_eq!(p.office_phone.as_ref().unwrap().as_str(), "+441134960123");
    assert_eq!(p.title.as_deref(), Some("Dr"));
    assert_eq!(
        p.work_area.as_deref(),
        Some(&["Ward 1".to_owned(), "Ward 2".to_owned()][..])
    );
    assert_eq!(p.line, 2);
}

#[test]
fn every_problem_of_a_row_is_reported_with_its_position() {
    let r = check(",=SUM(A1),Lee2,R-X,someone@gmail.com,0113 496 0123,12,Captain,\n");
    let m = messages(&r[0]);
    assert!(
        m.iter()
            .any(|m| m.starts_with("ExternalSyncID||is required")),
        "{m:?}"
    );
    assert!(
        m.iter()
            .any(|m| m.starts_with("FirstName|=SUM(A1)|") && m.contains("formula"))
    );
    assert!(
        m.iter()
            .any(|m| m.starts_with("LastName|Lee2|contains '2'"))
    );
    assert!(
        m.iter()
            .any(|m| m.starts_with("Organisation|R-X|is not an ODS code"))
    );
    assert!(
        m.iter()
            .any(|m| m.starts_with("Email|someone@gmail.com|") && m.contains("contacts"))
    );
    assert!(
        m.iter()
            .any(|m| m.starts_with("MobilePhone|0113 496 0123|is a landline number, not a mobile"))
    );
    assert!(m.iter().any(|m| m.starts_with("OfficePhone|12|")));
    assert!(m.iter().any(|m| m.starts_with("Title|Captain|")));
    assert_eq!(m.len(), 8, "{m:?}");
    assert!(r[0].issues().iter().all(|i| i.line == 2));
}

#[test]
fn duplicates_inside_a_file_refuse_every_row_naming_the_others() {
    let r = check(
        "E1,Ann,Lee,RXX,ann.lee@nhs.net,,,,\nE2,Bo,Ng,RXX,ANN.LEE@nhs.net,,,,\ne1,Cy,Day,RXX,,,,,\nE4,Di,Fox,RXX,,,,,\n",
    );
    assert!(!r[0].is_valid() && !r[1].is_valid() && !r[2].is_valid());
    assert!(r[3].is_valid());
    let m0 = messages(&r[0]).join("\n");
    assert!(
        m0.contains("is also claimed by line 3 of this file"),
        "{m0}"
    );
    assert!(
        m0.contains("is also claimed by line 4 of this file"),
        "{m0}"
    );
    assert!(
        messages(&r[1])
            .join("\n")
            .contains("is also claimed by line 2 of this file")
    );
}

#[test]
fn spreadsheet_damage_is_recovered_or_refused() {
    let r = check("1.23457E+11,Ann,Lee,RXX,,7911123456,,,\n");
    let m = messages(&r[0]);
    assert_eq!(m.len(), 1, "{m:?}");
    assert!(m[0].starts_with("ExternalSyncID|1.23457E+11|") && m[0].contains("scientific"));
    let r = check("123456789012,Ann,Lee,RXX,,7911123456,,,\n");
    let RowOutcome::Valid(p) = &r[0].outcome else {
        panic!("{:?}", r[0])
    };
    let p = &p.person();
    assert_eq!(p.external_sync_id.as_str(), "123456789012");
    assert_eq!(p.mobile_phone.as_ref().unwrap().as_str(), "+447911123456");
}

#[test]
fn code_lists_are_enforced_when_configured() {
    let sub = formats::read(
        format!("{HEAD}\nE1,Ann,Lee,RXX,,,,,ward 1;Moon Base\n").as_bytes(),
        &Limits::default(),
    )
    .unwrap();
    let rules = Rules {
        work_areas: Some(CodeList::new(["Ward 1", "Theatres"])),
        ..Rules::default()
    };
    let r = validate(&sub, &rules);
    let m = messages(&r[0]);
    assert_eq!(
        m,
        [
            "WorkArea|ward 1;Moon Base|holds \"Moon Base\", which is not on the list of accepted values"
        ]
    );
}

#[test]
fn control_characters_are_refused() {
    let r = check("E1,Ann\u{1},Lee,RXX,,,,,\n");
    assert!(messages(&r[0])[0].contains("U+0001"));
}

#[test]
fn old_format_connector_must_match_the_configured_one() {
    let file = "Connector,Wrong Name\nOrganisation Code,Local Unique Identifier,First Name,Last Name\nRXX,1,Ann,Lee\nRYY,2,Bo,Ng\n";
    let sub = formats::read(file.as_bytes(), &Limits::default()).unwrap();
    let rules = Rules {
        connectors: HashMap::from([("RXX".to_owned(), "RXX Connector".to_owned())]),
        ..Rules::default()
    };
    let r = validate(&sub, &rules);
    assert!(messages(&r[0])[0].contains("names the connector \"Wrong Name\""));
    assert!(
        r[1].is_valid(),
        "an organisation without a configured connector name is not checked"
    );
}

#[test]
fn a_service_domain_covers_its_sub_domains_unless_configured_otherwise() {
    let sub = formats::read(
        format!(
            "{HEAD}\nE1,Ann,Lee,RXX,ann.lee@xyz.nhs.net,,,,\nE2,Bo,Ng,RXX,bo.ng@evilnhs.net,,,,\n"
        )
        .as_bytes(),
        &Limits::default(),
    )
    .unwrap();
    let r = validate(&sub, &Rules::default());
    assert!(r[0].is_valid(), "{:?}", messages(&r[0]));
    assert!(messages(&r[1])[0].contains("outside the service domain"));
    let exact = Rules {
        subdomains: false,
        ..Rules::default()
    };
    let r = validate(&sub, &exact);
    assert!(messages(&r[0])[0].contains("outside the service domain (nhs.net)"));
}

#[test]
fn an_unknown_code_is_quoted_once_with_close_values() {
    let sub = formats::read(
        format!("{HEAD}\nE1,Ann,Lee,RXX,,,,,Theatre\n").as_bytes(),
        &Limits::default(),
    )
    .unwrap();
    let rules = Rules {
        work_areas: Some(CodeList::new(["Ward 1", "Theatres"])),
        ..Rules::default()
    };
    let r = validate(&sub, &rules);
    assert_eq!(
        messages(&r[0]),
        [
            "WorkArea|Theatre|is not on the list of accepted values (for \"Theatre\" perhaps \"Theatres\")"
        ]
    );
}

#[test]
fn a_cell_read_in_the_wrong_encoding_is_refused_and_never_kept() {
    for (row, column, value) in [
        (
            "E1,Jos\u{c3}\u{a9},Lee,RXX,,,,,\n",
            "FirstName",
            "Jos\u{c3}\u{a9}",
        ),
        (
            "E1,Ann,M\u{c3}\u{bc}ller,RXX,,,,,\n",
            "LastName",
            "M\u{c3}\u{bc}ller",
        ),
        (
            "E1,Ann,Lee,RXX,,,,,Ward 1 \u{e2}\u{20ac}\u{201c} nights\n",
            "WorkArea",
            "Ward 1 \u{e2}\u{20ac}\u{201c} nights",
        ),
        (
            "E1,Ann\u{c2}\u{a0}Marie,Lee,RXX,,,,,\n",
            "FirstName",
            "Ann\u{c2}\u{a0}Marie",
        ),
        ("E1,Ann,Le\u{fffd},RXX,,,,,\n", "LastName", "Le\u{fffd}"),
    ] {
        let r = check(row);
        assert!(!r[0].is_valid(), "{row}");
        let issues = r[0].issues();
        assert_eq!(issues.len(), 1, "{issues:?}");
        assert_eq!(
            (issues[0].column.as_str(), issues[0].value.as_str()),
            (column, value)
        );
        assert_eq!(issues[0].line, 2);
        assert!(
            issues[0].message.ends_with(text::ENCODING_REMEDY),
            "{issues:?}"
        );
    }
    for ok in [
        "Zo\u{eb}",
        "Jos\u{e9}",
        "M\u{fc}ller",
        "\u{d3} Briain",
        "Si\u{e2}n",
    ] {
        let r = check(&format!("E1,{ok},{ok},RXX,,,,,\n"));
        assert!(r[0].is_valid(), "{ok}: {:?}", r[0]);
    }
}

#[test]
fn the_benchmark_files_raise_no_encoding_alarm() {
    // Accented names (Zoë, Siân, José, Łukasz, Brontë, Ó Súilleabháin) and "Mon–Wed" notes.
    let file = crate::bench::submission(20_000, 7);
    let sub = formats::read(&file, &Limits::default()).expect("readable");
    let results = validate(&sub, &Rules::default());
    assert_eq!(results.len(), 20_000);
    let alarms = results
        .iter()
        .flat_map(|r| r.issues())
        .filter(|i| i.message.ends_with(text::ENCODING_REMEDY))
        .count();
    assert_eq!(alarms, 0);
    assert!(results.iter().filter(|r| r.is_valid()).count() > 19_000);
}

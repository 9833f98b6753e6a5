//! The administrators' guide (docs/formats.md) says what the readers do: every column and
//! alias its tables list is recognised as the field it names.

// Test code: a failure is a panic.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use push_connector::formats::{self, Column, Layout};

/// The rows of the markdown table under a heading: cells split on `|`.
fn table(doc: &str, heading: &str) -> Vec<Vec<String>> {
    let section = doc
        .split("\n## ")
        .find(|s| s.starts_with(heading))
        .unwrap_or_else(|| panic!("docs/formats.md has no section {heading}"));
    section
        .lines()
        .filter(|l| l.starts_with('|') && !l.starts_with("|---"))
        .skip(1)
        .map(|l| {
            l.trim_matches('|')
                .split('|')
                .map(|c| c.trim().to_owned())
                .collect()
        })
        .collect()
}

/// How the reader takes `header` in a file whose other columns are the layout's mandatory
/// ones, less the one `header` stands for.
fn column_of(header: &str, stands_for: &str, mandatory: &[&str]) -> (Layout, Column) {
    let rest: Vec<&str> = mandatory
        .iter()
        .copied()
        .filter(|m| *m != stands_for)
        .collect();
    let file = format!("{header},{}\r\n", rest.join(","));
    let sub = formats::read(file.as_bytes(), &formats::Limits::default())
        .unwrap_or_else(|e| panic!("{header}: {e}"));
    (sub.layout, sub.columns[0])
}

#[test]
fn every_documented_header_is_read_as_documented() {
    let doc = std::fs::read_to_string(common::root().join("docs/formats.md")).unwrap();
    let new = table(&doc, "New format");
    assert!(new.len() >= 18, "{new:?}");
    for row in &new {
        let field = &row[0];
        let names = std::iter::once(field.as_str())
            .chain(row[1].split(',').map(str::trim).filter(|a| !a.is_empty()));
        for name in names {
            let (layout, column) = column_of(
                name,
                field,
                &["ExternalSyncID", "FirstName", "LastName", "Organisation"],
            );
            assert_eq!(layout, Layout::New, "{name}");
            match column {
                Column::Field(f) => assert_eq!(f.name(), field, "{name} is read as {}", f.name()),
                Column::NewAccount => assert_eq!(field, "NewAccount", "{name}"),
                other => panic!("{name} is read as {other:?}, the guide says {field}"),
            }
        }
    }
    let old = table(&doc, "Old format");
    assert!(old.len() >= 16, "{old:?}");
    for row in &old {
        let (layout, column) = column_of(
            &row[0],
            &row[0],
            &[
                "Organisation Code",
                "Local Unique Identifier",
                "First Name",
                "Last Name",
            ],
        );
        assert_eq!(layout, Layout::Old, "{}", row[0]);
        match column {
            Column::Field(f) => assert_eq!(f.name(), row[1], "{}", row[0]),
            Column::Ignored => assert!(row[1].starts_with("no portal field"), "{}", row[0]),
            Column::NewAccount => assert_eq!(row[1], "NewAccount", "{}", row[0]),
            Column::Unknown => panic!("{} is not known to the reader", row[0]),
        }
    }
}

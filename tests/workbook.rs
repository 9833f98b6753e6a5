//! Workbooks: numbers Excel stored as numbers come back as exact digits or are refused.
//!
//! `samples/messy/numeric-ids.xlsx` is made by [`numeric_ids_workbook`]; `UPDATE_GOLDEN=1`
//! (or its absence) writes it again.

// Test code: a failure is a panic.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use push_connector::formats::{self, Container, WorkbookKind};
use push_connector::validate::{self, Rules};
use rust_xlsxwriter::Workbook;

fn numeric_ids_workbook() -> Vec<u8> {
    let mut book = Workbook::new();
    let sheet = book.add_worksheet();
    // Two empty rows before the header: the header is the first non-empty row.
    let header = [
        "ID",
        "ExternalSyncID",
        "FirstName",
        "LastName",
        "Organisation",
        "MobilePhone",
        "OfficePhone",
    ];
    for (c, h) in header.iter().enumerate() {
        sheet.write_string(2, c as u16, *h).unwrap();
    }
    // Row 4: IDs and phones typed into cells formatted as numbers.
    sheet.write_number(3, 0, 123456789012.0).unwrap();
    sheet.write_number(3, 1, 987654321098.0).unwrap();
    sheet.write_string(3, 2, "Anne").unwrap();
    sheet.write_string(3, 3, "Lee").unwrap();
    sheet.write_string(3, 4, "RXX").unwrap();
    sheet.write_number(3, 5, 7911023456.0).unwrap();
    sheet.write_number(3, 6, 1134960123.0).unwrap();
    // Row 5: an ExternalSyncID too large for a double to keep every digit.
    sheet.write_number(4, 1, 12345678901234567890.0).unwrap();
    sheet.write_string(4, 2, "Bo").unwrap();
    sheet.write_string(4, 3, "Ng").unwrap();
    sheet.write_string(4, 4, "RXX").unwrap();
    // Row 6: the same key as text, and a phone that is not a UK number.
    sheet.write_string(5, 1, "E-77").unwrap();
    sheet.write_string(5, 2, "Cy").unwrap();
    sheet.write_string(5, 3, "Day").unwrap();
    sheet.write_string(5, 4, "rxx").unwrap();
    sheet.write_number(5, 5, 5551234.0).unwrap();
    book.save_to_buffer().unwrap()
}

#[test]
fn numeric_cells_come_back_as_exact_digits_or_are_refused() {
    let path = common::root().join("samples/messy/numeric-ids.xlsx");
    if std::env::var_os("UPDATE_GOLDEN").is_some() || !path.exists() {
        std::fs::write(&path, numeric_ids_workbook()).unwrap();
    }
    let sub = formats::read(&std::fs::read(&path).unwrap(), &Default::default())
        .expect("a readable workbook");
    assert_eq!(sub.container, Container::Workbook(WorkbookKind::Xlsx));
    let lines: Vec<u64> = sub.rows.iter().map(|r| r.line).collect();
    assert_eq!(lines, [4, 5, 6], "sheet row numbers, header on row 3");

    let results = validate::validate(&sub, &Rules::default());
    let validate::RowOutcome::Valid(anne) = &results[0].outcome else {
        panic!("{:?}", results[0]);
    };
    let anne = &anne.person();
    assert_eq!(anne.id.as_ref().unwrap().as_str(), "123456789012");
    assert_eq!(anne.external_sync_id.as_str(), "987654321098");
    assert_eq!(
        anne.mobile_phone.as_ref().unwrap().as_str(),
        "+447911023456"
    );
    assert_eq!(
        anne.office_phone.as_ref().unwrap().as_str(),
        "+441134960123"
    );

    let issues = results[1].issues();
    assert_eq!(issues.len(), 1, "{issues:?}");
    assert_eq!(issues[0].column, "ExternalSyncID");
    assert!(issues[0].message.contains("too large to keep every digit"));

    let issues = results[2].issues();
    assert_eq!(issues.len(), 1, "{issues:?}");
    assert_eq!(
        (issues[0].column.as_str(), issues[0].value.as_str()),
        ("MobilePhone", "5551234")
    );
}

#[test]
fn far_away_cells_cost_nothing_and_damage_is_refused() {
    let mut book = Workbook::new();
    let sheet = book.add_worksheet();
    for (c, h) in ["ExternalSyncID", "FirstName", "LastName", "Organisation"]
        .iter()
        .enumerate()
    {
        sheet.write_string(0, c as u16, *h).unwrap();
    }
    for (c, v) in ["E1", "Ann", "Lee", "RXX"].iter().enumerate() {
        sheet.write_string(1, c as u16, *v).unwrap();
    }
    // A stray cell at the sheet's far corner: a dense sheet would be 17 billion cells.
    sheet.write_string(1_048_575, 16_383, "stray").unwrap();
    let sub =
        formats::read(&book.save_to_buffer().unwrap(), &Default::default()).expect("readable");
    assert_eq!(
        sub.rows.len(),
        1,
        "the stray cell is beyond the columns read"
    );
    assert_eq!(&sub.rows[0].cells[0], "E1");

    // A workbook whose cell reference overflows the spreadsheet library's arithmetic.
    let damaged =
        std::fs::read(common::root().join("samples/messy/damaged-cell-reference.xlsx")).unwrap();
    let err = formats::read(&damaged, &Default::default()).unwrap_err();
    assert!(err.to_string().contains("workbook"), "{err}");
}

/// A staff list as people keep one: a title and a date above the header, a date column, and
/// an ExternalSyncID Excel turned into a number with a fraction.
fn titled_workbook(title_rows: u32) -> Vec<u8> {
    use rust_xlsxwriter::{ExcelDateTime, Format};
    let mut book = Workbook::new();
    let sheet = book.add_worksheet();
    for r in 0..title_rows {
        sheet
            .write_string(r, 0, format!("Staff list, part {}", r + 1))
            .unwrap();
    }
    let h = title_rows + 1; // a blank row between the title and the header
    for (c, name) in [
        "ExternalSyncID",
        "FirstName",
        "LastName",
        "Organisation",
        "Notes",
    ]
    .iter()
    .enumerate()
    {
        sheet.write_string(h, c as u16, *name).unwrap();
    }
    let date = Format::new().set_num_format("dd/mm/yyyy");
    let stamp = Format::new().set_num_format("dd/mm/yyyy hh:mm");
    sheet.write_string(h + 1, 0, "A1").unwrap();
    sheet.write_string(h + 1, 1, "Ann").unwrap();
    sheet.write_string(h + 1, 2, "Lee").unwrap();
    sheet.write_string(h + 1, 3, "RXX").unwrap();
    let day = ExcelDateTime::from_ymd(2024, 3, 1).unwrap();
    sheet
        .write_datetime_with_format(h + 1, 4, &day, &date)
        .unwrap();
    sheet.write_number(h + 2, 0, 342.5).unwrap();
    sheet.write_string(h + 2, 1, "Bo").unwrap();
    sheet.write_string(h + 2, 2, "Ng").unwrap();
    sheet.write_string(h + 2, 3, "RXX").unwrap();
    let at = ExcelDateTime::from_ymd(2024, 3, 1)
        .unwrap()
        .and_hms(9, 30, 0)
        .unwrap();
    sheet
        .write_datetime_with_format(h + 2, 4, &at, &stamp)
        .unwrap();
    sheet.write_number(h + 3, 0, 342.0).unwrap();
    sheet.write_string(h + 3, 1, "Cy").unwrap();
    sheet.write_string(h + 3, 2, "Day").unwrap();
    sheet.write_string(h + 3, 3, "RXX").unwrap();
    book.save_to_buffer().unwrap()
}

#[test]
fn a_title_above_the_header_dates_and_damaged_ids() {
    let bytes = titled_workbook(2);
    let sub = formats::read(&bytes, &Default::default()).expect("the header is found");
    let lines: Vec<u64> = sub.rows.iter().map(|r| r.line).collect();
    assert_eq!(
        lines,
        [5, 6, 7],
        "header on line 4, below a title and a blank row"
    );
    assert!(
        sub.warnings
            .iter()
            .any(|w| w.contains("the header is on line 4; line(s) 1 to 3")),
        "{:?}",
        sub.warnings
    );
    // Dates as dates; a time only where the cell has one.
    assert_eq!(&sub.rows[0].cells[4], "2024-03-01");
    assert_eq!(&sub.rows[1].cells[4], "2024-03-01 09:30");

    // Through the binary: the fraction refused at its line and column, the whole number kept.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("staff.xlsx");
    std::fs::write(&path, &bytes).unwrap();
    let out = common::run_in(dir.path(), &["validate", "--json", "staff.xlsx"]);
    assert_eq!(out.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let refused: Vec<(u64, String, String)> = v["rows"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|r| {
            r["issues"].as_array().unwrap().iter().map(move |i| {
                (
                    r["line"].as_u64().unwrap(),
                    i["column"].as_str().unwrap().to_owned(),
                    i["value"].as_str().unwrap().to_owned(),
                )
            })
        })
        .collect();
    assert_eq!(
        refused,
        [(6, "ExternalSyncID".to_owned(), "342.5".to_owned())],
        "{v}"
    );
    let text =
        String::from_utf8_lossy(&common::run_in(dir.path(), &["validate", "staff.xlsx"]).stdout)
            .into_owned();
    assert!(
        text.contains("is a number with a fraction, which no ID has"),
        "{text}"
    );

    // No header in the first rows: the refusal says what the rows it tried hold.
    std::fs::write(&path, titled_workbook(12)).unwrap();
    let out = common::run_in(dir.path(), &["validate", "staff.xlsx"]);
    assert_eq!(out.status.code(), Some(2));
    let said =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(
        said.contains("the header row (line 1) cannot be used"),
        "{said}"
    );
    assert!(
        said.contains("No row of the first 10 could be the header; they hold line 1: \"Staff list, part 1\"; line 2: \"Staff list, part 2\""),
        "{said}"
    );
}

/// An ODS written by another tool (odfpy, as LibreOffice-compatible producers write it) is
/// recognised as ODS, not taken for XLSX, and its text cells come through exactly.
#[test]
fn an_ods_written_by_another_tool_is_read_exactly() {
    let bytes = std::fs::read(common::root().join("samples/messy/odfpy-written.ods")).unwrap();
    let sub = formats::read(&bytes, &Rules::default().limits).unwrap();
    assert_eq!(sub.container, Container::Workbook(WorkbookKind::Ods));
    let results = validate::validate(&sub, &Rules::default());
    assert!(results.iter().all(|r| r.is_valid()), "{results:?}");
    let last = &sub.rows[2];
    assert_eq!(last.line, 4);
    assert_eq!(&last.cells[2], "Zo\u{eb}");
    assert_eq!(&last.cells[3], "O\u{2019}Neill");
    assert_eq!(&sub.rows[0].cells[6], "07911 023456");
}

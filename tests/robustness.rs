//! No input crashes the readers or validation: arbitrary bytes, and CSV-shaped noise with
//! quotes, delimiters and line breaks in every position. Every data line is answered.

// Test code: a failure is a panic.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use proptest::prelude::*;
use push_connector::{formats, report, validate};

fn check(bytes: &[u8]) -> Result<(), TestCaseError> {
    if let Ok(sub) = formats::read(bytes, &Default::default()) {
        let results = validate::validate(&sub, &validate::Rules::default());
        prop_assert_eq!(results.len(), sub.rows.len());
        for r in &results {
            // A refused row always says why, at its own line.
            prop_assert!(r.is_valid() || !r.issues().is_empty());
            prop_assert!(r.issues().iter().all(|i| i.line == r.line));
        }
        let mut out = Vec::new();
        report::write_report(
            &mut out,
            &sub,
            &report::validation_rows(&results),
            report::ReportRows::All,
        )
        .expect("a report can always be written");
    }
    Ok(())
}

fn cell() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        "[A-Za-z' .-]{1,12}",
        "0[1-9][0-9 ]{9,12}",
        "[a-z]{1,8}@nhs\\.net",
        "\\PC{0,10}",
        prop::sample::select(vec![
            "\"", "\"\"", ",", ";", "\t", "\r\n", "\n", "\r", "=1+1", "'+44"
        ])
        .prop_map(str::to_owned),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..600)) {
        check(&bytes)?;
    }

    #[test]
    fn csv_shaped_noise_never_panics(
        bom in any::<bool>(),
        rows in prop::collection::vec(prop::collection::vec(cell(), 0..7), 0..12),
    ) {
        let mut text = String::new();
        if bom {
            text.push('\u{feff}');
        }
        text.push_str("ExternalSyncID,FirstName,LastName,Organisation,Email,MobilePhone\n");
        for row in rows {
            text.push_str(&row.join(","));
            text.push('\n');
        }
        check(text.as_bytes())?;
        // The same content as UTF-16 must behave the same.
        let mut utf16 = vec![0xFF, 0xFE];
        utf16.extend(text.trim_start_matches('\u{feff}').encode_utf16().flat_map(u16::to_le_bytes));
        check(&utf16)?;
    }
}

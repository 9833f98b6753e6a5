//! Any bytes: the readers and validation must answer with rows or an error, never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use push_connector::{formats, report, validate};

fuzz_target!(|data: &[u8]| {
    if let Ok(sub) = formats::read(data) {
        let results = validate::validate(&sub, &validate::Rules::default());
        let rows = report::validation_rows(&results);
        let mut out = Vec::new();
        let _ = report::write_report(&mut out, &sub, &rows, report::ReportRows::All);
    }
});

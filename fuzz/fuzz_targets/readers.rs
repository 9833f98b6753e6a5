//! Any bytes: the readers and validation must answer with rows or an error, never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use push_connector::{formats, report, validate};

fuzz_target!(
    init: {
        // The readers contain panics of the spreadsheet library themselves (a damaged file is
        // refused); libFuzzer's hook would abort before they unwind. Any other panic still
        // reaches the fuzz target's own guard and is reported as a crash.
        std::panic::set_hook(Box::new(|_| {}));
    },
    |data: &[u8]| {
    if let Ok(sub) = formats::read(data, &formats::Limits::default()) {
        let results = validate::validate(&sub, &validate::Rules::default());
        let rows = report::validation_rows(&results);
        let mut out = Vec::new();
        let _ = report::write_report(&mut out, &sub, &rows, report::ReportRows::All);
    }
});

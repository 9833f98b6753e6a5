//! Helpers shared by the integration tests: running the binary and golden files.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The repository root (where `samples/` lives).
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Runs the binary with arguments, in `dir`, with no configuration from the environment.
pub fn run_in(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_push-connector"))
        .args(args)
        .current_dir(dir)
        .env_remove("PUSH_CONNECTOR_CONFIG")
        .output()
        .expect("the binary runs")
}

/// Compares `actual` with the golden file; `UPDATE_GOLDEN=1` rewrites it. On a mismatch the
/// actual text is left beside it as `<name>.failed` and the test fails with both.
pub fn assert_golden(path: &Path, actual: &str) {
    let failed = path.with_extension("failed");
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(path, actual).expect("write golden");
        let _ = std::fs::remove_file(&failed);
        return;
    }
    let expected = std::fs::read_to_string(path).unwrap_or_else(|_| {
        panic!(
            "no golden file {} (run with UPDATE_GOLDEN=1)",
            path.display()
        )
    });
    if expected != actual {
        std::fs::write(&failed, actual).expect("write .failed");
        panic!(
            "{} differs from the golden file; actual output written to {}\n--- expected\n{expected}\n--- actual\n{actual}",
            path.display(),
            failed.display()
        );
    }
    let _ = std::fs::remove_file(&failed);
}

//! Code lists: the accepted values of coded fields (titles, clinical roles, specialities,
//! work areas), matched case-insensitively and given back in the list's own spelling.

use std::collections::HashMap;
use std::path::Path;

#[derive(Debug, Clone, Default)]
pub struct CodeList {
    by_key: HashMap<String, String>,
}

/// Titles accepted when the configuration names no list.
const DEFAULT_TITLES: &[&str] = &[
    "Mr",
    "Mrs",
    "Miss",
    "Ms",
    "Mx",
    "Dr",
    "Prof",
    "Professor",
    "Rev",
    "Revd",
    "Sir",
    "Dame",
    "Lord",
    "Lady",
    "Sister",
    "Father",
    "Canon",
];

impl CodeList {
    pub fn new<I: IntoIterator<Item = S>, S: Into<String>>(values: I) -> CodeList {
        CodeList {
            by_key: values
                .into_iter()
                .map(Into::into)
                .map(|v| (v.to_lowercase(), v))
                .collect(),
        }
    }

    pub fn default_titles() -> CodeList {
        CodeList::new(DEFAULT_TITLES.iter().copied())
    }

    /// Reads a list: one value a line, blank lines and `#` comments skipped.
    pub fn load(path: impl AsRef<Path>) -> std::io::Result<CodeList> {
        let text = std::fs::read_to_string(path)?;
        Ok(CodeList::new(
            text.lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with('#'))
                .map(str::to_owned),
        ))
    }

    /// The list's own spelling of a value, if it is on the list.
    pub fn canonical(&self, value: &str) -> Option<&str> {
        self.by_key.get(&value.to_lowercase()).map(String::as_str)
    }

    pub fn len(&self) -> usize {
        self.by_key.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_key.is_empty()
    }
}

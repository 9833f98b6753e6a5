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
        // Short ASCII values (nearly all) are lower-cased on the stack: for ASCII text,
        // `to_lowercase` and `to_ascii_lowercase` agree.
        let mut buffer = [0u8; 64];
        if value.is_ascii()
            && let Some(lower) = buffer.get_mut(..value.len())
        {
            lower.copy_from_slice(value.as_bytes());
            lower.make_ascii_lowercase();
            if let Ok(key) = std::str::from_utf8(lower) {
                return self.by_key.get(key).map(String::as_str);
            }
        }
        self.by_key.get(&value.to_lowercase()).map(String::as_str)
    }

    /// Up to `n` values of the list closest to `value` (by edit distance, ignoring case; a
    /// value containing it, or contained in it, counts as close), best first; none when
    /// nothing is close enough to be a likely meaning.
    pub fn closest(&self, value: &str, n: usize) -> Vec<&str> {
        let wanted = value.to_lowercase();
        if wanted.chars().count() > 64 {
            return Vec::new();
        }
        let limit = (wanted.chars().count() / 3).max(2);
        let mut scored: Vec<(usize, &str)> = self
            .by_key
            .iter()
            .filter_map(|(key, spelling)| {
                let d = if key.contains(&wanted) || wanted.contains(key.as_str()) {
                    1
                } else {
                    edit_distance(&wanted, key)
                };
                (d <= limit).then_some((d, spelling.as_str()))
            })
            .collect();
        scored.sort();
        scored.into_iter().take(n).map(|(_, v)| v).collect()
    }

    pub fn len(&self) -> usize {
        self.by_key.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_key.is_empty()
    }
}

/// Levenshtein distance of two short strings, by characters.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = (above + 1)
                .min(row[j] + 1)
                .min(diagonal + usize::from(ca != *cb));
            diagonal = above;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn close_values_are_offered_best_first() {
        let list = CodeList::new(["Dental Surgeon", "Dentistry", "Doctor", "Nurse", "Midwife"]);
        assert_eq!(list.closest("Dentist", 3), ["Dentistry"]);
        assert_eq!(list.closest("Dental surgeons", 3), ["Dental Surgeon"]);
        assert_eq!(list.closest("nurse", 3), ["Nurse"]);
        assert_eq!(list.closest("Nrse", 3), ["Nurse"]);
        assert!(list.closest("Wizard", 3).is_empty());
        assert!(list.closest(&"x".repeat(10_000), 3).is_empty());
    }
}

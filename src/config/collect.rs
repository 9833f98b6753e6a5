//! Deserialising the configuration while collecting every problem, not only serde's first.
//!
//! In: the TOML table (file plus environment overrides) and the file's text, for line numbers.
//! Out: the [`Config`] with every unusable setting left at its default (so the semantic checks
//! can still run), and one sentence per problem naming its place (`section.key`, the line in
//! the file) and, for a key that is not a setting, the nearest one that is.
//!
//! serde stops at the first error; so the table is deserialised, the setting the error points
//! at is taken out (its path from `serde_path_to_error`), and this is repeated until the rest
//! deserialises. Each round takes one key out, so the rounds are bounded by the keys.

use std::collections::HashMap;

use serde_path_to_error::Segment;

use super::Config;

/// What deserialising found: the configuration (when the rest of it could be read) and the
/// problems, in the order met.
pub(super) struct Collected {
    pub config: Option<Config>,
    pub problems: Vec<String>,
}

/// A place in the table: keys and array indices, as the file numbers them.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Step {
    Key(String),
    Index(usize),
}

pub(super) fn deserialize(mut table: toml::Table, text: Option<&str>) -> Collected {
    let lines = text.map(key_lines).unwrap_or_default();
    // Array entries taken out, by the array's place: what the file called each one left.
    let mut removed: HashMap<Vec<Step>, Vec<usize>> = HashMap::new();
    let mut problems = Vec::new();
    let rounds = count_keys(&table) + 1;
    for _ in 0..rounds {
        let err = match serde_path_to_error::deserialize::<_, Config>(toml::Value::Table(
            table.clone(),
        )) {
            Ok(config) => return collected(Some(config), problems),
            Err(e) => e,
        };
        let message = err.inner().message().trim().to_owned();
        let mut at: Vec<Step> = err
            .path()
            .iter()
            .filter_map(|s| match s {
                Segment::Map { key } => Some(Step::Key(key.clone())),
                Segment::Seq { index } => Some(Step::Index(*index)),
                Segment::Enum { .. } | Segment::Unknown => None,
            })
            .collect();
        let unknown = unknown_field(&message);
        let missing = message.starts_with("missing field");
        if let Some((key, _)) = &unknown
            && at.last() != Some(&Step::Key(key.clone()))
        {
            at.push(Step::Key(key.clone()));
        }
        // What is taken out is the setting the error is at; for a missing field, the table
        // that lacks it (it cannot be used without).
        let original = as_in_file(&at, &removed);
        let line = lines
            .get(&original)
            .or_else(|| lines.get(&original[..original.len().saturating_sub(1)]))
            .copied();
        problems.push((line, describe(&original, line, &message, unknown, missing)));
        if !take_out(&mut table, &at, &original, &mut removed) {
            return collected(None, problems);
        }
    }
    collected(None, problems)
}

/// The problems in the order of the file's lines (those from the environment last).
fn collected(config: Option<Config>, mut problems: Vec<(Option<usize>, String)>) -> Collected {
    problems.sort_by_key(|(line, _)| line.unwrap_or(usize::MAX));
    Collected {
        config,
        problems: problems.into_iter().map(|(_, p)| p).collect(),
    }
}

/// `unknown field `x`, expected one of `a`, `b`` → (`x`, [`a`, `b`]).
fn unknown_field(message: &str) -> Option<(String, Vec<String>)> {
    let rest = message.strip_prefix("unknown field `")?;
    let (key, rest) = rest.split_once('`')?;
    let known = rest
        .split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_owned)
        .collect();
    Some((key.to_owned(), known))
}

/// The sentence for one problem.
fn describe(
    at: &[Step],
    line: Option<usize>,
    message: &str,
    unknown: Option<(String, Vec<String>)>,
    missing: bool,
) -> String {
    let place = |at: &[Step]| -> String {
        let mut out = String::new();
        for step in at {
            match step {
                Step::Key(k) if out.is_empty() => out.push_str(k),
                Step::Key(k) => {
                    out.push('.');
                    out.push_str(k);
                }
                Step::Index(i) => out.push_str(&format!("[{i}]")),
            }
        }
        out
    };
    let line = line.map(|l| format!(" (line {l})")).unwrap_or_default();
    if let Some((key, known)) = unknown {
        let parent = &at[..at.len().saturating_sub(1)];
        let (what, within) = if parent.is_empty() {
            (format!("[{key}] is not a section"), "sections".to_owned())
        } else {
            (
                format!("{} is not a setting", place(at)),
                format!("settings of [{}]", place(parent)),
            )
        };
        return match nearest(&key, &known) {
            Some(n) if parent.is_empty() => format!("{what}{line}: did you mean [{n}]?"),
            Some(n) => format!("{what}{line}: did you mean {}.{n}?", place(parent)),
            None if known.is_empty() => format!("{what}{line}"),
            None => format!("{what}{line}: the {within} are {}", known.join(", ")),
        };
    }
    if missing {
        let what = message
            .strip_prefix("missing field ")
            .unwrap_or(message)
            .trim_matches('`');
        let place = if at.is_empty() {
            "the configuration".to_owned()
        } else {
            place(at)
        };
        return format!("{place}{line}: {what} is required");
    }
    let place = place(at);
    if is_secret(at) {
        // The value is a secret: name the setting, never quote it.
        return format!("{place}{line}: must be a string (its value is a secret: not shown)");
    }
    format!("{place}{line}: {}", plain(message))
}

/// Settings whose values are secrets (`Secret` fields): a message never quotes them. A SQL
/// source's `url` holds its password.
fn is_secret(at: &[Step]) -> bool {
    const SECRETS: [&str; 6] = [
        "password",
        "bind_password",
        "token",
        "client_secret",
        "secret",
        "connector_key",
    ];
    match at.last() {
        Some(Step::Key(k)) if SECRETS.contains(&k.as_str()) => true,
        Some(Step::Key(k)) if k == "url" => at.contains(&Step::Key("sql".to_owned())),
        _ => false,
    }
}

/// serde's names of number types in words.
fn plain(message: &str) -> String {
    let mut out = message.to_owned();
    for (rust, words) in [
        ("expected u64", "expected a whole number, 0 or more"),
        ("expected usize", "expected a whole number, 0 or more"),
        ("expected u32", "expected a whole number, 0 or more"),
        ("expected u16", "expected a whole number, 0 or more"),
        ("expected u8", "expected a whole number, 0 or more"),
        ("expected i64", "expected a whole number"),
        ("expected f64", "expected a number"),
    ] {
        out = out.replace(rust, words);
    }
    out
}

/// The known name nearest `key`, when one is close enough to be a slip or a shortening
/// (`domian` → `domains`, `admins` → `administrators`).
fn nearest<'a>(key: &str, known: &'a [String]) -> Option<&'a str> {
    let key = key.to_ascii_lowercase();
    known
        .iter()
        .map(|k| (strsim::jaro_winkler(&key, k), k))
        .filter(|(score, _)| *score >= 0.85)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, k)| k.as_str())
}

/// The place as the file numbers it: array indices counted before entries were taken out.
fn as_in_file(at: &[Step], removed: &HashMap<Vec<Step>, Vec<usize>>) -> Vec<Step> {
    let mut out = Vec::with_capacity(at.len());
    for step in at {
        match step {
            Step::Index(i) => {
                let gone = removed.get(&out).map(Vec::as_slice).unwrap_or_default();
                // The i-th entry of those left.
                let mut left = 0;
                let mut original = 0;
                loop {
                    if !gone.contains(&original) {
                        if left == *i {
                            break;
                        }
                        left += 1;
                    }
                    original += 1;
                }
                out.push(Step::Index(original));
            }
            Step::Key(_) => out.push(step.clone()),
        }
    }
    out
}

/// Takes the setting at `at` out of the table (an array entry out of its array); false when
/// there is nothing there to take out (no progress can be made).
fn take_out(
    table: &mut toml::Table,
    at: &[Step],
    original: &[Step],
    removed: &mut HashMap<Vec<Step>, Vec<usize>>,
) -> bool {
    let Some((last, parents)) = at.split_last() else {
        return false;
    };
    let mut value: &mut toml::Value = match parents.first() {
        None => {
            return match last {
                Step::Key(k) => table.remove(k).is_some(),
                Step::Index(_) => false,
            };
        }
        Some(Step::Key(k)) => match table.get_mut(k) {
            Some(v) => v,
            None => return false,
        },
        Some(Step::Index(_)) => return false,
    };
    for step in &parents[1..] {
        value = match (step, value) {
            (Step::Key(k), toml::Value::Table(t)) => match t.get_mut(k) {
                Some(v) => v,
                None => return false,
            },
            (Step::Index(i), toml::Value::Array(a)) => match a.get_mut(*i) {
                Some(v) => v,
                None => return false,
            },
            _ => return false,
        };
    }
    match (last, value) {
        (Step::Key(k), toml::Value::Table(t)) => t.remove(k).is_some(),
        (Step::Index(i), toml::Value::Array(a)) if *i < a.len() => {
            a.remove(*i);
            if let Some(Step::Index(o)) = original.last() {
                removed
                    .entry(original[..original.len() - 1].to_vec())
                    .or_default()
                    .push(*o);
            }
            true
        }
        _ => false,
    }
}

fn count_keys(table: &toml::Table) -> usize {
    fn value(v: &toml::Value) -> usize {
        match v {
            toml::Value::Table(t) => count_keys(t),
            toml::Value::Array(a) => a.iter().map(value).sum::<usize>() + a.len(),
            _ => 0,
        }
    }
    table.values().map(|v| 1 + value(v)).sum()
}

/// The line of every key and array entry of the file, by its place.
fn key_lines(text: &str) -> HashMap<Vec<Step>, usize> {
    use toml::de::{DeTable, DeValue};
    fn line_of(text: &str, offset: usize) -> usize {
        text[..offset.min(text.len())].matches('\n').count() + 1
    }
    fn walk(
        text: &str,
        table: &DeTable<'_>,
        at: &mut Vec<Step>,
        out: &mut HashMap<Vec<Step>, usize>,
    ) {
        for (key, value) in table {
            at.push(Step::Key(key.get_ref().to_string()));
            out.insert(at.clone(), line_of(text, key.span().start));
            walk_value(text, value.get_ref(), at, out);
            at.pop();
        }
    }
    fn walk_value(
        text: &str,
        value: &DeValue<'_>,
        at: &mut Vec<Step>,
        out: &mut HashMap<Vec<Step>, usize>,
    ) {
        match value {
            DeValue::Table(t) => walk(text, t, at, out),
            DeValue::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    at.push(Step::Index(i));
                    out.insert(at.clone(), line_of(text, item.span().start));
                    walk_value(text, item.get_ref(), at, out);
                    at.pop();
                }
            }
            _ => {}
        }
    }
    let mut out = HashMap::new();
    if let Ok(table) = DeTable::parse(text) {
        walk(text, table.get_ref(), &mut Vec::new(), &mut out);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn collect(text: &str) -> Collected {
        deserialize(text.parse().unwrap(), Some(text))
    }

    #[test]
    fn every_unknown_key_and_bad_value_is_found_with_its_line() {
        let text = "[bogus]\nx = 1\n[service]\ndomian = \"x\"\nstate_dirr = \"v\"\n\
                    [mailbox]\npoll_seconds = \"ten\"\n[[organisation]]\ncode = \"RXX\"\n\
                    admins = [\"a@nhs.net\"]\n[[organisation]]\nname = \"no code\"\n\
                    [[organisation]]\ncode = \"RYY\"\ncreate_acounts = false\n";
        let c = collect(text);
        let p = c.problems.join("\n");
        assert_eq!(c.problems.len(), 7, "{p}");
        for want in [
            "[bogus] is not a section (line 1): the sections are service,",
            "service.domian is not a setting (line 4): did you mean service.domains?",
            "service.state_dirr is not a setting (line 5): did you mean service.state_dir?",
            "mailbox.poll_seconds (line 7): invalid type: string \"ten\"",
            "organisation[0].admins is not a setting (line 10): did you mean \
             organisation[0].administrators?",
            "organisation[1] (line 11): code is required",
            "organisation[2].create_acounts is not a setting (line 15): did you mean \
             organisation[2].create_accounts?",
        ] {
            assert!(p.contains(want), "{want}\n---\n{p}");
        }
        // The rest is read: the good organisations are there.
        let config = c.config.expect("the rest deserialises");
        let codes: Vec<&str> = config
            .organisations
            .iter()
            .map(|o| o.code.as_str())
            .collect();
        assert_eq!(codes, ["RXX", "RYY"]);
    }

    #[test]
    fn a_secret_of_the_wrong_type_is_not_quoted() {
        let c = collect("[mailbox]\npassword = 918273645\n");
        assert_eq!(c.problems.len(), 1);
        assert!(!c.problems[0].contains("918273645"), "{}", c.problems[0]);
        assert!(c.problems[0].starts_with("mailbox.password (line 2):"));
    }

    #[test]
    fn a_number_setting_named_like_a_secret_is_still_explained() {
        let c = collect("[serve]\ntoken_seconds = \"soon\"\n");
        assert_eq!(c.problems.len(), 1);
        assert!(
            c.problems[0].contains("invalid type: string \"soon\""),
            "{}",
            c.problems[0]
        );
        let c = collect("[[source]]\nname = \"s\"\n[source.sql]\nurl = 5\n");
        assert!(
            c.problems
                .iter()
                .any(|p| p.contains("source[0].sql.url (line 4): must be a string")),
            "{:?}",
            c.problems
        );
    }

    #[test]
    fn a_clean_table_has_no_problems() {
        let c = collect("[service]\ndomains = [\"nhs.net\"]\n");
        assert!(c.problems.is_empty());
        assert!(c.config.is_some());
    }
}

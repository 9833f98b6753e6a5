//! Look-ups of many keys at once for the SCIM backend: `attr eq "a" or attr eq "b" …` filters
//! of up to [`LOOKUP_KEYS`] keys (within [`LOOKUP_LENGTH`] bytes of filter), `concurrency`
//! requests at a time, instead of one request per key.
//!
//! In: an attribute, keys, an optional term every User must also match (`… and
//! organisation eq "X"`), and how to tell which key a User answers. Out: per key, the first
//! User of its own filter's answer that the test accepts: what a look-up of that key alone
//! gives. Two keys equal but for case are never asked in one filter (a server may compare
//! them either way), so a User in a batch's answer is attributed to one key only.
//!
//! A portal that refuses an `or` filter (400, e.g. `invalidFilter` or `tooMany`; 413, 414 or
//! 501) is asked one key at a time from then on: the look-up answers `None` and the caller falls back.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::Ordering;

use futures_util::stream::{self, StreamExt as _};
use reqwest::{Method, StatusCode};
use serde_json::Value;

use super::codec::resources;
use super::{DirectoryError, Failure, ScimDirectory};
use crate::scim::filter::quote;

/// Keys asked for in one filter at most.
pub(super) const LOOKUP_KEYS: usize = 50;
/// Longest filter text of a batched look-up, in bytes (ours refuses more than 4,096; common
/// servers accept at least as much in a query string).
pub(super) const LOOKUP_LENGTH: usize = 3000;

impl ScimDirectory {
    /// For each of `keys`, the first User answering `attr eq key` (and `also`, when given)
    /// that `answers(user, key)` accepts; `None` when the portal refuses `or` filters.
    pub(super) async fn lookup_many(
        &self,
        attr: &str,
        keys: &[&str],
        also: Option<&str>,
        answers: impl Fn(&Value, &str) -> bool,
    ) -> Result<Option<Vec<Option<Value>>>, DirectoryError> {
        if self.or_refused.load(Ordering::Relaxed) {
            return Ok(None);
        }
        let groups = groups(attr, keys, also);
        let answered: Vec<Option<Vec<Value>>> = stream::iter(groups.iter())
            .map(|(_, filter)| async move {
                match self.search_raw(filter).await {
                    Ok(users) => Ok(Some(users)),
                    Err(Failure::Row(status, detail)) if refuses_or(status) => {
                        tracing::info!(
                            detail,
                            "the portal refused an `or` filter; one key a request"
                        );
                        self.or_refused.store(true, Ordering::Relaxed);
                        Ok(None)
                    }
                    Err(f) => Err(f.into_error()),
                }
            })
            .buffered(self.concurrency)
            .collect::<Vec<_>>()
            .await
            .into_iter()
            .collect::<Result<_, DirectoryError>>()?;
        let mut found: HashMap<&str, Value> = HashMap::new();
        for ((group, _), users) in groups.iter().zip(answered) {
            let Some(users) = users else {
                return Ok(None);
            };
            for key in group {
                if let Some(u) = users.iter().find(|u| answers(u, key)) {
                    found.insert(key, u.clone());
                }
            }
        }
        Ok(Some(keys.iter().map(|k| found.get(k).cloned()).collect()))
    }

    /// Every User a filter matches, page by page, failures unconverted.
    pub(super) async fn search_raw(&self, filter: &str) -> Result<Vec<Value>, Failure> {
        let page = super::PAGE.min(self.caps.max_results.max(1));
        let mut out = Vec::new();
        let mut start = 1usize;
        loop {
            let query = [
                ("filter", filter.to_owned()),
                ("startIndex", start.to_string()),
                ("count", page.to_string()),
            ];
            let (_, body, _) = self
                .call_query(Method::GET, "/Users", &query, None, None)
                .await?;
            let items = resources(&body);
            let n = items.len();
            out.extend(items);
            let total = body["totalResults"].as_u64().unwrap_or(0) as usize;
            if n == 0 || start - 1 + n >= total {
                return Ok(out);
            }
            start += n;
        }
    }
}

/// An answer to a filter of many keys that says the portal does not take such filters:
/// 400 (`invalidFilter`, `tooMany`), 413 or 414 (the request too long for it) or 501 (filters
/// not implemented). Asked one key at a time, it may still answer.
fn refuses_or(status: StatusCode) -> bool {
    matches!(status.as_u16(), 400 | 413 | 414 | 501)
}

/// The keys (each once) in groups of at most [`LOOKUP_KEYS`] within [`LOOKUP_LENGTH`] bytes,
/// no two of a group equal but for case, each with its filter.
fn groups<'k>(attr: &str, keys: &[&'k str], also: Option<&str>) -> Vec<(Vec<&'k str>, String)> {
    let mut seen = HashSet::new();
    let mut pending: Vec<&str> = keys.iter().copied().filter(|k| seen.insert(*k)).collect();
    let term = |k: &str| format!("{attr} eq {}", quote(k));
    let extra = also.map_or(0, |a| a.len() + 8);
    let mut out = Vec::new();
    while !pending.is_empty() {
        let mut group: Vec<&str> = Vec::new();
        let mut folded: HashSet<String> = HashSet::new();
        let mut length = extra;
        let mut rest = Vec::new();
        for key in pending {
            let len = term(key).len() + 4;
            let fits =
                group.is_empty() || (group.len() < LOOKUP_KEYS && length + len <= LOOKUP_LENGTH);
            if fits && folded.insert(key.to_lowercase()) {
                length += len;
                group.push(key);
            } else {
                rest.push(key);
            }
        }
        pending = rest;
        let any = group
            .iter()
            .map(|k| term(k))
            .collect::<Vec<_>>()
            .join(" or ");
        let filter = match (also, group.len()) {
            (Some(a), 1) => format!("{any} and {a}"),
            (Some(a), _) => format!("({any}) and {a}"),
            (None, _) => any,
        };
        out.push((group, filter));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_keep_to_the_limits_and_part_keys_equal_but_for_case() {
        let keys: Vec<String> = (0..120).map(|i| format!("K{i}")).collect();
        let refs: Vec<&str> = keys.iter().map(String::as_str).collect();
        let got = groups("externalId", &refs, Some("org eq \"X\""));
        assert_eq!(
            got.iter().map(|(g, _)| g.len()).collect::<Vec<_>>(),
            [50, 50, 20]
        );
        assert!(
            got[0]
                .1
                .starts_with("(externalId eq \"K0\" or externalId eq \"K1\" or")
        );
        assert!(got[0].1.ends_with(") and org eq \"X\""));
        for (_, f) in &got {
            assert!(f.len() <= LOOKUP_LENGTH, "{}", f.len());
        }

        let got = groups("externalId", &["ab", "AB", "ab", "c"], None);
        assert_eq!(
            got,
            [
                (
                    vec!["ab", "c"],
                    "externalId eq \"ab\" or externalId eq \"c\"".to_owned()
                ),
                (vec!["AB"], "externalId eq \"AB\"".to_owned()),
            ]
        );
        let one = groups("id", &["x"], Some("org eq \"X\""));
        assert_eq!(one[0].1, "id eq \"x\" and org eq \"X\"");

        let (x, w) = ("x".repeat(2000), "w".repeat(2000));
        let got = groups("id", &[x.as_str(), "y", w.as_str(), x.as_str(), "z"], None);
        let sizes: Vec<usize> = got.iter().map(|(g, _)| g.len()).collect();
        assert_eq!(sizes, [3, 1], "{got:?}");
    }
}

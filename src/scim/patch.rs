//! SCIM PATCH (RFC 7644 §3.5.2) applied to a resource's JSON form.
//!
//! In: the current User JSON and a PatchOp body. Out: the patched JSON (the caller turns it
//! back into an account and checks mutability), or a 400 reason. Supports `add`, `replace`
//! and `remove`, with or without `path`; paths may name a sub-attribute, an extension
//! attribute by URN, or filter a multi-valued attribute (`emails[type eq "work"].value`).
//! `add` on a multi-valued attribute appends (§3.5.2.1); `replace` replaces (§3.5.2.3).

use serde_json::{Map, Value};

use super::filter::Filter;
use super::{InvalidUser, NHS_USER, PATCH_OP};

fn bad(scim_type: &'static str, detail: impl Into<String>) -> InvalidUser {
    InvalidUser {
        scim_type,
        detail: detail.into(),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Add,
    Replace,
    Remove,
}

/// Applies a PatchOp request to `resource`.
pub fn apply(resource: &mut Value, body: &Value) -> Result<(), InvalidUser> {
    let schemas_ok = body
        .get("schemas")
        .and_then(Value::as_array)
        .is_some_and(|s| s.iter().any(|x| x.as_str() == Some(PATCH_OP)));
    if !schemas_ok {
        return Err(bad(
            "invalidSyntax",
            format!("schemas must contain {PATCH_OP}"),
        ));
    }
    let ops = body
        .get("Operations")
        .and_then(Value::as_array)
        .ok_or_else(|| bad("invalidSyntax", "Operations must be a list"))?;
    for op in ops {
        let kind = match op
            .get("op")
            .and_then(Value::as_str)
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            Some("add") => Kind::Add,
            Some("replace") => Kind::Replace,
            Some("remove") => Kind::Remove,
            other => {
                return Err(bad(
                    "invalidSyntax",
                    format!("op must be add, replace or remove, not {other:?}"),
                ));
            }
        };
        let path = op.get("path").and_then(Value::as_str);
        let value = op.get("value").cloned();
        match (path, kind) {
            (None, Kind::Remove) => return Err(bad("noTarget", "remove needs a path")),
            (None, _) => {
                let Some(Value::Object(values)) = value else {
                    return Err(bad(
                        "invalidValue",
                        "an operation without path needs an object",
                    ));
                };
                for (k, v) in values {
                    set_path(resource, &k, kind, Some(v))?;
                }
            }
            (Some(p), _) => {
                if kind != Kind::Remove && value.is_none() {
                    return Err(bad("invalidValue", "add and replace need a value"));
                }
                set_path(resource, p, kind, value)?;
            }
        }
    }
    Ok(())
}

/// Splits a path into (container key or None for the root, attribute, filter, sub-attribute).
struct Path {
    ext: Option<String>,
    attr: String,
    filter: Option<Filter>,
    sub: Option<String>,
}

fn parse_path(path: &str) -> Result<Path, InvalidUser> {
    let (ext, rest) = if path.to_ascii_lowercase().starts_with("urn:") {
        let lower = path.to_ascii_lowercase();
        let nhs = NHS_USER.to_ascii_lowercase();
        if lower == nhs {
            (Some(NHS_USER.to_owned()), "")
        } else if lower.starts_with(&format!("{nhs}:")) {
            (Some(NHS_USER.to_owned()), &path[NHS_USER.len() + 1..])
        } else if lower.starts_with(&format!("{}:", super::CORE_USER.to_ascii_lowercase())) {
            (None, &path[super::CORE_USER.len() + 1..])
        } else {
            return Err(bad("invalidPath", format!("unknown schema in path {path}")));
        }
    } else {
        (None, path)
    };
    let (head, filter, tail) = match (rest.find('['), rest.rfind(']')) {
        (Some(a), Some(b)) if a < b => {
            let f =
                Filter::parse(&rest[a + 1..b]).map_err(|e| bad("invalidFilter", e.to_string()))?;
            (&rest[..a], Some(f), rest[b + 1..].trim_start_matches('.'))
        }
        (None, None) => match rest.split_once('.') {
            Some((h, t)) => (h, None, t),
            None => (rest, None, ""),
        },
        _ => return Err(bad("invalidPath", format!("bad path {path}"))),
    };
    Ok(Path {
        ext,
        attr: head.to_owned(),
        filter,
        sub: Some(tail.to_owned()).filter(|t| !t.is_empty()),
    })
}

fn key_ci(map: &Map<String, Value>, key: &str) -> String {
    map.keys()
        .find(|k| k.eq_ignore_ascii_case(key))
        .cloned()
        .unwrap_or_else(|| key.to_owned())
}

fn set_path(
    resource: &mut Value,
    path: &str,
    kind: Kind,
    value: Option<Value>,
) -> Result<(), InvalidUser> {
    let p = parse_path(path)?;
    let Value::Object(root) = resource else {
        return Err(bad("invalidValue", "the resource is not an object"));
    };
    let container = match &p.ext {
        Some(ext) => {
            let key = key_ci(root, ext);
            let slot = root.entry(key).or_insert_with(|| Value::Object(Map::new()));
            if !slot.is_object() {
                *slot = Value::Object(Map::new());
            }
            match slot {
                Value::Object(m) => m,
                _ => return Err(bad("invalidValue", "extension is not an object")),
            }
        }
        None => root,
    };
    if p.attr.is_empty() {
        // The whole extension: merge its attributes.
        let Some(Value::Object(values)) = value else {
            return match kind {
                Kind::Remove => {
                    container.clear();
                    Ok(())
                }
                _ => Err(bad("invalidValue", "an extension value must be an object")),
            };
        };
        for (k, v) in values {
            put(container, &k, kind, Some(v));
        }
        return Ok(());
    }
    let key = key_ci(container, &p.attr);
    match (p.filter, p.sub) {
        (None, None) => {
            put(container, &key, kind, value);
            Ok(())
        }
        (None, Some(sub)) => {
            let slot = container
                .entry(key)
                .or_insert_with(|| Value::Object(Map::new()));
            match slot {
                Value::Object(m) => {
                    let sub_key = key_ci(m, &sub);
                    put(m, &sub_key, kind, value);
                    Ok(())
                }
                Value::Array(items) => {
                    for item in items.iter_mut() {
                        if let Value::Object(m) = item {
                            let sub_key = key_ci(m, &sub);
                            put(m, &sub_key, kind, value.clone());
                        }
                    }
                    Ok(())
                }
                _ => Err(bad("invalidPath", format!("{path} is not complex"))),
            }
        }
        (Some(filter), sub) => {
            let Some(Value::Array(items)) = container.get_mut(&key) else {
                return Err(bad("noTarget", format!("{path} matches nothing")));
            };
            let before = items.len();
            let mut matched = 0;
            match (kind, &sub) {
                (Kind::Remove, None) => items.retain(|i| !filter.matches(i)),
                _ => {
                    for item in items.iter_mut().filter(|i| filter.matches(i)) {
                        matched += 1;
                        match (&sub, item) {
                            (Some(s), Value::Object(m)) => {
                                let sub_key = key_ci(m, s);
                                put(m, &sub_key, kind, value.clone());
                            }
                            (None, item) => {
                                if let Some(v) = &value {
                                    *item = v.clone();
                                }
                            }
                            _ => {}
                        }
                    }
                }
            }
            if matched == 0 && items.len() == before {
                if kind == Kind::Remove {
                    return Ok(());
                }
                return Err(bad("noTarget", format!("{path} matches nothing")));
            }
            items.retain(|i| !i.as_object().is_some_and(Map::is_empty));
            Ok(())
        }
    }
}

/// Applies one operation to one attribute of an object.
fn put(map: &mut Map<String, Value>, key: &str, kind: Kind, value: Option<Value>) {
    match (kind, value) {
        (Kind::Remove, _) | (_, None) | (_, Some(Value::Null)) => {
            map.remove(key);
        }
        (Kind::Add, Some(Value::Array(new))) => match map.get_mut(key) {
            Some(Value::Array(items)) => {
                for v in new {
                    if !items.contains(&v) {
                        items.push(v);
                    }
                }
            }
            _ => {
                map.insert(key.to_owned(), Value::Array(new));
            }
        },
        (Kind::Add, Some(Value::Object(new))) => match map.get_mut(key) {
            Some(Value::Object(existing)) => {
                for (k, v) in new {
                    existing.insert(k, v);
                }
            }
            _ => {
                map.insert(key.to_owned(), Value::Object(new));
            }
        },
        (_, Some(v)) => {
            map.insert(key.to_owned(), v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn patch(ops: Value) -> Value {
        json!({"schemas": [PATCH_OP], "Operations": ops})
    }

    #[test]
    fn replace_add_and_remove() {
        let mut u = json!({
            "userName": "a@nhs.net",
            "name": {"givenName": "Anne"},
            "phoneNumbers": [{"value": "1", "type": "work"}],
            NHS_USER: {"organisation": "RXX", "workAreas": ["CCU"]}
        });
        apply(
            &mut u,
            &patch(json!([
                {"op": "replace", "path": "name.givenName", "value": "Ann"},
                {"op": "add", "path": format!("{NHS_USER}:workAreas"), "value": ["ICU"]},
                {"op": "replace", "path": "phoneNumbers[type eq \"work\"].value", "value": "2"},
                {"op": "add", "value": {"title": "Nurse"}},
                {"op": "remove", "path": "userName"},
            ])),
        )
        .expect("applies");
        assert_eq!(u["name"]["givenName"], "Ann");
        assert_eq!(u[NHS_USER]["workAreas"], json!(["CCU", "ICU"]));
        assert_eq!(u["phoneNumbers"][0]["value"], "2");
        assert_eq!(u["title"], "Nurse");
        assert!(u.get("userName").is_none());
    }

    #[test]
    fn a_bad_request_is_refused() {
        let mut u = json!({});
        assert!(apply(&mut u, &json!({"Operations": []})).is_err());
        assert!(apply(&mut u, &patch(json!([{"op": "move", "path": "x"}]))).is_err());
        assert!(apply(&mut u, &patch(json!([{"op": "remove"}]))).is_err());
    }
}

//! The environment overlay: `PUSH_CONNECTOR__SECTION__KEY` sets a setting, `…_FILE` reads a
//! secret's value from a file.

use super::ENV_PREFIX;

/// Settings whose own name ends in `_file` (a path): `…__CA_FILE` sets `ca_file`; it is not
/// the `_FILE` form of a setting `ca`.
pub(super) const FILE_SETTINGS: &[&str] = &["ca_file"];

/// The secret settings (a [`Secret`]): the only ones a `…_FILE` variable reads from a file.
pub(super) const SECRET_SETTINGS: &[&str] = &[
    "bind_password",
    "client_secret",
    "connector_key",
    "password",
    "secret",
    "token",
    "url",
];

/// Sets `SECTION__KEY[__…]` in the table; `…_FILE` reads a secret's value from the named
/// file. A setting whose own name ends in `_file` ([`FILE_SETTINGS`]) is set as it is; the
/// `_FILE` form of any other setting that is not a secret is refused, saying why.
pub(super) fn apply_override(
    table: &mut toml::Table,
    key: &str,
    value: &str,
) -> Result<(), String> {
    let path = &key[ENV_PREFIX.len()..];
    let last = |p: &str| {
        p.rsplit("__")
            .next()
            .unwrap_or_default()
            .to_ascii_lowercase()
    };
    let from_file = if FILE_SETTINGS.contains(&last(path).as_str()) {
        None
    } else {
        path.strip_suffix("_FILE")
    };
    if let Some(p) = from_file
        && !SECRET_SETTINGS.contains(&last(p).as_str())
    {
        return Err(format!(
            "{key}: a name ending in _FILE reads a secret ({}) from a file, and {} is not a \
             secret: set it by its own name, {ENV_PREFIX}{p}=VALUE",
            SECRET_SETTINGS.join(", "),
            last(p)
        ));
    }
    let (path, parsed) = match from_file {
        // A file holds a secret: its text as it is, even when it looks like a number.
        Some(p) => (
            p,
            toml::Value::String(
                std::fs::read_to_string(value)
                    .map_err(|e| format!("{key}: cannot read {value}: {e}"))?
                    .trim_end_matches(['\n', '\r'])
                    .to_owned(),
            ),
        ),
        None => (
            path,
            format!("v = {value}")
                .parse::<toml::Table>()
                .ok()
                .and_then(|mut t| t.remove("v"))
                .unwrap_or_else(|| toml::Value::String(value.to_owned())),
        ),
    };
    let parts: Vec<String> = path.split("__").map(|p| p.to_ascii_lowercase()).collect();
    let parts: Vec<String> = parts
        .into_iter()
        .map(|p| {
            if p == "organisations" {
                "organisation".to_owned()
            } else {
                p
            }
        })
        .collect();
    set_path(table, &parts, parsed).map_err(|e| format!("{key}: {e}"))
}

fn set_path(table: &mut toml::Table, parts: &[String], value: toml::Value) -> Result<(), String> {
    let (first, rest) = parts.split_first().ok_or("names no setting")?;
    if rest.is_empty() {
        table.insert(first.clone(), value);
        return Ok(());
    }
    let entry = table
        .entry(first.clone())
        .or_insert_with(|| toml::Value::Table(toml::Table::new()));
    match entry {
        toml::Value::Table(t) => set_path(t, rest, value),
        toml::Value::Array(items) => {
            let index: usize = rest[0]
                .parse()
                .map_err(|_| format!("{first} is a list: give an index"))?;
            match items.get_mut(index) {
                Some(toml::Value::Table(t)) if rest.len() > 1 => set_path(t, &rest[1..], value),
                _ => Err(format!("{first} has no entry {index}")),
            }
        }
        _ => Err(format!("{first} is not a section")),
    }
}

//! From source entries to the rows the pipeline validates, and back to write-back values.
//!
//! In: a source's mapping (`map`, `constant`, `write_back`) and the entries it read. Out: a
//! [`Submission`] in the new layout, with a first `Source` column naming each entry (DN or
//! anchor), so validation, planning and reports treat a directory exactly like a file
//! (line 1 is the header, entry N is line N + 1); each entry's fingerprint; and the
//! write-back each entry needs. Pure: no I/O.

use csv::StringRecord;
use sha2::{Digest, Sha256};

use crate::directory::Account;
use crate::formats::{Column, RawRow, Submission};
use crate::model::Field;
use crate::reconcile::Channel;
use crate::sources::config::{NEW_ACCOUNT, SourceConfig, mapped, mapped_new_account};
use crate::sources::{SourceEntry, WriteBack};

/// Where a person field's value comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    /// An attribute or column (lower case).
    Attribute(String),
    Constant(String),
    /// The entry's anchor.
    Anchor,
}

/// A source's mapping, resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mapping {
    /// In [`Field::ALL`] order.
    fields: Vec<(Field, Value)>,
    /// (`ID`, `ExternalSyncID` or `Email`, attribute in lower case).
    write_back: Vec<(Field, String)>,
    /// The attribute (lower case) whose `yes` says an entry is a new person
    /// (`map.NewAccount`).
    new_account: Option<String>,
    /// The attributes to read (lower case, sorted, once each): mapped and written back.
    attributes: Vec<String>,
}

/// The header of the `Source` column.
pub const SOURCE_COLUMN: &str = "Source";

impl Mapping {
    /// The mapping a valid `[[source]]` section gives (unknown field names were refused
    /// when the configuration was loaded). ExternalSyncID is the anchor unless mapped.
    pub fn from_config(c: &SourceConfig) -> Mapping {
        let mut fields = Vec::new();
        for field in Field::ALL {
            let value = if let Some(a) = mapped(&c.map, field) {
                Some(Value::Attribute(a.to_ascii_lowercase()))
            } else if let Some(v) = mapped(&c.constant, field) {
                Some(Value::Constant(v.clone()))
            } else if field == Field::ExternalSyncId {
                Some(Value::Anchor)
            } else {
                None
            };
            if let Some(value) = value {
                fields.push((field, value));
            }
        }
        let write_back: Vec<(Field, String)> = Field::ALL
            .into_iter()
            .filter_map(|f| mapped(&c.write_back, f).map(|a| (f, a.to_ascii_lowercase())))
            .collect();
        let new_account = mapped_new_account(&c.map).map(|a| a.to_ascii_lowercase());
        let mut attributes: Vec<String> = fields
            .iter()
            .filter_map(|(_, v)| match v {
                Value::Attribute(a) => Some(a.clone()),
                _ => None,
            })
            .chain(write_back.iter().map(|(_, a)| a.clone()))
            .chain(new_account.clone())
            .collect();
        attributes.sort();
        attributes.dedup();
        Mapping {
            fields,
            write_back,
            new_account,
            attributes,
        }
    }

    /// The channel the mapping's rows come from, for the refusals that name attributes.
    pub fn channel(&self) -> Channel {
        Channel::Sync {
            attributes: self
                .fields
                .iter()
                .filter_map(|(f, v)| match v {
                    Value::Attribute(a) => Some((*f, a.clone())),
                    _ => None,
                })
                .collect(),
            new_account: self.new_account.clone(),
        }
    }

    /// The attributes to read (lower case, sorted, once each): mapped and written back.
    pub fn attributes(&self) -> &[String] {
        &self.attributes
    }

    /// The fields the rows carry, in column order.
    pub fn fields(&self) -> impl Iterator<Item = Field> + '_ {
        self.fields.iter().map(|(f, _)| *f)
    }

    /// A person field's value in an entry, as a cell (multi-valued fields joined with `;`;
    /// other fields take an attribute's first value).
    pub fn cell(&self, field: Field, value: &Value, entry: &SourceEntry) -> String {
        match value {
            Value::Constant(v) => v.clone(),
            Value::Anchor => entry.anchor.clone(),
            Value::Attribute(a) => match entry.values.get(a) {
                Some(values) if field.is_multi_valued() => values.join(";"),
                Some(values) => values.first().cloned().unwrap_or_default(),
                None => String::new(),
            },
        }
    }

    /// The entries as a submission in the new layout, entry N on line N + 1.
    pub fn submission(&self, entries: &[SourceEntry]) -> Submission {
        let mut headers = StringRecord::new();
        headers.push_field(SOURCE_COLUMN);
        let mut columns = vec![Column::Ignored];
        for (field, _) in &self.fields {
            headers.push_field(field.name());
            columns.push(Column::Field(*field));
        }
        if self.new_account.is_some() {
            headers.push_field(NEW_ACCOUNT);
            columns.push(Column::NewAccount);
        }
        let rows = entries
            .iter()
            .enumerate()
            .map(|(i, entry)| {
                let mut cells = StringRecord::new();
                cells.push_field(&entry.locator);
                for (field, value) in &self.fields {
                    cells.push_field(&self.cell(*field, value, entry));
                }
                if let Some(a) = &self.new_account {
                    let value = entry.values.get(a).and_then(|v| v.first());
                    cells.push_field(value.map_or("", String::as_str));
                }
                RawRow {
                    line: i as u64 + 2,
                    cells: cells.into(),
                    issues: Vec::new(),
                }
            })
            .collect();
        Submission::made(headers, columns, rows)
    }

    /// A digest of everything the sync reads from an entry: equal fingerprints mean the
    /// entry says nothing new (an attribute the mapping ignores changed, or it is our own
    /// write-back coming back).
    pub fn fingerprint(&self, entry: &SourceEntry) -> String {
        let mut hash = Sha256::new();
        hash.update(entry.anchor.as_bytes());
        for attribute in &self.attributes {
            hash.update([0u8]);
            hash.update(attribute.as_bytes());
            for value in entry.values.get(attribute).into_iter().flatten() {
                hash.update([1u8]);
                hash.update(value.as_bytes());
            }
        }
        hash.finalize().iter().map(|b| format!("{b:02x}")).collect()
    }

    /// The values an entry lacks of the account it joined: `None` when all are in place.
    pub fn write_back(&self, entry: &SourceEntry, account: &Account) -> Option<WriteBack> {
        let values: Vec<(String, String)> = self
            .write_back
            .iter()
            .filter_map(|(field, attribute)| {
                let want = match field {
                    Field::Id => Some(account.id.as_str()),
                    other => account.get(*other),
                }?;
                let have = entry.values.get(attribute).and_then(|v| v.first());
                (have.map(String::as_str) != Some(want))
                    .then(|| (attribute.clone(), want.to_owned()))
            })
            .collect();
        (!values.is_empty()).then(|| WriteBack {
            locator: entry.locator.clone(),
            values,
        })
    }

    /// The attributes written back (lower case), in the order ID, ExternalSyncID, Email.
    pub fn write_back_attributes(&self) -> Vec<String> {
        self.write_back.iter().map(|(_, a)| a.clone()).collect()
    }

    /// Whether a field's value is written back.
    pub fn writes_back_field(&self, field: Field) -> bool {
        self.write_back.iter().any(|(f, _)| *f == field)
    }

    /// Whether anything is written back at all.
    pub fn writes_back(&self) -> bool {
        !self.write_back.is_empty()
    }
}

/// The entry as it is once a write-back succeeded (for its fingerprint).
pub fn written(entry: &SourceEntry, write: &WriteBack) -> SourceEntry {
    let mut entry = entry.clone();
    for (attribute, value) in &write.values {
        entry.values.insert(attribute.clone(), vec![value.clone()]);
    }
    entry
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::directory::Status;
    use crate::model::{OdsCode, PortalId};

    fn config() -> SourceConfig {
        toml::from_str(
            r#"
            name = "ad"
            organisations = ["RXX"]
            [map]
            FirstName = "givenName"
            LastName = "sn"
            Email = "mail"
            ID = "info"
            ClinicalRole = "roles"
            [constant]
            Organisation = "RXX"
            [write_back]
            ID = "info"
            Email = "mail"
            "#,
        )
        .expect("config")
    }

    fn entry(values: &[(&str, &[&str])]) -> SourceEntry {
        SourceEntry {
            locator: "CN=Anne Lee,OU=Staff,DC=example".to_owned(),
            anchor: "9f0c2d6e-0000-4000-8000-000000000001".to_owned(),
            values: values
                .iter()
                .map(|(k, v)| (k.to_string(), v.iter().map(|s| s.to_string()).collect()))
                .collect::<HashMap<_, _>>(),
        }
    }

    #[test]
    fn entries_become_new_layout_rows_with_the_anchor_as_external_sync_id() {
        let m = Mapping::from_config(&config());
        assert_eq!(m.attributes(), ["givenname", "info", "mail", "roles", "sn"]);
        let e = entry(&[
            ("givenname", &["Anne"]),
            ("sn", &["Lee"]),
            ("roles", &["R8000", "R8003"]),
        ]);
        let sub = m.submission(std::slice::from_ref(&e));
        let headers: Vec<&str> = sub.headers.iter().collect();
        assert_eq!(
            headers,
            [
                "Source",
                "ID",
                "ExternalSyncID",
                "FirstName",
                "LastName",
                "Email",
                "Organisation",
                "ClinicalRole"
            ]
        );
        let cells: Vec<&str> = sub.rows[0].cells.iter().collect();
        assert_eq!(
            cells,
            [
                e.locator.as_str(),
                "",
                e.anchor.as_str(),
                "Anne",
                "Lee",
                "",
                "RXX",
                "R8000;R8003"
            ]
        );
        assert_eq!(sub.rows[0].line, 2);
    }

    #[test]
    fn write_back_only_what_differs_and_the_fingerprint_sees_it() {
        let m = Mapping::from_config(&config());
        let org = OdsCode::new_unchecked("RXX");
        let mut account = Account::new(PortalId::new_unchecked("P-1"), Status::Active, &org);
        account.set(Field::Email, Some("anne.lee@nhs.net"));
        let e = entry(&[("givenname", &["Anne"]), ("mail", &["anne.lee@nhs.net"])]);
        let w = m.write_back(&e, &account).expect("ID is missing");
        assert_eq!(w.values, [("info".to_owned(), "P-1".to_owned())]);
        let after = written(&e, &w);
        assert!(m.write_back(&after, &account).is_none());
        assert_ne!(m.fingerprint(&e), m.fingerprint(&after));
        // An attribute the mapping does not read changes nothing.
        let mut other = after.clone();
        other
            .values
            .insert("lastlogontimestamp".to_owned(), vec!["1".to_owned()]);
        assert_eq!(m.fingerprint(&after), m.fingerprint(&other));
    }
}

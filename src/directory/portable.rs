//! The portal-style export: the directory as a CSV file, and back.
//!
//! In (import): CSV bytes with the new-format columns plus `Status` and optionally
//! `SecondaryEmails` (`;`-separated); `ID`, `FirstName`, `LastName` and `Organisation` are
//! required. Out: [`Account`]s, or per-line problems. Phones are put into their canonical
//! form, addresses lower-cased; a blank `Status` is Active.
//! Out (export): the same shape, one line per account in the order given (the directory
//! gives organisation, then primary address, then ID), so two exports of one state are equal.

use std::io::Write;

use crate::formats::{header_key, neutralise};
use crate::model::{Email, Field, OdsCode, PortalId};
use crate::validate::phone::{self, PhoneKind};

use super::{Account, Status};

/// Columns after the person fields.
const STATUS: &str = "Status";
const SECONDARY: &str = "SecondaryEmails";

/// Why an export file cannot be read at all.
#[derive(Debug, thiserror::Error)]
pub enum PortableError {
    #[error("the export is not readable CSV: {0}")]
    Csv(#[from] csv::Error),
    #[error("the export lacks the column(s) {0}")]
    MissingColumns(String),
}

/// What an import file gave: accounts, and the lines that could not be used.
#[derive(Debug, Default)]
pub struct Parsed {
    pub accounts: Vec<Account>,
    pub problems: Vec<String>,
}

/// Reads a portal-style export.
pub fn read(bytes: &[u8]) -> Result<Parsed, PortableError> {
    let text = String::from_utf8_lossy(bytes);
    let text = text.trim_start_matches('\u{feff}');
    let mut reader = csv::ReaderBuilder::new()
        .flexible(true)
        .from_reader(text.as_bytes());
    let headers: Vec<String> = reader.headers()?.iter().map(header_key).collect();
    let find = |name: &str| headers.iter().position(|h| *h == header_key(name));
    let fields: Vec<(Field, Option<usize>)> =
        Field::ALL.iter().map(|f| (*f, find(f.name()))).collect();
    let missing: Vec<&str> = [
        Field::Id,
        Field::FirstName,
        Field::LastName,
        Field::Organisation,
    ]
    .iter()
    .filter(|f| find(f.name()).is_none())
    .map(|f| f.name())
    .collect();
    if !missing.is_empty() {
        return Err(PortableError::MissingColumns(missing.join(", ")));
    }
    let status_col = find(STATUS);
    let secondary_col = find(SECONDARY);
    let mut parsed = Parsed::default();
    for (i, record) in reader.records().enumerate() {
        let line = i + 2;
        let record = match record {
            Ok(r) => r,
            Err(e) => {
                parsed.problems.push(format!("line {line}: {e}"));
                continue;
            }
        };
        if record.iter().all(|c| c.trim().is_empty()) {
            continue;
        }
        let cell = |col: Option<usize>| {
            col.and_then(|c| record.get(c))
                .map(|v| crate::formats::unneutralise(v.trim()).to_owned())
                .filter(|v| !v.is_empty())
        };
        let value = |f: Field| {
            fields
                .iter()
                .find(|(g, _)| *g == f)
                .and_then(|(_, c)| cell(*c))
        };
        let (Some(id), Some(org)) = (value(Field::Id), value(Field::Organisation)) else {
            parsed
                .problems
                .push(format!("line {line}: ID and Organisation are required"));
            continue;
        };
        if value(Field::FirstName).is_none() || value(Field::LastName).is_none() {
            parsed
                .problems
                .push(format!("line {line}: FirstName and LastName are required"));
            continue;
        }
        let status = match cell(status_col) {
            None => Status::Active,
            Some(s) => match Status::parse(&s) {
                Some(s) => s,
                None => {
                    parsed.problems.push(format!(
                        "line {line}: Status \"{s}\" is not a portal status"
                    ));
                    continue;
                }
            },
        };
        let mut account = Account::new(
            PortalId::new_unchecked(id),
            status,
            &OdsCode::new_unchecked(org.to_ascii_uppercase()),
        );
        let mut problem = None;
        for field in Field::ALL {
            if matches!(field, Field::Id | Field::Organisation) {
                continue;
            }
            let Some(v) = value(field) else { continue };
            let v = match field {
                Field::Email => v.to_lowercase(),
                Field::OrganisationUnit => v.to_ascii_uppercase(),
                Field::OfficePhone | Field::Fax | Field::MobilePhone => {
                    let kind = if field == Field::MobilePhone {
                        PhoneKind::Mobile
                    } else {
                        PhoneKind::Any
                    };
                    match phone::normalise(&v, kind) {
                        Ok(p) => p.into_string(),
                        Err(e) => {
                            problem = Some(format!("line {line}: {field} \"{v}\" {e}"));
                            break;
                        }
                    }
                }
                f if f.is_multi_valued() => v
                    .split(';')
                    .map(str::trim)
                    .filter(|p| !p.is_empty())
                    .collect::<Vec<_>>()
                    .join(";"),
                _ => v,
            };
            account.set(field, Some(&v));
        }
        if let Some(p) = problem {
            parsed.problems.push(p);
            continue;
        }
        if let Some(list) = cell(secondary_col) {
            let mut secondary: Vec<Email> = list
                .split(';')
                .map(|s| s.trim().to_lowercase())
                .filter(|s| !s.is_empty())
                .map(Email::new_unchecked)
                .collect();
            secondary.sort();
            secondary.dedup();
            account.secondary = secondary;
        }
        parsed.accounts.push(account);
    }
    Ok(parsed)
}

/// Writes accounts as a portal-style export (UTF-8, CRLF, formulas neutralised).
pub fn write<W: Write>(out: W, accounts: &[Account]) -> Result<(), csv::Error> {
    let mut writer = csv::WriterBuilder::new()
        .terminator(csv::Terminator::CRLF)
        .from_writer(out);
    let mut header: Vec<&str> = Field::ALL.iter().map(|f| f.name()).collect();
    header.extend([STATUS, SECONDARY]);
    writer.write_record(&header)?;
    for a in accounts {
        let mut record: Vec<String> = Field::ALL
            .iter()
            .map(|f| neutralise(a.get(*f).unwrap_or_default()).into_owned())
            .collect();
        record.push(a.status.as_str().to_owned());
        record.push(
            a.secondary
                .iter()
                .map(Email::as_str)
                .collect::<Vec<_>>()
                .join(";"),
        );
        writer.write_record(&record)?;
    }
    writer.flush()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn export_reads_back_the_same() {
        let csv = "ID,ExternalSyncID,FirstName,LastName,Email,Organisation,MobilePhone,Status,SecondaryEmails\n\
                   P1,E1,Anne,Lee,Anne.Lee@nhs.net,rxx,07911 023456,Leaver,old.lee@nhs.net\n\
                   P2,,Bo,Ng,,RXX,,,\n";
        let parsed = read(csv.as_bytes()).unwrap();
        assert!(parsed.problems.is_empty(), "{:?}", parsed.problems);
        let a = &parsed.accounts[0];
        assert_eq!(a.status, Status::Leaver);
        assert_eq!(a.email(), Some("anne.lee@nhs.net"));
        assert_eq!(a.organisation(), "RXX");
        assert_eq!(a.get(Field::MobilePhone), Some("+447911023456"));
        assert_eq!(a.secondary[0].as_str(), "old.lee@nhs.net");
        assert_eq!(parsed.accounts[1].status, Status::Active);
        assert_eq!(parsed.accounts[1].external_sync_id(), None);
        let mut out = Vec::new();
        write(&mut out, &parsed.accounts).unwrap();
        let again = read(&out).unwrap();
        assert_eq!(again.accounts, parsed.accounts);
    }
}

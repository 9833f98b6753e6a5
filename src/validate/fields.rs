//! Checks of single identifying fields: keys, ODS codes, e-mail addresses.
//!
//! In: a cleaned, non-blank cell. Out: the typed, normalised value or the reason it is refused.

use super::text;
use crate::model::{Email, ExternalSyncId, OdsCode, PortalId};

/// Longest accepted key (ID or ExternalSyncID), in characters.
const MAX_KEY: usize = 64;

/// Excel's scientific notation (`1.23E+11`) means the digits of an ID were lost on the way.
fn check_not_shortened(value: &str) -> Result<(), String> {
    if text::is_scientific_notation(value) {
        return Err(
            "looks like a number a spreadsheet shortened (scientific notation): its digits are \
             lost; format the column as Text and send the file again"
                .to_owned(),
        );
    }
    Ok(())
}

/// ExternalSyncID: no white space, no formula start, not mangled by a spreadsheet.
pub(super) fn check_key(value: &str) -> Result<ExternalSyncId, String> {
    check_not_shortened(value)?;
    text::check_not_formula(value)?;
    if value.chars().any(char::is_whitespace) {
        return Err("must not contain spaces".to_owned());
    }
    let count = value.chars().count();
    if count > MAX_KEY {
        return Err(format!(
            "is {count} characters long; at most {MAX_KEY} are allowed"
        ));
    }
    Ok(ExternalSyncId::new_unchecked(value))
}

/// The portal's ID: letters, digits and `-`.
pub(super) fn check_portal_id(value: &str) -> Result<PortalId, String> {
    check_not_shortened(value)?;
    if value.len() > MAX_KEY || !value.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
        return Err("is not a portal ID (letters, digits and '-')".to_owned());
    }
    Ok(PortalId::new_unchecked(value))
}

/// ODS codes: letters and digits, upper-cased.
pub(super) fn check_ods(value: &str) -> Result<OdsCode, String> {
    if value.is_empty() || value.len() > 10 || !value.chars().all(|c| c.is_ascii_alphanumeric()) {
        return Err("is not an ODS code (up to 10 letters and digits)".to_owned());
    }
    Ok(OdsCode::new_unchecked(value.to_ascii_uppercase()))
}

/// A primary address: valid syntax and in a service domain or, with `subdomains`, one of
/// their sub-domains (otherwise it is a contact).
pub(super) fn check_email(
    value: &str,
    domains: &[String],
    subdomains: bool,
) -> Result<Email, String> {
    let lower = value.to_lowercase();
    let Some((local, domain)) = lower.rsplit_once('@') else {
        return Err("is not an e-mail address (no @)".to_owned());
    };
    let local_ok = !local.is_empty()
        && local.len() <= 64
        && !local.starts_with('.')
        && !local.ends_with('.')
        && !local.contains("..")
        && local
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "!#$%&'*+/=?^_`{|}~.-".contains(c));
    let domain_ok = !domain.is_empty()
        && domain.split('.').all(|label| {
            !label.is_empty()
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        });
    if !local_ok || !domain_ok {
        return Err("is not a valid e-mail address".to_owned());
    }
    let covered = |d: &String| {
        domain == d
            || (subdomains
                && domain
                    .strip_suffix(d.as_str())
                    .is_some_and(|rest| rest.ends_with('.')))
    };
    if !domains.iter().any(covered) {
        return Err(format!(
            "is outside the service domain ({}{}): this person would be a contact, and a \
             connector cannot create contacts",
            domains.join(", "),
            if subdomains {
                " and its sub-domains"
            } else {
                ""
            }
        ));
    }
    Ok(Email::new_unchecked(lower))
}

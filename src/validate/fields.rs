//! Checks of single identifying fields: keys, ODS codes, e-mail addresses.
//!
//! In: a cleaned, non-blank cell. Out: the typed, normalised value or the reason it is refused.

use std::borrow::Cow;

use unicode_normalization::UnicodeNormalization;

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

/// A key (ID, ExternalSyncID, e-mail) as it is compared and stored: Unicode NFKC, so
/// full-width letters and digits (`Ｅ１２`) are the plain ones (`E12`). An invisible
/// formatting character (category Cf: zero-width space, BOM, word joiner, soft hyphen,
/// direction marks) is refused, naming it: a key that looks the same must be the same.
pub(super) fn normalise_key(value: &str) -> Result<Cow<'_, str>, String> {
    if value.is_ascii() {
        return Ok(Cow::Borrowed(value));
    }
    let normalised: String = value.nfkc().collect();
    if let Some(c) = value
        .chars()
        .chain(normalised.chars())
        .find(|&c| text::is_format_char(c))
    {
        return Err(format!(
            "contains the invisible character {}, which cannot be part of a key: remove it and \
             send the file again",
            text::describe_format_char(c)
        ));
    }
    Ok(Cow::Owned(normalised))
}

/// ExternalSyncID: normalised ([`normalise_key`]); no white space, no formula start, not
/// mangled by a spreadsheet.
pub(super) fn check_key(value: &str) -> Result<ExternalSyncId, String> {
    let value = &*normalise_key(value)?;
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
    let value = &*normalise_key(value)?;
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
    let lower = normalise_key(value)?.to_lowercase();
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_nfkc_and_invisible_characters_are_refused() {
        assert_eq!(
            check_key("\u{FF25}\u{FF11}\u{FF12}").unwrap().as_str(),
            "E12"
        );
        for (key, code) in [
            ("E12\u{200B}", "U+200B"),
            ("\u{FEFF}E12", "U+FEFF"),
            ("E\u{2060}12", "U+2060"),
            ("E1\u{00AD}2", "U+00AD"),
        ] {
            let err = check_key(key).unwrap_err();
            assert!(err.contains(code), "{key:?}: {err}");
        }
        assert_eq!(
            check_email("\u{FF41}nn@nhs.net", &["nhs.net".to_owned()], true)
                .unwrap()
                .as_str(),
            "ann@nhs.net"
        );
        assert!(
            check_email("ann\u{200B}@nhs.net", &["nhs.net".to_owned()], true)
                .unwrap_err()
                .contains("U+200B")
        );
        assert_eq!(check_portal_id("\u{FF11}23").unwrap().as_str(), "123");
    }
}

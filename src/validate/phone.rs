//! UK telephone numbers: any common way of writing one, to one canonical form (E.164).
//!
//! In: a cleaned cell. Out: a [`Phone`] such as `+447911123456`, or the reason it is not a UK
//! number (or not a mobile, where one is required). The shapes people type (`07911 123456`,
//! `+44 (0)20 7946 0000`, `0044…`, Excel's lost leading zero) are taken apart here; whether the
//! digits are a real UK number is decided by the patterns of libphonenumber's own metadata for
//! the regions of the +44 plan, compiled once and matched directly instead of through its
//! parser (≈ 20 µs a number, behind a global lock); a differential test checks the two agree.

use phonenumber::Type;
use std::sync::OnceLock;

use phonenumber::metadata::{DATABASE, Descriptor, Metadata};

use crate::model::Phone;

/// What a column accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PhoneKind {
    Any,
    Mobile,
}

/// The regions of the UK numbering plan (+44): Great Britain, Guernsey, Jersey, Isle of Man.
const UK_REGIONS: [&str; 4] = ["GB", "GG", "JE", "IM"];

/// Number types in libphonenumber's order of precedence (fixed line and mobile come last).
const TYPES: [Type; 10] = [
    Type::PremiumRate,
    Type::TollFree,
    Type::SharedCost,
    Type::Voip,
    Type::PersonalNumber,
    Type::Pager,
    Type::Uan,
    Type::Voicemail,
    Type::FixedLine,
    Type::Mobile,
];

/// One metadata pattern, compiled once: anchored at the start, as the library matches it.
struct Pattern {
    regex: regex::Regex,
    lengths: Vec<u16>,
}

impl Pattern {
    fn new(descriptor: &Descriptor) -> Option<Pattern> {
        let source = format!("(?x)^(?:{})", descriptor.national_number().as_str());
        Some(Pattern {
            regex: regex::Regex::new(&source).ok()?,
            lengths: descriptor.possible_length().to_vec(),
        })
    }

    fn is_match(&self, nsn: &str) -> bool {
        (self.lengths.is_empty() || self.lengths.contains(&(nsn.len() as u16)))
            && self.regex.is_match(nsn)
    }
}

struct Region {
    general: Pattern,
    types: Vec<(Type, Pattern)>,
}

/// The four regions' patterns, compiled once.
fn regions() -> &'static [Region] {
    static REGIONS: OnceLock<Vec<Region>> = OnceLock::new();
    REGIONS.get_or_init(|| {
        UK_REGIONS
            .iter()
            .filter_map(|id| DATABASE.by_id(*id))
            .filter_map(|meta: &Metadata| {
                let d = meta.descriptors();
                Some(Region {
                    general: Pattern::new(d.general())?,
                    types: TYPES
                        .iter()
                        .filter_map(|t| Some((*t, Pattern::new(d.get(*t)?)?)))
                        .collect(),
                })
            })
            .collect()
    })
}

/// The type of a national significant number of the UK plan (`Unknown` when not valid).
pub fn uk_number_type(nsn: &str) -> Type {
    for region in regions() {
        if !region.general.is_match(nsn) {
            continue;
        }
        let matching = |kind: Type| {
            region
                .types
                .iter()
                .any(|(t, p)| *t == kind && p.is_match(nsn))
        };
        for kind in &TYPES[..8] {
            if matching(*kind) {
                return *kind;
            }
        }
        match (matching(Type::FixedLine), matching(Type::Mobile)) {
            (true, true) => return Type::FixedLineOrMobile,
            (true, false) => return Type::FixedLine,
            (false, true) => return Type::Mobile,
            (false, false) => {}
        }
    }
    Type::Unknown
}

/// Takes a written number apart into its UK national significant number (no leading 0).
fn national_digits(raw: &str) -> Result<String, String> {
    let lower = raw.to_ascii_lowercase();
    if lower.contains("ext") || lower.contains('x') {
        return Err("extensions cannot be stored: give the number without one".to_owned());
    }
    let mut text = raw.trim().to_owned();
    if let Some(rest) = text.strip_prefix("+44") {
        text = format!("+44{}", rest.replacen("(0)", "", 1));
    }
    let plus = text.starts_with('+');
    let mut digits = String::with_capacity(text.len());
    for (i, c) in text.chars().enumerate() {
        match c {
            '0'..='9' => digits.push(c),
            '+' if i == 0 => {}
            ' ' | '-' | '.' | '(' | ')' | '/' => {}
            _ => return Err(format!("the character '{c}' is not part of a phone number")),
        }
    }
    let nsn = if plus {
        match digits.strip_prefix("44") {
            Some(rest) => rest,
            None => return Err("is not a UK number (it does not start +44)".to_owned()),
        }
    } else if let Some(rest) = digits.strip_prefix("0044") {
        rest
    } else if digits.starts_with("44") && (11..=12).contains(&digits.len()) {
        &digits[2..]
    } else if let Some(rest) = digits.strip_prefix('0') {
        rest
    } else {
        // A spreadsheet that stored the number as a number dropped its leading 0.
        &digits
    };
    if !(9..=10).contains(&nsn.len()) || nsn.starts_with('0') {
        return Err("does not have the digits of a UK number (e.g. 0113 496 0000)".to_owned());
    }
    Ok(nsn.to_owned())
}

/// Normalises a UK number to E.164, or says why it cannot be one.
pub fn normalise(raw: &str, kind: PhoneKind) -> Result<Phone, String> {
    let nsn = national_digits(raw)?;
    match (uk_number_type(&nsn), kind) {
        (Type::Unknown, _) => Err("is not a valid UK number".to_owned()),
        (Type::Mobile | Type::FixedLineOrMobile, _) | (_, PhoneKind::Any) => {
            Ok(Phone::new_unchecked(format!("+44{nsn}")))
        }
        (_, PhoneKind::Mobile) => Err("is not a UK mobile number (mobiles start 07)".to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn common_shapes_give_one_form() {
        for raw in [
            "07911 123456",
            "07911123456",
            "+44 7911 123456",
            "+44 (0)7911 123456",
            "0044 7911 123456",
            "447911123456",
            "(07911) 123-456",
            "7911123456",
        ] {
            assert_eq!(
                normalise(raw, PhoneKind::Mobile).map(Phone::into_string),
                Ok("+447911123456".to_owned()),
                "{raw}"
            );
        }
        assert_eq!(
            normalise("0113 496 0123", PhoneKind::Any).map(Phone::into_string),
            Ok("+441134960123".to_owned())
        );
        assert_eq!(
            normalise("020 7946 0000", PhoneKind::Any).map(Phone::into_string),
            Ok("+442079460000".to_owned())
        );
    }

    #[test]
    fn refusals_say_why() {
        let err = |raw, kind| normalise(raw, kind).unwrap_err();
        assert!(err("0113 496 0123", PhoneKind::Mobile).contains("not a UK mobile"));
        assert!(err("+33 1 23 45 67 89", PhoneKind::Any).contains("not a UK number"));
        assert!(err("0113 496 0123 ext 45", PhoneKind::Any).contains("extension"));
        assert!(err("0113 496", PhoneKind::Any).contains("digits"));
        assert!(err("01134960123a", PhoneKind::Any).contains("'a'"));
        assert!(err("0113#4960123", PhoneKind::Any).contains("'#'"));
        assert!(err("01000 000000", PhoneKind::Any).contains("not a valid UK number"));
    }

    fn library(nsn: &str) -> Type {
        match phonenumber::parse(Some(phonenumber::country::Id::GB), format!("0{nsn}")) {
            Ok(n) if phonenumber::is_valid(&n) => n.number_type(&DATABASE),
            _ => Type::Unknown,
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(3000))]
        /// The direct pattern match agrees with libphonenumber's parser on UK-shaped digits.
        #[test]
        fn agrees_with_libphonenumber(first in "[1-9]", rest in "[0-9]{8,9}") {
            let nsn = format!("{first}{rest}");
            prop_assert_eq!(uk_number_type(&nsn), library(&nsn), "0{}", nsn);
        }

        #[test]
        fn never_panics_and_is_idempotent(raw in "\\PC{0,24}") {
            if let Ok(p) = normalise(&raw, PhoneKind::Any) {
                prop_assert_eq!(normalise(p.as_str(), PhoneKind::Any), Ok(p));
            }
        }
    }
}

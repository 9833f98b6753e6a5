//! UK telephone numbers: any common way of writing one, to one canonical form (E.164).
//!
//! In: a cleaned cell. Out: a [`Phone`] such as `+447911123456`, or the reason it is not a UK
//! number (or not a mobile, where one is required). The shapes people type (`07911 123456`,
//! `+44 (0)20 7946 0000`, `0044…`, Excel's lost leading zero) are taken apart here; whether the
//! digits are a real UK number is decided by the patterns of libphonenumber's own metadata for
//! the regions of the +44 plan, compiled once and matched directly instead of through its
//! parser (≈ 20 µs a number, behind a global lock); a differential test checks the two agree.
//! The patterns are copied from the library's metadata into [`patterns`] (loading the whole
//! metadata costs a tenth of a second of every process); a test fails when the two differ.

use std::sync::OnceLock;

use phonenumber::Type;
use regex_automata::dfa::{Automaton, dense};
use regex_automata::{Anchored, Input, MatchKind};

use crate::model::Phone;

#[rustfmt::skip]
mod patterns;

/// What a column accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PhoneKind {
    Any,
    Mobile,
}

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

/// One region's patterns, compiled once into one dense DFA matched in a single pass over
/// the digits: the general pattern first, then one per type in [`TYPES`] order. Each is
/// anchored at the start, as the library matches it, and applies only to its possible
/// lengths. A dense DFA needs no per-search cache, so the threads validating a file share it.
struct Region {
    dfa: dense::DFA<Vec<u32>>,
    /// For each pattern of the DFA: its type (`None` for the general one) and its lengths.
    patterns: Vec<(Option<Type>, &'static [u16])>,
}

impl Region {
    fn new(source: &patterns::Region) -> Option<Region> {
        let sources: Vec<String> = source
            .patterns
            .iter()
            .map(|(_, pattern, _)| format!("(?x)^(?:{pattern})"))
            .collect();
        // The digits are ASCII: `\d` means 0-9, not every script's digits.
        let dfa = dense::Builder::new()
            .syntax(regex_automata::util::syntax::Config::new().unicode(false))
            .configure(dense::Config::new().match_kind(MatchKind::All))
            .build_many(&sources)
            .ok()?;
        // One bit a pattern in [`Region::matched`].
        if sources.len() > 32 {
            return None;
        }
        Some(Region {
            dfa,
            patterns: source
                .patterns
                .iter()
                .map(|(kind, _, lengths)| (*kind, *lengths))
                .collect(),
        })
    }

    /// The number's type in this region, in libphonenumber's order of precedence.
    fn number_type(&self, nsn: &str) -> Type {
        let length = nsn.len() as u16;
        let matched = self.matched(nsn);
        let is = |kind: Option<Type>| {
            self.patterns.iter().enumerate().any(|(i, (k, lengths))| {
                *k == kind
                    && matched & (1 << i) != 0
                    && (lengths.is_empty() || lengths.contains(&length))
            })
        };
        if !is(None) {
            return Type::Unknown;
        }
        if let Some(kind) = TYPES[..8].iter().find(|t| is(Some(**t))) {
            return *kind;
        }
        match (is(Some(Type::FixedLine)), is(Some(Type::Mobile))) {
            (true, true) => Type::FixedLineOrMobile,
            (true, false) => Type::FixedLine,
            (false, true) => Type::Mobile,
            (false, false) => Type::Unknown,
        }
    }

    /// The patterns with a match that starts at the number's first digit (ending anywhere),
    /// one bit each: the DFA walked over the digits, every match state on the way read.
    fn matched(&self, nsn: &str) -> u32 {
        let dfa = &self.dfa;
        let input = Input::new(nsn).anchored(Anchored::Yes);
        let Ok(mut state) = dfa.start_state_forward(&input) else {
            return 0;
        };
        let mut matched = 0u32;
        let mut read = |state| {
            if dfa.is_match_state(state) {
                for i in 0..dfa.match_len(state) {
                    matched |= 1 << dfa.match_pattern(state, i).as_usize();
                }
            }
        };
        for &digit in nsn.as_bytes() {
            state = dfa.next_state(state, digit);
            read(state);
            if dfa.is_dead_state(state) {
                return matched;
            }
        }
        read(dfa.next_eoi_state(state));
        matched
    }
}

/// The four regions' patterns, compiled once.
fn regions() -> &'static [Region] {
    static REGIONS: OnceLock<Vec<Region>> = OnceLock::new();
    REGIONS.get_or_init(|| patterns::REGIONS.iter().filter_map(Region::new).collect())
}

/// The type of a national significant number of the UK plan (`Unknown` when not valid).
pub fn uk_number_type(nsn: &str) -> Type {
    regions()
        .iter()
        .map(|r| r.number_type(nsn))
        .find(|t| *t != Type::Unknown)
        .unwrap_or(Type::Unknown)
}

/// An example number of a kind, for messages: a mobile for `MobilePhone`.
fn example(kind: PhoneKind) -> &'static str {
    match kind {
        PhoneKind::Mobile => "07911 123456",
        PhoneKind::Any => "0113 496 0000",
    }
}

/// A UK national significant number (no leading 0): 9 or 10 ASCII digits, kept on the stack.
struct Nsn {
    digits: [u8; 10],
    len: usize,
}

impl Nsn {
    fn as_str(&self) -> &str {
        // Only ASCII digits are ever stored.
        std::str::from_utf8(&self.digits[..self.len]).unwrap_or_default()
    }
}

/// Takes a written number apart into its UK national significant number (no leading 0).
fn national_digits(raw: &str, kind: PhoneKind) -> Result<Nsn, String> {
    let text = raw.trim();
    let plus = text.starts_with('+');
    // Digits in a fixed buffer: numbers are short, and this runs for every phone of a file.
    let mut digits = [0u8; 24];
    let mut count = 0;
    let mut rest = text.strip_prefix('+').unwrap_or(text);
    while let Some(c) = rest.chars().next() {
        // `+44 (0)20…`: the national 0 written after the country code is not a digit.
        if plus && count == 2 && digits[..2] == *b"44" && rest.starts_with("(0)") {
            rest = &rest[3..];
            continue;
        }
        match c {
            '0'..='9' if count < digits.len() => {
                digits[count] = c as u8;
                count += 1;
            }
            '0'..='9' => return Err("has too many digits for a UK number".to_owned()),
            ' ' | '-' | '.' | '(' | ')' | '/' => {}
            'x' | 'X' | 'e' | 'E' => {
                return Err("extensions cannot be stored: give the number without one".to_owned());
            }
            _ => return Err(format!("the character '{c}' is not part of a phone number")),
        }
        rest = &rest[c.len_utf8()..];
    }
    let digits = &digits[..count];
    let nsn = if plus {
        match digits.strip_prefix(b"44") {
            Some(rest) => rest,
            None => return Err("is not a UK number (it does not start +44)".to_owned()),
        }
    } else if let Some(rest) = digits.strip_prefix(b"0044") {
        rest
    } else if digits.starts_with(b"44") && (11..=12).contains(&digits.len()) {
        &digits[2..]
    } else if let Some(rest) = digits.strip_prefix(b"0") {
        rest
    } else {
        // A spreadsheet that stored the number as a number dropped its leading 0.
        digits
    };
    if nsn.starts_with(b"0") {
        return Err(format!(
            "does not have the digits of a UK number (e.g. {})",
            example(kind)
        ));
    }
    if !(9..=10).contains(&nsn.len()) {
        return Err(format!(
            "is too {} for a UK number, which has 10 or 11 digits with its leading 0 (e.g. \
             0113 496 0000, 07911 123456)",
            if nsn.len() < 9 { "short" } else { "long" }
        ));
    }
    let mut out = Nsn {
        digits: [0; 10],
        len: nsn.len(),
    };
    out.digits[..nsn.len()].copy_from_slice(nsn);
    Ok(out)
}

/// Normalises a UK number to E.164, or says why it cannot be one.
pub fn normalise(raw: &str, kind: PhoneKind) -> Result<Phone, String> {
    let nsn = national_digits(raw, kind)?;
    let nsn = nsn.as_str();
    match (uk_number_type(nsn), kind) {
        (Type::Unknown, _) if nsn.starts_with('7') => Err(
            "looks like a mobile number, but its range is not allocated to any UK network \
             (07700 900000 to 900999, for example, is kept for drama): check it against the \
             person's phone (a valid one looks like 07911 123456)"
                .to_owned(),
        ),
        (Type::Unknown, _) => Err(format!(
            "is not in a range allocated to UK numbers: check the number (a valid one looks \
             like {})",
            example(kind)
        )),
        (Type::Mobile | Type::FixedLineOrMobile, _) | (_, PhoneKind::Any) => {
            let mut e164 = String::with_capacity(3 + nsn.len());
            e164.push_str("+44");
            e164.push_str(nsn);
            Ok(Phone::new_unchecked(e164))
        }
        (_, PhoneKind::Mobile) => Err(
            "is a landline number, not a mobile: give it as OfficePhone, and a mobile here \
             (UK mobiles start 07, e.g. 07911 123456)"
                .to_owned(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_mobile_error_gives_a_mobile_as_its_example() {
        for raw in ["0011 111 1111", "0999 999 9999"] {
            let mobile = normalise(raw, PhoneKind::Mobile).unwrap_err();
            assert!(mobile.contains("07911 123456"), "{raw}: {mobile}");
            assert!(!mobile.contains("0113"), "{raw}: {mobile}");
            let office = normalise(raw, PhoneKind::Any).unwrap_err();
            assert!(office.contains("0113 496 0000"), "{raw}: {office}");
        }
    }

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
        assert!(
            err("0113 496 0123", PhoneKind::Mobile).contains("is a landline number, not a mobile")
        );
        assert!(err("+33 1 23 45 67 89", PhoneKind::Any).contains("not a UK number"));
        assert!(err("0113 496 0123 ext 45", PhoneKind::Any).contains("extension"));
        assert!(err("0113 496", PhoneKind::Any).contains("is too short for a UK number"));
        assert!(err("01134960123a", PhoneKind::Any).contains("'a'"));
        assert!(err("0113#4960123", PhoneKind::Any).contains("'#'"));
        assert!(
            err("01000 000000", PhoneKind::Any).contains("not in a range allocated to UK numbers")
        );
        for drama in ["07700 900123", "07700900123"] {
            let e = err(drama, PhoneKind::Mobile);
            assert!(
                e.contains("looks like a mobile number, but its range is not allocated"),
                "{e}"
            );
        }
    }

    /// The copied patterns are the library's, in the same order: regenerated from it with
    /// `UPDATE_GOLDEN=1`.
    #[test]
    fn copied_patterns_are_the_librarys() {
        let current = generate(&phonenumber::metadata::DATABASE);
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/src/validate/phone/patterns.rs"
        );
        if std::env::var_os("UPDATE_GOLDEN").is_some() {
            std::fs::write(path, &current).unwrap();
        }
        let copied = std::fs::read_to_string(path).unwrap();
        assert!(
            copied == current,
            "src/validate/phone/patterns.rs differs from the phonenumber crate's metadata: \
             run the tests with UPDATE_GOLDEN=1"
        );
    }

    /// The text of `patterns.rs` for the library's current metadata.
    fn generate(database: &phonenumber::metadata::Database) -> String {
        let mut out = String::from(
            "//! The patterns of libphonenumber's metadata for the regions of the UK numbering\n\
             //! plan (+44), copied from the `phonenumber` crate: written by the test\n\
             //! `copied_patterns_are_the_librarys` with `UPDATE_GOLDEN=1`, never by hand.\n\n\
             use phonenumber::Type;\n\n\
             /// One region: for its general pattern (`None`) and each type it has, in the order\n\
             /// matched, the national-number pattern and the possible lengths.\n\
             pub(super) struct Region {\n    \
                 pub patterns: &'static [(Option<Type>, &'static str, &'static [u16])],\n\
             }\n\n\
             /// Great Britain, Guernsey, Jersey and the Isle of Man.\n\
             pub(super) const REGIONS: [Region; 4] = [\n",
        );
        for id in ["GB", "GG", "JE", "IM"] {
            let meta = database.by_id(id).unwrap();
            let d = meta.descriptors();
            out.push_str(&format!(
                "    // {id}\n    Region {{\n        patterns: &[\n"
            ));
            let described = std::iter::once((None, d.general()))
                .chain(TYPES.iter().filter_map(|t| Some((Some(*t), d.get(*t)?))));
            for (kind, desc) in described {
                let kind = match kind {
                    None => "None".to_owned(),
                    Some(t) => format!("Some(Type::{t:?})"),
                };
                let pattern = desc.national_number().as_str();
                assert!(!pattern.contains("\"#"), "{pattern}");
                out.push_str(&format!(
                    "            (\n                {kind},\n                r#\"{pattern}\"#,\n                &{:?},\n            ),\n",
                    desc.possible_length()
                ));
            }
            out.push_str("        ],\n    },\n");
        }
        out.push_str("];\n");
        out
    }

    fn library(nsn: &str) -> Type {
        match phonenumber::parse(Some(phonenumber::country::Id::GB), format!("0{nsn}")) {
            Ok(n) if phonenumber::is_valid(&n) => n.number_type(&phonenumber::metadata::DATABASE),
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

        /// Mobile ranges are allocated in small blocks: the same agreement, on 07 numbers.
        #[test]
        fn agrees_with_libphonenumber_on_mobiles(rest in "[0-9]{9}") {
            let nsn = format!("7{rest}");
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

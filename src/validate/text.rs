//! Cell text: the normalisation every cell gets, and the rules for names and free text.
//!
//! In: a cell as sent. Out: the normalised value (trimmed, inner white space collapsed, NFC,
//! curly apostrophes and hyphen look-alikes straightened) or why the cell is unusable. Every
//! function here is idempotent: normalising a normalised value changes nothing.

use std::borrow::Cow;

use unicode_normalization::{UnicodeNormalization, char::is_combining_mark, is_nfc_quick};

/// Characters a spreadsheet would read as the start of a formula.
const FORMULA_START: [char; 3] = ['=', '+', '@'];

fn is_apostrophe_like(c: char) -> bool {
    matches!(
        c,
        '\u{2018}' | '\u{2019}' | '\u{201B}' | '\u{02BC}' | '\u{2032}' | '`' | '\u{00B4}'
    )
}

fn is_hyphen_like(c: char) -> bool {
    matches!(c, '\u{2010}' | '\u{2011}' | '\u{2012}' | '\u{2013}')
}

fn straighten(c: char) -> char {
    if is_apostrophe_like(c) {
        '\''
    } else if is_hyphen_like(c) {
        '-'
    } else {
        c
    }
}

/// Is this plain ASCII that cleaning would leave as it is? One pass over the bytes.
fn is_already_clean_ascii(raw: &str) -> bool {
    let bytes = raw.as_bytes();
    if bytes.first() == Some(&b' ') || bytes.last() == Some(&b' ') {
        return false;
    }
    let mut previous_space = false;
    for &b in bytes {
        let space = b == b' ';
        if !(0x20..0x7f).contains(&b) || b == b'`' || (space && previous_space) {
            return false;
        }
        previous_space = space;
    }
    true
}

/// Is this text (of any script) that cleaning would leave as it is: no control character,
/// nothing to straighten, white space only as single plain spaces between words, and
/// certainly NFC by the quick check? One pass over the characters, then the quick check.
fn is_already_clean(raw: &str) -> bool {
    let mut previous_space = true;
    for c in raw.chars() {
        if c.is_whitespace() {
            if c != ' ' || previous_space {
                return false;
            }
            previous_space = true;
            continue;
        }
        if c.is_control() || is_apostrophe_like(c) || is_hyphen_like(c) {
            return false;
        }
        previous_space = false;
    }
    !previous_space && is_nfc_quick(raw.chars()) == unicode_normalization::IsNormalized::Yes
}

/// Normalises a cell; an error names the first control character.
///
/// Most cells are already clean (plain ASCII, or composed text with single spaces) and are
/// given back borrowed after one pass; the rest take [`clean_general`], which gives the same
/// value for those (a property test holds the two to it).
pub fn clean(raw: &str) -> Result<Cow<'_, str>, String> {
    if is_already_clean_ascii(raw) || is_already_clean(raw) {
        return Ok(Cow::Borrowed(raw));
    }
    clean_general(raw)
}

/// [`clean`] without its fast paths: every step taken for every value.
pub fn clean_general(raw: &str) -> Result<Cow<'_, str>, String> {
    if let Some(c) = raw.chars().find(|c| c.is_control()) {
        return Err(match c {
            '\n' | '\r' => "contains a line break, which cannot be stored".to_owned(),
            '\t' => "contains a tab, which cannot be stored".to_owned(),
            c => format!(
                "contains the control character U+{:04X}, which cannot be stored",
                c as u32
            ),
        });
    }
    // Compose first: some characters (Greek oxia, U+1FFD) compose to ones straightened below.
    let composed: String = if is_nfc_quick(raw.chars()) == unicode_normalization::IsNormalized::Yes
    {
        raw.chars().map(straighten).collect()
    } else {
        raw.nfc().map(straighten).collect()
    };
    let mut out = String::with_capacity(composed.len());
    for word in composed.split_whitespace() {
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(word);
    }
    Ok(Cow::Owned(out))
}

/// Refuses a value a spreadsheet would run as a formula: after any leading white space, a
/// first `=`, `+` or `@`, or a `-` followed by anything (`-2+3`, `-cmd|…`, `- x`). A value of
/// dashes only (`-`, `--`, a placeholder for "none") is text to every spreadsheet.
pub fn check_not_formula(value: &str) -> Result<(), String> {
    let value = value.trim_start();
    match value.chars().next() {
        Some(c) if FORMULA_START.contains(&c) => Err(format!(
            "starts with '{c}', which a spreadsheet would run as a formula"
        )),
        Some('-') if !value.chars().all(|c| c == '-') => Err(
            "starts with '-' followed by more text, which a spreadsheet would run as a formula"
                .to_owned(),
        ),
        _ => Ok(()),
    }
}

/// The name of an invisible formatting character (Unicode category Cf), for messages.
pub fn describe_format_char(c: char) -> String {
    let name = match c {
        '\u{00AD}' => "soft hyphen",
        '\u{200B}' => "zero-width space",
        '\u{200C}' => "zero-width non-joiner",
        '\u{200D}' => "zero-width joiner",
        '\u{200E}' | '\u{200F}' => "direction mark",
        '\u{2060}' => "word joiner",
        '\u{FEFF}' => "byte order mark",
        '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' => "direction control",
        _ => "invisible formatting character",
    };
    format!("U+{:04X} ({name})", c as u32)
}

/// Is this an invisible formatting character (Unicode general category Cf)?
pub fn is_format_char(c: char) -> bool {
    use unicode_properties::{GeneralCategory, UnicodeGeneralCategory};
    c.general_category() == GeneralCategory::Format
}

/// A person's name: letters of any script, spaces, `'`, `-` and `.`; starts with a letter;
/// 1 to `max` characters.
pub fn check_name(value: &str, max: usize) -> Result<(), String> {
    check_not_formula(value)?;
    let count = value.chars().count();
    if count > max {
        return Err(format!(
            "is {count} characters long; at most {max} are allowed"
        ));
    }
    if !value.chars().next().is_some_and(char::is_alphabetic) {
        return Err("must start with a letter".to_owned());
    }
    match value.chars().find(|&c| {
        !(c.is_alphabetic() || is_combining_mark(c) || matches!(c, ' ' | '\'' | '-' | '.'))
    }) {
        Some(c) if is_format_char(c) => Err(format!(
            "contains the invisible character {}; names may hold letters, spaces, apostrophes, \
             hyphens and full stops",
            describe_format_char(c)
        )),
        Some(c) => Err(format!(
            "contains '{c}'; names may hold letters, spaces, apostrophes, hyphens and full stops"
        )),
        None => Ok(()),
    }
}

/// Free text (job title, notes, display name): no formula start, at most `max` characters.
pub fn check_free_text(value: &str, max: usize) -> Result<(), String> {
    check_not_formula(value)?;
    let count = value.chars().count();
    if count > max {
        return Err(format!(
            "is {count} characters long; at most {max} are allowed"
        ));
    }
    Ok(())
}

/// What every encoding refusal tells the sender to do.
pub use crate::report::mistakes::ENCODING_REMEDY;

/// The Windows-1252 byte a character is read from, for the characters of bytes 0x80 and up
/// (the same table the text reader decodes with).
fn cp1252_byte(c: char) -> Option<u8> {
    // ASCII is no mark, and Windows-1252 gives U+00A0–U+00FF the byte of the same value: only
    // the rest (U+0080–U+009F and the characters of 0x80–0x9F, such as `€` and `’`) are looked up.
    match c as u32 {
        0..=0x7F => None,
        0xA0..=0xFF => Some(c as u8),
        _ => cp1252_byte_looked_up(c),
    }
}

/// [`cp1252_byte`] by the encoder's own table, for every character.
fn cp1252_byte_looked_up(c: char) -> Option<u8> {
    let mut utf8 = [0u8; 4];
    let (bytes, _, unmappable) = encoding_rs::WINDOWS_1252.encode(c.encode_utf8(&mut utf8));
    match *bytes {
        [b] if !unmappable && b >= 0x80 => Some(b),
        _ => None,
    }
}

/// Refuses a value that carries the marks of text saved in one encoding and read in another:
/// the replacement character U+FFFD (a character was lost), or a run of characters whose
/// Windows-1252 bytes form one UTF-8 character (`Ã©` for `é`, `â€™` for `’`, `Â` and a
/// no-break space for a no-break space). A lead byte must be followed by exactly the
/// continuation bytes UTF-8 demands, so accented names (`Zoë`, `José`, `Ó Briain`) never match.
/// Check the value as sent, before cleaning folds no-break spaces and straightens quotes.
pub fn check_encoding(value: &str) -> Result<(), String> {
    // Most cells: nothing to look at, and nothing allocated.
    if value.is_ascii() {
        return Ok(());
    }
    if value.contains('\u{FFFD}') {
        return Err(format!(
            "contains the replacement character '\u{FFFD}', so a character was lost: {ENCODING_REMEDY}"
        ));
    }
    let mut chars = value.char_indices();
    while let Some((start, lead)) = chars.next() {
        let Some(first) = cp1252_byte(lead) else {
            continue;
        };
        // Only the leads a mis-read file carries: Latin-1 and Latin Extended-A (`Ã`, `Â`,
        // `Ä`, `Å`), Greek and Cyrillic (`Î`–`Ñ`), and every 3- and 4-byte lead (`â€™`,
        // emoji). The other capitals (`Ú`, `Ó`, `Ø`, `É`…) start real names, and what they
        // would decode to (Arabic, Hebrew, IPA) is no mark: `Úša` is a name, not `ښa`.
        let width = match first {
            0xC2..=0xC5 | 0xCE..=0xD1 => 2,
            0xE0..=0xEF => 3,
            0xF0..=0xF4 => 4,
            _ => continue,
        };
        // The bytes of the lead and the characters after it, on the stack.
        let mut bytes = [first, 0, 0, 0];
        let mut ahead = chars.clone();
        let mut end = value.len();
        let mut whole = true;
        for byte in bytes.iter_mut().take(width).skip(1) {
            match ahead.next().and_then(|(_, c)| cp1252_byte(c)) {
                Some(b) => *byte = b,
                None => {
                    whole = false;
                    break;
                }
            }
        }
        if let Some((next, _)) = ahead.next() {
            end = next;
        }
        if whole && std::str::from_utf8(&bytes[..width]).is_ok() {
            let marks = value.get(start..end).unwrap_or_default();
            return Err(format!(
                "contains '{}', the mark of UTF-8 text read as Windows-1252: {ENCODING_REMEDY}",
                marks.escape_debug()
            ));
        }
    }
    Ok(())
}

/// Excel's scientific notation (`1.23457E+11`): the digits of an ID were lost on the way.
pub fn is_scientific_notation(value: &str) -> bool {
    let Some((mantissa, exponent)) = value.split_once(['E', 'e']) else {
        return false;
    };
    let exponent = exponent.strip_prefix('+').unwrap_or(exponent);
    let (whole, fraction) = mantissa.split_once('.').unwrap_or((mantissa, "0"));
    !whole.is_empty()
        && whole.bytes().all(|b| b.is_ascii_digit())
        && fraction.bytes().all(|b| b.is_ascii_digit())
        && !exponent.is_empty()
        && exponent.bytes().all(|b| b.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The check written plainly, over a list of every character and the encoder's table.
    fn check_encoding_plainly(value: &str) -> Result<(), String> {
        if value.contains('\u{FFFD}') {
            return check_encoding(value);
        }
        let chars: Vec<(usize, char)> = value.char_indices().collect();
        for (i, &(start, lead)) in chars.iter().enumerate() {
            let width = match cp1252_byte_looked_up(lead) {
                Some(0xC2..=0xC5 | 0xCE..=0xD1) => 2,
                Some(0xE0..=0xEF) => 3,
                Some(0xF0..=0xF4) => 4,
                _ => continue,
            };
            let Some(run) = chars.get(i..i + width) else {
                continue;
            };
            let bytes: Option<Vec<u8>> =
                run.iter().map(|&(_, c)| cp1252_byte_looked_up(c)).collect();
            if bytes.is_some_and(|b| std::str::from_utf8(&b).is_ok()) {
                let end = chars.get(i + width).map_or(value.len(), |&(e, _)| e);
                return Err(format!(
                    "contains '{}', the mark of UTF-8 text read as Windows-1252: {ENCODING_REMEDY}",
                    value[start..end].escape_debug()
                ));
            }
        }
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4000))]
        /// The check agrees with the plain one on text made of ASCII, Latin-1 and the
        /// characters Windows-1252 puts at 0x80–0x9F.
        #[test]
        fn the_encoding_check_agrees_with_the_plain_one(
            value in "[a-z \u{80}-\u{FF}\u{152}\u{153}\u{160}\u{161}\u{178}\u{17D}\u{192}\u{2013}\u{2014}\u{2018}-\u{201E}\u{2020}-\u{2022}\u{2026}\u{2030}\u{2039}\u{203A}\u{20AC}\u{2122}]{0,12}"
        ) {
            prop_assert_eq!(check_encoding(&value), check_encoding_plainly(&value));
        }
    }

    #[test]
    fn the_windows_1252_shortcut_gives_the_encoders_byte_for_every_character() {
        for c in (0..=0x10FFFF_u32).filter_map(char::from_u32) {
            assert_eq!(
                cp1252_byte(c),
                cp1252_byte_looked_up(c),
                "U+{:04X}",
                c as u32
            );
        }
    }

    #[test]
    fn already_clean_text_is_borrowed_and_the_rest_is_not() {
        for clean_text in [
            "Zoë",
            "Ó Súilleabháin",
            "Łukasz",
            "Σοφία",
            "李",
            "Part time, Mon-Wed",
        ] {
            assert!(
                matches!(clean(clean_text), Ok(Cow::Borrowed(_))),
                "{clean_text}"
            );
        }
        // Decomposed, curly, doubled or edge spaces, no-break space: each needs work.
        for work in [
            "Zoe\u{308}",
            "O\u{2019}Brien",
            "Ann  Lee",
            " Zoë",
            "Zoë ",
            "Ann\u{a0}Lee",
            "Mon–Wed",
        ] {
            assert!(matches!(clean(work), Ok(Cow::Owned(_))), "{work}");
        }
    }

    #[test]
    fn cleaning_trims_collapses_composes_and_straightens() {
        assert_eq!(clean("  Anne   Marie ").unwrap(), "Anne Marie");
        assert_eq!(clean("O\u{2019}Brien").unwrap(), "O'Brien");
        assert_eq!(clean("Smith\u{2010}Jones").unwrap(), "Smith-Jones");
        // "e" + combining acute becomes one precomposed letter.
        assert_eq!(clean("Rene\u{301}e").unwrap(), "Ren\u{e9}e");
        assert_eq!(clean("Ann\u{a0}Lee").unwrap(), "Ann Lee");
        assert!(matches!(clean("plain"), Ok(Cow::Borrowed("plain"))));
        assert!(clean("a\u{7}b").unwrap_err().contains("U+0007"));
    }

    #[test]
    fn names_accept_any_script_and_refuse_the_rest() {
        for ok in [
            "Zoë",
            "O'Brien",
            "Smith-Jones",
            "St. John",
            "Đặng",
            "Σοφία",
            "李",
        ] {
            assert_eq!(check_name(&clean(ok).unwrap(), 64), Ok(()), "{ok}");
        }
        assert!(
            check_name("=HYPERLINK(\"x\")", 64)
                .unwrap_err()
                .contains("formula")
        );
        assert!(check_name("@SUM", 64).unwrap_err().contains("formula"));
        assert!(check_name("Ann2", 64).unwrap_err().contains("'2'"));
        assert!(check_name("-Ann", 64).unwrap_err().contains("formula"));
        assert!(
            check_name("Ann\u{200B}Lee", 64)
                .unwrap_err()
                .contains("U+200B (zero-width space)")
        );
        assert!(
            check_name(&"a".repeat(65), 64)
                .unwrap_err()
                .contains("65 characters")
        );
    }

    #[test]
    fn formula_starts_are_refused_after_leading_spaces() {
        for bad in [
            "=1+1",
            " =1+1",
            "+44",
            "@SUM(A1)",
            "-2+3",
            " -cmd|' /C calc'!A0",
            "- x",
        ] {
            assert!(
                check_free_text(bad, 64).unwrap_err().contains("formula"),
                "{bad}"
            );
        }
        for ok in ["-", "---", "Ward 3 - nights", "Band 5", "x-ray"] {
            assert_eq!(check_free_text(ok, 64), Ok(()), "{ok}");
        }
    }

    #[test]
    fn text_read_in_the_wrong_encoding_is_refused() {
        for (bad, marks) in [
            ("JosÃ©", "Ã©"),
            ("O\u{e2}\u{20ac}\u{2122}Brien", "\u{e2}\u{20ac}\u{2122}"),
            ("ZoÃ«", "Ã«"),
            ("Ã–zil", "Ã–"),
            ("MÃ¼ller", "Ã¼"),
            ("NÃºÃ±ez", "Ãº"),
            (
                "Ward 1 \u{e2}\u{20ac}\u{201c} nights",
                "\u{e2}\u{20ac}\u{201c}",
            ),
            ("Ann\u{c2}\u{a0}Lee", "\u{c2}\\u{a0}"),
            ("SiÃ¢n", "Ã¢"),
            ("\u{c3}\u{b6}", "\u{c3}\u{b6}"),
        ] {
            let message = check_encoding(bad).unwrap_err();
            assert!(message.contains(&format!("'{marks}'")), "{bad}: {message}");
            assert!(message.ends_with(ENCODING_REMEDY), "{message}");
        }
        let lost = check_encoding("Jos\u{FFFD}").unwrap_err();
        assert!(lost.contains("replacement character"), "{lost}");
        assert!(lost.ends_with(ENCODING_REMEDY));
    }

    #[test]
    fn real_accented_text_is_not_taken_for_the_wrong_encoding() {
        for ok in [
            "Zoë",
            "José",
            "Müller",
            "Ó Briain",
            "Siân",
            "Renée",
            "Núñez",
            "Ødegård",
            "Úša",
            "Leź",
            "Óš",
            "Ø‰",
            "Straße",
            "Ångström",
            "Đặng",
            "Σοφία",
            "李",
            "Ward 1 – nights",
            "O’Brien",
            "£5 — ©",
            "ÂÃ",
            "Ã",
            "",
        ] {
            assert_eq!(check_encoding(ok), Ok(()), "{ok}");
        }
    }

    #[test]
    fn scientific_notation_is_recognised() {
        assert!(is_scientific_notation("1.23457E+11"));
        assert!(is_scientific_notation("1E+5"));
        assert!(!is_scientific_notation("E12345"));
        assert!(!is_scientific_notation("AB1E+5"));
        assert!(!is_scientific_notation("123456"));
    }

    proptest! {
        #[test]
        fn cleaning_is_idempotent(raw in "\\PC{0,40}") {
            if let Ok(once) = clean(&raw) {
                let twice = clean(&once).expect("a cleaned value stays clean");
                prop_assert_eq!(once.as_ref(), twice.as_ref());
            }
        }

        #[test]
        fn cleaning_any_unicode_never_panics(raw in any::<String>()) {
            let _ = clean(&raw);
        }

        /// The fast paths give the general path's verdict and value, on any text.
        #[test]
        fn fast_paths_agree_with_the_general_path(raw in any::<String>()) {
            prop_assert_eq!(clean(&raw), clean_general(&raw));
        }

        /// … and on text built from what real cells hold: letters with and without accents,
        /// combining marks, apostrophes and hyphens of every kind, all sorts of white space.
        #[test]
        fn fast_paths_agree_on_cell_like_text(
            parts in prop::collection::vec(
                prop::sample::select(vec![
                    "a", "Z", "e", "\u{e9}", "\u{301}", "\u{308}", "\u{327}", "\u{1e9b}",
                    "\u{1ffd}", "\u{212b}", "\u{f900}", "\u{ac00}", "\u{1100}", "\u{1161}",
                    "\u{3b1}", "\u{674e}", "'", "\u{2019}", "`", "\u{b4}", "-", "\u{2010}",
                    "\u{2013}", " ", "  ", "\u{a0}", "\t", "\u{2003}", "\u{3000}", "\u{7}",
                    "\u{200b}", ".", "0",
                ]),
                0..16,
            )
        ) {
            let raw = parts.concat();
            prop_assert_eq!(clean(&raw), clean_general(&raw));
        }
    }
}

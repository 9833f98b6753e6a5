//! `Authentication-Results` header values, read by RFC 8601's grammar (§2.2).
//!
//! In: one unfolded header value. Out: its authserv-id, and each `resinfo` as a method, a
//! result and its properties, or an [`AuthResError`] when the value does not follow the
//! grammar. Comments (nested, with quoted pairs) and quoted strings are read as such, so a
//! `;` or a `dmarc=pass` inside them is not a result. Pure.

/// One parsed header value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthResults {
    /// The authserv-id, as written (compare case-insensitively).
    pub authserv_id: String,
    /// The `resinfo`s in header order (none for `; none`).
    pub results: Vec<MethodResult>,
}

/// One `method=result` with its properties.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MethodResult {
    /// The method, lower-cased (`dkim`, `spf`, `dmarc`, ...), without its version.
    pub method: String,
    /// The result, lower-cased (`pass`, `fail`, `none`, ...).
    pub result: String,
    /// `reason=`, when given.
    pub reason: Option<String>,
    /// `(ptype.property, value)`: ptype and property lower-cased (`header.from`), the value
    /// as written (a quoted string without its quotes).
    pub properties: Vec<(String, String)>,
}

impl MethodResult {
    /// The value of a property such as `header.from` (the first one, when repeated).
    pub fn property(&self, name: &str) -> Option<&str> {
        self.properties
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Why a header value could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthResError {
    #[error("no authserv-id")]
    NoAuthservId,
    #[error("version {0} is not 1 (RFC 8601 §2.2: a header of an unknown version is ignored)")]
    UnknownVersion(String),
    #[error("an unclosed comment")]
    UnclosedComment,
    #[error("an unclosed quoted string")]
    UnclosedQuote,
    #[error("expected {expected} at character {at}")]
    Expected { expected: &'static str, at: usize },
}

/// Only the authserv-id of a header value (also of one whose rest does not parse).
pub fn authserv_id(value: &str) -> Option<String> {
    let mut p = Parser {
        s: value.as_bytes(),
        i: 0,
    };
    p.cfws().ok()?;
    p.value().ok()?
}

/// Reads one header value (folded or not).
pub fn parse(value: &str) -> Result<AuthResults, AuthResError> {
    let mut p = Parser {
        s: value.as_bytes(),
        i: 0,
    };
    p.cfws()?;
    let authserv_id = p.value()?.ok_or(AuthResError::NoAuthservId)?;
    p.cfws()?;
    if p.peek().is_some_and(|c| c.is_ascii_digit()) {
        let version = p.take_while(|c| c.is_ascii_digit());
        if version.trim_start_matches('0') != "1" {
            return Err(AuthResError::UnknownVersion(version));
        }
        p.cfws()?;
    }
    let mut results = Vec::new();
    loop {
        p.cfws()?;
        if p.at_end() {
            break;
        }
        p.expect(b';', "\";\"")?;
        p.cfws()?;
        if p.at_end() {
            // A trailing ";" is common in the wild and carries nothing.
            break;
        }
        let method = p.keyword("a method")?;
        p.cfws()?;
        if method.eq_ignore_ascii_case("none") && results.is_empty() && p.at_end() {
            break; // no-result: `authserv-id; none`
        }
        if p.peek() == Some(b'/') {
            p.i += 1;
            p.cfws()?;
            p.keyword("a method version")?;
            p.cfws()?;
        }
        p.expect(b'=', "\"=\" after the method")?;
        p.cfws()?;
        let result = p.keyword("a result")?;
        let mut found = MethodResult {
            method: method.to_ascii_lowercase(),
            result: result.to_ascii_lowercase(),
            reason: None,
            properties: Vec::new(),
        };
        loop {
            p.cfws()?;
            if p.at_end() || p.peek() == Some(b';') {
                break;
            }
            let ptype = p.keyword("a property type")?;
            p.cfws()?;
            if ptype.eq_ignore_ascii_case("reason") && p.peek() == Some(b'=') {
                p.i += 1;
                p.cfws()?;
                found.reason = Some(p.value()?.ok_or(AuthResError::Expected {
                    expected: "a reason",
                    at: p.i,
                })?);
                continue;
            }
            p.expect(b'.', "\".\" in a property")?;
            p.cfws()?;
            let property = p.keyword("a property")?;
            p.cfws()?;
            p.expect(b'=', "\"=\" after a property")?;
            p.cfws()?;
            let value = p.pvalue()?;
            found.properties.push((
                format!(
                    "{}.{}",
                    ptype.to_ascii_lowercase(),
                    property.to_ascii_lowercase()
                ),
                value,
            ));
        }
        results.push(found);
    }
    Ok(AuthResults {
        authserv_id,
        results,
    })
}

struct Parser<'s> {
    s: &'s [u8],
    i: usize,
}

/// RFC 2045 tspecials, which end a token.
const TSPECIALS: &[u8] = b"()<>@,;:\\\"/[]?=";

impl Parser<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    fn at_end(&self) -> bool {
        self.i >= self.s.len()
    }

    fn expect(&mut self, c: u8, expected: &'static str) -> Result<(), AuthResError> {
        if self.peek() == Some(c) {
            self.i += 1;
            Ok(())
        } else {
            Err(AuthResError::Expected {
                expected,
                at: self.i,
            })
        }
    }

    fn take_while(&mut self, keep: impl Fn(u8) -> bool) -> String {
        let start = self.i;
        while self.peek().is_some_and(&keep) {
            self.i += 1;
        }
        String::from_utf8_lossy(&self.s[start..self.i]).into_owned()
    }

    /// Folding white space and comments (RFC 5322 CFWS); comments nest, `\` quotes.
    fn cfws(&mut self) -> Result<(), AuthResError> {
        loop {
            match self.peek() {
                Some(b' ' | b'\t' | b'\r' | b'\n') => self.i += 1,
                Some(b'(') => {
                    let mut depth = 0usize;
                    loop {
                        match self.peek() {
                            None => return Err(AuthResError::UnclosedComment),
                            Some(b'\\') => self.i += 2,
                            Some(b'(') => {
                                depth += 1;
                                self.i += 1;
                            }
                            Some(b')') => {
                                depth -= 1;
                                self.i += 1;
                                if depth == 0 {
                                    break;
                                }
                            }
                            Some(_) => self.i += 1,
                        }
                    }
                }
                _ => return Ok(()),
            }
        }
    }

    /// A Keyword (RFC 8601 §2.2, RFC 5321's Ldh-str; `_` accepted as some MTAs write it).
    fn keyword(&mut self, expected: &'static str) -> Result<String, AuthResError> {
        let k = self.take_while(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_');
        if k.is_empty() {
            return Err(AuthResError::Expected {
                expected,
                at: self.i,
            });
        }
        Ok(k)
    }

    /// An RFC 2045 value: a token or a quoted string; `None` when neither starts here.
    fn value(&mut self) -> Result<Option<String>, AuthResError> {
        if self.peek() == Some(b'"') {
            return self.quoted().map(Some);
        }
        let t = self.take_while(|c| c > b' ' && c < 0x7f && !TSPECIALS.contains(&c));
        Ok((!t.is_empty()).then_some(t))
    }

    /// A pvalue: a quoted string, or a value or `[local-part] "@" domain`, up to white
    /// space, a comment or the next `;`.
    fn pvalue(&mut self) -> Result<String, AuthResError> {
        if self.peek() == Some(b'"') {
            return self.quoted();
        }
        let v = self.take_while(|c| c > b' ' && c != b';' && c != b'(' && c != b'"');
        if v.is_empty() {
            return Err(AuthResError::Expected {
                expected: "a property value",
                at: self.i,
            });
        }
        Ok(v)
    }

    fn quoted(&mut self) -> Result<String, AuthResError> {
        self.i += 1; // the opening quote
        let mut out = Vec::new();
        loop {
            match self.peek() {
                None => return Err(AuthResError::UnclosedQuote),
                Some(b'"') => {
                    self.i += 1;
                    return Ok(String::from_utf8_lossy(&out).into_owned());
                }
                Some(b'\\') => {
                    let Some(&c) = self.s.get(self.i + 1) else {
                        return Err(AuthResError::UnclosedQuote);
                    };
                    out.push(c);
                    self.i += 2;
                }
                Some(c) => {
                    out.push(c);
                    self.i += 1;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dmarc(v: &str) -> Vec<(String, Option<String>)> {
        parse(v)
            .unwrap()
            .results
            .into_iter()
            .filter(|r| r.method == "dmarc")
            .map(|r| {
                (
                    r.result.clone(),
                    r.property("header.from").map(str::to_owned),
                )
            })
            .collect()
    }

    #[test]
    fn reads_methods_results_and_properties() {
        let r = parse(
            "mx.example.org 1; spf=pass smtp.mailfrom=a@rxx.nhs.uk;\r\n dkim=pass (good \
             signature) header.d=rxx.nhs.uk header.s=sel; DMARC/1=Pass reason=\"p=reject; \
             aligned\" header.from=RXX.nhs.uk",
        )
        .unwrap();
        assert_eq!(r.authserv_id, "mx.example.org");
        let methods: Vec<_> = r.results.iter().map(|m| (&*m.method, &*m.result)).collect();
        assert_eq!(
            methods,
            [("spf", "pass"), ("dkim", "pass"), ("dmarc", "pass")]
        );
        assert_eq!(r.results[0].property("smtp.mailfrom"), Some("a@rxx.nhs.uk"));
        assert_eq!(r.results[1].property("header.s"), Some("sel"));
        assert_eq!(r.results[2].reason.as_deref(), Some("p=reject; aligned"));
        assert_eq!(r.results[2].property("HEADER.FROM"), Some("RXX.nhs.uk"));
    }

    #[test]
    fn a_semicolon_or_result_inside_a_comment_is_no_result() {
        assert!(dmarc("mx; dkim=pass (a; dmarc=pass) header.d=x").is_empty());
        assert!(dmarc("mx; dkim=pass (nested (b; dmarc=pass) \\) c) header.d=x").is_empty());
        let r = parse("mx; dkim=pass (a; dmarc=pass) header.d=x").unwrap();
        assert_eq!(r.results.len(), 1);
        assert_eq!(r.results[0].property("header.d"), Some("x"));
    }

    #[test]
    fn a_semicolon_or_result_inside_a_quoted_string_is_no_result() {
        assert!(dmarc("mx; dkim=pass header.b=\"x; dmarc=pass\"").is_empty());
        assert!(dmarc("mx; dkim=fail reason=\"bad; dmarc=pass header.from=a\"").is_empty());
        assert_eq!(
            dmarc("mx; dmarc=fail header.from=\"rxx.nhs.uk\""),
            [("fail".to_owned(), Some("rxx.nhs.uk".to_owned()))]
        );
    }

    #[test]
    fn versions_none_and_comments_around_the_id() {
        let r = parse("(our MTA) mx.example.org (v) 1 ; none").unwrap();
        assert_eq!(r.authserv_id, "mx.example.org");
        assert!(r.results.is_empty());
        assert_eq!(
            parse("mx 2; dmarc=pass header.from=a"),
            Err(AuthResError::UnknownVersion("2".into()))
        );
        assert_eq!(
            parse("\"mx.example.org\"; spf=none").unwrap().authserv_id,
            "mx.example.org"
        );
        assert_eq!(
            dmarc("mx; dmarc=pass header.from=a;"),
            [("pass".into(), Some("a".into()))]
        );
    }

    #[test]
    fn what_breaks_the_grammar_is_an_error() {
        assert_eq!(parse(""), Err(AuthResError::NoAuthservId));
        assert_eq!(
            parse("mx; dmarc=pass (open"),
            Err(AuthResError::UnclosedComment)
        );
        assert_eq!(
            parse("mx; dkim=pass header.b=\"open"),
            Err(AuthResError::UnclosedQuote)
        );
        assert!(matches!(
            parse("mx dmarc=pass"),
            Err(AuthResError::Expected { .. })
        ));
        assert!(matches!(
            parse("mx; dmarc pass"),
            Err(AuthResError::Expected { .. })
        ));
        assert!(matches!(
            parse("mx; dmarc=pass header=x"),
            Err(AuthResError::Expected { .. })
        ));
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        // Every prefix of hostile values, including cut-off escapes and comments.
        let hostile = "mx 1; a/1=b (c\\) (d\\";
        for s in [
            hostile,
            "\"\\",
            "(((((",
            "mx; x=y z.w=\"\\\"",
            "mx;;;==..@@",
        ] {
            for end in 0..=s.len() {
                let _ = parse(&s[..end]);
            }
        }
        let deep = format!(
            "mx; dmarc=pass {}x{}",
            "(".repeat(10_000),
            ")".repeat(10_000)
        );
        assert!(dmarc(&deep).iter().all(|(r, _)| r == "pass"));
    }

    proptest::proptest! {
        #[test]
        fn nothing_inside_a_comment_or_quoted_string_is_a_result(
            inner in "[ -~]{0,80}",
            any in proptest::collection::vec(proptest::num::u8::ANY, 0..120),
        ) {
            // Whatever the comment or quoted string holds, it adds no result: either the
            // header reads as the one dkim result around it, or it does not read at all.
            // (Without the characters that would end them.)
            let comment = inner.replace(['\\', ')'], "");
            let quoted = inner.replace(['\\', '"'], "");
            for v in [
                format!("mx; dkim=pass ({comment}) header.d=x"),
                format!("mx; dkim=pass header.b=\"{quoted}\" header.d=x"),
            ] {
                if let Ok(r) = parse(&v) {
                    proptest::prop_assert_eq!(r.results.len(), 1, "{}", v);
                    proptest::prop_assert_eq!(&r.results[0].method, "dkim");
                    proptest::prop_assert_eq!(r.results[0].property("header.d"), Some("x"));
                }
            }
            // Arbitrary bytes never panic.
            let _ = parse(&String::from_utf8_lossy(&any));
        }
    }
}

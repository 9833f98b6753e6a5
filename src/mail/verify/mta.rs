//! `mta` mode: the DMARC verdict our own MTA wrote in `Authentication-Results`.
//!
//! In: the raw message, the trusted authserv-id and the From domain. Out: a [`Verdict`].
//! Pure. Which headers count (RFC 8601 §5, §7.1):
//!
//! - Only `Authentication-Results` headers whose authserv-id is the trusted one, and only
//!   in the **trace block**: the run of header fields at the very top of the message that
//!   the delivery path prepends (`Received`, `Authentication-Results`, `Return-Path`,
//!   `Delivered-To`, `X-Original-To`, `Received-SPF`, `ARC-*`), above the first other field.
//!   What follows is the sender's own header (From, Subject, DKIM-Signature, ...).
//! - A trusted-id header **below** the trace block is a forgery that our MTA failed to
//!   remove (RFC 8601 §5 requires it to strip or rename incoming headers bearing its id). If
//!   the MTA does not strip, no header can be trusted, so the message fails: "fail closed".
//! - A trusted header is read by the RFC 8601 grammar; one that does not parse fails the
//!   message (it might have said `fail`); one of an unknown version is ignored (§2.2).
//! - The verdict is a pass only when the trusted headers hold at least one `dmarc` result
//!   and every `dmarc` result among them is `pass` with `header.from` equal to the From
//!   domain (case-insensitive). Any other trusted `dmarc` result (`fail`, `none`,
//!   `temperror`, a pass for another domain, a pass without `header.from`) fails the
//!   message. Results for other methods (`dkim`, `spf`) may sit in the same or in other
//!   trusted headers; they do not decide.

use super::Verdict;
use super::authres::{self, AuthResError};

/// Header fields a delivery path prepends above the message's own header.
const TRACE_FIELDS: &[&str] = &[
    "received",
    "authentication-results",
    "return-path",
    "delivered-to",
    "x-original-to",
    "received-spf",
    "arc-seal",
    "arc-message-signature",
    "arc-authentication-results",
];

/// The verdict of the trusted MTA's headers for a message from `from_domain`.
pub fn verdict(raw: &[u8], trusted: &str, from_domain: &str) -> Verdict {
    let fields = header_fields(raw);
    let in_trace = fields
        .iter()
        .take_while(|(name, _)| TRACE_FIELDS.iter().any(|t| name.eq_ignore_ascii_case(t)))
        .count();
    let is_trusted = |value: &str| {
        authres::authserv_id(value).is_some_and(|id| id.eq_ignore_ascii_case(trusted))
    };
    let auth_results =
        |(name, _): &&(String, String)| name.eq_ignore_ascii_case("authentication-results");
    if fields[in_trace..]
        .iter()
        .filter(auth_results)
        .any(|(_, v)| is_trusted(v))
    {
        return Verdict::Fail(format!(
            "an Authentication-Results header bearing our mail server's id ({trusted}) sits \
             among the sender's own headers: a forgery our mail server did not remove"
        ));
    }
    let mut passes = 0usize;
    for (_, value) in fields[..in_trace].iter().filter(auth_results) {
        if !is_trusted(value) {
            continue;
        }
        let parsed = match authres::parse(value) {
            Ok(p) => p,
            Err(AuthResError::UnknownVersion(_)) => continue,
            Err(e) => {
                return Verdict::Fail(format!(
                    "our mail server's Authentication-Results header cannot be read ({e})"
                ));
            }
        };
        for r in parsed.results.iter().filter(|r| r.method == "dmarc") {
            let domain = r.property("header.from");
            if r.result != "pass" {
                return Verdict::Fail(format!(
                    "our mail server's DMARC result is \"{}\"{}",
                    r.result,
                    domain.map(|d| format!(" for {d}")).unwrap_or_default()
                ));
            }
            match domain {
                Some(d) if d.eq_ignore_ascii_case(from_domain) => passes += 1,
                Some(d) => {
                    return Verdict::Fail(format!(
                        "our mail server's DMARC pass is for {d}, not the sender's domain \
                         {from_domain}"
                    ));
                }
                None => {
                    return Verdict::Fail(
                        "our mail server's DMARC pass names no header.from domain".to_owned(),
                    );
                }
            }
        }
    }
    if passes == 0 {
        return Verdict::Fail("our mail server recorded no DMARC result".to_owned());
    }
    Verdict::Pass(format!("dmarc=pass for {from_domain} by {trusted}"))
}

/// The header fields of a message in order: (name, unfolded value). Stops at the first
/// empty line (or at a line that is no header field, which ends the header too).
fn header_fields(raw: &[u8]) -> Vec<(String, String)> {
    let mut fields: Vec<(String, String)> = Vec::new();
    for line in raw.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            break;
        }
        let text = String::from_utf8_lossy(line);
        if line[0] == b' ' || line[0] == b'\t' {
            match fields.last_mut() {
                Some((_, value)) => {
                    value.push(' ');
                    value.push_str(text.trim());
                }
                None => break,
            }
            continue;
        }
        let Some((name, value)) = text.split_once(':') else {
            break;
        };
        if name.is_empty() || name.bytes().any(|b| b <= b' ' || b >= 0x7f) {
            break;
        }
        fields.push((name.to_owned(), value.trim().to_owned()));
    }
    fields
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "mx.connector.test";

    fn msg(top: &str) -> Vec<u8> {
        format!(
            "{top}From: Admin <admin@rxx.nhs.uk>\r\nSubject: staff list\r\n\r\nbody\r\n\
             Authentication-Results: {ID}; dmarc=fail header.from=rxx.nhs.uk\r\n"
        )
        .into_bytes()
    }

    fn passes(top: &str) -> bool {
        matches!(verdict(&msg(top), ID, "rxx.nhs.uk"), Verdict::Pass(_))
    }

    fn why(top: &str) -> String {
        match verdict(&msg(top), ID, "rxx.nhs.uk") {
            Verdict::Fail(why) => why,
            other => panic!("expected a failure, got {other:?}"),
        }
    }

    const DELIVERY: &str = "Return-Path: <admin@rxx.nhs.uk>\r\nDelivered-To: c@connector.test\r\n\
        Received: from mx.connector.test by imap (Dovecot) with LMTP\r\n";

    #[test]
    fn a_pass_by_our_mta_in_the_trace_block_counts() {
        let ours = format!(
            "{DELIVERY}Authentication-Results: {ID};\r\n\tdkim=pass header.d=rxx.nhs.uk;\r\n\
             \tdmarc=pass header.from=rxx.nhs.uk\r\nReceived: from client by {ID} (Postfix)\r\n"
        );
        assert!(passes(&ours), "{}", why(&ours));
        // Upper-case id and domain, a version, and the sender's own trace fields below.
        let upper = "Authentication-Results: MX.Connector.Test 1; dmarc=pass \
             header.from=RXX.NHS.UK\r\nReceived: from client\r\nReceived: from sender-mta\r\n\
             Authentication-Results: sender-mta.rxx.nhs.uk; dkim=pass\r\n";
        assert!(passes(upper), "{}", why(upper));
    }

    #[test]
    fn a_pass_split_over_several_trusted_headers_counts() {
        let split = format!(
            "Authentication-Results: {ID}; dkim=pass header.d=rxx.nhs.uk\r\n\
             Authentication-Results: {ID}; spf=none smtp.mailfrom=rxx.nhs.uk\r\n\
             Authentication-Results: {ID}; dmarc=pass (p=reject) header.from=rxx.nhs.uk\r\n"
        );
        assert!(passes(&split), "{}", why(&split));
    }

    #[test]
    fn a_trusted_fail_wins_over_a_pass() {
        for fail in ["fail", "none", "temperror", "permerror"] {
            let both = format!(
                "Authentication-Results: {ID}; dmarc=pass header.from=rxx.nhs.uk\r\n\
                 Authentication-Results: {ID}; dmarc={fail} header.from=rxx.nhs.uk\r\n"
            );
            assert!(
                why(&both).contains(&format!("\"{fail}\"")),
                "{}",
                why(&both)
            );
        }
    }

    #[test]
    fn a_pass_for_another_domain_or_none_does_not_count() {
        let other = format!("Authentication-Results: {ID}; dmarc=pass header.from=evil.test\r\n");
        assert!(why(&other).contains("evil.test"));
        let bare = format!("Authentication-Results: {ID}; dmarc=pass\r\n");
        assert!(why(&bare).contains("no header.from"));
        let dkim_only = format!("Authentication-Results: {ID}; dkim=pass header.d=rxx.nhs.uk\r\n");
        assert!(why(&dkim_only).contains("no DMARC result"));
        assert!(why(DELIVERY).contains("no DMARC result"));
    }

    #[test]
    fn untrusted_ids_and_comment_tricks_do_not_count() {
        let untrusted = "Authentication-Results: evil.test; dmarc=pass header.from=rxx.nhs.uk\r\n";
        assert!(why(untrusted).contains("no DMARC result"));
        let lookalike = format!(
            "Authentication-Results: {ID}.evil.test; dmarc=pass header.from=rxx.nhs.uk\r\n"
        );
        assert!(why(&lookalike).contains("no DMARC result"));
        let comment = format!(
            "Authentication-Results: {ID}; dkim=pass (x; dmarc=pass header.from=rxx.nhs.uk)\r\n"
        );
        assert!(why(&comment).contains("no DMARC result"));
        let unreadable = format!("Authentication-Results: {ID}; dmarc=pass (open\r\n");
        assert!(why(&unreadable).contains("cannot be read"));
        // A header of an unknown version is ignored, not believed.
        let v2 = format!("Authentication-Results: {ID} 2; dmarc=pass header.from=rxx.nhs.uk\r\n");
        assert!(why(&v2).contains("no DMARC result"));
    }

    #[test]
    fn a_trusted_header_below_the_trace_block_is_a_forgery_and_fails() {
        // Our MTA's genuine pass on top, and a header with our id in the sender's block:
        // the MTA does not strip, so nothing it wrote can be told from a forgery.
        let forged = format!(
            "Authentication-Results: {ID}; dmarc=pass header.from=rxx.nhs.uk\r\n\
             Received: from client by {ID}\r\nDKIM-Signature: v=1; d=rxx.nhs.uk\r\n\
             Authentication-Results: {ID}; dmarc=pass header.from=rxx.nhs.uk\r\n"
        );
        assert!(why(&forged).contains("forgery"), "{}", why(&forged));
        // Only the first header block counts: the body's look-alike line is no header.
        let body_only =
            format!("Authentication-Results: {ID}; dmarc=pass header.from=rxx.nhs.uk\r\n");
        assert!(passes(&body_only));
    }

    #[test]
    fn header_fields_unfold_and_stop_at_the_body() {
        let f = header_fields(b"A: 1\n  2\r\nB:3\r\n\r\nC: 4\r\n");
        assert_eq!(f, [("A".into(), "1 2".into()), ("B".into(), "3".into())]);
        assert!(header_fields(b" folded first\r\nA: 1\r\n").is_empty());
        assert_eq!(header_fields(b"A: 1\r\nnot a header\r\nB: 2\r\n").len(), 1);
    }
}

//! Reading an incoming message as its sender's client wrote it.
//!
//! In: the raw bytes of a message. Out: an [`Inbound`]: the one usable sender address (or why
//! there is none), whether the message was sent by a machine (an auto-reply, a bounce, a
//! list), the files it carries with the exact bytes the sender attached, and a key of its
//! content. Pure: no I/O.
//!
//! Files are taken from every part with a file name, whatever its disposition (Apple Mail
//! sends CSVs inline) and type (Outlook sends CSVs as `application/vnd.ms-excel`). A text part
//! is transfer-decoded only: the mail parser's charset conversion would turn a UTF-16 or
//! Windows-1252 file into something else, so its bytes are decoded from the raw message here
//! and the file reader sees what the sender saved. When the message itself carries no file,
//! the files of a forwarded message (`message/rfc822`, up to [`FORWARD_DEPTH`] deep) are
//! taken; the sender is still the outer, verified one.

use mail_parser::decoders::base64::base64_decode;
use mail_parser::decoders::quoted_printable::quoted_printable_decode;
use mail_parser::{Encoding, Message, MessageParser, MessagePart, MimeHeaders, PartType};

use super::message::{Attachment, Inbound, SUBMISSION_EXTENSIONS};
use crate::store::mail::content_key;

/// How deep forwarded messages are searched for a file.
pub const FORWARD_DEPTH: usize = 3;

/// Reads a message. Never fails: what cannot be read is left empty, and the checks refuse it.
pub fn parse(raw: &[u8]) -> Inbound {
    let content_key = content_key(raw);
    let fallback_id = || format!("{}@push-connector", &content_key[..32]);
    let Some(msg) = MessageParser::default().parse(raw) else {
        return Inbound {
            message_id: fallback_id(),
            content_key: content_key.clone(),
            from: None,
            sender_problem: None,
            automatic: None,
            subject: String::new(),
            written: String::new(),
            date: None,
            files: Vec::new(),
            other_files: Vec::new(),
        };
    };
    let raw_headers = |name: &str| -> Vec<String> {
        msg.headers_raw()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| unfold(v))
            .collect()
    };
    let (from, sender_problem) = match sender(&raw_headers("From")) {
        Ok(address) => (Some(address), None),
        Err(SenderProblem::Missing) => (None, None),
        Err(SenderProblem::Unusable(why)) => (None, Some(why)),
    };
    let mut files = Vec::new();
    let mut other_files = Vec::new();
    collect_files(
        &msg,
        msg.raw_message(),
        None,
        0,
        &mut files,
        &mut other_files,
    );
    Inbound {
        message_id: msg
            .message_id()
            .map(str::to_owned)
            .filter(|s| !s.is_empty())
            .unwrap_or_else(fallback_id),
        automatic: automatic(&msg, &raw_headers, from.as_deref()),
        content_key,
        from,
        sender_problem,
        subject: msg.subject().unwrap_or_default().to_owned(),
        written: written(&msg),
        date: msg.date().map(|d| d.to_rfc3339()),
        files,
        other_files,
    }
}

/// How much of a message's text is kept for reading a command from it.
pub const WRITTEN_BYTES: usize = 64 * 1024;

/// The text of the message's first body part: a plain-text part as it is, an HTML part (a
/// message with no plain-text alternative) cut where the client put the quoted original
/// (Outlook's `divRplyFwdMsg` and `appendonsend`, Gmail's `gmail_quote`, Thunderbird's
/// `moz-cite-prefix`, any `<blockquote>`), as text.
fn written(msg: &Message<'_>) -> String {
    let Some(part) = msg
        .text_body
        .first()
        .and_then(|&i| msg.parts.get(i as usize))
    else {
        return String::new();
    };
    // Only the start of a body is read: the command is in its first lines, and a body of
    // tens of megabytes is not copied, lower-cased or converted whole.
    let mut text = match &part.body {
        PartType::Text(t) => prefix(t, WRITTEN_BYTES).to_owned(),
        PartType::Html(h) => {
            let h = prefix(h, HTML_READ_BYTES);
            let lower = h.to_ascii_lowercase();
            let cut = [
                "id=\"divrplyfwdmsg\"",
                "id=\"appendonsend\"",
                "class=\"gmail_quote",
                "class=\"moz-cite-prefix\"",
                "<blockquote",
            ]
            .iter()
            .filter_map(|m| {
                let at = lower.find(m)?;
                // The tag the marker is in starts the original.
                Some(if m.starts_with('<') {
                    at
                } else {
                    lower[..at].rfind('<').unwrap_or(at)
                })
            })
            .min()
            .unwrap_or(h.len());
            mail_parser::decoders::html::html_to_text(&h[..cut])
        }
        _ => String::new(),
    };
    let kept = prefix(&text, WRITTEN_BYTES).len();
    text.truncate(kept);
    text
}

/// How much of an HTML body is read for the text the sender wrote: its markup takes room.
const HTML_READ_BYTES: usize = 16 * WRITTEN_BYTES;

/// The first `max` bytes of `s` at most, cut at a character boundary.
fn prefix(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

fn unfold(value: &str) -> String {
    value.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The files of a message, or, when it has none, of the messages it forwards.
///
/// `raw` is the text the parts' offsets point into. The mail parser gives a forwarded
/// message sent as it is (7bit/8bit) offsets into the enclosing text, though its own
/// `raw_message()` is only its slice of it; a forwarded message that was itself base64- or
/// quoted-printable-encoded is parsed from its decoded bytes, and its offsets point there.
fn collect_files(
    msg: &Message<'_>,
    raw: &[u8],
    forwarded: Option<&str>,
    depth: usize,
    files: &mut Vec<Attachment>,
    other_files: &mut Vec<String>,
) {
    let mut inner = Vec::new();
    for part in &msg.parts {
        match &part.body {
            PartType::Message(m) => {
                let space = match part.encoding {
                    Encoding::None => raw,
                    _ => m.raw_message(),
                };
                inner.push((m, space));
            }
            PartType::Multipart(_) => {}
            _ => {
                let Some(name) = part.attachment_name() else {
                    continue;
                };
                if is_submission_name(name) {
                    files.push(Attachment {
                        name: name.to_owned(),
                        bytes: part_bytes(raw, part),
                        forwarded: forwarded.map(str::to_owned),
                    });
                } else {
                    other_files.push(name.to_owned());
                }
            }
        }
    }
    if files.is_empty() && depth < FORWARD_DEPTH {
        for (m, space) in inner {
            let subject = m.subject().unwrap_or("(no subject)");
            collect_files(m, space, Some(subject), depth + 1, files, other_files);
        }
    }
}

/// A part's bytes as the sender attached them: transfer-decoded, never charset-converted.
/// `raw` is the text its offsets point into (see [`collect_files`]).
fn part_bytes(raw: &[u8], part: &MessagePart<'_>) -> Vec<u8> {
    match &part.body {
        PartType::Binary(b) | PartType::InlineBinary(b) => b.to_vec(),
        _ => {
            let start = (part.offset_body as usize).min(raw.len());
            let end = (part.offset_end as usize).clamp(start, raw.len());
            let body = &raw[start..end];
            let decoded = match part.encoding {
                Encoding::Base64 => base64_decode(body),
                Encoding::QuotedPrintable => quoted_printable_decode(body),
                Encoding::None => None,
            };
            decoded.unwrap_or_else(|| body.to_vec())
        }
    }
}

fn is_submission_name(name: &str) -> bool {
    name.rsplit_once('.').is_some_and(|(_, ext)| {
        SUBMISSION_EXTENSIONS
            .iter()
            .any(|e| e.eq_ignore_ascii_case(ext))
    })
}

enum SenderProblem {
    Missing,
    Unusable(String),
}

/// The one address of the From header(s), lower-cased, or why it cannot be used. One From
/// header with one mailbox, an address of plain dot-atoms (`name@org.nhs.uk`): anything else
/// (two From headers, two mailboxes, text after the address, a quoted local part, a trailing
/// dot, a source route) is refused, since the sender check and the reply must both mean the
/// same address, unambiguously.
fn sender(from_headers: &[String]) -> Result<String, SenderProblem> {
    let value = match from_headers {
        [] => return Err(SenderProblem::Missing),
        [one] => one.trim(),
        several => {
            return Err(SenderProblem::Unusable(format!(
                "the message has {} From headers",
                several.len()
            )));
        }
    };
    if value.is_empty() {
        return Err(SenderProblem::Missing);
    }
    let unusable =
        |why: &str| SenderProblem::Unusable(format!("the From header \"{value}\" {why}"));
    let without_comments = strip_comments(value).ok_or_else(|| unusable("is malformed"))?;
    let address = match angle_address(&without_comments) {
        AngleAddress::One(a) => a,
        AngleAddress::None => without_comments.trim().to_owned(),
        AngleAddress::Malformed => return Err(unusable("is not one address in <…>")),
    };
    if !is_plain_address(&address) {
        return Err(unusable(
            "does not hold a plain address such as name@org.nhs.uk",
        ));
    }
    Ok(address.to_ascii_lowercase())
}

/// The header without `(comments)`, quoted strings kept; `None` when they do not balance.
fn strip_comments(value: &str) -> Option<String> {
    let mut out = String::with_capacity(value.len());
    let (mut depth, mut quoted, mut escaped) = (0usize, false, false);
    for c in value.chars() {
        if escaped {
            escaped = false;
            if depth == 0 {
                out.push(c);
            }
            continue;
        }
        match c {
            '\\' if quoted || depth > 0 => {
                escaped = true;
                if depth == 0 {
                    out.push(c);
                }
            }
            '"' if depth == 0 => {
                quoted = !quoted;
                out.push(c);
            }
            '(' if !quoted => depth += 1,
            ')' if !quoted => depth = depth.checked_sub(1)?,
            _ if depth == 0 => out.push(c),
            _ => {}
        }
    }
    (depth == 0 && !quoted).then_some(out)
}

enum AngleAddress {
    None,
    One(String),
    Malformed,
}

/// The address inside `Display Name <address>`: exactly one `<…>` outside quotes, at the end.
fn angle_address(value: &str) -> AngleAddress {
    let mut quoted = false;
    let mut escaped = false;
    let mut opens = Vec::new();
    let mut closes = Vec::new();
    for (i, c) in value.char_indices() {
        if escaped {
            escaped = false;
            continue;
        }
        match c {
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            '<' if !quoted => opens.push(i),
            '>' if !quoted => closes.push(i),
            ',' | ';' if !quoted => return AngleAddress::Malformed,
            _ => {}
        }
    }
    match (opens.as_slice(), closes.as_slice()) {
        ([], []) => AngleAddress::None,
        ([open], [close]) if open < close && value[close + 1..].trim().is_empty() => {
            AngleAddress::One(value[open + 1..*close].trim().to_owned())
        }
        _ => AngleAddress::Malformed,
    }
}

/// `local@domain` where the local part is dot-atoms of RFC 5322 atext and the domain is
/// dot-separated labels of letters, digits and inner hyphens (at least two labels, no trailing
/// dot), at most 254 characters.
pub fn is_plain_address(address: &str) -> bool {
    let Some((local, domain)) = address.split_once('@') else {
        return false;
    };
    let atext = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-/=?^_`{|}~".contains(c);
    let label = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    address.len() <= 254
        && !local.is_empty()
        && local.len() <= 64
        && local
            .split('.')
            .all(|a| !a.is_empty() && a.chars().all(atext))
        && domain.split('.').count() >= 2
        && domain.split('.').all(label)
}

/// Why a message was sent by a machine rather than a person, when it was: such a message is
/// never answered (RFC 3834), since an answer to an auto-reply or a bounce starts a loop.
fn automatic(
    msg: &Message<'_>,
    raw_headers: &dyn Fn(&str) -> Vec<String>,
    from: Option<&str>,
) -> Option<String> {
    for value in raw_headers("Auto-Submitted") {
        let keyword = value
            .split([';', '('])
            .next()
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase();
        if keyword != "no" {
            return Some(format!("it is automatic (Auto-Submitted: {value})"));
        }
    }
    for value in raw_headers("Precedence") {
        let v = value.trim().to_ascii_lowercase();
        if ["bulk", "junk", "list", "auto_reply"].contains(&v.as_str()) {
            return Some(format!("it is bulk or list mail (Precedence: {value})"));
        }
    }
    for name in ["List-Id", "X-Autoreply", "X-Autorespond", "X-Autoresponder"] {
        if !raw_headers(name).is_empty() {
            return Some(format!("it carries a {name} header"));
        }
    }
    if raw_headers("Return-Path")
        .iter()
        .any(|p| p.trim().trim_matches(['<', '>']).trim().is_empty())
    {
        return Some("it has a null sender (Return-Path: <>), as bounces do".to_owned());
    }
    if let Some(local) = from.and_then(|f| f.split_once('@')).map(|(l, _)| l)
        && ["mailer-daemon", "postmaster"].contains(&local)
    {
        return Some(format!("it is from {local}, a mail system's address"));
    }
    let report = |p: &MessagePart<'_>| {
        p.content_type().is_some_and(|ct| {
            let (t, s) = (ct.ctype(), ct.subtype().unwrap_or_default());
            (t.eq_ignore_ascii_case("multipart") && s.eq_ignore_ascii_case("report"))
                || (t.eq_ignore_ascii_case("message")
                    && (s.eq_ignore_ascii_case("delivery-status")
                        || s.eq_ignore_ascii_case("disposition-notification")))
        })
    };
    if msg.parts.iter().any(report) {
        return Some("it is a delivery or read report (multipart/report)".to_owned());
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn from(value: &str) -> Result<String, String> {
        sender(&[value.to_owned()]).map_err(|e| match e {
            SenderProblem::Missing => "missing".to_owned(),
            SenderProblem::Unusable(why) => why,
        })
    }

    #[test]
    fn a_sender_is_one_plain_address() {
        assert_eq!(
            from("Admin <Admin@RXX.nhs.uk>").unwrap(),
            "admin@rxx.nhs.uk"
        );
        assert_eq!(from("admin@rxx.nhs.uk").unwrap(), "admin@rxx.nhs.uk");
        assert_eq!(
            from("\"Smith, Jo <IT>\" <jo.smith@rxx.nhs.uk>").unwrap(),
            "jo.smith@rxx.nhs.uk"
        );
        assert_eq!(
            from("jo.smith@rxx.nhs.uk (Jo Smith)").unwrap(),
            "jo.smith@rxx.nhs.uk"
        );
        assert_eq!(
            from("=?utf-8?q?Zo=C3=AB?= <zoe@rxx.nhs.uk>").unwrap(),
            "zoe@rxx.nhs.uk"
        );
        for bad in [
            "<hr.systems@nhs.net>evil@evil.example",
            "\"x\"@nhs.net",
            "a@nhs.net.",
            "<@relay.example:admin@rxx.nhs.uk>",
            "a@rxx.nhs.uk, b@rxx.nhs.uk",
            "Admin <a@rxx.nhs.uk> <b@evil.test>",
            "a..b@rxx.nhs.uk",
            "admin@localhost",
            "admin@-rxx.nhs.uk",
            "Admin <admin@rxx.nhs.uk",
            "(unclosed admin@rxx.nhs.uk",
        ] {
            assert!(from(bad).is_err(), "{bad} was taken as {:?}", from(bad));
        }
        assert!(matches!(sender(&[]), Err(SenderProblem::Missing)));
        let two = sender(&["a@rxx.nhs.uk".into(), "b@rxx.nhs.uk".into()]);
        assert!(matches!(two, Err(SenderProblem::Unusable(w)) if w.contains("2 From headers")));
    }

    #[test]
    fn two_from_headers_leave_no_sender() {
        let raw = b"From: admin@rxx.nhs.uk\r\nFrom: intruder@evil.test\r\nSubject: x\r\n\r\nhi\r\n";
        let m = parse(raw);
        assert_eq!(m.from, None);
        assert!(m.sender_problem.unwrap().contains("2 From headers"));
    }

    fn forwarding(encoding: &str, inner: &str) -> Vec<u8> {
        format!(
            "From: Admin <admin@rxx.nhs.uk>\r\nSubject: Fwd: HR list\r\nMIME-Version: 1.0\r\n\
             Content-Type: multipart/mixed; boundary=\"outer\"\r\n\r\n\
             --outer\r\nContent-Type: text/plain\r\n\r\nForwarding.\r\n\
             --outer\r\nContent-Type: message/rfc822; name=\"HR list.eml\"\r\n\
             Content-Transfer-Encoding: {encoding}\r\n\r\n{inner}\r\n--outer--\r\n"
        )
        .into_bytes()
    }

    const INNER: &str = "From: hr@rxx.nhs.uk\r\nSubject: HR list\r\nMIME-Version: 1.0\r\n\
        Content-Type: multipart/mixed; boundary=\"inner\"\r\n\r\n\
        --inner\r\nContent-Type: text/plain\r\n\r\nThe list.\r\n\
        --inner\r\nContent-Type: text/csv; charset=UTF-8; name=\"staff.csv\"\r\n\
        Content-Disposition: attachment; filename=\"staff.csv\"\r\n\
        Content-Transfer-Encoding: base64\r\n\r\nSUQsTmFtZQ0KMSxab8OrDQo=\r\n--inner--\r\n";

    #[test]
    fn a_forwarded_file_is_taken_whole_however_the_forward_is_encoded() {
        let m = parse(&forwarding("7bit", INNER));
        assert_eq!(m.files.len(), 1, "{m:?}");
        assert_eq!(m.files[0].bytes, "ID,Name\r\n1,Zoë\r\n".as_bytes());
        assert_eq!(m.files[0].forwarded.as_deref(), Some("HR list"));

        use base64::Engine as _;
        let encoded = base64::engine::general_purpose::STANDARD.encode(INNER);
        let m = parse(&forwarding("base64", &encoded));
        assert_eq!(m.files.len(), 1, "{m:?}");
        assert_eq!(m.files[0].bytes, "ID,Name\r\n1,Zoë\r\n".as_bytes());
    }

    #[test]
    fn the_content_key_ignores_the_trace_headers() {
        let a = b"Received: by a\r\nMessage-ID: <x@y>\r\n\r\nbody\r\n";
        let b = b"Received: by b\r\nReceived: by c\r\nMessage-ID: <x@y>\r\n\r\nbody\r\n";
        let c = b"Received: by a\r\nMessage-ID: <x@y>\r\n\r\nother body\r\n";
        assert_eq!(content_key(a), content_key(b));
        assert_ne!(content_key(a), content_key(c));
    }

    #[test]
    fn the_written_text_is_the_plain_part_or_the_html_before_its_quoted_original() {
        let head = "From: a@rxx.nhs.uk\r\nSubject: RE: Held\r\nMIME-Version: 1.0\r\n";
        let alternative = format!(
            "{head}Content-Type: multipart/alternative; boundary=\"b\"\r\n\r\n--b\r\n\
             Content-Type: text/plain\r\n\r\nCONFIRM ABCDE-FGHJK\r\n--b\r\n\
             Content-Type: text/html\r\n\r\n<p>other</p>\r\n--b--\r\n"
        );
        assert_eq!(
            parse(alternative.as_bytes()).written.trim(),
            "CONFIRM ABCDE-FGHJK"
        );
        // Outlook on the web, HTML only: the original (with its own code) after the marker.
        let outlook = format!(
            "{head}Content-Type: text/html\r\n\r\n<html><body><div>Cancel ABCDE-FGHJK</div>\
             <div id=\"appendonsend\"></div><hr><div id=\"divRplyFwdMsg\">From: connector\
             </div><div>CONFIRM QQQQQ-QQQQQ</div></body></html>\r\n"
        );
        let written = parse(outlook.as_bytes()).written;
        assert!(written.contains("Cancel ABCDE-FGHJK"), "{written}");
        assert!(!written.contains("QQQQQ"), "{written}");
        // Gmail and Thunderbird HTML: the original in a blockquote.
        let gmail = format!(
            "{head}Content-Type: text/html\r\n\r\n<div dir=\"ltr\">CONFIRM ABCDE-FGHJK</div>\
             <br><div class=\"gmail_quote\"><blockquote>CANCEL QQQQQ-QQQQQ</blockquote></div>\r\n"
        );
        let written = parse(gmail.as_bytes()).written;
        assert_eq!(
            crate::mail::reply::command("Re: Held", &written).map(|c| c.code),
            Some("ABCDEFGHJK".to_owned())
        );
        assert!(!written.contains("QQQQQ"), "{written}");
    }
}

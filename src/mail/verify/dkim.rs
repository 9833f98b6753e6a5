//! `dkim` mode: the connector verifies the sender itself, DKIM (RFC 6376) and DMARC
//! (RFC 7489, with the DNS tree walk of its successor) with the `mail-auth` crate.
//!
//! In: the raw message, the From domain and a DNS resolver. Out: a [`Verdict`]. The only
//! DMARC mechanism here is DKIM: the connector reads mail from a mailbox and never sees the
//! SMTP client's address, so SPF cannot be evaluated (its DMARC result is taken as "none").
//! A message passes when it carries a valid DKIM signature whose `d=` domain is aligned
//! with the From domain (relaxed or strict, as the domain's DMARC record says), and the
//! From domain (or its organisational domain) publishes a DMARC record. Everything else
//! fails, whatever the record's policy (`p=none` included): the connector demands a pass.
//! A domain without a DMARC record fails too, as it would in `mta` mode (`dmarc=none`): it
//! has not said which signatures speak for its From addresses. DNS trouble is
//! [`Verdict::Unavailable`]: the message waits in the mailbox for the next pass.

use mail_auth::dmarc::Policy;
use mail_auth::dmarc::verify::DmarcParameters;
use mail_auth::{
    AuthenticatedMessage, DkimResult, DmarcResult, Error as AuthError, MessageAuthenticator,
    SpfOutput,
};

use super::Verdict;

/// DKIM signatures looked at, at most: each costs a DNS query and an RSA verification, and
/// a sender needs one or two.
pub const MAX_SIGNATURES: usize = 8;

/// The verdict of the message's own DKIM signatures and its From domain's DMARC record.
pub async fn verdict(auth: &MessageAuthenticator, raw: &[u8], from_domain: &str) -> Verdict {
    // Counted before parsing: the parser hashes the body once per distinct signature
    // length and canonicalisation, so thousands of signatures would cost thousands of passes.
    let signatures = signature_headers(raw);
    if signatures > MAX_SIGNATURES {
        return Verdict::Fail(format!(
            "the message carries {signatures} DKIM signatures, more than the {MAX_SIGNATURES} \
             checked"
        ));
    }
    let Some(message) = AuthenticatedMessage::parse(raw) else {
        return Verdict::Fail("the message's header cannot be read for DKIM".to_owned());
    };
    // A signature whose key could not be looked up (temperror) is weighed by DMARC below:
    // it decides only when no other signature passes aligned.
    let dkim = auth.verify_dkim(&message).await;
    let spf = SpfOutput::new(from_domain.to_owned());
    let dmarc = auth
        .verify_dmarc(DmarcParameters {
            message: &message,
            dkim_output: &dkim,
            dkim2_output: None,
            rfc5321_mail_from_domain: "",
            spf_output: &spf,
        })
        .await;
    let signatures = describe(&dkim);
    // mail-auth reads the From header itself; it must be the one the connector reads.
    if !dmarc.domain().eq_ignore_ascii_case(from_domain) {
        return Verdict::Fail(format!(
            "DMARC could not be evaluated for {from_domain} (the message's From header names \
             {} for DMARC)",
            if dmarc.domain().is_empty() {
                "no single domain"
            } else {
                dmarc.domain()
            }
        ));
    }
    let Some(record) = dmarc.dmarc_record() else {
        return match dmarc.dkim_result() {
            DmarcResult::TempError(e) => {
                Verdict::Unavailable(format!("the DMARC record could not be looked up: {e}"))
            }
            _ => Verdict::Fail(format!(
                "{from_domain} publishes no DMARC record, so no signature can be taken as \
                 speaking for it ({signatures})"
            )),
        };
    };
    let policy = match dmarc.policy() {
        Policy::Reject => "reject",
        Policy::Quarantine => "quarantine",
        Policy::None | Policy::Unspecified => "none",
    };
    let alignment = match record.adkim {
        mail_auth::dmarc::Alignment::Strict => "strict",
        mail_auth::dmarc::Alignment::Relaxed => "relaxed",
    };
    match dmarc.dkim_result() {
        DmarcResult::Pass => Verdict::Pass(format!(
            "DKIM signature aligned with {from_domain} ({alignment} alignment, DMARC p={policy}; \
             {signatures})"
        )),
        DmarcResult::TempError(e) => {
            Verdict::Unavailable(format!("DMARC alignment could not be checked: {e}"))
        }
        DmarcResult::Fail(AuthError::NotAligned) => Verdict::Fail(format!(
            "DMARC fails for {from_domain} (p={policy}): no valid DKIM signature is aligned with \
             it ({alignment} alignment; {signatures})"
        )),
        other => Verdict::Fail(format!(
            "DMARC fails for {from_domain} (p={policy}): {} ({signatures})",
            match other {
                DmarcResult::None => "no valid DKIM signature".to_owned(),
                DmarcResult::Fail(e) | DmarcResult::PermError(e) => e.to_string(),
                _ => "no pass".to_owned(),
            }
        )),
    }
}

/// The `DKIM-Signature` fields of the header (every line up to the first empty one that
/// starts with the name, whatever else the header holds).
fn signature_headers(raw: &[u8]) -> usize {
    const NAME: &[u8] = b"dkim-signature";
    raw.split(|&b| b == b'\n')
        .map(|line| line.strip_suffix(b"\r").unwrap_or(line))
        .take_while(|line| !line.is_empty())
        .filter(|line| {
            line.len() > NAME.len()
                && line[..NAME.len()].eq_ignore_ascii_case(NAME)
                && line[NAME.len()..]
                    .iter()
                    .find(|&&b| b != b' ' && b != b'\t')
                    == Some(&b':')
        })
        .count()
}

/// The signatures and their results, for the log and the verdict's words.
fn describe(dkim: &[mail_auth::DkimOutput<'_>]) -> String {
    if dkim.is_empty() {
        return "the message has no DKIM signature".to_owned();
    }
    dkim.iter()
        .map(|o| {
            let domain = o.signature().map_or("?", |s| s.d.as_str());
            let result = match o.result() {
                DkimResult::Pass => "pass".to_owned(),
                DkimResult::Neutral(e) => format!("neutral: {e}"),
                DkimResult::Fail(e) => format!("fail: {e}"),
                DkimResult::PermError(e) => format!("permerror: {e}"),
                DkimResult::TempError(e) => format!("temperror: {e}"),
                DkimResult::None => "none".to_owned(),
            };
            format!("signature by {domain}: {result}")
        })
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_are_counted_in_the_header_only() {
        let raw = b"DKIM-Signature: a\r\ndkim-signature : b\r\n folded\r\nDKIM-Signatures: c\r\n\
                    From: a@b\r\n\r\nDKIM-Signature: in the body\r\n";
        assert_eq!(signature_headers(raw), 2);
        assert_eq!(signature_headers(b"DKIM-Signature: a\nX: b\n"), 1);
    }
}

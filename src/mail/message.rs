//! An incoming message: who sent it, which file it carries, and whether it may be used.
//!
//! In: the raw bytes of a message and the configuration. Out: an [`Inbound`] (sender,
//! Message-ID, date, subject, the submission-type attachments, `Authentication-Results`),
//! then either the organisations the sender may send for or a [`Refusal`] that says why
//! not in words the sender can act on. Pure: no I/O.

use crate::config::Config;
use crate::mail::verify::Verdict;
use crate::model::OdsCode;

/// File types a submission may come in.
pub const SUBMISSION_EXTENSIONS: &[&str] = &["csv", "txt", "xlsx", "xls", "ods"];

/// A file attached to a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attachment {
    pub name: String,
    pub bytes: Vec<u8>,
    /// The subject of the forwarded message the file came in, when it did.
    pub forwarded: Option<String>,
}

/// What the connector reads from a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inbound {
    /// The Message-ID, or `<sha256 of the message>@push-connector` when it has none.
    pub message_id: String,
    /// SHA-256 of the body: with the Message-ID, what makes a message the same message.
    pub content_key: String,
    /// The From address, lower-cased, when there is exactly one plain one.
    pub from: Option<String>,
    /// Why the From header(s) cannot be used, when they cannot.
    pub sender_problem: Option<String>,
    /// Why the message was sent by a machine (auto-reply, bounce, list), when it was.
    pub automatic: Option<String>,
    pub subject: String,
    /// What the sender wrote in the message's text (its plain-text part, or its HTML part
    /// cut before the quoted original), at most [`crate::mail::mime::WRITTEN_BYTES`].
    pub written: String,
    /// The Date header as RFC 3339, when readable.
    pub date: Option<String>,
    /// Attachments of a submission type, in message order.
    pub files: Vec<Attachment>,
    /// Names of other attachments (ignored).
    pub other_files: Vec<String>,
}

/// Why a message is not taken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("the message could not be read as an e-mail")]
    Unreadable,
    #[error("the message has no sender address")]
    NoSender,
    #[error("the sender cannot be used: {0}")]
    BadSender(String),
    #[error("the message is not answered: {0}")]
    Automatic(String),
    #[error("the sender {sender} could not be verified: {reason}")]
    NotVerified { sender: String, reason: String },
    #[error("{sender} is not an authorised connector administrator of any organisation")]
    NotAuthorised { sender: String },
    #[error(
        "the subject does not contain the connector key of {organisation}, which this \
         organisation's submissions must carry"
    )]
    WrongKey { organisation: String },
    #[error(
        "no row of the file is for an organisation {sender} may send for: its rows are for \
         {named}, and {sender} is a connector administrator of {allowed} only"
    )]
    WrongOrganisation {
        sender: String,
        named: String,
        allowed: String,
    },
    #[error(
        "the file has rows for {}, which are all yours: send one file per organisation",
        .0.join(" and ")
    )]
    SeveralOrganisations(Vec<String>),
    #[error("the message has no staff list attached: attach one CSV, TXT, XLSX, XLS or ODS file")]
    NoAttachment,
    #[error(
        "the message has {} staff lists attached ({}): send one file per message",
        .0.len(), .0.join(", ")
    )]
    SeveralAttachments(Vec<String>),
    #[error("the attachment {name} is {size} bytes, over the limit of {limit} bytes")]
    TooLarge {
        name: String,
        size: usize,
        limit: usize,
    },
    #[error("the attachment {name} cannot be read: {reason}")]
    BadFile { name: String, reason: String },
}

impl Refusal {
    /// A short name of the kind of refusal, for metrics (`bad-file`, `not-authorised`, …).
    pub fn kind(&self) -> &'static str {
        match self {
            Refusal::Unreadable => "unreadable",
            Refusal::NoSender => "no-sender",
            Refusal::BadSender(_) => "bad-sender",
            Refusal::Automatic(_) => "automatic",
            Refusal::NotVerified { .. } => "not-verified",
            Refusal::NotAuthorised { .. } => "not-authorised",
            Refusal::WrongKey { .. } => "wrong-key",
            Refusal::WrongOrganisation { .. } => "wrong-organisation",
            Refusal::SeveralOrganisations(_) => "several-organisations",
            Refusal::NoAttachment => "no-attachment",
            Refusal::SeveralAttachments(_) => "several-attachments",
            Refusal::TooLarge { .. } => "too-large",
            Refusal::BadFile { .. } => "bad-file",
        }
    }

    /// Whether a reply may be sent to the From address: not when the sender is unverified
    /// (the address may be forged; a reply would go to an innocent party).
    pub fn may_reply(&self) -> bool {
        !matches!(
            self,
            Refusal::Unreadable
                | Refusal::NoSender
                | Refusal::BadSender(_)
                | Refusal::Automatic(_)
                | Refusal::NotVerified { .. }
        )
    }
}

/// The checked sender and the organisations they may send for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sender {
    pub address: String,
    pub organisations: Vec<OdsCode>,
}

/// Checks the sender: present, verified (the [`Verdict`] of [`crate::mail::verify`]) when
/// DMARC is required, an administrator of at least one organisation.
pub fn authorise(config: &Config, msg: &Inbound, verdict: &Verdict) -> Result<Sender, Refusal> {
    if let Some(why) = &msg.automatic {
        return Err(Refusal::Automatic(why.clone()));
    }
    if let Some(why) = &msg.sender_problem {
        return Err(Refusal::BadSender(why.clone()));
    }
    let address = msg.from.clone().ok_or(Refusal::NoSender)?;
    if config.mail.require_dmarc_pass {
        let reason = match verdict {
            Verdict::Pass(_) => None,
            Verdict::Fail(why) | Verdict::Unavailable(why) => Some(why.clone()),
            Verdict::NotRequired => Some("it was not checked".to_owned()),
        };
        if let Some(reason) = reason {
            return Err(Refusal::NotVerified {
                sender: address,
                reason,
            });
        }
    }
    let organisations: Vec<OdsCode> = config
        .organisations
        .iter()
        .filter(|o| {
            o.administrators
                .iter()
                .any(|a| a.trim().eq_ignore_ascii_case(&address))
        })
        .map(|o| OdsCode::new_unchecked(o.code.to_ascii_uppercase()))
        .collect();
    if organisations.is_empty() {
        return Err(Refusal::NotAuthorised { sender: address });
    }
    Ok(Sender {
        address,
        organisations,
    })
}

/// Chooses the organisation of a submission: the sender's only one, or the one of theirs
/// that the file's rows name. Then checks the connector key, when that organisation has one.
pub fn choose_organisation(
    config: &Config,
    sender: &Sender,
    named: &[String],
    subject: &str,
) -> Result<OdsCode, Refusal> {
    let mine: Vec<&OdsCode> = sender
        .organisations
        .iter()
        .filter(|o| named.iter().any(|n| n == o.as_str()))
        .collect();
    // A file with no valid row names no organisation: it is answered (nothing in it can be
    // applied) as a file of the sender's first organisation, and replaces nothing.
    let chosen = match (mine.as_slice(), named.is_empty()) {
        ([one], _) => (*one).clone(),
        ([], true) => sender.organisations[0].clone(),
        ([], false) => {
            return Err(Refusal::WrongOrganisation {
                sender: sender.address.clone(),
                named: named.join(", "),
                allowed: sender
                    .organisations
                    .iter()
                    .map(|o| o.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            });
        }
        (several, _) => {
            return Err(Refusal::SeveralOrganisations(
                several.iter().map(|o| o.to_string()).collect(),
            ));
        }
    };
    if let Some(key) = config
        .organisation(chosen.as_str())
        .and_then(|o| o.connector_key.as_ref())
    {
        use secrecy::ExposeSecret;
        if !subject.contains(key.0.expose_secret()) {
            return Err(Refusal::WrongKey {
                organisation: chosen.to_string(),
            });
        }
    }
    Ok(chosen)
}

/// The one submission file of a message, within the size limit.
pub fn submission_file(msg: &Inbound, limit: usize) -> Result<&Attachment, Refusal> {
    match msg.files.as_slice() {
        [] => Err(Refusal::NoAttachment),
        [one] if one.bytes.len() > limit => Err(Refusal::TooLarge {
            name: one.name.clone(),
            size: one.bytes.len(),
            limit,
        }),
        [one] => Ok(one),
        several => Err(Refusal::SeveralAttachments(
            several.iter().map(|a| a.name.clone()).collect(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mail::mime::parse;
    use std::collections::BTreeMap;

    fn message(from: &str, extra_headers: &str, attachments: &[(&str, &str)]) -> Vec<u8> {
        let mut m = format!(
            "From: Admin <{from}>\r\nTo: connector@connector.test\r\nSubject: staff list\r\n\
             Message-ID: <m1@rxx>\r\nDate: Tue, 3 Jun 2025 10:00:00 +0100\r\n{extra_headers}\
             MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b\"\r\n\r\n\
             --b\r\nContent-Type: text/plain\r\n\r\nPlease apply.\r\n"
        );
        for (name, body) in attachments {
            m.push_str(&format!(
                "--b\r\nContent-Type: text/csv; name=\"{name}\"\r\n\
                 Content-Disposition: attachment; filename=\"{name}\"\r\n\r\n{body}\r\n"
            ));
        }
        m.push_str("--b--\r\n");
        m.into_bytes()
    }

    fn config(toml: &str) -> Config {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(&path, toml).unwrap();
        Config::load_with_env(Some(&path), &BTreeMap::new()).unwrap()
    }

    const ORGS: &str = "[[organisation]]\ncode = \"RXX\"\nadministrators = [\"Admin@rxx.nhs.uk\"]\n\
        [[organisation]]\ncode = \"RYY\"\nadministrators = [\"admin@ryy.nhs.uk\", \"admin@rxx.nhs.uk\"]\n\
        connector_key = \"K3Y\"\n";

    #[test]
    fn reads_sender_id_date_and_the_one_file() {
        let m = parse(&message(
            "ADMIN@rxx.nhs.uk",
            "",
            &[("staff.csv", "a,b\r\n1,2"), ("logo.png", "x")],
        ));
        assert_eq!(m.from.as_deref(), Some("admin@rxx.nhs.uk"));
        assert_eq!(m.message_id, "m1@rxx");
        assert_eq!(m.date.as_deref(), Some("2025-06-03T10:00:00+01:00"));
        assert_eq!(m.files.len(), 1);
        assert_eq!(m.files[0].bytes, b"a,b\r\n1,2");
        assert_eq!(m.other_files, ["logo.png"]);
        assert_eq!(submission_file(&m, 100).unwrap().name, "staff.csv");
    }

    #[test]
    fn none_several_or_too_large_attachments_are_refused() {
        let none = parse(&message("a@rxx.nhs.uk", "", &[]));
        assert_eq!(submission_file(&none, 100), Err(Refusal::NoAttachment));
        let two = parse(&message(
            "a@rxx.nhs.uk",
            "",
            &[("a.csv", "x"), ("b.xlsx", "y")],
        ));
        let err = submission_file(&two, 100).unwrap_err();
        assert_eq!(
            err.to_string(),
            "the message has 2 staff lists attached (a.csv, b.xlsx): send one file per message"
        );
        let big = parse(&message("a@rxx.nhs.uk", "", &[("a.csv", "0123456789")]));
        assert!(matches!(
            submission_file(&big, 5),
            Err(Refusal::TooLarge { size: 10, .. })
        ));
    }

    #[test]
    fn a_message_without_id_gets_a_stable_one() {
        let raw = b"From: a@b.c\r\nSubject: x\r\n\r\nbody\r\n";
        assert_eq!(parse(raw).message_id, parse(raw).message_id);
        assert!(parse(raw).message_id.ends_with("@push-connector"));
    }

    #[test]
    fn authorisation_by_administrators_dmarc_and_key() {
        let c = config(ORGS);
        let ok = parse(&message("admin@rxx.nhs.uk", "", &[]));
        let s = authorise(&c, &ok, &Verdict::NotRequired).unwrap();
        assert_eq!(s.organisations.len(), 2);
        // The sender administers both: the file's rows choose, and RYY needs its key.
        assert_eq!(
            choose_organisation(&c, &s, &["RXX".into()], "x")
                .unwrap()
                .as_str(),
            "RXX"
        );
        assert!(matches!(
            choose_organisation(&c, &s, &["RYY".into()], "staff list"),
            Err(Refusal::WrongKey { .. })
        ));
        assert_eq!(
            choose_organisation(&c, &s, &["RYY".into()], "list K3Y")
                .unwrap()
                .as_str(),
            "RYY"
        );
        assert!(matches!(
            choose_organisation(&c, &s, &["RZZ".into()], "x"),
            Err(Refusal::WrongOrganisation { .. })
        ));

        let intruder = parse(&message("intruder@evil.test", "", &[]));
        let err = authorise(&c, &intruder, &Verdict::NotRequired).unwrap_err();
        assert!(matches!(err, Refusal::NotAuthorised { .. }));
        assert!(err.may_reply());

        let strict = config(&format!(
            "[mail]\nrequire_dmarc_pass = true\ntrusted_authserv_id = \"mx.connector.test\"\n{ORGS}"
        ));
        // With DMARC required, only a pass lets the sender through (the verdict comes from
        // crate::mail::verify, tested there).
        for verdict in [
            Verdict::Fail("dmarc=fail".into()),
            Verdict::Unavailable("DNS".into()),
            Verdict::NotRequired,
        ] {
            let unverified = authorise(&strict, &ok, &verdict).unwrap_err();
            assert!(matches!(unverified, Refusal::NotVerified { .. }));
            assert!(
                !unverified.may_reply(),
                "never reply to an unverified address"
            );
        }
        let err = authorise(
            &strict,
            &ok,
            &Verdict::Fail("our mail server's DMARC result is \"fail\"".into()),
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "the sender admin@rxx.nhs.uk could not be verified: our mail server's DMARC result \
             is \"fail\""
        );
        assert!(authorise(&strict, &ok, &Verdict::Pass("dmarc=pass".into())).is_ok());
        // A pass does not make an intruder an administrator.
        assert!(matches!(
            authorise(&strict, &intruder, &Verdict::Pass("dmarc=pass".into())),
            Err(Refusal::NotAuthorised { .. })
        ));
    }
}

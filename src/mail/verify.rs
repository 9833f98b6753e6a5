//! Sender verification: is the From address of a message really the sender's?
//!
//! In: the raw message, its From address and the `[mail]` settings. Out: a [`Verdict`],
//! which [`crate::mail::message::authorise`] turns into an acceptance or a refusal. Two
//! ways, chosen by `[mail] sender_verification`:
//!
//! - `mta` ([`mta`]): our own MTA verified the message and wrote its DMARC result in an
//!   `Authentication-Results` header on top; only that header counts (pure, no I/O).
//! - `dkim` ([`dkim`]): the connector checks the DKIM signatures and the From domain's
//!   DMARC record itself, over DNS (the configured `dns_servers`, or the system resolver).
//!
//! `require_dmarc_pass` is the switch: without it nothing is verified and every verdict is
//! [`Verdict::NotRequired`]; with it, a message is accepted only on [`Verdict::Pass`].

pub mod authres;
pub mod dkim;
pub mod mta;

use std::time::Duration;

use mail_auth::MessageAuthenticator;
use mail_auth::hickory_resolver::config::{
    ConnectionConfig, NameServerConfig, ResolverConfig, ResolverOpts,
};
use mail_auth::hickory_resolver::system_conf::read_system_conf;

use super::config::{MailConfig, SenderVerification, parse_server};

/// Attempts per DNS query (each waits `[mail] dns_timeout_seconds`).
pub const DNS_ATTEMPTS: usize = 2;

/// What verification says about a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// `require_dmarc_pass` is off: nothing was checked.
    NotRequired,
    /// Verified; the words say how.
    Pass(String),
    /// Not verified; the words say why (they go into the refusal).
    Fail(String),
    /// Could not be decided now (DNS did not answer): the message is left in the mailbox
    /// and read again at the next pass.
    Unavailable(String),
}

impl std::fmt::Display for Verdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Verdict::NotRequired => f.write_str("not required"),
            Verdict::Pass(how) => write!(f, "pass: {how}"),
            Verdict::Fail(why) => write!(f, "fail: {why}"),
            Verdict::Unavailable(why) => write!(f, "unavailable: {why}"),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error(
        "mail.dns_servers: \"{0}\" is not an IP address with an optional port (\"127.0.0.1:53\")"
    )]
    BadServer(String),
    #[error("the DNS resolver cannot be set up: {0}")]
    Resolver(String),
}

/// Verifies senders as the deployment says; built once per service.
pub struct Verifier {
    how: How,
}

enum How {
    Off,
    Mta { trusted: String },
    Dkim { auth: Box<MessageAuthenticator> },
}

impl Verifier {
    /// The verifier of a `[mail]` section (the DNS resolver is built here, for `dkim`).
    pub fn from_config(mail: &MailConfig) -> Result<Verifier, VerifyError> {
        let how = match (mail.require_dmarc_pass, mail.sender_verification) {
            (false, _) => How::Off,
            (true, SenderVerification::Mta) => How::Mta {
                trusted: mail.trusted_authserv_id.clone().unwrap_or_default(),
            },
            (true, SenderVerification::Dkim) => How::Dkim {
                auth: Box::new(authenticator(
                    &mail.dns_servers,
                    Duration::from_secs(mail.dns_timeout_seconds),
                )?),
            },
        };
        Ok(Verifier { how })
    }

    /// The verdict on a message whose From address is `from` (lower-cased).
    pub async fn verify(&self, raw: &[u8], from: Option<&str>) -> Verdict {
        if matches!(self.how, How::Off) {
            return Verdict::NotRequired;
        }
        let Some(domain) = from.and_then(|f| f.rsplit_once('@')).map(|(_, d)| d) else {
            return Verdict::Fail("the message has no From address".to_owned());
        };
        match &self.how {
            How::Off => Verdict::NotRequired,
            How::Mta { trusted } => mta::verdict(raw, trusted, domain),
            How::Dkim { auth } => dkim::verdict(auth, raw, domain).await,
        }
    }
}

impl Verifier {
    /// For `check`: what is verified, and in `dkim` mode whether the resolver answers (a
    /// look-up of `_dmarc.<domain>`; "no such record" is an answer too).
    pub async fn check(&self, domain: &str) -> Result<String, String> {
        match &self.how {
            How::Off => Ok("off (require_dmarc_pass = false): senders are not verified".into()),
            How::Mta { trusted } => Ok(format!(
                "mta: DMARC results from the Authentication-Results headers of {trusted}"
            )),
            How::Dkim { auth } => {
                let name = format!("_dmarc.{domain}.");
                match auth.txt_raw_lookup(name.as_str()).await {
                    Ok(_) | Err(mail_auth::Error::Dns(mail_auth::DnsError::RecordNotFound(_))) => {
                        Ok(format!("dkim: the DNS resolver answers ({name} looked up)"))
                    }
                    Err(e) => Err(format!(
                        "dkim: the DNS resolver does not answer for {name}: {e}"
                    )),
                }
            }
        }
    }
}

/// A DNS resolver: the given servers (UDP, then TCP), or the system's; each query waits
/// `timeout` per attempt.
pub fn authenticator(
    servers: &[String],
    timeout: Duration,
) -> Result<MessageAuthenticator, VerifyError> {
    let (config, mut opts) = if servers.is_empty() {
        read_system_conf().map_err(|e| VerifyError::Resolver(e.to_string()))?
    } else {
        let mut config = ResolverConfig::from_name_servers(Vec::new());
        for s in servers {
            let addr = parse_server(s).ok_or_else(|| VerifyError::BadServer(s.clone()))?;
            let mut udp = ConnectionConfig::udp();
            udp.port = addr.port();
            let mut tcp = ConnectionConfig::tcp();
            tcp.port = addr.port();
            config.add_name_server(NameServerConfig::new(addr.ip(), true, vec![udp, tcp]));
        }
        (config, ResolverOpts::default())
    };
    opts.timeout = timeout;
    opts.attempts = DNS_ATTEMPTS;
    MessageAuthenticator::new(config, opts).map_err(|e| VerifyError::Resolver(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns_servers_take_an_optional_port() {
        assert_eq!(
            parse_server("127.0.0.1:5353"),
            Some("127.0.0.1:5353".parse().unwrap())
        );
        assert_eq!(
            parse_server(" 10.0.0.1 "),
            Some("10.0.0.1:53".parse().unwrap())
        );
        assert_eq!(
            parse_server("[::1]:5353"),
            Some("[::1]:5353".parse().unwrap())
        );
        assert_eq!(parse_server("::1"), Some("[::1]:53".parse().unwrap()));
        assert_eq!(parse_server("dns.example.org"), None);
        assert!(matches!(
            authenticator(&["localhost:53".into()], Duration::from_secs(1)),
            Err(VerifyError::BadServer(_))
        ));
    }

    #[tokio::test]
    async fn off_checks_nothing_and_mta_reads_the_trusted_header() {
        let mut mail = MailConfig::default();
        let raw = b"Authentication-Results: mx.test; dmarc=pass header.from=rxx.nhs.uk\r\n\
                    From: a@rxx.nhs.uk\r\n\r\nbody\r\n";
        let off = Verifier::from_config(&mail).unwrap();
        assert_eq!(
            off.verify(raw, Some("a@rxx.nhs.uk")).await,
            Verdict::NotRequired
        );
        mail.require_dmarc_pass = true;
        mail.trusted_authserv_id = Some("mx.test".into());
        let on = Verifier::from_config(&mail).unwrap();
        assert!(matches!(
            on.verify(raw, Some("a@rxx.nhs.uk")).await,
            Verdict::Pass(_)
        ));
        assert!(matches!(
            on.verify(raw, Some("a@ryy.nhs.uk")).await,
            Verdict::Fail(_)
        ));
        assert!(matches!(on.verify(raw, None).await, Verdict::Fail(_)));
    }
}

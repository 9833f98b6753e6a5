//! An IMAP mailbox (async-imap over tokio, TLS by rustls).
//!
//! In: `[mailbox]` (host, port, `tls` / `starttls` / `plain`, CA file, login, folders).
//! Out: the inbox's messages keyed `imap:<UIDVALIDITY>:<UID>` (read with `BODY.PEEK[]`, so
//! nothing is marked seen before it is stored), filing with `UID MOVE` (or COPY, `\Deleted`
//! and `UID EXPUNGE` where MOVE is missing), and waiting with IDLE when the server offers
//! it. A broken connection is dropped and opened again on the next call.

use std::fmt::Debug;
use std::sync::Arc;
use std::time::Duration;

use async_imap::{Client, Session};
use futures_util::TryStreamExt;
use rustls::pki_types::ServerName;
use secrecy::ExposeSecret;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

use super::{Listed, Mailbox, MailboxError};
use crate::mail::config::{MailboxConfig, TlsMode};
use crate::net::tls;
use crate::store::mail::Folder;

/// A connection, plain or TLS.
pub trait Io: AsyncRead + AsyncWrite + Unpin + Send + Debug {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + Debug> Io for T {}
type Stream = Box<dyn Io>;

/// Messages fetched per UID FETCH command.
const FETCH_BATCH: usize = 50;

pub struct Imap {
    config: MailboxConfig,
    session: Option<Session<Stream>>,
    uid_validity: u32,
    can_move: bool,
    can_idle: bool,
}

impl Imap {
    pub fn new(config: MailboxConfig) -> Imap {
        Imap {
            config,
            session: None,
            uid_validity: 0,
            can_move: false,
            can_idle: false,
        }
    }

    fn server(&self) -> String {
        format!("{}:{}", self.config.host, self.port())
    }

    fn port(&self) -> u16 {
        self.config.port.unwrap_or(match self.config.tls {
            TlsMode::Tls => 993,
            _ => 143,
        })
    }

    fn err(&self, message: impl std::fmt::Display) -> MailboxError {
        MailboxError::Imap {
            server: self.server(),
            message: message.to_string(),
        }
    }

    /// Connects, logs in, creates the folders and selects the inbox (once per connection).
    async fn session(&mut self) -> Result<&mut Session<Stream>, MailboxError> {
        if self.session.is_none() {
            let session = self.connect().await?;
            self.session = Some(session);
        }
        self.session.as_mut().ok_or_else(|| MailboxError::Imap {
            server: String::new(),
            message: "not connected".into(),
        })
    }

    async fn connect(&mut self) -> Result<Session<Stream>, MailboxError> {
        let tcp = tokio::time::timeout(
            Duration::from_secs(30),
            TcpStream::connect((self.config.host.as_str(), self.port())),
        )
        .await
        .map_err(|_| self.err("connection timed out"))?
        .map_err(|e| self.err(format!("cannot connect: {e}")))?;
        let client: Client<Stream> = match self.config.tls {
            TlsMode::Plain => {
                let mut c = Client::new(Box::new(tcp) as Stream);
                c.read_response()
                    .await
                    .map_err(|e| self.err(format!("no greeting: {e}")))?;
                c
            }
            TlsMode::Tls => {
                let stream = self.tls(tcp).await?;
                let mut c = Client::new(stream);
                c.read_response()
                    .await
                    .map_err(|e| self.err(format!("no greeting: {e}")))?;
                c
            }
            TlsMode::Starttls => {
                let mut c = Client::new(tcp);
                c.read_response()
                    .await
                    .map_err(|e| self.err(format!("no greeting: {e}")))?;
                c.run_command_and_check_ok("STARTTLS", None)
                    .await
                    .map_err(|e| self.err(format!("STARTTLS refused: {e}")))?;
                Client::new(self.tls(c.into_inner()).await?)
            }
        };
        let password = self
            .config
            .password
            .as_ref()
            .map(|p| p.0.expose_secret().to_owned())
            .unwrap_or_default();
        let mut session = client
            .login(&self.config.user, password)
            .await
            .map_err(|(e, _)| self.err(format!("login as {} refused: {e}", self.config.user)))?;
        let caps = session
            .capabilities()
            .await
            .map_err(|e| self.err(format!("CAPABILITY: {e}")))?;
        self.can_move = caps.has_str("MOVE");
        self.can_idle = caps.has_str("IDLE");
        for folder in [&self.config.processed, &self.config.rejected] {
            // Fails when the folder exists, which is fine; a real problem shows on MOVE.
            let _ = session.create(folder).await;
        }
        let mailbox = session
            .select(&self.config.inbox)
            .await
            .map_err(|e| self.err(format!("SELECT {}: {e}", self.config.inbox)))?;
        self.uid_validity = mailbox.uid_validity.unwrap_or(0);
        Ok(session)
    }

    async fn tls(&self, tcp: TcpStream) -> Result<Stream, MailboxError> {
        let config = tls::client_config(self.config.ca_file.as_deref())
            .map_err(|e| self.err(format!("TLS setup: {e}")))?;
        let name = ServerName::try_from(self.config.host.clone())
            .map_err(|e| self.err(format!("server name: {e}")))?;
        let stream = tokio_rustls::TlsConnector::from(Arc::new(config))
            .connect(name, tcp)
            .await
            .map_err(|e| self.err(format!("TLS handshake: {e}")))?;
        Ok(Box::new(stream))
    }

    async fn list_inner(&mut self) -> Result<Vec<Listed>, MailboxError> {
        let server = self.server();
        let imap_err = |e: async_imap::error::Error| MailboxError::Imap {
            server: server.clone(),
            message: e.to_string(),
        };
        let session = self.session().await?;
        // NOOP lets the server tell us about new mail since SELECT.
        session.noop().await.map_err(imap_err)?;
        let mut uids: Vec<u32> = session
            .uid_search("ALL")
            .await
            .map_err(imap_err)?
            .into_iter()
            .collect();
        uids.sort_unstable();
        let validity = self.uid_validity;
        let mut out = Vec::with_capacity(uids.len());
        let session = self.session().await?;
        for chunk in uids.chunks(FETCH_BATCH) {
            let set = chunk
                .iter()
                .map(u32::to_string)
                .collect::<Vec<_>>()
                .join(",");
            let fetches: Vec<_> = session
                .uid_fetch(set, "(UID RFC822.SIZE)")
                .await
                .map_err(imap_err)?
                .try_collect()
                .await
                .map_err(imap_err)?;
            for f in fetches {
                if let Some(uid) = f.uid {
                    out.push((uid, u64::from(f.size.unwrap_or(0))));
                }
            }
        }
        out.sort_unstable();
        out.dedup_by_key(|(uid, _)| *uid);
        Ok(out
            .into_iter()
            .map(|(uid, size)| Listed {
                key: format!("imap:{validity}:{uid}"),
                size,
            })
            .collect())
    }

    async fn read_inner(&mut self, key: &str) -> Result<Option<Vec<u8>>, MailboxError> {
        let Some(uid) = key
            .strip_prefix("imap:")
            .and_then(|k| k.split_once(':'))
            .filter(|(v, _)| *v == self.uid_validity.to_string())
            .and_then(|(_, uid)| uid.parse::<u32>().ok())
        else {
            return Ok(None);
        };
        let server = self.server();
        let imap_err = |e: async_imap::error::Error| MailboxError::Imap {
            server: server.clone(),
            message: e.to_string(),
        };
        let session = self.session().await?;
        let fetches: Vec<_> = session
            .uid_fetch(uid.to_string(), "(UID BODY.PEEK[])")
            .await
            .map_err(imap_err)?
            .try_collect()
            .await
            .map_err(imap_err)?;
        Ok(fetches
            .iter()
            .find(|f| f.uid == Some(uid))
            .and_then(|f| f.body())
            .map(<[u8]>::to_vec))
    }

    async fn file_inner(&mut self, key: &str, folder: Folder) -> Result<(), MailboxError> {
        let (validity, uid) = key
            .strip_prefix("imap:")
            .and_then(|k| k.split_once(':'))
            .ok_or_else(|| MailboxError::NoSuchMessage(key.to_owned()))?;
        let target = match folder {
            Folder::Processed => self.config.processed.clone(),
            Folder::Rejected => self.config.rejected.clone(),
        };
        let server = self.server();
        let imap_err = |e: async_imap::error::Error| MailboxError::Imap {
            server: server.clone(),
            message: format!("filing UID {uid} into {target}: {e}"),
        };
        self.session().await?;
        if validity != self.uid_validity.to_string() {
            // The UIDs were renumbered: the message is found again under its new UID and
            // recognised by its Message-ID.
            return Err(MailboxError::NoSuchMessage(key.to_owned()));
        }
        let can_move = self.can_move;
        let session = self.session().await?;
        if can_move {
            session.uid_mv(uid, &target).await.map_err(imap_err)?;
        } else {
            session.uid_copy(uid, &target).await.map_err(imap_err)?;
            let _: Vec<_> = session
                .uid_store(uid, "+FLAGS.SILENT (\\Deleted)")
                .await
                .map_err(imap_err)?
                .try_collect()
                .await
                .map_err(imap_err)?;
            let _: Vec<_> = session
                .uid_expunge(uid)
                .await
                .map_err(imap_err)?
                .try_collect()
                .await
                .map_err(imap_err)?;
        }
        Ok(())
    }

    async fn idle(&mut self, max: Duration) -> Result<(), MailboxError> {
        let Some(session) = self.session.take() else {
            return Ok(());
        };
        let mut handle = session.idle();
        handle
            .init()
            .await
            .map_err(|e| self.err(format!("IDLE: {e}")))?;
        let (wait, _stop) = handle.wait_with_timeout(max);
        let outcome = wait.await;
        outcome.map_err(|e| self.err(format!("IDLE: {e}")))?;
        let session = handle
            .done()
            .await
            .map_err(|e| self.err(format!("IDLE DONE: {e}")))?;
        self.session = Some(session);
        Ok(())
    }

    /// Drops the connection after an error, so the next call reconnects.
    fn on_error<T>(&mut self, r: Result<T, MailboxError>) -> Result<T, MailboxError> {
        if r.is_err() {
            self.session = None;
        }
        r
    }
}

impl Mailbox for Imap {
    async fn list(&mut self) -> Result<Vec<Listed>, MailboxError> {
        let r = self.list_inner().await;
        self.on_error(r)
    }

    async fn read(&mut self, key: &str) -> Result<Option<Vec<u8>>, MailboxError> {
        let r = self.read_inner(key).await;
        self.on_error(r)
    }

    async fn file(&mut self, key: &str, folder: Folder) -> Result<(), MailboxError> {
        let r = self.file_inner(key, folder).await;
        self.on_error(r)
    }

    async fn wait(&mut self, max: Duration) -> Result<(), MailboxError> {
        if self.config.idle && self.can_idle && self.session.is_some() {
            let r = self.idle(max).await;
            self.on_error(r)
        } else {
            tokio::time::sleep(max).await;
            Ok(())
        }
    }

    async fn check(&mut self) -> Result<String, MailboxError> {
        let n = self.list().await?.len();
        let session = self.session().await?;
        let _ = session.logout().await;
        self.session = None;
        Ok(format!(
            "IMAP {} as {}: logged in, {n} message(s) waiting in {}",
            self.server(),
            self.config.user,
            self.config.inbox
        ))
    }
}

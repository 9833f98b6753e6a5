//! An LDAP directory (Active Directory) as a sync source.
//!
//! In: `[source.ldap]`: the URL (`ldaps://`, or `ldap://` with StartTLS unless
//! `tls = "plain"`), the CA, the service account (simple bind), the scope (`base_dn`,
//! `filter`, `match`), the anchor, the page size and the timeout. Out: the entries in scope
//! with the attributes asked for (names in lower case; `objectGUID` as a GUID string), the
//! cursor, and the portal's values written back with LDAP modify.
//!
//! Delta: the rootDSE's `highestCommittedUSN` is read before each search, and kept with the
//! DC's identity (`dsServiceName` and its `invocationId`); the next run reads only
//! `(uSNChanged>=USN+1)`. A cursor from another DC, a restored one, or another scope reads
//! everything again (see [`cursor`]). With `delta = "dirsync"` the DirSync control finds
//! the objects in which a mapped attribute changed (any DC accepts its cookie; the account
//! needs "Replicating Directory Changes"), and those are then read whole by objectGUID.
//! Either way our own write-back comes back once; the sync drops it by fingerprint.
//!
//! Entries without the anchor attribute cannot be joined to an account: they are left out
//! of the batch's entries and given apart ([`Batch::without_anchor`]), for the sync to
//! count and report, with a warning naming the DN.

mod cursor;
mod dirsync;
mod filter;
pub mod preflight;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use ldap3::adapters::{Adapter, EntriesOnly, PagedResults};
use ldap3::{Ldap, LdapConnAsync, LdapConnSettings, LdapError, LdapResult, Mod, Scope};
use ldap3::{ResultEntry, SearchEntry, SearchResult};
use secrecy::ExposeSecret;

use super::config::{LdapConfig, LdapDelta, LdapTls};
use super::{Batch, Cursor, Source, SourceEntry, SourceError, WriteBack};

/// Modify operations sent before the first answer is awaited, so network round trips
/// overlap (results still come back in order, one per write).
const WRITES_IN_FLIGHT: usize = 8;

pub struct LdapSource {
    ldap: Ldap,
    config: Box<LdapConfig>,
    timeout: Duration,
    target: String,
}

impl LdapSource {
    /// Connects and binds as the service account.
    pub async fn open(config: &LdapConfig) -> Result<LdapSource, SourceError> {
        let target = format!("{} ({})", config.url, config.base_dn);
        filter::check(config).map_err(SourceError::Config)?;
        // An empty password would be an anonymous bind that "succeeds" (RFC 4513 5.1.2).
        let password = config
            .bind_password
            .as_ref()
            .map(|p| p.0.expose_secret())
            .filter(|p| !p.is_empty())
            .ok_or_else(|| {
                SourceError::Config(format!(
                    "ldap.bind_password for {} is not set or empty: set it in the file, or \
                     in PUSH_CONNECTOR__SOURCE__N__LDAP__BIND_PASSWORD (or …_FILE), N being \
                     the source's place among the [[source]] sections, from 0",
                    config.bind_dn
                ))
            })?;
        let timeout = Duration::from_secs(config.timeout_seconds.max(1));
        let ldaps = config.url.to_ascii_lowercase().starts_with("ldaps://");
        if ldaps && config.tls == LdapTls::Plain {
            tracing::warn!(
                url = %config.url,
                "ldap.tls = \"plain\" is ignored: ldaps:// is TLS from the first byte"
            );
        }
        let mut settings = LdapConnSettings::new().set_conn_timeout(timeout);
        if ldaps || config.tls == LdapTls::Auto {
            let tls = crate::net::tls::client_config(config.ca_file.as_deref())
                .map_err(|e| SourceError::Config(format!("ldap.ca_file: {e}")))?;
            settings = settings.set_config(Arc::new(tls)).set_starttls(!ldaps);
        }
        let connect = |reason: String| SourceError::Connect {
            target: config.url.clone(),
            reason,
        };
        let (conn, mut ldap) = LdapConnAsync::with_settings(settings, &config.url)
            .await
            .map_err(|e| connect(e.to_string()))?;
        let url = config.url.clone();
        tokio::spawn(async move {
            if let Err(e) = conn.drive().await {
                tracing::warn!(%url, error = %e, "LDAP connection ended");
            }
        });
        let bound = ldap
            .with_timeout(timeout)
            .simple_bind(&config.bind_dn, password)
            .await
            .map_err(|e| connect(e.to_string()))?;
        match bound.rc {
            0 => {}
            8 | 13 => {
                return Err(connect(format!(
                    "the server wants an encrypted connection for the bind of {} (use \
                     ldaps:// or tls = \"auto\"): {}",
                    config.bind_dn,
                    result_text(&bound)
                )));
            }
            // inappropriateAuthentication, invalidCredentials, insufficientAccessRights,
            // unwillingToPerform (a disabled or locked account).
            48..=50 | 53 => {
                return Err(SourceError::Credentials {
                    target: config.url.clone(),
                    reason: format!("bind as {}: {}", config.bind_dn, result_text(&bound)),
                });
            }
            _ => {
                return Err(connect(format!(
                    "bind as {}: {}",
                    config.bind_dn,
                    result_text(&bound)
                )));
            }
        }
        Ok(LdapSource {
            ldap,
            config: Box::new(config.clone()),
            timeout,
            target,
        })
    }

    fn read_error(&self, reason: impl ToString) -> SourceError {
        SourceError::Read {
            target: self.target.clone(),
            reason: reason.to_string(),
        }
    }

    /// The DC's identity and USN, from the rootDSE; `None` for a server that keeps no USN
    /// (not Active Directory), which then has every run read everything.
    async fn server(&mut self) -> Result<Option<cursor::Server>, SourceError> {
        let root = self
            .base_entry("", &["highestCommittedUSN", "dsServiceName"])
            .await?
            .ok_or_else(|| self.read_error("the rootDSE cannot be read"))?;
        let first = |name: &str| {
            root.attrs
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .and_then(|(_, v)| v.first().cloned())
        };
        let (Some(usn), Some(name)) = (
            first("highestCommittedUSN").and_then(|u| u.parse::<u64>().ok()),
            first("dsServiceName"),
        ) else {
            return Ok(None);
        };
        let invocation_id = match self.base_entry(&name, &["invocationId"]).await {
            Ok(Some(ntds)) => binary_values(ntds)
                .remove("invocationid")
                .and_then(|v| v.first().and_then(|b| filter::guid_text(b))),
            Ok(None) | Err(_) => None,
        };
        Ok(Some(cursor::Server {
            name,
            invocation_id,
            usn,
        }))
    }

    /// One entry by DN (base search); `None` when it is missing or hidden.
    async fn base_entry(
        &mut self,
        dn: &str,
        attributes: &[&str],
    ) -> Result<Option<SearchEntry>, SourceError> {
        let found = self
            .ldap
            .with_timeout(self.timeout)
            .search(dn, Scope::Base, "(objectClass=*)", attributes.to_vec())
            .await
            .map_err(|e| self.read_error(e))?;
        Ok(found.0.into_iter().next().map(SearchEntry::construct))
    }

    /// A read with DirSync: the objects changed since the cookie, each read whole (DirSync
    /// itself returns only the changed attributes); everything when there is no cookie.
    async fn read_dirsync(
        &mut self,
        attributes: &[String],
        since: Option<&Cursor>,
    ) -> Result<Batch, SourceError> {
        let scope = cursor::scope(&self.config, attributes);
        let start = match since.map(|c| cursor::start_dirsync(c, &scope)) {
            Some(Ok(cookie)) => Some(cookie),
            Some(Err(why)) => {
                tracing::info!(source = %self.target, why, "reading every entry");
                None
            }
            None => None,
        };
        let full = start.is_none();
        // The cookie comes first: whatever changes during the read is read again next time.
        // A full read needs only the cookie: asking for no mapped attribute keeps the
        // DirSync pass over the whole domain small.
        let asked = if full { &[][..] } else { attributes };
        let (mut changed, cookie) = self.dirsync(start.unwrap_or_default(), asked).await?;
        let found = if full {
            self.search(&filter::search(&self.config, None), attributes)
                .await?
        } else {
            changed.sort();
            changed.dedup();
            let mut entries = Vec::new();
            for filter in filter::guids(&self.config, &changed) {
                entries.extend(self.search(&filter, attributes).await?);
            }
            entries
        };
        let (entries, without_anchor) = split_anchorless(found);
        Ok(Batch {
            entries,
            cursor: Some(cursor::after_dirsync(&cookie, &scope)),
            full,
            without_anchor,
        })
    }

    /// DirSync from `cookie` (everything for an empty one) to the end: the objectGUIDs of
    /// the people below the base DN in which one of `attributes` changed, and the cookie to
    /// keep.
    async fn dirsync(
        &mut self,
        mut cookie: Vec<u8>,
        attributes: &[String],
    ) -> Result<(Vec<String>, Vec<u8>), SourceError> {
        // DirSync searches a whole naming context.
        let root = self
            .base_entry("", &["defaultNamingContext"])
            .await?
            .ok_or_else(|| self.read_error("the rootDSE cannot be read"))?;
        let context = root
            .attrs
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("defaultNamingContext"))
            .and_then(|(_, v)| v.first().cloned())
            .ok_or_else(|| self.read_error("no defaultNamingContext: DirSync needs AD"))?;
        let people = filter::people(&self.config);
        // An entry comes back only when an attribute asked for changed (objectGUID alone
        // never does), so the mapped attributes are asked for.
        let mut wanted: Vec<&str> = attributes.iter().map(String::as_str).collect();
        wanted.push("objectGUID");
        let mut guids = Vec::new();
        loop {
            let SearchResult(found, done) = self
                .ldap
                .with_timeout(self.timeout)
                .with_controls(dirsync::request(&cookie))
                .search(&context, Scope::Subtree, &people, wanted.clone())
                .await
                .map_err(|e| self.read_error(e))?;
            if done.rc != 0 {
                return Err(self.read_error(format!(
                    "DirSync search of {context}: {} (DirSync needs \"Replicating Directory \
                     Changes\" on the domain)",
                    result_text(&done)
                )));
            }
            for raw in found {
                let entry = SearchEntry::construct(raw);
                if filter::within(&entry.dn, &self.config.base_dn)
                    && let Some(guid) = binary_values(entry)
                        .remove("objectguid")
                        .and_then(|v| v.first().and_then(|b| filter::guid_text(b)))
                {
                    guids.push(guid);
                }
            }
            let (more, next) = dirsync::response(&done.ctrls)
                .ok_or_else(|| self.read_error("the DirSync search returned no cookie"))?;
            cookie = next;
            if !more {
                return Ok((guids, cookie));
            }
        }
    }

    /// A paged subtree search under the base DN. Entries without the anchor come back with
    /// an empty one (see [`split_anchorless`]).
    async fn search(
        &mut self,
        filter: &str,
        attributes: &[String],
    ) -> Result<Vec<SourceEntry>, SourceError> {
        let mut wanted: Vec<String> = attributes.to_vec();
        if !wanted
            .iter()
            .any(|a| a.eq_ignore_ascii_case(&self.config.anchor))
        {
            wanted.push(self.config.anchor.clone());
        }
        let adapters: Vec<Box<dyn Adapter<_, _>>> = vec![
            Box::new(EntriesOnly::new()),
            Box::new(PagedResults::new(self.config.page_size)),
        ];
        let base = self.config.base_dn.clone();
        let mut stream = self
            .ldap
            .with_timeout(self.timeout)
            .streaming_search_with(adapters, &base, Scope::Subtree, filter, wanted)
            .await
            .map_err(|e| self.read_error(e))?;
        let anchor = self.config.anchor.to_ascii_lowercase();
        let mut entries = Vec::new();
        loop {
            match stream.next().await {
                Ok(Some(raw)) => entries.push(source_entry(raw, &anchor)),
                Ok(None) => break,
                Err(e) => return Err(self.read_error(e)),
            }
        }
        let done = stream.finish().await;
        if done.rc != 0 {
            return Err(self.read_error(format!(
                "searching {base} for {filter}: {}",
                result_text(&done)
            )));
        }
        Ok(entries)
    }
}

impl Source for LdapSource {
    fn describe(&self) -> String {
        self.target.clone()
    }

    async fn read(
        &mut self,
        attributes: &[String],
        since: Option<&Cursor>,
    ) -> Result<Batch, SourceError> {
        if self.config.delta == LdapDelta::Dirsync {
            return self.read_dirsync(attributes, since).await;
        }
        // The USN comes first: whatever changes during the search is read again next time.
        let server = self.server().await?;
        let scope = cursor::scope(&self.config, attributes);
        let from = match (since, &server) {
            (Some(c), Some(s)) => match cursor::start(c, s, &scope) {
                Ok(usn) => Some(usn + 1),
                Err(why) => {
                    tracing::info!(source = %self.target, why, "reading every entry");
                    None
                }
            },
            _ => None,
        };
        let found = self
            .search(&filter::search(&self.config, from), attributes)
            .await?;
        let (entries, without_anchor) = split_anchorless(found);
        Ok(Batch {
            entries,
            cursor: server.map(|s| cursor::after(&s, &scope)),
            full: from.is_none(),
            without_anchor,
        })
    }

    fn anchor_problem(&self, anchor: &str) -> Option<String> {
        if anchor.trim().is_empty() {
            return Some("an anchor cannot be empty".to_owned());
        }
        (filter::is_guid_attribute(&self.config.anchor) && filter::guid_value(anchor).is_none())
            .then(|| {
                format!(
                    "\"{anchor}\" is not an objectGUID (a GUID such as \
                     9f0c2d6e-1b2a-4c3d-8e4f-5a6b7c8d9e0f)"
                )
            })
    }

    async fn read_anchors(
        &mut self,
        attributes: &[String],
        anchors: &[String],
    ) -> Result<Vec<SourceEntry>, SourceError> {
        let mut entries = Vec::new();
        for filter in filter::anchors(&self.config, anchors) {
            entries.extend(self.search(&filter, attributes).await?);
        }
        // An entry found by its anchor has one.
        entries.retain(|e| !e.anchor.is_empty());
        Ok(entries)
    }

    async fn write_back(
        &mut self,
        writes: &[WriteBack],
    ) -> Result<Vec<Result<(), String>>, SourceError> {
        use futures_util::StreamExt;
        let timeout = self.timeout;
        let target = self.target.clone();
        let ldap = self.ldap.clone();
        let results: Vec<Result<Result<(), String>, SourceError>> =
            futures_util::stream::iter(writes)
                .map(|w| {
                    let mut ldap = ldap.clone();
                    let target = target.clone();
                    async move { write_one(&mut ldap, timeout, &target, w).await }
                })
                .buffered(WRITES_IN_FLIGHT)
                .collect()
                .await;
        let outcomes = results.into_iter().collect::<Result<Vec<_>, _>>()?;
        Ok(outcomes)
    }
}

/// Writes one entry's values: the first (the ID, or the value that keeps the entry joined
/// to its account: [`WriteBack::values`] come in that order) in a modify of its own, then
/// the others in one modify, so a right missing for one of them does not keep the ID from
/// being written. `Err` only when the connection failed; the directory's refusal is the
/// inner `Err` (saying what was written before it).
async fn write_one(
    ldap: &mut Ldap,
    timeout: Duration,
    target: &str,
    write: &WriteBack,
) -> Result<Result<(), String>, SourceError> {
    let split = write.values.len().min(1);
    let (first, rest) = write.values.split_at(split);
    let first = WriteBack {
        locator: write.locator.clone(),
        values: first.to_vec(),
    };
    if let Err(why) = modify(ldap, timeout, target, &first).await? {
        return Ok(Err(why));
    }
    if rest.is_empty() {
        return Ok(Ok(()));
    }
    let rest = WriteBack {
        locator: write.locator.clone(),
        values: rest.to_vec(),
    };
    Ok(modify(ldap, timeout, target, &rest).await?.map_err(|why| {
        format!(
            "{} was written; {why}",
            first.values.first().map_or("", |(a, _)| a.as_str())
        )
    }))
}

/// One modify of an entry: all of the values or none.
async fn modify(
    ldap: &mut Ldap,
    timeout: Duration,
    target: &str,
    write: &WriteBack,
) -> Result<Result<(), String>, SourceError> {
    let mods: Vec<Mod<&str>> = write
        .values
        .iter()
        .map(|(attribute, value)| {
            let values = if value.is_empty() {
                HashSet::new()
            } else {
                HashSet::from([value.as_str()])
            };
            Mod::Replace(attribute.as_str(), values)
        })
        .collect();
    let result = match ldap
        .with_timeout(timeout)
        .modify(&write.locator, mods)
        .await
    {
        Ok(result) => result,
        Err(LdapError::LdapResult { result }) => result,
        Err(e) => {
            return Err(SourceError::Write {
                target: target.to_owned(),
                reason: format!("{}: {e}", write.locator),
            });
        }
    };
    Ok(refusal(&result, write))
}

/// An entry's values by lower-case attribute name, as bytes (ldap3 splits values into text
/// and binary; a binary GUID can happen to be valid UTF-8, so both are looked at).
fn binary_values(entry: SearchEntry) -> HashMap<String, Vec<Vec<u8>>> {
    let mut values: HashMap<String, Vec<Vec<u8>>> = HashMap::new();
    for (name, texts) in entry.attrs {
        values
            .entry(name.to_ascii_lowercase())
            .or_default()
            .extend(texts.into_iter().map(String::into_bytes));
    }
    for (name, binary) in entry.bin_attrs {
        values
            .entry(name.to_ascii_lowercase())
            .or_default()
            .extend(binary);
    }
    values
}

/// The entries with their anchor, and those without (with a warning naming each).
fn split_anchorless(entries: Vec<SourceEntry>) -> (Vec<SourceEntry>, Vec<SourceEntry>) {
    let (with, without): (Vec<SourceEntry>, Vec<SourceEntry>) =
        entries.into_iter().partition(|e| !e.anchor.is_empty());
    for e in &without {
        tracing::warn!(dn = %e.locator, "entry without its anchor attribute left out");
    }
    (with, without)
}

/// A search result as a source entry; the anchor is empty when the entry has none.
fn source_entry(raw: ResultEntry, anchor: &str) -> SourceEntry {
    let entry = SearchEntry::construct(raw);
    let locator = entry.dn.clone();
    let values: HashMap<String, Vec<String>> = binary_values(entry)
        .into_iter()
        .map(|(name, raw)| {
            let texts = raw
                .iter()
                .map(|v| match filter::is_guid_attribute(&name) {
                    true => filter::guid_text(v)
                        .unwrap_or_else(|| String::from_utf8_lossy(v).into_owned()),
                    false => String::from_utf8_lossy(v).into_owned(),
                })
                .collect();
            (name, texts)
        })
        .collect();
    let anchor = values
        .get(anchor)
        .and_then(|v| v.first())
        .cloned()
        .unwrap_or_default();
    SourceEntry {
        locator,
        anchor,
        values,
    }
}

/// An LDAP result code with its name and the server's text.
fn result_text(result: &LdapResult) -> String {
    let mut text = result.to_string();
    if let Some(i) = text.find(", dn: ") {
        // ldap3 prints `rc=N (name), dn: "…", text: "…"`; keep the code and the text.
        let server = result.text.trim();
        text.truncate(i);
        if !server.is_empty() {
            text.push_str(&format!(": {server}"));
        }
    }
    text
}

/// Why the directory refused a write, or `Ok` when it did not.
fn refusal(result: &LdapResult, write: &WriteBack) -> Result<(), String> {
    let attributes = write
        .values
        .iter()
        .map(|(a, _)| a.as_str())
        .collect::<Vec<_>>()
        .join(", ");
    let why = result_text(result);
    match result.rc {
        0 => Ok(()),
        50 => Err(format!(
            "the service account may not write {attributes} ({why}); grant it write \
             property on {attributes}, or remove them from write_back"
        )),
        32 => Err(format!(
            "the entry is gone (moved or deleted since it was read): {why}"
        )),
        19 | 21 => Err(format!(
            "the directory refused the value of {attributes}: {why}"
        )),
        _ => Err(format!("writing {attributes} failed: {why}")),
    }
}

#[cfg(test)]
mod tests;

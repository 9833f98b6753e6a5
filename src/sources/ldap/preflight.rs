//! What `check` asks of an AD source beyond the bind, so mistakes show before a sync fails.
//!
//! In: an open [`LdapSource`] and the attributes the sync writes back. Out: one [`Finding`]
//! per question, in order: the base DN exists and can be read; the scope (filter and
//! `match`) is accepted by the server and holds entries (none is a problem: a filter that
//! excludes disabled accounts finds nothing when every account is disabled), with those
//! lacking the anchor counted; and the service account may write each write-back attribute
//! of an entry in scope (AD's constructed `allowedAttributesEffective`, read from the first
//! entry; nothing is written).

use ldap3::Scope;
use ldap3::adapters::{Adapter, EntriesOnly, PagedResults};

use super::{LdapSource, filter, result_text};
use crate::sources::SourceError;

/// One answer of a preflight.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Finding {
    /// What was found, for `ok` lines.
    Ok(String),
    /// What is wrong: a sync would fail or do nothing.
    Problem(String),
    /// What could not be told, or is probably not meant.
    Warning(String),
}

impl LdapSource {
    /// Checks the scope and the write rights (see the module's header); `Err` only when the
    /// connection fails.
    pub async fn preflight(&mut self, write_back: &[String]) -> Result<Vec<Finding>, SourceError> {
        let base = self.config.base_dn.clone();
        let mut out = Vec::new();
        let found = self
            .ldap
            .with_timeout(self.timeout)
            .search(&base, Scope::Base, "(objectClass=*)", vec!["1.1"])
            .await
            .map_err(|e| self.read_error(e))?;
        if found.1.rc != 0 || found.0.is_empty() {
            out.push(Finding::Problem(format!(
                "base_dn {base} cannot be read: {} (is it spelled as in the directory, and \
                 may {} read it?)",
                if found.1.rc == 0 {
                    "it is hidden from the service account".to_owned()
                } else {
                    result_text(&found.1)
                },
                self.config.bind_dn
            )));
            return Ok(out);
        }
        out.push(Finding::Ok(format!("base_dn {base} exists")));

        // The scope: every entry, with only the anchor (to count those without it).
        let scope = filter::search(&self.config, None);
        let anchor = self.config.anchor.clone();
        let adapters: Vec<Box<dyn Adapter<_, _>>> = vec![
            Box::new(EntriesOnly::new()),
            Box::new(PagedResults::new(self.config.page_size)),
        ];
        let mut stream = self
            .ldap
            .with_timeout(self.timeout)
            .streaming_search_with(adapters, &base, Scope::Subtree, &scope, vec![&anchor])
            .await
            .map_err(|e| self.read_error(e))?;
        let (mut entries, mut without_anchor) = (0u64, 0u64);
        let mut first_dn = None;
        loop {
            match stream.next().await {
                Ok(Some(raw)) => {
                    let entry = super::source_entry(raw, &anchor.to_ascii_lowercase());
                    entries += 1;
                    if entry.anchor.is_empty() {
                        without_anchor += 1;
                    } else if first_dn.is_none() {
                        first_dn = Some(entry.locator);
                    }
                }
                Ok(None) => break,
                Err(e) => return Err(self.read_error(e)),
            }
        }
        let done = stream.finish().await;
        if done.rc != 0 {
            out.push(Finding::Problem(format!(
                "the server refused the search for filter {:?}: {}",
                self.config.filter,
                result_text(&done)
            )));
            return Ok(out);
        }
        if entries == 0 {
            out.push(Finding::Problem(format!(
                "no entry is in scope (base_dn {base}, filter {scope}): a sync would read \
                 nothing. Check base_dn, filter and match (a filter that leaves out disabled \
                 accounts finds none when every account is disabled)"
            )));
            return Ok(out);
        }
        out.push(Finding::Ok(format!(
            "{entries} entr{} in scope",
            if entries == 1 { "y" } else { "ies" }
        )));
        if without_anchor > 0 {
            out.push(Finding::Warning(format!(
                "{without_anchor} of them ha{} no {anchor} (the anchor): a sync leaves them \
                 out, as refused rows",
                if without_anchor == 1 { "s" } else { "ve" }
            )));
        }

        // The write rights, on the first entry in scope.
        let (Some(dn), false) = (first_dn, write_back.is_empty()) else {
            return Ok(out);
        };
        let allowed = self
            .base_entry(&dn, &["allowedAttributesEffective"])
            .await?
            .and_then(|e| {
                e.attrs
                    .into_iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case("allowedAttributesEffective"))
                    .map(|(_, v)| v)
            });
        let Some(allowed) = allowed else {
            out.push(Finding::Warning(format!(
                "cannot tell whether {} may write {} (the server gives no \
                 allowedAttributesEffective): the first sync will say",
                self.config.bind_dn,
                write_back.join(", ")
            )));
            return Ok(out);
        };
        let denied: Vec<&str> = write_back
            .iter()
            .filter(|a| !allowed.iter().any(|x| x.eq_ignore_ascii_case(a)))
            .map(String::as_str)
            .collect();
        if denied.is_empty() {
            out.push(Finding::Ok(format!(
                "{} may write {} (checked on {dn})",
                self.config.bind_dn,
                write_back.join(", ")
            )));
        } else {
            let account = &self.config.bind_dn;
            let denied = denied.join(", ");
            out.push(Finding::Problem(format!(
                "{account} may not write {denied} of {dn}: grant it write property on \
                 {denied}, or remove {denied} from write_back"
            )));
        }
        Ok(out)
    }
}

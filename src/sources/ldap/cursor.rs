//! The AD source's cursor: where the next delta starts, and what it is only valid for.
//!
//! In: the domain controller's identity and `highestCommittedUSN` (read from the rootDSE
//! before a search), and the scope read. Out: the JSON text kept as a
//! [`crate::sources::Cursor`], and whether a stored one can start a delta. A USN counts
//! changes on one domain controller only, so a cursor from another (or from the same one
//! restored from a backup: a new invocationId), or from another scope or mapping, means a
//! full read. Pure.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::sources::Cursor;
use crate::sources::config::LdapConfig;

/// The domain controller as its rootDSE describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Server {
    /// `dsServiceName`: the DN of its NTDS Settings object.
    pub name: String,
    /// That object's `invocationId` (changes when the DC's database is restored), if readable.
    pub invocation_id: Option<String>,
    /// `highestCommittedUSN`.
    pub usn: u64,
}

/// What the cursor text holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "delta", rename_all = "lowercase", deny_unknown_fields)]
enum Stored {
    Usn {
        server: String,
        invocation_id: Option<String>,
        /// Every change above this USN is still to be read.
        usn: u64,
        /// Digest of base, filter, match, anchor and attributes.
        scope: String,
    },
    Dirsync {
        /// The DirSync cookie, in hex (any DC of the domain accepts it).
        cookie: String,
        scope: String,
    },
}

/// A digest of what a read covers: a delta is only valid for the same scope and attributes
/// (a newly mapped attribute, or a widened filter, needs every entry read once).
pub fn scope(config: &LdapConfig, attributes: &[String]) -> String {
    let mut hash = Sha256::new();
    let mut part = |s: &str| {
        hash.update(s.as_bytes());
        hash.update([0u8]);
    };
    part(&config.base_dn.to_ascii_lowercase());
    part(&config.filter);
    for (attribute, value) in &config.matches {
        part(&attribute.to_ascii_lowercase());
        part(value);
    }
    part(&config.anchor.to_ascii_lowercase());
    let mut attributes: Vec<String> = attributes.iter().map(|a| a.to_ascii_lowercase()).collect();
    attributes.sort();
    for a in &attributes {
        part(a);
    }
    hash.finalize()[..12]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The cursor for a read that started at `server`'s current USN.
pub fn after(server: &Server, scope: &str) -> Cursor {
    let stored = Stored::Usn {
        server: server.name.clone(),
        invocation_id: server.invocation_id.clone(),
        usn: server.usn,
        scope: scope.to_owned(),
    };
    Cursor(serde_json::to_string(&stored).unwrap_or_default())
}

/// The cursor for a read whose DirSync search ended with `cookie`.
pub fn after_dirsync(cookie: &[u8], scope: &str) -> Cursor {
    let stored = Stored::Dirsync {
        cookie: cookie.iter().map(|b| format!("{b:02x}")).collect(),
        scope: scope.to_owned(),
    };
    Cursor(serde_json::to_string(&stored).unwrap_or_default())
}

/// The DirSync cookie a delta starts from, or why the stored cursor cannot start one.
pub fn start_dirsync(cursor: &Cursor, scope: &str) -> Result<Vec<u8>, &'static str> {
    let Ok(Stored::Dirsync { cookie, scope: was }) = serde_json::from_str::<Stored>(&cursor.0)
    else {
        return Err("the stored cursor is not a DirSync cursor");
    };
    if was != scope {
        return Err("the base DN, filter, match, anchor or mapped attributes changed");
    }
    let bytes: Option<Vec<u8>> = (0..cookie.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(cookie.get(i..i + 2)?, 16).ok())
        .collect();
    bytes
        .filter(|b| !b.is_empty())
        .ok_or("the stored DirSync cookie is damaged")
}

/// The USN a delta reads above, or why the stored cursor cannot start one.
pub fn start(cursor: &Cursor, server: &Server, scope: &str) -> Result<u64, &'static str> {
    let Ok(Stored::Usn {
        server: name,
        invocation_id,
        usn,
        scope: was,
    }) = serde_json::from_str::<Stored>(&cursor.0)
    else {
        return Err("the stored cursor is not an AD USN cursor");
    };
    if !name.eq_ignore_ascii_case(&server.name) {
        Err("the stored cursor is from another domain controller")
    } else if invocation_id != server.invocation_id {
        Err("the domain controller's database was restored or replaced (new invocationId)")
    } else if was != scope {
        Err("the base DN, filter, match, anchor or mapped attributes changed")
    } else if usn > server.usn {
        Err("the domain controller's USN is below the stored cursor")
    } else {
        Ok(usn)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server() -> Server {
        Server {
            name: "CN=NTDS Settings,CN=DC1,CN=Servers,CN=Site,CN=Sites,CN=Configuration,DC=x"
                .to_owned(),
            invocation_id: Some("0f3c2b1a-0000-4000-8000-000000000001".to_owned()),
            usn: 5000,
        }
    }

    #[test]
    fn a_cursor_starts_a_delta_only_on_the_same_server_and_scope() {
        let config: LdapConfig =
            toml::from_str("url = \"ldap://dc\"\nbind_dn = \"CN=svc\"\nbase_dn = \"DC=x\"")
                .expect("config");
        let attrs = ["givenname".to_owned(), "sn".to_owned()];
        let scope = scope(&config, &attrs);
        let cursor = after(&server(), &scope);
        let mut later = server();
        later.usn = 5100;
        assert_eq!(start(&cursor, &later, &scope), Ok(5000));

        let mut other = later.clone();
        other.name = other.name.replace("DC1", "DC2");
        assert!(start(&cursor, &other, &scope).is_err());
        let mut restored = later.clone();
        restored.invocation_id = Some("another".to_owned());
        assert!(start(&cursor, &restored, &scope).is_err());
        let wider = super::scope(&config, &["givenname".to_owned()]);
        assert!(start(&cursor, &later, &wider).is_err());
        let mut behind = later.clone();
        behind.usn = 10;
        assert!(start(&cursor, &behind, &scope).is_err());
        assert!(start(&Cursor("{\"id\":3}".to_owned()), &later, &scope).is_err());
    }

    #[test]
    fn a_dirsync_cursor_keeps_its_cookie_for_the_same_scope() {
        let cursor = after_dirsync(&[0, 1, 0xfe], "s1");
        assert_eq!(start_dirsync(&cursor, "s1"), Ok(vec![0, 1, 0xfe]));
        assert!(start_dirsync(&cursor, "s2").is_err());
        assert!(start(&cursor, &server(), "s1").is_err());
        assert!(start_dirsync(&after(&server(), "s1"), "s1").is_err());
    }
}

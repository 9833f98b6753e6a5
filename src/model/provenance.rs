//! Where a run's rows came from: the channel, what came in by it (a file, a source, a SCIM
//! request, the run a revert restores), who sent it, and per line the source entry a row was
//! read from. The channel builds it; the run and its journal keep it, so every change in the
//! directory's history says where it came from.

use std::collections::BTreeMap;

/// The door a run's rows came in by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Channel {
    /// A file given to `apply` on the command line.
    File,
    /// A file an administrator e-mailed.
    Email,
    /// A directory or database sync (`[[source]]`).
    Sync,
    /// A SCIM write to `serve`.
    Scim,
    /// A revert of an earlier run.
    Revert,
}

impl Channel {
    /// Every channel.
    pub const ALL: [Channel; 5] = [
        Channel::File,
        Channel::Email,
        Channel::Sync,
        Channel::Scim,
        Channel::Revert,
    ];

    /// The name stored and printed.
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::File => "file",
            Channel::Email => "e-mail",
            Channel::Sync => "sync",
            Channel::Scim => "scim",
            Channel::Revert => "revert",
        }
    }

    /// The channel a stored name gives, if it is one.
    pub fn parse(name: &str) -> Option<Channel> {
        Channel::ALL.into_iter().find(|c| c.as_str() == name)
    }
}

/// Who a run's rows came from, as the channel says it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Provenance {
    pub channel: Channel,
    /// What came in: the file (as given to `apply`, or the attachment's name), the sync
    /// source's name, the SCIM request (`PATCH /v2/Users/ID`), or the run a revert restores.
    pub name: String,
    /// Who sent it: the administrator's address (e-mail), the SCIM client (from `serve`'s
    /// credentials), the operator of a revert when known.
    pub sender: Option<String>,
    /// The source entry each line was read from, by line: the entry's DN or the SQL row's
    /// key for a sync. Empty for the other channels (their line is the file's).
    pub entries: BTreeMap<u64, String>,
}

impl Provenance {
    /// A file given on the command line, by its path.
    pub fn file(path: impl Into<String>) -> Provenance {
        Provenance::new(Channel::File, path.into(), None)
    }

    /// A file an administrator e-mailed.
    pub fn email(sender: impl Into<String>, file_name: impl Into<String>) -> Provenance {
        Provenance::new(Channel::Email, file_name.into(), Some(sender.into()))
    }

    /// A sync of the named source; `entries` gives each line's entry (DN or SQL key).
    pub fn sync(source: impl Into<String>, entries: BTreeMap<u64, String>) -> Provenance {
        Provenance {
            entries,
            ..Provenance::new(Channel::Sync, source.into(), None)
        }
    }

    /// A SCIM write: the request (`POST /v2/Users`) and the client that made it.
    pub fn scim(request: impl Into<String>, client: impl Into<String>) -> Provenance {
        Provenance::new(Channel::Scim, request.into(), Some(client.into()))
    }

    /// A revert of `run`, by the operator when known.
    pub fn revert(run: impl Into<String>, operator: Option<String>) -> Provenance {
        Provenance::new(Channel::Revert, run.into(), operator)
    }

    fn new(channel: Channel, name: String, sender: Option<String>) -> Provenance {
        Provenance {
            channel,
            name,
            sender,
            entries: BTreeMap::new(),
        }
    }

    /// The run's source in one phrase, as `runs` lists it and as a newer run of the same
    /// source finds the held runs it supersedes: the path, `e-mail from X (FILE)`,
    /// `sync NAME`, `SCIM POST /v2/Users by CLIENT`, `revert of RUN`.
    pub fn describe(&self) -> String {
        let by = |s: &Option<String>| s.as_deref().map(|s| format!(" by {s}")).unwrap_or_default();
        match self.channel {
            Channel::File => self.name.clone(),
            Channel::Email => format!(
                "e-mail from {} ({})",
                self.sender.as_deref().unwrap_or("?"),
                self.name
            ),
            Channel::Sync => format!("sync {}", self.name),
            Channel::Scim => format!("SCIM {}{}", self.name, by(&self.sender)),
            Channel::Revert => format!("revert of {}{}", self.name, by(&self.sender)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_channel_describes_itself_as_runs_always_listed_it() {
        assert_eq!(Provenance::file("a/b.csv").describe(), "a/b.csv");
        assert_eq!(
            Provenance::email("x@rxx.nhs.uk", "staff.csv").describe(),
            "e-mail from x@rxx.nhs.uk (staff.csv)"
        );
        assert_eq!(
            Provenance::sync("rxx-ad", BTreeMap::new()).describe(),
            "sync rxx-ad"
        );
        assert_eq!(
            Provenance::scim("POST /v2/Users", "the fixed token").describe(),
            "SCIM POST /v2/Users by the fixed token"
        );
        assert_eq!(
            Provenance::revert("r1", Some("ops".to_owned())).describe(),
            "revert of r1 by ops"
        );
        for c in Channel::ALL {
            assert_eq!(Channel::parse(c.as_str()), Some(c));
        }
        assert_eq!(Channel::parse("fax"), None);
    }
}

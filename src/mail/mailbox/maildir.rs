//! A local maildir: `<root>/inbox/{new,cur,tmp}`; handled messages are renamed into
//! `<root>/Processed/cur` or `<root>/Rejected/cur`.
//!
//! In: the maildir root. Out: the inbox's messages (from `new` and `cur`, ordered by file
//! name, which maildir writers start with the delivery time), keyed `maildir:<file name>`.
//! Filing is a rename within one file system: atomic.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::{Listed, Mailbox, MailboxError};
use crate::store::mail::Folder;

pub struct Maildir {
    root: PathBuf,
}

impl Maildir {
    pub fn new(root: &Path) -> Maildir {
        Maildir {
            root: root.to_owned(),
        }
    }

    fn inbox(&self) -> PathBuf {
        self.root.join("inbox")
    }

    fn folder(&self, folder: Folder) -> PathBuf {
        self.root.join(match folder {
            Folder::Processed => "Processed",
            Folder::Rejected => "Rejected",
        })
    }

    fn io(path: &Path) -> impl Fn(std::io::Error) -> MailboxError + '_ {
        move |source| MailboxError::Maildir {
            path: path.display().to_string(),
            source,
        }
    }

    /// Creates the inbox and folders, each with `new`, `cur` and `tmp`.
    pub fn create(&self) -> Result<(), MailboxError> {
        for dir in [
            self.inbox(),
            self.folder(Folder::Processed),
            self.folder(Folder::Rejected),
        ] {
            for sub in ["new", "cur", "tmp"] {
                let d = dir.join(sub);
                std::fs::create_dir_all(&d).map_err(Self::io(&d))?;
            }
        }
        Ok(())
    }

    fn find(&self, name: &str) -> Option<PathBuf> {
        ["new", "cur"]
            .iter()
            .map(|sub| self.inbox().join(sub).join(name))
            .find(|p| p.is_file())
    }
}

impl Mailbox for Maildir {
    async fn list(&mut self) -> Result<Vec<Listed>, MailboxError> {
        self.create()?;
        let mut names = Vec::new();
        for sub in ["new", "cur"] {
            let dir = self.inbox().join(sub);
            for entry in std::fs::read_dir(&dir).map_err(Self::io(&dir))? {
                let entry = entry.map_err(Self::io(&dir))?;
                let name = entry.file_name().to_string_lossy().into_owned();
                // The type of the entry itself, not of what a link points at.
                let kind = entry.file_type().map_err(Self::io(&dir))?;
                if name.starts_with('.') {
                    continue;
                }
                if kind.is_symlink() {
                    // A link could make us read any file the service can: it is moved aside
                    // unread (the rename moves the link, not its target).
                    let aside = self.folder(Folder::Rejected).join("cur").join(&name);
                    std::fs::rename(entry.path(), &aside).map_err(Self::io(&aside))?;
                    tracing::warn!(entry = %entry.path().display(),
                        "maildir entry is a symbolic link; moved to Rejected unread");
                    continue;
                }
                if kind.is_file() {
                    let size = entry.metadata().map(|m| m.len()).unwrap_or(0);
                    names.push((name, size));
                }
            }
        }
        names.sort();
        Ok(names
            .into_iter()
            .map(|(name, size)| Listed {
                key: format!("maildir:{name}"),
                size,
            })
            .collect())
    }

    async fn read(&mut self, key: &str) -> Result<Option<Vec<u8>>, MailboxError> {
        let name = key.strip_prefix("maildir:").unwrap_or(key);
        if name.contains('/') || name.starts_with('.') {
            return Ok(None);
        }
        for sub in ["new", "cur"] {
            let path = self.inbox().join(sub).join(name);
            let kind = match std::fs::symlink_metadata(&path) {
                Ok(m) => m.file_type(),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(Self::io(&path)(e)),
            };
            if !kind.is_file() {
                return Ok(None);
            }
            match std::fs::read(&path) {
                Ok(raw) => return Ok(Some(raw)),
                // Filed by another process since the listing.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(Self::io(&path)(e)),
            }
        }
        Ok(None)
    }

    async fn file(&mut self, key: &str, folder: Folder) -> Result<(), MailboxError> {
        let name = key.strip_prefix("maildir:").unwrap_or(key);
        let from = self
            .find(name)
            .ok_or_else(|| MailboxError::NoSuchMessage(key.to_owned()))?;
        let dir = self.folder(folder).join("cur");
        std::fs::create_dir_all(&dir).map_err(Self::io(&dir))?;
        let to = dir.join(name);
        std::fs::rename(&from, &to).map_err(Self::io(&from))
    }

    async fn wait(&mut self, max: Duration) -> Result<(), MailboxError> {
        tokio::time::sleep(max).await;
        Ok(())
    }

    async fn check(&mut self) -> Result<String, MailboxError> {
        self.create()?;
        let n = self.list().await?.len();
        Ok(format!(
            "maildir {}: {n} message(s) waiting",
            self.inbox().display()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn lists_new_and_cur_and_files_by_rename() {
        let dir = tempfile::tempdir().unwrap();
        let mut m = Maildir::new(dir.path());
        m.create().unwrap();
        std::fs::write(dir.path().join("inbox/new/2.b"), b"two").unwrap();
        std::fs::write(dir.path().join("inbox/cur/1.a:2,S"), b"one").unwrap();
        let got = m.fetch().await.unwrap();
        let keys: Vec<&str> = got.iter().map(|f| f.key.as_str()).collect();
        assert_eq!(keys, ["maildir:1.a:2,S", "maildir:2.b"]);
        m.file("maildir:2.b", Folder::Rejected).await.unwrap();
        assert!(dir.path().join("Rejected/cur/2.b").is_file());
        assert_eq!(m.fetch().await.unwrap().len(), 1);
        #[cfg(unix)]
        {
            let secret = dir.path().join("secret.txt");
            std::fs::write(&secret, b"not mail").unwrap();
            std::os::unix::fs::symlink(&secret, dir.path().join("inbox/new/3.link")).unwrap();
            let keys: Vec<String> = m.list().await.unwrap().into_iter().map(|l| l.key).collect();
            assert_eq!(keys, ["maildir:1.a:2,S"], "a link is not listed");
            assert!(dir.path().join("Rejected/cur/3.link").is_symlink());
            assert!(secret.is_file(), "the link's target is left alone");
        }
        assert!(matches!(
            m.file("maildir:2.b", Folder::Processed).await,
            Err(MailboxError::NoSuchMessage(_))
        ));
    }
}

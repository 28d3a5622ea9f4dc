//! The lock file beside a config (`sentinela.yaml` → `sentinela.lock`): the manifest digest
//! each OCI tag of its monitors resolved to.
//!
//! `check` and `run` write it when a tag is resolved that it does not hold (creating the file
//! if need be), and refuse to start when a tag now resolves to another digest than the one it
//! holds: on a fresh host whose registry's tag was moved, or after `sentinela pull` fetched
//! the tag again. With `--locked` the file is never changed: a tag it does not hold is refused
//! too. To accept a moved tag, delete its line (or the file).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

use super::{OciReference, is_sha256_digest};

/// The largest lock file read.
const MAX_LOCK_BYTES: u64 = 4 << 20;

/// A config's lock file, as read.
#[derive(Debug)]
pub struct LockFile {
    path: PathBuf,
    existed: bool,
    pins: BTreeMap<String, String>,
    changed: bool,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Contents {
    version: u32,
    #[serde(default)]
    plugins: BTreeMap<String, String>,
}

const HEADER: &str = "\
# What each OCI tag of this config's monitors resolved to, written by sentinela.\n\
# A start refuses a tag that now resolves to another digest; delete its line to accept it.\n";

impl LockFile {
    /// The lock file of the config at `config`: beside it, `<stem>.lock`.
    pub fn path_for(config: &Path) -> PathBuf {
        config.with_extension("lock")
    }

    /// Reads the lock file of `config` (empty when there is none).
    pub fn read(config: &Path) -> Result<LockFile> {
        use std::io::Read;
        let path = Self::path_for(config);
        let mut text = String::new();
        match std::fs::File::open(&path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(LockFile {
                    path,
                    existed: false,
                    pins: BTreeMap::new(),
                    changed: false,
                });
            }
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
            Ok(file) => {
                file.take(MAX_LOCK_BYTES)
                    .read_to_string(&mut text)
                    .with_context(|| format!("reading {}", path.display()))?;
            }
        }
        let contents: Contents = serde_yaml::from_str(&text)
            .with_context(|| format!("{}: not a lock file", path.display()))?;
        if contents.version != 1 {
            bail!(
                "{}: version {} is not one this sentinela reads (1)",
                path.display(),
                contents.version
            );
        }
        for (reference, digest) in &contents.plugins {
            if !is_sha256_digest(digest) {
                bail!(
                    "{}: plugins.{}: {} is not a sha256:<64 hex digits> digest",
                    path.display(),
                    crate::guest_text::shortened(reference, 200),
                    crate::guest_text::shortened(digest, 100)
                );
            }
        }
        Ok(LockFile {
            path,
            existed: true,
            pins: contents.plugins,
            changed: false,
        })
    }

    /// The lock file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Checks that the tag `reference` resolved to `digest`: refused when the lock pins
    /// another digest, or (`locked`) pins none; otherwise recorded.
    pub fn check(&mut self, reference: &OciReference, digest: &str, locked: bool) -> Result<()> {
        let key = reference.to_string();
        match self.pins.get(&key) {
            Some(pinned) if pinned == digest => Ok(()),
            Some(pinned) => bail!(
                "{reference} now resolves to {digest}, but {} pins {pinned}: the tag was moved. \
                 Refusing to start; delete its line in the lock file to accept the new digest",
                self.path.display()
            ),
            None if locked && self.existed => bail!(
                "{reference} is not in {} and --locked forbids adding it (it resolves to \
                 {digest}); run once without --locked to record it",
                self.path.display()
            ),
            None => {
                self.pins.insert(key, digest.to_owned());
                self.changed = true;
                Ok(())
            }
        }
    }

    /// Writes the file if a tag was recorded. Returns whether it did.
    pub fn write_if_changed(&mut self) -> Result<bool> {
        if !self.changed {
            return Ok(false);
        }
        let contents = Contents {
            version: 1,
            plugins: self.pins.clone(),
        };
        let text = format!("{HEADER}{}", serde_yaml::to_string(&contents)?);
        let temporary = self.path.with_extension("lock.tmp");
        std::fs::write(&temporary, text)
            .and_then(|()| std::fs::rename(&temporary, &self.path))
            .with_context(|| format!("writing {}", self.path.display()))?;
        self.changed = false;
        self.existed = true;
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_moved_tag_is_refused_and_a_new_one_recorded_unless_locked() {
        let dir = std::env::temp_dir().join(format!("sentinela-lock-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let config = dir.join("sentinela.yaml");
        let reference = OciReference::parse("oci://127.0.0.1:1/team/m:1").unwrap();
        let one = format!("sha256:{}", "1".repeat(64));
        let two = format!("sha256:{}", "2".repeat(64));

        let mut lock = LockFile::read(&config).unwrap();
        lock.check(&reference, &one, true).unwrap();
        assert!(lock.write_if_changed().unwrap());
        assert_eq!(lock.path(), dir.join("sentinela.lock"));

        let mut lock = LockFile::read(&config).unwrap();
        lock.check(&reference, &one, true).unwrap();
        assert!(!lock.write_if_changed().unwrap());
        let error = format!("{:#}", lock.check(&reference, &two, false).unwrap_err());
        assert!(error.contains("oci://127.0.0.1:1/team/m:1") && error.contains("moved"));

        let other = OciReference::parse("oci://127.0.0.1:1/team/m:2").unwrap();
        assert!(lock.check(&other, &two, true).is_err());
        lock.check(&other, &two, false).unwrap();
        assert!(lock.write_if_changed().unwrap());

        std::fs::write(LockFile::path_for(&config), "version: 1\nplugins: {a: b}\n").unwrap();
        assert!(LockFile::read(&config).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

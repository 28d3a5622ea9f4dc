//! The local content-addressed store of pulled plugins, `oci/` in the cache directory:
//!
//! - `blobs/sha256/<hex>`: a component (or an artifact's config), named by its SHA-256;
//! - `refs/<sha256 of the reference>.json`: what a reference resolved to (manifest, layer and
//!   config digests), so that a start with everything pulled needs no registry.
//!
//! Its directories and files are private to the user, as the compile cache's are
//! ([`crate::compile_cache::private_files`]): a blob or record is written to a new 0600 file
//! and renamed into place, so a reader sees it whole or not at all, and a record is read only
//! from a regular file of this user that nobody else may write. A blob's hash is checked again
//! when it is loaded (it is the plugin's `sha256:` pin), so a blob changed on disk is refused,
//! not run.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

use super::{OciReference, is_sha256_digest, sha256_digest};
use crate::compile_cache::private_files::{create_private_dir, read_entry_file, write_atomically};

/// The store under one directory.
#[derive(Debug, Clone)]
pub struct PluginStore {
    dir: PathBuf,
}

/// What a reference resolved to when it was pulled.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Record {
    /// The reference as written (`oci://…`), for a reader of the file.
    pub reference: String,
    /// The manifest's digest: what the reference resolved to.
    pub manifest_digest: String,
    /// The component's digest: its blob's name.
    pub layer_digest: String,
    /// The artifact's config blob, kept beside the layer.
    pub config_digest: String,
}

impl PluginStore {
    /// The store in `cache_dir`'s `oci/` (see [`crate::compile_cache::CompileCache::locate`]).
    pub fn in_cache_dir(cache_dir: &Path) -> PluginStore {
        PluginStore {
            dir: cache_dir.join("oci"),
        }
    }

    /// The store's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Where the blob with `digest` is (whether or not it is there).
    pub fn blob_path(&self, digest: &str) -> Result<PathBuf> {
        if !is_sha256_digest(digest) {
            bail!(
                "not a sha256 digest: {}",
                crate::guest_text::shortened(digest, 80)
            );
        }
        Ok(self.dir.join("blobs").join("sha256").join(&digest[7..]))
    }

    /// Whether the blob with `digest` is held.
    pub fn has_blob(&self, digest: &str) -> bool {
        self.blob_path(digest).is_ok_and(|path| path.is_file())
    }

    /// Reads the blob with `digest`, at most `max_bytes`, and checks its hash.
    pub fn read_blob(&self, digest: &str, max_bytes: u64) -> Result<Vec<u8>> {
        use std::io::Read;
        let path = self.blob_path(digest)?;
        let mut bytes = Vec::new();
        std::fs::File::open(&path)
            .and_then(|file| file.take(max_bytes + 1).read_to_end(&mut bytes))
            .with_context(|| format!("reading {}", path.display()))?;
        if bytes.len() as u64 > max_bytes {
            bail!("{} is larger than {max_bytes} bytes", path.display());
        }
        if sha256_digest(&bytes) != digest {
            bail!(
                "{} does not hash to its name: the store was changed on disk",
                path.display()
            );
        }
        Ok(bytes)
    }

    /// Keeps `bytes` as the blob `digest` (their SHA-256, checked). Returns its path.
    pub fn put_blob(&self, digest: &str, bytes: &[u8]) -> Result<PathBuf> {
        let path = self.blob_path(digest)?;
        let actual = sha256_digest(bytes);
        if actual != digest {
            bail!("content hashes to {actual}, not {digest}");
        }
        write_into_place(&path, bytes)?;
        Ok(path)
    }

    /// What `reference` resolved to when it was last pulled into this store, if it was and
    /// its blobs are still here. A record that cannot be read counts as absent (it is pulled
    /// again).
    pub fn record(&self, reference: &OciReference) -> Option<Record> {
        let text = read_entry_file(&self.record_path(reference)).ok()??;
        let record: Record = serde_json::from_slice(&text).ok()?;
        let valid = record.reference == reference.to_string()
            && [
                &record.manifest_digest,
                &record.layer_digest,
                &record.config_digest,
            ]
            .iter()
            .all(|d| is_sha256_digest(d))
            && reference
                .digest()
                .is_none_or(|pinned| pinned == record.manifest_digest)
            && self.has_blob(&record.layer_digest);
        valid.then_some(record)
    }

    /// Records what `reference` resolved to.
    pub fn put_record(&self, reference: &OciReference, record: &Record) -> Result<()> {
        let text = serde_json::to_vec(record)?;
        write_into_place(&self.record_path(reference), &text)
    }

    fn record_path(&self, reference: &OciReference) -> PathBuf {
        let key = sha256_digest(reference.to_string().as_bytes());
        self.dir.join("refs").join(format!("{}.json", &key[7..]))
    }
}

/// Writes `bytes` to a new private file renamed to `path`, creating its directory private.
fn write_into_place(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path.parent().context("a store path has a parent")?;
    create_private_dir(dir).with_context(|| format!("creating {}", dir.display()))?;
    write_atomically(path, bytes)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blobs_are_kept_by_hash_and_checked_when_read() {
        let dir = std::env::temp_dir().join(format!("sentinela-store-{}", std::process::id()));
        let store = PluginStore::in_cache_dir(&dir);
        let digest = sha256_digest(b"component");
        assert!(store.put_blob(&digest, b"not the component").is_err());
        let path = store.put_blob(&digest, b"component").unwrap();
        assert_eq!(store.read_blob(&digest, 100).unwrap(), b"component");
        assert!(store.read_blob(&digest, 3).is_err());
        std::fs::write(&path, b"tampered!").unwrap();
        let error = format!("{:#}", store.read_blob(&digest, 100).unwrap_err());
        assert!(error.contains("changed on disk"), "{error}");

        let reference = OciReference::parse("oci://127.0.0.1:1/team/m:1").unwrap();
        assert!(store.record(&reference).is_none());
        let record = Record {
            reference: reference.to_string(),
            manifest_digest: sha256_digest(b"manifest"),
            layer_digest: digest.clone(),
            config_digest: sha256_digest(b"{}"),
        };
        store.put_record(&reference, &record).unwrap();
        assert_eq!(store.record(&reference), Some(record));
        let other = OciReference::parse("oci://127.0.0.1:1/team/m:2").unwrap();
        assert!(store.record(&other).is_none());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

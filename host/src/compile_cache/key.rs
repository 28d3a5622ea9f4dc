//! The compile cache's key: 32 random bytes (mode 0600) that every entry and index record is
//! authenticated with (HMAC-SHA256), created once, race-free, by whichever process comes first.

use std::fs::{self, File};
use std::io::{Read, Write};
use std::path::Path;

use anyhow::{Context, Result, anyhow, ensure};
use hmac::Mac;

use super::private_files::{new_private_file, open_entry_file, read_small, write_private_file};
use super::{ARTIFACT_DOMAIN, CHECK_DOMAIN, HmacSha256, INDEX_MAGIC, KEY_LEN, MAC_LEN};

/// The cache's MAC key, ready to authenticate each kind of file.
pub(super) struct Key {
    /// HMAC-SHA256 keyed with the key and nothing hashed yet; cloned for each MAC.
    keyed: HmacSha256,
}

impl Key {
    fn new(bytes: &[u8; KEY_LEN]) -> Result<Key> {
        let keyed = <HmacSha256 as Mac>::new_from_slice(bytes)
            .map_err(|_| anyhow!("HMAC-SHA256 refused a {KEY_LEN}-byte key"))?;
        Ok(Key { keyed })
    }

    /// Reads the key at `path`, else creates it. `Err`: a key that cannot be trusted or
    /// created, which bypasses the cache.
    pub(super) fn load_or_create(path: &Path) -> Result<Key> {
        if let Some(key) = Self::read(path)? {
            return Ok(key);
        }
        let mut bytes = [0; KEY_LEN];
        random_bytes(&mut bytes).context("cannot read random bytes for the compile cache key")?;
        // Written in full under a temporary name, then linked into place: `link`, unlike
        // `rename`, fails when the key exists, so of two processes racing here the loser
        // reads the winner's complete key rather than replacing it.
        let (tmp, _) = write_private_file(path, &bytes)?;
        let linked = fs::hard_link(&tmp, path);
        let _ = fs::remove_file(&tmp);
        match linked {
            Ok(()) => Key::new(&bytes),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Self::read(path)?
                .with_context(|| format!("{} vanished after it was created", path.display())),
            // A filesystem without hard links: create the key in place, exclusively. A process
            // that reads it before the 32 bytes are written bypasses the cache once.
            Err(_) => {
                let mut file = new_private_file(path)
                    .with_context(|| format!("cannot create {}", path.display()))?;
                file.write_all(&bytes)
                    .and_then(|()| file.sync_all())
                    .with_context(|| format!("cannot write {}", path.display()))?;
                Key::new(&bytes)
            }
        }
    }

    /// `Ok(None)`: no key yet.
    fn read(path: &Path) -> Result<Option<Key>> {
        let Some((file, meta)) = open_entry_file(path)? else {
            return Ok(None);
        };
        #[cfg(unix)]
        {
            use std::os::unix::fs::MetadataExt;
            ensure!(
                meta.mode() & 0o077 == 0,
                "{} is readable or writable by group or others (mode {:04o})",
                path.display(),
                meta.mode() & 0o7777
            );
        }
        #[cfg(not(unix))]
        let _ = meta;
        let bytes = read_small(file, path)?;
        let bytes: &[u8; KEY_LEN] = bytes.as_slice().try_into().map_err(|_| {
            anyhow!(
                "{} is {} bytes, not {KEY_LEN} (delete it: a new key is made)",
                path.display(),
                bytes.len()
            )
        })?;
        Key::new(bytes).map(Some)
    }

    pub(super) fn artifact_mac(&self) -> HmacSha256 {
        self.keyed.clone().chain_update(ARTIFACT_DOMAIN)
    }

    pub(super) fn check_mac(&self, entry_name: &str) -> HmacSha256 {
        self.keyed
            .clone()
            .chain_update(CHECK_DOMAIN)
            .chain_update(entry_name)
            .chain_update(b"\0")
    }

    pub(super) fn index_verifier(&self, canonical: &[u8], body: &str) -> HmacSha256 {
        self.keyed
            .clone()
            .chain_update(INDEX_MAGIC)
            .chain_update(b"\0")
            .chain_update(canonical)
            .chain_update(b"\0")
            .chain_update(body)
    }

    pub(super) fn index_mac(&self, canonical: &[u8], body: &str) -> [u8; MAC_LEN] {
        self.index_verifier(canonical, body)
            .finalize()
            .into_bytes()
            .into()
    }
}

#[cfg(unix)]
fn random_bytes(bytes: &mut [u8; KEY_LEN]) -> std::io::Result<()> {
    File::open("/dev/urandom")?.read_exact(bytes)
}

/// No `/dev/urandom`: std seeds each thread's `RandomState` keys (128 bits) from the system's
/// random source; SHA-256 spreads them over the key.
#[cfg(not(unix))]
fn random_bytes(bytes: &mut [u8; KEY_LEN]) -> std::io::Result<()> {
    use std::hash::BuildHasher;
    let mut sha = Sha256::new();
    for i in 0..4u8 {
        let state = std::collections::hash_map::RandomState::new();
        sha.update(state.hash_one(i).to_le_bytes());
    }
    bytes.copy_from_slice(&sha.finalize());
    Ok(())
}

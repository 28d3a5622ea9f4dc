//! On-disk cache of compiled plugin code, so a plugin is compiled by Cranelift once, not at
//! every start.
//!
//! An entry is named by the SHA-256 of the wasm bytes and of the engine's compatibility hash
//! (wasmtime version, target and every setting that affects code), so a new wasm file or a
//! different engine never finds a stale entry. An entry is two files: `KEY.cwasm`, the artifact
//! exactly as `Component::serialize` wrote it, which wasmtime maps into memory instead of
//! copying (a 35 MB Python artifact loads in a few ms), and `KEY.check`, its length and CRC-32,
//! checked before the artifact is handed to wasmtime's (unsafe) deserializer: a corrupt or
//! truncated artifact is recompiled, never loaded. Both are written to temporary files and
//! renamed into place, the artifact first, so another process sees either no entry or an
//! artifact its check file describes; a mismatch only costs a recompile.
//!
//! Files are hashed and checked as they are read, in chunks: a warm start never holds a whole
//! plugin or artifact in memory. A plugin's hash is also remembered in `index/`, by its path
//! and its stat (device, inode, size, mtime, ctime), so a warm start does not hash an
//! unchanged 18 MB plugin again; any write to the file changes its ctime (git's index works
//! the same way).
//!
//! The check protects against corruption, not against an attacker who can write to the
//! cache directory: like wasmtime's own cache, the directory must be writable only by the
//! user the host runs as.

use std::fs::{self, File};
use std::hash::{Hash, Hasher};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result};
use sha2::{Digest, Sha256};
use wasmtime::component::Component;

/// Starts every check file; a new format gets a new magic, so old entries read as invalid.
const MAGIC: &[u8; 16] = b"sentinela-cwasm2";
const CHECK_LEN: usize = MAGIC.len() + 8 + 4;
const CHUNK: usize = 1 << 20;

/// Where compiled code is kept; `None` disables caching.
#[derive(Debug, Clone)]
pub struct CompileCache {
    dir: Option<PathBuf>,
}

impl CompileCache {
    /// The environment variable that overrides the cache directory.
    pub const ENV: &'static str = "SENTINELA_CACHE_DIR";

    /// `SENTINELA_CACHE_DIR`, else the config's `cache_dir`, else `$XDG_CACHE_HOME/sentinela`,
    /// else `$HOME/.cache/sentinela`.
    pub fn locate(configured: Option<&Path>) -> CompileCache {
        let env = |name: &str| {
            std::env::var_os(name)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        };
        let dir = env(Self::ENV)
            .or_else(|| configured.map(Path::to_path_buf))
            .or_else(|| env("XDG_CACHE_HOME").map(|d| d.join("sentinela")))
            .or_else(|| env("HOME").map(|d| d.join(".cache").join("sentinela")));
        CompileCache { dir }
    }

    pub fn disabled() -> CompileCache {
        CompileCache { dir: None }
    }

    pub fn dir(&self) -> Option<&Path> {
        self.dir.as_deref()
    }

    /// The compiled component for the plugin at `path`, from the cache when a valid entry
    /// exists. `label` names the plugin in log events.
    pub fn load_or_compile(
        &self,
        engine: &wasmtime::Engine,
        path: &Path,
        label: &str,
    ) -> Result<Component> {
        let Some(dir) = &self.dir else {
            return compile(engine, path, label);
        };
        let started = Instant::now();
        let key = format!(
            "{}-{}",
            wasm_hash(dir, path)?,
            &hex(&engine_hash(engine))[..16]
        );
        let entry = Entry::new(dir, &key);
        match entry.load(engine) {
            Ok(Some(component)) => {
                tracing::info!(
                    plugin = label,
                    cache = "hit",
                    elapsed_ms = started.elapsed().as_secs_f64() * 1e3,
                    "loaded compiled plugin from the compile cache"
                );
                return Ok(component);
            }
            Ok(None) => {}
            Err(reason) => tracing::warn!(
                plugin = label,
                cache = "invalid",
                entry = %entry.artifact.display(),
                "ignoring compile cache entry ({reason:#}); recompiling"
            ),
        }
        let component = compile(engine, path, label)?;
        if let Err(e) = entry.store(&component.serialize()?) {
            tracing::warn!(plugin = label, dir = %dir.display(), "cannot write compile cache entry: {e:#}");
        }
        Ok(component)
    }
}

fn compile(engine: &wasmtime::Engine, path: &Path, label: &str) -> Result<Component> {
    let wasm = fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let started = Instant::now();
    let component = Component::new(engine, &wasm)?;
    tracing::info!(
        plugin = label,
        cache = "miss",
        elapsed_ms = started.elapsed().as_secs_f64() * 1e3,
        "compiled plugin"
    );
    Ok(component)
}

fn engine_hash(engine: &wasmtime::Engine) -> Vec<u8> {
    let mut hasher = Sha256Hasher(Sha256::new());
    engine.precompile_compatibility_hash().hash(&mut hasher);
    hasher.0.finalize().to_vec()
}

/// The SHA-256 of the plugin file, in hex: from the index when the file's stat is the one
/// recorded with it, else computed (and recorded, best effort).
fn wasm_hash(dir: &Path, path: &Path) -> Result<String> {
    let cannot_read = || format!("cannot read {}", path.display());
    let current_stamp = || fs::metadata(path).map(|m| file_stamp(&m));
    let before = current_stamp().with_context(cannot_read)?;
    let canonical = fs::canonicalize(path).with_context(cannot_read)?;
    let index = dir.join("index").join(hex(&Sha256::digest(
        canonical.as_os_str().as_encoded_bytes(),
    )));
    if let Some(stamp) = &before
        && let Ok(recorded) = fs::read_to_string(&index)
        && let Some((recorded_stamp, hash)) = recorded.split_once('\n')
        && recorded_stamp == stamp
        && hash.len() == 64
        && hash.bytes().all(|b| b.is_ascii_hexdigit())
    {
        return Ok(hash.to_owned());
    }
    let mut hasher = Sha256::new();
    let file = File::open(path).with_context(cannot_read)?;
    read_chunks(file, |chunk| hasher.update(chunk)).with_context(cannot_read)?;
    let hash = hex(&hasher.finalize());
    // Record it only if the file did not change while it was read.
    if let Some(stamp) = before
        && current_stamp().ok().flatten().as_ref() == Some(&stamp)
    {
        let _ = write_atomically(&index, format!("{stamp}\n{hash}").as_bytes());
    }
    Ok(hash)
}

/// What changes whenever the file's content may have: `None` where the platform cannot say.
#[cfg(unix)]
fn file_stamp(meta: &fs::Metadata) -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    Some(format!(
        "{} {} {} {}.{} {}.{}",
        meta.dev(),
        meta.ino(),
        meta.size(),
        meta.mtime(),
        meta.mtime_nsec(),
        meta.ctime(),
        meta.ctime_nsec()
    ))
}

#[cfg(not(unix))]
fn file_stamp(_meta: &fs::Metadata) -> Option<String> {
    None
}

/// One cache entry: the artifact and the file that vouches for it.
struct Entry {
    artifact: PathBuf,
    check: PathBuf,
}

impl Entry {
    fn new(dir: &Path, key: &str) -> Entry {
        Entry {
            artifact: dir.join(format!("{key}.cwasm")),
            check: dir.join(format!("{key}.check")),
        }
    }

    /// `Ok(None)`: no entry. `Err`: an entry exists but cannot be trusted.
    fn load(&self, engine: &wasmtime::Engine) -> Result<Option<Component>> {
        let check = match fs::read(&self.check) {
            Ok(check) => check,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e).context("unreadable check file"),
        };
        anyhow::ensure!(
            check.len() == CHECK_LEN && &check[..MAGIC.len()] == MAGIC,
            "not a sentinela cache entry"
        );
        let (len, crc) = check[MAGIC.len()..].split_at(8);
        let len = u64::from_le_bytes(len.try_into()?);
        let crc = u32::from_le_bytes(crc.try_into()?);
        let file = File::open(&self.artifact).context("artifact missing or unreadable")?;
        let actual_len = file.metadata()?.len();
        anyhow::ensure!(
            actual_len == len,
            "artifact is {actual_len} bytes, its check file says {len} (truncated entry)"
        );
        anyhow::ensure!(
            crc32_of(file, len).context("unreadable artifact")? == crc,
            "checksum mismatch (corrupt entry)"
        );
        // SAFETY: the file holds what `Component::serialize` wrote for an engine with this
        // compatibility hash (its length and CRC were checked above, and entries are only
        // ever replaced by renaming a complete file over them); wasmtime re-checks the version
        // and settings itself and rejects a mismatch with an error.
        let component = unsafe { Component::deserialize_file(engine, &self.artifact) }
            .map_err(|e| anyhow::anyhow!("rejected by wasmtime: {e}"))?;
        Ok(Some(component))
    }

    fn store(&self, artifact: &[u8]) -> Result<()> {
        let mut check = Vec::with_capacity(CHECK_LEN);
        check.extend_from_slice(MAGIC);
        check.extend_from_slice(&(artifact.len() as u64).to_le_bytes());
        check.extend_from_slice(&crc32fast::hash(artifact).to_le_bytes());
        write_atomically(&self.artifact, artifact)?;
        write_atomically(&self.check, &check)
    }
}

fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path.parent().context("cache entry has no directory")?;
    fs::create_dir_all(dir)?;
    let tmp = dir.join(format!(
        ".{}.{}.tmp",
        path.file_name().unwrap_or_default().to_string_lossy(),
        std::process::id()
    ));
    let mut file = File::create(&tmp)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    fs::rename(&tmp, path)?;
    Ok(())
}

/// The CRC-32 of a `len`-byte file, read through a private read-only mapping: the kernel
/// hands over the page-cache pages instead of copying 35 MB into a buffer (measured: ~10 ms
/// less per Python plugin at start).
#[cfg(unix)]
fn crc32_of(file: File, len: u64) -> std::io::Result<u32> {
    use rustix::mm::{MapFlags, ProtFlags, mmap, munmap};
    let len = usize::try_from(len).map_err(std::io::Error::other)?;
    if len == 0 {
        return Ok(crc32fast::hash(&[]));
    }
    // SAFETY: a fresh read-only private mapping of `len` bytes of a file of that length
    // (checked by the caller); it is read only here and unmapped before returning. Entries
    // are replaced by renaming a new file over them, never truncated in place, so the pages
    // stay valid while mapped.
    unsafe {
        let map = mmap(
            std::ptr::null_mut(),
            len,
            ProtFlags::READ,
            MapFlags::PRIVATE,
            &file,
            0,
        )?;
        let crc = crc32fast::hash(std::slice::from_raw_parts(map.cast::<u8>(), len));
        munmap(map, len)?;
        Ok(crc)
    }
}

#[cfg(not(unix))]
fn crc32_of(file: File, _len: u64) -> std::io::Result<u32> {
    let mut crc = crc32fast::Hasher::new();
    read_chunks(file, |chunk| crc.update(chunk))?;
    Ok(crc.finalize())
}

/// Feeds a file to `consume` in chunks of one reused buffer.
fn read_chunks(mut file: File, mut consume: impl FnMut(&[u8])) -> std::io::Result<()> {
    let mut buffer = vec![0; CHUNK];
    loop {
        match file.read(&mut buffer) {
            Ok(0) => return Ok(()),
            Ok(n) => consume(&buffer[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

struct Sha256Hasher(Sha256);

impl Hasher for Sha256Hasher {
    fn finish(&self) -> u64 {
        let digest = self.0.clone().finalize();
        u64::from_le_bytes(digest[..8].try_into().unwrap_or_default())
    }
    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

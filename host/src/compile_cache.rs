//! On-disk cache of compiled plugin code, so a plugin is compiled by Cranelift once, not at
//! every start.
//!
//! An entry is named by the SHA-256 of the wasm bytes and of the engine's compatibility hash
//! (wasmtime version, target and every setting that affects code), so a new wasm file or a
//! different engine never finds a stale entry. An entry is two files: `KEY.cwasm`, the artifact
//! exactly as `Component::serialize` wrote it, which wasmtime maps into memory instead of
//! copying (a 35 MB Python artifact loads in a few ms), and `KEY.check`, which vouches for it.
//! Both are written to temporary files and renamed into place, the artifact first, so another
//! process sees either no entry or an artifact its check file may describe; a mismatch only
//! costs a recompile.
//!
//! # Trust
//!
//! An artifact is native code: wasmtime's (unsafe) deserializer maps it and the host runs it,
//! and the host holds every AWS credential. Whoever can write an entry the host loads runs code
//! with those credentials, so an entry is loaded only when it can only have come from a host
//! running as this user:
//!
//! - The directory and its `index/` must be owned by the user the host runs as (effective uid)
//!   and writable by nobody else; the host creates them with mode 0700. When they are not, the
//!   host logs one warning naming the directory and the reason and bypasses the cache: plugins
//!   are compiled in memory, nothing is read from the directory or written to it.
//! - Every file read from it (artifact, check file, index record, key) is opened without
//!   following a symlink and must be a regular file of that user that group and others cannot
//!   write; anything else is an invalid entry. wasmtime then maps the very file that was
//!   checked (through `/proc/self/fd` on Linux), not whatever the name points to by then.
//! - Entries are authenticated with HMAC-SHA256 under a random key of this cache (`key`, 32
//!   bytes, mode 0600, never readable by others). The key is created once, under a temporary
//!   name and then linked into place (`link` never replaces a file), so processes racing to
//!   create it all end up reading the one complete key that won.
//!
//! An entry that fails any check (wrong owner or mode, a symlink, a bad MAC, a truncated
//! artifact, a key that was replaced) is logged as `cache = "invalid"`, recompiled and
//! replaced; it is never loaded. The MAC catches corrupt and truncated files as the CRC-32 it
//! replaces did, and forged ones too. What the cache cannot stop is the user itself (or root):
//! it owns the key. The directory is checked at every load, so a long-running host stops using
//! a directory that became writable by others.
//!
//! # Check file
//!
//! `KEY.check` is, in order (integers little-endian):
//!
//! | bytes | content |
//! |---|---|
//! | 16 | `MAGIC`, `sentinela-cwasm3` (a new format gets a new magic: old entries are invalid) |
//! | 8  | artifact length |
//! | 2  | stamp length *n* (0: the platform has no stamp) |
//! | *n* | the artifact's stamp, ASCII: `dev ino size mtime_s.mtime_ns ctime_s.ctime_ns` |
//! | 32 | `HMAC(key, "sentinela-cwasm3 artifact\0" ‖ artifact bytes)` |
//! | 32 | `HMAC(key, "sentinela-cwasm3 check\0" ‖ KEY ‖ "\0" ‖ every byte above)` |
//!
//! The last MAC binds the check file to its entry's name, so a valid entry of one plugin
//! copied under another plugin's name is invalid too.
//!
//! Hashing a 35 MB artifact at every start would cost more than mapping it, so the check file
//! also records the artifact's stat stamp, taken right after the authenticated bytes were
//! renamed into place. At load the check file's own MAC is verified first (~150 bytes);
//! then, when the artifact's stamp (read from the open file) is still the recorded one, it is
//! the very file whose content was authenticated, unchanged since: any write, truncation,
//! `chmod` or `chown` sets its ctime to the current time, and an unprivileged process cannot
//! set a ctime (`utimensat` sets only atime and mtime); a file put in its place has another
//! inode or, if the number was reused, a later ctime. Only then is hashing the content skipped.
//! (Only this user could write the file in the first place: the shortcut saves time, the
//! ownership checks are what keep others out.) Otherwise the artifact is MAC'd in full,
//! through a read-only mapping, and, if it matches (a copied or restored cache), the check
//! file is rewritten with the new stamp. As with git's index, damage that changes no metadata
//! (media bit rot under an unchanged stat) is left to the filesystem and to wasmtime's own
//! header checks.
//!
//! # Index
//!
//! A warm start never holds a whole plugin or artifact in memory: a plugin's hash is
//! remembered in `index/`, by its path and its stat (device, inode, size, mtime, ctime), so an
//! unchanged 18 MB plugin is neither read nor hashed again (any write to the file changes its
//! ctime; git's index works the same way), and the artifact is mapped. A miss reads the plugin
//! into memory once: those bytes are hashed, checked against the pin, compiled, and the
//! artifact is stored under their hash only, so an index hit always runs code compiled from
//! bytes with the hash it names. An index record is four lines of text: `sentinela-index2`, the stamp, the
//! SHA-256 in hex, and `HMAC(key, "sentinela-index2\0" ‖ canonical plugin path ‖ "\0" ‖ the
//! three lines above)` in hex. A forged record, or another plugin's copied over it, cannot
//! point a plugin at another plugin's entry: it is invalid, and the plugin is hashed again.

use std::fs::{self, File};
use std::hash::{Hash, Hasher};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use anyhow::{Context, Result, anyhow, bail, ensure};
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use wasmtime::component::Component;

use crate::compiler::Compiler;
use crate::engine::{Engine, Tier};

mod key;
pub(crate) mod private_files;

use key::Key;

use private_files::{
    check_private_dir, create_private_dir, open_entry_file, read_entry_file, write_atomically,
};

/// Starts every check file; a new format gets a new magic, so old entries read as invalid.
const MAGIC: &[u8; 16] = b"sentinela-cwasm3";
/// Starts every index record; also the domain of its MAC.
const INDEX_MAGIC: &str = "sentinela-index2";
/// Domains of the MACs, so one MAC can never stand for another.
const ARTIFACT_DOMAIN: &[u8] = b"sentinela-cwasm3 artifact\0";
const CHECK_DOMAIN: &[u8] = b"sentinela-cwasm3 check\0";
const KEY_LEN: usize = 32;
const MAC_LEN: usize = 32;
const CHUNK: usize = 1 << 20;

type HmacSha256 = Hmac<Sha256>;

/// Where compiled code is kept; `None` disables caching.
#[derive(Debug, Clone)]
pub struct CompileCache {
    dir: Option<PathBuf>,
    /// A cache directory shared by a fleet (`shared_cache_dir`): read on a local miss, given
    /// what this host compiles.
    shared: Option<PathBuf>,
    /// The bypass warning is logged once, not once per plugin.
    bypass_logged: Arc<AtomicBool>,
    /// The same, for the shared directory.
    shared_bypass_logged: Arc<AtomicBool>,
    /// How a plugin is compiled on a miss, under which limits.
    compiler: Compiler,
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
        CompileCache {
            dir,
            shared: None,
            bypass_logged: Arc::default(),
            shared_bypass_logged: Arc::default(),
            compiler: Compiler::default(),
        }
    }

    /// A cache that never reads or writes: every plugin is compiled in memory.
    pub fn disabled() -> CompileCache {
        CompileCache {
            dir: None,
            shared: None,
            bypass_logged: Arc::default(),
            shared_bypass_logged: Arc::default(),
            compiler: Compiler::default(),
        }
    }

    /// Compiles misses with `compiler` (by default: in this process, size cap only).
    pub fn with_compiler(mut self, compiler: Compiler) -> CompileCache {
        self.compiler = compiler;
        self
    }

    /// Also reads compiled code from `shared` (`shared_cache_dir`), a cache directory other
    /// hosts of a fleet write too, on a miss here, and writes there what this host compiles.
    /// It is trusted exactly as the local directory: private to this user, entries
    /// authenticated with its own key.
    pub fn with_shared(mut self, shared: Option<PathBuf>) -> CompileCache {
        self.shared = shared;
        self
    }

    /// The cache directory; `None` when caching is off (no location was found, or
    /// [`CompileCache::disabled`]).
    pub fn dir(&self) -> Option<&Path> {
        self.dir.as_deref()
    }

    /// Compiles with the configured compiler for `tier`; `note` ends the log message.
    fn compile(
        &self,
        engine: &Engine,
        tier: Tier,
        path: &Path,
        wasm: &[u8],
        label: &str,
        note: &str,
    ) -> Result<Component> {
        let started = Instant::now();
        let component = engine
            .for_tier(tier)
            .and_then(|wasmtime| self.compiler.compile(wasmtime, tier, path, wasm))
            .with_context(|| match tier {
                Tier::Optimized => format!("plugin {} is not a valid component", path.display()),
                Tier::Baseline => format!(
                    "compiling plugin {} on the baseline tier (Winch)",
                    path.display()
                ),
            })?;
        crate::telemetry::METRICS.compile_cache("miss");
        tracing::info!(
            plugin = label,
            cache = "miss",
            tier = tier.name(),
            elapsed_ms = started.elapsed().as_secs_f64() * 1e3,
            "compiled plugin{note}"
        );
        Ok(component)
    }

    /// Compiles a plugin the cache does not hold: on `first_tier`, or on the optimizing tier
    /// when the baseline compiler cannot take it (one info line says why).
    fn compile_miss(
        &self,
        engine: &Engine,
        first_tier: Tier,
        path: &Path,
        wasm: &[u8],
        label: &str,
        note: &str,
    ) -> Result<(Component, Tier)> {
        if first_tier == Tier::Baseline {
            match self.compile(engine, Tier::Baseline, path, wasm, label, note) {
                Ok(component) => return Ok((component, Tier::Baseline)),
                Err(e) if e.downcast_ref::<crate::compiler::OverLimit>().is_some() => {
                    return Err(e);
                }
                Err(e) => tracing::info!(
                    plugin = label,
                    "plugin cannot run on the baseline tier ({}); compiling it with Cranelift",
                    crate::guest_text::shortened(&format!("{e:#}"), 300)
                ),
            }
        }
        let component = self.compile(engine, Tier::Optimized, path, wasm, label, note)?;
        Ok((component, Tier::Optimized))
    }

    /// Whether the cache (or the shared one) holds compiled code for the plugin at `path`
    /// (with `pin`, if any): its load costs a map or a copy, not a compile. Best effort: an entry found here may still be
    /// refused when it is loaded (and then compiled as any miss).
    pub fn holds(&self, engine: &Engine, path: &Path, pin: Option<&str>) -> bool {
        let Some(dir) = &self.dir else { return false };
        if self.compiler.check_size(path).is_err() {
            return false;
        }
        let Ok(cache) = Cache::open(dir) else {
            return false;
        };
        let label = path.display().to_string();
        let sha256 = match cache.indexed_hash(path, &label) {
            Some(sha256) => sha256,
            None => {
                // Hashed once here and recorded: the load that follows finds it indexed.
                let stamp = fs::metadata(path).ok().and_then(|m| file_stamp(&m));
                let Ok((_, sha256)) = self.read_checked(path, None) else {
                    return false;
                };
                cache.record_hash(path, stamp, &sha256);
                sha256
            }
        };
        if pin.is_some_and(|p| p != sha256) {
            return false;
        }
        let engine_key = hex(&engine_hash(engine.wasmtime()));
        let name = format!("{sha256}-{}", &engine_key[..16]);
        let has_entry = |dir: &Path| {
            matches!(
                read_entry_file(&Entry::new(dir, name.clone()).check),
                Ok(Some(_))
            )
        };
        has_entry(dir)
            || self
                .open_shared()
                .is_some_and(|(shared, _)| has_entry(shared))
    }

    /// Reads the plugin at `path` once and checks those bytes: a component, with the pinned
    /// SHA-256 if there is a pin. Returns them with their hash.
    fn read_checked(&self, path: &Path, pin: Option<&str>) -> Result<(Vec<u8>, String)> {
        let wasm = self.compiler.read(path)?;
        check_component_header(&wasm).with_context(|| format!("plugin {}", path.display()))?;
        let hash = hex(&Sha256::digest(&wasm));
        check_pin(path, &hash, pin)?;
        Ok((wasm, hash))
    }

    /// The compiled component for the plugin at `path`, from the cache when a valid entry
    /// exists, with the SHA-256 of the bytes it was compiled from. The file is read at most
    /// once: those bytes are hashed, checked against `pin` (`monitors[].sha256`), used as the
    /// cache key and compiled, and an artifact is stored only under the hash of the bytes it
    /// was compiled from. `label` names the plugin in log events.
    ///
    /// The cache holds optimized code only. A miss is compiled on `first_tier`: with
    /// [`Tier::Baseline`] the plugin can run in a second or two and is not stored (the caller
    /// compiles it again on [`Tier::Optimized`] in the background, which stores it).
    pub fn load_or_compile(
        &self,
        engine: &Engine,
        path: &Path,
        label: &str,
        pin: Option<&str>,
        first_tier: Tier,
    ) -> Result<LoadedPlugin> {
        // The size cap comes before the plugin is hashed or read.
        self.compiler.check_size(path)?;
        let Some(dir) = &self.dir else {
            let (wasm, sha256) = self.read_checked(path, pin)?;
            let (component, tier) =
                self.compile_miss(engine, first_tier, path, &wasm, label, "")?;
            return Ok(LoadedPlugin::new(component, tier, sha256, wasm.len()));
        };
        let started = Instant::now();
        // Checked at every load, not once: a long-running host sees a directory that became
        // writable by others.
        let cache = match Cache::open(dir) {
            Ok(cache) => cache,
            Err(reason) => {
                if !self.bypass_logged.swap(true, Ordering::Relaxed) {
                    tracing::warn!(
                        cache = "bypassed",
                        dir = %dir.display(),
                        "compile cache bypassed: {reason:#}. Plugins are compiled in memory; \
                         nothing is loaded from or written to {}",
                        dir.display()
                    );
                }
                let (wasm, sha256) = self.read_checked(path, pin)?;
                let note = " (compile cache bypassed)";
                let (component, tier) =
                    self.compile_miss(engine, first_tier, path, &wasm, label, note)?;
                return Ok(LoadedPlugin::new(component, tier, sha256, wasm.len()));
            }
        };
        let optimizing = engine.wasmtime();
        let engine_key = hex(&engine_hash(optimizing));
        // The index's hash of an unchanged file names an artifact compiled from bytes with
        // that hash (only such artifacts are stored): a hit runs exactly that code, whatever
        // the file holds now, so it needs no read of the file.
        if let Some(sha256) = cache.indexed_hash(path, label)
            && pin.is_none_or(|p| p == sha256)
        {
            let entry = Entry::new(dir, format!("{sha256}-{}", &engine_key[..16]));
            if let Ok(Some(component)) = entry.load(&cache, optimizing) {
                log_hit(label, started);
                let size = fs::metadata(path).map(|m| m.len() as usize).unwrap_or(0);
                return Ok(LoadedPlugin::new(component, Tier::Optimized, sha256, size));
            }
        }
        let stamp = fs::metadata(path).ok().and_then(|m| file_stamp(&m));
        let (wasm, sha256) = self.read_checked(path, pin)?;
        cache.record_hash(path, stamp, &sha256);
        let entry = Entry::new(dir, format!("{sha256}-{}", &engine_key[..16]));
        if let Some(component) = entry.load_trusted(&cache, optimizing, label, "compile cache") {
            log_hit(label, started);
            return Ok(LoadedPlugin::new(
                component,
                Tier::Optimized,
                sha256,
                wasm.len(),
            ));
        }
        if let Some(component) = self.load_shared(&entry.name, optimizing, label) {
            crate::telemetry::METRICS.compile_cache("shared_hit");
            tracing::info!(
                plugin = label,
                cache = "shared_hit",
                elapsed_ms = started.elapsed().as_secs_f64() * 1e3,
                "loaded compiled plugin from the shared compile cache"
            );
            // Mapped from there, not copied here: a copy of each artifact (35 MB for a Python
            // plugin) would cost a new host more than the compiles it saves time on.
            return Ok(LoadedPlugin::new(
                component,
                Tier::Optimized,
                sha256,
                wasm.len(),
            ));
        }
        let (component, tier) = self.compile_miss(engine, first_tier, path, &wasm, label, "")?;
        if tier == Tier::Optimized {
            let artifact = component.serialize()?;
            if let Err(e) = entry.store(&cache, &artifact) {
                tracing::warn!(plugin = label, dir = %dir.display(), "cannot write compile cache entry: {e:#}");
            }
            self.store_shared(&entry.name, &artifact, label);
        }
        Ok(LoadedPlugin::new(component, tier, sha256, wasm.len()))
    }

    /// The shared directory, when it is configured and passes the same checks as the local
    /// one; else `None`, with one warning saying why.
    fn open_shared(&self) -> Option<(&Path, Cache<'_>)> {
        let dir = self.shared.as_deref()?;
        match Cache::open(dir) {
            Ok(cache) => Some((dir, cache)),
            Err(reason) => {
                if !self.shared_bypass_logged.swap(true, Ordering::Relaxed) {
                    tracing::warn!(
                        cache = "bypassed",
                        dir = %dir.display(),
                        "shared compile cache not used: {reason:#}"
                    );
                }
                None
            }
        }
    }

    /// The entry `name` of the shared directory, if it holds one that authenticates.
    fn load_shared(&self, name: &str, engine: &wasmtime::Engine, label: &str) -> Option<Component> {
        let (dir, shared) = self.open_shared()?;
        Entry::new(dir, name.to_owned()).load_trusted(
            &shared,
            engine,
            label,
            "shared compile cache",
        )
    }

    /// Gives the fleet what this host compiled (best effort: a read-only share is fine).
    fn store_shared(&self, name: &str, artifact: &[u8], label: &str) {
        let Some((dir, shared)) = self.open_shared() else {
            return;
        };
        if let Err(e) = Entry::new(dir, name.to_owned()).store(&shared, artifact) {
            tracing::warn!(plugin = label, dir = %dir.display(), "cannot write shared compile cache entry: {e:#}");
        }
    }
}

/// Counts and logs a load from the cache.
fn log_hit(label: &str, started: Instant) {
    crate::telemetry::METRICS.compile_cache("hit");
    tracing::info!(
        plugin = label,
        cache = "hit",
        elapsed_ms = started.elapsed().as_secs_f64() * 1e3,
        "loaded compiled plugin from the compile cache"
    );
}

/// A plugin's compiled component, and what it was compiled from.
pub struct LoadedPlugin {
    /// The compiled component.
    pub component: Component,
    /// Which compiler made it (the cache holds optimized code only).
    pub tier: Tier,
    /// The SHA-256 (lowercase hex) of the bytes it was compiled from.
    pub sha256: String,
    /// The size of those bytes.
    pub size: usize,
}

impl LoadedPlugin {
    fn new(component: Component, tier: Tier, sha256: String, size: usize) -> LoadedPlugin {
        LoadedPlugin {
            component,
            tier,
            sha256,
            size,
        }
    }
}

/// Refuses bytes whose SHA-256 is not the pinned one (`monitors[].sha256`).
fn check_pin(path: &Path, actual: &str, pin: Option<&str>) -> Result<()> {
    match pin {
        Some(pinned) if pinned != actual => bail!(
            "plugin {} has SHA-256 {actual}, but the config pins {pinned} (monitors[].sha256); \
             refused",
            path.display()
        ),
        _ => Ok(()),
    }
}

/// Checks that `wasm` is a component (not a core module, not something else).
pub fn check_component_header(wasm: &[u8]) -> Result<()> {
    const MAGIC: &[u8] = b"\0asm";
    if wasm.len() < 8 || &wasm[..4] != MAGIC {
        bail!("not a WebAssembly file");
    }
    // Bytes 4..8 are the version (core modules: 1) and the layer (components: 1).
    if wasm[6..8] == [0, 0] {
        bail!("a core WebAssembly module, not a component: build it with `--target wasm32-wasip2`");
    }
    Ok(())
}

fn engine_hash(engine: &wasmtime::Engine) -> Vec<u8> {
    let mut hasher = Sha256Hasher(Sha256::new());
    engine.precompile_compatibility_hash().hash(&mut hasher);
    hasher.0.finalize().to_vec()
}

/// A cache directory that passed the ownership checks, with its key.
struct Cache<'a> {
    dir: &'a Path,
    key: Key,
}

impl<'a> Cache<'a> {
    /// Creates the directory and `index/` (mode 0700) if missing, checks that both are
    /// private to the running user, and reads (or creates) the key. `Err`: bypass the cache.
    fn open(dir: &'a Path) -> Result<Cache<'a>> {
        // Nothing is created inside the directory before it passed its check.
        create_private_dir(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        // The directory itself may be reached through a symlink (a moved `~/.cache`); what is
        // inside it may not.
        check_private_dir(dir, fs::metadata(dir))?;
        let index = dir.join("index");
        create_private_dir(&index).with_context(|| format!("cannot create {}", index.display()))?;
        check_private_dir(&index, fs::symlink_metadata(&index))?;
        let key = Key::load_or_create(&dir.join("key"))?;
        Ok(Cache { dir, key })
    }

    /// The SHA-256 the index records for the plugin file, when the file's stat is the one
    /// recorded with it and the record's MAC holds.
    fn indexed_hash(&self, path: &Path, label: &str) -> Option<String> {
        let stamp = fs::metadata(path).ok().and_then(|m| file_stamp(&m))?;
        let canonical = fs::canonicalize(path).ok()?;
        let canonical = canonical.as_os_str().as_encoded_bytes();
        let index = self.dir.join("index").join(hex(&Sha256::digest(canonical)));
        match self.read_index(&index, canonical) {
            Ok(Some((recorded_stamp, hash))) if recorded_stamp == stamp => Some(hash),
            // No record, or one of an older version of the file.
            Ok(_) => None,
            Err(reason) => {
                tracing::warn!(
                    plugin = label,
                    cache = "invalid",
                    entry = %index.display(),
                    "ignoring compile cache index record ({reason:#}); hashing the plugin again"
                );
                None
            }
        }
    }

    /// Records `hash` for the plugin file, read when its stat was `before`: only if the file
    /// did not change while it was read (best effort).
    fn record_hash(&self, path: &Path, before: Option<String>, hash: &str) {
        let Some(stamp) = before else { return };
        let now = fs::metadata(path).ok().and_then(|m| file_stamp(&m));
        let Ok(canonical) = fs::canonicalize(path) else {
            return;
        };
        if now.as_ref() != Some(&stamp) {
            return;
        }
        let canonical = canonical.as_os_str().as_encoded_bytes();
        let index = self.dir.join("index").join(hex(&Sha256::digest(canonical)));
        let body = format!("{INDEX_MAGIC}\n{stamp}\n{hash}\n");
        let mac = self.key.index_mac(canonical, &body);
        let _ = write_atomically(&index, format!("{body}{}\n", hex(&mac)).as_bytes());
    }

    /// The `(stamp, hash)` an index record holds. `Ok(None)`: no record. `Err`: a record that
    /// cannot be trusted.
    fn read_index(&self, index: &Path, canonical: &[u8]) -> Result<Option<(String, String)>> {
        let Some(bytes) = read_entry_file(index)? else {
            return Ok(None);
        };
        let invalid = || anyhow!("{} is not a valid index record", index.display());
        let text = std::str::from_utf8(&bytes).map_err(|_| invalid())?;
        let (body, mac) = text
            .strip_suffix('\n')
            .and_then(|t| t.rsplit_once('\n'))
            .ok_or_else(invalid)?;
        let body = &text[..body.len() + 1];
        let mac = unhex(mac).ok_or_else(invalid)?;
        self.key
            .index_verifier(canonical, body)
            .verify_slice(&mac)
            .map_err(|_| anyhow!("{}: MAC mismatch (modified record)", index.display()))?;
        let mut lines = body.lines();
        let (Some(INDEX_MAGIC), Some(stamp), Some(hash), None) =
            (lines.next(), lines.next(), lines.next(), lines.next())
        else {
            return Err(invalid());
        };
        if hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(invalid());
        }
        Ok(Some((stamp.to_owned(), hash.to_owned())))
    }
}

/// What a check file says about its artifact.
struct CheckFile {
    len: u64,
    /// Empty where the platform has no stamp: the content is then always MAC'd.
    stamp: String,
    content_mac: [u8; MAC_LEN],
}

impl CheckFile {
    fn encode(&self, key: &Key, entry_name: &str) -> Result<Vec<u8>> {
        let stamp_len = u16::try_from(self.stamp.len()).context("stamp too long")?;
        let mut bytes = Vec::with_capacity(MAGIC.len() + 10 + self.stamp.len() + 2 * MAC_LEN);
        bytes.extend_from_slice(MAGIC);
        bytes.extend_from_slice(&self.len.to_le_bytes());
        bytes.extend_from_slice(&stamp_len.to_le_bytes());
        bytes.extend_from_slice(self.stamp.as_bytes());
        bytes.extend_from_slice(&self.content_mac);
        let mac = key.check_mac(entry_name).chain_update(&bytes).finalize();
        bytes.extend_from_slice(&mac.into_bytes());
        Ok(bytes)
    }

    /// Verifies the check file's own MAC, then parses it.
    fn decode(bytes: &[u8], key: &Key, entry_name: &str) -> Result<CheckFile> {
        ensure!(
            bytes.starts_with(MAGIC),
            "not a sentinela cache entry of this version"
        );
        let body_len = bytes
            .len()
            .checked_sub(MAC_LEN)
            .context("check file truncated")?;
        let (body, mac) = bytes.split_at(body_len);
        key.check_mac(entry_name)
            .chain_update(body)
            .verify_slice(mac)
            .map_err(|_| anyhow!("check file MAC mismatch (modified entry, or another key)"))?;
        // Authentic from here on: a malformed body is a bug, still not a panic.
        let mut rest = &body[MAGIC.len()..];
        let mut take = |n: usize| -> Result<&[u8]> {
            ensure!(rest.len() >= n, "check file truncated");
            let (field, tail) = rest.split_at(n);
            rest = tail;
            Ok(field)
        };
        let len = u64::from_le_bytes(take(8)?.try_into()?);
        let stamp_len = u16::from_le_bytes(take(2)?.try_into()?);
        let stamp = std::str::from_utf8(take(stamp_len.into())?)
            .context("check file stamp is not text")?
            .to_owned();
        let content_mac = take(MAC_LEN)?.try_into()?;
        ensure!(rest.is_empty(), "check file has trailing bytes");
        Ok(CheckFile {
            len,
            stamp,
            content_mac,
        })
    }
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
    /// `KEY`, which the check file's MAC covers.
    name: String,
    artifact: PathBuf,
    check: PathBuf,
}

impl Entry {
    fn new(dir: &Path, name: String) -> Entry {
        Entry {
            artifact: dir.join(format!("{name}.cwasm")),
            check: dir.join(format!("{name}.check")),
            name,
        }
    }

    /// The entry's component, if there is one that can be trusted; one that cannot is
    /// counted and logged as `invalid` (naming `which` cache) and never loaded.
    fn load_trusted(
        &self,
        cache: &Cache,
        engine: &wasmtime::Engine,
        label: &str,
        which: &str,
    ) -> Option<Component> {
        match self.load(cache, engine) {
            Ok(component) => component,
            Err(reason) => {
                crate::telemetry::METRICS.compile_cache("invalid");
                tracing::warn!(
                    plugin = label,
                    cache = "invalid",
                    entry = %self.artifact.display(),
                    "ignoring {which} entry ({reason:#})"
                );
                None
            }
        }
    }

    /// `Ok(None)`: no entry. `Err`: an entry exists but cannot be trusted.
    fn load(&self, cache: &Cache, engine: &wasmtime::Engine) -> Result<Option<Component>> {
        let Some(check) = read_entry_file(&self.check)? else {
            return Ok(None);
        };
        let check = CheckFile::decode(&check, &cache.key, &self.name)
            .with_context(|| self.check.display().to_string())?;
        let (artifact, meta) = open_entry_file(&self.artifact)?
            .with_context(|| format!("{} is missing", self.artifact.display()))?;
        let actual_len = meta.len();
        ensure!(
            actual_len == check.len,
            "{} is {actual_len} bytes, its check file says {} (truncated or replaced entry)",
            self.artifact.display(),
            check.len
        );
        // The stamp of the open file: the one wasmtime maps below (see `mapped_path`).
        let stamp = file_stamp(&meta);
        if check.stamp.is_empty() || stamp.as_ref() != Some(&check.stamp) {
            // Not the file whose content was authenticated when the entry was written (or no
            // stamp to tell): authenticate the content now.
            mac_of_file(cache.key.artifact_mac(), &artifact, check.len)
                .with_context(|| format!("cannot read {}", self.artifact.display()))?
                .verify_slice(&check.content_mac)
                .map_err(|_| {
                    anyhow!(
                        "{} does not match its MAC (modified or corrupt entry)",
                        self.artifact.display()
                    )
                })?;
            if let Some(stamp) = stamp {
                // Best effort: the next start can skip the hashing.
                let _ = self.write_check(cache, check.len, stamp, check.content_mac);
            }
        }
        // SAFETY: the file holds what `Component::serialize` wrote for an engine with this
        // compatibility hash: its content was authenticated with the cache's key (above, or
        // when the entry was written, for the unchanged file the stamp designates), the file
        // is owned by this user and nobody else may write it, and entries are only ever
        // replaced by renaming a complete file over them. wasmtime re-checks the version and
        // settings itself and rejects a mismatch with an error.
        let component =
            unsafe { Component::deserialize_file(engine, mapped_path(&artifact, &self.artifact)) }
                .map_err(|e| anyhow!("rejected by wasmtime: {e}"))?;
        drop(artifact);
        Ok(Some(component))
    }

    fn store(&self, cache: &Cache, artifact: &[u8]) -> Result<()> {
        let content_mac = cache
            .key
            .artifact_mac()
            .chain_update(artifact)
            .finalize()
            .into_bytes()
            .into();
        let file = write_atomically(&self.artifact, artifact)?;
        // Taken after the rename, which may itself change the ctime, from the file written:
        // the stamp of exactly the bytes authenticated above.
        let stamp = file
            .metadata()
            .ok()
            .and_then(|meta| file_stamp(&meta))
            .unwrap_or_default();
        self.write_check(cache, artifact.len() as u64, stamp, content_mac)
    }

    fn write_check(
        &self,
        cache: &Cache,
        len: u64,
        stamp: String,
        content_mac: [u8; MAC_LEN],
    ) -> Result<()> {
        let check = CheckFile {
            len,
            stamp,
            content_mac,
        };
        write_atomically(&self.check, &check.encode(&cache.key, &self.name)?)?;
        Ok(())
    }
}

/// The path wasmtime should map the artifact from: on Linux the `/proc/self/fd` link of the
/// descriptor that was checked, so wasmtime maps that very file even if its name were
/// replaced in between; elsewhere (or without `/proc`) the name.
fn mapped_path(file: &File, path: &Path) -> PathBuf {
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        let link = PathBuf::from(format!("/proc/self/fd/{}", file.as_raw_fd()));
        if link.exists() {
            return link;
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = file;
    path.to_path_buf()
}

/// Feeds a `len`-byte file to `mac`, through a private read-only mapping: the kernel hands
/// over the page-cache pages instead of copying 35 MB into a buffer (measured with CRC-32:
/// ~10 ms less per Python plugin at start).
#[cfg(unix)]
fn mac_of_file(mut mac: HmacSha256, file: &File, len: u64) -> std::io::Result<HmacSha256> {
    use rustix::mm::{MapFlags, ProtFlags, mmap, munmap};
    let len = usize::try_from(len).map_err(std::io::Error::other)?;
    if len == 0 {
        return Ok(mac);
    }
    // SAFETY: a fresh read-only private mapping of `len` bytes of a file of that length
    // (checked by the caller); it is read only here and unmapped before returning. Entries
    // are replaced by renaming a new file over them, never truncated in place, and nobody
    // but this user may write the file, so the pages stay valid while mapped.
    unsafe {
        let map = mmap(
            std::ptr::null_mut(),
            len,
            ProtFlags::READ,
            MapFlags::PRIVATE,
            file,
            0,
        )?;
        mac.update(std::slice::from_raw_parts(map.cast::<u8>(), len));
        munmap(map, len)?;
    }
    Ok(mac)
}

#[cfg(not(unix))]
fn mac_of_file(mut mac: HmacSha256, file: &File, _len: u64) -> std::io::Result<HmacSha256> {
    read_chunks(file, |chunk| mac.update(chunk))?;
    Ok(mac)
}

/// The SHA-256 of a file's bytes, in lowercase hex (as `sha256sum` prints it): the key of
/// its compiled code here, and the hash a monitor's `sha256:` pins and the logs show.
pub fn file_sha256(path: &Path) -> std::io::Result<String> {
    let mut hasher = Sha256::new();
    read_chunks(File::open(path)?, |chunk| hasher.update(chunk))?;
    Ok(hex(&hasher.finalize()))
}

/// Feeds a file to `consume` in chunks of one reused buffer.
fn read_chunks(mut file: impl Read, mut consume: impl FnMut(&[u8])) -> std::io::Result<()> {
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

/// The bytes a hex string spells; `None` if it is not one.
fn unhex(text: &str) -> Option<Vec<u8>> {
    let nibble = |c: u8| char::from(c).to_digit(16);
    let text = text.as_bytes();
    if !text.len().is_multiple_of(2) {
        return None;
    }
    text.chunks(2)
        .map(|pair| Some(((nibble(pair[0])? << 4) | nibble(pair[1])?) as u8))
        .collect()
}

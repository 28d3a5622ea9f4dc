//! On-disk cache of compiled plugin code, so a plugin is compiled by Cranelift once, not at
//! every start.
//!
//! An entry is named by the SHA-256 of the wasm bytes and of the engine's compatibility hash
//! (wasmtime version, target and every setting that affects code), so a new wasm file or a
//! different engine never finds a stale entry. Each entry carries the SHA-256 of its own
//! artifact, checked before the artifact is handed to wasmtime's (unsafe) deserializer: a
//! corrupt or truncated file is recompiled, never loaded. Entries are written to a temporary
//! file and renamed into place, so concurrent processes never see a half-written one.
//!
//! The checksum protects against corruption, not against an attacker who can write to the
//! cache directory: like wasmtime's own cache, the directory must be writable only by the
//! user the host runs as.

use std::fs;
use std::hash::{Hash, Hasher};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result};
use sha2::{Digest, Sha256};
use wasmtime::component::Component;

const MAGIC: &[u8; 16] = b"sentinela-cwasm1";

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

    /// The compiled component for `wasm`, from the cache when a valid entry exists.
    /// `label` names the plugin in log events.
    pub fn load_or_compile(
        &self,
        engine: &wasmtime::Engine,
        wasm: &[u8],
        label: &str,
    ) -> Result<Component> {
        let Some(dir) = &self.dir else {
            return compile(engine, wasm, label);
        };
        let entry = dir.join(format!("{}.cwasm", entry_key(engine, wasm)));
        let started = Instant::now();
        match read_entry(engine, &entry) {
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
                entry = %entry.display(),
                "ignoring compile cache entry ({reason:#}); recompiling"
            ),
        }
        let component = compile(engine, wasm, label)?;
        if let Err(e) = write_entry(&entry, &component.serialize()?) {
            tracing::warn!(plugin = label, dir = %dir.display(), "cannot write compile cache entry: {e:#}");
        }
        Ok(component)
    }
}

fn compile(engine: &wasmtime::Engine, wasm: &[u8], label: &str) -> Result<Component> {
    let started = Instant::now();
    let component = Component::new(engine, wasm)?;
    tracing::info!(
        plugin = label,
        cache = "miss",
        elapsed_ms = started.elapsed().as_secs_f64() * 1e3,
        "compiled plugin"
    );
    Ok(component)
}

fn entry_key(engine: &wasmtime::Engine, wasm: &[u8]) -> String {
    let mut hasher = Sha256Hasher(Sha256::new());
    engine.precompile_compatibility_hash().hash(&mut hasher);
    let engine_hash = hasher.0.finalize();
    let wasm_hash = Sha256::digest(wasm);
    format!("{}-{}", hex(&wasm_hash), &hex(&engine_hash)[..16])
}

/// `Ok(None)`: no entry. `Err`: an entry exists but cannot be trusted.
fn read_entry(engine: &wasmtime::Engine, path: &Path) -> Result<Option<Component>> {
    let bytes = match fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).context("unreadable"),
    };
    let header = MAGIC.len() + 32;
    anyhow::ensure!(
        bytes.len() > header && &bytes[..MAGIC.len()] == MAGIC,
        "not a sentinela cache entry"
    );
    let (checksum, artifact) = bytes[MAGIC.len()..].split_at(32);
    anyhow::ensure!(
        Sha256::digest(artifact).as_slice() == checksum,
        "checksum mismatch (corrupt entry)"
    );
    // SAFETY: the artifact is byte-for-byte what `Component::serialize` wrote for an engine
    // with this compatibility hash (checked above); wasmtime re-checks the version and
    // settings itself and rejects a mismatch with an error.
    let component = unsafe { Component::deserialize(engine, artifact) }
        .map_err(|e| anyhow::anyhow!("rejected by wasmtime: {e}"))?;
    Ok(Some(component))
}

fn write_entry(path: &Path, artifact: &[u8]) -> Result<()> {
    let dir = path.parent().context("cache entry has no directory")?;
    fs::create_dir_all(dir)?;
    let tmp = dir.join(format!(
        ".{}.{}.tmp",
        path.file_name().unwrap_or_default().to_string_lossy(),
        std::process::id()
    ));
    let mut file = fs::File::create(&tmp)?;
    file.write_all(MAGIC)?;
    file.write_all(&Sha256::digest(artifact))?;
    file.write_all(artifact)?;
    file.sync_all()?;
    fs::rename(&tmp, path)?;
    Ok(())
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

//! Compiling a plugin with Cranelift or Winch ([`Tier`]), under limits. A plugin is
//! untrusted input to the compiler too: a 30 MB component of huge functions took 19 s and 2.8 GB to compile. So
//! `sentinela` compiles in a child process of its own (`sentinela compile-plugin`, hidden),
//! with a cap on the plugin's size checked before anything is read, a wall-clock limit (the
//! child is killed past it) and a memory limit (`RLIMIT_DATA` in the child); the parent loads
//! the artifact the child wrote. A plugin over a limit fails with an error naming it and the
//! limit; other plugins load as usual.
//!
//! Library users (benchmarks, unit tests) that are not the `sentinela` binary compile in
//! process, with the size cap only.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use wasmtime::component::Component;

use crate::engine::{Engine, Tier};

/// Limits on compiling one plugin (`compile:` in the config).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompileLimits {
    /// The largest plugin file compiled.
    pub max_plugin_bytes: u64,
    /// Wall-clock time of one compilation.
    pub timeout: Duration,
    /// Memory the compiler may allocate (the child's `RLIMIT_DATA`).
    pub memory: u64,
}

impl Default for CompileLimits {
    /// Fits the Python guests (an 18 MB component compiles in ~7 s and ~440 MiB in a release
    /// build; a debug build is several times slower).
    fn default() -> Self {
        CompileLimits {
            max_plugin_bytes: 64 << 20,
            timeout: Duration::from_secs(120),
            memory: 2 << 30,
        }
    }
}

/// A compile stopped by one of the `compile:` limits: no other tier is tried (Cranelift
/// needs more time and memory than Winch, not less).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct OverLimit(String);

/// How plugins are compiled.
#[derive(Debug, Clone)]
pub enum Compiler {
    /// In this process (no time or memory limit).
    InProcess {
        /// The largest plugin file compiled (`compile.max_plugin_bytes`).
        max_plugin_bytes: u64,
    },
    /// In a child process running `exe compile-plugin`, under every limit.
    Isolated {
        /// The `sentinela` binary, run as the child.
        exe: PathBuf,
        /// The `compile:` limits, all applied to the child.
        limits: CompileLimits,
    },
}

impl Default for Compiler {
    fn default() -> Self {
        Compiler::InProcess {
            max_plugin_bytes: CompileLimits::default().max_plugin_bytes,
        }
    }
}

impl Compiler {
    /// Isolated when this process is the `sentinela` binary, else in process.
    pub fn for_this_process(limits: &CompileLimits) -> Compiler {
        match std::env::current_exe() {
            Ok(exe) if exe.file_stem().is_some_and(|s| s == "sentinela") => Compiler::Isolated {
                exe,
                limits: limits.clone(),
            },
            _ => Compiler::InProcess {
                max_plugin_bytes: limits.max_plugin_bytes,
            },
        }
    }

    fn max_plugin_bytes(&self) -> u64 {
        match self {
            Compiler::InProcess { max_plugin_bytes } => *max_plugin_bytes,
            Compiler::Isolated { limits, .. } => limits.max_plugin_bytes,
        }
    }

    /// Refuses a plugin file over `compile.max_plugin_bytes`, from its size alone.
    pub fn check_size(&self, path: &Path) -> Result<()> {
        let size = std::fs::metadata(path)
            .with_context(|| format!("cannot read {}", path.display()))?
            .len();
        self.check_len(path, size)
    }

    fn check_len(&self, path: &Path, size: u64) -> Result<()> {
        let max = self.max_plugin_bytes();
        if size > max {
            bail!(
                "plugin {} is {size} bytes, over the limit of {max} bytes \
                 (compile.max_plugin_bytes)",
                path.display()
            );
        }
        Ok(())
    }

    /// Reads the plugin at `path` into memory, once: the bytes that are hashed, checked
    /// against a pin, used as the cache key and compiled. At most `max_plugin_bytes` + 1 are
    /// read, whatever the file grows to after [`Compiler::check_size`]: one more is over the cap.
    pub fn read(&self, path: &Path) -> Result<Vec<u8>> {
        use std::io::Read;
        let cannot_read = || format!("cannot read {}", path.display());
        let file = std::fs::File::open(path).with_context(cannot_read)?;
        let max = self.max_plugin_bytes();
        let mut bytes = Vec::new();
        file.take(max + 1)
            .read_to_end(&mut bytes)
            .with_context(cannot_read)?;
        self.check_len(path, bytes.len() as u64)?;
        Ok(bytes)
    }

    /// Compiles the plugin bytes `wasm` (read from `path`, which names it in errors) for
    /// `engine`, the running engine of `tier`.
    pub fn compile(
        &self,
        engine: &wasmtime::Engine,
        tier: Tier,
        path: &Path,
        wasm: &[u8],
    ) -> Result<Component> {
        self.check_len(path, wasm.len() as u64)?;
        match self {
            Compiler::InProcess { .. } => Ok(Component::new(engine, wasm)?),
            Compiler::Isolated { exe, limits } => {
                compile_in_child(engine, tier, exe, limits, path, wasm)
            }
        }
    }
}

/// Set when the host stops: compiles under way are stopped rather than waited for.
static STOPPING: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Stops every compile under way in a child process (and any started after): the host is
/// shutting down, and a background compile must not hold its exit.
pub fn stop_compiling() {
    STOPPING.store(true, std::sync::atomic::Ordering::Relaxed);
}

fn compile_in_child(
    engine: &wasmtime::Engine,
    tier: Tier,
    exe: &Path,
    limits: &CompileLimits,
    path: &Path,
    wasm: &[u8],
) -> Result<Component> {
    let dir = private_temp_dir()?;
    let out = dir.join("plugin.cwasm");
    let mut command = Command::new(exe);
    // The child compiles the bytes it is given on stdin (the ones the parent hashed), never
    // the file, which may have changed since.
    command
        .arg("compile-plugin")
        .arg("--tier")
        .arg(tier.name())
        .arg("-")
        .arg(&out)
        // The compiler reads untrusted input: it gets none of the host's environment, where
        // the AWS keys are.
        .env_clear()
        .env("RUST_LIB_BACKTRACE", "0")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    limit_memory(&mut command, limits.memory);
    let started = Instant::now();
    let mut child = command
        .spawn()
        .with_context(|| format!("cannot start the compiler ({})", exe.display()))?;
    let stdin = child.stdin.take();
    let status = std::thread::scope(|scope| {
        // Written from a thread of its own: a child that stops reading (it crashed, or was
        // killed at the timeout) must not block the parent, which would then never see it
        // end. Closing the pipe when written tells the child it has the whole plugin.
        if let Some(mut stdin) = stdin {
            scope.spawn(move || {
                use std::io::Write;
                let _ = stdin.write_all(wasm);
            });
        }
        wait_for_compiler(&mut child, started, &dir, limits, path)
    })?;
    let mut stderr = String::new();
    if let Some(mut pipe) = child.stderr.take() {
        use std::io::Read;
        let _ = pipe.by_ref().take(4096).read_to_string(&mut stderr);
    }
    if !status.success() {
        let _ = std::fs::remove_dir_all(&dir);
        let stderr = crate::guest_text::escape(stderr.trim());
        if stderr.contains("memory allocation") || stderr.contains("out of memory") {
            return Err(OverLimit(format!(
                "compiling plugin {} needed more than {} bytes of memory (compile.memory)",
                path.display(),
                limits.memory
            ))
            .into());
        }
        bail!(
            "compiling plugin {} failed ({status}): {stderr}",
            path.display()
        );
    }
    // SAFETY: the artifact was just written, in a directory only this user can write, by a
    // child running this very binary with an engine of the same settings; wasmtime checks
    // its version and settings again and rejects a mismatch with an error.
    let component = unsafe { Component::deserialize_file(engine, &out) };
    let _ = std::fs::remove_dir_all(&dir);
    component
        .map_err(|e| anyhow::anyhow!("the compiled plugin {} did not load: {e}", path.display()))
}

/// Waits for the compiler child, killing it (and removing `dir`) past `compile.timeout`.
fn wait_for_compiler(
    child: &mut Child,
    started: Instant,
    dir: &Path,
    limits: &CompileLimits,
    path: &Path,
) -> Result<ExitStatus> {
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Ok(status),
            Ok(None) => {}
            // Stopped, so the thread writing its stdin cannot block on it.
            Err(e) => {
                let _ = child.kill();
                return Err(e.into());
            }
        }
        let stopping = STOPPING.load(std::sync::atomic::Ordering::Relaxed);
        if stopping || started.elapsed() > limits.timeout {
            let _ = child.kill();
            let _ = child.wait();
            let _ = std::fs::remove_dir_all(dir);
            if stopping {
                bail!(
                    "compiling plugin {} was stopped: the host is shutting down",
                    path.display()
                );
            }
            return Err(OverLimit(format!(
                "compiling plugin {} took longer than {:?} (compile.timeout); it was stopped",
                path.display(),
                limits.timeout
            ))
            .into());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A fresh directory only this user can enter.
fn private_temp_dir() -> Result<PathBuf> {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let dir = std::env::temp_dir().join(format!(
        "sentinela-compile-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    let mut builder = std::fs::DirBuilder::new();
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder
        .create(&dir)
        .with_context(|| format!("cannot create {}", dir.display()))?;
    Ok(dir)
}

/// Limits the child's memory, and lowers its CPU priority: a compile (most of all a
/// background tier-up) must not take the cores from monitors that are ready to run.
#[cfg(unix)]
fn limit_memory(command: &mut Command, bytes: u64) {
    use std::os::unix::process::CommandExt;
    // SAFETY: between fork and exec the closure only makes the setrlimit and nice system
    // calls, which are async-signal-safe, and allocates nothing.
    unsafe {
        command.pre_exec(move || {
            let limit = rustix::process::Rlimit {
                current: Some(bytes),
                maximum: Some(bytes),
            };
            rustix::process::setrlimit(rustix::process::Resource::Data, limit)
                .map_err(std::io::Error::from)?;
            // Best effort: a lower priority is a courtesy, not a limit.
            let _ = rustix::process::nice(10);
            Ok(())
        });
    }
}

#[cfg(not(unix))]
fn limit_memory(_command: &mut Command, _bytes: u64) {}

/// The child's side: `sentinela compile-plugin --tier TIER WASM OUT` (`-`: the bytes on
/// stdin).
pub fn compile_plugin_command(wasm: &Path, out: &Path, tier: Tier) -> Result<()> {
    let engine = Engine::for_compiling(tier)?;
    let bytes = if wasm == Path::new("-") {
        use std::io::Read;
        let mut bytes = Vec::new();
        std::io::stdin()
            .read_to_end(&mut bytes)
            .context("cannot read the plugin from stdin")?;
        bytes
    } else {
        std::fs::read(wasm).with_context(|| format!("cannot read {}", wasm.display()))?
    };
    let component = Component::new(&engine, &bytes)?;
    std::fs::write(out, component.serialize()?)
        .with_context(|| format!("cannot write {}", out.display()))
}

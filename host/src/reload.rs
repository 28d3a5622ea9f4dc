//! Reloading while running. A monitor whose `.wasm` file changes on disk gets the new version
//! without a restart ([`watch_plugins`]); `SIGHUP` re-reads the config's `monitors:`
//! ([`reload_config`]).
//!
//! The file's directory is watched (`notify`), so a file replaced by a rename is seen too.
//! Changes are debounced ([`QUIET`] without a new event, [`SETTLED_QUIET`] once the file was
//! closed after writing or renamed into place), then the new file is checked and
//! compiled on a blocking thread, off the executor's workers, exactly as at start (pinned
//! `sha256:`, compile limits, imports). Only a version that loads is swapped in, atomically:
//! calls already running finish on the version they started with. A file that fails keeps
//! the running version, with a warning that says why. Every swap is logged with the old and
//! the new SHA-256.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use notify::{RecursiveMode, Watcher};
use tokio::sync::{mpsc, watch};

use crate::app::App;
use crate::aws::credentials::CredentialError;
use crate::compile_cache::file_sha256;
use crate::config::{Config, MonitorConfig};
use crate::monitor::MonitorPlugin;
use crate::runtime::{MonitorSet, Runtime, ScheduledMonitor};
use crate::telemetry::METRICS;

/// How long a plugin file must stay unchanged before it is reloaded: a copy in progress is
/// not loaded half-written.
pub const QUIET: Duration = Duration::from_millis(500);

/// The same, once the file is complete by what the kernel said last (written and closed, or
/// renamed into place): only a burst of events is coalesced.
pub const SETTLED_QUIET: Duration = Duration::from_millis(50);

/// What an event says about a file: the writer is done with it (closed after writing, or
/// renamed into place), it changed (more may come), or nothing (a read).
fn settles(kind: &notify::EventKind) -> Option<bool> {
    use notify::event::{AccessKind, AccessMode, EventKind, ModifyKind};
    match kind {
        EventKind::Access(AccessKind::Close(AccessMode::Write)) => Some(true),
        EventKind::Modify(ModifyKind::Name(_)) => Some(true),
        // Reading the file to load it may update its access time: that is no change (and
        // taking it for one would load a refused file again and again).
        EventKind::Access(_) | EventKind::Modify(ModifyKind::Metadata(_)) => None,
        _ => Some(false),
    }
}

/// Watches the plugin file of every running monitor until `stop` turns true, following the
/// monitor set when a config reload changes it.
pub async fn watch_plugins(app: Arc<App>, runtime: Arc<Runtime>, mut stop: watch::Receiver<bool>) {
    let (changed, mut changes) = mpsc::unbounded_channel::<(PathBuf, bool)>();
    let mut watcher =
        match notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
            if let Ok(event) = event
                && let Some(settled) = settles(&event.kind)
            {
                for path in event.paths {
                    let _ = changed.send((path, settled));
                }
            }
        }) {
            Ok(watcher) => watcher,
            Err(e) => {
                tracing::warn!("cannot watch plugin files; changes need a restart: {e}");
                return;
            }
        };
    let mut monitors_changed = runtime.monitors_changed();
    let mut watched = Watched::default();
    watched.follow(&runtime, &mut watcher).await;
    // Each changed file and when it is quiet enough to load.
    let mut pending: HashMap<PathBuf, tokio::time::Instant> = HashMap::new();
    loop {
        let next = pending.values().min().copied();
        let quiet = tokio::time::sleep_until(next.unwrap_or_else(tokio::time::Instant::now));
        tokio::select! {
            _ = stop.changed() => return,
            Ok(()) = monitors_changed.changed() => {
                watched.follow(&runtime, &mut watcher).await;
                continue;
            }
            change = changes.recv() => match change {
                Some((path, settled)) => {
                    let path = canonical(&path);
                    if watched.monitors_of.contains_key(&path) {
                        let wait = if settled { SETTLED_QUIET } else { QUIET };
                        pending.insert(path, tokio::time::Instant::now() + wait);
                    }
                    continue;
                }
                None => return,
            },
            _ = quiet, if next.is_some() => {}
        }
        let now = tokio::time::Instant::now();
        let quiet: Vec<PathBuf> = pending
            .iter()
            .filter(|(_, at)| **at <= now)
            .map(|(path, _)| path.clone())
            .collect();
        for path in quiet {
            pending.remove(&path);
            let names = watched.monitors_of.get(&path).cloned().unwrap_or_default();
            reload(&app, &runtime, &names, &path, &mut watched).await;
        }
    }
}

/// What the watcher follows: each running monitor's plugin file and its hash.
#[derive(Default)]
struct Watched {
    /// Plugin path → the monitors running it.
    monitors_of: HashMap<PathBuf, Vec<String>>,
    /// Each running monitor's file hash, for the swap's log line and `plugin_info`.
    hashes: HashMap<String, String>,
    /// Plugin path → the hash of the version last refused there: said once, not again
    /// while the file stays that version.
    refused: HashMap<PathBuf, String>,
    directories: HashSet<PathBuf>,
}

impl Watched {
    /// Takes in the monitors running now: their files, the hashes of the versions they run
    /// (known from their loads: no file is read again when the set changes, which it does
    /// once per monitor joining after the start) and directories (watched, so a file
    /// replaced by a rename is seen too).
    async fn follow(&mut self, runtime: &Runtime, watcher: &mut impl Watcher) {
        let plugins: Vec<(String, PathBuf, String)> = runtime
            .monitors()
            .iter()
            .filter_map(|m| {
                let config = m.config();
                let file = config.plugin.file().ok()?.to_path_buf();
                Some((m.name().to_owned(), file, m.plugin().file().sha256.clone()))
            })
            .collect();
        // Resolving paths is file system work: not on an executor worker.
        let followed = tokio::task::spawn_blocking(move || {
            let mut monitors_of: HashMap<PathBuf, Vec<String>> = HashMap::new();
            let mut hashes = HashMap::new();
            for (name, path, hash) in plugins {
                monitors_of
                    .entry(canonical(&path))
                    .or_default()
                    .push(name.clone());
                hashes.insert(name, hash);
            }
            (monitors_of, hashes)
        })
        .await;
        let (monitors_of, hashes) = followed.unwrap_or_default();
        self.monitors_of = monitors_of;
        for (name, old) in &self.hashes {
            if hashes.get(name) != Some(old) {
                METRICS.plugins.remove(&plugin_labels(name, old));
            }
        }
        for (name, hash) in &hashes {
            METRICS
                .plugins
                .get_or_create(&plugin_labels(name, hash))
                .set(1);
        }
        self.hashes = hashes;
        for directory in self.monitors_of.keys().filter_map(|p| p.parent()) {
            if self.directories.contains(directory) {
                continue;
            }
            match watcher.watch(directory, RecursiveMode::NonRecursive) {
                Ok(()) => {
                    self.directories.insert(directory.to_path_buf());
                }
                Err(e) => tracing::warn!(
                    directory = %directory.display(),
                    "cannot watch plugin files; changes there need a restart: {e}"
                ),
            }
        }
    }
}

/// Loads the new version of a plugin file (once, however many monitors run it) and swaps
/// it in for each monitor it loads for.
async fn reload(
    app: &Arc<App>,
    runtime: &Runtime,
    names: &[String],
    path: &Path,
    watched: &mut Watched,
) {
    let Watched {
        hashes, refused, ..
    } = watched;
    let hashed = {
        let path = path.to_path_buf();
        tokio::task::spawn_blocking(move || file_sha256(&path)).await
    };
    let new_hash = match hashed {
        Ok(Ok(hash)) => hash,
        Err(e) => {
            tracing::error!(plugin = %path.display(), "plugin reload failed: {e}");
            return;
        }
        Ok(Err(e)) => {
            tracing::warn!(
                monitors = names.join(", "),
                "plugin file changed but cannot be read; keeping the running version: {e:#}"
            );
            return;
        }
    };
    // Monitors not running (their plugin failed at start) and those already on this
    // version are left alone.
    let changed: Vec<(Arc<ScheduledMonitor>, Arc<MonitorConfig>)> = names
        .iter()
        .filter(|name| hashes.get(*name) != Some(&new_hash))
        .filter_map(|name| runtime.monitor(name))
        .map(|monitor| {
            let config = monitor.config();
            (monitor, config)
        })
        .collect();
    if changed.is_empty() {
        refused.remove(path);
        return;
    }
    if refused.get(path) == Some(&new_hash) {
        return; // refused already, and said so
    }
    let loaded = {
        let app = app.clone();
        let configs: Vec<Arc<MonitorConfig>> = changed.iter().map(|(_, c)| c.clone()).collect();
        tokio::task::spawn_blocking(move || {
            let configs: Vec<&MonitorConfig> = configs.iter().map(|c| c.as_ref()).collect();
            app.load_some(&configs)
                .into_iter()
                .map(|(_, loaded)| loaded)
                .collect::<Vec<_>>()
        })
        .await
    };
    let loaded = match loaded {
        Ok(loaded) => loaded,
        Err(e) => {
            tracing::error!(monitors = names.join(", "), "plugin reload failed: {e}");
            return;
        }
    };
    let mut replaced = Vec::new();
    for ((scheduled, config), loaded) in changed.into_iter().zip(loaded) {
        let name = scheduled.name().to_owned();
        let old_hash = hashes.get(&name).cloned().unwrap_or_default();
        match loaded {
            Ok(plugin) => {
                // The hash of the bytes that were compiled, which the file may no longer hold.
                let new_hash = plugin.file().sha256.clone();
                // A config reload may have changed the monitor meanwhile: its own load wins.
                if !scheduled.replace(Arc::new(plugin), &config) {
                    continue;
                }
                replaced.push(scheduled.clone());
                set_plugin_info(&name, Some(&old_hash), &new_hash);
                hashes.insert(name.clone(), new_hash.clone());
                tracing::info!(
                    monitor = name.as_str(),
                    old_sha256 = old_hash.as_str(),
                    new_sha256 = new_hash.as_str(),
                    "plugin reloaded"
                );
            }
            Err(e) => {
                METRICS
                    .plugin_load_errors
                    .get_or_create(&vec![("monitor", name.clone())])
                    .inc();
                tracing::warn!(
                    monitor = name.as_str(),
                    new_sha256 = new_hash.as_str(),
                    "plugin file changed but the new version cannot be loaded; keeping the \
                     running version until the file changes again: {e:#}"
                );
                refused.insert(path.to_path_buf(), new_hash.clone());
            }
        }
    }
    crate::tier_up::spawn(app.clone(), replaced);
}

/// A path as the watcher reports it: absolute, symlinks resolved where possible.
fn canonical(path: &Path) -> PathBuf {
    match (path.parent(), path.file_name()) {
        (Some(dir), Some(file)) => std::fs::canonicalize(dir)
            .map(|dir| dir.join(file))
            .unwrap_or_else(|_| path.to_path_buf()),
        _ => path.to_path_buf(),
    }
}

/// The labels of `sentinela_plugin_info{monitor, sha256}`: the version a monitor runs.
fn plugin_labels(monitor: &str, sha256: &str) -> Vec<(&'static str, String)> {
    vec![
        ("monitor", monitor.to_owned()),
        ("sha256", sha256.to_owned()),
    ]
}

/// Records that `monitor` now runs `sha256` instead of `old`.
fn set_plugin_info(monitor: &str, old: Option<&str>, sha256: &str) {
    if let Some(old) = old {
        METRICS.plugins.remove(&plugin_labels(monitor, old));
    }
    METRICS
        .plugins
        .get_or_create(&plugin_labels(monitor, sha256))
        .set(1);
}

/// Re-reads the config on every `SIGHUP` until the process ends ([`reload_config`]).
#[cfg(unix)]
pub async fn reload_on_sighup(app: Arc<App>, runtime: Arc<Runtime>) {
    use tokio::signal::unix::{SignalKind, signal};
    let mut hangups = match signal(SignalKind::hangup()) {
        Ok(hangups) => hangups,
        Err(e) => {
            tracing::warn!("cannot listen for SIGHUP; config changes need a restart: {e}");
            return;
        }
    };
    while hangups.recv().await.is_some() {
        tracing::info!(config = %app.config.path.display(), "SIGHUP: reloading the config");
        reload_config(&app, &runtime).await;
    }
}

/// Reads the config file again and applies its `monitors:` all or nothing: monitors added,
/// removed, or changed (crons, limits, grants, settings, plugin, id) — each changed or new
/// one loaded (checked and compiled, off the executor's workers) before anything is swapped.
/// If any cannot be loaded, or anything but `monitors:` changed, nothing changes and the
/// error says why. Tasks already running finish with the monitor they started with.
pub async fn reload_config(app: &Arc<App>, runtime: &Arc<Runtime>) {
    let prepared = {
        let app = app.clone();
        let runtime = runtime.clone();
        tokio::task::spawn_blocking(move || prepare(&app, &runtime)).await
    };
    let plan = match prepared {
        Ok(Ok(plan)) => plan,
        Ok(Err(e)) => {
            tracing::error!("config reload refused; the running monitors are unchanged: {e:#}");
            return;
        }
        Err(e) => {
            tracing::error!("config reload failed; the running monitors are unchanged: {e}");
            return;
        }
    };
    let names = |monitors: &[String]| monitors.join(", ");
    let removed: Vec<String> = runtime
        .monitors()
        .iter()
        .map(|m| m.name().to_owned())
        .filter(|name| !plan.monitors.iter().any(|(m, _)| m.name() == name))
        .collect();
    let (mut added, mut changed) = (Vec::new(), Vec::new());
    for (monitor, change) in &plan.monitors {
        match change {
            Change::Added => added.push(monitor.name().to_owned()),
            Change::Changed(plugin, config) => {
                monitor.update(plugin.clone(), config.clone());
                changed.push(monitor.name().to_owned());
            }
            Change::Unchanged => {}
        }
    }
    let total = plan.monitors.len();
    let loaded_now: Vec<Arc<ScheduledMonitor>> = plan
        .monitors
        .iter()
        .filter(|(_, change)| !matches!(change, Change::Unchanged))
        .map(|(monitor, _)| monitor.clone())
        .collect();
    runtime.set_monitors(MonitorSet::new(plan.monitors.into_iter().map(|(m, _)| m)));
    crate::tier_up::spawn(app.clone(), loaded_now);
    crate::telemetry::set_not_loaded(Vec::new());
    tracing::info!(
        monitors = total,
        added = names(&added).as_str(),
        changed = names(&changed).as_str(),
        removed = names(&removed).as_str(),
        "config reloaded"
    );
}

/// What a reload does to one monitor.
enum Change {
    Unchanged,
    Added,
    /// The plugin loaded for the changed entry, and the entry.
    Changed(Arc<MonitorPlugin>, Arc<MonitorConfig>),
}

/// Every monitor of the new config, ready to swap in.
struct Plan {
    monitors: Vec<(Arc<ScheduledMonitor>, Change)>,
}

/// Reads, checks and loads the new config; nothing running is touched.
fn prepare(app: &App, runtime: &Runtime) -> anyhow::Result<Plan> {
    let path = &app.config.path;
    let mut config = Config::load(path)?;
    crate::app::resolve_oci_plugins(&mut config, app.locked)?;
    let mut keys: Vec<String> = config
        .host_sections
        .iter()
        .chain(app.config.host_sections.iter())
        .filter(|(key, _)| config.host_sections.get(*key) != app.config.host_sections.get(*key))
        .map(|(key, _)| key.as_str().unwrap_or("?").to_owned())
        .collect();
    keys.sort();
    keys.dedup();
    if !keys.is_empty() {
        anyhow::bail!(
            "{}: {} changed; only monitors: can change while running: restart to apply the rest",
            path.display(),
            keys.join(", ")
        );
    }
    config.host_plugins(std::env::var(crate::providers::PLUGINS_ENV).ok().as_deref())?;
    let engine = &app.engine_settings;
    let mut problems = Vec::new();
    for monitor in &config.monitors {
        let name = &monitor.name;
        if monitor.limits.memory.0 > engine.max_memory {
            problems.push(format!(
                "monitor '{name}': limits.memory is above the {} bytes this process's instance \
                 pool was made for at start: restart to raise it",
                engine.max_memory
            ));
        }
        if monitor.limits.table_elements > engine.max_table_elements {
            problems.push(format!(
                "monitor '{name}': limits.table_elements is above the {} this process's \
                 instance pool was made for at start: restart to raise it",
                engine.max_table_elements
            ));
        }
        if let Some(aws) = &app.aws {
            let secrets = monitor.secrets.values().filter_map(|s| s.credential());
            for credential in monitor.grants.credentials.iter().chain(secrets) {
                if let Err(CredentialError::Unknown(_)) = aws.credentials.get(credential) {
                    problems.push(format!(
                        "monitor '{name}': credential {credential} was not loaded at start \
                         (no monitor used it): restart to add a credential"
                    ));
                }
            }
        }
    }
    let mut monitors = Vec::new();
    for monitor in config.monitors {
        let running = runtime.monitor(monitor.name.as_str());
        if let Some(running) = &running
            && running.config().entry == monitor.entry
        {
            monitors.push((running.clone(), Change::Unchanged));
            continue;
        }
        let plugin = match app.load_monitor(&monitor) {
            Ok(plugin) => Arc::new(plugin),
            Err(e) => {
                problems.push(format!("{e:#}"));
                continue;
            }
        };
        let config = Arc::new(monitor);
        monitors.push(match running {
            Some(running) => (running, Change::Changed(plugin, config)),
            None => (
                Arc::new(ScheduledMonitor::new(plugin, config)),
                Change::Added,
            ),
        });
    }
    if !problems.is_empty() {
        anyhow::bail!("{}: {}", path.display(), problems.join("; "));
    }
    Ok(Plan { monitors })
}

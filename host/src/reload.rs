//! Hot reload of plugin files: a monitor whose `.wasm` file changes on disk gets the new
//! version without a restart.
//!
//! The file's directory is watched (`notify`), so a file replaced by a rename is seen too.
//! Changes are debounced ([`QUIET`] without a new event), then the new file is checked and
//! compiled on a blocking thread, off the executor's workers, exactly as at start (pinned
//! `sha256:`, compile limits, imports). Only a version that loads is swapped in, atomically:
//! calls already running finish on the version they started with. A file that fails keeps
//! the running version, with a warning that says why. Every swap is logged with the old and
//! the new SHA-256.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use notify::{RecursiveMode, Watcher};
use tokio::sync::{mpsc, watch};

use crate::app::App;
use crate::compile_cache::file_sha256;
use crate::runtime::Runtime;
use crate::telemetry::METRICS;

/// How long a plugin file must stay unchanged before it is reloaded: a copy in progress is
/// not loaded half-written.
pub const QUIET: Duration = Duration::from_millis(500);

/// Watches every monitor's plugin file until `stop` turns true.
pub async fn watch_plugins(app: Arc<App>, runtime: Arc<Runtime>, mut stop: watch::Receiver<bool>) {
    let (changed, mut changes) = mpsc::unbounded_channel::<PathBuf>();
    let mut watcher =
        match notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
            if let Ok(event) = event {
                for path in event.paths {
                    let _ = changed.send(path);
                }
            }
        }) {
            Ok(watcher) => watcher,
            Err(e) => {
                tracing::warn!("cannot watch plugin files; changes need a restart: {e}");
                return;
            }
        };
    // Plugin path → the monitors running it (not those that failed at start).
    let mut monitors_of: HashMap<PathBuf, Vec<String>> = HashMap::new();
    for monitor in &app.config.monitors {
        if runtime.monitor(monitor.name.as_str()).is_some() {
            monitors_of
                .entry(canonical(&monitor.plugin.0))
                .or_default()
                .push(monitor.name.as_str().to_owned());
        }
    }
    // Each running monitor's file hash, for the swap's log line and `plugin_info`: reading
    // every plugin file happens on a blocking thread, not on an executor worker.
    let files: Vec<(PathBuf, Vec<String>)> = monitors_of
        .iter()
        .map(|(path, names)| (path.clone(), names.clone()))
        .collect();
    let hashed = tokio::task::spawn_blocking(move || {
        let mut hashes = HashMap::new();
        for (path, names) in files {
            if let Ok(hash) = file_sha256(&path) {
                for name in names {
                    hashes.insert(name, hash.clone());
                }
            }
        }
        hashes
    })
    .await;
    let mut hashes: HashMap<String, String> = hashed.unwrap_or_default();
    for (name, hash) in &hashes {
        set_plugin_info(name, None, hash);
    }
    let directories: HashSet<PathBuf> = monitors_of
        .keys()
        .filter_map(|p| p.parent().map(Path::to_path_buf))
        .collect();
    for directory in &directories {
        if let Err(e) = watcher.watch(directory, RecursiveMode::NonRecursive) {
            tracing::warn!(
                directory = %directory.display(),
                "cannot watch plugin files; changes there need a restart: {e}"
            );
        }
    }
    let mut pending: HashSet<PathBuf> = HashSet::new();
    loop {
        let quiet = tokio::time::sleep(QUIET);
        tokio::select! {
            _ = stop.changed() => return,
            path = changes.recv() => match path {
                Some(path) => {
                    let path = canonical(&path);
                    if monitors_of.contains_key(&path) {
                        pending.insert(path);
                    }
                    continue;
                }
                None => return,
            },
            _ = quiet, if !pending.is_empty() => {}
        }
        for path in pending.drain() {
            for name in &monitors_of[&path] {
                reload(&app, &runtime, name, &path, &mut hashes).await;
            }
        }
    }
}

/// Loads the new version of one monitor's plugin and swaps it in if it loads.
async fn reload(
    app: &Arc<App>,
    runtime: &Runtime,
    name: &str,
    path: &Path,
    hashes: &mut HashMap<String, String>,
) {
    let Some(scheduled) = runtime.monitor(name) else {
        return; // not running (its plugin failed at start)
    };
    let hashed = {
        let path = path.to_path_buf();
        tokio::task::spawn_blocking(move || file_sha256(&path)).await
    };
    let new_hash = match hashed {
        Ok(Ok(hash)) => hash,
        Err(e) => {
            tracing::error!(monitor = name, "plugin reload failed: {e}");
            return;
        }
        Ok(Err(e)) => {
            tracing::warn!(
                monitor = name,
                "plugin file changed but cannot be read; keeping the running version: {e:#}"
            );
            return;
        }
    };
    let old_hash = hashes.get(name).cloned().unwrap_or_default();
    if new_hash == old_hash {
        return;
    }
    let loaded = {
        let app = app.clone();
        let name = name.to_owned();
        tokio::task::spawn_blocking(move || {
            let config = app
                .config
                .monitor(&name)
                .context("the monitor is no longer in the config")?;
            app.load_monitor(config)
        })
        .await
    };
    match loaded {
        Ok(Ok(plugin)) => {
            scheduled.replace(Arc::new(plugin));
            set_plugin_info(name, Some(&old_hash), &new_hash);
            hashes.insert(name.to_owned(), new_hash.clone());
            tracing::info!(
                monitor = name,
                old_sha256 = old_hash.as_str(),
                new_sha256 = new_hash.as_str(),
                "plugin reloaded"
            );
        }
        Ok(Err(e)) => tracing::warn!(
            monitor = name,
            new_sha256 = new_hash.as_str(),
            "plugin file changed but the new version cannot be loaded; keeping the running \
             version: {e:#}"
        ),
        Err(e) => tracing::error!(monitor = name, "plugin reload failed: {e}"),
    }
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

/// `sentinela_plugin_info{monitor, sha256}`: the version a monitor runs, replacing `old`.
fn set_plugin_info(monitor: &str, old: Option<&str>, sha256: &str) {
    let labels = |sha256: &str| {
        vec![
            ("monitor", monitor.to_owned()),
            ("sha256", sha256.to_owned()),
        ]
    };
    if let Some(old) = old {
        METRICS.plugins.remove(&labels(old));
    }
    METRICS.plugins.get_or_create(&labels(sha256)).set(1);
}

//! Sections 4 and 5: start time (plugin files, the local OCI store, the big Python and
//! JavaScript plugins) and idle memory.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use super::{BIN, TEN_PLUGINS, guest, ms, rss_kib, spawn_run, terminate};
use crate::report::{Report, quantile, sorted};

/// A config of `plugins` monitors that never come due on their own.
fn write_config(path: &Path, plugins: &[&str]) -> Result<()> {
    let mut yaml = String::from("plugins: [aws]\nmonitors:\n");
    for plugin in plugins {
        yaml += &format!(
            "  - name: {}\n    plugin: {}\n    search_cron: \"0 0 1 1 *\"\n",
            plugin.replace('_', "-"),
            guest(plugin).display()
        );
    }
    std::fs::write(path, yaml)?;
    Ok(())
}

/// `sentinela run CONFIG` until it logs "sentinela running": the wall time, and the child.
fn start_run(config: &Path, cache: &Path) -> Result<(f64, Child)> {
    let started = Instant::now();
    let cache = cache.to_str().context("cache path is not UTF-8")?;
    let child = spawn_run(
        config,
        &[],
        &[("SENTINELA_CACHE_DIR", cache)],
        Duration::from_secs(300),
    )?;
    Ok((started.elapsed().as_secs_f64(), child))
}

fn time_start(config: &Path, cache: &Path, cold: bool, runs: usize) -> Result<f64> {
    let mut times = Vec::new();
    for _ in 0..runs {
        if cold {
            let _ = std::fs::remove_dir_all(cache);
        }
        let (elapsed, mut child) = start_run(config, cache)?;
        terminate(&mut child)?;
        times.push(elapsed);
    }
    Ok(quantile(&sorted(times), 0.5))
}

/// Start time with one big (Python or JavaScript) plugin, cold and warm compile cache.
fn start_one_plugin(
    scratch: &Path,
    report: &mut Report,
    language: &str,
    component: &str,
) -> Result<()> {
    let config = scratch.join(format!("{component}.yaml"));
    write_config(&config, &[component])?;
    let cache = scratch.join(format!("cache-{component}"));
    let cold = time_start(&config, &cache, true, 1)?;
    let warm = time_start(&config, &cache, false, 10)?;
    let size = std::fs::metadata(guest(component))?.len();
    report.row(
        format!(
            "start, the {language} plugin ({:.1} MB), cold compile cache",
            size as f64 / 1e6
        ),
        ms(cold),
        "",
        "",
        None,
    );
    report.row(
        format!("start, the {language} plugin, warm compile cache (median of 10)"),
        ms(warm),
        "",
        "< 50 ms",
        Some(warm < 0.05),
    );
    Ok(())
}

/// The 10 Rust plugins pushed to `registry` and started by `oci://` reference: once with an
/// empty store and cache (pulled and compiled), then from the local store, beside the same
/// plugins as files (`files_warm`).
fn start_from_the_store(
    scratch: &Path,
    report: &mut Report,
    registry: &str,
    files_warm: f64,
) -> Result<()> {
    let mut yaml = String::from("plugins: [aws]\nmonitors:\n");
    for plugin in TEN_PLUGINS {
        let reference = format!("oci://{registry}/bench/{}:1", plugin.replace('_', "-"));
        let status = Command::new(BIN)
            .args([
                "push",
                guest(plugin).to_str().context("guest path")?,
                &reference,
            ])
            .stdout(Stdio::null())
            .status()?;
        anyhow::ensure!(status.success(), "sentinela push {reference} failed");
        yaml += &format!(
            "  - name: {}\n    plugin: {reference}\n    search_cron: \"0 0 1 1 *\"\n",
            plugin.replace('_', "-")
        );
    }
    let config = scratch.join("ten-oci.yaml");
    std::fs::write(&config, yaml)?;
    let cache = scratch.join("cache-ten-oci");
    let _ = std::fs::remove_file(scratch.join("ten-oci.lock"));
    let cold = time_start(&config, &cache, true, 1)?;
    let warm = time_start(&config, &cache, false, 10)?;
    report.row(
        "start, the 10 Rust plugins from an OCI registry, empty store and cache",
        ms(cold),
        "",
        "",
        None,
    );
    report.row(
        "start, the 10 Rust plugins from the local OCI store, warm cache (median of 10)",
        ms(warm),
        format!("{} as files", ms(files_warm)),
        "≤ 1.1× files",
        Some(warm <= files_warm * 1.1),
    );
    Ok(())
}

pub(super) fn start(scratch: &Path, report: &mut Report) -> Result<()> {
    let ten = scratch.join("ten.yaml");
    write_config(&ten, &TEN_PLUGINS)?;
    let cache = scratch.join("cache-ten");
    let cold = time_start(&ten, &cache, true, 3)?;
    time_start(&ten, &cache, false, 1)?;
    let warm = time_start(&ten, &cache, false, 10)?;
    report.row(
        "start, 10 Rust plugins, cold compile cache (median of 3)",
        ms(cold),
        "",
        "",
        None,
    );
    report.row(
        "start, 10 Rust plugins, warm compile cache (median of 10)",
        ms(warm),
        "",
        "< 100 ms",
        Some(warm < 0.1),
    );

    if let Ok(registry) = std::env::var("SENTINELA_BENCH_REGISTRY") {
        start_from_the_store(scratch, report, &registry, warm)?;
    }
    for (language, component) in [
        ("Python", "sqs_backlog_py"),
        ("JavaScript", "sqs_backlog_js"),
    ] {
        start_one_plugin(scratch, report, language, component)?;
    }
    report.note(
        "start: wall time from spawning `sentinela run` to its \"sentinela running\" log line \
         (config read, engine, plugins loaded and pre-instantiated, runtime started)",
    );
    Ok(())
}

pub(super) fn memory(scratch: &Path, report: &mut Report) -> Result<()> {
    let ten = scratch.join("ten.yaml");
    write_config(&ten, &TEN_PLUGINS)?;
    let cache = scratch.join("cache-ten");
    time_start(&ten, &cache, false, 1)?; // fill the cache
    let (_, mut child) = start_run(&ten, &cache)?;
    // Idle means: started, nothing due. Give the runtime a moment to settle, then read.
    std::thread::sleep(Duration::from_secs(2));
    let rss = rss_kib(child.id())? as f64 / 1024.0;
    terminate(&mut child)?;
    report.row(
        "idle RSS, `sentinela run` with 10 plugins loaded",
        format!("{rss:.1} MiB"),
        "",
        "< 50 MB",
        Some(rss * 1.048_576 < 50.0),
    );
    Ok(())
}

//! Sections 4 and 5: start time (plugin files, the local OCI store, the big Python and
//! JavaScript plugins) and idle memory.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use super::{TEN_PLUGINS, anon_kib, guest, ms, rss_kib, terminate};
use crate::report::{Report, quantile, sorted};

/// A config of `plugins` monitors that never come due on their own, compiled with Cranelift
/// before they run (`compile.first_tier: optimized`): these rows measure the compile cache.
fn write_config(path: &Path, plugins: &[&str]) -> Result<()> {
    let mut yaml = String::from("plugins: [aws]\ncompile:\n  first_tier: optimized\nmonitors:\n");
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

/// `sentinela run CONFIG` until every monitor runs: its "sentinela running" line and, for
/// each plugin the cache lacked (compiled in the background while the others run), its
/// monitor's "monitor started" line. The wall time, and the child.
fn start_run(config: &Path, cache: &Path) -> Result<(f64, Child)> {
    let started = Instant::now();
    let cache = cache.to_str().context("cache path is not UTF-8")?;
    let (mut child, stderr) =
        super::spawn_json_run(config, &[], &[("SENTINELA_CACHE_DIR", cache)])?;
    let lines = log_lines(stderr);
    let deadline = started + Duration::from_secs(300);
    let (mut running, mut compiling) = (false, 0u64);
    while !running || compiling > 0 {
        let left = deadline.saturating_duration_since(Instant::now());
        let Ok(line) = lines.recv_timeout(left) else {
            let _ = terminate(&mut child);
            anyhow::bail!("sentinela did not start every monitor within 300 s");
        };
        let Ok(event) = serde_json::from_str::<serde_json::Value>(&line) else {
            continue;
        };
        match event_field(&event, "message").unwrap_or("") {
            "sentinela running" => running = true,
            "monitor started: its plugin is compiled" => compiling -= 1,
            message if message.starts_with("compiling plugins the compile cache lacks") => {
                compiling += event["monitors"].as_u64().unwrap_or(0)
            }
            message if message.starts_with("monitor not run") => {
                let _ = terminate(&mut child);
                anyhow::bail!("{line}");
            }
            _ => {}
        }
    }
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
    let mut yaml = String::from("plugins: [aws]\ncompile:\n  first_tier: optimized\nmonitors:\n");
    for plugin in TEN_PLUGINS {
        let reference = format!("oci://{registry}/bench/{}:1", plugin.replace('_', "-"));
        let status = Command::new(super::bench_bin())
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
        "start: wall time from spawning `sentinela run` until every monitor runs: its \
         \"sentinela running\" log line (config read, engine, cached plugins loaded and \
         pre-instantiated, runtime started) and, for each plugin the cache lacked (compiled in \
         the background meanwhile), its \"monitor started\" line",
    );
    first_tier(scratch, report)
}

/// The first tier: a plugin the cache lacks, from nothing to its first finished call, on the
/// baseline tier and with Cranelift only; and a changed plugin file going live under `run`.
fn first_tier(scratch: &Path, report: &mut Report) -> Result<()> {
    for (language, component) in [("Python", "steady_py"), ("JavaScript", "steady_js")] {
        let mut took = Vec::new();
        for tier in ["baseline", "optimized"] {
            let config = scratch.join(format!("first-call-{component}-{tier}.yaml"));
            std::fs::write(
                &config,
                format!(
                    "compile:\n  first_tier: {tier}\nmonitors:\n  - name: first\n    plugin: {}\n",
                    guest(component).display()
                ),
            )?;
            let cache = scratch.join(format!("cache-first-call-{component}-{tier}"));
            let _ = std::fs::remove_dir_all(&cache);
            let started = Instant::now();
            let out = Command::new(super::bench_bin())
                .args([
                    "invoke",
                    config.to_str().context("config path")?,
                    "first",
                    "search",
                ])
                .env("SENTINELA_CACHE_DIR", &cache)
                .env_remove("RUST_LOG")
                .stdin(Stdio::null())
                .output()?;
            anyhow::ensure!(
                out.status.success(),
                "invoke {component} on the {tier} tier failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            took.push(started.elapsed().as_secs_f64());
        }
        let (baseline, cranelift) = (took[0], took[1]);
        let size = std::fs::metadata(guest(component))?.len();
        report.row(
            format!(
                "first finished call, the {language} plugin ({:.1} MB), empty cache, baseline tier",
                size as f64 / 1e6
            ),
            format!(
                "{} ({:.2}× Cranelift only)",
                ms(baseline),
                baseline / cranelift
            ),
            format!("{} Cranelift only", ms(cranelift)),
            "≤ 2 s and ≤ 0.1× Cranelift only",
            Some(baseline <= 2.0 && baseline <= cranelift / 10.0),
        );
    }
    twenty_uncached_python(scratch, report)?;
    changed_plugin_goes_live(scratch, report)?;
    report.note(
        "first finished call: wall time of `sentinela invoke CONFIG first search` with an empty \
         compile cache, `compile.first_tier: baseline` (Winch) against `optimized` (Cranelift)",
    );
    Ok(())
}

/// `component` with a custom section appended: other bytes (another SHA-256, so not in any
/// cache), the same behaviour.
fn distinct_copy(component: &[u8], tag: &str) -> Vec<u8> {
    let mut copy = component.to_vec();
    let name = b"bench";
    copy.extend_from_slice(&[0, (1 + name.len() + tag.len()) as u8, name.len() as u8]);
    copy.extend_from_slice(name);
    copy.extend_from_slice(tag.as_bytes());
    copy
}

/// The string `name` of a JSON log event, from its fields or its innermost span that has it.
fn event_field<'a>(event: &'a serde_json::Value, name: &str) -> Option<&'a str> {
    event.get(name).and_then(|v| v.as_str()).or_else(|| {
        event
            .get("spans")?
            .as_array()?
            .iter()
            .rev()
            .find_map(|span| span.get(name)?.as_str())
    })
}

/// `run` with a cached Rust monitor due every second and 20 distinct Python plugins the
/// cache lacks, each due every second too: the time until all 20 have finished a first
/// search, and the cached monitor's schedule lag meanwhile. Then the same 20 on a new host
/// whose `shared_cache_dir` holds another host's compiled code (an executor joining a fleet).
fn twenty_uncached_python(scratch: &Path, report: &mut Report) -> Result<()> {
    const PLUGINS: usize = 20;
    let dir = scratch.join("twenty-python");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let cache = dir.join("cache");
    let cached = format!(
        "  - name: cached\n    plugin: {}\n    search_cron: \"* * * * * *\"\n",
        guest("steady").display()
    );
    check(
        &dir.join("warm.yaml"),
        &format!("compile:\n  first_tier: optimized\nmonitors:\n{cached}"),
        &cache,
    )?;
    // Distinct files, as 20 different Python monitors are: componentize-py gives each the
    // same code (CPython) and its own data, so appending a section changes what a compile
    // of each costs nothing.
    let python = std::fs::read(guest("steady_py"))?;
    let mut monitors = String::new();
    for i in 0..PLUGINS {
        let plugin = dir.join(format!("python-{i}.wasm"));
        std::fs::write(&plugin, distinct_copy(&python, &format!("python-{i}")))?;
        monitors += &format!(
            "  - name: python-{i}\n    plugin: {}\n    search_cron: \"* * * * * *\"\n",
            plugin.display()
        );
    }
    let config = dir.join("config.yaml");
    std::fs::write(&config, format!("monitors:\n{cached}{monitors}"))?;
    let (all_ran, lag_ms) = until_all_searched(&config, &cache, PLUGINS)?;
    report.row(
        format!(
            "{PLUGINS} distinct uncached Python monitors, from the start to all {PLUGINS} \
             searches finished"
        ),
        format!("{all_ran:.1} s"),
        "",
        "≤ 10 s",
        Some(all_ran <= 10.0),
    );
    let p99 = if lag_ms.is_empty() {
        f64::NAN
    } else {
        quantile(&lag_ms, 0.99)
    };
    report.row(
        "a cached monitor due every second, meanwhile: schedule lag p99",
        format!("{p99:.1} ms"),
        format!("{} tasks", lag_ms.len()),
        "< 50 ms",
        Some(!lag_ms.is_empty() && p99 < 50.0),
    );

    // Another host compiled them into the fleet's shared directory.
    let shared = dir.join("shared");
    let shared_config = format!("shared_cache_dir: {}\n", shared.display());
    check(
        &dir.join("fill-shared.yaml"),
        &format!("{shared_config}compile:\n  first_tier: optimized\nmonitors:\n{monitors}"),
        &dir.join("cache-of-the-other-host"),
    )?;
    let config = dir.join("joining.yaml");
    std::fs::write(&config, format!("{shared_config}monitors:\n{monitors}"))?;
    let (all_ran, _) = until_all_searched(&config, &dir.join("cache-new-host"), PLUGINS)?;
    report.row(
        format!(
            "the same {PLUGINS} on a new host, compiled code in its shared_cache_dir: to all \
             {PLUGINS} searches finished"
        ),
        format!("{all_ran:.1} s"),
        "",
        "",
        None,
    );
    Ok(())
}

/// Writes `yaml` to `config` and runs `sentinela check` on it with the compile cache `cache`.
fn check(config: &Path, yaml: &str, cache: &Path) -> Result<()> {
    std::fs::write(config, yaml)?;
    let out = Command::new(super::bench_bin())
        .args(["check", config.to_str().context("config path")?])
        .env("SENTINELA_CACHE_DIR", cache)
        .env_remove("RUST_LOG")
        .output()?;
    anyhow::ensure!(
        out.status.success(),
        "check {} failed: {}",
        config.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}

/// Runs `config` until `plugins` monitors named `python-*` have each finished a search: the
/// time from the spawn, and the `lag_ms` of the monitor named `cached` meanwhile (sorted).
fn until_all_searched(config: &Path, cache: &Path, plugins: usize) -> Result<(f64, Vec<f64>)> {
    let cache = cache.to_str().context("cache path is not UTF-8")?;
    let started = Instant::now();
    let (mut child, stderr) =
        super::spawn_json_run(config, &[], &[("SENTINELA_CACHE_DIR", cache)])?;
    let lines = log_lines(stderr);
    let result = (|| {
        let deadline = started + Duration::from_secs(600);
        let mut finished = std::collections::HashSet::new();
        let mut lag_ms = Vec::new();
        while finished.len() < plugins {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = lines
                .recv_timeout(left)
                .map_err(|_| anyhow::anyhow!("not all {plugins} Python monitors ran in time"))?;
            let Ok(event) = serde_json::from_str::<serde_json::Value>(&line) else {
                continue;
            };
            if event_field(&event, "message") != Some("task finished") {
                continue;
            }
            match event_field(&event, "monitor") {
                Some("cached") => lag_ms.extend(event["lag_ms"].as_f64()),
                Some(name) if name.starts_with("python-") => {
                    finished.insert(name.to_owned());
                }
                _ => {}
            }
        }
        anyhow::Ok((started.elapsed().as_secs_f64(), sorted(lag_ms)))
    })();
    terminate(&mut child)?;
    result
}

/// `run` with the Python plugin on the optimized tier, then a changed version of its file
/// (a custom section appended: new bytes, not in the cache) renamed into place: the time from
/// the rename to the "plugin reloaded" log line.
fn changed_plugin_goes_live(scratch: &Path, report: &mut Report) -> Result<()> {
    let dir = scratch.join("changed-plugin");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let original = std::fs::read(guest("steady_py"))?;
    let plugin = dir.join("plugin.wasm");
    std::fs::write(&plugin, &original)?;
    let config = dir.join("config.yaml");
    std::fs::write(
        &config,
        format!(
            "monitors:\n  - name: changed\n    plugin: {}\n    search_cron: \"* * * * * *\"\n",
            plugin.display()
        ),
    )?;
    let cache = dir.join("cache");
    let cache = cache.to_str().context("cache path is not UTF-8")?;
    let (mut child, stderr) =
        super::spawn_json_run(&config, &[], &[("SENTINELA_CACHE_DIR", cache)])?;
    let lines = log_lines(stderr);
    let result = (|| {
        wait_for(&lines, "plugin tiered up", Duration::from_secs(300))?;
        let changed = distinct_copy(&original, "changed");
        let staged = dir.join("plugin.wasm.new");
        std::fs::write(&staged, &changed)?;
        let written = Instant::now();
        std::fs::rename(&staged, &plugin)?;
        wait_for(&lines, "plugin reloaded", Duration::from_secs(120))?;
        anyhow::Ok(written.elapsed().as_secs_f64())
    })();
    terminate(&mut child)?;
    let live = result?;
    report.row(
        "a changed Python plugin file, from the write to its new version running",
        ms(live),
        format!(
            "{} of it the reload's quiet period after a rename",
            ms(0.05)
        ),
        "≤ 2 s",
        Some(live <= 2.0),
    );
    Ok(())
}

/// The child's log lines, as they come.
fn log_lines(stderr: std::process::ChildStderr) -> std::sync::mpsc::Receiver<String> {
    use std::io::BufRead;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        // Read to the end even when nobody listens any more: the child never blocks on a
        // full pipe or fails writing to a closed one.
        for line in std::io::BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            let _ = tx.send(line);
        }
    });
    rx
}

/// Waits for a line holding `text`, failing after `timeout`.
fn wait_for(
    lines: &std::sync::mpsc::Receiver<String>,
    text: &str,
    timeout: Duration,
) -> Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match lines.recv_timeout(left) {
            Ok(line) if line.contains(text) => return Ok(()),
            Ok(_) => {}
            Err(_) => anyhow::bail!("sentinela did not log '{text}' within {timeout:?}"),
        }
    }
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
    let anon = anon_kib(child.id())? as f64 / 1024.0;
    terminate(&mut child)?;
    report.row(
        "idle RSS, `sentinela run` with 10 plugins loaded",
        format!("{rss:.1} MiB"),
        format!(
            "{anon:.1} MiB of it anonymous, {:.1} MiB clean pages of mapped files (the binary's \
             code above all)",
            rss - anon
        ),
        "< 25 MiB",
        Some(rss < 25.0),
    );
    Ok(())
}

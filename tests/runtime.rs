//! `sentinela run`: cron schedules drive search, update and is-solved; issues are created,
//! updated and solved as structured log events; SIGTERM drains and exits 0.

mod common;

use std::time::Duration;

use common::config::{Monitor, TestConfig};
use common::*;

#[test]
fn monitors_raise_update_and_solve_issues_on_schedule() {
    let dir = scratch_dir("run-blink");
    let blink = Monitor::new("blink", "blink")
        .search_every_second()
        .update_every_second();
    let config = TestConfig::new().monitor(blink).write(&dir);
    let run = Running::start(&config, &[]);
    let timeout = Duration::from_secs(60);
    let created = run.wait_for("an issue created", timeout, |e| {
        issue_event(e, "created").is_some()
    });
    let id = field(&created, "issue_id").to_owned();
    assert_eq!(field(&created, "monitor"), "blink");
    run.wait_for("the issue updated", timeout, |e| {
        issue_event(e, "updated") == Some(&id)
    });
    run.wait_for("the issue solved", timeout, |e| {
        issue_event(e, "solved") == Some(&id)
    });

    let (status, events) = run.terminate(Duration::from_secs(30));
    assert!(status.success(), "{status}\n{}", dump(&events));
    // Each window's issue is created once, however many searches saw it.
    let creations = events
        .iter()
        .filter(|e| issue_event(e, "created") == Some(&id))
        .count();
    assert_eq!(creations, 1, "{}", dump(&events));
    let solutions = events
        .iter()
        .filter(|e| issue_event(e, "solved") == Some(&id))
        .count();
    assert_eq!(solutions, 1, "{}", dump(&events));
}

#[test]
fn sigterm_waits_for_running_tasks_and_exits_zero() {
    let dir = scratch_dir("run-drain");
    let spinner = Monitor::new("spinner", "hostile_infinite_loop")
        .search_every_second()
        .set("limits.timeout", "3s");
    let config = TestConfig::new().monitor(spinner).write(&dir);
    let run = Running::start(&config, &[]);
    run.wait_for("startup", Duration::from_secs(60), |e| {
        field(e, "message") == "sentinela running"
    });
    // Wait for the first search to start (its trigger is logged as the task begins to run).
    run.wait_for("a deadline", Duration::from_secs(60), |e| {
        field(e, "message").contains("exceeded its deadline")
    });
    let (status, events) = run.terminate(Duration::from_secs(30));
    assert!(status.success(), "{status}\n{}", dump(&events));
    let log = dump(&events);
    assert!(
        log.contains("shutting down") && log.contains("sentinela stopped"),
        "{log}"
    );
}

#[test]
fn the_demo_config_runs_its_example_monitors() {
    // The demo's own config, in a scratch directory so that its issue store starts empty
    // (next to config/demo.yaml it would hold the issues of earlier runs).
    let demo = std::fs::read_to_string(repo_root().join("config/demo.yaml")).unwrap();
    let dist = repo_root().join("guests/dist");
    let demo = demo.replace("../guests/dist", dist.to_str().unwrap());
    let config = write_config(&scratch_dir("demo"), &demo);
    let run = Running::start(&config, &[]);
    let timeout = Duration::from_secs(60);
    // cert-expiry's inventory holds a certificate that expired in 2026: a search raises it.
    run.wait_for("cert-expiry search", timeout, |e| {
        field(e, "monitor") == "cert-expiry" && issue_event(e, "created").is_some()
    });
    run.wait_for("stuck-orders task", timeout, |e| {
        field(e, "monitor") == "stuck-orders" && field(e, "message") == "task finished"
    });
    let (status, events) = run.terminate(Duration::from_secs(30));
    assert!(status.success(), "{}", dump(&events));
}

/// `sentinela monitors` lists the monitors and switches one off or on in the store: a
/// disabled monitor is not scheduled, and a running host notices a switch made by another
/// process within its refresh interval.
#[test]
fn a_disabled_monitor_is_not_scheduled_until_enabled_again() {
    let dir = scratch_dir("run-disable");
    let config = TestConfig::new()
        .monitor(Monitor::new("steady", "steady").search_every_second())
        .monitor(
            Monitor::new("blink", "blink")
                .set("id", 7)
                .search_every_second(),
        )
        .write(&dir);
    let config_arg = config.to_str().unwrap();
    let (status, stdout, stderr) =
        output(&mut sentinela(&["monitors", config_arg, "disable", "7"]));
    assert!(status.success(), "{stdout}{stderr}");
    assert!(stdout.contains("blink disabled"), "{stdout}");
    let (status, stdout, _) = output(&mut sentinela(&["monitors", config_arg]));
    assert!(status.success());
    let row = |name: &str| {
        stdout
            .lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_default()
            .split_whitespace()
            .collect::<Vec<_>>()
    };
    assert_eq!(row("blink")[..3], ["blink", "7", "disabled"], "{stdout}");
    assert_eq!(row("steady")[..3], ["steady", "-", "enabled"], "{stdout}");

    let finished = |events: &[serde_json::Value], monitor: &str| {
        events
            .iter()
            .filter(|e| field(e, "monitor") == monitor && field(e, "message") == "task finished")
            .count()
    };
    let run = Running::start(&config, &[]);
    let timeout = Duration::from_secs(60);
    let switched = |e: &serde_json::Value, state: &str| {
        field(e, "monitor") == "blink"
            && field(e, "message") == format!("monitor {state} (switched in the store)")
    };
    run.wait_for("blink said disabled", timeout, |e| switched(e, "disabled"));
    run.wait_until("three steady searches", timeout, |events| {
        finished(events, "steady") >= 3
    });
    assert_eq!(
        finished(&run.events(), "blink"),
        0,
        "{}",
        dump(&run.events())
    );

    let (status, stdout, stderr) =
        output(&mut sentinela(&["monitors", config_arg, "enable", "blink"]));
    assert!(status.success(), "{stdout}{stderr}");
    run.wait_for("blink said enabled", timeout, |e| switched(e, "enabled"));
    run.wait_until("blink scheduled again", timeout, |events| {
        finished(events, "blink") >= 1
    });
    let (status, events) = run.terminate(Duration::from_secs(30));
    assert!(status.success(), "{}", dump(&events));
    // Once each: the state is said when it changes, not at each read of the store.
    assert_eq!(events.iter().filter(|e| switched(e, "enabled")).count(), 1);
    assert_eq!(events.iter().filter(|e| switched(e, "disabled")).count(), 1);
}

/// Idle keep-alive connections held open (more than the listener serves at once) cannot
/// starve the liveness probe: the longest idle one is closed for the new connection.
#[test]
fn idle_connections_cannot_starve_healthz() {
    use std::io::{Read, Write};
    let dir = scratch_dir("run-healthz");
    let port = free_port();
    let config = TestConfig::new()
        .set("http.listen", format!("127.0.0.1:{port}"))
        .monitor(Monitor::new("steady", "steady").search_every_second())
        .write(&dir);
    let run = Running::start(&config, &[]);
    let timeout = Duration::from_secs(60);
    run.wait_for("the listener", timeout, |e| {
        field(e, "message") == "serving /healthz, /readyz and /metrics"
    });
    // 100 connections, each answered once and then held open, idle.
    let mut held = Vec::new();
    for _ in 0..100 {
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        stream
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        let mut answer = [0u8; 256];
        let _ = stream.read(&mut answer);
        held.push(stream);
    }
    // 25 liveness probes, each on a new connection, all answered at once.
    for probe in 0..25 {
        let started = std::time::Instant::now();
        assert_eq!(
            http_get(port, "/healthz"),
            (200, "ok\n".into()),
            "probe {probe}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "probe {probe} took {:?}",
            started.elapsed()
        );
    }
    drop(held);
    let (status, events) = run.terminate(Duration::from_secs(30));
    assert!(status.success(), "{}", dump(&events));
}

fn sha256_hex(path: &std::path::Path) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(std::fs::read(path).unwrap())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A plugin file replaced under a running host is swapped in with no failed call, and
/// logged with both hashes; a corrupt replacement keeps the running version.
#[test]
fn a_replaced_plugin_file_is_swapped_in_and_a_corrupt_one_is_not() {
    let dir = scratch_dir("run-reload");
    let plugin = dir.join("monitor.wasm");
    let staged = dir.join("monitor.wasm.new");
    std::fs::copy(guest("steady"), &plugin).unwrap();
    let config = TestConfig::new()
        .monitor(Monitor::with_plugin("swap", &plugin).search_every_second())
        .monitor(Monitor::with_plugin("twin", &plugin))
        .write(&dir);
    let run = Running::start(&config, &[]);
    let timeout = Duration::from_secs(60);
    run.wait_for("the first version's issue", timeout, |e| {
        field(e, "monitor") == "swap" && issue_event(e, "created") == Some("steady")
    });

    // Replaced by a rename, as deploy tools do.
    let before = run.events().len();
    std::fs::copy(guest("blink"), &staged).unwrap();
    std::fs::rename(&staged, &plugin).unwrap();
    let reloaded = |e: &serde_json::Value| field(e, "message") == "plugin reloaded";
    run.wait_until("both monitors' swap", timeout, |events| {
        events[before..].iter().filter(|e| reloaded(e)).count() == 2
    });
    let events = run.events();
    let swaps: Vec<&serde_json::Value> = events[before..].iter().filter(|e| reloaded(e)).collect();
    for swapped in &swaps {
        assert_eq!(field(swapped, "old_sha256"), sha256_hex(&guest("steady")));
        assert_eq!(field(swapped, "new_sha256"), sha256_hex(&guest("blink")));
    }
    let mut names: Vec<&str> = swaps.iter().map(|e| field(e, "monitor")).collect();
    names.sort();
    assert_eq!(names, ["swap", "twin"]);
    // The new file is loaded once for both.
    let second_swap = before
        + events[before..]
            .iter()
            .enumerate()
            .filter(|(_, e)| reloaded(e))
            .nth(1)
            .unwrap()
            .0;
    let loads = events[before..second_swap]
        .iter()
        .filter(|e| !field(e, "cache").is_empty())
        .count();
    assert_eq!(loads, 1, "{}", dump(&events[before..=second_swap]));
    run.wait_for("the second version's issue", timeout, |e| {
        field(e, "monitor") == "swap"
            && issue_event(e, "created").is_some_and(|id| id.starts_with("window-"))
    });

    std::fs::write(&staged, b"\0asm but not really").unwrap();
    std::fs::rename(&staged, &plugin).unwrap();
    run.wait_for("the corrupt file refused", timeout, |e| {
        field(e, "message").contains("cannot be loaded; keeping the running version")
    });
    let seen = run.events().len();
    run.wait_until(
        "two more searches on the running version",
        timeout,
        |events| {
            events[seen..]
                .iter()
                .filter(|e| field(e, "monitor") == "swap" && field(e, "message") == "task finished")
                .count()
                >= 2
        },
    );
    let (status, events) = run.terminate(Duration::from_secs(30));
    assert!(status.success(), "{}", dump(&events));
    assert!(
        !events
            .iter()
            .any(|e| field(e, "message").starts_with("task failed")),
        "{}",
        dump(&events)
    );
    // The refused version is said once per monitor, not again while it stays in place.
    let refusals = events
        .iter()
        .filter(|e| field(e, "message").contains("cannot be loaded; keeping the running version"))
        .count();
    assert_eq!(refusals, 2, "{}", dump(&events));
}

/// `sentinela monitors CONFIG refresh NAME` with the in-process queue runs the monitor's
/// search and update in the command itself, against the config's store; a disabled monitor
/// is not refreshed.
#[test]
fn a_refresh_from_the_command_line_records_what_the_monitor_finds() {
    let dir = scratch_dir("run-refresh");
    let config = TestConfig::new()
        .monitor(Monitor::new("steady", "steady"))
        .write(&dir);
    let config_arg = config.to_str().unwrap();
    let last_run = || {
        let (status, stdout, stderr) = output(&mut sentinela(&["monitors", config_arg]));
        assert!(status.success(), "{stderr}");
        let row = stdout
            .lines()
            .find(|l| l.starts_with("steady "))
            .unwrap()
            .to_owned();
        // The columns after the crons: LAST_RUN, then CALLS.
        let columns: Vec<String> = row
            .split("  ")
            .map(str::trim)
            .filter(|c| !c.is_empty())
            .map(str::to_owned)
            .collect();
        columns[columns.len() - 2..].join(" | ")
    };
    assert_eq!(last_run(), "never | -");
    let (status, stdout, stderr) = output(&mut sentinela(&[
        "monitors", config_arg, "refresh", "steady",
    ]));
    assert!(status.success(), "{stdout}{stderr}");
    assert!(stdout.contains("steady refreshed"), "{stdout}");
    let shown = last_run();
    assert!(
        shown.starts_with("update ok ") && shown.contains("s ago | "),
        "{shown}"
    );
    assert!(
        shown.ends_with("| search ok, update ok, is-solved ok"),
        "{shown}"
    );
    let (status, stdout, stderr) = output(&mut sentinela(&["issues", config_arg, "--json"]));
    assert!(status.success(), "{stderr}");
    let issues: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(issues[0]["id"], "steady", "{issues}");
    assert_eq!(issues[0]["status"], "active", "{issues}");

    let (status, _, _) = output(&mut sentinela(&[
        "monitors", config_arg, "disable", "steady",
    ]));
    assert!(status.success());
    let (status, stdout, stderr) = output(&mut sentinela(&[
        "monitors", config_arg, "refresh", "steady",
    ]));
    assert!(!status.success(), "{stdout}");
    assert!(
        stderr.contains("steady is disabled; enable it first"),
        "{stderr}"
    );
}

fn hangup(run: &Running) {
    let pid = run.pid().to_string();
    assert!(
        std::process::Command::new("kill")
            .args(["-HUP", &pid])
            .status()
            .unwrap()
            .success()
    );
}

/// `SIGHUP` re-reads the config: monitors added, removed and changed (here its settings) all
/// at once; the plugin watcher follows a new monitor's file; a config whose other sections
/// changed, or with a plugin that cannot load, is refused whole and the running set stays.
#[test]
fn sighup_reloads_the_monitors_all_or_nothing() {
    let dir = scratch_dir("run-sighup");
    let new_dir = dir.join("new");
    std::fs::create_dir_all(&new_dir).unwrap();
    let gamma_plugin = new_dir.join("gamma.wasm");
    std::fs::copy(guest("steady"), &gamma_plugin).unwrap();
    let beta = |threshold: i64| {
        Monitor::new("beta", "settings_probe")
            .search_every_second()
            .update_every_second()
            .set("settings.threshold", threshold)
    };
    let base = TestConfig::new().set("executor.concurrency", 2);
    let config = base
        .clone()
        .monitor(Monitor::new("alpha", "steady").search_every_second())
        .monitor(beta(1))
        .write(&dir);
    let run = Running::start(&config, &[]);
    let timeout = Duration::from_secs(60);
    for monitor in ["alpha", "beta"] {
        run.wait_for(&format!("{monitor}'s issue"), timeout, |e| {
            field(e, "monitor") == monitor && issue_event(e, "created").is_some()
        });
    }

    // alpha removed, beta's settings changed, gamma added.
    base.clone()
        .monitor(beta(2))
        .monitor(Monitor::with_plugin("gamma", &gamma_plugin).search_every_second())
        .write(&dir);
    hangup(&run);
    let reloaded = run.wait_for("the reload", timeout, |e| {
        field(e, "message") == "config reloaded"
    });
    assert_eq!(field(&reloaded, "added"), "gamma");
    assert_eq!(field(&reloaded, "changed"), "beta");
    assert_eq!(field(&reloaded, "removed"), "alpha");
    let at_reload = run.events().len();
    run.wait_for("gamma's issue", timeout, |e| {
        field(e, "monitor") == "gamma" && issue_event(e, "created") == Some("steady")
    });
    // beta's update reads the new setting and changes the issue's data.
    run.wait_for("beta's issue updated with the new setting", timeout, |e| {
        field(e, "monitor") == "beta" && issue_event(e, "updated") == Some("settings")
    });
    run.wait_until("gamma running on", timeout, |events| {
        events[at_reload..]
            .iter()
            .filter(|e| field(e, "monitor") == "gamma" && field(e, "message") == "task finished")
            .count()
            >= 3
    });
    let alpha_after = run.events()[at_reload..]
        .iter()
        .filter(|e| field(e, "monitor") == "alpha" && field(e, "message") == "task finished")
        .count();
    assert!(
        alpha_after <= 1,
        "alpha still runs after its removal: {alpha_after} tasks"
    );

    // The watcher follows the new monitor's file, in a directory it did not watch before.
    let staged = new_dir.join("gamma.wasm.new");
    std::fs::copy(guest("blink"), &staged).unwrap();
    std::fs::rename(&staged, &gamma_plugin).unwrap();
    run.wait_for("gamma's plugin swapped", timeout, |e| {
        field(e, "message") == "plugin reloaded" && field(e, "monitor") == "gamma"
    });

    // Refused whole: another section changed...
    base.clone()
        .set("executor.concurrency", 3)
        .monitor(beta(3))
        .write(&dir);
    hangup(&run);
    let refused = run.wait_for("a refused reload", timeout, |e| {
        field(e, "message").starts_with("config reload refused")
    });
    assert!(
        field(&refused, "message").contains("executor changed; only monitors: can change"),
        "{refused}"
    );
    // ... or a new monitor's plugin does not load.
    let corrupt = dir.join("corrupt.wasm");
    std::fs::write(&corrupt, b"\0asm but not really").unwrap();
    base.clone()
        .monitor(beta(4))
        .monitor(Monitor::with_plugin("delta", &corrupt).search_every_second())
        .write(&dir);
    let seen = run.events().len();
    hangup(&run);
    let refused = run.wait_for("the second refused reload", timeout, |e| {
        field(e, "message").starts_with("config reload refused")
            && field(e, "message").contains("monitor 'delta'")
    });
    assert!(
        field(&refused, "message").contains("corrupt.wasm"),
        "{refused}"
    );
    run.wait_until("gamma and beta running on, unchanged", timeout, |events| {
        let finished = |monitor: &str| {
            events[seen..]
                .iter()
                .filter(|e| {
                    field(e, "monitor") == monitor && field(e, "message") == "task finished"
                })
                .count()
        };
        finished("gamma") >= 2 && finished("beta") >= 2
    });
    let (status, events) = run.terminate(Duration::from_secs(30));
    assert!(status.success(), "{}", dump(&events));
    // Runs are written every 10 s and at shutdown: beta's last one is in the store.
    let (_, stdout, _) = output(&mut sentinela(&["monitors", config.to_str().unwrap()]));
    let beta = stdout
        .lines()
        .find(|l| l.starts_with("beta "))
        .unwrap_or_default();
    assert!(beta.contains(" ok ") && beta.contains(" ago "), "{stdout}");
    assert!(
        !events[seen..]
            .iter()
            .any(|e| field(e, "monitor") == "delta" || field(e, "message") == "config reloaded"),
        "the refused config was applied in part:\n{}",
        dump(&events[seen..])
    );
}

/// `controller.spread`: each monitor runs at a fixed phase of its own within the spread, and
/// each scheduled task's line says how late it started after that (`lag_ms`).
#[test]
fn monitors_run_at_fixed_phases_within_the_spread_and_log_their_lag() {
    let dir = scratch_dir("run-spread");
    let mut config = TestConfig::new().set_yaml("controller", "spread: 800ms");
    let names = ["p0", "p1", "p2", "p3", "p4", "p5"];
    for name in names {
        config = config.monitor(Monitor::new(name, "steady").search_every_second());
    }
    let run = Running::start(&config.write(&dir), &[]);
    // When each search was due: its line's time, less its run time and its lag.
    let due_ms = |e: &serde_json::Value| {
        let at = chrono::DateTime::parse_from_rfc3339(field(e, "timestamp")).ok()?;
        let elapsed = e.get("elapsed_ms")?.as_f64()?;
        let lag = e.get("lag_ms")?.as_f64()?;
        assert!(lag >= 0.0, "{e}");
        Some(at.timestamp_micros() as f64 / 1e3 - elapsed - lag)
    };
    let searches = |events: &[serde_json::Value], name: &str| -> Vec<f64> {
        events
            .iter()
            .filter(|e| field(e, "monitor") == name && field(e, "message") == "task finished")
            .filter_map(due_ms)
            .collect()
    };
    run.wait_until(
        "three searches of each monitor",
        Duration::from_secs(60),
        |events| names.iter().all(|name| searches(events, name).len() >= 3),
    );
    let (status, events) = run.terminate(Duration::from_secs(30));
    assert!(status.success(), "{status}\n{}", dump(&events));
    let mut phases = Vec::new();
    for name in names {
        let due = searches(&events, name);
        // Every search of a monitor was due at the same point of its second, within the
        // spread (give or take the time between a line's measures and its timestamp, which a
        // busy machine can stretch to milliseconds).
        let phase = due[0].rem_euclid(1000.0);
        for at in &due {
            let off = (at - phase).rem_euclid(1000.0);
            assert!(
                off.min(1000.0 - off) < 25.0,
                "{name}: {due:?}\n{}",
                dump(&events)
            );
        }
        // (A phase near 0 may read as just under 1000.)
        assert!(
            !(825.0..=975.0).contains(&phase),
            "{name}: phase {phase} ms"
        );
        phases.push(phase.round() as i64);
    }
    phases.sort_unstable();
    phases.dedup();
    assert!(phases.len() > 1, "every monitor at one phase: {phases:?}");
}

/// A reader of stderr that stops reading (a full pipe, a stalled collector) costs log lines,
/// not tasks: lines are written by a thread of their own, a full queue drops them, and the
/// drops are counted in `/metrics` and reported once the reader is back. What is queued at a
/// SIGTERM is written out.
#[test]
fn a_stalled_log_reader_costs_lines_not_tasks() {
    use std::io::Read;
    let dir = scratch_dir("run-stalled-log");
    let port = free_port();
    let config = TestConfig::new()
        .set_yaml("http", &format!("{{listen: \"127.0.0.1:{port}\"}}"))
        .monitor(
            Monitor::new("flood", "hostile_log_flood")
                .search_every_second()
                .set("limits.log_lines", 20_000)
                .set("limits.log_lines_per_minute", 10_000_000)
                .set("limits.log_bytes", "32MiB"),
        )
        .monitor(Monitor::new("steady", "steady").search_every_second())
        .write(&dir);
    // stderr is a pipe nobody reads until the drops are seen.
    let mut child = sentinela(&["--log-format", "json", "run", config.to_str().unwrap()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let metric = |name: &str, labels: &[(&str, &str)]| {
        let (status, body) = http_get(port, "/metrics");
        (status == 200)
            .then(|| sample(&body, name, labels))
            .flatten()
            .unwrap_or(0.0)
    };
    let steady_ok = || {
        metric(
            "sentinela_tasks_total",
            &[("monitor", "steady"), ("task", "search"), ("outcome", "ok")],
        )
    };
    poll_until("log lines dropped", Duration::from_secs(60), || {
        metric("sentinela_log_lines_dropped_total", &[]) > 0.0
    });
    let ran = steady_ok();
    poll_until(
        "two more searches of the other monitor while stderr is not read",
        Duration::from_secs(30),
        || steady_ok() >= ran + 2.0,
    );

    // The flood stops and the reader is back: the drops are reported (the report needs room
    // in the queue too; the metric above counts them whatever happens).
    let (status, stdout, stderr) = output(&mut sentinela(&[
        "monitors",
        config.to_str().unwrap(),
        "disable",
        "flood",
    ]));
    assert!(status.success(), "{stdout}{stderr}");
    let mut stderr = child.stderr.take().unwrap();
    let (lines, got) = std::sync::mpsc::channel::<String>();
    let reader = std::thread::spawn(move || {
        let mut chunk = vec![0; 1 << 16];
        loop {
            match stderr.read(&mut chunk) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    let _ = lines.send(String::from_utf8_lossy(&chunk[..n]).into_owned());
                }
            }
        }
    });
    let mut seen = String::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while !seen.contains("\"message\":\"log lines dropped") {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        let Ok(text) = got.recv_timeout(left) else {
            panic!("no 'log lines dropped' warning within 60 s");
        };
        // Keep only the tail: the flood is large.
        seen.push_str(&text);
        keep_tail(&mut seen);
    }
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let status = child.wait().unwrap();
    assert!(status.success(), "{status}");
    let mut tail = String::new();
    while let Ok(text) = got.recv_timeout(Duration::from_secs(5)) {
        tail.push_str(&text);
        keep_tail(&mut tail);
    }
    reader.join().unwrap();
    assert!(
        tail.contains("\"message\":\"sentinela stopped\""),
        "the queue was not written out at exit: {}",
        &tail[tail.floor_char_boundary(tail.len().saturating_sub(2000))..]
    );
}

/// Cuts `text` to its last 64 KiB or so once it passes 1 MiB.
fn keep_tail(text: &mut String) {
    if text.len() > 1 << 20 {
        let cut = text.floor_char_boundary(text.len() - (1 << 16));
        text.drain(..cut);
    }
}

/// A monitor whose `is-solved` fails on every call is seen failing: its tasks do not say
/// "task finished", `/metrics` counts its calls by outcome and marks it failing (once, with
/// one log line), `sentinela monitors` shows it with its last error; the monitor beside it
/// keeps its schedule.
#[test]
fn a_monitor_that_cannot_solve_its_issues_is_seen_failing() {
    let dir = scratch_dir("run-unsolvable");
    let port = free_port();
    let config = TestConfig::new()
        .set("http.listen", format!("127.0.0.1:{port}"))
        .monitor(
            Monitor::new("unsolvable", "unsolvable")
                .search_every_second()
                .update_every_second(),
        )
        .monitor(Monitor::new("steady", "steady").search_every_second())
        .write(&dir);
    let run = Running::start(&config, &[]);
    let timeout = Duration::from_secs(60);
    let failing = |e: &serde_json::Value| {
        field(e, "monitor") == "unsolvable" && field(e, "message").starts_with("monitor failing")
    };
    run.wait_for("unsolvable marked failing", timeout, failing);
    let (status, metrics) = http_get(port, "/metrics");
    assert_eq!(status, 200);
    let series = |name: &str, labels: &[(&str, &str)]| sample(&metrics, name, labels);
    assert_eq!(
        series("sentinela_monitor_failing", &[("monitor", "unsolvable")]),
        Some(1.0),
        "{metrics}"
    );
    assert!(
        series(
            "sentinela_calls_total",
            &[
                ("monitor", "unsolvable"),
                ("export", "is-solved"),
                ("outcome", "error")
            ]
        )
        .is_some_and(|n| n >= 3.0),
        "{metrics}"
    );
    assert!(
        series(
            "sentinela_calls_total",
            &[
                ("monitor", "steady"),
                ("export", "search"),
                ("outcome", "ok")
            ]
        )
        .is_some_and(|n| n >= 1.0),
        "{metrics}"
    );
    assert_eq!(
        series("sentinela_monitor_failing", &[("monitor", "steady")]),
        None,
        "{metrics}"
    );
    let seen = run.events().len();
    run.wait_until("two more steady searches", timeout, |events| {
        events[seen..]
            .iter()
            .filter(|e| field(e, "monitor") == "steady" && field(e, "message") == "task finished")
            .count()
            >= 2
    });
    let (status, events) = run.terminate(Duration::from_secs(30));
    assert!(status.success(), "{}", dump(&events));
    // Its updates ran, and said their calls failed; "failing" was said once.
    let update_ends: Vec<&str> = events
        .iter()
        .filter(|e| field(e, "monitor") == "unsolvable" && field(e, "task") == "Update")
        .map(|e| field(e, "message"))
        .filter(|m| m.starts_with("task "))
        .collect();
    // (An update before the first search found the issue had nothing to ask.)
    let first_failed = update_ends
        .iter()
        .position(|m| *m == "task ended with 1 failed call(s)")
        .unwrap_or_else(|| panic!("{update_ends:?}"));
    assert!(
        update_ends[first_failed..]
            .iter()
            .all(|m| *m == "task ended with 1 failed call(s)"),
        "{update_ends:?}"
    );
    assert_eq!(events.iter().filter(|e| failing(e)).count(), 1);

    let (status, stdout, stderr) = output(&mut sentinela(&["monitors", config.to_str().unwrap()]));
    assert!(status.success(), "{stderr}");
    let row = stdout
        .lines()
        .find(|l| l.starts_with("unsolvable "))
        .unwrap_or_else(|| panic!("{stdout}"));
    assert!(row.contains("FAILING ("), "{stdout}");
    assert!(row.contains("is-solved error"), "{stdout}");
    assert!(
        stdout.contains(
            "    last error: monitor 'unsolvable': is-solved returned an error: KeyError"
        ),
        "{stdout}"
    );
    let steady = stdout.lines().find(|l| l.starts_with("steady ")).unwrap();
    assert!(steady.ends_with("search ok"), "{stdout}");
}

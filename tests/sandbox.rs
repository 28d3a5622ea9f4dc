//! Every rule of the sandbox has a hostile guest that tries to break it. Each attack must fail
//! with a clear error, and the host and a well-behaved monitor beside it must keep working.

mod common;

use std::time::Duration;

use common::config::{Monitor, TestConfig};
use common::*;
use serde_json::Value;

/// A config with one monitor per hostile guest plus `steady`, all searched every second.
fn hostile_config(dir: &std::path::Path, hostile: &[&str]) -> std::path::PathBuf {
    let steady = Monitor::new("steady", "steady").search_every_second();
    let mut config = TestConfig::new()
        .set("executor.concurrency", 4)
        .monitor(steady);
    for name in hostile {
        // The flood must end by itself (64 MiB of output takes a debug build a second or
        // two): its deadline is not what it tests.
        let timeout = if *name == "log_flood" { "20s" } else { "2s" };
        let monitor = Monitor::new(&name.replace('_', "-"), &format!("hostile_{name}"))
            .search_every_second()
            .set("limits.memory", "32MiB")
            .set("limits.timeout", timeout)
            .set("limits.log_bytes", "16KiB");
        config = config.monitor(monitor);
    }
    config.write(dir)
}

/// A hostile guest whose `search` must fail: with this error through `invoke`, and with a
/// `task failed` line containing `in_run` when it runs beside others.
struct FailingCall {
    guest: &'static str,
    error: &'static str,
    in_run: &'static str,
}

const FAILING_CALLS: &[FailingCall] = &[
    FailingCall {
        guest: "infinite_loop",
        error: "monitor 'infinite-loop': search exceeded its deadline of 2s and was stopped",
        in_run: "exceeded its deadline",
    },
    FailingCall {
        guest: "memory_bomb",
        error: "monitor 'memory-bomb': search was stopped: memory limit of 33554432 bytes reached",
        in_run: "memory limit",
    },
    FailingCall {
        guest: "deep_recursion",
        error: "monitor 'deep-recursion': search trapped: wasm stack overflow",
        in_run: "stack overflow",
    },
    FailingCall {
        guest: "panic",
        error: "monitor 'panic': search panicked: deliberate panic: hostile guest gives up (at hostile/panic/src/lib.rs:",
        in_run: "panicked",
    },
    FailingCall {
        guest: "unreachable",
        error: "monitor 'unreachable': search trapped: wasm `unreachable` instruction executed",
        in_run: "unreachable",
    },
];

/// Invokes a hostile guest's `search` once; returns (success, stdout, stderr).
fn invoke(name: &str, envs: &[(&str, &str)]) -> (bool, String, String) {
    let dir = scratch_dir(&format!("invoke-{name}"));
    let config = hostile_config(&dir, &[name]);
    let (status, stdout, stderr) = output(
        sentinela(&[
            "invoke",
            config.to_str().unwrap(),
            &name.replace('_', "-"),
            "search",
        ])
        .envs(envs.iter().copied()),
    );
    assert!(
        !stderr.contains("panicked at") || name == "panic",
        "the host panicked:\n{stderr}"
    );
    (status.success(), stdout, stderr)
}

#[test]
fn env_vars_and_args_are_invisible() {
    let (ok, stdout, stderr) = invoke(
        "env_read",
        &[
            ("AWS_APPLICATION_SECRET_ACCESS_KEY", "wJalrXUtnFEMI/K7MDENG"),
            ("HOME", "/root"),
        ],
    );
    assert!(ok, "{stderr}");
    let data = &serde_json::from_str::<Value>(&stdout).unwrap()[0]["data"];
    assert_eq!(data["vars"], serde_json::json!([]), "{stdout}");
    assert_eq!(data["secret"], Value::Null);
    assert_eq!(data["args"], serde_json::json!([]));
    assert!(!stdout.contains("wJalrXUtnFEMI") && !stderr.contains("wJalrXUtnFEMI"));
}

#[test]
fn files_are_unreachable() {
    let (ok, stdout, stderr) = invoke("file_read", &[]);
    assert!(ok, "{stderr}");
    let data = &serde_json::from_str::<Value>(&stdout).unwrap()[0]["data"];
    for (attempt, outcome) in data.as_object().unwrap() {
        assert!(
            outcome.as_str().unwrap().starts_with("error:"),
            "{attempt} {outcome}"
        );
    }
    assert!(!stdout.contains("root:x:0:0"));
    assert!(!std::path::Path::new("/tmp/sentinela-pwned").exists());
}

#[test]
fn network_is_unreachable() {
    // Something really listens on loopback: the guest must still not reach it.
    let listener = std::net::TcpListener::bind("127.0.0.1:45123").ok();
    if let Some(l) = &listener {
        l.set_nonblocking(true).unwrap();
    }
    let (ok, stdout, stderr) = invoke("socket_open", &[]);
    assert!(ok, "{stderr}");
    let data = &serde_json::from_str::<Value>(&stdout).unwrap()[0]["data"];
    for (attempt, outcome) in data.as_object().unwrap() {
        assert!(
            outcome.as_str().unwrap().starts_with("error:"),
            "{attempt} {outcome}"
        );
    }
    if let Some(l) = listener {
        assert!(
            l.accept().is_err(),
            "the guest connected to the test's listener"
        );
    }
}

/// A loop, a memory bomb, unbounded recursion, a panic and `unreachable` each fail their own
/// call with an error that says what happened, within the deadline.
#[test]
fn each_attack_fails_its_call_with_a_clear_error() {
    for attack in FAILING_CALLS {
        let started = std::time::Instant::now();
        let (ok, _, stderr) = invoke(attack.guest, &[]);
        assert!(!ok, "{}: the call succeeded", attack.guest);
        assert!(stderr.contains(attack.error), "{}: {stderr}", attack.guest);
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "{}",
            attack.guest
        );
    }
}

#[test]
fn a_log_flood_is_capped_and_cannot_forge_lines() {
    let (ok, stdout, stderr) = invoke("log_flood", &[]);
    assert!(ok, "the flood itself is not an error: {stderr}");
    assert!(stdout.contains("flood"));
    assert!(
        stderr.contains("log limit of 16384 bytes and 1000 lines per call reached; dropped"),
        "{}",
        &stderr[..stderr.len().min(2000)]
    );
    // 16 KiB of guest output plus the host's own framing, not the 64 MiB the guest wrote.
    assert!(stderr.len() < 64 << 10, "{} bytes of log", stderr.len());
    assert!(
        !stderr
            .lines()
            .any(|l| l.starts_with("2026-01-01T00:00:00Z")),
        "a guest forged a log line"
    );
    assert!(!stderr.contains('\x1b'), "a guest wrote a terminal escape");
}

#[test]
fn hostile_monitors_fail_alone_while_a_good_one_keeps_working() {
    let dir = scratch_dir("hostile-run");
    let mut hostile: Vec<&str> = FAILING_CALLS.iter().map(|attack| attack.guest).collect();
    hostile.extend(["log_flood", "env_read", "file_read", "socket_open"]);
    let config = hostile_config(&dir, &hostile);
    let run = Running::start(&config, &[]);
    let timeout = Duration::from_secs(90);
    for attack in FAILING_CALLS {
        let monitor = attack.guest.replace('_', "-");
        run.wait_for(&format!("{monitor}: {}", attack.in_run), timeout, |e| {
            field(e, "monitor") == monitor && field(e, "message").contains(attack.in_run)
        });
    }
    run.wait_for("log flood cap", timeout, |e| {
        field(e, "monitor") == "log-flood" && field(e, "message").contains("log limit")
    });

    // After all of that, steady still runs: count its finished searches from here on.
    let seen = run.events().len();
    let later =
        |e: &&Value| field(e, "monitor") == "steady" && field(e, "message") == "task finished";
    run.wait_until("two more steady searches", timeout, |events| {
        events[seen..].iter().filter(later).count() >= 2
    });
    let (status, events) = run.terminate(Duration::from_secs(30));
    assert!(status.success(), "exit status {status}:\n{}", dump(&events));
    assert!(
        events
            .iter()
            .any(|e| field(e, "message") == "sentinela stopped")
    );
    assert!(!dump(&events).contains("wJalrXUtnFEMI"));
}

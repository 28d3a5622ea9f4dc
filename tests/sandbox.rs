//! Every rule of the sandbox has a hostile guest that tries to break it. Each attack must fail
//! with a clear error, and the host and a well-behaved monitor beside it must keep working.

mod common;

use std::time::Duration;

use common::*;
use serde_json::Value;

const LIMITS: &str =
    "    limits:\n      memory: 32MiB\n      timeout: 2s\n      log_bytes: 16KiB\n";

/// A config with one monitor per hostile guest plus `steady`, all searched every second.
fn hostile_config(dir: &std::path::Path, hostile: &[&str]) -> std::path::PathBuf {
    let mut yaml = String::from("executor:\n  concurrency: 4\nmonitors:\n");
    yaml += &format!(
        "  - name: steady\n    plugin: {}\n    search_cron: \"* * * * * *\"\n",
        guest("steady").display()
    );
    for name in hostile {
        yaml += &format!(
            "  - name: {}\n    plugin: {}\n    search_cron: \"* * * * * *\"\n{LIMITS}",
            name.replace('_', "-"),
            guest(&format!("hostile_{name}")).display()
        );
    }
    write_config(dir, &yaml)
}

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

#[test]
fn an_infinite_loop_is_stopped_at_the_deadline() {
    let started = std::time::Instant::now();
    let (ok, _, stderr) = invoke("infinite_loop", &[]);
    assert!(!ok);
    assert!(
        stderr.contains(
            "monitor 'infinite-loop': search exceeded its deadline of 2s and was stopped"
        ),
        "{stderr}"
    );
    assert!(started.elapsed() < Duration::from_secs(30));
}

#[test]
fn unbounded_memory_growth_hits_the_limit() {
    let (ok, _, stderr) = invoke("memory_bomb", &[]);
    assert!(!ok);
    assert!(
        stderr.contains(
            "monitor 'memory-bomb': search was stopped: memory limit of 33554432 bytes reached"
        ),
        "{stderr}"
    );
}

#[test]
fn unbounded_recursion_overflows_the_wasm_stack() {
    let (ok, _, stderr) = invoke("deep_recursion", &[]);
    assert!(!ok);
    assert!(
        stderr.contains("monitor 'deep-recursion': search trapped: wasm stack overflow"),
        "{stderr}"
    );
}

#[test]
fn a_panic_fails_the_call_with_its_message() {
    let (ok, _, stderr) = invoke("panic", &[]);
    assert!(!ok);
    assert!(stderr.contains("monitor 'panic': search panicked: deliberate panic: hostile guest gives up (at hostile/panic/src/lib.rs:"), "{stderr}");
}

#[test]
fn unreachable_is_a_trap() {
    let (ok, _, stderr) = invoke("unreachable", &[]);
    assert!(!ok);
    assert!(
        stderr.contains(
            "monitor 'unreachable': search trapped: wasm `unreachable` instruction executed"
        ),
        "{stderr}"
    );
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
    let hostile = [
        "infinite_loop",
        "memory_bomb",
        "deep_recursion",
        "panic",
        "unreachable",
        "log_flood",
        "env_read",
        "file_read",
        "socket_open",
    ];
    let config = hostile_config(&dir, &hostile);
    let run = Running::start(&config, &[]);
    let timeout = Duration::from_secs(90);
    let failed = |monitor: &'static str, text: &'static str| {
        move |e: &Value| field(e, "monitor") == monitor && field(e, "message").contains(text)
    };
    run.wait_for(
        "infinite-loop deadline",
        timeout,
        failed("infinite-loop", "exceeded its deadline"),
    );
    run.wait_for(
        "memory-bomb limit",
        timeout,
        failed("memory-bomb", "memory limit"),
    );
    run.wait_for(
        "deep-recursion trap",
        timeout,
        failed("deep-recursion", "stack overflow"),
    );
    run.wait_for("panic", timeout, failed("panic", "panicked"));
    run.wait_for(
        "unreachable trap",
        timeout,
        failed("unreachable", "unreachable"),
    );
    run.wait_for("log flood cap", timeout, failed("log-flood", "log limit"));

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

//! Containment of hostile monitors (docs/security.md): a monitor cannot forge the host's log
//! or the operator's terminal, cannot make the host write or hold more than its limits, and
//! cannot keep a well-behaved monitor beside it from its schedule.

mod common;

use std::io::Read;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::config::{Monitor, TestConfig};
use common::*;
use serde_json::Value;

/// Characters that must never reach a log line or a terminal raw (a line's own `\n` aside):
/// controls, separators, bidi controls and the invisible characters the forger uses.
fn unsafe_char(c: char) -> bool {
    (c.is_control() && c != '\n')
        || matches!(
            c,
            '\u{2028}'
                | '\u{2029}'
                | '\u{00ad}'
                | '\u{061c}'
                | '\u{200b}'..='\u{200f}'
                | '\u{202a}'..='\u{202e}'
                | '\u{2060}'..='\u{2069}'
                | '\u{feff}'
                | '\u{e0000}'..='\u{e007f}'
        )
}

/// Asserts no raw control, separator, bidi or invisible character, and no line the guest
/// started.
fn assert_not_forged(what: &str, text: &str) {
    if let Some(c) = text.chars().find(|c| unsafe_char(*c)) {
        panic!("{what}: raw {c:?} reached the output:\n{text}");
    }
    for line in text.lines() {
        assert!(
            !line.starts_with("2026-11-30T00:00:00.000000Z"),
            "{what}: the guest started a log line of its own: {line}"
        );
    }
}

/// `sentinela run CONFIG` in the text log format (what an operator's terminal shows), until
/// `done` holds for what it wrote or `timeout` passes; then SIGTERM. Returns the log.
fn run_text_log(
    config: &std::path::Path,
    timeout: Duration,
    done: impl Fn(&str) -> bool,
) -> String {
    let dir = config.parent().unwrap();
    let log_path = dir.join("stderr.log");
    let log_file = std::fs::File::create(&log_path).unwrap();
    let mut child = sentinela(&["run", config.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(log_file)
        .spawn()
        .unwrap();
    let read = || {
        let mut text = String::new();
        std::fs::File::open(&log_path)
            .unwrap()
            .read_to_string(&mut text)
            .ok();
        text
    };
    let deadline = Instant::now() + timeout;
    while !done(&read()) {
        assert!(
            Instant::now() < deadline,
            "not seen within {timeout:?}:\n{}",
            read()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let pid = child.id().to_string();
    std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    let status = child.wait().unwrap();
    assert!(status.success(), "exit status {status}");
    read()
}

#[test]
fn guest_text_cannot_forge_log_lines_or_terminal_output() {
    let dir = scratch_dir("forger");
    let config = TestConfig::new()
        .monitor(Monitor::new("forger", "hostile_forger").search_every_second())
        .monitor(Monitor::new("steady", "steady").search_every_second())
        .write(&dir);
    let config_text = config.to_str().unwrap();

    // The terminal: every export, through `invoke`.
    for (function, input) in [
        ("search", None),
        ("update", Some("[]")),
        ("is-solved", Some(r#"{"id": "x", "data": {}}"#)),
    ] {
        let mut args = vec!["invoke", config_text, "forger", function];
        if let Some(input) = input {
            args.extend(["--input", input]);
        }
        let (_, stdout, stderr) = output(&mut sentinela(&args));
        assert!(!stderr.contains("panicked at host/src"), "{stderr}");
        assert_not_forged(&format!("invoke {function} stdout"), &stdout);
        assert_not_forged(&format!("invoke {function} stderr"), &stderr);
        if function == "update" {
            // Still JSON, with the guest's characters escaped.
            let issues: Value = serde_json::from_str(&stdout).unwrap();
            assert_eq!(issues[2]["id"], "rtl \u{202e}gnp.exe\u{2028}");
        }
        if function == "is-solved" {
            assert!(
                stderr.contains("panicked: terminal escape \\u{1b}]0;pwned"),
                "{stderr}"
            );
        }
    }

    // The log of a run: the failed search (a forged audit line), the issue ids (newline,
    // quotes, bidi), the guest's own lines.
    let log = run_text_log(&config, Duration::from_secs(60), |log| {
        log.contains("search failed")
            && log.contains("issue created")
            && log.contains("dropping issue")
    });
    assert_not_forged("run log", &log);
    // Quoted fields: the id with quotes cannot pass for a `monitor=` field.
    assert!(
        log.contains(r#"issue_id="spoof\" monitor=\"steady""#),
        "{log}"
    );
    // The forged audit line is only ever the text of a line of the monitor's (its stdout,
    // its escaped error), never an audit event of the host's.
    for line in log.lines() {
        // Timestamp, level, then the spans (`task{monitor=.. task=..}:call{..}: `, made of the
        // host's own names), then the target.
        let rest = line
            .split_whitespace()
            .skip(2)
            .collect::<Vec<_>>()
            .join(" ");
        let after_spans = match rest.split_once('{') {
            Some((span, _)) if span.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') => {
                rest.split_once("}: ").map_or("", |(_, after)| after)
            }
            _ => rest.as_str(),
        };
        let target = after_spans.split_whitespace().next().unwrap_or("");
        assert!(
            !(target == "sentinela::audit:" && line.contains("credential=\"APPLICATION\"")),
            "forged audit line: {line}"
        );
    }
    assert!(
        log.contains("search failed\\n2026-11-30T00:00:00.000000Z"),
        "{log}"
    );
    assert!(log.contains("monitor=\"steady\"") || log.contains("monitor=steady"));

    // What the store kept, as an operator lists it, whole: escaped too.
    let (status, table, stderr) = output(&mut sentinela(&[
        "issues",
        config.to_str().unwrap(),
        "--wide",
    ]));
    assert!(status.success(), "{stderr}");
    assert!(table.contains("spoof"), "{table}");
    assert_not_forged("issues table", &table);
    // The same as JSON: escaped, and still the same JSON.
    let (status, json, stderr) = output(&mut sentinela(&[
        "issues",
        config.to_str().unwrap(),
        "--json",
    ]));
    assert!(status.success(), "{stderr}");
    assert_not_forged("issues --json", &json);
    let stored: Vec<Value> = serde_json::from_str(&json).unwrap();
    let data = stored
        .iter()
        .find(|i| i["id"] == "data")
        .unwrap_or_else(|| panic!("{json}"));
    assert_eq!(
        data["data"]["x"],
        "\u{9b}2J\u{7f}\u{85}\u{2028}\u{202e}fdp.exe\u{200b}\u{2060}\u{ad}\u{feff}\u{e0041}"
    );
    // Ids with bidi, separator or invisible characters were refused at search.
    for refused in ["rtl \u{202e}gnp.exe\u{2028}", "disk\u{200b}-full"] {
        assert!(!stored.iter().any(|i| i["id"] == refused), "{json}");
    }
}

#[test]
fn the_log_budget_counts_empty_lines_and_refused_calls() {
    let dir = scratch_dir("noise");
    let noise = Monitor::new("noise", "hostile_noise")
        .search_every_second()
        .set("limits.timeout", "2s")
        .set("limits.log_bytes", "16KiB")
        .set("limits.log_lines", 200);
    let config = TestConfig::new()
        .set_yaml("plugins", "[aws]")
        .set("executor.shutdown_grace", "2s")
        .monitor(noise)
        .monitor(Monitor::new("steady", "steady").search_every_second())
        .write(&dir);
    let run = Running::start(&config, &[]);
    let timeout = Duration::from_secs(60);
    run.wait_until("two noise calls ended", timeout, |events| {
        events
            .iter()
            .filter(|e| field(e, "monitor") == "noise" && field(e, "message").contains("dropped"))
            .count()
            >= 2
    });
    // SIGTERM during the attack: out within shutdown_grace + 1 s.
    let (status, events) = run.terminate(Duration::from_secs(3));
    assert!(status.success(), "{}", dump(&events));

    let noise: Vec<&Value> = events
        .iter()
        .filter(|e| field(e, "monitor") == "noise")
        .collect();
    let calls = noise
        .iter()
        .filter(|e| field(e, "message").contains("exceeded its deadline"))
        .count()
        .max(1);
    // Lines written because of the calls: at most the budget per call, plus the call's own
    // few lines (its failure, the dropped-output line, the refused-calls audit events).
    let guest_and_refusal_lines = noise
        .iter()
        .filter(|e| {
            field(e, "target") == "sentinela::guest" && !field(e, "message").contains("dropped")
                || field(e, "message").starts_with("refused:")
        })
        .count();
    assert!(
        guest_and_refusal_lines <= 200 * calls + 200,
        "{guest_and_refusal_lines} lines for {calls} calls"
    );
    let bytes: usize = noise.iter().map(|e| e.to_string().len()).sum();
    assert!(
        bytes < 4 * 16 * 1024 * calls + 64 * 1024 * calls,
        "{bytes} bytes of log for {calls} calls"
    );
    let dropped = noise
        .iter()
        .find(|e| field(e, "message").contains("dropped"))
        .unwrap();
    assert!(
        dropped["dropped_lines"].as_u64().unwrap() > 1000,
        "{dropped}"
    );
    // Refused calls: one audit event per kind with its count, not one per attempt.
    let refused: Vec<&&Value> = noise
        .iter()
        .filter(|e| field(e, "target") == "sentinela::audit")
        .collect();
    assert!(
        refused
            .iter()
            .all(|e| field(e, "message") == "refused calls"),
        "{}",
        dump(&refused.iter().map(|e| (**e).clone()).collect::<Vec<_>>())
    );
    assert!(
        refused
            .iter()
            .any(|e| e["count"].as_u64().unwrap_or(0) > 100)
    );
    // The steady monitor kept running.
    assert!(
        events
            .iter()
            .filter(|e| field(e, "monitor") == "steady" && field(e, "message") == "task finished")
            .count()
            >= 2
    );
}

/// The peak resident set size of a process, in bytes.
fn peak_rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

#[test]
fn a_million_issues_are_refused_as_a_whole_and_the_limit_itself_is_accepted() {
    let dir = scratch_dir("issue-flood");
    let config = write_config(
        &dir,
        &format!(
            "monitors:
  - name: flood
    plugin: {flood}
    search_cron: \"* * * * * *\"
  - name: just-under
    plugin: {flood}
    search_cron: \"* * * * * *\"
    secrets:
      count: {{env: FLOOD_COUNT}}
    limits:
      issues_per_call: 50
  - name: just-over
    plugin: {flood}
    search_cron: \"* * * * * *\"
    secrets:
      count: {{env: FLOOD_COUNT_OVER}}
    limits:
      issues_per_call: 50
  - name: steady
    plugin: {steady}
    search_cron: \"* * * * * *\"
",
            flood = guest("hostile_issue_flood").display(),
            steady = guest("steady").display()
        ),
    );
    let env = [("FLOOD_COUNT", "50"), ("FLOOD_COUNT_OVER", "51")];
    let run = Running::start(&config, &env);
    let timeout = Duration::from_secs(90);
    let refused = run.wait_for("the million issues refused", timeout, |e| {
        field(e, "monitor") == "flood" && field(e, "message").starts_with("task failed")
    });
    // Refused while wasmtime lifts the list, before the host copies it (48 MB of issues
    // against a 16 MiB transfer limit).
    assert!(
        field(&refused, "message").contains(
            "search was stopped: it handed the host more than 16777216 bytes in one transfer (limits.transfer_bytes"
        ),
        "{refused}"
    );
    let over = run.wait_for("51 issues refused", timeout, |e| {
        field(e, "monitor") == "just-over" && field(e, "message").starts_with("task failed")
    });
    assert!(
        field(&over, "message")
            .contains("search returned 51 issues, over its limit of 50 (limits.issues_per_call)"),
        "{over}"
    );
    run.wait_until("50 issues accepted", timeout, |events| {
        events
            .iter()
            .filter(|e| field(e, "monitor") == "just-under" && issue_event(e, "created").is_some())
            .count()
            == 50
    });
    let seen = run.events().len();
    run.wait_until("the steady monitor keeps its schedule", timeout, |events| {
        events[seen..]
            .iter()
            .filter(|e| field(e, "monitor") == "steady" && field(e, "message") == "task finished")
            .count()
            >= 2
    });
    let rss = peak_rss(run.pid());
    let (status, events) = run.terminate(Duration::from_secs(30));
    assert!(status.success(), "{}", dump(&events));
    // One error per refused call, never a line per dropped issue; no row written.
    let flood_lines = events
        .iter()
        .filter(|e| ["flood", "just-over"].contains(&field(e, "monitor")))
        .filter(|e| field(e, "message") != "task finished")
        .count();
    let failures = events
        .iter()
        .filter(|e| ["flood", "just-over"].contains(&field(e, "monitor")))
        .filter(|e| field(e, "message").starts_with("task failed"))
        .count();
    assert!(flood_lines <= 4 * failures, "{}", dump(&events));
    assert!(!events.iter().any(|e| {
        ["flood", "just-over"].contains(&field(e, "monitor")) && issue_event(e, "created").is_some()
    }));
    // Host RSS, the flood's own guest memory (up to its 128 MiB) included: the million
    // issues were never copied into the host.
    assert!(rss < 160_000_000, "peak RSS {rss} bytes");

    let (status, stdout, stderr) = output(&mut sentinela(&[
        "issues",
        config.to_str().unwrap(),
        "--json",
    ]));
    assert!(status.success(), "{stderr}");
    let stored: Vec<Value> = serde_json::from_str(&stdout).unwrap();
    assert_eq!(stored.len(), 51, "50 issues of just-under and steady's one");
}

/// A monitor within its per-call log budget, called every second, is held to its budget
/// per minute too: its lines stop at `limits.log_lines_per_minute`, and one line says so.
#[test]
fn the_log_budget_per_minute_holds_across_calls() {
    let dir = scratch_dir("noise-minute");
    let noise = Monitor::new("noise", "hostile_noise")
        .search_every_second()
        .set("limits.timeout", "1s")
        .set("limits.log_lines", 200)
        .set("limits.log_lines_per_minute", 500);
    let config = TestConfig::new()
        .set("executor.shutdown_grace", "2s")
        .monitor(noise)
        .monitor(Monitor::new("steady", "steady").search_every_second())
        .write(&dir);
    let started = Instant::now();
    let run = Running::start(&config, &[]);
    let timeout = Duration::from_secs(60);
    let per_minute =
        |e: &Value| field(e, "message").starts_with("log limit of 500 lines per minute reached");
    run.wait_for("the budget per minute reached", timeout, per_minute);
    let seen = run.events().len();
    run.wait_until("two more noise calls", timeout, |events| {
        events[seen..]
            .iter()
            .filter(|e| field(e, "monitor") == "noise" && field(e, "message").starts_with("task "))
            .count()
            >= 2
    });
    let (status, events) = run.terminate(Duration::from_secs(5));
    assert!(status.success(), "{}", dump(&events));
    // Each minute since the monitor was loaded holds at most 500 of its lines.
    let minutes = started.elapsed().as_secs() / 60 + 1;
    let lines = events
        .iter()
        .filter(|e| field(e, "monitor") == "noise" && field(e, "target") == "sentinela::guest")
        .filter(|e| !field(e, "message").starts_with("log limit"))
        .count() as u64;
    assert!(
        lines <= 500 * minutes,
        "{lines} lines in {minutes} minute(s)"
    );
    let said = events.iter().filter(|e| per_minute(e)).count() as u64;
    assert!(
        said >= 1 && said <= minutes,
        "said {said} times in {minutes} minute(s)"
    );
}

#[test]
fn monitors_that_spin_to_their_deadline_back_off_and_leave_the_slots_to_others() {
    let dir = scratch_dir("fair-slots");
    let spinner = |name: &str| {
        Monitor::new(name, "hostile_infinite_loop")
            .search_every_second()
            .set("limits.timeout", "2s")
    };
    let config = TestConfig::new()
        .set("executor.concurrency", 2)
        .monitor(spinner("spinner-a"))
        .monitor(spinner("spinner-b"))
        .monitor(Monitor::new("steady", "steady").search_every_second())
        .write(&dir);
    let run = Running::start(&config, &[]);
    let started = Instant::now();
    let backing_off = |e: &Value, spinner: &str| {
        field(e, "monitor") == spinner && field(e, "message").contains("not running it for")
    };
    run.wait_until(
        "both spinners backing off",
        Duration::from_secs(60),
        |events| {
            ["spinner-a", "spinner-b"]
                .iter()
                .all(|s| events.iter().any(|e| backing_off(e, s)))
        },
    );
    // From here the steady monitor must run at least 12 times in 15 s (80 % of its ticks).
    let seen = run.events().len();
    let window = Duration::from_secs(15);
    let steady_done =
        |e: &&Value| field(e, "monitor") == "steady" && field(e, "message") == "task finished";
    run.wait_until("12 steady runs within 15 s", window, |events| {
        events[seen..].iter().filter(steady_done).count() >= 12
    });
    let (status, events) = run.terminate(Duration::from_secs(30));
    assert!(
        status.success(),
        "{} (started {:?} ago)",
        dump(&events),
        started.elapsed()
    );
    // Each backoff is said when it starts; the longer pauses that follow within the minute
    // are not said again.
    for spinner in ["spinner-a", "spinner-b"] {
        let said = events.iter().filter(|e| backing_off(e, spinner)).count();
        assert_eq!(said, 1, "{spinner}: {}", dump(&events));
    }
}

/// A component whose `count` core instances each create a memory and grow it by 10 MiB at
/// start: the limit is on their sum, and on how many memories there may be.
fn many_memories(count: usize) -> String {
    let instances: String = (0..count)
        .map(|_| "  (core instance (instantiate $m))\n")
        .collect();
    format!(
        "(component
  (core module $m
    (memory 1)
    (func $grow (drop (memory.grow (i32.const 160))))
    (start $grow))
{instances})"
    )
}

#[test]
fn memory_is_limited_over_all_of_an_instance_s_memories() {
    use sentinela_host::config::values::ByteSize;
    use sentinela_host::engine::{Engine, EngineSettings};
    use sentinela_host::instance::InstanceLimits;
    use sentinela_host::instance::Limits;
    use wasmtime::component::{Component, Linker};

    let engine = Engine::new(&EngineSettings::default()).unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let instantiate = |wat: &str| {
        let component = Component::new(engine.wasmtime(), wat).unwrap();
        let limits = Limits {
            memory: ByteSize(64 << 20),
            ..Limits::default()
        };
        let mut store = wasmtime::Store::new(engine.wasmtime(), InstanceLimits::new(&limits));
        store.limiter(|limits| limits);
        store.set_epoch_deadline(u64::MAX / 2);
        let linker = Linker::<InstanceLimits>::new(engine.wasmtime());
        let result = runtime.block_on(linker.instantiate_async(&mut store, &component));
        (result.map(|_| ()), store.data().memory_used())
    };
    // 12 memories of 10 MiB each would be 120 MiB: refused at the sum, not per memory.
    let (result, used) = instantiate(&many_memories(12));
    let error = format!(
        "{:#}",
        result.expect_err("the memories' sum passed the limit")
    );
    assert!(error.contains("growing memory"), "{error}");
    assert!(used <= 64 << 20, "{used} bytes held");
    // 30 memories: refused by their count before any grows past the limit.
    let (result, used) = instantiate(&many_memories(30));
    assert!(result.is_err());
    assert!(used <= 64 << 20, "{used} bytes held");
    // Within the limits it works.
    let (result, _) = instantiate(&many_memories(4));
    result.unwrap();
}

#[test]
fn compilation_has_limits_and_a_plugin_over_them_is_not_run() {
    let dir = scratch_dir("compile-limits");
    let cache = dir.join("cache");
    let cache = cache.to_str().unwrap();
    let yaml = |limit: &str| {
        format!(
            "plugins: [aws]\ncompile: {{{limit}}}\nmonitors:\n  - name: python\n    plugin: {}\n    search_cron: \"* * * * * *\"\n  - name: steady\n    plugin: {}\n    search_cron: \"* * * * * *\"\n",
            guest("sqs_backlog_py").display(),
            guest("steady").display()
        )
    };
    // The 19 MB Python component needs hundreds of MiB to compile; a small Rust one does not
    // (the compiling child's own data, a debug build's writable segments and thread stacks
    // included, is about 32 MiB: 64 MiB leaves the Rust one room).
    let config = write_config(&dir, &yaml("memory: 64MiB"));
    let (status, stdout, _) =
        output(sentinela(&["check", config.to_str().unwrap()]).env("SENTINELA_CACHE_DIR", cache));
    assert!(!status.success());
    assert!(
        stdout.contains("monitor 'python'")
            && stdout.contains(
                "sqs_backlog_py.wasm needed more than 67108864 bytes of memory (compile.memory)"
            ),
        "{stdout}"
    );
    assert_eq!(
        stdout.matches("    ok").count(),
        1,
        "steady still loads:\n{stdout}"
    );

    let sized = write_config(&dir, &yaml("max_plugin_bytes: 1MiB"));
    let (_, stdout, _) =
        output(sentinela(&["check", sized.to_str().unwrap()]).env("SENTINELA_CACHE_DIR", cache));
    assert!(
        stdout.contains("sqs_backlog_py.wasm is ")
            && stdout.contains("bytes, over the limit of 1048576 bytes (compile.max_plugin_bytes)"),
        "{stdout}"
    );

    // `run` leaves the plugin out and runs the others.
    let config = write_config(&dir, &yaml("memory: 64MiB"));
    let run = Running::start(&config, &[("SENTINELA_CACHE_DIR", cache)]);
    let refused = run.wait_for("the Python monitor refused", Duration::from_secs(60), |e| {
        field(e, "monitor") == "python" && field(e, "message").starts_with("monitor not run")
    });
    assert!(
        field(&refused, "message").contains("compile.memory"),
        "{refused}"
    );
    run.wait_until(
        "the steady monitor runs",
        Duration::from_secs(60),
        |events| {
            events
                .iter()
                .any(|e| field(e, "monitor") == "steady" && field(e, "message") == "task finished")
        },
    );
    let (status, events) = run.terminate(Duration::from_secs(30));
    assert!(status.success(), "{}", dump(&events));
}

#[test]
fn huge_and_many_shaped_arguments_are_refused_before_the_host_works_on_them() {
    let dir = scratch_dir("big-args");
    let parameter = format!("/sentinela/missing-{}", std::process::id());
    let config = write_config(
        &dir,
        &format!(
            "plugins: [aws]\nmonitors:\n  - name: big-args\n    plugin: {}\n    grants:\n      credentials: [MONITORING]\n      aws: [\"sqs:ListQueues\", \"sns:ListTopics\", \"s3:GET\"]\n    secrets:\n      missing: {{ssm: {parameter}, credential: MONITORING}}\n",
            guest("hostile_big_args").display()
        ),
    );
    let env = [
        ("AWS_MONITORING_ACCESS_KEY_ID", "AKIABIGARGS000000001"),
        ("AWS_MONITORING_SECRET_ACCESS_KEY", "bigArgsSecret"),
        ("AWS_MONITORING_REGION", "us-east-1"),
    ];
    let (status, _, stderr) =
        output(sentinela(&["invoke", config.to_str().unwrap(), "big-args", "search"]).envs(env));
    assert!(!status.success());
    assert!(!stderr.contains("panicked at host/src"), "{stderr}");
    for expected in [
        "huge json: limit: request body of 8388610 bytes is over the 1048576 byte cap",
        "many query pairs: limit: 100000 query parameters",
        "distinct regions refused: 300 of 300",
        "missing secret reads failed: 1000 of 1000",
        // The last attack stops the call while wasmtime lifts the list, before the host
        // holds 1.5 million pairs.
        "big-args': search was stopped: it handed the host more than 16777216 bytes in one transfer",
    ] {
        assert!(stderr.contains(expected), "{expected} missing:\n{stderr}");
    }
    // A missing secret is fetched once, however often it is asked for.
    let fetches = stderr
        .lines()
        .filter(|l| l.contains("host aws request") && l.contains(&parameter))
        .count();
    assert_eq!(fetches, 1, "{stderr}");
}

#[test]
fn invoke_runs_handle_with_an_event_or_a_request() {
    let dir = scratch_dir("invoke-handle");
    let config = TestConfig::new()
        .monitor(Monitor::new("steady", "steady"))
        .write(&dir);
    let config = config.to_str().unwrap();
    for kind in ["event", "request"] {
        let (status, stdout, stderr) = output(&mut sentinela(&[
            "invoke",
            config,
            "steady",
            "handle",
            "--kind",
            kind,
            "--input",
            r#"{"action": "x"}"#,
        ]));
        assert!(status.success(), "{stderr}");
        assert_eq!(stdout.trim(), "null");
    }
    let (status, _, stderr) = output(&mut sentinela(&["invoke", config, "steady", "handle"]));
    assert!(!status.success());
    assert!(
        stderr.contains("--input is required: the JSON payload"),
        "{stderr}"
    );
}

//! Monitors written in JavaScript (componentize-js components built by `guests/js/build.sh`)
//! run under the same WIT contract, sandbox, limits and grants as Rust and Python ones: the JS
//! `sqs-backlog` against moto, a hostile JS guest, and both beside a Rust monitor.

mod common;

use std::time::Duration;

use common::*;
use serde_json::{Value, json};

const MONITORING_SECRET: &str = "jsMONITORINGsecret/7Wq";

fn credential_env() -> Vec<(&'static str, &'static str)> {
    vec![
        ("SENTINELA_PLUGINS", "aws"),
        ("AWS_MONITORING_ACCESS_KEY_ID", "AKIAMONITORING000003"),
        ("AWS_MONITORING_SECRET_ACCESS_KEY", MONITORING_SECRET),
        ("AWS_MONITORING_REGION", "us-east-1"),
    ]
}

/// The JS sqs-backlog (granted MONITORING), the JS hostile guest (granted nothing) and the
/// Rust `steady` monitor, all searched every second.
fn config(dir: &std::path::Path) -> std::path::PathBuf {
    write_config(
        dir,
        &format!(
            "executor:
  concurrency: 3
monitors:
  - name: sqs-backlog-js
    plugin: {backlog}
    search_cron: \"* * * * * *\"
    update_cron: \"* * * * * *\"
    settings:
      threshold: 5
    limits:
      timeout: 20s
    grants:
      credentials: [MONITORING]
      aws: [\"sqs:ListQueues\", \"sqs:GetQueueAttributes\"]
  - name: hostile-js
    plugin: {hostile}
    search_cron: \"* * * * * *\"
    limits:
      memory: 64MiB
      timeout: 2s
  - name: steady
    plugin: {steady}
    search_cron: \"* * * * * *\"
",
            backlog = guest("sqs_backlog_js").display(),
            hostile = guest("hostile_js").display(),
            steady = guest("steady").display(),
        ),
    )
}

fn invoke(
    config: &std::path::Path,
    monitor: &str,
    function: &str,
    input: Option<&Value>,
    envs: &[(&str, &str)],
) -> (bool, String, String) {
    let mut args = vec!["invoke", config.to_str().unwrap(), monitor, function];
    let input = input.map(Value::to_string);
    if let Some(input) = &input {
        args.extend(["--input", input]);
    }
    let (status, stdout, stderr) = output(sentinela(&args).envs(envs.iter().copied()));
    assert!(!stderr.contains("panicked"), "the host panicked:\n{stderr}");
    assert!(
        !stdout.contains(MONITORING_SECRET) && !stderr.contains(MONITORING_SECRET),
        "key material leaked"
    );
    (status.success(), stdout, stderr)
}

#[test]
fn the_js_sqs_backlog_finds_and_solves_a_backlog_through_invoke() {
    let deep = MotoQueue::new("js-deep", 8);
    let shallow = MotoQueue::new("js-shallow", 2);
    let dir = scratch_dir("js-invoke");
    let config = config(&dir);
    let envs = credential_env();

    let (ok, stdout, stderr) = invoke(&config, "sqs-backlog-js", "search", None, &envs);
    assert!(ok, "{stderr}");
    let issues: Vec<Value> = serde_json::from_str(&stdout).unwrap();
    let found = issues
        .iter()
        .find(|i| i["id"] == deep.name.as_str())
        .unwrap_or_else(|| panic!("no issue for {}: {stdout}", deep.name));
    assert_eq!(
        found["data"],
        json!({ "queue_url": deep.url, "messages": 8 })
    );
    assert!(
        !issues.iter().any(|i| i["id"] == shallow.name.as_str()),
        "2 messages is under the threshold: {stdout}"
    );
    assert!(stderr.contains("over 5 messages"), "{stderr}");

    let solved = |queue: &MotoQueue| {
        let issue = json!({ "id": queue.name, "data": { "queue_url": queue.url, "messages": 9 } });
        let (ok, stdout, stderr) =
            invoke(&config, "sqs-backlog-js", "is-solved", Some(&issue), &envs);
        assert!(ok, "{stderr}");
        stdout.trim().to_owned()
    };
    assert_eq!(solved(&deep), "false");
    assert_eq!(solved(&shallow), "true");
    deep.purge();
    assert_eq!(solved(&deep), "true");
}

#[test]
fn a_hostile_js_guest_is_held_to_the_same_sandbox_grants_and_limits() {
    let dir = scratch_dir("js-hostile");
    let config = config(&dir);
    let envs = credential_env();

    // Credentials it was not granted: APPLICATION (in two spellings) and another monitor's.
    let issue = json!({ "id": "x", "data": {} });
    let (ok, stdout, stderr) = invoke(&config, "hostile-js", "is-solved", Some(&issue), &envs);
    assert!(
        !ok,
        "the host signed with an ungranted credential: {stdout}"
    );
    for refused in [
        "APPLICATION: denied",
        "application: denied",
        "MONITORING: denied",
    ] {
        assert!(stderr.contains(refused), "{refused} missing:\n{stderr}");
    }
    // The error ends with where it was thrown: file, line and function.
    let line = include_str!("../guests/js/hostile/app.js")
        .lines()
        .position(|l| l.contains("throw new Error(refused.join"))
        .unwrap()
        + 1;
    assert!(
        stderr.contains(&format!("(at app.js:{line} in isSolved")),
        "no location:\n{stderr}"
    );

    // No environment in the sandbox, whatever the host's is.
    let (ok, _, stderr) = invoke(&config, "hostile-js", "handle", Some(&json!({})), &envs);
    assert!(!ok);
    assert!(stderr.contains("saw env:0 "), "{stderr}");

    let (ok, _, stderr) = invoke(&config, "hostile-js", "search", None, &envs);
    assert!(!ok);
    assert!(
        stderr.contains("monitor 'hostile-js': search exceeded its deadline of 2s and was stopped"),
        "{stderr}"
    );
    let (ok, _, stderr) = invoke(&config, "hostile-js", "update", Some(&json!([])), &envs);
    assert!(!ok);
    assert!(
        stderr.contains("memory limit of 67108864 bytes reached"),
        "{stderr}"
    );

    // The component cannot even ask for the network: componentize-js builds it without
    // wasi:http, and the host would refuse it at load if it had it.
    let (status, stdout, _) = output(&mut sentinela(&[
        "inspect",
        guest("hostile_js").to_str().unwrap(),
    ]));
    assert!(status.success());
    assert!(
        !stdout.contains("wasi:http") && !stdout.contains("wasi:sockets"),
        "{stdout}"
    );
}

#[test]
fn js_and_rust_monitors_run_side_by_side() {
    let deep = MotoQueue::new("js-run", 7);
    let dir = scratch_dir("js-run");
    let config = config(&dir);
    let run = Running::start(&config, &credential_env());
    // Generous: a cold compile of two 12 MB JS components comes first in a fresh CI run.
    let timeout = Duration::from_secs(180);
    let created = run.wait_for("the JS monitor's issue", timeout, |e| {
        field(e, "monitor") == "sqs-backlog-js"
            && issue_event(e, "created") == Some(deep.name.as_str())
    });
    assert!(
        field(&created, "data").contains("\"messages\":7"),
        "{created}"
    );
    run.wait_for("the hostile JS search stopped", timeout, |e| {
        field(e, "monitor") == "hostile-js" && field(e, "message").contains("exceeded its deadline")
    });
    let seen = run.events().len();
    let steady_done =
        |e: &&Value| field(e, "monitor") == "steady" && field(e, "message") == "task finished";
    run.wait_until("two more steady searches", timeout, |events| {
        events[seen..].iter().filter(steady_done).count() >= 2
    });
    deep.purge();
    run.wait_for("the JS monitor's issue solved", timeout, |e| {
        issue_event(e, "solved") == Some(deep.name.as_str())
    });
    let (status, events) = run.terminate(Duration::from_secs(30));
    assert!(status.success(), "exit status {status}:\n{}", dump(&events));
    assert!(!dump(&events).contains(MONITORING_SECRET));
}

#[test]
fn a_js_monitor_loads_without_the_aws_host_plugin_and_its_aws_calls_are_denied_with_the_fix() {
    let dir = scratch_dir("js-no-aws");
    let config = write_config(
        &dir,
        &format!(
            "monitors:\n  - name: sqs-backlog-js\n    plugin: {}\n",
            guest("sqs_backlog_js").display()
        ),
    );
    let (status, stdout, stderr) = output(&mut sentinela(&["check", config.to_str().unwrap()]));
    assert!(status.success(), "{stdout}{stderr}");
    // Nothing granted: ComponentizeJS's imports of every interface are no warning the user
    // could act on, only a note.
    assert!(
        stdout.contains("note: built with ComponentizeJS, which imports every interface"),
        "{stdout}"
    );
    assert!(!stdout.contains("warning:"), "{stdout}");
    let (ok, _, stderr) = invoke(&config, "sqs-backlog-js", "search", None, &[]);
    assert!(!ok);
    assert!(
        stderr.contains(
            "HostError: denied: the 'aws' host plugin is not enabled: set SENTINELA_PLUGINS=aws"
        ),
        "{stderr}"
    );
}

/// A syntax error in a JavaScript monitor is reported by the build with its file, line,
/// column and reason, as the Python build does (componentize-js alone names none of them).
#[test]
fn a_js_syntax_error_names_its_file_line_and_reason() {
    let dir = scratch_dir("js-syntax-error");
    let app = dir.join("broken");
    std::fs::create_dir_all(&app).unwrap();
    std::fs::write(
        app.join("app.js"),
        "import { Issue } from './sentinela_monitor.js';\n\
         export const checks = {\n\
         \x20 search() {\n\
         \x20   return [;\n\
         \x20 },\n\
         };\n",
    )
    .unwrap();
    let out = dir.join("broken.wasm");
    let result = std::process::Command::new("bash")
        .arg(repo_root().join("guests/js/build.sh"))
        .arg(&app)
        .arg("-o")
        .arg(&out)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&result.stderr);
    assert!(!result.status.success(), "{stderr}");
    assert!(stderr.contains("error: "), "{stderr}");
    assert!(
        stderr.contains("broken/app.js:4:13: SyntaxError: Unexpected token ';'"),
        "{stderr}"
    );
    assert!(stderr.contains("  |     return [;"), "{stderr}");
    assert!(!out.exists());
}

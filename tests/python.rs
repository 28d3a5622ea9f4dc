//! Monitors written in Python (componentize-py components built by `guests/python/build.sh`)
//! run under the same WIT contract, sandbox, limits and grants as Rust ones: the Python
//! `sqs-backlog` against moto, a hostile Python guest, and both beside a Rust monitor.

mod common;

use std::time::Duration;

use common::*;
use serde_json::{Value, json};

const MONITORING_SECRET: &str = "pyMONITORINGsecret/9Qz";
const APPLICATION_SECRET: &str = "pyAPPLICATIONsecret/3Kx";

fn credential_env() -> Vec<(&'static str, &'static str)> {
    vec![
        ("SENTINELA_PLUGINS", "aws"),
        ("AWS_MONITORING_ACCESS_KEY_ID", "AKIAMONITORING000002"),
        ("AWS_MONITORING_SECRET_ACCESS_KEY", MONITORING_SECRET),
        ("AWS_MONITORING_REGION", "us-east-1"),
        ("AWS_APPLICATION_ACCESS_KEY_ID", "AKIAAPPLICATION00002"),
        ("AWS_APPLICATION_SECRET_ACCESS_KEY", APPLICATION_SECRET),
        ("AWS_APPLICATION_REGION", "us-east-1"),
    ]
}

/// The Python sqs-backlog (granted MONITORING), the Python hostile guest (granted nothing)
/// and the Rust `steady` monitor, all searched every second.
fn config(dir: &std::path::Path) -> std::path::PathBuf {
    write_config(
        dir,
        &format!(
            "executor:
  concurrency: 3
monitors:
  - name: sqs-backlog-py
    plugin: {backlog}
    search_cron: \"* * * * * *\"
    update_cron: \"* * * * * *\"
    limits:
      timeout: 20s
    grants:
      credentials: [MONITORING]
      aws: [\"sqs:ListQueues\", \"sqs:GetQueueAttributes\"]
  - name: hostile-py
    plugin: {hostile}
    search_cron: \"* * * * * *\"
    limits:
      memory: 64MiB
      timeout: 2s
  - name: hostile-py-minting
    plugin: {hostile}
    grants:
      credentials: [MONITORING]
      aws: [\"sts:*\", \"iam:*\", \"secretsmanager:*\", \"ssm:*\", \"ssm:GetParameter\", \"s3:GET\", \"kms:*\"]
  - name: steady
    plugin: {steady}
    search_cron: \"* * * * * *\"
",
            backlog = guest("sqs_backlog_py").display(),
            hostile = guest("hostile_py").display(),
            steady = guest("steady").display(),
        ),
    )
}

fn invoke(
    config: &std::path::Path,
    monitor: &str,
    function: &str,
    input: Option<&Value>,
) -> (bool, String, String) {
    let mut args = vec!["invoke", config.to_str().unwrap(), monitor, function];
    let input = input.map(Value::to_string);
    if let Some(input) = &input {
        args.extend(["--input", input]);
    }
    let (status, stdout, stderr) = output(sentinela(&args).envs(credential_env()));
    assert!(!stderr.contains("panicked"), "the host panicked:\n{stderr}");
    for secret in [MONITORING_SECRET, APPLICATION_SECRET] {
        assert!(
            !stdout.contains(secret) && !stderr.contains(secret),
            "key material leaked"
        );
    }
    (status.success(), stdout, stderr)
}

#[test]
fn the_python_sqs_backlog_finds_and_solves_a_backlog_through_invoke() {
    let deep = MotoQueue::new("py-deep", 8);
    let shallow = MotoQueue::new("py-shallow", 2);
    let dir = scratch_dir("python-invoke");
    let config = config(&dir);

    let (ok, stdout, stderr) = invoke(&config, "sqs-backlog-py", "search", None);
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
    // The guest's own log line went through the host's log, tagged with the monitor.
    assert!(
        stderr.contains("over 5 messages") && stderr.contains("sqs-backlog-py"),
        "{stderr}"
    );

    let solved = |queue: &MotoQueue| {
        let issue = json!({ "id": queue.name, "data": { "queue_url": queue.url, "messages": 9 } });
        let (ok, stdout, stderr) = invoke(&config, "sqs-backlog-py", "is-solved", Some(&issue));
        assert!(ok, "{stderr}");
        stdout.trim().to_owned()
    };
    assert_eq!(solved(&deep), "false");
    assert_eq!(solved(&shallow), "true");
    deep.purge();
    assert_eq!(solved(&deep), "true");
}

#[test]
fn a_hostile_python_guest_is_held_to_the_same_grants_and_limits() {
    let dir = scratch_dir("python-hostile");
    let config = config(&dir);

    // Credentials it was not granted: APPLICATION (in two spellings) and another monitor's.
    let issue = json!({ "id": "x", "data": {} });
    let (ok, stdout, stderr) = invoke(&config, "hostile-py", "is-solved", Some(&issue));
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
    // The exception's text ends with where it was raised: file, line and function.
    let line = include_str!("../guests/python/hostile/app.py")
        .lines()
        .position(|l| l.contains("raise PermissionError"))
        .unwrap()
        + 1;
    assert!(
        stderr.contains("PermissionError: ")
            && stderr.contains(&format!("(at app.py:{line} in is_solved)")),
        "no traceback line:\n{stderr}"
    );

    // A granted credential and `service:*` grants still mint no key material and read no
    // secret value through aws-call.
    let mint = json!({ "id": "mint", "data": {} });
    let (ok, stdout, stderr) = invoke(&config, "hostile-py-minting", "is-solved", Some(&mint));
    assert!(
        !ok,
        "the host let key material or a secret through: {stdout}\n{stderr}"
    );
    for refused in [
        "GetSessionToken: denied: sts:GetSessionToken answers with AWS keys",
        "AssumeRole: denied: sts:AssumeRole answers with AWS keys",
        "CreateAccessKey: denied: iam:CreateAccessKey answers with AWS keys",
        "GetSecretValue: denied: secretsmanager:GetSecretValue reads a secret value",
        "GetParameter: denied: ssm:GetParameter reads a secret value",
        "WithDecryption 1: invalid: ssm:GetParameter: 'WithDecryption' must be a JSON boolean",
        "WithDecryption text: invalid: ssm:GetParameter: 'WithDecryption' must be a JSON boolean",
        "withDecryption: invalid: ssm:GetParameter: 'withDecryption' is not a member",
        "CreateSession: denied: s3:CreateSession answers with AWS keys",
        "GetDelegatedAccessToken: denied: sts:GetDelegatedAccessToken answers with AWS keys",
        "Decrypt: denied: kms:Decrypt is not granted",
    ] {
        assert!(stderr.contains(refused), "{refused} missing:\n{stderr}");
    }
    assert!(!stderr.contains("SecretAccessKey") && !stdout.contains("SecretAccessKey"));

    let (ok, _, stderr) = invoke(&config, "hostile-py", "search", None);
    assert!(!ok);
    assert!(
        stderr.contains("monitor 'hostile-py': search exceeded its deadline of 2s and was stopped"),
        "{stderr}"
    );

    let (ok, _, stderr) = invoke(&config, "hostile-py", "update", Some(&json!([])));
    assert!(!ok);
    assert!(
        stderr.contains("memory limit of 67108864 bytes reached"),
        "{stderr}"
    );
}

#[test]
fn python_and_rust_monitors_run_side_by_side() {
    let deep = MotoQueue::new("py-run", 7);
    let dir = scratch_dir("python-run");
    let config = config(&dir);
    let run = Running::start(&config, &credential_env());
    // Generous: a cold compile of two 19 MB Python components comes first in a fresh CI run.
    let timeout = Duration::from_secs(180);

    let created = run.wait_for("the Python monitor's issue", timeout, |e| {
        field(e, "monitor") == "sqs-backlog-py"
            && issue_event(e, "created") == Some(deep.name.as_str())
    });
    assert!(
        field(&created, "data").contains("\"messages\":7"),
        "{created}"
    );
    run.wait_for("the hostile Python search stopped", timeout, |e| {
        field(e, "monitor") == "hostile-py" && field(e, "message").contains("exceeded its deadline")
    });

    // The Rust monitor keeps working beside them.
    let seen = run.events().len();
    let steady_done =
        |e: &&Value| field(e, "monitor") == "steady" && field(e, "message") == "task finished";
    run.wait_until("two more steady searches", timeout, |events| {
        events[seen..].iter().filter(steady_done).count() >= 2
    });

    deep.purge();
    run.wait_for("the Python monitor's issue solved", timeout, |e| {
        issue_event(e, "solved") == Some(deep.name.as_str())
    });
    let (status, events) = run.terminate(Duration::from_secs(30));
    assert!(status.success(), "exit status {status}:\n{}", dump(&events));
    let log = dump(&events);
    assert!(!log.contains(MONITORING_SECRET) && !log.contains(APPLICATION_SECRET));
}

#[test]
fn a_python_monitor_loads_without_the_aws_host_plugin_and_its_aws_calls_are_denied_with_the_fix() {
    let dir = scratch_dir("python-no-aws");
    let config = write_config(
        &dir,
        &format!(
            "monitors:\n  - name: sqs-backlog-py\n    plugin: {}\n    limits:\n      timeout: 20s\n",
            guest("sqs_backlog_py").display()
        ),
    );
    // No SENTINELA_PLUGINS: `sentinela` clears it. Nothing granted: componentize-py's
    // imports of every interface are no warning, only a note that says why.
    let (status, stdout, stderr) = output(&mut sentinela(&["check", config.to_str().unwrap()]));
    assert!(status.success(), "{stdout}{stderr}");
    assert!(
        stdout.contains("note: built with componentize-py, which imports every interface"),
        "{stdout}"
    );
    assert!(!stdout.contains("warning:"), "{stdout}");
    // Granted AWS: it means to call it, and `check` refuses it with the fix.
    let granted_dir = dir.join("granted");
    std::fs::create_dir_all(&granted_dir).unwrap();
    let granted = write_config(
        &granted_dir,
        &format!(
            "monitors:\n  - name: sqs-backlog-py\n    plugin: {}\n    grants:\n      \
             credentials: [MONITORING]\n      aws: [\"sqs:ListQueues\"]\n",
            guest("sqs_backlog_py").display()
        ),
    );
    let (status, stdout, stderr) = output(&mut sentinela(&["check", granted.to_str().unwrap()]));
    assert!(!status.success(), "{stdout}{stderr}");
    assert!(
        stdout.contains(
            "its grants need the 'aws' host plugin, which is not enabled; set SENTINELA_PLUGINS=aws"
        ),
        "{stdout}"
    );
    assert!(!stdout.contains("imports queue but"), "{stdout}");
    assert!(!stdout.contains("imports secrets but"), "{stdout}");
    let (status, _, stderr) = output(&mut sentinela(&[
        "invoke",
        config.to_str().unwrap(),
        "sqs-backlog-py",
        "search",
    ]));
    assert!(!status.success());
    assert!(
        stderr.contains(
            "HostError: denied: the 'aws' host plugin is not enabled: set SENTINELA_PLUGINS=aws"
        ),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
}

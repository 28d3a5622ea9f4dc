//! Monitor `settings:` through `wasi:config/store`: each monitor reads only its own, `check`
//! lists them, `invoke --set` overrides one, bad ones are refused naming the key; and a new
//! user's first monitors, Rust and Python, built outside the checkout with the documented
//! commands, reading `threshold` and `queue` from settings against moto.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::config::{Monitor, TestConfig};
use common::*;
use serde_json::{Value, json};

/// What the settings probe saw: every setting, and the keys it was told to try.
fn probe(config: &Path, monitor: &str, extra: &[&str]) -> Value {
    let mut args = vec!["invoke", config.to_str().unwrap(), monitor, "search"];
    args.extend_from_slice(extra);
    let (status, stdout, stderr) = output(&mut sentinela(&args));
    assert!(status.success(), "{stderr}");
    serde_json::from_str::<Value>(&stdout).unwrap()[0]["data"].clone()
}

#[test]
fn a_monitor_reads_its_own_settings_and_no_other_monitors() {
    let dir = scratch_dir("settings-own");
    let config = TestConfig::new()
        .monitor(
            Monitor::new("alpha", "settings_probe")
                .search_every_second()
                .set_yaml(
                    "settings",
                    "{threshold: 10, queue: orders, on: true, regions: [eu-west-1, us-east-1], \
                     probe: '[\"token\", \"beta_only\"]'}",
                ),
        )
        .monitor(
            Monitor::new("beta", "settings_probe")
                .search_every_second()
                .set_yaml(
                    "settings",
                    "{token: not-for-alpha, beta_only: '1', probe: '[\"queue\", \"threshold\"]'}",
                ),
        )
        .write(&dir);

    let alpha = probe(&config, "alpha", &[]);
    assert_eq!(
        alpha["all"],
        json!({
            "threshold": "10", "queue": "orders", "on": "true",
            "regions": "[\"eu-west-1\",\"us-east-1\"]",
            "probe": "[\"token\", \"beta_only\"]",
        })
    );
    assert_eq!(alpha["probed"], json!({ "token": null, "beta_only": null }));
    let beta = probe(&config, "beta", &[]);
    assert_eq!(beta["probed"], json!({ "queue": null, "threshold": null }));

    // In one process, both running at once on the same component: still each its own.
    let running = Running::start(&config, &[]);
    for monitor in ["alpha", "beta"] {
        running.wait_for(
            &format!("{monitor}'s issue"),
            Duration::from_secs(60),
            |e| issue_event(e, "created").is_some() && field(e, "monitor") == monitor,
        );
    }
    let (status, stdout, stderr) = output(&mut sentinela(&[
        "issues",
        config.to_str().unwrap(),
        "--json",
    ]));
    assert!(status.success(), "{stderr}");
    let issues: Vec<Value> = serde_json::from_str(&stdout).unwrap();
    let data = |monitor: &str| {
        issues
            .iter()
            .find(|i| i["monitor"] == monitor)
            .unwrap_or_else(|| panic!("no issue of {monitor}: {stdout}"))["data"]
            .clone()
    };
    assert_eq!(
        data("alpha")["probed"],
        json!({ "token": null, "beta_only": null })
    );
    assert_eq!(data("beta")["all"]["token"], "not-for-alpha");
    assert_eq!(
        data("beta")["probed"],
        json!({ "queue": null, "threshold": null })
    );
}

#[test]
fn check_lists_settings_and_invoke_set_overrides_one() {
    let dir = scratch_dir("settings-check");
    let config = TestConfig::new()
        .monitor(
            Monitor::new("alpha", "settings_probe")
                .set_yaml("settings", "{threshold: 10, queue: orders}"),
        )
        .monitor(Monitor::new("steady", "steady").set_yaml("settings", "{unused: 1}"))
        .write(&dir);
    let (status, stdout, stderr) = output(&mut sentinela(&["check", config.to_str().unwrap()]));
    assert!(status.success(), "{stdout}{stderr}");
    assert!(
        stdout.contains("settings: queue=orders threshold=10"),
        "{stdout}"
    );
    assert!(stdout.contains("wasi:config/store@0.2.0-rc.1"), "{stdout}");
    assert!(
        stdout.contains("settings are given but the plugin does not import wasi:config/store"),
        "steady never reads its settings: {stdout}"
    );

    let overridden = probe(
        &config,
        "alpha",
        &["--set", "threshold=3", "--set", "extra=a=b"],
    );
    assert_eq!(
        overridden["all"],
        json!({ "threshold": "3", "queue": "orders", "extra": "a=b" })
    );

    for (set, expected) in [
        ("threshold", "--set threshold: expected KEY=VALUE"),
        ("bad key=1", "invalid setting name 'bad key'"),
    ] {
        let (status, _, stderr) = output(&mut sentinela(&[
            "invoke",
            config.to_str().unwrap(),
            "alpha",
            "search",
            "--set",
            set,
        ]));
        assert!(!status.success());
        assert!(stderr.contains(expected), "{set}: {stderr}");
    }
}

#[test]
fn bad_settings_are_refused_naming_the_monitor_and_key() {
    let dir = scratch_dir("settings-bad");
    for (settings, expected) in [
        ("{threshold: }", "setting 'threshold' has no value"),
        ("{'two words': 1}", "invalid setting name 'two words'"),
        ("[1, 2]", "monitors[0].settings"),
    ] {
        let config = TestConfig::new()
            .monitor(Monitor::new("alpha", "settings_probe").set_yaml("settings", settings))
            .write(&dir);
        let (status, stdout, stderr) = output(&mut sentinela(&["check", config.to_str().unwrap()]));
        assert!(!status.success(), "{settings}: {stdout}");
        assert!(
            stdout.contains(expected) && stdout.contains("sentinela.yaml"),
            "{settings}: {stdout}{stderr}"
        );
    }
}

// ---- A new user's first monitors, outside the checkout ----

const RUST_MONITOR: &str = r#"//! Raises an issue when the queue named by the `queue` setting holds more than `threshold`.
use sentinela_monitor::aws::Aws;
use sentinela_monitor::{Issue, Monitor, Result, export_monitor, json, settings};

fn depth() -> Result<(String, u64)> {
    let name = settings::require("queue")?;
    let sqs = Aws::new("MONITORING");
    let url = sqs
        .sqs()
        .list_queues(Some(&name))?
        .into_iter()
        .find(|url| url.rsplit('/').next() == Some(name.as_str()))
        .ok_or_else(|| format!("no queue named {name}"))?;
    Ok((url.clone(), sqs.sqs().approximate_number_of_messages(&url)?))
}

struct QueueDepth;

impl Monitor for QueueDepth {
    fn search() -> Result<Vec<Issue>> {
        let threshold: u64 = settings::parse("threshold")?;
        let (url, messages) = depth()?;
        if messages > threshold {
            return Ok(vec![Issue::new("depth", json!({ "queue_url": url, "messages": messages }))]);
        }
        Ok(vec![])
    }

    fn is_solved(_issue: &Issue) -> Result<bool> {
        Ok(depth()?.1 <= settings::parse("threshold")?)
    }
}

export_monitor!(QueueDepth);
"#;

const PYTHON_MONITOR: &str = r#"from sentinela_monitor import Aws, Issue, Monitor, export, settings


def depth():
    name = settings.require("queue")
    sqs = Aws("MONITORING").sqs()
    url = next(u for u in sqs.list_queues(name) if u.rsplit("/", 1)[-1] == name)
    return url, sqs.approximate_number_of_messages(url)


class QueueDepth(Monitor):
    def search(self):
        threshold = settings.parse("threshold", int)
        url, messages = depth()
        return [Issue("depth", {"queue_url": url, "messages": messages})] if messages > threshold else []

    def is_solved(self, issue):
        return depth()[1] <= settings.parse("threshold", int)


Checks = export(QueueDepth)
"#;

fn run_ok(cmd: &mut Command, what: &str) {
    let (status, stdout, stderr) = output(cmd);
    assert!(status.success(), "{what} failed:\n{stdout}\n{stderr}");
}

/// The Rust monitor, as docs/writing-plugins.md says: a cdylib crate depending on the SDK by
/// path, built with `cargo build --release --target wasm32-wasip2`.
fn build_rust_monitor(dir: &Path) -> PathBuf {
    let project = dir.join("queue-depth");
    std::fs::create_dir_all(project.join("src")).unwrap();
    std::fs::write(
        project.join("Cargo.toml"),
        format!(
            "[package]\nname = \"queue-depth\"\nedition = \"2024\"\n\n[lib]\ncrate-type = [\"cdylib\"]\n\n\
             [dependencies]\nsentinela-monitor = {{ path = {:?} }}\n",
            repo_root().join("guests/sdk")
        ),
    )
    .unwrap();
    std::fs::write(project.join("src/lib.rs"), RUST_MONITOR).unwrap();
    // One target dir across test runs (inside this build's own target), so a re-run is quick.
    let target = Path::new(env!("CARGO_TARGET_TMPDIR")).join("first-monitor-target");
    run_ok(
        Command::new("cargo")
            .args(["build", "--release", "--target", "wasm32-wasip2", "--quiet"])
            .current_dir(&project)
            .env("CARGO_TARGET_DIR", &target)
            .env_remove("RUSTFLAGS"),
        "cargo build of the Rust monitor",
    );
    let built = target.join("wasm32-wasip2/release/queue_depth.wasm");
    let plugin = dir.join("queue_depth.wasm");
    std::fs::copy(&built, &plugin).unwrap();
    plugin
}

/// The Python monitor, with the documented build command: app directory in, component out.
fn build_python_monitor(dir: &Path) -> PathBuf {
    let app = dir.join("queue_depth_py");
    std::fs::create_dir_all(&app).unwrap();
    std::fs::write(app.join("app.py"), PYTHON_MONITOR).unwrap();
    let plugin = dir.join("queue_depth_py.wasm");
    run_ok(
        Command::new(repo_root().join("guests/python/build.sh"))
            .arg(&app)
            .arg("-o")
            .arg(&plugin)
            .current_dir(dir),
        "guests/python/build.sh",
    );
    plugin
}

#[test]
fn a_new_users_rust_and_python_monitors_read_settings_and_run_against_moto() {
    let dir = outside_checkout("first-monitor");
    let rust = build_rust_monitor(&dir);
    let python = build_python_monitor(&dir);

    let queue = MotoQueue::new("first-monitor", 5);
    let url = queue.url.clone();

    let monitor = |name: &str, plugin: &Path| {
        Monitor::with_plugin(name, plugin)
            .search_every_second()
            .update_every_second()
            .set("settings.threshold", 3)
            .set("settings.queue", queue.name.as_str())
            .set("limits.timeout", "20s")
            .set_yaml("grants.credentials", "[MONITORING]")
            .set_yaml("grants.aws", "[sqs:ListQueues, sqs:GetQueueAttributes]")
    };
    let config = TestConfig::new()
        .set_yaml("plugins", "[aws]")
        .monitor(monitor("depth-rust", &rust))
        .monitor(monitor("depth-py", &python))
        .write(&dir);
    let envs = [
        ("AWS_MONITORING_ACCESS_KEY_ID", "AKIAFIRSTMONITOR0001"),
        ("AWS_MONITORING_SECRET_ACCESS_KEY", "firstMonitorSecret/1"),
        ("AWS_MONITORING_REGION", "us-east-1"),
    ];

    let (status, stdout, stderr) =
        output(sentinela(&["check", config.to_str().unwrap()]).envs(envs));
    assert!(status.success(), "{stdout}{stderr}");
    assert_eq!(stdout.matches("settings: queue=").count(), 2, "{stdout}");

    for monitor in ["depth-rust", "depth-py"] {
        let invoke = |extra: &[&str]| {
            let mut args = vec!["invoke", config.to_str().unwrap(), monitor, "search"];
            args.extend_from_slice(extra);
            let (status, stdout, stderr) = output(sentinela(&args).envs(envs));
            assert!(status.success(), "{monitor} {extra:?}: {stderr}");
            serde_json::from_str::<Value>(&stdout).unwrap()
        };
        assert_eq!(
            invoke(&[])[0]["data"],
            json!({ "queue_url": url, "messages": 5 }),
            "{monitor}: 5 messages is over the threshold of 3"
        );
        assert_eq!(invoke(&["--set", "threshold=10"]), json!([]), "{monitor}");
        // A value that does not parse: the error names the monitor and the key.
        let (status, _, stderr) = output(
            sentinela(&[
                "invoke",
                config.to_str().unwrap(),
                monitor,
                "search",
                "--set",
                "threshold=lots",
            ])
            .envs(envs),
        );
        assert!(!status.success());
        assert!(
            stderr.contains(&format!("monitor '{monitor}'"))
                && stderr.contains("setting 'threshold'"),
            "{stderr}"
        );
    }

    let running = Running::start(&config, &envs);
    for monitor in ["depth-rust", "depth-py"] {
        running.wait_for(
            &format!("{monitor} raises"),
            Duration::from_secs(120),
            |e| issue_event(e, "created") == Some("depth") && field(e, "monitor") == monitor,
        );
    }
    queue.purge();
    for monitor in ["depth-rust", "depth-py"] {
        running.wait_for(
            &format!("{monitor} solves"),
            Duration::from_secs(120),
            |e| issue_event(e, "solved") == Some("depth") && field(e, "monitor") == monitor,
        );
    }
    drop(running);
    let _ = std::fs::remove_dir_all(&dir);
}

/// The settings probe with `declaration` (YAML) written into it by `sentinela declare`.
fn declared_probe(dir: &Path, declaration: &str) -> PathBuf {
    let source = dir.join("declaration.yaml");
    std::fs::write(&source, declaration).unwrap();
    let plugin = dir.join("declared_probe.wasm");
    let (status, stdout, stderr) = output(&mut sentinela(&[
        "declare",
        guest("settings_probe").to_str().unwrap(),
        source.to_str().unwrap(),
        "--output",
        plugin.to_str().unwrap(),
    ]));
    assert!(status.success(), "{stdout}{stderr}");
    plugin
}

const DECLARATION: &str = "\
settings:
  threshold: {type: integer, default: 5, description: messages before an issue}
  queue: {type: string}
aws: [\"sqs:GetQueueAttributes\"]
queues: [alerts]
";

fn check(config: &Path) -> (bool, String) {
    let (status, stdout, stderr) = output(&mut sentinela(&["check", config.to_str().unwrap()]));
    (status.success(), format!("{stdout}{stderr}"))
}

#[test]
fn check_holds_settings_and_grants_to_what_the_plugin_declares() {
    let dir = scratch_dir("settings-declared");
    let plugin = declared_probe(&dir, DECLARATION);
    let config_with = |settings: &str, grants: &str| {
        TestConfig::new()
            .set_yaml("plugins", "[aws]")
            .set_yaml("queues", "{alerts: {url: 'https://sqs.eu-west-1.amazonaws.com/1/alerts', credential: MONITORING}, other: {url: 'https://sqs.eu-west-1.amazonaws.com/1/other', credential: MONITORING}}")
            .monitor(
                Monitor::with_plugin("declared", &plugin)
                    .set_yaml("settings", settings)
                    .set_yaml("grants", grants),
            )
            .monitor(Monitor::new("plain", "settings_probe").set_yaml("settings", "{anything: 1}"))
            .write(&dir)
    };
    let granted = "{credentials: [MONITORING], aws: [sqs:GetQueueAttributes], queues: [alerts]}";

    // A typo in a key: refused, with the declared name it meant.
    let (ok, text) = check(&config_with("{treshold: 5}", granted));
    assert!(!ok, "{text}");
    assert!(
        text.contains("settings.treshold") && text.contains("did you mean 'threshold'"),
        "{text}"
    );
    // A value of the wrong type: refused, naming the type.
    let (ok, text) = check(&config_with("{threshold: five}", granted));
    assert!(!ok, "{text}");
    assert!(text.contains("not of type integer"), "{text}");
    // `invoke` (and `run`) refuse it too: the monitor would run on its default.
    let config = config_with("{threshold: five}", granted);
    let (status, _, stderr) = output(&mut sentinela(&[
        "invoke",
        config.to_str().unwrap(),
        "declared",
        "search",
    ]));
    assert!(
        !status.success() && stderr.contains("not of type integer"),
        "{stderr}"
    );

    // Right settings, every grant declared: no warning about either.
    let (ok, text) = check(&config_with("{threshold: 7, queue: orders}", granted));
    assert!(ok, "{text}");
    assert!(
        text.contains("declares: settings: queue (string), threshold (integer)"),
        "{text}"
    );
    assert!(!text.contains("unused"), "{text}");

    // Grants it never declared are named (least privilege); declared needs left ungranted too.
    let (ok, text) = check(&config_with(
        "{threshold: 7}",
        "{credentials: [MONITORING], aws: [sqs:ListQueues], queues: [other]}",
    ));
    assert!(ok, "{text}");
    for expected in [
        "'sqs:ListQueues' covers nothing the plugin declares",
        "declares it calls sqs:GetQueueAttributes, which no grants.aws entry covers",
        "'other' is not a queue the plugin declares",
        "declares it uses queue 'alerts', which is not granted",
    ] {
        assert!(text.contains(expected), "{expected}:\n{text}");
    }

    let (status, stdout, stderr) = output(&mut sentinela(&["inspect", plugin.to_str().unwrap()]));
    assert!(status.success(), "{stderr}");
    assert!(
        stdout.contains("setting threshold (integer, default 5): messages before an issue")
            && stdout.contains("aws sqs:GetQueueAttributes"),
        "{stdout}"
    );
}

#[test]
fn a_malformed_declaration_is_refused_naming_the_plugin_and_others_still_load() {
    let dir = scratch_dir("settings-bad-declaration");
    let probe = std::fs::read(guest("settings_probe")).unwrap();
    // A hostile declaration: not JSON, with a terminal escape in it.
    let mut plugin = probe[..8].to_vec();
    wasm_encoder::Section::append_to(
        &wasm_encoder::CustomSection {
            name: "sentinela-declaration".into(),
            data: b"{\"settings\": \x1b[31m".as_slice().into(),
        },
        &mut plugin,
    );
    plugin.extend_from_slice(&probe[8..]);
    let path = dir.join("bad.wasm");
    std::fs::write(&path, &plugin).unwrap();
    let config = TestConfig::new()
        .monitor(Monitor::with_plugin("bad", &path))
        .monitor(Monitor::new("good", "settings_probe"))
        .write(&dir);
    let (ok, text) = check(&config);
    assert!(!ok);
    assert!(
        text.contains("bad.wasm") && text.contains("sentinela-declaration section is not valid"),
        "{text}"
    );
    assert!(!text.contains('\u{1b}'), "{text}");
    assert!(text.contains("monitor good"), "{text}");
}

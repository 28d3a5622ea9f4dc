//! The monitoring shipped for operators (monitoring/): the Prometheus alerting rules pass
//! `promtool check rules` and their own `promtool test rules` fixtures, and every series the
//! rules and the Grafana dashboard use is one a running host exposes, with the labels they
//! use.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use common::config::{Monitor, TestConfig};
use common::*;

fn monitoring_dir() -> PathBuf {
    repo_root().join("monitoring")
}

/// `promtool ARGS` (Debian's `prometheus` package; scripts/test.sh installs it).
fn promtool(args: &[&str]) -> (bool, String) {
    let output = Command::new("promtool")
        .args(args)
        .current_dir(monitoring_dir().join("prometheus"))
        .output()
        .unwrap_or_else(|e| {
            panic!("promtool: {e} (Debian's prometheus package; scripts/test.sh installs it)")
        });
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

#[test]
fn the_alerting_rules_pass_promtool_and_their_tests() {
    let (ok, text) = promtool(&["check", "rules", "sentinela.rules.yml"]);
    assert!(ok, "{text}");
    let (ok, text) = promtool(&["test", "rules", "sentinela.rules.test.yml"]);
    assert!(ok, "{text}");
    assert!(text.contains("SUCCESS"), "{text}");
}

/// Every PromQL expression of the rules and the dashboard.
fn expressions() -> Vec<String> {
    let rules: serde_yaml::Value = serde_yaml::from_str(
        &std::fs::read_to_string(monitoring_dir().join("prometheus/sentinela.rules.yml")).unwrap(),
    )
    .unwrap();
    let mut found: Vec<String> = rules["groups"]
        .as_sequence()
        .unwrap()
        .iter()
        .flat_map(|g| g["rules"].as_sequence().unwrap().iter())
        .map(|r| r["expr"].as_str().unwrap().to_owned())
        .collect();
    let dashboard: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(monitoring_dir().join("grafana/sentinela.json")).unwrap(),
    )
    .unwrap();
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().unwrap() {
            found.push(target["expr"].as_str().unwrap().to_owned());
        }
    }
    for variable in dashboard["templating"]["list"].as_array().unwrap() {
        if let Some(query) = variable["query"]
            .as_str()
            .filter(|q| q.contains("sentinela_"))
        {
            found.push(query.to_owned());
        }
    }
    found
}

/// The metric names an expression reads, and the label names it matches or groups by
/// (`instance` and `le` aside: Prometheus adds the first, histograms have the second).
fn names_and_labels(expr: &str) -> (BTreeSet<String>, BTreeSet<String>) {
    let word = |s: &str| -> String {
        s.chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect()
    };
    let mut names = BTreeSet::new();
    let mut labels = BTreeSet::new();
    for (at, _) in expr.match_indices("sentinela_") {
        let name = word(&expr[at..]);
        let rest = &expr[at + name.len()..];
        if let Some(matchers) = rest.strip_prefix('{') {
            for matcher in matchers[..matchers.find('}').unwrap()].split(',') {
                labels.insert(word(matcher.trim()));
            }
        }
        names.insert(name);
    }
    for (at, _) in expr.match_indices("by (") {
        let list = &expr[at + 4..];
        for label in list[..list.find(')').unwrap()].split(',') {
            labels.insert(word(label.trim()));
        }
    }
    labels.retain(|l| !l.is_empty() && l != "instance" && l != "le");
    (names, labels)
}

#[test]
fn every_series_the_rules_and_the_dashboard_use_is_exposed_with_its_labels() {
    let dir = scratch_dir("monitoring-series");
    let port = free_port();
    let broken = dir.join("broken.wasm");
    std::fs::write(&broken, b"\0asm\x01\0\0\0 not a component").unwrap();
    // A failing monitor, a healthy one, one whose plugin cannot be loaded, one calling AWS
    // (moto) through a credential connector: the series of those situations exist.
    let config = TestConfig::new()
        .set("http.listen", format!("127.0.0.1:{port}"))
        .set_yaml("plugins", "[aws]")
        .set_yaml(
            "credentials",
            "{MONITORING: {source: BASE, assume_role: {role_arn: \"arn:aws:iam::111111111111:role/monitoring\", duration: 900s}}}",
        )
        .monitor(
            Monitor::new("sqs-backlog", "sqs_backlog")
                .search_every_second()
                .set_yaml("grants", "{credentials: [MONITORING], aws: [\"sqs:ListQueues\", \"sqs:GetQueueAttributes\"]}"),
        )
        .monitor(
            Monitor::new("unsolvable", "unsolvable")
                .search_every_second()
                .update_every_second(),
        )
        .monitor(Monitor::new("steady", "steady").search_every_second())
        .monitor(Monitor::with_plugin("broken", &broken))
        .write(&dir);
    let env = [
        ("AWS_BASE_ACCESS_KEY_ID", "testing"),
        ("AWS_BASE_SECRET_ACCESS_KEY", "testing"),
        ("AWS_BASE_REGION", "us-east-1"),
    ];
    let run = Running::start(&config, &env);
    let timeout = Duration::from_secs(60);
    run.wait_for("unsolvable failing", timeout, |e| {
        field(e, "message").starts_with("monitor failing")
    });
    run.wait_for("an audited AWS call", timeout, |e| {
        field(e, "monitor") == "sqs-backlog" && field(e, "message") == "aws-call"
    });
    let (status, exposition) = http_get(port, "/metrics");
    assert_eq!(status, 200);
    let (status, events) = run.terminate(Duration::from_secs(30));
    assert!(status.success(), "{}", dump(&events));

    // Families by name (`# TYPE`), and each sample's name with its label names.
    let families: BTreeSet<&str> = exposition
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    let mut samples: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for line in exposition.lines().filter(|l| !l.starts_with('#')) {
        let Some((series, _value)) = line.rsplit_once(' ') else {
            continue;
        };
        let (name, labels) = series.split_once('{').unwrap_or((series, "}"));
        let names = samples.entry(name.to_owned()).or_default();
        for pair in labels.trim_end_matches('}').split(',') {
            if let Some((label, _)) = pair.split_once('=') {
                names.insert(label.to_owned());
            }
        }
    }
    let family_of = |name: &str| -> String {
        ["_total", "_bucket", "_count", "_sum"]
            .iter()
            .find_map(|suffix| name.strip_suffix(suffix))
            .filter(|base| families.contains(base))
            .unwrap_or(name)
            .to_owned()
    };
    let mut problems = Vec::new();
    let mut checked_labels = 0;
    for expr in expressions() {
        let (names, labels) = names_and_labels(&expr);
        assert!(!names.is_empty(), "no sentinela series in {expr}");
        for name in &names {
            if !families.contains(family_of(name).as_str()) {
                problems.push(format!("{name}: not exposed (in `{expr}`)"));
            }
        }
        // Each label is on the series of one of the expression's metrics.
        let exposed: Vec<&BTreeSet<String>> = names
            .iter()
            .filter_map(|n| samples.get(n.as_str()))
            .collect();
        for label in &labels {
            checked_labels += 1;
            if !exposed.iter().any(|l| l.contains(label)) {
                problems.push(format!(
                    "label {label} is on none of {names:?} (in `{expr}`)"
                ));
            }
        }
    }
    assert!(problems.is_empty(), "{problems:#?}\n{exposition}");
    assert!(checked_labels >= 20, "{checked_labels} labels checked");
    // The situations of this run have their series, with their labels.
    for name in [
        "sentinela_monitor_failing",
        "sentinela_calls_total",
        "sentinela_plugin_load_errors_total",
        "sentinela_schedule_lag_seconds_bucket",
        "sentinela_application_queue_total",
        "sentinela_host_calls_total",
        "sentinela_credential_renewals_total",
        "sentinela_control_actions_total",
    ] {
        assert!(
            samples.contains_key(name),
            "{name} has no series:\n{exposition}"
        );
    }
}

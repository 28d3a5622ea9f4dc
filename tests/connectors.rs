//! Credential connectors against moto: a monitor's calls signed with an assumed role land in
//! the role's account, with one AssumeRole for many calls; keys kept in SSM sign as well.

mod common;

use common::*;
use serde_json::Value;

fn backlog_ids(stdout: &str) -> Vec<String> {
    serde_json::from_str::<Value>(stdout)
        .unwrap()
        .as_array()
        .unwrap()
        .iter()
        .map(|issue| issue["id"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn connector_credentials_sign_in_the_role_s_account() {
    let suffix = std::process::id().to_string();
    fixture_script("connector_setup.py", &[&moto_endpoint(), &suffix]);
    let env = [
        ("SENTINELA_PLUGINS", "aws"),
        ("AWS_BASE_ACCESS_KEY_ID", "testing"),
        ("AWS_BASE_SECRET_ACCESS_KEY", "testing"),
        ("AWS_BASE_REGION", "us-east-1"),
    ];
    let monitor = format!(
        "monitors:\n  - name: sqs-backlog\n    plugin: {}\n    grants:\n      credentials: [MONITORING]\n      aws: [\"sqs:ListQueues\", \"sqs:GetQueueAttributes\"]\n",
        guest("sqs_backlog").display()
    );
    let in_base = format!("in-base-{suffix}");
    let in_role = format!("in-role-{suffix}");

    // Through the source credential itself: the base account's queue.
    let dir = scratch_dir("connector-none");
    let direct = write_config(&dir, &monitor);
    let mut direct_env = env.to_vec();
    direct_env.extend([
        ("AWS_MONITORING_ACCESS_KEY_ID", "testing"),
        ("AWS_MONITORING_SECRET_ACCESS_KEY", "testing"),
        ("AWS_MONITORING_REGION", "us-east-1"),
    ]);
    let (status, stdout, stderr) = output(
        sentinela(&["invoke", direct.to_str().unwrap(), "sqs-backlog", "search"]).envs(direct_env),
    );
    assert!(status.success(), "{stderr}");
    let ids = backlog_ids(&stdout);
    assert!(ids.contains(&in_base) && !ids.contains(&in_role), "{ids:?}");

    // Through an assumed role: the role's account, and one AssumeRole for all the calls.
    let dir = scratch_dir("connector-role");
    let role = write_config(
        &dir,
        &format!(
            "credentials:\n  monitoring:\n    source: BASE\n    assume_role:\n      role_arn: arn:aws:iam::111111111111:role/monitoring\n      external_id: \"ssm:/sentinela/external-id-{suffix}\"\n      duration: 900s\n      tags: {{team: ops}}\n      policy: {{Version: \"2012-10-17\", Statement: [{{Effect: Allow, Action: \"sqs:*\", Resource: \"*\"}}]}}\n{monitor}"
        ),
    );
    let (status, stdout, stderr) =
        output(sentinela(&["invoke", role.to_str().unwrap(), "sqs-backlog", "search"]).envs(env));
    assert!(status.success(), "{stderr}");
    let ids = backlog_ids(&stdout);
    assert!(ids.contains(&in_role) && !ids.contains(&in_base), "{ids:?}");
    let calls = stderr.lines().filter(|l| l.contains("aws-call")).count();
    let refreshes = stderr
        .lines()
        .filter(|l| l.contains("credential connector refreshed"))
        .count();
    assert!(calls >= 2, "{stderr}");
    assert_eq!(refreshes, 1, "one AssumeRole for {calls} calls:\n{stderr}");
    assert!(stderr.contains("kind=\"assume_role\""), "{stderr}");

    // A long-running host renews the role before it expires, without an AssumeRole per call:
    // renewing 899 s before a 900 s session ends means a renewal about every second.
    let dir = scratch_dir("connector-refresh");
    let refreshing = write_config(
        &dir,
        &format!(
            "credentials:\n  MONITORING:\n    source: BASE\n    refresh_window: 899s\n    assume_role:\n      role_arn: arn:aws:iam::111111111111:role/monitoring\n      duration: 900s\nmonitors:\n  - name: sqs-backlog\n    plugin: {}\n    search_cron: \"* * * * * *\"\n    grants:\n      credentials: [MONITORING]\n      aws: [\"sqs:ListQueues\", \"sqs:GetQueueAttributes\"]\n",
            guest("sqs_backlog").display()
        ),
    );
    let run = Running::start(&refreshing, &env);
    let counts = |events: &[Value]| {
        let refreshes = events
            .iter()
            .filter(|e| field(e, "message") == "credential connector refreshed")
            .count();
        let calls = events
            .iter()
            .filter(|e| field(e, "message") == "aws-call" && field(e, "outcome") == "ok")
            .count();
        (refreshes, calls)
    };
    run.wait_until(
        "three renewals",
        std::time::Duration::from_secs(60),
        |events| counts(events).0 >= 3,
    );
    let (status, events) = run.terminate(std::time::Duration::from_secs(30));
    assert!(status.success());
    let (refreshes, calls) = counts(&events);
    assert!(
        calls >= 2 * refreshes,
        "{refreshes} AssumeRole calls for {calls} aws-calls:\n{}",
        dump(&events)
    );
    assert!(
        !dump(&events).contains("outcome\":\"unavailable"),
        "a call failed across a renewal"
    );
    // Each renewal is the host's own use of the source credential: audited.
    let assumed = events
        .iter()
        .filter(|e| {
            field(e, "target") == "sentinela::audit"
                && field(e, "actor") == "host"
                && field(e, "credential") == "BASE"
                && field(e, "operation") == "AssumeRole"
                && field(e, "resource") == "arn:aws:iam::111111111111:role/monitoring"
                && field(e, "outcome") == "ok"
        })
        .count();
    // (One more if the process stopped between an AssumeRole and its "refreshed" line.)
    assert!(
        (refreshes..=refreshes + 1).contains(&assumed),
        "{assumed} audited AssumeRole calls for {refreshes} renewals:\n{}",
        dump(&events)
    );

    // Keys kept in SSM (the role session's, stored by the setup) sign the same way.
    let dir = scratch_dir("connector-ssm");
    let ssm = write_config(
        &dir,
        &format!(
            "credentials:\n  MONITORING:\n    source: base\n    ssm_keys: /sentinela/keys-{suffix}\n{monitor}"
        ),
    );
    let (status, stdout, stderr) =
        output(sentinela(&["invoke", ssm.to_str().unwrap(), "sqs-backlog", "search"]).envs(env));
    assert!(status.success(), "{stderr}");
    let ids = backlog_ids(&stdout);
    assert!(ids.contains(&in_role) && !ids.contains(&in_base), "{ids:?}");
    assert!(stderr.contains("kind=\"ssm_keys\""), "{stderr}");

    // Connector config errors.
    for (name, yaml, expected) in [
        (
            "connector-app",
            "credentials:\n  APPLICATION: {source: BASE, ssm_keys: /x}\nmonitors: []\n",
            "APPLICATION is the host's own credential",
        ),
        (
            "connector-both",
            "credentials:\n  X: {source: BASE, ssm_keys: /x, assume_role: {role_arn: a}}\nmonitors: []\n",
            "exactly one of 'assume_role' or 'ssm_keys'",
        ),
        (
            "connector-self",
            "credentials:\n  X: {source: x, ssm_keys: /x}\nmonitors: []\n",
            "cannot be its own source",
        ),
    ] {
        let dir = scratch_dir(name);
        let config = write_config(&dir, yaml);
        let (status, stdout, stderr) =
            output(sentinela(&["check", config.to_str().unwrap()]).envs(env));
        assert!(!status.success());
        assert!(
            format!("{stdout}{stderr}").contains(expected),
            "{stdout}{stderr}"
        );
    }
}

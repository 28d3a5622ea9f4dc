//! The issue store: SQLite by default (issues survive a restart), PostgreSQL shared by a
//! controller and two executors on SQS, issue events on a queue, the `issues` command, and
//! clear errors for bad store configs.

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::config::{Monitor, TestConfig};
use common::*;
use serde_json::Value;

fn steady(cron: &str) -> String {
    format!(
        "  - name: steady\n    plugin: {}\n    search_cron: \"{cron}\"\n",
        guest("steady").display()
    )
}

fn blink() -> String {
    format!(
        "  - name: blink\n    plugin: {}\n    search_cron: \"* * * * * *\"\n    update_cron: \"* * * * * *\"\n",
        guest("blink").display()
    )
}

/// `sentinela issues CONFIG ARGS... --json`, parsed.
fn listed(config: &Path, args: &[&str], envs: &[(&str, &str)]) -> Vec<Value> {
    let mut all = vec!["issues", config.to_str().unwrap(), "--json"];
    all.extend_from_slice(args);
    let (status, stdout, stderr) = output(sentinela(&all).envs(envs.iter().copied()));
    assert!(status.success(), "{stderr}");
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"))
}

fn count(events: &[Value], kind: &str, monitor: &str) -> HashMap<String, usize> {
    let mut counts = HashMap::new();
    for event in events {
        if field(event, "monitor") == monitor
            && let Some(id) = issue_event(event, kind)
        {
            *counts.entry(id.to_owned()).or_default() += 1;
        }
    }
    counts
}

fn searches_finished(events: &[Value], monitor: &str) -> usize {
    events
        .iter()
        .filter(|e| {
            field(e, "monitor") == monitor
                && field(e, "message") == "task finished"
                && field(e, "task") == "Search"
        })
        .count()
}

#[test]
fn sqlite_issues_survive_a_restart_and_solved_ones_stay_solved() {
    let dir = scratch_dir("store-sqlite");
    let config = write_config(
        &dir,
        &format!("monitors:\n{}{}", steady("* * * * * *"), blink()),
    );
    let timeout = Duration::from_secs(60);

    let first = Running::start(&config, &[]);
    first.wait_for("steady's issue", timeout, |e| {
        issue_event(e, "created") == Some("steady")
    });
    first.wait_for("a blink issue solved", timeout, |e| {
        field(e, "monitor") == "blink" && issue_event(e, "solved").is_some()
    });
    let (status, events) = first.terminate(Duration::from_secs(30));
    assert!(status.success(), "{}", dump(&events));
    let solved_before: Vec<String> = count(&events, "solved", "blink").into_keys().collect();
    // The default store is a file next to the config, named after it.
    assert!(dir.join("sentinela.db").is_file());

    // A second process finds the issue already there: nothing is created twice.
    let second = Running::start(&config, &[]);
    second.wait_until("two searches after the restart", timeout, |events| {
        searches_finished(events, "steady") >= 2
    });
    let (status, events) = second.terminate(Duration::from_secs(30));
    assert!(status.success(), "{}", dump(&events));
    assert_eq!(
        count(&events, "created", "steady").get("steady"),
        None,
        "steady's issue was created again after a restart:\n{}",
        dump(&events)
    );

    let steady_issues = listed(&config, &["--monitor", "steady"], &[]);
    assert_eq!(steady_issues.len(), 1, "{steady_issues:?}");
    assert_eq!(steady_issues[0]["status"], "active");
    assert_eq!(steady_issues[0]["data"], serde_json::json!({ "ok": true }));
    let solved = listed(&config, &["--monitor", "blink", "--status", "solved"], &[]);
    for id in &solved_before {
        let rows: Vec<_> = solved.iter().filter(|i| i["id"] == id.as_str()).collect();
        assert_eq!(rows.len(), 1, "{id}: {solved:?}");
        assert!(rows[0]["solved_at"].is_number());
    }
    assert!(
        listed(&config, &["--monitor", "blink", "--status", "active"], &[])
            .iter()
            .all(|i| !solved_before.iter().any(|id| i["id"] == id.as_str())),
        "a solved issue came back as active"
    );

    // The readable table.
    let (status, stdout, stderr) = output(&mut sentinela(&["issues", config.to_str().unwrap()]));
    assert!(status.success(), "{stderr}");
    let header = stdout.lines().next().unwrap_or_default();
    assert!(
        header.starts_with("MONITOR") && header.contains("STATUS"),
        "{stdout}"
    );
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with("steady") && l.contains("active")),
        "{stdout}"
    );
}

#[test]
fn bad_store_configs_fail_at_start_with_a_clear_error() {
    let dir = scratch_dir("store-bad");
    let run = |store: &str, envs: &[(&str, &str)]| {
        let config = write_config(
            &dir,
            &format!("store:\n{store}monitors:\n{}", steady("0 0 1 1 *")),
        );
        let (status, stdout, stderr) =
            output(sentinela(&["run", config.to_str().unwrap()]).envs(envs.iter().copied()));
        assert!(
            !status.success(),
            "started with a bad store:\n{stdout}{stderr}"
        );
        assert!(!stderr.contains("panicked"), "{stderr}");
        stderr
    };

    // Unreachable database: the error names it, never its password.
    let stderr = run(
        "  type: postgres\n  url: postgres://sentinela:hunter2@127.0.0.1:1/issues\n",
        &[],
    );
    assert!(
        stderr.contains("store: cannot open postgres://sentinela:***@127.0.0.1:1/issues")
            && stderr.contains("Connection refused"),
        "{stderr}"
    );
    assert!(!stderr.contains("hunter2"), "{stderr}");

    // Not a PostgreSQL URL; the URL from a variable that is not set.
    let stderr = run("  type: postgres\n  url: mysql://db/issues\n", &[]);
    assert!(
        stderr.contains("store.url must start with postgres://"),
        "{stderr}"
    );
    let stderr = run("  type: postgres\n", &[("SENTINELA_DATABASE_URL", "")]);
    assert!(
        stderr.contains("set store.url, or the SENTINELA_DATABASE_URL variable"),
        "{stderr}"
    );
    let stderr = run("  type: postgres\n  url: postgres://[::1:5432/x\n", &[]);
    assert!(stderr.contains("store: cannot open"), "{stderr}");

    // An SQLite path that cannot be created: under a regular file.
    std::fs::write(dir.join("a-file"), "").unwrap();
    let stderr = run("  path: a-file/issues.db\n", &[]);
    assert!(
        stderr.contains("store:") && stderr.contains("a-file/issues.db"),
        "{stderr}"
    );

    // Keys of the other type, an unknown type, a queue that is not declared.
    let stderr = run("  type: sqlite\n  url: postgres://x/y\n", &[]);
    assert!(
        stderr.contains("store.url applies to PostgreSQL stores only"),
        "{stderr}"
    );
    let stderr = run("  type: mongodb\n", &[]);
    assert!(stderr.contains("unknown store type 'mongodb'"), "{stderr}");
    let stderr = run("  events_queue: alerts\n", &[]);
    assert!(
        stderr.contains("store.events_queue: queue 'alerts' is not declared"),
        "{stderr}"
    );
}

// ---------------------------------------------------------------------------------------------
// PostgreSQL (started by scripts/test.sh) and SQS (moto)

/// A fresh database on the test server, so tests do not see each other's issues.
fn postgres_database(name: &str) -> String {
    let server = std::env::var("SENTINELA_TEST_DATABASE_URL").expect(
        "SENTINELA_TEST_DATABASE_URL is not set: run scripts/test.sh, which starts PostgreSQL",
    );
    let database = format!("{name}_{}", std::process::id());
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        use sqlx::Connection;
        let mut admin = sqlx::postgres::PgConnection::connect(&server)
            .await
            .unwrap();
        sqlx::query(&format!("DROP DATABASE IF EXISTS {database}"))
            .execute(&mut admin)
            .await
            .unwrap();
        sqlx::query(&format!("CREATE DATABASE {database}"))
            .execute(&mut admin)
            .await
            .unwrap();
    });
    let (base, _) = server.rsplit_once('/').unwrap();
    format!("{base}/{database}")
}

fn application_env(database_url: &str) -> Vec<(String, String)> {
    vec![
        ("SENTINELA_PLUGINS".into(), "aws".into()),
        (
            "AWS_APPLICATION_ACCESS_KEY_ID".into(),
            "AKIAAPPLICATION00001".into(),
        ),
        (
            "AWS_APPLICATION_SECRET_ACCESS_KEY".into(),
            "application-secret".into(),
        ),
        ("AWS_APPLICATION_REGION".into(), "us-east-1".into()),
        (
            "AWS_ALERTS_ACCESS_KEY_ID".into(),
            "AKIAALERTS0000000001".into(),
        ),
        (
            "AWS_ALERTS_SECRET_ACCESS_KEY".into(),
            "alerts-secret".into(),
        ),
        ("AWS_ALERTS_REGION".into(), "us-east-1".into()),
        ("SENTINELA_DATABASE_URL".into(), database_url.into()),
    ]
}

/// Up to 10 messages of the events queue, as JSON, deleted once read (1 s long poll).
fn take_events(
    runtime: &tokio::runtime::Runtime,
    sqs: &aws_sdk_sqs::Client,
    url: &str,
) -> Vec<Value> {
    let received = runtime
        .block_on(
            sqs.receive_message()
                .queue_url(url)
                .max_number_of_messages(10)
                .wait_time_seconds(1)
                .send(),
        )
        .unwrap();
    let mut bodies = Vec::new();
    for message in received.messages.unwrap_or_default() {
        bodies.push(serde_json::from_str(message.body.as_deref().unwrap()).unwrap());
        runtime
            .block_on(
                sqs.delete_message()
                    .queue_url(url)
                    .receipt_handle(message.receipt_handle.unwrap())
                    .send(),
            )
            .unwrap();
    }
    bodies
}

fn unique(name: &str) -> String {
    format!("{name}-{}", std::process::id())
}

fn create_queue(
    runtime: &tokio::runtime::Runtime,
    sqs: &aws_sdk_sqs::Client,
    name: &str,
) -> String {
    runtime
        .block_on(sqs.create_queue().queue_name(name).send())
        .unwrap()
        .queue_url
        .unwrap()
}

#[test]
fn a_controller_and_two_executors_share_one_postgres_store() {
    let database = postgres_database("scale_out");
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let sqs = {
        let _guard = runtime.enter();
        sqs_client(&moto_endpoint(), "testing", "testing")
    };
    let app = unique("store-app");
    create_queue(&runtime, &sqs, &app);
    let alerts = unique("store-alerts");
    let alerts_url = create_queue(&runtime, &sqs, &alerts);

    let dir = scratch_dir("store-postgres");
    let config: PathBuf = write_config(
        &dir,
        &format!(
            "application_queue:
  type: plugin.aws.sqs
  name: {app}
  queue_wait_message_time: 1
executor:
  concurrency: 4
store:
  type: postgres
  pool_size: 4
  events_queue: alerts
queues:
  alerts:
    url: {alerts_url}
    credential: ALERTS
monitors:
{}{}",
            steady("* * * * * *"),
            blink()
        ),
    );
    let env = application_env(&database);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let executors = [
        Running::start_with_args(&config, &["--role", "executor"], &env),
        Running::start_with_args(&config, &["--role", "executor"], &env),
    ];
    let controller = Running::start_with_args(&config, &["--role", "controller"], &env);
    let timeout = Duration::from_secs(90);
    // Both executors ran searches, and blink's issues came and went a few times.
    for executor in &executors {
        executor.wait_until("searches on this executor", timeout, |events| {
            searches_finished(events, "steady") + searches_finished(events, "blink") >= 3
        });
    }
    poll_until("three blink issues solved", timeout, || {
        let mut all = executors[0].events();
        all.extend(executors[1].events());
        count(&all, "solved", "blink").len() >= 3
    });
    let (status, _) = controller.terminate(Duration::from_secs(30));
    assert!(status.success());
    let mut events = Vec::new();
    for executor in executors {
        let (status, mine) = executor.terminate(Duration::from_secs(30));
        assert!(status.success(), "{}", dump(&mine));
        events.extend(mine);
    }

    let issues = listed(&config, &[], &env);
    let rows = |monitor: &str, id: &str| -> Vec<&Value> {
        issues
            .iter()
            .filter(|i| i["monitor"] == monitor && i["id"] == id)
            .collect()
    };
    // One problem, one issue, created once — whichever executor saw it first.
    assert_eq!(rows("steady", "steady").len(), 1, "{issues:?}");
    assert_eq!(
        count(&events, "created", "steady").get("steady"),
        Some(&1),
        "{}",
        dump(&events)
    );
    // Every blink issue was created once and solved at most once, and the events say so.
    let created = count(&events, "created", "blink");
    let solved = count(&events, "solved", "blink");
    for (id, n) in &created {
        assert_eq!(*n, 1, "{id} created {n} times");
        assert_eq!(rows("blink", id).len(), 1, "{id}: {issues:?}");
    }
    for (id, n) in &solved {
        assert_eq!(*n, 1, "{id} solved {n} times");
        assert_eq!(rows("blink", id)[0]["status"], "solved");
    }
    let blink_rows = issues.iter().filter(|i| i["monitor"] == "blink").count();
    assert_eq!(blink_rows, created.len(), "{issues:?}");

    // Every event also went to the alerts queue, as JSON.
    let mut delivered: HashMap<(String, String, String), usize> = HashMap::new();
    poll_until("the issue events on the alerts queue", timeout, || {
        for body in take_events(&runtime, &sqs, &alerts_url) {
            assert_eq!(body["type"], "issue", "{body}");
            let key = (
                body["monitor"].as_str().unwrap().to_owned(),
                body["issue_id"].as_str().unwrap().to_owned(),
                body["event"].as_str().unwrap().to_owned(),
            );
            *delivered.entry(key).or_default() += 1;
        }
        solved
            .keys()
            .all(|id| delivered.contains_key(&("blink".into(), id.clone(), "solved".into())))
    });
    for id in created.keys() {
        assert_eq!(
            delivered.get(&("blink".into(), id.clone(), "created".into())),
            Some(&1),
            "{delivered:?}"
        );
    }
    assert_eq!(
        delivered.get(&("steady".into(), "steady".into(), "created".into())),
        Some(&1)
    );
}

/// A crash between an issue change's commit and its event's publication loses no event: the
/// next start publishes it from the outbox, with the id and time it was committed with, to
/// the log and the events queue.
#[test]
fn a_crash_between_commit_and_publish_loses_no_event() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let sqs = {
        let _guard = runtime.enter();
        sqs_client(&moto_endpoint(), "testing", "testing")
    };
    let alerts = unique("store-crash-alerts");
    let alerts_url = create_queue(&runtime, &sqs, &alerts);
    let dir = scratch_dir("store-crash");
    let config = TestConfig::new()
        .set("store.events_queue", "alerts")
        .set("queues.alerts.url", alerts_url.as_str())
        .set("queues.alerts.credential", "ALERTS")
        .monitor(Monitor::new("steady", "steady").search_every_second())
        .write(&dir);
    let env = application_env("unused");
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();

    // The first run aborts right after committing steady's issue, before publishing it.
    let mut faulty = env.clone();
    faulty.push(("SENTINELA_TEST_FAULT", "abort-after-commit"));
    let (status, events) = Running::start(&config, &faulty).wait_exit(Duration::from_secs(60));
    assert!(!status.success(), "{}", dump(&events));
    assert!(
        dump(&events).contains("crashing at abort-after-commit"),
        "{}",
        dump(&events)
    );
    assert!(
        !events.iter().any(|e| issue_event(e, "created").is_some()),
        "published before the crash: {}",
        dump(&events)
    );
    let stored = listed(&config, &["--monitor", "steady"], &env);
    assert_eq!(
        stored.len(),
        1,
        "the change itself was committed: {stored:?}"
    );

    // The next start publishes it; steady's later searches change nothing, so no other event.
    let run = Running::start(&config, &env);
    let created = run.wait_for(
        "the event published at start",
        Duration::from_secs(60),
        |e| issue_event(e, "created") == Some("steady"),
    );
    let event_id = created["event_id"].as_i64().expect("an event id");
    run.wait_until("two more searches", Duration::from_secs(60), |events| {
        searches_finished(events, "steady") >= 2
    });
    let (status, events) = run.terminate(Duration::from_secs(30));
    assert!(status.success(), "{}", dump(&events));
    let logged: Vec<i64> = events
        .iter()
        .filter(|e| issue_event(e, "created").is_some())
        .filter_map(|e| e["event_id"].as_i64())
        .collect();
    assert_eq!(logged, [event_id], "{}", dump(&events));

    // The events queue got it once, with the same id.
    let mut delivered = Vec::new();
    poll_until(
        "the event on the alerts queue",
        Duration::from_secs(30),
        || {
            delivered.extend(take_events(&runtime, &sqs, &alerts_url));
            !delivered.is_empty()
        },
    );
    assert_eq!(delivered.len(), 1, "{delivered:?}");
    assert_eq!(delivered[0]["event_id"], event_id, "{delivered:?}");
    assert_eq!(delivered[0]["event"], "created");
    assert_eq!(delivered[0]["issue_id"], "steady");
}

/// Issue writes are batched, and a batch commits whole or not at all: a `kill -9` in the
/// middle of one (after some of its statements ran, before its commit) loses none of the
/// changes acknowledged before it, and its own are made again by the tasks that run after
/// the restart. Each issue is created once — one `created` event id across both runs, logged
/// at least once — and nothing else changes.
#[test]
fn a_kill_9_in_the_middle_of_a_batch_loses_no_acknowledged_change_or_event() {
    use std::os::unix::process::ExitStatusExt;
    let dir = scratch_dir("store-kill");
    // Each monitor finds ten issues a search: each search queues ten writes at once.
    let calls: Vec<String> = (0..10)
        .map(|i| format!("{{id: issue-{i}, fn: none}}"))
        .collect();
    let names: Vec<String> = (0..4).map(|i| format!("many-{i}")).collect();
    let mut config = TestConfig::new();
    for name in &names {
        config = config.monitor(
            Monitor::new(name, "aws_calls")
                .search_every_second()
                .set_yaml("settings.calls", &format!("[{}]", calls.join(", "))),
        );
    }
    let config = config.write(&dir);

    let (status, first) = Running::start(&config, &[("SENTINELA_TEST_FAULT", "kill-mid-batch")])
        .wait_exit(Duration::from_secs(60));
    assert_eq!(status.signal(), Some(9), "{}", dump(&first));
    assert!(dump(&first).contains("crashing at kill-mid-batch"));
    let before = listed(&config, &[], &[]);
    assert!(
        before.len() < 40,
        "the killed batch was committed: {before:?}"
    );

    let run = Running::start(&config, &[]);
    run.wait_until(
        "every monitor's issues",
        Duration::from_secs(60),
        |events| names.iter().all(|n| searches_finished(events, n) >= 2),
    );
    let (status, second) = run.terminate(Duration::from_secs(30));
    assert!(status.success(), "{}", dump(&second));

    let stored = listed(&config, &[], &[]);
    assert_eq!(stored.len(), 40, "{stored:?}");
    let mut created: HashMap<(String, String), std::collections::BTreeSet<i64>> = HashMap::new();
    for event in first.iter().chain(&second) {
        if let Some(id) = issue_event(event, "created") {
            created
                .entry((field(event, "monitor").to_owned(), id.to_owned()))
                .or_default()
                .insert(event["event_id"].as_i64().unwrap());
        }
    }
    for issue in &stored {
        let key = (
            issue["monitor"].as_str().unwrap().to_owned(),
            issue["id"].as_str().unwrap().to_owned(),
        );
        assert_eq!(
            created.get(&key).map(|ids| ids.len()),
            Some(1),
            "{key:?}: {created:?}"
        );
    }
    assert_eq!(created.len(), 40, "{created:?}");
    let updated = first
        .iter()
        .chain(&second)
        .filter(|e| issue_event(e, "updated").is_some())
        .count();
    assert_eq!(updated, 0, "the same data was written again");
}

/// A monitor that finds the same issue every second makes one write (its creation); every
/// later search costs a read of the monitor's version and nothing else, counted in
/// `/metrics`. When another process changes the issue (here `monitors refresh` with other
/// settings, against the same SQLite file), the running host notices at its next search and
/// writes its own finding back: nothing it knows goes stale.
#[test]
fn unchanged_issues_are_not_written_and_another_process_s_change_is_seen() {
    let dir = scratch_dir("store-unchanged");
    let port = free_port();
    let probe = |threshold: i64| {
        Monitor::new("probe", "settings_probe")
            .search_every_second()
            .set("settings.threshold", threshold)
    };
    let config = TestConfig::new()
        .set("store.path", "shared.db")
        .set("http.listen", format!("127.0.0.1:{port}"))
        .monitor(probe(1))
        .write(&dir);
    let run = Running::start(&config, &[]);
    let timeout = Duration::from_secs(60);
    run.wait_for("the issue created", timeout, |e| {
        issue_event(e, "created") == Some("settings")
    });
    let searches = |events: &[Value]| {
        events
            .iter()
            .filter(|e| field(e, "monitor") == "probe" && field(e, "message") == "task finished")
            .count()
    };
    run.wait_until("four searches", timeout, |events| searches(events) >= 4);
    let records = |result: &str| {
        let (_, text) = http_get(port, "/metrics");
        sample(
            &text,
            "sentinela_issue_records_total",
            &[("result", result)],
        )
        .unwrap_or(0.0)
    };
    assert_eq!(records("written"), 1.0, "only the creation is written");
    assert!(
        records("skipped") >= 3.0,
        "searches that found the same data were skipped"
    );

    // Another process writes other data for the same issue.
    let other = dir.join("other.yaml");
    std::fs::write(
        &other,
        TestConfig::new()
            .set("store.path", "shared.db")
            .monitor(probe(2))
            .yaml(),
    )
    .unwrap();
    let seen = run.events().len();
    let (status, stdout, stderr) = output(&mut sentinela(&[
        "monitors",
        other.to_str().unwrap(),
        "refresh",
        "probe",
    ]));
    assert!(status.success(), "{stdout}{stderr}");
    let updated = run.wait_for("the host writing its own finding back", timeout, |e| {
        issue_event(e, "updated") == Some("settings")
    });
    assert!(
        field(&updated, "data").contains("\"threshold\":\"1\""),
        "{updated}"
    );
    assert!(run.events().len() > seen);
    let (status, events) = run.terminate(Duration::from_secs(30));
    assert!(status.success(), "{}", dump(&events));
}

/// The server closes every connection of the host (as a restart, an idle timeout or a proxy
/// would), including the ones the store's writer and version reader keep for themselves: no
/// task fails for it. `steady` reads versions only; `blink` writes at every task.
#[test]
fn connections_the_postgres_server_closes_cost_no_task() {
    let database = postgres_database("closed_connections");
    let dir = scratch_dir("store-closed-connections");
    let config = TestConfig::new()
        .set("store.type", "postgres")
        .monitor(
            Monitor::new("steady", "steady")
                .search_every_second()
                .update_every_second(),
        )
        .monitor(
            Monitor::new("blink", "blink")
                .search_every_second()
                .update_every_second(),
        )
        .write(&dir);
    let run = Running::start(&config, &[("SENTINELA_DATABASE_URL", database.as_str())]);
    let timeout = Duration::from_secs(60);
    let finished = |events: &[Value]| {
        events
            .iter()
            .filter(|e| field(e, "message") == "task finished")
            .count()
    };
    run.wait_until("four tasks", timeout, |events| finished(events) >= 4);

    let closed = tokio::runtime::Runtime::new().unwrap().block_on(async {
        use sqlx::Connection;
        let mut admin = sqlx::postgres::PgConnection::connect(&database)
            .await
            .unwrap();
        sqlx::query(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
             WHERE datname = current_database() AND pid <> pg_backend_pid()",
        )
        .fetch_all(&mut admin)
        .await
        .unwrap()
        .len()
    });
    assert!(
        closed >= 2,
        "the host's kept connections were open: {closed}"
    );
    let before = finished(&run.events());
    run.wait_until("six more tasks", timeout, |events| {
        finished(events) >= before + 6
    });
    let (status, events) = run.terminate(Duration::from_secs(30));
    assert!(status.success(), "{}", dump(&events));
    let failed: Vec<&Value> = events
        .iter()
        .filter(|e| field(e, "level") == "ERROR" || field(e, "message").starts_with("task failed"))
        .collect();
    assert!(failed.is_empty(), "{failed:#?}");
}

//! The application queue on SQS (moto): start-up checks, processing semantics, poison
//! messages, and scale-out with a controller and several executor processes.

mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

fn application_env() -> Vec<(&'static str, &'static str)> {
    vec![
        ("SENTINELA_PLUGINS", "aws"),
        ("AWS_APPLICATION_ACCESS_KEY_ID", "AKIAAPPLICATION00001"),
        ("AWS_APPLICATION_SECRET_ACCESS_KEY", "application-secret"),
        ("AWS_APPLICATION_REGION", "us-east-1"),
        ("RUST_LOG", "info,sentinela_host::runtime=debug"),
    ]
}

struct Sqs {
    runtime: tokio::runtime::Runtime,
    client: aws_sdk_sqs::Client,
}

impl Sqs {
    fn new() -> Sqs {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let client = {
            let _guard = runtime.enter();
            sqs_client(&moto_endpoint(), "testing", "testing")
        };
        Sqs { runtime, client }
    }

    fn create(&self, name: &str) -> String {
        self.runtime
            .block_on(self.client.create_queue().queue_name(name).send())
            .unwrap()
            .queue_url
            .unwrap()
    }

    fn send(&self, url: &str, body: &str) -> String {
        self.runtime
            .block_on(
                self.client
                    .send_message()
                    .queue_url(url)
                    .message_body(body)
                    .send(),
            )
            .unwrap()
            .message_id
            .unwrap()
    }

    /// Messages visible now (a short poll with visibility 0, so nothing is hidden by looking).
    fn visible(&self, url: &str) -> Vec<String> {
        let out = self
            .runtime
            .block_on(
                self.client
                    .receive_message()
                    .queue_url(url)
                    .max_number_of_messages(10)
                    .visibility_timeout(0)
                    .send(),
            )
            .unwrap();
        out.messages
            .unwrap_or_default()
            .into_iter()
            .filter_map(|m| m.body)
            .collect()
    }

    fn exists(&self, name: &str) -> bool {
        self.runtime
            .block_on(self.client.get_queue_url().queue_name(name).send())
            .is_ok()
    }
}

fn unique(name: &str) -> String {
    format!(
        "{name}-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_micros()
            % 1_000_000
    )
}

fn sqs_config(
    dir: &std::path::Path,
    queue: &str,
    extra_queue_keys: &str,
    monitors: &str,
) -> std::path::PathBuf {
    write_config(
        dir,
        &format!(
            "application_queue:\n  type: plugin.aws.sqs\n  name: {queue}\n  queue_wait_message_time: 1\n  queue_visibility_time: 1\n{extra_queue_keys}executor:\n  concurrency: 2\n  shutdown_grace: 1s\nmonitors:\n{monitors}"
        ),
    )
}

fn steady_monitor(cron: &str) -> String {
    format!(
        "  - name: steady\n    plugin: {}\n    search_cron: \"{cron}\"\n",
        guest("steady").display()
    )
}

#[test]
fn a_missing_queue_is_an_error_unless_create_queue() {
    let sqs = Sqs::new();
    let dir = scratch_dir("sqs-missing");
    let queue = unique("missing");
    let config = sqs_config(&dir, &queue, "", &steady_monitor("0 0 1 1 *"));
    let (status, _, stderr) =
        output(sentinela(&["run", config.to_str().unwrap()]).envs(application_env()));
    assert!(!status.success(), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "the SQS application queue '{queue}' does not exist"
        )) && stderr.contains("create_queue: true"),
        "{stderr}"
    );
    assert!(
        stderr.contains("does not exist; create it, or set application_queue.create_queue"),
        "one line, no stray backslash: {stderr}"
    );
    assert!(
        !sqs.exists(&queue),
        "the queue was created without create_queue"
    );

    // SQS without the aws host plugin names the fix.
    let (status, _, stderr) = output(&mut sentinela(&["run", config.to_str().unwrap()]));
    assert!(!status.success());
    assert!(stderr.contains("set SENTINELA_PLUGINS=aws"), "{stderr}");

    // With create_queue the queue and its dead-letter queue are created once, then found.
    let dead = unique("missing-dead");
    let config = sqs_config(
        &dir,
        &queue,
        &format!("  create_queue: true\n  dead_letter_queue: {dead}\n"),
        &steady_monitor("0 0 1 1 *"),
    );
    for round in 0..2 {
        let run = Running::start(&config, &application_env());
        run.wait_for("startup", Duration::from_secs(60), |e| {
            field(e, "message") == "sentinela running"
        });
        let (status, events) = run.terminate(Duration::from_secs(30));
        assert!(status.success(), "{}", dump(&events));
        let created = events
            .iter()
            .any(|e| field(e, "message") == "created the SQS application queue");
        assert_eq!(created, round == 0, "round {round}:\n{}", dump(&events));
        let created_dead = events
            .iter()
            .any(|e| field(e, "message") == "created the dead-letter queue");
        assert_eq!(
            created_dead,
            round == 0,
            "round {round}:\n{}",
            dump(&events)
        );
        assert!(sqs.exists(&queue) && sqs.exists(&dead));
    }
}

#[test]
fn poison_messages_are_taken_out_of_circulation() {
    let sqs = Sqs::new();
    let dir = scratch_dir("sqs-poison");
    let queue = unique("poison");
    let dead = unique("dead");
    let url = sqs.create(&queue);
    let dead_url = sqs.create(&dead);
    for body in [
        "not json",
        r#"{"type": "mystery", "payload": {}}"#,
        r#"{"type": "process_monitor", "payload": {}}"#,
    ] {
        sqs.send(&url, body);
    }
    let config = sqs_config(
        &dir,
        &queue,
        &format!("  dead_letter_queue: {dead}\n"),
        &steady_monitor("0 0 1 1 *"),
    );
    let run = Running::start(&config, &application_env());
    let dead_lettered = |events: &[Value]| {
        events
            .iter()
            .filter(|e| field(e, "message").starts_with("moved a message to the dead-letter queue"))
            .count()
    };
    run.wait_until(
        "three messages dead-lettered",
        Duration::from_secs(60),
        |events| dead_lettered(events) == 3,
    );
    let (status, events) = run.terminate(Duration::from_secs(30));
    assert!(status.success());
    let log = dump(&events);
    assert!(
        log.contains("unknown message type 'mystery'")
            && log.contains("invalid process_monitor payload"),
        "{log}"
    );
    let mut moved = sqs.visible(&dead_url);
    moved.sort();
    assert_eq!(moved.len(), 3, "{moved:?}");
    assert!(
        moved.iter().any(|b| b == "not json") && moved.iter().any(|b| b.contains("mystery")),
        "{moved:?}"
    );
    assert!(
        sqs.visible(&url).is_empty(),
        "poison messages are still in the application queue"
    );
}

/// (message id → how many executors processed it) from debug events of several processes.
fn processed(events: &[Value]) -> HashMap<String, usize> {
    let mut counts = HashMap::new();
    for event in events
        .iter()
        .filter(|e| field(e, "message") == "message processed")
    {
        *counts
            .entry(field(event, "message_id").to_owned())
            .or_default() += 1;
    }
    counts
}

#[test]
fn a_controller_and_two_executors_process_every_task_once() {
    let sqs = Sqs::new();
    let dir = scratch_dir("sqs-scale-out");
    let queue = unique("scale");
    let url = sqs.create(&queue);
    let config = sqs_config(&dir, &queue, "", &steady_monitor("* * * * * *"));
    let executors = [
        Running::start_with_args(&config, &["--role", "executor"], &application_env()),
        Running::start_with_args(&config, &["--role", "executor"], &application_env()),
    ];
    let controller =
        Running::start_with_args(&config, &["--role", "controller"], &application_env());
    let timeout = Duration::from_secs(60);
    controller.wait_until("six tasks queued", timeout, |events| {
        events
            .iter()
            .filter(|e| field(e, "message") == "queued monitor tasks")
            .count()
            >= 6
    });
    let (status, controller_events) = controller.terminate(Duration::from_secs(30));
    assert!(status.success());
    let queued: Vec<String> = controller_events
        .iter()
        .filter(|e| field(e, "message") == "queued monitor tasks")
        .map(|e| field(e, "message_id").to_owned())
        .collect();
    assert!(queued.iter().all(|id| !id.is_empty()));
    // Wait until the executors together have processed every queued message.
    poll_until("every queued task processed", timeout, || {
        let mut all = executors[0].events();
        all.extend(executors[1].events());
        let counts = processed(&all);
        queued.iter().all(|id| counts.contains_key(id))
    });
    let mut all = Vec::new();
    for executor in executors {
        let (status, events) = executor.terminate(Duration::from_secs(30));
        assert!(status.success(), "{}", dump(&events));
        all.extend(events);
    }
    // The host's own uses of APPLICATION are audited: the controller's sends, the
    // executors' receives and batch deletes.
    let host_audit = |events: &[Value], operation: &str| {
        events.iter().any(|e| {
            field(e, "target") == "sentinela::audit"
                && field(e, "actor") == "host"
                && field(e, "credential") == "APPLICATION"
                && field(e, "service") == "sqs"
                && field(e, "operation") == operation
                && field(e, "resource") == url
                && field(e, "outcome") == "ok"
        })
    };
    assert!(
        host_audit(&controller_events, "SendMessage"),
        "{}",
        dump(&controller_events)
    );
    for operation in ["ReceiveMessage", "DeleteMessageBatch"] {
        assert!(
            host_audit(&all, operation),
            "no audit of {operation}:\n{}",
            dump(&all)
        );
    }
    let counts = processed(&all);
    for id in &queued {
        assert_eq!(
            counts.get(id),
            Some(&1),
            "message {id} processed {:?} times",
            counts.get(id)
        );
    }
    // When each trigger was due came along with its message (an SQS message attribute):
    // every message's first task says how late it started.
    let lags: Vec<f64> = all
        .iter()
        .filter(|e| field(e, "message") == "task finished")
        .filter_map(|e| e.get("lag_ms")?.as_f64())
        .collect();
    assert!(
        lags.len() >= queued.len() && lags.iter().all(|lag| *lag >= 0.0),
        "{lags:?}\n{}",
        dump(&all)
    );
    assert!(sqs.visible(&url).is_empty(), "messages left behind");
}

fn spinner_monitor(timeout: &str) -> String {
    format!(
        "  - name: spinner\n    plugin: {}\n    limits:\n      timeout: {timeout}\n",
        guest("hostile_infinite_loop").display()
    )
}

const SPIN: &str =
    r#"{"type": "process_monitor", "payload": {"monitor_id": "spinner", "tasks": ["search"]}}"#;

fn event_for<'a>(events: &'a [Value], message: &str, id: &str) -> Vec<&'a Value> {
    events
        .iter()
        .filter(|e| field(e, "message") == message && field(e, "message_id") == id)
        .collect()
}

#[test]
fn the_heartbeat_keeps_a_slow_message_hidden_past_its_visibility() {
    let sqs = Sqs::new();
    let dir = scratch_dir("sqs-heartbeat");
    let queue = unique("heartbeat");
    let url = sqs.create(&queue);
    // Visibility 1 s: each receive or extension hides the message for 2 s; the task takes 4 s.
    let config = sqs_config(&dir, &queue, "", &spinner_monitor("4s"));
    let a = Running::start_with_args(&config, &["--role", "executor"], &application_env());
    let b = Running::start_with_args(&config, &["--role", "executor"], &application_env());
    let id = sqs.send(&url, SPIN);
    let timeout = Duration::from_secs(60);
    poll_until("the message processed", timeout, || {
        !event_for(&a.events(), "message processed", &id).is_empty()
            || !event_for(&b.events(), "message processed", &id).is_empty()
    });
    let (_, a_events) = a.terminate(Duration::from_secs(30));
    let (_, b_events) = b.terminate(Duration::from_secs(30));
    let starts = event_for(&a_events, "processing message", &id).len()
        + event_for(&b_events, "processing message", &id).len();
    assert_eq!(
        starts,
        1,
        "the message reappeared while it was processed:\n{}\n{}",
        dump(&a_events),
        dump(&b_events)
    );
    assert!(sqs.visible(&url).is_empty());
}

#[test]
fn a_killed_executor_s_message_is_processed_by_another() {
    let sqs = Sqs::new();
    let dir = scratch_dir("sqs-kill");
    let queue = unique("kill");
    let url = sqs.create(&queue);
    let config = sqs_config(&dir, &queue, "", &spinner_monitor("30s"));
    let victim = Running::start_with_args(&config, &["--role", "executor"], &application_env());
    victim.wait_for("startup", Duration::from_secs(60), |e| {
        field(e, "message") == "sentinela running"
    });
    let id = sqs.send(&url, SPIN);
    victim.wait_for(
        "the victim takes the message",
        Duration::from_secs(60),
        |e| field(e, "message") == "processing message" && field(e, "message_id") == id,
    );
    let status = std::process::Command::new("kill")
        .args(["-KILL", &victim.pid().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    drop(victim);

    // The survivor gets it once its invisibility (2 × 1 s) runs out, as a second delivery.
    let survivor_config = sqs_config(&dir, &queue, "", &spinner_monitor("1s"));
    let survivor = Running::start_with_args(
        &survivor_config,
        &["--role", "executor"],
        &application_env(),
    );
    let redelivered = survivor.wait_for("the message redelivered", Duration::from_secs(60), |e| {
        field(e, "message") == "processing message" && field(e, "message_id") == id
    });
    assert_eq!(redelivered["receive_count"], 2, "{redelivered}");
    survivor.wait_for("the message processed", Duration::from_secs(60), |e| {
        field(e, "message") == "message processed" && field(e, "message_id") == id
    });
    let (status, _) = survivor.terminate(Duration::from_secs(30));
    assert!(status.success());
    assert!(sqs.visible(&url).is_empty());
}

#[test]
fn sigterm_releases_unfinished_messages_after_the_grace_period() {
    let sqs = Sqs::new();
    let dir = scratch_dir("sqs-drain");
    let queue = unique("drain");
    let url = sqs.create(&queue);
    // The task would take 30 s; the grace period is 1 s.
    let config = sqs_config(&dir, &queue, "", &spinner_monitor("30s"));
    let leaving = Running::start_with_args(&config, &["--role", "executor"], &application_env());
    let id = sqs.send(&url, SPIN);
    leaving.wait_for("the message taken", Duration::from_secs(60), |e| {
        field(e, "message") == "processing message" && field(e, "message_id") == id
    });
    let started = std::time::Instant::now();
    let (status, events) = leaving.terminate(Duration::from_secs(30));
    assert!(status.success(), "{}", dump(&events));
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "the drain did not respect the grace period"
    );
    assert!(
        dump(&events).contains("releasing their messages"),
        "{}",
        dump(&events)
    );
    // Released (visibility 0): visible again at once, well before its 2 s invisibility ends.
    let body = sqs.visible(&url);
    assert_eq!(body, vec![SPIN.to_owned()], "the message was not released");
}

#[test]
fn monitors_use_granted_queues_with_the_queue_s_own_credential() {
    let sqs = Sqs::new();
    let dir = scratch_dir("monitor-queues");
    let outbox = sqs.create(&unique("outbox"));
    let ledger = sqs.create(&unique("ledger"));
    let config = write_config(
        &dir,
        &format!(
            "queues:\n  outbox: {{url: \"{outbox}\", credential: outbox}}\n  ledger: {{url: \"{ledger}\", credential: LEDGER, region: us-east-1}}\nmonitors:\n  - name: roundtrip\n    plugin: {}\n    grants:\n      queues: [outbox]\n",
            guest("queue_roundtrip").display()
        ),
    );
    let env = [
        ("SENTINELA_PLUGINS", "aws"),
        ("AWS_OUTBOX_ACCESS_KEY_ID", "AKIAOUTBOX0000000001"),
        ("AWS_OUTBOX_SECRET_ACCESS_KEY", "outbox-secret-value"),
        ("AWS_OUTBOX_REGION", "us-east-1"),
        ("AWS_LEDGER_ACCESS_KEY_ID", "AKIALEDGER0000000001"),
        ("AWS_LEDGER_SECRET_ACCESS_KEY", "ledger-secret-value"),
    ];
    let (status, stdout, stderr) =
        output(sentinela(&["invoke", config.to_str().unwrap(), "roundtrip", "search"]).envs(env));
    assert!(status.success(), "{stderr}");
    let data = &serde_json::from_str::<Value>(&stdout).unwrap()[0]["data"];
    assert_eq!(data["body"], r#"{"hello": "world"}"#);
    assert_eq!(
        data["hidden_after_receive"], false,
        "a received message was visible: {data}"
    );
    assert_eq!(data["receive_count_again"], 2, "{data}");
    assert!(
        data["sent_at_ms"].as_u64().unwrap() > 1_700_000_000_000,
        "{data}"
    );
    assert_eq!(data["gone_after_delete"], true, "{data}");
    assert!(
        data["ungranted"]
            .as_str()
            .unwrap()
            .starts_with("denied: queue 'ledger' is not granted to monitor 'roundtrip'"),
        "{data}"
    );
    assert!(
        data["huge"]
            .as_str()
            .unwrap()
            .starts_with("limit: message body of 307200 bytes"),
        "{data}"
    );
    assert!(
        sqs.visible(&ledger).is_empty(),
        "the ungranted queue got a message"
    );
    assert!(
        stderr.contains("credential=\"OUTBOX\""),
        "audited with the queue's credential:\n{stderr}"
    );
    for secret in ["outbox-secret-value", "ledger-secret-value"] {
        assert!(!stdout.contains(secret) && !stderr.contains(secret));
    }

    // A queue cannot use the APPLICATION credential, and a grant must name a declared queue.
    for (name, yaml) in [
        (
            "queue-application",
            format!(
                "queues:\n  outbox: {{url: \"{outbox}\", credential: APPLICATION}}\nmonitors: []\n"
            ),
        ),
        (
            "queue-undeclared",
            format!(
                "monitors:\n  - name: m\n    plugin: {}\n    grants:\n      queues: [nowhere]\n",
                guest("steady").display()
            ),
        ),
    ] {
        let dir = scratch_dir(name);
        let config = write_config(&dir, &yaml);
        let (status, stdout, stderr) =
            output(sentinela(&["check", config.to_str().unwrap()]).envs(env));
        assert!(!status.success(), "{stdout}{stderr}");
        let out = format!("{stdout}{stderr}");
        assert!(
            out.contains("APPLICATION credential belongs to the host")
                || out.contains("queue 'nowhere' is not declared in the 'queues:' section"),
            "{out}"
        );
    }
}

/// Sentinela's own SQS queue tests (`test_sqs_queue.py`), against our queue type directly.
#[tokio::test(flavor = "multi_thread")]
async fn the_sqs_queue_passes_sentinelas_queue_tests() {
    use sentinela_host::aws::credentials::{Credential, KeySource};
    use sentinela_host::config::values::CredentialName;
    use sentinela_host::queue::{ApplicationQueueConfig, QueueKind, SqsQueue};
    use std::sync::Arc;

    let credential = Credential {
        name: CredentialName::parse("application").unwrap(),
        source: KeySource::Static(aws_credential_types::Credentials::new(
            "AKIATEST",
            "test-secret",
            None,
            None,
            "tests",
        )),
        region: Some("us-east-1".into()),
    };
    let config = ApplicationQueueConfig {
        kind: QueueKind::Sqs,
        name: Some(unique("sentinela-tests")),
        create_queue: true,
        queue_wait_message_time: 2,
        queue_visibility_time: 1,
        ..ApplicationQueueConfig::default()
    };
    let queue = Arc::new(
        SqsQueue::connect(&config, &credential, Some(&moto_endpoint()))
            .await
            .unwrap(),
    );
    // Init again on the existing queue: found, not created.
    let existing = ApplicationQueueConfig {
        create_queue: false,
        ..config
    };
    let endpoint = moto_endpoint();
    assert!(
        SqsQueue::connect(&existing, &credential, Some(&endpoint))
            .await
            .is_ok()
    );

    // Wait timeout: an empty queue answers nothing after about the long-poll wait.
    let started = Instant::now();
    assert!(queue.receive(1).await.unwrap().is_empty());
    assert!(
        started.elapsed() >= Duration::from_millis(1500),
        "{:?}",
        started.elapsed()
    );

    // A long poll started first wakes on a message sent 0.5 s later.
    let waiting = tokio::spawn({
        let queue = queue.clone();
        async move { (queue.receive(1).await, Instant::now()) }
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    let body =
        r#"{"type": "process_monitor", "payload": {"monitor_id": "m", "tasks": ["search"]}}"#;
    queue.send(body.to_owned(), None).await.unwrap();
    let sent_at = Instant::now();
    let (received, woke_at) = waiting.await.unwrap();
    let received = received
        .unwrap()
        .pop()
        .expect("the long poll returned the message");
    assert_eq!(received.body, body);
    assert_eq!(received.receive_count, 1);
    assert!(woke_at.duration_since(sent_at) < Duration::from_millis(1500));

    // Not deleted: invisible for 2 × visibility, then received again.
    let hidden_until = Instant::now() + Duration::from_millis(1500);
    let mut redelivered = Vec::new();
    while redelivered.is_empty() {
        redelivered = queue.receive(1).await.unwrap();
        if Instant::now() < hidden_until {
            assert!(
                redelivered.is_empty(),
                "the message reappeared before its visibility ran out"
            );
        }
    }
    assert_eq!(redelivered[0].receive_count, 2);

    // Extending hides it again; delete removes it for good.
    queue.extend(&redelivered[0]).await.unwrap();
    assert!(
        queue.receive(1).await.unwrap().is_empty(),
        "visible right after an extension"
    );
    queue.delete(&redelivered[0]).await.unwrap();
    let after = Instant::now() + Duration::from_secs(3);
    while Instant::now() < after {
        assert!(
            queue.receive(1).await.unwrap().is_empty(),
            "a deleted message came back"
        );
    }

    // Several messages per receive, deleted concurrently (batched by the queue): each delete
    // gets its own outcome, so a bad receipt among good ones fails alone.
    for i in 0..5 {
        queue.send(format!("{body} {i}"), None).await.unwrap();
    }
    let mut received = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while received.len() < 5 && Instant::now() < deadline {
        received.extend(queue.receive(10).await.unwrap());
    }
    assert_eq!(received.len(), 5, "{received:?}");
    let mut forged = received[0].clone();
    forged.receipt_handle = Some("not-a-receipt-handle".into());
    received.push(forged);
    let deletes: Vec<_> = received
        .into_iter()
        .map(|m| {
            let queue = queue.clone();
            tokio::spawn(async move { queue.delete(&m).await })
        })
        .collect();
    let mut outcomes = Vec::new();
    for delete in deletes {
        outcomes.push(delete.await.unwrap());
    }
    assert!(outcomes[..5].iter().all(Result::is_ok), "{outcomes:?}");
    assert!(outcomes[5].is_err(), "a forged receipt was accepted");
    let after = Instant::now() + Duration::from_secs(3);
    while Instant::now() < after {
        assert!(
            queue.receive(10).await.unwrap().is_empty(),
            "a deleted message came back"
        );
    }
}

#[test]
fn a_network_outage_is_retried_with_backoff_and_nothing_is_lost() {
    let sqs = Sqs::new();
    let dir = scratch_dir("sqs-outage");
    let queue = unique("outage");
    let url = sqs.create(&queue);
    let moto: std::net::SocketAddr = moto_endpoint()
        .trim_start_matches("http://")
        .parse()
        .expect("AWS_ENDPOINT_URL is http://IP:PORT");
    let proxy = FlakyProxy::start(moto);
    let config = sqs_config(&dir, &queue, "", &steady_monitor("0 0 1 1 *"));
    let mut env = application_env();
    let proxy_url = proxy.url();
    env.push(("AWS_ENDPOINT_URL", &proxy_url));
    let executor = Running::start_with_args(&config, &["--role", "executor"], &env);
    executor.wait_for("startup", Duration::from_secs(60), |e| {
        field(e, "message") == "sentinela running"
    });
    let steady =
        r#"{"type": "process_monitor", "payload": {"monitor_id": "steady", "tasks": ["search"]}}"#;
    let before = sqs.send(&url, steady);
    executor.wait_for(
        "a message before the outage",
        Duration::from_secs(60),
        |e| field(e, "message") == "message processed" && field(e, "message_id") == before,
    );

    proxy.cut();
    let during: Vec<String> = (0..5).map(|_| sqs.send(&url, steady)).collect();
    executor.wait_for("the outage said", Duration::from_secs(60), |e| {
        field(e, "message").starts_with("receiving from the application queue failed")
    });
    // The outage lasts about ten seconds.
    std::thread::sleep(Duration::from_secs(8));
    proxy.restore();

    let recovery = executor.wait_for("recovery", Duration::from_secs(60), |e| {
        field(e, "message") == "application queue reachable again"
    });
    // Polled with a backoff doubling from 0.5 s: a handful of receives in ten seconds, not
    // one every half second.
    let failed_receives = recovery["failures"].as_u64().unwrap_or(0);
    assert!(
        (2..=8).contains(&failed_receives),
        "{failed_receives} failed receives: {recovery}"
    );
    executor.wait_until(
        "every message sent during the outage processed",
        Duration::from_secs(60),
        |events| {
            during.iter().all(|id| {
                events.iter().any(|e| {
                    field(e, "message") == "message processed" && field(e, "message_id") == id
                })
            })
        },
    );
    let (status, events) = executor.terminate(Duration::from_secs(30));
    assert!(status.success(), "{}", dump(&events));
    // Said when it started, not at every failed receive (again only after a minute).
    let said: Vec<&Value> = events
        .iter()
        .filter(|e| field(e, "message").starts_with("receiving from the application queue failed"))
        .collect();
    assert_eq!(said.len(), 1, "{}", dump(&events));
    assert_eq!(said[0]["retry_in_ms"].as_u64(), Some(500), "{}", said[0]);
    assert!(sqs.visible(&url).is_empty(), "messages left behind");
}

/// A queue endpoint that accepts connections and never answers: the scheduler keeps ticking
/// (each send is bounded), the log says so within seconds, and SIGTERM still exits within
/// `shutdown_grace` + 1 s.
#[test]
fn a_hung_queue_is_reported_at_once_and_does_not_hold_shutdown() {
    let sqs = Sqs::new();
    let dir = scratch_dir("sqs-hung");
    let queue = unique("hung");
    sqs.create(&queue);
    let moto: std::net::SocketAddr = moto_endpoint()
        .trim_start_matches("http://")
        .parse()
        .expect("AWS_ENDPOINT_URL is http://IP:PORT");
    let proxy = FlakyProxy::start(moto);
    let config = sqs_config(&dir, &queue, "", &steady_monitor("* * * * * *"));
    let mut env = application_env();
    let proxy_url = proxy.url();
    env.push(("AWS_ENDPOINT_URL", &proxy_url));
    let run = Running::start(&config, &env);
    run.wait_for("a search through the queue", Duration::from_secs(60), |e| {
        field(e, "monitor") == "steady" && field(e, "message") == "task finished"
    });

    proxy.hang();
    let hung_at = Instant::now();
    run.wait_for("the first unsent tick", Duration::from_secs(30), |e| {
        field(e, "message").starts_with("cannot queue monitor tasks")
    });
    let reported_after = hung_at.elapsed();
    assert!(
        reported_after < Duration::from_secs(5),
        "the hang showed in the log only after {reported_after:?}"
    );
    // The scheduler keeps ticking: the next report counts the ticks it could not send.
    let counted = run.wait_for("a count of unsent ticks", Duration::from_secs(30), |e| {
        e["unsent_ticks"].as_u64().is_some_and(|n| n >= 2)
    });
    assert!(
        field(&counted, "message").contains("could not be queued"),
        "{counted}"
    );

    let grace = Duration::from_secs(1); // sqs_config's executor.shutdown_grace
    let signalled = Instant::now();
    let (status, events) = run.terminate(Duration::from_secs(30));
    let took = signalled.elapsed();
    assert!(status.success(), "{}", dump(&events));
    assert!(
        took <= grace + Duration::from_secs(1),
        "exited {took:?} after SIGTERM with a hung queue:\n{}",
        dump(&events)
    );
}

/// A well-formed message for a monitor this executor does not have (one of a newer config,
/// in a rolling deploy) is left on the queue for an executor that has it, and goes to the
/// dead-letter queue only after `max_receive_count` deliveries: never deleted unprocessed.
#[test]
fn a_message_for_an_unknown_monitor_stays_on_the_queue_until_dead_lettered() {
    let sqs = Sqs::new();
    let dir = scratch_dir("sqs-unknown-monitor");
    let queue = unique("unknown-monitor");
    let dead = unique("unknown-dead");
    let url = sqs.create(&queue);
    let dead_url = sqs.create(&dead);
    let body =
        r#"{"type": "process_monitor", "payload": {"monitor_id": "newer", "tasks": ["search"]}}"#;
    sqs.send(&url, body);
    let config = sqs_config(
        &dir,
        &queue,
        &format!("  dead_letter_queue: {dead}\n  max_receive_count: 2\n"),
        &steady_monitor("0 0 1 1 *"),
    );
    let run = Running::start(&config, &application_env());
    let moved = run.wait_for("the message dead-lettered", Duration::from_secs(60), |e| {
        field(e, "message").starts_with("moved a message to the dead-letter queue")
    });
    assert!(
        field(&moved, "message").contains("received 3 times (max_receive_count 2)"),
        "{moved}"
    );
    let (status, events) = run.terminate(Duration::from_secs(30));
    assert!(status.success(), "{}", dump(&events));
    let left = events
        .iter()
        .filter(|e| field(e, "message").contains("no monitor of that name in this process"))
        .count();
    assert_eq!(left, 2, "{}", dump(&events));
    assert_eq!(sqs.visible(&dead_url), [body]);
    assert!(sqs.visible(&url).is_empty());
}

/// Python Sentinela's controller, API and CLI address monitors by integer id: its
/// `process_monitor` and `request` bodies reach the monitor with that config `id`;
/// `monitor_disable` switches it off (and a restart keeps it off), `monitor_enable` on again;
/// `issue_drop` drops an issue by its store key; actions about alerts and Sentinela plugins
/// are dropped, never handed to a monitor.
#[test]
fn sentinela_s_integer_ids_and_control_actions_reach_the_right_monitor() {
    let sqs = Sqs::new();
    let dir = scratch_dir("sqs-control");
    let queue = unique("control");
    let url = sqs.create(&queue);
    let monitor = format!("{}    id: 12\n", steady_monitor("0 0 1 1 *"));
    let config = sqs_config(&dir, &queue, "", &monitor);
    let timeout = Duration::from_secs(60);
    // Python's json.dumps spelling, as sentinela-facts.md gives it.
    let search =
        r#"{"type": "process_monitor", "payload": {"monitor_id": 12, "tasks": ["search"]}}"#;
    let request = |action: &str, target: u64| {
        format!(
            r#"{{"type": "request", "payload": {{"action": "{action}", "params": {{"target_id": {target}}}}}}}"#
        )
    };
    let searches = |events: &[Value]| {
        events
            .iter()
            .filter(|e| field(e, "monitor") == "steady" && field(e, "message") == "task finished")
            .count()
    };

    let run = Running::start(&config, &application_env());
    sqs.send(&url, search);
    run.wait_until("a search by integer id", timeout, |events| {
        searches(events) == 1
    });
    for action in ["alert_acknowledge", "plugin.slack.resend"] {
        sqs.send(&url, &request(action, 41));
    }
    run.wait_until("two actions dropped", timeout, |events| {
        events
            .iter()
            .filter(|e| field(e, "message").contains("no concept of; message dropped"))
            .count()
            == 2
    });
    // `issue_drop` names an issue by its store key, as `sentinela issues` shows it.
    let listed = |status: &str| -> Vec<Value> {
        let (ok, stdout, stderr) = output(
            sentinela(&[
                "issues",
                config.to_str().unwrap(),
                "--json",
                "--status",
                status,
            ])
            .envs(application_env()),
        );
        assert!(ok.success(), "{stderr}");
        serde_json::from_str(&stdout).unwrap()
    };
    let active = listed("active");
    assert_eq!(active.len(), 1, "{active:?}");
    let key = active[0]["key"].as_u64().expect("an integer key");
    sqs.send(&url, &request("issue_drop", key));
    let dropped = run.wait_for("the issue dropped", timeout, |e| {
        field(e, "message") == "issue dropped"
    });
    assert_eq!(field(&dropped, "issue_id"), "steady", "{dropped}");
    // Audited like a credential use: the action, its subject, the message and its sender.
    let audited = run.wait_for("the drop audited", timeout, |e| {
        field(e, "target") == "sentinela::audit" && field(e, "action") == "issue_drop"
    });
    assert_eq!(field(&audited, "message"), "control action", "{audited}");
    assert_eq!(
        field(&audited, "subject"),
        format!("issue {key}"),
        "{audited}"
    );
    assert_eq!(field(&audited, "outcome"), "ok", "{audited}");
    assert!(!field(&audited, "message_id").is_empty(), "{audited}");
    assert!(!field(&audited, "sender_id").is_empty(), "{audited}");
    assert!(field(&audited, "sent_at").starts_with("20"), "{audited}");
    run.wait_for("its event", timeout, |e| {
        issue_event(e, "dropped") == Some("steady")
    });
    let dropped = listed("dropped");
    assert_eq!(dropped.len(), 1, "{dropped:?}");
    assert_eq!(dropped[0]["key"].as_u64(), Some(key));
    sqs.send(&url, &request("monitor_disable", 12));
    run.wait_for("the monitor disabled", timeout, |e| {
        field(e, "message") == "monitor disabled"
    });
    let audited = run.wait_for("the switch audited", timeout, |e| {
        field(e, "action") == "monitor_disable"
    });
    assert_eq!(field(&audited, "subject"), "steady", "{audited}");
    assert_eq!(field(&audited, "outcome"), "ok", "{audited}");
    let (status, events) = run.terminate(Duration::from_secs(30));
    assert!(status.success(), "{}", dump(&events));
    assert!(
        !events
            .iter()
            .any(|e| field(e, "message").contains("no monitor of that name")),
        "{}",
        dump(&events)
    );

    // After a restart it is still off: its messages are dropped, not run.
    let run = Running::start(&config, &application_env());
    sqs.send(&url, search);
    run.wait_for("a message for the disabled monitor dropped", timeout, |e| {
        field(e, "message") == "the monitor is disabled; message dropped"
    });
    sqs.send(&url, &request("monitor_enable", 12));
    run.wait_for("the monitor enabled", timeout, |e| {
        field(e, "message") == "monitor enabled"
    });
    sqs.send(&url, search);
    run.wait_until("a search once enabled", timeout, |events| {
        searches(events) == 1
    });
    let (status, events) = run.terminate(Duration::from_secs(30));
    assert!(status.success(), "{}", dump(&events));
    assert!(sqs.visible(&url).is_empty(), "messages left behind");
}

/// `http.listen` serves `/healthz`, a `/readyz` that turns 503 while the application queue
/// is unreachable and 200 again once it is back, and `/metrics` whose counters move as tasks
/// run and the queue is used.
#[test]
fn health_readiness_and_metrics_follow_the_host() {
    use common::config::{Monitor, TestConfig};
    let sqs = Sqs::new();
    let dir = scratch_dir("sqs-http");
    let queue = unique("http");
    sqs.create(&queue);
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config = TestConfig::new()
        .set("application_queue.type", "plugin.aws.sqs")
        .set("application_queue.name", queue.as_str())
        .set("application_queue.queue_wait_message_time", 1)
        .set("application_queue.queue_visibility_time", 1)
        .set("executor.shutdown_grace", "1s")
        .set("http.listen", format!("127.0.0.1:{port}"))
        .monitor(Monitor::new("steady", "steady").search_every_second())
        .write(&dir);
    let moto: std::net::SocketAddr = moto_endpoint()
        .trim_start_matches("http://")
        .parse()
        .expect("AWS_ENDPOINT_URL is http://IP:PORT");
    let proxy = FlakyProxy::start(moto);
    let mut env = application_env();
    let proxy_url = proxy.url();
    env.push(("AWS_ENDPOINT_URL", &proxy_url));
    let run = Running::start(&config, &env);
    let timeout = Duration::from_secs(60);
    run.wait_for("the listener", timeout, |e| {
        field(e, "message") == "serving /healthz, /readyz and /metrics"
    });

    assert_eq!(http_get(port, "/healthz"), (200, "ok\n".into()));
    assert_eq!(http_get(port, "/nowhere").0, 404);
    poll_until("ready", timeout, || http_get(port, "/readyz").0 == 200);
    let searches = || {
        let (status, text) = http_get(port, "/metrics");
        assert_eq!(status, 200, "{text}");
        sample(
            &text,
            "sentinela_tasks_total",
            &[("monitor", "steady"), ("task", "search"), ("outcome", "ok")],
        )
        .unwrap_or(0.0)
    };
    poll_until("two searches counted", timeout, || searches() >= 2.0);
    let before = searches();
    poll_until("more searches counted", timeout, || searches() > before);
    let (_, text) = http_get(port, "/metrics");
    assert!(
        sample(
            &text,
            "sentinela_host_calls_total",
            &[
                ("actor", "host"),
                ("service", "sqs"),
                ("operation", "ReceiveMessage"),
                ("outcome", "ok")
            ],
        )
        .is_some_and(|n| n >= 1.0),
        "{text}"
    );
    assert!(
        sample(
            &text,
            "sentinela_task_duration_seconds_count",
            &[("monitor", "steady")]
        )
        .is_some_and(|n| n >= 2.0),
        "{text}"
    );
    assert!(text.contains("sentinela_build_info"), "{text}");
    assert!(
        text.lines()
            .any(|l| l.starts_with("sentinela_plugin_info{") && l.contains("monitor=\"steady\"")),
        "{text}"
    );

    proxy.cut();
    poll_until("not ready while the queue is cut off", timeout, || {
        let (status, body) = http_get(port, "/readyz");
        status == 503 && body.contains("application queue unreachable")
    });
    proxy.restore();
    poll_until("ready again", timeout, || {
        http_get(port, "/readyz").0 == 200
    });
    let (status, events) = run.terminate(Duration::from_secs(30));
    assert!(status.success(), "{}", dump(&events));
}

#[test]
fn check_connect_reaches_the_store_the_queue_and_sts_for_each_credential() {
    let sqs = Sqs::new();
    let queue = unique("connect");
    sqs.create(&queue);
    let dir = scratch_dir("check-connect");
    let config = |queue: &str| {
        common::config::TestConfig::new()
            .set("application_queue.type", "plugin.aws.sqs")
            .set("application_queue.name", queue)
            .set("application_queue.create_queue", true)
            .monitor(
                common::config::Monitor::new("steady", "steady")
                    .set_yaml("grants.credentials", "[MONITORING, NOKEYS]")
                    .set_yaml("grants.aws", "[sqs:ListQueues]"),
            )
            .write(&dir)
    };
    let mut envs = application_env();
    envs.extend([
        ("AWS_MONITORING_ACCESS_KEY_ID", "AKIAMONITORING000009"),
        (
            "AWS_MONITORING_SECRET_ACCESS_KEY",
            "monitoring-secret-connect",
        ),
        ("AWS_MONITORING_REGION", "us-east-1"),
    ]);
    let check = |config: &std::path::Path| {
        let (status, stdout, stderr) = output(
            sentinela(&["check", "--connect", config.to_str().unwrap()]).envs(envs.iter().copied()),
        );
        assert!(
            !stdout.contains("monitoring-secret-connect")
                && !stderr.contains("monitoring-secret-connect")
        );
        (status.success(), stdout)
    };

    let (ok, stdout) = check(&config(&queue));
    assert!(!ok, "NOKEYS has no keys: {stdout}");
    for line in [
        "connect: issue store: ok (",
        "connect: application queue: ok (reachable)",
        "connect: credential APPLICATION: ok (account 123456789012, arn:aws:",
        "connect: credential MONITORING: ok (account 123456789012, arn:aws:",
        "connect: credential NOKEYS: error: credential NOKEYS is not configured: set AWS_NOKEYS_ACCESS_KEY_ID and AWS_NOKEYS_SECRET_ACCESS_KEY",
    ] {
        assert!(stdout.contains(line), "{line} missing:\n{stdout}");
    }

    // A queue that does not exist is reported, and not created, whatever create_queue says.
    let missing = unique("connect-missing");
    let (ok, stdout) = check(&config(&missing));
    assert!(!ok);
    assert!(
        stdout.contains(&format!("connect: application queue: error: the SQS application queue '{missing}' does not exist")),
        "{stdout}"
    );
    assert!(!sqs.exists(&missing), "check --connect created the queue");
}

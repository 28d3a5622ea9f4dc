//! `aws-call` against a real moto server (started by scripts/test.sh, which exports
//! AWS_ENDPOINT_URL): the sqs-backlog example end to end, and a hostile guest trying every
//! way around the credential and endpoint rules.

mod common;

use std::time::Duration;

use common::*;
use serde_json::Value;

const MONITORING_SECRET: &str = "monitoringSECRETkey/4f1bK9xQ";
const OTHER_SECRET: &str = "otherSECRETkey/77aa";
const APPLICATION_SECRET: &str = "applicationSECRETkey/Zz01";
const SESSION_TOKEN: &str = "monitoringSESSIONtoken0042";

/// Credentials in the environment of `sentinela`, as an operator would set them.
fn credential_env() -> Vec<(&'static str, &'static str)> {
    vec![
        ("SENTINELA_PLUGINS", "aws"),
        ("AWS_MONITORING_ACCESS_KEY_ID", "AKIAMONITORING000001"),
        ("AWS_MONITORING_SECRET_ACCESS_KEY", MONITORING_SECRET),
        ("AWS_MONITORING_SESSION_TOKEN", SESSION_TOKEN),
        ("AWS_MONITORING_REGION", "us-east-1"),
        ("AWS_OTHER_ACCESS_KEY_ID", "AKIAOTHER00000000001"),
        ("AWS_OTHER_SECRET_ACCESS_KEY", OTHER_SECRET),
        ("AWS_OTHER_REGION", "us-east-1"),
        ("AWS_APPLICATION_ACCESS_KEY_ID", "AKIAAPPLICATION00001"),
        ("AWS_APPLICATION_SECRET_ACCESS_KEY", APPLICATION_SECRET),
        ("AWS_APPLICATION_REGION", "us-east-1"),
    ]
}

fn assert_no_secrets(text: &str) {
    for secret in [
        MONITORING_SECRET,
        OTHER_SECRET,
        APPLICATION_SECRET,
        SESSION_TOKEN,
    ] {
        assert!(!text.contains(secret), "key material leaked: {secret}");
    }
}

fn sqs(runtime: &tokio::runtime::Runtime) -> aws_sdk_sqs::Client {
    let _guard = runtime.enter();
    sqs_client(&moto_endpoint(), "testing", "testing")
}

#[test]
fn sqs_backlog_raises_an_issue_and_solves_it_when_the_queue_drains() {
    let queue = MotoQueue::new("backlog", 8);
    let name = queue.name.clone();

    let dir = scratch_dir("sqs-backlog");
    let config = write_config(
        &dir,
        &format!(
            "monitors:\n  - name: sqs-backlog\n    plugin: {}\n    search_cron: \"* * * * * *\"\n    update_cron: \"* * * * * *\"\n    grants:\n      credentials: [monitoring]\n      aws: [\"sqs:ListQueues\", \"sqs:GetQueueAttributes\"]\n",
            guest("sqs_backlog").display()
        ),
    );
    let run = Running::start(&config, &credential_env());
    let timeout = Duration::from_secs(60);
    let created = run.wait_for("the backlog issue", timeout, |e| {
        issue_event(e, "created") == Some(name.as_str())
    });
    assert!(
        created["data"]
            .as_str()
            .unwrap_or("")
            .contains("\"messages\":8"),
        "{created}"
    );

    queue.purge();
    run.wait_for("the issue solved", timeout, |e| {
        issue_event(e, "solved") == Some(name.as_str())
    });

    let (status, events) = run.terminate(Duration::from_secs(30));
    assert!(status.success());
    let audit: Vec<&Value> = events
        .iter()
        .filter(|e| field(e, "target") == "sentinela::audit")
        .collect();
    assert!(!audit.is_empty(), "no audit events");
    for event in &audit {
        assert_eq!(field(event, "monitor"), "sqs-backlog");
        assert_eq!(field(event, "credential"), "MONITORING");
        assert_eq!(field(event, "service"), "sqs");
        assert!(
            ["ListQueues", "GetQueueAttributes"].contains(&field(event, "operation")),
            "{event}"
        );
        assert!(
            event["latency_ms"].is_number() && event["status"].is_number(),
            "{event}"
        );
    }
    assert!(
        audit
            .iter()
            .any(|e| field(e, "outcome") == "ok" && e["status"] == 200)
    );
    assert_no_secrets(&dump(&events));
}

#[test]
fn hostile_aws_calls_get_the_right_errors_and_no_key_material() {
    let dir = scratch_dir("aws-abuse");
    let config = write_config(
        &dir,
        &format!(
            "monitors:\n  - name: aws-abuse\n    plugin: {}\n    grants:\n      credentials: [MONITORING]\n      aws: [\"sqs:ListQueues\", \"sts:GetCallerIdentity\", \"s3:GET\"]\n  - name: other\n    plugin: {}\n    grants:\n      credentials: [OTHER]\n",
            guest("hostile_aws_abuse").display(),
            guest("steady").display()
        ),
    );
    let env = credential_env();
    let (outcomes, stdout, stderr) = invoke_search(&config, "aws-abuse", &env);
    let expect = |name: &str, prefix: &str| {
        let got = outcome(&outcomes, name);
        assert!(
            got.starts_with(prefix),
            "{name}: expected {prefix}…, got {got}"
        );
    };
    expect("granted", "ok:");
    expect("granted lowercase", "ok:");
    for name in ["APPLICATION", "application", "Application with space"] {
        expect(
            name,
            "denied: the APPLICATION credential belongs to the host",
        );
    }
    for name in ["NUL", "look-alike", "empty", "huge name"] {
        expect(name, "invalid: invalid credential name");
    }
    expect(
        "ungranted",
        "denied: credential OTHER is not granted to monitor 'aws-abuse'",
    );
    expect("evil region", "invalid: invalid region");
    expect("unknown service", "invalid: unknown service 'evil'");
    expect(
        "wrong protocol",
        "invalid: sts is called with aws-call.query",
    );
    expect(
        "outside allow-list",
        "denied: sqs:DeleteQueue is not granted to monitor 'aws-abuse': add \"sqs:DeleteQueue\" to its grants.aws",
    );
    expect("bad operation", "invalid: invalid operation name");
    expect("huge body", "limit: request body of");
    // The Host header is dropped: the request still went to moto, the configured endpoint.
    expect("host header", "ok: 200");
    expect(
        "forwarded host",
        "denied: header 'X-Forwarded-Host' may not be set",
    );
    for name in ["authority path", "scheme in path", "userinfo path"] {
        expect(name, "invalid: invalid path");
    }
    expect("query", "ok: <GetCallerIdentityResponse");

    assert!(
        stderr.contains("refused: a monitor asked for the APPLICATION credential"),
        "{stderr}"
    );
    assert!(stderr.contains("missing_grant=OTHER"), "{stderr}");
    assert_no_secrets(&stdout);
    assert_no_secrets(&stderr);
}

/// A moto server of this test's own that enforces IAM auth after its first three calls.
struct AuthMoto {
    child: std::process::Child,
    url: String,
}

impl AuthMoto {
    fn start() -> AuthMoto {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = std::process::Command::new(repo_root().join(".venv/bin/moto_server"))
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .env("INITIAL_NO_AUTH_ACTION_COUNT", "3")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("moto_server from .venv (scripts/test.sh installs it)");
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "moto did not start on port {port}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        AuthMoto {
            child,
            url: format!("http://127.0.0.1:{port}"),
        }
    }
}

impl Drop for AuthMoto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn the_host_signs_with_the_granted_credential_and_iam_decides() {
    let moto = AuthMoto::start();
    let queue = format!("guarded-{}", std::process::id());
    let keys = fixture_script("iam_setup.py", &[&moto.url, &queue]);
    let key = |who: &str, which: &str| keys[who][which].as_str().unwrap().to_owned();

    let dir = scratch_dir("iam");
    let config = write_config(
        &dir,
        &format!(
            "monitors:\n  - name: probe\n    plugin: {}\n    grants:\n      credentials: [MONITORING]\n      aws: [\"sqs:*\"]\n",
            guest("sqs_probe").display()
        ),
    );
    let monitoring_secret = key("monitoring", "aws_secret_access_key");
    let application_secret = key("application", "aws_secret_access_key");
    let (status, stdout, stderr) = output(
        sentinela(&["invoke", config.to_str().unwrap(), "probe", "search"])
            .env("SENTINELA_PLUGINS", "aws")
            .env("AWS_ENDPOINT_URL", &moto.url)
            .env(
                "AWS_MONITORING_ACCESS_KEY_ID",
                key("monitoring", "aws_access_key_id"),
            )
            .env("AWS_MONITORING_SECRET_ACCESS_KEY", &monitoring_secret)
            .env("AWS_MONITORING_REGION", "us-east-1")
            .env(
                "AWS_APPLICATION_ACCESS_KEY_ID",
                key("application", "aws_access_key_id"),
            )
            .env("AWS_APPLICATION_SECRET_ACCESS_KEY", &application_secret)
            .env("AWS_APPLICATION_REGION", "us-east-1"),
    );
    assert!(status.success(), "{stderr}");
    let issues: Value = serde_json::from_str(&stdout).unwrap();
    let issue = issues
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["id"] == queue.as_str())
        .expect("the queue was read");
    assert_eq!(issue["data"]["messages"], 7, "{stdout}");
    let delete = issue["data"]["delete"].as_str().unwrap();
    assert!(
        delete.starts_with("AccessDenied (HTTP 403)"),
        "the read-only credential deleted a queue: {delete}"
    );
    for text in [&stdout, &stderr] {
        assert!(!text.contains(&monitoring_secret) && !text.contains(&application_secret));
    }

    // The same delete with the APPLICATION (admin) keys is allowed: the refusal came from IAM
    // judging the MONITORING signature, not from the request.
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let _guard = runtime.enter();
    let admin = sqs_client(
        &moto.url,
        &key("application", "aws_access_key_id"),
        &application_secret,
    );

    let url = keys["queue_url"].as_str().unwrap();
    runtime
        .block_on(admin.delete_queue().queue_url(url).send())
        .expect("APPLICATION may delete the queue");
}

/// A unique string in the secret and parameter a hostile monitor tries to read.
const SECRET_MARKER: &str = "trustSECRETmarker/Qx81";

#[test]
fn side_paths_around_the_trust_model_are_closed_and_audited() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let sqs = sqs(&runtime);
    let endpoint = moto_endpoint();
    fixture_script("trust_setup.py", &[&endpoint, SECRET_MARKER]);
    let pid = std::process::id();
    let create = |name: String| {
        runtime
            .block_on(sqs.create_queue().queue_name(&name).send())
            .unwrap()
            .queue_url
            .unwrap()
    };
    let allowed = create(format!("trust-allowed-{pid}"));
    let forbidden = create(format!("trust-forbidden-{pid}"));
    let outbox = create(format!("trust-outbox-{pid}"));

    let dir = scratch_dir("trust-abuse");
    let config = write_config(
        &dir,
        &format!(
            r#"executor:
  concurrency: 3
store:
  events_queue: outbox
monitors:
  - name: trust-abuse
    plugin: {abuse}
    search_cron: "* * * * * *"
    grants:
      credentials: [MONITORING]
      aws:
        - "sts:*"
        - "iam:*"
        - "secretsmanager:*"
        - "ssm:*"
        - "s3:GET"
        - "sqs:ListQueues"
        - op: "sqs:GetQueueAttributes"
          resources: ["arn:aws:sqs:*:*:trust-allowed-*"]
      queues: [outbox]
  - name: no-aws-grants
    plugin: {backlog}
    search_cron: "* * * * * *"
    grants:
      credentials: [MONITORING]
  - name: steady
    plugin: {steady}
    search_cron: "* * * * * *"
queues:
  outbox:
    url: {outbox}
    credential: MONITORING
"#,
            abuse = guest("hostile_trust_abuse").display(),
            backlog = guest("sqs_backlog").display(),
            steady = guest("steady").display(),
        ),
    );
    let run = Running::start(&config, &credential_env());
    let timeout = Duration::from_secs(60);
    let created = run.wait_for("the trust-abuse issue", timeout, |e| {
        issue_event(e, "created") == Some("trust-abuse")
    });
    let outcomes: Value = serde_json::from_str(field(&created, "data")).unwrap();
    let expect = |name: &str, prefix: &str| {
        let got = outcome(&outcomes, name);
        assert!(
            got.starts_with(prefix),
            "{name}: expected {prefix}…, got {got}"
        );
    };
    for (name, op) in [
        ("GetSessionToken", "GetSessionToken"),
        ("GetFederationToken", "GetFederationToken"),
        ("AssumeRole", "AssumeRole"),
        ("assumerole lowercase", "assumerole"),
    ] {
        expect(
            name,
            &format!("denied: sts:{op} answers with temporary credentials; no grant allows it"),
        );
    }
    expect("GetCallerIdentity", "ok: <GetCallerIdentityResponse");
    expect(
        "CreateAccessKey",
        "denied: iam:CreateAccessKey answers with a new secret access key",
    );
    expect(
        "GetSecretValue",
        "denied: secretsmanager:GetSecretValue reads a secret value; declare the secret in the 'secrets:' of monitor 'trust-abuse'",
    );
    expect(
        "GetParameter decrypted",
        "denied: ssm:GetParameter reads a secret value",
    );
    expect(
        "GetParameter duplicate key",
        "denied: ssm:GetParameter reads a secret value",
    );
    expect("queue in resources", "ok: ");
    let outside = format!(
        "denied: sqs:GetQueueAttributes on 'arn:aws:sqs:us-east-1:123456789012:trust-forbidden-{pid}' is outside the resources granted"
    );
    expect("queue outside resources", &outside);
    expect("queue duplicate key", &outside);
    expect(
        "SendMessage not granted",
        "denied: sqs:SendMessage is not granted to monitor 'trust-abuse': add \"sqs:SendMessage\" to its grants.aws",
    );
    expect("hop-by-hop headers", "ok: 200");

    // The well-behaved monitor keeps its schedule meanwhile.
    let seen = run.events().len();
    let steady_done =
        |e: &&Value| field(e, "monitor") == "steady" && field(e, "message") == "task finished";
    run.wait_until("three more steady searches", timeout, |events| {
        events[seen..].iter().filter(steady_done).count() >= 3
    });
    let (status, events) = run.terminate(Duration::from_secs(30));
    assert!(status.success(), "exit status {status}:\n{}", dump(&events));

    // Deny by default: credentials without grants.aws allow no operation.
    let audit = |e: &&Value| field(e, "target") == "sentinela::audit";
    assert!(
        events
            .iter()
            .filter(audit)
            .any(|e| field(e, "monitor") == "no-aws-grants"
                && field(e, "operation") == "ListQueues"
                && field(e, "outcome") == "denied"),
        "{}",
        dump(&events)
    );
    // Refused calls are audited with the resource they named; the host's own sends too.
    // (once per kind at the end of each call, with a count)
    assert!(
        events
            .iter()
            .filter(audit)
            .any(|e| field(e, "monitor") == "trust-abuse"
                && field(e, "message") == "refused calls"
                && field(e, "operation") == "GetQueueAttributes"
                && field(e, "outcome") == "denied"
                && field(e, "resource").contains("trust-forbidden")
                && e["count"] == 2)
    );
    assert!(
        events
            .iter()
            .filter(audit)
            .any(|e| field(e, "actor") == "host"
                && field(e, "credential") == "MONITORING"
                && field(e, "operation") == "SendMessage"
                && field(e, "resource").contains("trust-outbox")),
        "the host's issue-event sends are not audited:\n{}",
        dump(&events)
    );

    // No key material or secret value reached the guest: not in the log (the guest logs
    // every outcome), not in the issue, not in the queue it wrote to or the issue events.
    let log = dump(&events);
    assert_no_secrets(&log);
    assert!(
        !log.contains(SECRET_MARKER),
        "a secret value reached the guest"
    );
    assert!(
        !log.contains("SecretAccessKey"),
        "key material reached the guest"
    );
    let mut queued = String::new();
    for _ in 0..10 {
        let received = runtime
            .block_on(
                sqs.receive_message()
                    .queue_url(&outbox)
                    .max_number_of_messages(10)
                    .send(),
            )
            .unwrap();
        let messages = received.messages.unwrap_or_default();
        if messages.is_empty() {
            break;
        }
        for message in messages {
            queued.push_str(message.body.as_deref().unwrap_or(""));
        }
    }
    assert!(
        queued.contains("trust-abuse"),
        "nothing was queued: {queued}"
    );
    assert_no_secrets(&queued);
    assert!(!queued.contains(SECRET_MARKER) && !queued.contains("SecretAccessKey"));
    for url in [allowed, forbidden, outbox] {
        runtime
            .block_on(sqs.delete_queue().queue_url(&url).send())
            .unwrap();
    }
}

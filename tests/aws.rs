//! `aws-call` against a real moto server (started by scripts/test.sh, which exports
//! AWS_ENDPOINT_URL): the sqs-backlog example end to end, and a hostile guest trying every
//! way around the credential and endpoint rules.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
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
    expect("unknown service", "invalid: unknown AWS service 'evil'");
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
    expect(
        "multi-byte query key",
        "invalid: s3:ListBuckets: query parameter 'maxi\u{fffd}t' is not a member",
    );
    // Asked after the multi-byte key: the host is still serving this instance.
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
    let events_queue = create(format!("trust-events-{pid}"));

    let dir = scratch_dir("trust-abuse");
    let config = write_config(
        &dir,
        &format!(
            r#"executor:
  concurrency: 3
store:
  events_queue: events
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
  events:
    url: {events_queue}
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
    ] {
        expect(
            name,
            &format!("denied: sts:{op} answers with AWS keys; no grant allows it"),
        );
    }
    // The model's exact name, or nothing is sent.
    expect(
        "assumerole lowercase",
        "invalid: sts has no operation 'assumerole'; did you mean AssumeRole",
    );
    expect("GetCallerIdentity", "ok: <GetCallerIdentityResponse");
    expect(
        "CreateAccessKey",
        "denied: iam:CreateAccessKey answers with AWS keys",
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
        "invalid: input is not JSON: key 'WithDecryption' is given more than once",
    );
    expect("queue in resources", "ok: ");
    let outside = format!(
        "denied: sqs:GetQueueAttributes on 'arn:aws:sqs:us-east-1:123456789012:trust-forbidden-{pid}' is outside the resources granted"
    );
    expect("queue outside resources", &outside);
    expect(
        "queue duplicate key",
        "invalid: input is not JSON: key 'QueueUrl' is given more than once",
    );
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
                && e["count"] == 1)
    );
    assert!(
        events
            .iter()
            .filter(audit)
            .any(|e| field(e, "actor") == "host"
                && field(e, "credential") == "MONITORING"
                && field(e, "operation") == "SendMessage"
                && field(e, "resource").contains("trust-events")),
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
    for queue in [&outbox, &events_queue] {
        for _ in 0..10 {
            let received = runtime
                .block_on(
                    sqs.receive_message()
                        .queue_url(queue)
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
    }
    assert!(
        queued.contains("trust-abuse"),
        "nothing was queued: {queued}"
    );
    assert_no_secrets(&queued);
    assert!(!queued.contains(SECRET_MARKER) && !queued.contains("SecretAccessKey"));
    for url in [allowed, forbidden, outbox, events_queue] {
        runtime
            .block_on(sqs.delete_queue().queue_url(&url).send())
            .unwrap();
    }
}

/// The calls the `aws_calls` fixture makes, by id, as `sentinela invoke … search` returned
/// them: `{"ok": …}` or `{"error": …}`.
fn invoke_calls(name: &str, grants: &[&str], calls: &Value) -> (BTreeMap<String, Value>, String) {
    invoke_calls_with(name, grants, calls, &[])
}

fn invoke_calls_with(
    name: &str,
    grants: &[&str],
    calls: &Value,
    env: &[(&str, &str)],
) -> (BTreeMap<String, Value>, String) {
    invoke_calls_granted(name, &serde_json::json!(grants), calls, env)
}

/// [`invoke_calls_with`] with `grants.aws` given as JSON (resource-scoped entries too).
fn invoke_calls_granted(
    name: &str,
    grants: &Value,
    calls: &Value,
    env: &[(&str, &str)],
) -> (BTreeMap<String, Value>, String) {
    invoke_calls_in(name, "", grants, calls, env)
}

/// [`invoke_calls_granted`] with more top-level config (`extra`, YAML) before `monitors:`.
fn invoke_calls_in(
    name: &str,
    extra: &str,
    grants: &Value,
    calls: &Value,
    env: &[(&str, &str)],
) -> (BTreeMap<String, Value>, String) {
    let dir = scratch_dir(name);
    let grants = grants.to_string();
    let config = write_config(
        &dir,
        &format!(
            "{extra}monitors:\n  - name: calls\n    plugin: {}\n    grants:\n      credentials: [MONITORING]\n      aws: {grants}\n    settings:\n      calls: {calls}\n",
            guest("aws_calls").display()
        ),
    );
    // No session token: a presigned URL carries the access key id and a session's token,
    // and this test asserts on every byte of output that no other key material is in it.
    let credentials = credential_env()
        .into_iter()
        .filter(|(k, _)| *k != "AWS_MONITORING_SESSION_TOKEN");
    let (status, stdout, stderr) = output(
        sentinela(&["invoke", config.to_str().unwrap(), "calls", "search"])
            .envs(credentials)
            .envs(env.iter().copied()),
    );
    assert!(status.success(), "{stderr}");
    assert_no_secrets(&stdout);
    assert_no_secrets(&stderr);
    let issues: Vec<Value> = serde_json::from_str(&stdout).unwrap();
    let by_id = issues
        .into_iter()
        .map(|i| (i["id"].as_str().unwrap().to_owned(), i["data"].clone()))
        .collect();
    (by_id, stderr)
}

#[test]
fn every_protocol_family_and_operation_grants_for_rest_services() {
    let pid = std::process::id();
    let calls = serde_json::json!([
        {"id": "zone", "fn": "signed", "service": "route53", "method": "POST",
         "path": "/2013-04-01/hostedzone",
         "body": format!("<CreateHostedZoneRequest xmlns=\"https://route53.amazonaws.com/doc/2013-04-01/\"><Name>zone-{pid}.example.com</Name><CallerReference>ref-{pid}</CallerReference></CreateHostedZoneRequest>")},
        {"id": "zones", "fn": "signed", "service": "route53", "method": "GET",
         "path": "/2013-04-01/hostedzone"},
        {"id": "delete-zone", "fn": "signed", "service": "route53", "method": "DELETE",
         "path": "/2013-04-01/hostedzone/Z0000000000"},
        {"id": "functions", "fn": "signed", "service": "lambda", "method": "GET",
         "path": "/2015-03-31/functions/"},
        {"id": "instances", "fn": "query", "service": "ec2", "action": "DescribeInstances"},
        {"id": "stepfunctions", "fn": "json", "service": "stepfunctions",
         "operation": "ListStateMachines", "input": {}},
        {"id": "typo", "fn": "json", "service": "sqss", "operation": "ListQueues", "input": {}},
        {"id": "wrong-function", "fn": "json", "service": "route53",
         "operation": "ListHostedZones", "input": {}},
    ]);
    let grants = [
        "route53:CreateHostedZone",
        "route53:ListHostedZones",
        "lambda:ListFunctions",
        "ec2:DescribeInstances",
        "stepfunctions:ListStateMachines",
    ];
    let (calls, stderr) = invoke_calls("families", &grants, &calls);
    let ok = |id: &str| calls[id]["ok"].clone();
    assert_eq!(ok("zone")["status"], 201, "{:?}", calls["zone"]);
    let zones = ok("zones");
    assert_eq!(zones["status"], 200);
    assert!(
        zones["body"]
            .as_str()
            .unwrap()
            .contains(&format!("zone-{pid}.example.com")),
        "{zones}"
    );
    // A grant of ListHostedZones is not one of DeleteHostedZone: the model names the request.
    let refused = calls["delete-zone"]["error"].as_str().unwrap();
    assert!(
        refused.starts_with("denied") && refused.contains("route53:DeleteHostedZone"),
        "{refused}"
    );
    assert_eq!(ok("functions")["status"], 200);
    assert!(
        ok("functions")["body"]
            .as_str()
            .unwrap()
            .contains("Functions")
    );
    assert!(
        ok("instances")
            .as_str()
            .unwrap()
            .contains("DescribeInstancesResponse"),
        "{:?}",
        calls["instances"]
    );
    assert!(
        ok("stepfunctions")["stateMachines"].is_array(),
        "{:?}",
        calls["stepfunctions"]
    );
    let typo = calls["typo"]["error"].as_str().unwrap();
    assert!(typo.contains("did you mean sqs"), "{typo}");
    let wrong = calls["wrong-function"]["error"].as_str().unwrap();
    assert!(
        wrong.contains("route53 is called with aws-call.signed"),
        "{wrong}"
    );
    // The audit names the REST operation, not only the method.
    assert!(
        stderr.contains("ListHostedZones") && stderr.contains("DeleteHostedZone"),
        "{stderr}"
    );
}

#[test]
fn a_presigned_s3_put_then_get_round_trips_with_plain_http() {
    let bucket = format!("presign-{}", std::process::id());
    let object = format!("/{bucket}/reports/today.csv");
    let presign = |id: &str, method: &str, expires: u32| {
        serde_json::json!({"id": id, "fn": "presign", "service": "s3", "method": method,
                           "path": object, "expires": expires})
    };
    let calls = serde_json::json!([
        {"id": "bucket", "fn": "signed", "service": "s3", "method": "PUT", "path": format!("/{bucket}")},
        presign("put", "PUT", 300),
        presign("get", "GET", 300),
        presign("too-long", "GET", 3601),
        presign("never", "GET", 0),
        presign("delete", "DELETE", 60),
        {"id": "with-body", "fn": "presign", "service": "s3", "method": "PUT", "path": object,
         "body": "x", "expires": 60},
        {"id": "not-rest", "fn": "presign", "service": "sqs", "method": "GET", "path": "/"},
    ]);
    // `s3:*` grants every S3 request the host makes, but no presigned URL: a URL outlives the
    // call and is used by whoever holds it, so each is granted by name.
    let grants = ["s3:*", "s3:presign:PutObject", "s3:presign:GetObject"];
    let (calls, stderr) = invoke_calls("presign", &grants, &calls);
    assert_eq!(
        calls["bucket"]["ok"]["status"], 200,
        "{:?}",
        calls["bucket"]
    );
    let url = |id: &str| {
        calls[id]["ok"]
            .as_str()
            .unwrap_or_else(|| panic!("{:?}", calls[id]))
            .to_owned()
    };
    let (put, get) = (url("put"), url("get"));
    for url in [&put, &get] {
        assert!(
            url.starts_with(&format!("{}{object}?", moto_endpoint())),
            "{url}"
        );
        assert!(
            url.contains("X-Amz-Expires=300")
                && url.contains("X-Amz-Credential=AKIAMONITORING000001")
                && url.contains("X-Amz-SignedHeaders=host")
                && url.contains("X-Amz-Signature="),
            "{url}"
        );
    }
    let bytes = format!("id,value\n1,{}\n", std::process::id()).into_bytes();
    let (status, _) = http_call("PUT", &put, &bytes);
    assert_eq!(status, 200);
    let (status, body) = http_call("GET", &get, b"");
    assert_eq!((status, body), (200, bytes));

    let error = |id: &str| {
        calls[id]["error"]
            .as_str()
            .unwrap_or_else(|| panic!("{:?}", calls[id]))
            .to_owned()
    };
    assert!(error("too-long").starts_with("limit") && error("too-long").contains("3600"));
    assert!(error("never").starts_with("limit"));
    assert!(
        error("delete").starts_with("denied")
            && error("delete").contains("s3:presign:DeleteObject")
    );
    assert!(error("with-body").contains("no body"));
    assert!(error("not-rest").contains("sqs is called with aws-call.json"));
    assert!(stderr.contains("presign:PutObject"), "{stderr}");
}

#[test]
fn check_refuses_unknown_services_and_operations_naming_the_closest() {
    let dir = scratch_dir("grant-typos");
    for (grant, expected) in [
        ("sqss:ListQueues", "did you mean sqs"),
        ("sqs:ListQueus", "did you mean ListQueues"),
        ("route53:presign:ListHostedZones", ""),
        ("sqs:presign:ListQueues", "only REST services"),
    ] {
        let config = write_config(
            &dir,
            &format!(
                "monitors:\n  - name: m\n    plugin: {}\n    grants:\n      credentials: [MONITORING]\n      aws: [\"{grant}\"]\n",
                guest("steady").display()
            ),
        );
        let (status, stdout, stderr) =
            output(sentinela(&["check", config.to_str().unwrap()]).envs(credential_env()));
        if expected.is_empty() {
            assert!(status.success(), "{grant}: {stdout}{stderr}");
        } else {
            assert!(!status.success(), "{grant} was accepted");
            let said = format!("{stdout}{stderr}");
            assert!(
                said.contains(expected) && said.contains("monitors[0].grants.aws"),
                "{grant}: {said}"
            );
        }
    }
}

#[test]
fn pagination_helpers_follow_next_token_and_marker() {
    let pid = std::process::id();
    let mut calls = Vec::new();
    for name in ["a", "b", "c"] {
        calls.push(
            serde_json::json!({"fn": "json", "service": "logs", "operation": "CreateLogGroup",
                                      "input": {"logGroupName": format!("/pages/{pid}/{name}")}}),
        );
    }
    for name in ["a", "b"] {
        calls.push(serde_json::json!({"fn": "query", "service": "iam", "action": "CreateRole",
            "params": {"RoleName": format!("pages-{pid}-{name}"), "Path": format!("/pages{pid}/"),
                       "AssumeRolePolicyDocument": "{\"Version\":\"2012-10-17\",\"Statement\":[]}"}}));
    }
    calls.push(
        serde_json::json!({"id": "log-pages", "fn": "json_pages", "service": "logs",
        "operation": "DescribeLogGroups",
        "input": {"logGroupNamePrefix": format!("/pages/{pid}/"), "limit": 1},
        "input_token": "nextToken", "output_token": "nextToken"}),
    );
    calls.push(
        serde_json::json!({"id": "role-pages", "fn": "query_pages", "service": "iam",
        "action": "ListRoles", "params": {"PathPrefix": format!("/pages{pid}/"), "MaxItems": "1"},
        "input_token": "Marker", "output_token": "Marker"}),
    );
    let grants = [
        "logs:CreateLogGroup",
        "logs:DescribeLogGroups",
        "iam:CreateRole",
        "iam:ListRoles",
    ];
    let (calls, _) = invoke_calls("pages", &grants, &Value::from(calls));
    let pages = calls["log-pages"]["ok"]
        .as_array()
        .unwrap_or_else(|| panic!("{calls:?}"));
    let groups: Vec<&str> = pages
        .iter()
        .flat_map(|page| page["logGroups"].as_array().unwrap())
        .map(|group| group["logGroupName"].as_str().unwrap())
        .collect();
    assert_eq!(
        groups,
        ["a", "b", "c"].map(|n| format!("/pages/{pid}/{n}")),
        "{pages:?}"
    );
    let pages = calls["role-pages"]["ok"]
        .as_array()
        .unwrap_or_else(|| panic!("{calls:?}"));
    // One role a page (in moto's order), each once.
    assert_eq!(pages.len(), 2, "{pages:?}");
    for name in ["a", "b"] {
        let role = format!("<RoleName>pages-{pid}-{name}</RoleName>");
        let holding = pages.iter().filter(|p| p.as_str().unwrap().contains(&role));
        assert_eq!(holding.count(), 1, "{role} in {pages:?}");
    }
}

/// Serves `body` at `path` over plain HTTP on a free loopback port, counting the requests for
/// it; 404 for any other path.
fn serve_file(path: &'static str, body: Vec<u8>) -> (String, Arc<AtomicUsize>) {
    use std::io::{BufRead, BufReader, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let hits = Arc::new(AtomicUsize::new(0));
    let counted = hits.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut line = String::new();
            let mut reader = BufReader::new(&stream);
            if reader.read_line(&mut line).is_err() {
                continue;
            }
            // The rest of the head, up to the empty line.
            let mut header = String::new();
            while reader.read_line(&mut header).is_ok_and(|n| n > 2) {
                header.clear();
            }
            let found = line.split_whitespace().nth(1) == Some(path);
            if found {
                counted.fetch_add(1, Ordering::SeqCst);
            }
            let (status, content) = if found {
                ("200 OK", &body[..])
            } else {
                ("404 Not Found", &b""[..])
            };
            let mut stream = &stream;
            let _ = write!(
                stream,
                "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                content.len()
            );
            let _ = stream.write_all(content);
        }
    });
    (url, hits)
}

#[test]
fn sns_signatures_are_checked_with_the_certificate_from_sns_only() {
    let dir = scratch_dir("sns");
    let cert = dir.join("cert.pem");
    let messages = fixture_script("sns_messages.py", &[cert.to_str().unwrap()]);
    let (endpoint, fetches) = serve_file(
        "/SimpleNotificationService-test.pem",
        std::fs::read(&cert).unwrap(),
    );
    let names = [
        "v1",
        "v2",
        "tampered",
        "other_host",
        "plain_http",
        "unknown_version",
    ];
    let mut calls: Vec<Value> = names
        .iter()
        .map(|id| serde_json::json!({"id": id, "fn": "verify_sns", "message": messages[*id]}))
        .collect();
    calls.push(serde_json::json!({"id": "not-json", "fn": "verify_sns", "message": "{"}));
    // The certificate comes from its SigningCertURL's path on AWS_ENDPOINT_URL, as every
    // AWS request does in tests; the URL's host is checked all the same.
    let (calls, _) = invoke_calls_with(
        "sns",
        &[],
        &Value::from(calls),
        &[("AWS_ENDPOINT_URL", &endpoint)],
    );
    assert_eq!(calls["v1"]["ok"], true, "{:?}", calls["v1"]);
    assert_eq!(calls["v2"]["ok"], true, "{:?}", calls["v2"]);
    assert_eq!(calls["tampered"]["ok"], false, "{:?}", calls["tampered"]);
    for (id, expected) in [
        ("other_host", "is not an https://sns.<region>.amazonaws.com"),
        ("plain_http", "is not an https://sns.<region>.amazonaws.com"),
        ("unknown_version", "SignatureVersion must be"),
        ("not-json", "not JSON"),
    ] {
        let error = calls[id]["error"]
            .as_str()
            .unwrap_or_else(|| panic!("{id}: {:?}", calls[id]));
        assert!(
            error.starts_with("invalid") && error.contains(expected),
            "{id}: {error}"
        );
    }
    // Three checks with one certificate: fetched once.
    assert_eq!(fetches.load(Ordering::SeqCst), 1);
}

#[test]
fn an_ses_raw_email_with_an_attachment_reaches_ses() {
    let pid = std::process::id();
    let from = format!("alerts-{pid}@example.com");
    let attachment: Vec<u8> = (0..=255u8).cycle().take(1000).collect();
    let calls = serde_json::json!([
        {"id": "verify", "fn": "query", "service": "ses", "action": "VerifyEmailIdentity",
         "params": {"EmailAddress": from}},
        {"id": "email", "fn": "email", "from": from, "to": "ops@example.com",
         "subject": format!("backlog {pid}"), "text": "orders: 1200 messages",
         "html": "<p>orders: <b>1200</b> messages</p>",
         "attachment": {"filename": "queues.bin", "content_type": "application/octet-stream",
                        "bytes": attachment}},
    ]);
    let grants = ["ses:VerifyEmailIdentity", "ses:SendRawEmail"];
    let (calls, _) = invoke_calls("ses", &grants, &calls);
    let id = calls["email"]["ok"]
        .as_str()
        .unwrap_or_else(|| panic!("{:?}", calls["email"]));

    // What moto recorded, from its own API.
    let (status, body) = http_call(
        "GET",
        &format!("{}/moto-api/data.json", moto_endpoint()),
        b"",
    );
    assert_eq!(status, 200);
    let data: Value = serde_json::from_slice(&body).unwrap();
    let raw = data["ses"]["RawMessage"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["id"] == id)
        .unwrap_or_else(|| panic!("moto has no raw message {id}"));
    assert_eq!(raw["source"], from.as_str());
    let mime = raw["raw_data"].as_str().unwrap();
    for part in [
        "multipart/mixed",
        "text/plain",
        "text/html",
        "<b>1200</b>",
        "filename=\"queues.bin\"",
        &format!("Subject: backlog {pid}"),
    ] {
        assert!(mime.contains(part), "{part} is not in:\n{mime}");
    }
    let encoded = aws_smithy_types::base64::encode(&attachment);
    assert!(
        mime.replace(['\r', '\n'], "").contains(&encoded),
        "the attachment's bytes are not in the message"
    );
}

/// A fake AWS endpoint that records every request it receives (its request line) and answers
/// each with a body holding credentials.
struct Recorder {
    url: String,
    requests: Arc<std::sync::Mutex<Vec<String>>>,
}

const FAKE_SECRET: &str = "recordedFAKEsecretKEY0042";

impl Recorder {
    fn start() -> Recorder {
        use std::io::{BufRead, BufReader, Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let requests = Arc::new(std::sync::Mutex::new(Vec::new()));
        let recorded = requests.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let mut reader = BufReader::new(&stream);
                let mut line = String::new();
                if reader.read_line(&mut line).is_err() {
                    continue;
                }
                let mut length = 0usize;
                let mut header = String::new();
                while reader.read_line(&mut header).is_ok_and(|n| n > 2) {
                    if let Some(v) = header.to_ascii_lowercase().strip_prefix("content-length:") {
                        length = v.trim().parse().unwrap_or(0);
                    }
                    header.clear();
                }
                let mut body = vec![0; length];
                let _ = reader.read_exact(&mut body);
                recorded.lock().unwrap().push(line.trim().to_owned());
                let answer = format!(
                    "{{\"Credentials\":{{\"AccessKeyId\":\"AKIAFAKE\",\"SecretAccessKey\":\"{FAKE_SECRET}\",\"SessionToken\":\"{FAKE_SECRET}\"}}}}"
                );
                let mut stream = &stream;
                let _ = write!(
                    stream,
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{answer}",
                    answer.len()
                );
            }
        });
        Recorder { url, requests }
    }

    fn requests(&self) -> Vec<String> {
        self.requests.lock().unwrap().clone()
    }
}

/// Issue 32: every trust decision reads AWS's models. Against a recording endpoint that
/// answers every request with keys, operations whose answer holds credentials are refused
/// however they are reached (a REST method grant, `service:*`, a request the model does not
/// resolve), nothing of them is sent, and an answer that carries keys anyway is withheld.
#[test]
fn the_grant_means_what_aws_will_do() {
    let recorder = Recorder::start();
    let calls = serde_json::json!([
        {"id": "codeartifact", "fn": "signed", "service": "codeartifact", "method": "POST",
         "path": "/v1/authorization-token", "query": [["domain", "d"]]},
        {"id": "s3-session", "fn": "signed", "service": "s3", "method": "GET", "path": "/bucket",
         "query": [["session", ""]]},
        {"id": "iot-keys", "fn": "signed", "service": "iot", "method": "POST",
         "path": "/keys-and-certificate"},
        {"id": "sso", "fn": "signed", "service": "sso", "method": "GET",
         "path": "/federation/credentials",
         "query": [["role_name", "r"], ["account_id", "123456789012"]],
         "headers": [["x-amz-sso_bearer_token", "t"]]},
        {"id": "ssm-token", "fn": "json", "service": "ssm", "operation": "GetAccessToken",
         "input": {"AccessRequestId": "x"}},
        {"id": "eks-auth", "fn": "signed", "service": "eks-auth", "method": "POST",
         "path": "/clusters/c/assume-role-for-pod-identity", "body": "{\"token\":\"t\"}"},
        {"id": "quicksight", "fn": "signed", "service": "quicksight", "method": "POST",
         "path": "/accounts/123456789012/embed-url/anonymous-user", "body": "{}"},
        {"id": "unresolved", "fn": "signed", "service": "route53", "method": "GET",
         "path": "/nowhere/at/all"},
        {"id": "lowercase", "fn": "query", "service": "sts", "action": "assumerole",
         "params": {"RoleArn": "arn:aws:iam::123456789012:role/x", "RoleSessionName": "x"}},
        {"id": "presign-expires", "fn": "presign", "service": "s3", "method": "GET",
         "path": "/b/k", "query": [["X-Amz-Expires", "604800"]]},
        {"id": "presign-date", "fn": "presign", "service": "s3", "method": "GET",
         "path": "/b/k", "query": [["x-amz-date", "20300101T000000Z"]]},
        {"id": "answer-json", "fn": "json", "service": "sqs", "operation": "ListQueues",
         "input": {}},
        {"id": "answer-query", "fn": "query", "service": "sts", "action": "GetCallerIdentity"},
    ]);
    let grants = serde_json::json!([
        "codeartifact:*",
        "codeartifact:POST",
        "s3:GET",
        "s3:presign:*",
        "iot:*",
        "sso:*",
        "ssm:*",
        "eks-auth:*",
        "quicksight:*",
        "quicksight:POST",
        "route53:*",
        "sts:*",
        "sqs:ListQueues",
    ]);
    let env = [("AWS_ENDPOINT_URL", recorder.url.as_str())];
    let (calls, stderr) = invoke_calls_granted("grant-means", &grants, &calls, &env);
    let error = |id: &str| calls[id]["error"].as_str().unwrap_or("").to_owned();
    for (id, operation) in [
        ("codeartifact", "codeartifact:GetAuthorizationToken"),
        ("s3-session", "s3:CreateSession"),
        ("iot-keys", "iot:CreateKeysAndCertificate"),
        ("sso", "sso:GetRoleCredentials"),
        ("ssm-token", "ssm:GetAccessToken"),
        ("eks-auth", "eks-auth:AssumeRoleForPodIdentity"),
        ("quicksight", "quicksight:GenerateEmbedUrlForAnonymousUser"),
    ] {
        let got = error(id);
        assert!(
            got.starts_with(&format!("denied: {operation} answers with")),
            "{id}: {:?}",
            calls[id]
        );
    }
    assert!(
        error("unresolved").starts_with("invalid: GET /nowhere/at/all is no operation of route53"),
        "{:?}",
        calls["unresolved"]
    );
    assert!(
        error("lowercase").contains("did you mean AssumeRole"),
        "{:?}",
        calls["lowercase"]
    );
    for id in ["presign-expires", "presign-date"] {
        assert!(
            error(id).contains("belongs to the host's signature"),
            "{id}: {:?}",
            calls[id]
        );
    }
    for id in ["answer-json", "answer-query"] {
        assert!(
            error(id).starts_with("denied: the answer of") && error(id).contains("SecretAccessKey"),
            "{id}: {:?}",
            calls[id]
        );
    }
    // Only the two calls whose operations answer with no credentials were sent.
    let requests = recorder.requests();
    assert_eq!(requests.len(), 2, "{requests:?}");
    // Nothing of the answers reached the guest or the log, and the audit names the member.
    let everything = format!("{calls:?}{stderr}");
    assert!(!everything.contains(FAKE_SECRET), "{everything}");
    assert!(
        stderr.contains("aws-call answer withheld")
            && stderr.contains("withheld=\"SecretAccessKey\""),
        "{stderr}"
    );
}

/// Issue 32, against moto: inputs are read the way AWS reads them (types, member names,
/// every table and log group a request names), and a `kms:*` grant cannot compose a data key.
#[test]
fn requests_are_read_as_aws_reads_them() {
    let calls = serde_json::json!([
        {"id": "flag-number", "fn": "json", "service": "ssm", "operation": "GetParameter",
         "input": {"Name": "x", "WithDecryption": 1}},
        {"id": "flag-text", "fn": "json", "service": "ssm", "operation": "GetParameter",
         "input": {"Name": "x", "WithDecryption": "True"}},
        {"id": "flag-case", "fn": "json", "service": "ssm", "operation": "GetParameter",
         "input": {"Name": "x", "withDecryption": true}},
        {"id": "decoy", "fn": "json", "service": "dynamodb", "operation": "BatchGetItem",
         "input": {"TableName": "orders",
                   "RequestItems": {"payments": {"Keys": [{"id": {"S": "1"}}]}}}},
        {"id": "batch-other", "fn": "json", "service": "dynamodb", "operation": "BatchGetItem",
         "input": {"RequestItems": {"payments": {"Keys": [{"id": {"S": "1"}}]}}}},
        {"id": "batch-orders", "fn": "json", "service": "dynamodb", "operation": "BatchGetItem",
         "input": {"RequestItems": {"orders": {"Keys": [{"id": {"S": "1"}}]}}}},
        {"id": "transact", "fn": "json", "service": "dynamodb", "operation": "TransactGetItems",
         "input": {"TransactItems": [{"Get": {"TableName": "orders", "Key": {"id": {"S": "1"}}}},
                                     {"Get": {"TableName": "payments", "Key": {"id": {"S": "1"}}}}]}},
        {"id": "statement", "fn": "json", "service": "dynamodb", "operation": "ExecuteStatement",
         "input": {"Statement": "SELECT * FROM payments"}},
        {"id": "log-groups", "fn": "json", "service": "logs", "operation": "StartQuery",
         "input": {"logGroupNames": ["/orders", "/payments"], "startTime": 0, "endTime": 1,
                   "queryString": "fields @message"}},
        {"id": "decrypt", "fn": "json", "service": "kms", "operation": "Decrypt",
         "input": {"CiphertextBlob": "AAAA"}},
        {"id": "data-key", "fn": "json", "service": "kms", "operation": "GenerateDataKey",
         "input": {"KeyId": "alias/x"}},
        {"id": "list-keys", "fn": "json", "service": "kms", "operation": "ListKeys", "input": {}},
        {"id": "query-type", "fn": "query", "service": "cloudwatch", "action": "ListMetrics",
         "params": {"RecentlyActive": "PT3H", "Bogus": "1"}},
    ]);
    let orders = serde_json::json!(["arn:aws:dynamodb:*:*:table/orders"]);
    let grants = serde_json::json!([
        "ssm:GetParameter",
        "kms:*",
        "cloudwatch:ListMetrics",
        {"op": "dynamodb:BatchGetItem", "resources": orders},
        {"op": "dynamodb:TransactGetItems", "resources": orders},
        {"op": "dynamodb:ExecuteStatement", "resources": orders},
        {"op": "logs:StartQuery", "resources": ["arn:aws:logs:*:*:log-group:/orders"]},
    ]);
    let (calls, stderr) = invoke_calls_granted("read-as-aws", &grants, &calls, &[]);
    let error = |id: &str| calls[id]["error"].as_str().unwrap_or("").to_owned();
    let expect = |id: &str, prefix: &str| {
        assert!(
            error(id).starts_with(prefix),
            "{id}: expected {prefix}…, got {:?}",
            calls[id]
        );
    };
    expect(
        "flag-number",
        "invalid: ssm:GetParameter: 'WithDecryption' must be a JSON boolean",
    );
    expect(
        "flag-text",
        "invalid: ssm:GetParameter: 'WithDecryption' must be a JSON boolean",
    );
    expect(
        "flag-case",
        "invalid: ssm:GetParameter: 'withDecryption' is not a member",
    );
    expect(
        "decoy",
        "invalid: dynamodb:BatchGetItem: 'TableName' is not a member",
    );
    expect(
        "batch-other",
        "denied: dynamodb:BatchGetItem on 'arn:aws:dynamodb:us-east-1::table/payments' is outside",
    );
    expect(
        "transact",
        "denied: dynamodb:TransactGetItems on 'arn:aws:dynamodb:us-east-1::table/payments' is outside",
    );
    expect(
        "statement",
        "denied: dynamodb:ExecuteStatement is granted to monitor 'calls' for some resources only",
    );
    expect(
        "log-groups",
        "denied: logs:StartQuery is granted to monitor 'calls' for some resources only",
    );
    expect("decrypt", "denied: kms:Decrypt is not granted");
    assert!(
        error("decrypt").contains("Plaintext"),
        "{:?}",
        calls["decrypt"]
    );
    expect(
        "data-key",
        "denied: kms:GenerateDataKey answers with a credential",
    );
    expect(
        "query-type",
        "invalid: cloudwatch:ListMetrics: 'Bogus' is not a member",
    );
    // What the grants allow reached moto: the orders table is read (moto has none), and
    // kms:* still covers ListKeys.
    let sent = &calls["batch-orders"];
    assert!(
        sent["error"]
            .as_str()
            .is_some_and(|e| e.contains("ResourceNotFound"))
            || sent["ok"].is_object(),
        "{sent:?}"
    );
    assert!(
        calls["list-keys"]["ok"]["Keys"].is_array(),
        "{:?}",
        calls["list-keys"]
    );
    assert_no_secrets(&stderr);
}

/// Issue 32: the host's own queues are not reached through `aws-call` either, whatever the
/// grants and however the queue is named.
#[test]
fn the_host_s_queues_are_not_reached_through_aws_call() {
    let pid = std::process::id();
    let events = format!("{}/123456789012/host-events-{pid}", moto_endpoint());
    let extra = format!(
        "store:\n  events_queue: events\nqueues:\n  events:\n    url: {events}\n    credential: MONITORING\n"
    );
    let calls = serde_json::json!([
        {"id": "send", "fn": "json", "service": "sqs", "operation": "SendMessage",
         "input": {"QueueUrl": events, "MessageBody": "{\"type\": \"request\"}"}},
        {"id": "receive", "fn": "json", "service": "sqs", "operation": "ReceiveMessage",
         "input": {"QueueUrl": format!("{events}?x=1")}},
        {"id": "url", "fn": "json", "service": "sqs", "operation": "GetQueueUrl",
         "input": {"QueueName": format!("host-events-{pid}")}},
        {"id": "other", "fn": "json", "service": "sqs", "operation": "ListQueues", "input": {}},
    ]);
    let grants = serde_json::json!(["sqs:*"]);
    let (calls, stderr) = invoke_calls_in("host-queues", &extra, &grants, &calls, &[]);
    for id in ["send", "receive", "url"] {
        let error = calls[id]["error"].as_str().unwrap_or("");
        assert!(
            error.starts_with(&format!(
                "denied: SQS queue 'host-events-{pid}' is the host's own"
            )),
            "{id}: {:?}",
            calls[id]
        );
    }
    assert!(calls["other"]["ok"].is_object(), "{:?}", calls["other"]);
    assert_no_secrets(&stderr);
}

/// `sentinela grants MONITOR --from-audit LOG`: a monitor run with broad grants leaves audit
/// events from which the command prints the smallest block, resources included, that the
/// config accepts and that lets the monitor make the same calls with nothing denied.
#[test]
fn grants_from_audit_cover_what_the_monitor_called() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let sqs = sqs(&runtime);
    let name = format!("from-audit-{}", std::process::id());
    let url = runtime
        .block_on(sqs.create_queue().queue_name(&name).send())
        .unwrap()
        .queue_url
        .unwrap();
    let calls = serde_json::json!([
        {"id": "list", "fn": "json", "service": "sqs", "operation": "ListQueues", "input": {}},
        {"id": "attributes", "fn": "json", "service": "sqs", "operation": "GetQueueAttributes",
         "input": {"QueueUrl": url, "AttributeNames": ["All"]}},
        {"id": "whoami", "fn": "query", "service": "sts", "action": "GetCallerIdentity"},
    ]);
    let broad = serde_json::json!(["sqs:*", "sts:*"]);
    let (first, stderr) = invoke_calls_granted("from-audit", &broad, &calls, &[]);
    assert!(first.values().all(|c| c["ok"] != Value::Null), "{first:?}");
    let dir = scratch_dir("from-audit-log");
    let log = dir.join("audit.log");
    std::fs::write(&log, &stderr).unwrap();
    let (status, block, errors) = output(&mut sentinela(&[
        "grants",
        "calls",
        "--from-audit",
        log.to_str().unwrap(),
    ]));
    assert!(status.success(), "{errors}");
    let arn = format!("arn:aws:sqs:us-east-1:123456789012:{name}");
    assert!(
        block.contains("credentials: [\"MONITORING\"]")
            && block.contains("- \"sqs:ListQueues\"")
            && block.contains("- op: \"sqs:GetQueueAttributes\"")
            && block.contains(&format!("resources: [\"{arn}\"]"))
            && block.contains("- \"sts:GetCallerIdentity\"")
            && !block.contains("sqs:*"),
        "{block}"
    );
    // The block, as the monitor's grants: the same calls go through, nothing is denied.
    let yaml: serde_yaml::Value = serde_yaml::from_str(&block).unwrap();
    let aws: Value = serde_yaml::from_value(yaml["grants"]["aws"].clone()).unwrap();
    let (again, stderr) = invoke_calls_granted("from-audit-again", &aws, &calls, &[]);
    for (id, call) in &again {
        assert!(call["ok"] != Value::Null, "{id}: {call:?}\n{stderr}");
    }
    assert!(!stderr.contains("outcome=\"denied\""), "{stderr}");
    runtime
        .block_on(sqs.delete_queue().queue_url(&url).send())
        .unwrap();
}

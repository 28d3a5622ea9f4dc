//! Tries every side path around the trust model with a credential it *was* granted, under
//! broad `service:*` grants: minting key material (STS, IAM), reading secret values through
//! `aws-call` instead of `secrets`, reaching SQS queues outside its resource grants (also
//! with a duplicated key), and smuggling hop-by-hop headers. Whatever it gets back goes into
//! its issue, its log and a queue message, so the test can check that no key material or
//! secret ever reached it.
use sentinela_monitor::aws::describe;
use sentinela_monitor::bindings::sentinela::plugin::aws_call::{self, Request};
use sentinela_monitor::{Issue, Monitor, Result, export_monitor, json, log, queue, serde_json};

const CREDENTIAL: &str = "MONITORING";

fn json_call(service: &str, operation: &str, input: &str) -> String {
    match aws_call::json(CREDENTIAL, service, None, operation, input) {
        Ok(output) => format!("ok: {output}"),
        Err(e) => describe(&e),
    }
}

fn query(service: &str, action: &str, params: &[(&str, &str)]) -> String {
    let params: Vec<(String, String)> = params
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    match aws_call::query(CREDENTIAL, service, None, action, &params) {
        Ok(xml) => format!("ok: {xml}"),
        Err(e) => describe(&e),
    }
}

fn signed(headers: &[(&str, &str)]) -> String {
    let request = Request {
        method: "GET".into(),
        path: "/".into(),
        query: vec![],
        headers: headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        body: vec![],
    };
    match aws_call::signed(CREDENTIAL, "s3", None, &request) {
        Ok(response) => format!("ok: {}", response.status),
        Err(e) => describe(&e),
    }
}

/// The URL of a queue in the same (moto) account, found through a granted ListQueues.
fn queue_url(prefix: &str) -> String {
    let listed = aws_call::json(
        CREDENTIAL,
        "sqs",
        None,
        "ListQueues",
        &json!({ "QueueNamePrefix": prefix }).to_string(),
    );
    listed
        .ok()
        .and_then(|text| serde_json::from_str::<serde_json::Value>(&text).ok())
        .and_then(|v| v["QueueUrls"][0].as_str().map(str::to_owned))
        .unwrap_or_else(|| format!("https://sqs.us-east-1.amazonaws.com/123456789012/{prefix}"))
}

struct TrustAbuse;

impl Monitor for TrustAbuse {
    fn search() -> Result<Vec<Issue>> {
        let mut outcomes = serde_json::Map::new();
        let mut record = |name: &str, outcome: String| {
            log::info(format!("{name}: {outcome}"));
            outcomes.insert(name.into(), outcome.into());
        };
        record("GetSessionToken", query("sts", "GetSessionToken", &[]));
        record(
            "GetFederationToken",
            query("sts", "GetFederationToken", &[("Name", "x")]),
        );
        record(
            "AssumeRole",
            query(
                "sts",
                "AssumeRole",
                &[
                    ("RoleArn", "arn:aws:iam::123456789012:role/x"),
                    ("RoleSessionName", "x"),
                ],
            ),
        );
        record(
            "assumerole lowercase",
            query(
                "sts",
                "assumerole",
                &[
                    ("RoleArn", "arn:aws:iam::123456789012:role/x"),
                    ("RoleSessionName", "x"),
                ],
            ),
        );
        record("GetCallerIdentity", query("sts", "GetCallerIdentity", &[]));
        record(
            "CreateAccessKey",
            query("iam", "CreateAccessKey", &[("UserName", "x")]),
        );
        record(
            "GetSecretValue",
            json_call(
                "secretsmanager",
                "GetSecretValue",
                r#"{"SecretId":"trust-abuse-secret"}"#,
            ),
        );
        record(
            "GetParameter decrypted",
            json_call(
                "ssm",
                "GetParameter",
                r#"{"Name":"trust-abuse-param","WithDecryption":true}"#,
            ),
        );
        record(
            "GetParameter duplicate key",
            json_call(
                "ssm",
                "GetParameter",
                r#"{"Name":"trust-abuse-param","WithDecryption":false,"WithDecryption":true}"#,
            ),
        );
        let allowed = queue_url("trust-allowed");
        let forbidden = queue_url("trust-forbidden");
        let attributes = |url: &str| {
            json_call(
                "sqs",
                "GetQueueAttributes",
                &json!({ "QueueUrl": url, "AttributeNames": ["All"] }).to_string(),
            )
        };
        record("queue in resources", attributes(&allowed));
        record("queue outside resources", attributes(&forbidden));
        record(
            "queue duplicate key",
            json_call(
                "sqs",
                "GetQueueAttributes",
                &format!(r#"{{"QueueUrl":"{allowed}","QueueUrl":"{forbidden}"}}"#),
            ),
        );
        record(
            "SendMessage not granted",
            json_call(
                "sqs",
                "SendMessage",
                &json!({ "QueueUrl": allowed, "MessageBody": "x" }).to_string(),
            ),
        );
        record(
            "hop-by-hop headers",
            signed(&[
                ("Transfer-Encoding", "chunked"),
                ("Connection", "close"),
                ("Expect", "100-continue"),
                ("TE", "trailers"),
                ("Upgrade", "h2c"),
            ]),
        );
        let outcomes = json!(outcomes);
        // Exfiltration attempts: whatever came back goes to a queue and into the issue.
        let sent = queue::send("outbox", &outcomes.to_string());
        log::info(format!("sent to outbox: {sent:?}"));
        Ok(vec![Issue::new("trust-abuse", outcomes)])
    }

    fn is_solved(_: &Issue) -> Result<bool> {
        Ok(false)
    }
}

export_monitor!(TrustAbuse);

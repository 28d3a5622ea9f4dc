//! Abuses `aws-call`: forbidden and forged credential names, a steering region, a Host
//! header, paths that name another host, a query key that splits a character, a huge body,
//! operations outside the allow-list. It returns every outcome and every byte it got back, so
//! the test can check each attempt failed the right way and that no key material came back.
use sentinela_monitor::aws::describe;
use sentinela_monitor::bindings::sentinela::plugin::aws_call::{self, Request};
use sentinela_monitor::{Issue, Monitor, Result, export_monitor, json, serde_json};

fn json_call(
    credential: &str,
    service: &str,
    region: Option<&str>,
    operation: &str,
    input: &str,
) -> String {
    match aws_call::json(credential, service, region, operation, input) {
        Ok(output) => format!("ok: {output}"),
        Err(e) => describe(&e),
    }
}

fn signed(path: &str, headers: &[(&str, &str)]) -> String {
    signed_with_query(path, &[], headers)
}

fn signed_with_query(path: &str, query: &[(&str, &str)], headers: &[(&str, &str)]) -> String {
    let request = Request {
        method: "GET".into(),
        path: path.into(),
        query: query
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        headers: headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        body: vec![],
    };
    match aws_call::signed("MONITORING", "s3", None, &request) {
        Ok(response) => format!(
            "ok: {} {}",
            response.status,
            String::from_utf8_lossy(&response.body)
        ),
        Err(e) => describe(&e),
    }
}

struct AwsAbuse;

impl Monitor for AwsAbuse {
    fn search() -> Result<Vec<Issue>> {
        let list = |credential: &str| json_call(credential, "sqs", None, "ListQueues", "{}");
        let mut outcomes = serde_json::Map::new();
        let mut record = |name: &str, outcome: String| {
            outcomes.insert(name.into(), outcome.into());
        };
        record("granted", list("MONITORING"));
        record("granted lowercase", list("monitoring"));
        record("APPLICATION", list("APPLICATION"));
        record("application", list("application"));
        record("Application with space", list("Application "));
        record("NUL", list("MONITORING\0"));
        record("look-alike", list("MONІTORING"));
        record("empty", list(""));
        record("huge name", list(&"A".repeat(100_000)));
        record("ungranted", list("OTHER"));
        record(
            "evil region",
            json_call(
                "MONITORING",
                "sqs",
                Some("us-east-1.evil.example"),
                "ListQueues",
                "{}",
            ),
        );
        record(
            "unknown service",
            json_call("MONITORING", "evil", None, "ListQueues", "{}"),
        );
        record(
            "wrong protocol",
            json_call("MONITORING", "sts", None, "GetCallerIdentity", "{}"),
        );
        record(
            "outside allow-list",
            json_call(
                "MONITORING",
                "sqs",
                None,
                "DeleteQueue",
                r#"{"QueueUrl":"x"}"#,
            ),
        );
        record(
            "bad operation",
            json_call("MONITORING", "sqs", None, "List/../Queues", "{}"),
        );
        record(
            "huge body",
            json_call(
                "MONITORING",
                "sqs",
                None,
                "ListQueues",
                &format!("\"{}\"", "x".repeat(2 << 20)),
            ),
        );
        record("host header", signed("/", &[("Host", "evil.example")]));
        record(
            "forwarded host",
            signed("/", &[("X-Forwarded-Host", "evil.example")]),
        );
        record("authority path", signed("//evil.example/x", &[]));
        record("scheme in path", signed("/x/http://evil.example/", &[]));
        record("userinfo path", signed("/@evil.example", &[]));
        // A multi-byte character across byte 6, where the host looks for `x-amz-` (it once
        // sliced the key there and panicked); the calls after it must still be served.
        record(
            "multi-byte query key",
            signed_with_query("/", &[("maxi\u{fffd}t", "2")], &[]),
        );
        record(
            "query",
            match aws_call::query("MONITORING", "sts", None, "GetCallerIdentity", &[]) {
                Ok(xml) => format!("ok: {xml}"),
                Err(e) => describe(&e),
            },
        );
        Ok(vec![Issue::new("abuse", json!(outcomes))])
    }

    fn is_solved(_: &Issue) -> Result<bool> {
        Ok(false)
    }
}

export_monitor!(AwsAbuse);

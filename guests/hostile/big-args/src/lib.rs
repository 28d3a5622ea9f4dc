//! Hands the host arguments whose size or shape would cost it memory or CPU before any cap
//! applied: a 8 MiB JSON input, 100,000 query pairs, 300 distinct well-formed regions, a
//! thousand reads of a missing secret, and finally 1.5 million tiny headers. It logs one
//! line per attack with what came back.
use sentinela_monitor::aws::describe;
use sentinela_monitor::bindings::sentinela::plugin::aws_call::{self, Request};
use sentinela_monitor::{Issue, Monitor, Result, export_monitor, log, secrets};

fn first_error<T>(result: std::result::Result<T, sentinela_monitor::aws::HostError>) -> String {
    match result {
        Ok(_) => "ok".into(),
        Err(e) => describe(&e),
    }
}

struct BigArgs;

impl Monitor for BigArgs {
    fn search() -> Result<Vec<Issue>> {
        let huge = format!("\"{}\"", "x".repeat(8 << 20));
        let outcome = first_error(aws_call::json(
            "MONITORING",
            "sqs",
            None,
            "ListQueues",
            &huge,
        ));
        log::info(format!("huge json: {outcome}"));

        let pairs: Vec<(String, String)> = (0..100_000)
            .map(|i| (format!("P{i}"), "v".into()))
            .collect();
        let outcome = first_error(aws_call::query(
            "MONITORING",
            "sns",
            None,
            "ListTopics",
            &pairs,
        ));
        log::info(format!("many query pairs: {outcome}"));

        let mut refused = 0;
        for i in 0..300 {
            let region = format!("zz-east-{i}");
            let outcome = first_error(aws_call::json(
                "MONITORING",
                "sqs",
                Some(&region),
                "ListQueues",
                "{}",
            ));
            if outcome.starts_with("invalid: invalid region") {
                refused += 1;
            }
        }
        log::info(format!("distinct regions refused: {refused} of 300"));

        let mut missing = 0;
        for _ in 0..1000 {
            if secrets::get("missing").is_err() {
                missing += 1;
            }
        }
        log::info(format!("missing secret reads failed: {missing} of 1000"));

        let request = Request {
            method: "GET".into(),
            path: "/".into(),
            query: vec![],
            headers: (0..1_500_000)
                .map(|_| (String::new(), String::new()))
                .collect(),
            body: vec![],
        };
        let outcome = first_error(aws_call::signed("MONITORING", "s3", None, &request));
        log::info(format!("1.5 million headers: {outcome}"));
        Ok(vec![])
    }

    fn is_solved(_: &Issue) -> Result<bool> {
        Ok(false)
    }
}

export_monitor!(BigArgs);

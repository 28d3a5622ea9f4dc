//! Which resources a request acts on, read from the request the host is about to sign, as
//! ARNs that resource-scoped grants are matched against.
//!
//! | service | read from | ARN |
//! |---|---|---|
//! | sqs | `QueueUrl`, `QueueName` (+ `QueueOwnerAWSAccountId`), `SourceArn`, `DestinationArn` | `arn:aws:sqs:REGION:ACCOUNT:NAME` |
//! | s3 | the path's bucket and key, `x-amz-copy-source` | `arn:aws:s3:::BUCKET[/KEY]` |
//! | dynamodb | `TableName` (name or ARN), `ResourceArn` | `arn:aws:dynamodb:REGION:ACCOUNT:table/NAME` |
//! | lambda | the path's function name (name, partial or full ARN) | `arn:aws:lambda:REGION:ACCOUNT:function:NAME` |
//! | sns | `TopicArn`, `TargetArn`, `ResourceArn` | as given |
//! | logs | `logGroupName`, `logGroupIdentifier`, `resourceArn` | `arn:aws:logs:REGION:ACCOUNT:log-group:NAME` |
//!
//! A field the request does not carry (the account of a table given by name) is empty in
//! the ARN, so only a `*` in the pattern matches it. Any other service, or a request with
//! none of these fields (`ListQueues`, `BatchWriteItem`), is [`RequestResources::Unknown`].

use http::{HeaderName, HeaderValue};
use percent_encoding::percent_decode_str;
use serde_json::Value;

use crate::grants::RequestResources;

/// The partition of every ARN the host builds.
const PARTITION: &str = "aws";

/// Resources of a JSON-protocol request.
pub fn of_json(service: &str, region: &str, input: &Value) -> RequestResources {
    let text = |field: &str| input.get(field).and_then(Value::as_str);
    let mut found = Vec::new();
    match service {
        "sqs" => {
            if let Some(url) = text("QueueUrl") {
                match sqs_queue_arn(url, region) {
                    Some(arn) => found.push(arn),
                    // A URL the host cannot read: it cannot tell the queue.
                    None => return RequestResources::Unknown,
                }
            }
            if let Some(name) = text("QueueName") {
                let account = text("QueueOwnerAWSAccountId").unwrap_or("");
                found.push(format!("arn:{PARTITION}:sqs:{region}:{account}:{name}"));
            }
            found.extend(
                ["SourceArn", "DestinationArn"]
                    .into_iter()
                    .filter_map(text)
                    .map(str::to_owned),
            );
        }
        "dynamodb" => {
            if let Some(table) = text("TableName") {
                found.push(if table.starts_with("arn:") {
                    table.to_owned()
                } else {
                    format!("arn:{PARTITION}:dynamodb:{region}::table/{table}")
                });
            }
            found.extend(text("ResourceArn").map(str::to_owned));
        }
        "logs" => {
            for field in ["logGroupName", "logGroupIdentifier"] {
                if let Some(group) = text(field) {
                    found.push(if group.starts_with("arn:") {
                        group.to_owned()
                    } else {
                        format!("arn:{PARTITION}:logs:{region}::log-group:{group}")
                    });
                }
            }
            found.extend(text("resourceArn").map(str::to_owned));
        }
        _ => return RequestResources::Unknown,
    }
    known(found)
}

/// Resources of a query-protocol request.
pub fn of_query(service: &str, params: &[(String, String)]) -> RequestResources {
    match service {
        "sns" => known(
            params
                .iter()
                .filter(|(k, _)| ["TopicArn", "TargetArn", "ResourceArn"].contains(&k.as_str()))
                .map(|(_, v)| v.clone())
                .collect(),
        ),
        _ => RequestResources::Unknown,
    }
}

/// Resources of a REST request on `path` (percent-encoded, without the query).
pub fn of_rest(
    service: &str,
    region: &str,
    path: &str,
    headers: &[(HeaderName, HeaderValue)],
) -> RequestResources {
    let decoded = percent_decode_str(path).decode_utf8_lossy();
    match service {
        "s3" => {
            let object = decoded.trim_start_matches('/');
            if object.is_empty() {
                return RequestResources::Unknown;
            }
            let mut found = vec![format!(
                "arn:{PARTITION}:s3:::{}",
                object.trim_end_matches('/')
            )];
            for (name, value) in headers {
                if name.as_str() == "x-amz-copy-source" {
                    let Ok(source) = value.to_str() else {
                        return RequestResources::Unknown;
                    };
                    let source = percent_decode_str(source).decode_utf8_lossy();
                    let source = source.split('?').next().unwrap_or("");
                    found.push(format!(
                        "arn:{PARTITION}:s3:::{}",
                        source.trim_start_matches('/')
                    ));
                }
            }
            RequestResources::Known(found)
        }
        "lambda" => {
            let mut segments = decoded.split('/');
            let function = segments
                .by_ref()
                .skip_while(|s| *s != "functions")
                .nth(1)
                .filter(|name| !name.is_empty());
            match function {
                Some(name) if name.starts_with("arn:") => {
                    RequestResources::Known(vec![name.into()])
                }
                Some(name) => {
                    // A partial ARN `ACCOUNT:function:NAME` or a plain name (with a qualifier).
                    let arn = match name.split_once(":function:") {
                        Some((account, rest)) => {
                            format!("arn:{PARTITION}:lambda:{region}:{account}:function:{rest}")
                        }
                        None => format!("arn:{PARTITION}:lambda:{region}::function:{name}"),
                    };
                    RequestResources::Known(vec![arn])
                }
                None => RequestResources::Unknown,
            }
        }
        _ => RequestResources::Unknown,
    }
}

/// `https://sqs.REGION.amazonaws.com/ACCOUNT/NAME` (or any host: moto's, a VPC endpoint's) →
/// `arn:aws:sqs:REGION:ACCOUNT:NAME`, the region being the one the request is signed for.
pub fn sqs_queue_arn(url: &str, region: &str) -> Option<String> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))?;
    let (_host, path) = rest.split_once('/')?;
    let (account, name) = path.trim_end_matches('/').split_once('/')?;
    let word = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
    };
    (word(account) && word(name)).then(|| format!("arn:{PARTITION}:sqs:{region}:{account}:{name}"))
}

fn known(found: Vec<String>) -> RequestResources {
    if found.is_empty() {
        RequestResources::Unknown
    } else {
        RequestResources::Known(found)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn arns(r: RequestResources) -> Vec<String> {
        match r {
            RequestResources::Known(list) => list,
            RequestResources::Unknown => vec![],
        }
    }

    #[test]
    fn sqs_queues() {
        let input = json!({"QueueUrl": "http://127.0.0.1:5000/123456789012/orders-1"});
        assert_eq!(
            arns(of_json("sqs", "us-east-1", &input)),
            ["arn:aws:sqs:us-east-1:123456789012:orders-1"]
        );
        assert_eq!(
            of_json("sqs", "us-east-1", &json!({})),
            RequestResources::Unknown
        );
        assert_eq!(
            of_json("sqs", "us-east-1", &json!({"QueueUrl": "not a url"})),
            RequestResources::Unknown
        );
        assert_eq!(
            arns(of_json("sqs", "eu-west-1", &json!({"QueueName": "q"}))),
            ["arn:aws:sqs:eu-west-1::q"]
        );
        assert_eq!(sqs_queue_arn("https://h/1/a/b", "r"), None);
    }

    #[test]
    fn s3_lambda_dynamodb_logs_sns() {
        assert_eq!(
            arns(of_rest("s3", "us-east-1", "/bucket/a%20b/c", &[])),
            ["arn:aws:s3:::bucket/a b/c"]
        );
        assert_eq!(
            of_rest("s3", "us-east-1", "/", &[]),
            RequestResources::Unknown
        );
        let copy = [(
            HeaderName::from_static("x-amz-copy-source"),
            HeaderValue::from_static("/other/key"),
        )];
        assert_eq!(
            arns(of_rest("s3", "r", "/bucket/k", &copy)),
            ["arn:aws:s3:::bucket/k", "arn:aws:s3:::other/key"]
        );
        assert_eq!(
            arns(of_rest(
                "lambda",
                "r",
                "/2015-03-31/functions/f1/invocations",
                &[]
            )),
            ["arn:aws:lambda:r::function:f1"]
        );
        assert_eq!(
            of_rest("lambda", "r", "/2015-03-31/functions/", &[]),
            RequestResources::Unknown
        );
        assert_eq!(
            arns(of_json("dynamodb", "r", &json!({"TableName": "t"}))),
            ["arn:aws:dynamodb:r::table/t"]
        );
        assert_eq!(
            of_json("dynamodb", "r", &json!({"RequestItems": {}})),
            RequestResources::Unknown
        );
        assert_eq!(
            arns(of_json("logs", "r", &json!({"logGroupName": "/app"}))),
            ["arn:aws:logs:r::log-group:/app"]
        );
        let params = [("TopicArn".to_owned(), "arn:aws:sns:r:1:t".to_owned())];
        assert_eq!(arns(of_query("sns", &params)), ["arn:aws:sns:r:1:t"]);
        assert_eq!(
            of_json("kinesis", "r", &json!({"StreamName": "s"})),
            RequestResources::Unknown
        );
    }
}

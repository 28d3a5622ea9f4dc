//! Which resources a request acts on, read from the request the host is about to sign, as
//! ARNs that resource-scoped grants are matched against.
//!
//! JSON and query requests are read while they are checked against the operation's input
//! shape ([`super::shapes`]): every scalar of the request, at any depth and in map keys, is
//! shown to a [`Resources`] collector, which reads the ones whose member or shape carries a
//! resource. REST requests are read from their path and headers.
//!
//! | service | read from | ARN |
//! |---|---|---|
//! | sqs | `QueueUrl`, `QueueName` (+ `QueueOwnerAWSAccountId`), `SourceArn`, `DestinationArn` | `arn:aws:sqs:REGION:ACCOUNT:NAME` |
//! | s3 | the path's bucket and key, `x-amz-copy-source`, `x-amz-rename-source` | `arn:aws:s3:::BUCKET[/KEY]` |
//! | dynamodb | every `TableName` / `TableArn` (`RequestItems` keys, transact items), `ResourceArn`; a PartiQL statement is unreadable | `arn:aws:dynamodb:REGION:ACCOUNT:table/NAME` |
//! | lambda | the path's function name (name, partial or full ARN) | `arn:aws:lambda:REGION:ACCOUNT:function:NAME` |
//! | sns | `TopicArn`, `TargetArn`, `ResourceArn` | as given |
//! | logs | every `LogGroupName` / `LogGroupIdentifier` / `LogGroupArn` (lists included), `resourceArn`; query strings, prefixes and patterns are unreadable | `arn:aws:logs:REGION:ACCOUNT:log-group:NAME` |
//!
//! A field the request does not carry (the account of a table given by name) is empty in
//! the ARN, so only a `*` in the pattern matches it. Any other service, a request with none
//! of these fields (`ListQueues`), or one with a value the host cannot read, is
//! [`RequestResources::Unknown`].

use http::{HeaderName, HeaderValue};
use percent_encoding::percent_decode_str;

use super::shapes::Scalars;
use crate::grants::RequestResources;

/// The partition of every ARN the host builds.
const PARTITION: &str = "aws";

/// Collects the resources of a JSON or query request from the scalars its shape check meets.
#[derive(Debug)]
pub struct Resources<'a> {
    service: &'a str,
    region: &'a str,
    found: Vec<String>,
    queue_names: Vec<String>,
    queue_owner: Option<String>,
    unreadable: bool,
}

impl<'a> Resources<'a> {
    /// A collector for a request to `service` in `region`.
    pub fn new(service: &'a str, region: &'a str) -> Resources<'a> {
        Resources {
            service,
            region,
            found: Vec::new(),
            queue_names: Vec::new(),
            queue_owner: None,
            unreadable: false,
        }
    }

    /// Reads one scalar of the request.
    pub fn see(&mut self, scalar: Scalars<'_>) {
        let Some(text) = scalar.text else { return };
        let region = self.region;
        let arn_or = |kind: &str| {
            if text.starts_with("arn:") {
                text.to_owned()
            } else {
                format!("arn:{PARTITION}:{}:{region}::{kind}{text}", self.service)
            }
        };
        match (self.service, scalar.member, scalar.shape) {
            ("sqs", "QueueUrl", _) => match sqs_queue_arn(text, region) {
                Some(arn) => self.found.push(arn),
                // A URL the host cannot read: it cannot tell the queue.
                None => self.unreadable = true,
            },
            ("sqs", "QueueName", _) => self.queue_names.push(text.to_owned()),
            ("sqs", "QueueOwnerAWSAccountId", _) => self.queue_owner = Some(text.to_owned()),
            ("sqs", "SourceArn" | "DestinationArn", _) => self.found.push(text.to_owned()),
            ("dynamodb", _, "TableName" | "TableArn") => self.found.push(arn_or("table/")),
            ("dynamodb", "ResourceArn", _) => self.found.push(text.to_owned()),
            ("dynamodb", _, "PartiQLStatement") => self.unreadable = true,
            ("logs", member, _) if member.ends_with("Prefix") || member.ends_with("Pattern") => {
                self.unreadable = true
            }
            ("logs", _, "QueryString" | "LogGroupNamePattern" | "LogGroupNameRegexPattern") => {
                self.unreadable = true
            }
            ("logs", _, "LogGroupName" | "LogGroupIdentifier" | "LogGroupArn") => {
                self.found.push(arn_or("log-group:"))
            }
            ("logs", "resourceArn", _) => self.found.push(text.to_owned()),
            ("sns", "TopicArn" | "TargetArn" | "ResourceArn", _) => {
                self.found.push(text.to_owned())
            }
            _ => {}
        }
    }

    /// Every resource seen, or `Unknown` when none was or one could not be read.
    pub fn finish(mut self) -> RequestResources {
        let account = self.queue_owner.as_deref().unwrap_or("");
        for name in &self.queue_names {
            self.found.push(format!(
                "arn:{PARTITION}:sqs:{}:{account}:{name}",
                self.region
            ));
        }
        if self.unreadable {
            return RequestResources::Unknown;
        }
        known(self.found)
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
                // The object a copy or a rename reads (CopyObject, UploadPartCopy,
                // RenameObject): the members whose model shapes are CopySource and RenameSource.
                if ["x-amz-copy-source", "x-amz-rename-source"].contains(&name.as_str()) {
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
    use crate::aws::services::Service;
    use crate::aws::shapes;
    use serde_json::{Value, json};

    fn arns(r: RequestResources) -> Vec<String> {
        match r {
            RequestResources::Known(list) => list,
            RequestResources::Unknown => vec![],
        }
    }

    /// What the host reads from a JSON request, through the same shape check as a call.
    fn of_json(service: &str, operation: &str, region: &str, input: &Value) -> RequestResources {
        let modelled = Service::find(service).unwrap();
        let model = modelled.input_model();
        let mut resources = Resources::new(modelled.name, region);
        shapes::check_json(model, model.input(operation), input, &mut |s| {
            resources.see(s)
        })
        .unwrap();
        resources.finish()
    }

    #[test]
    fn sqs_queues() {
        let input = json!({"QueueUrl": "http://127.0.0.1:5000/123456789012/orders-1"});
        assert_eq!(
            arns(of_json("sqs", "GetQueueAttributes", "us-east-1", &input)),
            ["arn:aws:sqs:us-east-1:123456789012:orders-1"]
        );
        assert_eq!(
            of_json("sqs", "ListQueues", "us-east-1", &json!({})),
            RequestResources::Unknown
        );
        assert_eq!(
            of_json(
                "sqs",
                "GetQueueAttributes",
                "us-east-1",
                &json!({"QueueUrl": "not a url"})
            ),
            RequestResources::Unknown
        );
        assert_eq!(
            arns(of_json(
                "sqs",
                "GetQueueUrl",
                "eu-west-1",
                &json!({"QueueName": "q"})
            )),
            ["arn:aws:sqs:eu-west-1::q"]
        );
        assert_eq!(sqs_queue_arn("https://h/1/a/b", "r"), None);
    }

    #[test]
    fn dynamodb_reads_every_table_a_request_names() {
        assert_eq!(
            arns(of_json(
                "dynamodb",
                "GetItem",
                "r",
                &json!({"TableName": "t", "Key": {}})
            )),
            ["arn:aws:dynamodb:r::table/t"]
        );
        let batch = json!({"RequestItems": {"orders": {"Keys": []}, "payments": {"Keys": []}}});
        let mut tables = arns(of_json("dynamodb", "BatchGetItem", "r", &batch));
        tables.sort();
        assert_eq!(
            tables,
            [
                "arn:aws:dynamodb:r::table/orders",
                "arn:aws:dynamodb:r::table/payments"
            ]
        );
        let transact = json!({"TransactItems": [
            {"Get": {"TableName": "orders", "Key": {}}},
            {"Get": {"TableName": "payments", "Key": {}}},
        ]});
        assert_eq!(
            arns(of_json("dynamodb", "TransactGetItems", "r", &transact)).len(),
            2
        );
        let statement = json!({"Statement": "SELECT * FROM payments"});
        assert_eq!(
            of_json("dynamodb", "ExecuteStatement", "r", &statement),
            RequestResources::Unknown
        );
        assert_eq!(
            of_json(
                "dynamodb",
                "BatchGetItem",
                "r",
                &json!({"RequestItems": {}})
            ),
            RequestResources::Unknown
        );
    }

    #[test]
    fn logs_lists_and_queries() {
        assert_eq!(
            arns(of_json(
                "logs",
                "FilterLogEvents",
                "r",
                &json!({"logGroupName": "/app"})
            )),
            ["arn:aws:logs:r::log-group:/app"]
        );
        let start = json!({"logGroupNames": ["/app", "/secret"], "startTime": 0, "endTime": 1,
                           "queryString": "fields @message"});
        assert_eq!(
            of_json("logs", "StartQuery", "r", &start),
            RequestResources::Unknown,
            "a query string can name other log groups"
        );
        let ids = json!({"logGroupIdentifiers": ["/app", "arn:aws:logs:r:1:log-group:/other"]});
        assert_eq!(
            arns(of_json("logs", "StartLiveTail", "r", &ids)),
            [
                "arn:aws:logs:r::log-group:/app",
                "arn:aws:logs:r:1:log-group:/other"
            ]
        );
        assert_eq!(
            of_json(
                "kinesis",
                "DescribeStream",
                "r",
                &json!({"StreamName": "s"})
            ),
            RequestResources::Unknown
        );
    }

    #[test]
    fn s3_lambda_paths() {
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
        let rename = [(
            HeaderName::from_static("x-amz-rename-source"),
            HeaderValue::from_static("/bucket/secret/key"),
        )];
        assert_eq!(
            arns(of_rest("s3", "r", "/bucket/public/k", &rename)),
            [
                "arn:aws:s3:::bucket/public/k",
                "arn:aws:s3:::bucket/secret/key"
            ]
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
    }
}

//! The AWS services `aws-call` can reach, and how each is spoken to.

/// How requests to a service are encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// `POST /` with `X-Amz-Target: {target_prefix}.{Operation}` and a JSON body.
    Json {
        /// The JSON protocol version: `Content-Type: application/x-amz-json-{version}`.
        version: &'static str,
        /// What precedes the operation in `X-Amz-Target` (e.g. `AmazonSQS`).
        target_prefix: &'static str,
    },
    /// `POST /` with a form body `Action=...&Version=...`; XML responses.
    Query {
        /// The API version, sent as the form's `Version` (e.g. `2010-03-31`).
        api_version: &'static str,
    },
    /// Plain HTTP requests on resource paths.
    Rest,
}

/// A service `aws-call` can reach: its names, endpoint and protocol.
#[derive(Debug)]
pub struct Service {
    /// The name monitors use (`sqs`, `cloudwatch`, ...), as in grants.
    pub name: &'static str,
    /// The SigV4 signing name.
    pub signing_name: &'static str,
    /// `https://{endpoint_prefix}.{region}.amazonaws.com`.
    pub endpoint_prefix: &'static str,
    /// Global services have one endpoint, signed for this region.
    pub global_region: Option<&'static str>,
    /// How requests are encoded, and so which `aws-call` function calls it.
    pub protocol: Protocol,
}

const fn json(name: &'static str, version: &'static str, target_prefix: &'static str) -> Service {
    Service {
        name,
        signing_name: name,
        endpoint_prefix: name,
        global_region: None,
        protocol: Protocol::Json {
            version,
            target_prefix,
        },
    }
}

const fn query(name: &'static str, api_version: &'static str) -> Service {
    Service {
        name,
        signing_name: name,
        endpoint_prefix: name,
        global_region: None,
        protocol: Protocol::Query { api_version },
    }
}

/// Every service `aws-call` can reach; any other is refused.
pub const SERVICES: &[Service] = &[
    json("sqs", "1.0", "AmazonSQS"),
    json("dynamodb", "1.0", "DynamoDB_20120810"),
    json("secretsmanager", "1.1", "secretsmanager"),
    json("ssm", "1.1", "AmazonSSM"),
    json("logs", "1.1", "Logs_20140328"),
    json("kms", "1.1", "TrentService"),
    json("events", "1.1", "AWSEvents"),
    json("kinesis", "1.1", "Kinesis_20131202"),
    json("athena", "1.1", "AmazonAthena"),
    json("glue", "1.1", "AWSGlue"),
    json("ecs", "1.1", "AmazonEC2ContainerServiceV20141113"),
    json("ecr", "1.1", "AmazonEC2ContainerRegistry_V20150921"),
    json("states", "1.0", "AWSStepFunctions"),
    json("firehose", "1.1", "Firehose_20150804"),
    query("sts", "2011-06-15"),
    query("sns", "2010-03-31"),
    Service {
        endpoint_prefix: "email",
        ..query("ses", "2010-12-01")
    },
    Service {
        global_region: Some("us-east-1"),
        ..query("iam", "2010-05-08")
    },
    Service {
        signing_name: "monitoring",
        endpoint_prefix: "monitoring",
        ..query("cloudwatch", "2010-08-01")
    },
    query("ec2", "2016-11-15"),
    query("rds", "2014-10-31"),
    query("elasticloadbalancing", "2015-12-01"),
    query("cloudformation", "2010-05-15"),
    query("autoscaling", "2011-01-01"),
    Service {
        name: "s3",
        signing_name: "s3",
        endpoint_prefix: "s3",
        global_region: None,
        protocol: Protocol::Rest,
    },
    Service {
        name: "lambda",
        signing_name: "lambda",
        endpoint_prefix: "lambda",
        global_region: None,
        protocol: Protocol::Rest,
    },
];

impl Service {
    /// The service monitors call `name` (as in grants), if it is one of [`SERVICES`].
    pub fn find(name: &str) -> Option<&'static Service> {
        SERVICES.iter().find(|s| s.name == name)
    }

    /// The names of the services whose protocol passes `protocol`, in [`SERVICES`] order (for
    /// error messages).
    pub fn names(protocol: fn(&Protocol) -> bool) -> Vec<&'static str> {
        SERVICES
            .iter()
            .filter(|s| protocol(&s.protocol))
            .map(|s| s.name)
            .collect()
    }

    /// The endpoint for `region`, unless `AWS_ENDPOINT_URL` overrides every endpoint.
    pub fn endpoint(&self, region: &str) -> String {
        format!("https://{}.{region}.amazonaws.com", self.endpoint_prefix)
    }
}

/// The regions of the `aws`, `aws-cn`, `aws-us-gov` and `aws-eusc` partitions. A region is
/// part of the endpoint's host name and of the client cache's key, so a guest may name only
/// one of these: no endpoint steering, and at most this many clients per credential and
/// service. (A region AWS opens later is added here.)
pub const KNOWN_REGIONS: &[&str] = &[
    "af-south-1",
    "ap-east-1",
    "ap-east-2",
    "ap-northeast-1",
    "ap-northeast-2",
    "ap-northeast-3",
    "ap-south-1",
    "ap-south-2",
    "ap-southeast-1",
    "ap-southeast-2",
    "ap-southeast-3",
    "ap-southeast-4",
    "ap-southeast-5",
    "ap-southeast-6",
    "ap-southeast-7",
    "ca-central-1",
    "ca-west-1",
    "cn-north-1",
    "cn-northwest-1",
    "eu-central-1",
    "eu-central-2",
    "eu-north-1",
    "eu-south-1",
    "eu-south-2",
    "eu-west-1",
    "eu-west-2",
    "eu-west-3",
    "eusc-de-east-1",
    "il-central-1",
    "me-central-1",
    "me-south-1",
    "mx-central-1",
    "sa-east-1",
    "us-east-1",
    "us-east-2",
    "us-gov-east-1",
    "us-gov-west-1",
    "us-west-1",
    "us-west-2",
];

/// Whether `region` is a known AWS region (see [`KNOWN_REGIONS`]).
pub fn valid_region(region: &str) -> bool {
    KNOWN_REGIONS.contains(&region)
}

/// An operation or action name: letters and digits, as in AWS's API references.
pub fn valid_operation(operation: &str) -> bool {
    !operation.is_empty()
        && operation.len() <= 128
        && operation.bytes().all(|b| b.is_ascii_alphanumeric())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regions() {
        for ok in [
            "us-east-1",
            "eu-central-2",
            "us-gov-west-1",
            "ap-southeast-4",
        ] {
            assert!(valid_region(ok), "{ok}");
        }
        for bad in [
            "us-east-1.evil.example",
            "evil.example",
            "",
            "us-east-",
            "US-EAST-1",
            "us-east-1:443",
            "us-east-1/x",
            "localhost",
            "zz-north-9",
            "us-east-12345",
        ] {
            assert!(!valid_region(bad), "{bad}");
        }
    }

    #[test]
    fn services() {
        assert_eq!(
            Service::find("sqs").unwrap().protocol,
            Protocol::Json {
                version: "1.0",
                target_prefix: "AmazonSQS"
            }
        );
        assert_eq!(
            Service::find("cloudwatch").unwrap().signing_name,
            "monitoring"
        );
        assert!(Service::find("evil").is_none());
        assert!(valid_operation("GetQueueAttributes"));
        assert!(!valid_operation("Get/../x"));
    }
}

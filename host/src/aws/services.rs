//! The AWS services `aws-call` can reach, and how each is spoken to: names, protocol,
//! endpoints per partition and operations, from the table generated out of AWS's published
//! models (`models.rs`, included here; see `scripts/gen-aws-models.py`).

// The generated table (`PARTITIONS`, `SERVICES`, `BOTOCORE_VERSION`): data only, laid out
// by its generator, so it is included rather than a module of its own.
include!("models.rs");

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
    /// `POST /` with a form body `Action=...&Version=...`; XML answers.
    Query,
    /// EC2's variant of the query protocol: the same form body, its own list encoding.
    Ec2,
    /// Plain HTTP requests on resource paths, JSON bodies (Lambda, API Gateway, EKS...).
    RestJson,
    /// Plain HTTP requests on resource paths, XML bodies (S3, Route 53, CloudFront...).
    RestXml,
}

impl Protocol {
    /// The `aws-call` function that calls services of this protocol.
    pub fn function(&self) -> &'static str {
        match self {
            Protocol::Json { .. } => "json",
            Protocol::Query | Protocol::Ec2 => "query",
            Protocol::RestJson | Protocol::RestXml => "signed",
        }
    }
}

/// Which of a service's endpoints to use (`aws.fips` / `aws.dual_stack` in the config).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Variant {
    /// `{service}.{region}.amazonaws.com`.
    #[default]
    Plain,
    /// The FIPS 140 endpoint.
    Fips,
    /// The IPv4 + IPv6 endpoint.
    DualStack,
    /// Both.
    FipsDualStack,
}

impl Variant {
    /// The variant for the config's two switches.
    pub fn new(fips: bool, dual_stack: bool) -> Variant {
        match (fips, dual_stack) {
            (false, false) => Variant::Plain,
            (true, false) => Variant::Fips,
            (false, true) => Variant::DualStack,
            (true, true) => Variant::FipsDualStack,
        }
    }

    fn describe(self) -> &'static str {
        match self {
            Variant::Plain => "endpoint",
            Variant::Fips => "FIPS endpoint",
            Variant::DualStack => "dual-stack endpoint",
            Variant::FipsDualStack => "FIPS dual-stack endpoint",
        }
    }
}

/// One of AWS's partitions (`aws`, `aws-cn`, `aws-us-gov`...): its regions and the host
/// names of its services, `{service}` and `{region}` to be filled in.
#[derive(Debug)]
pub struct Partition {
    /// `aws`, `aws-cn`, `aws-us-gov`...
    pub id: &'static str,
    /// Its regions, sorted.
    pub regions: &'static [&'static str],
    /// The usual host name.
    pub hostname: &'static str,
    /// The FIPS host name, where the partition has one.
    pub fips: Option<&'static str>,
    /// The dual-stack host name, where the partition has one.
    pub dual_stack: Option<&'static str>,
    /// The FIPS dual-stack host name, where the partition has one.
    pub fips_dual_stack: Option<&'static str>,
}

impl Partition {
    /// The partition `region` belongs to, if it is a known region.
    pub fn of(region: &str) -> Option<&'static Partition> {
        PARTITIONS
            .iter()
            .find(|p| p.regions.binary_search(&region).is_ok())
    }

    fn template(&self, variant: Variant) -> Option<&'static str> {
        match variant {
            Variant::Plain => Some(self.hostname),
            Variant::Fips => self.fips,
            Variant::DualStack => self.dual_stack,
            Variant::FipsDualStack => self.fips_dual_stack,
        }
    }
}

/// A service's own endpoint in one partition, where it is not the partition's usual one: a
/// global service's single endpoint, or a service's own host name pattern (S3's dual-stack).
#[derive(Debug)]
pub struct ServiceEndpoint {
    /// The partition it serves.
    pub partition: &'static str,
    /// Which endpoint it is.
    pub variant: Variant,
    /// The host name; `{region}` is filled in.
    pub hostname: &'static str,
    /// For a global endpoint, the region requests are signed for (whatever region the call
    /// named); `None`: the call's region.
    pub signing_region: Option<&'static str>,
}

/// A service `aws-call` can reach: its names, endpoints, protocol and operations.
#[derive(Debug)]
pub struct Service {
    /// The name monitors use (`sqs`, `cloudwatch`, ...), as in grants: botocore's.
    pub name: &'static str,
    /// The SigV4 signing name.
    pub signing_name: &'static str,
    /// The first label of its host names.
    pub endpoint_prefix: &'static str,
    /// The API version of the model (sent as `Version` by the query protocols).
    pub api_version: &'static str,
    /// How requests are encoded, and so which `aws-call` function calls it.
    pub protocol: Protocol,
    /// Its own endpoints, where they are not the partition's usual ones.
    pub endpoints: &'static [ServiceEndpoint],
    /// One operation per line: its name, and for REST services ` METHOD /uri{?query}`.
    pub operations: &'static str,
    /// Operations whose answers hold credentials or members the model marks sensitive, by
    /// name, with the member path (`Credentials.SecretAccessKey`).
    pub answers: &'static [(&'static str, Holds, &'static str)],
    /// The operations' input shapes, as text (see [`super::shapes`]).
    pub inputs: &'static str,
}

/// What an operation's answer holds, as the generator read it from the output shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Holds {
    /// An AWS secret access key or session token: never grantable.
    AwsKey,
    /// Another credential handed out (a private key, password, token, client secret, API key
    /// value, plaintext data key): never grantable.
    Credential,
    /// A member the model marks sensitive: granted by name only, never by `service:*` or a
    /// method entry.
    Sensitive,
}

/// Where one request goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// `https://host`.
    pub url: String,
    /// The region the request is signed for.
    pub signing_region: String,
}

/// A REST operation as the model maps it: `GET /{Bucket}?list-type=2` is `ListObjectsV2`.
struct RestRoute<'a> {
    name: &'a str,
    method: &'a str,
    segments: Vec<&'a str>,
    /// Query keys (and values, when the model fixes one) the route requires.
    query: Vec<(&'a str, Option<&'a str>)>,
    /// Headers (lower-case) the route requires.
    headers: Vec<&'a str>,
}

impl<'a> RestRoute<'a> {
    fn parse(line: &'a str) -> Option<RestRoute<'a>> {
        let mut words = line.split(' ');
        let (name, method, uri) = (words.next()?, words.next()?, words.next()?);
        let (path, query) = uri.split_once('?').unwrap_or((uri, ""));
        Some(RestRoute {
            name,
            method,
            segments: path.split('/').filter(|s| !s.is_empty()).collect(),
            query: query
                .split('&')
                .filter(|q| !q.is_empty())
                .map(|q| match q.split_once('=') {
                    Some((k, v)) => (k, Some(v)),
                    None => (q, None),
                })
                .collect(),
            headers: words.collect(),
        })
    }

    /// How specific a match of a request is (literal segments, then required query keys and
    /// headers), or `None` when it does not match.
    fn matches(
        &self,
        segments: &[&str],
        query: &[(&str, &str)],
        headers: &[&str],
    ) -> Option<(usize, usize)> {
        let mut literals = 0;
        let mut i = 0;
        for (n, template) in self.segments.iter().enumerate() {
            if template.starts_with('{') && template.ends_with("+}") {
                // A greedy label takes the rest of the path (at least one segment).
                let rest = segments.len().checked_sub(i)?;
                if rest == 0 || n != self.segments.len() - 1 {
                    return None;
                }
                i = segments.len();
                continue;
            }
            let segment = segments.get(i)?;
            if template.starts_with('{') && template.ends_with('}') {
                if segment.is_empty() {
                    return None;
                }
            } else if template != segment {
                return None;
            } else {
                literals += 1;
            }
            i += 1;
        }
        if i != segments.len() {
            return None;
        }
        for (key, value) in &self.query {
            let found = query.iter().find(|(k, _)| k == key)?;
            if value.is_some_and(|v| v != found.1) {
                return None;
            }
        }
        if !self.headers.iter().all(|h| headers.contains(h)) {
            return None;
        }
        Some((literals, self.query.len() + self.headers.len()))
    }
}

impl Service {
    /// The service monitors call `name` (as in grants), if the table has it.
    pub fn find(name: &str) -> Option<&'static Service> {
        SERVICES
            .binary_search_by(|s| s.name.cmp(name))
            .ok()
            .map(|i| &SERVICES[i])
    }

    /// Every service of the table, by name.
    pub fn all() -> &'static [Service] {
        SERVICES
    }

    /// The names closest to `name` (a typo's likely meaning), for error messages.
    pub fn closest(name: &str) -> Vec<&'static str> {
        closest(name, SERVICES.iter().map(|s| s.name))
    }

    /// An error text for an unknown service `name`: what it may have meant.
    pub fn unknown(name: &str) -> String {
        let shown = crate::audit::shorten(name);
        match Service::closest(name).as_slice() {
            [] => format!(
                "unknown AWS service '{shown}' ({} services are known: botocore's names, such as \
                 sqs, cloudwatch, s3)",
                SERVICES.len()
            ),
            near => format!(
                "unknown AWS service '{shown}'; did you mean {}?",
                near.join(", ")
            ),
        }
    }

    /// The operations of the service, by name.
    pub fn operation_names(&self) -> impl Iterator<Item = &'static str> {
        self.operations
            .lines()
            .map(|line| line.split(' ').next().unwrap_or(line))
    }

    /// The model's own (`'static`) name of operation `name`, if the model has it.
    pub fn operation(&self, name: &str) -> Option<&'static str> {
        self.operation_names().find(|op| *op == name)
    }

    /// An error text for an operation the model does not have.
    pub fn unknown_operation(&self, name: &str) -> String {
        let shown = crate::audit::shorten(name);
        match closest(name, self.operation_names()).as_slice() {
            [] => format!("{} has no operation '{shown}'", self.name),
            near => format!(
                "{} has no operation '{shown}'; did you mean {}?",
                self.name,
                near.join(", ")
            ),
        }
    }

    /// What the answer of `operation` holds, if credentials or sensitive members, and where.
    pub fn answer(&self, operation: &str) -> Option<(Holds, &'static str)> {
        self.answers
            .binary_search_by(|(name, _, _)| (*name).cmp(operation))
            .ok()
            .map(|i| (self.answers[i].1, self.answers[i].2))
    }

    /// The route of a REST operation, as the model maps it.
    fn route(&self, operation: &str) -> Option<RestRoute<'static>> {
        self.operations
            .lines()
            .filter_map(RestRoute::parse)
            .find(|route| route.name == operation)
    }

    /// The HTTP method of a REST operation's route (a method entry `s3:GET` stands for the
    /// operations whose route has that method).
    pub fn method_of(&self, operation: &str) -> Option<&'static str> {
        self.route(operation).map(|route| route.method)
    }

    /// The query keys a REST operation's route fixes (`?list-type=2`, `?acl`).
    pub fn route_query_keys(&self, operation: &str) -> Vec<&'static str> {
        self.route(operation)
            .map(|route| route.query.iter().map(|(k, _)| *k).collect())
            .unwrap_or_default()
    }

    /// Whether requests are plain HTTP on resource paths (`aws-call.signed`).
    pub fn is_rest(&self) -> bool {
        matches!(self.protocol, Protocol::RestJson | Protocol::RestXml)
    }

    /// The REST operation a request is, as the model maps its method, path, query keys and
    /// headers (lower-case names) to one: the most specific match; `None` where it maps none,
    /// or where two operations match equally (`?torrent&tagging`): such a request is refused,
    /// so it can never pass for an operation it is not.
    pub fn rest_operation(
        &self,
        method: &str,
        path: &str,
        query: &[(&str, &str)],
        headers: &[&str],
    ) -> Option<&'static str> {
        let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
        let mut best: Option<((usize, usize), Option<&'static str>)> = None;
        for route in self.operations.lines().filter_map(RestRoute::parse) {
            if route.method != method {
                continue;
            }
            let Some(specificity) = route.matches(&segments, query, headers) else {
                continue;
            };
            best = match best {
                Some((b, _)) if specificity < b => best,
                Some((b, _)) if specificity == b => Some((b, None)),
                _ => Some((specificity, Some(route.name))),
            };
        }
        best.and_then(|(_, name)| name)
    }

    /// Where a request to `region` goes and the region it is signed for: a global service's
    /// one endpoint in the region's partition, else the service's or the partition's host
    /// name pattern for `variant`.
    pub fn endpoint(&self, region: &str, variant: Variant) -> Result<Endpoint, String> {
        let partition = Partition::of(region)
            .ok_or_else(|| format!("invalid region '{}'", crate::audit::shorten(region)))?;
        let own = |v: Variant| {
            self.endpoints
                .iter()
                .find(|e| e.partition == partition.id && e.variant == v)
        };
        let global = own(Variant::Plain).is_some_and(|e| e.signing_region.is_some());
        let (template, signing_region) = match own(variant) {
            Some(e) => (Some(e.hostname), e.signing_region),
            None if global => (None, None),
            None => (partition.template(variant), None),
        };
        let template = template.ok_or_else(|| {
            format!(
                "{} has no {} in partition {}",
                self.name,
                variant.describe(),
                partition.id
            )
        })?;
        let host = template
            .replace("{service}", self.endpoint_prefix)
            .replace("{region}", region);
        Ok(Endpoint {
            url: format!("https://{host}"),
            signing_region: signing_region.unwrap_or(region).to_owned(),
        })
    }
}

/// The longest name compared for "did you mean": AWS's names are shorter, and an edit
/// distance costs the product of the lengths (a guest chooses the name).
const MAX_COMPARED_NAME: usize = 128;

/// At most three of `names` within a small edit distance of `name`, closest first.
fn closest(name: &str, names: impl Iterator<Item = &'static str>) -> Vec<&'static str> {
    if name.len() > MAX_COMPARED_NAME {
        return Vec::new();
    }
    let wanted = name.to_ascii_lowercase();
    let mut near: Vec<(usize, &'static str)> = names
        .filter_map(|candidate| {
            let distance = strsim::levenshtein(&wanted, &candidate.to_ascii_lowercase());
            let contains = candidate.len() > 2 && wanted.contains(&candidate.to_ascii_lowercase());
            (distance <= 2.max(wanted.len() / 4) || contains).then_some((distance, candidate))
        })
        .collect();
    near.sort();
    near.into_iter().take(3).map(|(_, n)| n).collect()
}

/// Whether `region` is a region of one of AWS's partitions. A region is part of the
/// endpoint's host name and of the client cache's key, so a guest may name only one of these:
/// no endpoint steering, and a bounded number of clients per credential and service. (A
/// region AWS opens later comes with the next refresh of the table.)
pub fn valid_region(region: &str) -> bool {
    Partition::of(region).is_some()
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
            "cn-north-1",
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
            "aws-global",
        ] {
            assert!(!valid_region(bad), "{bad}");
        }
    }

    #[test]
    fn the_table_is_sorted_and_covers_aws() {
        assert!(SERVICES.len() >= 300, "{} services", SERVICES.len());
        assert!(SERVICES.windows(2).all(|w| w[0].name < w[1].name));
        assert!(PARTITIONS.iter().all(|p| p.regions.is_sorted()));
        for partition in ["aws", "aws-cn", "aws-us-gov"] {
            assert!(PARTITIONS.iter().any(|p| p.id == partition), "{partition}");
        }
        // Each protocol family is there.
        let protocol = |name: &str| Service::find(name).unwrap().protocol;
        assert_eq!(
            protocol("sqs"),
            Protocol::Json {
                version: "1.0",
                target_prefix: "AmazonSQS"
            }
        );
        assert_eq!(protocol("cloudwatch"), Protocol::Query);
        assert_eq!(protocol("ec2"), Protocol::Ec2);
        assert_eq!(protocol("lambda"), Protocol::RestJson);
        assert_eq!(protocol("route53"), Protocol::RestXml);
        assert_eq!(
            Service::find("cloudwatch").unwrap().signing_name,
            "monitoring"
        );
        // The names monitors used before the table was generated still work.
        assert_eq!(Service::find("states").unwrap().endpoint_prefix, "states");
        assert_eq!(
            Service::find("elasticloadbalancing").unwrap().api_version,
            "2015-12-01"
        );
        assert!(Service::find("evil").is_none());
        assert!(valid_operation("GetQueueAttributes"));
        assert!(!valid_operation("Get/../x"));
    }

    #[test]
    fn unknown_names_get_the_closest_ones() {
        assert!(
            Service::unknown("sqss").contains("sqs"),
            "{}",
            Service::unknown("sqss")
        );
        assert!(Service::unknown("cloudwach").contains("cloudwatch"));
        let sqs = Service::find("sqs").unwrap();
        assert_eq!(sqs.operation("ListQueues"), Some("ListQueues"));
        assert_eq!(sqs.operation("ListQueus"), None);
        assert!(sqs.unknown_operation("ListQueus").contains("ListQueues"));
        // A huge name (a guest's) is not compared at all.
        assert!(Service::closest(&"s".repeat(1 << 20)).is_empty());
        assert!(Service::unknown(&"s".repeat(1 << 20)).len() < 400);
    }

    #[test]
    fn endpoints_per_partition() {
        let at = |service: &str, region: &str, variant: Variant| {
            let e = Service::find(service)
                .unwrap()
                .endpoint(region, variant)
                .unwrap();
            (e.url, e.signing_region)
        };
        let plain = Variant::Plain;
        let pair = |url: &str, region: &str| (url.to_owned(), region.to_owned());
        assert_eq!(
            at("sqs", "eu-west-1", plain),
            pair("https://sqs.eu-west-1.amazonaws.com", "eu-west-1")
        );
        assert_eq!(
            at("sqs", "cn-north-1", plain),
            pair("https://sqs.cn-north-1.amazonaws.com.cn", "cn-north-1")
        );
        // Global services: one endpoint per partition, signed for its home region.
        assert_eq!(
            at("iam", "eu-west-1", plain),
            pair("https://iam.amazonaws.com", "us-east-1")
        );
        assert_eq!(
            at("iam", "cn-northwest-1", plain),
            pair("https://iam.cn-north-1.amazonaws.com.cn", "cn-north-1")
        );
        assert_eq!(
            at("iam", "us-gov-east-1", plain),
            pair("https://iam.us-gov.amazonaws.com", "us-gov-west-1")
        );
        assert_eq!(
            at("route53", "ap-south-1", plain),
            pair("https://route53.amazonaws.com", "us-east-1")
        );
        assert_eq!(
            at("cloudfront", "eu-west-1", plain).0,
            "https://cloudfront.amazonaws.com"
        );
        assert_eq!(
            at("organizations", "eu-west-1", plain).0,
            "https://organizations.us-east-1.amazonaws.com"
        );
        // Variants.
        assert_eq!(
            at("sqs", "us-east-1", Variant::Fips).0,
            "https://sqs-fips.us-east-1.amazonaws.com"
        );
        assert_eq!(
            at("sqs", "us-east-1", Variant::DualStack).0,
            "https://sqs.us-east-1.api.aws"
        );
        assert_eq!(
            at("s3", "eu-west-1", Variant::DualStack).0,
            "https://s3.dualstack.eu-west-1.amazonaws.com"
        );
        assert_eq!(
            at("iam", "us-east-1", Variant::Fips).0,
            "https://iam-fips.amazonaws.com"
        );
        let none = Service::find("cloudfront")
            .unwrap()
            .endpoint("us-east-1", Variant::Fips)
            .unwrap_err();
        assert!(none.contains("no FIPS endpoint in partition aws"), "{none}");
    }

    /// The table's endpoints are the ones aws-sdk-rust's own resolvers give (rules generated
    /// from the same AWS models), in three partitions.
    #[test]
    fn endpoints_agree_with_aws_sdk_rust() {
        use aws_sdk_sqs::config::endpoint::ResolveEndpoint as _;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let cases = [
            ("us-east-1", false),
            ("eu-west-3", false),
            ("cn-north-1", false),
            ("cn-northwest-1", false),
            ("us-gov-west-1", false),
            ("us-gov-east-1", false),
            ("us-east-2", true),
        ];
        for (region, fips) in cases {
            let variant = Variant::new(fips, false);
            let params = aws_sdk_sqs::config::endpoint::Params::builder()
                .region(region)
                .use_fips(fips)
                .build()
                .unwrap();
            let resolver = aws_sdk_sqs::config::endpoint::DefaultResolver::new();
            let sdk = runtime
                .block_on(resolver.resolve_endpoint(&params))
                .unwrap();
            let ours = Service::find("sqs")
                .unwrap()
                .endpoint(region, variant)
                .unwrap();
            assert_eq!(ours.url, sdk.url(), "sqs in {region}");

            let params = aws_sdk_sts::config::endpoint::Params::builder()
                .region(region)
                .use_fips(fips)
                .use_global_endpoint(false)
                .build()
                .unwrap();
            let resolver = aws_sdk_sts::config::endpoint::DefaultResolver::new();
            let sdk = {
                use aws_sdk_sts::config::endpoint::ResolveEndpoint as _;
                runtime
                    .block_on(resolver.resolve_endpoint(&params))
                    .unwrap()
            };
            let ours = Service::find("sts")
                .unwrap()
                .endpoint(region, variant)
                .unwrap();
            assert_eq!(ours.url, sdk.url(), "sts in {region}");
            assert_eq!(ours.signing_region, region);
        }
    }

    #[test]
    fn rest_requests_map_to_operations() {
        let op = |service: &str, method: &str, path: &str, query: &[(&str, &str)]| {
            Service::find(service)
                .unwrap()
                .rest_operation(method, path, query, &[])
        };
        let s3 = Service::find("s3").unwrap();
        assert_eq!(
            s3.rest_operation("PUT", "/b/k", &[], &["x-amz-copy-source"]),
            Some("CopyObject")
        );
        assert_eq!(
            s3.rest_operation(
                "PUT",
                "/b/k",
                &[("partNumber", "1"), ("uploadId", "u")],
                &[]
            ),
            Some("UploadPart")
        );
        assert_eq!(
            op("s3", "GET", "/b", &[("analytics", ""), ("id", "x")]),
            Some("GetBucketAnalyticsConfiguration")
        );
        assert_eq!(
            op("s3", "GET", "/b", &[("analytics", "")]),
            Some("ListBucketAnalyticsConfigurations")
        );
        assert_eq!(
            op("s3", "GET", "/b", &[("lifecycle", "")]),
            Some("GetBucketLifecycleConfiguration")
        );
        assert!(s3.operation("GetBucketLifecycle").is_some());
        assert_eq!(op("s3", "GET", "/", &[]), Some("ListBuckets"));
        assert_eq!(op("s3", "GET", "/bucket", &[]), Some("ListObjects"));
        assert_eq!(
            op("s3", "GET", "/bucket", &[("list-type", "2")]),
            Some("ListObjectsV2")
        );
        assert_eq!(op("s3", "GET", "/bucket/a/b.txt", &[]), Some("GetObject"));
        assert_eq!(op("s3", "PUT", "/bucket/key", &[]), Some("PutObject"));
        assert_eq!(
            op("s3", "GET", "/bucket", &[("acl", "")]),
            Some("GetBucketAcl")
        );
        assert_eq!(
            op("lambda", "GET", "/2015-03-31/functions/", &[]),
            Some("ListFunctions")
        );
        assert_eq!(
            op("route53", "GET", "/2013-04-01/hostedzone", &[]),
            Some("ListHostedZones")
        );
        assert_eq!(op("route53", "GET", "/nowhere/at/all", &[]), None);
        // Two subresources at once: neither operation is assumed.
        assert_eq!(
            op("s3", "GET", "/b/k", &[("torrent", ""), ("tagging", "")]),
            None
        );
    }
}

//! The `aws-call` interface: checks a monitor's grants (deny by default, see
//! [`crate::grants`]), builds the request for the service's protocol, signs it with the
//! granted credential and maps the answer. Every call, allowed or not, is one audit event on
//! target `sentinela::audit`.

use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Method};

use crate::audit::{Actor, AuditEvent};
use crate::bindings::sentinela::plugin::aws_call::{self, Request, Response};
use crate::bindings::sentinela::plugin::types::{AwsError, Error};
use crate::config::{AwsOperationGrant, CredentialName};
use crate::grants::{self, RequestResources};
use crate::guest_log::GuestLog;
use crate::sandbox::InstanceState;

use super::AwsPlugin;
use super::client::{AwsClient, Outgoing, SendError};
use super::resources;
use super::services::{Protocol, Service, valid_operation};
use crate::audit::shorten;

/// Caps on the shape of one call's arguments, checked before anything is encoded, signed or
/// parsed (the request's bytes are capped by `CallLimits::max_request_bytes` too).
pub const MAX_QUERY_PARAMS: usize = 1000;
pub const MAX_HEADERS: usize = 64;
pub const MAX_HEADER_BYTES: usize = 16 << 10;
pub const MAX_PATH_BYTES: usize = 4096;

/// The bytes of a list of pairs, summed without copying.
fn pair_bytes(pairs: &[(String, String)]) -> usize {
    pairs.iter().map(|(k, v)| k.len() + v.len() + 2).sum()
}

/// A monitor's view of the `aws` host plugin: its grants and the shared clients.
pub struct AwsInstance {
    pub monitor: Arc<str>,
    pub grants: Arc<AwsGrants>,
    pub plugin: Arc<AwsPlugin>,
    /// The call's log budget: refusal lines are charged to it, refused calls counted in it.
    pub log: GuestLog,
}

/// What one monitor may do through `aws-call`.
#[derive(Debug, Default)]
pub struct AwsGrants {
    pub credentials: Vec<CredentialName>,
    /// The `grants.aws` entries; empty: no operation (deny by default).
    pub operations: Vec<AwsOperationGrant>,
    /// Names from the `queues:` section.
    pub queues: Vec<String>,
}

impl From<&crate::config::Grants> for AwsGrants {
    fn from(grants: &crate::config::Grants) -> AwsGrants {
        AwsGrants {
            credentials: grants.credentials.clone(),
            operations: grants.aws.clone(),
            queues: grants.queues.clone(),
        }
    }
}

impl AwsInstance {
    pub(super) fn audit(&self, credential: &str, service: &str, operation: &str) -> AuditEvent<'_> {
        AuditEvent::start(
            Actor::Monitor(&self.monitor),
            credential,
            service,
            operation,
        )
        .counting_refusals_in(&self.log)
    }

    /// Takes one request from the call's `limits.aws_requests` allowance.
    pub(super) fn take_request(&self) -> Result<(), Error> {
        self.log.take_aws_request().map_err(|_| {
            Error::Limit(format!(
                "monitor '{}' reached its limits.aws_requests cap for this call",
                self.monitor
            ))
        })
    }

    /// Checks the credential, service and operation names and returns the client for
    /// (credential, service, region). Whether the operation is granted is decided by
    /// [`AwsInstance::check_grant`], once the request's resources are known.
    fn authorize(
        &self,
        credential: &str,
        service: &str,
        region: Option<&str>,
        operation: &str,
        protocol_matches: fn(&Protocol) -> bool,
    ) -> Result<Arc<AwsClient>, Error> {
        let name = CredentialName::parse(credential).map_err(|_| {
            Error::Invalid(format!("invalid credential name '{}'", shorten(credential)))
        })?;
        if name.as_str() == CredentialName::APPLICATION {
            if self.log.allow_refusal_line() {
                tracing::warn!(monitor = %self.monitor, "refused: a monitor asked for the APPLICATION credential");
            }
            return Err(Error::Denied(
                "the APPLICATION credential belongs to the host and is never available to monitors"
                    .into(),
            ));
        }
        if !self.grants.credentials.contains(&name) {
            if self.log.allow_refusal_line() {
                tracing::warn!(monitor = %self.monitor, missing_grant = %name, "refused: credential not granted");
            }
            return Err(Error::Denied(format!(
                "credential {name} is not granted to monitor '{}'",
                self.monitor
            )));
        }
        let service = Service::find(service).ok_or_else(|| {
            Error::Invalid(format!(
                "unknown service '{}'; known: {}",
                shorten(service),
                Service::names(|_| true).join(", ")
            ))
        })?;
        if !protocol_matches(&service.protocol) {
            let call = match service.protocol {
                Protocol::Json { .. } => "json",
                Protocol::Query { .. } => "query",
                Protocol::Rest => "signed",
            };
            return Err(Error::Invalid(format!(
                "{} is called with aws-call.{call}",
                service.name
            )));
        }
        if !valid_operation(operation) {
            return Err(Error::Invalid(format!(
                "invalid operation name '{}'",
                shorten(operation)
            )));
        }
        let credential = self
            .plugin
            .credentials
            .get(&name)
            .map_err(Error::Unavailable)?;
        let region = credential.region(region).map_err(Error::Invalid)?;
        Ok(self.plugin.client(credential, service, region))
    }

    /// Whether the monitor's `grants.aws` allow `operation` on `resources` (deny by default).
    fn check_grant(
        &self,
        client: &AwsClient,
        operation: &str,
        input: Option<&serde_json::Value>,
        resources: &RequestResources,
    ) -> Result<(), Error> {
        let service = client.service.name;
        grants::authorize(
            &self.monitor,
            &self.grants.operations,
            service,
            operation,
            input,
            resources,
        )
        .map_err(|refusal| {
            if self.log.allow_refusal_line() {
                tracing::warn!(
                    monitor = %self.monitor,
                    missing_grant = format!("{service}:{operation}").as_str(),
                    resource = resources.first().map(shorten).unwrap_or_default().as_str(),
                    "refused: {}",
                    crate::guest_text::escape(&refusal.to_string())
                );
            }
            Error::Denied(refusal.to_string())
        })
    }

    pub async fn json(
        &self,
        credential: &str,
        service: &str,
        region: Option<&str>,
        operation: &str,
        input: &str,
    ) -> Result<String, Error> {
        let mut audit = self.audit(credential, service, operation);
        let (result, status) = async {
            let client = self.authorize(credential, service, region, operation, |p| {
                matches!(p, Protocol::Json { .. })
            })?;
            let limit = self.plugin.limits.max_request_bytes;
            if input.len() > limit {
                return Err(Error::Limit(format!(
                    "request body of {} bytes is over the {limit} byte cap",
                    input.len()
                )));
            }
            // What is checked is what is sent: the parsed input, encoded again, so duplicate
            // keys cannot show the grant check one queue and AWS another.
            let parsed: serde_json::Value = serde_json::from_str(input)
                .map_err(|e| Error::Invalid(format!("input is not JSON: {e}")))?;
            let resources = resources::of_json(client.service.name, &client.region, &parsed);
            audit.set_resource(resources.first());
            self.check_grant(&client, operation, Some(&parsed), &resources)?;
            let canonical = parsed.to_string();
            self.take_request()?;
            audit.mark_sent();
            Ok::<_, Error>(json_call(&self.plugin, &client, operation, &canonical).await)
        }
        .await
        .unwrap_or_else(|e| (Err(e), None));
        audit.finish(&result, status);
        result
    }

    pub async fn query(
        &self,
        credential: &str,
        service: &str,
        region: Option<&str>,
        action: &str,
        params: &[(String, String)],
    ) -> Result<String, Error> {
        let mut audit = self.audit(credential, service, action);
        let (result, status) = async {
            let client = self.authorize(credential, service, region, action, |p| {
                matches!(p, Protocol::Query { .. })
            })?;
            let limit = self.plugin.limits.max_request_bytes;
            if params.len() > MAX_QUERY_PARAMS || pair_bytes(params) > limit {
                return Err(Error::Limit(format!(
                    "{} query parameters of {} bytes: at most {MAX_QUERY_PARAMS} parameters and \
                     {limit} bytes",
                    params.len(),
                    pair_bytes(params)
                )));
            }
            if let Some((key, _)) = params.iter().find(|(k, _)| k == "Action" || k == "Version") {
                return Err(Error::Invalid(format!(
                    "parameter '{key}' is set by the host"
                )));
            }
            // Query APIs never repeat a key (lists are `Name.member.N`): a repeated key could
            // show the grant check one resource and AWS another.
            let mut keys: Vec<&str> = params.iter().map(|(k, _)| k.as_str()).collect();
            keys.sort_unstable();
            if let Some(pair) = keys.windows(2).find(|pair| pair[0] == pair[1]) {
                return Err(Error::Invalid(format!(
                    "parameter '{}' is given more than once",
                    shorten(pair[0])
                )));
            }
            let resources = resources::of_query(client.service.name, params);
            audit.set_resource(resources.first());
            self.check_grant(&client, action, None, &resources)?;
            self.take_request()?;
            audit.mark_sent();
            Ok::<_, Error>(query_call(&self.plugin, &client, action, params).await)
        }
        .await
        .unwrap_or_else(|e| (Err(e), None));
        audit.finish(&result, status);
        result
    }

    pub async fn signed(
        &self,
        credential: &str,
        service: &str,
        region: Option<&str>,
        request: Request,
    ) -> Result<Response, Error> {
        let mut audit = self.audit(credential, service, &request.method);
        let (result, status) = async {
            let method = match request.method.to_ascii_uppercase().as_str() {
                m @ ("GET" | "HEAD" | "PUT" | "POST" | "DELETE" | "PATCH") => {
                    Method::from_bytes(m.as_bytes()).map_err(|e| Error::Invalid(e.to_string()))?
                }
                other => {
                    return Err(Error::Invalid(format!(
                        "unsupported method '{}'",
                        shorten(other)
                    )));
                }
            };
            let client = self.authorize(credential, service, region, method.as_str(), |p| {
                matches!(p, Protocol::Rest)
            })?;
            let limit = self.plugin.limits.max_request_bytes;
            let too_big = request.headers.len() > MAX_HEADERS
                || pair_bytes(&request.headers) > MAX_HEADER_BYTES
                || request.query.len() > MAX_QUERY_PARAMS
                || pair_bytes(&request.query) > limit
                || request.path.len() > MAX_PATH_BYTES
                || request.body.len() > limit;
            if too_big {
                return Err(Error::Limit(format!(
                    "request over the caps: at most {MAX_HEADERS} headers of {MAX_HEADER_BYTES} \
                     bytes, {MAX_QUERY_PARAMS} query parameters, a {MAX_PATH_BYTES} byte path and \
                     a {limit} byte body"
                )));
            }
            let mut path_and_query = checked_path(&request.path)?;
            let headers = checked_headers(&request.headers)?;
            let resources = resources::of_rest(
                client.service.name,
                &client.region,
                &path_and_query,
                &headers,
            );
            audit.set_resource(resources.first());
            self.check_grant(&client, method.as_str(), None, &resources)?;
            for (i, (key, value)) in request.query.iter().enumerate() {
                path_and_query.push(if i == 0 { '?' } else { '&' });
                path_and_query.push_str(&encode(key));
                if !value.is_empty() {
                    path_and_query.push('=');
                    path_and_query.push_str(&encode(value));
                }
            }
            let outgoing = Outgoing {
                method,
                path_and_query,
                headers,
                body: Bytes::from(request.body),
            };
            self.take_request()?;
            audit.mark_sent();
            let (result, status) = send(&self.plugin, &client, outgoing).await;
            let response = result.map(|(headers, body)| Response {
                status: status.unwrap_or(0),
                headers: headers
                    .iter()
                    .filter_map(|(k, v)| Some((k.to_string(), v.to_str().ok()?.to_owned())))
                    .collect(),
                body: body.to_vec(),
            });
            Ok::<_, Error>((response, status))
        }
        .await
        .unwrap_or_else(|e| (Err(e), None));
        audit.finish(&result, status);
        result
    }
}

async fn send(
    plugin: &AwsPlugin,
    client: &AwsClient,
    outgoing: Outgoing,
) -> (Result<(HeaderMap, Bytes), Error>, Option<u16>) {
    let limits = &plugin.limits;
    let keys = match plugin.current_keys(&client.credential).await {
        Ok(keys) => keys,
        Err(e) => return (Err(e), None),
    };
    if outgoing.body.len() > limits.max_request_bytes {
        let e = format!(
            "request body of {} bytes is over the {} byte cap",
            outgoing.body.len(),
            limits.max_request_bytes
        );
        return (Err(Error::Limit(e)), None);
    }
    match client
        .send(&keys, outgoing, limits.timeout, limits.max_response_bytes)
        .await
    {
        Ok((status, headers, body)) if (200..300).contains(&status) => {
            (Ok((headers, body)), Some(status))
        }
        Ok((status, headers, body)) => (
            Err(Error::Aws(aws_error(status, &headers, &body))),
            Some(status),
        ),
        Err(SendError::Invalid(e)) => (Err(Error::Invalid(e)), None),
        Err(SendError::Timeout(t)) => (
            Err(Error::Unavailable(format!("no answer within {t:?}"))),
            None,
        ),
        Err(SendError::ResponseTooLarge(max)) => (
            Err(Error::Limit(format!("response over the {max} byte cap"))),
            None,
        ),
        Err(SendError::Unavailable(e)) => (Err(Error::Unavailable(e)), None),
    }
}

/// Sends a query-protocol request on an authorized client; returns the XML body.
pub(super) async fn query_call(
    plugin: &AwsPlugin,
    client: &AwsClient,
    action: &str,
    params: &[(String, String)],
) -> (Result<String, Error>, Option<u16>) {
    let Protocol::Query { api_version } = client.service.protocol else {
        return (
            Err(Error::Invalid(format!(
                "{} is not a query-protocol service",
                client.service.name
            ))),
            None,
        );
    };
    let mut body = format!("Action={}&Version={}", encode(action), encode(api_version));
    for (key, value) in params {
        body.push('&');
        body.push_str(&encode(key));
        body.push('=');
        body.push_str(&encode(value));
    }
    let outgoing = Outgoing {
        method: Method::POST,
        path_and_query: "/".into(),
        headers: vec![(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/x-www-form-urlencoded; charset=utf-8"),
        )],
        body: Bytes::from(body),
    };
    let (result, status) = send(plugin, client, outgoing).await;
    (result.and_then(|(_, body)| utf8(body)), status)
}

/// Sends a JSON-protocol request on an authorized client. `input` is JSON the host encoded
/// (a monitor's input was parsed and encoded again by [`AwsInstance::json`]).
pub(super) async fn json_call(
    plugin: &AwsPlugin,
    client: &AwsClient,
    operation: &str,
    input: &str,
) -> (Result<String, Error>, Option<u16>) {
    let outgoing = async {
        let Protocol::Json {
            version,
            target_prefix,
        } = client.service.protocol
        else {
            return Err(Error::Invalid(format!(
                "{} is not a JSON-protocol service",
                client.service.name
            )));
        };
        Ok(Outgoing {
            method: Method::POST,
            path_and_query: "/".into(),
            headers: vec![
                (
                    http::header::CONTENT_TYPE,
                    header_value(&format!("application/x-amz-json-{version}"))?,
                ),
                (
                    HeaderName::from_static("x-amz-target"),
                    header_value(&format!("{target_prefix}.{operation}"))?,
                ),
            ],
            body: Bytes::copy_from_slice(input.as_bytes()),
        })
    }
    .await;
    match outgoing {
        Ok(outgoing) => {
            let (result, status) = send(plugin, client, outgoing).await;
            (result.and_then(|(_, body)| utf8(body)), status)
        }
        Err(e) => (Err(e), None),
    }
}

/// Headers only the host sets, and hop-by-hop headers (RFC 9110 §7.6.1) that belong to one
/// connection, not to the request: a guest's are dropped.
const HOST_HEADERS: &[&str] = &[
    "host",
    "authorization",
    "x-amz-date",
    "x-amz-security-token",
    "x-amz-content-sha256",
    "content-length",
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authorization",
    "proxy-authenticate",
    "transfer-encoding",
    "te",
    "trailer",
    "upgrade",
    "expect",
];
/// Headers that would send the request elsewhere: refused.
const REFUSED_HEADERS: &[&str] = &[
    "forwarded",
    "x-forwarded-host",
    "x-forwarded-for",
    "x-host",
    "x-original-host",
    "via",
];

fn checked_headers(headers: &[(String, String)]) -> Result<Vec<(HeaderName, HeaderValue)>, Error> {
    let mut checked = Vec::new();
    for (name, value) in headers {
        let lower = name.to_ascii_lowercase();
        if HOST_HEADERS.contains(&lower.as_str()) {
            continue;
        }
        if REFUSED_HEADERS.contains(&lower.as_str()) {
            return Err(Error::Denied(format!(
                "header '{}' may not be set by a monitor",
                shorten(name)
            )));
        }
        let name = HeaderName::from_bytes(lower.as_bytes())
            .map_err(|_| Error::Invalid(format!("invalid header name '{}'", shorten(name))))?;
        // One value per name: a repeated header (a second x-amz-copy-source) could show the
        // grant check one resource and AWS another.
        if checked.iter().any(|(seen, _)| *seen == name) {
            return Err(Error::Invalid(format!(
                "header '{}' is given more than once",
                shorten(name.as_str())
            )));
        }
        checked.push((name, header_value(value)?));
    }
    Ok(checked)
}

/// An absolute path on the service's endpoint. Anything that could name another host
/// (`//host`, a scheme, `@`, backslashes) or smuggle a query or fragment is refused.
fn checked_path(path: &str) -> Result<String, Error> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || "-._~/%!$&'()*+,;=:@".contains(c);
    let refuse = |why: &str| {
        Err(Error::Invalid(format!(
            "invalid path '{}': {why}",
            shorten(path)
        )))
    };
    if !path.starts_with('/') {
        return refuse("it must start with '/'");
    }
    if path.starts_with("//") || path.contains("://") || path.contains('@') || path.contains('\\') {
        return refuse("it may not name a host");
    }
    if !path.chars().all(allowed) {
        return refuse(
            "percent-encode characters outside RFC 3986's path set; queries go in `query`",
        );
    }
    Ok(path.to_owned())
}

fn header_value(value: &str) -> Result<HeaderValue, Error> {
    HeaderValue::from_str(value)
        .map_err(|_| Error::Invalid(format!("invalid header value '{}'", shorten(value))))
}

fn utf8(body: Bytes) -> Result<String, Error> {
    String::from_utf8(body.to_vec()).map_err(|_| Error::Invalid("the response is not UTF-8".into()))
}

/// Percent-encodes everything but RFC 3986's unreserved characters.
pub fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// The text of the first `<name>…</name>` element, if any.
pub(super) fn xml_tag(text: &str, name: &str) -> Option<String> {
    let open = format!("<{name}>");
    let start = text.find(&open)? + open.len();
    let end = text[start..].find(&format!("</{name}>"))? + start;
    Some(text[start..end].to_owned())
}

/// Undoes XML's character escapes in element text.
pub(super) fn decode_xml_text(text: &str) -> String {
    text.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&amp;", "&")
}

/// Reads the error code and message of a JSON (`__type`, `message`) or XML (`<Code>`,
/// `<Message>`) error response.
fn aws_error(status: u16, headers: &HeaderMap, body: &[u8]) -> AwsError {
    let text = String::from_utf8_lossy(body);
    let (mut code, message) = if let Ok(json) = serde_json::from_str::<serde_json::Value>(&text) {
        let field = |names: &[&str]| {
            names
                .iter()
                .find_map(|n| json.get(*n).and_then(|v| v.as_str()))
                .unwrap_or("")
                .to_owned()
        };
        let kind = field(&["__type", "code", "Code"]);
        let code = kind
            .rsplit('#')
            .next()
            .unwrap_or("")
            .split(':')
            .next()
            .unwrap_or("")
            .to_owned();
        (code, field(&["message", "Message"]))
    } else {
        let tag = |name: &str| xml_tag(&text, name);
        (
            tag("Code").unwrap_or_default(),
            tag("Message").unwrap_or_default(),
        )
    };
    if code.is_empty() {
        code = headers
            .get("x-amzn-errortype")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .split(':')
            .next()
            .unwrap_or("")
            .to_owned();
    }
    if code.is_empty() {
        code = format!("Http{status}");
    }
    let throttled = [
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestLimitExceeded",
        "TooManyRequestsException",
        "ProvisionedThroughputExceededException",
        "SlowDown",
        "RequestThrottled",
    ];
    let retryable = status >= 500 || status == 429 || throttled.contains(&code.as_str());
    AwsError {
        code,
        message: message.chars().take(1024).collect(),
        status,
        retryable,
    }
}

impl aws_call::Host for InstanceState {
    async fn json(
        &mut self,
        credential: String,
        service: String,
        region: Option<String>,
        operation: String,
        input: String,
    ) -> Result<String, Error> {
        self.aws()?
            .json(&credential, &service, region.as_deref(), &operation, &input)
            .await
    }

    async fn query(
        &mut self,
        credential: String,
        service: String,
        region: Option<String>,
        action: String,
        params: Vec<(String, String)>,
    ) -> Result<String, Error> {
        self.aws()?
            .query(&credential, &service, region.as_deref(), &action, &params)
            .await
    }

    async fn signed(
        &mut self,
        credential: String,
        service: String,
        region: Option<String>,
        request: Request,
    ) -> Result<Response, Error> {
        self.aws()?
            .signed(&credential, &service, region.as_deref(), request)
            .await
    }
}

impl InstanceState {
    /// Only linked when the `aws` host plugin is enabled, so this is always there; a clear
    /// error beats a panic all the same.
    pub(crate) fn aws(&self) -> Result<&AwsInstance, Error> {
        self.aws
            .as_ref()
            .ok_or_else(|| Error::Unavailable("the aws host plugin is not enabled".into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_cannot_leave_the_endpoint() {
        assert!(checked_path("/bucket/key%20with%20space").is_ok());
        for bad in [
            "bucket",
            "//evil.example/x",
            "/x/http://evil",
            "/@evil.example",
            "/a\\b",
            "/a?b=c",
            "/a#b",
            "/a b",
        ] {
            assert!(checked_path(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn headers_are_filtered() {
        let headers = [
            ("Host", "evil.example"),
            ("Authorization", "x"),
            ("X-Amz-Meta-A", "1"),
        ]
        .map(|(k, v)| (k.to_owned(), v.to_owned()));
        let checked = checked_headers(&headers).unwrap();
        assert_eq!(checked.len(), 1);
        assert!(checked_headers(&[("X-Forwarded-Host".into(), "evil".into())]).is_err());
        assert!(checked_headers(&[("X-A".into(), "a\r\nHost: evil".into())]).is_err());
        let hop_by_hop = ["Transfer-Encoding", "Connection", "Expect", "TE", "Upgrade"]
            .map(|k| (k.to_owned(), "chunked".to_owned()));
        assert!(checked_headers(&hop_by_hop).unwrap().is_empty());
        let twice = [("x-amz-copy-source", "/a/b"), ("X-Amz-Copy-Source", "/c/d")]
            .map(|(k, v)| (k.to_owned(), v.to_owned()));
        assert!(checked_headers(&twice).is_err());
    }

    #[test]
    fn errors_are_parsed() {
        let e = aws_error(
            400,
            &HeaderMap::new(),
            br#"{"__type":"com.amazonaws.sqs#QueueDoesNotExist","message":"nope"}"#,
        );
        assert_eq!(
            (e.code.as_str(), e.message.as_str(), e.retryable),
            ("QueueDoesNotExist", "nope", false)
        );
        let e = aws_error(403, &HeaderMap::new(), b"<ErrorResponse><Error><Code>AccessDenied</Code><Message>no</Message></Error></ErrorResponse>");
        assert_eq!((e.code.as_str(), e.status), ("AccessDenied", 403));
        assert!(aws_error(503, &HeaderMap::new(), b"").retryable);
        assert_eq!(encode("a b/c"), "a%20b%2Fc");
    }
}

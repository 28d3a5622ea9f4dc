//! The `aws-call` interface: checks a monitor's grants, builds the request for the service's
//! protocol, signs it with the granted credential and maps the answer. Every call, allowed or
//! not, is one audit event on target `sentinela::audit`.

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Method};

use crate::bindings::sentinela::plugin::aws_call::{self, Request, Response};
use crate::bindings::sentinela::plugin::types::{AwsError, Error};
use crate::config::{AwsOperationGrant, CredentialName};
use crate::sandbox::InstanceState;

use super::AwsPlugin;
use super::client::{AwsClient, Outgoing, SendError};
use super::credentials::shorten;
use super::services::{Protocol, Service, valid_operation};

pub const AUDIT_TARGET: &str = "sentinela::audit";

/// A monitor's view of the `aws` host plugin: its grants and the shared clients.
pub struct AwsInstance {
    pub monitor: Arc<str>,
    pub grants: Arc<AwsGrants>,
    pub plugin: Arc<AwsPlugin>,
}

/// What one monitor may do through `aws-call`.
#[derive(Debug, Default)]
pub struct AwsGrants {
    pub credentials: Vec<CredentialName>,
    /// Empty: every operation of every service.
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

/// One call as the audit log sees it.
pub(super) struct Audit<'a> {
    monitor: &'a str,
    credential: String,
    service: String,
    operation: String,
    started: Instant,
}

impl Audit<'_> {
    pub(super) fn finish<T>(&self, result: &Result<T, Error>, status: Option<u16>) {
        let outcome = match result {
            Ok(_) => "ok",
            Err(Error::Denied(_)) => "denied",
            Err(Error::NotFound(_)) => "not-found",
            Err(Error::Invalid(_)) => "invalid",
            Err(Error::Aws(_)) => "aws-error",
            Err(Error::Limit(_)) => "limit",
            Err(Error::Unavailable(_)) => "unavailable",
        };
        tracing::info!(
            target: AUDIT_TARGET,
            monitor = self.monitor,
            credential = %self.credential,
            service = %self.service,
            operation = %self.operation,
            status = status.unwrap_or(0),
            outcome,
            latency_ms = self.started.elapsed().as_secs_f64() * 1e3,
            "aws-call"
        );
    }
}

impl AwsInstance {
    pub(super) fn audit(&self, credential: &str, service: &str, operation: &str) -> Audit<'_> {
        Audit {
            monitor: &self.monitor,
            credential: shorten(credential),
            service: shorten(service),
            operation: shorten(operation),
            started: Instant::now(),
        }
    }

    /// Checks the grants and returns the client for (credential, service, region).
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
            tracing::warn!(monitor = %self.monitor, "refused: a monitor asked for the APPLICATION credential");
            return Err(Error::Denied(
                "the APPLICATION credential belongs to the host and is never available to monitors"
                    .into(),
            ));
        }
        if !self.grants.credentials.contains(&name) {
            tracing::warn!(monitor = %self.monitor, missing_grant = %name, "refused: credential not granted");
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
        let allowed = self.grants.operations.is_empty()
            || self.grants.operations.iter().any(|g| {
                g.service == service.name && g.operation.as_deref().is_none_or(|op| op == operation)
            });
        if !allowed {
            tracing::warn!(monitor = %self.monitor, missing_grant = %format!("{}:{operation}", service.name), "refused: operation not in the aws allow-list");
            return Err(Error::Denied(format!(
                "{}:{operation} is not in monitor '{}''s aws allow-list",
                service.name, self.monitor
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

    pub async fn json(
        &self,
        credential: &str,
        service: &str,
        region: Option<&str>,
        operation: &str,
        input: &str,
    ) -> Result<String, Error> {
        let audit = self.audit(credential, service, operation);
        let (result, status) = async {
            let client = self.authorize(credential, service, region, operation, |p| {
                matches!(p, Protocol::Json { .. })
            })?;
            Ok::<_, Error>(json_call(&self.plugin, &client, operation, input).await)
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
        let audit = self.audit(credential, service, action);
        let (result, status) = async {
            let client = self.authorize(credential, service, region, action, |p| {
                matches!(p, Protocol::Query { .. })
            })?;
            if let Some((key, _)) = params.iter().find(|(k, _)| k == "Action" || k == "Version") {
                return Err(Error::Invalid(format!(
                    "parameter '{key}' is set by the host"
                )));
            }
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
        let audit = self.audit(credential, service, &request.method);
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
            let mut path_and_query = checked_path(&request.path)?;
            for (i, (key, value)) in request.query.iter().enumerate() {
                path_and_query.push(if i == 0 { '?' } else { '&' });
                path_and_query.push_str(&encode(key));
                if !value.is_empty() {
                    path_and_query.push('=');
                    path_and_query.push_str(&encode(value));
                }
            }
            let headers = checked_headers(&request.headers)?;
            let outgoing = Outgoing {
                method,
                path_and_query,
                headers,
                body: Bytes::from(request.body),
            };
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

/// Sends a JSON-protocol request on an authorized client.
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
        serde_json::from_str::<serde::de::IgnoredAny>(input)
            .map_err(|e| Error::Invalid(format!("input is not JSON: {e}")))?;
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

/// Headers only the host sets: a guest's are dropped.
const HOST_HEADERS: &[&str] = &[
    "host",
    "authorization",
    "x-amz-date",
    "x-amz-security-token",
    "x-amz-content-sha256",
    "content-length",
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

//! The AWS transport: builds a request for a service's protocol, signs it (SigV4, through
//! `aws-sigv4`), sends it on the process's one HTTP connection pool, retries what is worth
//! retrying and reads AWS's error answers. Every caller — `aws-call`, the `queue` interface,
//! secrets, credential connectors, issue events — goes through [`Transport`]; it knows
//! nothing of monitors or grants, and fails with a typed [`TransportError`].

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{
    PayloadChecksumKind, PercentEncodingMode, SignableBody, SignableRequest, SignatureLocation,
    SigningSettings, UriPathNormalizationMode,
};
use aws_sigv4::sign::v4;
use backon::{ExponentialBuilder, Retryable};
use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request};
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

use super::services::{Endpoint, Protocol, Service, Variant};
use crate::audit::{Actor, AuditEvent};
use crate::config::values::CredentialName;

/// The environment variable that points every AWS client at another endpoint (moto in tests).
pub const ENDPOINT_ENV: &str = "AWS_ENDPOINT_URL";

type HttpClient = Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>;

/// Caps on one request.
#[derive(Debug, Clone)]
pub struct RequestLimits {
    /// Largest request body sent (`limits.aws_request_bytes`); larger ones are refused.
    pub max_request_bytes: usize,
    /// Largest answer read; a longer one fails with [`TransportError::ResponseTooLarge`].
    pub max_response_bytes: usize,
    /// One attempt's time to answer.
    pub timeout: Duration,
    /// Attempts of a request that failed in a retryable way (throttling, 5xx, no answer).
    pub max_attempts: usize,
    /// The longest life of a presigned URL (`aws.presign_max_expiry`).
    pub max_presign_expiry: Duration,
}

/// The request body SES takes for a raw email: 10 MB of message after base64, form-encoded.
pub const SES_RAW_REQUEST_BYTES: usize = 16 << 20;

impl RequestLimits {
    /// The largest request body sent to `service`: `max_request_bytes`, or more where AWS
    /// takes more (SES raw email).
    pub fn request_bytes_for(&self, service: &Service) -> usize {
        match service.name {
            "ses" | "sesv2" => self.max_request_bytes.max(SES_RAW_REQUEST_BYTES),
            _ => self.max_request_bytes,
        }
    }
}

impl Default for RequestLimits {
    fn default() -> Self {
        RequestLimits {
            max_request_bytes: 1 << 20,
            max_response_bytes: 8 << 20,
            timeout: Duration::from_secs(10),
            max_attempts: 3,
            max_presign_expiry: Duration::from_secs(3600),
        }
    }
}

/// Why a request failed. Texts name the service and what went wrong, never a header or key.
#[derive(Debug, Clone, thiserror::Error)]
pub enum TransportError {
    /// The request cannot be built or signed as given.
    #[error("{0}")]
    Invalid(String),
    /// The body is over `max_request_bytes`: refused before signing.
    #[error("request body of {size} bytes is over the {limit} byte cap")]
    RequestTooLarge {
        /// The body's bytes.
        size: usize,
        /// `max_request_bytes`.
        limit: usize,
    },
    /// The answer is over `max_response_bytes`: reading stopped at the cap.
    #[error("response over the {0} byte cap")]
    ResponseTooLarge(usize),
    /// No complete answer within the request timeout.
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    /// No connection, or it broke.
    #[error("{0}")]
    Unavailable(String),
    /// The keys to sign with could not be had.
    #[error("{0}")]
    Credentials(String),
    /// AWS answered with an error.
    #[error("{} (HTTP {}): {}", .0.code, .0.status, .0.message)]
    Service(ServiceError),
}

/// An error answer of an AWS service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceError {
    /// AWS's error code (`ThrottlingException`, `AccessDenied`...).
    pub code: String,
    /// At most 1 KiB of AWS's message.
    pub message: String,
    /// The HTTP status of the answer.
    pub status: u16,
    /// Whether AWS's answer says trying again may succeed (throttling, 5xx).
    pub retryable: bool,
}

impl TransportError {
    /// Whether sending the same request again may succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            TransportError::Service(e) => e.retryable,
            TransportError::Timeout(_) | TransportError::Unavailable(_) => true,
            _ => false,
        }
    }

    /// The HTTP status AWS answered with, if it answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            TransportError::Service(e) => Some(e.status),
            _ => None,
        }
    }

    /// The audit log's word for it.
    pub fn outcome(&self) -> &'static str {
        match self {
            TransportError::Invalid(_) => "invalid",
            TransportError::RequestTooLarge { .. } | TransportError::ResponseTooLarge(_) => "limit",
            TransportError::Timeout(_)
            | TransportError::Unavailable(_)
            | TransportError::Credentials(_) => "unavailable",
            TransportError::Service(_) => "aws-error",
        }
    }
}

/// A request before signing.
#[derive(Debug, Clone)]
pub struct Outgoing {
    /// The HTTP method.
    pub method: Method,
    /// Path and query, already encoded, starting with `/`.
    pub path_and_query: String,
    /// Headers to sign and send; the host adds `host`, the date and the signature.
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// The body, signed as is.
    pub body: Bytes,
}

/// A successful (2xx) answer.
#[derive(Debug)]
pub struct Answer {
    /// The HTTP status, 2xx.
    pub status: u16,
    /// The answer's headers.
    pub headers: HeaderMap,
    /// The answer's body, at most `max_response_bytes`.
    pub body: Bytes,
}

impl Answer {
    /// The body as text (JSON and query protocols answer in UTF-8).
    pub fn text(self) -> Result<String, TransportError> {
        String::from_utf8(self.body.to_vec())
            .map_err(|_| TransportError::Invalid("the response is not UTF-8".into()))
    }
}

/// The status to audit for a finished request: the answer's, or the error answer's.
pub fn status_of<T>(result: &Result<T, TransportError>, ok: impl Fn(&T) -> u16) -> Option<u16> {
    match result {
        Ok(value) => Some(ok(value)),
        Err(e) => e.status(),
    }
}

/// Where a request goes: a service in a region, signed with these keys.
#[derive(Clone, Copy)]
pub struct Destination<'a> {
    /// The service: its endpoint prefix, signing name and protocol.
    pub service: &'static Service,
    /// The region of the endpoint and of the signature.
    pub region: &'a str,
    /// The keys the request is signed with.
    pub keys: &'a Credentials,
}

/// The process's AWS transport: one HTTP connection pool and the endpoint override.
pub struct Transport {
    http: HttpClient,
    /// `AWS_ENDPOINT_URL`: every service at one URL (moto, LocalStack).
    endpoint_override: Option<String>,
    /// Which endpoints to use (`aws.fips`, `aws.dual_stack`).
    pub variant: Variant,
    /// Size caps on requests and answers.
    pub limits: RequestLimits,
}

impl Transport {
    /// HTTPS with the system's roots, or plain HTTP for an `http://` endpoint override.
    pub fn new(endpoint_override: Option<String>) -> anyhow::Result<Transport> {
        if let Some(url) = &endpoint_override
            && !(url.starts_with("http://") || url.starts_with("https://"))
        {
            anyhow::bail!("{ENDPOINT_ENV}={url} is not an http:// or https:// URL");
        }
        Ok(Transport {
            http: http_client()?,
            endpoint_override,
            variant: Variant::Plain,
            limits: RequestLimits::default(),
        })
    }

    /// A transport configured from `AWS_ENDPOINT_URL`.
    pub fn from_env() -> anyhow::Result<Transport> {
        Transport::new(endpoint_from_env())
    }

    /// The endpoint override, if any.
    pub fn endpoint_override(&self) -> Option<&str> {
        self.endpoint_override.as_deref()
    }

    /// Signs and sends `outgoing`, trying again with backoff and jitter while it fails in a
    /// retryable way, at most `limits.max_attempts` times, and not once `limits.timeout` has
    /// passed since the first attempt began. A non-2xx answer is [`TransportError::Service`].
    pub async fn send(
        &self,
        to: Destination<'_>,
        outgoing: Outgoing,
    ) -> Result<Answer, TransportError> {
        let limit = self.limits.request_bytes_for(to.service);
        if outgoing.body.len() > limit {
            return Err(TransportError::RequestTooLarge {
                size: outgoing.body.len(),
                limit,
            });
        }
        let endpoint = self.resolve(to)?;
        let started = Instant::now();
        let budget = self.limits.timeout;
        let retry = ExponentialBuilder::default()
            .with_min_delay(Duration::from_millis(50))
            .with_max_delay(Duration::from_secs(2))
            .with_max_times(self.limits.max_attempts.saturating_sub(1))
            .with_jitter();
        (|| self.attempt(to, &endpoint, outgoing.clone()))
            .retry(retry)
            .sleep(tokio::time::sleep)
            .when(|e: &TransportError| e.is_retryable() && started.elapsed() < budget)
            .await
    }

    /// Where requests to `to` go and the region they are signed for, for `self.variant`.
    fn resolve(&self, to: Destination<'_>) -> Result<Endpoint, TransportError> {
        to.service
            .endpoint(to.region, self.variant)
            .map_err(TransportError::Invalid)
    }

    /// The URL of `path_and_query` on `endpoint`, or on `AWS_ENDPOINT_URL` when it is set.
    fn url(&self, endpoint: &Endpoint, path_and_query: &str) -> String {
        let base = match &self.endpoint_override {
            Some(url) => url.trim_end_matches('/'),
            None => endpoint.url.as_str(),
        };
        format!("{base}{path_and_query}")
    }

    /// An unsigned GET of a public AWS document (an SNS signing certificate) at `uri`, or at
    /// its path on `AWS_ENDPOINT_URL`: at most `max_bytes`, within the request timeout, no
    /// retries.
    pub async fn get_unsigned(
        &self,
        uri: &http::Uri,
        max_bytes: usize,
    ) -> Result<Bytes, TransportError> {
        let target = match &self.endpoint_override {
            Some(url) => format!("{}{}", url.trim_end_matches('/'), uri.path()),
            None => uri.to_string(),
        };
        let request = Request::get(&target)
            .body(Full::new(Bytes::new()))
            .map_err(|e| TransportError::Invalid(format!("cannot build the request: {e}")))?;
        let exchange = async {
            let response = self
                .http
                .request(request)
                .await
                .map_err(|e| TransportError::Unavailable(format!("{target}: {e}")))?;
            let status = response.status().as_u16();
            if status != 200 {
                return Err(TransportError::Unavailable(format!(
                    "{target} answered HTTP {status}"
                )));
            }
            Limited::new(response.into_body(), max_bytes)
                .collect()
                .await
                .map(|body| body.to_bytes())
                .map_err(|_| TransportError::ResponseTooLarge(max_bytes))
        };
        tokio::time::timeout(self.limits.timeout, exchange)
            .await
            .map_err(|_| TransportError::Timeout(self.limits.timeout))?
    }

    /// A presigned URL for `outgoing` (SigV4 in the query string), valid for `expires`:
    /// whoever holds it may make that one request until then, with no key of their own. It
    /// carries the access key id (and a session's token), never the secret key.
    pub fn presign(
        &self,
        to: Destination<'_>,
        outgoing: Outgoing,
        expires: Duration,
    ) -> Result<String, TransportError> {
        let endpoint = self.resolve(to)?;
        let mut request = Request::builder()
            .method(outgoing.method)
            .uri(self.url(&endpoint, &outgoing.path_and_query));
        for (name, value) in outgoing.headers {
            request = request.header(name, value);
        }
        let mut request = request
            .body(Full::new(Bytes::new()))
            .map_err(|e| TransportError::Invalid(format!("cannot build the request: {e}")))?;
        sign(
            to,
            &endpoint.signing_region,
            &mut request,
            Signature::Presigned(expires),
        )?;
        Ok(request.uri().to_string())
    }

    async fn attempt(
        &self,
        to: Destination<'_>,
        resolved: &Endpoint,
        outgoing: Outgoing,
    ) -> Result<Answer, TransportError> {
        let uri = self.url(resolved, &outgoing.path_and_query);
        let mut request = Request::builder().method(outgoing.method).uri(&uri);
        for (name, value) in outgoing.headers {
            request = request.header(name, value);
        }
        let mut request = request
            .body(Full::new(outgoing.body.clone()))
            .map_err(|e| TransportError::Invalid(format!("cannot build the request: {e}")))?;
        sign(
            to,
            &resolved.signing_region,
            &mut request,
            Signature::Header(&outgoing.body),
        )?;

        let max_response = self.limits.max_response_bytes;
        let endpoint = self.url(resolved, "");
        let exchange = async {
            let response = self.http.request(request).await.map_err(|e| {
                TransportError::Unavailable(format!("{} {endpoint}: {e}", to.service.name))
            })?;
            let (parts, body) = response.into_parts();
            let body = Limited::new(body, max_response)
                .collect()
                .await
                .map_err(|e| {
                    if e.is::<http_body_util::LengthLimitError>() {
                        TransportError::ResponseTooLarge(max_response)
                    } else {
                        TransportError::Unavailable(format!("reading the response: {e}"))
                    }
                })?
                .to_bytes();
            Ok::<_, TransportError>((parts.status.as_u16(), parts.headers, body))
        };
        let (status, headers, body) =
            tokio::time::timeout(self.limits.timeout, exchange)
                .await
                .map_err(|_| TransportError::Timeout(self.limits.timeout))??;
        if (200..300).contains(&status) {
            Ok(Answer {
                status,
                headers,
                body,
            })
        } else {
            Err(TransportError::Service(service_error(
                status, &headers, &body,
            )))
        }
    }

    /// A JSON-protocol request (`X-Amz-Target`); `input` is JSON the host encoded.
    pub async fn json(
        &self,
        to: Destination<'_>,
        operation: &str,
        input: &str,
    ) -> Result<Answer, TransportError> {
        self.send(to, json_request(to.service, operation, input)?)
            .await
    }

    /// A query-protocol request (`Action=…&Version=…` form body); answers in XML.
    pub async fn query(
        &self,
        to: Destination<'_>,
        action: &str,
        params: &[(String, String)],
    ) -> Result<Answer, TransportError> {
        self.send(to, query_request(to.service, action, params)?)
            .await
    }

    /// A JSON-protocol request the host makes for itself (secrets, credential connectors,
    /// issue events) with a credential the operator chose, signed with the keys and region
    /// `keys` resolves to. One audit event with `actor = host`, whether the keys, the request
    /// or AWS failed.
    pub async fn host_json(
        &self,
        request: HostRequest<'_>,
        keys: impl Future<Output = Result<(Credentials, String), TransportError>>,
    ) -> Result<String, TransportError> {
        let HostRequest {
            credential,
            service,
            operation,
            input,
            resource,
        } = request;
        let mut audit =
            AuditEvent::start(Actor::Host, credential.as_str(), service.name, operation);
        audit.set_resource(resource);
        let result = async {
            let (keys, region) = keys.await?;
            let to = Destination {
                service,
                region: &region,
                keys: &keys,
            };
            self.json(to, operation, input).await
        }
        .await;
        audit.finish_with(
            result.as_ref().map_or_else(|e| e.outcome(), |_| "ok"),
            status_of(&result, |a| a.status),
        );
        result?.text()
    }
}

/// A JSON-protocol request of the host's own: what [`Transport::host_json`] sends and audits.
pub struct HostRequest<'a> {
    /// The credential it is signed with, as the config names it.
    pub credential: &'a CredentialName,
    /// The service called.
    pub service: &'static Service,
    /// The operation (`X-Amz-Target`'s suffix).
    pub operation: &'a str,
    /// The JSON body, encoded by the host.
    pub input: &'a str,
    /// What it reads or writes, for the audit event.
    pub resource: Option<&'a str>,
}

/// A JSON-protocol request (`X-Amz-Target`); `input` is JSON the host encoded.
pub fn json_request(
    service: &Service,
    operation: &str,
    input: &str,
) -> Result<Outgoing, TransportError> {
    let Protocol::Json {
        version,
        target_prefix,
    } = service.protocol
    else {
        return Err(TransportError::Invalid(format!(
            "{} is not a JSON-protocol service",
            service.name
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

/// A query-protocol request (`Action=…&Version=…` form body).
pub fn query_request(
    service: &Service,
    action: &str,
    params: &[(String, String)],
) -> Result<Outgoing, TransportError> {
    if !matches!(service.protocol, Protocol::Query | Protocol::Ec2) {
        return Err(TransportError::Invalid(format!(
            "{} is not a query-protocol service",
            service.name
        )));
    }
    let version = service.api_version;
    let mut body = format!("Action={}&Version={}", encode(action), encode(version));
    for (key, value) in params {
        body.push('&');
        body.push_str(&encode(key));
        body.push('=');
        body.push_str(&encode(value));
    }
    Ok(Outgoing {
        method: Method::POST,
        path_and_query: "/".into(),
        headers: vec![(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/x-www-form-urlencoded; charset=utf-8"),
        )],
        body: Bytes::from(body),
    })
}

/// `AWS_ENDPOINT_URL`, when set.
pub fn endpoint_from_env() -> Option<String> {
    std::env::var(ENDPOINT_ENV).ok().filter(|v| !v.is_empty())
}

fn http_client() -> anyhow::Result<HttpClient> {
    let provider = || Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = match hyper_rustls::HttpsConnectorBuilder::new()
        .with_provider_and_native_roots(provider())
    {
        Ok(builder) => builder,
        Err(e) => {
            tracing::warn!("no system TLS roots ({e}); HTTPS endpoints will fail");
            let config = rustls::ClientConfig::builder_with_provider(provider())
                .with_safe_default_protocol_versions()?
                .with_root_certificates(rustls::RootCertStore::empty())
                .with_no_client_auth();
            hyper_rustls::HttpsConnectorBuilder::new().with_tls_config(config)
        }
    };
    let connector = builder.https_or_http().enable_http1().build();
    Ok(Client::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(30))
        .build(connector))
}

/// Where the signature goes.
enum Signature<'a> {
    /// In the `Authorization` header, over this body.
    Header(&'a [u8]),
    /// In the query string, valid this long, over no body (`UNSIGNED-PAYLOAD`).
    Presigned(Duration),
}

fn sign(
    to: Destination<'_>,
    region: &str,
    request: &mut Request<Full<Bytes>>,
    signature: Signature<'_>,
) -> Result<(), TransportError> {
    let cannot_sign =
        |e: &dyn std::fmt::Display| TransportError::Invalid(format!("cannot sign: {e}"));
    let identity = to.keys.clone().into();
    let mut settings = SigningSettings::default();
    if to.service.signing_name == "s3" {
        settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
        settings.percent_encoding_mode = PercentEncodingMode::Single;
        settings.uri_path_normalization_mode = UriPathNormalizationMode::Disabled;
    }
    let body = match signature {
        Signature::Header(body) => SignableBody::Bytes(body),
        Signature::Presigned(expires) => {
            settings.signature_location = SignatureLocation::QueryParams;
            settings.expires_in = Some(expires);
            settings.payload_checksum_kind = PayloadChecksumKind::NoHeader;
            SignableBody::UnsignedPayload
        }
    };
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name(to.service.signing_name)
        .time(SystemTime::now())
        .settings(settings)
        .build()
        .map_err(|e| cannot_sign(&e))?
        .into();
    let uri = request.uri().to_string();
    let headers: Vec<(&str, &str)> = request
        .headers()
        .iter()
        .filter_map(|(k, v)| v.to_str().ok().map(|v| (k.as_str(), v)))
        .collect();
    let signable = SignableRequest::new(request.method().as_str(), &uri, headers.into_iter(), body)
        .map_err(|e| cannot_sign(&e))?;
    let (instructions, _signature) = aws_sigv4::http_request::sign(signable, &params)
        .map_err(|e| cannot_sign(&e))?
        .into_parts();
    instructions.apply_to_request_http1x(request);
    Ok(())
}

/// A header value, or `Invalid` naming it (shortened: it may be a guest's).
pub fn header_value(value: &str) -> Result<HeaderValue, TransportError> {
    HeaderValue::from_str(value).map_err(|_| {
        TransportError::Invalid(format!(
            "invalid header value '{}'",
            crate::audit::shorten(value)
        ))
    })
}

/// Everything but RFC 3986's unreserved characters (`A–Z a–z 0–9 - . _ ~`).
const AWS_ENCODE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Percent-encodes a query key or value as SigV4 expects.
pub fn encode(text: &str) -> String {
    utf8_percent_encode(text, AWS_ENCODE).to_string()
}

/// Error codes AWS uses for throttling (retryable whatever the status).
const THROTTLING_CODES: &[&str] = &[
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "RequestLimitExceeded",
    "TooManyRequestsException",
    "ProvisionedThroughputExceededException",
    "SlowDown",
    "RequestThrottled",
];

/// The longest error code kept of an answer (AWS's are under 100 characters).
pub const MAX_ERROR_CODE_CHARS: usize = 128;

/// Reads the code and message of a JSON (`__type`, `message`) or XML (`<Code>`, `<Message>`)
/// error answer, whatever its body holds: both are cut (the code to
/// [`MAX_ERROR_CODE_CHARS`], the message to 1 KiB).
pub fn service_error(status: u16, headers: &HeaderMap, body: &[u8]) -> ServiceError {
    let (mut code, message) = match serde_json::from_slice::<serde_json::Value>(body) {
        Ok(json) => {
            let field = |names: &[&str]| {
                names
                    .iter()
                    .find_map(|n| json.get(*n).and_then(|v| v.as_str()))
                    .unwrap_or("")
                    .to_owned()
            };
            // `com.amazonaws.sqs#QueueDoesNotExist:http://…` → `QueueDoesNotExist`.
            let kind = field(&["__type", "code", "Code"]);
            let code = kind.rsplit('#').next().unwrap_or("");
            let code = code.split(':').next().unwrap_or("").to_owned();
            (code, field(&["message", "Message"]))
        }
        Err(_) => xml_error(body),
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
    let retryable = status >= 500 || status == 429 || THROTTLING_CODES.contains(&code.as_str());
    ServiceError {
        code: code.chars().take(MAX_ERROR_CODE_CHARS).collect(),
        message: message.chars().take(1024).collect(),
        status,
        retryable,
    }
}

/// The text of the first `Code` and `Message` elements of an XML error document (query,
/// EC2 and REST-XML services each nest them differently).
fn xml_error(body: &[u8]) -> (String, String) {
    use quick_xml::events::Event;
    let mut reader = quick_xml::Reader::from_reader(body);
    let (mut code, mut message) = (None::<String>, None::<String>);
    let mut inside: Option<bool> = None; // Some(true): in Code, Some(false): in Message
    let mut buf = Vec::new();
    loop {
        match reader.read_event_into(&mut buf) {
            Ok(Event::Start(e)) => {
                inside = match e.local_name().as_ref() {
                    b"Code" if code.is_none() => Some(true),
                    b"Message" if message.is_none() => Some(false),
                    _ => None,
                }
            }
            Ok(Event::Text(text)) => {
                if let Some(is_code) = inside
                    && let Ok(text) = text.unescape()
                {
                    let slot = if is_code { &mut code } else { &mut message };
                    slot.get_or_insert_default().push_str(&text);
                }
            }
            Ok(Event::End(_)) => inside = None,
            Ok(Event::Eof) | Err(_) => break,
            _ => {}
        }
        if code.is_some() && message.is_some() && inside.is_none() {
            break;
        }
        buf.clear();
    }
    (code.unwrap_or_default(), message.unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_are_classified() {
        let none = HeaderMap::new();
        let e = service_error(
            400,
            &none,
            br#"{"__type":"com.amazonaws.sqs#QueueDoesNotExist","message":"nope"}"#,
        );
        assert_eq!(
            (e.code.as_str(), e.message.as_str(), e.retryable),
            ("QueueDoesNotExist", "nope", false)
        );
        let e = service_error(
            403,
            &none,
            b"<ErrorResponse><Error><Code>AccessDenied</Code><Message>a &amp; &#x3C;b&#62;</Message></Error></ErrorResponse>",
        );
        assert_eq!(
            (e.code.as_str(), e.message.as_str(), e.status),
            ("AccessDenied", "a & <b>", 403)
        );
        let e = service_error(
            400,
            &none,
            b"<Response><Errors><Error><Code>Throttling</Code></Error></Errors></Response>",
        );
        assert!(e.retryable && e.code == "Throttling");
        assert!(service_error(503, &none, b"").retryable);
        assert_eq!(service_error(404, &none, b"").code, "Http404");

        let retryable = [
            TransportError::Timeout(Duration::from_secs(1)),
            TransportError::Unavailable("reset".into()),
        ];
        assert!(retryable.iter().all(TransportError::is_retryable));
        let final_ = [
            TransportError::Invalid("x".into()),
            TransportError::ResponseTooLarge(1),
            TransportError::Credentials("x".into()),
        ];
        assert!(!final_.iter().any(TransportError::is_retryable));
    }

    #[test]
    fn encoding_keeps_only_unreserved_characters() {
        assert_eq!(encode("a b/c~d.e_f-g"), "a%20b%2Fc~d.e_f-g");
        assert_eq!(encode("é"), "%C3%A9");
    }
}

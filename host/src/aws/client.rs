//! One signing client per (credential, service, region), sharing one HTTP connection pool.

use std::time::{Duration, SystemTime};

use aws_sigv4::http_request::{
    PayloadChecksumKind, PercentEncodingMode, SignableBody, SignableRequest, SigningSettings,
    UriPathNormalizationMode, sign,
};
use aws_sigv4::sign::v4;
use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request};
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use super::credentials::Credential;
use super::services::Service;
use aws_credential_types::Credentials;
use std::sync::Arc;

pub type HttpClient = Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>;

/// The process's one HTTP client: HTTPS with the system's roots, or plain HTTP for
/// `AWS_ENDPOINT_URL=http://...` (moto, LocalStack).
pub fn http_client() -> anyhow::Result<HttpClient> {
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

/// Signs and sends requests for one credential to one service in one region.
pub struct AwsClient {
    pub credential: Arc<Credential>,
    pub service: &'static Service,
    pub region: String,
    /// Scheme and authority (and a base path, for `AWS_ENDPOINT_URL` with one).
    endpoint: String,
    http: HttpClient,
}

/// A request before signing.
pub struct Outgoing {
    pub method: Method,
    /// Path and query, already encoded, starting with `/`.
    pub path_and_query: String,
    pub headers: Vec<(HeaderName, HeaderValue)>,
    pub body: Bytes,
}

/// What went wrong on the way, before AWS answered.
#[derive(Debug)]
pub enum SendError {
    Invalid(String),
    Timeout(Duration),
    ResponseTooLarge(usize),
    Unavailable(String),
}

impl AwsClient {
    pub fn new(
        credential: Arc<Credential>,
        service: &'static Service,
        region: String,
        endpoint_override: Option<&str>,
        http: HttpClient,
    ) -> AwsClient {
        let endpoint = match endpoint_override {
            Some(url) => url.trim_end_matches('/').to_owned(),
            None => service.endpoint(&region),
        };
        AwsClient {
            credential,
            service,
            region,
            endpoint,
            http,
        }
    }

    /// The region requests are signed for (global services sign for their home region).
    fn signing_region(&self) -> &str {
        self.service.global_region.unwrap_or(&self.region)
    }

    pub async fn send(
        &self,
        keys: &Credentials,
        outgoing: Outgoing,
        timeout: Duration,
        max_response: usize,
    ) -> Result<(u16, HeaderMap, Bytes), SendError> {
        let uri = format!("{}{}", self.endpoint, outgoing.path_and_query);
        let mut request = Request::builder().method(outgoing.method).uri(&uri);
        for (name, value) in outgoing.headers {
            request = request.header(name, value);
        }
        let mut request = request
            .body(Full::new(outgoing.body.clone()))
            .map_err(|e| SendError::Invalid(format!("cannot build the request: {e}")))?;
        self.sign(keys, &mut request, &outgoing.body)?;

        let exchange = async {
            let response = self.http.request(request).await.map_err(|e| {
                SendError::Unavailable(format!("{} {}: {e}", self.service.name, self.endpoint))
            })?;
            let (parts, body) = response.into_parts();
            let body = Limited::new(body, max_response)
                .collect()
                .await
                .map_err(|e| {
                    if e.is::<http_body_util::LengthLimitError>() {
                        SendError::ResponseTooLarge(max_response)
                    } else {
                        SendError::Unavailable(format!("reading the response: {e}"))
                    }
                })?
                .to_bytes();
            Ok((parts.status.as_u16(), parts.headers, body))
        };
        tokio::time::timeout(timeout, exchange)
            .await
            .map_err(|_| SendError::Timeout(timeout))?
    }

    fn sign(
        &self,
        keys: &Credentials,
        request: &mut Request<Full<Bytes>>,
        body: &[u8],
    ) -> Result<(), SendError> {
        let identity = keys.clone().into();
        let mut settings = SigningSettings::default();
        if self.service.name == "s3" {
            settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
            settings.percent_encoding_mode = PercentEncodingMode::Single;
            settings.uri_path_normalization_mode = UriPathNormalizationMode::Disabled;
        }
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(self.signing_region())
            .name(self.service.signing_name)
            .time(SystemTime::now())
            .settings(settings)
            .build()
            .map_err(|e| SendError::Invalid(format!("cannot sign: {e}")))?
            .into();
        let uri = request.uri().to_string();
        let headers: Vec<(&str, &str)> = request
            .headers()
            .iter()
            .filter_map(|(k, v)| v.to_str().ok().map(|v| (k.as_str(), v)))
            .collect();
        let signable = SignableRequest::new(
            request.method().as_str(),
            &uri,
            headers.into_iter(),
            SignableBody::Bytes(body),
        )
        .map_err(|e| SendError::Invalid(format!("cannot sign: {e}")))?;
        let (instructions, _signature) = sign(signable, &params)
            .map_err(|e| SendError::Invalid(format!("cannot sign: {e}")))?
            .into_parts();
        instructions.apply_to_request_http1x(request);
        Ok(())
    }
}

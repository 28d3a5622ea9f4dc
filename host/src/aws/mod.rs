//! The `aws` host plugin's shared state: named credentials (from the environment or made by
//! connectors) and the transport that signs and sends with them. The capabilities built on it
//! (`aws-call`, `queue`, secrets from Secrets Manager and SSM) live in
//! [`crate::capabilities`]; the SQS application queue in [`crate::queue`].

pub mod answers;
pub mod connectors;
pub mod credentials;
pub mod resources;
pub mod services;
pub mod shapes;
pub mod sns;
pub mod transport;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use serde::Deserialize;

use crate::config::values::{ConfigDuration, CredentialName};
use connectors::ConnectorConfig;
use credentials::{Credential, CredentialRegistry};
use services::Service;
use transport::{HostRequest, Transport, TransportError};

/// The `aws:` section: which endpoints requests go to, and how long a presigned URL may live.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AwsConfig {
    /// Use services' FIPS 140 endpoints (`sqs-fips.us-east-1.amazonaws.com`).
    #[serde(default)]
    pub fips: bool,
    /// Use services' dual-stack (IPv4 and IPv6) endpoints.
    #[serde(default)]
    pub dual_stack: bool,
    /// The longest expiry `aws-call.presign` grants: 1 hour by default, at most 7 days
    /// (SigV4's own limit).
    #[serde(default = "default_presign_max_expiry")]
    pub presign_max_expiry: ConfigDuration,
}

impl Default for AwsConfig {
    fn default() -> Self {
        AwsConfig {
            fips: false,
            dual_stack: false,
            presign_max_expiry: default_presign_max_expiry(),
        }
    }
}

/// SigV4's limit on a presigned URL's life.
pub const PRESIGN_EXPIRY_LIMIT: Duration = Duration::from_secs(7 * 24 * 3600);

fn default_presign_max_expiry() -> ConfigDuration {
    ConfigDuration(Duration::from_secs(3600))
}

/// Shared by every monitor and by the host's own requests.
pub struct AwsProvider {
    /// Every credential the config names, by name.
    pub credentials: CredentialRegistry,
    /// The one HTTP pool every AWS request of the process is signed and sent on.
    pub transport: Arc<Transport>,
    /// SNS signing certificates fetched so far, for `verify-sns-message`.
    pub sns: sns::SnsVerifier,
    /// The host's own SQS queues (application, dead-letter, issue events), by name: no
    /// monitor reaches them through `aws-call`, whatever its grants.
    pub host_queues: Vec<String>,
}

impl AwsProvider {
    /// Loads `names` (the credentials the config grants or uses) and the connectors; the
    /// endpoint comes from `AWS_ENDPOINT_URL`, else from the service table and `settings`.
    pub fn new<'a>(
        names: impl IntoIterator<Item = &'a CredentialName>,
        connectors: &'a BTreeMap<CredentialName, ConnectorConfig>,
        settings: &AwsConfig,
    ) -> Result<AwsProvider> {
        let mut transport = Transport::from_env()?;
        transport.variant = services::Variant::new(settings.fips, settings.dual_stack);
        transport.limits.max_presign_expiry = settings.presign_max_expiry.0;
        let transport = Arc::new(transport);
        Ok(AwsProvider {
            credentials: CredentialRegistry::new(names, connectors, &transport),
            transport,
            sns: sns::SnsVerifier::default(),
            host_queues: Vec::new(),
        })
    }

    /// A JSON-protocol request the host makes for itself (secrets): the operator chose the
    /// credential in config, so no monitor grant is involved. Audited with `actor = host`,
    /// also when the credential or its region cannot be had.
    pub async fn host_json(
        &self,
        credential: &CredentialName,
        service: &str,
        region: &str,
        operation: &str,
        input: &str,
        resource: &str,
    ) -> Result<String, TransportError> {
        let service = Service::find(service)
            .ok_or_else(|| TransportError::Invalid(format!("unknown service '{service}'")))?;
        let keys = async {
            let found = self.credentials.get(credential)?;
            let region = found.region(Some(region))?;
            Ok((found.keys().await?, region))
        };
        let request = HostRequest {
            credential,
            service,
            operation,
            input,
            resource: Some(resource),
        };
        self.transport.host_json(request, keys).await
    }
}

impl AwsProvider {
    /// Who AWS says `credential` is (STS `GetCallerIdentity`: account and ARN), for
    /// `check --connect`. Signed by aws-sdk-sts with the credential's keys (a connector's
    /// are made first), in its region or us-east-1, audited like the host's other requests.
    pub async fn caller_identity(&self, credential: &Arc<Credential>) -> Result<String, String> {
        use aws_sdk_sts::config::timeout::TimeoutConfig;
        use aws_sdk_sts::config::{BehaviorVersion, Region};
        let region = credential
            .region
            .clone()
            .unwrap_or_else(|| "us-east-1".into());
        let mut config = aws_sdk_sts::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(region))
            .credentials_provider(credential.provider())
            .timeout_config(
                TimeoutConfig::builder()
                    .operation_timeout(self.transport.limits.timeout)
                    .build(),
            )
            .interceptor(crate::audit::SdkAudit::new(
                credential.name.as_str(),
                "sts",
                String::from("GetCallerIdentity"),
            ));
        if let Some(url) = self.transport.endpoint_override() {
            config = config.endpoint_url(url);
        }
        let client = aws_sdk_sts::Client::from_conf(config.build());
        let identity = client
            .get_caller_identity()
            .send()
            .await
            .map_err(|e| aws_sdk_sts::error::DisplayErrorContext(&e).to_string())?;
        Ok(format!(
            "account {}, {}",
            identity.account().unwrap_or("?"),
            identity.arn().unwrap_or("?")
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::credentials::Credential;
    use super::*;
    use aws_credential_types::Credentials;

    #[test]
    fn credentials_never_print_key_material() {
        let credential = Credential {
            name: CredentialName::parse("monitoring").unwrap(),
            source: credentials::KeySource::Static(Credentials::new(
                "AKIAEXAMPLE",
                "wJalrXUtnFEMI/K7MDENG",
                Some("token-value".into()),
                None,
                "test",
            )),
            region: Some("us-east-1".into()),
        };
        let shown = format!("{credential:?} {:?}", credential.static_keys());
        assert!(
            !shown.contains("wJalrXUtnFEMI") && !shown.contains("token-value"),
            "{shown}"
        );
        assert!(shown.contains("MONITORING"));
    }
}

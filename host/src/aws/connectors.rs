//! Credential connectors: credentials the host makes from another one — by assuming a role
//! (STS AssumeRole, through `aws-sdk-sts`) or by reading keys kept in an SSM SecureString
//! (`access_key_id,secret`) — and renews `refresh_window` before they expire, so callers never
//! notice. One fetch serves every caller until then; never one AssumeRole per request.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use aws_sdk_sts::config::timeout::TimeoutConfig;
use aws_sdk_sts::config::{BehaviorVersion, Region};
use aws_sdk_sts::types::{PolicyDescriptorType, Tag};
use serde::Deserialize;
use serde_json::json;

use super::services::Service;
use super::transport::{HostRequest, Transport, TransportError};
use crate::audit::SdkAudit;
use crate::config::values::{ConfigDuration, CredentialName};

/// How long keys read from SSM are used before they are read again (to pick up rotation).
const SSM_KEYS_REREAD: Duration = Duration::from_secs(3600);

/// A credential the host makes from its `source` credential.
pub struct Connector {
    name: CredentialName,
    config: ConnectorConfig,
    /// The source credential's keys.
    source: SharedCredentialsProvider,
    /// The region of the requests that make the keys.
    region: String,
    transport: Arc<Transport>,
    /// Only for `assume_role`: an STS client signing with the source credential.
    sts: Option<aws_sdk_sts::Client>,
    current: tokio::sync::Mutex<Option<(Credentials, SystemTime)>>,
    /// How many times the keys were fetched (AssumeRole or GetParameter calls).
    fetches: AtomicU64,
}

impl std::fmt::Debug for Connector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connector")
            .field("name", &self.name)
            .field("source", &self.config.source)
            .finish_non_exhaustive()
    }
}

impl Connector {
    /// A connector making `name` from the keys of its source credential, whose default
    /// region is `source_region`.
    pub fn new(
        name: CredentialName,
        config: &ConnectorConfig,
        source: SharedCredentialsProvider,
        source_region: Option<&str>,
        transport: Arc<Transport>,
    ) -> Connector {
        let region =
            Self::default_region(config, source_region).unwrap_or_else(|| "us-east-1".into());
        let sts = config.assume_role.as_ref().map(|role| {
            let mut sts = aws_sdk_sts::Config::builder()
                .behavior_version(BehaviorVersion::latest())
                .region(Region::new(region.clone()))
                .credentials_provider(source.clone())
                // As bounded as the transport's own requests: a hung STS must not hold every
                // caller of this credential (they wait on one renewal).
                .timeout_config(
                    TimeoutConfig::builder()
                        .operation_timeout(transport.limits.timeout)
                        .build(),
                )
                .interceptor(SdkAudit::new(
                    config.source.as_str(),
                    "sts",
                    role.role_arn.clone(),
                ));
            if let Some(url) = transport.endpoint_override() {
                sts = sts.endpoint_url(url);
            }
            aws_sdk_sts::Client::from_conf(sts.build())
        });
        Connector {
            name,
            config: config.clone(),
            source,
            region,
            transport,
            sts,
            current: tokio::sync::Mutex::new(None),
            fetches: AtomicU64::new(0),
        }
    }

    /// How many times the keys were fetched.
    pub fn fetches(&self) -> u64 {
        self.fetches.load(Ordering::Relaxed)
    }

    /// The region the connector's keys default to: its own, else its source's.
    pub fn default_region(config: &ConnectorConfig, source_region: Option<&str>) -> Option<String> {
        config
            .region
            .clone()
            .or_else(|| source_region.map(str::to_owned))
    }

    /// Valid keys, fetched anew when they expire within the refresh window.
    pub async fn current(&self) -> Result<Credentials, TransportError> {
        let mut current = self.current.lock().await;
        if let Some((keys, renew_at)) = current.as_ref()
            && SystemTime::now() < *renew_at
        {
            return Ok(keys.clone());
        }
        let fetched = self.fetch().await;
        crate::telemetry::METRICS
            .credential_renewals
            .get_or_create(&vec![
                ("credential", self.name.as_str().to_owned()),
                (
                    "outcome",
                    if fetched.is_ok() { "ok" } else { "error" }.to_owned(),
                ),
            ])
            .inc();
        let (keys, expires) = fetched?;
        let count = self.fetches.fetch_add(1, Ordering::Relaxed) + 1;
        let renew_at = expires
            .checked_sub(self.config.refresh_window.0)
            .unwrap_or(expires);
        tracing::info!(
            credential = %self.name,
            kind = if self.config.assume_role.is_some() { "assume_role" } else { "ssm_keys" },
            fetches = count,
            valid_for_s = expires.duration_since(SystemTime::now()).map(|d| d.as_secs()).unwrap_or(0),
            "credential connector refreshed"
        );
        *current = Some((keys.clone(), renew_at));
        Ok(keys)
    }

    fn unavailable(&self, what: &str) -> TransportError {
        TransportError::Credentials(format!("credential {}: {what}", self.name))
    }

    async fn fetch(&self) -> Result<(Credentials, SystemTime), TransportError> {
        match (&self.config.assume_role, &self.sts, &self.config.ssm_keys) {
            (Some(role), Some(sts), _) => self.assume_role(role, sts).await,
            (None, _, Some(parameter)) => self.ssm_keys(parameter).await,
            _ => Err(self.unavailable("no connector kind")),
        }
    }

    async fn assume_role(
        &self,
        role: &AssumeRoleConfig,
        sts: &aws_sdk_sts::Client,
    ) -> Result<(Credentials, SystemTime), TransportError> {
        let external_id = match role.external_id.as_deref() {
            Some(id) => match id.strip_prefix("ssm:") {
                Some(parameter) => Some(self.read_ssm(parameter).await?),
                None => Some(id.to_owned()),
            },
            None => None,
        };
        let tags = role
            .tags
            .iter()
            .map(|(key, value)| Tag::builder().key(key).value(value).build())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| self.unavailable(&format!("invalid tag: {e}")))?;
        let output = sts
            .assume_role()
            .role_arn(&role.role_arn)
            .role_session_name(session_name(role.session_name.as_deref(), &self.name))
            .duration_seconds(i32::try_from(role.duration.0.as_secs()).unwrap_or(i32::MAX))
            .set_external_id(external_id)
            .set_policy(role.policy.as_ref().map(|p| p.to_string()))
            .set_policy_arns((!role.policy_arns.is_empty()).then(|| {
                role.policy_arns
                    .iter()
                    .map(|arn| PolicyDescriptorType::builder().arn(arn).build())
                    .collect()
            }))
            .set_tags((!tags.is_empty()).then_some(tags))
            .send()
            .await
            .map_err(|e| {
                self.unavailable(&format!(
                    "AssumeRole: {}",
                    aws_sdk_sts::error::DisplayErrorContext(&e)
                ))
            })?;
        let keys = output
            .credentials()
            .ok_or_else(|| self.unavailable("AssumeRole answer without credentials"))?;
        let expires = SystemTime::try_from(*keys.expiration())
            .map_err(|_| self.unavailable("unreadable Expiration"))?;
        let keys = Credentials::new(
            keys.access_key_id(),
            keys.secret_access_key(),
            Some(keys.session_token().to_owned()),
            Some(expires),
            "sentinela-assume-role",
        );
        Ok((keys, expires))
    }

    async fn ssm_keys(&self, parameter: &str) -> Result<(Credentials, SystemTime), TransportError> {
        let value = self.read_ssm(parameter).await?;
        let (key_id, secret) = value.split_once(',').ok_or_else(|| {
            self.unavailable(&format!(
                "SSM parameter {parameter} is not 'access_key_id,secret_access_key'"
            ))
        })?;
        let keys = Credentials::new(
            key_id.trim(),
            secret.trim(),
            None,
            None,
            "sentinela-ssm-keys",
        );
        Ok((keys, SystemTime::now() + SSM_KEYS_REREAD))
    }

    /// A decrypted SSM parameter, read with the source credential.
    async fn read_ssm(&self, parameter: &str) -> Result<String, TransportError> {
        let ssm = Service::find("ssm").ok_or_else(|| self.unavailable("no ssm service"))?;
        let keys = async {
            let keys = self.source.provide_credentials().await.map_err(|e| {
                self.unavailable(&format!("its source {}: {e}", self.config.source))
            })?;
            Ok((keys, self.region.clone()))
        };
        let input = json!({ "Name": parameter, "WithDecryption": true }).to_string();
        let request = HostRequest {
            credential: &self.config.source,
            service: ssm,
            operation: "GetParameter",
            input: &input,
            resource: Some(parameter),
        };
        let output = self.transport.host_json(request, keys).await?;
        let output: serde_json::Value =
            serde_json::from_str(&output).map_err(|_| self.unavailable("unreadable SSM answer"))?;
        output["Parameter"]["Value"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| self.unavailable(&format!("SSM parameter {parameter} has no value")))
    }
}

/// STS session names: 2–64 characters of `[\w+=,.@-]`.
fn session_name(configured: Option<&str>, credential: &CredentialName) -> String {
    let raw = configured
        .map(str::to_owned)
        .unwrap_or_else(|| format!("sentinela-{}", credential.as_str().to_ascii_lowercase()));
    let mut name: String = raw
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "_+=,.@-".contains(c) {
                c
            } else {
                '-'
            }
        })
        .take(64)
        .collect();
    while name.len() < 2 {
        name.push('-');
    }
    name
}

/// A credential made by the host from another one (`credentials:` section).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConnectorConfig {
    /// The credential used to make this one (AssumeRole, or reading the SSM parameter).
    #[serde(deserialize_with = "CredentialName::deserialize_any")]
    pub source: CredentialName,
    /// Region of the calls that make it, and its default region; else the source's.
    #[serde(default)]
    pub region: Option<String>,
    /// Makes the keys with STS AssumeRole; give exactly one of this and `ssm_keys`.
    #[serde(default)]
    pub assume_role: Option<AssumeRoleConfig>,
    /// An SSM SecureString holding `access_key_id,secret_access_key`.
    #[serde(default)]
    pub ssm_keys: Option<String>,
    /// Credentials are renewed this long before they expire.
    #[serde(default = "default_refresh_window")]
    pub refresh_window: ConfigDuration,
}

/// A connector's `assume_role:`: the AssumeRole call that makes its keys.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AssumeRoleConfig {
    /// The ARN of the role to assume.
    pub role_arn: String,
    /// STS's `ExternalId`; `ssm:NAME` reads it from SSM parameter NAME at each AssumeRole.
    #[serde(default)]
    pub external_id: Option<String>,
    /// Session duration (STS allows 15 minutes to the role's maximum).
    #[serde(default = "default_role_duration")]
    pub duration: ConfigDuration,
    /// An inline session policy (a YAML or JSON map).
    #[serde(default)]
    pub policy: Option<serde_json::Value>,
    /// Managed policies that further restrict the session (STS `PolicyArns`).
    #[serde(default)]
    pub policy_arns: Vec<String>,
    /// Session tags (STS `Tags`), key to value; none by default.
    #[serde(default)]
    pub tags: std::collections::BTreeMap<String, String>,
    /// Default: `sentinela-{credential name}`, cleansed to STS's alphabet.
    #[serde(default)]
    pub session_name: Option<String>,
}

fn default_refresh_window() -> ConfigDuration {
    ConfigDuration(Duration::from_secs(300))
}

fn default_role_duration() -> ConfigDuration {
    ConfigDuration(Duration::from_secs(3600))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_names_follow_sts_rules() {
        let name = CredentialName::parse("role_reader").unwrap();
        assert_eq!(session_name(None, &name), "sentinela-role_reader");
        assert_eq!(session_name(Some("my monitor/éx"), &name), "my-monitor--x");
        assert_eq!(session_name(Some(&"a".repeat(100)), &name).len(), 64);
        assert_eq!(session_name(Some("x"), &name), "x-");
    }
}

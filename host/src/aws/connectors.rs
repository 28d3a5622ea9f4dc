//! Credential connectors: credentials the host makes from another one — by assuming a role
//! (STS AssumeRole) or by reading keys kept in an SSM SecureString (`access_key_id,secret`) —
//! and renews `refresh_window` before they expire, so callers never notice. One fetch serves
//! every caller until then; never one AssumeRole per request.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use serde_json::json;

use super::AwsPlugin;
use super::call::{decode_xml_text, query_call, xml_tag};
use super::services::Service;
use crate::audit::{Actor, AuditEvent};
use crate::bindings::sentinela::plugin::types::Error;
use crate::config::{AssumeRoleConfig, ConnectorConfig, CredentialName};

/// How long keys read from SSM are used before they are read again (to pick up rotation).
const SSM_KEYS_REREAD: Duration = Duration::from_secs(3600);

pub struct Connector {
    name: CredentialName,
    config: ConnectorConfig,
    current: tokio::sync::Mutex<Option<(Credentials, SystemTime)>>,
    /// How many times the keys were fetched (AssumeRole or GetParameter calls).
    fetches: AtomicU64,
}

impl Connector {
    pub fn new(name: CredentialName, config: &ConnectorConfig) -> Connector {
        Connector {
            name,
            config: config.clone(),
            current: tokio::sync::Mutex::new(None),
            fetches: AtomicU64::new(0),
        }
    }

    pub fn fetches(&self) -> u64 {
        self.fetches.load(Ordering::Relaxed)
    }

    /// Valid keys, fetched anew when they expire within the refresh window.
    pub async fn current(&self, plugin: &AwsPlugin) -> Result<Credentials, Error> {
        let mut current = self.current.lock().await;
        if let Some((keys, renew_at)) = current.as_ref()
            && SystemTime::now() < *renew_at
        {
            return Ok(keys.clone());
        }
        let (keys, expires) = self.fetch(plugin).await?;
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

    fn region(
        &self,
        plugin: &AwsPlugin,
    ) -> Result<(std::sync::Arc<super::credentials::Credential>, String), Error> {
        let source = CredentialName::parse(&self.config.source).map_err(Error::Invalid)?;
        let source = plugin
            .credentials
            .get(&source)
            .map_err(Error::Unavailable)?
            .clone();
        let region = self
            .config
            .region
            .clone()
            .or_else(|| source.region.clone())
            .unwrap_or_else(|| "us-east-1".into());
        Ok((source, region))
    }

    async fn fetch(&self, plugin: &AwsPlugin) -> Result<(Credentials, SystemTime), Error> {
        let (source, region) = self.region(plugin)?;
        let unavailable =
            |what: &str| Error::Unavailable(format!("credential {}: {what}", self.name));
        if let Some(role) = &self.config.assume_role {
            let external_id = match role
                .external_id
                .as_deref()
                .map(|id| (id, id.strip_prefix("ssm:")))
            {
                Some((_, Some(parameter))) => Some(
                    self.read_ssm(plugin, &source.name, &region, parameter)
                        .await?,
                ),
                Some((literal, None)) => Some(literal.to_owned()),
                None => None,
            };
            let params = assume_role_params(role, &self.name, external_id);
            let sts = Service::find("sts").ok_or_else(|| unavailable("no sts service"))?;
            let client = plugin.client(&source, sts, region);
            let audit = AuditEvent::start(Actor::Host, source.name.as_str(), "sts", "AssumeRole")
                .with_resource(&role.role_arn);
            let (result, status) = query_call(plugin, &client, "AssumeRole", &params).await;
            audit.finish(&result, status);
            let xml = result?;
            let field = |tag: &str| {
                xml_tag(&xml, tag)
                    .ok_or_else(|| unavailable(&format!("AssumeRole answer without {tag}")))
            };
            let expires = chrono::DateTime::parse_from_rfc3339(&field("Expiration")?)
                .map(SystemTime::from)
                .map_err(|_| unavailable("unreadable Expiration"))?;
            let keys = Credentials::new(
                field("AccessKeyId")?,
                decode_xml_text(&field("SecretAccessKey")?),
                Some(decode_xml_text(&field("SessionToken")?)),
                Some(expires),
                "sentinela-assume-role",
            );
            return Ok((keys, expires));
        }
        let parameter = self
            .config
            .ssm_keys
            .as_deref()
            .ok_or_else(|| unavailable("no connector kind"))?;
        let input = json!({ "Name": parameter, "WithDecryption": true }).to_string();
        let output = plugin
            .host_json(
                &source.name,
                "ssm",
                &region,
                "GetParameter",
                &input,
                parameter,
            )
            .await?;
        let output: serde_json::Value =
            serde_json::from_str(&output).map_err(|_| unavailable("unreadable SSM answer"))?;
        let value = output["Parameter"]["Value"]
            .as_str()
            .ok_or_else(|| unavailable("SSM parameter without a value"))?;
        let (key_id, secret) = value.split_once(',').ok_or_else(|| {
            unavailable(&format!(
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
}

impl Connector {
    /// A decrypted SSM parameter, read with the source credential.
    async fn read_ssm(
        &self,
        plugin: &AwsPlugin,
        source: &CredentialName,
        region: &str,
        parameter: &str,
    ) -> Result<String, Error> {
        let input = json!({ "Name": parameter, "WithDecryption": true }).to_string();
        let output = plugin
            .host_json(source, "ssm", region, "GetParameter", &input, parameter)
            .await?;
        let output: serde_json::Value = serde_json::from_str(&output).map_err(|_| {
            Error::Unavailable(format!("credential {}: unreadable SSM answer", self.name))
        })?;
        output["Parameter"]["Value"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| {
                Error::Unavailable(format!(
                    "credential {}: SSM parameter {parameter} has no value",
                    self.name
                ))
            })
    }
}

/// AssumeRole's query parameters.
fn assume_role_params(
    role: &AssumeRoleConfig,
    name: &CredentialName,
    external_id: Option<String>,
) -> Vec<(String, String)> {
    let mut params = vec![
        ("RoleArn".to_owned(), role.role_arn.clone()),
        (
            "RoleSessionName".to_owned(),
            session_name(role.session_name.as_deref(), name),
        ),
        (
            "DurationSeconds".to_owned(),
            role.duration.0.as_secs().to_string(),
        ),
    ];
    if let Some(external_id) = external_id {
        params.push(("ExternalId".into(), external_id));
    }
    if let Some(policy) = &role.policy {
        params.push(("Policy".into(), policy.to_string()));
    }
    for (i, arn) in role.policy_arns.iter().enumerate() {
        params.push((format!("PolicyArns.member.{}.arn", i + 1), arn.clone()));
    }
    for (i, (key, value)) in role.tags.iter().enumerate() {
        params.push((format!("Tags.member.{}.Key", i + 1), key.clone()));
        params.push((format!("Tags.member.{}.Value", i + 1), value.clone()));
    }
    params
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn assume_role_sends_every_configured_field() {
        let role: AssumeRoleConfig = serde_yaml::from_str(
            "role_arn: arn:aws:iam::111111111111:role/r\nduration: 900s\npolicy_arns: [arn:aws:iam::aws:policy/ReadOnlyAccess]\ntags: {team: ops}\npolicy: {Version: '2012-10-17'}\n",
        )
        .unwrap();
        let name = CredentialName::parse("reader").unwrap();
        let params = assume_role_params(&role, &name, Some("ext-1".into()));
        let get = |key: &str| {
            params
                .iter()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v.as_str())
        };
        assert_eq!(get("RoleArn"), Some("arn:aws:iam::111111111111:role/r"));
        assert_eq!(get("RoleSessionName"), Some("sentinela-reader"));
        assert_eq!(get("DurationSeconds"), Some("900"));
        assert_eq!(get("ExternalId"), Some("ext-1"));
        assert_eq!(get("Policy"), Some(r#"{"Version":"2012-10-17"}"#));
        assert_eq!(
            get("PolicyArns.member.1.arn"),
            Some("arn:aws:iam::aws:policy/ReadOnlyAccess")
        );
        assert_eq!(
            (get("Tags.member.1.Key"), get("Tags.member.1.Value")),
            (Some("team"), Some("ops"))
        );
    }

    #[test]
    fn session_names_follow_sts_rules() {
        let name = CredentialName::parse("role_reader").unwrap();
        assert_eq!(session_name(None, &name), "sentinela-role_reader");
        assert_eq!(session_name(Some("my monitor/éx"), &name), "my-monitor--x");
        assert_eq!(session_name(Some(&"a".repeat(100)), &name).len(), 64);
        assert_eq!(session_name(Some("x"), &name), "x-");
    }
}

//! The `aws` host plugin: named credentials and connectors, the `aws-call` and `queue`
//! interfaces, the SQS application queue, and the requests the host makes for itself
//! (secrets, connectors, issue events), each audited.

pub mod call;
pub mod client;
pub mod connectors;
pub mod credentials;
pub mod monitor_queues;
pub mod queue;
pub mod resources;
pub mod services;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Result;

use crate::audit::{Actor, AuditEvent};
use crate::bindings::sentinela::plugin::types::Error;

use crate::config::{Config, CredentialName, QueueDeclaration};
use client::{AwsClient, HttpClient};
use credentials::{Credential, CredentialRegistry};
use services::Service;

/// The environment variable that points every AWS client at another endpoint (moto in tests).
pub const ENDPOINT_ENV: &str = "AWS_ENDPOINT_URL";

/// Caps on one `aws-call`.
#[derive(Debug, Clone)]
pub struct CallLimits {
    pub max_request_bytes: usize,
    pub max_response_bytes: usize,
    pub timeout: Duration,
}

impl Default for CallLimits {
    fn default() -> Self {
        CallLimits {
            max_request_bytes: 1 << 20,
            max_response_bytes: 8 << 20,
            timeout: Duration::from_secs(10),
        }
    }
}

/// (credential, service, region).
type ClientKey = (CredentialName, &'static str, String);

/// Clients kept at most; the least recently used goes first. A client is cheap to rebuild
/// (the HTTP pool is shared), so this bounds memory, not speed.
const MAX_CLIENTS: usize = 256;

/// The client cache: each client with the tick it was last used at.
#[derive(Default)]
struct Clients {
    tick: u64,
    map: HashMap<ClientKey, (Arc<AwsClient>, u64)>,
}

/// Shared by every monitor: credentials, one HTTP connection pool, and one client per
/// (credential, service, region), built on first use and reused.
pub struct AwsPlugin {
    pub credentials: CredentialRegistry,
    /// The `queues:` section: SQS queues for the `queue` interface.
    pub queues: BTreeMap<String, QueueDeclaration>,
    pub limits: CallLimits,
    endpoint_override: Option<String>,
    http: HttpClient,
    clients: Mutex<Clients>,
}

impl AwsPlugin {
    /// Loads the credentials the config grants to monitors.
    pub fn from_config(config: &Config) -> Result<AwsPlugin> {
        let names = config
            .monitors
            .iter()
            .flat_map(|m| &m.grants.credentials)
            .chain(config.queues.values().map(|q| &q.credential))
            .chain(
                config
                    .monitors
                    .iter()
                    .flat_map(|m| m.secrets.values().filter_map(|s| s.credential())),
            );
        let endpoint_override = std::env::var(ENDPOINT_ENV).ok().filter(|v| !v.is_empty());
        if let Some(url) = &endpoint_override
            && !(url.starts_with("http://") || url.starts_with("https://"))
        {
            anyhow::bail!("{ENDPOINT_ENV}={url} is not an http:// or https:// URL");
        }
        Ok(AwsPlugin {
            credentials: CredentialRegistry::new(names, &config.credentials),
            queues: config.queues.clone(),
            limits: CallLimits::default(),
            endpoint_override,
            http: client::http_client()?,
            clients: Mutex::new(Clients::default()),
        })
    }

    /// A JSON-protocol call the host makes for itself (secrets, credential connectors): the
    /// operator chose the credential in config, so no monitor grant is involved. Audited with
    /// `actor = host`; `resource` names what it reads (a secret id, a parameter name).
    pub async fn host_json(
        &self,
        credential: &CredentialName,
        service: &str,
        region: &str,
        operation: &str,
        input: &str,
        resource: &str,
    ) -> Result<String, Error> {
        let audit = AuditEvent::start(Actor::Host, credential.as_str(), service, operation)
            .with_resource(resource);
        let (result, status) = async {
            let credential = self
                .credentials
                .get(credential)
                .map_err(Error::Unavailable)?;
            let service = Service::find(service)
                .ok_or_else(|| Error::Invalid(format!("unknown service '{service}'")))?;
            let region = credential.region(Some(region)).map_err(Error::Invalid)?;
            let client = self.client(credential, service, region);
            Ok::<_, Error>(call::json_call(self, &client, operation, input).await)
        }
        .await
        .unwrap_or_else(|e| (Err(e), None));
        audit.finish(&result, status);
        result
    }

    /// The keys to sign with now: static ones, or a connector's, renewed when they are about
    /// to expire.
    pub async fn current_keys(
        &self,
        credential: &Credential,
    ) -> Result<aws_credential_types::Credentials, Error> {
        match &credential.source {
            credentials::KeySource::Static(keys) => Ok(keys.clone()),
            credentials::KeySource::Connector(connector) => Box::pin(connector.current(self)).await,
        }
    }

    fn client(
        &self,
        credential: &Arc<Credential>,
        service: &'static Service,
        region: String,
    ) -> Arc<AwsClient> {
        let key = (credential.name.clone(), service.name, region);
        let mut clients = self.clients.lock().unwrap_or_else(|e| e.into_inner());
        clients.tick += 1;
        let tick = clients.tick;
        if let Some((client, used)) = clients.map.get_mut(&key) {
            *used = tick;
            return client.clone();
        }
        if clients.map.len() >= MAX_CLIENTS
            && let Some(oldest) = clients
                .map
                .iter()
                .min_by_key(|(_, (_, used))| *used)
                .map(|(key, _)| key.clone())
        {
            clients.map.remove(&oldest);
        }
        let client = Arc::new(AwsClient::new(
            credential.clone(),
            service,
            key.2.clone(),
            self.endpoint_override.as_deref(),
            self.http.clone(),
        ));
        clients.map.insert(key, (client.clone(), tick));
        client
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_credential_types::Credentials;

    fn credential(secret: &str) -> Arc<Credential> {
        Arc::new(Credential {
            name: CredentialName::parse("monitoring").unwrap(),
            source: credentials::KeySource::Static(Credentials::new(
                "AKIAEXAMPLE",
                secret,
                Some("token-value".into()),
                None,
                "test",
            )),
            region: Some("us-east-1".into()),
        })
    }

    #[test]
    fn one_client_per_credential_service_and_region() {
        let plugin = AwsPlugin {
            credentials: CredentialRegistry::default(),
            queues: BTreeMap::new(),
            limits: CallLimits::default(),
            endpoint_override: None,
            http: client::http_client().unwrap(),
            clients: Mutex::new(Clients::default()),
        };
        let credential = credential("secret");
        let sqs = Service::find("sqs").unwrap();
        let first = plugin.client(&credential, sqs, "us-east-1".into());
        let again = plugin.client(&credential, sqs, "us-east-1".into());
        let elsewhere = plugin.client(&credential, sqs, "eu-west-1".into());
        assert!(Arc::ptr_eq(&first, &again));
        assert!(!Arc::ptr_eq(&first, &elsewhere));
        // Bounded: the least recently used client goes first.
        for (i, service) in services::SERVICES.iter().enumerate() {
            for region in services::KNOWN_REGIONS {
                if i * services::KNOWN_REGIONS.len() < 2 * MAX_CLIENTS {
                    plugin.client(&credential, service, (*region).into());
                }
            }
            let _ = plugin.client(&credential, sqs, "us-east-1".into());
        }
        let clients = plugin.clients.lock().unwrap();
        assert!(clients.map.len() <= MAX_CLIENTS, "{}", clients.map.len());
        assert!(
            clients
                .map
                .contains_key(&(credential.name.clone(), "sqs", "us-east-1".into()))
        );
    }

    #[test]
    fn credentials_never_print_key_material() {
        let credential = credential("wJalrXUtnFEMI/K7MDENG");
        let shown = format!("{credential:?} {:?}", credential.static_keys());
        assert!(
            !shown.contains("wJalrXUtnFEMI") && !shown.contains("token-value"),
            "{shown}"
        );
        assert!(shown.contains("MONITORING"));
    }
}

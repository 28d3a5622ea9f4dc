//! Named AWS credentials, read from the environment the way Sentinela reads them:
//! `AWS_{NAME}_ACCESS_KEY_ID`, `AWS_{NAME}_SECRET_ACCESS_KEY`, optional
//! `AWS_{NAME}_SESSION_TOKEN` and `AWS_{NAME}_REGION`.
//!
//! Key material lives in `aws_credential_types::Credentials`, which redacts itself in `Debug`
//! and zeroizes on drop. It never leaves the host: requests are signed here.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::Arc;

use aws_credential_types::Credentials;
use aws_credential_types::provider::{
    ProvideCredentials, SharedCredentialsProvider, error::CredentialsError, future,
};

use super::connectors::{Connector, ConnectorConfig};
use super::services::valid_region;
use super::transport::{Transport, TransportError};
use crate::config::values::CredentialName;

/// Where a credential's keys come from.
pub enum KeySource {
    /// Keys from the environment.
    Static(Credentials),
    /// Keys the host makes and renews (assume role, keys kept in SSM).
    Connector(Arc<Connector>),
}

/// One named credential.
pub struct Credential {
    /// The normalised name, as in grants, `credentials:` and `AWS_{NAME}_...`.
    pub name: CredentialName,
    /// Where its keys come from: the environment or a connector.
    pub source: KeySource,
    /// `AWS_{NAME}_REGION`, used when a call names no region.
    pub region: Option<String>,
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credential")
            .field("name", &self.name)
            .field("region", &self.region)
            .finish_non_exhaustive()
    }
}

impl Credential {
    /// Reads credential `name` from the environment; the error names the missing variables.
    pub fn from_env(name: &CredentialName) -> Result<Credential, CredentialError> {
        let var = |suffix: &str| format!("AWS_{name}_{suffix}");
        let read = |suffix: &str| std::env::var(var(suffix)).ok().filter(|v| !v.is_empty());
        let (key_id, secret) = match (read("ACCESS_KEY_ID"), read("SECRET_ACCESS_KEY")) {
            (Some(key_id), Some(secret)) => (key_id, secret),
            (key_id, secret) => {
                let missing: Vec<String> = [
                    ("ACCESS_KEY_ID", key_id.is_none()),
                    ("SECRET_ACCESS_KEY", secret.is_none()),
                ]
                .into_iter()
                .filter(|(_, missing)| *missing)
                .map(|(suffix, _)| var(suffix))
                .collect();
                return Err(CredentialError::NotSet {
                    name: name.clone(),
                    missing: missing.join(" and "),
                });
            }
        };
        let region = read("REGION");
        if let Some(region) = &region
            && !valid_region(region)
        {
            return Err(CredentialError::BadRegionVariable(name.clone()));
        }
        let keys = Credentials::new(key_id, secret, read("SESSION_TOKEN"), None, "sentinela-env");
        Ok(Credential {
            name: name.clone(),
            source: KeySource::Static(keys),
            region,
        })
    }

    /// The keys to sign with now: static ones, or a connector's, renewed before they expire.
    pub async fn keys(&self) -> Result<Credentials, TransportError> {
        match &self.source {
            KeySource::Static(keys) => Ok(keys.clone()),
            KeySource::Connector(connector) => Box::pin(connector.current()).await,
        }
    }

    /// The credential as an AWS SDK credentials provider (STS clients sign with it).
    pub fn provider(self: &Arc<Self>) -> SharedCredentialsProvider {
        SharedCredentialsProvider::new(SourceKeys(self.clone()))
    }

    /// The keys, when they are static (from the environment).
    pub fn static_keys(&self) -> Option<&Credentials> {
        match &self.source {
            KeySource::Static(keys) => Some(keys),
            KeySource::Connector(_) => None,
        }
    }

    /// The region for a call: the explicit one, else `AWS_{NAME}_REGION`.
    pub fn region(&self, explicit: Option<&str>) -> Result<String, CredentialError> {
        match explicit {
            Some(region) if valid_region(region) => Ok(region.to_owned()),
            Some(region) => Err(CredentialError::BadRegion(crate::audit::shorten(region))),
            None => self
                .region
                .clone()
                .ok_or_else(|| CredentialError::NoRegion(self.name.clone())),
        }
    }
}

/// Why a credential, or its region, cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CredentialError {
    /// Its `AWS_{NAME}_*` variables are not set.
    #[error("credential {name} is not configured: set {missing}")]
    NotSet {
        /// The credential.
        name: CredentialName,
        /// The variables to set.
        missing: String,
    },
    /// The config neither grants nor uses it, so it was never loaded.
    #[error("credential {0} is not configured")]
    Unknown(CredentialName),
    /// `AWS_{NAME}_REGION` is not a region name.
    #[error("AWS_{0}_REGION is not a valid region name")]
    BadRegionVariable(CredentialName),
    /// A call named a region that is not one (shortened for the message).
    #[error("invalid region '{0}'")]
    BadRegion(String),
    /// Neither the call nor the credential names a region.
    #[error("no region for credential {0}: pass one or set AWS_{0}_REGION")]
    NoRegion(CredentialName),
    /// A connector's source credential cannot be used.
    #[error("credential {name}: its source {why}")]
    SourceUnusable {
        /// The connector's credential.
        name: CredentialName,
        /// Why its source cannot be used.
        why: Box<CredentialError>,
    },
    /// Connectors whose sources lead back to themselves.
    #[error("credential {0}: its sources form a circle")]
    Circle(CredentialName),
}

impl From<CredentialError> for TransportError {
    fn from(e: CredentialError) -> Self {
        if e.is_invalid_request() {
            TransportError::Invalid(e.to_string())
        } else {
            TransportError::Credentials(e.to_string())
        }
    }
}

impl CredentialError {
    /// Whether the call's arguments are at fault (a bad or missing region), rather than the
    /// host's configuration.
    pub fn is_invalid_request(&self) -> bool {
        matches!(
            self,
            CredentialError::BadRegion(_) | CredentialError::NoRegion(_)
        )
    }
}

/// The credentials the config grants, loaded once at start. A credential whose variables are
/// missing is remembered with the reason, reported by `check`, and refused at call time.
#[derive(Debug, Default)]
pub struct CredentialRegistry {
    credentials: HashMap<CredentialName, Result<Arc<Credential>, CredentialError>>,
}

impl CredentialRegistry {
    /// Connectors as configured; every other name from the environment. A connector is built
    /// once its source is; one whose source chain is a circle is refused.
    pub fn new<'a>(
        names: impl IntoIterator<Item = &'a CredentialName>,
        connectors: &'a BTreeMap<CredentialName, ConnectorConfig>,
        transport: &Arc<Transport>,
    ) -> CredentialRegistry {
        let sources = connectors.values().map(|c| &c.source);
        let mut credentials: HashMap<CredentialName, Result<Arc<Credential>, CredentialError>> =
            names
                .into_iter()
                .chain(sources)
                .filter(|name| !connectors.contains_key(*name))
                .map(|name| (name.clone(), Credential::from_env(name).map(Arc::new)))
                .collect();
        let mut waiting: Vec<(&CredentialName, &ConnectorConfig)> = connectors.iter().collect();
        while !waiting.is_empty() {
            let before = waiting.len();
            waiting.retain(|(name, config)| {
                let source = match credentials.get(&config.source) {
                    None => return true,
                    Some(Err(why)) => Err(CredentialError::SourceUnusable {
                        name: (*name).clone(),
                        why: Box::new(why.clone()),
                    }),
                    Some(Ok(source)) => Ok(source.clone()),
                };
                let credential = source.map(|source| {
                    let region = source.region.clone();
                    let connector = Connector::new(
                        (*name).clone(),
                        config,
                        source.provider(),
                        region.as_deref(),
                        transport.clone(),
                    );
                    Arc::new(Credential {
                        name: (*name).clone(),
                        region: Connector::default_region(config, region.as_deref()),
                        source: KeySource::Connector(Arc::new(connector)),
                    })
                });
                credentials.insert((*name).clone(), credential);
                false
            });
            if waiting.len() == before {
                for (name, _) in waiting.drain(..) {
                    credentials.insert(name.clone(), Err(CredentialError::Circle(name.clone())));
                }
            }
        }
        CredentialRegistry { credentials }
    }

    /// The credential `name`, or why it cannot be used (not configured, variables missing, a
    /// source that failed).
    pub fn get(&self, name: &CredentialName) -> Result<&Arc<Credential>, CredentialError> {
        match self.credentials.get(name) {
            Some(Ok(credential)) => Ok(credential),
            Some(Err(why)) => Err(why.clone()),
            None => Err(CredentialError::Unknown(name.clone())),
        }
    }

    /// Every credential by name, sorted, usable or with why not.
    pub fn all(&self) -> Vec<(&CredentialName, Result<&Arc<Credential>, &CredentialError>)> {
        let mut all: Vec<_> = self
            .credentials
            .iter()
            .map(|(name, credential)| (name, credential.as_ref()))
            .collect();
        all.sort_by_key(|(name, _)| name.as_str());
        all
    }

    /// Credentials that are granted but not configured, with the reason.
    pub fn missing(&self) -> Vec<String> {
        let mut missing: Vec<String> = self
            .credentials
            .values()
            .filter_map(|c| c.as_ref().err().map(ToString::to_string))
            .collect();
        missing.sort();
        missing
    }
}

/// A source credential as the STS client's credentials provider.
#[derive(Debug)]
struct SourceKeys(Arc<Credential>);

impl ProvideCredentials for SourceKeys {
    fn provide_credentials<'a>(&'a self) -> future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        future::ProvideCredentials::new(async move {
            self.0
                .keys()
                .await
                .map_err(|e| CredentialsError::provider_error(e.to_string()))
        })
    }
}

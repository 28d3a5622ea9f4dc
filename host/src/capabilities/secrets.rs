//! The `secrets` capability: a monitor reads the secrets its config declares for it, by name.
//!
//! The host fetches them (Secrets Manager and SSM through the `aws` host plugin, with the
//! credential the operator named; env vars of the host) and caches each for
//! `secrets_cache_ttl`, shared by every instance. Concurrent first requests for one secret
//! wait for a single fetch. Values are zeroized when dropped and never logged; an audit event
//! per `get` names the monitor, the secret, the cache outcome and the result.
//!
//! Owns the `secrets:` entries of a monitor ([`SecretSource`]).

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_json::{Value, json};
use wasmtime::component::{HasSelf, Linker};
use zeroize::Zeroizing;

use super::guest_error::guest_error;
use super::log::GuestLog;
use crate::audit::{RefusalSink, shorten};
use crate::aws::AwsProvider;
use crate::bindings::sentinela::plugin::secrets;
use crate::bindings::sentinela::plugin::types::Error;
use crate::config::values::CredentialName;

/// The interfaces this capability serves.
pub const INTERFACES: &[&str] = &["secrets"];

/// Links `secrets` for store data `T`; `get` finds the instance's secrets in it.
pub fn add_to_linker<T: Send + 'static>(
    linker: &mut Linker<T>,
    get: fn(&mut T) -> &mut SecretsInstance,
) -> wasmtime::Result<()> {
    secrets::add_to_linker::<T, HasSelf<SecretsInstance>>(linker, get)
}

/// A secret's value: redacted in `Debug`, zeroized on drop.
pub struct SecretValue(Zeroizing<String>);

impl SecretValue {
    fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SecretValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretValue(** redacted **)")
    }
}

/// A secret's last fetch: its value, or the error it failed with, and when.
type Slot = Arc<tokio::sync::Mutex<Option<(Result<Arc<SecretValue>, Error>, Instant)>>>;

/// How long a failed fetch (not found, denied, unavailable) is served from the cache: a
/// monitor asking for a missing secret in a loop costs one upstream request per this long,
/// not one per call.
const FAILED_FETCH_TTL: Duration = Duration::from_secs(10);

/// The process's secret cache.
pub struct SecretStore {
    /// Fetches made (cache misses that reached a source).
    fetches: std::sync::atomic::AtomicU64,
    ttl: Duration,
    aws: Option<Arc<AwsProvider>>,
    slots: Mutex<HashMap<SecretSource, Slot>>,
}

impl SecretStore {
    /// A store caching values for `ttl` (`secrets_ttl`); without `aws`, only `env:` sources work.
    pub fn new(ttl: Duration, aws: Option<Arc<AwsProvider>>) -> SecretStore {
        SecretStore {
            fetches: Default::default(),
            ttl,
            aws,
            slots: Mutex::new(HashMap::new()),
        }
    }

    /// The value and whether it came from the cache.
    async fn get(&self, source: &SecretSource) -> Result<(Arc<SecretValue>, bool), Error> {
        let slot = self
            .slots
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(source.clone())
            .or_default()
            .clone();
        // Held across the fetch: concurrent first requests wait for this one.
        let mut cached = slot.lock().await;
        if let Some((result, fetched)) = cached.as_ref() {
            let ttl = if result.is_ok() {
                self.ttl
            } else {
                FAILED_FETCH_TTL.min(self.ttl)
            };
            if fetched.elapsed() < ttl {
                return result.clone().map(|value| (value, true));
            }
        }
        self.fetches
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let result = self
            .fetch(source)
            .await
            .map(|value| Arc::new(SecretValue(Zeroizing::new(value))));
        *cached = Some((result.clone(), Instant::now()));
        result.map(|value| (value, false))
    }

    async fn fetch(&self, source: &SecretSource) -> Result<String, Error> {
        let aws = || {
            self.aws
                .as_ref()
                .ok_or_else(|| Error::Unavailable("the aws host plugin is not enabled".into()))
        };
        match source {
            SecretSource::Env { var } => std::env::var(var)
                .map_err(|_| Error::NotFound(format!("environment variable {var} is not set"))),
            SecretSource::Ssm {
                name,
                credential,
                region,
            } => {
                let region = region
                    .clone()
                    .or_else(|| credential_region(aws().ok(), credential))
                    .unwrap_or_else(|| "us-east-1".into());
                let input = json!({ "Name": name, "WithDecryption": true }).to_string();
                let output = aws()?
                    .host_json(credential, "ssm", &region, "GetParameter", &input, name)
                    .await
                    .map_err(|e| not_found_as("parameter", name, guest_error(e)))?;
                let output: Value = serde_json::from_str(&output)
                    .map_err(|_| Error::Unavailable("unreadable SSM answer".into()))?;
                output["Parameter"]["Value"]
                    .as_str()
                    .map(str::to_owned)
                    .ok_or_else(|| Error::NotFound(format!("parameter {name} has no value")))
            }
            SecretSource::SecretsManager {
                secret_id,
                field,
                version_stage,
                credential,
                region,
            } => {
                // Region: the ARN's, else the declaration's, else the credential's, else us-east-1.
                let region = arn_region(secret_id)
                    .or_else(|| region.clone())
                    .or_else(|| credential_region(aws().ok(), credential))
                    .unwrap_or_else(|| "us-east-1".into());
                let mut input = json!({ "SecretId": secret_id });
                if let Some(stage) = version_stage {
                    input["VersionStage"] = json!(stage);
                }
                let output = aws()?
                    .host_json(
                        credential,
                        "secretsmanager",
                        &region,
                        "GetSecretValue",
                        &input.to_string(),
                        secret_id,
                    )
                    .await
                    .map_err(|e| not_found_as("secret", secret_id, guest_error(e)))?;
                let output: Value = serde_json::from_str(&output)
                    .map_err(|_| Error::Unavailable("unreadable Secrets Manager answer".into()))?;
                let text = output["SecretString"].as_str().ok_or_else(|| {
                    Error::NotFound(format!("secret {secret_id} has no SecretString"))
                })?;
                match field {
                    None => Ok(text.to_owned()),
                    Some(field) => {
                        let document: Value = serde_json::from_str(text)
                            .map_err(|_| Error::Invalid(format!("secret {secret_id} is not a JSON object, so it has no field '{field}'")))?;
                        match &document[field] {
                            Value::String(value) => Ok(value.clone()),
                            Value::Null => Err(Error::NotFound(format!(
                                "secret {secret_id} has no field '{field}'"
                            ))),
                            other => Ok(other.to_string()),
                        }
                    }
                }
            }
        }
    }
}

fn credential_region(
    aws: Option<&Arc<AwsProvider>>,
    credential: &CredentialName,
) -> Option<String> {
    aws?.credentials.get(credential).ok()?.region.clone()
}

/// `arn:aws:secretsmanager:REGION:ACCOUNT:secret:NAME` → REGION.
fn arn_region(id: &str) -> Option<String> {
    let mut parts = id.split(':');
    (parts.next()? == "arn").then_some(())?;
    let (_partition, service, region) = (parts.next()?, parts.next()?, parts.next()?);
    (service == "secretsmanager" && !region.is_empty()).then(|| region.to_owned())
}

/// AWS's "not found" errors become `not-found` naming the thing (never a value).
fn not_found_as(what: &str, name: &str, error: Error) -> Error {
    match error {
        Error::Aws(aws) if aws.code.contains("NotFound") => {
            Error::NotFound(format!("{what} {name} not found"))
        }
        other => other,
    }
}

/// The secrets one monitor's config declares, by name.
pub type DeclaredSecrets = Arc<BTreeMap<String, SecretSource>>;

/// A monitor's view of the secret store: the names its config declares.
pub struct SecretsInstance {
    /// The monitor, for refusals and audit events.
    pub monitor: Arc<str>,
    /// The call's log budget: refusal lines are charged to it.
    pub log: GuestLog,
    /// The monitor's `secrets:`: the names it may read and where each comes from.
    pub declared: DeclaredSecrets,
    /// The process's secret cache; `None` only for hosts built without one (benchmarks).
    pub store: Option<Arc<SecretStore>>,
}

impl SecretsInstance {
    /// `secrets.get`: the value of a declared secret, from the cache or its source; audited.
    pub async fn get(&self, name: &str) -> Result<String, Error> {
        let started = Instant::now();
        let (result, cache) = self.lookup(name).await;
        let outcome = match &result {
            Ok(_) => "ok",
            Err(Error::Denied(_)) => "denied",
            Err(Error::NotFound(_)) => "not-found",
            Err(Error::Invalid(_)) => "invalid",
            Err(_) => "error",
        };
        let (source, credential) = match self.declared.get(name) {
            Some(SecretSource::SecretsManager { credential, .. }) => {
                ("secretsmanager", credential.as_str())
            }
            Some(SecretSource::Ssm { credential, .. }) => ("ssm", credential.as_str()),
            Some(SecretSource::Env { .. }) => ("env", ""),
            None => ("", ""),
        };
        if matches!(outcome, "denied" | "invalid") {
            // Refused before any fetch: counted, audited once per kind at the end of the call.
            self.log
                .count_refusal(outcome, "", "secrets", "get", &shorten(name));
            return result.map(|value| value.expose().to_owned());
        }
        crate::telemetry::METRICS.host_calls("monitor", "secrets", "get", outcome, 1);
        tracing::info!(
            target: crate::audit::TARGET,
            actor = "monitor",
            monitor = %self.monitor,
            secret = %shorten(name),
            source,
            credential,
            cache,
            outcome,
            latency_ms = started.elapsed().as_secs_f64() * 1e3,
            "secrets.get"
        );
        result.map(|value| value.expose().to_owned())
    }

    async fn lookup(&self, name: &str) -> (Result<Arc<SecretValue>, Error>, &'static str) {
        let valid =
            !name.is_empty() && name.len() <= 256 && name.bytes().all(|b| b.is_ascii_graphic());
        if !valid {
            return (
                Err(Error::Invalid(format!(
                    "invalid secret name '{}'",
                    shorten(name)
                ))),
                "none",
            );
        }
        let Some(source) = self.declared.get(name) else {
            if self.log.allow_refusal_line() {
                tracing::warn!(
                    missing_grant = shorten(name).as_str(),
                    "refused: secret not declared for this monitor"
                );
            }
            return (
                Err(Error::Denied(format!(
                    "secret '{}' is not declared for monitor '{}'",
                    shorten(name),
                    self.monitor
                ))),
                "none",
            );
        };
        let Some(store) = &self.store else {
            return (
                Err(Error::Unavailable("this host has no secret store".into())),
                "none",
            );
        };
        match store.get(source).await {
            Ok((value, true)) => (Ok(value), "hit"),
            Ok((value, false)) => (Ok(value), "miss"),
            Err(e) => (Err(e), "miss"),
        }
    }
}

impl secrets::Host for SecretsInstance {
    #[tracing::instrument(
        name = "host_call",
        skip_all,
        fields(capability = "secrets", function = "get")
    )]
    async fn get(&mut self, name: String) -> Result<String, Error> {
        SecretsInstance::get(self, &name).await
    }
}

/// Where a secret comes from. Exactly one of `secretsmanager`, `ssm` or `env`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Deserialize)]
#[serde(try_from = "RawSecret")]
pub enum SecretSource {
    /// A Secrets Manager secret (name or full ARN), optionally one JSON field of it.
    SecretsManager {
        /// The secret's name or ARN.
        secret_id: String,
        /// A key of a JSON secret to read instead of the whole value.
        field: Option<String>,
        /// The version stage (`AWSCURRENT` when absent).
        version_stage: Option<String>,
        /// The credential the host reads it with.
        credential: CredentialName,
        /// The region, else the credential's.
        region: Option<String>,
    },
    /// An SSM parameter, SecureStrings decrypted.
    Ssm {
        /// The parameter's name; SecureString values are decrypted.
        name: String,
        /// The credential the host reads it with.
        credential: CredentialName,
        /// The region, else the credential's.
        region: Option<String>,
    },
    /// An environment variable of the host.
    Env {
        /// The variable's name.
        var: String,
    },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSecret {
    secretsmanager: Option<String>,
    ssm: Option<String>,
    env: Option<String>,
    field: Option<String>,
    version_stage: Option<String>,
    credential: Option<String>,
    region: Option<String>,
}

impl TryFrom<RawSecret> for SecretSource {
    type Error = String;
    fn try_from(raw: RawSecret) -> Result<SecretSource, String> {
        // The operator may name APPLICATION here: the monitor cannot choose the credential.
        let credential = |kind: &str| match &raw.credential {
            Some(name) => CredentialName::parse(name),
            None => Err(format!(
                "a {kind} secret needs 'credential' (the credential the host fetches it with)"
            )),
        };
        let only_for_secretsmanager = |what: &str, set: bool| {
            if set {
                Err(format!("'{what}' applies to secretsmanager secrets only"))
            } else {
                Ok(())
            }
        };
        match (&raw.secretsmanager, &raw.ssm, &raw.env) {
            (Some(id), None, None) => Ok(SecretSource::SecretsManager {
                secret_id: id.clone(),
                field: raw.field.clone(),
                version_stage: raw.version_stage.clone(),
                credential: credential("secretsmanager")?,
                region: raw.region.clone(),
            }),
            (None, Some(name), None) => {
                only_for_secretsmanager("field", raw.field.is_some())?;
                only_for_secretsmanager("version_stage", raw.version_stage.is_some())?;
                Ok(SecretSource::Ssm {
                    name: name.clone(),
                    credential: credential("ssm")?,
                    region: raw.region.clone(),
                })
            }
            (None, None, Some(var)) => {
                only_for_secretsmanager("field", raw.field.is_some())?;
                only_for_secretsmanager("version_stage", raw.version_stage.is_some())?;
                if raw.credential.is_some() || raw.region.is_some() {
                    return Err("an env secret takes no 'credential' or 'region'".into());
                }
                Ok(SecretSource::Env { var: var.clone() })
            }
            _ => Err("a secret needs exactly one of 'secretsmanager', 'ssm' or 'env'".into()),
        }
    }
}

impl SecretSource {
    /// The credential an AWS source is read with; `None` for `env:`.
    pub fn credential(&self) -> Option<&CredentialName> {
        match self {
            SecretSource::SecretsManager { credential, .. }
            | SecretSource::Ssm { credential, .. } => Some(credential),
            SecretSource::Env { .. } => None,
        }
    }
}

impl fmt::Display for SecretSource {
    /// Where the value comes from, never the value.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SecretSource::SecretsManager {
                secret_id,
                field,
                credential,
                ..
            } => {
                write!(f, "secretsmanager {secret_id}")?;
                if let Some(field) = field {
                    write!(f, " field {field}")?;
                }
                write!(f, " (credential {credential})")
            }
            SecretSource::Ssm {
                name, credential, ..
            } => write!(f, "ssm {name} (credential {credential})"),
            SecretSource::Env { var } => write!(f, "env {var}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_first_reads_make_one_fetch_until_the_ttl_passes() {
        let store = Arc::new(SecretStore::new(Duration::from_millis(300), None));
        let source = SecretSource::Env { var: "PATH".into() };
        let readers: Vec<_> = (0..16)
            .map(|_| {
                let (store, source) = (store.clone(), source.clone());
                tokio::spawn(
                    async move { store.get(&source).await.map(|(v, _)| v.expose().to_owned()) },
                )
            })
            .collect();
        for reader in readers {
            assert!(!reader.await.unwrap().unwrap().is_empty());
        }
        assert_eq!(store.fetches.load(std::sync::atomic::Ordering::Relaxed), 1);
        tokio::time::sleep(Duration::from_millis(350)).await; // let the TTL pass
        let (_, cached) = store.get(&source).await.unwrap();
        assert!(!cached, "an expired value was served");
        assert_eq!(store.fetches.load(std::sync::atomic::Ordering::Relaxed), 2);
    }

    #[tokio::test]
    async fn failed_fetches_are_cached_briefly() {
        let store = SecretStore::new(Duration::from_secs(300), None);
        let missing = SecretSource::Env {
            var: "SENTINELA_TEST_NO_SUCH_VARIABLE".into(),
        };
        for _ in 0..100 {
            assert!(matches!(store.get(&missing).await, Err(Error::NotFound(_))));
        }
        assert_eq!(store.fetches.load(std::sync::atomic::Ordering::Relaxed), 1);
    }

    #[test]
    fn values_are_redacted_and_arns_give_regions() {
        let value = SecretValue(Zeroizing::new("hunter2".into()));
        assert!(!format!("{value:?}").contains("hunter2"));
        assert_eq!(
            arn_region("arn:aws:secretsmanager:eu-west-2:123456789012:secret:db-AbCdEf"),
            Some("eu-west-2".into())
        );
        assert_eq!(arn_region("prod/db"), None);
    }
}

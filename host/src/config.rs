//! The YAML configuration: parsing, defaults and validation.
//!
//! Validation that can be expressed per value (a cron expression, a size, a credential name, a
//! plugin path) lives in that value's `Deserialize` impl, so that serde_yaml reports it with
//! the key path, line and column. Every error is prefixed with the config file's path.

use std::cell::RefCell;
use std::collections::HashSet;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde::Deserialize;
use serde::de::{self, Deserializer, SeqAccess, Visitor};

pub use crate::compiler::CompileLimits;
pub use crate::grants::AwsOperationGrant;
use crate::host_plugins::{HostPlugin, HostPlugins};

/// A loaded, validated configuration.
#[derive(Debug)]
pub struct Config {
    /// The file it was read from.
    pub path: PathBuf,
    /// Host plugins named by the `plugins:` key (`SENTINELA_PLUGINS` may override them).
    pub plugins: Vec<HostPlugin>,
    pub application_queue: ApplicationQueueConfig,
    pub executor: ExecutorConfig,
    /// Where compiled plugin code is cached; `None` means the default location.
    pub cache_dir: Option<PathBuf>,
    /// Limits on compiling one plugin.
    pub compile: CompileLimits,
    /// Credential connectors, by credential name.
    pub credentials: std::collections::BTreeMap<CredentialName, ConnectorConfig>,
    /// How long a fetched secret is served from the cache.
    pub secrets_cache_ttl: Duration,
    /// SQS queues for the `queue` interface, by name.
    pub queues: std::collections::BTreeMap<String, QueueDeclaration>,
    /// Where issues are kept.
    pub store: StoreConfig,
    pub monitors: Vec<MonitorConfig>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    plugins: Vec<HostPlugin>,
    #[serde(default)]
    application_queue: ApplicationQueueConfig,
    #[serde(default)]
    executor: ExecutorConfig,
    #[serde(default)]
    cache_dir: Option<ConfigPath>,
    #[serde(default)]
    compile: RawCompileLimits,
    #[serde(default)]
    queues: std::collections::BTreeMap<String, QueueDeclaration>,
    #[serde(default)]
    credentials: std::collections::BTreeMap<String, ConnectorConfig>,
    #[serde(default = "default_secrets_cache_ttl")]
    secrets_cache_ttl: Seconds,
    #[serde(default)]
    store: RawStore,
    monitors: Monitors,
}

/// `compile:`: limits on compiling one plugin (see [`CompileLimits`]).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCompileLimits {
    #[serde(default = "default_max_plugin_bytes")]
    max_plugin_bytes: ByteSize,
    #[serde(default = "default_compile_timeout")]
    timeout: Seconds,
    #[serde(default = "default_compile_memory")]
    memory: ByteSize,
}

impl Default for RawCompileLimits {
    fn default() -> Self {
        RawCompileLimits {
            max_plugin_bytes: default_max_plugin_bytes(),
            timeout: default_compile_timeout(),
            memory: default_compile_memory(),
        }
    }
}

fn default_max_plugin_bytes() -> ByteSize {
    ByteSize(CompileLimits::default().max_plugin_bytes)
}

fn default_compile_timeout() -> Seconds {
    Seconds(CompileLimits::default().timeout)
}

fn default_compile_memory() -> ByteSize {
    ByteSize(CompileLimits::default().memory)
}

/// Where issues are kept (`store:`).
#[derive(Debug, Clone)]
pub struct StoreConfig {
    pub kind: StoreKind,
    /// SQLite: the database file; by default `<config file name>.db` next to the config.
    pub path: PathBuf,
    /// PostgreSQL: the connection URL. Prefer `url_env`: the URL may hold a password.
    pub url: Option<String>,
    /// PostgreSQL: the environment variable holding the URL when `url` is not set.
    pub url_env: String,
    /// PostgreSQL: connections in the pool (SQLite uses at most 4).
    pub pool_size: u32,
    /// A queue of the `queues:` section that receives every issue event as a JSON message.
    pub events_queue: Option<String>,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            kind: StoreKind::Sqlite,
            path: PathBuf::from("sentinela.db"),
            url: None,
            url_env: StoreConfig::DEFAULT_URL_ENV.to_owned(),
            pool_size: 5,
            events_queue: None,
        }
    }
}

impl StoreConfig {
    pub const DEFAULT_URL_ENV: &'static str = "SENTINELA_DATABASE_URL";

    /// The PostgreSQL URL, from `url` or the `url_env` variable.
    pub fn postgres_url(&self) -> Result<String> {
        if let Some(url) = &self.url {
            return Ok(url.clone());
        }
        match std::env::var(&self.url_env) {
            Ok(url) if !url.is_empty() => Ok(url),
            _ => bail!(
                "store: type postgres needs a connection URL: set store.url, or the {} variable",
                self.url_env
            ),
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum StoreKind {
    /// One SQLite file: enough for one `sentinela run` process.
    #[default]
    Sqlite,
    /// A PostgreSQL database shared by every executor.
    Postgres,
}

impl<'de> Deserialize<'de> for StoreKind {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = String::deserialize(deserializer)?;
        match name.as_str() {
            "sqlite" => Ok(StoreKind::Sqlite),
            "postgres" | "postgresql" => Ok(StoreKind::Postgres),
            other => Err(de::Error::custom(format!(
                "unknown store type '{other}' (expected sqlite or postgres)"
            ))),
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStore {
    #[serde(rename = "type", default)]
    kind: StoreKind,
    #[serde(default)]
    path: Option<ConfigPath>,
    #[serde(default)]
    url: Option<String>,
    #[serde(default)]
    url_env: Option<String>,
    #[serde(default)]
    pool_size: Option<u32>,
    #[serde(default)]
    events_queue: Option<String>,
}

impl RawStore {
    /// Checks the keys that depend on the type; `config` is the config file's path.
    fn into_config(self, config: &Path) -> Result<StoreConfig, String> {
        let defaults = StoreConfig::default();
        let postgres_only = [
            ("url", self.url.is_some()),
            ("url_env", self.url_env.is_some()),
            ("pool_size", self.pool_size.is_some()),
        ];
        match self.kind {
            StoreKind::Sqlite => {
                if let Some((key, _)) = postgres_only.iter().find(|(_, set)| *set) {
                    return Err(format!(
                        "store.{key} applies to PostgreSQL stores only (type: postgres)"
                    ));
                }
            }
            StoreKind::Postgres => {
                if self.path.is_some() {
                    return Err("store.path applies to SQLite stores only (type: sqlite)".into());
                }
                if let Some(url) = &self.url
                    && !(url.starts_with("postgres://") || url.starts_with("postgresql://"))
                {
                    return Err("store.url must start with postgres:// or postgresql://".into());
                }
            }
        }
        let pool_size = self.pool_size.unwrap_or(defaults.pool_size);
        if !(1..=100).contains(&pool_size) {
            return Err("store.pool_size must be between 1 and 100".into());
        }
        let path = match self.path {
            Some(path) => path.0,
            None => {
                let stem = config.file_stem().unwrap_or_default().to_string_lossy();
                let dir = config.parent().filter(|d| !d.as_os_str().is_empty());
                dir.unwrap_or(Path::new(".")).join(format!("{stem}.db"))
            }
        };
        Ok(StoreConfig {
            kind: self.kind,
            path,
            url: self.url,
            url_env: self.url_env.unwrap_or(defaults.url_env),
            pool_size,
            events_queue: self.events_queue,
        })
    }
}

/// The queue that carries `process_monitor`, `event` and `request` messages to executors.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApplicationQueueConfig {
    #[serde(rename = "type")]
    pub kind: QueueKind,
    /// SQS only: the queue name (looked up with GetQueueUrl at start).
    #[serde(default)]
    pub name: Option<String>,
    /// SQS only: the queue URL; checked against the URL of `name`.
    #[serde(default)]
    pub url: Option<String>,
    /// SQS only: the region, else `AWS_APPLICATION_REGION`.
    #[serde(default)]
    pub region: Option<String>,
    /// SQS only: create the queue at start if it does not exist.
    #[serde(default)]
    pub create_queue: bool,
    /// Long-poll wait of one receive, in seconds.
    #[serde(default = "ApplicationQueueConfig::default_wait")]
    pub queue_wait_message_time: u32,
    /// Seconds between visibility extensions while a message is processed; each receive and
    /// extension hides the message for twice this long.
    #[serde(default = "ApplicationQueueConfig::default_visibility")]
    pub queue_visibility_time: u32,
    /// SQS only: a message received this many times without being processed is moved to
    /// `dead_letter_queue` (or dropped with an error log when there is none).
    #[serde(default = "ApplicationQueueConfig::default_max_receive_count")]
    pub max_receive_count: u32,
    /// SQS only: the name of a queue that takes messages that cannot be processed.
    #[serde(default)]
    pub dead_letter_queue: Option<String>,
}

impl ApplicationQueueConfig {
    fn default_wait() -> u32 {
        2
    }
    fn default_visibility() -> u32 {
        15
    }
    fn default_max_receive_count() -> u32 {
        5
    }

    /// Checks the keys that depend on the type, for errors found after parsing.
    fn validate(&self) -> Result<(), String> {
        let sqs_only = [
            ("name", self.name.is_some()),
            ("url", self.url.is_some()),
            ("region", self.region.is_some()),
            ("create_queue", self.create_queue),
            ("dead_letter_queue", self.dead_letter_queue.is_some()),
        ];
        match self.kind {
            QueueKind::Internal => {
                if let Some((key, _)) = sqs_only.iter().find(|(_, set)| *set) {
                    return Err(format!(
                        "application_queue.{key} applies to SQS queues only (type: plugin.aws.sqs)"
                    ));
                }
            }
            QueueKind::Sqs => {
                if self.name.is_none() {
                    return Err("application_queue.name is required for an SQS queue".into());
                }
                if !(1..=20).contains(&self.queue_wait_message_time) {
                    return Err("application_queue.queue_wait_message_time must be between 1 and 20 seconds (SQS's long-poll range)".into());
                }
                if !(1..=21_600).contains(&self.queue_visibility_time) {
                    return Err("application_queue.queue_visibility_time must be between 1 and 21600 seconds".into());
                }
                if self.max_receive_count == 0 {
                    return Err("application_queue.max_receive_count must be at least 1".into());
                }
            }
        }
        Ok(())
    }
}

impl Default for ApplicationQueueConfig {
    fn default() -> Self {
        ApplicationQueueConfig {
            kind: QueueKind::Internal,
            name: None,
            url: None,
            region: None,
            create_queue: false,
            queue_wait_message_time: Self::default_wait(),
            queue_visibility_time: Self::default_visibility(),
            max_receive_count: Self::default_max_receive_count(),
            dead_letter_queue: None,
        }
    }
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub enum QueueKind {
    /// In-process queue: one `sentinela run` process schedules and executes.
    #[default]
    Internal,
    /// An SQS queue shared by any number of processes (host plugin `aws`).
    Sqs,
}

impl<'de> Deserialize<'de> for QueueKind {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = String::deserialize(deserializer)?;
        match name.as_str() {
            "internal" => Ok(QueueKind::Internal),
            "plugin.aws.sqs" | "plugin.aws.queues.sqs" => Ok(QueueKind::Sqs),
            other => Err(de::Error::custom(format!(
                "invalid queue type '{other}', expected 'internal' or 'plugin.aws.sqs'"
            ))),
        }
    }
}

/// How many monitor tasks run at once in this process.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExecutorConfig {
    #[serde(default = "ExecutorConfig::default_concurrency")]
    pub concurrency: Concurrency,
    /// After SIGTERM, how long running tasks may take to finish before their messages are
    /// released back to the queue.
    #[serde(default = "ExecutorConfig::default_shutdown_grace")]
    pub shutdown_grace: Seconds,
}

impl ExecutorConfig {
    /// Sentinela's `executor_concurrency` default.
    pub const DEFAULT_CONCURRENCY: usize = 5;
    fn default_concurrency() -> Concurrency {
        Concurrency(Self::DEFAULT_CONCURRENCY)
    }
    fn default_shutdown_grace() -> Seconds {
        Seconds(Duration::from_secs(30))
    }
}

impl Default for ExecutorConfig {
    fn default() -> Self {
        ExecutorConfig {
            concurrency: Self::default_concurrency(),
            shutdown_grace: Self::default_shutdown_grace(),
        }
    }
}

/// A task count between 1 and [`Concurrency::MAX`].
#[derive(Debug, Clone, Copy)]
pub struct Concurrency(pub usize);

impl Concurrency {
    pub const MAX: usize = 256;
}

impl<'de> Deserialize<'de> for Concurrency {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let n = usize::deserialize(deserializer)?;
        if n == 0 || n > Self::MAX {
            return Err(de::Error::custom(format!(
                "concurrency must be between 1 and {}, got {n}",
                Self::MAX
            )));
        }
        Ok(Concurrency(n))
    }
}

/// One monitor: a plugin, when to run it, what it may use and how much.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MonitorConfig {
    pub name: MonitorName,
    pub plugin: ConfigPath,
    #[serde(default)]
    pub search_cron: Option<Schedule>,
    #[serde(default)]
    pub update_cron: Option<Schedule>,
    #[serde(default)]
    pub limits: Limits,
    #[serde(default)]
    pub grants: Grants,
    /// Secrets this monitor can read with `secrets.get(name)`, by name.
    #[serde(default)]
    pub secrets: std::collections::BTreeMap<String, SecretSource>,
}

/// Where a secret comes from. Exactly one of `secretsmanager`, `ssm` or `env`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Deserialize)]
#[serde(try_from = "RawSecret")]
pub enum SecretSource {
    /// A Secrets Manager secret (name or full ARN), optionally one JSON field of it.
    SecretsManager {
        secret_id: String,
        field: Option<String>,
        version_stage: Option<String>,
        credential: CredentialName,
        region: Option<String>,
    },
    /// An SSM parameter, SecureStrings decrypted.
    Ssm {
        name: String,
        credential: CredentialName,
        region: Option<String>,
    },
    /// An environment variable of the host.
    Env { var: String },
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

/// The monitor list; names must be unique.
struct Monitors(Vec<MonitorConfig>);

impl fmt::Debug for Monitors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl<'de> Deserialize<'de> for Monitors {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct MonitorsVisitor;
        impl<'de> Visitor<'de> for MonitorsVisitor {
            type Value = Monitors;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a list of monitors")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Monitors, A::Error> {
                let mut monitors: Vec<MonitorConfig> = Vec::new();
                let mut names = HashSet::new();
                while let Some(monitor) = seq.next_element::<MonitorConfig>()? {
                    if !names.insert(monitor.name.0.clone()) {
                        return Err(de::Error::custom(format!(
                            "duplicate monitor name '{}'",
                            monitor.name
                        )));
                    }
                    monitors.push(monitor);
                }
                Ok(Monitors(monitors))
            }
        }
        deserializer.deserialize_seq(MonitorsVisitor)
    }
}

/// A monitor's name: lowercase letters, digits, `-` and `_`, starting with a letter; it tags
/// every log line and keys the monitor's issues.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MonitorName(String);

impl MonitorName {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for MonitorName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for MonitorName {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let valid = s.len() <= 64
            && s.starts_with(|c: char| c.is_ascii_lowercase())
            && s.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
        if valid {
            Ok(MonitorName(s.to_owned()))
        } else {
            Err(format!(
                "invalid monitor name '{s}': use 1 to 64 lowercase letters, digits, '-' or '_', \
                 starting with a letter"
            ))
        }
    }
}

impl<'de> Deserialize<'de> for MonitorName {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer)?
            .parse()
            .map_err(de::Error::custom)
    }
}

/// A cron expression: 5 fields (minute precision, as Sentinela) or 6 with leading seconds.
#[derive(Clone)]
pub struct Schedule {
    expression: String,
    cron: croner::Cron,
}

impl Schedule {
    /// The first time strictly after `after` that matches.
    pub fn next_after(
        &self,
        after: chrono::DateTime<chrono::Utc>,
    ) -> Option<chrono::DateTime<chrono::Utc>> {
        self.cron.find_next_occurrence(&after, false).ok()
    }

    pub fn expression(&self) -> &str {
        &self.expression
    }
}

impl fmt::Debug for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Schedule({:?})", self.expression)
    }
}

impl FromStr for Schedule {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let cron = croner::Cron::new(s)
            .with_seconds_optional()
            .parse()
            .map_err(|e| format!("invalid cron expression '{s}': {e}"))?;
        // croner accepts expressions that never fire (e.g. February 31st); reject them here
        // rather than having a monitor silently never run.
        if cron
            .find_next_occurrence(&chrono::Utc::now(), false)
            .is_err()
        {
            return Err(format!("cron expression '{s}' never fires"));
        }
        Ok(Schedule {
            expression: s.to_owned(),
            cron,
        })
    }
}

impl<'de> Deserialize<'de> for Schedule {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer)?
            .parse()
            .map_err(de::Error::custom)
    }
}

/// Per-invocation resource limits of a monitor.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Linear memory, summed over the instance's memories; a `memory.grow` past it traps.
    pub memory: ByteSize,
    /// Wall-clock time for one call into the monitor, host calls included.
    pub timeout: Seconds,
    /// Elements summed over the instance's tables.
    pub table_elements: u32,
    /// Core instances the component may create (a Rust wasip2 component uses a handful).
    pub instances: u32,
    /// Linear memories the component's core instances may create, together.
    pub memories: u32,
    /// Tables the component's core instances may create, together.
    pub tables: u32,
    /// Bytes of log (the `log` interface plus stdout and stderr, and the host's lines about
    /// refused calls) kept per invocation.
    pub log_bytes: ByteSize,
    /// Lines of log kept per invocation, empty lines included.
    pub log_lines: u32,
    /// AWS requests (`aws-call` and `queue`) one invocation may send; none: no cap.
    pub aws_requests: Option<u32>,
    /// Bytes the guest may hand the host in one transfer (one host call's arguments, or one
    /// export's result), counted by wasmtime as it lifts them, before it copies: list
    /// elements at their host size, strings by length. Past it the call is stopped.
    pub transfer_bytes: ByteSize,
    /// Issues one `search` or `update` may return; a longer result is refused as a whole.
    pub issues_per_call: u32,
    /// Active issues the monitor may have in the store; a `search` that would open more is
    /// refused as a whole.
    pub active_issues: u32,
}

impl Limits {
    /// The largest `memory` a monitor may ask for: the pooling allocator reserves this much
    /// address space per memory slot.
    pub const MAX_MEMORY: u64 = 4 << 30;
    pub const MAX_TIMEOUT: Duration = Duration::from_secs(3600);
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            memory: ByteSize(128 << 20),
            timeout: Seconds(Duration::from_secs(60)),
            table_elements: 20_000,
            instances: 32,
            memories: 16,
            tables: 64,
            log_bytes: ByteSize(64 << 10),
            log_lines: 1000,
            aws_requests: None,
            transfer_bytes: ByteSize(16 << 20),
            issues_per_call: 1000,
            active_issues: 10_000,
        }
    }
}

/// A byte count: an integer, or a number with a unit (`KiB`, `MiB`, `GiB`, `KB`, `MB`, `GB`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteSize(pub u64);

impl FromStr for ByteSize {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let t = s.trim();
        let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
        let (digits, unit) = t.split_at(split);
        let n: u64 = digits.parse().map_err(|_| format!("invalid size '{s}'"))?;
        let mult: u64 = match unit.trim() {
            "" | "B" => 1,
            "KiB" => 1 << 10,
            "MiB" => 1 << 20,
            "GiB" => 1 << 30,
            "KB" => 1_000,
            "MB" => 1_000_000,
            "GB" => 1_000_000_000,
            other => {
                return Err(format!(
                    "invalid size unit '{other}' in '{s}', use KiB, MiB or GiB"
                ));
            }
        };
        n.checked_mul(mult)
            .map(ByteSize)
            .ok_or_else(|| format!("size '{s}' is too large"))
    }
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Int(u64),
            Text(String),
        }
        match Raw::deserialize(deserializer)? {
            Raw::Int(n) => Ok(ByteSize(n)),
            Raw::Text(s) => s.parse().map_err(de::Error::custom),
        }
    }
}

/// A duration: a number of seconds, or a number with a unit (`ms`, `s`, `m`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Seconds(pub Duration);

impl Seconds {
    /// The longest duration any setting takes (STS's longest role session).
    pub const MAX: Duration = Duration::from_secs(12 * 3600);
}

impl FromStr for Seconds {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let t = s.trim();
        let split = t
            .find(|c: char| !c.is_ascii_digit() && c != '.')
            .unwrap_or(t.len());
        let (number, unit) = t.split_at(split);
        let n: f64 = number
            .parse()
            .map_err(|_| format!("invalid duration '{s}'"))?;
        let secs = match unit.trim() {
            "" | "s" => n,
            "ms" => n / 1000.0,
            "m" => n * 60.0,
            "h" => n * 3600.0,
            other => {
                return Err(format!(
                    "invalid duration unit '{other}' in '{s}', use ms, s, m or h"
                ));
            }
        };
        Duration::try_from_secs_f64(secs)
            .map(Seconds)
            .map_err(|_| format!("invalid duration '{s}'"))
    }
}

impl<'de> Deserialize<'de> for Seconds {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Number(f64),
            Text(String),
        }
        let parsed = match Raw::deserialize(deserializer)? {
            Raw::Number(n) => Duration::try_from_secs_f64(n)
                .map(Seconds)
                .map_err(|_| format!("invalid duration {n}")),
            Raw::Text(s) => s.parse(),
        };
        match parsed {
            Ok(d) if d.0.is_zero() => Err(de::Error::custom("duration must be greater than zero")),
            Ok(d) if d.0 > Seconds::MAX => Err(de::Error::custom(format!(
                "duration must be at most {} s",
                Seconds::MAX.as_secs()
            ))),
            Ok(d) => Ok(d),
            Err(e) => Err(de::Error::custom(e)),
        }
    }
}

/// What a monitor may use beyond `log`. Everything not listed is denied.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Grants {
    /// Credential names for `aws-call` (host plugin `aws`). Never `APPLICATION`.
    #[serde(default)]
    pub credentials: Vec<CredentialName>,
    /// The `aws-call` operations allowed: `service:Operation`, `service:*`, or
    /// `{op, resources}`. Empty: none (deny by default).
    #[serde(default)]
    pub aws: Vec<AwsOperationGrant>,
    /// Names from the `queues:` section this monitor may use through the `queue` interface.
    #[serde(default)]
    pub queues: Vec<String>,
}

impl Grants {
    /// The host plugin these grants need, if any.
    pub fn required_host_plugin(&self) -> Option<HostPlugin> {
        (!self.credentials.is_empty() || !self.aws.is_empty() || !self.queues.is_empty())
            .then_some(HostPlugin::Aws)
    }
}

/// A credential made by the host from another one (`credentials:` section).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConnectorConfig {
    /// The credential used to make this one (AssumeRole, or reading the SSM parameter).
    pub source: String,
    /// Region of the calls that make it, and its default region; else the source's.
    #[serde(default)]
    pub region: Option<String>,
    #[serde(default)]
    pub assume_role: Option<AssumeRoleConfig>,
    /// An SSM SecureString holding `access_key_id,secret_access_key`.
    #[serde(default)]
    pub ssm_keys: Option<String>,
    /// Credentials are renewed this long before they expire.
    #[serde(default = "default_refresh_window")]
    pub refresh_window: Seconds,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AssumeRoleConfig {
    pub role_arn: String,
    #[serde(default)]
    pub external_id: Option<String>,
    /// Session duration (STS allows 15 minutes to the role's maximum).
    #[serde(default = "default_role_duration")]
    pub duration: Seconds,
    /// An inline session policy (a YAML or JSON map).
    #[serde(default)]
    pub policy: Option<serde_json::Value>,
    #[serde(default)]
    pub policy_arns: Vec<String>,
    #[serde(default)]
    pub tags: std::collections::BTreeMap<String, String>,
    /// Default: `sentinela-{credential name}`, cleansed to STS's alphabet.
    #[serde(default)]
    pub session_name: Option<String>,
}

fn default_refresh_window() -> Seconds {
    Seconds(Duration::from_secs(300))
}

fn default_role_duration() -> Seconds {
    Seconds(Duration::from_secs(3600))
}

/// An SQS queue monitors may use through the `queue` interface, with its own credential.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueueDeclaration {
    /// The queue URL.
    pub url: String,
    /// The credential the host signs with (never `APPLICATION`).
    pub credential: CredentialName,
    /// The region, else `AWS_{credential}_REGION`.
    #[serde(default)]
    pub region: Option<String>,
}

/// A credential name: `[A-Z0-9_]+` after upper-casing, as Sentinela normalises it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CredentialName(String);

impl CredentialName {
    /// The application's own credential: it runs the application queue and is never granted
    /// to a monitor.
    pub const APPLICATION: &'static str = "APPLICATION";

    /// Normalises a name as Sentinela does (upper case) and checks its alphabet.
    pub fn parse(raw: &str) -> Result<CredentialName, String> {
        let name = raw.trim().to_ascii_uppercase();
        if name.is_empty()
            || name.len() > 64
            || !name
                .bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
        {
            return Err(format!(
                "invalid credential name '{raw}': use letters, digits and '_'"
            ));
        }
        Ok(CredentialName(name))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for CredentialName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for CredentialName {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = CredentialName::parse(&String::deserialize(deserializer)?)
            .map_err(de::Error::custom)?;
        if name.0 == Self::APPLICATION {
            return Err(de::Error::custom(
                "the APPLICATION credential belongs to the host and can never be granted to a monitor",
            ));
        }
        Ok(name)
    }
}

fn default_secrets_cache_ttl() -> Seconds {
    Seconds(Duration::from_secs(300))
}

thread_local! {
    /// The directory relative paths resolve against while a config file is being parsed.
    static CONFIG_DIR: RefCell<Option<PathBuf>> = const { RefCell::new(None) };
}

/// A path from the config, resolved against the config file's directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigPath(pub PathBuf);

impl<'de> Deserialize<'de> for ConfigPath {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = PathBuf::from(String::deserialize(deserializer)?);
        if raw.as_os_str().is_empty() {
            return Err(de::Error::custom("path is empty"));
        }
        let resolved = CONFIG_DIR.with(|dir| match dir.borrow().as_deref() {
            Some(dir) if raw.is_relative() => dir.join(&raw),
            _ => raw,
        });
        Ok(ConfigPath(resolved))
    }
}

impl Config {
    /// Reads and validates `path`. Plugin files are checked for existence here; whether they
    /// are valid components is checked when they are loaded.
    pub fn load(path: &Path) -> Result<Config> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read config file {}", path.display()))?;
        Self::parse(path, &text)
    }

    pub fn parse(path: &Path, text: &str) -> Result<Config> {
        let dir = path.parent().map(|p| {
            if p.as_os_str().is_empty() {
                Path::new(".")
            } else {
                p
            }
        });
        CONFIG_DIR.with(|d| *d.borrow_mut() = dir.map(Path::to_path_buf));
        let parsed = serde_yaml::from_str::<RawConfig>(text);
        CONFIG_DIR.with(|d| *d.borrow_mut() = None);
        let raw = match parsed {
            Ok(raw) => raw,
            Err(e) => bail!("{}: {}", path.display(), describe_yaml_error(text, &e)),
        };

        if let Err(e) = raw.application_queue.validate() {
            bail!("{}: {e}", path.display());
        }
        let store = raw
            .store
            .into_config(path)
            .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        if let Some(queue) = &store.events_queue
            && !raw.queues.contains_key(queue)
        {
            bail!(
                "{}: store.events_queue: queue '{queue}' is not declared in the 'queues:' section",
                path.display()
            );
        }
        let mut credentials = std::collections::BTreeMap::new();
        for (name, connector) in &raw.credentials {
            let fail =
                |why: String| anyhow::anyhow!("{}: credentials.{name}: {why}", path.display());
            let parsed = CredentialName::parse(name).map_err(fail)?;
            if parsed.as_str() == CredentialName::APPLICATION {
                return Err(fail(
                    "APPLICATION is the host's own credential and cannot be a connector".into(),
                ));
            }
            let source = CredentialName::parse(&connector.source)
                .map_err(|e| fail(format!("source: {e}")))?;
            if source == parsed {
                return Err(fail("a credential cannot be its own source".into()));
            }
            if connector.assume_role.is_some() == connector.ssm_keys.is_some() {
                return Err(fail(
                    "give exactly one of 'assume_role' or 'ssm_keys'".into(),
                ));
            }
            credentials.insert(parsed, connector.clone());
        }
        for (name, queue) in &raw.queues {
            let valid = !name.is_empty()
                && name.len() <= 80
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
            if !valid {
                bail!(
                    "{}: queues: invalid queue name '{name}': use letters, digits, '-' and '_'",
                    path.display()
                );
            }
            if !(queue.url.starts_with("https://") || queue.url.starts_with("http://")) {
                bail!(
                    "{}: queues.{name}.url: '{}' is not an http(s) URL",
                    path.display(),
                    queue.url
                );
            }
        }
        for (index, monitor) in raw.monitors.0.iter().enumerate() {
            if let Some(queue) = monitor
                .grants
                .queues
                .iter()
                .find(|q| !raw.queues.contains_key(*q))
            {
                bail!(
                    "{}: monitors[{index}].grants.queues: queue '{queue}' is not declared in the 'queues:' section",
                    path.display()
                );
            }
            for (name, source) in &monitor.secrets {
                if let SecretSource::Env { var } = source
                    && let Some(why) = crate::grants::host_secret_variable(var, &store.url_env)
                {
                    let line = line_of_key(text, "env", var)
                        .map(|l| format!(" at line {l}"))
                        .unwrap_or_default();
                    bail!(
                        "{}: monitors[{index}].secrets.{name}.env: '{var}' may not be read by a \
                         monitor: {why}{line}",
                        path.display()
                    );
                }
            }
            if monitor.limits.timeout.0 > Limits::MAX_TIMEOUT {
                bail!(
                    "{}: monitors[{index}].limits.timeout: at most {} s",
                    path.display(),
                    Limits::MAX_TIMEOUT.as_secs()
                );
            }
            if monitor.limits.memory.0 > Limits::MAX_MEMORY {
                bail!(
                    "{}: monitors[{index}].limits.memory: {} bytes is over the maximum of {} bytes (4GiB)",
                    path.display(),
                    monitor.limits.memory.0,
                    Limits::MAX_MEMORY
                );
            }
            if !monitor.plugin.0.is_file() {
                let line = line_of_monitor(text, monitor.name.as_str())
                    .map(|l| format!(" (monitor declared at line {l})"))
                    .unwrap_or_default();
                bail!(
                    "{}: monitors[{index}].plugin: plugin file {} not found{line}",
                    path.display(),
                    monitor.plugin.0.display()
                );
            }
        }

        Ok(Config {
            path: path.to_path_buf(),
            plugins: raw.plugins,
            application_queue: raw.application_queue,
            executor: raw.executor,
            cache_dir: raw.cache_dir.map(|p| p.0),
            compile: CompileLimits {
                max_plugin_bytes: raw.compile.max_plugin_bytes.0,
                timeout: raw.compile.timeout.0,
                memory: raw.compile.memory.0,
            },
            queues: raw.queues,
            store,
            credentials,
            secrets_cache_ttl: raw.secrets_cache_ttl.0,
            monitors: raw.monitors.0,
        })
    }

    /// Host plugins to enable: `SENTINELA_PLUGINS` if set, else the config's `plugins:`.
    /// Checks that every monitor's grants are served by an enabled host plugin.
    pub fn host_plugins(&self, env_value: Option<&str>) -> Result<HostPlugins> {
        let plugins = match env_value {
            Some(value) => HostPlugins::from_env_value(value).context("SENTINELA_PLUGINS")?,
            None => HostPlugins::from_list(&self.plugins),
        };
        if !self.credentials.is_empty() && !plugins.is_enabled(HostPlugin::Aws) {
            bail!(
                "{}: credentials: credential connectors are provided by the 'aws' host plugin, \
                 which is not enabled; set SENTINELA_PLUGINS=aws",
                self.path.display()
            );
        }
        if !self.queues.is_empty() && !plugins.is_enabled(HostPlugin::Aws) {
            bail!(
                "{}: queues: SQS queues for monitors are provided by the 'aws' host plugin, which is \
                 not enabled; set SENTINELA_PLUGINS=aws",
                self.path.display()
            );
        }
        if self.application_queue.kind == QueueKind::Sqs && !plugins.is_enabled(HostPlugin::Aws) {
            bail!(
                "{}: application_queue: an SQS queue (type: plugin.aws.sqs) is provided by the 'aws' \
                 host plugin, which is not enabled; set SENTINELA_PLUGINS=aws",
                self.path.display()
            );
        }
        for monitor in &self.monitors {
            if monitor.secrets.values().any(|s| s.credential().is_some())
                && !plugins.is_enabled(HostPlugin::Aws)
            {
                bail!(
                    "{}: monitor '{}': its secretsmanager/ssm secrets need the 'aws' host plugin, \
                     which is not enabled; set SENTINELA_PLUGINS=aws",
                    self.path.display(),
                    monitor.name
                );
            }
            if let Some(needed) = monitor.grants.required_host_plugin()
                && !plugins.is_enabled(needed)
            {
                bail!(
                    "{}: monitor '{}': its grants need the '{needed}' host plugin, which is not \
                     enabled; set SENTINELA_PLUGINS={needed} or add it to 'plugins:'",
                    self.path.display(),
                    monitor.name
                );
            }
        }
        Ok(plugins)
    }

    pub fn monitor(&self, name: &str) -> Option<&MonitorConfig> {
        self.monitors.iter().find(|m| m.name.as_str() == name)
    }
}

/// serde_yaml's message holds the key path and a position. For errors raised by our own
/// `Deserialize` impls the position is that of the enclosing mapping, so point at the line
/// that holds the offending value (our messages quote it) and name its key.
fn describe_yaml_error(text: &str, e: &serde_yaml::Error) -> String {
    let message = e.to_string();
    let Some(loc) = e.location() else {
        return message;
    };
    let suffix = format!(" at line {} column {}", loc.line(), loc.column());
    let body = message.strip_suffix(&suffix).unwrap_or(&message);
    let located = body.split_once(": ").and_then(|(path, detail)| {
        let value = detail.split('\'').nth(1).filter(|v| !v.is_empty())?;
        let (line, key) = text
            .lines()
            .enumerate()
            .skip(loc.line().saturating_sub(1))
            .find_map(|(i, line)| {
                let (key, rest) = line.trim_start().trim_start_matches("- ").split_once(':')?;
                rest.contains(value).then(|| (i + 1, key.trim().to_owned()))
            })?;
        let path = if path.ends_with(&key) {
            path.to_owned()
        } else {
            format!("{path}.{key}")
        };
        Some(format!("{path}: {detail} at line {line}"))
    });
    located.unwrap_or_else(|| format!("{body}{suffix}"))
}

/// The first line that sets `key` to `value` (block or flow style), for errors found after
/// parsing.
fn line_of_key(text: &str, key: &str, value: &str) -> Option<usize> {
    let key = format!("{key}:");
    text.lines()
        .position(|line| {
            line.find(&key)
                .is_some_and(|at| line[at + key.len()..].contains(value))
        })
        .map(|i| i + 1)
}

/// The line on which the monitor called `name` is declared, for errors found after parsing.
fn line_of_monitor(text: &str, name: &str) -> Option<usize> {
    text.lines()
        .position(|line| {
            let line = line.trim_start().trim_start_matches("- ").trim_start();
            line.strip_prefix("name:")
                .map(|v| v.trim().trim_matches(|c| c == '"' || c == '\'') == name)
                .unwrap_or(false)
        })
        .map(|i| i + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_durations() {
        assert_eq!("64MiB".parse::<ByteSize>().unwrap(), ByteSize(64 << 20));
        assert_eq!("512 KiB".parse::<ByteSize>().unwrap(), ByteSize(512 << 10));
        assert!("12 parsecs".parse::<ByteSize>().is_err());
        assert_eq!(
            "500ms".parse::<Seconds>().unwrap(),
            Seconds(Duration::from_millis(500))
        );
        assert_eq!(
            "2m".parse::<Seconds>().unwrap(),
            Seconds(Duration::from_secs(120))
        );
        assert!("-1s".parse::<Seconds>().is_err());
    }

    #[test]
    fn credential_names_normalise() {
        assert_eq!(
            CredentialName::parse("monitoring_ro").unwrap().as_str(),
            "MONITORING_RO"
        );
        assert!(CredentialName::parse("../etc").is_err());
        assert!(CredentialName::parse("").is_err());
    }

    #[test]
    fn schedules() {
        assert!("*/5 * * * *".parse::<Schedule>().is_ok());
        assert!("*/10 * * * * *".parse::<Schedule>().is_ok());
        assert!("61 * * * *".parse::<Schedule>().is_err());
        assert!("every minute".parse::<Schedule>().is_err());
    }
}

//! The YAML configuration: the loader, YAML error locating and cross-section checks. Each
//! section is defined next to the code that owns it (`store:` in [`crate::issues`],
//! `queues:` in [`crate::capabilities::queue`], a monitor's `limits:` in [`crate::instance`]
//! ...); the value types they share are in [`values`].
//!
//! Validation that can be expressed per value (a cron expression, a size, a credential name, a
//! plugin path) lives in that value's `Deserialize` impl, so that serde_yaml reports it with
//! the key path, line and column. Every error is prefixed with the config file's path.

mod shape;
pub mod values;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde::Deserialize;
use serde::de::{self, Deserializer, SeqAccess, Visitor};

use crate::aws::AwsConfig;
use crate::aws::connectors::ConnectorConfig;
use crate::capabilities::queue::QueueDeclaration;
use crate::capabilities::secrets::SecretSource;
use crate::capabilities::settings::Settings;
use crate::compiler::CompileLimits;
use crate::engine::Tier;
use crate::grants::Grants;
use crate::instance::Limits;
use crate::issues::{RawStore, StoreConfig};
use crate::providers::{HostPlugin, HostPlugins, PLUGINS_ENV};
use crate::queue::{ApplicationQueueConfig, QueueKind};
use crate::runtime::{ControllerConfig, ExecutorConfig};
use crate::telemetry::HttpConfig;
use values::{
    ByteSize, ConfigDuration, ConfigPath, CredentialName, MonitorName, PluginLocation, Schedule,
};

/// The longest config error shown: a value quoted in it may be huge.
const MAX_ERROR_CHARS: usize = 1000;

/// A loaded, validated configuration.
#[derive(Debug)]
pub struct Config {
    /// The file it was read from.
    pub path: PathBuf,
    /// Host plugins named by the `plugins:` key (`SENTINELA_PLUGINS` may override them).
    pub plugins: Vec<HostPlugin>,
    /// `application_queue:`: how messages reach executors; in-process (`internal`) by default.
    pub application_queue: ApplicationQueueConfig,
    /// `executor:`: how many monitor tasks this process runs at once, and the shutdown grace
    /// period.
    pub executor: ExecutorConfig,
    /// `controller:`: how the scheduler spreads monitors' triggers.
    pub controller: ControllerConfig,
    /// Where compiled plugin code is cached; `None` means the default location.
    pub cache_dir: Option<PathBuf>,
    /// A compile cache directory shared by a fleet: read on a local miss, written with what
    /// this host compiles.
    pub shared_cache_dir: Option<PathBuf>,
    /// Limits on compiling one plugin.
    pub compile: CompileLimits,
    /// The tier a plugin the compile cache lacks starts on (`compile.first_tier`): `baseline`
    /// (Winch, then Cranelift in the background) or `optimized` (Cranelift before it runs).
    pub first_tier: Tier,
    /// `aws:`: FIPS or dual-stack endpoints, the longest presigned URL.
    pub aws: AwsConfig,
    /// Credential connectors, by credential name.
    pub credentials: BTreeMap<CredentialName, ConnectorConfig>,
    /// How long a fetched secret is served from the cache.
    pub secrets_cache_ttl: Duration,
    /// SQS queues for the `queue` interface, by name.
    pub queues: BTreeMap<String, QueueDeclaration>,
    /// Where issues are kept.
    pub store: StoreConfig,
    /// `http:`: where health, readiness and metrics are served; off by default.
    pub http: HttpConfig,
    /// `monitors:`, in file order; their names are unique.
    pub monitors: Vec<MonitorConfig>,
    /// Every top-level key but `monitors:`, as written: a config reload (`SIGHUP`) may change
    /// only the monitors, and compares these to tell.
    pub host_sections: serde_yaml::Mapping,
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
    controller: ControllerConfig,
    #[serde(default)]
    cache_dir: Option<ConfigPath>,
    #[serde(default)]
    shared_cache_dir: Option<ConfigPath>,
    #[serde(default)]
    compile: RawCompileLimits,
    #[serde(default)]
    queues: BTreeMap<String, QueueDeclaration>,
    #[serde(default)]
    aws: AwsConfig,
    #[serde(default)]
    credentials: BTreeMap<String, ConnectorConfig>,
    #[serde(default = "default_secrets_cache_ttl")]
    secrets_cache_ttl: ConfigDuration,
    #[serde(default)]
    store: RawStore,
    #[serde(default)]
    http: HttpConfig,
    monitors: Monitors,
}

/// `compile:`: limits on compiling one plugin (see [`CompileLimits`]).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCompileLimits {
    #[serde(default = "default_max_plugin_bytes")]
    max_plugin_bytes: ByteSize,
    #[serde(default = "default_compile_timeout")]
    timeout: ConfigDuration,
    #[serde(default = "default_compile_memory")]
    memory: ByteSize,
    #[serde(default = "default_first_tier")]
    first_tier: Tier,
}

impl Default for RawCompileLimits {
    fn default() -> Self {
        RawCompileLimits {
            max_plugin_bytes: default_max_plugin_bytes(),
            timeout: default_compile_timeout(),
            memory: default_compile_memory(),
            first_tier: default_first_tier(),
        }
    }
}

fn default_first_tier() -> Tier {
    Tier::Baseline
}

fn default_max_plugin_bytes() -> ByteSize {
    ByteSize(CompileLimits::default().max_plugin_bytes)
}

fn default_compile_timeout() -> ConfigDuration {
    ConfigDuration(CompileLimits::default().timeout)
}

fn default_compile_memory() -> ByteSize {
    ByteSize(CompileLimits::default().memory)
}

/// One monitor: a plugin, when to run it, what it may use and how much.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MonitorConfig {
    /// `name`: tags the monitor's log lines and keys its issues; unique in the config.
    pub name: MonitorName,
    /// `id`: the integer Sentinela's controller, API and CLI address the monitor by
    /// (`monitor_id`, `target_id`); unique. Without one, messages address it by name only.
    #[serde(default)]
    pub id: Option<u64>,
    /// `sha256`: the plugin file's SHA-256 (hex); a file with another hash is refused.
    #[serde(default)]
    pub sha256: Option<values::Sha256Hex>,
    /// `plugin`: the WebAssembly component file, relative to the config file's directory
    /// (checked to exist at load), or an `oci://` reference (resolved by
    /// [`crate::app::resolve_oci_plugins`]).
    pub plugin: PluginLocation,
    /// `search_cron`: when `search` runs; `None`: never on a schedule (a `monitor_refresh` request
    /// can still run it).
    #[serde(default)]
    pub search_cron: Option<Schedule>,
    /// `update_cron`: when `update` and `is-solved` run on the active issues; `None`: never on a
    /// schedule.
    #[serde(default)]
    pub update_cron: Option<Schedule>,
    /// `limits:`: per-invocation resource limits; each unset key takes its default.
    #[serde(default)]
    pub limits: Limits,
    /// `grants:`: the credentials, AWS operations and queues it may use; none by default.
    #[serde(default)]
    pub grants: Grants,
    /// Secrets this monitor can read with `secrets.get(name)`, by name.
    #[serde(default)]
    pub secrets: BTreeMap<String, SecretSource>,
    /// `settings:`: plain values the monitor reads through `wasi:config/store`.
    #[serde(default)]
    pub settings: Settings,
    /// The entry as written, digested, for telling whether a reloaded config changed this
    /// monitor.
    #[serde(skip)]
    pub entry: EntryDigest,
}

/// The SHA-256 of a monitor's entry as written (its YAML, in its key order): what a reload
/// compares, in 32 bytes rather than the parsed entry kept for every monitor.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EntryDigest([u8; 32]);

impl EntryDigest {
    fn of(entry: &serde_yaml::Value) -> EntryDigest {
        use sha2::Digest;
        // A parsed value always serializes; were it not to, its debug form still tells
        // entries apart.
        let text = serde_yaml::to_string(entry).unwrap_or_else(|_| format!("{entry:?}"));
        EntryDigest(sha2::Sha256::digest(text.as_bytes()).into())
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
                let mut ids = BTreeMap::new();
                let mut schedules = HashMap::new();
                while let Some(mut monitor) = seq.next_element::<MonitorConfig>()? {
                    for cron in [&mut monitor.search_cron, &mut monitor.update_cron]
                        .into_iter()
                        .flatten()
                    {
                        cron.share(&mut schedules);
                    }
                    if !names.insert(monitor.name.clone()) {
                        return Err(de::Error::custom(format!(
                            "duplicate monitor name '{}'",
                            monitor.name
                        )));
                    }
                    if let Some(id) = monitor.id
                        && let Some(other) = ids.insert(id, monitor.name.clone())
                    {
                        return Err(de::Error::custom(format!(
                            "duplicate monitor id {id}: monitors '{other}' and '{}'",
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

fn default_secrets_cache_ttl() -> ConfigDuration {
    ConfigDuration(Duration::from_secs(300))
}

impl Config {
    /// Reads and validates `path`. Plugin files are checked for existence here; whether they
    /// are valid components is checked when they are loaded.
    pub fn load(path: &Path) -> Result<Config> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read config file {}", path.display()))?;
        Self::parse(path, &text)
    }

    /// Parses and validates `text` as the config file at `path` (relative paths resolve against
    /// its directory): [`Config::load`] without reading the file.
    ///
    /// The file's size and nesting are checked before it is parsed, and every error's text —
    /// which may quote a value of the file — is escaped and bounded like guest text.
    pub fn parse(path: &Path, text: &str) -> Result<Config> {
        shape::check(text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        // Bounded as printed: a quoted key or value may hold characters that escape to ten.
        Self::parse_shaped(path, text).map_err(|e| {
            anyhow::anyhow!(crate::guest_text::escaped_within(
                &format!("{e:#}"),
                MAX_ERROR_CHARS
            ))
        })
    }

    fn parse_shaped(path: &Path, text: &str) -> Result<Config> {
        let dir = path.parent().map(|p| {
            if p.as_os_str().is_empty() {
                Path::new(".")
            } else {
                p
            }
        });
        let parsed =
            values::resolving_paths_against(dir, || serde_yaml::from_str::<RawConfig>(text));
        let mut raw = match parsed {
            Ok(raw) => raw,
            Err(e) => bail!("{}: {}", path.display(), describe_yaml_error(text, &e)),
        };
        // The same text again as plain YAML (it parsed above, so this cannot fail on syntax):
        // each monitor's entry and the other sections as written.
        let mut host_sections = match serde_yaml::from_str::<serde_yaml::Value>(text) {
            Ok(serde_yaml::Value::Mapping(sections)) => sections,
            _ => serde_yaml::Mapping::new(),
        };
        if let Some(serde_yaml::Value::Sequence(entries)) = host_sections.remove("monitors") {
            for (monitor, entry) in raw.monitors.0.iter_mut().zip(entries) {
                monitor.entry = EntryDigest::of(&entry);
            }
        }

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
        let mut credentials = BTreeMap::new();
        for (name, connector) in &raw.credentials {
            let at = line_of_section_key(text, "credentials", name)
                .map(|l| format!(" at line {l}"))
                .unwrap_or_default();
            let fail =
                |why: String| anyhow::anyhow!("{}: credentials.{name}: {why}{at}", path.display());
            let parsed = CredentialName::parse(name).map_err(fail)?;
            if parsed.as_str() == CredentialName::APPLICATION {
                return Err(fail(
                    "APPLICATION is the host's own credential and cannot be a connector".into(),
                ));
            }
            if connector.source == parsed {
                return Err(fail("a credential cannot be its own source".into()));
            }
            if connector.assume_role.is_some() == connector.ssm_keys.is_some() {
                return Err(fail(
                    "give exactly one of 'assume_role' or 'ssm_keys'".into(),
                ));
            }
            if let Some(role) = &connector.assume_role
                && !(900..=43_200).contains(&role.duration.0.as_secs())
            {
                return Err(fail(format!(
                    "assume_role.duration ({:?}) must be between 15m and 12h (STS's range)",
                    role.duration.0
                )));
            }
            if let Some(role) = &connector.assume_role
                && connector.refresh_window.0 >= role.duration.0
            {
                return Err(fail(format!(
                    "refresh_window ({:?}) must be shorter than assume_role.duration ({:?}), \
                     or every request would assume the role again",
                    connector.refresh_window.0, role.duration.0
                )));
            }
            credentials.insert(parsed, connector.clone());
        }
        let presign = raw.aws.presign_max_expiry.0;
        if presign.is_zero() || presign > crate::aws::PRESIGN_EXPIRY_LIMIT {
            bail!(
                "{}: aws.presign_max_expiry ({presign:?}) must be between 1s and 7d (SigV4's limit)",
                path.display()
            );
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
            // The one entry store.events_queue names is the host's, and is granted to no
            // monitor (checked below); any other entry for one of the host's queues is refused.
            if store.events_queue.as_deref() != Some(name.as_str())
                && let Some(why) = host_queue(name, &raw.queues, &raw.application_queue, &store)
            {
                bail!(
                    "{}: queues.{name}.url: {why}: the host's own queues are never a \
                     monitor's",
                    path.display()
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
            for queue in &monitor.grants.queues {
                if let Some(why) = host_queue(queue, &raw.queues, &raw.application_queue, &store) {
                    bail!(
                        "{}: monitors[{index}].grants.queues: queue '{queue}' {why}: the host's \
                         own queues are never granted to a monitor",
                        path.display()
                    );
                }
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
            if let Some((key, why)) = monitor.limits.out_of_range() {
                bail!("{}: monitors[{index}].limits.{key}: {why}", path.display());
            }
            if let PluginLocation::File(plugin) = &monitor.plugin
                && !plugin.is_file()
            {
                let line = line_of_monitor(text, monitor.name.as_str())
                    .map(|l| format!(" (monitor declared at line {l})"))
                    .unwrap_or_default();
                bail!(
                    "{}: monitors[{index}].plugin: plugin file {} not found{line}",
                    path.display(),
                    plugin.display()
                );
            }
        }

        let compile = &raw.compile;
        let compile_ranges: [(&str, u64, u64, u64); 3] = [
            (
                "max_plugin_bytes",
                compile.max_plugin_bytes.0,
                1 << 10,
                1 << 30,
            ),
            ("timeout", compile.timeout.0.as_secs(), 1, 3600),
            ("memory", compile.memory.0, 16 << 20, 64 << 30),
        ];
        if let Some((key, value, min, max)) = compile_ranges
            .into_iter()
            .find(|&(_, value, min, max)| value < min || value > max)
        {
            let unit = if key == "timeout" { "s" } else { " bytes" };
            bail!(
                "{}: compile.{key}: {value}{unit} is out of range: {min}{unit} to {max}{unit}",
                path.display()
            );
        }
        if raw.secrets_cache_ttl.0 > Duration::from_secs(86_400) {
            bail!("{}: secrets_cache_ttl: at most 24h", path.display());
        }
        for (key, dir) in [
            ("cache_dir", &raw.cache_dir),
            ("shared_cache_dir", &raw.shared_cache_dir),
        ] {
            if let Some(dir) = dir
                && let Ok(meta) = std::fs::metadata(&dir.0)
                && !meta.is_dir()
            {
                bail!(
                    "{}: {key}: {} is not a directory",
                    path.display(),
                    dir.0.display()
                );
            }
        }
        Ok(Config {
            path: path.to_path_buf(),
            plugins: raw.plugins,
            application_queue: raw.application_queue,
            executor: raw.executor,
            controller: raw.controller,
            cache_dir: raw.cache_dir.map(|p| p.0),
            shared_cache_dir: raw.shared_cache_dir.map(|p| p.0),
            compile: CompileLimits {
                max_plugin_bytes: raw.compile.max_plugin_bytes.0,
                timeout: raw.compile.timeout.0,
                memory: raw.compile.memory.0,
            },
            first_tier: raw.compile.first_tier,
            queues: raw.queues,
            store,
            http: raw.http,
            aws: raw.aws,
            credentials,
            secrets_cache_ttl: raw.secrets_cache_ttl.0,
            monitors: raw.monitors.0,
            host_sections,
        })
    }

    /// Host plugins to enable: `SENTINELA_PLUGINS` if set, else the config's `plugins:`.
    /// Checks that every monitor's grants are served by an enabled host plugin.
    pub fn host_plugins(&self, env_value: Option<&str>) -> Result<HostPlugins> {
        let plugins = match env_value {
            Some(value) => HostPlugins::from_env_value(value).context(PLUGINS_ENV)?,
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

    /// The SQS queue names that are the host's own (the application queue, its dead-letter
    /// queue, the issue events queue): no monitor reaches them through `aws-call` either.
    pub fn host_queue_names(&self) -> Vec<String> {
        host_queue_names(&self.queues, &self.application_queue, &self.store)
            .into_iter()
            .map(|(name, _)| name)
            .collect()
    }

    /// Every credential the config grants to monitors or uses for queues and secrets.
    pub fn credential_names(&self) -> impl Iterator<Item = &CredentialName> {
        let monitors = self.monitors.iter();
        let granted = monitors.clone().flat_map(|m| &m.grants.credentials);
        let secrets = monitors.flat_map(|m| m.secrets.values().filter_map(|s| s.credential()));
        granted
            .chain(self.queues.values().map(|q| &q.credential))
            .chain(secrets)
    }

    /// The monitor called `name`, if the config declares one.
    pub fn monitor(&self, name: &str) -> Option<&MonitorConfig> {
        self.monitors.iter().find(|m| m.name.as_str() == name)
    }
}

/// serde_yaml's message holds the key path and a position. For errors raised by our own
/// `Deserialize` impls the position is that of the enclosing mapping, so point at the line
/// that holds the offending value (our messages quote it) and name its key. Every part that
/// quotes the file (a value, a key) is cut so that the position always fits.
fn describe_yaml_error(text: &str, e: &serde_yaml::Error) -> String {
    // Cut as printed (escaped): a quoted value of control characters escapes to ten times
    // its length, and must not push the position out of the final cut.
    let cut = crate::guest_text::escaped_within;
    let shortened = |text: &str| cut(text, MAX_ERROR_CHARS / 2);
    let message = e.to_string();
    let loc = e.location();
    // The message without its position, the position's line, and what follows it.
    let (body, line, position, tail) = if let Some((body, offset, tail)) = byte_offset(&message)
        && loc
            .as_ref()
            .is_none_or(|l| (l.line(), l.column()) == (1, 1))
    {
        let line = line_at_byte(text, offset);
        (body, line, format!(" at line {line}"), tail)
    } else if let Some(loc) = loc {
        let position = format!(" at line {} column {}", loc.line(), loc.column());
        match message.strip_suffix(&position) {
            Some(body) => (body, loc.line(), position, ""),
            // serde_yaml prints no position where the mark is the file's start.
            None if (loc.line(), loc.column()) == (1, 1) => (message.as_str(), 1, position, ""),
            // libyaml's syntax errors: its own fixed texts, each with its position.
            None => return shortened(&message),
        }
    } else {
        return match second_document_line(text) {
            Some(line) => format!("{message}: a second document starts at line {line}"),
            None => shortened(&message),
        };
    };
    // `monitors[0].schedule: ...`; a top-level error has no path (`invalid type: ...`), and
    // our keys have no spaces.
    let located = body
        .split_once(": ")
        .filter(|(path, _)| tail.is_empty() && !path.contains(char::is_whitespace))
        .and_then(|(path, detail)| {
            let value = detail.split('\'').nth(1).filter(|v| !v.is_empty())?;
            let (line, key) = text
                .lines()
                .enumerate()
                .skip(line.saturating_sub(1))
                .find_map(|(i, line)| {
                    let (key, rest) = line.trim_start().trim_start_matches("- ").split_once(':')?;
                    rest.contains(value).then(|| (i + 1, key.trim()))
                })?;
            let path = if path.ends_with(key) {
                path.to_owned()
            } else {
                format!("{path}.{key}")
            };
            let path = cut(&path, MAX_ERROR_CHARS / 4);
            Some(format!("{path}: {} at line {line}", shortened(detail)))
        });
    located.unwrap_or_else(|| {
        format!(
            "{}{position}{}",
            shortened(body),
            cut(tail, MAX_ERROR_CHARS / 4)
        )
    })
}

/// A message's `at position N` (what serde_yaml prints where the mark is the file's start,
/// and for libyaml's reader errors, such as a control character, which carry only a byte
/// offset): the text before it, N, and the text after it.
fn byte_offset(message: &str) -> Option<(&str, usize, &str)> {
    let (body, after) = message.rsplit_once(" at position ")?;
    let digits = after.len() - after.trim_start_matches(|c: char| c.is_ascii_digit()).len();
    let offset = after[..digits].parse().ok()?;
    Some((body, offset, &after[digits..]))
}

/// The line (from 1) holding the byte at `offset`; the last line for an offset past the end.
fn line_at_byte(text: &str, offset: usize) -> usize {
    let before = &text.as_bytes()[..offset.min(text.len())];
    1 + before.iter().filter(|&&b| b == b'\n').count()
}

/// The line of a second YAML document (serde_yaml says only that there is one): a `---`
/// or `...` marker after the first document's content or marker.
fn second_document_line(text: &str) -> Option<usize> {
    let mut begun = false;
    for (i, line) in text.lines().enumerate() {
        let marker = line.starts_with("---") || line.starts_with("...");
        if marker && begun {
            return Some(i + 1);
        }
        let content = !line.trim().is_empty() && !line.trim_start().starts_with('#');
        begun |= marker || content;
    }
    None
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

/// The line on which `key` is declared (block style, quoted or not) after the top-level
/// `section:`, for errors found after parsing.
fn line_of_section_key(text: &str, section: &str, key: &str) -> Option<usize> {
    let mut lines = text.lines().enumerate();
    lines.find(|(_, line)| {
        line.strip_prefix(section)
            .is_some_and(|rest| rest.trim_start().starts_with(':'))
    })?;
    lines
        .find(|(_, line)| {
            let line = line.trim_start();
            let unquoted = line.strip_prefix(['"', '\'']).unwrap_or(line);
            unquoted
                .strip_prefix(key)
                .is_some_and(|rest| rest.trim_start_matches(['"', '\'']).starts_with(':'))
        })
        .map(|(i, _)| i + 1)
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

/// The queue name at the end of an SQS queue URL (`https://sqs.../ACCOUNT/NAME`).
fn queue_name_of_url(url: &str) -> &str {
    url.trim_end_matches('/').rsplit('/').next().unwrap_or(url)
}

/// The SQS queue names that are the host's own: the application queue and its dead-letter
/// queue (when the application queue is SQS) and the issue events queue (`store.events_queue`,
/// by the name its declared URL ends in). No monitor reaches them, through `queue` or
/// `aws-call`.
fn host_queue_names(
    queues: &BTreeMap<String, QueueDeclaration>,
    application: &crate::queue::ApplicationQueueConfig,
    store: &crate::issues::StoreConfig,
) -> Vec<(String, &'static str)> {
    let mut names = Vec::new();
    if application.kind == crate::queue::QueueKind::Sqs {
        let own = [
            application.name.as_deref(),
            application.url.as_deref().map(queue_name_of_url),
        ];
        for name in own.into_iter().flatten() {
            names.push((name.to_owned(), "the application queue"));
        }
        if let Some(name) = &application.dead_letter_queue {
            names.push((name.clone(), "the application queue's dead-letter queue"));
        }
    }
    if let Some(events) = store.events_queue.as_deref().and_then(|q| queues.get(q)) {
        names.push((
            queue_name_of_url(&events.url).to_owned(),
            "store.events_queue",
        ));
    }
    names
}

/// Why the queue `queue` of the `queues:` section is one of the host's own, if it is one: by
/// its name in the section, or the queue name its URL ends in.
fn host_queue(
    queue: &str,
    queues: &BTreeMap<String, QueueDeclaration>,
    application: &crate::queue::ApplicationQueueConfig,
    store: &crate::issues::StoreConfig,
) -> Option<String> {
    let declared = queues.get(queue)?;
    if store.events_queue.as_deref() == Some(queue) {
        return Some("is store.events_queue".into());
    }
    let name = queue_name_of_url(&declared.url);
    host_queue_names(queues, application, store)
        .into_iter()
        .find(|(own, _)| own == name)
        .map(|(_, what)| format!("names SQS queue '{name}', {what}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// libyaml's reader errors carry a byte offset, not a line: the error says the line.
    #[test]
    fn a_control_character_is_named_by_its_line() {
        let text = "log_level: info\n# a comment \u{e9}\u{e9}\u{e9}\nmonitors: []\nx: \u{7}\n";
        let message = Config::parse(Path::new("sentinela.yaml"), text)
            .unwrap_err()
            .to_string();
        assert!(message.starts_with("sentinela.yaml: "), "{message}");
        assert!(message.contains("at line 4"), "{message}");
        assert!(!message.contains("at position"), "{message}");
        assert!(message.chars().count() <= MAX_ERROR_CHARS + 1, "{message}");
    }

    /// A quoted value of control characters escapes to five times its length: the error is
    /// cut as printed, and its line stays.
    #[test]
    fn a_value_of_control_characters_keeps_the_line() {
        let bells = "\\a".repeat(900);
        let text = format!("secrets_cache_ttl: \"{bells}\"\nmonitors: []\n");
        let message = Config::parse(Path::new("sentinela.yaml"), &text)
            .unwrap_err()
            .to_string();
        assert!(message.contains("\\u{7}"), "{message}");
        assert!(message.ends_with(" at line 1 column 1"), "{message}");
        assert!(message.chars().count() <= MAX_ERROR_CHARS + 1, "{message}");
    }

    /// A credential's errors are found after parsing: they name its key and its line.
    #[test]
    fn a_bad_credential_is_named_by_its_key_and_line() {
        let text = "credentials:\n  OK_ONE:\n    source: BASE\n    ssm_keys: /a\n  \"BAD#1\":\n    source: BASE\n    ssm_keys: /b\nmonitors: []\n";
        let message = Config::parse(Path::new("sentinela.yaml"), text)
            .unwrap_err()
            .to_string();
        assert!(
            message.starts_with("sentinela.yaml: credentials.BAD#1: invalid credential name"),
            "{message}"
        );
        assert!(message.ends_with(" at line 5"), "{message}");
    }
}

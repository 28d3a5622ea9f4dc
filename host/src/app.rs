//! The application: assembles everything a config describes — host plugins, engine, compile
//! cache, each capability's shared state, the linker and one [`MonitorPlugin`] per monitor.
//! Used by `run`, `check` and `invoke`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result};
use wasmtime::component::Linker;

use crate::aws::AwsProvider;
use crate::aws::credentials::Credential;
use crate::capabilities::aws_call::AwsCallGrants;
use crate::capabilities::queue::MonitorQueues;
use crate::capabilities::secrets::SecretStore;
use crate::compile_cache::CompileCache;
use crate::compiler::Compiler;
use crate::config::values::CredentialName;
use crate::config::values::PluginLocation;
use crate::config::{Config, MonitorConfig};
use crate::engine::{Engine, EngineSettings, Tier};
use crate::instance::{self, InstanceState, MonitorCapabilities};
use crate::issues::StoreKind;
use crate::monitor::{MonitorPlugin, PluginFile, PreparedPlugin};
use crate::oci::lock::LockFile;
use crate::oci::{OciReference, Resolver, Source};
use crate::providers::{HostPlugin, HostPlugins, PLUGINS_ENV};
use crate::queue::QueueKind;

/// A config made ready to run.
pub struct App {
    /// The loaded, validated config.
    pub config: Config,
    /// Host plugins enabled by `SENTINELA_PLUGINS`, else by the config's `plugins:`.
    pub host_plugins: HostPlugins,
    /// The process's wasmtime engine, its pool sized for the config's monitors.
    pub engine: Engine,
    /// The sizes the engine's pool was made with: a reloaded config cannot exceed them.
    pub engine_settings: EngineSettings,
    /// Compiled plugins, cached; misses compile under the config's `compile:` limits.
    pub cache: CompileCache,
    /// The `aws` host plugin's provider, when enabled.
    pub aws: Option<Arc<AwsProvider>>,
    /// The `queues:` section, when the `aws` host plugin is enabled.
    pub queues: Option<Arc<MonitorQueues>>,
    /// Secrets for every monitor, cached.
    pub secrets: Arc<SecretStore>,
    /// `--locked`: a reloaded config's OCI tags must be in the lock file already.
    pub locked: bool,
    /// Background compiles (`tier_up`) at once: one per core.
    pub compile_slots: Arc<tokio::sync::Semaphore>,
}

impl App {
    /// Loads the config and sizes the engine for its monitors. Plugins are not loaded yet.
    pub fn open(config_path: &Path) -> Result<App> {
        App::open_with(config_path, false)
    }

    /// [`App::open`]; `locked`: the lock file may not change (`--locked`).
    pub fn open_with(config_path: &Path, locked: bool) -> Result<App> {
        let mut config = Config::load(config_path)?;
        resolve_oci_plugins(&mut config, locked)?;
        let env = std::env::var(PLUGINS_ENV).ok();
        let host_plugins = config.host_plugins(env.as_deref())?;
        let engine_settings = engine_settings(&config);
        let engine = Engine::new(&engine_settings).context("creating the wasmtime engine")?;
        let cache = CompileCache::locate(config.cache_dir.as_deref())
            .with_shared(config.shared_cache_dir.clone())
            .with_compiler(Compiler::for_this_process(&config.compile));
        let aws = if host_plugins.is_enabled(HostPlugin::Aws) {
            let provider =
                AwsProvider::new(config.credential_names(), &config.credentials, &config.aws)
                    .context("the aws host plugin")?;
            Some(Arc::new(AwsProvider {
                host_queues: config.host_queue_names(),
                ..provider
            }))
        } else {
            None
        };
        let queues = aws.as_ref().map(|aws| {
            Arc::new(MonitorQueues {
                declared: config.queues.clone(),
                aws: aws.clone(),
            })
        });
        let secrets = Arc::new(SecretStore::new(config.secrets_cache_ttl, aws.clone()));
        Ok(App {
            secrets,
            aws,
            queues,
            config,
            host_plugins,
            engine,
            engine_settings,
            cache,
            locked,
            compile_slots: Arc::new(tokio::sync::Semaphore::new(
                std::thread::available_parallelism().map_or(1, |n| n.get()),
            )),
        })
    }

    /// Loads every monitor's plugin; each entry is the monitor or why it cannot run. A plugin
    /// file used by several monitors is compiled once; one the compile cache lacks is
    /// compiled on `compile.first_tier`.
    pub fn load_monitors(&self) -> Vec<(&MonitorConfig, Result<MonitorPlugin>)> {
        self.load(
            &self.config.monitors.iter().collect::<Vec<_>>(),
            self.config.first_tier,
        )
    }

    /// Splits the monitors for a start that does not wait on compiles: those whose plugin the
    /// compile cache holds, and those that cannot load at all (their error is known at once),
    /// are loaded now; the others are returned, to be loaded in the background
    /// ([`crate::background_load`]).
    pub fn load_cached_monitors(
        &self,
    ) -> (
        Vec<(&MonitorConfig, Result<MonitorPlugin>)>,
        Vec<&MonitorConfig>,
    ) {
        let mut held: HashMap<(PathBuf, Option<String>), bool> = HashMap::new();
        let (now, later): (Vec<&MonitorConfig>, Vec<&MonitorConfig>) =
            self.config.monitors.iter().partition(|monitor| {
                let Ok(path) = monitor.plugin.file() else {
                    return true;
                };
                let pin = pin_of(monitor);
                *held
                    .entry((path.to_path_buf(), pin.clone()))
                    .or_insert_with(|| self.cache.holds(&self.engine, path, pin.as_deref()))
            });
        (self.load(&now, self.config.first_tier), later)
    }

    /// Loads these monitors' plugins (on `compile.first_tier` where the cache lacks them).
    pub fn load_some<'a>(
        &self,
        monitors: &[&'a MonitorConfig],
    ) -> Vec<(&'a MonitorConfig, Result<MonitorPlugin>)> {
        self.load(monitors, self.config.first_tier)
    }

    /// Loads one monitor's plugin (on `compile.first_tier` if the cache lacks it).
    pub fn load_monitor(&self, monitor: &MonitorConfig) -> Result<MonitorPlugin> {
        let (_, loaded) = self
            .load(&[monitor], self.config.first_tier)
            .pop()
            .context("no monitor to load")?;
        loaded
    }

    /// Loads these monitors' plugins with optimized code, compiling (and caching) what the
    /// compile cache lacks: the tier-up of plugins that started on the baseline tier.
    pub fn load_optimized<'a>(
        &self,
        monitors: &[&'a MonitorConfig],
    ) -> Vec<(&'a MonitorConfig, Result<MonitorPlugin>)> {
        self.load(monitors, Tier::Optimized)
    }

    fn load<'a>(
        &self,
        monitors: &[&'a MonitorConfig],
        first_tier: Tier,
    ) -> Vec<(&'a MonitorConfig, Result<MonitorPlugin>)> {
        // A linker is of one engine: one per tier, made when a plugin of that tier needs it.
        let linkers: [std::cell::OnceCell<Result<Linker<InstanceState>, String>>; 2] =
            Default::default();
        let linker = |tier: Tier| -> Result<&Linker<InstanceState>> {
            let cell = &linkers[usize::from(tier == Tier::Baseline)];
            cell.get_or_init(|| {
                self.engine
                    .for_tier(tier)
                    .and_then(instance::linker)
                    .map_err(|e| format!("linking host capabilities: {e:#}"))
            })
            .as_ref()
            .map_err(|e| anyhow::anyhow!("{e}"))
        };
        // Each file is loaded and prepared once, however many monitors run it.
        // The pin is checked against the bytes that are compiled (read once).
        type Loaded = Result<Arc<PreparedPlugin>, String>;
        let mut files: HashMap<(PathBuf, Option<String>), Loaded> = HashMap::new();
        monitors
            .iter()
            .map(|&monitor| {
                let path = match monitor.plugin.file() {
                    Ok(path) => path.to_path_buf(),
                    Err(e) => {
                        return (
                            monitor,
                            Err(anyhow::anyhow!("monitor '{}': {e:#}", monitor.name)),
                        );
                    }
                };
                let pin = pin_of(monitor);
                let reference = monitor.plugin.reference();
                let file = files
                    .entry((path.clone(), pin.clone()))
                    .or_insert_with(|| {
                        PluginFile::load(
                            &self.engine,
                            &self.cache,
                            &path,
                            pin.as_deref(),
                            first_tier,
                        )
                        .and_then(|file| {
                            let linker = linker(file.tier)?;
                            PreparedPlugin::new(file, linker, &self.host_plugins)
                        })
                        .map(Arc::new)
                        .map_err(|e| match reference {
                            Some(reference) => format!("{reference}: {e:#}"),
                            None => format!("{e:#}"),
                        })
                    })
                    .clone();
                let loaded = file
                    .map_err(|e| anyhow::anyhow!("monitor '{}': {e}", monitor.name))
                    .and_then(|plugin| {
                        // A setting the plugin does not declare, or of the wrong type, is a
                        // typo the monitor would silently run past on its default.
                        if let Some(declaration) = &plugin.file.declaration {
                            let errors = declaration.settings_errors(&monitor.settings);
                            if !errors.is_empty() {
                                anyhow::bail!("monitor '{}': {}", monitor.name, errors.join("; "));
                            }
                        }
                        Ok(MonitorPlugin::new(
                            monitor.name.as_str(),
                            plugin,
                            monitor.limits.clone(),
                            &self.engine,
                            self.capabilities_of(monitor),
                        ))
                    });
                (monitor, loaded)
            })
            .collect()
    }

    /// Each capability's shared state and the monitor's grants there.
    fn capabilities_of(&self, monitor: &MonitorConfig) -> MonitorCapabilities {
        MonitorCapabilities {
            aws_call: self.aws.as_ref().map(|aws| {
                let grants = AwsCallGrants::from(&monitor.grants);
                (aws.clone(), Arc::new(grants))
            }),
            queue: self
                .queues
                .as_ref()
                .map(|queues| (queues.clone(), Arc::new(monitor.grants.queues.clone()))),
            secrets: Some((self.secrets.clone(), Arc::new(monitor.secrets.clone()))),
            settings: monitor.settings.variables(),
        }
    }

    /// What `run` would refuse at start (errors), or run with but likely regret (warnings),
    /// found without connecting anywhere: `check` lists them, `run` stops on the first error.
    /// Problems of a plugin file are found by loading it ([`App::load_monitors`]).
    pub fn startup_problems(&self) -> StartupProblems {
        let config = &self.config;
        let path = config.path.display();
        let mut problems = StartupProblems::default();
        if config.application_queue.kind == QueueKind::Sqs {
            let application = CredentialName::parse(CredentialName::APPLICATION)
                .expect("APPLICATION is a valid credential name");
            match Credential::from_env(&application) {
                Err(e) => problems
                    .errors
                    .push(format!("{path}: application_queue: {e}")),
                Ok(credential) => {
                    if let Err(e) = credential.region(config.application_queue.region.as_deref()) {
                        problems
                            .errors
                            .push(format!("{path}: application_queue: {e}"));
                    }
                }
            }
            if config.store.kind == StoreKind::Sqlite {
                problems.warnings.push(format!(
                    "{path}: store: the SQLite store is for one process, but an SQS application \
                     queue is shared by several: a controller and executors need store.type: \
                     postgres"
                ));
            }
        }
        if config.store.kind == StoreKind::Postgres
            && let Err(e) = config.store.postgres_url()
        {
            problems.errors.push(format!("{path}: {e:#}"));
        }
        if let Some(aws) = &self.aws {
            let granted: std::collections::BTreeSet<&CredentialName> = config
                .monitors
                .iter()
                .flat_map(|m| m.grants.credentials.iter())
                .collect();
            for name in granted {
                if let Ok(credential) = aws.credentials.get(name)
                    && credential.region.is_none()
                {
                    problems.warnings.push(format!(
                        "credential {name} has no region: every call with it must name one, \
                         or set AWS_{name}_REGION"
                    ));
                }
            }
        }
        problems
    }

    /// Loads every monitor, failing on the first that cannot run.
    pub fn monitors(&self) -> Result<Vec<Arc<MonitorPlugin>>> {
        self.load_monitors()
            .into_iter()
            .map(|(_, loaded)| {
                loaded
                    .map(Arc::new)
                    .with_context(|| format!("config {}", self.config.path.display()))
            })
            .collect()
    }
}

impl App {
    /// `check --connect`: opens the store, reaches the application queue (never creating
    /// it) and asks STS who each credential is. One line per thing tried, with its result.
    pub async fn connect_report(&self) -> Vec<(String, Result<String, String>)> {
        let mut report = Vec::new();
        let store = crate::issues::IssueStore::open(&self.config.store, None).await;
        let store = match store {
            Ok(store) => store
                .ping()
                .await
                .map(|()| format!("{} answers", store.location())),
            Err(e) => Err(e),
        };
        report.push((
            "issue store".to_owned(),
            store.map_err(|e| format!("{e:#}")),
        ));
        let queue = if self.config.application_queue.kind == QueueKind::Sqs {
            let mut config = self.config.application_queue.clone();
            config.create_queue = false;
            crate::queue::ApplicationQueue::from_config(&config)
                .await
                .map(|_| "reachable".to_owned())
                .map_err(|e| format!("{e:#}"))
        } else {
            Ok("in-process: nothing to reach".to_owned())
        };
        report.push(("application queue".to_owned(), queue));
        if let Some(aws) = &self.aws {
            // The application queue's own credential is not in the registry (no monitor may
            // be granted it), so it is read here as the queue reads it.
            if self.config.application_queue.kind == QueueKind::Sqs {
                let application = CredentialName::parse(CredentialName::APPLICATION)
                    .expect("APPLICATION is a valid credential name");
                let identity = match Credential::from_env(&application) {
                    Ok(credential) => aws.caller_identity(&Arc::new(credential)).await,
                    Err(why) => Err(why.to_string()),
                };
                report.push((format!("credential {application}"), identity));
            }
            for (name, credential) in aws.credentials.all() {
                let identity = match credential {
                    Ok(credential) => aws.caller_identity(credential).await,
                    Err(why) => Err(why.to_string()),
                };
                report.push((format!("credential {name}"), identity));
            }
        }
        report
    }
}

/// What [`App::startup_problems`] found.
#[derive(Debug, Default)]
pub struct StartupProblems {
    /// What `run` refuses to start with.
    pub errors: Vec<String>,
    /// What it starts with, but probably should not.
    pub warnings: Vec<String>,
}

/// The SHA-256 the monitor's plugin bytes must have, if any: `sha256:`, or for a pulled
/// component its layer digest (checked again as it is read, so a store changed on disk is
/// refused).
fn pin_of(monitor: &MonitorConfig) -> Option<String> {
    match &monitor.plugin {
        PluginLocation::Oci {
            resolved: Some(Ok(resolved)),
            ..
        } => Some(resolved.sha256_hex().to_owned()),
        _ => monitor.sha256.as_ref().map(|p| p.0.clone()),
    }
}

fn engine_settings(config: &Config) -> EngineSettings {
    let defaults = EngineSettings::default();
    let limits = config.monitors.iter().map(|m| &m.limits);
    EngineSettings {
        max_memory: limits
            .clone()
            .map(|l| l.memory.0)
            .max()
            .unwrap_or(defaults.max_memory),
        max_table_elements: limits
            .map(|l| l.table_elements)
            .max()
            .unwrap_or(defaults.max_table_elements),
        ..defaults
    }
}

/// Resolves the config's `oci://` plugins to components in the local store (pulling what it
/// does not hold) and checks their tags against the lock file beside the config, recording new
/// ones unless `locked`. A reference that cannot be resolved fails its monitors only; a tag
/// that now resolves elsewhere than the lock file says fails the whole config.
pub fn resolve_oci_plugins(config: &mut Config, locked: bool) -> Result<()> {
    let mut references: Vec<OciReference> = Vec::new();
    for monitor in &config.monitors {
        if let Some(reference) = monitor.plugin.reference()
            && !references.contains(reference)
        {
            references.push(reference.clone());
        }
    }
    if references.is_empty() {
        return Ok(());
    }
    let cache = CompileCache::locate(config.cache_dir.as_deref());
    let resolver = Resolver::new(cache.dir(), config.compile.max_plugin_bytes);
    let results = resolver.resolve_all(&references, false);
    let mut lock = LockFile::read(&config.path)?;
    let mut resolutions = HashMap::new();
    for (reference, (result, source)) in references.iter().zip(results) {
        if let Ok(resolved) = &result {
            let from = match source {
                Source::Store => "the local store",
                Source::Registry => "the registry",
            };
            tracing::info!(
                plugin = %reference,
                manifest = resolved.manifest_digest.as_str(),
                layer = resolved.layer_digest.as_str(),
                "resolved from {from}"
            );
            if reference.tag().is_some() {
                lock.check(reference, &resolved.manifest_digest, locked)
                    .with_context(|| format!("{}", config.path.display()))?;
            }
        }
        resolutions.insert(reference.clone(), result.map_err(|e| format!("{e:#}")));
    }
    if lock.write_if_changed()? {
        tracing::info!(lock = %lock.path().display(), "recorded resolved OCI tags");
    }
    for monitor in &mut config.monitors {
        let pin = monitor.sha256.as_ref().map(|p| p.0.clone());
        if let PluginLocation::Oci {
            reference,
            resolved,
        } = &mut monitor.plugin
        {
            let mut result = resolutions
                .get(reference)
                .cloned()
                .unwrap_or_else(|| Err(format!("{reference} was not resolved")));
            if let (Some(pin), Ok(found)) = (&pin, &result)
                && pin != found.sha256_hex()
            {
                result = Err(format!(
                    "{reference}: its component's SHA-256 is {}, not the sha256: {pin} the \
                     config pins",
                    found.sha256_hex()
                ));
            }
            *resolved = Some(result);
        }
    }
    Ok(())
}

//! The guest side of a monitor: loading its `.wasm` component, checking it against what the
//! host offers, and calling it — each call in a fresh instance, under the monitor's limits and
//! deadline.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Result, bail};
use wasmtime::Store;
use wasmtime::Trap;
use wasmtime::component::{Component, Linker};

use crate::bindings::MonitorPre;
use crate::bindings::exports::sentinela::plugin::checks::MessageKind;
use crate::bindings::sentinela::plugin::types::Issue;
use crate::capabilities::log::{GuestLog, MinuteBudget};
use crate::capabilities::{self, ImportCheck};
use crate::compile_cache::CompileCache;
use crate::declaration::Declaration;
use crate::engine::{Engine, Tier};
use crate::guest_text::escape;
use crate::instance::{InstanceState, Limits, MonitorCapabilities};
use crate::producers::Sdk;
use crate::providers::HostPlugins;

/// A compiled `.wasm` file and what it imports and exports.
#[derive(Clone)]
pub struct PluginFile {
    /// Where the component was read from.
    pub path: PathBuf,
    /// Its size in bytes.
    pub size: u64,
    /// The SHA-256 (lowercase hex) of the bytes it was compiled from.
    pub sha256: String,
    /// The interfaces it imports, as `package/interface@version`.
    pub imports: Vec<String>,
    /// The interfaces it exports.
    pub exports: Vec<String>,
    /// What it declares it needs, if it carries a declaration.
    pub declaration: Option<Declaration>,
    /// Which compiler made the code it runs.
    pub tier: Tier,
    /// The SDK that built it, when that SDK imports the whole world whatever the code calls.
    pub sdk: Option<Sdk>,
    component: Component,
}

impl PluginFile {
    /// Reads and compiles (or loads from the compile cache) the component at `path`, whose
    /// bytes must have the SHA-256 `pin` when there is one: the file is read once, and what
    /// is checked is what runs. A plugin the cache lacks is compiled on `first_tier`.
    pub fn load(
        engine: &Engine,
        cache: &CompileCache,
        path: &Path,
        pin: Option<&str>,
        first_tier: Tier,
    ) -> Result<PluginFile> {
        let label = path.display().to_string();
        let loaded = cache.load_or_compile(engine, path, &label, pin, first_tier)?;
        let component = loaded.component;
        let ty = component.component_type();
        let imports = ty
            .imports(component.engine())
            .map(|(name, _)| name.to_owned())
            .collect();
        let exports = ty
            .exports(component.engine())
            .map(|(name, _)| name.to_owned())
            .collect();
        // Read from the file's first bytes; it informs checks, it grants nothing.
        let declaration = Declaration::read(path)?;
        let sdk = crate::producers::sdk_of(path);
        Ok(PluginFile {
            path: path.to_path_buf(),
            size: loaded.size as u64,
            sha256: loaded.sha256,
            imports,
            exports,
            declaration,
            tier: loaded.tier,
            sdk,
            component,
        })
    }

    /// The world this component targets, as far as the host can tell.
    pub fn world(&self) -> String {
        if self.exports.contains(&capabilities::monitor_export()) {
            format!(
                "{}/monitor@{}",
                capabilities::PACKAGE,
                capabilities::VERSION
            )
        } else {
            "unknown (not a sentinela monitor)".to_owned()
        }
    }

    /// What this component loads with but cannot use with these host plugins: the
    /// interfaces of a disabled host plugin, whose every call is denied. For a component of
    /// an [`Sdk`], which imports every interface whether the code calls it or not, only when
    /// its declaration says it means to call them ([`PluginFile::sdk_note`] says
    /// why the others are not warned about).
    pub fn warnings(&self, enabled: &HostPlugins) -> Vec<String> {
        // Only the declaration can say so: grants that need a disabled host plugin are
        // refused when the config loads (`Grants::required_host_plugin`).
        let meant = self
            .declaration
            .as_ref()
            .is_some_and(|d| !d.aws.is_empty() || !d.queues.is_empty());
        self.imports
            .iter()
            .filter(|_| self.sdk.is_none() || meant)
            .filter_map(|name| ImportCheck::of(name, enabled).warning(name))
            .collect()
    }

    /// For `check`: why a component of an [`Sdk`] gets no warning about its imports.
    pub fn sdk_note(&self) -> Option<String> {
        self.sdk.map(|sdk| {
            format!(
                "built with {}, which imports every interface of the sentinela world whether the \
                 monitor calls it or not: no warning about those imports (a call of an interface \
                 nothing grants is denied)",
                sdk.name()
            )
        })
    }

    /// Every reason this component cannot run as a monitor with these host plugins.
    pub fn problems(&self, enabled: &HostPlugins) -> Vec<String> {
        let mut problems = Vec::new();
        let wanted = capabilities::monitor_export();
        if !self.exports.contains(&wanted) {
            let other = self
                .exports
                .iter()
                .find(|e| e.starts_with(&format!("{}/checks@", capabilities::PACKAGE)));
            problems.push(match other {
                Some(other) => format!(
                    "exports {other}, but this host runs {wanted}; rebuild against that version"
                ),
                None => format!(
                    "does not export {wanted} (it exports: {}): it is a component of another world",
                    if self.exports.is_empty() {
                        "nothing".to_owned()
                    } else {
                        self.exports.join(", ")
                    }
                ),
            });
        }
        problems.extend(
            self.imports
                .iter()
                .filter_map(|name| ImportCheck::of(name, enabled).problem(name)),
        );
        problems
    }
}

/// A plugin file checked against what this host provides and pre-instantiated with its
/// linker: one per file, shared by every monitor that runs it (at 10,000 monitors of a few
/// plugins, one import table each instead of one per monitor).
pub struct PreparedPlugin {
    /// The component file.
    pub file: PluginFile,
    pre: MonitorPre<InstanceState>,
}

impl PreparedPlugin {
    /// Checks the component's imports against the enabled host plugins and pre-instantiates
    /// it with the linker, which must be of the component's engine; no guest code runs yet.
    pub fn new(
        file: PluginFile,
        linker: &Linker<InstanceState>,
        enabled: &HostPlugins,
    ) -> Result<PreparedPlugin> {
        let problems = file.problems(enabled);
        if !problems.is_empty() {
            bail!("plugin {}: {}", file.path.display(), problems.join("; "));
        }
        let pre = linker
            .instantiate_pre(&file.component)
            .and_then(MonitorPre::new)
            .map_err(|e| {
                anyhow::anyhow!(
                    "plugin {} does not fit this host's {}@{} world: {e:#}",
                    file.path.display(),
                    capabilities::PACKAGE,
                    capabilities::VERSION
                )
            })?;
        Ok(PreparedPlugin { file, pre })
    }
}

/// A monitor ready to run: its prepared plugin, limits and capabilities.
pub struct MonitorPlugin {
    /// The monitor's name in the config.
    pub name: Arc<str>,
    /// Its `limits:`.
    pub limits: Limits,
    plugin: Arc<PreparedPlugin>,
    capabilities: MonitorCapabilities,
    engine: Engine,
    /// Its `limits.log_lines_per_minute`, shared by its calls.
    log_minute: Arc<MinuteBudget>,
}

impl MonitorPlugin {
    /// The monitor `name` running `plugin`.
    pub fn new(
        name: &str,
        plugin: Arc<PreparedPlugin>,
        limits: Limits,
        engine: &Engine,
        capabilities: MonitorCapabilities,
    ) -> MonitorPlugin {
        MonitorPlugin {
            name: name.into(),
            log_minute: MinuteBudget::new(limits.log_lines_per_minute),
            limits,
            plugin,
            capabilities,
            engine: engine.clone(),
        }
    }

    /// Its component file.
    pub fn file(&self) -> &PluginFile {
        &self.plugin.file
    }

    /// Runs one export in a fresh instance. The deadline covers instantiation and the call,
    /// host calls included; a trap, a panic or a limit fails this call only.
    /// Runs in a `call` span naming the export; the caller's span names the monitor.
    #[tracing::instrument(name = "call", skip_all, fields(export = call.function()))]
    pub async fn call(&self, call: Call) -> Result<Reply, CallError> {
        let function = call.function();
        let timeout = self.limits.timeout.0;
        let log = InstanceState::call_log(self.name.clone(), &self.limits, &self.log_minute);
        // Declared before the store, so dropped after it (the instance's stdout/stderr flush
        // their last partial line then), also when the call is cancelled at shutdown.
        let _finish_log = FinishLog(log.clone());
        // The engine of the component's tier (Winch's or Cranelift's).
        let mut store = Store::new(
            self.plugin.file.component.engine(),
            InstanceState::new(
                self.name.clone(),
                &self.limits,
                log.clone(),
                &self.capabilities,
            ),
        );
        store.limiter(|state| &mut state.limits);
        // What the guest hands the host in one transfer (a host call's arguments, an export's
        // result) is charged by wasmtime as it lifts it, before copying: a list of a million
        // issues or 1.5 million headers is refused without being allocated.
        store
            .set_hostcall_fuel(usize::try_from(self.limits.transfer_bytes.0).unwrap_or(usize::MAX));
        // Guest code yields to tokio at every epoch tick, so a spinning guest neither holds a
        // worker thread nor escapes the timeout below (or a shutdown that drops the call).
        store.set_epoch_deadline(1);
        store.epoch_deadline_async_yield_and_update(1);
        let _ticking = self.engine.running_guest();

        let run = async {
            let instance = self.plugin.pre.instantiate_async(&mut store).await?;
            let guest = instance.sentinela_plugin_checks();
            let reply = match call {
                Call::Search => guest.call_search(&mut store).await?.map(Reply::Issues),
                Call::Update(issues) => guest
                    .call_update(&mut store, &issues)
                    .await?
                    .map(Reply::Issues),
                Call::IsSolved(issue) => guest
                    .call_is_solved(&mut store, &issue)
                    .await?
                    .map(Reply::Solved),
                Call::Handle(kind, payload) => guest
                    .call_handle(&mut store, kind, &payload)
                    .await?
                    .map(|()| Reply::Handled),
            };
            wasmtime::Result::Ok(reply)
        };
        let outcome = match tokio::time::timeout(timeout, run).await {
            Err(_) => Err(CallErrorKind::Deadline(timeout)),
            Ok(Err(trap)) => Err(self.classify(trap, &log)),
            Ok(Ok(Err(message))) => Err(CallErrorKind::Returned(message)),
            Ok(Ok(Ok(reply))) => Ok(reply),
        };
        outcome.map_err(|kind| CallError {
            monitor: self.name.clone(),
            function,
            kind,
        })
    }

    fn classify(&self, error: wasmtime::Error, log: &GuestLog) -> CallErrorKind {
        tracing::debug!(
            "guest failure: {}",
            crate::guest_text::escape(&format!("{error:?}"))
        );
        if let Some(trap) = error.downcast_ref::<Trap>() {
            return match trap {
                Trap::Interrupt => CallErrorKind::Deadline(self.limits.timeout.0),
                Trap::StackOverflow => {
                    CallErrorKind::Trap("wasm stack overflow (unbounded recursion?)".into())
                }
                Trap::UnreachableCodeReached => match log.panic_message() {
                    Some(message) => CallErrorKind::Panic(message),
                    None => CallErrorKind::Trap("wasm `unreachable` instruction executed".into()),
                },
                other => CallErrorKind::Trap(other.to_string()),
            };
        }
        if let Some(exit) = error.downcast_ref::<wasmtime_wasi::I32Exit>() {
            return CallErrorKind::Trap(format!("the guest called exit({})", exit.0));
        }
        let text = format!("{error:#}");
        if text.contains("too much data is being copied between the host and the guest") {
            CallErrorKind::Limit(format!(
                "it handed the host more than {} bytes in one transfer (limits.transfer_bytes; \
                 a list element counts its host size, e.g. 48 bytes per issue)",
                self.limits.transfer_bytes.0
            ))
        } else if text.contains("growing memory") {
            CallErrorKind::Limit(format!(
                "memory limit of {} bytes reached",
                self.limits.memory.0
            ))
        } else if text.contains("growing table") {
            CallErrorKind::Limit(format!(
                "table limit of {} elements reached",
                self.limits.table_elements
            ))
        } else if text.contains("resource limit exceeded") {
            CallErrorKind::Limit(format!("instance limit exceeded: {text}"))
        } else {
            CallErrorKind::Trap(text)
        }
    }
}

/// Ends a call's log when the call ends, however it ends: the dropped-output line and the
/// refused-call audit events are written even for a call cancelled at shutdown.
struct FinishLog(GuestLog);

impl Drop for FinishLog {
    fn drop(&mut self) {
        self.0.finish();
    }
}

/// One call into a monitor's exports.
#[derive(Debug, Clone)]
pub enum Call {
    /// `search`: find issues.
    Search,
    /// `update`: refresh the active issues.
    Update(Vec<Issue>),
    /// `is-solved` for one issue.
    IsSolved(Issue),
    /// `handle`: an event or request with its JSON payload.
    Handle(MessageKind, String),
}

impl Call {
    /// The export's name as in the WIT world.
    pub fn function(&self) -> &'static str {
        match self {
            Call::Search => "search",
            Call::Update(_) => "update",
            Call::IsSolved(_) => "is-solved",
            Call::Handle(..) => "handle",
        }
    }
}

/// What a call returned.
#[derive(Debug, Clone)]
pub enum Reply {
    /// The issues `search` or `update` returned.
    Issues(Vec<Issue>),
    /// Whether `is-solved` said the issue is solved.
    Solved(bool),
    /// `handle` returned without error.
    Handled,
}

/// A failed call: which monitor, which function, and why.
#[derive(Debug, thiserror::Error)]
#[error("monitor '{monitor}': {function} {kind}")]
pub struct CallError {
    /// The monitor called.
    pub monitor: Arc<str>,
    /// The export called.
    pub function: &'static str,
    /// How it failed.
    pub kind: CallErrorKind,
}

/// How a call failed. Messages, panic texts and trap backtraces (function names come from the
/// component's name section) are the guest's words: escaped, so they stay on one line.
#[derive(Debug, thiserror::Error)]
pub enum CallErrorKind {
    /// The monitor returned an error value.
    #[error("returned an error: {}", escape(.0))]
    Returned(String),
    /// The call ran past the monitor's `limits.timeout`.
    #[error("exceeded its deadline of {0:?} and was stopped")]
    Deadline(Duration),
    /// A resource limit was hit.
    #[error("was stopped: {}", escape(.0))]
    Limit(String),
    /// The guest panicked (the panic message as it wrote it to stderr).
    #[error("panicked: {}", escape(.0))]
    Panic(String),
    /// Any other trap.
    #[error("trapped: {}", escape(.0))]
    Trap(String),
}

//! One invocation's store data — each capability's per-instance state, the sandboxed WASI
//! context and the resource limits — and the one place where every capability is linked.
//!
//! The sandbox: an empty WASI world (no env vars, no arguments, no preopened directories, no
//! sockets or name lookup, empty stdin), guest output into the log, and the monitor's
//! resource limits (its `limits:` section, [`Limits`]).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use serde::Deserialize;
use wasmtime::ResourceLimiter;
use wasmtime::component::Linker;
use wasmtime_wasi::{ResourceTable, WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};
use wasmtime_wasi_config::WasiConfigVariables;

use crate::aws::AwsProvider;
use crate::bindings::sentinela::plugin::log::Level;
use crate::capabilities::aws_call::{self, AwsCallCtx, AwsCallGrants, AwsCallInstance};
use crate::capabilities::log::{self, GuestLog, MinuteBudget};
use crate::capabilities::queue::{self, MonitorQueues, QueueCtx, QueueInstance};
use crate::capabilities::secrets::{self, DeclaredSecrets, SecretStore, SecretsInstance};
use crate::capabilities::settings;
use crate::config::values::{ByteSize, ConfigDuration};

/// Links WASI (sandboxed by [`InstanceState`]'s context) and every capability. A disabled
/// host plugin's interfaces are linked too: a monitor's state for them is `None`, and every
/// call is denied with the variable to set.
pub fn linker(engine: &wasmtime::Engine) -> Result<Linker<InstanceState>> {
    let mut linker: Linker<InstanceState> = Linker::new(engine);
    // All of WASI p2 but wasi:http, which is a separate crate we never link. Sockets are
    // linked so that components whose libraries merely reference them still load; the
    // context denies every address and name lookup.
    wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
    log::add_to_linker(&mut linker, |state| &mut state.log)?;
    secrets::add_to_linker(&mut linker, |state| &mut state.secrets)?;
    settings::add_to_linker(&mut linker, |state| {
        wasmtime_wasi_config::WasiConfig::from(&*state.settings)
    })?;
    // Python and JavaScript components import every interface of the world, used or not,
    // so they must load without the `aws` host plugin.
    aws_call::add_to_linker(&mut linker, |state| AwsCallCtx(state.aws_call.as_ref()))?;
    queue::add_to_linker(&mut linker, |state| QueueCtx(state.queue.as_ref()))?;
    Ok(linker)
}

/// What one monitor may reach beyond `log`, prepared once when it is loaded: the shared
/// state of each capability it has and its grants there.
#[derive(Default, Clone)]
pub struct MonitorCapabilities {
    /// The `aws` host plugin's provider and this monitor's `aws-call` grants.
    pub aws_call: Option<(Arc<AwsProvider>, Arc<AwsCallGrants>)>,
    /// The `queues:` section and the queues this monitor is granted.
    pub queue: Option<(Arc<MonitorQueues>, Arc<Vec<String>>)>,
    /// The secret store and the secrets declared for this monitor.
    pub secrets: Option<(Arc<SecretStore>, DeclaredSecrets)>,
    /// The monitor's `settings:`, as `wasi:config/store` serves them.
    pub settings: Arc<WasiConfigVariables>,
}

/// Everything one invocation's store holds.
pub struct InstanceState {
    /// The monitor this instance runs.
    pub monitor: Arc<str>,
    /// The call's log and its budget, shared with the capabilities.
    pub log: GuestLog,
    /// The monitor's declared secrets.
    pub secrets: SecretsInstance,
    /// The monitor's settings (shared by its instances).
    pub settings: Arc<WasiConfigVariables>,
    /// When the `aws` host plugin is enabled.
    pub aws_call: Option<AwsCallInstance>,
    /// When the `aws` host plugin is enabled.
    pub queue: Option<QueueInstance>,
    pub(crate) limits: InstanceLimits,
    wasi: WasiCtx,
    table: ResourceTable,
}

impl InstanceState {
    /// `log` is the call's budget, shared with the capabilities' per-instance state.
    pub fn new(
        monitor: Arc<str>,
        limits: &Limits,
        log: GuestLog,
        capabilities: &MonitorCapabilities,
    ) -> InstanceState {
        let wasi = WasiCtxBuilder::new()
            .stdout(log.stream("stdout", Level::Info))
            .stderr(log.stream("stderr", Level::Warn))
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .socket_addr_check(|_, _| Box::pin(async { false }))
            .build();
        let (store, declared) = match &capabilities.secrets {
            Some((store, declared)) => (Some(store.clone()), declared.clone()),
            None => (None, Arc::new(BTreeMap::new())),
        };
        let secrets = SecretsInstance {
            monitor: monitor.clone(),
            log: log.clone(),
            declared,
            store,
        };
        let aws_call = capabilities
            .aws_call
            .as_ref()
            .map(|(aws, grants)| AwsCallInstance {
                monitor: monitor.clone(),
                grants: grants.clone(),
                aws: aws.clone(),
                log: log.clone(),
            });
        let queue = capabilities
            .queue
            .as_ref()
            .map(|(queues, granted)| QueueInstance {
                monitor: monitor.clone(),
                granted: granted.clone(),
                queues: queues.clone(),
                log: log.clone(),
            });
        InstanceState {
            monitor,
            secrets,
            settings: capabilities.settings.clone(),
            aws_call,
            queue,
            limits: InstanceLimits::new(limits),
            log,
            wasi,
            table: ResourceTable::new(),
        }
    }

    /// The log budget of one call of a monitor with these limits, drawing on the monitor's
    /// budget per minute too.
    pub fn call_log(monitor: Arc<str>, limits: &Limits, minute: &Arc<MinuteBudget>) -> GuestLog {
        GuestLog::new(
            monitor,
            usize::try_from(limits.log_bytes.0).unwrap_or(usize::MAX),
            limits.log_lines as usize,
            limits.aws_requests,
            minute.clone(),
        )
    }
}

impl WasiView for InstanceState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

/// The memory and table limits of one instance, summed over all of its core instances'
/// memories and tables (a component holds several, and a hostile one can hold many), with
/// caps on how many of each it may create. Growing past a limit traps the call.
#[derive(Debug)]
pub struct InstanceLimits {
    memory_bytes: usize,
    table_elements: usize,
    memories: usize,
    tables: usize,
    instances: usize,
    /// Bytes of every memory created so far, as granted by `memory_growing`.
    memory_used: usize,
    table_used: usize,
}

impl InstanceLimits {
    /// The limiter for one instance of a monitor with these `limits:`.
    pub fn new(limits: &Limits) -> InstanceLimits {
        InstanceLimits {
            memory_bytes: usize::try_from(limits.memory.0).unwrap_or(usize::MAX),
            table_elements: limits.table_elements as usize,
            memories: limits.memories as usize,
            tables: limits.tables as usize,
            instances: limits.instances as usize,
            memory_used: 0,
            table_used: 0,
        }
    }

    /// Bytes of linear memory the instance holds now.
    pub fn memory_used(&self) -> usize {
        self.memory_used
    }
}

/// Grows `used` (the sum over an instance's memories or tables) by one of them going from
/// `current` to `desired`; `current` is 0 when it is created. Past `limit` it traps, with the
/// text `MonitorPlugin::classify` recognises.
fn grow(
    used: &mut usize,
    limit: usize,
    current: usize,
    desired: usize,
    (what, whats, unit): (&str, &str, &str),
) -> wasmtime::Result<bool> {
    let total = used.saturating_sub(current).saturating_add(desired);
    if total > limit {
        wasmtime::bail!(
            "forcing trap when growing {what}: the instance's {whats} would hold {total} \
             {unit}, over the limit of {limit}"
        );
    }
    *used = total;
    Ok(true)
}

impl ResourceLimiter for InstanceLimits {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let limit = self.memory_bytes;
        let what = ("memory", "memories", "bytes");
        grow(&mut self.memory_used, limit, current, desired, what)
    }

    fn table_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let limit = self.table_elements;
        let what = ("table", "tables", "elements");
        grow(&mut self.table_used, limit, current, desired, what)
    }

    fn instances(&self) -> usize {
        self.instances
    }

    fn tables(&self) -> usize {
        self.tables
    }

    fn memories(&self) -> usize {
        self.memories
    }
}

/// Per-invocation resource limits of a monitor.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Linear memory, summed over the instance's memories; a `memory.grow` past it traps.
    pub memory: ByteSize,
    /// Wall-clock time for one call into the monitor, host calls included.
    pub timeout: ConfigDuration,
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
    /// Lines of log kept per minute over all of the monitor's calls (the per-call budgets
    /// still apply): a monitor called every second cannot write 1,000 lines a second.
    pub log_lines_per_minute: u32,
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
    /// The longest `limits.timeout` accepted.
    pub const MAX_TIMEOUT: Duration = Duration::from_secs(3600);

    /// The first limit out of its range, as its key and why: each is checked by `check` with
    /// the key's name, never found later by the engine.
    pub fn out_of_range(&self) -> Option<(&'static str, String)> {
        if self.timeout.0 > Self::MAX_TIMEOUT {
            return Some((
                "timeout",
                format!("at most {} s", Self::MAX_TIMEOUT.as_secs()),
            ));
        }
        if self.timeout.0.is_zero() {
            return Some(("timeout", "must be more than 0".into()));
        }
        if self.memory.0 > Self::MAX_MEMORY {
            return Some((
                "memory",
                format!(
                    "{} bytes is over the maximum of {} bytes (4GiB)",
                    self.memory.0,
                    Self::MAX_MEMORY
                ),
            ));
        }
        let ranges: [(&'static str, u64, u64, u64); 11] = [
            ("memory", self.memory.0, 64 << 10, Self::MAX_MEMORY),
            ("table_elements", self.table_elements.into(), 1, 1_000_000),
            ("instances", self.instances.into(), 1, 1000),
            ("memories", self.memories.into(), 1, 100),
            ("tables", self.tables.into(), 1, 1000),
            ("log_bytes", self.log_bytes.0, 0, 64 << 20),
            ("log_lines", self.log_lines.into(), 0, 1_000_000),
            (
                "log_lines_per_minute",
                self.log_lines_per_minute.into(),
                0,
                10_000_000,
            ),
            ("transfer_bytes", self.transfer_bytes.0, 1 << 10, 1 << 30),
            ("issues_per_call", self.issues_per_call.into(), 1, 1_000_000),
            ("active_issues", self.active_issues.into(), 1, 10_000_000),
        ];
        ranges
            .into_iter()
            .find(|&(_, value, min, max)| value < min || value > max)
            .map(|(key, value, min, max)| (key, format!("{value} is out of range: {min} to {max}")))
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            memory: ByteSize(128 << 20),
            timeout: ConfigDuration(Duration::from_secs(60)),
            table_elements: 20_000,
            instances: 32,
            memories: 16,
            tables: 64,
            log_bytes: ByteSize(64 << 10),
            log_lines: 1000,
            log_lines_per_minute: 6000,
            aws_requests: None,
            transfer_bytes: ByteSize(16 << 20),
            issues_per_call: 1000,
            active_issues: 10_000,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_is_summed_over_every_memory() {
        let mut limits = InstanceLimits::new(&Limits {
            memory: ByteSize(10 << 20),
            ..Limits::default()
        });
        // Three memories of 3 MiB each fit; a fourth does not, nor growing one past the sum.
        for _ in 0..3 {
            assert!(limits.memory_growing(0, 3 << 20, None).unwrap());
        }
        assert!(limits.memory_growing(0, 3 << 20, None).is_err());
        assert!(limits.memory_growing(3 << 20, 4 << 20, None).unwrap());
        assert_eq!(limits.memory_used(), 10 << 20);
        assert!(limits.memory_growing(4 << 20, 5 << 20, None).is_err());
    }
}

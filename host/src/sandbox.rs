//! The per-instance state and the sandbox it enforces: an empty WASI world (no env vars, no
//! arguments, no preopened directories, no sockets or name lookup, empty stdin), guest output
//! into the log, and the monitor's resource limits.

use std::sync::Arc;

use wasmtime::ResourceLimiter;
use wasmtime_wasi::{ResourceTable, WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

use crate::aws::call::AwsInstance;
use crate::bindings::sentinela::plugin::log::Level;
use crate::config::Limits;
use crate::guest_log::GuestLog;

/// The log budget of one call of a monitor with these limits.
pub fn call_log(monitor: Arc<str>, limits: &Limits) -> GuestLog {
    GuestLog::new(
        monitor,
        usize::try_from(limits.log_bytes.0).unwrap_or(usize::MAX),
        limits.log_lines as usize,
        limits.aws_requests,
    )
}
use crate::secrets::SecretsInstance;

/// Everything one invocation's store holds.
pub struct InstanceState {
    pub monitor: Arc<str>,
    pub log: GuestLog,
    /// `aws-call` state, when the `aws` host plugin is enabled.
    pub aws: Option<AwsInstance>,
    /// The secrets declared for this monitor.
    pub secrets: Option<SecretsInstance>,
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
        aws: Option<AwsInstance>,
        secrets: Option<SecretsInstance>,
    ) -> InstanceState {
        let wasi = WasiCtxBuilder::new()
            .stdout(log.stream("stdout", Level::Info))
            .stderr(log.stream("stderr", Level::Warn))
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .socket_addr_check(|_, _| Box::pin(async { false }))
            .build();
        let limits = InstanceLimits::new(limits);
        InstanceState {
            monitor,
            log,
            aws,
            secrets,
            limits,
            wasi,
            table: ResourceTable::new(),
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_is_summed_over_every_memory() {
        let mut limits = InstanceLimits::new(&Limits {
            memory: crate::config::ByteSize(10 << 20),
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

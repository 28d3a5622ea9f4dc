//! The per-instance state and the sandbox it enforces: an empty WASI world (no env vars, no
//! arguments, no preopened directories, no sockets or name lookup, empty stdin), guest output
//! into the log, and the monitor's resource limits.

use std::sync::Arc;

use wasmtime::{StoreLimits, StoreLimitsBuilder};
use wasmtime_wasi::{ResourceTable, WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

use crate::aws::call::AwsInstance;
use crate::bindings::sentinela::plugin::log::Level;
use crate::config::Limits;
use crate::guest_log::GuestLog;
use crate::secrets::SecretsInstance;

/// Everything one invocation's store holds.
pub struct InstanceState {
    pub monitor: Arc<str>,
    pub log: GuestLog,
    /// `aws-call` state, when the `aws` host plugin is enabled.
    pub aws: Option<AwsInstance>,
    /// The secrets declared for this monitor.
    pub secrets: Option<SecretsInstance>,
    pub(crate) limits: StoreLimits,
    wasi: WasiCtx,
    table: ResourceTable,
}

impl InstanceState {
    pub fn new(
        monitor: Arc<str>,
        limits: &Limits,
        aws: Option<AwsInstance>,
        secrets: Option<SecretsInstance>,
    ) -> InstanceState {
        let log = GuestLog::new(
            monitor.clone(),
            usize::try_from(limits.log_bytes.0).unwrap_or(usize::MAX),
        );
        let wasi = WasiCtxBuilder::new()
            .stdout(log.stream("stdout", Level::Info))
            .stderr(log.stream("stderr", Level::Warn))
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .socket_addr_check(|_, _| Box::pin(async { false }))
            .build();
        let limits = StoreLimitsBuilder::new()
            .memory_size(usize::try_from(limits.memory.0).unwrap_or(usize::MAX))
            .table_elements(limits.table_elements as usize)
            .instances(limits.instances as usize)
            .trap_on_grow_failure(true)
            .build();
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

//! The baseline of the invocation benchmark: the same component on the same engine (pooling
//! allocator, `InstancePre`) called by bare wasmtime, with none of the host's sandbox set-up,
//! limits, deadline, log capture or grants.

use anyhow::Result;
use sentinela_host::bindings::sentinela::plugin::{log, types};
use sentinela_host::bindings::{Monitor, MonitorPre};
use sentinela_host::capabilities::aws_call::{self, AwsCallCtx};
use sentinela_host::capabilities::log::{GuestLog, MinuteBudget};
use sentinela_host::capabilities::queue::{self, QueueCtx};
use sentinela_host::capabilities::secrets::{self, SecretsInstance};
use wasmtime::Store;
use wasmtime::component::{Component, HasSelf, Linker};
use wasmtime_wasi::{ResourceTable, WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_config::{WasiConfig, WasiConfigVariables};

struct BareState {
    wasi: WasiCtx,
    table: ResourceTable,
    /// For components that import every interface of the world (Python, JavaScript):
    /// `steady` never calls these, they only have to be there.
    secrets: SecretsInstance,
    settings: WasiConfigVariables,
}

impl WasiView for BareState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl log::Host for BareState {
    async fn log(&mut self, _level: log::Level, _message: String) {}
}

impl types::Host for BareState {}

pub struct Bare {
    engine: wasmtime::Engine,
    pre: MonitorPre<BareState>,
}

impl Bare {
    pub fn new(engine: &wasmtime::Engine, component: &Component) -> Result<Bare> {
        let mut linker = Linker::new(engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
        log::add_to_linker::<_, HasSelf<_>>(&mut linker, |s| s)?;
        types::add_to_linker::<_, HasSelf<_>>(&mut linker, |s| s)?;
        // Python and JavaScript components import every interface of the world; `steady`
        // calls none of these but `log`. They are linked with no state behind them.
        aws_call::add_to_linker(&mut linker, |_| AwsCallCtx(None))?;
        queue::add_to_linker(&mut linker, |_| QueueCtx(None))?;
        secrets::add_to_linker(&mut linker, |s: &mut BareState| &mut s.secrets)?;
        wasmtime_wasi_config::add_to_linker(&mut linker, |s: &mut BareState| {
            WasiConfig::from(&s.settings)
        })?;
        let pre = MonitorPre::new(linker.instantiate_pre(component)?)?;
        Ok(Bare {
            engine: engine.clone(),
            pre,
        })
    }

    /// New store + instantiate + `search` + drop.
    pub async fn search(&self) -> Result<()> {
        let state = BareState {
            wasi: WasiCtx::builder().build(),
            table: ResourceTable::new(),
            secrets: SecretsInstance {
                monitor: "bare".into(),
                log: GuestLog::new(
                    "bare".into(),
                    1 << 16,
                    1000,
                    Some(100),
                    MinuteBudget::new(u32::MAX),
                ),
                declared: Default::default(),
                store: None,
            },
            settings: WasiConfigVariables::new(),
        };
        let mut store = Store::new(&self.engine, state);
        // The engine interrupts on epochs; bare wasmtime just never reaches the deadline.
        store.set_epoch_deadline(u64::MAX / 2);
        let instance: Monitor = self.pre.instantiate_async(&mut store).await?;
        instance
            .sentinela_plugin_checks()
            .call_search(&mut store)
            .await?
            .map_err(anyhow::Error::msg)?;
        Ok(())
    }
}

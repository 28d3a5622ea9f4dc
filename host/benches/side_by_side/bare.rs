//! The baseline of the invocation benchmark: the same component on the same engine (pooling
//! allocator, `InstancePre`) called by bare wasmtime, with none of the host's sandbox set-up,
//! limits, deadline, log capture or grants.

use anyhow::Result;
use sentinela_host::bindings::sentinela::plugin::{log, types};
use sentinela_host::bindings::{Monitor, MonitorPre};
use wasmtime::Store;
use wasmtime::component::{Component, HasSelf, Linker};
use wasmtime_wasi::{ResourceTable, WasiCtx, WasiCtxView, WasiView};

struct BareState {
    wasi: WasiCtx,
    table: ResourceTable,
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
        // calls none but `log`, so the rest trap if ever called.
        linker.define_unknown_imports_as_traps(component)?;
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

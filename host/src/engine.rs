//! The process's one wasmtime `Engine`: component model, async, epoch interruption and a
//! pooling allocator tuned for many short invocations.

use std::thread;
use std::time::Duration;

use anyhow::Result;
use wasmtime::{Enabled, InstanceAllocationStrategy, PoolingAllocationConfig};

/// How often the epoch advances. Running guest code yields to tokio at every tick, so a
/// call's timeout (and shutdown) can stop a runaway guest within one tick.
pub const EPOCH_TICK: Duration = Duration::from_millis(10);

/// Sizes of the instance pool.
#[derive(Debug, Clone)]
pub struct EngineSettings {
    /// Component instances alive at once (each invocation holds one).
    pub max_instances: u32,
    /// The largest linear memory any monitor may grow to (its `limits.memory`).
    pub max_memory: u64,
    /// The largest table any monitor may grow to (its `limits.table_elements`).
    pub max_table_elements: u32,
}

impl Default for EngineSettings {
    fn default() -> Self {
        EngineSettings {
            max_instances: 1000,
            max_memory: 1 << 30,
            max_table_elements: 20_000,
        }
    }
}

/// A cheap handle on the engine; clones share it.
#[derive(Clone)]
pub struct Engine {
    inner: wasmtime::Engine,
}

impl Engine {
    pub fn new(settings: &EngineSettings) -> Result<Engine> {
        let mut pool = PoolingAllocationConfig::new();
        // A wasip2 component holds several core instances, memories and tables (the main
        // module plus adapter shims), so those pools are larger than the component pool.
        pool.total_component_instances(settings.max_instances)
            .total_core_instances(settings.max_instances * 4)
            .total_memories(settings.max_instances * 2)
            .total_tables(settings.max_instances * 4)
            .total_stacks(settings.max_instances)
            .max_memory_size(usize::try_from(settings.max_memory)?)
            .table_elements(settings.max_table_elements as usize)
            // Reusing warm pages instead of `madvise`-ing them away is what makes the pool
            // scale across cores (measured: ~17 µs per invocation instead of ~34 µs).
            .linear_memory_keep_resident(4 << 20)
            .table_keep_resident(64 << 10)
            .pagemap_scan(Enabled::Auto);

        let mut config = wasmtime::Config::new();
        config
            .wasm_component_model(true)
            .epoch_interruption(true)
            .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        let inner = wasmtime::Engine::new(&config)?;
        start_epoch_ticker(inner.weak());
        Ok(Engine { inner })
    }

    pub fn wasmtime(&self) -> &wasmtime::Engine {
        &self.inner
    }
}

/// Advances the engine's epoch every [`EPOCH_TICK`] on a thread of its own, so that guest
/// code is interrupted even when every tokio worker is busy running guests. The thread ends
/// when the engine is dropped.
fn start_epoch_ticker(engine: wasmtime::EngineWeak) {
    thread::Builder::new()
        .name("sentinela-epoch".into())
        .spawn(move || {
            while let Some(engine) = engine.upgrade() {
                engine.increment_epoch();
                drop(engine);
                thread::sleep(EPOCH_TICK);
            }
        })
        .expect("spawning the epoch thread");
}

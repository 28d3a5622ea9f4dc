//! The process's wasmtime engines: component model, async, epoch interruption. The
//! optimizing one (Cranelift) runs every plugin the compile cache holds, on a pooling
//! allocator tuned for many short invocations; the baseline one (Winch) runs a plugin the
//! cache lacks, compiled in a second or two, until Cranelift's code replaces it.

use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::thread;
use std::time::Duration;

use anyhow::Result;
use wasmtime::{Enabled, InstanceAllocationStrategy, PoolingAllocationConfig};

/// How often the epoch advances. Running guest code yields to tokio at every tick, so a
/// call's timeout (and shutdown) can stop a runaway guest within one tick.
pub const EPOCH_TICK: Duration = Duration::from_millis(10);

/// Which compiler made a plugin's code.
/// `compile.first_tier` and `compile-plugin --tier` name it as [`Tier::name`] does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Tier {
    /// wasmtime's baseline compiler, Winch: compiles about four times faster than Cranelift,
    /// runs slower. A plugin the compile cache lacks runs on it until the optimized code is
    /// ready.
    Baseline,
    /// Cranelift, optimizing: what the compile cache keeps and plugins run on.
    Optimized,
}

impl Tier {
    /// The name in logs, metrics and the compiler's command line.
    pub fn name(self) -> &'static str {
        match self {
            Tier::Baseline => "baseline",
            Tier::Optimized => "optimized",
        }
    }
}

impl fmt::Display for Tier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Tier::Baseline => "baseline (Winch)",
            Tier::Optimized => "optimized (Cranelift)",
        })
    }
}

/// Every setting that affects compiled code: one place, so the compiler's child process and
/// the running engines agree.
fn compile_config(tier: Tier) -> wasmtime::Config {
    let mut config = wasmtime::Config::new();
    config.wasm_component_model(true).epoch_interruption(true);
    if tier == Tier::Baseline {
        config.strategy(wasmtime::Strategy::Winch);
    }
    // Monitors are wasip2 components, called one export at a time: without the component
    // model's async machinery, a call is a plain call on a fiber, not a task in a
    // concurrent scheduler (measured: about a twentieth of the host's CPU at 10,000 monitors).
    config.concurrency_support(false);
    config
}

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

/// A cheap handle on the engines; clones share them.
#[derive(Clone)]
pub struct Engine {
    inner: wasmtime::Engine,
    /// Made when the first plugin needs it. Instances are allocated on demand, not pooled:
    /// plugins run on it only until they tier up, and each store's limiter applies the
    /// monitor's memory and table limits on either engine.
    baseline: Arc<OnceLock<wasmtime::Engine>>,
    ticker: Arc<Ticker>,
}

impl Engine {
    /// Builds the engine with an instance pool sized by `settings`, and starts its epoch ticker
    /// thread.
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

        let mut config = compile_config(Tier::Optimized);
        config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        let inner = wasmtime::Engine::new(&config)?;
        let ticker = Arc::new(Ticker::default());
        let baseline = Arc::new(OnceLock::new());
        start_epoch_ticker(inner.weak(), baseline.clone(), ticker.clone());
        Ok(Engine {
            inner,
            baseline,
            ticker,
        })
    }

    /// An engine that only compiles, for the compiler's child process: the same code
    /// settings as the running engine of `tier` (so its artifacts load there), without the
    /// instance pool's address-space reservations (pool sizes do not affect code).
    pub fn for_compiling(tier: Tier) -> Result<wasmtime::Engine> {
        let mut config = compile_config(tier);
        config.allocation_strategy(InstanceAllocationStrategy::OnDemand);
        Ok(wasmtime::Engine::new(&config)?)
    }

    /// The optimizing (Cranelift) wasmtime engine: what the compile cache's code runs on.
    pub fn wasmtime(&self) -> &wasmtime::Engine {
        &self.inner
    }

    /// The wasmtime engine of `tier`; the baseline one is made on first use, and fails off
    /// x86_64 or where Winch cannot run.
    pub fn for_tier(&self, tier: Tier) -> Result<&wasmtime::Engine> {
        match tier {
            Tier::Optimized => Ok(&self.inner),
            Tier::Baseline => {
                // Winch is one of wasmtime's tier-1 (fully supported, fuzzed) compilers on
                // x86_64 only: elsewhere a hostile plugin meets Cranelift alone.
                if !cfg!(target_arch = "x86_64") {
                    anyhow::bail!("the baseline compiler (Winch) is used on x86_64 only");
                }
                if let Some(engine) = self.baseline.get() {
                    return Ok(engine);
                }
                let engine = Self::for_compiling(Tier::Baseline)?;
                // Two threads may race here: both engines are equal, the first one is kept.
                Ok(self.baseline.get_or_init(|| engine))
            }
        }
    }

    /// Keeps the epoch advancing while the returned guard lives: hold one for as long as
    /// guest code may run. With no guard alive the ticker thread sleeps, so an idle host
    /// does not wake up 100 times a second.
    pub fn running_guest(&self) -> RunningGuest {
        // Two atomic operations per call; the lock is taken only to wake the idle ticker.
        if self.ticker.running.fetch_add(1, Ordering::AcqRel) == 0 {
            let _idle = lock(&self.ticker.idle);
            self.ticker.wake.notify_one();
        }
        RunningGuest {
            ticker: self.ticker.clone(),
        }
    }
}

/// How many guest calls are under way, and the ticker thread's alarm clock.
#[derive(Default)]
struct Ticker {
    running: AtomicUsize,
    /// Held by the ticker thread while it checks `running` and goes to sleep, and by the
    /// call that wakes it: no wake-up is lost between the two.
    idle: Mutex<()>,
    wake: Condvar,
}

/// See [`Engine::running_guest`].
pub struct RunningGuest {
    ticker: Arc<Ticker>,
}

impl Drop for RunningGuest {
    fn drop(&mut self) {
        self.ticker.running.fetch_sub(1, Ordering::AcqRel);
    }
}

fn lock(idle: &Mutex<()>) -> std::sync::MutexGuard<'_, ()> {
    idle.lock().unwrap_or_else(|e| e.into_inner())
}

/// Advances the engines' epoch every [`EPOCH_TICK`] on a thread of its own while guest code
/// runs, so that it is interrupted even when every tokio worker is busy running guests. The
/// thread ends when the optimizing engine is dropped (at its next tick, or wake-up: it checks
/// every second while idle).
fn start_epoch_ticker(
    engine: wasmtime::EngineWeak,
    baseline: Arc<OnceLock<wasmtime::Engine>>,
    ticker: Arc<Ticker>,
) {
    thread::Builder::new()
        .name("sentinela-epoch".into())
        .spawn(move || {
            loop {
                let idle = lock(&ticker.idle);
                if ticker.running.load(Ordering::Acquire) == 0 {
                    let _idle = ticker
                        .wake
                        .wait_timeout(idle, Duration::from_secs(1))
                        .unwrap_or_else(|e| e.into_inner());
                } else {
                    drop(idle);
                    thread::sleep(EPOCH_TICK);
                }
                let Some(engine) = engine.upgrade() else {
                    return;
                };
                engine.increment_epoch();
                if let Some(baseline) = baseline.get() {
                    baseline.increment_epoch();
                }
            }
        })
        .expect("spawning the epoch thread");
}

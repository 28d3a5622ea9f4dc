//! Prints the cost of one invocation (new store + instantiate + call `search` + drop) of a
//! monitor plugin, sequentially: `cargo run --release --example invocation_cost [PLUGIN.wasm] [N]`.
//! Defaults to the `steady` fixture (build the guests first with guests/build.sh).

use std::time::Instant;

use sentinela_host::capabilities;
use sentinela_host::compile_cache::CompileCache;
use sentinela_host::config::Limits;
use sentinela_host::engine::{Engine, EngineSettings};
use sentinela_host::host_plugins::HostPlugins;
use sentinela_host::plugin::{Call, MonitorPlugin, PluginFile};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let path = args.next().unwrap_or_else(|| {
        concat!(env!("CARGO_MANIFEST_DIR"), "/../guests/dist/steady.wasm").into()
    });
    let n: usize = args
        .next()
        .map(|n| n.parse())
        .transpose()?
        .unwrap_or(20_000);
    let engine = Engine::new(&EngineSettings::default())?;
    let plugins = HostPlugins::default();
    let file = PluginFile::load(&engine, &CompileCache::disabled(), path.as_ref())?;
    let linker = capabilities::linker(engine.wasmtime(), &plugins)?;
    let monitor = MonitorPlugin::new(
        "bench",
        file,
        Limits::default(),
        &engine,
        &linker,
        &plugins,
        Default::default(),
    )?;

    for _ in 0..1000 {
        monitor.call(Call::Search).await?;
    }
    let mut samples = Vec::with_capacity(n);
    for _ in 0..n {
        let started = Instant::now();
        monitor.call(Call::Search).await?;
        samples.push(started.elapsed());
    }
    samples.sort();
    let pct = |p: f64| samples[((samples.len() - 1) as f64 * p) as usize].as_secs_f64() * 1e6;
    println!(
        "{path}: {n} sequential invocations: median {:.1} µs, p99 {:.1} µs",
        pct(0.5),
        pct(0.99)
    );
    Ok(())
}

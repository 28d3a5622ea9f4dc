//! The side-by-side benchmark: every figure of docs/performance.md in one run, printed as a
//! table. Run it with `bench/run` (which builds the guests, installs the Python peer's
//! aiobotocore, starts moto and passes its address and pid); not part of `cargo test`.
//!
//! Sections (each can be picked by name as the first argument, e.g. `invocation`):
//! - invocation: store + instantiate + `search` + drop through the host vs bare wasmtime
//! - queue:      host process CPU per SQS message vs the Python aiobotocore peer, and moto's
//! - aws-call:   a guest's GetQueueAttributes via aws-call vs aws-sdk-rust directly
//! - invocation: also the `steady` fixture in Rust and JavaScript through the host
//! - start:      `sentinela check` with 10 Rust plugins cold/warm, the Python and the JS plugin
//! - memory:     idle RSS of `sentinela run` with 10 plugins; 1000 invocations in flight
//! - hostile:    a steady monitor's runs, host RSS and log bytes beside hostile monitors
//! - scale:      N monitors at 1 Hz (1,000 and 10,000): tasks/s, CPU per task, RSS, schedule lag

mod bare;
mod report;
mod sections;

/// The allocator the `sentinela` binary ships with (host/src/main.rs), for ours and bare
/// wasmtime alike: the in-process sections measure the host as it runs.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> anyhow::Result<()> {
    // Dropping a store after async calls captures a backtrace when RUST_BACKTRACE is set
    // (7–26 µs per invocation); production runs do not pay that, so neither do we.
    // SAFETY: no other thread exists yet.
    unsafe { std::env::set_var("RUST_LIB_BACKTRACE", "0") };
    let only = std::env::args().skip(1).find(|a| !a.starts_with('-'));
    let mut report = report::Report::default();
    sections::run(only.as_deref(), &mut report)?;
    report.print();
    Ok(())
}

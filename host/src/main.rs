//! The `sentinela` command; everything lives in the library, see [`sentinela_host::cli`].

use std::process::ExitCode;

/// jemalloc rather than the system allocator: a task allocates and frees many small
/// objects across the worker threads (stores, spans, messages), where glibc's malloc spent a
/// tenth of the CPU and kept arenas per thread. At 10,000 monitors at 1 Hz it did 30 % more
/// tasks per second in less memory (docs/performance.md).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> ExitCode {
    // Dropping a store after an async call captures a backtrace when RUST_BACKTRACE is set,
    // which costs every invocation microseconds; keep library backtraces off unless asked.
    if std::env::var_os("RUST_LIB_BACKTRACE").is_none() {
        // SAFETY: no other thread exists yet.
        unsafe { std::env::set_var("RUST_LIB_BACKTRACE", "0") };
    }
    sentinela_host::cli::main()
}

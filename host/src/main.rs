//! The `sentinela` command; everything lives in the library, see [`sentinela_host::cli`].

use std::process::ExitCode;

fn main() -> ExitCode {
    // Dropping a store after an async call captures a backtrace when RUST_BACKTRACE is set,
    // which costs every invocation microseconds; keep library backtraces off unless asked.
    if std::env::var_os("RUST_LIB_BACKTRACE").is_none() {
        // SAFETY: no other thread exists yet.
        unsafe { std::env::set_var("RUST_LIB_BACKTRACE", "0") };
    }
    sentinela_host::cli::main()
}

//! Sentinela host: runs monitor plugins as sandboxed WebAssembly components.
//!
//! Start with `docs/architecture.md`. Module map:
//! - [`config`]: the YAML file; [`host_plugins`]: `SENTINELA_PLUGINS`.
//! - [`grants`]: what `aws-call` may do; [`audit`]: one event per use of a credential or secret.
//! - [`engine`], [`compiler`], [`compile_cache`]: the wasmtime engine, compiling plugins
//!   under limits, and the compiled-code cache.
//! - [`capabilities`]: which imports exist and who provides them; the linker.
//! - [`sandbox`]: per-instance state and its limits; [`guest_log`]: the `log` interface;
//!   [`guest_text`]: guest-chosen text escaped for logs and terminals.
//! - [`plugin`]: loading and calling a monitor plugin.
//! - [`queue`], [`message`], [`runtime`]: scheduling and executing monitor tasks.

pub mod audit;
pub mod aws;
pub mod capabilities;
pub mod cli;
pub mod compile_cache;
pub mod compiler;
pub mod config;
pub mod engine;
pub mod grants;
pub mod guest_log;
pub mod guest_text;
pub mod host;
pub mod host_plugins;
pub mod issues;
pub mod message;
pub mod plugin;
pub mod queue;
pub mod runtime;
pub mod sandbox;
pub mod secrets;

/// Host-side bindings of `wit/sentinela.wit`.
pub mod bindings {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "monitor",
        imports: { default: async },
        exports: { default: async },
    });
}

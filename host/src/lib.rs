//! Sentinela host: runs monitor plugins as sandboxed WebAssembly components.
//!
//! Start with `docs/architecture.md`. Module map:
//! - [`config`]: the YAML file; [`host_plugins`]: `SENTINELA_PLUGINS`.
//! - [`engine`], [`compile_cache`]: the wasmtime engine and compiled-code cache.
//! - [`capabilities`]: which imports exist and who provides them; the linker.
//! - [`sandbox`]: per-instance state and its limits; [`guest_log`]: the `log` interface.
//! - [`plugin`]: loading and calling a monitor plugin.
//! - [`queue`], [`message`], [`runtime`]: scheduling and executing monitor tasks.

pub mod aws;
pub mod capabilities;
pub mod cli;
pub mod compile_cache;
pub mod config;
pub mod engine;
pub mod guest_log;
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

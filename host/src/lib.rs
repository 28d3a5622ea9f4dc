//! Sentinela host: runs monitor plugins as sandboxed WebAssembly components.
//!
//! Start with `docs/architecture.md`. Dependencies point one way:
//! [`cli`] → [`app`] → [`runtime`] → [`monitor`] → [`instance`] → [`capabilities`] →
//! [`aws`] → [`config::values`].
//! - [`config`]: the YAML loader; each section lives with the module that owns it.
//! - [`providers`]: host plugins (`SENTINELA_PLUGINS`).
//! - [`grants`]: what `aws-call` may do; [`audit`]: one event per use of a credential or secret.
//! - [`engine`], [`compiler`], [`compile_cache`]: the wasmtime engine, compiling plugins
//!   under limits, and the compiled-code cache.
//! - [`capabilities`]: `log`, `secrets`, `aws-call`, `queue`, one module each.
//! - [`instance`]: one invocation's store data, its limits, and the linker.
//! - [`monitor`]: loading and calling a monitor's component.
//! - [`aws`]: credentials, connectors and the transport that signs and sends.
//! - [`queue`], [`message`], [`runtime`], [`issues`]: the application queue, its messages,
//!   scheduling and executing tasks, and the issue store.
//! - [`guest_text`]: guest-chosen text escaped for logs and terminals.
//! - [`telemetry`]: `/healthz`, `/readyz` and `/metrics` (`http.listen`); [`reload`]: a
//!   changed plugin file or config swapped in while running.
//! - [`scaffold`]: `sentinela new`, a monitor project from a template.
//! - `fuzzing`: the properties the fuzz targets of `fuzz/` check (docs/fuzzing.md).

pub mod app;
pub mod audit;
pub mod aws;
pub mod background_load;
pub mod capabilities;
pub mod cli;
pub mod compile_cache;
pub mod compiler;
pub mod config;
pub mod declaration;
pub mod engine;
#[doc(hidden)]
pub mod fuzzing;
pub mod grants;
pub mod guest_text;
pub mod instance;
pub mod issues;
pub mod message;
pub mod monitor;
pub mod oci;
pub mod producers;
pub mod providers;
pub mod queue;
pub mod reload;
pub mod runtime;
pub mod scaffold;
pub mod telemetry;
pub mod tier_up;

/// Host-side bindings of `wit/sentinela.wit` (generated; the WIT file documents them).
#[allow(missing_docs)]
pub mod bindings {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "monitor",
        imports: { default: async },
        exports: { default: async },
    });
}

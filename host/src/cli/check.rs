//! `check` and `inspect`: what a config and its plugins are, and what `run` would refuse.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;

use crate::app::App;
use crate::capabilities::{ImportCheck, Provider};
use crate::compile_cache::CompileCache;
use crate::engine::{Engine, EngineSettings, Tier};
use crate::guest_text::shortened;
use crate::monitor::PluginFile;
use crate::providers::HostPlugins;

/// Where the store is, for `check`: never the URL itself, which may hold a password.
fn describe_store(store: &crate::issues::StoreConfig) -> String {
    let events = match &store.events_queue {
        Some(queue) => format!("; events to queue '{queue}'"),
        None => String::new(),
    };
    match store.kind {
        crate::issues::StoreKind::Sqlite => format!("sqlite {}{events}", store.path.display()),
        crate::issues::StoreKind::Postgres => match &store.url {
            Some(url) => format!("postgres {}{events}", crate::issues::redact_url(url)),
            None => format!("postgres, URL from ${}{events}", store.url_env),
        },
    }
}

pub(super) fn check(configs: &[PathBuf], connect: bool, locked: bool) -> Result<ExitCode> {
    let mut failures = 0;
    for path in configs {
        println!("{}", path.display());
        let host = match App::open_with(path, locked) {
            Ok(host) => host,
            Err(e) => {
                println!("  error: {e:#}");
                failures += 1;
                continue;
            }
        };
        println!(
            "  host plugins: {}",
            list_or_none(&host.host_plugins.names())
        );
        if let Some(aws) = &host.aws {
            for missing in aws.credentials.missing() {
                println!("  warning: {missing} (calls with it will fail)");
            }
        }
        println!("  issue store: {}", describe_store(&host.config.store));
        let problems = host.startup_problems();
        for warning in &problems.warnings {
            println!("  warning: {warning}");
        }
        for error in &problems.errors {
            println!("  error: {error}");
            failures += 1;
        }
        if connect {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()?;
            for (what, result) in runtime.block_on(host.connect_report()) {
                // Answers from servers: escaped and bounded like guest text.
                match result {
                    Ok(ok) => println!("  connect: {what}: ok ({})", shortened(&ok, 300)),
                    Err(e) => {
                        println!("  connect: {what}: error: {}", shortened(&e, 500));
                        failures += 1;
                    }
                }
            }
            runtime.shutdown_timeout(std::time::Duration::from_millis(200));
        }
        for (monitor, loaded) in host.load_monitors() {
            println!("  monitor {}", monitor.name);
            println!("    plugin: {}", monitor.plugin);
            if let crate::config::values::PluginLocation::Oci {
                resolved: Some(Ok(resolved)),
                ..
            } = &monitor.plugin
            {
                println!(
                    "    resolved: {} (layer {})",
                    resolved.manifest_digest, resolved.layer_digest
                );
            }
            let schedule = |c: &Option<crate::config::values::Schedule>| {
                c.as_ref()
                    .map(|c| c.expression().to_owned())
                    .unwrap_or_else(|| "-".into())
            };
            println!(
                "    search_cron: {}   update_cron: {}",
                schedule(&monitor.search_cron),
                schedule(&monitor.update_cron)
            );
            if let Ok(plugin) = &loaded {
                println!("    tier: {}", describe_tier(plugin.file().tier));
                let imports = describe_imports(&plugin.file().imports, &host.host_plugins);
                println!("    imports: {}", list_or_none(&imports));
                for warning in plugin.file().warnings(&host.host_plugins) {
                    println!("    warning: {warning}");
                }
                if let Some(note) = plugin.file().sdk_note() {
                    println!("    note: {note}");
                }
                for warning in crate::capabilities::unusable_grants_and_imports(
                    plugin.file().sdk,
                    &plugin.file().imports,
                    &monitor.grants,
                    &monitor.secrets,
                    &monitor.settings,
                ) {
                    println!("    warning: {warning}");
                }
                if let Some(declaration) = &plugin.file().declaration {
                    println!("    declares: {}", describe_declaration(declaration));
                    for warning in declaration.grant_warnings(&monitor.grants, &monitor.secrets) {
                        println!("    warning: {warning}");
                    }
                }
            }
            let grants = &monitor.grants;
            let credentials: Vec<_> = grants.credentials.iter().map(|c| c.to_string()).collect();
            let aws: Vec<_> = grants.aws.iter().map(|g| g.to_string()).collect();
            println!(
                "    grants: credentials: {}; aws: {}; queues: {}",
                list_or_none(&credentials),
                list_or_none(&aws),
                list_or_none(&grants.queues)
            );
            for grant in &grants.aws {
                if let Some(note) = grant.sensitive_note() {
                    println!("    note: {note}");
                }
            }
            for (name, source) in &monitor.secrets {
                println!("    secret {name}: {source}");
            }
            if !monitor.settings.is_empty() {
                println!("    settings: {}", monitor.settings);
            }
            if let Err(e) = loaded {
                println!("    error: {e:#}");
                failures += 1;
            } else {
                println!("    ok");
            }
        }
    }
    if failures > 0 {
        eprintln!("error: {failures} problem(s) found");
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

/// Sentinela imports by name; WASI summarised (it is the sandbox, not a capability).
fn describe_imports(imports: &[String], enabled: &HostPlugins) -> Vec<String> {
    let mut wasi = 0;
    let mut shown = Vec::new();
    for name in imports {
        match ImportCheck::of(name, enabled) {
            ImportCheck::Provided(Provider::Wasi)
                if !name.starts_with(crate::capabilities::settings::INTERFACE) =>
            {
                wasi += 1
            }
            _ => shown.push(name.clone()),
        }
    }
    if wasi > 0 {
        shown.push(format!("{wasi} WASI interfaces (sandboxed)"));
    }
    shown
}

pub(super) fn list_or_none(items: &[impl AsRef<str>]) -> String {
    if items.is_empty() {
        "none".to_owned()
    } else {
        items
            .iter()
            .map(AsRef::as_ref)
            .collect::<Vec<_>>()
            .join(", ")
    }
}

pub(super) fn inspect(plugin: &str) -> Result<ExitCode> {
    let engine = Engine::new(&EngineSettings::default())?;
    let compiler = crate::compiler::Compiler::for_this_process(&Default::default());
    let cache = CompileCache::locate(None).with_compiler(compiler);
    let (path, pin) = if plugin.starts_with(crate::oci::SCHEME) {
        let reference = crate::oci::OciReference::parse(plugin)?;
        let resolver = crate::oci::Resolver::new(
            cache.dir(),
            crate::compiler::CompileLimits::default().max_plugin_bytes,
        );
        let (result, _) = resolver
            .resolve_all(std::slice::from_ref(&reference), false)
            .pop()
            .ok_or_else(|| anyhow::anyhow!("{reference} was not resolved"))?;
        let resolved = result?;
        println!("reference: {reference}");
        println!("manifest:  {}", resolved.manifest_digest);
        let pin = resolved.sha256_hex().to_owned();
        (resolved.file, Some(pin))
    } else {
        (PathBuf::from(plugin), None)
    };
    let file = PluginFile::load(&engine, &cache, &path, pin.as_deref(), Tier::Baseline)?;
    println!("plugin:  {}", path.display());
    println!("tier:    {}", describe_tier(file.tier));
    match &file.declaration {
        Some(declaration) => {
            println!("declares:");
            for (name, setting) in &declaration.settings {
                let default = setting
                    .default
                    .as_ref()
                    .map(|d| format!(", default {}", shortened(&d.to_string(), 80)))
                    .unwrap_or_default();
                let description = setting
                    .description
                    .as_deref()
                    .map(|d| format!(": {}", shortened(d, 200)))
                    .unwrap_or_default();
                println!("  setting {name} ({}{default}){description}", setting.kind);
            }
            for (what, entries) in [
                ("aws", &declaration.aws),
                ("queue", &declaration.queues),
                ("secret", &declaration.secrets),
            ] {
                for entry in entries {
                    println!("  {what} {}", shortened(entry, 200));
                }
            }
        }
        None => println!(
            "declares: nothing (no {} section)",
            crate::declaration::SECTION
        ),
    }
    println!("size:    {} bytes", file.size);
    println!("sha256:  {}", file.sha256);
    println!("world:   {}", file.world());
    println!("imports:");
    for name in &file.imports {
        println!("  {name}");
    }
    println!("exports:");
    for name in &file.exports {
        println!("  {name}");
    }
    Ok(ExitCode::SUCCESS)
}

/// Which code a plugin runs, and what happens next when it is the baseline's.
fn describe_tier(tier: Tier) -> String {
    match tier {
        Tier::Optimized => format!("{tier}, from the compile cache or compiled now"),
        Tier::Baseline => format!(
            "{tier}: not in the compile cache yet; `run` starts it on this tier and compiles \
             it with Cranelift in the background, which the cache then keeps"
        ),
    }
}

/// A declaration on one line: its settings with their types, then what it calls and uses.
fn describe_declaration(declaration: &crate::declaration::Declaration) -> String {
    let settings: Vec<String> = declaration
        .settings
        .iter()
        .map(|(name, setting)| format!("{name} ({})", setting.kind))
        .collect();
    let shown =
        |entries: &[String]| -> Vec<String> { entries.iter().map(|e| shortened(e, 100)).collect() };
    format!(
        "settings: {}; aws: {}; queues: {}; secrets: {}",
        list_or_none(&settings),
        list_or_none(&shown(&declaration.aws)),
        list_or_none(&shown(&declaration.queues)),
        list_or_none(&shown(&declaration.secrets))
    )
}

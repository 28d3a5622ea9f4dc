//! The `sentinela` command line.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand, ValueEnum};

use tracing::Instrument;

use crate::app::App;
use crate::bindings::exports::sentinela::plugin::checks::MessageKind;
use crate::bindings::sentinela::plugin::types::Issue;
use crate::capabilities::{ImportCheck, Provider};
use crate::compile_cache::CompileCache;
use crate::config::Config;
use crate::engine::{Engine, EngineSettings};
use crate::guest_text::shortened;
use crate::issues::{EventQueue, IssueStore, Status};
use crate::message::Task;
use crate::monitor::{Call, PluginFile, Reply};
use crate::providers::HostPlugins;
use crate::queue::ApplicationQueue;
use crate::runtime::{Role, Runtime, RuntimeOptions, ScheduledMonitor};

#[derive(Parser)]
#[command(
    name = "sentinela",
    version,
    about = "Runs Sentinela monitors as sandboxed WebAssembly components"
)]
struct Cli {
    /// Log format on stderr. `RUST_LOG` sets the level (default: info).
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Schedule and run monitors until SIGINT or SIGTERM.
    Run {
        config: PathBuf,
        /// `controller` schedules, `executor` runs tasks, `all` does both. Several processes
        /// share work through an SQS application queue.
        #[arg(long, value_enum, default_value_t = Role::All)]
        role: Role,
    },
    /// Validate configs and every plugin they name; print each monitor's imports and grants.
    Check {
        #[arg(required = true)]
        configs: Vec<PathBuf>,
        /// Also open the issue store, reach the application queue (never creating it) and
        /// ask STS who each credential is (GetCallerIdentity), reporting each result.
        #[arg(long)]
        connect: bool,
    },
    /// Show a plugin's world, imports, exports and size.
    Inspect { plugin: PathBuf },
    /// Create a monitor project: source, a config entry and a README; prints the one command
    /// that builds it.
    New {
        /// The monitor's name (lowercase letters, digits, `-`, `_`).
        name: String,
        /// The language of the project: `rust`, `python` or `js`.
        #[arg(long, value_enum, default_value = "rust")]
        lang: crate::scaffold::Language,
        /// Where to create it (must not exist, or be empty); default `./NAME`.
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// Call one export of one monitor and print the JSON result on stdout.
    Invoke {
        config: PathBuf,
        monitor: String,
        function: Function,
        /// Input as JSON: a list of issues for `update`, one issue for `is-solved`
        /// (`{"id": "...", "data": {...}}`), the payload for `handle`.
        #[arg(long)]
        input: Option<String>,
        /// For `handle`: whether the payload is an `event` or a `request`.
        #[arg(long, value_enum, default_value = "event")]
        kind: HandleKind,
        /// Overrides (or adds) one of the monitor's `settings:` for this call; repeatable.
        #[arg(long = "set", value_name = "KEY=VALUE")]
        set: Vec<String>,
    },
    /// Compile one plugin to OUT (run by `sentinela` itself, in a child process under the
    /// `compile:` limits).
    #[command(hide = true)]
    CompilePlugin { wasm: PathBuf, out: PathBuf },
    /// List the config's monitors with their id and whether they are switched on; switch one
    /// off or on for every process sharing the store (`disable NAME`, `enable NAME`); or run
    /// its search and update now (`refresh NAME`).
    Monitors {
        config: PathBuf,
        action: Option<MonitorAction>,
        /// The monitor's name or `id`.
        monitor: Option<String>,
    },
    /// List the issues in the config's store.
    Issues {
        config: PathBuf,
        /// Only this monitor's issues.
        #[arg(long)]
        monitor: Option<String>,
        /// Only active, solved or dropped issues.
        #[arg(long, value_enum)]
        status: Option<IssueStatus>,
        /// One JSON array instead of a table.
        #[arg(long)]
        json: bool,
        /// The whole data column, not its first 60 characters.
        #[arg(long)]
        wide: bool,
    },
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum MonitorAction {
    Disable,
    Enable,
    Refresh,
}

#[derive(Clone, Copy, ValueEnum)]
enum IssueStatus {
    Active,
    Solved,
    Dropped,
}

#[derive(Clone, Copy, ValueEnum)]
enum Function {
    Search,
    Update,
    IsSolved,
    Handle,
}

#[derive(Clone, Copy, ValueEnum)]
enum HandleKind {
    Event,
    Request,
}

/// The `sentinela` command: parses the arguments, sets up logging and runs the subcommand.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing(cli.log_format);
    let result = match cli.command {
        Command::Run { config, role } => with_runtime(run(&config, role)),
        Command::Check { configs, connect } => check(&configs, connect),
        Command::Inspect { plugin } => inspect(&plugin),
        Command::New { name, lang, dir } => new_project(&name, lang, dir.as_deref()),
        Command::Invoke {
            config,
            monitor,
            function,
            input,
            kind,
            set,
        } => with_runtime(invoke(
            &config,
            &monitor,
            function,
            kind,
            input.as_deref(),
            &set,
        )),
        Command::CompilePlugin { wasm, out } => {
            crate::compiler::compile_plugin_command(&wasm, &out).map(|()| ExitCode::SUCCESS)
        }
        Command::Issues {
            config,
            monitor,
            status,
            json,
            wide,
        } => with_runtime(list_issues(&config, monitor.as_deref(), status, json, wide)),
        Command::Monitors {
            config,
            action,
            monitor,
        } => with_runtime(monitors(&config, action, monitor.as_deref())),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            // Whatever an error quotes (a config value, an answer of a server) is escaped and
            // bounded; a log collector reading JSON gets the fatal error as JSON too.
            let text = crate::guest_text::shortened(&format!("{e:#}"), 4000);
            match cli.log_format {
                LogFormat::Json => tracing::error!(fatal = true, "{text}"),
                LogFormat::Text => eprintln!("error: {text}"),
            }
            ExitCode::FAILURE
        }
    }
}

fn init_tracing(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            // `spans` holds the innermost span too; writing it again cost ~5 % of the CPU
            // at 10,000 tasks a second.
            .with_current_span(false)
            .init(),
    }
}

fn with_runtime(job: impl std::future::Future<Output = Result<ExitCode>>) -> Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let result = runtime.block_on(job);
    // Whatever is left (a blocking database call, a send to a hung queue) must not hold the
    // exit: the job already bounded what had to finish.
    runtime.shutdown_timeout(std::time::Duration::from_millis(200));
    result
}

async fn run(config: &Path, role: Role) -> Result<ExitCode> {
    let host = Arc::new(App::open(config)?);
    // The same start-up checks as `check`, with the same words.
    let problems = host.startup_problems();
    for warning in &problems.warnings {
        tracing::warn!("{warning}");
    }
    if let Some(error) = problems.errors.first() {
        bail!("{error}");
    }
    let queue_config = &host.config.application_queue;
    if role != Role::All && queue_config.kind == crate::queue::QueueKind::Internal {
        bail!(
            "{}: --role {role:?} needs a queue shared between processes; the internal queue \
             lives in one process (set application_queue.type: plugin.aws.sqs)",
            config.display()
        );
    }
    // A plugin that cannot be loaded (not a component, over a compile limit, an import the
    // host does not offer) is not run; the others are.
    let mut monitors = Vec::new();
    let mut not_loaded = Vec::new();
    let listen = host.config.http.listen;
    for (cfg, loaded) in host.load_monitors() {
        match loaded {
            Ok(plugin) => {
                for warning in plugin.file().warnings(&host.host_plugins) {
                    tracing::warn!(monitor = cfg.name.as_str(), "{warning}");
                }
                monitors.push(ScheduledMonitor::new(
                    Arc::new(plugin),
                    Arc::new(cfg.clone()),
                ))
            }
            Err(e) => {
                crate::telemetry::METRICS
                    .plugin_load_errors
                    .get_or_create(&vec![("monitor", cfg.name.as_str().to_owned())])
                    .inc();
                not_loaded.push(cfg.name.as_str().to_owned());
                tracing::error!(
                    monitor = cfg.name.as_str(),
                    "monitor not run: {e:#} ({})",
                    config.display()
                )
            }
        }
    }
    // Bound before anything runs: a port already taken is a start-up error naming the key.
    let listener =
        match listen {
            Some(address) => Some(tokio::net::TcpListener::bind(address).await.with_context(
                || {
                    format!(
                        "{}: http.listen: cannot listen on {address}",
                        config.display()
                    )
                },
            )?),
            None => None,
        };
    let queue = ApplicationQueue::from_config(queue_config)
        .await
        .with_context(|| format!("{}: application_queue", config.display()))?;
    let issues = open_store(&host).await?;
    let options = RuntimeOptions {
        role,
        concurrency: host.config.executor.concurrency.0,
        heartbeat: std::time::Duration::from_secs(queue_config.queue_visibility_time.into()),
        shutdown_grace: host.config.executor.shutdown_grace.0,
        spread: host.config.controller.spread,
    };
    crate::telemetry::set_not_loaded(not_loaded);
    let runtime = Arc::new(Runtime::new(monitors, queue, issues, options));
    let (stop_http, http_stopped) = tokio::sync::watch::channel(false);
    if let Some(listener) = listener {
        let address = listener.local_addr()?;
        let state = Arc::new(crate::telemetry::ProbeState {
            issues: runtime.issues().clone(),
        });
        tokio::spawn(crate::telemetry::serve(listener, state, http_stopped));
        tracing::info!(%address, "serving /healthz, /readyz and /metrics");
    }
    tokio::spawn(crate::reload::watch_plugins(
        host.clone(),
        runtime.clone(),
        stop_http.subscribe(),
    ));
    #[cfg(unix)]
    let sighup = tokio::spawn(crate::reload::reload_on_sighup(
        host.clone(),
        runtime.clone(),
    ));
    runtime.run(shutdown_signal()).await?;
    #[cfg(unix)]
    sighup.abort();
    let _ = stop_http.send(true);
    Ok(ExitCode::SUCCESS)
}

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

/// The config's issue store, sending events to `store.events_queue` when one is set.
async fn open_store(host: &App) -> Result<IssueStore> {
    let config = &host.config;
    let events = match &config.store.events_queue {
        Some(queue) => {
            let Some(queues) = &host.queues else {
                bail!(
                    "{}: store.events_queue: sending issue events to a queue needs the 'aws' host \
                     plugin; set SENTINELA_PLUGINS=aws",
                    config.path.display()
                );
            };
            Some(EventQueue {
                queues: queues.clone(),
                queue: queue.clone(),
            })
        }
        None => None,
    };
    let store = IssueStore::open(&config.store, events)
        .await
        .with_context(|| config.path.display().to_string())?;
    tracing::info!(store = store.location(), "issue store open");
    Ok(store)
}

/// `sentinela monitors CONFIG [disable|enable NAME]`. With a shared application queue the
/// switch is a `monitor_disable`/`monitor_enable` request, which an executor applies (and
/// logs) as if Sentinela's controller had sent it; otherwise it is written to the store.
async fn monitors(
    config_path: &Path,
    action: Option<MonitorAction>,
    monitor: Option<&str>,
) -> Result<ExitCode> {
    let config = Config::load(config_path)?;
    let store = IssueStore::open(&config.store, None)
        .await
        .with_context(|| config.path.display().to_string())?;
    let Some(action) = action else {
        let disabled = store.disabled_monitors().await?;
        let last_runs = store.last_runs().await?;
        let now_ms = chrono::Utc::now().timestamp_millis();
        println!(
            "{:<24} {:>8}  {:<8}  {:<20}  {:<20}  LAST_RUN",
            "MONITOR", "ID", "STATE", "SEARCH_CRON", "UPDATE_CRON"
        );
        for m in &config.monitors {
            let cron = |c: &Option<crate::config::values::Schedule>| {
                c.as_ref()
                    .map_or("-".to_owned(), |c| c.expression().to_owned())
            };
            // Task and outcome come from the store, which another process may write: escaped.
            let last_run =
                last_runs
                    .get(m.name.as_str())
                    .map_or("never".to_owned(), |(task, outcome, at)| {
                        format!(
                            "{} {} {} ago",
                            shortened(task, 16),
                            shortened(outcome, 16),
                            age(now_ms.saturating_sub(*at))
                        )
                    });
            println!(
                "{:<24} {:>8}  {:<8}  {:<20}  {:<20}  {last_run}",
                m.name.as_str(),
                m.id.map_or("-".to_owned(), |id| id.to_string()),
                if disabled.contains(m.name.as_str()) {
                    "disabled"
                } else {
                    "enabled"
                },
                cron(&m.search_cron),
                cron(&m.update_cron)
            );
        }
        return Ok(ExitCode::SUCCESS);
    };
    let Some(wanted) = monitor else {
        let verb = match action {
            MonitorAction::Disable => "disable",
            MonitorAction::Enable => "enable",
            MonitorAction::Refresh => "refresh",
        };
        bail!("name the monitor to {verb}");
    };
    let Some(target) = config
        .monitors
        .iter()
        .find(|m| m.name.as_str() == wanted || m.id.is_some_and(|id| id.to_string() == wanted))
    else {
        bail!(
            "{}: no monitor named '{}' or with that id",
            config.path.display(),
            crate::guest_text::shortened(wanted, 64)
        );
    };
    let enabled = action == MonitorAction::Enable;
    let shared = config.application_queue.kind == crate::queue::QueueKind::Sqs;
    if action == MonitorAction::Refresh && !shared {
        if store
            .disabled_monitors()
            .await?
            .contains(target.name.as_str())
        {
            bail!("{} is disabled; enable it first", target.name);
        }
        return refresh_here(config_path, target.name.as_str()).await;
    }
    if shared {
        let queue = ApplicationQueue::from_config(&config.application_queue)
            .await
            .with_context(|| format!("{}: application_queue", config.path.display()))?;
        let action = match action {
            MonitorAction::Enable => "monitor_enable",
            MonitorAction::Disable => "monitor_disable",
            MonitorAction::Refresh => "monitor_refresh",
        };
        let body = serde_json::json!({
            "type": "request",
            "payload": { "action": action, "params": { "target_id": target.name.as_str() } },
        });
        queue.send(body.to_string(), None).await?;
        println!("sent {action} for {} to the application queue", target.name);
    } else {
        store.set_enabled(target.name.as_str(), enabled).await?;
        let state = if enabled { "enabled" } else { "disabled" };
        println!(
            "{} {state} (a running host notices within {}s)",
            target.name,
            crate::runtime::DISABLED_REFRESH.as_secs()
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// A duration in milliseconds as `42s`, `5m`, `3h` or `2d`.
fn age(ms: i64) -> String {
    let s = ms.max(0) / 1000;
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m", s / 60),
        3600..86_400 => format!("{}h", s / 3600),
        _ => format!("{}d", s / 86_400),
    }
}

/// `monitors CONFIG refresh NAME` without a shared queue: the monitor's search and update run
/// in this process, against the config's store, as an executor would run them.
async fn refresh_here(config: &Path, name: &str) -> Result<ExitCode> {
    let host = App::open(config)?;
    let monitor_config = host
        .config
        .monitor(name)
        .context("the monitor is no longer in the config")?;
    let plugin = host.load_monitor(monitor_config)?;
    let issues = open_store(&host).await?;
    let monitor = ScheduledMonitor::new(Arc::new(plugin), Arc::new(monitor_config.clone()));
    let options = RuntimeOptions {
        role: Role::Executor,
        concurrency: 1,
        heartbeat: std::time::Duration::from_secs(60),
        shutdown_grace: std::time::Duration::ZERO,
        spread: crate::runtime::Spread(std::time::Duration::ZERO),
    };
    let queue = ApplicationQueue::Internal(crate::queue::InternalQueue::new());
    let runtime = Runtime::new(Vec::new(), queue, issues, options);
    runtime
        .run_tasks(&monitor, &[Task::Search, Task::Update], None)
        .await;
    runtime.flush_last_runs().await;
    println!("{name} refreshed (search and update ran; see the log for their outcome)");
    Ok(ExitCode::SUCCESS)
}

async fn list_issues(
    config: &Path,
    monitor: Option<&str>,
    status: Option<IssueStatus>,
    json: bool,
    wide: bool,
) -> Result<ExitCode> {
    let config = Config::load(config)?;
    let store = IssueStore::open(&config.store, None)
        .await
        .with_context(|| config.path.display().to_string())?;
    let status = status.map(|s| match s {
        IssueStatus::Active => Status::Active,
        IssueStatus::Solved => Status::Solved,
        IssueStatus::Dropped => Status::Dropped,
    });
    let issues = store.list(monitor, status).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&issues)?);
        return Ok(ExitCode::SUCCESS);
    }
    if issues.is_empty() {
        println!("no issues in {}", store.location());
        return Ok(ExitCode::SUCCESS);
    }
    let time = |t: std::time::SystemTime| {
        chrono::DateTime::<chrono::Utc>::from(t)
            .format("%Y-%m-%d %H:%M:%S")
            .to_string()
    };
    let rows: Vec<[String; 8]> = issues
        .iter()
        .map(|i| {
            // Ids and data are the monitors' words: escaped for the terminal (bidi controls,
            // line separators), as everywhere else.
            let mut data = crate::guest_text::json_for_terminal(&i.data.to_string()).into_owned();
            if !wide && data.len() > 60 {
                let cut = (0..=57)
                    .rev()
                    .find(|n| data.is_char_boundary(*n))
                    .unwrap_or(0);
                data.truncate(cut);
                data.push_str("...");
            }
            [
                i.monitor.clone(),
                i.key.to_string(),
                crate::guest_text::escape(&i.id).into_owned(),
                i.status.as_str().to_owned(),
                time(i.created_at),
                time(i.updated_at),
                i.solved_at.map(time).unwrap_or_default(),
                data,
            ]
        })
        .collect();
    let header = [
        "MONITOR",
        "KEY",
        "ISSUE",
        "STATUS",
        "FIRST SEEN (UTC)",
        "LAST CHANGED (UTC)",
        "CLOSED (UTC)",
        "DATA",
    ];
    let widths: Vec<usize> = (0..header.len())
        .map(|c| {
            rows.iter()
                .map(|r| r[c].chars().count())
                .chain([header[c].len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |cells: Vec<&str>| {
        let padded: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(cell, width)| format!("{cell:<width$}"))
            .collect();
        println!("{}", padded.join("  ").trim_end());
    };
    line(header.to_vec());
    for row in &rows {
        line(row.iter().map(String::as_str).collect());
    }
    Ok(ExitCode::SUCCESS)
}

/// Resolves on SIGINT or SIGTERM. The handlers are installed when this is called, not when
/// the future is first polled: a signal that arrives right after "sentinela running" is
/// logged must start a clean shutdown, not kill the process with the default action.
fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    #[cfg(unix)]
    let listeners = {
        use tokio::signal::unix::{SignalKind, signal};
        signal(SignalKind::interrupt()).and_then(|int| Ok((int, signal(SignalKind::terminate())?)))
    };
    async move {
        #[cfg(unix)]
        match listeners {
            Ok((mut int, mut term)) => {
                tokio::select! {
                    _ = int.recv() => {}
                    _ = term.recv() => {}
                }
            }
            Err(e) => {
                tracing::warn!("cannot listen for SIGINT/SIGTERM: {e}; stopping on Ctrl-C only");
                let _ = tokio::signal::ctrl_c().await;
            }
        }
        #[cfg(not(unix))]
        let _ = tokio::signal::ctrl_c().await;
        tracing::info!("shutdown signal received");
    }
}

fn check(configs: &[PathBuf], connect: bool) -> Result<ExitCode> {
    let mut failures = 0;
    for path in configs {
        println!("{}", path.display());
        let host = match App::open(path) {
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
            println!("    plugin: {}", monitor.plugin.0.display());
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
                let imports = describe_imports(&plugin.file().imports, &host.host_plugins);
                println!("    imports: {}", list_or_none(&imports));
                for warning in plugin.file().warnings(&host.host_plugins) {
                    println!("    warning: {warning}");
                }
                for warning in crate::capabilities::unusable_grants_and_imports(
                    &plugin.file().imports,
                    &monitor.grants,
                    &monitor.secrets,
                    &monitor.settings,
                ) {
                    println!("    warning: {warning}");
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

fn list_or_none(items: &[impl AsRef<str>]) -> String {
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

fn new_project(
    name: &str,
    lang: crate::scaffold::Language,
    dir: Option<&Path>,
) -> Result<ExitCode> {
    let created = crate::scaffold::create(name, lang, dir)?;
    let dir = created.dir.display();
    println!("created {dir}");
    println!("build it:  cd {dir} && {}", created.build);
    println!(
        "try it:    sentinela check sentinela.yaml && sentinela invoke sentinela.yaml {name} search"
    );
    Ok(ExitCode::SUCCESS)
}

fn inspect(path: &Path) -> Result<ExitCode> {
    let engine = Engine::new(&EngineSettings::default())?;
    let compiler = crate::compiler::Compiler::for_this_process(&Default::default());
    let cache = CompileCache::locate(None).with_compiler(compiler);
    let file = PluginFile::load(&engine, &cache, path, None)?;
    println!("plugin:  {}", path.display());
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

async fn invoke(
    config: &Path,
    monitor: &str,
    function: Function,
    kind: HandleKind,
    input: Option<&str>,
    set: &[String],
) -> Result<ExitCode> {
    let host = App::open(config)?;
    let Some(configured) = host.config.monitor(monitor) else {
        let names: Vec<_> = host
            .config
            .monitors
            .iter()
            .map(|m| m.name.as_str())
            .collect();
        bail!(
            "{}: no monitor named '{monitor}' (monitors: {})",
            config.display(),
            list_or_none(&names)
        );
    };
    let mut monitor_config = configured.clone();
    for assignment in set {
        let (key, value) = assignment
            .split_once('=')
            .with_context(|| format!("--set {assignment}: expected KEY=VALUE"))?;
        monitor_config
            .settings
            .set(key, value)
            .map_err(|e| anyhow::anyhow!("--set: {e}"))?;
    }
    let monitor_config = &monitor_config;
    let plugin = host.load_monitor(monitor_config)?;
    let call = match function {
        Function::Search => Call::Search,
        Function::Update => Call::Update(
            parse_input::<Vec<IssueJson>>(input, "a JSON list of issues")?
                .into_iter()
                .map(Issue::from)
                .collect(),
        ),
        Function::IsSolved => {
            Call::IsSolved(parse_input::<IssueJson>(input, "one JSON issue")?.into())
        }
        Function::Handle => {
            let payload = parse_input::<serde_json::Value>(input, "the JSON payload")?;
            let kind = match kind {
                HandleKind::Event => MessageKind::Event,
                HandleKind::Request => MessageKind::Request,
            };
            Call::Handle(kind, payload.to_string())
        }
    };
    let span = tracing::info_span!("invoke", monitor = monitor_config.name.as_str());
    let output = match plugin.call(call).instrument(span).await? {
        Reply::Issues(issues) => {
            // Bounded like the runtime: past the limit the whole result is refused.
            crate::issues::check_issue_count(
                monitor,
                function_name(function),
                issues.len(),
                plugin.limits.issues_per_call,
            )
            .map_err(anyhow::Error::msg)?;
            let issues: Vec<serde_json::Value> = issues
                .into_iter()
                .map(|i| {
                    let data =
                        serde_json::from_str(&i.data).unwrap_or(serde_json::Value::String(i.data));
                    serde_json::json!({ "id": i.id, "data": data })
                })
                .collect();
            serde_json::Value::Array(issues)
        }
        Reply::Solved(solved) => serde_json::Value::Bool(solved),
        Reply::Handled => serde_json::Value::Null,
    };
    // The guest's ids and data, on the operator's terminal: no raw control or bidi character.
    println!(
        "{}",
        crate::guest_text::json_for_terminal(&output.to_string())
    );
    Ok(ExitCode::SUCCESS)
}

fn function_name(function: Function) -> &'static str {
    match function {
        Function::Search => "search",
        Function::Update => "update",
        Function::IsSolved => "is-solved",
        Function::Handle => "handle",
    }
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct IssueJson {
    id: String,
    #[serde(default)]
    data: serde_json::Value,
}

impl From<IssueJson> for Issue {
    fn from(issue: IssueJson) -> Issue {
        Issue {
            id: issue.id,
            data: issue.data.to_string(),
        }
    }
}

fn parse_input<T: serde::de::DeserializeOwned>(input: Option<&str>, what: &str) -> Result<T> {
    let input = input.with_context(|| format!("--input is required: {what}"))?;
    serde_json::from_str(input).with_context(|| format!("--input must be {what}"))
}

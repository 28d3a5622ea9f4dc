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
use crate::config::MonitorConfig;
use crate::monitor::{Call, Reply};
use crate::queue::ApplicationQueue;
use crate::runtime::{Role, Runtime, RuntimeOptions, ScheduledMonitor};

mod check;
mod grants;
mod oci;
mod store;

use check::{check, inspect, list_or_none};
use grants::grants_from_audit;
use store::{list_issues, monitors, open_store};

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
        /// Refuse to start when an `oci://` tag is not in the lock file beside the config
        /// (`NAME.lock`), and never write it. Without it, new tags are recorded; a tag that
        /// now resolves elsewhere than the lock file says is refused either way.
        #[arg(long)]
        locked: bool,
    },
    /// Validate configs and every plugin they name; print each monitor's imports and grants.
    Check {
        #[arg(required = true)]
        configs: Vec<PathBuf>,
        /// Also open the issue store, reach the application queue (never creating it) and
        /// ask STS who each credential is (GetCallerIdentity), reporting each result.
        #[arg(long)]
        connect: bool,
        /// As for `run`: `oci://` tags must be in the lock file, which is never written.
        #[arg(long)]
        locked: bool,
    },
    /// Show a plugin's world, imports, exports and size; PLUGIN is a file or an `oci://`
    /// reference (pulled into the local store if it is not there).
    Inspect { plugin: String },
    /// Publish a component at an OCI reference (`oci://registry/repository:tag`) in the Wasm
    /// OCI artifact layout; prints the manifest digest to pin. Registry logins come from
    /// $REGISTRY_AUTH_FILE, $DOCKER_CONFIG/config.json or ~/.docker/config.json.
    Push { file: PathBuf, reference: String },
    /// Fetch an `oci://` reference into the local store (resolving a tag again), so that a
    /// start needs no registry.
    Pull { reference: String },
    /// Write what a component needs (DECLARATION: a YAML or JSON file of `settings`, `aws`,
    /// `queues` and `secrets`) into it, as its first custom section; `check` then holds
    /// configs to it.
    Declare {
        component: PathBuf,
        declaration: PathBuf,
        /// Write the declared component here instead of replacing COMPONENT.
        #[arg(long, short)]
        output: Option<PathBuf>,
    },
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
    /// Print the smallest `grants:` block that covers what MONITOR called, read from the
    /// host's audit events in LOG (a text or JSON log of `run` or `invoke`), resources
    /// included.
    Grants {
        monitor: String,
        /// The log to read.
        #[arg(long = "from-audit", value_name = "LOG")]
        from_audit: PathBuf,
    },
    /// Compile one plugin to OUT (run by `sentinela` itself, in a child process under the
    /// `compile:` limits).
    #[command(hide = true)]
    CompilePlugin {
        /// The compiler: `optimized` (Cranelift) or `baseline` (Winch).
        #[arg(long, value_enum, default_value = "optimized")]
        tier: crate::engine::Tier,
        wasm: PathBuf,
        out: PathBuf,
    },
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
    // Held to the end of `main`: dropping it flushes the lines still queued for stderr.
    let _log_writer = init_tracing(cli.log_format);
    let result = match cli.command {
        Command::Run {
            config,
            role,
            locked,
        } => with_runtime(run(&config, role, locked)),
        Command::Check {
            configs,
            connect,
            locked,
        } => check(&configs, connect, locked),
        Command::Inspect { plugin } => inspect(&plugin),
        Command::Push { file, reference } => oci::push(&file, &reference),
        Command::Pull { reference } => oci::pull(&reference),
        Command::Declare {
            component,
            declaration,
            output,
        } => oci::declare(&component, &declaration, output.as_deref()),
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
        Command::Grants {
            monitor,
            from_audit,
        } => grants_from_audit(&monitor, &from_audit),
        Command::CompilePlugin { tier, wasm, out } => {
            crate::compiler::compile_plugin_command(&wasm, &out, tier).map(|()| ExitCode::SUCCESS)
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

/// Logs to stderr through the non-blocking writer (see [`crate::telemetry::log_writer`]);
/// the guard flushes it when dropped.
fn init_tracing(format: LogFormat) -> tracing_appender::non_blocking::WorkerGuard {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let (writer, guard) = crate::telemetry::log_writer::stderr();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
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
    guard
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

async fn run(config: &Path, role: Role, locked: bool) -> Result<ExitCode> {
    let host = Arc::new(App::open_with(config, locked)?);
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
    // host does not offer) is not run; the others are. Plugins the compile cache holds are
    // loaded now; the others are compiled in the background once the runtime runs.
    crate::telemetry::set_not_loaded(Vec::new());
    let listen = host.config.http.listen;
    let (loaded, compiling) = host.load_cached_monitors();
    let monitors: Vec<ScheduledMonitor> = loaded
        .into_iter()
        .filter_map(|(cfg, loaded)| crate::background_load::admit(&host, cfg, loaded))
        .collect();
    let compiling: Vec<MonitorConfig> = compiling.into_iter().cloned().collect();
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
    let runtime = Arc::new(Runtime::new(monitors, queue, issues, options));
    crate::tier_up::spawn(host.clone(), runtime.monitors().iter().cloned().collect());
    crate::background_load::spawn(host.clone(), runtime.clone(), compiling);
    let (stop_http, http_stopped) = tokio::sync::watch::channel(false);
    if let Some(listener) = listener {
        let address = listener.local_addr()?;
        let state = Arc::new(crate::telemetry::ProbeState {
            issues: runtime.issues().clone(),
        });
        tokio::spawn(crate::telemetry::serve(listener, state, http_stopped));
        tracing::info!(%address, "serving /healthz, /readyz and /metrics");
    }
    let log_drops = tokio::spawn(crate::telemetry::log_writer::report_drops());
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
    let ran = runtime.run(shutdown_signal()).await;
    // A background compile stops with the host instead of holding its exit.
    crate::compiler::stop_compiling();
    log_drops.abort();
    ran?;
    #[cfg(unix)]
    sighup.abort();
    let _ = stop_http.send(true);
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

//! The measurements. Each section adds its rows to the report.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStderr, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use aws_sdk_sqs::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_sqs::types::{QueueAttributeName, SendMessageBatchRequestEntry};
use sentinela_host::app::App;
use sentinela_host::bindings::exports::sentinela::plugin::checks::MessageKind;
use sentinela_host::compile_cache::CompileCache;
use sentinela_host::engine::{Engine, EngineSettings, Tier};
use sentinela_host::instance::{self, Limits};
use sentinela_host::monitor::{Call, MonitorPlugin, PluginFile, PreparedPlugin};
use sentinela_host::providers::HostPlugins;
use wasmtime::component::Component;

use crate::bare::Bare;
use crate::report::{Report, quantile, sorted};

mod start;

use start::{memory, start};

const BIN: &str = env!("CARGO_BIN_EXE_sentinela");

/// The `sentinela` every section runs as a process: this build's, or `SENTINELA_BENCH_BIN`
/// (another build, for a before/after comparison on the same machine).
fn bench_bin() -> String {
    std::env::var("SENTINELA_BENCH_BIN").unwrap_or_else(|_| BIN.to_owned())
}
const GUESTS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../guests/dist");
const REPO: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/..");

/// Ten distinct Rust components that load as monitors, for start time and memory.
const TEN_PLUGINS: [&str; 10] = [
    "stuck_orders",
    "cert_expiry",
    "sqs_backlog",
    "queue_age",
    "steady",
    "blink",
    "sqs_probe",
    "queue_roundtrip",
    "secret_reader",
    "hostile_panic",
];

/// Messages per consumer in the queue section: enough for /proc's 10 ms CPU ticks to matter
/// little, few enough that the queue stays shallow (moto slows down as a queue gets deeper).
const QUEUE_MESSAGES: usize = 400;

pub fn run(only: Option<&str>, report: &mut Report) -> Result<()> {
    let want = |name: &str| only.is_none_or(|o| o == name);
    let scratch = std::env::temp_dir().join(format!("sentinela-bench-{}", std::process::id()));
    std::fs::create_dir_all(&scratch)?;
    if want("invocation") {
        eprintln!("invocation cost ...");
        invocation(report)?;
        languages(report)?;
    }
    if want("aws-call") {
        eprintln!("aws-call overhead ...");
        aws_call(&scratch, report)?;
    }
    if want("queue") {
        eprintln!("queue CPU per message ...");
        queue(&scratch, report)?;
    }
    if want("start") {
        eprintln!("start time ...");
        start(&scratch, report)?;
    }
    if want("memory") {
        eprintln!("memory and concurrency ...");
        memory(&scratch, report)?;
        concurrency(report)?;
    }
    if want("hostile") {
        eprintln!("hostile neighbours ...");
        hostile_neighbours(&scratch, report)?;
    }
    if want("scale") {
        eprintln!("scale ...");
        scale(&scratch, report)?;
    }
    let _ = std::fs::remove_dir_all(&scratch);
    Ok(())
}

fn guest(name: &str) -> PathBuf {
    Path::new(GUESTS).join(format!("{name}.wasm"))
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?)
}

/// The `steady` fixture loaded as the host loads a monitor, with default limits.
fn steady_monitor(engine: &Engine) -> Result<MonitorPlugin> {
    load_monitor(engine, "steady")
}

/// A guest component loaded as the host loads a monitor, with default limits.
fn load_monitor(engine: &Engine, component: &str) -> Result<MonitorPlugin> {
    load_monitor_on(engine, component, Tier::Optimized)
}

/// A guest component compiled on `tier` and loaded as the host loads a monitor.
fn load_monitor_on(engine: &Engine, component: &str, tier: Tier) -> Result<MonitorPlugin> {
    let plugins = HostPlugins::default();
    let cache = CompileCache::disabled();
    let file = PluginFile::load(engine, &cache, &guest(component), None, tier)?;
    let linker = instance::linker(engine.for_tier(file.tier)?)?;
    let plugin = PreparedPlugin::new(file, &linker, &plugins)?;
    Ok(MonitorPlugin::new(
        component,
        Arc::new(plugin),
        Limits::default(),
        engine,
        Default::default(),
    ))
}

/// Per invocation through the host vs bare wasmtime for the `steady` fixture in each guest
/// language, on the same component: what a monitor's language costs on every call, and what
/// the host adds to it.
fn languages(report: &mut Report) -> Result<()> {
    const CALLS: usize = 200;
    runtime()?.block_on(async {
        let engine = Engine::new(&EngineSettings::default())?;
        for (language, component) in [
            ("Rust", "steady"),
            ("Python", "steady_py"),
            ("JavaScript", "steady_js"),
        ] {
            let monitor = load_monitor(&engine, component)?;
            let bare = Bare::new(
                engine.wasmtime(),
                &Component::from_file(engine.wasmtime(), guest(component))?,
            )?;
            let (mut ours, mut base) = (Vec::with_capacity(CALLS), Vec::with_capacity(CALLS));
            for round in 0..CALLS + 20 {
                let started = Instant::now();
                monitor
                    .call(Call::Search)
                    .await
                    .map_err(|e| anyhow::anyhow!("{e}"))?;
                let took = started.elapsed().as_secs_f64() * 1e6;
                let started = Instant::now();
                bare.search().await?;
                let bare_took = started.elapsed().as_secs_f64() * 1e6;
                if round >= 20 {
                    ours.push(took);
                    base.push(bare_took);
                }
            }
            let (o, b) = (quantile(&sorted(ours), 0.5), quantile(&sorted(base), 0.5));
            report.row(
                format!("invocation, `steady` in {language}, median of {CALLS}"),
                format!("{o:.1} µs ({:.2}×)", o / b),
                format!("{b:.1} µs bare wasmtime"),
                "≤ 1.1× bare",
                Some(o <= 1.1 * b),
            );
            // The same calls on the first tier: what a plugin costs until it tiers up.
            let baseline = load_monitor_on(&engine, component, Tier::Baseline)?;
            let mut first_tier = Vec::with_capacity(CALLS);
            for round in 0..CALLS + 20 {
                let started = Instant::now();
                baseline
                    .call(Call::Search)
                    .await
                    .map_err(|e| anyhow::anyhow!("{e}"))?;
                if round >= 20 {
                    first_tier.push(started.elapsed().as_secs_f64() * 1e6);
                }
            }
            let w = quantile(&sorted(first_tier), 0.5);
            report.row(
                format!(
                    "invocation, `steady` in {language} on the baseline tier (Winch), median of \
                     {CALLS}"
                ),
                format!("{w:.1} µs ({:.2}× optimized)", w / o),
                format!("{o:.1} µs optimized"),
                "",
                None,
            );
        }
        anyhow::Ok(())
    })
}

fn ms(seconds: f64) -> String {
    format!("{:.2} ms", seconds * 1e3)
}

// ---------------------------------------------------------------------------------------------
// 1. Invocation cost

fn invocation(report: &mut Report) -> Result<()> {
    const ROUNDS: usize = 10;
    const PER_ROUND: usize = 2000;
    runtime()?.block_on(async {
        let engine = Engine::new(&EngineSettings::default())?;
        let monitor = steady_monitor(&engine)?;
        let component = Component::from_file(engine.wasmtime(), guest("steady"))?;
        let bare = Bare::new(engine.wasmtime(), &component)?;
        let ours_once = || async {
            let started = Instant::now();
            monitor.call(Call::Search).await.map_err(|e| anyhow::anyhow!("{e}"))?;
            anyhow::Ok(started.elapsed().as_secs_f64() * 1e6)
        };
        let bare_once = || async {
            let started = Instant::now();
            bare.search().await?;
            anyhow::Ok(started.elapsed().as_secs_f64() * 1e6)
        };
        for _ in 0..PER_ROUND {
            ours_once().await?;
            bare_once().await?;
        }
        // Alternate blocks, so both see the same machine noise.
        let (mut ours, mut base) = (Vec::new(), Vec::new());
        for _ in 0..ROUNDS {
            for _ in 0..PER_ROUND {
                ours.push(ours_once().await?);
            }
            for _ in 0..PER_ROUND {
                base.push(bare_once().await?);
            }
        }
        let (ours, base) = (sorted(ours), sorted(base));
        for (label, p) in [("median", 0.5), ("p99", 0.99)] {
            let (o, b) = (quantile(&ours, p), quantile(&base, p));
            report.row(
                format!("invocation: store + instantiate + `search` + drop, {label}"),
                format!("{o:.1} µs ({:.2}×)", o / b),
                format!("{b:.1} µs bare wasmtime"),
                "≤ 1.5× bare",
                Some(o <= 1.5 * b),
            );
        }
        report.note(format!(
            "invocation: `steady` fixture, {} sequential calls each, alternating blocks of {PER_ROUND}; \
             bare = same engine, component and InstancePre, a plain WasiCtx and a no-op `log`",
            ROUNDS * PER_ROUND
        ));
        anyhow::Ok(())
    })
}

/// 1000 invocations in flight at once on a 2-worker runtime, ours and bare wasmtime's (the
/// same engine, pool, epoch settings and component), in alternating rounds.
fn concurrency(report: &mut Report) -> Result<()> {
    const IN_FLIGHT: usize = 1000;
    // A round takes ~10 ms: enough of them for a p99 that is not one unlucky round.
    const ROUNDS: usize = 20;
    runtime()?.block_on(async {
        let engine = Engine::new(&EngineSettings::default())?;
        let monitor = Arc::new(steady_monitor(&engine)?);
        let component = Component::from_file(engine.wasmtime(), guest("steady"))?;
        let bare = Arc::new(Bare::new(engine.wasmtime(), &component)?);
        // One round: every call spawned at once; each one's completion time, and the rate.
        async fn round<F, Fut>(call: F) -> Result<(Vec<f64>, f64)>
        where
            F: Fn() -> Fut,
            Fut: std::future::Future<Output = Result<()>> + Send + 'static,
        {
            let started = Instant::now();
            let calls: Vec<_> = (0..IN_FLIGHT)
                .map(|_| {
                    let call = call();
                    tokio::spawn(async move {
                        call.await?;
                        anyhow::Ok(started.elapsed().as_secs_f64())
                    })
                })
                .collect();
            let mut done = Vec::with_capacity(IN_FLIGHT);
            for call in calls {
                done.push(call.await??);
            }
            Ok((done, IN_FLIGHT as f64 / started.elapsed().as_secs_f64()))
        }
        let ours = || {
            let monitor = monitor.clone();
            async move {
                monitor
                    .call(Call::Search)
                    .await
                    .map(|_| ())
                    .map_err(|e| anyhow::anyhow!("{e}"))
            }
        };
        let base = || {
            let bare = bare.clone();
            async move { bare.search().await }
        };
        let (mut latencies, mut rates) = ((Vec::new(), Vec::new()), (Vec::new(), Vec::new()));
        // Round 0 warms both up; then they alternate, so both see the same machine noise.
        for n in 0..=ROUNDS {
            let (ours_done, ours_rate) = round(ours).await?;
            let (base_done, base_rate) = round(base).await?;
            if n > 0 {
                latencies.0.extend(ours_done);
                latencies.1.extend(base_done);
                rates.0.push(ours_rate);
                rates.1.push(base_rate);
            }
        }
        let (ours_rate, base_rate) = (
            quantile(&sorted(rates.0), 0.5),
            quantile(&sorted(rates.1), 0.5),
        );
        report.row(
            format!(
                "{IN_FLIGHT} invocations in flight (2 workers): throughput, median of {ROUNDS}"
            ),
            format!(
                "{ours_rate:.0} calls/s ({:.2}× bare)",
                ours_rate / base_rate
            ),
            format!("{base_rate:.0} calls/s bare wasmtime"),
            "≥ 0.9× bare",
            Some(ours_rate >= 0.9 * base_rate),
        );
        let (ours_lat, base_lat) = (sorted(latencies.0), sorted(latencies.1));
        let (ours_p99, base_p99) = (quantile(&ours_lat, 0.99), quantile(&base_lat, 0.99));
        report.row(
            format!("{IN_FLIGHT} invocations in flight: completion time p99 / median"),
            format!(
                "{} / {} ({:.2}× bare p99)",
                ms(ours_p99),
                ms(quantile(&ours_lat, 0.5)),
                ours_p99 / base_p99
            ),
            format!(
                "{} / {} bare wasmtime",
                ms(base_p99),
                ms(quantile(&base_lat, 0.5))
            ),
            "p99 ≤ 1.2× bare",
            Some(ours_p99 <= 1.2 * base_p99),
        );
        report.note(
            "in flight: each round spawns 1,000 `search` calls of `steady` at once on a 2-worker \
             tokio runtime and waits for all; bare = the same engine (pool, epochs), component \
             and InstancePre, a plain WasiCtx and a no-op `log`; rounds alternate",
        );
        anyhow::Ok(())
    })
}

// ---------------------------------------------------------------------------------------------
// 2. aws-call overhead

fn moto_endpoint() -> Result<String> {
    std::env::var("AWS_ENDPOINT_URL").context("AWS_ENDPOINT_URL is not set: run bench/run")
}

fn sqs_client(endpoint: &str) -> aws_sdk_sqs::Client {
    aws_sdk_sqs::Client::from_conf(
        aws_sdk_sqs::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .endpoint_url(endpoint)
            .credentials_provider(Credentials::new("bench", "bench", None, None, "bench"))
            .build(),
    )
}

async fn create_queue(sqs: &aws_sdk_sqs::Client, name: &str) -> Result<String> {
    Ok(sqs
        .create_queue()
        .queue_name(format!("{name}-{}", std::process::id()))
        .send()
        .await?
        .queue_url
        .unwrap_or_default())
}

fn aws_call(scratch: &Path, report: &mut Report) -> Result<()> {
    const CALLS: usize = 300;
    let endpoint = moto_endpoint()?;
    let config = scratch.join("aws-call.yaml");
    std::fs::write(
        &config,
        format!(
            "plugins: [aws]\nmonitors:\n  - name: probe\n    plugin: {}\n    grants:\n      credentials: [MONITORING]\n      aws: [\"sqs:*\"]\n",
            guest("sqs_probe").display()
        ),
    )?;
    runtime()?.block_on(async {
        let host = App::open(&config)?;
        let monitor = host.monitors()?.remove(0);
        let sqs = sqs_client(&endpoint);
        let url = create_queue(&sqs, "bench-latency").await?;
        let payload = serde_json::json!({ "queue_url": url }).to_string();
        let (mut guest, mut direct) = (Vec::new(), Vec::new());
        for i in 0..CALLS + 20 {
            let started = Instant::now();
            monitor
                .call(Call::Handle(MessageKind::Request, payload.clone()))
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            let g = started.elapsed().as_secs_f64();
            let started = Instant::now();
            sqs.get_queue_attributes()
                .queue_url(&url)
                .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
                .send()
                .await?;
            let d = started.elapsed().as_secs_f64();
            if i >= 20 {
                guest.push(g);
                direct.push(d);
            }
        }
        sqs.delete_queue().queue_url(&url).send().await?;
        let (guest, direct) = (sorted(guest), sorted(direct));
        for (label, p) in [("median", 0.5), ("p99", 0.99)] {
            let (g, d) = (quantile(&guest, p), quantile(&direct, p));
            report.row(
                format!(
                    "aws-call: SQS GetQueueAttributes from a guest (new instance + call), {label}"
                ),
                format!("{} ({:.2}×)", ms(g), g / d),
                format!("{} aws-sdk-rust directly", ms(d)),
                if p == 0.5 { "≤ 1.10× direct" } else { "" },
                (p == 0.5).then_some(g <= 1.10 * d),
            );
        }
        report.note(format!(
            "aws-call: {CALLS} calls each against the same moto, interleaved one by one"
        ));
        anyhow::Ok(())
    })
}

// ---------------------------------------------------------------------------------------------
// 3. Queue CPU per message

/// User + system CPU seconds of a process so far, from /proc (Linux's USER_HZ is 100).
fn process_cpu(pid: u32) -> Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the parenthesised command name; utime and stime are the 14th and 15th.
    let after = &stat[stat.rfind(')').context("malformed /proc stat")? + 2..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks: u64 = fields[11].parse::<u64>()? + fields[12].parse::<u64>()?;
    Ok(ticks as f64 / 100.0)
}

fn moto_cpu() -> Result<f64> {
    let pid: u32 = std::env::var("MOTO_PID")
        .context("MOTO_PID is not set: run bench/run")?
        .parse()?;
    process_cpu(pid)
}

async fn send_events(sqs: &aws_sdk_sqs::Client, url: &str, count: usize) -> Result<()> {
    let body =
        r#"{"type":"event","payload":{"event_source_monitor_id":"steady","event_name":"bench"}}"#;
    for chunk in (0..count).collect::<Vec<_>>().chunks(10) {
        let entries = chunk
            .iter()
            .map(|i| {
                SendMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .message_body(body)
                    .build()
            })
            .collect::<Result<Vec<_>, _>>()?;
        sqs.send_message_batch()
            .queue_url(url)
            .set_entries(Some(entries))
            .send()
            .await?;
    }
    Ok(())
}

async fn queue_is_drained(sqs: &aws_sdk_sqs::Client, url: &str) -> Result<bool> {
    let attributes = sqs
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
        .send()
        .await?
        .attributes
        .unwrap_or_default();
    Ok(attributes.values().all(|v| v == "0"))
}

/// What one consumer cost while it processed the messages.
struct QueueRun {
    cpu: f64,
    wall: f64,
    moto_cpu: f64,
}

fn queue(scratch: &Path, report: &mut Report) -> Result<()> {
    let endpoint = moto_endpoint()?;
    let rt = runtime()?;
    let sqs = {
        let _guard = rt.enter();
        sqs_client(&endpoint)
    };
    let ours = rt.block_on(queue_host(scratch, &sqs, &endpoint))?;
    let peer = rt.block_on(queue_peer(&sqs, &endpoint))?;
    let n = QUEUE_MESSAGES as f64;
    let (o, p) = (ours.cpu / n, peer.cpu / n);
    report.row(
        "queue: consumer CPU per message (receive → monitor → delete), SQS on moto",
        format!("{} ({:.3}×)", ms(o), o / p),
        format!("{} Python aiobotocore peer", ms(p)),
        "≤ 0.1× the peer",
        Some(o <= 0.1 * p),
    );
    report.row(
        "queue: messages/s",
        format!("{:.0}", n / ours.wall),
        format!("{:.0}", n / peer.wall),
        "",
        None,
    );
    report.row(
        "queue: moto's CPU per message meanwhile",
        ms(ours.moto_cpu / n),
        ms(peer.moto_cpu / n),
        "",
        None,
    );
    report.note(format!(
        "queue: {QUEUE_MESSAGES} `event` messages for the `steady` monitor sent in batches of 10 \
         once the consumer is ready; consumer CPU (user + system, /proc) from ready to drained. \
         Ours: `sentinela run --role executor`, concurrency 10. Peer: bench/sqs_peer.py (one \
         aiobotocore client, receive 1 with long poll, json.loads, delete). While ours runs, the \
         bench polls the queue's counts every 100 ms (that moto CPU is in ours' column)."
    ));
    Ok(())
}

/// Collects `sentinela run`'s stderr, and tells when a line containing `ready` appeared.
fn wait_for_line(stderr: ChildStderr, ready: &'static str, timeout: Duration) -> Result<()> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut tx = Some(tx);
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if line.contains(ready)
                && let Some(tx) = tx.take()
            {
                let _ = tx.send(());
            }
        }
    });
    rx.recv_timeout(timeout)
        .map_err(|_| anyhow::anyhow!("sentinela did not log '{ready}' within {timeout:?}"))
}

fn terminate(child: &mut Child) -> Result<()> {
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()?;
    child.wait()?;
    Ok(())
}

async fn queue_host(scratch: &Path, sqs: &aws_sdk_sqs::Client, endpoint: &str) -> Result<QueueRun> {
    let name = format!("bench-app-{}", std::process::id());
    let config = scratch.join("queue.yaml");
    std::fs::write(
        &config,
        format!(
            "plugins: [aws]
application_queue:
  type: plugin.aws.sqs
  name: {name}
  region: us-east-1
  create_queue: true
  queue_wait_message_time: 1
executor:
  concurrency: 10
monitors:
  - name: steady
    plugin: {}
",
            guest("steady").display()
        ),
    )?;
    let mut child = spawn_run(
        &config,
        &["--role", "executor"],
        &[
            ("AWS_ENDPOINT_URL", endpoint),
            ("AWS_APPLICATION_ACCESS_KEY_ID", "bench"),
            ("AWS_APPLICATION_SECRET_ACCESS_KEY", "bench"),
            ("AWS_APPLICATION_REGION", "us-east-1"),
        ],
        Duration::from_secs(120),
    )?;
    let url = sqs
        .get_queue_url()
        .queue_name(&name)
        .send()
        .await?
        .queue_url
        .unwrap_or_default();
    let (cpu0, moto0, started) = (process_cpu(child.id())?, moto_cpu()?, Instant::now());
    send_events(sqs, &url, QUEUE_MESSAGES).await?;
    let deadline = Instant::now() + Duration::from_secs(600);
    while !queue_is_drained(sqs, &url).await? {
        if Instant::now() > deadline {
            bail!("the executor did not drain the queue within 10 minutes");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let run = QueueRun {
        cpu: process_cpu(child.id())? - cpu0,
        wall: started.elapsed().as_secs_f64(),
        moto_cpu: moto_cpu()? - moto0,
    };
    terminate(&mut child)?;
    sqs.delete_queue().queue_url(&url).send().await?;
    Ok(run)
}

async fn queue_peer(sqs: &aws_sdk_sqs::Client, endpoint: &str) -> Result<QueueRun> {
    let url = create_queue(sqs, "bench-peer").await?;
    let mut child = Command::new(Path::new(REPO).join(".venv/bin/python"))
        .arg(Path::new(REPO).join("bench/sqs_peer.py"))
        .args([endpoint, &url, &QUEUE_MESSAGES.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()?;
    let mut lines = BufReader::new(child.stdout.take().context("no stdout")?).lines();
    match lines.next() {
        Some(Ok(line)) if line == "ready" => {}
        other => bail!("the Python peer did not start: {other:?}"),
    }
    let (moto0, started) = (moto_cpu()?, Instant::now());
    send_events(sqs, &url, QUEUE_MESSAGES).await?;
    let result = tokio::task::spawn_blocking(move || lines.next())
        .await?
        .context("the Python peer ended without a result")??;
    let wall = started.elapsed().as_secs_f64();
    let moto_cpu = moto_cpu()? - moto0;
    child.wait()?;
    let result: serde_json::Value = serde_json::from_str(&result)?;
    sqs.delete_queue().queue_url(&url).send().await?;
    Ok(QueueRun {
        cpu: result["cpu_s"].as_f64().context("no cpu_s")?,
        wall,
        moto_cpu,
    })
}

// ---------------------------------------------------------------------------------------------
// Running `sentinela run`: shared by the start, memory, hostile and scale sections

/// `sentinela run CONFIG ARGS...` with `envs`, once it has logged "sentinela running".
fn spawn_run(
    config: &Path,
    args: &[&str],
    envs: &[(&str, &str)],
    timeout: Duration,
) -> Result<Child> {
    let (child, stderr) = spawn_json_run(config, args, envs)?;
    wait_for_line(stderr, "sentinela running", timeout)?;
    Ok(child)
}

/// `sentinela --log-format json run CONFIG ARGS...` with `envs`: the child and its JSON log.
fn spawn_json_run(
    config: &Path,
    args: &[&str],
    envs: &[(&str, &str)],
) -> Result<(Child, ChildStderr)> {
    let mut child = json_run(&bench_bin(), config, args, envs)
        .stderr(Stdio::piped())
        .spawn()?;
    let stderr = child.stderr.take().context("no stderr")?;
    Ok((child, stderr))
}

/// The command `bin --log-format json run CONFIG ARGS...` with `envs` (stdin and stdout
/// closed); its caller says where the JSON log goes.
fn json_run(bin: &str, config: &Path, args: &[&str], envs: &[(&str, &str)]) -> Command {
    let mut command = Command::new(bin);
    command
        .args(["--log-format", "json", "run"])
        .arg(config)
        .args(args)
        .envs(envs.iter().copied())
        .env("RUST_LIB_BACKTRACE", "0")
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::null());
    command
}

fn rss_kib(pid: u32) -> Result<u64> {
    proc_kib(&format!("/proc/{pid}/status"), "VmRSS:")
}

/// The process's anonymous (heap, stacks, dirty) memory, the part of its RSS that is not
/// clean pages of files it maps (its own binary above all).
fn anon_kib(pid: u32) -> Result<u64> {
    proc_kib(&format!("/proc/{pid}/smaps_rollup"), "Anonymous:")
}

/// The kB figure of the line starting with `key` in a /proc file.
fn proc_kib(file: &str, key: &str) -> Result<u64> {
    let text = std::fs::read_to_string(file)?;
    let line = text
        .lines()
        .find(|l| l.starts_with(key))
        .with_context(|| format!("no {key} in {file}"))?;
    Ok(line
        .split_whitespace()
        .nth(1)
        .with_context(|| format!("malformed {key} in {file}"))?
        .parse()?)
}

// ---------------------------------------------------------------------------------------------
// 6. Hostile neighbours

/// What one `sentinela run` of [`HOSTILE_WINDOW`] showed.
struct NeighbourRun {
    steady_runs: usize,
    peak_rss_mib: f64,
    log_bytes: usize,
}

const HOSTILE_WINDOW: Duration = Duration::from_secs(20);

/// The hostile monitors of `tests/containment.rs`, each at its worst, every second.
const HOSTILE_NEIGHBOURS: &str = "  - name: spinner-a
    plugin: GUESTS/hostile_infinite_loop.wasm
    search_cron: \"* * * * * *\"
    limits: {timeout: 2s}
  - name: spinner-b
    plugin: GUESTS/hostile_infinite_loop.wasm
    search_cron: \"* * * * * *\"
    limits: {timeout: 2s}
  - name: noise
    plugin: GUESTS/hostile_noise.wasm
    search_cron: \"* * * * * *\"
    limits: {timeout: 2s}
  - name: flood
    plugin: GUESTS/hostile_issue_flood.wasm
    search_cron: \"* * * * * *\"
  - name: forger
    plugin: GUESTS/hostile_forger.wasm
    search_cron: \"* * * * * *\"
  - name: memory-bomb
    plugin: GUESTS/hostile_memory_bomb.wasm
    search_cron: \"* * * * * *\"
";

/// `sentinela run` with the `steady` monitor every second (and `neighbours`), executor
/// concurrency 2, for [`HOSTILE_WINDOW`] after it started.
fn neighbour_run(scratch: &Path, name: &str, neighbours: &str) -> Result<NeighbourRun> {
    let config = scratch.join(format!("{name}.yaml"));
    let yaml = format!(
        "plugins: [aws]\nexecutor:\n  concurrency: 2\nstore:\n  path: {}\nmonitors:\n  - name: steady\n    plugin: {}\n    search_cron: \"* * * * * *\"\n{}",
        scratch.join(format!("{name}.db")).display(),
        guest("steady").display(),
        neighbours.replace("GUESTS", GUESTS)
    );
    std::fs::write(&config, yaml)?;
    let cache = scratch.join("cache-hostile");
    let cache = cache.to_str().context("cache path is not UTF-8")?;
    let (mut child, stderr) = spawn_json_run(&config, &[], &[("SENTINELA_CACHE_DIR", cache)])?;
    let (tx, rx) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        let (mut bytes, mut steady) = (0usize, 0usize);
        let mut tx = Some(tx);
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            bytes += line.len() + 1;
            if line.contains("sentinela running")
                && let Some(tx) = tx.take()
            {
                let _ = tx.send(());
            }
            if line.contains("\"monitor\":\"steady\"") && line.contains("task finished") {
                steady += 1;
            }
        }
        (bytes, steady)
    });
    rx.recv_timeout(Duration::from_secs(300))
        .map_err(|_| anyhow::anyhow!("sentinela did not start"))?;
    let until = Instant::now() + HOSTILE_WINDOW;
    let mut peak = 0u64;
    while Instant::now() < until {
        peak = peak.max(rss_kib(child.id()).unwrap_or(0));
        std::thread::sleep(Duration::from_millis(200));
    }
    terminate(&mut child)?;
    let (log_bytes, steady_runs) = reader
        .join()
        .map_err(|_| anyhow::anyhow!("reader panicked"))?;
    Ok(NeighbourRun {
        steady_runs,
        peak_rss_mib: peak as f64 / 1024.0,
        log_bytes,
    })
}

fn hostile_neighbours(scratch: &Path, report: &mut Report) -> Result<()> {
    // A first run fills the compile cache, so neither measured run compiles.
    neighbour_run(scratch, "warm-up", HOSTILE_NEIGHBOURS)?;
    let alone = neighbour_run(scratch, "alone", "")?;
    let beside = neighbour_run(scratch, "beside", HOSTILE_NEIGHBOURS)?;
    let ticks = HOSTILE_WINDOW.as_secs() as usize;
    report.row(
        format!(
            "steady monitor's runs in {ticks} s, beside 6 hostile monitors | alone (concurrency 2)"
        ),
        beside.steady_runs.to_string(),
        alone.steady_runs.to_string(),
        ">= 80 % of alone",
        Some(beside.steady_runs * 5 >= alone.steady_runs * 4),
    );
    report.row(
        "peak host RSS, beside hostile monitors (peer: alone)",
        format!("{:.1} MiB", beside.peak_rss_mib),
        format!("{:.1} MiB", alone.peak_rss_mib),
        "< 2 × 128 MiB + alone",
        Some(beside.peak_rss_mib < 256.0 + alone.peak_rss_mib),
    );
    report.row(
        format!("log bytes in {ticks} s, beside hostile monitors (peer: alone)"),
        format!("{:.0} KiB", beside.log_bytes as f64 / 1024.0),
        format!("{:.0} KiB", alone.log_bytes as f64 / 1024.0),
        "< 4 × 64 KiB per hostile call",
        Some(beside.log_bytes < 4 * 64 * 1024 * 6 * ticks + alone.log_bytes),
    );
    report.note(
        "hostile neighbours: two monitors spinning to a 2 s deadline, one writing empty lines \
         and refused calls until its deadline, one returning 1,000,000 issues, one forging log \
         lines, one allocating without bound; all due every second.",
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// 7. Scale: N monitors every second

/// What one scale run measured over its window.
struct ScaleRun {
    tasks_per_s: f64,
    cpu_per_task_us: f64,
    cpu_share: f64,
    rss_mib: f64,
    lag_ms: Vec<f64>,
}

/// How long a scale run settles before it is measured, and how long it is measured.
const SCALE_WARMUP: Duration = Duration::from_secs(15);
const SCALE_WINDOW: Duration = Duration::from_secs(30);
/// The monitor counts the scale section runs, on SQLite and again on PostgreSQL
/// (`bench/run`'s throw-away server): the issue's two, and one between them.
const SCALE_MONITORS: [usize; 3] = [1_000, 4_000, 10_000];

/// `sentinela run` with `n` `steady` monitors searched and updated every second (in-process
/// queue, `executor.concurrency` 10; the SQLite store, or PostgreSQL at `postgres`), measured
/// from its JSON log over [`SCALE_WINDOW`] after [`SCALE_WARMUP`]. Schedule lag: the
/// `lag_ms` of each search's `task finished` line, from when its trigger was due to its
/// start.
fn scale_run(scratch: &Path, n: usize, postgres: Option<&str>) -> Result<ScaleRun> {
    let store = if postgres.is_some() {
        "postgres"
    } else {
        "sqlite"
    };
    let dir = scratch.join(format!("scale-{store}-{n}"));
    std::fs::create_dir_all(&dir)?;
    let config = dir.join("scale.yaml");
    let steady = guest("steady");
    let mut yaml = format!("store:\n  type: {store}\nexecutor:\n  concurrency: 10\nmonitors:\n");
    for i in 0..n {
        yaml += &format!(
            "  - name: m{i}\n    plugin: {}\n    search_cron: \"* * * * * *\"\n    update_cron: \"* * * * * *\"\n",
            steady.display()
        );
    }
    std::fs::write(&config, yaml)?;
    let cache = dir.join("cache");
    let cache = cache.to_str().context("cache path is not UTF-8")?;
    let mut envs = vec![("SENTINELA_CACHE_DIR", cache)];
    envs.extend(postgres.map(|url| ("SENTINELA_DATABASE_URL", url)));
    // The log goes to a file, read after the run: a reader parsing 30,000 lines a second
    // beside the host would take a share of the same two cores from it.
    let log_path = dir.join("scale.log");
    let log = std::fs::File::create(&log_path)?;
    let mut child = json_run(&bench_bin(), &config, &[], &envs)
        .stderr(log)
        .spawn()?;
    let started = Instant::now();
    while !std::fs::read_to_string(&log_path)?.contains("sentinela running") {
        if started.elapsed() > Duration::from_secs(600) || child.try_wait()?.is_some() {
            terminate(&mut child)?;
            bail!("sentinela run did not start; see {}", log_path.display());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(SCALE_WARMUP);
    let pid = child.id();
    let cpu0 = process_cpu(pid)?;
    let from = std::fs::metadata(&log_path)?.len();
    std::thread::sleep(SCALE_WINDOW);
    let to = std::fs::metadata(&log_path)?.len();
    let cpu = process_cpu(pid)? - cpu0;
    let rss_mib = rss_kib(pid)? as f64 / 1024.0;
    terminate(&mut child)?;
    // The lines written during the window (a line cut at either end is skipped).
    let mut window_log = Vec::new();
    {
        use std::io::{Read, Seek};
        let mut file = std::fs::File::open(&log_path)?;
        file.seek(std::io::SeekFrom::Start(from))?;
        file.take(to - from).read_to_end(&mut window_log)?;
    }
    let mut tasks = 0u64;
    let mut lag_ms = Vec::new();
    for line in String::from_utf8_lossy(&window_log).lines() {
        if !line.contains("task finished") {
            continue;
        }
        let Ok(event) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        tasks += 1;
        // The host's own measure: from when the trigger was due (cron time plus the
        // monitor's phase) to the message's first task's start.
        if let Some(lag) = event["lag_ms"].as_f64() {
            lag_ms.push(lag);
        }
    }
    // Hundreds of megabytes at 10,000 monitors.
    let _ = std::fs::remove_file(&log_path);
    let tasks = tasks as f64;
    let lag_ms = sorted(lag_ms);
    let window = SCALE_WINDOW.as_secs_f64();
    Ok(ScaleRun {
        tasks_per_s: tasks / window,
        cpu_per_task_us: if tasks > 0.0 { cpu / tasks * 1e6 } else { 0.0 },
        cpu_share: cpu / window,
        rss_mib,
        lag_ms,
    })
}

/// One scale run, and its rows in the report.
fn scale_measured(
    scratch: &Path,
    report: &mut Report,
    n: usize,
    postgres: Option<&str>,
) -> Result<ScaleRun> {
    let store = if postgres.is_some() {
        "PostgreSQL"
    } else {
        "SQLite"
    };
    eprintln!("  {n} monitors, {store} ...");
    let run = scale_run(scratch, n, postgres)?;
    let needed = 2.0 * n as f64;
    let label = format!("{n} monitors, {store}");
    report.row(
        format!("scale, {label}, at 1 Hz (search + update): tasks/s done / needed"),
        format!("{:.0} / {needed:.0}", run.tasks_per_s),
        "",
        "keeps up (≥ 98 %)",
        Some(run.tasks_per_s >= 0.98 * needed),
    );
    report.row(
        format!("scale, {label}: host CPU per task; share of one core"),
        format!(
            "{:.0} µs; {:.0} %",
            run.cpu_per_task_us,
            run.cpu_share * 100.0
        ),
        "",
        "",
        None,
    );
    report.row(
        format!("scale, {label}: RSS"),
        format!("{:.1} MiB", run.rss_mib),
        "",
        "< 100 MB",
        Some(run.rss_mib * 1.048_576 < 100.0),
    );
    let (p50, p99) = run.lag_p50_p99();
    report.row(
        format!("scale, {label}: schedule lag p50 / p99 (trigger due → search start)"),
        format!("{p50:.1} ms / {p99:.1} ms"),
        "",
        "p99 < 50 ms",
        Some(p99 < 50.0),
    );
    Ok(run)
}

impl ScaleRun {
    fn lag_p50_p99(&self) -> (f64, f64) {
        if self.lag_ms.is_empty() {
            (f64::NAN, f64::NAN)
        } else {
            (quantile(&self.lag_ms, 0.5), quantile(&self.lag_ms, 0.99))
        }
    }

    /// Keeps up: at least 98 % of the tasks needed are done, and the p99 lag is under 50 ms
    /// (a backlog that comes and goes is not keeping up).
    fn keeps_up(&self, n: usize) -> bool {
        self.tasks_per_s >= 0.98 * 2.0 * n as f64 && self.lag_p50_p99().1 < 50.0
    }
}

/// Bare wasmtime's CPU per `steady` search, from this process's CPU time over many calls
/// (the same engine settings and component the scale runs use), in µs.
fn bare_cpu_per_call() -> Result<f64> {
    const CALLS: usize = 50_000;
    runtime()?.block_on(async {
        let engine = Engine::new(&EngineSettings::default())?;
        let component = Component::from_file(engine.wasmtime(), guest("steady"))?;
        let bare = Bare::new(engine.wasmtime(), &component)?;
        for _ in 0..1000 {
            bare.search().await?;
        }
        let before = process_cpu(std::process::id())?;
        for _ in 0..CALLS {
            bare.search().await?;
        }
        let cpu = process_cpu(std::process::id())? - before;
        anyhow::Ok(cpu / CALLS as f64 * 1e6)
    })
}

/// The steps in which the largest N that keeps up is searched, on SQLite.
const SCALE_SEARCH_STEP: usize = 2_500;
/// Where that search stops, keeping up or not.
const SCALE_SEARCH_LIMIT: usize = 25_000;

fn scale(scratch: &Path, report: &mut Report) -> Result<()> {
    let postgres = std::env::var("SENTINELA_BENCH_DATABASE_URL").ok();
    let runs = SCALE_MONITORS.iter().map(|n| (*n, None)).chain(
        postgres
            .iter()
            .flat_map(|url| SCALE_MONITORS.iter().map(|n| (*n, Some(url.as_str())))),
    );
    let bare_us = bare_cpu_per_call()?;
    report.row(
        "scale: bare wasmtime's CPU per `steady` search (store + instantiate + call + drop), \
         the floor of the host's CPU per task",
        format!("{bare_us:.1} µs"),
        "",
        "",
        None,
    );
    // The largest N that kept up on SQLite, and the smallest that did not.
    let mut kept_up = 0;
    let mut fell_behind: Option<usize> = None;
    for (n, postgres) in runs {
        let run = scale_measured(scratch, report, n, postgres)?;
        if postgres.is_none() {
            if run.keeps_up(n) {
                kept_up = kept_up.max(n);
            } else {
                fell_behind = Some(fell_behind.map_or(n, |m| m.min(n)));
            }
        }
    }
    // Then N in steps from the largest that kept up, on SQLite, until one does not.
    let mut n = kept_up + SCALE_SEARCH_STEP;
    while n <= SCALE_SEARCH_LIMIT && fell_behind.is_none_or(|behind| n < behind) {
        if !scale_measured(scratch, report, n, None)?.keeps_up(n) {
            fell_behind = Some(n);
            break;
        }
        kept_up = n;
        n += SCALE_SEARCH_STEP;
    }
    report.row(
        "scale, SQLite: the largest N that keeps up (≥ 98 % of the tasks, lag p99 < 50 ms)",
        match fell_behind {
            Some(behind) => format!("{kept_up} (not {behind})"),
            None => format!("≥ {kept_up} (searched up to {SCALE_SEARCH_LIMIT})"),
        },
        "",
        "≥ 10000",
        Some(kept_up >= 10_000),
    );
    report.note(
        "scale: `sentinela run` (SQLite or PostgreSQL store, in-process queue, concurrency 10) with N `steady` \
         monitors whose search and update crons fire every second (`controller.spread` 1 s, the \
         default); 15 s of warm-up, then 30 s measured from its JSON log (written to a file, read after the run: `task finished` lines and their `lag_ms`) and /proc. \
         The largest N that keeps up is searched on SQLite in steps of 2,500 from the largest \
         of 1,000, 4,000 and 10,000 that did, up to 25,000.",
    );
    Ok(())
}

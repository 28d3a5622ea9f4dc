//! Latency of one SQS `GetQueueAttributes` made by a guest through `aws-call` (new instance +
//! call + host-side signing and HTTP) next to the same call made directly with aws-sdk-rust,
//! against the same endpoint, interleaved in one run.
//!
//!   AWS_ENDPOINT_URL=http://127.0.0.1:PORT cargo run --release --example aws_call_latency [N]
//!
//! Needs the guests built (guests/build.sh) and a moto server.

use std::time::{Duration, Instant};

use aws_sdk_sqs::config::{BehaviorVersion, Credentials, Region};
use sentinela_host::bindings::exports::sentinela::plugin::checks::MessageKind;
use sentinela_host::host::Host;
use sentinela_host::plugin::Call;

fn main() -> anyhow::Result<()> {
    let n: usize = std::env::args()
        .nth(1)
        .map(|n| n.parse())
        .transpose()?
        .unwrap_or(300);
    let endpoint = std::env::var("AWS_ENDPOINT_URL")
        .map_err(|_| anyhow::anyhow!("set AWS_ENDPOINT_URL (a moto server)"))?;
    // SAFETY: single-threaded so far; the host reads these when it starts.
    unsafe {
        std::env::set_var("SENTINELA_PLUGINS", "aws");
        std::env::set_var("AWS_MONITORING_ACCESS_KEY_ID", "bench");
        std::env::set_var("AWS_MONITORING_SECRET_ACCESS_KEY", "bench");
        std::env::set_var("AWS_MONITORING_REGION", "us-east-1");
    }
    let plugin = concat!(env!("CARGO_MANIFEST_DIR"), "/../guests/dist/sqs_probe.wasm");
    let dir = std::env::temp_dir().join(format!("sentinela-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let config = dir.join("bench.yaml");
    std::fs::write(
        &config,
        format!(
            "monitors:\n  - name: probe\n    plugin: {plugin}\n    grants:\n      credentials: [MONITORING]\n"
        ),
    )?;

    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        let host = Host::open(&config)?;
        let monitor = host.monitors()?.remove(0);
        let sqs = aws_sdk_sqs::Client::from_conf(
            aws_sdk_sqs::Config::builder()
                .behavior_version(BehaviorVersion::latest())
                .region(Region::new("us-east-1"))
                .endpoint_url(&endpoint)
                .credentials_provider(Credentials::new("bench", "bench", None, None, "bench"))
                .build(),
        );
        let url = sqs
            .create_queue()
            .queue_name(format!("latency-{}", std::process::id()))
            .send()
            .await?
            .queue_url
            .unwrap_or_default();
        let payload = serde_json::json!({ "queue_url": url }).to_string();

        let (mut guest, mut direct) = (Vec::with_capacity(n), Vec::with_capacity(n));
        for i in 0..n + 20 {
            let started = Instant::now();
            monitor
                .call(Call::Handle(MessageKind::Request, payload.clone()))
                .await?;
            let g = started.elapsed();
            let started = Instant::now();
            sqs.get_queue_attributes()
                .queue_url(&url)
                .attribute_names("ApproximateNumberOfMessages".into())
                .send()
                .await?;
            let d = started.elapsed();
            if i >= 20 {
                guest.push(g);
                direct.push(d);
            }
        }
        sqs.delete_queue().queue_url(&url).send().await?;
        let stats = |samples: &mut Vec<Duration>| {
            samples.sort();
            let at =
                |p: f64| samples[((samples.len() - 1) as f64 * p) as usize].as_secs_f64() * 1e3;
            (at(0.5), at(0.99))
        };
        let (g50, g99) = stats(&mut guest);
        let (d50, d99) = stats(&mut direct);
        println!("SQS GetQueueAttributes against {endpoint}, {n} calls each, interleaved:");
        println!(
            "  guest via aws-call (fresh instance + call): median {g50:.2} ms, p99 {g99:.2} ms"
        );
        println!(
            "  aws-sdk-rust directly:                      median {d50:.2} ms, p99 {d99:.2} ms"
        );
        println!("  ratio of medians: {:.2}x", g50 / d50);
        anyhow::Ok(())
    })?;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

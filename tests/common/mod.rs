//! Shared helpers for the integration tests: they drive the real `sentinela` binary with the
//! real guest components built by `guests/build.sh` (the test script runs it first).
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

pub mod config;

pub const BIN: &str = env!("CARGO_BIN_EXE_sentinela");

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// A guest component from `guests/dist`, e.g. `guest("hostile_panic")`.
pub fn guest(name: &str) -> PathBuf {
    let path = repo_root().join("guests/dist").join(format!("{name}.wasm"));
    assert!(
        path.is_file(),
        "{} is missing: run scripts/test.sh (it builds the guests first)",
        path.display()
    );
    path
}

/// A fresh directory for one test.
pub fn scratch_dir(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The compile cache shared by tests that do not test the cache itself, so each guest is
/// compiled once per test run.
pub fn shared_cache_dir() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("compile-cache")
}

pub fn write_config(dir: &Path, yaml: &str) -> PathBuf {
    let path = dir.join("sentinela.yaml");
    std::fs::write(&path, yaml).unwrap();
    path
}

/// A `sentinela` command with a clean, predictable environment.
pub fn sentinela(args: &[&str]) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.args(args)
        .env_remove("SENTINELA_PLUGINS")
        .env_remove("RUST_LOG")
        .env("SENTINELA_CACHE_DIR", shared_cache_dir())
        .stdin(Stdio::null());
    cmd
}

pub fn output(cmd: &mut Command) -> (ExitStatus, String, String) {
    let Output {
        status,
        stdout,
        stderr,
    } = cmd.output().unwrap();
    (
        status,
        String::from_utf8_lossy(&stdout).into_owned(),
        String::from_utf8_lossy(&stderr).into_owned(),
    )
}

/// A running `sentinela run`, its JSON log events collected as they arrive.
pub struct Running {
    child: Child,
    log: Arc<(Mutex<Log>, Condvar)>,
}

#[derive(Default)]
struct Log {
    events: Vec<Value>,
    /// stderr reached end of file: the process has exited and every event is in.
    closed: bool,
}

impl Running {
    pub fn start(config: &Path, envs: &[(&str, &str)]) -> Running {
        Self::start_with_args(config, &[], envs)
    }

    /// `sentinela run CONFIG ARGS...`, e.g. `--role executor`.
    pub fn start_with_args(config: &Path, args: &[&str], envs: &[(&str, &str)]) -> Running {
        let mut all = vec!["--log-format", "json", "run", config.to_str().unwrap()];
        all.extend_from_slice(args);
        let mut cmd = sentinela(&all);
        cmd.envs(envs.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().unwrap();
        let stderr = child.stderr.take().unwrap();
        let log = Arc::new((Mutex::new(Log::default()), Condvar::new()));
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                let event = serde_json::from_str(&line).unwrap_or(Value::String(line));
                sink.0
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .events
                    .push(event);
                sink.1.notify_all();
            }
            sink.0.lock().unwrap_or_else(|e| e.into_inner()).closed = true;
            sink.1.notify_all();
        });
        Running { child, log }
    }

    /// Waits until an event matches, failing the test after `timeout`.
    pub fn wait_for(
        &self,
        what: &str,
        timeout: Duration,
        matches: impl Fn(&Value) -> bool,
    ) -> Value {
        let mut found = None;
        self.wait_until(what, timeout, |events| {
            found = events.iter().find(|e| matches(e)).cloned();
            found.is_some()
        });
        found.unwrap()
    }

    /// Waits until `done` holds for the events so far, failing the test after `timeout` or
    /// when the process exits first.
    pub fn wait_until(
        &self,
        what: &str,
        timeout: Duration,
        mut done: impl FnMut(&[Value]) -> bool,
    ) {
        let deadline = Instant::now() + timeout;
        let (lock, ready) = &*self.log;
        let mut log = lock.lock().unwrap();
        loop {
            if done(&log.events) {
                return;
            }
            let now = Instant::now();
            assert!(
                now < deadline && !log.closed,
                "{} waiting for {what}; events so far:\n{}",
                if log.closed {
                    "sentinela exited"
                } else {
                    "timed out"
                },
                dump(&log.events)
            );
            log = ready.wait_timeout(log, deadline - now).unwrap().0;
        }
    }

    /// The process id, for signals.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn events(&self) -> Vec<Value> {
        self.log.0.lock().unwrap().events.clone()
    }

    /// Sends SIGTERM and waits (at most `timeout`) for the process to exit.
    pub fn terminate(self, timeout: Duration) -> (ExitStatus, Vec<Value>) {
        let pid = self.child.id().to_string();
        assert!(
            Command::new("kill")
                .args(["-TERM", &pid])
                .status()
                .unwrap()
                .success()
        );
        self.wait_exit(timeout)
    }

    /// Waits for the process to exit on its own, failing the test after `timeout`; returns
    /// its status and every line it wrote (lines that are not JSON as strings).
    pub fn wait_exit(mut self, timeout: Duration) -> (ExitStatus, Vec<Value>) {
        // stderr closes when the process exits.
        let deadline = Instant::now() + timeout;
        let (lock, ready) = &*self.log;
        let mut log = lock.lock().unwrap();
        while !log.closed {
            let now = Instant::now();
            assert!(
                now < deadline,
                "sentinela did not exit within {timeout:?}:\n{}",
                dump(&log.events)
            );
            log = ready.wait_timeout(log, deadline - now).unwrap().0;
        }
        let events = log.events.clone();
        drop(log);
        (self.child.wait().unwrap(), events)
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn dump(events: &[Value]) -> String {
    events
        .iter()
        .map(|e| e.to_string())
        .collect::<Vec<_>>()
        .join("\n")
}

/// The field of a JSON log event as a string ("" when absent): the event's own, else the
/// innermost enclosing span's (`monitor` and `task` are span fields).
pub fn field<'a>(event: &'a Value, name: &str) -> &'a str {
    let from_spans = || {
        let spans = event.get("spans")?.as_array()?;
        spans.iter().rev().find_map(|span| span.get(name))
    };
    event
        .get(name)
        .or_else(from_spans)
        .and_then(Value::as_str)
        .unwrap_or("")
}

/// Checks `done` every 50 ms until it holds, failing the test after `timeout`. For conditions
/// that no single event stream can wake on (several processes, an external queue).
pub fn poll_until(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A loopback TCP proxy that can cut every connection and refuse new ones for a while (a
/// network outage between the host and a server, without touching either), or accept new
/// ones and never answer (a hung server).
pub struct FlakyProxy {
    port: u16,
    cut: Arc<std::sync::atomic::AtomicBool>,
    hang: Arc<std::sync::atomic::AtomicBool>,
    open: Arc<Mutex<Vec<std::net::TcpStream>>>,
}

impl FlakyProxy {
    pub fn start(target: std::net::SocketAddr) -> FlakyProxy {
        use std::sync::atomic::Ordering;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let cut = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let hang = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let open: Arc<Mutex<Vec<std::net::TcpStream>>> = Arc::default();
        let (cut_flag, hang_flag, registry) = (cut.clone(), hang.clone(), open.clone());
        std::thread::spawn(move || {
            let mut held = Vec::new();
            for client in listener.incoming() {
                let Ok(client) = client else { continue };
                if cut_flag.load(Ordering::SeqCst) {
                    drop(client);
                    continue;
                }
                if hang_flag.load(Ordering::SeqCst) {
                    held.push(client);
                    continue;
                }
                let Ok(server) = std::net::TcpStream::connect(target) else {
                    continue;
                };
                {
                    let mut registry = registry.lock().unwrap_or_else(|e| e.into_inner());
                    registry.extend([client.try_clone().unwrap(), server.try_clone().unwrap()]);
                }
                for (mut from, mut to) in [
                    (client.try_clone().unwrap(), server.try_clone().unwrap()),
                    (server, client),
                ] {
                    std::thread::spawn(move || {
                        let _ = std::io::copy(&mut from, &mut to);
                        let _ = to.shutdown(std::net::Shutdown::Both);
                        let _ = from.shutdown(std::net::Shutdown::Both);
                    });
                }
            }
        });
        FlakyProxy {
            port,
            cut,
            hang,
            open,
        }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Closes every open connection and drops new ones until [`FlakyProxy::restore`].
    pub fn cut(&self) {
        self.cut.store(true, std::sync::atomic::Ordering::SeqCst);
        self.close_open_connections();
    }

    /// Closes every open connection; new ones are accepted and never answered until
    /// [`FlakyProxy::restore`].
    pub fn hang(&self) {
        self.hang.store(true, std::sync::atomic::Ordering::SeqCst);
        self.close_open_connections();
    }

    fn close_open_connections(&self) {
        for stream in self
            .open
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .drain(..)
        {
            let _ = stream.shutdown(std::net::Shutdown::Both);
        }
    }

    pub fn restore(&self) {
        self.cut.store(false, std::sync::atomic::Ordering::SeqCst);
        self.hang.store(false, std::sync::atomic::Ordering::SeqCst);
    }
}

/// The moto server scripts/test.sh started.
pub fn moto_endpoint() -> String {
    std::env::var("AWS_ENDPOINT_URL")
        .expect("AWS_ENDPOINT_URL is not set: run scripts/test.sh, which starts moto")
}

/// An aws-sdk-rust SQS client for test set-up, with the given keys, in us-east-1.
pub fn sqs_client(endpoint: &str, key_id: &str, secret: &str) -> aws_sdk_sqs::Client {
    use aws_sdk_sqs::config::{BehaviorVersion, Credentials, Region};
    aws_sdk_sqs::Client::from_conf(
        aws_sdk_sqs::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .endpoint_url(endpoint)
            .credentials_provider(Credentials::new(key_id, secret, None, None, "tests"))
            .build(),
    )
}

/// The issue id of a `sentinela::issues` event of this kind (`created`, `updated`, `solved`).
pub fn issue_event<'a>(event: &'a Value, kind: &str) -> Option<&'a str> {
    (field(event, "target") == "sentinela::issues" && field(event, "event") == kind)
        .then(|| field(event, "issue_id"))
}

/// `sentinela invoke CONFIG MONITOR search`, which must succeed without a host panic; returns
/// the first issue's data (where probing guests put their outcomes), stdout and stderr.
pub fn invoke_search(
    config: &Path,
    monitor: &str,
    envs: &[(&str, &str)],
) -> (Value, String, String) {
    let (status, stdout, stderr) = output(
        sentinela(&["invoke", config.to_str().unwrap(), monitor, "search"])
            .envs(envs.iter().copied()),
    );
    assert!(status.success(), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    let data = serde_json::from_str::<Value>(&stdout).unwrap()[0]["data"].clone();
    (data, stdout, stderr)
}

/// One named outcome a probing guest reported.
pub fn outcome(outcomes: &Value, name: &str) -> String {
    outcomes[name]
        .as_str()
        .unwrap_or_else(|| panic!("no outcome {name}: {outcomes}"))
        .to_owned()
}

/// Runs `tests/fixtures/SCRIPT` (boto3 set-up against moto) with the venv's Python and returns
/// the JSON it prints.
pub fn fixture_script(script: &str, args: &[&str]) -> Value {
    let setup = Command::new(repo_root().join(".venv/bin/python"))
        .arg(repo_root().join("tests/fixtures").join(script))
        .args(args)
        .output()
        .unwrap();
    assert!(
        setup.status.success(),
        "{script} failed: {}",
        String::from_utf8_lossy(&setup.stderr)
    );
    serde_json::from_slice(&setup.stdout)
        .unwrap_or_else(|e| panic!("{script} printed no JSON: {e}"))
}

/// A queue holding `messages` messages, deleted when dropped.
pub struct MotoQueue {
    runtime: tokio::runtime::Runtime,
    sqs: aws_sdk_sqs::Client,
    /// The queue's name (`NAME-<pid>`).
    pub name: String,
    /// Its URL on moto.
    pub url: String,
}

impl MotoQueue {
    /// A queue on moto named `NAME-<pid>`, holding `messages` messages.
    pub fn new(name: &str, messages: usize) -> MotoQueue {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let sqs = {
            let _guard = runtime.enter();
            sqs_client(&moto_endpoint(), "testing", "testing")
        };
        let name = format!("{name}-{}", std::process::id());
        let url = runtime
            .block_on(sqs.create_queue().queue_name(&name).send())
            .unwrap()
            .queue_url
            .unwrap();
        for i in 0..messages {
            runtime
                .block_on(
                    sqs.send_message()
                        .queue_url(&url)
                        .message_body(format!("job {i}"))
                        .send(),
                )
                .unwrap();
        }
        MotoQueue {
            runtime,
            sqs,
            name,
            url,
        }
    }

    /// Deletes every message.
    pub fn purge(&self) {
        self.runtime
            .block_on(self.sqs.purge_queue().queue_url(&self.url).send())
            .unwrap();
    }
}

impl Drop for MotoQueue {
    fn drop(&mut self) {
        let _ = self
            .runtime
            .block_on(self.sqs.delete_queue().queue_url(&self.url).send());
    }
}

/// One GET on the host's HTTP listener: (status, body).
pub fn http_get(port: u16, path: &str) -> (u16, String) {
    let (status, body) = http_call("GET", &format!("http://127.0.0.1:{port}{path}"), b"");
    (status, String::from_utf8_lossy(&body).into_owned())
}

/// One plain HTTP/1.1 request to an `http://` URL, as a client with no AWS keys sends it:
/// the status (0 when nothing answered) and the body.
pub fn http_call(method: &str, url: &str, body: &[u8]) -> (u16, Vec<u8>) {
    use std::io::{Read, Write};
    let rest = url.strip_prefix("http://").expect("an http:// URL");
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let path = if path.is_empty() { "/" } else { path };
    let Ok(mut stream) = std::net::TcpStream::connect(authority) else {
        return (0, Vec::new());
    };
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {authority}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).unwrap();
    stream.write_all(body).unwrap();
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response);
    let split = response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or(response.len(), |i| i + 4);
    let status = String::from_utf8_lossy(&response[..split])
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, response[split..].to_vec())
}

/// The value of the sample of `name` whose labels include `labels`, from a text exposition.
pub fn sample(exposition: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    exposition.lines().find_map(|line| {
        let (series, value) = line.rsplit_once(' ')?;
        let (metric, rest) = series.split_once('{').unwrap_or((series, "}"));
        if metric != name {
            return None;
        }
        let pairs: Vec<(&str, &str)> = rest
            .trim_end_matches('}')
            .split(',')
            .filter_map(|pair| {
                let (key, value) = pair.split_once('=')?;
                Some((key, value.trim_matches('"')))
            })
            .collect();
        labels
            .iter()
            .all(|wanted| pairs.contains(wanted))
            .then(|| value.parse().ok())?
    })
}

/// A free loopback port (bound and released: the test's process takes it next).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A fresh directory outside the checkout (in the system's temp dir), as a user's own
/// project would be.
pub fn outside_checkout(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("sentinela-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    assert!(!dir.starts_with(repo_root()));
    dir
}

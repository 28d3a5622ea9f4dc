//! Plugins from OCI registries: real `docker-registry` servers (Debian's CNCF distribution
//! package), the ones `scripts/test.sh` starts and ones a test starts and stops itself, and the
//! real `sentinela push`, `pull`, `check` and `run`.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::config::{Monitor, TestConfig};
use common::{Running, dump, field, guest, issue_event, output, scratch_dir, sentinela};

/// `host:port` of the open registry the test script started.
fn shared_registry() -> String {
    std::env::var("SENTINELA_TEST_REGISTRY")
        .expect("SENTINELA_TEST_REGISTRY is unset: run the tests with scripts/test.sh")
}

/// A repository name no other test (or earlier run) uses.
fn unique(name: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{name}-{}-{nanos}", std::process::id())
}

/// `sentinela ARGS` with its own compile cache and local store in `dir`.
fn sentinela_in(dir: &Path, args: &[&str]) -> Command {
    let mut cmd = sentinela(args);
    cmd.env("SENTINELA_CACHE_DIR", dir.join("cache"))
        .env_remove("REGISTRY_AUTH_FILE")
        .env("DOCKER_CONFIG", dir.join("no-docker-config"));
    cmd
}

fn push(dir: &Path, file: &Path, reference: &str) -> String {
    let (status, stdout, stderr) = output(&mut sentinela_in(
        dir,
        &["push", file.to_str().unwrap(), reference],
    ));
    assert!(status.success(), "push {reference}: {stdout}{stderr}");
    stdout
}

fn config_with(dir: &Path, reference: &str) -> PathBuf {
    let monitor = Monitor::with_plugin("blink", Path::new(reference)).search_every_second();
    TestConfig::new()
        .set("store.path", dir.join("issues.db").display().to_string())
        .monitor(monitor)
        .write(dir)
}

/// A registry of the test's own, to stop and start.
struct OwnRegistry {
    child: Child,
    address: String,
}

impl OwnRegistry {
    fn start(dir: &Path) -> OwnRegistry {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let address = format!("127.0.0.1:{port}");
        let config = dir.join("registry.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nlog: {{level: warn}}\nstorage: {{filesystem: {{rootdirectory: {}}}}}\n\
                 http: {{addr: {address}}}\n",
                dir.join("registry-data").display()
            ),
        )
        .unwrap();
        let child = Command::new("docker-registry")
            .args(["serve", config.to_str().unwrap()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("docker-registry (scripts/test.sh installs it)");
        let deadline = Instant::now() + Duration::from_secs(60);
        while common::http_get(port, "/v2/").0 != 200 {
            assert!(Instant::now() < deadline, "the registry did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        OwnRegistry { child, address }
    }
}

impl Drop for OwnRegistry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn wait_for_an_issue(run: &Running) {
    run.wait_for(
        "an issue from the pulled monitor",
        Duration::from_secs(60),
        |e| field(e, "monitor") == "blink" && issue_event(e, "created").is_some(),
    );
}

#[test]
fn a_pushed_monitor_runs_from_oci_and_again_with_its_registry_stopped() {
    let dir = scratch_dir("oci-run");
    let registry = OwnRegistry::start(&dir);
    let reference = format!("oci://{}/team/blink:1.0.0", registry.address);
    let pushed = push(&dir, &guest("blink"), &reference);
    assert!(pushed.contains("manifest: sha256:"), "{pushed}");
    let config = config_with(&dir, &reference);
    let cache = dir.join("cache").display().to_string();
    let envs = [("SENTINELA_CACHE_DIR", cache.as_str())];

    let run = Running::start(&config, &envs);
    wait_for_an_issue(&run);
    let (status, events) = run.terminate(Duration::from_secs(30));
    assert!(status.success(), "{}", dump(&events));
    let resolved = events
        .iter()
        .find(|e| field(e, "message").starts_with("resolved from the registry"))
        .unwrap_or_else(|| panic!("no resolution logged:\n{}", dump(&events)));
    let manifest = field(resolved, "manifest").to_owned();
    assert!(pushed.contains(&manifest), "{pushed} / {manifest}");
    let lock = std::fs::read_to_string(dir.join("sentinela.lock")).unwrap();
    assert!(
        lock.contains(&reference) && lock.contains(&manifest),
        "{lock}"
    );

    drop(registry);
    let run = Running::start(&config, &envs);
    wait_for_an_issue(&run);
    let (status, events) = run.terminate(Duration::from_secs(30));
    assert!(status.success(), "{}", dump(&events));
    assert!(
        events
            .iter()
            .any(|e| field(e, "message").starts_with("resolved from the local store")),
        "{}",
        dump(&events)
    );

    // A host that never pulled it cannot run it with the registry gone, and says which
    // reference it could not reach; the other monitors are not its concern.
    let fresh = scratch_dir("oci-run-fresh");
    std::fs::copy(&config, fresh.join("sentinela.yaml")).unwrap();
    let (status, stdout, stderr) = output(&mut sentinela_in(
        &fresh,
        &["check", fresh.join("sentinela.yaml").to_str().unwrap()],
    ));
    assert!(!status.success());
    assert!(stdout.contains(&reference), "{stdout}{stderr}");
}

#[test]
fn a_layer_changed_in_the_registry_or_the_store_is_refused() {
    let dir = scratch_dir("oci-tamper");
    let reference = format!("oci://{}/{}:1", shared_registry(), unique("tamper"));
    let pushed = push(&dir, &guest("blink"), &reference);
    let layer = pushed
        .lines()
        .find_map(|l| l.trim().strip_prefix("layer:"))
        .unwrap()
        .trim()
        .to_owned();
    let config = config_with(&dir, &reference);

    // Pulled once, then the store's copy changed on disk: refused, not run.
    let (status, stdout, stderr) = output(&mut sentinela_in(
        &dir,
        &["check", config.to_str().unwrap()],
    ));
    assert!(status.success(), "{stdout}{stderr}");
    let blob = dir
        .join("cache/oci/blobs/sha256")
        .join(layer.strip_prefix("sha256:").unwrap());
    let mut bytes = std::fs::read(&blob).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(&blob, &bytes).unwrap();
    let (status, stdout, stderr) = output(&mut sentinela_in(
        &dir,
        &["check", config.to_str().unwrap()],
    ));
    assert!(!status.success(), "{stdout}{stderr}");
    assert!(
        stdout.contains(&reference) && stdout.contains("SHA-256"),
        "{stdout}{stderr}"
    );

    // The registry's copy changed on disk: a fresh host refuses the download.
    let data = PathBuf::from(std::env::var("SENTINELA_TEST_REGISTRY_DATA").unwrap());
    let hex = layer.strip_prefix("sha256:").unwrap();
    let stored = data
        .join("docker/registry/v2/blobs/sha256")
        .join(&hex[..2])
        .join(hex)
        .join("data");
    std::fs::write(&stored, &bytes).unwrap();
    let fresh = scratch_dir("oci-tamper-fresh");
    let config = config_with(&fresh, &reference);
    let (status, stdout, stderr) = output(&mut sentinela_in(
        &fresh,
        &["check", config.to_str().unwrap()],
    ));
    assert!(!status.success(), "{stdout}{stderr}");
    assert!(
        stdout.contains(&reference) && stdout.to_lowercase().contains("digest"),
        "{stdout}{stderr}"
    );
    assert!(!fresh.join("cache/oci/blobs/sha256").join(hex).exists());
}

#[test]
fn a_moved_tag_is_refused_under_the_lock_and_a_wrong_digest_names_the_reference() {
    let dir = scratch_dir("oci-lock");
    let repository = unique("locked");
    let reference = format!("oci://{}/{repository}:stable", shared_registry());
    push(&dir, &guest("blink"), &reference);
    let config = config_with(&dir, &reference);
    let check = |dir: &Path, args: &[&str]| {
        let mut all = vec!["check", config.to_str().unwrap()];
        all.extend_from_slice(args);
        output(&mut sentinela_in(dir, &all))
    };
    let (status, stdout, stderr) = check(&dir, &["--locked"]);
    assert!(status.success(), "{stdout}{stderr}");
    assert!(dir.join("sentinela.lock").is_file());

    // The tag now names another component; a host that resolves it again refuses to start.
    push(&dir, &guest("cert_expiry"), &reference);
    let fresh = scratch_dir("oci-lock-fresh");
    for args in [&["--locked"][..], &[]] {
        let (status, stdout, stderr) = check(&fresh, args);
        assert!(!status.success(), "{args:?}: {stdout}{stderr}");
        assert!(
            stdout.contains(&reference) && stdout.contains("moved"),
            "{args:?}: {stdout}{stderr}"
        );
    }
    // The host that resolved it before keeps what it resolved.
    let (status, stdout, stderr) = check(&dir, &["--locked"]);
    assert!(status.success(), "{stdout}{stderr}");

    let missing = format!(
        "oci://{}/{repository}@sha256:{}",
        shared_registry(),
        "0".repeat(64)
    );
    let config = config_with(&fresh, &missing);
    let (status, stdout, stderr) = output(&mut sentinela_in(
        &fresh,
        &["check", config.to_str().unwrap()],
    ));
    assert!(!status.success());
    assert!(stdout.contains(&missing), "{stdout}{stderr}");
}

/// Pushes a manifest of the given layers with oci-client itself (what `sentinela push` never
/// writes), to a fresh repository of the shared registry.
fn push_artifact(layers: Vec<(Vec<u8>, &str)>) -> String {
    use oci_client::client::{ClientConfig, ClientProtocol, Config, ImageLayer};
    let registry = shared_registry();
    let name = format!("{registry}/{}:1", unique("odd"));
    let image: oci_client::Reference = name.parse().unwrap();
    let client = oci_client::Client::new(ClientConfig {
        protocol: ClientProtocol::HttpsExcept(vec![registry]),
        ..ClientConfig::default()
    });
    let layers: Vec<ImageLayer> = layers
        .into_iter()
        .map(|(bytes, media_type)| ImageLayer::new(bytes, media_type.to_owned(), None))
        .collect();
    let config = Config::new(
        b"{}".to_vec(),
        "application/vnd.wasm.config.v0+json".to_owned(),
        None,
    );
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(client.push(
            &image,
            &layers,
            config,
            &oci_client::secrets::RegistryAuth::Anonymous,
            None,
        ))
        .unwrap();
    format!("oci://{name}")
}

#[test]
fn artifacts_that_are_not_one_wasm_layer_are_refused() {
    let component = std::fs::read(guest("blink")).unwrap();
    for (layers, expected) in [
        (
            vec![
                (component.clone(), "application/wasm"),
                (b"more".to_vec(), "application/wasm"),
            ],
            "2 layers",
        ),
        (
            vec![(component.clone(), "application/vnd.oci.image.layer.v1.tar")],
            "not a Wasm component",
        ),
    ] {
        let reference = push_artifact(layers);
        let dir = scratch_dir("oci-odd");
        let config = config_with(&dir, &reference);
        let (status, stdout, stderr) = output(&mut sentinela_in(
            &dir,
            &["check", config.to_str().unwrap()],
        ));
        assert!(!status.success(), "{stdout}{stderr}");
        assert!(
            stdout.contains(&reference) && stdout.contains(expected),
            "{stdout}{stderr}"
        );
    }
}

#[test]
fn a_registry_login_comes_from_the_auth_file_and_is_never_printed() {
    let registry = std::env::var("SENTINELA_TEST_AUTH_REGISTRY").unwrap();
    let user = std::env::var("SENTINELA_TEST_REGISTRY_USER").unwrap();
    let password = std::env::var("SENTINELA_TEST_REGISTRY_PASSWORD").unwrap();
    let dir = scratch_dir("oci-auth");
    let reference = format!("oci://{registry}/{}:1", unique("private"));
    let blink = guest("blink");
    let push = |env: Option<&Path>| {
        let mut cmd = sentinela_in(&dir, &["push", blink.to_str().unwrap(), &reference]);
        if let Some(file) = env {
            cmd.env("REGISTRY_AUTH_FILE", file);
        }
        output(&mut cmd)
    };
    let (status, stdout, stderr) = push(None);
    assert!(!status.success(), "{stdout}{stderr}");
    assert!(
        stderr.contains(&reference) && stderr.contains("REGISTRY_AUTH_FILE"),
        "{stderr}"
    );

    let auth_file = dir.join("auth.json");
    let login = aws_smithy_types::base64::encode(format!("{user}:{password}"));
    std::fs::write(
        &auth_file,
        format!(r#"{{"auths": {{"{registry}": {{"auth": "{login}"}}}}}}"#),
    )
    .unwrap();
    let (status, stdout, stderr) = push(Some(&auth_file));
    assert!(status.success(), "{stdout}{stderr}");

    let config = config_with(&dir, &reference);
    let mut cmd = sentinela_in(
        &dir,
        &["--log-format", "json", "check", config.to_str().unwrap()],
    );
    cmd.env("REGISTRY_AUTH_FILE", &auth_file)
        .env("RUST_LOG", "trace");
    let (status, stdout, stderr) = output(&mut cmd);
    assert!(status.success(), "{stdout}{stderr}");
    for text in [&stdout, &stderr] {
        assert!(
            !text.contains(&password) && !text.contains(&login),
            "the login was printed"
        );
    }
}

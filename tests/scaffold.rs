//! `sentinela new`: Rust, Python and JavaScript projects created outside the checkout stand
//! alone (no file names the checkout: the SDK and WIT are written into them), build with the
//! command the scaffold prints, pass `check`, and `invoke` returns their sample issue.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;
use serde_json::{Value, json};

/// `sentinela new ...` in `parent`; returns the project directory and the printed build
/// command.
fn scaffold(parent: &Path, args: &[&str]) -> (PathBuf, String) {
    let mut all = vec!["new"];
    all.extend_from_slice(args);
    let (status, stdout, stderr) = output(
        sentinela(&all)
            .current_dir(parent)
            .env("PATH", path_with_sentinela()),
    );
    assert!(status.success(), "{stdout}{stderr}");
    let build = stdout
        .lines()
        .find_map(|l| l.strip_prefix("build it:  "))
        .unwrap_or_else(|| panic!("no build line: {stdout}"));
    let (cd, command) = build.split_once(" && ").unwrap();
    let dir = parent.join(cd.strip_prefix("cd ").unwrap());
    (dir, command.to_owned())
}

/// The project stands alone: no file of it names the checkout the binary was built from.
fn assert_standalone(dir: &Path) {
    let checkout = repo_root();
    let checkout = checkout.to_str().unwrap();
    let mut dirs = vec![dir.to_path_buf()];
    let mut files = 0;
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_str().unwrap();
            if ["target", "node_modules", ".venv"].contains(&name) {
                continue;
            }
            if path.is_dir() {
                dirs.push(path);
            } else if let Ok(text) = std::fs::read_to_string(&path) {
                assert!(
                    !text.contains(checkout),
                    "{} names {checkout}",
                    path.display()
                );
                files += 1;
            }
        }
    }
    assert!(files >= 4, "{files} files in {}", dir.display());
}

/// PATH with this build's `sentinela` first, as on a machine where it is installed: the
/// printed build line then names it `sentinela`, not by a path into the checkout.
fn path_with_sentinela() -> std::ffi::OsString {
    let bin = Path::new(BIN).parent().unwrap().to_path_buf();
    let rest = std::env::var_os("PATH").unwrap_or_default();
    std::env::join_paths(std::iter::once(bin).chain(std::env::split_paths(&rest))).unwrap()
}

fn run_shell(dir: &Path, command: &str) {
    let (status, stdout, stderr) = output(
        Command::new("sh")
            .args(["-c", command])
            .current_dir(dir)
            .env("PATH", path_with_sentinela())
            .env_remove("RUSTFLAGS"),
    );
    assert!(status.success(), "{command}:\n{stdout}\n{stderr}");
}

/// `check` passes and `invoke` returns the template's sample issue, without any host plugin.
fn check_and_invoke(dir: &Path, name: &str) {
    let config = dir.join("sentinela.yaml");
    let config = config.to_str().unwrap();
    let (status, stdout, stderr) = output(&mut sentinela(&["check", config]));
    assert!(status.success(), "{stdout}{stderr}");
    assert!(stdout.contains("settings: threshold=90"), "{stdout}");
    assert!(
        stdout.contains("declares: settings: threshold (integer)"),
        "{stdout}"
    );
    let invoke = |extra: &[&str]| {
        let mut args = vec!["invoke", config, name, "search"];
        args.extend_from_slice(extra);
        let (status, stdout, stderr) = output(&mut sentinela(&args));
        assert!(status.success(), "{stderr}");
        serde_json::from_str::<Value>(&stdout).unwrap()
    };
    assert_eq!(
        invoke(&[]),
        json!([{ "id": "sample", "data": { "used_percent": 97, "threshold": 90 } }])
    );
    assert_eq!(invoke(&["--set", "threshold=99"]), json!([]));
}

#[test]
fn a_new_rust_monitor_builds_checks_and_runs() {
    let parent = outside_checkout("new-rust");
    let (dir, build) = scaffold(&parent, &["disk-check"]);
    assert!(
        build.contains("cargo build --release --target wasm32-wasip2"),
        "{build}"
    );
    // The project's target/ is a link to one kept across test runs, so a re-run is quick;
    // the build command is the printed one.
    let target = Path::new(env!("CARGO_TARGET_TMPDIR")).join("first-monitor-target");
    std::fs::create_dir_all(&target).unwrap();
    std::os::unix::fs::symlink(&target, dir.join("target")).unwrap();
    assert_standalone(&dir);
    assert!(dir.join("sentinela-monitor/wit/sentinela.wit").is_file());
    run_shell(&dir, &build);
    check_and_invoke(&dir, "disk-check");

    // The build wrote its declaration into it: `check` holds the config to it.
    let config = dir.join("sentinela.yaml");
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(&config, text.replace("threshold: 90", "treshold: 90")).unwrap();
    let (status, stdout, _) = output(&mut sentinela(&["check", config.to_str().unwrap()]));
    assert!(!status.success(), "{stdout}");
    assert!(stdout.contains("did you mean 'threshold'"), "{stdout}");
    let _ = std::fs::remove_dir_all(&parent);
}

#[test]
fn a_new_python_monitor_builds_checks_and_runs_without_the_aws_plugin() {
    let parent = outside_checkout("new-python");
    let (dir, build) = scaffold(&parent, &["disk-check-py", "--lang", "python"]);
    assert_standalone(&dir);
    assert!(build.contains("componentize-py=="), "{build}");
    run_shell(&dir, &build);
    check_and_invoke(&dir, "disk-check-py");
    let _ = std::fs::remove_dir_all(&parent);
}

#[test]
fn a_new_js_monitor_builds_checks_and_runs_without_the_aws_plugin() {
    let parent = outside_checkout("new-js");
    let (dir, build) = scaffold(&parent, &["disk-check-js", "--lang", "js"]);
    assert_standalone(&dir);
    assert!(build.starts_with("npm install"), "{build}");
    run_shell(&dir, &build);
    check_and_invoke(&dir, "disk-check-js");
    let _ = std::fs::remove_dir_all(&parent);
}

#[test]
fn new_refuses_a_bad_name_and_a_directory_in_use() {
    let parent = outside_checkout("new-refused");
    let (status, _, stderr) = output(sentinela(&["new", "Disk Check"]).current_dir(&parent));
    assert!(!status.success());
    assert!(stderr.contains("NAME: invalid monitor name"), "{stderr}");
    std::fs::create_dir_all(parent.join("taken")).unwrap();
    std::fs::write(parent.join("taken/file"), "mine").unwrap();
    let (status, _, stderr) =
        output(sentinela(&["new", "taken", "--dir", "taken"]).current_dir(&parent));
    assert!(!status.success());
    assert!(stderr.contains("exists and is not empty"), "{stderr}");
    assert_eq!(
        std::fs::read_to_string(parent.join("taken/file")).unwrap(),
        "mine"
    );
    let _ = std::fs::remove_dir_all(&parent);
}

//! The Rust SDK is a crate a monitor author can depend on from outside this repository: it
//! carries the WIT it binds (identical to `wit/`), `cargo package` accepts it, and its crate
//! docs' example runs.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use common::*;

/// Every file under `dir`, by path relative to it.
fn files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut found = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(current) = stack.pop() {
        for entry in std::fs::read_dir(&current).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let relative = path.strip_prefix(dir).unwrap().display().to_string();
                found.insert(relative, std::fs::read(&path).unwrap());
            }
        }
    }
    found
}

#[test]
fn the_sdk_carries_the_same_wit_as_the_host() {
    let host = files(&repo_root().join("wit"));
    let sdk = files(&repo_root().join("guests/sdk/wit"));
    assert!(host.contains_key("sentinela.wit") && host.contains_key("deps/config/store.wit"));
    let differing: Vec<_> = host
        .keys()
        .chain(sdk.keys())
        .filter(|name| host.get(*name) != sdk.get(*name))
        .collect();
    assert!(
        differing.is_empty(),
        "guests/sdk/wit differs from wit/ in {differing:?}: copy wit/ into guests/sdk/wit/"
    );
}

#[test]
fn the_sdk_packages_and_its_doc_example_runs() {
    let guests = repo_root().join("guests");
    for args in [
        &[
            "package",
            "-p",
            "sentinela-monitor",
            "--allow-dirty",
            "--quiet",
        ][..],
        &["test", "--doc", "-p", "sentinela-monitor", "--quiet"][..],
    ] {
        let (status, stdout, stderr) = output(
            Command::new("cargo")
                .args(args)
                .current_dir(&guests)
                .env_remove("RUSTFLAGS"),
        );
        assert!(status.success(), "cargo {args:?}:\n{stdout}\n{stderr}");
    }
}

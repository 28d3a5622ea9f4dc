//! Compiled code is cached on disk: a second start does not recompile, a corrupt or modified
//! entry is recompiled rather than trusted, and a cache directory others can write is never
//! used at all.
#![cfg(unix)]

mod common;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::*;
use sha2::{Digest, Sha256};

fn check(config: &Path, cache: &Path) -> String {
    let (status, stdout, stderr) = output(
        sentinela(&["--log-format", "json", "check", config.to_str().unwrap()])
            .env("SENTINELA_CACHE_DIR", cache),
    );
    assert!(status.success(), "{stdout}\n{stderr}");
    stderr
}

fn cache_events(stderr: &str) -> Vec<&str> {
    stderr
        .lines()
        .filter(|l| l.contains("\"cache\":"))
        .collect()
}

/// A directory holding a config with one monitor running `plugin`.
fn config_for(dir: &Path, name: &str, plugin: &Path) -> PathBuf {
    let dir = dir.join(name);
    std::fs::create_dir_all(&dir).unwrap();
    write_config(
        &dir,
        &format!(
            "compile:\n  first_tier: optimized\nmonitors:\n  - name: {name}\n    plugin: {}\n",
            plugin.display()
        ),
    )
}

/// The check file and artifact of the cache entry of `plugin` (its key starts with the SHA-256
/// of the wasm).
fn entry_of(cache: &Path, plugin: &Path) -> (PathBuf, PathBuf) {
    let hash: String = Sha256::digest(std::fs::read(plugin).unwrap())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let mut files: Vec<_> = std::fs::read_dir(cache)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let name = p.file_name().unwrap().to_str().unwrap();
            name.starts_with(&hash) && (name.ends_with(".check") || name.ends_with(".cwasm"))
        })
        .collect();
    files.sort();
    assert_eq!(files.len(), 2, "{files:?}");
    (files[0].clone(), files[1].clone())
}

/// The index record of `plugin`.
fn index_of(cache: &Path, plugin: &Path) -> PathBuf {
    let canonical = std::fs::canonicalize(plugin).unwrap();
    let name: String = Sha256::digest(canonical.as_os_str().as_encoded_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    cache.join("index").join(name)
}

fn chmod(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

fn mode(path: &Path) -> u32 {
    std::fs::symlink_metadata(path).unwrap().mode() & 0o7777
}

/// Every file and directory under `dir` with what would show a write: for "nothing was
/// written there".
fn snapshot(dir: &Path) -> Vec<(PathBuf, u64, i64, i64, u64)> {
    let mut all = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let meta = std::fs::symlink_metadata(&path).unwrap();
            if meta.is_dir() {
                pending.push(path.clone());
            }
            all.push((
                path,
                meta.len(),
                meta.mtime_nsec(),
                meta.ctime_nsec(),
                meta.ino(),
            ));
        }
    }
    all.sort();
    all
}

/// The uid this test runs as, and whether it may give files away (root may).
fn euid_and_chown_allowed(scratch: &Path) -> (u32, bool) {
    let uid = std::fs::metadata(scratch).unwrap().uid();
    (uid, uid == 0)
}

/// Runs `sentinela check` and asserts the entry was refused for `why`, recompiled and never
/// loaded; then that the rewritten entry is a hit again.
fn assert_recompiled(config: &Path, cache: &Path, why: &str) {
    let stderr = check(config, cache);
    let events = cache_events(&stderr);
    assert!(
        events
            .iter()
            .any(|e| e.contains("\"cache\":\"invalid\"") && e.contains(why)),
        "expected an invalid entry ({why}):\n{stderr}"
    );
    assert!(
        events.iter().any(|e| e.contains("\"cache\":\"miss\"")),
        "the refused entry was not recompiled:\n{stderr}"
    );
    assert!(
        !stderr.contains("\"cache\":\"hit\""),
        "a refused entry was loaded:\n{stderr}"
    );
    let again = check(config, cache);
    assert!(
        cache_events(&again)
            .iter()
            .all(|e| e.contains("\"cache\":\"hit\"")),
        "the recompiled entry was not stored:\n{again}"
    );
}

#[test]
fn second_start_loads_from_cache_and_corrupt_entries_are_recompiled() {
    let dir = scratch_dir("cache");
    let cache = dir.join("cache");
    let config = write_config(
        &dir,
        &format!(
            "compile:\n  first_tier: optimized\nmonitors:\n  - name: blink\n    plugin: {}\n",
            guest("blink").display()
        ),
    );

    let first = check(&config, &cache);
    let events = cache_events(&first);
    assert_eq!(events.len(), 1, "{first}");
    assert!(
        events[0].contains("\"cache\":\"miss\"") && events[0].contains("compiled plugin"),
        "{first}"
    );

    let second = check(&config, &cache);
    let events = cache_events(&second);
    assert_eq!(events.len(), 1, "{second}");
    assert!(
        events[0].contains("\"cache\":\"hit\""),
        "a second start recompiled:\n{second}"
    );

    // Flip one byte in the middle of the artifact: the write changed its ctime, so the
    // artifact is authenticated in full, and its MAC catches the change.
    let (check_file, artifact) = entry_of(&cache, &guest("blink"));
    let mut bytes = std::fs::read(&artifact).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    std::fs::write(&artifact, &bytes).unwrap();
    let third = check(&config, &cache);
    assert!(
        third.contains("\"cache\":\"invalid\"") && third.contains("does not match its MAC"),
        "{third}"
    );
    assert!(
        third.contains("\"cache\":\"miss\""),
        "the corrupt entry was not recompiled:\n{third}"
    );

    // A truncated entry is no better.
    std::fs::write(&artifact, &bytes[..100]).unwrap();
    let fourth = check(&config, &cache);
    assert!(
        fourth.contains("\"cache\":\"invalid\"")
            && fourth.contains("truncated")
            && fourth.contains("\"cache\":\"miss\""),
        "{fourth}"
    );

    // An artifact without its check file (a writer stopped between the two renames) is
    // never trusted: it is recompiled and rewritten.
    std::fs::remove_file(&check_file).unwrap();
    let fifth = check(&config, &cache);
    assert!(fifth.contains("\"cache\":\"miss\""), "{fifth}");

    // The rewritten entry is valid again.
    let sixth = check(&config, &cache);
    assert!(
        cache_events(&sixth)
            .iter()
            .all(|e| e.contains("\"cache\":\"hit\"")),
        "{sixth}"
    );
}

#[test]
fn an_entry_from_another_wasm_is_never_used() {
    let dir = scratch_dir("cache-keys");
    let cache = dir.join("cache");
    let config = write_config(
        &dir,
        &format!(
            "compile:\n  first_tier: optimized\nmonitors:\n  - name: blink\n    plugin: {}\n",
            guest("blink").display()
        ),
    );
    check(&config, &cache);
    // Same file name, different bytes: a new key, so a miss.
    let plugin = dir.join("blink.wasm");
    std::fs::copy(guest("steady"), &plugin).unwrap();
    let moved = write_config(
        &dir,
        "compile:\n  first_tier: optimized\nmonitors:\n  - name: blink\n    plugin: blink.wasm\n",
    );
    let stderr = check(&moved, &cache);
    assert!(stderr.contains("\"cache\":\"miss\""), "{stderr}");
    assert!(check(&moved, &cache).contains("\"cache\":\"hit\""));

    // The same path rewritten in place with other bytes: the remembered hash of the path is
    // not reused (the file's stat changed), so the new code is compiled.
    std::fs::write(&plugin, std::fs::read(guest("blink")).unwrap()).unwrap();
    let stderr = check(&moved, &cache);
    let events = cache_events(&stderr);
    assert_eq!(events.len(), 1, "{stderr}");
    // blink's own entry exists from the first check: a hit, but on blink's key, not steady's.
    assert!(events[0].contains("\"cache\":\"hit\""), "{stderr}");
    let (status, stdout, stderr) = output(
        sentinela(&["invoke", moved.to_str().unwrap(), "blink", "search"])
            .env("SENTINELA_CACHE_DIR", &cache),
    );
    assert!(status.success(), "{stderr}");
    assert!(stdout.contains("window-"), "ran stale code: {stdout}");
}

#[test]
fn a_cache_dir_others_can_write_is_never_used() {
    let dir = scratch_dir("cache-open-dir");
    let cache = dir.join("cache");
    // Two plugins: one warning all the same.
    let config = write_config(
        &dir,
        &format!(
            "compile:\n  first_tier: optimized\nmonitors:\n  - name: blink\n    plugin: {}\n  - name: steady\n    plugin: {}\n",
            guest("blink").display(),
            guest("steady").display()
        ),
    );
    check(&config, &cache);
    // Created private: the directory and index/ 0700, the key 0600.
    assert_eq!(mode(&cache), 0o700);
    assert_eq!(mode(&cache.join("index")), 0o700);
    assert_eq!(mode(&cache.join("key")), 0o600);

    // Bypassed: a warning naming the directory and the reason, the plugin compiled in memory,
    // and nothing read from or written to the directory.
    let bypassed = |why: &str, names: &Path| {
        let before = snapshot(&cache);
        let stderr = check(&config, &cache);
        let warnings: Vec<_> = stderr
            .lines()
            .filter(|l| l.contains("\"level\":\"WARN\"") && l.contains("compile cache"))
            .collect();
        assert_eq!(warnings.len(), 1, "{stderr}");
        assert!(
            warnings[0].contains("compile cache bypassed")
                && warnings[0].contains(&format!("{}", names.display()))
                && warnings[0].contains(why),
            "{stderr}"
        );
        let compiled = stderr
            .lines()
            .filter(|l| l.contains("\"cache\":\"miss\"") && l.contains("compile cache bypassed"))
            .count();
        assert_eq!(compiled, 2, "{stderr}");
        assert!(!stderr.contains("\"cache\":\"hit\""), "{stderr}");
        assert_eq!(
            snapshot(&cache),
            before,
            "the bypassed cache was written to"
        );
    };

    // Not even a missing index/ is created in it.
    let index = cache.join("index");
    std::fs::remove_dir_all(&index).unwrap();
    chmod(&cache, 0o777);
    bypassed("is writable by group or others", &cache);
    chmod(&cache, 0o700);

    std::fs::create_dir(&index).unwrap();
    chmod(&index, 0o770);
    bypassed("is writable by group or others", &index);
    chmod(&index, 0o700);

    // A key others can read could forge entries; so could one they can write.
    let key = cache.join("key");
    chmod(&key, 0o640);
    bypassed("is readable or writable by group or others", &key);
    chmod(&key, 0o600);

    // A directory of another user (only root can hand one over).
    let (euid, can_chown) = euid_and_chown_allowed(&dir);
    if can_chown {
        std::os::unix::fs::chown(&cache, Some(65534), None).unwrap();
        bypassed("is owned by uid 65534, not by the running user", &cache);
        std::os::unix::fs::chown(&cache, Some(euid), None).unwrap();
    }

    // Private again: used again.
    let stderr = check(&config, &cache);
    assert!(
        cache_events(&stderr)
            .iter()
            .all(|e| e.contains("\"cache\":\"hit\"")),
        "{stderr}"
    );
}

#[test]
fn a_modified_entry_is_never_loaded() {
    let dir = scratch_dir("cache-forged");
    let cache = dir.join("cache");
    let (blink, steady) = (guest("blink"), guest("steady"));
    let config = config_for(&dir, "blink", &blink);
    let steady_config = config_for(&dir, "steady", &steady);
    check(&config, &cache);
    check(&steady_config, &cache);
    let (check_file, artifact) = entry_of(&cache, &blink);
    let (steady_check, steady_artifact) = entry_of(&cache, &steady);

    // Another plugin's valid artifact under blink's name, blink's check file kept: refused
    // by whichever check sees it first (the length, or the MAC).
    std::fs::copy(&steady_artifact, &artifact).unwrap();
    assert_recompiled(&config, &cache, "");

    // Another plugin's whole entry under blink's name: its check file's MAC covers the name.
    std::fs::copy(&steady_artifact, &artifact).unwrap();
    std::fs::copy(&steady_check, &check_file).unwrap();
    assert_recompiled(&config, &cache, "check file MAC mismatch");

    // A modified artifact whose check file was edited to record its new stamp, so the content
    // would not be hashed: the check file's own MAC catches the edit.
    let mut bytes = std::fs::read(&artifact).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    std::fs::write(&artifact, &bytes).unwrap();
    let meta = std::fs::metadata(&artifact).unwrap();
    let stamp = format!(
        "{} {} {} {}.{} {}.{}",
        meta.dev(),
        meta.ino(),
        meta.size(),
        meta.mtime(),
        meta.mtime_nsec(),
        meta.ctime(),
        meta.ctime_nsec()
    );
    let old = std::fs::read(&check_file).unwrap();
    let old_stamp_len = u16::from_le_bytes([old[24], old[25]]) as usize;
    let mut forged = old[..24].to_vec();
    forged.extend_from_slice(&(stamp.len() as u16).to_le_bytes());
    forged.extend_from_slice(stamp.as_bytes());
    forged.extend_from_slice(&old[26 + old_stamp_len..]);
    std::fs::write(&check_file, &forged).unwrap();
    assert_recompiled(&config, &cache, "check file MAC mismatch");

    // A check file of arbitrary bytes, with or without the right magic.
    std::fs::write(
        &check_file,
        [b"sentinela-cwasm3".as_slice(), &[7; 90]].concat(),
    )
    .unwrap();
    assert_recompiled(&config, &cache, "check file MAC mismatch");
    std::fs::write(&check_file, b"sentinela-cwasm2 and anything").unwrap();
    assert_recompiled(&config, &cache, "not a sentinela cache entry");

    // blink's index record pointed at steady's hash (and so at steady's entry): its MAC
    // covers the hash and the plugin's path, so blink is hashed again and its own entry
    // loaded.
    let index = index_of(&cache, &blink);
    let record = std::fs::read_to_string(&index).unwrap();
    let steady_record = std::fs::read_to_string(index_of(&cache, &steady)).unwrap();
    let steady_hash = steady_record.lines().nth(2).unwrap();
    let mut lines: Vec<_> = record.lines().collect();
    lines[2] = steady_hash;
    std::fs::write(&index, format!("{}\n", lines.join("\n"))).unwrap();
    let invoke_blink = || {
        let (status, stdout, stderr) = output(
            sentinela(&[
                "--log-format",
                "json",
                "invoke",
                config.to_str().unwrap(),
                "blink",
                "search",
            ])
            .env("SENTINELA_CACHE_DIR", &cache),
        );
        assert!(status.success(), "{stderr}");
        assert!(
            stdout.contains("window-"),
            "ran another plugin's code: {stdout}"
        );
        stderr
    };
    let stderr = invoke_blink();
    assert!(
        stderr.contains("\"cache\":\"invalid\"") && stderr.contains("modified record"),
        "{stderr}"
    );
    // steady's whole valid record copied over blink's: bound to steady's path, refused too.
    std::fs::write(&index, &steady_record).unwrap();
    let stderr = invoke_blink();
    assert!(
        stderr.contains("\"cache\":\"invalid\"") && stderr.contains("modified record"),
        "{stderr}"
    );

    // A replaced key: nothing written under the old one is trusted.
    let key = cache.join("key");
    std::fs::remove_file(&key).unwrap();
    std::fs::write(&key, [0x5a; 32]).unwrap();
    chmod(&key, 0o600);
    assert_recompiled(&config, &cache, "MAC mismatch");
}

#[test]
fn entry_files_others_can_write_or_symlinks_are_refused() {
    let dir = scratch_dir("cache-modes");
    let cache = dir.join("cache");
    let blink = guest("blink");
    let config = config_for(&dir, "blink", &blink);
    check(&config, &cache);
    let (check_file, artifact) = entry_of(&cache, &blink);
    // Written private.
    assert_eq!(mode(&artifact), 0o600);
    assert_eq!(mode(&check_file), 0o600);

    chmod(&artifact, 0o620);
    assert_recompiled(&config, &cache, "is writable by group or others");
    assert_eq!(
        mode(&artifact),
        0o600,
        "the refused artifact was not replaced"
    );

    chmod(&check_file, 0o606);
    assert_recompiled(&config, &cache, "is writable by group or others");

    // A symlink planted in the cache is not followed, even to a valid check file.
    let elsewhere = dir.join("copy.check");
    std::fs::copy(&check_file, &elsewhere).unwrap();
    std::fs::remove_file(&check_file).unwrap();
    std::os::unix::fs::symlink(&elsewhere, &check_file).unwrap();
    assert_recompiled(&config, &cache, "is a symbolic link");

    // An artifact of another user (only root can hand one over).
    let (_, can_chown) = euid_and_chown_allowed(&dir);
    if can_chown {
        std::os::unix::fs::chown(&artifact, Some(65534), None).unwrap();
        assert_recompiled(&config, &cache, "is owned by uid 65534");
    }
}

/// A plugin's bytes are read once per load: a file flipped between two plugins while the host
/// loads it, many times, never runs the other plugin under the pin, and never gets it cached
/// under the pinned hash (the next start, with the pinned file back, runs the pinned plugin).
#[test]
fn a_pinned_plugin_flipped_during_loads_never_runs_or_caches_the_other() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

    let dir = scratch_dir("swap-race");
    let cache = dir.join("cache");
    let plugin = dir.join("plugin.wasm");
    let pinned = std::fs::read(guest("steady")).unwrap();
    let other = std::fs::read(guest("blink")).unwrap();
    let pin: String = Sha256::digest(&pinned)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    std::fs::write(&plugin, &pinned).unwrap();
    let config = write_config(
        &dir,
        &format!(
            "compile:\n  first_tier: optimized\nmonitors:\n  - name: pinned\n    plugin: {}\n    sha256: {pin}\n",
            plugin.display()
        ),
    );

    // Flips the file between the two plugins, each time a whole file renamed over it.
    let stop = Arc::new(AtomicBool::new(false));
    let flips = Arc::new(AtomicUsize::new(0));
    let flipper = {
        let (stop, flips, plugin, dir) = (stop.clone(), flips.clone(), plugin.clone(), dir.clone());
        let (pinned, other) = (pinned.clone(), other.clone());
        std::thread::spawn(move || {
            let staged = dir.join("staged.wasm");
            while !stop.load(Ordering::Relaxed) {
                let n = flips.fetch_add(1, Ordering::Relaxed);
                let bytes = if n % 2 == 0 { &other } else { &pinned };
                std::fs::write(&staged, bytes).unwrap();
                std::fs::rename(&staged, &plugin).unwrap();
            }
        })
    };
    let invoke = || {
        output(
            sentinela(&["invoke", config.to_str().unwrap(), "pinned", "search"])
                .env("SENTINELA_CACHE_DIR", &cache),
        )
    };
    let (mut ran, mut refused) = (0, 0);
    for _ in 0..20 {
        let (status, stdout, stderr) = invoke();
        if status.success() {
            // The pinned plugin's issue, never the other's.
            assert!(stdout.contains("\"steady\""), "{stdout}\n{stderr}");
            ran += 1;
        } else {
            assert!(
                stderr.contains(&format!("but the config pins {pin}")),
                "{stdout}\n{stderr}"
            );
            refused += 1;
        }
    }
    stop.store(true, Ordering::Relaxed);
    flipper.join().unwrap();
    assert!(
        flips.load(Ordering::Relaxed) > 20,
        "the file was not flipped"
    );
    eprintln!("{ran} loads ran the pinned plugin, {refused} were refused");

    // Only the pinned plugin's code was ever compiled and cached.
    for entry in std::fs::read_dir(&cache).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        if name.ends_with(".cwasm") || name.ends_with(".check") {
            assert!(
                name.starts_with(&pin),
                "{name} cached beside the pinned {pin}"
            );
        }
    }
    std::fs::write(&plugin, &pinned).unwrap();
    let (status, stdout, stderr) = invoke();
    assert!(
        status.success() && stdout.contains("\"steady\""),
        "{stdout}\n{stderr}"
    );
}

/// A plugin the cache lacks runs on the baseline tier (Winch) at once, is compiled with
/// Cranelift in the background and swapped in while the monitor keeps its schedule; the cache
/// then holds the optimized code, which the next start loads.
#[test]
fn a_plugin_the_cache_lacks_runs_on_the_baseline_tier_then_tiers_up() {
    let dir = scratch_dir("tier-up");
    let cache = dir.join("cache");
    let config = write_config(
        &dir,
        &format!(
            "monitors:\n  - name: steady\n    plugin: {}\n    search_cron: \"* * * * * *\"\n",
            guest("steady").display()
        ),
    );
    let (status, stdout, stderr) =
        output(sentinela(&["check", config.to_str().unwrap()]).env("SENTINELA_CACHE_DIR", &cache));
    assert!(status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("tier: baseline (Winch)"), "{stdout}");
    let artifacts = |cache: &Path| {
        std::fs::read_dir(cache)
            .map(|entries| {
                entries
                    .filter(|e| {
                        e.as_ref()
                            .is_ok_and(|e| e.path().extension().is_some_and(|x| x == "cwasm"))
                    })
                    .count()
            })
            .unwrap_or(0)
    };
    assert_eq!(artifacts(&cache), 0, "baseline code is not cached");

    let run = Running::start(&config, &[("SENTINELA_CACHE_DIR", cache.to_str().unwrap())]);
    let tiered = run.wait_for("the tier-up", Duration::from_secs(120), |e| {
        field(e, "monitor") == "steady"
            && field(e, "message") == "plugin tiered up: optimized code from now on"
    });
    assert_eq!(field(&tiered, "tier"), "optimized", "{tiered}");
    run.wait_until(
        "a task on the optimized code",
        Duration::from_secs(30),
        |events| {
            events
                .iter()
                .skip_while(|e| {
                    field(e, "message") != "plugin tiered up: optimized code from now on"
                })
                .any(|e| field(e, "monitor") == "steady" && field(e, "message") == "task finished")
        },
    );
    let (status, events) = run.terminate(Duration::from_secs(30));
    assert!(status.success(), "{}", dump(&events));
    assert_eq!(artifacts(&cache), 1, "the optimized code is cached");

    let (_, stdout, _) =
        output(sentinela(&["check", config.to_str().unwrap()]).env("SENTINELA_CACHE_DIR", &cache));
    assert!(stdout.contains("tier: optimized (Cranelift)"), "{stdout}");
}

/// A background compile does not hold the host's exit: SIGTERM stops it.
#[test]
fn a_background_compile_stops_with_the_host() {
    let dir = scratch_dir("tier-up-stop");
    let cache = dir.join("cache");
    let config = write_config(
        &dir,
        &format!(
            "monitors:\n  - name: python\n    plugin: {}\n",
            guest("sqs_backlog_py").display()
        ),
    );
    let run = Running::start(&config, &[("SENTINELA_CACHE_DIR", cache.to_str().unwrap())]);
    run.wait_for("the start", Duration::from_secs(120), |e| {
        field(e, "message") == "sentinela running"
    });
    let stopped = Instant::now();
    let (status, events) = run.terminate(Duration::from_secs(60));
    assert!(status.success(), "{}", dump(&events));
    // Cranelift takes far longer than this for the 19 MB Python component in a debug build.
    assert!(
        stopped.elapsed() < Duration::from_secs(10),
        "exit took {:?}:\n{}",
        stopped.elapsed(),
        dump(&events)
    );
    assert!(
        !events
            .iter()
            .any(|e| field(e, "message").starts_with("plugin tiered up")),
        "{}",
        dump(&events)
    );
}

/// A component the baseline compiler cannot take (here: a tail call, which Winch does not
/// support) goes straight to Cranelift, with one info line saying why.
#[test]
fn a_component_winch_cannot_compile_goes_to_cranelift() {
    let dir = scratch_dir("tier-fallback");
    let cache = dir.join("cache");
    let component = wat::parse_str(
        r#"(component
             (core module $m
               (func $f (result i32) (return_call $g))
               (func $g (result i32) i32.const 1)
               (export "f" (func $f)))
             (core instance (instantiate $m)))"#,
    )
    .unwrap();
    let plugin = dir.join("tail_call.wasm");
    std::fs::write(&plugin, component).unwrap();
    let config = write_config(
        &dir,
        &format!(
            "monitors:\n  - name: tail\n    plugin: {}\n",
            plugin.display()
        ),
    );
    let (status, stdout, stderr) = output(
        sentinela(&["--log-format", "json", "check", config.to_str().unwrap()])
            .env("SENTINELA_CACHE_DIR", &cache),
    );
    // It compiles (with Cranelift), then fails as what it is: not a monitor.
    assert!(!status.success());
    assert!(stdout.contains("does not export"), "{stdout}");
    let fallback: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("cannot run on the baseline tier"))
        .collect();
    assert_eq!(fallback.len(), 1, "{stderr}");
    assert!(fallback[0].contains("tail call"), "{stderr}");
    assert!(
        stderr
            .lines()
            .any(|l| l.contains("\"cache\":\"miss\"") && l.contains("\"tier\":\"optimized\"")),
        "{stderr}"
    );
}

/// A start does not wait on compiles: a monitor whose plugin the cache holds runs at once,
/// on its schedule, while a plugin the cache lacks compiles in the background; that monitor
/// joins when its plugin is ready, and `/readyz` says it is still compiling meanwhile.
#[test]
fn cached_monitors_run_while_the_others_compile() {
    let dir = scratch_dir("start-cached-first");
    let cache = dir.join("cache");
    let cached_only = config_for(&dir, "steady", &guest("steady"));
    check(&cached_only, &cache);
    let port = free_port();
    let config = write_config(
        &dir,
        &format!(
            "http:\n  listen: 127.0.0.1:{port}\nmonitors:\n  - name: steady\n    plugin: {}\n    \
             search_cron: \"* * * * * *\"\n  - name: python\n    plugin: {}\n    \
             search_cron: \"* * * * * *\"\n",
            guest("steady").display(),
            guest("sqs_backlog_py").display()
        ),
    );
    let run = Running::start(&config, &[("SENTINELA_CACHE_DIR", cache.to_str().unwrap())]);
    run.wait_for(
        "the background compile's start",
        Duration::from_secs(60),
        |e| field(e, "message").starts_with("compiling plugins the compile cache lacks"),
    );
    let readyz = http_get(port, "/readyz");
    let python_started = |e: &serde_json::Value| {
        field(e, "monitor") == "python"
            && field(e, "message") == "monitor started: its plugin is compiled"
    };
    run.wait_until(
        "the compiled monitor's first task",
        Duration::from_secs(180),
        |events| {
            events
                .iter()
                .any(|e| field(e, "monitor") == "python" && task_ended(e))
        },
    );
    let ready_after = http_get(port, "/readyz");
    let (status, events) = run.terminate(Duration::from_secs(30));
    assert!(status.success(), "{}", dump(&events));
    let before_python: Vec<_> = events.iter().take_while(|e| !python_started(e)).collect();
    let steady_tasks = before_python
        .iter()
        .filter(|e| field(e, "monitor") == "steady" && field(e, "message") == "task finished")
        .count();
    assert!(
        steady_tasks >= 1,
        "the cached monitor ran no task before the other's plugin was compiled:\n{}",
        dump(&events)
    );
    let started = events.iter().find(|e| python_started(e)).expect("started");
    assert_eq!(field(started, "tier"), "baseline", "{started}");
    // Probed as the compile started (a Winch compile of CPython takes over a second).
    // (Its search ends in an error here: no aws host plugin. It ran, which is the point.)
    assert_eq!(readyz.0, 503, "{readyz:?}");
    assert!(
        readyz.1.contains("plugins still compiling: python"),
        "{readyz:?}"
    );
    assert_eq!(ready_after.0, 200, "{ready_after:?}");
}

/// A fleet shares compiled code through `shared_cache_dir`: what one host compiled, a new host
/// loads (and keeps in its own cache) without compiling; an entry there that does not
/// authenticate is never loaded, and a shared directory others can write is not used at all.
#[test]
fn a_shared_cache_serves_other_hosts_and_is_authenticated_like_the_local_one() {
    let dir = scratch_dir("shared-cache");
    let shared = dir.join("shared");
    let config = write_config(
        &dir,
        &format!(
            "shared_cache_dir: {}\ncompile:\n  first_tier: optimized\nmonitors:\n  - name: \
             steady\n    plugin: {}\n",
            shared.display(),
            guest("steady").display()
        ),
    );
    let results = |stderr: &str| -> Vec<String> {
        cache_events(stderr)
            .iter()
            .map(|l| {
                let event: serde_json::Value = serde_json::from_str(l).unwrap();
                field(&event, "cache").to_owned()
            })
            .collect()
    };
    // Host A compiles and gives the fleet its code.
    let first = check(&config, &dir.join("host-a"));
    assert_eq!(results(&first), ["miss"], "{first}");
    let (check_file, artifact) = entry_of(&shared, &guest("steady"));
    assert!(artifact.exists() && check_file.exists());
    // Host B has never compiled it: it loads A's code from the shared directory.
    let second = check(&config, &dir.join("host-b"));
    assert_eq!(results(&second), ["shared_hit"], "{second}");

    // A forged artifact in the shared directory (same size, one byte changed) is refused by
    // a new host, which compiles its own code.
    let mut bytes = std::fs::read(&artifact).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    let forged = artifact.with_extension("forged");
    std::fs::write(&forged, &bytes).unwrap();
    chmod(&forged, 0o600);
    std::fs::rename(&forged, &artifact).unwrap();
    let fourth = check(&config, &dir.join("host-c"));
    assert_eq!(results(&fourth), ["invalid", "miss"], "{fourth}");
    assert!(fourth.contains("does not match its MAC"), "{fourth}");

    // A shared directory others can write is not read at all.
    chmod(&shared, 0o777);
    let fifth = check(&config, &dir.join("host-d"));
    assert!(fifth.contains("shared compile cache not used"), "{fifth}");
    assert_eq!(results(&fifth), ["bypassed", "miss"], "{fifth}");
    chmod(&shared, 0o700);
}

/// A task's last line: it finished, or it failed.
fn task_ended(event: &serde_json::Value) -> bool {
    let message = field(event, "message");
    message == "task finished" || message.starts_with("task failed")
}

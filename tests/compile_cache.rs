//! Compiled code is cached on disk: a second start does not recompile, and a corrupt entry
//! is recompiled rather than trusted.

mod common;

use common::*;

fn check(config: &std::path::Path, cache: &std::path::Path) -> String {
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

#[test]
fn second_start_loads_from_cache_and_corrupt_entries_are_recompiled() {
    let dir = scratch_dir("cache");
    let cache = dir.join("cache");
    let config = write_config(
        &dir,
        &format!(
            "monitors:\n  - name: blink\n    plugin: {}\n",
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

    // Flip one byte in the middle of the artifact: the checksum catches it.
    let mut entries: Vec<_> = std::fs::read_dir(&cache)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .collect();
    entries.sort();
    let extensions: Vec<_> = entries
        .iter()
        .map(|e| e.extension().unwrap().to_str().unwrap())
        .collect();
    assert_eq!(extensions, ["check", "cwasm"], "{entries:?}");
    let artifact = &entries[1];
    let mut bytes = std::fs::read(artifact).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    std::fs::write(artifact, &bytes).unwrap();
    let third = check(&config, &cache);
    assert!(
        third.contains("\"cache\":\"invalid\"") && third.contains("checksum mismatch"),
        "{third}"
    );
    assert!(
        third.contains("\"cache\":\"miss\""),
        "the corrupt entry was not recompiled:\n{third}"
    );

    // A truncated entry is no better.
    std::fs::write(artifact, &bytes[..100]).unwrap();
    let fourth = check(&config, &cache);
    assert!(
        fourth.contains("\"cache\":\"invalid\"")
            && fourth.contains("truncated entry")
            && fourth.contains("\"cache\":\"miss\""),
        "{fourth}"
    );

    // An artifact without its check file (a writer stopped between the two renames) is
    // never trusted: it is recompiled and rewritten.
    std::fs::remove_file(&entries[0]).unwrap();
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
            "monitors:\n  - name: blink\n    plugin: {}\n",
            guest("blink").display()
        ),
    );
    check(&config, &cache);
    // Same file name, different bytes: a new key, so a miss.
    let plugin = dir.join("blink.wasm");
    std::fs::copy(guest("steady"), &plugin).unwrap();
    let moved = write_config(&dir, "monitors:\n  - name: blink\n    plugin: blink.wasm\n");
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

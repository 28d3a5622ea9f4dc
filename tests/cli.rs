//! `check`, `inspect` and `invoke` on the shipped configs, and clear errors for bad input:
//! config files, host plugin names, plugin files.

mod common;

use common::*;

#[test]
fn check_accepts_every_shipped_config() {
    let configs: Vec<String> = std::fs::read_dir(repo_root().join("config"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    assert!(
        configs.len() >= 2,
        "config/ should hold the demo and at least one more example"
    );
    let mut args = vec!["check"];
    args.extend(configs.iter().map(String::as_str));
    // What sqs-scale-out.yaml's comments say to set: `run` (and so `check`) refuses an SQS
    // application queue without its credential, and a PostgreSQL store without its URL.
    let (status, stdout, stderr) = output(sentinela(&args).envs([
        ("AWS_APPLICATION_ACCESS_KEY_ID", "AKIAAPPLICATION00001"),
        ("AWS_APPLICATION_SECRET_ACCESS_KEY", "application-secret"),
        ("AWS_APPLICATION_REGION", "us-east-1"),
        (
            "SENTINELA_DATABASE_URL",
            "postgres://sentinela:secret@127.0.0.1:5432/sentinela",
        ),
    ]));
    assert!(status.success(), "check failed:\n{stdout}\n{stderr}");
    assert!(stdout.contains("monitor stuck-orders"), "{stdout}");
    assert!(
        stdout.contains("sentinela:plugin/log@0.1.0") || stdout.contains("imports:"),
        "{stdout}"
    );
    assert!(
        stdout.contains("credentials: MONITORING_READONLY"),
        "grants are listed:\n{stdout}"
    );
    assert!(
        stdout.contains(
            "warning: credential MONITORING_READONLY is not configured: set \
             AWS_MONITORING_READONLY_ACCESS_KEY_ID and AWS_MONITORING_READONLY_SECRET_ACCESS_KEY"
        ),
        "a granted credential without its variables is reported:\n{stdout}"
    );
}

#[test]
fn inspect_shows_world_imports_exports_and_size() {
    let plugin = guest("cert_expiry");
    let (status, stdout, stderr) = output(&mut sentinela(&["inspect", plugin.to_str().unwrap()]));
    assert!(status.success(), "{stderr}");
    assert!(
        stdout.contains("world:   sentinela:plugin/monitor@0.1.0"),
        "{stdout}"
    );
    assert!(stdout.contains("sentinela:plugin/log@0.1.0"), "{stdout}");
    assert!(
        stdout.contains("  sentinela:plugin/checks@0.1.0"),
        "{stdout}"
    );
    let size = std::fs::metadata(&plugin).unwrap().len();
    assert!(
        stdout.contains(&format!("size:    {size} bytes")),
        "{stdout}"
    );
}

#[test]
fn invoke_prints_json_results() {
    let dir = scratch_dir("invoke");
    let config = write_config(
        &dir,
        &format!(
            "monitors:\n  - name: blink\n    plugin: {}\n",
            guest("blink").display()
        ),
    );
    let config = config.to_str().unwrap();
    let (status, stdout, stderr) = output(&mut sentinela(&["invoke", config, "blink", "search"]));
    assert!(status.success(), "{stderr}");
    let issues: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let issue = &issues[0];
    assert!(
        issue["id"].as_str().unwrap().starts_with("window-"),
        "{stdout}"
    );
    assert!(issue["data"]["window"].is_u64(), "{stdout}");

    // An issue from an old window is solved; update refreshes data.
    let old = r#"{"id": "window-1", "data": {"window": 1}}"#;
    let (status, stdout, stderr) = output(&mut sentinela(&[
        "invoke",
        config,
        "blink",
        "is-solved",
        "--input",
        old,
    ]));
    assert!(status.success(), "{stderr}");
    assert_eq!(stdout.trim(), "true");
    let (status, stdout, stderr) = output(&mut sentinela(&[
        "invoke",
        config,
        "blink",
        "update",
        "--input",
        &format!("[{old}]"),
    ]));
    assert!(status.success(), "{stderr}");
    assert!(stdout.contains("seen_at_ms"), "{stdout}");

    let (status, _, stderr) = output(&mut sentinela(&["invoke", config, "nope", "search"]));
    assert!(!status.success());
    assert!(
        stderr.contains("no monitor named 'nope'") && stderr.contains("blink"),
        "{stderr}"
    );
    let (status, _, stderr) = output(&mut sentinela(&[
        "invoke",
        config,
        "blink",
        "is-solved",
        "--input",
        "[]",
    ]));
    assert!(!status.success());
    assert!(
        stderr.contains("--input must be one JSON issue"),
        "{stderr}"
    );
}

/// Runs `check` on a config and returns its combined output; asserts it failed.
fn check_fails(name: &str, yaml: &str, envs: &[(&str, &str)]) -> String {
    let dir = scratch_dir(name);
    let config = write_config(&dir, yaml);
    let (status, stdout, stderr) =
        output(sentinela(&["check", config.to_str().unwrap()]).envs(envs.iter().copied()));
    assert!(
        !status.success(),
        "check accepted a bad config:\n{stdout}\n{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    format!("{stdout}\n{stderr}")
}

fn monitor_yaml(plugin: &str, extra: &str) -> String {
    format!("monitors:\n  - name: m\n    plugin: {plugin}\n{extra}")
}

#[test]
fn config_errors_name_file_line_and_key() {
    let blink = guest("blink");
    let blink = blink.to_str().unwrap();

    let (status, stdout, _) = output(&mut sentinela(&["check", "/nonexistent/sentinela.yaml"]));
    assert!(!status.success());
    assert!(
        stdout.contains("error: cannot read config file /nonexistent/sentinela.yaml"),
        "{stdout}"
    );

    let out = check_fails("bad-yaml", "monitors: [\n  - name: x\n", &[]);
    assert!(
        out.contains("sentinela.yaml") && out.contains("line"),
        "{out}"
    );

    let out = check_fails(
        "unknown-key",
        &monitor_yaml(blink, "    search_crn: \"* * * * *\"\n"),
        &[],
    );
    assert!(
        out.contains("sentinela.yaml: monitors[0]: unknown field `search_crn`"),
        "{out}"
    );
    assert!(out.contains("line 4"), "{out}");

    let out = check_fails(
        "bad-cron",
        &monitor_yaml(blink, "    search_cron: \"61 * * * *\"\n"),
        &[],
    );
    assert!(
        out.contains("monitors[0].search_cron")
            && out.contains("invalid cron expression '61 * * * *'"),
        "{out}"
    );
    assert!(out.contains("line 4"), "{out}");

    let out = check_fails(
        "bad-limit",
        &monitor_yaml(blink, "    limits:\n      memory: 12 parsecs\n"),
        &[],
    );
    assert!(
        out.contains("monitors[0].limits.memory") && out.contains("invalid size unit"),
        "{out}"
    );

    let out = check_fails(
        "application",
        &monitor_yaml(blink, "    grants:\n      credentials: [application]\n"),
        &[],
    );
    assert!(
        out.contains("APPLICATION credential belongs to the host"),
        "{out}"
    );

    let out = check_fails(
        "dup",
        &format!("monitors:\n  - {{name: a, plugin: {blink}}}\n  - {{name: a, plugin: {blink}}}\n"),
        &[],
    );
    assert!(out.contains("duplicate monitor name 'a'"), "{out}");

    let out = check_fails("missing-plugin", &monitor_yaml("nowhere.wasm", ""), &[]);
    assert!(
        out.contains("monitors[0].plugin: plugin file") && out.contains("nowhere.wasm not found"),
        "{out}"
    );
    assert!(out.contains("line 2"), "{out}");
}

#[test]
fn host_plugin_names_are_checked() {
    let blink = guest("blink");
    let blink = blink.to_str().unwrap();
    let out = check_fails(
        "unknown-env",
        &monitor_yaml(blink, ""),
        &[("SENTINELA_PLUGINS", "aws, slack")],
    );
    assert!(
        out.contains("SENTINELA_PLUGINS")
            && out.contains("unknown host plugin 'slack'; known host plugins: aws"),
        "{out}"
    );

    let out = check_fails(
        "unknown-key-plugin",
        &format!("plugins: [kafka]\n{}", monitor_yaml(blink, "")),
        &[],
    );
    assert!(out.contains("sentinela.yaml: plugins: unknown host plugin 'kafka'; known host plugins: aws at line 1"), "{out}");

    // Grants that need `aws` without it enabled; the env var wins over the key.
    let grants = monitor_yaml(blink, "    grants:\n      credentials: [reader]\n");
    let out = check_fails("grants-need-aws", &grants, &[]);
    assert!(out.contains("SENTINELA_PLUGINS=aws"), "{out}");
    let out = check_fails(
        "env-wins",
        &format!("plugins: [aws]\n{grants}"),
        &[("SENTINELA_PLUGINS", " ")],
    );
    assert!(out.contains("SENTINELA_PLUGINS=aws"), "{out}");
    let dir = scratch_dir("grants-ok");
    let config = write_config(&dir, &grants);
    let (status, stdout, stderr) =
        output(sentinela(&["check", config.to_str().unwrap()]).env("SENTINELA_PLUGINS", " aws "));
    assert!(status.success(), "{stdout}\n{stderr}");
}

#[test]
fn bad_plugin_files_are_refused_clearly() {
    let dir = scratch_dir("bad-plugins");
    std::fs::write(dir.join("text.wasm"), "hello, I am not wasm").unwrap();
    std::fs::write(dir.join("core.wasm"), b"\0asm\x01\0\0\0").unwrap();
    std::fs::write(dir.join("truncated.wasm"), b"\0asm\x0d\0\x01\0\x07").unwrap();

    let out = check_fails(
        "text",
        &monitor_yaml(dir.join("text.wasm").to_str().unwrap(), ""),
        &[],
    );
    assert!(
        out.contains("text.wasm") && out.contains("not a WebAssembly file"),
        "{out}"
    );
    let out = check_fails(
        "core",
        &monitor_yaml(dir.join("core.wasm").to_str().unwrap(), ""),
        &[],
    );
    assert!(
        out.contains("a core WebAssembly module, not a component"),
        "{out}"
    );
    let out = check_fails(
        "truncated",
        &monitor_yaml(dir.join("truncated.wasm").to_str().unwrap(), ""),
        &[],
    );
    assert!(
        out.contains("truncated.wasm is not a valid component"),
        "{out}"
    );

    let other = guest("other_world");
    let out = check_fails(
        "other-world",
        &monitor_yaml(other.to_str().unwrap(), ""),
        &[],
    );
    assert!(
        out.contains("does not export sentinela:plugin/checks@0.1.0"),
        "{out}"
    );
    assert!(out.contains("acme:reports/report@1.0.0"), "{out}");
}

#[test]
fn an_import_of_a_disabled_host_plugin_names_the_interface_and_the_fix() {
    // sqs-backlog imports aws-call. Without the aws host plugin it loads (Python and JS
    // components import every interface), `check` warns, and every call is denied with the fix.
    let plugin = guest("sqs_backlog");
    let yaml = monitor_yaml(plugin.to_str().unwrap(), "");
    let dir = scratch_dir("needs-aws");
    let config = write_config(&dir, &yaml);
    let (status, stdout, stderr) = output(&mut sentinela(&["check", config.to_str().unwrap()]));
    assert!(status.success(), "{stdout}\n{stderr}");
    assert!(
        stdout.contains(
            "warning: imports sentinela:plugin/aws-call@0.1.0, which the 'aws' host plugin \
             provides; it is not enabled, so every call is denied: set SENTINELA_PLUGINS=aws"
        ),
        "{stdout}"
    );
    let (status, _, stderr) = output(&mut sentinela(&[
        "invoke",
        config.to_str().unwrap(),
        "m",
        "search",
    ]));
    assert!(!status.success());
    assert!(
        stderr.contains("denied: the 'aws' host plugin is not enabled: set SENTINELA_PLUGINS=aws"),
        "{stderr}"
    );

    let (status, stdout, stderr) =
        output(sentinela(&["check", config.to_str().unwrap()]).env("SENTINELA_PLUGINS", "aws"));
    assert!(status.success(), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("sentinela:plugin/aws-call@0.1.0")
            && !stdout.contains("it is not enabled")
            && stdout.contains("warning: imports aws-call but is granted no credentials"),
        "{stdout}"
    );
}

#[test]
fn trust_model_refusals_name_file_line_and_key() {
    let blink = guest("blink");
    let blink = blink.to_str().unwrap();
    let aws = [("SENTINELA_PLUGINS", "aws")];

    // Operations whose answer holds credentials (by AWS's models) cannot be granted; the
    // refusal names the member of the answer.
    for (name, grant, why) in [
        (
            "mint-sts",
            "sts:GetSessionToken",
            "answers with AWS keys (its answer's Credentials.SecretAccessKey",
        ),
        (
            "mint-s3",
            "s3:CreateSession",
            "answers with AWS keys (its answer's Credentials.SecretAccessKey",
        ),
        (
            "mint-iam",
            "iam:CreateAccessKey",
            "answers with AWS keys (its answer's AccessKey.SecretAccessKey",
        ),
        (
            "mint-ecr",
            "ecr:GetAuthorizationToken",
            "answers with a credential (its answer's authorizationData[].authorizationToken",
        ),
        (
            "mint-kms",
            "kms:GenerateDataKey",
            "answers with a credential (its answer's Plaintext",
        ),
    ] {
        let yaml = monitor_yaml(
            blink,
            &format!(
                "    grants:\n      credentials: [MONITORING]\n      aws: [\"sqs:ListQueues\", \"{grant}\"]\n"
            ),
        );
        let out = check_fails(name, &yaml, &aws);
        assert!(
            out.contains("sentinela.yaml: monitors[0].grants.aws")
                && out.contains(&format!("invalid aws grant '{grant}'"))
                && out.contains(why)
                && out.contains("can never be granted to a monitor")
                && out.contains("at line 6"),
            "{name}: {out}"
        );
    }

    // A name AWS's model does not have is refused, in any case.
    let yaml = monitor_yaml(
        blink,
        "    grants:\n      credentials: [MONITORING]\n      aws: [\"sts:assumerole\"]\n",
    );
    let out = check_fails("mint-lowercase", &yaml, &aws);
    assert!(out.contains("did you mean AssumeRole"), "{out}");

    // An operation whose answer AWS marks sensitive is granted by name, and `check` says what
    // the monitor receives with it.
    let yaml = monitor_yaml(
        blink,
        "    grants:\n      credentials: [MONITORING]\n      aws: [\"kms:Decrypt\"]\n",
    );
    let dir = scratch_dir("sensitive-note");
    let config = write_config(&dir, &yaml);
    let (_, stdout, stderr) = output(sentinela(&["check", config.to_str().unwrap()]).envs(aws));
    assert!(
        stdout.contains("note: kms:Decrypt returns Plaintext, which AWS's model marks sensitive"),
        "{stdout}{stderr}"
    );

    // The host's own queues are never a monitor's.
    for (name, queues) in [
        ("events-queue", "store:\n  events_queue: events\n"),
        (
            "application-queue",
            "application_queue:\n  type: plugin.aws.sqs\n  name: sentinela-app\n",
        ),
    ] {
        let yaml = format!(
            "{queues}queues:\n  events:\n    url: http://127.0.0.1:1/123456789012/sentinela-events\n    credential: MONITORING\n  app:\n    url: http://127.0.0.1:1/123456789012/sentinela-app\n    credential: MONITORING\n{}",
            monitor_yaml(
                blink,
                &format!(
                    "    grants:\n      credentials: [MONITORING]\n      queues: [{}]\n",
                    if name == "events-queue" {
                        "events"
                    } else {
                        "app"
                    }
                ),
            )
        );
        let out = check_fails(name, &yaml, &aws);
        let (key, says) = if name == "events-queue" {
            (
                "monitors[0].grants.queues",
                "the host's own queues are never granted",
            )
        } else {
            (
                "queues.app.url",
                "the application queue: the host's own queues are never",
            )
        };
        assert!(out.contains(key) && out.contains(says), "{name}: {out}");
    }
    // A second entry for the events queue's URL is refused too, granted or not.
    let yaml = format!(
        "store:\n  events_queue: events\nqueues:\n  events:\n    url: http://127.0.0.1:1/123456789012/sentinela-events\n    credential: MONITORING\n  alias:\n    url: https://sqs.us-east-1.amazonaws.com/123456789012/sentinela-events\n    credential: MONITORING\n{}",
        monitor_yaml(blink, "")
    );
    let out = check_fails("events-alias", &yaml, &aws);
    assert!(
        out.contains("queues.alias.url") && out.contains("store.events_queue"),
        "{out}"
    );

    // Secret values have one path: `secrets`.
    let yaml = monitor_yaml(
        blink,
        "    grants:\n      credentials: [MONITORING]\n      aws:\n        - op: \"secretsmanager:GetSecretValue\"\n          resources: [\"*\"]\n",
    );
    let out = check_fails("secret-read", &yaml, &aws);
    assert!(
        out.contains("monitors[0].grants.aws")
            && out.contains("secretsmanager:GetSecretValue reads secret values")
            && out.contains("declare the secret under the monitor's 'secrets:'"),
        "{out}"
    );

    // Resource patterns are ARNs; an empty list would allow nothing.
    let yaml = monitor_yaml(
        blink,
        "    grants:\n      credentials: [MONITORING]\n      aws:\n        - op: \"sqs:GetQueueAttributes\"\n          resources: [\"orders\"]\n",
    );
    let out = check_fails("bad-resource", &yaml, &aws);
    assert!(
        out.contains("invalid resource pattern 'orders'") && out.contains("line 8"),
        "{out}"
    );
    let yaml = monitor_yaml(
        blink,
        "    grants:\n      credentials: [MONITORING]\n      aws:\n        - {op: \"sqs:GetQueueAttributes\", resources: []}\n",
    );
    let out = check_fails("empty-resources", &yaml, &aws);
    assert!(out.contains("empty 'resources' list"), "{out}");

    // `env:` secrets may not read the host's credentials or database URL.
    for var in [
        "AWS_APPLICATION_SECRET_ACCESS_KEY",
        "AWS_MONITORING_ACCESS_KEY_ID",
        "AWS_MONITORING_SESSION_TOKEN",
        "SENTINELA_DATABASE_URL",
    ] {
        let yaml = monitor_yaml(
            blink,
            &format!("    secrets:\n      stolen: {{env: {var}}}\n"),
        );
        let out = check_fails("env-secret", &yaml, &[]);
        assert!(
            out.contains(&format!(
                "sentinela.yaml: monitors[0].secrets.stolen.env: '{var}' may not be read by a monitor"
            )) && out.contains("at line 5"),
            "{var}: {out}"
        );
    }
    let yaml = format!(
        "store:\n  type: postgres\n  url_env: MY_DB_URL\n{}",
        monitor_yaml(blink, "    secrets:\n      db: {env: MY_DB_URL}\n")
    );
    let out = check_fails("env-secret-url", &yaml, &[]);
    assert!(
        out.contains("'MY_DB_URL' may not be read by a monitor"),
        "{out}"
    );

    // A resource-scoped grant is accepted and shown; unusable grants are reported.
    let dir = scratch_dir("scoped-ok");
    let config = write_config(
        &dir,
        &monitor_yaml(
            blink,
            "    grants:\n      credentials: [MONITORING]\n      aws:\n        - \"sts:*\"\n        - {op: \"sqs:GetQueueAttributes\", resources: [\"arn:aws:sqs:*:*:orders-*\"]}\n",
        ),
    );
    let (status, stdout, stderr) =
        output(sentinela(&["check", config.to_str().unwrap()]).envs(aws));
    assert!(status.success(), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("sqs:GetQueueAttributes on [arn:aws:sqs:*:*:orders-*]"),
        "{stdout}"
    );
    assert!(
        stdout.contains(
            "warning: credentials are granted but the plugin does not import aws-call: never used"
        ) && stdout.contains(
            "warning: grants.aws entries are granted but the plugin does not import aws-call"
        ),
        "{stdout}"
    );
}

#[test]
fn limit_and_compile_keys_are_validated() {
    let blink = guest("blink");
    let blink = blink.to_str().unwrap();
    for (name, yaml, expected) in [
        (
            "issues-per-call",
            monitor_yaml(blink, "    limits:\n      issues_per_call: many\n"),
            "monitors[0].limits.issues_per_call",
        ),
        (
            "transfer-bytes",
            monitor_yaml(blink, "    limits:\n      transfer_bytes: 12 parsecs\n"),
            "invalid size unit",
        ),
        (
            "log-lines",
            monitor_yaml(blink, "    limits:\n      log_lines: -1\n"),
            "monitors[0].limits.log_lines",
        ),
        (
            "compile-timeout",
            format!("compile:\n  timeout: 0\n{}", monitor_yaml(blink, "")),
            "duration must be greater than zero",
        ),
        (
            "compile-unknown",
            format!("compile:\n  threads: 4\n{}", monitor_yaml(blink, "")),
            "unknown field `threads`",
        ),
    ] {
        let out = check_fails(name, &yaml, &[]);
        assert!(
            out.contains("sentinela.yaml") && out.contains(expected) && out.contains("line"),
            "{name}: {out}"
        );
    }
}

/// Configs built to hurt: refused quickly, every quoted value escaped and bounded, every
/// limit checked by `check` with its key instead of failing later in `run`.
#[test]
fn hostile_and_out_of_range_configs_are_refused_by_check() {
    let blink = guest("blink");
    let blink = blink.to_str().unwrap();

    // Nested a million deep: refused before the YAML parser sees it.
    let started = std::time::Instant::now();
    let out = check_fails("deep", &format!("monitors: {}", "[".repeat(1_000_000)), &[]);
    assert!(out.contains("nested more than 64 levels deep"), "{out}");
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
    let out = check_fails(
        "deep-policy",
        &format!(
            "credentials:\n  AUDIT:\n    source: MONITORING\n    assume_role:\n      role_arn: arn:aws:iam::123456789012:role/a\n      policy: {}\n{}",
            "{a: ".repeat(100_000),
            monitor_yaml(blink, "")
        ),
        &[],
    );
    assert!(out.contains("nested more than 64 levels deep"), "{out}");

    // A terminal escape and a newline in a value: quoted escaped, never raw.
    let out = check_fails(
        "escape",
        &format!(
            "monitors:\n  - name: \"bad\\e]0;pwned\\a\\n2026-01-01 INFO forged\"\n    plugin: {blink}\n"
        ),
        &[],
    );
    assert!(!out.contains('\x1b') && !out.contains('\x07'), "{out:?}");
    assert!(!out.contains("\n2026-01-01 INFO forged"), "{out}");
    assert!(out.contains("\\u{1b}"), "{out}");

    // A 3 MB value (under the 4 MiB file limit): the error stays short.
    let out = check_fails(
        "huge-value",
        &monitor_yaml(
            blink,
            &format!("    search_cron: \"{}\"\n", "9".repeat(3 << 20)),
        ),
        &[],
    );
    assert!(
        out.contains("search_cron"),
        "{}",
        &out[..out.len().min(2000)]
    );
    assert!(out.len() < 8 << 10, "{} bytes of error", out.len());

    let not_a_file = scratch_dir("a-directory");
    for (name, yaml, expected) in [
        (
            "instances",
            monitor_yaml(blink, "    limits:\n      instances: 0\n"),
            "monitors[0].limits.instances: 0 is out of range: 1 to 1000",
        ),
        (
            "table-elements",
            monitor_yaml(blink, "    limits:\n      table_elements: 4000000000\n"),
            "monitors[0].limits.table_elements: 4000000000 is out of range",
        ),
        (
            "store-path",
            format!("store:\n  path: /dev/null\n{}", monitor_yaml(blink, "")),
            "store.path: /dev/null is not a regular file",
        ),
        (
            "store-dir",
            format!(
                "store:\n  path: {}\n{}",
                not_a_file.display(),
                monitor_yaml(blink, "")
            ),
            "is not a regular file",
        ),
        (
            "cache-dir",
            format!("cache_dir: {blink}\n{}", monitor_yaml(blink, "")),
            "cache_dir: ",
        ),
        (
            "refresh-window",
            format!(
                "credentials:\n  AUDIT:\n    source: MONITORING\n    refresh_window: 1h\n    assume_role:\n      role_arn: arn:aws:iam::123456789012:role/a\n      duration: 30m\n{}",
                monitor_yaml(blink, "")
            ),
            "credentials.AUDIT: refresh_window (3600s) must be shorter than assume_role.duration (1800s)",
        ),
        (
            "compile-memory",
            format!("compile:\n  memory: 1MiB\n{}", monitor_yaml(blink, "")),
            "compile.memory: 1048576 bytes is out of range",
        ),
    ] {
        let out = check_fails(name, &yaml, &[]);
        assert!(
            out.contains("sentinela.yaml") && out.contains(expected),
            "{name}: {out}"
        );
    }
}

/// A monitor's `sha256:` pins its plugin file: another file is refused with both hashes,
/// before it is compiled; the right hash passes.
#[test]
fn a_pinned_plugin_with_another_hash_is_refused() {
    use sha2::{Digest, Sha256};
    let blink = guest("blink");
    let actual: String = Sha256::digest(std::fs::read(&blink).unwrap())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let wrong = "0".repeat(64);
    let out = check_fails(
        "pinned-wrong",
        &monitor_yaml(blink.to_str().unwrap(), &format!("    sha256: {wrong}\n")),
        &[],
    );
    assert!(
        out.contains(&format!(
            "has SHA-256 {actual}, but the config pins {wrong}"
        )),
        "{out}"
    );

    let dir = scratch_dir("pinned-right");
    let config = write_config(
        &dir,
        &monitor_yaml(
            blink.to_str().unwrap(),
            &format!("    sha256: {}\n", actual.to_uppercase()),
        ),
    );
    let (status, stdout, stderr) = output(&mut sentinela(&["check", config.to_str().unwrap()]));
    assert!(status.success(), "{stdout}\n{stderr}");

    let out = check_fails(
        "pinned-malformed",
        &monitor_yaml(blink.to_str().unwrap(), "    sha256: abc\n"),
        &[],
    );
    assert!(
        out.contains("monitors[0].sha256") && out.contains("64 hex digits"),
        "{out}"
    );
}

/// `check` refuses what `run` would refuse at start, with the same words, and warns about
/// what `run` would start with but probably should not.
#[test]
fn check_refuses_what_run_refuses_at_start() {
    let blink = guest("blink");
    let blink = blink.to_str().unwrap();
    let sqs = format!(
        "plugins: [aws]\napplication_queue:\n  type: plugin.aws.sqs\n  name: app\n{}",
        monitor_yaml(blink, "")
    );
    let postgres = format!(
        "store:\n  type: postgres\n  url_env: SENTINELA_TEST_NO_SUCH_URL\n{}",
        monitor_yaml(blink, "")
    );
    for (name, yaml, expected) in [
        (
            "no-application-credential",
            sqs.clone(),
            "application_queue: credential APPLICATION is not configured: set \
             AWS_APPLICATION_ACCESS_KEY_ID and AWS_APPLICATION_SECRET_ACCESS_KEY",
        ),
        (
            "no-postgres-url",
            postgres,
            "store: type postgres needs a connection URL: set store.url, or the \
             SENTINELA_TEST_NO_SUCH_URL variable",
        ),
    ] {
        let out = check_fails(name, &yaml, &[]);
        assert!(out.contains(expected), "{name}: {out}");
        let config = write_config(&scratch_dir(&format!("{name}-run")), &yaml);
        let (status, _, stderr) = output(&mut sentinela(&["run", config.to_str().unwrap()]));
        assert!(!status.success(), "{name}: run started");
        assert!(stderr.contains(expected), "{name}: {stderr}");
    }

    // With the credential but no region: an error; with a region, only the warning that a
    // SQLite store is for one process.
    let env = [
        ("AWS_APPLICATION_ACCESS_KEY_ID", "AKIAAPPLICATION00001"),
        ("AWS_APPLICATION_SECRET_ACCESS_KEY", "application-secret"),
    ];
    let out = check_fails("no-application-region", &sqs, &env);
    assert!(
        out.contains("application_queue: no region for credential APPLICATION"),
        "{out}"
    );
    let dir = scratch_dir("sqlite-shared");
    let config = write_config(&dir, &sqs);
    let (status, stdout, stderr) = output(
        sentinela(&["check", config.to_str().unwrap()])
            .envs(env)
            .env("AWS_APPLICATION_REGION", "us-east-1"),
    );
    assert!(status.success(), "{stdout}{stderr}");
    assert!(
        stdout.contains("warning:") && stdout.contains("the SQLite store is for one process"),
        "{stdout}"
    );
}

/// How docs/sdk-reference.md must write each public function of the SDKs: `module::name(`,
/// `Type::name(` or, for trait methods, `fn name(` in Rust; `Class.name(`, `name(self` for
/// `Monitor`'s methods and `name(` for module functions in Python.
fn sdk_functions() -> Vec<String> {
    let mut wanted = Vec::new();
    let rust = std::fs::read_to_string(repo_root().join("guests/sdk/src/lib.rs")).unwrap();
    let (mut module, mut owner, mut in_trait) = (None::<String>, None::<String>, false);
    for line in rust.lines() {
        let trimmed = line.trim_start();
        let word = |prefix: &str| {
            trimmed.strip_prefix(prefix).map(|rest| {
                rest.split(|c: char| !(c.is_alphanumeric() || c == '_'))
                    .next()
                    .unwrap()
                    .to_owned()
            })
        };
        if line.starts_with("pub mod ") {
            module = word("pub mod ");
        } else if line == "}" {
            (module, owner, in_trait) = (None, None, false);
        } else if trimmed.starts_with("impl") {
            // `impl Issue {`, `impl Sqs<'_> {`; trait impls (`... for ...`) are not API.
            owner = (!trimmed.contains(" for "))
                .then(|| word("impl ").filter(|w| !w.is_empty()))
                .flatten();
        } else if line.starts_with("pub trait ") {
            in_trait = true;
        } else if let Some(name) = word("pub fn ") {
            match (&owner, &module) {
                (Some(owner), _) => wanted.push(format!("{owner}::{name}(")),
                (None, Some(module)) => wanted.push(format!("{module}::{name}(")),
                (None, None) => wanted.push(format!("{name}(")),
            }
        } else if in_trait && let Some(name) = word("fn ") {
            wanted.push(format!("fn {name}("));
        }
        if line == "    }" {
            owner = None;
        }
    }
    let python =
        std::fs::read_to_string(repo_root().join("guests/python/sdk/sentinela_monitor.py"))
            .unwrap();
    let mut class = None::<String>;
    for line in python.lines() {
        if let Some(rest) = line.strip_prefix("class ") {
            class = Some(rest.split(['(', ':']).next().unwrap().to_owned());
        } else if let Some(rest) = line.strip_prefix("def ") {
            class = None;
            let name = rest.split('(').next().unwrap();
            if !name.starts_with('_') {
                wanted.push(format!("{name}("));
            }
        } else if let Some(rest) = line.strip_prefix("    def ") {
            let name = rest.split('(').next().unwrap();
            match class.as_deref() {
                _ if name.starts_with('_') => {}
                Some("Monitor") => wanted.push(format!("{name}(self")),
                Some(class) => wanted.push(format!("{class}.{name}(")),
                None => {}
            }
        }
    }
    // JavaScript: `Class.method(` for exported classes, `object.member(` for exported
    // objects, `name(` for exported functions; constructors are `new Class(`.
    let js =
        std::fs::read_to_string(repo_root().join("guests/js/sdk/sentinela_monitor.js")).unwrap();
    let mut owner = None::<String>;
    for line in js.lines() {
        let name_of = |rest: &str| {
            rest.split(|c: char| !(c.is_alphanumeric() || c == '_'))
                .next()
                .unwrap()
                .to_owned()
        };
        if let Some(rest) = line.strip_prefix("export class ") {
            owner = Some(name_of(rest));
        } else if let Some(rest) = line.strip_prefix("export const ") {
            owner = rest.ends_with("= {").then(|| name_of(rest));
        } else if let Some(rest) = line.strip_prefix("export function ") {
            owner = None;
            wanted.push(format!("{}(", name_of(rest)));
        } else if line.starts_with('}') {
            owner = None;
        } else if let (Some(owner), Some(member)) = (&owner, line.strip_prefix("  "))
            && !member.starts_with([' ', '/', '*', '}'])
        {
            let name = name_of(member);
            let is_member =
                member[name.len()..].starts_with('(') || member[name.len()..].starts_with(": (");
            if !name.is_empty() && is_member {
                wanted.push(if name == "constructor" {
                    format!("new {owner}(")
                } else {
                    format!("{owner}.{name}(")
                });
            }
        }
    }
    wanted
}

#[test]
fn the_sdk_reference_lists_every_public_function() {
    let reference = std::fs::read_to_string(repo_root().join("docs/sdk-reference.md")).unwrap();
    let wanted = sdk_functions();
    // The scanner itself must see the SDKs' shape, or this test checks nothing.
    for sample in [
        "settings::parse_or(",
        "Sqs::list_queues(",
        "Issue::new(",
        "fn is_solved(",
        "settings.parse(",
        "Aws.signed(",
        "is_solved(self",
        "export(",
        "Monitor.isSolved(",
        "settings.parse(",
        "queue.changeVisibility(",
        "new Aws(",
        "exportMonitor(",
    ] {
        assert!(
            wanted.iter().any(|w| w == sample),
            "{sample} not found in the SDKs: {wanted:?}"
        );
    }
    let missing: Vec<_> = wanted
        .iter()
        .filter(|w| !reference.contains(w.as_str()))
        .collect();
    assert!(
        missing.is_empty(),
        "docs/sdk-reference.md does not list: {missing:?}"
    );
}

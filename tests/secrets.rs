//! `secrets.get` against moto's Secrets Manager and SSM, and the host's environment: each
//! monitor reads exactly the secrets its config declares; values never reach the log.

mod common;

use common::*;

#[test]
fn monitors_read_their_declared_secrets_and_nothing_else() {
    let suffix = format!("{}", std::process::id());
    let arn = fixture_script("secrets_setup.py", &[&moto_endpoint(), &suffix])["arn"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(arn.contains(":eu-west-1:"), "{arn}");

    let dir = scratch_dir("secrets");
    let config = write_config(
        &dir,
        &format!(
            "monitors:
  - name: reader
    plugin: {reader}
    secrets:
      db_password: {{secretsmanager: db-creds-{suffix}, field: password, credential: secrets}}
      db_whole: {{secretsmanager: db-creds-{suffix}, credential: SECRETS}}
      remote: {{secretsmanager: \"{arn}\", field: token, credential: SECRETS}}
      api_token: {{ssm: /monitoring/token-{suffix}, credential: SECRETS}}
      webhook: {{env: WEBHOOK_URL}}
      missing_field: {{secretsmanager: db-creds-{suffix}, field: nope, credential: SECRETS}}
  - name: other
    plugin: {steady}
    secrets:
      other_secret: {{env: OTHER_SECRET}}
",
            reader = guest("secret_reader").display(),
            steady = guest("steady").display(),
        ),
    );
    let env = [
        ("SENTINELA_PLUGINS", "aws"),
        ("AWS_SECRETS_ACCESS_KEY_ID", "AKIASECRETS000000001"),
        ("AWS_SECRETS_SECRET_ACCESS_KEY", "secrets-reader-key"),
        ("AWS_SECRETS_REGION", "us-east-1"),
        ("WEBHOOK_URL", "https://hooks.example/T0-Hk4"),
        ("OTHER_SECRET", "other-monitor-Vv2"),
    ];
    let (outcomes, _, stderr) = invoke_search(&config, "reader", &env);
    let outcome = |name: &str| outcome(&outcomes, name);
    let password = format!("pw-{suffix}-Zq9");
    assert_eq!(outcome("db_password"), format!("ok: {password}"));
    assert_eq!(outcome("db_password again"), format!("ok: {password}"));
    assert!(
        outcome("db_whole").starts_with("ok: {") && outcome("db_whole").contains(&password),
        "{outcomes}"
    );
    assert_eq!(
        outcome("remote"),
        format!("ok: tok-{suffix}-Wx7"),
        "a secret by ARN in another region"
    );
    assert_eq!(
        outcome("api_token"),
        format!("ok: ssm-{suffix}-Kp3"),
        "an SSM SecureString, decrypted"
    );
    assert_eq!(outcome("webhook"), "ok: https://hooks.example/T0-Hk4");
    assert_eq!(
        outcome("missing_field"),
        format!("not found: secret db-creds-{suffix} has no field 'nope'")
    );
    assert_eq!(
        outcome("other_secret"),
        "denied: secret 'other_secret' is not declared for monitor 'reader'"
    );
    assert!(
        outcome("../etc/passwd").starts_with("denied: secret '../etc/passwd' is not declared"),
        "{outcomes}"
    );
    assert!(
        outcome("empty").starts_with("invalid: invalid secret name"),
        "{outcomes}"
    );
    assert!(
        outcome("huge").starts_with("invalid: invalid secret name"),
        "{outcomes}"
    );

    // One fetch per secret: the second read is a cache hit. Every get is audited, no value
    // logged; refused ones once per kind at the end of the call, with a count.
    let audits: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("secrets.get"))
        .collect();
    assert_eq!(audits.len(), 7, "{stderr}");
    let refused: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("refused calls") && l.contains("service=\"secrets\""))
        .collect();
    assert_eq!(refused.len(), 4, "{stderr}");
    assert!(
        refused
            .iter()
            .any(|l| l.contains("resource=\"other_secret\"")
                && l.contains("outcome=\"denied\"")
                && l.contains("count=1")),
        "{stderr}"
    );
    assert!(
        audits
            .iter()
            .filter(|l| l.contains("secret=db_password"))
            .any(|l| l.contains("cache=\"hit\"")),
        "{stderr}"
    );
    for value in [
        password.as_str(),
        "tok-",
        "ssm-",
        "T0-Hk4",
        "other-monitor-Vv2",
        "secrets-reader-key",
    ] {
        assert!(
            !stderr.contains(value),
            "a secret value reached the log: {value}\n{stderr}"
        );
    }

    // check shows where each secret comes from, never a value.
    let (status, stdout, _) = output(sentinela(&["check", config.to_str().unwrap()]).envs(env));
    assert!(status.success(), "{stdout}");
    assert!(stdout.contains(&format!("secret db_password: secretsmanager db-creds-{suffix} field password (credential SECRETS)")), "{stdout}");
    assert!(
        stdout.contains("secret webhook: env WEBHOOK_URL"),
        "{stdout}"
    );
    assert!(!stdout.contains(&password) && !stdout.contains("T0-Hk4"));
}

//! `sentinela grants MONITOR --from-audit LOG`: the smallest `grants:` block that covers what
//! a monitor called, read from the host's audit events (text or JSON logs), resources
//! included. What no grant can allow (an operation whose answer holds credentials, the
//! `APPLICATION` credential) is left out with a comment saying why.

use std::collections::{BTreeMap, BTreeSet};
use std::io::BufRead;
use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, Result};
use serde_json::Value;

use crate::config::values::CredentialName;
use crate::grants::AwsOperationGrant;

/// The audit events' tracing target (`crate::audit`).
const AUDIT_TARGET: &str = "sentinela::audit";

/// One monitor use of AWS read from an audit event.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Use {
    credential: String,
    service: String,
    operation: String,
    resource: String,
    /// The capability the call came through (`aws-call`, `queue`), when the log says.
    capability: String,
    outcome: String,
}

/// The uses of `monitor` in one log line, if it is one of its audit events.
fn use_of(line: &str, monitor: &str) -> Option<Use> {
    let fields = if line.trim_start().starts_with('{') {
        json_fields(line)?
    } else {
        text_fields(line)?
    };
    let get = |key: &str| fields.get(key).cloned().unwrap_or_default();
    if get("actor") != "monitor" || get("monitor") != monitor {
        return None;
    }
    Some(Use {
        credential: get("credential"),
        service: get("service"),
        operation: get("operation"),
        resource: get("resource"),
        capability: get("capability"),
        outcome: get("outcome"),
    })
}

/// The fields of a JSON log event (`--log-format json`): its own, and its spans' `capability`.
fn json_fields(line: &str) -> Option<BTreeMap<String, String>> {
    let event: Value = serde_json::from_str(line).ok()?;
    if event.get("target")?.as_str()? != AUDIT_TARGET {
        return None;
    }
    let text = |v: &Value| match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let mut fields: BTreeMap<String, String> = event
        .as_object()?
        .iter()
        .map(|(k, v)| (k.clone(), text(v)))
        .collect();
    let spans = event.get("spans").and_then(Value::as_array);
    for span in spans.into_iter().flatten() {
        if let Some(capability) = span.get("capability").and_then(Value::as_str) {
            fields.insert("capability".into(), capability.to_owned());
        }
    }
    Some(fields)
}

/// The fields of a text log line: `… host_call{capability="queue" …}: sentinela::audit: aws-call
/// actor="monitor" monitor="m" …`, values quoted as `Debug` writes them.
fn text_fields(line: &str) -> Option<BTreeMap<String, String>> {
    let line = strip_ansi(line);
    let marker = format!(" {AUDIT_TARGET}: ");
    let (spans, event) = line.split_once(&marker)?;
    let mut fields = key_values(event);
    if let Some(at) = spans.find("capability=") {
        let capability = key_values(&spans[at..]);
        if let Some(value) = capability.get("capability") {
            fields.insert("capability".into(), value.clone());
        }
    }
    Some(fields)
}

/// `key=value` and `key="quoted \"value\""` pairs of a text log line.
fn key_values(text: &str) -> BTreeMap<String, String> {
    let mut fields = BTreeMap::new();
    let mut rest = text;
    while let Some(eq) = rest.find('=') {
        let key_start = rest[..eq]
            .rfind(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .map_or(0, |i| i + 1);
        let key = rest[key_start..eq].to_owned();
        let after = &rest[eq + 1..];
        let (value, consumed) = if let Some(quoted) = after.strip_prefix('"') {
            let mut value = String::new();
            let mut chars = quoted.char_indices();
            let mut end = quoted.len();
            while let Some((i, c)) = chars.next() {
                match c {
                    '\\' => {
                        if let Some((_, next)) = chars.next() {
                            value.push(next);
                        }
                    }
                    '"' => {
                        end = i + 1;
                        break;
                    }
                    c => value.push(c),
                }
            }
            (value, 1 + end)
        } else {
            let end = after
                .find(|c: char| c.is_whitespace() || c == '}')
                .unwrap_or(after.len());
            (after[..end].to_owned(), end)
        };
        if !key.is_empty() {
            fields.insert(key, value);
        }
        rest = &after[consumed.min(after.len())..];
    }
    fields
}

/// A line without the terminal colour codes a log captured from a terminal carries.
fn strip_ansi(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// The `grants:` block for `uses`, as YAML, with a comment for each use it leaves out.
fn grants_block(monitor: &str, uses: &[Use]) -> String {
    let mut credentials = BTreeSet::new();
    // (service:Operation) → the resources of its uses; `None` once a use named none.
    let mut operations: BTreeMap<String, Option<BTreeSet<String>>> = BTreeMap::new();
    let mut queues = BTreeSet::new();
    let mut left_out = BTreeSet::new();
    for used in uses {
        if matches!(used.outcome.as_str(), "invalid" | "limit") {
            continue; // a malformed call: no grant makes it work
        }
        match CredentialName::parse(&used.credential) {
            Ok(name) if name.as_str() == CredentialName::APPLICATION => {
                left_out.insert("the APPLICATION credential is the host's own".to_owned());
                continue;
            }
            Ok(name) if used.capability != "queue" => {
                credentials.insert(name.to_string());
            }
            Ok(_) => {}
            Err(_) => continue,
        }
        if used.capability == "queue" {
            queues.insert(used.resource.clone());
            continue;
        }
        let entry = format!("{}:{}", used.service, used.operation);
        if let Err(why) = AwsOperationGrant::parse(&entry) {
            left_out.insert(why);
            continue;
        }
        let resources = operations
            .entry(entry)
            .or_insert_with(|| Some(BTreeSet::new()));
        match resources {
            Some(set) if !used.resource.is_empty() => {
                set.insert(used.resource.clone());
            }
            _ => *resources = None,
        }
    }
    let quote = |s: &str| serde_json::to_string(s).unwrap_or_default();
    let mut out = format!("# the grants monitor '{monitor}' used, from its audit events\n");
    out += "grants:\n";
    let names: Vec<String> = credentials.iter().map(|c| quote(c)).collect();
    out += &format!("  credentials: [{}]\n", names.join(", "));
    if operations.is_empty() {
        out += "  aws: []\n";
    } else {
        out += "  aws:\n";
    }
    for (entry, resources) in &operations {
        match resources {
            None => out += &format!("    - {}\n", quote(entry)),
            Some(set) => {
                let patterns: Vec<String> = set.iter().map(|r| quote(r)).collect();
                out += &format!(
                    "    - op: {}\n      resources: [{}]\n",
                    quote(entry),
                    patterns.join(", ")
                );
            }
        }
    }
    for queue in &queues {
        out += &format!(
            "# queue interface: {}: grant the name the 'queues:' section gives it\n",
            crate::guest_text::escape(queue)
        );
    }
    for why in &left_out {
        out += &format!("# left out: {}\n", crate::guest_text::escape(why));
    }
    out
}

/// The largest audit log read (a log of a busy host is bigger: give the monitor's lines).
const MAX_LOG_BYTES: u64 = 1 << 30;

/// `sentinela grants MONITOR --from-audit LOG`.
pub(super) fn grants_from_audit(monitor: &str, log: &Path) -> Result<ExitCode> {
    let file =
        std::fs::File::open(log).with_context(|| format!("cannot read {}", log.display()))?;
    let reader = std::io::BufReader::new(std::io::Read::take(file, MAX_LOG_BYTES));
    let mut uses = Vec::new();
    for line in reader.split(b'\n') {
        let line = line.with_context(|| format!("cannot read {}", log.display()))?;
        let line = String::from_utf8_lossy(&line);
        uses.extend(use_of(&line, monitor));
    }
    if uses.is_empty() {
        anyhow::bail!(
            "{} holds no audit event of monitor '{}' (target {AUDIT_TARGET}, actor monitor)",
            log.display(),
            crate::audit::shorten(monitor)
        );
    }
    print!("{}", grants_block(monitor, &uses));
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_and_json_audit_lines_are_read() {
        let text = "2026-12-07T03:40:29.910563Z  INFO invoke{monitor=\"m\"}:call{export=\"search\"}:host_call{capability=\"aws-call\" function=\"json\"}: sentinela::audit: aws-call actor=\"monitor\" monitor=\"m\" credential=\"MONITORING\" service=\"sqs\" operation=\"GetQueueAttributes\" resource=\"arn:aws:sqs:us-east-1:1:q\" status=200 outcome=\"ok\" latency_ms=1.3";
        let used = use_of(text, "m").unwrap();
        assert_eq!(used.operation, "GetQueueAttributes");
        assert_eq!(used.resource, "arn:aws:sqs:us-east-1:1:q");
        assert_eq!(used.capability, "aws-call");
        assert!(use_of(text, "other").is_none());
        let json = r#"{"timestamp":"t","level":"INFO","message":"refused calls","target":"sentinela::audit","actor":"monitor","monitor":"m","credential":"MONITORING","service":"kms","operation":"Decrypt","resource":"","outcome":"denied","count":2,"spans":[{"name":"call"}]}"#;
        let used = use_of(json, "m").unwrap();
        assert_eq!(
            (used.service.as_str(), used.outcome.as_str()),
            ("kms", "denied")
        );
        assert!(use_of("not a log line", "m").is_none());
    }

    #[test]
    fn the_block_is_the_smallest_that_covers_the_uses() {
        let used = |operation: &str, resource: &str| Use {
            credential: "MONITORING".into(),
            service: "sqs".into(),
            operation: operation.into(),
            resource: resource.into(),
            capability: "aws-call".into(),
            outcome: "ok".into(),
        };
        let uses = [
            used("GetQueueAttributes", "arn:aws:sqs:us-east-1:1:a"),
            used("GetQueueAttributes", "arn:aws:sqs:us-east-1:1:b"),
            used("GetQueueAttributes", "arn:aws:sqs:us-east-1:1:a"),
            used("ListQueues", ""),
            Use {
                service: "sts".into(),
                operation: "AssumeRole".into(),
                ..used("", "")
            },
            Use {
                credential: "APPLICATION".into(),
                ..used("ListQueues", "")
            },
        ];
        let block = grants_block("m", &uses);
        assert!(
            block.contains("  credentials: [\"MONITORING\"]\n"),
            "{block}"
        );
        assert!(
            block.contains("    - op: \"sqs:GetQueueAttributes\"\n      resources: [\"arn:aws:sqs:us-east-1:1:a\", \"arn:aws:sqs:us-east-1:1:b\"]\n"),
            "{block}"
        );
        assert!(block.contains("    - \"sqs:ListQueues\"\n"), "{block}");
        assert!(
            block.contains("# left out: invalid aws grant 'sts:AssumeRole'"),
            "{block}"
        );
        assert!(
            block.contains("# left out: the APPLICATION credential"),
            "{block}"
        );
        // What it prints is a grants block the config reads.
        let yaml: serde_yaml::Value = serde_yaml::from_str(&block).unwrap();
        let grants: crate::grants::Grants = serde_yaml::from_value(yaml["grants"].clone()).unwrap();
        assert_eq!(grants.aws.len(), 2);
    }
}

//! The properties the fuzz targets of `fuzz/` check, one function per parser of untrusted
//! input. Each calls the very function the host calls and panics when a property fails, so
//! libFuzzer reports the input; the unit tests below run every seed and every kept crash
//! input through them in the normal test suite.
//!
//! Structured inputs (an `aws-call` request, a pattern and a resource) are fields separated
//! by NUL bytes, lists one item per line: plain bytes that libFuzzer's mutations keep
//! readable, with no input-decoding dependency.

use std::path::Path;
use std::str::FromStr;

use percent_encoding::percent_decode_str;

use crate::aws::services::{Protocol, Service};
use crate::bindings::sentinela::plugin::aws_call::Request;
use crate::capabilities::aws_call::request::{self, Prepared};
use crate::config::Config;
use crate::config::values::Schedule;
use crate::grants::ResourcePattern;
use crate::guest_text;
use crate::message::{Message, Work};

/// A target's properties: panics when `data` breaks one.
pub type Property = fn(data: &[u8]);

/// The fuzz targets, by name: the name of the target in `fuzz/` and of its seed folder.
pub const TARGETS: &[(&str, Property)] = &[
    ("config", config),
    ("cron", cron),
    ("queue_message", queue_message),
    ("aws_call_request", aws_call_request),
    ("arn_pattern", arn_pattern),
    ("guest_text", guest_text),
    ("aws_answer", aws_answer),
    ("sns_message", sns_message),
];

/// The transport's default request cap, as the fuzzed requests are checked against.
const MAX_BODY: usize = 1 << 20;

fn text(data: &[u8]) -> Option<&str> {
    std::str::from_utf8(data).ok()
}

/// Whether `text` holds a character no log line or terminal should get raw.
fn has_unsafe(text: &str) -> bool {
    text.chars().any(guest_text::is_unsafe)
}

/// The config loader: never panics; an error is escaped and bounded, names the file, and
/// says where in it: a line, or the key path of what is wrong (`monitors[2].limits.memory`),
/// unless the problem is the file as a whole (its size; several YAML documents).
pub fn config(data: &[u8]) {
    const FILE: &str = "fuzz/sentinela.yaml";
    let Some(text) = text(data) else { return };
    let Err(e) = Config::parse(Path::new(FILE), text) else {
        return;
    };
    let message = e.to_string();
    assert!(!has_unsafe(&message), "unescaped error: {message:?}");
    assert!(
        message.chars().count() <= 1100,
        "error of {} characters",
        message.chars().count()
    );
    let rest = message
        .strip_prefix(FILE)
        .and_then(|rest| rest.strip_prefix(": "))
        .unwrap_or_else(|| panic!("the error does not name the file: {message:?}"));
    // `monitors[2].limits.memory: ...`, `application_queue.name is required ...`; a key of
    // the file's own (`credentials.NAME`) may hold any character.
    let key = rest.split([':', ' ']).next().unwrap_or_default();
    let section = key.split(['.', '[']).next().unwrap_or_default();
    let key_path = !section.is_empty()
        && section
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-".contains(c))
        && (key.contains(['.', '[']) || rest[key.len()..].starts_with(':'));
    // Where YAML reads several documents without a `---` marker, libyaml gives no position:
    // the file as a whole is named.
    let whole_file = rest.starts_with("the file is") || rest.contains("more than one document");
    assert!(
        key_path || rest.contains("line ") || whole_file,
        "the error says neither a line nor a key: {message:?}"
    );
}

/// A cron expression: parsed in bounded time (libFuzzer's `-timeout`), and one that parses
/// fires.
pub fn cron(data: &[u8]) {
    let Some(text) = text(data) else { return };
    if text.len() > 256 {
        return;
    }
    if let Ok(schedule) = Schedule::from_str(text) {
        let now = chrono::Utc::now();
        let next = schedule.next_after(now);
        assert!(
            next.is_some_and(|t| t > now),
            "{text:?} parses but never fires"
        );
    }
}

/// An application-queue body: exactly one outcome (work, dropped with a reason, dead
/// lettered with a reason); reasons are escaped and bounded; a parsed message round-trips
/// through the body the host sends.
pub fn queue_message(data: &[u8]) {
    let Some(body) = text(data) else { return };
    match Message::parse(body) {
        Err(invalid) => {
            let reason = invalid.to_string();
            assert!(!reason.is_empty());
            assert!(!has_unsafe(&reason), "unescaped reason: {reason:?}");
            // 300 characters of the body at most, each escaped in at most 10.
            assert!(
                reason.chars().count() <= 3001,
                "reason of {} chars",
                reason.len()
            );
        }
        Ok(message) => {
            let again = Message::parse(&message.to_json()).expect("the host's own body parses");
            assert_eq!(again, message, "the body sent does not say the same");
            match message.into_work() {
                Work::Tasks(tasks) | Work::Refresh(tasks) => {
                    assert!(!tasks.is_empty() && tasks.len() <= 2, "tasks {tasks:?}");
                }
                Work::Ignore(reason) => {
                    assert!(!has_unsafe(&reason), "unescaped reason: {reason:?}");
                    assert!(reason.chars().count() <= 641, "reason {reason:?}");
                }
                Work::Handle(..) | Work::SetEnabled(_) | Work::DropIssue(_) => {}
            }
        }
    }
}

/// Splits `data` into NUL-separated text fields (lossily: the fuzzer's bytes are text).
fn fields(data: &[u8]) -> Vec<String> {
    data.split(|b| *b == 0)
        .map(|f| String::from_utf8_lossy(f).into_owned())
        .collect()
}

/// One item per line, each split at its first `separator` (an item without one has an
/// empty value).
fn pairs(field: &str, separator: char) -> Vec<(String, String)> {
    field
        .lines()
        .filter(|line| !line.is_empty())
        .map(|line| match line.split_once(separator) {
            Some((k, v)) => (k.to_owned(), v.to_owned()),
            None => (line.to_owned(), String::new()),
        })
        .collect()
}

/// The service a fuzzed name stands for: its own, or one of the models picked by the name's
/// bytes, so every mutation still reaches a model.
fn service_for(name: &str) -> &'static Service {
    Service::find(name).unwrap_or_else(|| {
        let all = Service::all();
        let pick = name
            .bytes()
            .fold(0usize, |h, b| h.wrapping_mul(31) + b as usize);
        &all[pick % all.len()]
    })
}

/// An `aws-call` request (fields: service, region, then per protocol: JSON — operation and
/// input; query — action and `key=value` lines; REST — method, path, `key=value` query
/// lines, `name: value` header lines and the body). Whatever the guest sends, what the
/// grant check reads (operation and resources) is what the built request carries: the
/// request is parsed back and prepared again, and must say the same.
pub fn aws_call_request(data: &[u8]) {
    let f = fields(data);
    let field = |i: usize| f.get(i).map(String::as_str).unwrap_or("");
    let service = service_for(field(0));
    let region = match field(1) {
        "" => "us-east-1",
        region => region,
    };
    match service.protocol {
        Protocol::Json { target_prefix, .. } => {
            let Ok(prepared) = request::prepare_json(service, region, field(2), field(3), MAX_BODY)
            else {
                return;
            };
            let target = header(&prepared, "x-amz-target");
            assert_eq!(target, format!("{target_prefix}.{}", prepared.operation));
            let body = std::str::from_utf8(&prepared.outgoing.body).expect("a JSON body is text");
            let again = request::prepare_json(service, region, prepared.operation, body, MAX_BODY)
                .unwrap_or_else(|e| panic!("the body sent is refused: {e:?}"));
            assert_eq!(
                again.input, prepared.input,
                "the body sent says another input"
            );
            assert_eq!(again.resources, prepared.resources);
            assert_eq!(again.outgoing.body, prepared.outgoing.body);
        }
        Protocol::Query | Protocol::Ec2 => {
            let params = pairs(field(3), '=');
            let Ok(prepared) = request::prepare_query(service, region, field(2), &params, MAX_BODY)
            else {
                return;
            };
            let body = std::str::from_utf8(&prepared.outgoing.body).expect("a form body is text");
            let mut sent = form_pairs(body);
            assert_eq!(
                sent.first(),
                Some(&("Action".into(), prepared.operation.into()))
            );
            assert_eq!(
                sent.get(1),
                Some(&("Version".into(), service.api_version.into()))
            );
            sent.drain(..2);
            assert_eq!(sent, params, "the body sent carries other parameters");
            let again =
                request::prepare_query(service, region, prepared.operation, &sent, MAX_BODY)
                    .unwrap_or_else(|e| panic!("the parameters sent are refused: {e:?}"));
            assert_eq!(again.resources, prepared.resources);
        }
        Protocol::RestJson | Protocol::RestXml => {
            let request = Request {
                method: field(2).to_owned(),
                path: field(3).to_owned(),
                query: pairs(field(4), '='),
                headers: pairs(field(5), ':'),
                body: field(6).as_bytes().to_vec(),
            };
            let Ok(prepared) = request::prepare_rest(service, region, request.clone(), MAX_BODY)
            else {
                return;
            };
            let (path, query) = match prepared.outgoing.path_and_query.split_once('?') {
                Some((path, query)) => (path, form_pairs(query)),
                None => (prepared.outgoing.path_and_query.as_str(), Vec::new()),
            };
            assert_eq!(path, request.path, "the path sent is another");
            assert_eq!(query, request.query, "the query sent is another");
            let headers = prepared
                .outgoing
                .headers
                .iter()
                .map(|(k, v)| {
                    let value = String::from_utf8_lossy(v.as_bytes()).into_owned();
                    (k.to_string(), value)
                })
                .collect();
            let sent = Request {
                method: prepared.outgoing.method.to_string(),
                path: path.to_owned(),
                query,
                headers,
                body: prepared.outgoing.body.to_vec(),
            };
            let again = request::prepare_rest(service, region, sent, MAX_BODY)
                .unwrap_or_else(|e| panic!("the request sent is refused: {e:?}"));
            assert_eq!(
                again.operation, prepared.operation,
                "sent as another operation"
            );
            assert_eq!(again.resources, prepared.resources);
            assert_eq!(
                again.outgoing.path_and_query,
                prepared.outgoing.path_and_query
            );
        }
    }
}

fn header<'p>(prepared: &'p Prepared, name: &str) -> &'p str {
    prepared
        .outgoing
        .headers
        .iter()
        .find(|(k, _)| k.as_str() == name)
        .and_then(|(_, v)| v.to_str().ok())
        .unwrap_or_default()
}

/// `key=value&...` as AWS reads it: each key and value percent-decoded.
fn form_pairs(text: &str) -> Vec<(String, String)> {
    let decode = |s: &str| percent_decode_str(s).decode_utf8_lossy().into_owned();
    text.split('&')
        .map(|pair| match pair.split_once('=') {
            Some((k, v)) => (decode(k), decode(v)),
            None => (decode(pair), String::new()),
        })
        .collect()
}

/// IAM's wildcard match as written in the policy reference, by dynamic programming over
/// (pattern, text) positions: the reference the linear matcher must agree with.
fn reference_match(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    // row[j]: whether p[..i] matches t[..j], for the current i.
    let mut row = vec![false; t.len() + 1];
    row[0] = true;
    for &pc in &p {
        let mut next = vec![false; t.len() + 1];
        next[0] = row[0] && pc == '*';
        for j in 1..=t.len() {
            next[j] = match pc {
                '*' => row[j] || next[j - 1],
                '?' => row[j - 1],
                c => row[j - 1] && t[j - 1] == c,
            };
        }
        row = next;
    }
    row[t.len()]
}

/// An ARN pattern of a grant and a resource (two NUL-separated fields): the host's linear
/// matcher agrees with the reference matcher.
pub fn arn_pattern(data: &[u8]) {
    let f = fields(data);
    let (Some(pattern), Some(resource)) = (f.first(), f.get(1)) else {
        return;
    };
    // The reference is quadratic: keep it to inputs it answers quickly.
    if pattern.len() > 512 || resource.len() > 512 {
        return;
    }
    let Ok(parsed) = ResourcePattern::parse(pattern) else {
        return;
    };
    assert_eq!(
        parsed.matches(resource),
        reference_match(pattern, resource),
        "{pattern:?} on {resource:?}"
    );
}

/// Guest text escaping: no output holds a control, separator, bidi or invisible character;
/// each is bounded relative to its input; JSON stays the same JSON.
pub fn guest_text(data: &[u8]) {
    let Some(text) = text(data) else { return };
    let escaped = guest_text::escape(text);
    assert!(!has_unsafe(&escaped), "escape left {escaped:?}");
    // The longest escape, `\u{10ffff}`, is 10 bytes for a character of at least 1.
    assert!(escaped.len() <= text.len() * 10, "escape grew {text:?}");
    let max = data.first().copied().unwrap_or(0) as usize;
    let short = guest_text::shortened(text, max);
    assert!(!has_unsafe(&short));
    assert!(
        short.chars().count() <= max * 10 + 1,
        "shortened {text:?} to {short:?}"
    );
    let quoted = guest_text::Quoted(text).to_string();
    assert!(!has_unsafe(&quoted));
    let inner = &quoted[1..quoted.len() - 1];
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => assert!(chars.next().is_some(), "a dangling escape in {quoted:?}"),
            '"' => panic!("a raw quote inside {quoted:?}"),
            _ => {}
        }
    }
    for json in [
        serde_json::to_string(text).expect("a string serializes"),
        serde_json::to_string_pretty(&serde_json::json!({ "id": text, "data": [text] }))
            .expect("a value serializes"),
    ] {
        let safe = guest_text::json_for_terminal(&json);
        assert!(
            !safe
                .chars()
                .any(|c| guest_text::is_unsafe(c) && !matches!(c, '\n' | '\r' | '\t')),
            "json_for_terminal left {safe:?}"
        );
        let before: serde_json::Value = serde_json::from_str(&json).expect("valid JSON");
        let after: serde_json::Value =
            serde_json::from_str(&safe).expect("json_for_terminal keeps JSON valid");
        assert_eq!(before, after, "json_for_terminal changed the value");
    }
}

/// An AWS answer (the first two bytes the HTTP status, the rest the body): an error answer
/// is read into a bounded code and message, a body is scanned for credentials, whatever
/// the bytes.
pub fn aws_answer(data: &[u8]) {
    let status = match data {
        [a, b, ..] => 100 + u16::from_be_bytes([*a, *b]) % 500,
        _ => 400,
    };
    let body = data.get(2..).unwrap_or_default();
    let mut headers = http::HeaderMap::new();
    if let Some(line) = body.split(|b| *b == b'\n').next()
        && let Ok(value) = http::HeaderValue::from_bytes(line)
    {
        headers.insert("x-amzn-errortype", value);
    }
    let error = crate::aws::transport::service_error(status, &headers, body);
    assert!(!error.code.is_empty());
    assert!(error.code.chars().count() <= crate::aws::transport::MAX_ERROR_CODE_CHARS);
    assert!(error.message.chars().count() <= 1024);
    assert_eq!(error.status, status);
    if status >= 500 || status == 429 {
        assert!(error.retryable);
    }
    let _ = crate::aws::answers::credential_in(body);
}

/// An SNS message: no panic; one that is read names an `https` certificate on an SNS host.
pub fn sns_message(data: &[u8]) {
    let Some(message) = text(data) else { return };
    let Ok(signed) = crate::aws::sns::SignedMessage::parse(message) else {
        return;
    };
    assert_eq!(signed.certificate.scheme_str(), Some("https"));
    let host = signed.certificate.host().unwrap_or_default();
    assert!(host.starts_with("sns."), "certificate on {host}");
    assert!(signed.string_to_sign.ends_with('\n'));
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every seed and every kept crash input of `fuzz/`, through its target's properties.
    #[test]
    fn seeds_and_crash_inputs_hold_their_properties() {
        let fuzz = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz");
        let mut ran = 0;
        for (target, check) in TARGETS {
            for folder in ["seeds", "regressions"] {
                let Ok(entries) = std::fs::read_dir(fuzz.join(folder).join(target)) else {
                    continue;
                };
                for entry in entries {
                    let path = entry.unwrap().path();
                    let data = std::fs::read(&path).unwrap();
                    let outcome = std::panic::catch_unwind(|| check(&data));
                    assert!(outcome.is_ok(), "{target}: {} fails", path.display());
                    ran += 1;
                }
            }
        }
        assert!(
            ran >= TARGETS.len() * 2,
            "only {ran} inputs found under {fuzz:?}"
        );
    }

    #[test]
    fn the_reference_matcher_is_iams() {
        assert!(reference_match(
            "arn:aws:sqs:*:*:orders-*",
            "arn:aws:sqs:us-east-1:1:orders-a"
        ));
        assert!(reference_match("a?c", "abc"));
        assert!(!reference_match("a?c", "ac"));
        assert!(reference_match("*", ""));
        assert!(!reference_match("a*b", "a"));
    }
}

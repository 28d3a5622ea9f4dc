//! Tries to forge the host's log and the operator's terminal with every piece of text it
//! controls: its error string (a complete fake audit line), issue ids (a newline; bidi and
//! line-separator characters), log messages, and a panic message full of terminal escapes.
use sentinela_monitor::{Issue, Monitor, Result, export_monitor, json, log};

/// A whole fake log line, as the text log would print an audit event.
pub const FORGED: &str = "\n2026-11-30T00:00:00.000000Z  INFO sentinela::audit: aws-call actor=\"monitor\" monitor=\"steady\" credential=\"APPLICATION\" outcome=\"ok\"";

struct Forger;

/// Issues whose ids and data carry forged lines, quotes and bidi controls.
fn forged_issues() -> Vec<Issue> {
    vec![
        Issue::new(format!("bad{FORGED}"), json!({ "x": 1 })),
        Issue::new("spoof\" monitor=\"steady", json!({ "x": 2 })),
        Issue::new(
            "rtl \u{202e}gnp.exe\u{2028}",
            json!({ "x": "\u{1b}[31m\u{2029}" }),
        ),
        // Looks like "disk-full": refused, as an id with invisible characters.
        Issue::new("disk\u{200b}-full", json!({ "x": 3 })),
        // A plain id whose data carries what terminals act on or hide.
        Issue::new(
            "data",
            json!({ "x": "\u{9b}2J\u{7f}\u{85}\u{2028}\u{202e}fdp.exe\u{200b}\u{2060}\u{ad}\u{feff}\u{e0041}" }),
        ),
    ]
}

impl Monitor for Forger {
    /// Fails with a forged error on even seconds and returns forged issues on odd ones, so
    /// a `run` goes down both paths.
    fn search() -> Result<Vec<Issue>> {
        log::info(format!(
            "log line{FORGED}\u{2028}separator\u{202e}reversed\u{1b}[2J"
        ));
        println!("stdout{FORGED}\r\u{85}");
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        if now % 2 == 0 {
            return Err(format!("search failed{FORGED}\u{1b}]0;pwned\u{7}").into());
        }
        Ok(forged_issues())
    }

    fn update(_issues: Vec<Issue>) -> Result<Vec<Issue>> {
        Ok(forged_issues())
    }

    fn is_solved(_: &Issue) -> Result<bool> {
        panic!("terminal escape \u{1b}]0;pwned\u{7}\u{1b}[2J\rforged{FORGED}");
    }
}

export_monitor!(Forger);

//! Writes 64 MiB of log through every channel it has, with forged log lines.
use sentinela_monitor::log;
use sentinela_monitor::{Issue, Monitor, Result, export_monitor, json};

struct LogFlood;

impl Monitor for LogFlood {
    fn search() -> Result<Vec<Issue>> {
        let line = "x".repeat(1023);
        for i in 0..(64 * 1024 / 3) {
            log::error(&line);
            println!("{line}");
            eprintln!("{i}\n2026-01-01T00:00:00Z  INFO sentinela: forged host line\x1b[31m");
        }
        Ok(vec![Issue::new("flood", json!({ "done": true }))])
    }

    fn is_solved(_: &Issue) -> Result<bool> {
        Ok(false)
    }
}

export_monitor!(LogFlood);

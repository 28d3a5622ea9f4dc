//! {{name}}: a Sentinela monitor. `search` looks for problems and returns one issue per
//! problem; the host creates, updates and solves issues, and calls `is_solved` to ask whether
//! one is gone. Every call runs in a fresh instance: keep what `is_solved` needs in the
//! issue's data.
use sentinela_monitor::{Issue, Monitor, Result, export_monitor, json, log, settings};

struct {{type_name}};

/// Stands in for a real measurement: call AWS through `sentinela_monitor::aws::Aws`, read a
/// queue with `sentinela_monitor::queue`, ... (see the SDK reference).
fn used_percent() -> u64 {
    97
}

impl Monitor for {{type_name}} {
    fn search() -> Result<Vec<Issue>> {
        // `settings:` in the monitor's config entry; 90 when not set.
        let threshold: u64 = settings::parse_or("threshold", 90)?;
        let used = used_percent();
        log::info(format!("used {used}%, threshold {threshold}%"));
        if used <= threshold {
            return Ok(Vec::new());
        }
        Ok(vec![Issue::new(
            "sample",
            json!({ "used_percent": used, "threshold": threshold }),
        )])
    }

    fn is_solved(issue: &Issue) -> Result<bool> {
        let threshold = issue.data["threshold"].as_u64().ok_or("issue without a threshold")?;
        Ok(used_percent() <= threshold)
    }
}

export_monitor!({{type_name}});

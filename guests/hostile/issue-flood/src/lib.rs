//! Returns as many small, valid issues as its `count` secret says (default 1,000,000): a bug
//! as easy to write as "return every row of a table".
use sentinela_monitor::{Issue, Monitor, Result, export_monitor, json, secrets};

struct IssueFlood;

impl Monitor for IssueFlood {
    fn search() -> Result<Vec<Issue>> {
        let count = secrets::get("count")
            .ok()
            .and_then(|c| c.trim().parse().ok())
            .unwrap_or(1_000_000usize);
        Ok((0..count)
            .map(|i| Issue::new(format!("issue-{i}"), json!({ "n": i })))
            .collect())
    }

    fn is_solved(_: &Issue) -> Result<bool> {
        Ok(false)
    }
}

export_monitor!(IssueFlood);

//! Returns as many small, valid issues as its `count` secret says (default 1,000,000): a bug
//! as easy to write as "return every row of a table". It implements the WIT export directly
//! (no SDK `Issue` with a parsed JSON value per issue), so a million issues fit in its memory
//! and reach the host.
use sentinela_monitor::bindings::exports::sentinela::plugin::checks::{Guest, MessageKind};
use sentinela_monitor::bindings::sentinela::plugin::secrets;
use sentinela_monitor::bindings::sentinela::plugin::types::Issue;

struct IssueFlood;

impl Guest for IssueFlood {
    fn search() -> Result<Vec<Issue>, String> {
        let count = secrets::get("count")
            .ok()
            .and_then(|c| c.trim().parse().ok())
            .unwrap_or(1_000_000usize);
        Ok((0..count)
            .map(|i| Issue {
                id: format!("issue-{i}"),
                data: "{}".into(),
            })
            .collect())
    }

    fn update(_issues: Vec<Issue>) -> Result<Vec<Issue>, String> {
        Ok(Vec::new())
    }

    fn is_solved(_issue: Issue) -> Result<bool, String> {
        Ok(false)
    }

    fn handle(_kind: MessageKind, _payload: String) -> Result<(), String> {
        Ok(())
    }
}

sentinela_monitor::bindings::export!(IssueFlood with_types_in sentinela_monitor::bindings);

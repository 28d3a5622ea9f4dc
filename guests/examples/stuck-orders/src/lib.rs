//! Raises an issue for every order stuck in payment for more than 15 seconds, keeps its age
//! up to date, and solves it once the order completes.
//!
//! The "shop" is simulated from the clock so the example needs no credentials: order `n` is
//! placed at second `10 * n`; most orders complete within 2 s, every third takes 45 s.
use sentinela_monitor::{Issue, Monitor, Result, export_monitor, json};
use std::time::{SystemTime, UNIX_EPOCH};

const STUCK_AFTER: u64 = 15;

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn completes_after(order: u64) -> u64 {
    if order % 3 == 0 { 45 } else { 2 }
}

fn stuck_for(order: u64, now: u64) -> Option<u64> {
    let age = now.saturating_sub(order * 10);
    (age > STUCK_AFTER && age < completes_after(order)).then_some(age)
}

fn issue(order: u64, age: u64) -> Issue {
    Issue::new(
        format!("order-{order}"),
        json!({ "order": order, "stuck_seconds": age }),
    )
}

struct StuckOrders;

impl Monitor for StuckOrders {
    fn search() -> Result<Vec<Issue>> {
        let now = now();
        let recent = (now / 10).saturating_sub(10)..=now / 10;
        Ok(recent
            .filter_map(|order| stuck_for(order, now).map(|age| issue(order, age)))
            .collect())
    }

    fn update(issues: Vec<Issue>) -> Result<Vec<Issue>> {
        let now = now();
        let order = |i: &Issue| {
            i.data["order"]
                .as_u64()
                .ok_or("issue without an order number")
        };
        issues
            .iter()
            .map(|i| Ok(issue(order(i)?, now.saturating_sub(order(i)? * 10))))
            .collect()
    }

    fn is_solved(issue: &Issue) -> Result<bool> {
        let order = issue.data["order"]
            .as_u64()
            .ok_or("issue without an order number")?;
        Ok(stuck_for(order, now()).is_none())
    }
}

export_monitor!(StuckOrders);

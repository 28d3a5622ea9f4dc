//! Raises an issue for every order stuck in payment for more than `stuck_after_seconds`
//! (setting, default 15), keeps its age up to date, and solves it once the order completes.
//!
//! The "shop" is simulated from the clock so the example needs no credentials: order `n` is
//! placed at second `10 * n`; most orders complete within 2 s, every third takes 45 s.
use sentinela_monitor::{Issue, Monitor, Result, export_monitor, json, settings};
use std::time::{SystemTime, UNIX_EPOCH};

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn completes_after(order: u64) -> u64 {
    if order % 3 == 0 { 45 } else { 2 }
}

fn stuck_for(order: u64, now: u64) -> Result<Option<u64>> {
    let stuck_after: u64 = settings::parse_or("stuck_after_seconds", 15)?;
    let age = now.saturating_sub(order * 10);
    Ok((age > stuck_after && age < completes_after(order)).then_some(age))
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
        let mut found = Vec::new();
        for order in recent {
            if let Some(age) = stuck_for(order, now)? {
                found.push(issue(order, age));
            }
        }
        Ok(found)
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
        Ok(stuck_for(order, now())?.is_none())
    }
}

export_monitor!(StuckOrders);

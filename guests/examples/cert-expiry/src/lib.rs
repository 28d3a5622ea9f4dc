//! Raises an issue for every certificate of an inventory that expires within `warn_days`
//! (setting, default 30) days (or has expired), and solves it when the inventory shows a later
//! expiry date.
//!
//! The inventory ships inside the plugin here; a real deployment would read it through a
//! granted capability (e.g. ACM through `aws-call`).
use sentinela_monitor::{Issue, Monitor, Result, export_monitor, json, log, settings};
use std::time::{SystemTime, UNIX_EPOCH};

const INVENTORY: &[(&str, &str)] = &[
    ("api.example.com", "2026-12-05"),
    ("shop.example.com", "2027-09-30"),
    ("legacy.example.com", "2026-10-01"),
    ("vpn.example.com", "2027-01-10"),
];

/// Days since 1970-01-01 of a `YYYY-MM-DD` date (proleptic Gregorian).
fn days(date: &str) -> Option<i64> {
    let mut parts = date.splitn(3, '-').map(|p| p.parse::<i64>().ok());
    let (y, m, d) = (parts.next()??, parts.next()??, parts.next()??);
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (m + if m > 2 { -3 } else { 9 }) + 2) / 5 + d - 1;
    Some(era * 146_097 + yoe * 365 + yoe / 4 - yoe / 100 + doy - 719_468)
}

fn today() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64 / 86_400)
        .unwrap_or(0)
}

fn days_left(host: &str) -> Result<i64> {
    let (_, expires) = INVENTORY
        .iter()
        .find(|(h, _)| *h == host)
        .ok_or("certificate left the inventory")?;
    Ok(days(expires).ok_or("bad date in inventory")? - today())
}

fn warn_days() -> Result<i64> {
    settings::parse_or("warn_days", 30)
}

struct CertExpiry;

impl Monitor for CertExpiry {
    fn search() -> Result<Vec<Issue>> {
        let warn_days = warn_days()?;
        let mut found = Vec::new();
        for (host, expires) in INVENTORY {
            let left = days_left(host)?;
            if left <= warn_days {
                log::info(format!("{host} expires in {left} days"));
                found.push(Issue::new(
                    *host,
                    json!({ "host": host, "expires": expires, "days_left": left }),
                ));
            }
        }
        Ok(found)
    }

    fn is_solved(issue: &Issue) -> Result<bool> {
        let warn_days = warn_days()?;
        Ok(days_left(&issue.id)
            .map(|left| left > warn_days)
            .unwrap_or(true))
    }
}

export_monitor!(CertExpiry);

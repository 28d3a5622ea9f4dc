//! Raises an issue for every SQS queue holding more than `threshold` messages, keeps the count
//! up to date, and solves the issue when the backlog drains (or the queue is gone).
//!
//! Settings: `threshold` (default 5) and `queue_prefix` (only queues whose name starts with
//! it; default all). It uses the `MONITORING` credential, which its config must grant; the
//! host signs.
use sentinela_monitor::aws::Aws;
use sentinela_monitor::{Issue, Monitor, Result, export_monitor, json, settings};

const CREDENTIAL: &str = "MONITORING";

fn threshold() -> Result<u64> {
    settings::parse_or("threshold", 5)
}

fn backlog(queue_url: &str) -> Result<Issue> {
    let messages = Aws::new(CREDENTIAL)
        .sqs()
        .approximate_number_of_messages(queue_url)?;
    let name = queue_url.rsplit('/').next().unwrap_or(queue_url);
    Ok(Issue::new(
        name,
        json!({ "queue_url": queue_url, "messages": messages }),
    ))
}

struct SqsBacklog;

impl Monitor for SqsBacklog {
    fn search() -> Result<Vec<Issue>> {
        let prefix = settings::get("queue_prefix")?;
        let queues = Aws::new(CREDENTIAL).sqs().list_queues(prefix.as_deref())?;
        let threshold = threshold()?;
        let issues = queues
            .iter()
            .map(|url| backlog(url))
            .collect::<Result<Vec<_>>>()?;
        Ok(issues
            .into_iter()
            .filter(|i| i.data["messages"].as_u64() > Some(threshold))
            .collect())
    }

    fn update(issues: Vec<Issue>) -> Result<Vec<Issue>> {
        issues
            .iter()
            .filter_map(|i| i.data["queue_url"].as_str())
            .map(backlog)
            .filter(|r| r.is_ok())
            .collect()
    }

    fn is_solved(issue: &Issue) -> Result<bool> {
        let url = issue.data["queue_url"]
            .as_str()
            .ok_or("issue without a queue_url")?;
        match Aws::new(CREDENTIAL)
            .sqs()
            .approximate_number_of_messages(url)
        {
            Ok(messages) => Ok(messages <= threshold()?),
            Err(e) if e.to_string().starts_with("QueueDoesNotExist") => Ok(true),
            Err(e) => Err(e),
        }
    }
}

export_monitor!(SqsBacklog);

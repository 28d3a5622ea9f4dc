//! Makes the host write as much as it can for free until its deadline: empty log lines,
//! empty stdout and stderr lines, and host calls that are refused (an ungranted credential,
//! an undeclared secret, an ungranted queue), each of which makes the host write a line.
use sentinela_monitor::bindings::sentinela::plugin::aws_call;
use sentinela_monitor::{Issue, Monitor, Result, export_monitor, log, queue, secrets};

struct Noise;

impl Monitor for Noise {
    fn search() -> Result<Vec<Issue>> {
        loop {
            for _ in 0..1000 {
                log::info("");
                println!();
                eprintln!();
            }
            for _ in 0..1000 {
                let _ = aws_call::json("NOT_GRANTED", "sqs", None, "ListQueues", "{}");
                let _ = secrets::get("not-declared");
                let _ = queue::send("not-granted", "x");
            }
        }
    }

    fn is_solved(_: &Issue) -> Result<bool> {
        Ok(false)
    }
}

export_monitor!(Noise);

//! Panics.
use sentinela_monitor::{Issue, Monitor, Result, export_monitor};

struct Panic;

impl Monitor for Panic {
    fn search() -> Result<Vec<Issue>> {
        let reason = std::hint::black_box("hostile guest gives up");
        panic!("deliberate panic: {reason}");
    }

    fn is_solved(_: &Issue) -> Result<bool> {
        Ok(false)
    }
}

export_monitor!(Panic);

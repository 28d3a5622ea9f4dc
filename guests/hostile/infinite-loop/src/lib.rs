//! Never returns.
use sentinela_monitor::{Issue, Monitor, Result, export_monitor};

struct InfiniteLoop;

impl Monitor for InfiniteLoop {
    fn search() -> Result<Vec<Issue>> {
        let mut n = 0u64;
        loop {
            n = std::hint::black_box(n.wrapping_add(1));
        }
    }

    fn is_solved(_: &Issue) -> Result<bool> {
        Ok(false)
    }
}

export_monitor!(InfiniteLoop);

//! Recurses without end.
use sentinela_monitor::{Issue, Monitor, Result, export_monitor, json};

struct DeepRecursion;

#[inline(never)]
#[allow(unconditional_recursion)] // the point of this guest
fn dive(depth: u64) -> u64 {
    std::hint::black_box(dive(std::hint::black_box(depth + 1))) + 1
}

impl Monitor for DeepRecursion {
    fn search() -> Result<Vec<Issue>> {
        let depth = dive(0);
        Ok(vec![Issue::new("depth", json!({ "depth": depth }))])
    }

    fn is_solved(_: &Issue) -> Result<bool> {
        Ok(false)
    }
}

export_monitor!(DeepRecursion);

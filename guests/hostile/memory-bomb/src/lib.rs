//! Allocates until something stops it.
use sentinela_monitor::{Issue, Monitor, Result, export_monitor};

struct MemoryBomb;

impl Monitor for MemoryBomb {
    fn search() -> Result<Vec<Issue>> {
        let mut hoard: Vec<Vec<u8>> = Vec::new();
        loop {
            hoard.push(std::hint::black_box(vec![1u8; 1 << 20]));
        }
    }

    fn is_solved(_: &Issue) -> Result<bool> {
        Ok(false)
    }
}

export_monitor!(MemoryBomb);

//! Executes the wasm `unreachable` instruction.
use sentinela_monitor::{Issue, Monitor, Result, export_monitor};

struct Unreachable;

impl Monitor for Unreachable {
    fn search() -> Result<Vec<Issue>> {
        core::arch::wasm32::unreachable()
    }

    fn is_solved(_: &Issue) -> Result<bool> {
        Ok(false)
    }
}

export_monitor!(Unreachable);

//! The table the benchmark prints: one row per figure, ours beside the peer's.

#[derive(Default)]
pub struct Report {
    rows: Vec<Row>,
    notes: Vec<String>,
}

pub struct Row {
    pub what: String,
    pub ours: String,
    pub peer: String,
    pub target: String,
    /// `Some(true)`: target met; `Some(false)`: missed; `None`: informational.
    pub met: Option<bool>,
}

impl Report {
    pub fn row(
        &mut self,
        what: impl Into<String>,
        ours: impl Into<String>,
        peer: impl Into<String>,
        target: impl Into<String>,
        met: Option<bool>,
    ) {
        let row = Row {
            what: what.into(),
            ours: ours.into(),
            peer: peer.into(),
            target: target.into(),
            met,
        };
        eprintln!("  {}: {} | {}", row.what, row.ours, row.peer);
        self.rows.push(row);
    }

    pub fn note(&mut self, note: impl Into<String>) {
        self.notes.push(note.into());
    }

    /// Markdown, so a run can be pasted into docs/performance.md as is.
    pub fn print(&self) {
        println!();
        println!("| measure | sentinela host | peer / baseline | target | met |");
        println!("|---|---|---|---|---|");
        for row in &self.rows {
            let met = match row.met {
                Some(true) => "yes",
                Some(false) => "**no**",
                None => "",
            };
            println!(
                "| {} | {} | {} | {} | {met} |",
                row.what, row.ours, row.peer, row.target
            );
        }
        if !self.notes.is_empty() {
            println!();
            for note in &self.notes {
                println!("- {note}");
            }
        }
    }
}

/// The `p` quantile (0–1) of sorted samples.
pub fn quantile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

pub fn sorted(mut samples: Vec<f64>) -> Vec<f64> {
    samples.sort_by(f64::total_cmp);
    samples
}

//! How the CLI prints: aligned tables for people (Kafka's tools' column names, upper case), one
//! JSON document for scripts (`--json`), and progress lines on stderr so that stdout stays
//! parseable. Knows nothing of Kafka.

use std::io::Write;
use std::time::{Duration, Instant};

use serde_json::Value;

/// A table: a header row and rows of cells, printed with columns padded to their widest cell.
pub struct Table {
    header: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new(header: &[&str]) -> Table {
        Table { header: header.iter().map(|h| h.to_string()).collect(), rows: Vec::new() }
    }

    pub fn row(&mut self, cells: Vec<String>) {
        debug_assert_eq!(cells.len(), self.header.len());
        self.rows.push(cells);
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    pub fn render(&self) -> String {
        let mut widths: Vec<usize> = self.header.iter().map(|h| h.chars().count()).collect();
        for row in &self.rows {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(cell.chars().count());
            }
        }
        let mut out = String::new();
        for row in std::iter::once(&self.header).chain(&self.rows) {
            let mut line = String::new();
            for (i, (cell, w)) in row.iter().zip(&widths).enumerate() {
                if i + 1 == row.len() {
                    line.push_str(cell);
                } else {
                    line.push_str(&format!("{cell:<w$}  "));
                }
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }

    pub fn print(&self) {
        print!("{}", self.render());
    }
}

/// Prints one JSON document on stdout.
pub fn print_json(value: &Value) {
    println!("{}", serde_json::to_string_pretty(value).unwrap_or_else(|_| "null".into()));
}

/// Progress of a long operation on stderr, at most once a second, so a pipe of stdout stays clean.
pub struct Progress {
    what: &'static str,
    started: Instant,
    last: Instant,
    total: Option<u64>,
    shown: bool,
}

impl Progress {
    pub fn new(what: &'static str, total: Option<u64>) -> Progress {
        let now = Instant::now();
        Progress { what, started: now, last: now, total, shown: false }
    }

    /// Shows `done` if a second passed since the last line.
    pub fn update(&mut self, done: u64) {
        if self.last.elapsed() >= Duration::from_secs(1) {
            self.last = Instant::now();
            self.show(done);
        }
    }

    fn show(&mut self, done: u64) {
        self.shown = true;
        let elapsed = self.started.elapsed().as_secs_f64().max(0.001);
        let line = match self.total {
            Some(total) => format!("{}: {done}/{total} ({:.0}/s)", self.what, done as f64 / elapsed),
            None => format!("{}: {done} ({:.0}/s)", self.what, done as f64 / elapsed),
        };
        let _ = writeln!(std::io::stderr(), "{line}");
    }

    /// The last line, shown if any progress line was (or `always`).
    pub fn finish(&mut self, done: u64, always: bool) {
        if self.shown || always {
            self.show(done);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_table_pads_every_column_but_the_last() {
        let mut t = Table::new(&["TOPIC", "PARTITION", "LAG"]);
        t.row(vec!["orders".into(), "0".into(), "12".into()]);
        t.row(vec!["a".into(), "10".into(), "-".into()]);
        assert_eq!(t.render(), "TOPIC   PARTITION  LAG\norders  0          12\na       10         -\n");
    }
}

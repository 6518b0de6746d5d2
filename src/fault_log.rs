//! Rate-limited log lines for the broker's own faults (a full disk fails every append on every partition): the first line of a kind at once, then at most one per interval carrying the count left out. It decides nothing about the faults themselves.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Least time between two lines of one kind after the first.
pub const FAULT_LOG_INTERVAL: Duration = Duration::from_secs(10);

/// One kind of line (append failures, fetch failures).
#[derive(Debug)]
pub struct FaultLog {
    /// When the last line went out, and how many were left out since.
    state: Mutex<(Option<Instant>, u64)>,
}

impl FaultLog {
    pub const fn new() -> Self {
        Self { state: Mutex::new((None, 0)) }
    }

    /// Whether a line may go out at `now`: `Some(left_out)` with the number of lines suppressed
    /// since the last one, or `None` (counted as left out).
    pub fn allow(&self, now: Instant, interval: Duration) -> Option<u64> {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        match st.0 {
            Some(last) if now.saturating_duration_since(last) < interval => {
                st.1 += 1;
                None
            }
            _ => {
                let left_out = std::mem::take(&mut st.1);
                st.0 = Some(now);
                Some(left_out)
            }
        }
    }
}

impl Default for FaultLog {
    fn default() -> Self {
        Self::new()
    }
}

/// Appends that failed for the broker's own reasons (KAFKA_STORAGE_ERROR and the like).
pub static APPEND_FAULTS: FaultLog = FaultLog::new();
/// Fetches that failed for the broker's own reasons.
pub static FETCH_FAULTS: FaultLog = FaultLog::new();
/// A follower's failed appends of what it fetched (a full disk fails every one, on every fetch).
pub static FOLLOWER_APPEND_FAULTS: FaultLog = FaultLog::new();

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_line_goes_out_then_one_per_interval_with_the_count_left_out() {
        let log = FaultLog::new();
        let t0 = Instant::now();
        let step = Duration::from_millis(100);
        assert_eq!(log.allow(t0, step * 10), Some(0));
        for i in 1..10 {
            assert_eq!(log.allow(t0 + step * i, step * 10), None);
        }
        assert_eq!(log.allow(t0 + step * 10, step * 10), Some(9));
        assert_eq!(log.allow(t0 + step * 11, step * 10), None);
        assert_eq!(log.allow(t0 + step * 25, step * 10), Some(1));
    }
}

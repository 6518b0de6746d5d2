//! The process's CPU time, memory and open files, read from /proc at scrape time (Linux); zeros
//! where /proc cannot be read.

/// What the standard `process_*` metrics report.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct ProcessStats {
    pub cpu_seconds: f64,
    pub resident_memory_bytes: u64,
    pub virtual_memory_bytes: u64,
    pub open_fds: u64,
    pub start_time_seconds: f64,
}

/// Reads this process's stats. Blocks briefly on /proc (memory, not a disk).
pub fn read() -> ProcessStats {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else { return ProcessStats::default() };
    // SAFETY: sysconf has no preconditions.
    let (ticks, page) = unsafe { (libc::sysconf(libc::_SC_CLK_TCK), libc::sysconf(libc::_SC_PAGESIZE)) };
    let boot = std::fs::read_to_string("/proc/stat").ok().and_then(|s| s.lines().find_map(|l| l.strip_prefix("btime ").and_then(|v| v.trim().parse::<f64>().ok())));
    let mut stats = parse_stat(&stat, ticks.max(1) as f64, page.max(1) as u64, boot.unwrap_or(0.0)).unwrap_or_default();
    stats.open_fds = std::fs::read_dir("/proc/self/fd").map(|d| d.count() as u64).unwrap_or(0);
    stats
}

/// Fields of /proc/self/stat (see proc(5)): utime 14, stime 15, starttime 22, vsize 23, rss 24
/// (1-based), counted after the command name, which may hold spaces and parentheses.
fn parse_stat(stat: &str, ticks_per_second: f64, page_bytes: u64, boot_time_seconds: f64) -> Option<ProcessStats> {
    let after = &stat[stat.rfind(')')? + 1..];
    // after[0] is field 3 (state).
    let f: Vec<&str> = after.split_whitespace().collect();
    let field = |n: usize| f.get(n - 3).and_then(|v| v.parse::<u64>().ok());
    let cpu_ticks = field(14)? + field(15)?;
    Some(ProcessStats {
        cpu_seconds: cpu_ticks as f64 / ticks_per_second,
        resident_memory_bytes: field(24)? * page_bytes,
        virtual_memory_bytes: field(23)?,
        open_fds: 0,
        start_time_seconds: boot_time_seconds + field(22)? as f64 / ticks_per_second,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_are_read_after_a_command_name_with_spaces_and_parentheses() {
        let stat = "1234 (fj (o) rd) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 8 0 1000 123456789 2048 18446744073709551615";
        let s = parse_stat(stat, 100.0, 4096, 1_700_000_000.0).expect("parsed");
        assert_eq!(s.cpu_seconds, 3.0);
        assert_eq!(s.resident_memory_bytes, 2048 * 4096);
        assert_eq!(s.virtual_memory_bytes, 123_456_789);
        assert_eq!(s.start_time_seconds, 1_700_000_010.0);
        assert!(parse_stat("garbage", 100.0, 4096, 0.0).is_none());
    }

    #[test]
    fn this_process_has_memory_and_open_files() {
        let s = read();
        assert!(s.resident_memory_bytes > 0 && s.open_fds > 0, "{s:?}");
    }
}

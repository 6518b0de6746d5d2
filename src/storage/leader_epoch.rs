//! The leader epoch cache of one partition, kept in `leader-epoch-checkpoint` in Kafka's format
//! (version 0, entry count, then `epoch start_offset` lines): which leader epoch wrote which
//! offsets. It answers OffsetForLeaderEpoch and stamps appended batches. It never reads the log.

use std::io;
use std::path::Path;

use super::checkpoint;
use super::io::FileIo;

pub const LEADER_EPOCH_CHECKPOINT: &str = "leader-epoch-checkpoint";
/// The epoch a single broker leads every partition in, from creation on: no other broker can
/// take a partition over. Metadata, ListOffsets and Fetch report and check it.
pub const SINGLE_BROKER_LEADER_EPOCH: i32 = 0;
/// OffsetForLeaderEpoch's answer for an epoch this log does not know (Kafka's UNDEFINED_EPOCH
/// and UNDEFINED_EPOCH_OFFSET).
pub const UNDEFINED_EPOCH: i32 = -1;
pub const UNDEFINED_EPOCH_OFFSET: i64 = -1;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LeaderEpochCache {
    /// (epoch, first offset written under it), both increasing.
    entries: Vec<(i32, i64)>,
}

impl LeaderEpochCache {
    pub fn load(io: &dyn FileIo, dir: &Path) -> io::Result<Self> {
        let Some(bytes) = checkpoint::read_small(io, &dir.join(LEADER_EPOCH_CHECKPOINT))? else {
            return Ok(Self::default());
        };
        let bad = |why: &str| io::Error::new(io::ErrorKind::InvalidData, format!("{LEADER_EPOCH_CHECKPOINT} in {}: {why}", dir.display()));
        let text = String::from_utf8(bytes).map_err(|_| bad("not text"))?;
        let mut lines = text.lines();
        if lines.next() != Some("0") {
            return Err(bad("unknown version"));
        }
        let count: usize = lines.next().and_then(|l| l.trim().parse().ok()).ok_or_else(|| bad("bad count"))?;
        let mut entries = Vec::with_capacity(count.min(1024));
        for line in lines.by_ref().take(count) {
            let mut f = line.split_whitespace();
            let epoch = f.next().and_then(|v| v.parse().ok()).ok_or_else(|| bad("bad epoch"))?;
            let offset = f.next().and_then(|v| v.parse().ok()).ok_or_else(|| bad("bad offset"))?;
            entries.push((epoch, offset));
        }
        if entries.len() != count {
            return Err(bad("fewer entries than counted"));
        }
        Ok(Self { entries })
    }

    fn store(&self, io: &dyn FileIo, dir: &Path) -> io::Result<()> {
        let mut text = format!("0\n{}\n", self.entries.len());
        for (e, o) in &self.entries {
            text.push_str(&format!("{e} {o}\n"));
        }
        checkpoint::write_atomic(io, &dir.join(LEADER_EPOCH_CHECKPOINT), text.as_bytes())
    }

    /// The epoch appends are stamped with; None before any leader was recorded.
    pub fn latest_epoch(&self) -> Option<i32> {
        self.entries.last().map(|(e, _)| *e)
    }

    /// Records that `epoch` leads from `start_offset` on (durably). Ignored unless it is newer
    /// than the latest epoch.
    pub fn assign(&mut self, io: &dyn FileIo, dir: &Path, epoch: i32, start_offset: i64) -> io::Result<()> {
        if self.latest_epoch().is_some_and(|e| e >= epoch) {
            return Ok(());
        }
        self.entries.push((epoch, start_offset));
        self.store(io, dir)
    }

    /// Forgets the epochs that start at or after `end_offset` (the log was truncated there), and
    /// stores what is left. Nothing to forget writes nothing.
    pub fn truncate_from_end(&mut self, io: &dyn FileIo, dir: &Path, end_offset: i64) -> io::Result<()> {
        let keep = self.entries.iter().take_while(|(_, start)| *start < end_offset).count();
        if keep == self.entries.len() {
            return Ok(());
        }
        self.entries.truncate(keep);
        self.store(io, dir)
    }

    /// OffsetForLeaderEpoch: the largest known epoch <= `epoch`, with the offset where the next
    /// epoch began (the log end offset for the latest). An epoch newer than the latest (or -1) is
    /// undefined; one older than the first ends where the first began, as Kafka answers.
    pub fn end_offset_for(&self, epoch: i32, log_end_offset: i64) -> (i32, i64) {
        let Some(i) = self.entries.iter().rposition(|(e, _)| *e <= epoch) else {
            return match self.entries.first() {
                Some((_, first_start)) if epoch >= 0 => (epoch, *first_start),
                _ => (UNDEFINED_EPOCH, UNDEFINED_EPOCH_OFFSET),
            };
        };
        match self.entries.get(i + 1) {
            Some((_, next_start)) => (self.entries[i].0, *next_start),
            None if epoch == self.entries[i].0 => (epoch, log_end_offset),
            None => (UNDEFINED_EPOCH, UNDEFINED_EPOCH_OFFSET),
        }
    }

    /// Where a follower whose log ends at `log_end` cuts it after its leader answered
    /// OffsetForLeaderEpoch for the follower's latest epoch with (`leader_epoch`, `leader_end`):
    /// Kafka's follower rule (KIP-101/279). When the leader's epoch is one this log does not
    /// know, the cut is where this log's own epoch <= it ended, and the follower asks again with
    /// its new latest epoch (`complete` false), until both agree on an epoch.
    pub fn divergence(&self, log_end: i64, high_watermark: i64, leader_epoch: i32, leader_end: i64) -> Divergence {
        // An incomplete answer cuts even at the log end: the epochs that begin there (an epoch
        // led without a record written) must be forgotten, or the next question would ask about
        // the same latest epoch forever.
        let cut = |offset: i64, complete: bool| Divergence { truncate_to: (offset < log_end || (!complete && offset == log_end)).then_some(offset.max(0)), complete };
        if self.latest_epoch().is_none() || leader_end == UNDEFINED_EPOCH_OFFSET {
            // No epochs to compare (a log from before epochs, or a leader that knows none of
            // ours): keep only what was committed.
            return cut(high_watermark, true);
        }
        if leader_epoch == UNDEFINED_EPOCH {
            return cut(leader_end, true);
        }
        match self.end_offset_for(leader_epoch, log_end) {
            (UNDEFINED_EPOCH, _) => cut(leader_end, true),
            (local, local_end) if local != leader_epoch => cut(local_end, false),
            _ => cut(leader_end, true),
        }
    }
}

/// A follower's truncation decision: where to cut (None: keep the whole log), and whether the
/// follower and leader now agree (else it asks the leader again after cutting).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Divergence {
    pub truncate_to: Option<i64>,
    pub complete: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::io::StdIo;

    #[test]
    fn truncation_forgets_epochs_that_start_past_the_new_end() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut c = LeaderEpochCache::default();
        for (epoch, start) in [(0, 0), (2, 10), (5, 20)] {
            c.assign(&StdIo, dir.path(), epoch, start).expect("assign");
        }
        c.truncate_from_end(&StdIo, dir.path(), 20).expect("truncate");
        assert_eq!(c.latest_epoch(), Some(2), "epoch 5 began at 20, which is gone");
        c.truncate_from_end(&StdIo, dir.path(), 11).expect("truncate");
        assert_eq!(c.latest_epoch(), Some(2), "epoch 2 still has offset 10");
        let reloaded = LeaderEpochCache::load(&StdIo, dir.path()).expect("load");
        assert_eq!(reloaded.latest_epoch(), Some(2), "stored");
        assert_eq!(reloaded.end_offset_for(2, 11), (2, 11));
    }

    #[test]
    fn epochs_answer_with_the_start_of_the_next_epoch_or_the_log_end() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut c = LeaderEpochCache::default();
        assert_eq!(c.end_offset_for(0, 10), (UNDEFINED_EPOCH, UNDEFINED_EPOCH_OFFSET));
        c.assign(&StdIo, dir.path(), 0, 0).expect("assign");
        c.assign(&StdIo, dir.path(), 3, 40).expect("assign");
        c.assign(&StdIo, dir.path(), 2, 50).expect("an older epoch is ignored");
        assert_eq!(c.end_offset_for(0, 99), (0, 40));
        assert_eq!(c.end_offset_for(2, 99), (0, 40), "the largest known epoch below");
        assert_eq!(c.end_offset_for(3, 99), (3, 99));
        assert_eq!(c.end_offset_for(4, 99), (UNDEFINED_EPOCH, UNDEFINED_EPOCH_OFFSET), "newer than the leader");
        assert_eq!(LeaderEpochCache::load(&StdIo, dir.path()).expect("load"), c, "durable");
        assert_eq!(std::fs::read_to_string(dir.path().join(LEADER_EPOCH_CHECKPOINT)).expect("read"), "0\n2\n0 0\n3 40\n", "Kafka's format");
        c.truncate_from_end(&StdIo, dir.path(), 0).expect("truncate");
        c.assign(&StdIo, dir.path(), 3, 40).expect("assign");
        assert_eq!(c.end_offset_for(1, 99), (1, 40), "older than the first: where the first began");
        assert_eq!(c.end_offset_for(-1, 99), (UNDEFINED_EPOCH, UNDEFINED_EPOCH_OFFSET));
    }

    fn cache(entries: &[(i32, i64)]) -> LeaderEpochCache {
        LeaderEpochCache { entries: entries.to_vec() }
    }

    #[test]
    fn a_follower_keeps_what_its_leader_has_in_the_same_epoch() {
        let f = cache(&[(0, 0), (2, 10)]);
        assert_eq!(f.divergence(15, 12, 2, 20), Divergence { truncate_to: None, complete: true }, "the leader's epoch 2 goes on past ours");
        assert_eq!(f.divergence(15, 12, 2, 13), Divergence { truncate_to: Some(13), complete: true }, "epoch 2 ended at 13 on the leader");
    }

    #[test]
    fn a_tail_written_in_an_epoch_the_leader_never_had_is_cut_in_steps() {
        // The follower led epoch 2 and wrote 10..15 that nobody copied; the leader wrote
        // 10..20 in epoch 1, which the follower never saw. The leader's answer for epoch 2 is
        // (1, 20): past our end, but the records differ from 10 on.
        let mut f = cache(&[(0, 0), (2, 10)]);
        let first = f.divergence(15, 8, 1, 20);
        assert_eq!(first, Divergence { truncate_to: Some(10), complete: false }, "cut where our epoch <= 1 (epoch 0) ended, then ask again");
        f.entries.truncate(1);
        assert_eq!(f.divergence(10, 8, 0, 10), Divergence { truncate_to: None, complete: true }, "epoch 0 agrees up to 10");
    }

    #[test]
    fn an_epoch_led_without_records_is_forgotten_so_the_next_question_moves_on() {
        // The follower wrote in epoch 0 only, then led epoch 2 without a record. The leader
        // never had epoch 2; its largest epoch <= 2 is 1, which it led without a record either,
        // ending at 10: the follower's end.
        let mut f = cache(&[(0, 0), (2, 10)]);
        let first = f.divergence(10, 10, 1, 10);
        assert_eq!(first, Divergence { truncate_to: Some(10), complete: false }, "cut at the end: epoch 2 is forgotten");
        f.entries.retain(|(_, start)| *start < 10);
        assert_eq!(f.latest_epoch(), Some(0), "the next question is about epoch 0");
        assert_eq!(f.divergence(10, 10, 0, 10), Divergence { truncate_to: None, complete: true });
    }

    #[test]
    fn without_comparable_epochs_a_follower_keeps_what_was_committed() {
        assert_eq!(cache(&[]).divergence(15, 7, 3, 40), Divergence { truncate_to: Some(7), complete: true });
        assert_eq!(cache(&[(4, 0)]).divergence(15, 7, UNDEFINED_EPOCH, UNDEFINED_EPOCH_OFFSET), Divergence { truncate_to: Some(7), complete: true });
        assert_eq!(cache(&[(4, 0)]).divergence(15, 7, UNDEFINED_EPOCH, 9), Divergence { truncate_to: Some(9), complete: true }, "an answer without an epoch");
        assert_eq!(cache(&[(4, 5)]).divergence(15, 7, 2, 30), Divergence { truncate_to: None, complete: true }, "we know no epoch <= 2: min(leader end, ours)");
    }

    #[test]
    fn a_malformed_checkpoint_is_an_error_not_an_empty_cache() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join(LEADER_EPOCH_CHECKPOINT), "0\n2\n0 0\n").expect("write");
        assert!(LeaderEpochCache::load(&StdIo, dir.path()).is_err());
    }
}

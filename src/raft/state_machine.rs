//! openraft's state machine adapter over Fjord's [`StateMachine`] trait, with the latest snapshot
//! kept on disk (`raft-snapshot`, replaced with `write_atomic`) and loaded at open: a restart is
//! that snapshot plus openraft's replay of the committed log after it. It owns no metadata
//! semantics; it only passes payloads in log order and whole-state snapshots across.
//!
//! Snapshot policy: Kafka bounds the metadata log by bytes and by time
//! (`metadata.log.max.record.bytes.between.snapshots`, `metadata.log.max.snapshot.interval.ms`);
//! openraft's own policy counts entries only. So openraft's policy is set to `Never` and the node
//! asks for a snapshot (`Raft::trigger().snapshot()`) when [`StateMachineStore::snapshot_due`]
//! says Kafka's rule is met: that many payload bytes applied since the last snapshot, or that much
//! time passed with something applied since.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use openraft::storage::RaftStateMachine;
use openraft::{
    AnyError, BasicNode, Entry, EntryPayload, LogId, RaftSnapshotBuilder, Snapshot, SnapshotMeta, StorageError,
    StorageIOError, StoredMembership,
};
use serde::{Deserialize, Serialize};

use super::{ApplyError, ApplyOutcome, NodeId, StateMachine, TypeConfig};
use crate::storage::checkpoint::{read_small, write_atomic};
use crate::storage::io::FileIo;

/// The snapshot file's name inside the Raft directory.
pub const SNAPSHOT_FILE_NAME: &str = "raft-snapshot";
const SNAPSHOT_VERSION: u8 = 0;
/// version u8, crc32c u32, meta length u32.
const SNAPSHOT_HEADER_BYTES: usize = 1 + 4 + 4;
/// Kafka's default `metadata.log.max.record.bytes.between.snapshots`: 20 MiB.
pub const DEFAULT_MAX_RECORD_BYTES_BETWEEN_SNAPSHOTS: u64 = 20 * 1024 * 1024;
/// Kafka's default `metadata.log.max.snapshot.interval.ms`: one hour (0 turns the time rule off).
pub const DEFAULT_MAX_SNAPSHOT_INTERVAL_MS: u64 = 60 * 60 * 1000;

/// When to take a snapshot, under Kafka's property names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SnapshotPolicy {
    /// `metadata.log.max.record.bytes.between.snapshots`: payload bytes applied since the last
    /// snapshot that make a new one due.
    pub max_record_bytes_between_snapshots: u64,
    /// `metadata.log.max.snapshot.interval.ms`: time after which anything applied since the last
    /// snapshot makes a new one due; 0 turns this rule off.
    pub max_snapshot_interval_ms: u64,
}

impl Default for SnapshotPolicy {
    fn default() -> Self {
        SnapshotPolicy {
            max_record_bytes_between_snapshots: DEFAULT_MAX_RECORD_BYTES_BETWEEN_SNAPSHOTS,
            max_snapshot_interval_ms: DEFAULT_MAX_SNAPSHOT_INTERVAL_MS,
        }
    }
}

/// Failures opening the adapter (loading the snapshot).
#[derive(Debug, thiserror::Error)]
pub enum SnapshotStoreError {
    #[error("raft snapshot I/O on {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("raft snapshot {path} is corrupt: {reason}")]
    Corrupt { path: PathBuf, reason: String },
    #[error("state machine refused the stored snapshot: {0}")]
    Refused(#[from] ApplyError),
}

/// What the state machine reflects: the last applied log id and the membership it knows.
#[derive(Debug, Clone, Default)]
struct Applied {
    last_log_id: Option<LogId<NodeId>>,
    membership: StoredMembership<NodeId, BasicNode>,
}

#[derive(Debug, Serialize, Deserialize)]
struct StoredMeta {
    meta: SnapshotMeta<NodeId, BasicNode>,
}

struct Shared {
    machine: Arc<dyn StateMachine>,
    io: Arc<dyn FileIo>,
    path: PathBuf,
    applied: Mutex<Applied>,
    bytes_since_snapshot: AtomicU64,
    applied_since_snapshot: AtomicBool,
    last_snapshot_at: Mutex<Instant>,
    snapshot_seq: AtomicU64,
    /// The log id of the snapshot on disk; its lock serializes writes of the snapshot file.
    stored: Mutex<Option<LogId<NodeId>>>,
}

impl Shared {
    /// Writes the snapshot file unless a newer snapshot is stored already (an older one must
    /// never replace a newer one the log was purged behind). Returns whether it wrote. Blocking.
    fn store_snapshot(&self, meta: &SnapshotMeta<NodeId, BasicNode>, data: &[u8]) -> io::Result<bool> {
        let mut stored = self.stored.lock().unwrap_or_else(|p| p.into_inner());
        if stored.is_some() && meta.last_log_id < *stored {
            return Ok(false);
        }
        write_atomic(self.io.as_ref(), &self.path, &encode_snapshot(meta, data)?)?;
        *stored = meta.last_log_id;
        Ok(true)
    }
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared").field("path", &self.path).finish_non_exhaustive()
    }
}

/// openraft's `RaftStateMachine` and snapshot builder. Cloning shares the same state.
#[derive(Debug, Clone)]
pub struct StateMachineStore {
    shared: Arc<Shared>,
}

fn to_storage(e: io::Error) -> StorageError<NodeId> {
    StorageIOError::write_snapshot(None, &e).into()
}

fn join_failed(e: tokio::task::JoinError) -> io::Error {
    io::Error::other(format!("raft snapshot task failed: {e}"))
}

/// Snapshot file bytes: version | crc32c of what follows | meta length | meta | data.
fn encode_snapshot(meta: &SnapshotMeta<NodeId, BasicNode>, data: &[u8]) -> io::Result<Vec<u8>> {
    let meta_bytes = postcard::to_allocvec(&StoredMeta { meta: meta.clone() }).map_err(io::Error::other)?;
    let mut out = Vec::with_capacity(SNAPSHOT_HEADER_BYTES + meta_bytes.len() + data.len());
    out.push(SNAPSHOT_VERSION);
    out.extend_from_slice(&[0u8; 4]);
    out.extend_from_slice(&(meta_bytes.len() as u32).to_be_bytes());
    out.extend_from_slice(&meta_bytes);
    out.extend_from_slice(data);
    let crc = crc32c::crc32c(&out[5..]);
    out[1..5].copy_from_slice(&crc.to_be_bytes());
    Ok(out)
}

fn decode_snapshot(bytes: &[u8]) -> Result<(SnapshotMeta<NodeId, BasicNode>, &[u8]), String> {
    if bytes.len() < SNAPSHOT_HEADER_BYTES {
        return Err(format!("{} bytes, too short", bytes.len()));
    }
    if bytes[0] != SNAPSHOT_VERSION {
        return Err(format!("unknown version {}", bytes[0]));
    }
    let stored = u32::from_be_bytes([bytes[1], bytes[2], bytes[3], bytes[4]]);
    if crc32c::crc32c(&bytes[5..]) != stored {
        return Err("CRC32C mismatch".to_string());
    }
    let meta_len = u32::from_be_bytes([bytes[5], bytes[6], bytes[7], bytes[8]]) as usize;
    let rest = &bytes[SNAPSHOT_HEADER_BYTES..];
    if meta_len > rest.len() {
        return Err(format!("meta length {meta_len} beyond the file ({} bytes left)", rest.len()));
    }
    let stored: StoredMeta = postcard::from_bytes(&rest[..meta_len]).map_err(|e| e.to_string())?;
    Ok((stored.meta, &rest[meta_len..]))
}

impl StateMachineStore {
    /// Opens the adapter over `machine` (which starts empty), installing the snapshot stored
    /// under `dir` into it when there is one. Blocking.
    pub fn open(io: Arc<dyn FileIo>, dir: &Path, machine: Arc<dyn StateMachine>) -> Result<StateMachineStore, SnapshotStoreError> {
        let path = dir.join(SNAPSHOT_FILE_NAME);
        let mut applied = Applied::default();
        let bytes = read_small(io.as_ref(), &path).map_err(|source| SnapshotStoreError::Io { path: path.clone(), source })?;
        if let Some(bytes) = bytes {
            let (meta, data) = decode_snapshot(&bytes).map_err(|reason| SnapshotStoreError::Corrupt { path: path.clone(), reason })?;
            let index = meta.last_log_id.map(|l| l.index).unwrap_or(0);
            machine.install_snapshot(index, data)?;
            applied = Applied { last_log_id: meta.last_log_id, membership: meta.last_membership };
        }
        let stored = applied.last_log_id;
        Ok(StateMachineStore {
            shared: Arc::new(Shared {
                machine,
                io,
                path,
                applied: Mutex::new(applied),
                bytes_since_snapshot: AtomicU64::new(0),
                applied_since_snapshot: AtomicBool::new(false),
                last_snapshot_at: Mutex::new(Instant::now()),
                snapshot_seq: AtomicU64::new(0),
                stored: Mutex::new(stored),
            }),
        })
    }

    /// The last log index the state machine reflects.
    pub fn last_applied_index(&self) -> Option<u64> {
        self.shared.applied.lock().unwrap_or_else(|p| p.into_inner()).last_log_id.map(|l| l.index)
    }

    /// Whether Kafka's snapshot rule (see the module doc) makes a snapshot due at `now`.
    pub fn snapshot_due(&self, policy: &SnapshotPolicy, now: Instant) -> bool {
        if !self.shared.applied_since_snapshot.load(Ordering::Acquire) {
            return false;
        }
        if self.shared.bytes_since_snapshot.load(Ordering::Acquire) >= policy.max_record_bytes_between_snapshots {
            return true;
        }
        if policy.max_snapshot_interval_ms == 0 {
            return false;
        }
        let last = *self.shared.last_snapshot_at.lock().unwrap_or_else(|p| p.into_inner());
        now.saturating_duration_since(last) >= Duration::from_millis(policy.max_snapshot_interval_ms)
    }

    fn mark_snapshot_taken(shared: &Shared) {
        shared.bytes_since_snapshot.store(0, Ordering::Release);
        shared.applied_since_snapshot.store(false, Ordering::Release);
        *shared.last_snapshot_at.lock().unwrap_or_else(|p| p.into_inner()) = Instant::now();
    }
}

impl RaftSnapshotBuilder<TypeConfig> for StateMachineStore {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError<NodeId>> {
        let shared = self.shared.clone();
        tokio::task::spawn_blocking(move || {
            // Under the applied lock, so the state and the log id it is labelled with agree.
            let (meta, data) = {
                let applied = shared.applied.lock().unwrap_or_else(|p| p.into_inner());
                let (machine_index, data) = shared.machine.snapshot();
                let last_index = applied.last_log_id.map(|l| l.index);
                if last_index.is_some_and(|i| machine_index > i) {
                    return Err(io::Error::other(format!(
                        "state machine reports index {machine_index} beyond the last applied {last_index:?}"
                    )));
                }
                let seq = shared.snapshot_seq.fetch_add(1, Ordering::AcqRel);
                let snapshot_id = match applied.last_log_id {
                    Some(l) => format!("{}-{}-{seq}", l.leader_id.term, l.index),
                    None => format!("none-{seq}"),
                };
                (SnapshotMeta { last_log_id: applied.last_log_id, last_membership: applied.membership.clone(), snapshot_id }, data)
            };
            if !shared.store_snapshot(&meta, &data)? {
                // An install from the leader stored a newer one meanwhile: that one is current.
                let bytes = read_small(shared.io.as_ref(), &shared.path)?.ok_or_else(|| io::Error::other("snapshot file vanished"))?;
                let (meta, data) = decode_snapshot(&bytes).map_err(io::Error::other)?;
                return Ok(Snapshot { meta, snapshot: Box::new(data.to_vec()) });
            }
            StateMachineStore::mark_snapshot_taken(&shared);
            tracing::info!(snapshot = %meta, bytes = data.len(), "raft: snapshot taken");
            Ok(Snapshot { meta, snapshot: Box::new(data) })
        })
        .await
        .map_err(join_failed)
        .and_then(|r| r)
        .map_err(to_storage)
    }
}

impl RaftStateMachine<TypeConfig> for StateMachineStore {
    type SnapshotBuilder = StateMachineStore;

    async fn applied_state(
        &mut self,
    ) -> Result<(Option<LogId<NodeId>>, StoredMembership<NodeId, BasicNode>), StorageError<NodeId>> {
        let applied = self.shared.applied.lock().unwrap_or_else(|p| p.into_inner());
        Ok((applied.last_log_id, applied.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<ApplyOutcome>, StorageError<NodeId>>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + Send,
        I::IntoIter: Send,
    {
        let mut outcomes = Vec::new();
        let mut applied = self.shared.applied.lock().unwrap_or_else(|p| p.into_inner());
        for entry in entries {
            let log_id = entry.log_id;
            let mut outcome = ApplyOutcome { rejected: None };
            match entry.payload {
                EntryPayload::Blank => {}
                EntryPayload::Normal(payload) => {
                    match self.shared.machine.apply(log_id.index, &payload) {
                        Ok(()) => {}
                        Err(ApplyError::Rejected(reason)) => outcome.rejected = Some(reason),
                        Err(e @ ApplyError::Fatal(_)) => return Err(StorageIOError::apply(log_id, AnyError::new(&e)).into()),
                    }
                    self.shared.bytes_since_snapshot.fetch_add(payload.len() as u64, Ordering::AcqRel);
                    self.shared.applied_since_snapshot.store(true, Ordering::Release);
                }
                EntryPayload::Membership(membership) => {
                    applied.membership = StoredMembership::new(Some(log_id), membership);
                }
            }
            applied.last_log_id = Some(log_id);
            outcomes.push(outcome);
        }
        Ok(outcomes)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<Vec<u8>>, StorageError<NodeId>> {
        Ok(Box::default())
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<NodeId, BasicNode>,
        snapshot: Box<Vec<u8>>,
    ) -> Result<(), StorageError<NodeId>> {
        let shared = self.shared.clone();
        let meta = meta.clone();
        tokio::task::spawn_blocking(move || {
            {
                let mut applied = shared.applied.lock().unwrap_or_else(|p| p.into_inner());
                let index = meta.last_log_id.map(|l| l.index).unwrap_or(0);
                shared.machine.install_snapshot(index, &snapshot).map_err(io::Error::other)?;
                *applied = Applied { last_log_id: meta.last_log_id, membership: meta.last_membership.clone() };
            }
            shared.store_snapshot(&meta, &snapshot)?;
            StateMachineStore::mark_snapshot_taken(&shared);
            tracing::info!(snapshot = %meta, bytes = snapshot.len(), "raft: snapshot installed from the leader");
            Ok(())
        })
        .await
        .map_err(join_failed)
        .and_then(|r| r)
        .map_err(to_storage)
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<TypeConfig>>, StorageError<NodeId>> {
        let shared = self.shared.clone();
        tokio::task::spawn_blocking(move || {
            let Some(bytes) = read_small(shared.io.as_ref(), &shared.path)? else { return Ok(None) };
            let (meta, data) = decode_snapshot(&bytes).map_err(io::Error::other)?;
            Ok(Some(Snapshot { meta, snapshot: Box::new(data.to_vec()) }))
        })
        .await
        .map_err(join_failed)
        .and_then(|r| r)
        .map_err(|e: io::Error| StorageIOError::read_snapshot(None, &e).into())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::storage::io::std_io;
    use openraft::{CommittedLeaderId, Membership};
    use std::collections::{BTreeMap, BTreeSet};

    /// A state machine for tests: the applied (index, payload) pairs; its snapshot is their
    /// postcard encoding. Payloads starting with "reject" are rejected.
    #[derive(Debug, Default)]
    pub(crate) struct Recorder {
        pub applied: Mutex<Vec<(u64, Vec<u8>)>>,
    }

    impl StateMachine for Recorder {
        fn apply(&self, index: u64, payload: &[u8]) -> Result<(), ApplyError> {
            if payload.starts_with(b"reject") {
                return Err(ApplyError::Rejected("asked to".to_string()));
            }
            if payload.starts_with(b"fatal") {
                return Err(ApplyError::Fatal("asked to".to_string()));
            }
            self.applied.lock().expect("lock").push((index, payload.to_vec()));
            Ok(())
        }
        fn snapshot(&self) -> (u64, Vec<u8>) {
            let applied = self.applied.lock().expect("lock");
            let last = applied.last().map(|(i, _)| *i).unwrap_or(0);
            (last, postcard::to_allocvec(&*applied).expect("encode"))
        }
        fn install_snapshot(&self, _last_index: u64, bytes: &[u8]) -> Result<(), ApplyError> {
            let state: Vec<(u64, Vec<u8>)> = postcard::from_bytes(bytes).map_err(|e| ApplyError::Fatal(e.to_string()))?;
            *self.applied.lock().expect("lock") = state;
            Ok(())
        }
    }

    fn log_id(term: u64, index: u64) -> LogId<NodeId> {
        LogId::new(CommittedLeaderId::new(term, 1), index)
    }

    fn normal(index: u64, payload: &[u8]) -> Entry<TypeConfig> {
        Entry { log_id: log_id(1, index), payload: EntryPayload::Normal(payload.to_vec()) }
    }

    fn membership() -> Membership<NodeId, BasicNode> {
        let nodes: BTreeMap<NodeId, BasicNode> = [(1, BasicNode::new("127.0.0.1:1"))].into_iter().collect();
        Membership::new(vec![BTreeSet::from([1])], nodes)
    }

    #[tokio::test]
    async fn applies_in_order_snapshots_to_disk_and_restores_at_open() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let machine = Arc::new(Recorder::default());
        let mut store = StateMachineStore::open(std_io(), tmp.path(), machine.clone()).expect("open");
        let entries = vec![
            Entry { log_id: log_id(1, 1), payload: EntryPayload::Membership(membership()) },
            Entry { log_id: log_id(1, 2), payload: EntryPayload::Blank },
            normal(3, b"a"),
            normal(4, b"reject me"),
            normal(5, b"b"),
        ];
        let outcomes = store.apply(entries).await.expect("apply");
        assert_eq!(outcomes.len(), 5);
        assert_eq!(outcomes[3].rejected.as_deref(), Some("asked to"));
        assert!(outcomes.iter().enumerate().all(|(i, o)| i == 3 || o.rejected.is_none()));
        assert_eq!(*machine.applied.lock().expect("lock"), vec![(3, b"a".to_vec()), (5, b"b".to_vec())]);
        assert!(store.get_current_snapshot().await.expect("none yet").is_none());

        let policy = SnapshotPolicy { max_record_bytes_between_snapshots: 2, max_snapshot_interval_ms: 0 };
        assert!(store.snapshot_due(&policy, Instant::now()), "10 payload bytes >= 2");
        let snapshot = store.get_snapshot_builder().await.build_snapshot().await.expect("build");
        assert_eq!(snapshot.meta.last_log_id, Some(log_id(1, 5)));
        assert!(!store.snapshot_due(&policy, Instant::now()), "counters reset by the snapshot");

        // A new process: an empty machine gets the snapshot's state at open.
        let machine2 = Arc::new(Recorder::default());
        let mut store2 = StateMachineStore::open(std_io(), tmp.path(), machine2.clone()).expect("reopen");
        assert_eq!(*machine2.applied.lock().expect("lock"), vec![(3, b"a".to_vec()), (5, b"b".to_vec())]);
        let (last, members) = store2.applied_state().await.expect("state");
        assert_eq!(last, Some(log_id(1, 5)));
        assert_eq!(members.log_id(), &Some(log_id(1, 1)));
        let current = store2.get_current_snapshot().await.expect("read").expect("some");
        assert_eq!(current.meta, snapshot.meta);
        assert_eq!(current.snapshot, snapshot.snapshot);
    }

    #[tokio::test]
    async fn install_replaces_the_state_and_persists_it() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let leader = Arc::new(Recorder::default());
        leader.applied.lock().expect("lock").extend([(7, b"x".to_vec()), (9, b"y".to_vec())]);
        let (_, data) = leader.snapshot();
        let meta = SnapshotMeta {
            last_log_id: Some(log_id(2, 9)),
            last_membership: StoredMembership::new(Some(log_id(1, 1)), membership()),
            snapshot_id: "2-9-0".to_string(),
        };
        let follower = Arc::new(Recorder::default());
        follower.applied.lock().expect("lock").push((1, b"stale".to_vec()));
        let mut store = StateMachineStore::open(std_io(), tmp.path(), follower.clone()).expect("open");
        store.install_snapshot(&meta, Box::new(data)).await.expect("install");
        assert_eq!(*follower.applied.lock().expect("lock"), *leader.applied.lock().expect("lock"));
        assert_eq!(store.last_applied_index(), Some(9));
        let again = Arc::new(Recorder::default());
        StateMachineStore::open(std_io(), tmp.path(), again.clone()).expect("reopen");
        assert_eq!(*again.applied.lock().expect("lock"), *leader.applied.lock().expect("lock"));
    }

    #[tokio::test]
    async fn an_older_snapshot_never_replaces_a_newer_one_on_disk() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let mut store = StateMachineStore::open(std_io(), tmp.path(), Arc::new(Recorder::default())).expect("open");
        let meta = |index| SnapshotMeta { last_log_id: Some(log_id(2, index)), last_membership: StoredMembership::default(), snapshot_id: format!("{index}") };
        assert!(store.shared.store_snapshot(&meta(9), &postcard::to_allocvec(&vec![(9u64, b"new".to_vec())]).expect("encode")).expect("write"));
        assert!(!store.shared.store_snapshot(&meta(5), b"old").expect("skip"), "older one skipped");
        let current = store.get_current_snapshot().await.expect("read").expect("some");
        assert_eq!(current.meta.last_log_id, Some(log_id(2, 9)));
    }

    #[tokio::test]
    async fn a_fatal_apply_is_a_storage_error() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let mut store = StateMachineStore::open(std_io(), tmp.path(), Arc::new(Recorder::default())).expect("open");
        assert!(store.apply(vec![normal(1, b"fatal")]).await.is_err());
    }

    #[test]
    fn time_rule_makes_a_snapshot_due_only_after_something_was_applied() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let store = StateMachineStore::open(std_io(), tmp.path(), Arc::new(Recorder::default())).expect("open");
        let policy = SnapshotPolicy { max_record_bytes_between_snapshots: u64::MAX, max_snapshot_interval_ms: 10 };
        let later = Instant::now() + Duration::from_secs(1);
        assert!(!store.snapshot_due(&policy, later));
        store.shared.applied_since_snapshot.store(true, Ordering::Release);
        assert!(store.snapshot_due(&policy, later));
        assert!(!store.snapshot_due(&policy, Instant::now() - Duration::from_millis(1)));
    }

    #[test]
    fn corrupt_snapshot_files_are_refused_without_panics() {
        let meta = SnapshotMeta::<NodeId, BasicNode>::default();
        let good = encode_snapshot(&meta, b"data").expect("encode");
        assert_eq!(decode_snapshot(&good).expect("decode").1, b"data");
        for cut in 0..good.len() {
            assert!(decode_snapshot(&good[..cut]).is_err(), "cut at {cut}");
        }
        let mut flipped = good.clone();
        flipped[SNAPSHOT_HEADER_BYTES] ^= 1;
        assert!(decode_snapshot(&flipped).is_err());
        let tmp = tempfile::tempdir().expect("tempdir");
        std::fs::write(tmp.path().join(SNAPSHOT_FILE_NAME), &flipped).expect("write");
        let err = StateMachineStore::open(std_io(), tmp.path(), Arc::new(Recorder::default())).expect_err("corrupt");
        assert!(matches!(err, SnapshotStoreError::Corrupt { .. }), "{err}");
    }
}

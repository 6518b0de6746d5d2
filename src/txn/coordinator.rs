//! The transaction coordinator, Kafka's classic protocol: transactional ids map to a producer id
//! and epoch (InitProducerId bumps the epoch and fences the previous producer), AddPartitionsToTxn
//! opens a transaction, EndTxn writes PrepareCommit/PrepareAbort, the markers, then
//! CompleteCommit/CompleteAbort. A KIP-890 producer (EndTxn v5+, transaction.version 2) gets a new
//! epoch from every EndTxn, its markers are written at it, and its partitions join through their
//! leaders' AddPartitionsToTxn instead of its own. Every state change is a record in
//! `__transaction_state` before it is answered. The timer aborts transactions past their timeout (fencing the producer), retries
//! markers that could not be written and forgets ids unused for transactional.id.expiration.ms.
//! It never answers requests itself (the api layer does) and never touches partition logs except
//! through `TxnLog`. Ids live in the shard of their `__transaction_state` partition, one lock
//! each (Kafka's coordinator runtime): ids on different partitions never wait for each other, and
//! a partition's records are written under its shard's lock in the order the changes are applied.
//! Methods that write are synchronous and must run where blocking on a disk is allowed.

use std::collections::HashMap;
use std::sync::Mutex;

use super::log::{self, TxnMetadata, TxnState};
use super::{ClientTv, TxnConfig, TxnError, TxnLog};
use crate::coordinator::LogError;
use crate::coordinator::shards::{Shards, ShardsView};
use crate::records::internal;
use crate::types::TopicPartition;

fn wall_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

/// One transactional id as DescribeTransactions and ListTransactions show it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnSummary {
    pub transactional_id: String,
    pub meta: TxnMetadata,
}

pub struct TransactionCoordinator {
    config: TxnConfig,
    /// Every transactional id, in the shard of its `__transaction_state` partition.
    txns: Shards<TxnMetadata>,
    /// Wall-clock ms of the last timeout and expiry passes.
    last_timeout_check_ms: Mutex<i64>,
    last_expiry_check_ms: Mutex<i64>,
}

impl TransactionCoordinator {
    pub fn new(config: TxnConfig) -> TransactionCoordinator {
        let now = wall_ms();
        TransactionCoordinator { txns: Shards::new(config.state_log_partitions), config, last_timeout_check_ms: Mutex::new(now), last_expiry_check_ms: Mutex::new(now) }
    }

    /// The shards at `__transaction_state`'s partition count: the configured one until the topic
    /// exists (it is then created with that count), so an id's shard is the partition its
    /// records go to.
    fn shards(&self, log: &dyn TxnLog) -> ShardsView<'_, TxnMetadata> {
        self.txns.view(log.txn_partitions().unwrap_or(self.config.state_log_partitions))
    }

    /// The `__transaction_state` partition of a transactional id (Kafka's hash).
    pub fn partition_for(&self, log: &dyn TxnLog, transactional_id: &str) -> i32 {
        internal::partition_for(transactional_id, log.txn_partitions().unwrap_or(self.config.state_log_partitions))
    }

    /// Writes the id's state (None: forget it) to `__transaction_state`, in the value version of
    /// the finalized transaction.version.
    fn persist(&self, log: &dyn TxnLog, id: &str, meta: Option<&TxnMetadata>) -> Result<(), TxnError> {
        let version = log::value_version(log.transaction_version());
        let records = [(log::encode_key(id), meta.map(|m| log::encode_value(m, version)))];
        let batch = internal::encode_batch(&records, wall_ms()).map_err(LogError::Other)?;
        log.append_txn_batch(self.partition_for(log, id), batch).map_err(|e| {
            tracing::warn!(transactional_id = %id, error = %e, "transaction state not persisted");
            TxnError::Log(e)
        })
    }

    /// Persists `next` and only then makes it the id's state.
    fn transition(&self, log: &dyn TxnLog, txns: &mut HashMap<String, TxnMetadata>, id: &str, next: TxnMetadata) -> Result<(), TxnError> {
        self.persist(log, id, Some(&next))?;
        txns.insert(id.to_string(), next);
        Ok(())
    }

    /// InitProducerId with a transactional id: a new producer id for a new id; otherwise the
    /// epoch is bumped (a new producer id when the epoch is exhausted), which fences any older
    /// producer. An open transaction is aborted first, at the bumped epoch. `expected` is the
    /// (id, epoch) a producer presents to recover (KIP-360): it must be the current one.
    pub fn init_producer_id(&self, log: &dyn TxnLog, id: &str, timeout_ms: i32, expected: Option<(i64, i16)>) -> Result<(i64, i16), TxnError> {
        if timeout_ms <= 0 || timeout_ms > self.config.max_timeout_ms {
            return Err(TxnError::InvalidTransactionTimeout);
        }
        let now = wall_ms();
        let shards = self.shards(log);
        let mut txns = shards.lock_id(id);
        let Some(current) = txns.get(id).cloned() else {
            let producer_id = log.next_producer_id()?;
            self.transition(log, &mut txns, id, TxnMetadata::new(producer_id, timeout_ms, now))?;
            tracing::info!(transactional_id = %id, producer_id, "new transactional id");
            return Ok((producer_id, 0));
        };
        if let Some((pid, epoch)) = expected
            && (pid != current.producer_id || epoch != current.producer_epoch)
        {
            return Err(TxnError::ProducerFenced);
        }
        let mut meta = match current.state {
            TxnState::PrepareCommit | TxnState::PrepareAbort | TxnState::PrepareEpochFence => return Err(TxnError::ConcurrentTransactions),
            TxnState::Ongoing => {
                // The new producer takes over: the open transaction is aborted at a bumped
                // epoch, so the old producer's further writes are refused.
                let fenced = Self::fenced(log, current);
                self.complete(log, &mut txns, id, fenced, false)?;
                let m = txns.get(id).cloned().ok_or(TxnError::ConcurrentTransactions)?;
                if m.state != TxnState::CompleteAbort {
                    return Err(TxnError::ConcurrentTransactions);
                }
                tracing::info!(transactional_id = %id, producer_id = m.producer_id, epoch = m.producer_epoch, "aborted the open transaction of a fenced producer");
                return self.start_epoch(log, &mut txns, id, m, timeout_ms, now, false);
            }
            _ => current,
        };
        meta.partitions.clear();
        self.start_epoch(log, &mut txns, id, meta, timeout_ms, now, true)
    }

    /// `meta` with its open transaction's producer fenced: the epoch the coordinator aborts it at.
    /// One above the producer's, or two from transaction.version 2 (Kafka's double bump): a
    /// KIP-890 producer's EndTxn at its old epoch must not pass for a retry of this abort.
    fn fenced(log: &dyn TxnLog, meta: TxnMetadata) -> TxnMetadata {
        let server_tv = log.transaction_version();
        let steps = if server_tv >= 2 { 2 } else { 1 };
        TxnMetadata { producer_epoch: meta.producer_epoch.saturating_add(steps), client_tv: server_tv, ..meta }
    }

    /// Makes `meta` Empty with `timeout_ms`, at the next epoch when `bump` (a new producer id
    /// once the epoch would reach its limit), persisted.
    #[allow(clippy::too_many_arguments)]
    fn start_epoch(&self, log: &dyn TxnLog, txns: &mut HashMap<String, TxnMetadata>, id: &str, mut meta: TxnMetadata, timeout_ms: i32, now: i64, bump: bool) -> Result<(i64, i16), TxnError> {
        if bump {
            if meta.producer_epoch >= i16::MAX - 1 {
                meta.producer_id = log.next_producer_id()?;
                meta.producer_epoch = 0;
            } else {
                meta.producer_epoch += 1;
            }
        }
        meta.timeout_ms = timeout_ms;
        meta.state = TxnState::Empty;
        meta.partitions.clear();
        meta.last_update_ms = now;
        meta.start_ms = -1;
        let answer = (meta.producer_id, meta.producer_epoch);
        self.transition(log, txns, id, meta)?;
        Ok(answer)
    }

    /// The id's state after checking the producer presenting itself owns it.
    fn owned(txns: &HashMap<String, TxnMetadata>, id: &str, producer_id: i64, epoch: i16) -> Result<TxnMetadata, TxnError> {
        let m = txns.get(id).ok_or(TxnError::InvalidProducerIdMapping)?;
        if m.producer_id != producer_id {
            return Err(TxnError::InvalidProducerIdMapping);
        }
        if epoch != m.producer_epoch {
            return Err(TxnError::ProducerFenced);
        }
        Ok(m.clone())
    }

    /// AddPartitionsToTxn v4+ with verify_only: which of the partitions are in the producer's
    /// transaction (Kafka answers each partition by its membership, whatever the state).
    pub fn verify_partitions(&self, id: &str, producer_id: i64, epoch: i16, partitions: &[TopicPartition]) -> Result<Vec<bool>, TxnError> {
        let shards = self.txns.view_current();
        let txns = shards.lock_id(id);
        let m = Self::owned(&txns, id, producer_id, epoch)?;
        Ok(partitions.iter().map(|tp| m.partitions.contains(tp)).collect())
    }

    /// AddPartitionsToTxn (and AddOffsetsToTxn, with the group's `__consumer_offsets`
    /// partition): the partitions join the producer's transaction, which opens if it was not.
    /// `tv` is the protocol of the request: V2 when a partition leader adds them for a KIP-890
    /// producer's Produce v12 or TxnOffsetCommit v5.
    pub fn add_partitions(&self, log: &dyn TxnLog, id: &str, producer_id: i64, epoch: i16, partitions: &[TopicPartition], tv: ClientTv) -> Result<(), TxnError> {
        let shards = self.shards(log);
        let mut txns = shards.lock_id(id);
        let mut m = Self::owned(&txns, id, producer_id, epoch)?;
        match m.state {
            TxnState::PrepareCommit | TxnState::PrepareAbort | TxnState::PrepareEpochFence => return Err(TxnError::ConcurrentTransactions),
            TxnState::Dead => return Err(TxnError::InvalidProducerIdMapping),
            TxnState::Ongoing if partitions.iter().all(|tp| m.partitions.contains(tp)) => return Ok(()),
            _ => {}
        }
        let now = wall_ms();
        if m.state != TxnState::Ongoing {
            m.start_ms = now;
            m.partitions.clear();
        }
        m.state = TxnState::Ongoing;
        m.last_update_ms = now;
        m.client_tv = tv.level();
        m.partitions.extend(partitions.iter().cloned());
        self.transition(log, &mut txns, id, m)
    }

    /// Whether a transactional produce may write to `tp`: its producer's transaction is open
    /// and holds the partition (Kafka's partition verification, so a late write cannot start
    /// a transaction the coordinator does not know of).
    pub fn verify_produce(&self, id: &str, producer_id: i64, epoch: i16, tp: &TopicPartition) -> Result<(), TxnError> {
        let shards = self.txns.view_current();
        let txns = shards.lock_id(id);
        let m = txns.get(id).ok_or(TxnError::InvalidProducerIdMapping)?;
        if m.producer_id != producer_id {
            return Err(TxnError::InvalidProducerIdMapping);
        }
        // Any other epoch than the transaction's, older or newer, is fenced (Kafka's verification).
        if epoch != m.producer_epoch {
            return Err(TxnError::ProducerFenced);
        }
        if m.state == TxnState::Ongoing && m.partitions.contains(tp) { Ok(()) } else { Err(TxnError::InvalidTxnState) }
    }

    /// EndTxn: commits or aborts the producer's transaction, and returns the producer id and
    /// epoch it goes on with. Classic: the same epoch, and a retry of a finished end with the same
    /// outcome succeeds again. V2 (KIP-890): see [`Self::end_txn_v2`].
    pub fn end_txn(&self, log: &dyn TxnLog, id: &str, producer_id: i64, epoch: i16, commit: bool, tv: ClientTv) -> Result<(i64, i16), TxnError> {
        let shards = self.shards(log);
        let mut txns = shards.lock_id(id);
        if tv == ClientTv::V2 {
            return self.end_txn_v2(log, &mut txns, id, producer_id, epoch, commit);
        }
        let m = Self::owned(&txns, id, producer_id, epoch)?;
        let answer = (m.producer_id, m.producer_epoch);
        match (m.state, commit) {
            (TxnState::Ongoing, _) => self.complete(log, &mut txns, id, TxnMetadata { client_tv: 0, ..m }, commit).map(|_| answer),
            (TxnState::CompleteCommit, true) | (TxnState::CompleteAbort, false) => Ok(answer),
            (TxnState::PrepareCommit, true) | (TxnState::PrepareAbort, false) => Err(TxnError::ConcurrentTransactions),
            (TxnState::PrepareEpochFence, _) => Err(TxnError::ConcurrentTransactions),
            _ => Err(TxnError::InvalidTxnState),
        }
    }

    /// EndTxn v5+ (Kafka 4.0's rules for a KIP-890 producer). Every end bumps the epoch; the
    /// markers carry the new one, which the producer continues with (a new producer id at epoch
    /// 0 once the epoch is exhausted). A retry comes at the epoch before the bump: it gets the
    /// current id and epoch when the end it repeats is complete, CONCURRENT_TRANSACTIONS while
    /// its markers are still being written. An abort with no open transaction (Empty, or after
    /// a complete end) bumps the epoch with no markers; a commit there is INVALID_TXN_STATE.
    fn end_txn_v2(&self, log: &dyn TxnLog, txns: &mut HashMap<String, TxnMetadata>, id: &str, producer_id: i64, epoch: i16, commit: bool) -> Result<(i64, i16), TxnError> {
        let m = txns.get(id).cloned().ok_or(TxnError::InvalidProducerIdMapping)?;
        let stored = m.producer_epoch;
        let retry_on_bump = i32::from(stored) == i32::from(epoch) + 1;
        let retry_on_rotation = m.previous_producer_id == producer_id && epoch >= i16::MAX - 1 && stored == 0;
        if m.producer_id != producer_id && !retry_on_rotation {
            return Err(TxnError::InvalidProducerIdMapping);
        }
        let current = epoch == stored && m.producer_id == producer_id;
        let valid = match m.state {
            TxnState::Ongoing | TxnState::Empty | TxnState::Dead | TxnState::PrepareEpochFence => current,
            TxnState::PrepareCommit | TxnState::PrepareAbort => retry_on_bump,
            TxnState::CompleteCommit | TxnState::CompleteAbort => retry_on_bump || retry_on_rotation || current,
        };
        if !valid {
            return Err(TxnError::ProducerFenced);
        }
        let retry = retry_on_bump || retry_on_rotation;
        match (m.state, commit, retry) {
            (TxnState::Ongoing, _, _) => self.end_with_bump(log, txns, id, m, commit),
            (TxnState::Empty, false, _) | (TxnState::CompleteCommit | TxnState::CompleteAbort, false, false) => self.end_with_bump(log, txns, id, m, false),
            (TxnState::CompleteAbort, false, true) | (TxnState::CompleteCommit, true, true) => Ok((m.producer_id, m.producer_epoch)),
            (TxnState::PrepareCommit, true, _) | (TxnState::PrepareAbort, false, _) | (TxnState::PrepareEpochFence, _, _) => Err(TxnError::ConcurrentTransactions),
            _ => Err(TxnError::InvalidTxnState),
        }
    }

    /// Ends `meta`'s transaction (none open: an abort with no partitions) one epoch up, as
    /// [`Self::end_txn_v2`] does, and returns the id and epoch the producer goes on with.
    fn end_with_bump(&self, log: &dyn TxnLog, txns: &mut HashMap<String, TxnMetadata>, id: &str, meta: TxnMetadata, commit: bool) -> Result<(i64, i16), TxnError> {
        let mut next = meta;
        // The markers take the last epoch there is; the producer then moves to a new id.
        next.next_producer_id = if next.producer_epoch >= i16::MAX - 1 { log.next_producer_id()? } else { -1 };
        next.producer_epoch = next.producer_epoch.saturating_add(1);
        next.client_tv = ClientTv::V2.level();
        if next.state != TxnState::Ongoing {
            next.partitions.clear();
            next.start_ms = wall_ms();
        }
        self.complete(log, txns, id, next, commit)?;
        let m = txns.get(id).ok_or(TxnError::ConcurrentTransactions)?;
        // Markers not all written yet: the producer is told what the end completes to.
        Ok(if m.next_producer_id >= 0 { (m.next_producer_id, 0) } else { (m.producer_id, m.producer_epoch) })
    }

    /// Two-phase end of `meta`'s transaction: Prepare persisted, the markers written to every
    /// partition, Complete persisted. When a marker cannot be written the id stays in Prepare
    /// (the answer is still success, as Kafka's once Prepare is durable) and the timer retries.
    fn complete(&self, log: &dyn TxnLog, txns: &mut HashMap<String, TxnMetadata>, id: &str, mut meta: TxnMetadata, commit: bool) -> Result<(), TxnError> {
        meta.state = if commit { TxnState::PrepareCommit } else { TxnState::PrepareAbort };
        meta.last_update_ms = wall_ms();
        self.transition(log, txns, id, meta.clone())?;
        self.write_markers(log, txns, id, meta);
        Ok(())
    }

    /// Writes the markers of a Prepare state and moves it to Complete.
    fn write_markers(&self, log: &dyn TxnLog, txns: &mut HashMap<String, TxnMetadata>, id: &str, mut meta: TxnMetadata) {
        let commit = meta.state == TxnState::PrepareCommit;
        for tp in &meta.partitions {
            match log.write_marker(tp, meta.producer_id, meta.producer_epoch, commit) {
                Ok(()) => {}
                Err(super::MarkerError::UnknownPartition) => {
                    tracing::info!(transactional_id = %id, partition = %tp, "partition gone; no marker needed");
                }
                Err(super::MarkerError::Failed(e)) => {
                    tracing::warn!(transactional_id = %id, partition = %tp, error = %e, "transaction marker not written; will retry");
                    return;
                }
            }
        }
        meta.state = if commit { TxnState::CompleteCommit } else { TxnState::CompleteAbort };
        meta.partitions.clear();
        meta.last_update_ms = wall_ms();
        if meta.next_producer_id >= 0 {
            meta.previous_producer_id = meta.producer_id;
            meta.producer_id = std::mem::replace(&mut meta.next_producer_id, -1);
            meta.producer_epoch = 0;
        }
        if let Err(e) = self.transition(log, txns, id, meta) {
            // The markers are written; a retry writes them again, which changes nothing.
            tracing::warn!(transactional_id = %id, error = %e, "transaction completion not persisted; will retry");
        }
    }

    pub fn describe(&self, id: &str) -> Option<TxnMetadata> {
        self.txns.view_current().lock_id(id).get(id).cloned()
    }

    /// ListTransactions: ids in one of `states` (all when empty), of one of `producer_ids` (all
    /// when empty), open for longer than `min_duration_ms` (when >= 0).
    pub fn list(&self, states: &[String], producer_ids: &[i64], min_duration_ms: i64) -> Vec<TxnSummary> {
        let now = wall_ms();
        let shards = self.txns.view_current();
        let mut out: Vec<TxnSummary> = Vec::new();
        for p in 0..shards.partitions() {
            let Some(txns) = shards.lock(p) else { continue };
            out.extend(
                txns.iter()
                    .filter(|(_, m)| states.is_empty() || states.iter().any(|s| s == m.state.name()))
                    .filter(|(_, m)| producer_ids.is_empty() || producer_ids.contains(&m.producer_id))
                    .filter(|(_, m)| min_duration_ms < 0 || (m.state == TxnState::Ongoing && now - m.start_ms > min_duration_ms))
                    .map(|(id, m)| TxnSummary { transactional_id: id.clone(), meta: m.clone() }),
            );
        }
        out.sort_by(|a, b| a.transactional_id.cmp(&b.transactional_id));
        out
    }

    /// Timer work, rate-limited by the two cleanup intervals: aborts transactions open past
    /// their timeout (bumping the epoch, so the producer is fenced, as Kafka does), finishes
    /// Prepare states whose markers failed, and forgets ids idle past transactional.id.expiration.ms.
    pub fn tick(&self, log: &dyn TxnLog) {
        let now = wall_ms();
        {
            let mut last = self.last_timeout_check_ms.lock().unwrap_or_else(|e| e.into_inner());
            if now - *last < self.config.abort_timed_out_interval_ms as i64 {
                return self.expire_ids(log, now);
            }
            *last = now;
        }
        // One shard at a time: the others' ids go on being served meanwhile.
        let shards = self.shards(log);
        for p in 0..shards.partitions() {
            let Some(mut txns) = shards.lock(p) else { continue };
            let due: Vec<(String, TxnMetadata)> = txns
                .iter()
                .filter(|(_, m)| {
                    matches!(m.state, TxnState::PrepareCommit | TxnState::PrepareAbort)
                        || (m.state == TxnState::Ongoing && now - m.start_ms > m.timeout_ms as i64)
                })
                .map(|(id, m)| (id.clone(), m.clone()))
                .collect();
            for (id, m) in due {
                if m.state == TxnState::Ongoing {
                    tracing::info!(transactional_id = %id, producer_id = m.producer_id, timeout_ms = m.timeout_ms, "aborting a transaction past its timeout");
                    let fenced = Self::fenced(log, m);
                    if let Err(e) = self.complete(log, &mut txns, &id, fenced, false) {
                        tracing::warn!(transactional_id = %id, error = %e, "could not abort a timed-out transaction; will retry");
                    }
                } else {
                    self.write_markers(log, &mut txns, &id, m);
                }
            }
        }
        drop(shards);
        self.expire_ids(log, now);
    }

    fn expire_ids(&self, log: &dyn TxnLog, now: i64) {
        {
            let mut last = self.last_expiry_check_ms.lock().unwrap_or_else(|e| e.into_inner());
            if now - *last < self.config.remove_expired_interval_ms as i64 {
                return;
            }
            *last = now;
        }
        let shards = self.shards(log);
        for p in 0..shards.partitions() {
            let Some(mut txns) = shards.lock(p) else { continue };
            let idle: Vec<String> = txns
                .iter()
                .filter(|(_, m)| matches!(m.state, TxnState::Empty | TxnState::CompleteCommit | TxnState::CompleteAbort))
                .filter(|(_, m)| now - m.last_update_ms >= self.config.id_expiration_ms)
                .map(|(id, _)| id.clone())
                .collect();
            for id in idle {
                if self.persist(log, &id, None).is_ok() {
                    txns.remove(&id);
                    tracing::info!(transactional_id = %id, "transactional id expired (transactional.id.expiration.ms)");
                }
            }
        }
    }

    /// Rebuilds every id from `__transaction_state`, then completes the transactions a stop
    /// left in Prepare (their markers may be missing). Open transactions stay open, under their
    /// timeout. Returns the number of ids. Meant for startup, before requests: the ids read
    /// replace those in memory.
    pub fn load(&self, log: &dyn TxnLog) -> Result<usize, String> {
        self.load_from(log, None)
    }

    /// In a cluster: this broker now leads `partition` of `__transaction_state`; its ids are
    /// read from the log (to its end), replace the shard's, and transactions left in Prepare are
    /// completed.
    pub fn load_partition(&self, log: &dyn TxnLog, partition: i32) -> Result<usize, String> {
        self.load_from(log, Some(partition))
    }

    /// This broker no longer leads `partition`: its ids are forgotten here.
    pub fn unload_partition(&self, partitions: i32, partition: i32) {
        if let Some(mut shard) = self.txns.view(partitions).lock(partition) {
            shard.clear();
        }
    }

    fn load_from(&self, log: &dyn TxnLog, only: Option<i32>) -> Result<usize, String> {
        let Some(partitions) = log.txn_partitions() else { return Ok(0) };
        // Assembled aside, then each id goes to its shard.
        let mut txns: HashMap<String, TxnMetadata> = HashMap::new();
        for p in (0..partitions).filter(|p| only.is_none_or(|o| o == *p)) {
            let mut offset = 0;
            let mut pending = internal::PendingTxnRecords::new();
            loop {
                let data = log.read_txn_batches(p, offset).map_err(|e| e.to_string())?;
                if data.is_empty() {
                    break;
                }
                let (records, next) = internal::decode_batches_with_next(data, &mut pending)?;
                for (k, v) in records {
                    let id = match log::decode_key(k) {
                        Ok(id) => id,
                        Err(e) => {
                            tracing::warn!(partition = p, error = %e, "skipping an undecodable transaction key");
                            continue;
                        }
                    };
                    match v.map(log::decode_value) {
                        Some(Ok(m)) => {
                            txns.insert(id, m);
                        }
                        Some(Err(e)) => tracing::warn!(transactional_id = %id, error = %e, "skipping an undecodable transaction record"),
                        None => {
                            txns.remove(&id);
                        }
                    }
                }
                match next {
                    Some(n) if n > offset => offset = n,
                    _ => break,
                }
            }
        }
        let ids = txns.len();
        let shards = self.txns.view(partitions);
        if let Some(p) = only
            && let Some(mut shard) = shards.lock(p)
        {
            shard.clear();
        }
        let mut unfinished: Vec<(String, TxnMetadata)> = Vec::new();
        for (id, m) in txns {
            if matches!(m.state, TxnState::PrepareCommit | TxnState::PrepareAbort) {
                unfinished.push((id.clone(), m.clone()));
            }
            shards.lock_id(&id).insert(id, m);
        }
        for (id, m) in unfinished {
            tracing::info!(transactional_id = %id, state = m.state.name(), "completing a transaction interrupted by the stop");
            let mut shard = shards.lock_id(&id);
            self.write_markers(log, &mut shard, &id, m);
        }
        Ok(ids)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::txn::MarkerError;
    use bytes::Bytes;

    /// An in-memory `__transaction_state` (one partition) and marker sink.
    #[derive(Default)]
    struct MemLog {
        batches: Mutex<Vec<Bytes>>,
        markers: Mutex<Vec<(TopicPartition, i64, i16, bool)>>,
        next_id: Mutex<i64>,
        fail_markers: Mutex<bool>,
        /// The finalized transaction.version (0 unless a test sets it).
        tv: Mutex<i16>,
        /// While set, every state write fails with it.
        fail_writes: Mutex<Option<LogError>>,
        /// While set, reserving a producer id fails with it.
        fail_ids: Mutex<Option<LogError>>,
    }

    impl TxnLog for MemLog {
        fn append_txn_batch(&self, _partition: i32, batch: Bytes) -> Result<(), LogError> {
            if let Some(e) = self.fail_writes.lock().unwrap().clone() {
                return Err(e);
            }
            self.batches.lock().unwrap().push(batch);
            Ok(())
        }
        fn txn_partitions(&self) -> Option<i32> {
            Some(1)
        }
        fn read_txn_batches(&self, _partition: i32, offset: i64) -> Result<Bytes, LogError> {
            // Offsets here are batch indexes; each batch holds one record.
            let b = self.batches.lock().unwrap();
            let mut out = bytes::BytesMut::new();
            for (i, batch) in b.iter().enumerate().skip(offset as usize) {
                let mut raw = batch.to_vec();
                crate::records::batch::set_base_offset(&mut raw, i as i64);
                out.extend_from_slice(&raw);
            }
            Ok(out.freeze())
        }
        fn next_producer_id(&self) -> Result<i64, LogError> {
            if let Some(e) = self.fail_ids.lock().unwrap().clone() {
                return Err(e);
            }
            let mut n = self.next_id.lock().unwrap();
            *n += 1;
            Ok(*n)
        }
        fn transaction_version(&self) -> i16 {
            *self.tv.lock().unwrap()
        }
        fn write_marker(&self, tp: &TopicPartition, producer_id: i64, epoch: i16, commit: bool) -> Result<(), MarkerError> {
            if *self.fail_markers.lock().unwrap() {
                return Err(MarkerError::Failed("disk".into()));
            }
            self.markers.lock().unwrap().push((tp.clone(), producer_id, epoch, commit));
            Ok(())
        }
    }

    fn coordinator() -> TransactionCoordinator {
        TransactionCoordinator::new(TxnConfig { abort_timed_out_interval_ms: 0, ..TxnConfig::default() })
    }

    fn tp(p: i32) -> TopicPartition {
        TopicPartition::new("t".to_string(), p)
    }

    #[test]
    fn commit_writes_markers_to_every_partition_and_survives_a_reload() {
        let (c, log) = (coordinator(), MemLog::default());
        let (pid, epoch) = c.init_producer_id(&log, "tx", 60_000, None).unwrap();
        assert_eq!(epoch, 0);
        c.add_partitions(&log, "tx", pid, epoch, &[tp(0), tp(1)], ClientTv::Classic).unwrap();
        assert_eq!(c.describe("tx").unwrap().state, TxnState::Ongoing);
        c.verify_produce("tx", pid, epoch, &tp(1)).unwrap();
        assert_eq!(c.verify_produce("tx", pid, epoch, &tp(2)), Err(TxnError::InvalidTxnState));
        c.end_txn(&log, "tx", pid, epoch, true, ClientTv::Classic).unwrap();
        assert_eq!(*log.markers.lock().unwrap(), vec![(tp(0), pid, 0, true), (tp(1), pid, 0, true)]);
        // A retried commit succeeds; an abort of the committed transaction does not.
        c.end_txn(&log, "tx", pid, epoch, true, ClientTv::Classic).unwrap();
        assert_eq!(c.end_txn(&log, "tx", pid, epoch, false, ClientTv::Classic), Err(TxnError::InvalidTxnState));
        let reloaded = coordinator();
        assert_eq!(reloaded.load(&log).unwrap(), 1);
        let m = reloaded.describe("tx").unwrap();
        assert_eq!((m.producer_id, m.producer_epoch, m.state), (pid, 0, TxnState::CompleteCommit));
    }

    #[test]
    fn a_second_init_fences_the_first_producer_and_aborts_its_transaction() {
        let (c, log) = (coordinator(), MemLog::default());
        let (pid, e0) = c.init_producer_id(&log, "tx", 60_000, None).unwrap();
        c.add_partitions(&log, "tx", pid, e0, &[tp(0)], ClientTv::Classic).unwrap();
        let (pid2, e1) = c.init_producer_id(&log, "tx", 60_000, None).unwrap();
        assert_eq!(pid2, pid);
        assert!(e1 > e0);
        // The abort marker went out at the bumped epoch, so the partition refuses the old one.
        assert_eq!(*log.markers.lock().unwrap(), vec![(tp(0), pid, e1, false)]);
        assert_eq!(c.add_partitions(&log, "tx", pid, e0, &[tp(0)], ClientTv::Classic), Err(TxnError::ProducerFenced));
        assert_eq!(c.end_txn(&log, "tx", pid, e0, true, ClientTv::Classic), Err(TxnError::ProducerFenced));
        assert_eq!(c.verify_produce("tx", pid, e0, &tp(0)), Err(TxnError::ProducerFenced));
        assert_eq!(c.end_txn(&log, "tx", 999, e1, true, ClientTv::Classic), Err(TxnError::InvalidProducerIdMapping));
        // KIP-360: only the current (id, epoch) may ask for a bump.
        assert_eq!(c.init_producer_id(&log, "tx", 60_000, Some((pid, e0))), Err(TxnError::ProducerFenced));
        assert_eq!(c.init_producer_id(&log, "tx", 60_000, Some((pid, e1))).unwrap(), (pid, e1 + 1));
    }

    #[test]
    fn timeouts_are_bounded_and_expired_transactions_are_aborted_with_a_fence() {
        let (c, log) = (coordinator(), MemLog::default());
        assert_eq!(c.init_producer_id(&log, "tx", 0, None), Err(TxnError::InvalidTransactionTimeout));
        assert_eq!(c.init_producer_id(&log, "tx", 900_001, None), Err(TxnError::InvalidTransactionTimeout));
        let (pid, e) = c.init_producer_id(&log, "tx", 1, None).unwrap();
        c.add_partitions(&log, "tx", pid, e, &[tp(3)], ClientTv::Classic).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(5));
        c.tick(&log);
        let m = c.describe("tx").unwrap();
        assert_eq!((m.state, m.producer_epoch), (TxnState::CompleteAbort, e + 1));
        assert_eq!(*log.markers.lock().unwrap(), vec![(tp(3), pid, e + 1, false)]);
        assert_eq!(c.end_txn(&log, "tx", pid, e, false, ClientTv::Classic), Err(TxnError::ProducerFenced));
    }

    #[test]
    fn markers_that_fail_are_retried_by_the_timer_and_after_a_restart() {
        let (c, log) = (coordinator(), MemLog::default());
        let (pid, e) = c.init_producer_id(&log, "tx", 60_000, None).unwrap();
        c.add_partitions(&log, "tx", pid, e, &[tp(0)], ClientTv::Classic).unwrap();
        *log.fail_markers.lock().unwrap() = true;
        c.end_txn(&log, "tx", pid, e, false, ClientTv::Classic).unwrap();
        assert_eq!(c.describe("tx").unwrap().state, TxnState::PrepareAbort);
        assert_eq!(c.add_partitions(&log, "tx", pid, e, &[tp(0)], ClientTv::Classic), Err(TxnError::ConcurrentTransactions));
        // A restart while in Prepare finishes the transaction.
        *log.fail_markers.lock().unwrap() = false;
        let reloaded = coordinator();
        reloaded.load(&log).unwrap();
        assert_eq!(reloaded.describe("tx").unwrap().state, TxnState::CompleteAbort);
        assert_eq!(*log.markers.lock().unwrap(), vec![(tp(0), pid, e, false)]);
        // And the timer does it without a restart.
        c.tick(&log);
        assert_eq!(c.describe("tx").unwrap().state, TxnState::CompleteAbort);
    }

    /// A KIP-890 producer: every EndTxn v5 moves it one epoch up, its markers carry the new
    /// epoch, and a retry at the old one is answered as Kafka 4.0 answers it.
    #[test]
    fn a_kip890_end_bumps_the_epoch_and_retries_are_recognised() {
        let (c, log) = (coordinator(), MemLog::default());
        *log.tv.lock().unwrap() = 2;
        let (pid, e) = c.init_producer_id(&log, "tx", 60_000, None).unwrap();
        c.add_partitions(&log, "tx", pid, e, &[tp(0)], ClientTv::V2).unwrap();
        assert_eq!(c.end_txn(&log, "tx", pid, e, true, ClientTv::V2), Ok((pid, e + 1)));
        assert_eq!(*log.markers.lock().unwrap(), vec![(tp(0), pid, e + 1, true)]);
        let m = c.describe("tx").unwrap();
        assert_eq!((m.state, m.producer_epoch, m.client_tv), (TxnState::CompleteCommit, e + 1, 2));
        // The same commit again, at the epoch it was sent with: done, with the new epoch.
        assert_eq!(c.end_txn(&log, "tx", pid, e, true, ClientTv::V2), Ok((pid, e + 1)));
        assert_eq!(c.end_txn(&log, "tx", pid, e, false, ClientTv::V2), Err(TxnError::InvalidTxnState), "abort as a retry of a commit");
        assert_eq!(c.end_txn(&log, "tx", pid, e + 1, true, ClientTv::V2), Err(TxnError::InvalidTxnState), "commit with nothing open");
        for stale in [e + 2, e.wrapping_sub(1)] {
            assert_eq!(c.end_txn(&log, "tx", pid, stale, true, ClientTv::V2), Err(TxnError::ProducerFenced), "epoch {stale}");
        }
        assert_eq!(c.end_txn(&log, "tx", pid + 7, e + 1, false, ClientTv::V2), Err(TxnError::InvalidProducerIdMapping));
        // An abort with nothing open bumps the epoch and writes no marker.
        assert_eq!(c.end_txn(&log, "tx", pid, e + 1, false, ClientTv::V2), Ok((pid, e + 2)));
        assert_eq!(log.markers.lock().unwrap().len(), 1);
        assert_eq!(c.end_txn(&log, "tx", pid, e + 1, false, ClientTv::V2), Ok((pid, e + 2)), "its retry");
        // Partitions join at the new epoch only; the state survives a reload.
        assert_eq!(c.add_partitions(&log, "tx", pid, e + 1, &[tp(1)], ClientTv::V2), Err(TxnError::ProducerFenced));
        c.add_partitions(&log, "tx", pid, e + 2, &[tp(1)], ClientTv::V2).unwrap();
        let reloaded = coordinator();
        reloaded.load(&log).unwrap();
        assert_eq!(reloaded.describe("tx"), c.describe("tx"));
        // Markers that cannot be written yet: the producer is told its new epoch, and a retry
        // waits (CONCURRENT_TRANSACTIONS) until the timer has written them.
        *log.fail_markers.lock().unwrap() = true;
        assert_eq!(c.end_txn(&log, "tx", pid, e + 2, false, ClientTv::V2), Ok((pid, e + 3)));
        assert_eq!(c.end_txn(&log, "tx", pid, e + 2, false, ClientTv::V2), Err(TxnError::ConcurrentTransactions));
        *log.fail_markers.lock().unwrap() = false;
        c.tick(&log);
        assert_eq!(c.end_txn(&log, "tx", pid, e + 2, false, ClientTv::V2), Ok((pid, e + 3)));
        assert_eq!(log.markers.lock().unwrap().last(), Some(&(tp(1), pid, e + 3, false)));
    }

    #[test]
    fn an_exhausted_epoch_moves_a_kip890_producer_to_a_new_id_after_its_markers() {
        let (c, log) = (coordinator(), MemLog::default());
        *log.tv.lock().unwrap() = 2;
        let (pid, _) = c.init_producer_id(&log, "tx", 60_000, None).unwrap();
        let last = i16::MAX - 1;
        {
            let shards = c.txns.view(1);
            let mut txns = shards.lock_id("tx");
            let m = txns.get_mut("tx").unwrap();
            m.producer_epoch = last;
        }
        c.add_partitions(&log, "tx", pid, last, &[tp(0)], ClientTv::V2).unwrap();
        let (next, epoch) = c.end_txn(&log, "tx", pid, last, true, ClientTv::V2).unwrap();
        assert!(next != pid && epoch == 0, "{next} {epoch}");
        assert_eq!(*log.markers.lock().unwrap(), vec![(tp(0), pid, i16::MAX, true)]);
        let m = c.describe("tx").unwrap();
        assert_eq!((m.producer_id, m.producer_epoch, m.previous_producer_id, m.next_producer_id), (next, 0, pid, -1));
        // A retry with the old id and epoch is recognised, also after a reload.
        assert_eq!(c.end_txn(&log, "tx", pid, last, true, ClientTv::V2), Ok((next, 0)));
        let reloaded = coordinator();
        reloaded.load(&log).unwrap();
        assert_eq!(reloaded.end_txn(&log, "tx", pid, last, true, ClientTv::V2), Ok((next, 0)));
        c.add_partitions(&log, "tx", next, 0, &[tp(0)], ClientTv::V2).unwrap();
    }

    /// From transaction.version 2 the coordinator's own aborts (a new producer taking over, a
    /// timeout) go two epochs up, so the fenced producer's EndTxn at its epoch is no retry.
    #[test]
    fn at_transaction_version_2_the_coordinators_aborts_fence_two_epochs_up() {
        for (tv, steps) in [(0, 1), (1, 1), (2, 2)] {
            let (c, log) = (coordinator(), MemLog::default());
            *log.tv.lock().unwrap() = tv;
            let (pid, e) = c.init_producer_id(&log, "tx", 60_000, None).unwrap();
            c.add_partitions(&log, "tx", pid, e, &[tp(0)], ClientTv::V2).unwrap();
            let (_, e1) = c.init_producer_id(&log, "tx", 60_000, None).unwrap();
            assert_eq!(e1, e + steps, "tv {tv}");
            assert_eq!(*log.markers.lock().unwrap(), vec![(tp(0), pid, e + steps, false)]);
            assert_eq!(c.end_txn(&log, "tx", pid, e, false, ClientTv::V2), Err(TxnError::ProducerFenced), "tv {tv}");

            let (pid, e) = c.init_producer_id(&log, "ty", 1, None).unwrap();
            c.add_partitions(&log, "ty", pid, e, &[tp(3)], ClientTv::V2).unwrap();
            std::thread::sleep(std::time::Duration::from_millis(5));
            c.tick(&log);
            let m = c.describe("ty").unwrap();
            assert_eq!((m.state, m.producer_epoch), (TxnState::CompleteAbort, e + steps), "tv {tv}");
            let fenced = if tv >= 2 { Err(TxnError::ProducerFenced) } else { Ok((pid, e + 1)) };
            assert_eq!(c.end_txn(&log, "ty", pid, e, false, ClientTv::V2), fenced, "tv {tv}: a retry only below 2");
        }
    }

    /// The value version follows the finalized level: v0 at 0, v1 with the client's version from 1.
    #[test]
    fn state_records_take_the_value_version_of_the_finalized_level() {
        for tv in [0, 1, 2] {
            let (c, log) = (coordinator(), MemLog::default());
            *log.tv.lock().unwrap() = tv;
            let (pid, e) = c.init_producer_id(&log, "tx", 60_000, None).unwrap();
            c.add_partitions(&log, "tx", pid, e, &[tp(0)], ClientTv::V2).unwrap();
            let batches = log.batches.lock().unwrap().clone();
            let (records, _) = internal::decode_batches_with_next(batches.last().unwrap().clone(), &mut internal::PendingTxnRecords::new()).unwrap();
            let value = records[0].1.clone().unwrap();
            assert_eq!(i16::from_be_bytes([value[0], value[1]]), log::value_version(tv));
            let reloaded = coordinator();
            reloaded.load(&log).unwrap();
            assert_eq!(reloaded.describe("tx").unwrap().client_tv, if tv >= 1 { 2 } else { 0 }, "tv {tv}");
        }
    }

    fn every_log_error() -> Vec<LogError> {
        vec![
            LogError::PartitionOffline("log dir /d offline".into()),
            LogError::Storage("EIO".into()),
            LogError::RecordTooLarge("1048588 > 1048576".into()),
            LogError::TopicUnavailable("being created".into()),
            LogError::Other("cannot encode".into()),
        ]
    }

    #[test]
    fn every_kind_of_state_write_failure_reaches_the_caller_unchanged_and_changes_nothing() {
        for kind in every_log_error() {
            let (c, log) = (coordinator(), MemLog::default());
            let want = Err(TxnError::Log(kind.clone()));
            // InitProducerId of a new id: neither the id reservation nor the state write may fail.
            *log.fail_ids.lock().unwrap() = Some(kind.clone());
            assert_eq!(c.init_producer_id(&log, "tx", 60_000, None), want.clone().map(|()| (0, 0)), "{kind:?}");
            *log.fail_ids.lock().unwrap() = None;
            *log.fail_writes.lock().unwrap() = Some(kind.clone());
            assert_eq!(c.init_producer_id(&log, "tx", 60_000, None), want.clone().map(|()| (0, 0)), "{kind:?}");
            assert_eq!(c.describe("tx"), None, "{kind:?}: an id whose state was not written is unknown");
            *log.fail_writes.lock().unwrap() = None;
            let (pid, epoch) = c.init_producer_id(&log, "tx", 60_000, None).unwrap();
            // AddPartitionsToTxn (and AddOffsetsToTxn, which adds the group's partition).
            *log.fail_writes.lock().unwrap() = Some(kind.clone());
            assert_eq!(c.add_partitions(&log, "tx", pid, epoch, &[tp(0)], ClientTv::Classic), want.clone(), "{kind:?}");
            assert_eq!(c.describe("tx").unwrap().state, TxnState::Empty, "{kind:?}");
            *log.fail_writes.lock().unwrap() = None;
            c.add_partitions(&log, "tx", pid, epoch, &[tp(0)], ClientTv::Classic).unwrap();
            // EndTxn: the PrepareCommit is not written, so no marker goes out.
            *log.fail_writes.lock().unwrap() = Some(kind.clone());
            assert_eq!(c.end_txn(&log, "tx", pid, epoch, true, ClientTv::Classic).map(|_| ()), want.clone(), "{kind:?}");
            assert_eq!(c.describe("tx").unwrap().state, TxnState::Ongoing, "{kind:?}");
            assert!(log.markers.lock().unwrap().is_empty(), "{kind:?}");
            // InitProducerId of a known id (an epoch bump).
            assert_eq!(c.init_producer_id(&log, "tx", 60_000, None), want.clone().map(|()| (0, 0)), "{kind:?}");
            assert_eq!(c.describe("tx").unwrap().producer_epoch, epoch, "{kind:?}");
            *log.fail_writes.lock().unwrap() = None;
            c.end_txn(&log, "tx", pid, epoch, true, ClientTv::Classic).unwrap();
        }
    }

    /// A `__transaction_state` of 4 partitions whose appends to one partition wait at a gate
    /// until the test releases them (saying when one arrives).
    struct GatedLog {
        inner: MemLog,
        held: i32,
        arrived: Mutex<std::sync::mpsc::Sender<i32>>,
        release: Mutex<std::sync::mpsc::Receiver<()>>,
        appended: Mutex<Vec<i32>>,
    }

    impl TxnLog for GatedLog {
        fn append_txn_batch(&self, partition: i32, batch: Bytes) -> Result<(), LogError> {
            if partition == self.held {
                self.arrived.lock().unwrap().send(partition).unwrap();
                self.release.lock().unwrap().recv_timeout(std::time::Duration::from_secs(30)).expect("the test releases the gate");
            }
            self.appended.lock().unwrap().push(partition);
            self.inner.append_txn_batch(partition, batch)
        }
        fn txn_partitions(&self) -> Option<i32> {
            Some(4)
        }
        fn read_txn_batches(&self, _partition: i32, _offset: i64) -> Result<Bytes, LogError> {
            Ok(Bytes::new())
        }
        fn next_producer_id(&self) -> Result<i64, LogError> {
            self.inner.next_producer_id()
        }
        fn transaction_version(&self) -> i16 {
            self.inner.transaction_version()
        }
        fn write_marker(&self, tp: &TopicPartition, producer_id: i64, epoch: i16, commit: bool) -> Result<(), MarkerError> {
            self.inner.write_marker(tp, producer_id, epoch, commit)
        }
    }

    #[test]
    fn a_state_write_waiting_on_one_partition_does_not_hold_up_ids_on_another() {
        let id_on = |p: i32| (0..).map(|i| format!("tx{i}")).find(|id| internal::partition_for(id, 4) == p).unwrap();
        let (held, other) = (id_on(1), id_on(2));
        let (arrived_tx, arrived) = std::sync::mpsc::channel();
        let (release, release_rx) = std::sync::mpsc::channel();
        let log = GatedLog { inner: MemLog::default(), held: 1, arrived: Mutex::new(arrived_tx), release: Mutex::new(release_rx), appended: Mutex::new(vec![]) };
        let c = coordinator();
        std::thread::scope(|s| {
            let blocked = s.spawn(|| c.init_producer_id(&log, &held, 60_000, None));
            assert_eq!(arrived.recv_timeout(std::time::Duration::from_secs(30)), Ok(1));
            // Partition 1's shard is held across its write; partition 2 is served meanwhile.
            assert!(c.txns.view_current().try_lock(1).is_none());
            let (done_tx, done_rx) = std::sync::mpsc::channel();
            let (c, log, other) = (&c, &log, &other);
            s.spawn(move || {
                let r = c.init_producer_id(log, other, 60_000, None).and_then(|(pid, e)| c.add_partitions(log, other, pid, e, &[tp(0)], ClientTv::Classic).map(|()| (pid, e)));
                done_tx.send(r).unwrap();
            });
            let (pid, e) = done_rx.recv_timeout(std::time::Duration::from_secs(30)).expect("partition 2 is not held up by partition 1's write").unwrap();
            c.verify_produce(other, pid, e, &tp(0)).unwrap();
            assert_eq!(*log.appended.lock().unwrap(), vec![2, 2], "partition 1's write is still held");
            release.send(()).unwrap();
            assert!(blocked.join().unwrap().is_ok());
        });
        assert_eq!(*log.appended.lock().unwrap(), vec![2, 2, 1]);
        assert_eq!(c.describe(&held).unwrap().state, TxnState::Empty);
    }

    #[test]
    fn list_filters_by_state_producer_and_duration() {
        let (c, log) = (coordinator(), MemLog::default());
        let (p1, e1) = c.init_producer_id(&log, "a", 60_000, None).unwrap();
        let (p2, _) = c.init_producer_id(&log, "b", 60_000, None).unwrap();
        c.add_partitions(&log, "a", p1, e1, &[tp(0)], ClientTv::Classic).unwrap();
        let ids = |v: Vec<TxnSummary>| v.into_iter().map(|s| s.transactional_id).collect::<Vec<_>>();
        assert_eq!(ids(c.list(&[], &[], -1)), vec!["a", "b"]);
        assert_eq!(ids(c.list(&["Ongoing".into()], &[], -1)), vec!["a"]);
        assert_eq!(ids(c.list(&[], &[p2], -1)), vec!["b"]);
        assert_eq!(ids(c.list(&[], &[], 3_600_000)), Vec::<String>::new());
    }
}

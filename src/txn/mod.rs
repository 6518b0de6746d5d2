//! Transactions: the transaction coordinator (transactional ids, producer epochs, the classic
//! two-phase commit with markers) and the `__transaction_state` record codec. Never imports
//! `broker` or `group`: the logs it writes and the markers it sends go through the `TxnLog` trait
//! the broker implements.

pub mod coordinator;
pub mod log;

use bytes::Bytes;

pub use coordinator::TransactionCoordinator;
use crate::coordinator::LogError;

use crate::types::TopicPartition;

/// The internal topic holding transaction state.
pub const TRANSACTION_STATE_TOPIC: &str = "__transaction_state";

/// Why a marker could not be written to a partition.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MarkerError {
    /// The partition is gone (its topic was deleted): Kafka skips it.
    #[error("unknown partition")]
    UnknownPartition,
    /// Anything else: the marker is retried.
    #[error("{0}")]
    Failed(String),
}

/// What the coordinator needs from the broker.
pub trait TxnLog: Sync {
    /// Appends one record batch to a partition of `__transaction_state`, creating the topic on
    /// first use.
    fn append_txn_batch(&self, partition: i32, batch: Bytes) -> Result<(), LogError>;
    /// Partition count of `__transaction_state`, or None while it does not exist.
    fn txn_partitions(&self) -> Option<i32>;
    /// Whole batches of one partition of `__transaction_state` from `offset`, about a megabyte at
    /// most; empty at the end.
    fn read_txn_batches(&self, partition: i32, offset: i64) -> Result<Bytes, LogError>;
    /// A producer id never handed out before.
    fn next_producer_id(&self) -> Result<i64, LogError>;
    /// Writes a commit or abort marker for the producer to a partition; on `__consumer_offsets`
    /// the group coordinator then applies or drops the transaction's offsets.
    fn write_marker(&self, tp: &TopicPartition, producer_id: i64, epoch: i16, commit: bool) -> Result<(), MarkerError>;
    /// The finalized `transaction.version`: the `__transaction_state` value version, and how far
    /// the coordinator's own aborts bump the epoch.
    fn transaction_version(&self) -> i16;
}

/// The transaction protocol a request speaks (Kafka's TransactionVersion as the coordinator
/// reads it from the request's version, whatever the finalized feature level).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientTv {
    /// The classic protocol: the producer adds partitions, and EndTxn keeps its epoch.
    Classic,
    /// KIP-890 part 2 (EndTxn v5+, AddPartitionsToTxn v4+ from a partition leader): every
    /// EndTxn bumps the epoch, and partitions join through their leaders.
    V2,
}

impl ClientTv {
    /// The ClientTransactionVersion stored with the transaction.
    pub fn level(self) -> i16 {
        match self {
            ClientTv::Classic => 0,
            ClientTv::V2 => 2,
        }
    }
}

/// Limits and timings, from the broker configuration (Kafka's property names).
#[derive(Clone, Debug)]
pub struct TxnConfig {
    /// transaction.max.timeout.ms: the largest transaction.timeout.ms a producer may ask for.
    pub max_timeout_ms: i32,
    /// transaction.state.log.num.partitions: used until the topic exists.
    pub state_log_partitions: i32,
    /// transactional.id.expiration.ms: ids without a transaction for this long are forgotten.
    pub id_expiration_ms: i64,
    /// transaction.abort.timed.out.transaction.cleanup.interval.ms.
    pub abort_timed_out_interval_ms: u64,
    /// transaction.remove.expired.transaction.cleanup.interval.ms.
    pub remove_expired_interval_ms: u64,
}

impl Default for TxnConfig {
    fn default() -> Self {
        TxnConfig {
            max_timeout_ms: 900_000,
            state_log_partitions: 50,
            id_expiration_ms: 7 * 24 * 3_600_000,
            abort_timed_out_interval_ms: 10_000,
            remove_expired_interval_ms: 3_600_000,
        }
    }
}

/// Why a transaction request failed; `api::error_code::txn` turns it into Kafka's code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TxnError {
    #[error("transaction.timeout.ms outside (0, transaction.max.timeout.ms]")]
    InvalidTransactionTimeout,
    #[error("the producer was fenced by a newer epoch")]
    ProducerFenced,
    #[error("the producer id does not own this transactional id")]
    InvalidProducerIdMapping,
    #[error("a previous transaction is still being completed")]
    ConcurrentTransactions,
    #[error("the request does not fit the transaction's state")]
    InvalidTxnState,
    #[error("no such transactional id")]
    TransactionalIdNotFound,
    /// A write to `__transaction_state` (or the reservation of a producer id) failed; what
    /// failed decides the code.
    #[error("cannot write to {TRANSACTION_STATE_TOPIC}: {0}")]
    Log(#[from] LogError),
}

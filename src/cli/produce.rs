//! `fjord produce`: records from stdin or a file, one per line (a value, or key SEP value with
//! `-K SEP`), with fixed headers and an optional partition, sent as v2 record batches to each
//! partition's leader with acks=all. Keyed records go to the partition Kafka's Java producer
//! picks (murmur2 of the key), so a key lands where Kafka's own clients would put it; unkeyed
//! records fill one batch per partition in turn. The producer is idempotent, as Kafka's Java
//! producer is by default: a producer id from InitProducerId and a sequence number per partition
//! let the leader drop a batch it already has, so a batch whose answer was lost (a dropped
//! connection, a timeout, an election) is sent again without being written twice. Against a
//! broker without InitProducerId the tool produces without it and retries only what was
//! certainly not written.

use std::collections::BTreeMap;
use std::process::ExitCode;

use anyhow::{Context, Result, anyhow, bail};
use bytes::{Bytes, BytesMut};
use clap::Args;
use kafka_protocol::messages::{ProduceRequest, produce_request::{PartitionProduceData, TopicProduceData}};
use kafka_protocol::records::{Compression, Record, RecordBatchEncoder, RecordEncodeOptions};
use serde_json::json;
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncReadExt, BufReader};

use super::Common;
use super::conn::{Cluster, error_name, send_capped, str_bytes, topic_name};
use super::output::{Progress, print_json};
use super::topic::parse_key_value;

/// Records per batch before it is sent.
const BATCH_RECORDS_MAX: usize = 1_000;
/// Encoded key+value+header bytes per batch before it is sent: well under Kafka's default
/// message.max.bytes (1 MiB), which a batch must fit.
const BATCH_BYTES_MAX: usize = 512 * 1024;
/// The longest input line accepted; a longer one is an error rather than an unbounded buffer.
const LINE_BYTES_MAX: usize = 16 << 20;
/// How long the leader may wait for the in-sync replicas.
const PRODUCE_TIMEOUT_MS: i32 = 30_000;
/// Tries of one batch while its partition has no leader or the leader moved (a topic just
/// created, an election); the batch was not written then, so sending it again is safe.
const LEADER_TRIES: usize = 20;
const LEADER_RETRY_MS: u64 = 250;

/// UNKNOWN_TOPIC_OR_PARTITION, LEADER_NOT_AVAILABLE, NOT_LEADER_OR_FOLLOWER: nothing was
/// appended; ask for the leader again and resend.
fn leader_retriable(code: i16) -> bool {
    matches!(code, 3 | 5 | 6)
}

/// REQUEST_TIMED_OUT, NOT_ENOUGH_REPLICAS, NOT_ENOUGH_REPLICAS_AFTER_APPEND: the batch may or
/// may not be in the log; only an idempotent producer may send it again.
fn idempotent_retriable(code: i16) -> bool {
    matches!(code, 7 | 19 | 20)
}

/// The producer id and epoch, and the next sequence number of each partition.
struct Idempotence {
    producer_id: i64,
    epoch: i16,
    sequences: BTreeMap<i32, i32>,
}

impl Idempotence {
    /// InitProducerId without a transactional id, as Kafka's producer starts; None when the
    /// broker does not serve it.
    async fn init(cluster: &mut Cluster) -> Result<Option<Idempotence>> {
        use kafka_protocol::messages::{InitProducerIdRequest, ProducerId};
        let client = cluster.bootstrap();
        if client.peer_versions(<InitProducerIdRequest as kafka_protocol::protocol::Request>::KEY).is_none() {
            eprintln!("the broker serves no InitProducerId: producing without idempotence");
            return Ok(None);
        }
        let request = InitProducerIdRequest::default().with_transactional_id(None).with_transaction_timeout_ms(-1).with_producer_id(ProducerId(-1)).with_producer_epoch(-1);
        let mut tries = 0;
        loop {
            tries += 1;
            // v4 at most: every field this producer sets exists since v3.
            let response = send_capped(cluster.bootstrap(), &request, 4).await?;
            match response.error_code {
                0 => return Ok(Some(Idempotence { producer_id: response.producer_id.0, epoch: response.producer_epoch, sequences: BTreeMap::new() })),
                // COORDINATOR_LOAD_IN_PROGRESS, COORDINATOR_NOT_AVAILABLE, NOT_COORDINATOR
                14..=16 if tries < LEADER_TRIES => tokio::time::sleep(std::time::Duration::from_millis(LEADER_RETRY_MS)).await,
                code => bail!("InitProducerId: {}", error_name(code)),
            }
        }
    }

    /// Stamps the batch's records with the producer id, epoch and their sequence numbers.
    fn stamp(&self, partition: i32, records: &mut [Record]) {
        let base = self.sequences.get(&partition).copied().unwrap_or(0);
        for (i, r) in records.iter_mut().enumerate() {
            r.producer_id = self.producer_id;
            r.producer_epoch = self.epoch;
            // Sequences wrap at i32::MAX, as Kafka's do.
            r.sequence = base.wrapping_add(i as i32) & i32::MAX;
        }
    }

    fn advance(&mut self, partition: i32, count: usize) {
        let next = self.sequences.get(&partition).copied().unwrap_or(0).wrapping_add(count as i32) & i32::MAX;
        self.sequences.insert(partition, next);
    }
}

#[derive(Args, Debug)]
pub struct ProduceArgs {
    /// The topic to write to.
    #[arg(short, long)]
    pub topic: String,
    /// Write every record to this partition (default: by key, as Kafka's producer does).
    #[arg(short, long)]
    pub partition: Option<i32>,
    /// Split each line at the first SEP into key and value (like kcat -K).
    #[arg(short = 'K', long = "key-separator", value_name = "SEP")]
    pub key_separator: Option<String>,
    /// A header on every record, repeatable: -H source=cli
    #[arg(short = 'H', long = "header", value_name = "KEY=VALUE")]
    pub headers: Vec<String>,
    /// Read records from FILE instead of stdin (progress is shown on stderr).
    #[arg(short, long, value_name = "FILE")]
    pub file: Option<std::path::PathBuf>,
    /// Compression of the batches.
    #[arg(short = 'z', long, default_value = "none", value_parser = ["none", "gzip", "snappy", "lz4", "zstd"])]
    pub compression: String,
}

fn compression(name: &str) -> Compression {
    match name {
        "gzip" => Compression::Gzip,
        "snappy" => Compression::Snappy,
        "lz4" => Compression::Lz4,
        "zstd" => Compression::Zstd,
        _ => Compression::None,
    }
}

/// Splits one input line (without its newline) into key and value.
pub fn parse_line(line: &[u8], separator: Option<&[u8]>) -> (Option<Bytes>, Bytes) {
    if let Some(sep) = separator.filter(|s| !s.is_empty()) {
        if let Some(at) = line.windows(sep.len()).position(|w| w == sep) {
            return (Some(Bytes::copy_from_slice(&line[..at])), Bytes::copy_from_slice(&line[at + sep.len()..]));
        }
    }
    (None, Bytes::copy_from_slice(line))
}

/// Records waiting for one partition's next batch.
#[derive(Default)]
struct Pending {
    records: Vec<Record>,
    bytes: usize,
}

/// Where a batch was appended.
struct ProducedAt {
    base_offset: i64,
}

/// What was written to one partition.
#[derive(Default)]
struct Written {
    records: u64,
    first_offset: Option<i64>,
    last_offset: i64,
}

pub async fn run(cluster: &mut Cluster, common: &Common, args: ProduceArgs) -> Result<ExitCode> {
    let topic = cluster.topic(&args.topic).await?;
    let partitions = topic.partitions.len() as i32;
    if partitions == 0 {
        bail!("topic {} has no partitions", args.topic);
    }
    if let Some(p) = args.partition {
        if !(0..partitions).contains(&p) {
            bail!("topic {} has partitions 0..{}; there is no partition {p}", args.topic, partitions - 1);
        }
    }
    let mut leaders: BTreeMap<i32, i32> = topic.partitions.iter().map(|p| (p.partition, p.leader)).collect();
    let headers = args.headers.iter().map(|h| parse_key_value(h)).collect::<Result<Vec<_>>>()?;
    let codec = compression(&args.compression);
    let mut idempotence = Idempotence::init(cluster).await?;
    let separator = args.key_separator.as_deref().map(str::as_bytes);

    let mut input: Box<dyn AsyncBufRead + Unpin> = match &args.file {
        Some(path) => Box::new(BufReader::new(tokio::fs::File::open(path).await.with_context(|| format!("opening {}", path.display()))?)),
        None => Box::new(BufReader::new(tokio::io::stdin())),
    };
    let mut progress = Progress::new("records produced", None);
    let mut pending: BTreeMap<i32, Pending> = BTreeMap::new();
    let mut written: BTreeMap<i32, Written> = BTreeMap::new();
    let mut total: u64 = 0;
    let mut next_unkeyed = 0i32;
    let mut line = Vec::new();
    loop {
        line.clear();
        let n = AsyncReadExt::take(&mut input, LINE_BYTES_MAX as u64 + 1).read_until(b'\n', &mut line).await.context("reading the records")?;
        if n == 0 {
            break;
        }
        if line.len() > LINE_BYTES_MAX {
            bail!("a line longer than {LINE_BYTES_MAX} bytes");
        }
        if line.last() == Some(&b'\n') {
            line.pop();
            if line.last() == Some(&b'\r') {
                line.pop();
            }
        }
        let (key, value) = parse_line(&line, separator);
        let partition = match (args.partition, &key) {
            (Some(p), _) => p,
            (None, Some(k)) => crate::records::partitioner::partition_for_key(k, partitions),
            // Unkeyed: stick to one partition until its batch is sent (Kafka's sticky partitioner).
            (None, None) => next_unkeyed,
        };
        let now_ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64);
        let batch = pending.entry(partition).or_default();
        let offset = batch.records.len() as i64;
        let mut record = crate::records::plain_record(offset, now_ms, key, Some(value));
        for (k, v) in &headers {
            record.headers.insert(str_bytes(k), Some(Bytes::copy_from_slice(v.as_bytes())));
        }
        batch.bytes += line.len() + headers.iter().map(|(k, v)| k.len() + v.len()).sum::<usize>() + 16;
        batch.records.push(record);
        if batch.records.len() >= BATCH_RECORDS_MAX || batch.bytes >= BATCH_BYTES_MAX {
            let full = pending.remove(&partition).unwrap_or_default();
            total += send_batch(cluster, &args.topic, &mut leaders, partition, full, codec, idempotence.as_mut(), &mut written).await?;
            if args.partition.is_none() && partition == next_unkeyed {
                next_unkeyed = (next_unkeyed + 1) % partitions;
            }
            progress.update(total);
        }
    }
    for (partition, batch) in std::mem::take(&mut pending) {
        total += send_batch(cluster, &args.topic, &mut leaders, partition, batch, codec, idempotence.as_mut(), &mut written).await?;
        progress.update(total);
    }
    progress.finish(total, false);
    if common.json {
        let parts: Vec<_> = written.iter().map(|(p, w)| json!({"partition": p, "records": w.records, "first_offset": w.first_offset, "last_offset": w.last_offset})).collect();
        print_json(&json!({"topic": args.topic, "records": total, "partitions": parts}));
    } else {
        eprintln!("Produced {total} records to {}.", args.topic);
    }
    Ok(ExitCode::SUCCESS)
}

/// Encodes one batch and sends it to the partition's leader with acks=all; an idempotent
/// producer sends it again, unchanged, until it is acknowledged or an error is final.
#[allow(clippy::too_many_arguments)]
async fn send_batch(
    cluster: &mut Cluster,
    topic: &str,
    leaders: &mut BTreeMap<i32, i32>,
    partition: i32,
    mut batch: Pending,
    codec: Compression,
    mut idempotence: Option<&mut Idempotence>,
    written: &mut BTreeMap<i32, Written>,
) -> Result<u64> {
    if batch.records.is_empty() {
        return Ok(0);
    }
    let count = batch.records.len() as u64;
    if let Some(i) = idempotence.as_deref() {
        i.stamp(partition, &mut batch.records);
    }
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(&mut buf, &batch.records, &RecordEncodeOptions { version: 2, compression: codec }).map_err(|e| anyhow!("encoding a record batch: {e}"))?;
    let records = buf.freeze();
    let request = ProduceRequest::default().with_acks(-1).with_timeout_ms(PRODUCE_TIMEOUT_MS).with_topic_data(vec![
        TopicProduceData::default().with_name(topic_name(topic)).with_partition_data(vec![PartitionProduceData::default().with_index(partition).with_records(Some(records))]),
    ]);
    let mut tries = 0;
    let base_offset = loop {
        tries += 1;
        let leader = *leaders.get(&partition).ok_or_else(|| anyhow!("no partition {partition}"))?;
        let code = if leader < 0 {
            5
        } else {
            // v12 at most: topic names (v13 names topics by id).
            let sent = match cluster.broker(leader).await {
                Ok(client) => send_capped(&client, &request, 12).await,
                Err(e) => Err(e),
            };
            let response = match sent {
                Ok(r) => r,
                // The answer is lost, not the batch's fate known: only the sequence numbers
                // make sending it again safe.
                Err(e) if idempotence.is_some() && tries < LEADER_TRIES => {
                    eprintln!("producing to {topic}-{partition}: {e:#}; sending the batch again");
                    tokio::time::sleep(std::time::Duration::from_millis(LEADER_RETRY_MS)).await;
                    continue;
                }
                Err(e) => return Err(e),
            };
            let r = response
                .responses
                .iter()
                .flat_map(|t| t.partition_responses.iter())
                .find(|p| p.index == partition)
                .ok_or_else(|| anyhow!("the produce answer does not name {topic}-{partition}"))?;
            if r.error_code == 0 {
                break r.base_offset;
            }
            let retriable = leader_retriable(r.error_code) || (idempotence.is_some() && idempotent_retriable(r.error_code));
            if !retriable || tries >= LEADER_TRIES {
                bail!("producing to {topic}-{partition}: {}{}", error_name(r.error_code), r.error_message.as_ref().map(|m| format!(" ({m})")).unwrap_or_default());
            }
            r.error_code
        };
        if tries >= LEADER_TRIES {
            bail!("producing to {topic}-{partition}: {}", error_name(code));
        }
        tokio::time::sleep(std::time::Duration::from_millis(LEADER_RETRY_MS)).await;
        let info = cluster.topic(topic).await?;
        leaders.extend(info.partitions.iter().map(|p| (p.partition, p.leader)));
    };
    if let Some(i) = idempotence.as_deref_mut() {
        i.advance(partition, batch.records.len());
    }
    let r = ProducedAt { base_offset };
    let w = written.entry(partition).or_default();
    w.records += count;
    w.first_offset.get_or_insert(r.base_offset);
    w.last_offset = r.base_offset + count as i64 - 1;
    Ok(count)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_splits_at_the_first_separator_only() {
        assert_eq!(parse_line(b"k:v:w", Some(b":")), (Some(Bytes::from_static(b"k")), Bytes::from_static(b"v:w")));
        assert_eq!(parse_line(b"no-separator", Some(b":")), (None, Bytes::from_static(b"no-separator")));
        assert_eq!(parse_line(b"k:v", None), (None, Bytes::from_static(b"k:v")));
        assert_eq!(parse_line(b"k::v", Some(b"::")), (Some(Bytes::from_static(b"k")), Bytes::from_static(b"v")));
    }
}

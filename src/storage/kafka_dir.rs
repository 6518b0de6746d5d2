//! Readers for the files Apache Kafka leaves in a log dir that Fjord's own layout does not share:
//! `partition.metadata` (a partition's topic id), Kafka's producer-state `.snapshot` files, and
//! the topics, partitions and topic configs recorded in `__cluster_metadata-0` (KRaft metadata
//! records in record batches, snapshots included), and what Kafka's format leaves for a new
//! cluster (the voters of a dynamic quorum, `bootstrap.checkpoint`'s metadata.version and SCRAM
//! credentials). Read-only and pure apart from reading files;
//! every length and count is checked against the bytes there before anything is allocated, and
//! a malformed input is an error, never a panic. What Fjord does with the answers lives above
//! (`broker::adopt`, `producer_state`).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use bytes::Bytes;
use kafka_protocol::records::RecordBatchDecoder;
use uuid::Uuid;

use super::producer_state::{BatchMetadata, ProducerEntry};
use crate::metadata::records::UserScramCredentialRecord;
use crate::records::batch::{BatchHeader, HEADER_SIZE};

/// The directory of the KRaft metadata log in a Kafka log dir.
pub const CLUSTER_METADATA_DIR: &str = "__cluster_metadata-0";
/// The file naming a Kafka partition's topic id.
pub const PARTITION_METADATA_FILE: &str = "partition.metadata";

/// A bigger metadata batch than this is taken for corruption: KRaft writes batches of at most
/// 8 MiB (its `MAX_BATCH_SIZE_BYTES`), so twice that leaves room without trusting a wild length.
const METADATA_BATCH_BYTES_MAX: usize = 16 << 20;
/// A Kafka producer snapshot's fixed header: version (i16), CRC (u32), entry count (i32).
const SNAPSHOT_HEADER_BYTES: usize = 10;
/// One snapshot entry: producer id, epoch, last sequence, last offset, offset delta, timestamp,
/// coordinator epoch, first offset of the open transaction.
const SNAPSHOT_ENTRY_BYTES: usize = 8 + 2 + 4 + 8 + 4 + 8 + 4 + 8;
/// The only producer snapshot version Kafka has written (0.11 to 4.x).
const SNAPSHOT_VERSION: i16 = 1;

/// Reads a Kafka producer-state snapshot (`ProducerStateManager`'s format: version 1, a CRC32C
/// of everything after the CRC field, then fixed-size entries). Kafka keeps one batch per
/// producer (its last), so that is all the dedup cache starts with; the log replay after the
/// snapshot adds the rest, as it does in Kafka.
pub fn decode_producer_snapshot(bytes: &[u8]) -> Result<Vec<(i64, ProducerEntry)>, String> {
    if bytes.len() < SNAPSHOT_HEADER_BYTES {
        return Err(format!("{} bytes, shorter than the header", bytes.len()));
    }
    let version = i16::from_be_bytes([bytes[0], bytes[1]]);
    if version != SNAPSHOT_VERSION {
        return Err(format!("unknown snapshot version {version}"));
    }
    let crc = u32::from_be_bytes([bytes[2], bytes[3], bytes[4], bytes[5]]);
    if crc32c::crc32c(&bytes[6..]) != crc {
        return Err("CRC mismatch".into());
    }
    let count = i32::from_be_bytes([bytes[6], bytes[7], bytes[8], bytes[9]]);
    let body = &bytes[SNAPSHOT_HEADER_BYTES..];
    if count < 0 || (count as usize).checked_mul(SNAPSHOT_ENTRY_BYTES) != Some(body.len()) {
        return Err(format!("{count} entries do not fill {} bytes", body.len()));
    }
    let mut out = Vec::with_capacity(count as usize);
    for e in body.chunks_exact(SNAPSHOT_ENTRY_BYTES) {
        let mut r = Cursor(e);
        let producer_id = r.i64()?;
        let epoch = r.i16()?;
        let last_seq = r.i32()?;
        let last_offset = r.i64()?;
        let offset_delta = r.i32()?;
        let last_timestamp = r.i64()?;
        let coordinator_epoch = r.i32()?;
        let current_txn_first_offset = r.i64()?;
        let mut entry = ProducerEntry {
            epoch,
            last_timestamp,
            coordinator_epoch,
            current_txn_first_offset: current_txn_first_offset.max(-1),
            ..Default::default()
        };
        // A producer whose last write was a marker has no batch (offset -1).
        if last_offset >= 0 && last_seq >= 0 && offset_delta >= 0 {
            entry.batches.push_back(BatchMetadata {
                // Sequences wrap at i32::MAX to 0, as Kafka's decrementSequence undoes.
                first_seq: if last_seq >= offset_delta { last_seq - offset_delta } else { i32::MAX - (offset_delta - last_seq) + 1 },
                last_seq,
                first_offset: last_offset - offset_delta as i64,
                last_offset,
            });
        }
        out.push((producer_id, entry));
    }
    Ok(out)
}

/// The topic id in a `partition.metadata` file (`version: 0` then `topic_id: <base64>`).
pub fn parse_partition_metadata(text: &str) -> Result<Uuid, String> {
    let mut lines = text.lines();
    match lines.next().map(str::trim) {
        Some("version: 0") => {}
        other => return Err(format!("unknown first line {other:?}")),
    }
    let id = lines
        .next()
        .and_then(|l| l.trim().strip_prefix("topic_id:"))
        .map(str::trim)
        .ok_or("no topic_id line")?;
    parse_kafka_uuid(id)
}

/// A UUID in Kafka's text form (URL-safe base64 of its 16 bytes, no padding).
pub fn parse_kafka_uuid(s: &str) -> Result<Uuid, String> {
    use base64::Engine;
    if s.len() != 22 {
        return Err(format!("topic id {s:?} is not 22 characters"));
    }
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(s).map_err(|e| format!("topic id {s:?}: {e}"))?;
    let bytes: [u8; 16] = bytes.try_into().map_err(|_| format!("topic id {s:?} is not 16 bytes"))?;
    Ok(Uuid::from_bytes(bytes))
}

/// One topic as Kafka's metadata log left it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KafkaTopic {
    pub name: String,
    pub id: Uuid,
    pub partitions: BTreeSet<i32>,
    pub configs: BTreeMap<String, String>,
}

/// What the metadata records replayed so far say about topics.
#[derive(Debug, Default)]
pub struct MetadataImage {
    topics: BTreeMap<Uuid, KafkaTopic>,
    /// ConfigRecords name topics, not ids, and may come before their TopicRecord.
    topic_configs: HashMap<String, BTreeMap<String, String>>,
    /// The first producer id of the next block Kafka's controller would hand out: ids below it
    /// may be in use (in producer snapshots, `__transaction_state`).
    pub next_producer_id: Option<i64>,
    /// Records replayed, and records of kinds this reader has no use for.
    pub records: u64,
    pub ignored: u64,
}

// KRaft metadata record api keys (metadata/src/main/resources/common/metadata/*.json).
const TOPIC_RECORD: u32 = 2;
const PARTITION_RECORD: u32 = 3;
const CONFIG_RECORD: u32 = 4;
const REMOVE_TOPIC_RECORD: u32 = 9;
const USER_SCRAM_CREDENTIAL_RECORD: u32 = 11;
const FEATURE_LEVEL_RECORD: u32 = 12;
const PRODUCER_IDS_RECORD: u32 = 15;
/// ConfigResource.Type.TOPIC.
const TOPIC_RESOURCE: i8 = 2;
/// The metadata record frame version Kafka writes and accepts.
const FRAME_VERSION: u32 = 1;

impl MetadataImage {
    /// The topics with their configs, by name.
    pub fn topics(&self) -> Vec<KafkaTopic> {
        let mut out: Vec<KafkaTopic> = self
            .topics
            .values()
            .map(|t| KafkaTopic { configs: self.topic_configs.get(&t.name).cloned().unwrap_or_default(), ..t.clone() })
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        out
    }

    /// Applies one metadata record (a record value: frame version, api key, version, body).
    pub fn apply(&mut self, value: &[u8]) -> Result<(), String> {
        let mut r = Cursor(value);
        let api_key = r.record_frame()?;
        self.records += 1;
        // Every field read here is first in its record and unchanged in all versions so far;
        // later fields (replicas, ISR, tagged fields) are not needed.
        match api_key {
            TOPIC_RECORD => {
                let name = r.compact_str()?.ok_or("TopicRecord without a name")?;
                let id = r.uuid()?;
                self.topics.insert(id, KafkaTopic { name, id, partitions: BTreeSet::new(), configs: BTreeMap::new() });
            }
            PARTITION_RECORD => {
                let partition = r.i32()?;
                let id = r.uuid()?;
                if partition < 0 {
                    return Err(format!("PartitionRecord for partition {partition}"));
                }
                match self.topics.get_mut(&id) {
                    Some(t) => {
                        t.partitions.insert(partition);
                    }
                    None => return Err(format!("PartitionRecord for unknown topic id {id}")),
                }
            }
            CONFIG_RECORD => {
                let resource_type = r.i8()?;
                let resource = r.compact_str()?.ok_or("ConfigRecord without a resource name")?;
                let name = r.compact_str()?.ok_or("ConfigRecord without a config name")?;
                let value = r.compact_str()?;
                if resource_type != TOPIC_RESOURCE {
                    self.ignored += 1;
                    return Ok(());
                }
                let configs = self.topic_configs.entry(resource).or_default();
                match value {
                    Some(v) => configs.insert(name, v),
                    None => configs.remove(&name),
                };
            }
            REMOVE_TOPIC_RECORD => {
                let id = r.uuid()?;
                if let Some(t) = self.topics.remove(&id) {
                    self.topic_configs.remove(&t.name);
                }
            }
            PRODUCER_IDS_RECORD => {
                let _broker_id = r.i32()?;
                let _broker_epoch = r.i64()?;
                let next = r.i64()?;
                if next < 0 {
                    return Err(format!("ProducerIdsRecord with next producer id {next}"));
                }
                self.next_producer_id = Some(self.next_producer_id.unwrap_or(0).max(next));
            }
            _ => self.ignored += 1,
        }
        Ok(())
    }

    /// Applies every metadata record of the batches in `data` at offset `from` or later.
    /// Control batches (leader changes, snapshot headers and footers) carry no metadata records.
    /// Returns the offset after the last batch read.
    pub fn apply_batches(&mut self, data: &[u8], from: i64) -> Result<i64, String> {
        let mut next = from;
        let mut rest = data;
        while !rest.is_empty() {
            let (header, batch) = next_batch(&mut rest)?;
            self.apply_batch(header, batch, from)?;
            next = next.max(header.last_offset() + 1);
        }
        Ok(next)
    }

    fn apply_batch(&mut self, header: BatchHeader<'_>, batch: &[u8], from: i64) -> Result<(), String> {
        for_each_record_value(header, batch, from, |offset, value| self.apply(value).map_err(|e| format!("record at offset {offset}: {e}")))
    }
}

/// Calls `f` with (offset, value) of every record at `from` or later of a batch of metadata
/// records. Control batches (leader changes, snapshot headers and footers) carry none.
fn for_each_record_value(header: BatchHeader<'_>, batch: &[u8], from: i64, mut f: impl FnMut(i64, &[u8]) -> Result<(), String>) -> Result<(), String> {
    if header.is_control() || header.last_offset() < from {
        return Ok(());
    }
    let mut buf = Bytes::copy_from_slice(batch);
    let set = RecordBatchDecoder::decode(&mut buf).map_err(|e| format!("batch at offset {}: {e}", header.base_offset()))?;
    for record in set.records {
        if record.offset < from {
            continue;
        }
        if let Some(value) = record.value {
            f(record.offset, &value)?;
        }
    }
    Ok(())
}

/// The next batch of `rest` (KRaft's metadata log or snapshot), moved past: its offsets, length,
/// magic (2) and CRC checked before anything reads its records.
fn next_batch<'a>(rest: &mut &'a [u8]) -> Result<(BatchHeader<'a>, &'a [u8]), String> {
    let header = BatchHeader::parse(rest).ok_or("a batch shorter than its header")?;
    let size = header.total_size();
    if header.base_offset() < 0 || header.last_offset_delta() < 0 {
        return Err(format!("batch with base offset {} and last offset delta {}", header.base_offset(), header.last_offset_delta()));
    }
    if header.batch_length() < 0 || size > rest.len() {
        return Err(format!("batch at offset {} claims {size} bytes, {} left", header.base_offset(), rest.len()));
    }
    if header.magic() != 2 {
        return Err(format!("batch at offset {} has magic {}", header.base_offset(), header.magic()));
    }
    if header.computed_crc() != Some(header.crc()) {
        return Err(format!("batch at offset {}: CRC mismatch", header.base_offset()));
    }
    let (batch, after) = rest.split_at(size);
    *rest = after;
    Ok((header, batch))
}

/// Reads the topics Kafka's metadata log in `dir` (`<log dir>/__cluster_metadata-0`) records: the
/// newest complete snapshot (`<end offset>-<epoch>.checkpoint`), then the log's records from the
/// snapshot's end offset on. A torn batch at the end of the last segment (a crash mid-write)
/// ends the read there; anything else malformed is an error.
pub fn read_cluster_metadata(dir: &Path) -> Result<MetadataImage, String> {
    let mut image = MetadataImage::default();
    let mut snapshots = vec![];
    let mut segments = vec![];
    let entries = std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    for entry in entries {
        let entry = entry.map_err(|e| format!("{}: {e}", dir.display()))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if let Some(end) = parse_snapshot_name(&name) {
            snapshots.push((end, entry.path()));
        } else if let Some(base) = super::parse_file_name(&name, "log") {
            segments.push((base, entry.path()));
        }
    }
    snapshots.sort();
    segments.sort();
    let mut from = 0;
    if let Some((end, path)) = snapshots.last() {
        read_batches_file(path, &mut image, 0, false)?;
        from = *end;
    }
    let last = segments.len().saturating_sub(1);
    for (i, (_, path)) in segments.iter().enumerate() {
        read_batches_file(path, &mut image, from, i == last)?;
    }
    Ok(image)
}

/// `<20-digit end offset>-<10-digit epoch>.checkpoint`: a complete KRaft snapshot's name.
fn parse_snapshot_name(name: &str) -> Option<i64> {
    let stem = name.strip_suffix(".checkpoint")?;
    let (end, epoch) = stem.split_once('-')?;
    if end.len() != 20 || epoch.len() != 10 || !stem.bytes().all(|b| b.is_ascii_digit() || b == b'-') {
        return None;
    }
    end.parse().ok()
}

/// Streams the batches of one file (a segment or a snapshot) into `image`, one batch in memory
/// at a time, each length checked before it is read.
fn read_batches_file(path: &Path, image: &mut MetadataImage, from: i64, tail_may_tear: bool) -> Result<(), String> {
    let err = |e: String| format!("{}: {e}", path.display());
    let file = std::fs::File::open(path).map_err(|e| err(e.to_string()))?;
    let mut reader = io::BufReader::new(file);
    let mut position = 0u64;
    loop {
        let mut header = [0u8; HEADER_SIZE];
        match read_full(&mut reader, &mut header).map_err(|e| err(e.to_string()))? {
            0 => return Ok(()),
            n if n < HEADER_SIZE => {
                return torn(tail_may_tear, path, position, "a header cut short").map_err(err);
            }
            _ => {}
        }
        let length = i32::from_be_bytes([header[8], header[9], header[10], header[11]]);
        let size = 12usize.checked_add_signed(length as isize).filter(|s| *s >= HEADER_SIZE);
        let Some(size) = size.filter(|s| *s <= METADATA_BATCH_BYTES_MAX) else {
            return Err(err(format!("batch at byte {position} has length {length}")));
        };
        let mut batch = vec![0u8; size];
        batch[..HEADER_SIZE].copy_from_slice(&header);
        if read_full(&mut reader, &mut batch[HEADER_SIZE..]).map_err(|e| err(e.to_string()))? < size - HEADER_SIZE {
            return torn(tail_may_tear, path, position, "a batch cut short").map_err(err);
        }
        image.apply_batches(&batch, from).map_err(err)?;
        position += size as u64;
    }
}

fn torn(tail_may_tear: bool, path: &Path, position: u64, what: &str) -> Result<(), String> {
    if !tail_may_tear {
        return Err(format!("{what} at byte {position}"));
    }
    tracing::warn!(file = %path.display(), position, "metadata log ends in {what}; reading stops there");
    Ok(())
}

/// Reads until `buf` is full or the file ends; the count read.
fn read_full(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// The snapshot `kafka-storage.sh format` writes in `__cluster_metadata-0` (KRaft's bootstrap
/// snapshot: end offset 0, epoch 0) when it formats a dynamic quorum's controller
/// (`--initial-controllers` or `--standalone`).
pub const BOOTSTRAP_SNAPSHOT_FILE: &str = "00000000000000000000-0000000000.checkpoint";
/// The bootstrap snapshot holds a few control records; a larger file is not one.
const BOOTSTRAP_SNAPSHOT_BYTES_MAX: u64 = 1 << 20;
/// The control record type of KRaft's voters (`ControlRecordType.KRAFT_VOTERS`).
const KRAFT_VOTERS_CONTROL: i16 = 6;

/// One voter of a KRaft `VotersRecord`: its id, metadata log dir id and endpoints by listener
/// name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KafkaVoter {
    pub id: i32,
    pub directory_id: Uuid,
    /// `(listener name, host, port)`.
    pub endpoints: Vec<(String, String, u16)>,
}

/// Reads the voters (the last `VotersRecord`) from the bootstrap snapshot Kafka's format left in `cluster_metadata_dir`
/// (`<metadata log dir>/__cluster_metadata-0`); None when there is no such file or it names none. Every batch's
/// CRC is checked; a malformed file is an error.
pub fn read_bootstrap_voters(cluster_metadata_dir: &Path) -> Result<Option<Vec<KafkaVoter>>, String> {
    let path = cluster_metadata_dir.join(BOOTSTRAP_SNAPSHOT_FILE);
    match read_small_file(&path)? {
        Some(bytes) => decode_bootstrap_voters(&bytes).map_err(|e| format!("{}: {e}", path.display())),
        None => Ok(None),
    }
}

/// The bytes of a bootstrap file Kafka's format wrote (None when there is none); such a file
/// holds a few records, so one larger than [`BOOTSTRAP_SNAPSHOT_BYTES_MAX`] is refused unread.
fn read_small_file(path: &Path) -> Result<Option<Vec<u8>>, String> {
    let err = |e: String| format!("{}: {e}", path.display());
    let file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(err(e.to_string())),
    };
    let mut bytes = Vec::new();
    file.take(BOOTSTRAP_SNAPSHOT_BYTES_MAX + 1).read_to_end(&mut bytes).map_err(|e| err(e.to_string()))?;
    if bytes.len() as u64 > BOOTSTRAP_SNAPSHOT_BYTES_MAX {
        return Err(err(format!("larger than {BOOTSTRAP_SNAPSHOT_BYTES_MAX} bytes: not a bootstrap file")));
    }
    Ok(Some(bytes))
}

/// The file `kafka-storage.sh format` writes at the top of the metadata log dir: the metadata a
/// new cluster's first active controller writes into its log (metadata.version, the other
/// features' levels, and the SCRAM credentials given with `--add-scram`).
pub const BOOTSTRAP_CHECKPOINT_FILE: &str = "bootstrap.checkpoint";

/// What a `bootstrap.checkpoint` holds that Fjord reads.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BootstrapMetadata {
    /// `FeatureLevelRecord`s: (feature, level), metadata.version among them.
    pub features: Vec<(String, i16)>,
    /// `UserScramCredentialRecord`s, which Fjord's metadata log holds as they are.
    pub scram: Vec<UserScramCredentialRecord>,
}

/// Reads `<metadata log dir>/bootstrap.checkpoint`; None when there is none. Every batch's CRC
/// is checked; a malformed file is an error.
pub fn read_bootstrap_metadata(metadata_log_dir: &Path) -> Result<Option<BootstrapMetadata>, String> {
    let path = metadata_log_dir.join(BOOTSTRAP_CHECKPOINT_FILE);
    match read_small_file(&path)? {
        Some(bytes) => decode_bootstrap_metadata(&bytes).map(Some).map_err(|e| format!("{}: {e}", path.display())),
        None => Ok(None),
    }
}

/// The feature levels and SCRAM credentials of a bootstrap checkpoint's bytes (record batches;
/// the snapshot header and footer are control batches, skipped).
pub fn decode_bootstrap_metadata(mut rest: &[u8]) -> Result<BootstrapMetadata, String> {
    let mut out = BootstrapMetadata::default();
    while !rest.is_empty() {
        let (header, batch) = next_batch(&mut rest)?;
        for_each_record_value(header, batch, 0, |offset, value| {
            let at = |e: String| format!("record at offset {offset}: {e}");
            let mut r = Cursor(value);
            let api_key = r.record_frame().map_err(at)?;
            match api_key {
                FEATURE_LEVEL_RECORD => {
                    let name = r.compact_str().map_err(at)?.ok_or_else(|| at("FeatureLevelRecord without a name".into()))?;
                    out.features.push((name, r.i16().map_err(at)?));
                }
                USER_SCRAM_CREDENTIAL_RECORD => {
                    let name = r.compact_str().map_err(at)?.ok_or_else(|| at("UserScramCredentialRecord without a name".into()))?;
                    let mechanism = r.i8().map_err(at)?;
                    let salt = r.compact_bytes().map_err(at)?;
                    let stored_key = r.compact_bytes().map_err(at)?;
                    let server_key = r.compact_bytes().map_err(at)?;
                    let iterations = r.i32().map_err(at)?;
                    out.scram.push(UserScramCredentialRecord { name, mechanism, salt, stored_key, server_key, iterations });
                }
                _ => {}
            }
            Ok(())
        })?;
    }
    Ok(out)
}

/// The voters of the last `VotersRecord` in a bootstrap snapshot's bytes (record batches).
pub fn decode_bootstrap_voters(mut rest: &[u8]) -> Result<Option<Vec<KafkaVoter>>, String> {
    use kafka_protocol::messages::VotersRecord;
    use kafka_protocol::protocol::Decodable;
    let mut found = None;
    while !rest.is_empty() {
        let (header, batch) = next_batch(&mut rest)?;
        if !header.is_control() {
            continue;
        }
        let mut buf = Bytes::copy_from_slice(batch);
        let set = RecordBatchDecoder::decode(&mut buf).map_err(|e| format!("batch at offset {}: {e}", header.base_offset()))?;
        for record in set.records {
            let key = record.key.as_deref().unwrap_or_default();
            let Some(kind) = key.get(2..4).map(|k| i16::from_be_bytes([k[0], k[1]])) else {
                return Err(format!("control record at offset {} has a key of {} bytes", record.offset, key.len()));
            };
            if kind != KRAFT_VOTERS_CONTROL {
                continue;
            }
            let mut value = record.value.unwrap_or_default();
            let voters = VotersRecord::decode(&mut value, 0).map_err(|e| format!("VotersRecord at offset {}: {e}", record.offset))?;
            let voters = voters
                .voters
                .into_iter()
                .map(|v| KafkaVoter {
                    id: v.voter_id.0,
                    directory_id: v.voter_directory_id,
                    endpoints: v.endpoints.into_iter().map(|e| (e.name.to_string(), e.host.to_string(), e.port)).collect(),
                })
                .collect();
            found = Some(voters);
        }
    }
    Ok(found)
}

/// The bytes of a `bootstrap.checkpoint` holding `boot`'s records, as `fjord format` writes it:
/// Kafka's record format, in one batch, which [`decode_bootstrap_metadata`] reads.
pub fn encode_bootstrap_metadata(boot: &BootstrapMetadata) -> Result<Vec<u8>, String> {
    use crate::coordinator::codec::FlexWriter;
    // A metadata record's frame: frame version, api key, record version 0 (unsigned varints).
    let record = |api_key: u32| {
        let mut w = FlexWriter(bytes::BytesMut::new());
        for v in [FRAME_VERSION, api_key, 0] {
            w.uvarint(v);
        }
        w
    };
    let mut values: Vec<(Option<Bytes>, Vec<u8>)> = Vec::new();
    for (name, level) in &boot.features {
        let mut w = record(FEATURE_LEVEL_RECORD);
        w.str(name);
        w.i16(*level);
        w.no_tags();
        values.push((None, w.finish().to_vec()));
    }
    for c in &boot.scram {
        let mut w = record(USER_SCRAM_CREDENTIAL_RECORD);
        w.str(&c.name);
        w.i8(c.mechanism);
        for bytes in [&c.salt, &c.stored_key, &c.server_key] {
            w.bytes(bytes);
        }
        w.i32(c.iterations);
        w.no_tags();
        values.push((None, w.finish().to_vec()));
    }
    encode_batch(0, &values, false, kafka_protocol::records::Compression::None)
}

/// One record batch (magic 2, leader epoch 0) of `(key, value)` records from `base_offset`,
/// as KRaft writes them: control records for a control batch.
pub(crate) fn encode_batch(base_offset: i64, records: &[(Option<Bytes>, Vec<u8>)], control: bool, compression: kafka_protocol::records::Compression) -> Result<Vec<u8>, String> {
    use kafka_protocol::records::{Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType};
    let records: Vec<Record> = records
        .iter()
        .enumerate()
        .map(|(i, (key, value))| Record {
            transactional: false,
            control,
            delete_horizon: false,
            partition_leader_epoch: 0,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: TimestampType::Creation,
            offset: base_offset + i as i64,
            sequence: -1,
            timestamp: 0,
            key: key.clone(),
            value: Some(Bytes::from(value.clone())),
            headers: Default::default(),
        })
        .collect();
    let mut buf = bytes::BytesMut::new();
    RecordBatchEncoder::encode(&mut buf, &records, &RecordEncodeOptions { version: 2, compression }).map_err(|e| e.to_string())?;
    Ok(buf.to_vec())
}

/// A Kafka partition directory found in a log dir, with what its `partition.metadata` says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KafkaPartitionDir {
    pub topic: String,
    pub partition: i32,
    pub topic_id: Option<Uuid>,
    pub path: PathBuf,
}

/// The partition directories (`<topic>-<partition>`, not Kafka's metadata log, nor deleted or
/// future dirs, whose names carry a suffix after a '.') in a log dir, with their topic ids. An
/// unreadable `partition.metadata` gives no id, logged.
pub fn partition_dirs(log_dir: &Path) -> Result<Vec<KafkaPartitionDir>, String> {
    let mut out = vec![];
    let entries = std::fs::read_dir(log_dir).map_err(|e| format!("{}: {e}", log_dir.display()))?;
    for entry in entries {
        let entry = entry.map_err(|e| format!("{}: {e}", log_dir.display()))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name == CLUSTER_METADATA_DIR || !entry.path().is_dir() {
            continue;
        }
        let Some((topic, partition)) = name.rsplit_once('-') else { continue };
        let Ok(partition) = partition.parse::<i32>() else { continue };
        if topic.is_empty() || partition < 0 || topic.contains(|c: char| !(c.is_ascii_alphanumeric() || c == '.' || c == '_' || c == '-')) {
            continue;
        }
        let path = entry.path();
        let topic_id = match std::fs::read_to_string(path.join(PARTITION_METADATA_FILE)) {
            Ok(text) => match parse_partition_metadata(&text) {
                Ok(id) => Some(id),
                Err(e) => {
                    tracing::warn!(dir = %path.display(), error = %e, "unreadable partition.metadata; ignoring it");
                    None
                }
            },
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => return Err(format!("{}: {e}", path.display())),
        };
        out.push(KafkaPartitionDir { topic: topic.to_string(), partition, topic_id, path });
    }
    out.sort_by(|a, b| (&a.topic, a.partition).cmp(&(&b.topic, b.partition)));
    Ok(out)
}

/// A bounds-checked reader over a record's bytes.
struct Cursor<'a>(&'a [u8]);

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        if n > self.0.len() {
            return Err(format!("{n} bytes wanted, {} left", self.0.len()));
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }
    fn array<const N: usize>(&mut self) -> Result<[u8; N], String> {
        let b = self.take(N)?;
        let mut a = [0u8; N];
        a.copy_from_slice(b);
        Ok(a)
    }
    fn i8(&mut self) -> Result<i8, String> {
        Ok(self.array::<1>()?[0] as i8)
    }
    fn i16(&mut self) -> Result<i16, String> {
        Ok(i16::from_be_bytes(self.array()?))
    }
    fn i32(&mut self) -> Result<i32, String> {
        Ok(i32::from_be_bytes(self.array()?))
    }
    fn i64(&mut self) -> Result<i64, String> {
        Ok(i64::from_be_bytes(self.array()?))
    }
    fn uuid(&mut self) -> Result<Uuid, String> {
        Ok(Uuid::from_bytes(self.array()?))
    }
    fn uvarint(&mut self) -> Result<u32, String> {
        let mut v: u32 = 0;
        for i in 0..5 {
            let b = self.array::<1>()?[0];
            v |= ((b & 0x7f) as u32) << (7 * i);
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err("unsigned varint longer than 5 bytes".into())
    }
    /// A metadata record's frame (frame version, api key, record version): its api key.
    fn record_frame(&mut self) -> Result<u32, String> {
        let frame = self.uvarint()?;
        if frame != FRAME_VERSION {
            return Err(format!("unknown metadata record frame version {frame}"));
        }
        let api_key = self.uvarint()?;
        let _version = self.uvarint()?;
        Ok(api_key)
    }
    /// Compact (flexible-version) bytes: length + 1 as an unsigned varint; null reads as empty.
    fn compact_bytes(&mut self) -> Result<Vec<u8>, String> {
        let n = self.uvarint()?;
        Ok(self.take(n.saturating_sub(1) as usize)?.to_vec())
    }
    /// A compact (flexible-version) nullable string: length + 1 as an unsigned varint.
    fn compact_str(&mut self) -> Result<Option<String>, String> {
        let n = self.uvarint()?;
        if n == 0 {
            return Ok(None);
        }
        let b = self.take(n as usize - 1)?;
        String::from_utf8(b.to_vec()).map(Some).map_err(|_| "string is not UTF-8".to_string())
    }
}

/// Builders of Kafka metadata records and batches, for tests here and in `broker::adopt`.
#[cfg(test)]
pub(crate) mod test_records {
    use super::*;
    pub(crate) use kafka_protocol::records::Compression;

    pub(crate) fn compact(s: Option<&str>) -> Vec<u8> {
        match s {
            None => vec![0],
            Some(s) => {
                assert!(s.len() < 127);
                let mut v = vec![s.len() as u8 + 1];
                v.extend_from_slice(s.as_bytes());
                v
            }
        }
    }

    pub(crate) fn topic_record(name: &str, id: Uuid) -> Vec<u8> {
        let mut v = vec![1, TOPIC_RECORD as u8, 0];
        v.extend(compact(Some(name)));
        v.extend_from_slice(id.as_bytes());
        v.push(0);
        v
    }

    pub(crate) fn partition_record(partition: i32, id: Uuid) -> Vec<u8> {
        let mut v = vec![1, PARTITION_RECORD as u8, 0];
        v.extend_from_slice(&partition.to_be_bytes());
        v.extend_from_slice(id.as_bytes());
        // Replicas [1], Isr [1], no removing/adding, leader 1, epochs 0: ignored by the reader.
        v.extend_from_slice(&[2, 0, 0, 0, 1, 2, 0, 0, 0, 1, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        v
    }

    pub(crate) fn config_record(resource_type: i8, resource: &str, key: &str, value: Option<&str>) -> Vec<u8> {
        let mut v = vec![1, CONFIG_RECORD as u8, 0, resource_type as u8];
        v.extend(compact(Some(resource)));
        v.extend(compact(Some(key)));
        v.extend(compact(value));
        v.push(0);
        v
    }

    pub(crate) fn batch(base_offset: i64, values: &[Vec<u8>], compression: Compression) -> Vec<u8> {
        let records: Vec<(Option<Bytes>, Vec<u8>)> = values.iter().map(|v| (None, v.clone())).collect();
        encode_batch(base_offset, &records, false, compression).expect("encode")
    }

    /// A control batch of `(control type, value)` records, as KRaft writes its snapshot header,
    /// membership and footer.
    pub(crate) fn control_batch(base_offset: i64, records: &[(i16, Vec<u8>)]) -> Vec<u8> {
        let records: Vec<(Option<Bytes>, Vec<u8>)> =
            records.iter().map(|(kind, v)| (Some(Bytes::from([0i16.to_be_bytes(), kind.to_be_bytes()].concat())), v.clone())).collect();
        encode_batch(base_offset, &records, true, Compression::None).expect("encode")
    }

    pub(crate) fn producer_ids_record(next: i64) -> Vec<u8> {
        [vec![1, PRODUCER_IDS_RECORD as u8, 0], 1i32.to_be_bytes().to_vec(), 8i64.to_be_bytes().to_vec(), next.to_be_bytes().to_vec(), vec![0]].concat()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use super::test_records::*;

    fn snapshot(entries: &[[i64; 8]]) -> Vec<u8> {
        let mut body = (entries.len() as i32).to_be_bytes().to_vec();
        for e in entries {
            body.extend_from_slice(&e[0].to_be_bytes());
            body.extend_from_slice(&(e[1] as i16).to_be_bytes());
            body.extend_from_slice(&(e[2] as i32).to_be_bytes());
            body.extend_from_slice(&e[3].to_be_bytes());
            body.extend_from_slice(&(e[4] as i32).to_be_bytes());
            body.extend_from_slice(&e[5].to_be_bytes());
            body.extend_from_slice(&(e[6] as i32).to_be_bytes());
            body.extend_from_slice(&e[7].to_be_bytes());
        }
        let mut out = 1i16.to_be_bytes().to_vec();
        out.extend_from_slice(&crc32c::crc32c(&body).to_be_bytes());
        out.extend_from_slice(&body);
        out
    }

    #[test]
    fn a_kafka_producer_snapshot_gives_each_producer_its_last_batch() {
        // producer 7 epoch 0: last batch seq 495..499 at offsets 495..499; producer 9 ended its
        // transaction with a marker (no batch) and has one open from offset 600.
        let bytes = snapshot(&[[7, 0, 499, 499, 4, 1_000, -1, -1], [9, 3, -1, -1, 0, 2_000, 5, 600]]);
        assert_eq!(bytes.len(), SNAPSHOT_HEADER_BYTES + 2 * SNAPSHOT_ENTRY_BYTES);
        let entries = decode_producer_snapshot(&bytes).expect("decode");
        assert_eq!(entries[0].0, 7);
        assert_eq!(entries[0].1.batches, vec![BatchMetadata { first_seq: 495, last_seq: 499, first_offset: 495, last_offset: 499 }]);
        assert_eq!((entries[0].1.epoch, entries[0].1.last_timestamp, entries[0].1.current_txn_first_offset), (0, 1_000, -1));
        assert_eq!(entries[1].0, 9);
        assert!(entries[1].1.batches.is_empty());
        assert_eq!((entries[1].1.epoch, entries[1].1.coordinator_epoch, entries[1].1.current_txn_first_offset), (3, 5, 600));
    }

    #[test]
    fn a_kafka_snapshot_sequence_that_wrapped_is_unwrapped() {
        let entries = decode_producer_snapshot(&snapshot(&[[1, 0, 1, 100, 3, 0, -1, -1]])).expect("decode");
        assert_eq!(entries[0].1.batches[0].first_seq, i32::MAX - 1);
    }

    #[test]
    fn a_damaged_kafka_snapshot_is_an_error_not_a_panic() {
        let good = snapshot(&[[7, 0, 4, 4, 4, 0, -1, -1]]);
        for cut in 0..good.len() {
            assert!(decode_producer_snapshot(&good[..cut]).is_err(), "cut at {cut}");
        }
        let mut flipped = good.clone();
        flipped[20] ^= 1;
        assert!(decode_producer_snapshot(&flipped).unwrap_err().contains("CRC"));
        // A count claiming more entries than the bytes hold, CRC made valid.
        let mut lying = good.clone();
        lying[6..10].copy_from_slice(&i32::MAX.to_be_bytes());
        let crc = crc32c::crc32c(&lying[6..]);
        lying[2..6].copy_from_slice(&crc.to_be_bytes());
        assert!(decode_producer_snapshot(&lying).is_err());
        let mut v2 = good;
        v2[1] = 2;
        assert!(decode_producer_snapshot(&v2).unwrap_err().contains("version"));
    }

    /// `decode` fails on every cut of `file` inside a batch. (A cut between batches is a shorter
    /// file, not damage.)
    fn every_cut_inside_a_batch_fails(file: &[u8], decode: impl Fn(&[u8]) -> Option<String>) {
        let mut boundaries = vec![];
        let mut at = 0;
        while at < file.len() {
            at += BatchHeader::parse(&file[at..]).expect("header").total_size();
            boundaries.push(at);
        }
        for cut in (1..file.len()).filter(|c| !boundaries.contains(c)) {
            assert!(decode(&file[..cut]).is_some(), "cut at {cut}");
        }
    }

    /// The membership `kafka-storage.sh format --initial-controllers` writes: a snapshot header,
    /// the kraft.version and the voters with their endpoints, a footer.
    #[test]
    fn a_bootstrap_snapshot_gives_the_voters() {
        use kafka_protocol::messages::voters_record::{Endpoint, KRaftVersionFeature, Voter};
        use kafka_protocol::messages::{BrokerId, VotersRecord};
        use kafka_protocol::protocol::{Encodable, StrBytes};
        let voter = |id: i32, port: u16| {
            Voter::default()
                .with_voter_id(BrokerId(id))
                .with_voter_directory_id(Uuid::from_u128(id as u128))
                .with_endpoints(vec![
                    Endpoint::default().with_name(StrBytes::from_static_str("CONTROLLER")).with_host(StrBytes::from_static_str("127.0.0.1")).with_port(port),
                    Endpoint::default().with_name(StrBytes::from_static_str("OTHER")).with_host(StrBytes::from_static_str("::1")).with_port(1),
                ])
                .with_k_raft_version_feature(KRaftVersionFeature::default().with_max_supported_version(1))
        };
        let mut voters = bytes::BytesMut::new();
        VotersRecord::default().with_voters(vec![voter(1, 19093), voter(2, 19094)]).encode(&mut voters, 0).expect("encode");
        let kraft_version = vec![0, 0, 0, 1, 0];
        let header = vec![0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        let file = [control_batch(0, &[(3, header.clone()), (5, kraft_version), (6, voters.to_vec())]), control_batch(3, &[(4, vec![0, 0, 0])])].concat();
                let voters = decode_bootstrap_voters(&file).expect("reads").expect("voters");
        assert_eq!(voters.iter().map(|v| (v.id, v.directory_id)).collect::<Vec<_>>(), vec![(1, Uuid::from_u128(1)), (2, Uuid::from_u128(2))]);
        assert_eq!(voters[1].endpoints[0], ("CONTROLLER".to_string(), "127.0.0.1".to_string(), 19094));
        // A snapshot without a membership (Kafka's format of a static quorum's node) names none.
        assert_eq!(decode_bootstrap_voters(&control_batch(0, &[(3, header)])).expect("reads"), None);
        // Damage is an error, never a panic: every cut inside a batch, and a flipped byte under
        // the CRC.
        every_cut_inside_a_batch_fails(&file, |b| decode_bootstrap_voters(b).err());
        let mut flipped = file.clone();
        flipped[80] ^= 0x40;
        assert!(decode_bootstrap_voters(&flipped).is_err());
        let dir = tempfile::tempdir().expect("tmp");
        assert_eq!(read_bootstrap_voters(dir.path()).expect("no file"), None);
        std::fs::write(dir.path().join(BOOTSTRAP_SNAPSHOT_FILE), &file).expect("write");
        assert_eq!(read_bootstrap_voters(dir.path()).expect("reads").map(|v| v.len()), Some(2));
    }

    /// The bootstrap checkpoint Kafka 4.0's `kafka-storage.sh format --add-scram
    /// 'SCRAM-SHA-256=[name=alice,password=alice-secret]' --add-scram
    /// 'SCRAM-SHA-512=[name=bob,iterations=8192,password=bob-secret]'` wrote (static voters).
    const KAFKA_BOOTSTRAP: &[u8] = include_bytes!("testdata/kafka-4.0-bootstrap.checkpoint");

    #[test]
    fn kafkas_bootstrap_checkpoint_gives_the_features_and_the_scram_credentials() {
        use crate::broker::scram::{Credential, Mechanism};
        let boot = decode_bootstrap_metadata(KAFKA_BOOTSTRAP).expect("reads");
        assert!(boot.features.contains(&("metadata.version".to_string(), 25)), "{:?}", boot.features);
        let users: Vec<_> = boot.scram.iter().map(|c| (c.name.as_str(), c.mechanism, c.iterations)).collect();
        assert_eq!(users, vec![("alice", 1, 4096), ("bob", 2, 8192)]);
        // The keys are those of the passwords given: salt, keys and iterations decoded right.
        for (c, m, password) in [(&boot.scram[0], Mechanism::Sha256, "alice-secret"), (&boot.scram[1], Mechanism::Sha512, "bob-secret")] {
            let credential = Credential { salt: c.salt.clone(), stored_key: c.stored_key.clone(), server_key: c.server_key.clone(), iterations: c.iterations };
            assert!(credential.matches_password(m, password), "{}", c.name);
            assert!(!credential.matches_password(m, "wrong"), "{}", c.name);
        }
        // Damage inside a batch is an error, never a panic.
        every_cut_inside_a_batch_fails(KAFKA_BOOTSTRAP, |b| decode_bootstrap_metadata(b).err());
        // A record claiming more bytes than it holds, in a batch with a valid CRC.
        let mut lying = vec![1, USER_SCRAM_CREDENTIAL_RECORD as u8, 0];
        lying.extend(compact(Some("eve")));
        lying.extend([1, 0xff, 0xff, 0xff, 0x0f]);
        assert!(decode_bootstrap_metadata(&batch(0, &[lying], Compression::None)).is_err());
        let dir = tempfile::tempdir().expect("tmp");
        assert_eq!(read_bootstrap_metadata(dir.path()).expect("no file"), None);
        std::fs::write(dir.path().join(BOOTSTRAP_CHECKPOINT_FILE), KAFKA_BOOTSTRAP).expect("write");
        assert_eq!(read_bootstrap_metadata(dir.path()).expect("reads"), Some(boot));
    }

    #[test]
    fn partition_metadata_names_the_topic_id() {
        // As Kafka 4.0 wrote it for a topic that kafka-topics described as PNHz_2_NSriV9jP7RFojzA.
        let id = parse_partition_metadata("version: 0\ntopic_id: PNHz_2_NSriV9jP7RFojzA").expect("parse");
        assert_eq!(crate::broker::metadata::uuid_to_kafka_string(id), "PNHz_2_NSriV9jP7RFojzA");
        assert!(parse_partition_metadata("version: 1\ntopic_id: PNHz_2_NSriV9jP7RFojzA").is_err());
        assert!(parse_partition_metadata("version: 0\n").is_err());
        assert!(parse_partition_metadata("version: 0\ntopic_id: short").is_err());
        assert!(parse_partition_metadata("").is_err());
    }


    #[test]
    fn metadata_records_give_topics_partitions_and_configs() {
        let (a, b) = (Uuid::from_u128(1), Uuid::from_u128(2));
        let mut log = batch(0, &[config_record(TOPIC_RESOURCE, "keyed", "cleanup.policy", Some("compact")), topic_record("keyed", a)], Compression::None);
        log.extend(batch(2, &[partition_record(0, a), partition_record(1, a), config_record(4, "", "log.retention.ms", Some("1"))], Compression::None));
        log.extend(batch(5, &[topic_record("gone", b), partition_record(0, b), config_record(TOPIC_RESOURCE, "gone", "retention.ms", Some("5"))], Compression::Gzip));
        log.extend(batch(8, &[vec![1, REMOVE_TOPIC_RECORD as u8, 0].into_iter().chain(b.as_bytes().iter().copied()).chain([0]).collect()], Compression::None));
        log.extend(batch(9, &[config_record(TOPIC_RESOURCE, "keyed", "segment.bytes", Some("2000")), config_record(TOPIC_RESOURCE, "keyed", "cleanup.policy", None)], Compression::None));
        log.extend(batch(11, &[producer_ids_record(1000), producer_ids_record(2000)], Compression::None));
        let mut image = MetadataImage::default();
        assert_eq!(image.apply_batches(&log, 0).expect("apply"), 13);
        let topics = image.topics();
        assert_eq!(topics.len(), 1);
        assert_eq!(topics[0].name, "keyed");
        assert_eq!(topics[0].id, a);
        assert_eq!(topics[0].partitions, BTreeSet::from([0, 1]));
        assert_eq!(topics[0].configs, BTreeMap::from([("segment.bytes".to_string(), "2000".to_string())]));
        assert_eq!(image.ignored, 1, "the broker config record");
        assert_eq!(image.next_producer_id, Some(2000));
        // Records below `from` (already in a snapshot) are skipped.
        let mut later = MetadataImage::default();
        later.apply_batches(&log, 5).expect("apply");
        assert!(later.topics().is_empty(), "keyed's TopicRecord is before offset 5");
    }

    #[test]
    fn malformed_metadata_is_an_error_not_a_panic() {
        let a = Uuid::from_u128(1);
        let good = batch(0, &[topic_record("t", a), partition_record(0, a)], Compression::None);
        for cut in 1..good.len() {
            let _ = MetadataImage::default().apply_batches(&good[..cut], 0);
        }
        let mut flipped = good.clone();
        let last = flipped.len() - 3;
        flipped[last] ^= 0x40;
        assert!(MetadataImage::default().apply_batches(&flipped, 0).unwrap_err().contains("CRC"));
        // The base offset is outside the CRC: a negative one is refused, not skipped as old.
        let mut negative = good.clone();
        negative[0] = 0xff;
        assert!(MetadataImage::default().apply_batches(&negative, 0).unwrap_err().contains("base offset"));
        // Record values cut anywhere, and a string length past the end.
        let record = topic_record("topic", a);
        for cut in 0..record.len() - 1 {
            assert!(MetadataImage::default().apply(&record[..cut]).is_err(), "cut at {cut}");
        }
        assert!(MetadataImage::default().apply(&[1, 2, 0, 0xff, 0xff, 0xff, 0xff, 0x0f]).is_err());
        assert!(MetadataImage::default().apply(&[2, 2, 0]).unwrap_err().contains("frame"));
        assert!(MetadataImage::default().apply(&partition_record(0, a)).unwrap_err().contains("unknown topic"));
    }

    #[test]
    fn the_metadata_log_is_read_after_its_newest_snapshot() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (a, b) = (Uuid::from_u128(1), Uuid::from_u128(2));
        // The snapshot holds topic a (end offset 3); the log still has its old records too.
        std::fs::write(dir.path().join("00000000000000000003-0000000001.checkpoint"), batch(0, &[topic_record("a", a), partition_record(0, a)], Compression::None)).expect("write");
        std::fs::write(dir.path().join("00000000000000000001-0000000001.checkpoint"), b"garbage, older").expect("write");
        let mut log = batch(0, &[topic_record("a", a), partition_record(0, a), partition_record(5, a)], Compression::None);
        log.extend(batch(3, &[topic_record("b", b), partition_record(0, b), partition_record(1, b)], Compression::None));
        // A torn last batch: the read stops before it.
        let torn = batch(6, &[partition_record(2, b)], Compression::None);
        log.extend_from_slice(&torn[..torn.len() - 5]);
        std::fs::write(dir.path().join("00000000000000000000.log"), &log).expect("write");
        let image = read_cluster_metadata(dir.path()).expect("read");
        let topics = image.topics();
        assert_eq!(topics.iter().map(|t| (t.name.as_str(), t.partitions.len())).collect::<Vec<_>>(), vec![("a", 1), ("b", 2)]);
        // A batch length past the 16 MiB bound is corruption, not an allocation.
        let mut wild = batch(0, &[topic_record("a", a)], Compression::None);
        wild[8..12].copy_from_slice(&i32::MAX.to_be_bytes());
        std::fs::write(dir.path().join("00000000000000000000.log"), &wild).expect("write");
        assert!(read_cluster_metadata(dir.path()).unwrap_err().contains("length"));
    }
}

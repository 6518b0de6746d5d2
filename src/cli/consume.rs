//! `fjord consume`: Fetch from each partition's leader and print the records, from the
//! beginning, the end, an offset or a timestamp, formatted like kcat's `-f` (or one JSON object
//! per record with `--json`). With `--group` the tool joins the group as a KIP-848 consumer
//! ([`super::member`]): the coordinator assigns it partitions, shared with the group's other
//! members; each starts at the group's committed offset and the positions are committed back as
//! the records are printed. With `--partition` (or a coordinator without KIP-848) it reads the
//! partitions itself and commits as a consumer that assigns its own partitions (generation -1,
//! no member id), which the coordinator accepts while the group has no members. Control batches
//! (transaction markers) are skipped; every codec Kafka stores (gzip, snappy, lz4, zstd) is
//! decoded.

use std::collections::BTreeMap;
use std::io::Write;
use std::process::ExitCode;

use anyhow::{Result, anyhow, bail};
use bytes::Bytes;
use clap::Args;
use kafka_protocol::messages::{BrokerId, FetchRequest, fetch_request::{FetchPartition, FetchTopic}};
use kafka_protocol::records::{Record, RecordBatchDecoder};
use serde_json::json;

use super::Common;
use super::conn::{Cluster, EARLIEST_TIMESTAMP, LATEST_TIMESTAMP, TopicInfo, error_name, send_capped, topic_name};
use super::group;
use super::member::{Change, Member};

/// How long a broker may hold a fetch open waiting for records.
const FETCH_MAX_WAIT_MS: i32 = 500;
/// How long a member with no partitions sleeps before looking again.
const FETCH_IDLE: std::time::Duration = std::time::Duration::from_millis(FETCH_MAX_WAIT_MS as u64);
/// Bytes asked for per fetch and per partition; the answer (and so every buffer) is bounded by
/// them and by the client's response limit.
const FETCH_MAX_BYTES: i32 = 50 << 20;
const PARTITION_MAX_BYTES: i32 = 1 << 20;
/// A v2 batch's header: base offset (8) and batch length (4) come first, the magic at byte 16,
/// the last offset delta at 23..27; 61 bytes in all.
const BATCH_HEADER_BYTES: usize = 61;
const KAFKA_OFFSET_OUT_OF_RANGE: i16 = 1;
const KAFKA_NOT_LEADER_OR_FOLLOWER: i16 = 6;
const KAFKA_UNKNOWN_LEADER_EPOCH: i16 = 75;
const KAFKA_LEADER_NOT_AVAILABLE: i16 = 5;
/// Right after a topic is created, a leader may not know its partition yet.
const KAFKA_UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;

#[derive(Args, Debug)]
pub struct ConsumeArgs {
    /// The topic to read.
    #[arg(short, long)]
    pub topic: String,
    /// Only these partitions (repeatable); default all.
    #[arg(short, long)]
    pub partition: Vec<i32>,
    /// Where to start: beginning, end, an offset N, or -N (N before the end). With --group, only
    /// for partitions the group has no committed offset for.
    #[arg(short, long, value_name = "beginning|end|N|-N", allow_hyphen_values = true)]
    pub offset: Option<String>,
    /// Same as --offset beginning.
    #[arg(long, conflicts_with = "offset")]
    pub from_beginning: bool,
    /// Start at the first record with a timestamp >= MS (milliseconds since the epoch).
    #[arg(long, value_name = "MS", conflicts_with_all = ["offset", "from_beginning"])]
    pub timestamp: Option<i64>,
    /// Start from, and commit to, this group's offsets.
    #[arg(short, long)]
    pub group: Option<String>,
    /// Exit after COUNT records.
    #[arg(short = 'c', long, value_name = "COUNT")]
    pub count: Option<u64>,
    /// Exit when every partition is read to its end (the high watermark).
    #[arg(short = 'e', long)]
    pub exit_at_end: bool,
    /// kcat-style format: %t topic, %p partition, %o offset, %k key, %s value, %h headers
    /// (k=v,...), %T timestamp (ms), %K / %S key / value length, \n \t \\ escapes.
    #[arg(short = 'f', long, value_name = "FORMAT", default_value = "%s\\n")]
    pub format: String,
}

/// Where a partition starts when the group has no offset for it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Start {
    Beginning,
    End,
    Offset(i64),
    FromEnd(i64),
    Timestamp(i64),
}

pub fn parse_start(offset: Option<&str>, from_beginning: bool, timestamp: Option<i64>) -> Result<Start> {
    if let Some(ts) = timestamp {
        return Ok(Start::Timestamp(ts));
    }
    if from_beginning {
        return Ok(Start::Beginning);
    }
    match offset {
        None | Some("end") | Some("latest") => Ok(Start::End),
        Some("beginning") | Some("earliest") => Ok(Start::Beginning),
        Some(s) => match s.parse::<i64>() {
            Ok(n) if n < 0 => Ok(Start::FromEnd(-n)),
            Ok(n) => Ok(Start::Offset(n)),
            Err(_) => bail!("--offset takes beginning, end, N or -N, not {s:?}"),
        },
    }
}

/// Renders one record with a kcat-style format.
pub fn render(format: &str, topic: &str, partition: i32, r: &Record) -> Vec<u8> {
    let mut out = Vec::new();
    let mut chars = format.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '%' => match chars.next() {
                Some('t') => out.extend_from_slice(topic.as_bytes()),
                Some('p') => out.extend_from_slice(partition.to_string().as_bytes()),
                Some('o') => out.extend_from_slice(r.offset.to_string().as_bytes()),
                Some('k') => out.extend_from_slice(r.key.as_deref().unwrap_or_default()),
                Some('s') => out.extend_from_slice(r.value.as_deref().unwrap_or_default()),
                Some('K') => out.extend_from_slice(r.key.as_ref().map_or(-1, |k| k.len() as i64).to_string().as_bytes()),
                Some('S') => out.extend_from_slice(r.value.as_ref().map_or(-1, |v| v.len() as i64).to_string().as_bytes()),
                Some('T') => out.extend_from_slice(r.timestamp.to_string().as_bytes()),
                Some('h') => {
                    let mut first = true;
                    for (k, v) in &r.headers {
                        if !first {
                            out.push(b',');
                        }
                        first = false;
                        out.extend_from_slice(k.as_bytes());
                        out.push(b'=');
                        out.extend_from_slice(v.as_deref().unwrap_or_default());
                    }
                }
                Some('%') => out.push(b'%'),
                Some(other) => {
                    out.push(b'%');
                    out.extend_from_slice(other.to_string().as_bytes());
                }
                None => out.push(b'%'),
            },
            '\\' => match chars.next() {
                Some('n') => out.push(b'\n'),
                Some('t') => out.push(b'\t'),
                Some('r') => out.push(b'\r'),
                Some('0') => out.push(0),
                Some('\\') => out.push(b'\\'),
                Some(other) => {
                    out.push(b'\\');
                    out.extend_from_slice(other.to_string().as_bytes());
                }
                None => out.push(b'\\'),
            },
            c => {
                let mut b = [0u8; 4];
                out.extend_from_slice(c.encode_utf8(&mut b).as_bytes());
            }
        }
    }
    out
}

fn text(b: &Option<Bytes>) -> serde_json::Value {
    match b {
        Some(b) => json!(String::from_utf8_lossy(b)),
        None => serde_json::Value::Null,
    }
}

/// One record as a JSON object (keys, values and headers as UTF-8 text, lossy).
pub fn record_json(topic: &str, partition: i32, r: &Record) -> serde_json::Value {
    let headers: serde_json::Map<String, serde_json::Value> = r.headers.iter().map(|(k, v)| (k.to_string(), text(v))).collect();
    json!({"topic": topic, "partition": partition, "offset": r.offset, "timestamp": r.timestamp, "key": text(&r.key), "value": text(&r.value), "headers": headers})
}

/// Splits a fetch answer's records into whole v2 batches and decodes them; a batch cut off at
/// the end (a fetch may end mid-batch) is left for the next fetch. Returns the records and the
/// offset after the last whole batch (so empty batches still move the position).
pub fn decode_batches(mut data: Bytes) -> Result<(Vec<Record>, Option<i64>)> {
    let mut records = Vec::new();
    let mut next = None;
    while data.len() >= BATCH_HEADER_BYTES {
        let base_offset = i64::from_be_bytes(data[0..8].try_into().unwrap_or_default());
        let batch_len = i32::from_be_bytes(data[8..12].try_into().unwrap_or_default());
        // The length is checked against what arrived before it sizes anything.
        let Ok(batch_len) = usize::try_from(batch_len) else { bail!("a batch with a negative length at offset {base_offset}") };
        if batch_len + 12 > data.len() {
            break;
        }
        if batch_len + 12 < BATCH_HEADER_BYTES {
            bail!("a batch of {batch_len} bytes at offset {base_offset}, shorter than its header");
        }
        let magic = data[16];
        if magic != 2 {
            bail!("a v{magic} message set at offset {base_offset}: only v2 record batches are read");
        }
        let last_offset_delta = i32::from_be_bytes(data[23..27].try_into().unwrap_or_default());
        let mut batch = data.split_to(batch_len + 12);
        let set = RecordBatchDecoder::decode(&mut batch).map_err(|e| anyhow!("decoding the batch at offset {base_offset}: {e}"))?;
        records.extend(set.records.into_iter().filter(|r| !r.control));
        next = Some(base_offset + last_offset_delta as i64 + 1);
    }
    Ok((records, next))
}

/// The start offset of each partition.
async fn start_positions(cluster: &mut Cluster, topic: &TopicInfo, partitions: &[i32], start: Start, group: Option<&str>) -> Result<BTreeMap<i32, i64>> {
    let mut positions = BTreeMap::new();
    if let Some(g) = group {
        let committed = group::committed_offsets(cluster, g, Some(&[topic.name.clone()])).await?;
        for ((t, p), offset) in committed {
            if t == topic.name && partitions.contains(&p) && offset >= 0 {
                positions.insert(p, offset);
            }
        }
    }
    let missing: Vec<i32> = partitions.iter().copied().filter(|p| !positions.contains_key(p)).collect();
    if missing.is_empty() {
        return Ok(positions);
    }
    match start {
        Start::Beginning => positions.extend(cluster.list_offsets(topic, &missing, EARLIEST_TIMESTAMP).await?),
        Start::End => positions.extend(cluster.list_offsets(topic, &missing, LATEST_TIMESTAMP).await?),
        Start::Offset(n) => {
            // Clamped to the log, as kcat does.
            let earliest = cluster.list_offsets(topic, &missing, EARLIEST_TIMESTAMP).await?;
            let latest = cluster.list_offsets(topic, &missing, LATEST_TIMESTAMP).await?;
            for p in missing {
                positions.insert(p, n.clamp(earliest[&p], latest[&p]));
            }
        }
        Start::FromEnd(n) => {
            let earliest = cluster.list_offsets(topic, &missing, EARLIEST_TIMESTAMP).await?;
            let latest = cluster.list_offsets(topic, &missing, LATEST_TIMESTAMP).await?;
            for p in missing {
                positions.insert(p, (latest[&p] - n).max(earliest[&p]));
            }
        }
        Start::Timestamp(ts) => {
            let found = cluster.list_offsets(topic, &missing, ts).await?;
            let latest = cluster.list_offsets(topic, &missing, LATEST_TIMESTAMP).await?;
            for p in missing {
                // -1: no record at or after the time; start at the end.
                positions.insert(p, if found[&p] < 0 { latest[&p] } else { found[&p] });
            }
        }
    }
    Ok(positions)
}

pub async fn run(cluster: &mut Cluster, common: &Common, args: ConsumeArgs) -> Result<ExitCode> {
    let start = parse_start(args.offset.as_deref(), args.from_beginning, args.timestamp)?;
    let mut topic = cluster.topic(&args.topic).await?;
    let all: Vec<i32> = topic.partitions.iter().map(|p| p.partition).collect();
    for p in &args.partition {
        if !all.contains(p) {
            bail!("topic {} has no partition {p}", args.topic);
        }
    }
    // With a group and no partitions named, the tool joins the group and reads what the
    // coordinator assigns it; with partitions named it reads those and only commits.
    let mut member = match &args.group {
        Some(g) if args.partition.is_empty() => {
            if Member::supported(cluster, g).await? {
                Some(Member::new(g, &topic.name, &topic.topic_id)?)
            } else {
                eprintln!("group {g}: the coordinator does not serve KIP-848 consumer groups; reading every partition and committing without joining");
                None
            }
        }
        _ => None,
    };
    let mut positions = match member {
        Some(_) => BTreeMap::new(),
        None => {
            let partitions = if args.partition.is_empty() { all.clone() } else { args.partition.clone() };
            start_positions(cluster, &topic, &partitions, start, args.group.as_deref()).await?
        }
    };
    let mut high_watermarks: BTreeMap<i32, i64> = BTreeMap::new();
    let mut committed = positions.clone();
    let mut printed: u64 = 0;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    'fetching: loop {
        if let (Some(m), Some(g)) = (member.as_mut(), args.group.as_deref()) {
            let mut change = m.poll(cluster, false).await?;
            // The heartbeat acknowledging one change may bring the next.
            while change != Change::default() {
                if !change.revoked.is_empty() {
                    if !change.lost {
                        let revoked: BTreeMap<i32, i64> = change.revoked.iter().filter_map(|p| positions.get(p).map(|o| (*p, *o))).collect();
                        let changed = uncommitted(&topic.name, &revoked, &committed);
                        if !changed.is_empty() {
                            group::commit_offsets(cluster, g, &changed, Some((m.member_id(), m.epoch()))).await?;
                        }
                    }
                    for p in &change.revoked {
                        positions.remove(p);
                        committed.remove(p);
                        high_watermarks.remove(p);
                    }
                }
                if !change.added.is_empty() {
                    // Partitions added to the topic since the tool started are assigned too.
                    topic = cluster.topic(&args.topic).await?;
                    let starts = start_positions(cluster, &topic, &change.added, start, Some(g)).await?;
                    committed.extend(starts.iter().map(|(p, o)| (*p, *o)));
                    positions.extend(starts);
                }
                change = m.acknowledge(cluster, positions.keys().copied().collect()).await?;
            }
        }
        let partitions: Vec<i32> = positions.keys().copied().collect();
        if args.count.is_some_and(|c| printed >= c) {
            break;
        }
        let settled = member.as_ref().is_none_or(Member::settled);
        if args.exit_at_end && settled && partitions.iter().all(|p| high_watermarks.get(p).is_some_and(|hw| positions[p] >= *hw)) {
            break;
        }
        if partitions.is_empty() {
            // A member given nothing waits for its next heartbeat.
            let wait = member.as_ref().map_or(FETCH_IDLE, |m| m.until_heartbeat().min(FETCH_IDLE));
            tokio::time::sleep(wait).await;
            continue;
        }
        let mut by_leader: BTreeMap<i32, Vec<i32>> = BTreeMap::new();
        for p in &partitions {
            let leader = topic.partitions.iter().find(|i| i.partition == *p).map_or(-1, |i| i.leader);
            by_leader.entry(leader).or_default().push(*p);
        }
        let mut refresh = false;
        for (leader, ps) in by_leader {
            if leader < 0 {
                refresh = true;
                continue;
            }
            let client = cluster.broker(leader).await?;
            let fetch_partitions = ps
                .iter()
                .map(|p| FetchPartition::default().with_partition(*p).with_fetch_offset(positions[p]).with_partition_max_bytes(PARTITION_MAX_BYTES).with_log_start_offset(-1).with_current_leader_epoch(-1))
                .collect();
            let request = FetchRequest::default()
                .with_replica_id(BrokerId(-1))
                .with_max_wait_ms(FETCH_MAX_WAIT_MS)
                .with_min_bytes(1)
                .with_max_bytes(FETCH_MAX_BYTES)
                .with_isolation_level(0)
                .with_session_id(0)
                .with_session_epoch(-1)
                .with_topics(vec![FetchTopic::default().with_topic(topic_name(&topic.name)).with_partitions(fetch_partitions)]);
            // v12 at most: topics by name (v13 names them by id).
            let response = send_capped(&client, &request, 12).await?;
            if response.error_code != 0 {
                bail!("fetch from broker {leader}: {}", error_name(response.error_code));
            }
            for t in response.responses {
                for pd in t.partitions {
                    let p = pd.partition_index;
                    if !positions.contains_key(&p) {
                        continue;
                    }
                    match pd.error_code {
                        0 => {}
                        KAFKA_NOT_LEADER_OR_FOLLOWER | KAFKA_LEADER_NOT_AVAILABLE | KAFKA_UNKNOWN_LEADER_EPOCH | KAFKA_UNKNOWN_TOPIC_OR_PARTITION => {
                            refresh = true;
                            continue;
                        }
                        KAFKA_OFFSET_OUT_OF_RANGE => {
                            let reset = cluster.list_offsets(&topic, &[p], EARLIEST_TIMESTAMP).await?[&p];
                            eprintln!("{}-{p}: offset {} is out of range; starting again at the log start offset {reset}", topic.name, positions[&p]);
                            positions.insert(p, reset);
                            continue;
                        }
                        code => bail!("fetching {}-{p}: {}", topic.name, error_name(code)),
                    }
                    high_watermarks.insert(p, pd.high_watermark);
                    let Some(data) = pd.records else { continue };
                    let (records, next) = decode_batches(data)?;
                    for r in records {
                        if r.offset < positions[&p] {
                            // A fetch in the middle of a batch gets the whole batch.
                            continue;
                        }
                        if args.count.is_some_and(|c| printed >= c) {
                            break;
                        }
                        if common.json {
                            serde_json::to_writer(&mut out, &record_json(&topic.name, p, &r))?;
                            out.write_all(b"\n")?;
                        } else {
                            out.write_all(&render(&args.format, &topic.name, p, &r))?;
                        }
                        printed += 1;
                        positions.insert(p, r.offset + 1);
                    }
                    if let Some(next) = next.filter(|_| !args.count.is_some_and(|c| printed >= c)) {
                        positions.insert(p, next.max(positions[&p]));
                    }
                }
            }
            out.flush()?;
            if let Some(g) = &args.group {
                let changed = uncommitted(&topic.name, &positions, &committed);
                if !changed.is_empty() {
                    match group::commit_offsets(cluster, g, &changed, member.as_ref().map(|m| (m.member_id(), m.epoch()))).await {
                        Ok(()) => committed.extend(positions.iter().map(|(p, o)| (*p, *o))),
                        // A member fenced since its last heartbeat: the next heartbeat finds
                        // out and joins again; the offsets are read again from the group's.
                        Err(e) if member.is_some() => eprintln!("{e:#}"),
                        Err(e) => return Err(e),
                    }
                }
            }
            if args.count.is_some_and(|c| printed >= c) {
                break 'fetching;
            }
        }
        if refresh {
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            topic = cluster.topic(&args.topic).await?;
        }
    }
    out.flush()?;
    drop(out);
    if let Some(g) = &args.group {
        let changed = uncommitted(&topic.name, &positions, &committed);
        if !changed.is_empty() {
            group::commit_offsets(cluster, g, &changed, member.as_ref().map(|m| (m.member_id(), m.epoch()))).await?;
        }
    }
    if let Some(m) = member.as_mut() {
        m.leave(cluster).await?;
    }
    Ok(ExitCode::SUCCESS)
}

/// The positions that moved since they were last committed, keyed as a commit takes them.
fn uncommitted(topic: &str, positions: &BTreeMap<i32, i64>, committed: &BTreeMap<i32, i64>) -> BTreeMap<(String, i32), i64> {
    positions.iter().filter(|(p, o)| committed.get(p) != Some(o)).map(|(p, o)| ((topic.to_string(), *p), *o)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::records::{Compression, RecordBatchEncoder, RecordEncodeOptions};

    fn record(offset: i64, key: &str, value: &str) -> Record {
        let mut r = crate::records::plain_record(offset, 1_700_000_000_000 + offset, Some(Bytes::copy_from_slice(key.as_bytes())), Some(Bytes::copy_from_slice(value.as_bytes())));
        r.headers.insert(kafka_protocol::protocol::StrBytes::from_static_str("h"), Some(Bytes::from_static(b"1")));
        r
    }

    #[test]
    fn the_format_places_every_field_and_escape() {
        let r = record(7, "k", "v");
        let s = render("%t/%p@%o %k=%s [%h] %T %K %S 100%%\\t|\\n", "orders", 2, &r);
        assert_eq!(String::from_utf8(s).unwrap(), "orders/2@7 k=v [h=1] 1700000000007 1 1 100%\t|\n");
    }

    #[test]
    fn start_options_parse_as_kcat_reads_them() {
        assert_eq!(parse_start(None, false, None).unwrap(), Start::End);
        assert_eq!(parse_start(Some("beginning"), false, None).unwrap(), Start::Beginning);
        assert_eq!(parse_start(Some("-5"), false, None).unwrap(), Start::FromEnd(5));
        assert_eq!(parse_start(Some("42"), false, None).unwrap(), Start::Offset(42));
        assert_eq!(parse_start(None, true, None).unwrap(), Start::Beginning);
        assert_eq!(parse_start(None, false, Some(9)).unwrap(), Start::Timestamp(9));
        assert!(parse_start(Some("soon"), false, None).is_err());
    }

    #[test]
    fn whole_batches_of_every_codec_decode_and_a_cut_off_batch_waits() {
        for compression in [Compression::None, Compression::Gzip, Compression::Snappy, Compression::Lz4, Compression::Zstd] {
            let recs: Vec<Record> = (0..3).map(|i| record(i, &format!("k{i}"), &format!("v{i}"))).collect();
            let mut buf = bytes::BytesMut::new();
            RecordBatchEncoder::encode(&mut buf, &recs, &RecordEncodeOptions { version: 2, compression }).unwrap();
            let one = buf.len();
            RecordBatchEncoder::encode(&mut buf, &recs, &RecordEncodeOptions { version: 2, compression }).unwrap();
            let cut = buf.freeze().slice(..one + 20);
            let (records, next) = decode_batches(cut).unwrap();
            assert_eq!(records.len(), 3, "{compression:?}");
            assert_eq!(records[2].value.as_deref(), Some(&b"v2"[..]));
            assert_eq!(next, Some(3));
        }
    }

    #[test]
    fn a_negative_or_too_short_batch_length_is_refused_before_allocating() {
        let mut b = vec![0u8; BATCH_HEADER_BYTES];
        b[8..12].copy_from_slice(&(-1i32).to_be_bytes());
        assert!(decode_batches(Bytes::from(b.clone())).is_err());
        b[8..12].copy_from_slice(&(10i32).to_be_bytes());
        assert!(decode_batches(Bytes::from(b)).is_err());
    }
}

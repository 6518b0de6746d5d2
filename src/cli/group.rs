//! `fjord group list|describe|reset-offsets|delete`: what Kafka's kafka-consumer-groups.sh does,
//! through ListGroups (asked of every broker, as each lists only the groups it coordinates),
//! FindCoordinator, DescribeGroups, OffsetFetch, ListOffsets, OffsetCommit and DeleteGroups.
//! Lag is the partition's log end offset minus the committed offset. As with Kafka's tool, a
//! reset is only planned unless `--execute` is given, and only an inactive group (Empty, or
//! not existing yet) can be reset: a live member would overwrite the offsets.

use std::collections::BTreeMap;
use std::process::ExitCode;

use anyhow::{Result, anyhow, bail};
use clap::{ArgGroup, Subcommand};
use kafka_protocol::messages::{
    ConsumerGroupDescribeRequest, DeleteGroupsRequest, DescribeGroupsRequest, GroupId, ListGroupsRequest, OffsetCommitRequest, OffsetFetchRequest,
    offset_commit_request::{OffsetCommitRequestPartition, OffsetCommitRequestTopic},
};
use serde_json::json;

use super::Common;
use super::conn::{Cluster, EARLIEST_TIMESTAMP, LATEST_TIMESTAMP, check, error_name, send_capped, str_bytes, topic_name};
use super::output::{Progress, Table, print_json};

/// How often a group request is tried while the coordinator moves or loads (Kafka's clients
/// find the coordinator again and retry on these errors), and the pause between tries.
const COORDINATOR_TRIES: usize = 20;
const COORDINATOR_RETRY_MS: u64 = 250;

/// COORDINATOR_LOAD_IN_PROGRESS, COORDINATOR_NOT_AVAILABLE, NOT_COORDINATOR: the coordinator is
/// moving or loading (right after __consumer_offsets is created, for one); ask again.
fn coordinator_retriable(code: i16) -> bool {
    matches!(code, 14 | 15 | 16)
}

async fn pause() {
    tokio::time::sleep(std::time::Duration::from_millis(COORDINATOR_RETRY_MS)).await;
}

#[derive(Subcommand, Debug)]
pub enum GroupCommand {
    /// Every group of every broker, with its state.
    List,
    /// State, members and, per partition, committed offset, log end offset and lag.
    Describe {
        #[arg(required = true)]
        groups: Vec<String>,
    },
    /// Plan (default) or, with --execute, commit new offsets for an inactive group.
    #[command(group(ArgGroup::new("to").required(true).args(["to_earliest", "to_latest", "to_current", "to_offset", "to_timestamp", "to_datetime", "by_duration", "shift_by"])))]
    #[command(group(ArgGroup::new("scope").required(true).args(["topic", "all_topics"])))]
    ResetOffsets {
        group: String,
        /// A topic, or TOPIC:P,P,... for some partitions; repeatable.
        #[arg(short, long, value_name = "TOPIC[:PARTITIONS]")]
        topic: Vec<String>,
        /// Every topic the group has committed offsets for.
        #[arg(long)]
        all_topics: bool,
        #[arg(long)]
        to_earliest: bool,
        #[arg(long)]
        to_latest: bool,
        /// The committed offsets as they are (the log end for partitions with none).
        #[arg(long)]
        to_current: bool,
        #[arg(long, value_name = "OFFSET")]
        to_offset: Option<i64>,
        /// The first offset whose record timestamp is >= MS (ms since the epoch).
        #[arg(long, value_name = "MS")]
        to_timestamp: Option<i64>,
        /// The first offset at or after a time, as kafka-consumer-groups.sh reads it:
        /// YYYY-MM-DDTHH:mm:SS.sss with an optional Z or +hh:mm / -hh:mm (UTC without one).
        #[arg(long, value_name = "DATETIME", value_parser = parse_datetime)]
        to_datetime: Option<i64>,
        /// The first offset at or after this long ago: PnDTnHnMn.nS (e.g. PT1H, P1DT12H).
        #[arg(long, value_name = "DURATION", value_parser = parse_duration_ms)]
        by_duration: Option<i64>,
        /// Move the committed offsets by N (negative: back), within the log.
        #[arg(long, value_name = "N", allow_hyphen_values = true)]
        shift_by: Option<i64>,
        /// Commit the new offsets (without it, the plan is only printed).
        #[arg(long, conflicts_with = "dry_run")]
        execute: bool,
        /// Only print the plan (the default).
        #[arg(long)]
        dry_run: bool,
    },
    /// Delete groups (they must have no members).
    Delete {
        #[arg(required = true)]
        groups: Vec<String>,
    },
}

/// The group's committed offsets, of `topics` or of all its topics (OffsetFetch).
pub async fn committed_offsets(cluster: &mut Cluster, group: &str, topics: Option<&[String]>) -> Result<BTreeMap<(String, i32), i64>> {
    let coordinator = cluster.coordinator(group).await?;
    let request_topics = match topics {
        None => None,
        Some(names) => {
            let mut wanted = Vec::new();
            for name in names {
                let info = cluster.topic(name).await?;
                wanted.push(
                    kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestTopic::default()
                        .with_name(topic_name(name))
                        .with_partition_indexes(info.partitions.iter().map(|p| p.partition).collect()),
                );
            }
            Some(wanted)
        }
    };
    let request = OffsetFetchRequest::default().with_group_id(GroupId(str_bytes(group))).with_topics(request_topics);
    // v7 at most: one group, topics by name (v8 batches groups).
    let mut response = send_capped(&coordinator, &request, 7).await?;
    for _ in 1..COORDINATOR_TRIES {
        if !coordinator_retriable(response.error_code) {
            break;
        }
        pause().await;
        response = send_capped(&*cluster.coordinator(group).await?, &request, 7).await?;
    }
    check(response.error_code, format!("fetching the offsets of group {group}"))?;
    let mut out = BTreeMap::new();
    for t in &response.topics {
        for p in &t.partitions {
            check(p.error_code, format!("offset of {}-{} in group {group}", t.name.0, p.partition_index))?;
            if p.committed_offset >= 0 {
                out.insert((t.name.0.to_string(), p.partition_index), p.committed_offset);
            }
        }
    }
    Ok(out)
}

/// Commits offsets as `member` (its id and epoch or generation), or with none as a consumer that
/// is not a member (generation -1, no member id), which a coordinator accepts only while the
/// group has no members.
pub async fn commit_offsets(cluster: &mut Cluster, group: &str, offsets: &BTreeMap<(String, i32), i64>, member: Option<(&str, i32)>) -> Result<()> {
    let coordinator = cluster.coordinator(group).await?;
    let mut by_topic: BTreeMap<&str, Vec<OffsetCommitRequestPartition>> = BTreeMap::new();
    for ((t, p), o) in offsets {
        by_topic
            .entry(t.as_str())
            .or_default()
            .push(OffsetCommitRequestPartition::default().with_partition_index(*p).with_committed_offset(*o).with_committed_leader_epoch(-1).with_committed_metadata(Some(str_bytes(""))));
    }
    let request = OffsetCommitRequest::default()
        .with_group_id(GroupId(str_bytes(group)))
        .with_generation_id_or_member_epoch(member.map_or(-1, |m| m.1))
        .with_member_id(str_bytes(member.map_or("", |m| m.0)))
        .with_retention_time_ms(-1)
        .with_topics(by_topic.into_iter().map(|(t, ps)| OffsetCommitRequestTopic::default().with_name(topic_name(t)).with_partitions(ps)).collect());
    // v9 at most: the fields every broker from Kafka 2.3 on reads the same way (v9 adds none; a
    // KIP-848 member must commit with it, older versions are refused for such groups).
    let mut response = send_capped(&coordinator, &request, 9).await?;
    for _ in 1..COORDINATOR_TRIES {
        if !response.topics.iter().flat_map(|t| t.partitions.iter()).any(|p| coordinator_retriable(p.error_code)) {
            break;
        }
        pause().await;
        response = send_capped(&*cluster.coordinator(group).await?, &request, 9).await?;
    }
    for t in &response.topics {
        for p in &t.partitions {
            check(p.error_code, format!("committing {}-{} for group {group}", t.name.0, p.partition_index))?;
        }
    }
    Ok(())
}

/// A group as the CLI shows it, from DescribeGroups (classic groups) or ConsumerGroupDescribe
/// (KIP-848 consumer groups, which DescribeGroups reports as Dead).
struct GroupView {
    state: String,
    protocol_type: String,
    /// The classic group's assignor, or the consumer group's.
    protocol: String,
    members: Vec<MemberView>,
}

struct MemberView {
    member_id: String,
    client_id: String,
    host: String,
    partitions: Vec<(String, i32)>,
}

/// GROUP_ID_NOT_FOUND: what DescribeGroups v6+ and ConsumerGroupDescribe answer for a group of
/// the other kind (or none).
const GROUP_ID_NOT_FOUND: i16 = 69;

async fn describe_group(cluster: &mut Cluster, group: &str) -> Result<GroupView> {
    let request = DescribeGroupsRequest::default().with_groups(vec![GroupId(str_bytes(group))]);
    let mut g = None;
    for _ in 0..COORDINATOR_TRIES {
        let response = send_capped(&*cluster.coordinator(group).await?, &request, 5).await?;
        let answer = response.groups.into_iter().next().ok_or_else(|| anyhow!("DescribeGroups answered no group"))?;
        let again = coordinator_retriable(answer.error_code);
        g = Some(answer);
        if !again {
            break;
        }
        pause().await;
    }
    let g = g.ok_or_else(|| anyhow!("DescribeGroups answered no group"))?;
    if g.error_code != GROUP_ID_NOT_FOUND {
        check(g.error_code, format!("describing group {group}"))?;
    }
    if g.error_code == GROUP_ID_NOT_FOUND || g.group_state.as_str() == "Dead" {
        if let Some(view) = describe_consumer_group(cluster, group).await? {
            return Ok(view);
        }
        return Ok(GroupView { state: "Dead".into(), protocol_type: String::new(), protocol: String::new(), members: Vec::new() });
    }
    let consumer = g.protocol_type.as_str() == "consumer";
    let members = g
        .members
        .iter()
        .map(|m| MemberView {
            member_id: m.member_id.to_string(),
            client_id: m.client_id.to_string(),
            host: m.client_host.to_string(),
            partitions: if consumer { crate::protocol::consumer::assigned_partitions(m.member_assignment.clone()) } else { Vec::new() },
        })
        .collect();
    Ok(GroupView { state: g.group_state.to_string(), protocol_type: g.protocol_type.to_string(), protocol: g.protocol_data.to_string(), members })
}

/// ConsumerGroupDescribe, when the coordinator serves it: `None` if it knows no such group.
async fn describe_consumer_group(cluster: &mut Cluster, group: &str) -> Result<Option<GroupView>> {
    let coordinator = cluster.coordinator(group).await?;
    if coordinator.version_for::<ConsumerGroupDescribeRequest>().is_err() {
        return Ok(None);
    }
    let request = ConsumerGroupDescribeRequest::default().with_group_ids(vec![GroupId(str_bytes(group))]);
    let response = coordinator.send(&request).await?;
    let Some(g) = response.groups.into_iter().next() else { return Ok(None) };
    if g.error_code == GROUP_ID_NOT_FOUND || g.group_state.as_str() == "Dead" {
        return Ok(None);
    }
    check(g.error_code, format!("describing consumer group {group}"))?;
    let members = g
        .members
        .iter()
        .map(|m| MemberView {
            member_id: m.member_id.to_string(),
            client_id: m.client_id.to_string(),
            host: m.client_host.to_string(),
            partitions: m.assignment.topic_partitions.iter().flat_map(|t| t.partitions.iter().map(move |p| (t.topic_name.0.to_string(), *p))).collect(),
        })
        .collect();
    Ok(Some(GroupView { state: g.group_state.to_string(), protocol_type: "consumer".into(), protocol: g.assignor_name.to_string(), members }))
}

/// Log end offsets of the given partitions, by topic.
async fn log_end_offsets(cluster: &mut Cluster, partitions: &[(String, i32)], timestamp: i64) -> Result<BTreeMap<(String, i32), i64>> {
    let mut by_topic: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
    for (t, p) in partitions {
        by_topic.entry(t.as_str()).or_default().push(*p);
    }
    let mut out = BTreeMap::new();
    for (t, ps) in by_topic {
        let info = cluster.topic(t).await?;
        for (p, o) in cluster.list_offsets(&info, &ps, timestamp).await? {
            out.insert((t.to_string(), p), o);
        }
    }
    Ok(out)
}

pub async fn run(cluster: &mut Cluster, common: &Common, command: GroupCommand) -> Result<ExitCode> {
    match command {
        GroupCommand::List => list(cluster, common).await,
        GroupCommand::Describe { groups } => {
            let mut docs = Vec::new();
            for group in &groups {
                docs.push(describe(cluster, common, group).await?);
            }
            if common.json {
                print_json(&json!(docs));
            }
            Ok(ExitCode::SUCCESS)
        }
        GroupCommand::ResetOffsets { group, topic, all_topics, to_earliest, to_latest, to_current, to_offset, to_timestamp, to_datetime, by_duration, shift_by, execute, dry_run: _ } => {
            let to = if to_earliest {
                To::Earliest
            } else if to_latest {
                To::Latest
            } else if to_current {
                To::Current
            } else if let Some(o) = to_offset {
                To::Offset(o)
            } else if let Some(ts) = to_timestamp.or(to_datetime) {
                To::Timestamp(ts)
            } else if let Some(ago) = by_duration {
                let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64);
                To::Timestamp(now.saturating_sub(ago))
            } else {
                To::Shift(shift_by.unwrap_or(0))
            };
            reset(cluster, common, &group, &topic, all_topics, to, execute).await
        }
        GroupCommand::Delete { groups } => {
            let mut failed = Vec::new();
            let mut results = Vec::new();
            for group in &groups {
                let request = DeleteGroupsRequest::default().with_groups_names(vec![GroupId(str_bytes(group))]);
                let mut response = send_capped(&*cluster.coordinator(group).await?, &request, 2).await?;
                for _ in 1..COORDINATOR_TRIES {
                    if !response.results.iter().any(|r| coordinator_retriable(r.error_code)) {
                        break;
                    }
                    pause().await;
                    response = send_capped(&*cluster.coordinator(group).await?, &request, 2).await?;
                }
                for r in &response.results {
                    let error = (r.error_code != 0).then(|| error_name(r.error_code));
                    if let Some(e) = &error {
                        failed.push(format!("{}: {e}", r.group_id.0));
                    } else if !common.json {
                        println!("Deleted group {}.", r.group_id.0);
                    }
                    results.push(json!({"group": r.group_id.0.as_str(), "error": error}));
                }
            }
            if common.json {
                print_json(&json!(results));
            }
            if !failed.is_empty() {
                bail!("deleting groups: {}", failed.join(", "));
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

async fn list(cluster: &mut Cluster, common: &Common) -> Result<ExitCode> {
    cluster.metadata(Some(&[])).await?;
    let ids: Vec<i32> = cluster.brokers().keys().copied().collect();
    let mut groups: BTreeMap<String, (String, String, String)> = BTreeMap::new();
    for id in ids {
        let client = cluster.broker(id).await?;
        let response = send_capped(&client, &ListGroupsRequest::default(), 5).await?;
        check(response.error_code, format!("listing the groups of broker {id}"))?;
        for g in response.groups {
            let kind = if g.group_type.is_empty() { "-".to_string() } else { g.group_type.to_string() };
            let state = if g.group_state.is_empty() { "-".to_string() } else { g.group_state.to_string() };
            groups.insert(g.group_id.0.to_string(), (state, g.protocol_type.to_string(), kind));
        }
    }
    if common.json {
        let list: Vec<_> = groups.iter().map(|(g, (state, protocol, kind))| json!({"group": g, "state": state, "protocol_type": protocol, "type": kind})).collect();
        print_json(&json!(list));
    } else {
        let mut t = Table::new(&["GROUP", "STATE", "PROTOCOL-TYPE", "TYPE"]);
        for (g, (state, protocol, kind)) in groups {
            t.row(vec![g, state, protocol, kind]);
        }
        t.print();
    }
    Ok(ExitCode::SUCCESS)
}

async fn describe(cluster: &mut Cluster, common: &Common, group: &str) -> Result<serde_json::Value> {
    let described = describe_group(cluster, group).await?;
    let mut owner: BTreeMap<(String, i32), (String, String, String)> = BTreeMap::new();
    for m in &described.members {
        for tp in &m.partitions {
            owner.insert(tp.clone(), (m.member_id.clone(), m.host.clone(), m.client_id.clone()));
        }
    }
    let committed = committed_offsets(cluster, group, None).await?;
    let mut partitions: Vec<(String, i32)> = committed.keys().cloned().chain(owner.keys().cloned()).collect();
    partitions.sort();
    partitions.dedup();
    let ends = log_end_offsets(cluster, &partitions, LATEST_TIMESTAMP).await?;
    let mut rows = Vec::new();
    let mut total_lag = 0i64;
    for tp in &partitions {
        let current = committed.get(tp).copied();
        let end = ends.get(tp).copied();
        let lag = match (current, end) {
            (Some(c), Some(e)) => Some((e - c).max(0)),
            _ => None,
        };
        total_lag += lag.unwrap_or(0);
        rows.push((tp.clone(), current, end, lag, owner.get(tp).cloned()));
    }
    if !common.json {
        println!("Group: {group}\tState: {}\tProtocol: {}\tMembers: {}\tTotal lag: {total_lag}", described.state, or_dash(&described.protocol), described.members.len());
        let mut t = Table::new(&["GROUP", "TOPIC", "PARTITION", "CURRENT-OFFSET", "LOG-END-OFFSET", "LAG", "CONSUMER-ID", "HOST", "CLIENT-ID"]);
        let dash = || "-".to_string();
        for ((topic, p), current, end, lag, owner) in &rows {
            let (member, host, client) = owner.clone().unwrap_or_else(|| (dash(), dash(), dash()));
            t.row(vec![
                group.to_string(),
                topic.clone(),
                p.to_string(),
                current.map_or_else(dash, |c| c.to_string()),
                end.map_or_else(dash, |e| e.to_string()),
                lag.map_or_else(dash, |l| l.to_string()),
                member,
                host,
                client,
            ]);
        }
        t.print();
        println!();
    }
    let members: Vec<_> = described.members.iter().map(|m| json!({"member_id": m.member_id, "client_id": m.client_id, "host": m.host, "partitions": m.partitions.len()})).collect();
    let offsets: Vec<_> = rows
        .iter()
        .map(|((topic, p), current, end, lag, owner)| json!({"topic": topic, "partition": p, "current_offset": current, "log_end_offset": end, "lag": lag, "member_id": owner.as_ref().map(|o| o.0.clone())}))
        .collect();
    Ok(json!({"group": group, "state": described.state, "protocol_type": described.protocol_type, "protocol": described.protocol, "members": members, "offsets": offsets, "total_lag": total_lag}))
}

fn or_dash(s: &str) -> &str {
    if s.is_empty() { "-" } else { s }
}

#[derive(Clone, Copy, Debug)]
enum To {
    Earliest,
    Latest,
    Current,
    Offset(i64),
    Timestamp(i64),
    Shift(i64),
}

/// Milliseconds since the epoch of a time as kafka-consumer-groups.sh's `--to-datetime` takes
/// it: `YYYY-MM-DDTHH:mm:SS[.sss]` then `Z`, `+hh[:mm]` or `-hh[:mm]`, or nothing for UTC.
pub fn parse_datetime(s: &str) -> Result<i64, String> {
    let bad = || format!("{s:?} is not a time like 2026-12-05T08:30:00.000 (optionally ending in Z, +hh:mm or -hh:mm)");
    let (date, rest) = s.split_once('T').ok_or_else(bad)?;
    let num = |t: &str, len: usize| -> Result<i64, String> { if t.len() == len && t.bytes().all(|b| b.is_ascii_digit()) { t.parse().map_err(|_| bad()) } else { Err(bad()) } };
    let d: Vec<&str> = date.split('-').collect();
    let [y, mo, da] = d[..] else { return Err(bad()) };
    let (y, mo, da) = (num(y, 4)?, num(mo, 2)?, num(da, 2)?);
    // The zone starts at the first Z, + or - after the time.
    let zone_at = rest.find(['Z', '+', '-']).unwrap_or(rest.len());
    let (time, zone) = rest.split_at(zone_at);
    let (hms, millis) = match time.split_once('.') {
        Some((hms, ms)) => (hms, num(ms, 3)?),
        None => (time, 0),
    };
    let t: Vec<&str> = hms.split(':').collect();
    let [h, mi, se] = t[..] else { return Err(bad()) };
    let (h, mi, se) = (num(h, 2)?, num(mi, 2)?, num(se, 2)?);
    let days_in_month = match mo {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        2 => 28,
        _ => return Err(bad()),
    };
    if da < 1 || da > days_in_month || h > 23 || mi > 59 || se > 59 {
        return Err(bad());
    }
    let offset_minutes = match zone {
        "" | "Z" => 0,
        z => {
            let sign = if z.starts_with('-') { -1 } else { 1 };
            let digits: String = z[1..].chars().filter(|c| *c != ':').collect();
            let (zh, zm) = match digits.len() {
                2 => (num(&digits, 2)?, 0),
                4 => (num(&digits[..2], 2)?, num(&digits[2..], 2)?),
                _ => return Err(bad()),
            };
            if zh > 18 || zm > 59 {
                return Err(bad());
            }
            sign * (zh * 60 + zm)
        }
    };
    let seconds = days_from_civil(y, mo, da) * 86_400 + h * 3600 + mi * 60 + se - offset_minutes * 60;
    Ok(seconds * 1000 + millis)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Milliseconds of an ISO-8601 duration as `--by-duration` takes it: `PnDTnHnMn.nS`, each part
/// optional (at least one), e.g. `PT30M`, `P1D`, `P2DT3H4M5.5S`.
pub fn parse_duration_ms(s: &str) -> Result<i64, String> {
    let bad = || format!("{s:?} is not a duration like PT30M, P1D or P1DT12H30M5.5S");
    let rest = s.strip_prefix(['P', 'p']).ok_or_else(bad)?;
    let (days, time) = match rest.split_once(['T', 't']) {
        Some((d, t)) => (d, Some(t)),
        None => (rest, None),
    };
    let mut total: f64 = 0.0;
    let mut parts = 0;
    if !days.is_empty() {
        let n = days.strip_suffix(['D', 'd']).ok_or_else(bad)?;
        total += n.parse::<u32>().map_err(|_| bad())? as f64 * 86_400_000.0;
        parts += 1;
    }
    if let Some(mut t) = time {
        for (unit, ms) in [('H', 3_600_000.0), ('M', 60_000.0), ('S', 1000.0)] {
            if let Some(at) = t.find([unit, unit.to_ascii_lowercase()]) {
                let n: f64 = t[..at].parse().map_err(|_| bad())?;
                if n.is_nan() || n < 0.0 || (unit != 'S' && n.fract() != 0.0) {
                    return Err(bad());
                }
                total += n * ms;
                parts += 1;
                t = &t[at + 1..];
            }
        }
        if !t.is_empty() {
            return Err(bad());
        }
    }
    if parts == 0 || total > i64::MAX as f64 / 2.0 {
        return Err(bad());
    }
    Ok(total as i64)
}

/// Parses `TOPIC` or `TOPIC:0,1,2`.
pub fn parse_topic_partitions(s: &str) -> Result<(String, Option<Vec<i32>>)> {
    match s.split_once(':') {
        None => Ok((s.to_string(), None)),
        Some((t, ps)) => {
            let parts = ps.split(',').map(|p| p.trim().parse::<i32>().map_err(|_| anyhow!("bad partition {p:?} in {s:?}"))).collect::<Result<Vec<_>>>()?;
            Ok((t.to_string(), Some(parts)))
        }
    }
}

async fn reset(cluster: &mut Cluster, common: &Common, group: &str, topics: &[String], all_topics: bool, to: To, execute: bool) -> Result<ExitCode> {
    // Kafka's tool refuses a group with members; so does this one, also for a dry run, so that
    // the plan printed is one that --execute would carry out.
    let state = describe_group(cluster, group).await?.state;
    if !(state.eq_ignore_ascii_case("Empty") || state.eq_ignore_ascii_case("Dead")) {
        bail!("group {group} is {state}: offsets can be reset only while the group has no members (stop its consumers first)");
    }
    let committed = committed_offsets(cluster, group, None).await?;
    let mut wanted: Vec<(String, i32)> = Vec::new();
    if all_topics {
        wanted.extend(committed.keys().cloned());
    }
    for spec in topics {
        let (t, ps) = parse_topic_partitions(spec)?;
        let info = cluster.topic(&t).await?;
        let all: Vec<i32> = info.partitions.iter().map(|p| p.partition).collect();
        for p in ps.unwrap_or_else(|| all.clone()) {
            if !all.contains(&p) {
                bail!("topic {t} has no partition {p}");
            }
            wanted.push((t.clone(), p));
        }
    }
    wanted.sort();
    wanted.dedup();
    if wanted.is_empty() {
        bail!("no partitions to reset (the group has no committed offsets)");
    }
    let mut progress = Progress::new("partitions planned", Some(wanted.len() as u64));
    let earliest = log_end_offsets(cluster, &wanted, EARLIEST_TIMESTAMP).await?;
    let latest = log_end_offsets(cluster, &wanted, LATEST_TIMESTAMP).await?;
    let at_time = match to {
        To::Timestamp(ts) => Some(log_end_offsets(cluster, &wanted, ts).await?),
        _ => None,
    };
    let mut plan: BTreeMap<(String, i32), i64> = BTreeMap::new();
    for (done, tp) in wanted.iter().enumerate() {
        let (lo, hi) = (earliest[tp], latest[tp]);
        let target = match to {
            To::Earliest => lo,
            To::Latest => hi,
            To::Current => committed.get(tp).map_or(hi, |c| (*c).clamp(lo, hi)),
            To::Offset(o) => o.clamp(lo, hi),
            // -1: no record at or after the time; the end, as Kafka's tool does.
            To::Timestamp(_) => at_time.as_ref().map_or(hi, |m| if m[tp] < 0 { hi } else { m[tp] }),
            To::Shift(n) => committed.get(tp).map_or(lo, |c| c.saturating_add(n)).clamp(lo, hi),
        };
        plan.insert(tp.clone(), target);
        progress.update(done as u64 + 1);
    }
    progress.finish(wanted.len() as u64, false);
    if execute {
        let mut commit_progress = Progress::new("partitions committed", Some(plan.len() as u64));
        let entries: Vec<_> = plan.iter().map(|(k, v)| (k.clone(), *v)).collect();
        // Committed in chunks so progress shows on thousands of partitions.
        for (i, chunk) in entries.chunks(500).enumerate() {
            let part: BTreeMap<(String, i32), i64> = chunk.iter().cloned().collect();
            commit_offsets(cluster, group, &part, None).await?;
            commit_progress.update(((i + 1) * 500).min(entries.len()) as u64);
        }
        commit_progress.finish(entries.len() as u64, false);
    }
    if common.json {
        let rows: Vec<_> = plan.iter().map(|((t, p), o)| json!({"topic": t, "partition": p, "previous_offset": committed.get(&(t.clone(), *p)), "new_offset": o})).collect();
        print_json(&json!({"group": group, "executed": execute, "offsets": rows}));
    } else {
        let mut t = Table::new(&["GROUP", "TOPIC", "PARTITION", "PREVIOUS-OFFSET", "NEW-OFFSET"]);
        for ((topic, p), o) in &plan {
            t.row(vec![group.to_string(), topic.clone(), p.to_string(), committed.get(&(topic.clone(), *p)).map_or_else(|| "-".into(), |c| c.to_string()), o.to_string()]);
        }
        t.print();
        if !execute {
            eprintln!("Dry run: nothing was committed. Add --execute to commit these offsets.");
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn datetimes_read_as_kafka_consumer_groups_reads_them() {
        // 2026-12-05T08:30:00Z is 1,796,459,400 s after the epoch.
        assert_eq!(parse_datetime("2026-12-05T08:30:00.000"), Ok(1_796_459_400_000));
        assert_eq!(parse_datetime("2026-12-05T08:30:00.250Z"), Ok(1_796_459_400_250));
        assert_eq!(parse_datetime("2026-12-05T10:30:00.000+02:00"), Ok(1_796_459_400_000));
        assert_eq!(parse_datetime("2026-12-05T03:30:00-0500"), Ok(1_796_459_400_000));
        assert_eq!(parse_datetime("1970-01-01T00:00:00.000Z"), Ok(0));
        assert_eq!(parse_datetime("2024-02-29T00:00:00"), Ok(1_709_164_800_000));
        for bad in ["2026-12-05", "2026-13-01T00:00:00", "2023-02-29T00:00:00", "2026-12-05T24:00:00", "2026-12-05T08:30:00.5", "2026-12-05T08:30:00+2", "soon"] {
            assert!(parse_datetime(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn durations_read_as_iso_8601_says() {
        assert_eq!(parse_duration_ms("PT30M"), Ok(1_800_000));
        assert_eq!(parse_duration_ms("P1D"), Ok(86_400_000));
        assert_eq!(parse_duration_ms("P1DT2H3M4.5S"), Ok(86_400_000 + 7_200_000 + 180_000 + 4_500));
        for bad in ["", "P", "PT", "1H", "PT1.5H", "PT-1S", "PT1X", "P1H"] {
            assert!(parse_duration_ms(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn topic_partition_specs_parse() {
        assert_eq!(parse_topic_partitions("orders").unwrap(), ("orders".into(), None));
        assert_eq!(parse_topic_partitions("orders:0,2").unwrap(), ("orders".into(), Some(vec![0, 2])));
        assert!(parse_topic_partitions("orders:x").is_err());
    }
}

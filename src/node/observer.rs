//! Broker-only nodes (`process.roles=broker` in a quorum) follow the metadata log as KRaft's
//! observers do: they do not vote and are not Raft members; they fetch the committed log from the
//! active controller over its controller listener and apply it to their own metadata image.
//!
//! Why a fetch of its own rather than an openraft learner: a learner is a member of the Raft
//! configuration (the leader pushes to it, the membership names it), so every broker start, stop
//! or removal would be a membership change the quorum must commit, and a broker gone for good
//! would stay a learner until someone removed it. A fetching observer is nobody's member: it asks
//! whichever voter leads now (found again from `controller.quorum.voters` when a voter answers
//! NOT_LEADER or goes away), so leader changes and its own restarts need nothing from the quorum,
//! and the leader forgets an observer that stopped fetching (Kafka's observer session, 5 min).
//!
//! The exchange, under the private api key [`FJORD_METADATA_FETCH_API_KEY`] in a Kafka request
//! frame (as the voters' Raft RPCs), bodies in postcard:
//! - the observer sends the last log index it holds (none after a start: it keeps no metadata log
//!   of its own and catches up anew each start), the most payload bytes it wants, and the
//!   `directory.id` of its metadata log dir (Kafka's ReplicaDirectoryId; absent in bodies from
//!   before it, which the leader still reads);
//! - the leader answers the payloads of the committed entries after it (entries without a payload
//!   only move the index), waiting up to [`FETCH_MAX_WAIT`] when there is nothing new; or, when
//!   that index is behind its snapshot (the entries were purged), its whole current image as
//!   snapshot records with the index they stand for, after which the observer fetches the tail.
//!
//! The leader remembers each registered broker's position and last fetch for DescribeQuorum's
//! observers.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use super::cluster::{ControllerService, ImageMachine};
use crate::broker::cluster::ControllerChannel;
use crate::metadata::encode_records;
use crate::raft::{ApplyError, StateMachine};

/// The private api key of an observer's metadata fetch, beside the Raft RPCs' and outside
/// Kafka's range.
pub const FJORD_METADATA_FETCH_API_KEY: i16 = crate::raft::FJORD_RAFT_API_KEY + 1;
/// The only version of its body.
pub const FJORD_METADATA_FETCH_API_VERSION: i16 = 0;
/// How long the leader holds a fetch that has nothing new (Kafka's observers wait 500 ms).
pub const FETCH_MAX_WAIT: Duration = Duration::from_millis(500);
/// The payload bytes an observer asks for at most per fetch (Kafka's KRaft fetch: 8 MiB); one
/// entry is always sent, however large.
pub const FETCH_MAX_BYTES: u32 = 8 * 1024 * 1024;
/// An observer that has not fetched for this long leaves DescribeQuorum (Kafka's
/// OBSERVER_SESSION_TIMEOUT_MS).
pub const OBSERVER_SESSION_TIMEOUT: Duration = Duration::from_secs(300);
/// How long an observer waits before asking again after an error or a NOT_LEADER.
const RETRY: Duration = Duration::from_millis(100);

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetadataFetchRequest {
    /// The observer's `node.id`.
    pub node_id: i32,
    /// The last log index the observer holds; None when it holds nothing.
    pub after: Option<u64>,
    pub max_bytes: u32,
    /// The `directory.id` of the observer's metadata log dir, for DescribeQuorum (Kafka's fetch
    /// ReplicaDirectoryId). Last, so a leader from before it reads the rest and ignores it.
    pub directory_id: Option<u128>,
}

/// The request body before directory ids, still read from an observer not yet upgraded.
#[derive(Deserialize)]
struct MetadataFetchRequestV0 {
    node_id: i32,
    after: Option<u64>,
    max_bytes: u32,
}

/// A fetch body, with or without the directory id; either read to its last byte.
fn decode_request(body: &[u8]) -> Result<MetadataFetchRequest, postcard::Error> {
    if let Ok((request, [])) = postcard::take_from_bytes::<MetadataFetchRequest>(body) {
        return Ok(request);
    }
    match postcard::take_from_bytes::<MetadataFetchRequestV0>(body)? {
        (v0, []) => Ok(MetadataFetchRequest { node_id: v0.node_id, after: v0.after, max_bytes: v0.max_bytes, directory_id: None }),
        _ => Err(postcard::Error::DeserializeBadEncoding),
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum MetadataFetchResponse {
    /// `(index, payload)` of the committed entries after the asked index that carry one, and the
    /// last index they cover (entries without a payload included).
    Entries { entries: Vec<(u64, Vec<u8>)>, covered: Option<u64> },
    /// The asked index is behind the leader's snapshot: its image as snapshot records
    /// ([`crate::metadata::encode_records`]), standing for the log up to `last_index`.
    Snapshot { last_index: u64, records: Vec<u8> },
    /// This voter does not lead the quorum: ask another.
    NotLeader { leader_id: Option<i32> },
    /// The request body did not decode.
    Malformed(String),
}

/// One observer as the leader saw it last.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ObserverState {
    pub node_id: i32,
    /// Its metadata log dir's `directory.id`, when it sent one.
    pub directory_id: Option<uuid::Uuid>,
    /// The last index it holds after the answer it was sent (Kafka's log end offset - 1).
    pub covered: Option<u64>,
    pub last_fetch: SystemTime,
    /// When it last held everything committed, if it ever did in this leadership.
    pub last_caught_up: Option<SystemTime>,
}

/// The observers that fetched from this voter while it led, for DescribeQuorum. Forgotten when
/// the leadership (term) changes, as Kafka's new leader starts its observer set empty, and after
/// [`OBSERVER_SESSION_TIMEOUT`] without a fetch.
#[derive(Debug, Default)]
pub struct Observers {
    /// The leadership's term, and each observer with when it was seen.
    inner: Mutex<(u64, ObserverMap)>,
}

type ObserverMap = HashMap<i32, (ObserverState, Instant)>;

impl Observers {
    fn record(&self, term: u64, state: ObserverState) {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if inner.0 != term {
            *inner = (term, HashMap::new());
        }
        let last_caught_up = match (state.last_caught_up, inner.1.get(&state.node_id)) {
            (Some(t), _) => Some(t),
            (None, Some((before, _))) => before.last_caught_up,
            (None, None) => None,
        };
        inner.1.insert(state.node_id, (ObserverState { last_caught_up, ..state }, Instant::now()));
    }

    /// The observers of leadership `term` seen within the session timeout, by node id.
    pub fn active(&self, term: u64) -> Vec<ObserverState> {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if inner.0 != term {
            return Vec::new();
        }
        inner.1.retain(|_, (_, seen)| seen.elapsed() < OBSERVER_SESSION_TIMEOUT);
        let mut out: Vec<ObserverState> = inner.1.values().map(|(s, _)| *s).collect();
        out.sort_by_key(|s| s.node_id);
        out
    }
}

/// The leader's answer to one fetch body.
pub async fn answer(service: &ControllerService, body: &[u8]) -> Vec<u8> {
    let response = match decode_request(body) {
        Ok(request) => fetch(service, request).await,
        Err(e) => MetadataFetchResponse::Malformed(e.to_string()),
    };
    postcard::to_allocvec(&response).unwrap_or_default()
}

async fn fetch(service: &ControllerService, request: MetadataFetchRequest) -> MetadataFetchResponse {
    let status = service.raft.status();
    if !status.is_leader {
        return MetadataFetchResponse::NotLeader { leader_id: status.leader_id.map(|l| l as i32) };
    }
    let next = request.after.map_or(0, |a| a.saturating_add(1));
    // Nothing new: hold the fetch until something is applied, or the wait ends.
    if status.last_applied_index.is_none_or(|a| a < next) {
        service.raft.wait_for_applied(next, FETCH_MAX_WAIT).await;
    }
    let max_bytes = request.max_bytes.clamp(1, FETCH_MAX_BYTES) as usize;
    let response = match service.raft.committed_payloads_after(request.after, max_bytes) {
        Some(p) => MetadataFetchResponse::Entries { entries: p.entries, covered: p.covered },
        None => {
            // The purge point is read before the image: the image then holds every entry up to
            // it, and the entries between its last payload and the purge point carry none.
            let purged = service.raft.last_purged_index();
            let image = service.image();
            let last_index = image.offset.max(purged.unwrap_or(0));
            MetadataFetchResponse::Snapshot { last_index, records: encode_records(&image.to_snapshot_records()) }
        }
    };
    let covered = match &response {
        MetadataFetchResponse::Entries { covered, .. } => *covered,
        MetadataFetchResponse::Snapshot { last_index, .. } => Some(*last_index),
        _ => request.after,
    };
    // Only registered brokers are remembered: the set stays as small as the cluster.
    if service.image().broker(request.node_id).is_none() {
        return response;
    }
    let now = SystemTime::now();
    let committed = service.raft.status().committed_index;
    let caught_up = committed.is_none_or(|c| covered.is_some_and(|v| v >= c));
    service.observers.record(status.leader_epoch, ObserverState { node_id: request.node_id, directory_id: request.directory_id.map(uuid::Uuid::from_u128), covered, last_fetch: now, last_caught_up: caught_up.then_some(now) });
    response
}

/// Follows the metadata log from the active controller into `machine` until `stop`: the loop of
/// a broker-only node (see the module doc).
pub async fn follow(node_id: i32, directory_id: Option<uuid::Uuid>, machine: Arc<ImageMachine>, channel: Arc<ControllerChannel>, mut stop: watch::Receiver<bool>) {
    let mut after: Option<u64> = None;
    loop {
        let request = MetadataFetchRequest { node_id, after, max_bytes: FETCH_MAX_BYTES, directory_id: directory_id.map(|d| d.as_u128()) };
        let body = postcard::to_allocvec(&request).unwrap_or_default();
        let sent = tokio::select! {
            r = channel.send_private(FJORD_METADATA_FETCH_API_KEY, FJORD_METADATA_FETCH_API_VERSION, &body) => r,
            _ = crate::raft::transport::stopped(&mut stop) => return,
        };
        let retry = match sent.map(|b| postcard::from_bytes::<MetadataFetchResponse>(&b)) {
            Ok(Ok(MetadataFetchResponse::Entries { entries, covered })) => {
                for (index, payload) in entries {
                    if after.is_some_and(|a| index <= a) || covered.is_some_and(|c| index > c) {
                        continue;
                    }
                    // A batch the image refuses is refused on every node alike (logged there).
                    if let Err(ApplyError::Fatal(e)) = machine.apply(index, &payload) {
                        tracing::error!(index, error = %e, "metadata observer: cannot apply the metadata log");
                        return;
                    }
                }
                after = after.max(covered);
                false
            }
            Ok(Ok(MetadataFetchResponse::Snapshot { last_index, records })) if after.is_none_or(|a| last_index > a) => {
                let m = machine.clone();
                match tokio::task::spawn_blocking(move || m.install_snapshot(last_index, &records)).await {
                    Ok(Ok(())) => {
                        tracing::info!(last_index, "metadata observer: installed the controller's snapshot");
                        after = Some(last_index);
                        false
                    }
                    Ok(Err(e)) => {
                        tracing::warn!(last_index, error = %e, "metadata observer: snapshot refused");
                        true
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "metadata observer: snapshot install failed");
                        true
                    }
                }
            }
            Ok(Ok(MetadataFetchResponse::Snapshot { .. })) => true,
            Ok(Ok(MetadataFetchResponse::NotLeader { .. })) => {
                channel.not_controller().await;
                true
            }
            Ok(Ok(MetadataFetchResponse::Malformed(e))) => {
                tracing::warn!(error = %e, "metadata observer: the controller could not read the fetch");
                true
            }
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "metadata observer: undecodable answer");
                channel.not_controller().await;
                true
            }
            Err(e) => {
                tracing::debug!(error = %e, "metadata observer: fetch not answered");
                true
            }
        };
        if retry {
            tokio::select! {
                _ = tokio::time::sleep(RETRY) => {}
                _ = crate::raft::transport::stopped(&mut stop) => return,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fetch_bodies_round_trip_and_garbage_is_an_error() {
        let request = MetadataFetchRequest { node_id: 4, after: Some(17), max_bytes: 1024, directory_id: Some(u128::MAX - 7) };
        let bytes = postcard::to_allocvec(&request).expect("encode");
        assert_eq!(decode_request(&bytes).expect("decode"), request);
        assert!(decode_request(&bytes[..bytes.len() - 1]).is_err(), "a cut body is refused");
        let response = MetadataFetchResponse::Entries { entries: vec![(18, b"x".to_vec())], covered: Some(19) };
        let bytes = postcard::to_allocvec(&response).expect("encode");
        assert_eq!(postcard::from_bytes::<MetadataFetchResponse>(&bytes).expect("decode"), response);
        // A length far beyond the body never sizes an allocation: postcard refuses it.
        assert!(postcard::from_bytes::<MetadataFetchResponse>(&[0, 0xff, 0xff, 0xff, 0xff, 0x0f]).is_err());
        assert!(decode_request(&[]).is_err());
    }

    /// A body from an observer without directory ids (before they were sent) is still read; a
    /// leader from before them reads a new body and ignores the id after the fields it knows.
    #[test]
    fn fetch_bodies_with_and_without_a_directory_id_are_read_by_either_side() {
        #[derive(Serialize)]
        struct Old {
            node_id: i32,
            after: Option<u64>,
            max_bytes: u32,
        }
        for after in [None, Some(0), Some(300)] {
            let old = postcard::to_allocvec(&Old { node_id: 5, after, max_bytes: 8 << 20 }).expect("encode");
            assert_eq!(decode_request(&old).expect("an old body"), MetadataFetchRequest { node_id: 5, after, max_bytes: 8 << 20, directory_id: None });
            let new = postcard::to_allocvec(&MetadataFetchRequest { node_id: 5, after, max_bytes: 8 << 20, directory_id: Some(42) }).expect("encode");
            let read_by_old: MetadataFetchRequestV0 = postcard::from_bytes(&new).expect("an old leader reads a new body");
            assert_eq!((read_by_old.node_id, read_by_old.after, read_by_old.max_bytes), (5, after, 8 << 20));
        }
    }

    #[test]
    fn observers_are_per_leadership_and_keep_their_last_caught_up_time() {
        let observers = Observers::default();
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(10);
        let t1 = t0 + Duration::from_secs(1);
        observers.record(3, ObserverState { node_id: 5, directory_id: None, covered: Some(9), last_fetch: t0, last_caught_up: Some(t0) });
        observers.record(3, ObserverState { node_id: 4, directory_id: None, covered: None, last_fetch: t0, last_caught_up: None });
        observers.record(3, ObserverState { node_id: 5, directory_id: None, covered: Some(10), last_fetch: t1, last_caught_up: None });
        let active = observers.active(3);
        assert_eq!(active.iter().map(|o| o.node_id).collect::<Vec<_>>(), vec![4, 5]);
        assert_eq!((active[1].covered, active[1].last_fetch, active[1].last_caught_up), (Some(10), t1, Some(t0)));
        assert!(observers.active(4).is_empty(), "another leadership knows none of them");
        observers.record(4, ObserverState { node_id: 4, directory_id: None, covered: Some(1), last_fetch: t1, last_caught_up: None });
        assert_eq!(observers.active(4).len(), 1);
        assert!(observers.active(3).is_empty(), "the old leadership's observers are forgotten");
    }
}

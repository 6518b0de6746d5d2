//! AddRaftVoter and RemoveRaftVoter on the controller listener (KIP-853, `kafka-metadata-quorum.sh
//! add-controller / remove-controller`): checked as Kafka's Raft client checks them (cluster id,
//! leadership, the voter's key and endpoint), then one change at a time through the Raft node's
//! membership (`RaftNode::add_voter` / `remove_voter`). Answers carry Kafka's error codes and, where
//! Kafka sends one, its message.

use std::time::Duration;

use kafka_protocol::messages::{AddRaftVoterRequest, AddRaftVoterResponse, RemoveRaftVoterRequest, RemoveRaftVoterResponse};
use kafka_protocol::protocol::StrBytes;

use super::cluster::ControllerService;
use crate::broker::metadata::uuid_to_kafka_string;
use crate::raft::VoterChangeError;

const NOT_LEADER_OR_FOLLOWER: i16 = 6;
const REQUEST_TIMED_OUT: i16 = 7;
const UNSUPPORTED_VERSION: i16 = 35;
const INVALID_REQUEST: i16 = 42;
const INCONSISTENT_CLUSTER_ID: i16 = 104;
const DUPLICATE_VOTER: i16 = 126;
const VOTER_NOT_FOUND: i16 = 127;
const UNKNOWN_SERVER_ERROR: i16 = -1;

/// The shortest and longest an AddRaftVoter may wait for the new voter to catch up and the
/// change to commit (its `timeout_ms`, bounded).
const ADD_TIMEOUT_MIN: Duration = Duration::from_secs(1);
const ADD_TIMEOUT_MAX: Duration = Duration::from_secs(300);
/// How long a RemoveRaftVoter waits for the change to commit.
const REMOVE_TIMEOUT: Duration = Duration::from_secs(30);

/// Kafka's text for a replica key.
fn replica_key(id: i32, directory_id: uuid::Uuid) -> String {
    format!("ReplicaKey(id={id}, directoryId=Optional[{}])", uuid_to_kafka_string(directory_id))
}

/// The voters as Kafka lists their keys in messages.
fn voter_keys(service: &ControllerService) -> String {
    let keys: Vec<String> = service
        .raft
        .voters()
        .into_iter()
        .map(|(id, (_, d))| match d {
            Some(d) => replica_key(id as i32, d),
            None => format!("ReplicaKey(id={id}, directoryId=Optional.empty)"),
        })
        .collect();
    format!("[{}]", keys.join(", "))
}

/// The request's cluster id, when it names one, must be this cluster's.
fn cluster_id_refusal(service: &ControllerService, cluster_id: Option<&StrBytes>) -> Option<(i16, Option<String>)> {
    let given = cluster_id?;
    (given.as_str() != service.cluster_id).then(|| (INCONSISTENT_CLUSTER_ID, Some(format!("The given id \"{}\" doesn't match the cluster id \"{}\"", given.as_str(), service.cluster_id))))
}

/// A static quorum (`controller.quorum.voters`, kraft.version 0) keeps its voters, as Kafka's.
fn static_quorum_refusal(what: &str) -> (i16, Option<String>) {
    (UNSUPPORTED_VERSION, Some(format!("Cluster doesn't support {what} voter because the kraft.version feature is 0")))
}

fn change_error(service: &ControllerService, e: VoterChangeError, key: &str) -> (i16, Option<String>) {
    match e {
        VoterChangeError::NotLeader { .. } => (NOT_LEADER_OR_FOLLOWER, None),
        VoterChangeError::DuplicateVoter(_) => (DUPLICATE_VOTER, Some(format!("The voter id for {key} is already part of the set of voters {}.", voter_keys(service)))),
        VoterChangeError::VoterNotFound(_) | VoterChangeError::LastVoter => (VOTER_NOT_FOUND, Some(format!("Cannot remove voter {key} from the set of voters {}", voter_keys(service)))),
        VoterChangeError::InProgress => (REQUEST_TIMED_OUT, Some("Request timed out waiting for leader to handle previous voter change request".to_string())),
        VoterChangeError::Timeout(m) => (REQUEST_TIMED_OUT, Some(m)),
        VoterChangeError::Stopped(m) => (UNKNOWN_SERVER_ERROR, Some(m)),
    }
}

/// AddRaftVoter: the new controller (its id, directory id and controller listener endpoint) is
/// replicated to until it caught up, then made a voter. Answered once the new voter set is
/// committed, as Kafka's leader answers.
pub async fn add_raft_voter(service: &ControllerService, req: AddRaftVoterRequest) -> AddRaftVoterResponse {
    let answer = |(code, message): (i16, Option<String>)| AddRaftVoterResponse::default().with_error_code(code).with_error_message(message.map(StrBytes::from_string));
    if let Some(refusal) = cluster_id_refusal(service, req.cluster_id.as_ref()) {
        return answer(refusal);
    }
    if !service.raft.is_leader() {
        return answer((NOT_LEADER_OR_FOLLOWER, None));
    }
    if req.voter_id < 0 || req.voter_directory_id.is_nil() {
        return answer((INVALID_REQUEST, Some("Add voter request didn't include a valid voter".to_string())));
    }
    let Some(listener) = req.listeners.iter().find(|l| l.name.as_str() == service.listener_name) else {
        let given: Vec<String> = req.listeners.iter().map(|l| format!("{}://{}:{}", l.name.as_str(), l.host.as_str(), l.port)).collect();
        return answer((INVALID_REQUEST, Some(format!("Add voter request didn't include the endpoint ({}) for the default listener {}", given.join(", "), service.listener_name))));
    };
    let host = listener.host.as_str();
    let addr = if host.contains(':') { format!("[{host}]:{}", listener.port) } else { format!("{host}:{}", listener.port) };
    let Ok(_one_at_a_time) = service.voter_change.try_lock() else {
        return answer((REQUEST_TIMED_OUT, Some("Request timed out waiting for leader to handle previous voter change request".to_string())));
    };
    if !service.dynamic {
        return answer(static_quorum_refusal("adding"));
    }
    let key = replica_key(req.voter_id, req.voter_directory_id);
    let timeout = Duration::from_millis(req.timeout_ms.max(0) as u64).clamp(ADD_TIMEOUT_MIN, ADD_TIMEOUT_MAX);
    tracing::info!(voter = %key, %addr, "adding a voter to the metadata quorum (AddRaftVoter)");
    match service.raft.add_voter(req.voter_id as u64, &addr, Some(req.voter_directory_id), timeout).await {
        Ok(()) => {
            tracing::info!(voter = %key, voters = %voter_keys(service), "voter added to the metadata quorum");
            answer((0, None))
        }
        Err(e) => {
            tracing::warn!(voter = %key, error = %e, "AddRaftVoter failed");
            answer(change_error(service, e, &key))
        }
    }
}

/// RemoveRaftVoter: the voter (id and directory id) leaves the voter set once the new set is
/// committed; a leader removing itself steps down then.
pub async fn remove_raft_voter(service: &ControllerService, req: RemoveRaftVoterRequest) -> RemoveRaftVoterResponse {
    let answer = |(code, message): (i16, Option<String>)| RemoveRaftVoterResponse::default().with_error_code(code).with_error_message(message.map(StrBytes::from_string));
    if let Some(refusal) = cluster_id_refusal(service, req.cluster_id.as_ref()) {
        return answer(refusal);
    }
    if !service.raft.is_leader() {
        return answer((NOT_LEADER_OR_FOLLOWER, None));
    }
    if req.voter_id < 0 || req.voter_directory_id.is_nil() {
        return answer((INVALID_REQUEST, Some("Remove voter request didn't include a valid voter".to_string())));
    }
    let Ok(_one_at_a_time) = service.voter_change.try_lock() else {
        return answer((REQUEST_TIMED_OUT, Some("Request timed out waiting for leader to handle previous voter change request".to_string())));
    };
    if !service.dynamic {
        return answer(static_quorum_refusal("removing"));
    }
    let key = replica_key(req.voter_id, req.voter_directory_id);
    tracing::info!(voter = %key, "removing a voter from the metadata quorum (RemoveRaftVoter)");
    // A removed voter that is also a registered broker stays a learner, so that its broker goes
    // on following the metadata log (Kafka's removed voter goes on as an observer); a
    // controller-only one is left alone, to be stopped.
    let keep_as_learner = service.image().broker(req.voter_id).is_some();
    match service.raft.remove_voter(req.voter_id as u64, Some(req.voter_directory_id), keep_as_learner, REMOVE_TIMEOUT).await {
        Ok(()) => {
            tracing::info!(voter = %key, voters = %voter_keys(service), "voter removed from the metadata quorum");
            answer((0, None))
        }
        Err(e) => {
            tracing::warn!(voter = %key, error = %e, "RemoveRaftVoter failed");
            answer(change_error(service, e, &key))
        }
    }
}

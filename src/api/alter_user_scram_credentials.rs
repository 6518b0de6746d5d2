//! AlterUserScramCredentials (KIP-554): deletes and upserts users' SCRAM credentials, one result
//! per user with Kafka's per-user errors (a user altered twice in one request, an unknown
//! mechanism, too few or too many iterations, an empty name, deleting what does not exist). The
//! client sends a salted password; only the keys derived from it are stored. In a metadata quorum
//! the active controller decides and the credentials are metadata records every broker follows;
//! the answer waits until this broker authenticates with the result.

use std::sync::Arc;

use kafka_protocol::messages::alter_user_scram_credentials_response::AlterUserScramCredentialsResult;
use kafka_protocol::messages::{AlterUserScramCredentialsRequest, AlterUserScramCredentialsResponse};

use super::{error_code, str_bytes};
use crate::broker::Broker;
use crate::broker::scram::{ScramError, Upsertion};

/// The request's deletions (user, mechanism type) and upsertions, as `broker::scram::decide`
/// takes them (here and at a quorum's controller).
pub(crate) fn alterations(req: &AlterUserScramCredentialsRequest) -> (Vec<(String, i8)>, Vec<Upsertion>) {
    let deletions = req.deletions.iter().map(|d| (d.name.to_string(), d.mechanism)).collect();
    let upsertions = req
        .upsertions
        .iter()
        .map(|u| Upsertion {
            user: u.name.to_string(),
            mechanism: u.mechanism,
            iterations: u.iterations,
            salt: u.salt.to_vec(),
            salted_password: u.salted_password.to_vec(),
        })
        .collect();
    (deletions, upsertions)
}

pub async fn handle(broker: &Arc<Broker>, req: AlterUserScramCredentialsRequest, _version: i16) -> AlterUserScramCredentialsResponse {
    let (deletions, upsertions) = alterations(&req);
    if let Some(cluster) = &broker.cluster {
        return forward(broker, cluster, &req, &upsertions).await;
    }
    // The store writes its file before it answers: off the async workers.
    let b = broker.clone();
    let results = match tokio::task::spawn_blocking(move || b.scram.alter(&deletions, &upsertions)).await {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(error = %e, "AlterUserScramCredentials task failed");
            let failed = ScramError::Storage(e.to_string());
            let users = req.deletions.iter().map(|d| d.name.to_string()).chain(req.upsertions.iter().map(|u| u.name.to_string()));
            users.map(|u| (u, Err(failed.clone()))).collect()
        }
    };
    let results = results
        .into_iter()
        .map(|(user, r)| {
            let out = AlterUserScramCredentialsResult::default().with_user(str_bytes(user));
            match r {
                Ok(()) => out,
                Err(e) => {
                    if matches!(e, ScramError::Storage(_)) {
                        tracing::error!(error = %e, "SCRAM credentials not stored");
                    }
                    out.with_error_code(error_code::scram(&e)).with_error_message(Some(str_bytes(e.to_string())))
                }
            }
        })
        .collect();
    AlterUserScramCredentialsResponse::default().with_results(results)
}

/// The request at the active controller; each user it changed is answered once this broker's
/// copy of the credentials shows the change (so a client may authenticate with it right away).
async fn forward(broker: &Arc<Broker>, cluster: &Arc<crate::broker::cluster::ClusterState>, req: &AlterUserScramCredentialsRequest, upsertions: &[Upsertion]) -> AlterUserScramCredentialsResponse {
    use crate::broker::cluster::{ClusterState, NOT_CONTROLLER};
    use crate::broker::scram::Mechanism;
    let answered = cluster.to_controller(req, |r: &AlterUserScramCredentialsResponse| r.results.iter().any(|u| u.error_code == NOT_CONTROLLER), crate::broker::CLUSTER_REQUEST_TIMEOUT).await;
    let resp = match answered {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!(error = %e, "AlterUserScramCredentials could not reach the active controller");
            let users: std::collections::BTreeSet<String> = req.deletions.iter().map(|d| d.name.to_string()).chain(req.upsertions.iter().map(|u| u.name.to_string())).collect();
            let results = users
                .into_iter()
                .map(|u| AlterUserScramCredentialsResult::default().with_user(str_bytes(u)).with_error_code(kafka_protocol::error::ResponseError::RequestTimedOut.code()).with_error_message(Some(str_bytes(format!("no active controller answered: {e}")))))
                .collect();
            return AlterUserScramCredentialsResponse::default().with_results(results);
        }
    };
    let deadline = tokio::time::Instant::now() + crate::broker::CLUSTER_REQUEST_TIMEOUT;
    let applied = |user: &str| -> bool {
        let up = upsertions.iter().find(|u| u.user == user);
        let down = req.deletions.iter().find(|d| d.name.as_str() == user);
        match (up, down) {
            (Some(u), _) => Mechanism::from_type(u.mechanism).and_then(|m| broker.scram.credential(user, m)).is_some_and(|c| c.iterations == u.iterations && c.salt == u.salt),
            (None, Some(d)) => Mechanism::from_type(d.mechanism).is_none_or(|m| broker.scram.credential(user, m).is_none()),
            (None, None) => true,
        }
    };
    for r in resp.results.iter().filter(|r| r.error_code == 0) {
        if !ClusterState::until_seen(deadline, || applied(r.user.as_str())).await {
            tracing::warn!(user = %r.user.as_str(), "SCRAM credential changed by the controller but not yet seen by this broker");
        }
    }
    resp
}

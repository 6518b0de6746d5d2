//! AlterUserScramCredentials (KIP-554): deletes and upserts users' SCRAM credentials, one result
//! per user with Kafka's per-user errors (a user altered twice in one request, an unknown
//! mechanism, too few or too many iterations, an empty name, deleting what does not exist). The
//! client sends a salted password; only the keys derived from it are stored.

use std::sync::Arc;

use kafka_protocol::messages::alter_user_scram_credentials_response::AlterUserScramCredentialsResult;
use kafka_protocol::messages::{AlterUserScramCredentialsRequest, AlterUserScramCredentialsResponse};

use super::{error_code, str_bytes};
use crate::broker::Broker;
use crate::broker::scram::{ScramError, Upsertion};

pub async fn handle(broker: &Arc<Broker>, req: AlterUserScramCredentialsRequest, _version: i16) -> AlterUserScramCredentialsResponse {
    let deletions: Vec<(String, i8)> = req.deletions.iter().map(|d| (d.name.to_string(), d.mechanism)).collect();
    let upsertions: Vec<Upsertion> = req
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

//! DescribeUserScramCredentials (KIP-554): the mechanisms and iteration counts of the users asked
//! for (every user with a credential when none are named), per user RESOURCE_NOT_FOUND for a user
//! without one and DUPLICATE_RESOURCE for a user named twice. Never the salt or the keys.

use std::sync::Arc;

use kafka_protocol::messages::describe_user_scram_credentials_response::{CredentialInfo, DescribeUserScramCredentialsResult};
use kafka_protocol::messages::{DescribeUserScramCredentialsRequest, DescribeUserScramCredentialsResponse};

use super::{error_code, str_bytes};
use crate::broker::Broker;

pub async fn handle(broker: &Arc<Broker>, req: DescribeUserScramCredentialsRequest, _version: i16) -> DescribeUserScramCredentialsResponse {
    let users: Option<Vec<String>> = req.users.map(|u| u.into_iter().map(|n| n.name.to_string()).collect());
    let results = broker
        .scram
        .describe(users.as_deref())
        .into_iter()
        .map(|(user, described)| {
            let r = DescribeUserScramCredentialsResult::default().with_user(str_bytes(user));
            match described {
                Ok(infos) => r.with_credential_infos(infos.into_iter().map(|(m, i)| CredentialInfo::default().with_mechanism(m).with_iterations(i)).collect()),
                Err(e) => r.with_error_code(error_code::scram(&e)).with_error_message(Some(str_bytes(e.to_string()))),
            }
        })
        .collect();
    DescribeUserScramCredentialsResponse::default().with_results(results)
}

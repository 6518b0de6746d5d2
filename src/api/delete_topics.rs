//! DeleteTopics: by name (all versions) or by topic id (v6+). Internal topics are refused; each
//! deleted topic's partitions are charged to the client's controller_mutation_rate.

use std::sync::Arc;

use kafka_protocol::error::ResponseError as E;
use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::{DeleteTopicsRequest, DeleteTopicsResponse};

use super::{error_code, str_bytes, topic_name};
use crate::broker::Broker;
use crate::broker::quotas::MutationQuota;

fn delete(broker: &Broker, name: Option<String>, id: uuid::Uuid, quota: &mut MutationQuota) -> DeletableTopicResult {
    let meta = broker.topic_or_wait(name.as_deref(), id);
    let result = DeletableTopicResult::default().with_name(name.clone().map(topic_name)).with_topic_id(id);
    let Some(meta) = meta else {
        let code = if name.is_some() { E::UnknownTopicOrPartition.code() } else { E::UnknownTopicId.code() };
        return result.with_error_code(code);
    };
    let result = result.with_name(Some(topic_name(meta.name.clone()))).with_topic_id(meta.id);
    if !broker.config.delete_topic_enable {
        return result.with_error_code(E::TopicDeletionDisabled.code());
    }
    if meta.is_internal() {
        return result
            .with_error_code(E::InvalidTopicException.code())
            .with_error_message(Some(str_bytes(format!("Topic {} is an internal topic", meta.name))));
    }
    if quota.charge(&broker.quotas, meta.partitions.max(0) as u32).is_err() {
        let (code, message) = super::create_topics::throttled();
        return result.with_error_code(code).with_error_message(Some(str_bytes(message)));
    }
    match broker.delete_topic(&meta.name) {
        Ok(_) => result,
        Err(e) => result.with_error_code(error_code::metadata(&e)).with_error_message(Some(str_bytes(e.to_string()))),
    }
}

pub async fn handle(broker: &Arc<Broker>, req: DeleteTopicsRequest, version: i16, mut quota: MutationQuota) -> DeleteTopicsResponse {
    let responses = if version >= 6 {
        req.topics.into_iter().map(|t| delete(broker, t.name.map(|n| n.0.to_string()), t.topic_id, &mut quota)).collect()
    } else {
        req.topic_names
            .into_iter()
            .map(|n| delete(broker, Some(n.0.to_string()), uuid::Uuid::nil(), &mut quota))
            .map(|mut r| {
                // Topic ids exist from v6, error messages from v5.
                r.topic_id = uuid::Uuid::nil();
                if version < 5 {
                    r.error_message = None;
                }
                r
            })
            .collect()
    };
    DeleteTopicsResponse::default().with_responses(responses).with_throttle_time_ms(quota.throttle_ms(&broker.quotas))
}

//! DescribeClientQuotas (KIP-546): the quota entities matching the request's filter, each with its
//! values; a bad filter (a type twice, EXACT without a name, IP with user or client id) fails the
//! whole request with Kafka's error and message, and an unknown entity type is
//! UNSUPPORTED_VERSION, as Kafka answers it.

use std::sync::Arc;

use kafka_protocol::messages::describe_client_quotas_response::{EntityData, EntryData, ValueData};
use kafka_protocol::messages::{DescribeClientQuotasRequest, DescribeClientQuotasResponse};

use super::{error_code, str_bytes};
use crate::broker::Broker;
use crate::broker::quotas::Component;

pub async fn handle(broker: &Arc<Broker>, req: DescribeClientQuotasRequest, _version: i16) -> DescribeClientQuotasResponse {
    let components: Vec<Component> = req
        .components
        .iter()
        .map(|c| Component { entity_type: c.entity_type.to_string(), match_type: c.match_type, name: c._match.as_ref().map(|m| m.to_string()) })
        .collect();
    match broker.quotas.describe(&components, req.strict) {
        Ok(found) => {
            let entries = found
                .into_iter()
                .map(|(entity, values)| {
                    EntryData::default()
                        .with_entity(entity.into_iter().map(|(t, n)| EntityData::default().with_entity_type(str_bytes(t)).with_entity_name(n.map(str_bytes))).collect())
                        .with_values(values.into_iter().map(|(k, v)| ValueData::default().with_key(str_bytes(k)).with_value(v)).collect())
                })
                .collect();
            DescribeClientQuotasResponse::default().with_error_message(None).with_entries(Some(entries))
        }
        Err(e) => DescribeClientQuotasResponse::default().with_error_code(error_code::quota(&e)).with_error_message(Some(str_bytes(e.to_string()))).with_entries(None),
    }
}

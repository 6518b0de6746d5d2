//! Every error code a response carries, for Kafka's per-API errors metric
//! (`kafka_network_requestmetrics_errors_total{request,error}`): like Kafka's
//! `AbstractResponse.errorCounts`, the top-level code and each topic's, partition's, group's,
//! member's or resource's code, NONE included, counted once each. A field the response's
//! version does not carry is not counted (FindCoordinator v4+ and OffsetFetch v8+ answer per
//! key and per group instead of at the top).

use kafka_protocol::messages::*;

/// The error codes of one response, at the version it is encoded with.
pub trait ErrorCounts {
    fn error_codes(&self, version: i16, count: &mut dyn FnMut(i16));
}

/// `codes!(Type, |response, version, count| { ... })` implements [`ErrorCounts`].
macro_rules! codes {
    ($t:ty, |$r:ident, $v:pat_param, $c:ident| $body:expr) => {
        impl ErrorCounts for $t {
            fn error_codes(&self, version: i16, $c: &mut dyn FnMut(i16)) {
                let ($r, $v) = (self, version);
                $body
            }
        }
    };
}

/// Responses that carry one code, at the top.
macro_rules! top_only {
    ($($t:ty),* $(,)?) => {
        $(codes!($t, |r, _, c| c(r.error_code));)*
    };
}

top_only!(
    AddOffsetsToTxnResponse,
    AllocateProducerIdsResponse,
    ApiVersionsResponse,
    BrokerHeartbeatResponse,
    BrokerRegistrationResponse,
    ConsumerGroupHeartbeatResponse,
    ControllerRegistrationResponse,
    DescribeAclsResponse,
    DescribeClientQuotasResponse,
    DescribeClusterResponse,
    EndTxnResponse,
    GetTelemetrySubscriptionsResponse,
    HeartbeatResponse,
    InitProducerIdResponse,
    JoinGroupResponse,
    ListConfigResourcesResponse,
    ListGroupsResponse,
    ListPartitionReassignmentsResponse,
    ListTransactionsResponse,
    PushTelemetryResponse,
    SaslAuthenticateResponse,
    SaslHandshakeResponse,
    SyncGroupResponse,
    UnregisterBrokerResponse,
);

codes!(AddPartitionsToTxnResponse, |r, v, c| {
    if v >= 4 {
        c(r.error_code);
        for t in r.results_by_transaction.iter().flat_map(|x| x.topic_results.iter()) {
            t.results_by_partition.iter().for_each(|p| c(p.partition_error_code));
        }
    } else {
        r.results_by_topic_v3_and_below.iter().flat_map(|t| t.results_by_partition.iter()).for_each(|p| c(p.partition_error_code));
    }
});
codes!(AlterClientQuotasResponse, |r, _, c| r.entries.iter().for_each(|e| c(e.error_code)));
codes!(AlterConfigsResponse, |r, _, c| r.responses.iter().for_each(|e| c(e.error_code)));
codes!(IncrementalAlterConfigsResponse, |r, _, c| r.responses.iter().for_each(|e| c(e.error_code)));
codes!(AlterPartitionResponse, |r, _, c| {
    c(r.error_code);
    r.topics.iter().flat_map(|t| t.partitions.iter()).for_each(|p| c(p.error_code));
});
codes!(AlterPartitionReassignmentsResponse, |r, _, c| {
    c(r.error_code);
    r.responses.iter().flat_map(|t| t.partitions.iter()).for_each(|p| c(p.error_code));
});
codes!(AlterReplicaLogDirsResponse, |r, _, c| r.results.iter().flat_map(|t| t.partitions.iter()).for_each(|p| c(p.error_code)));
codes!(AlterUserScramCredentialsResponse, |r, _, c| r.results.iter().for_each(|e| c(e.error_code)));
codes!(ConsumerGroupDescribeResponse, |r, _, c| r.groups.iter().for_each(|g| c(g.error_code)));
codes!(CreateAclsResponse, |r, _, c| r.results.iter().for_each(|e| c(e.error_code)));
codes!(CreatePartitionsResponse, |r, _, c| r.results.iter().for_each(|e| c(e.error_code)));
codes!(CreateTopicsResponse, |r, _, c| r.topics.iter().for_each(|t| c(t.error_code)));
codes!(DeleteAclsResponse, |r, _, c| {
    for f in &r.filter_results {
        c(f.error_code);
        f.matching_acls.iter().for_each(|m| c(m.error_code));
    }
});
codes!(DeleteGroupsResponse, |r, _, c| r.results.iter().for_each(|e| c(e.error_code)));
codes!(DeleteRecordsResponse, |r, _, c| r.topics.iter().flat_map(|t| t.partitions.iter()).for_each(|p| c(p.error_code)));
codes!(DeleteTopicsResponse, |r, _, c| r.responses.iter().for_each(|e| c(e.error_code)));
codes!(DescribeConfigsResponse, |r, _, c| r.results.iter().for_each(|e| c(e.error_code)));
codes!(DescribeGroupsResponse, |r, _, c| r.groups.iter().for_each(|g| c(g.error_code)));
codes!(DescribeLogDirsResponse, |r, v, c| {
    if v >= 3 {
        c(r.error_code);
    }
    r.results.iter().for_each(|d| c(d.error_code));
});
codes!(DescribeProducersResponse, |r, _, c| r.topics.iter().flat_map(|t| t.partitions.iter()).for_each(|p| c(p.error_code)));
codes!(DescribeQuorumResponse, |r, _, c| {
    c(r.error_code);
    r.topics.iter().flat_map(|t| t.partitions.iter()).for_each(|p| c(p.error_code));
});
codes!(DescribeTopicPartitionsResponse, |r, _, c| r.topics.iter().for_each(|t| c(t.error_code)));
codes!(DescribeTransactionsResponse, |r, _, c| r.transaction_states.iter().for_each(|t| c(t.error_code)));
codes!(DescribeUserScramCredentialsResponse, |r, _, c| {
    c(r.error_code);
    r.results.iter().for_each(|e| c(e.error_code));
});
codes!(ElectLeadersResponse, |r, v, c| {
    if v >= 1 {
        c(r.error_code);
    }
    r.replica_election_results.iter().flat_map(|t| t.partition_result.iter()).for_each(|p| c(p.error_code));
});
codes!(FetchResponse, |r, v, c| {
    if v >= 7 {
        c(r.error_code);
    }
    r.responses.iter().flat_map(|t| t.partitions.iter()).for_each(|p| c(p.error_code));
});
codes!(FindCoordinatorResponse, |r, v, c| {
    if v >= 4 {
        r.coordinators.iter().for_each(|k| c(k.error_code));
    } else {
        c(r.error_code);
    }
});
codes!(LeaveGroupResponse, |r, v, c| {
    c(r.error_code);
    if v >= 3 {
        r.members.iter().for_each(|m| c(m.error_code));
    }
});
codes!(ListOffsetsResponse, |r, _, c| r.topics.iter().flat_map(|t| t.partitions.iter()).for_each(|p| c(p.error_code)));
codes!(MetadataResponse, |r, _, c| {
    for t in &r.topics {
        c(t.error_code);
        t.partitions.iter().for_each(|p| c(p.error_code));
    }
});
codes!(OffsetCommitResponse, |r, _, c| r.topics.iter().flat_map(|t| t.partitions.iter()).for_each(|p| c(p.error_code)));
codes!(OffsetDeleteResponse, |r, _, c| {
    c(r.error_code);
    r.topics.iter().flat_map(|t| t.partitions.iter()).for_each(|p| c(p.error_code));
});
codes!(OffsetFetchResponse, |r, v, c| {
    if v >= 8 {
        for g in &r.groups {
            c(g.error_code);
            g.topics.iter().flat_map(|t| t.partitions.iter()).for_each(|p| c(p.error_code));
        }
    } else {
        if v >= 2 {
            c(r.error_code);
        }
        r.topics.iter().flat_map(|t| t.partitions.iter()).for_each(|p| c(p.error_code));
    }
});
codes!(OffsetForLeaderEpochResponse, |r, _, c| r.topics.iter().flat_map(|t| t.partitions.iter()).for_each(|p| c(p.error_code)));
codes!(ProduceResponse, |r, _, c| r.responses.iter().flat_map(|t| t.partition_responses.iter()).for_each(|p| c(p.error_code)));
codes!(TxnOffsetCommitResponse, |r, _, c| r.topics.iter().flat_map(|t| t.partitions.iter()).for_each(|p| c(p.error_code)));
codes!(UpdateFeaturesResponse, |r, _, c| {
    c(r.error_code);
    r.results.iter().for_each(|e| c(e.error_code));
});
codes!(WriteTxnMarkersResponse, |r, _, c| r.markers.iter().flat_map(|m| m.topics.iter()).flat_map(|t| t.partitions.iter()).for_each(|p| c(p.error_code)));

#[cfg(test)]
mod tests {
    use super::*;

    fn counted<R: ErrorCounts>(r: &R, version: i16) -> Vec<i16> {
        let mut codes = Vec::new();
        r.error_codes(version, &mut |c| codes.push(c));
        codes
    }

    #[test]
    fn nested_codes_are_counted_each_and_absent_fields_not_at_all() {
        let p = |code| metadata_response::MetadataResponsePartition::default().with_error_code(code);
        let m = MetadataResponse::default().with_topics(vec![metadata_response::MetadataResponseTopic::default().with_error_code(0).with_partitions(vec![p(0), p(6)])]);
        assert_eq!(counted(&m, 12), vec![0, 0, 6]);
        let f = FindCoordinatorResponse::default().with_error_code(15);
        assert_eq!(counted(&f, 3), vec![15]);
        let f4 = FindCoordinatorResponse::default().with_coordinators(vec![find_coordinator_response::Coordinator::default().with_error_code(15)]);
        assert_eq!(counted(&f4, 4), vec![15], "v4 answers per key; the top-level field is not sent");
        assert_eq!(counted(&ApiVersionsResponse::default().with_error_code(35), 3), vec![35]);
        let txn = AddPartitionsToTxnResponse::default().with_results_by_topic_v3_and_below(vec![add_partitions_to_txn_response::AddPartitionsToTxnTopicResult::default()
            .with_results_by_partition(vec![add_partitions_to_txn_response::AddPartitionsToTxnPartitionResult::default().with_partition_error_code(53)])]);
        assert_eq!(counted(&txn, 3), vec![53]);
    }
}

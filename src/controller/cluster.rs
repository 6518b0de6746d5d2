//! Broker lifecycle decisions (Kafka's `ClusterControlManager` and `BrokerHeartbeatManager`):
//! registration with broker epochs, heartbeats that unfence a caught-up broker, fencing of brokers
//! whose session expired, and controlled shutdown. The heartbeat table lives in `Controller`, not
//! in the image: it is the active controller's own view and is not replicated.

use uuid::Uuid;

use super::replication::{leader_and_isr_updates, partitions_led_by, partitions_where, NO_BROKER};
use super::{Controller, ControllerError, ControllerResult};
use crate::metadata::image::MetadataImage;
use crate::metadata::records::*;

/// The feature every broker must support; brokers that do not list it support only level 1.
pub const METADATA_VERSION_FEATURE: &str = "metadata.version";

/// A BrokerRegistration request's fields the decision needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BrokerRegistrationRequest {
    pub broker_id: i32,
    pub incarnation_id: Uuid,
    pub listeners: Vec<BrokerEndpoint>,
    pub features: Vec<BrokerFeature>,
    pub rack: Option<String>,
    /// The `directory.id` of each of its log dirs (BrokerRegistration v2+).
    pub log_dirs: Vec<Uuid>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BrokerRegistrationReply {
    pub broker_epoch: i64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BrokerHeartbeatRequest {
    pub broker_id: i32,
    pub broker_epoch: i64,
    /// The highest metadata log offset the broker has applied.
    pub current_metadata_offset: i64,
    pub want_fence: bool,
    pub want_shut_down: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BrokerHeartbeatReply {
    pub is_caught_up: bool,
    pub is_fenced: bool,
    pub in_controlled_shutdown: bool,
    pub should_shut_down: bool,
}

/// Kafka's `BrokerControlState`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum BrokerControlState {
    Fenced,
    Unfenced,
    ControlledShutdown,
    ShutdownNow,
}

impl Controller {
    fn has_valid_session(&self, image: &MetadataImage, broker_id: i32, now_ms: u64) -> bool {
        let Some(b) = image.broker(broker_id) else { return false };
        if b.fenced {
            return false;
        }
        self.last_heartbeat_ms
            .get(&broker_id)
            .is_some_and(|&t| now_ms.saturating_sub(t) < self.config.broker_session_timeout_ms)
    }

    /// Registers a broker. `record_offset` is the metadata log offset the registration record
    /// will be written at: a new incarnation takes it as its broker epoch (as Kafka) and starts
    /// fenced; a re-registration of the same incarnation keeps its epoch and fencing state. Either
    /// way the broker counts as caught up (and may be unfenced) only once it has applied the log
    /// through this latest registration record, as Kafka's `registerBrokerRecordOffset`. Another
    /// incarnation while the registered one still has a live session is
    /// DUPLICATE_BROKER_REGISTRATION.
    pub fn register_broker(
        &mut self,
        image: &MetadataImage,
        request: &BrokerRegistrationRequest,
        record_offset: i64,
        now_ms: u64,
    ) -> Result<ControllerResult<BrokerRegistrationReply>, ControllerError> {
        let existing = image.broker(request.broker_id);
        if let Some(existing) = existing
            && self.has_valid_session(image, request.broker_id, now_ms)
            && existing.incarnation_id != request.incarnation_id
        {
            return Err(ControllerError::DuplicateBrokerRegistration("Another broker is registered with that broker id.".into()));
        }
        // Every finalized feature must be in the broker's supported range; a feature the broker
        // does not list counts as the range 0..=0 (metadata.version: 1..=1).
        for (name, &level) in image.features() {
            let (min, max) = match request.features.iter().find(|f| &f.name == name) {
                Some(f) => (f.min_supported_version, f.max_supported_version),
                None if name == METADATA_VERSION_FEATURE => (1, 1),
                None => (0, 0),
            };
            if level < min || level > max {
                return Err(ControllerError::UnsupportedVersion(format!(
                    "Unable to register because the broker does not support finalized version {level} of {name}. \
                     The broker wants a version between {min} and {max}, inclusive."
                )));
            }
        }
        let same_incarnation = existing.filter(|e| e.incarnation_id == request.incarnation_id);
        let record = RegisterBrokerRecord {
            broker_id: request.broker_id,
            incarnation_id: request.incarnation_id,
            broker_epoch: same_incarnation.map_or(record_offset, |e| e.epoch),
            end_points: request.listeners.clone(),
            features: request.features.clone(),
            rack: request.rack.clone(),
            fenced: same_incarnation.is_none_or(|e| e.fenced),
            in_controlled_shutdown: same_incarnation.is_some_and(|e| e.in_controlled_shutdown),
        };
        let broker_epoch = record.broker_epoch;
        // A new incarnation of a broker still registered unfenced (it restarted before its
        // session expired, or a new controller has not seen its session end) first has its old
        // incarnation fenced: its leaderships move to other ISR members and it leaves the ISRs,
        // as Kafka handles a broker's unclean restart. Otherwise it would resume leading with
        // whatever its log holds now (nothing at all after a lost disk) at the same leader
        // epoch, and its followers would truncate to it.
        let mut records = match existing {
            Some(e) if same_incarnation.is_none() && !e.fenced => self.fence_records(image, e.id, e.epoch),
            _ => Vec::new(),
        };
        records.push(MetadataRecord::RegisterBroker(record));
        if !request.log_dirs.is_empty() {
            records.push(MetadataRecord::BrokerDirectories(BrokerDirectoriesRecord {
                broker_id: request.broker_id,
                broker_epoch,
                directories: request.log_dirs.clone(),
            }));
        }
        // A log dir it registered with before and not now (a lost or replaced disk, a dir
        // formatted anew): its replicas' data may be gone, so none of them may lead until it
        // has rejoined the ISR (Kafka's LOST directory). Without this a wiped broker that was a
        // partition's last ISR member would be elected with an empty log when it returns, and
        // the replicas holding the records would truncate to it.
        if let Some(e) = existing
            && let Some(gone) = e.directories.iter().find(|d| !request.log_dirs.contains(d))
        {
            let hosted = partitions_where(image, |p| p.replicas.contains(&request.broker_id) && !p.lost_replicas.contains(&request.broker_id));
            tracing::warn!(
                broker = request.broker_id,
                directory = %gone,
                replicas = hosted.len(),
                "a broker registered without a log dir it had: its replicas may not lead until they rejoin the ISR"
            );
            records.extend(hosted.into_iter().map(|(topic_id, partition_id)| {
                MetadataRecord::ReplicaDirectoryLost(ReplicaDirectoryLostRecord { topic_id, partition_id, broker_id: request.broker_id })
            }));
        }
        self.last_heartbeat_ms.insert(request.broker_id, now_ms);
        self.registration_offsets.insert(request.broker_id, record_offset);
        Ok(ControllerResult::new(records, BrokerRegistrationReply { broker_epoch }))
    }

    /// Handles a heartbeat: refreshes the broker's session and moves it between fenced, unfenced,
    /// controlled shutdown and shut down as Kafka does. Unfencing needs the broker to have applied
    /// the metadata log through its latest registration record (see `register_broker`);
    /// unfencing elects it leader of the leaderless partitions whose ISR holds it. A shutdown
    /// request from an unfenced broker that leads partitions starts controlled shutdown (its
    /// leaderships move away and it leaves ISRs); once it leads nothing the reply says shut down
    /// and the broker is fenced.
    pub fn broker_heartbeat(
        &mut self,
        image: &MetadataImage,
        request: &BrokerHeartbeatRequest,
        now_ms: u64,
    ) -> Result<ControllerResult<BrokerHeartbeatReply>, ControllerError> {
        let id = request.broker_id;
        let broker = check_broker_epoch(image, id, request.broker_epoch)?;
        self.last_heartbeat_ms.insert(id, now_ms);
        let registered_at = self.registration_offsets.get(&id).copied().unwrap_or(broker.epoch);
        let is_caught_up = request.current_metadata_offset >= registered_at;
        // As Kafka's heartbeat manager: a broker that began a controlled shutdown stays shutting
        // down even once fenced; only a new incarnation (re-registration) brings it back.
        let current = if broker.in_controlled_shutdown {
            BrokerControlState::ControlledShutdown
        } else if broker.fenced {
            BrokerControlState::Fenced
        } else {
            BrokerControlState::Unfenced
        };
        let has_leaderships = partitions_led_by(image, id).next().is_some();
        let next = match current {
            BrokerControlState::Fenced if request.want_shut_down => BrokerControlState::ShutdownNow,
            BrokerControlState::Fenced if !request.want_fence && is_caught_up => BrokerControlState::Unfenced,
            BrokerControlState::Fenced => BrokerControlState::Fenced,
            BrokerControlState::Unfenced if request.want_fence && request.want_shut_down => BrokerControlState::ShutdownNow,
            BrokerControlState::Unfenced if request.want_fence => BrokerControlState::Fenced,
            BrokerControlState::Unfenced if request.want_shut_down && has_leaderships => BrokerControlState::ControlledShutdown,
            BrokerControlState::Unfenced if request.want_shut_down => BrokerControlState::ShutdownNow,
            BrokerControlState::Unfenced => BrokerControlState::Unfenced,
            BrokerControlState::ControlledShutdown if request.want_fence || !has_leaderships => BrokerControlState::ShutdownNow,
            BrokerControlState::ControlledShutdown => BrokerControlState::ControlledShutdown,
            BrokerControlState::ShutdownNow => BrokerControlState::ShutdownNow,
        };
        let mut records = Vec::new();
        match (current, next) {
            (BrokerControlState::Fenced, BrokerControlState::Unfenced) => {
                records.push(registration_change(id, broker.epoch, Some(false), None));
                // Every leaderless partition, as Kafka: with unclean election enabled for its
                // topic, the returning broker may lead even from outside the ISR.
                let leaderless = partitions_where(image, |p| p.leader == NO_LEADER);
                records.extend(leader_and_isr_updates(image, &self.config, NO_BROKER, id, leaderless));
            }
            (BrokerControlState::Unfenced, BrokerControlState::ControlledShutdown) => {
                records.push(registration_change(id, broker.epoch, None, Some(true)));
                let in_isr = partitions_where(image, |p| p.isr.contains(&id));
                records.extend(leader_and_isr_updates(image, &self.config, id, NO_BROKER, in_isr));
            }
            (BrokerControlState::Unfenced | BrokerControlState::ControlledShutdown, BrokerControlState::Fenced | BrokerControlState::ShutdownNow)
                if !broker.fenced =>
            {
                records.extend(self.fence_records(image, id, broker.epoch));
            }
            _ => {}
        }
        let reply = BrokerHeartbeatReply {
            is_caught_up,
            is_fenced: matches!(next, BrokerControlState::Fenced | BrokerControlState::ShutdownNow),
            in_controlled_shutdown: next == BrokerControlState::ControlledShutdown,
            should_shut_down: next == BrokerControlState::ShutdownNow,
        };
        Ok(ControllerResult::new(records, reply))
    }

    /// The partition changes first, then the fencing, in the order Kafka writes them.
    fn fence_records(&self, image: &MetadataImage, id: i32, epoch: i64) -> Vec<MetadataRecord> {
        let in_isr = partitions_where(image, |p| p.isr.contains(&id));
        let mut records = leader_and_isr_updates(image, &self.config, id, NO_BROKER, in_isr);
        records.push(registration_change(id, epoch, Some(true), None));
        records
    }

    /// UnregisterBroker (`kafka-cluster.sh unregister`): the broker leaves every ISR and loses its
    /// leaderships, then its registration is removed. BROKER_ID_NOT_REGISTERED when unknown.
    pub fn unregister_broker(&mut self, image: &MetadataImage, broker_id: i32) -> Result<ControllerResult<()>, ControllerError> {
        let b = image
            .broker(broker_id)
            .ok_or_else(|| ControllerError::BrokerIdNotRegistered(format!("Broker ID {broker_id} is not currently registered")))?;
        let in_isr = partitions_where(image, |p| p.isr.contains(&broker_id));
        let mut records = leader_and_isr_updates(image, &self.config, broker_id, NO_BROKER, in_isr);
        records.push(MetadataRecord::UnregisterBroker(UnregisterBrokerRecord { broker_id, broker_epoch: b.epoch }));
        self.last_heartbeat_ms.remove(&broker_id);
        self.registration_offsets.remove(&broker_id);
        Ok(ControllerResult::new(records, ()))
    }

    /// Fences every unfenced broker not heard from for `broker.session.timeout.ms`: it leaves
    /// every ISR it is in (never the last member) and loses its leaderships to another live ISR
    /// member, or to no one. The response lists the fenced broker ids.
    pub fn fence_stale_brokers(&mut self, image: &MetadataImage, now_ms: u64) -> ControllerResult<Vec<i32>> {
        let mut records = Vec::new();
        let mut fenced = Vec::new();
        // Fencing one broker changes partitions another fencing would look at: decide them on
        // an image that already holds the earlier decisions.
        let mut working = image.clone();
        for b in image.brokers().values().filter(|b| !b.fenced) {
            let stale = match self.last_heartbeat_ms.get(&b.id) {
                Some(&t) => now_ms.saturating_sub(t) >= self.config.broker_session_timeout_ms,
                None => {
                    // Heard of only through the log (a new controller): its session starts now.
                    self.last_heartbeat_ms.insert(b.id, now_ms);
                    false
                }
            };
            if !stale {
                continue;
            }
            let step = self.fence_records(&working, b.id, b.epoch);
            for r in &step {
                if working.apply(r).is_err() {
                    // Cannot happen for records decided on this very image; stop rather than
                    // emit a batch the image would refuse.
                    return ControllerResult::new(records, fenced);
                }
            }
            records.extend(step);
            fenced.push(b.id);
        }
        ControllerResult::new(records, fenced)
    }
}

fn registration_change(broker_id: i32, broker_epoch: i64, fenced: Option<bool>, in_controlled_shutdown: Option<bool>) -> MetadataRecord {
    MetadataRecord::BrokerRegistrationChange(BrokerRegistrationChangeRecord { broker_id, broker_epoch, fenced, in_controlled_shutdown })
}

/// Kafka's `checkBrokerEpoch`: the broker must be registered at exactly this epoch.
pub(crate) fn check_broker_epoch(
    image: &MetadataImage,
    broker_id: i32,
    broker_epoch: i64,
) -> Result<&crate::metadata::image::BrokerRegistration, ControllerError> {
    let b = image
        .broker(broker_id)
        .ok_or_else(|| ControllerError::StaleBrokerEpoch(format!("No broker registration found for broker {broker_id}")))?;
    if b.epoch != broker_epoch {
        return Err(ControllerError::StaleBrokerEpoch(format!(
            "Expected broker epoch {}, but got broker epoch {broker_epoch}",
            b.epoch
        )));
    }
    Ok(b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controller::test_support::{cluster, commit};
    use crate::controller::ControllerConfig;
    use crate::metadata::image::tests::partition;

    fn req(id: i32, incarnation: u128) -> BrokerRegistrationRequest {
        BrokerRegistrationRequest {
            broker_id: id,
            incarnation_id: Uuid::from_u128(incarnation),
            listeners: vec![BrokerEndpoint { name: "PLAINTEXT".into(), host: "127.0.0.1".into(), port: 9092, security_protocol: 0 }],
            features: vec![BrokerFeature { name: METADATA_VERSION_FEATURE.into(), min_supported_version: 1, max_supported_version: 25 }],
            rack: None,
            log_dirs: vec![Uuid::from_u128(id as u128 * 100)],
        }
    }

    fn hb(id: i32, epoch: i64, offset: i64) -> BrokerHeartbeatRequest {
        BrokerHeartbeatRequest { broker_id: id, broker_epoch: epoch, current_metadata_offset: offset, want_fence: false, want_shut_down: false }
    }

    fn with_topic(image: &mut MetadataImage, parts: &[(&[i32], &[i32], i32)]) -> Uuid {
        let topic_id = Uuid::from_u128(77);
        image.apply(&MetadataRecord::Topic(TopicRecord { name: "t".into(), topic_id })).unwrap();
        for (i, (r, isr, l)) in parts.iter().enumerate() {
            image.apply(&partition(topic_id, i as i32, r, isr, *l)).unwrap();
        }
        topic_id
    }

    #[test]
    fn a_new_broker_registers_fenced_and_is_unfenced_once_caught_up() {
        let mut c = Controller::new(ControllerConfig::default());
        let mut image = MetadataImage::new();
        let r = c.register_broker(&image, &req(1, 1), 40, 0).unwrap();
        assert_eq!(r.response.broker_epoch, 40);
        commit(&mut image, &r);
        assert!(image.broker(1).unwrap().fenced);
        // Not caught up: stays fenced.
        let r = c.broker_heartbeat(&image, &hb(1, 40, 39), 100).unwrap();
        assert!(r.records.is_empty());
        assert_eq!((r.response.is_caught_up, r.response.is_fenced), (false, true));
        let r = c.broker_heartbeat(&image, &hb(1, 40, 40), 200).unwrap();
        assert_eq!((r.response.is_caught_up, r.response.is_fenced), (true, false));
        commit(&mut image, &r);
        assert!(image.is_broker_active(1));
    }

    #[test]
    fn reregistering_the_same_incarnation_keeps_the_epoch_and_state() {
        let mut c = Controller::new(ControllerConfig::default());
        let image = cluster(1, &[]);
        let epoch = image.broker(1).unwrap().epoch;
        let r = c.register_broker(&image, &req(1, 1), 500, 0).unwrap();
        assert_eq!(r.response.broker_epoch, epoch);
        let MetadataRecord::RegisterBroker(rec) = &r.records[0] else { panic!() };
        assert!(!rec.fenced);
    }

    #[test]
    fn another_incarnation_with_a_live_session_is_a_duplicate_registration() {
        let mut c = Controller::new(ControllerConfig::default());
        let image = cluster(1, &[]);
        c.broker_heartbeat(&image, &hb(1, 101, 1000), 1_000).unwrap();
        let e = c.register_broker(&image, &req(1, 2), 500, 2_000).unwrap_err();
        assert_eq!(e.error_code(), 101);
        // After the session expired, the new incarnation takes over with a new epoch, fenced.
        let r = c.register_broker(&image, &req(1, 2), 500, 1_000 + 9_000).unwrap();
        assert_eq!(r.response.broker_epoch, 500);
        let Some(MetadataRecord::RegisterBroker(rec)) = r.records.iter().find(|r| matches!(r, MetadataRecord::RegisterBroker(_))) else { panic!() };
        assert!(rec.fenced);
    }

    #[test]
    fn a_new_incarnation_of_an_unfenced_leader_loses_its_leaderships_first() {
        // Broker 3 leads t-0 (ISR 1,2,3) and t-1 alone; it restarts (a lost disk: a new
        // incarnation) before its session ended, at a controller that never saw that session.
        let mut c = Controller::new(ControllerConfig::default());
        let mut image = cluster(3, &[]);
        let topic_id = with_topic(&mut image, &[(&[3, 1, 2], &[1, 2, 3], 3), (&[3, 1], &[3], 3)]);
        let r = c.register_broker(&image, &req(3, 33), 900, 0).unwrap();
        commit(&mut image, &r);
        let p0 = image.partition(topic_id, 0).unwrap();
        assert!(p0.leader != 3 && p0.leader != NO_LEADER, "another ISR member leads: {p0:?}");
        assert!(!p0.isr.contains(&3), "and the restarted broker left the ISR: {p0:?}");
        let p1 = image.partition(topic_id, 1).unwrap();
        assert_eq!(p1.leader, NO_LEADER, "no other ISR member: no leader rather than the restarted one");
        let b = image.broker(3).unwrap();
        assert_eq!((b.epoch, b.fenced), (900, true), "registered anew, fenced");
    }

    #[test]
    fn a_broker_back_without_its_log_dir_leads_none_of_its_replicas_until_they_rejoin_the_isr() {
        let mut c = Controller::new(ControllerConfig::default());
        let mut image = cluster(3, &[]);
        // Broker 3 registers with its log dir (its directory.id), then goes away: it stays the
        // last ISR member of t-1, with no leader; t-0 is led by 1 with 3 out of the ISR.
        let r = c.register_broker(&image, &req(3, 33), 900, 0).unwrap();
        commit(&mut image, &r);
        assert_eq!(image.broker(3).unwrap().directories, vec![Uuid::from_u128(300)]);
        let topic_id = with_topic(&mut image, &[(&[3, 1, 2], &[1, 2], 1), (&[3, 1], &[3], NO_LEADER)]);
        // It returns with a log dir formatted anew (a lost disk).
        let wiped = BrokerRegistrationRequest { log_dirs: vec![Uuid::from_u128(301)], ..req(3, 34) };
        let r = c.register_broker(&image, &wiped, 950, 1).unwrap();
        commit(&mut image, &r);
        assert_eq!(image.partition(topic_id, 1).unwrap().lost_replicas, vec![3]);
        assert_eq!(image.partition(topic_id, 0).unwrap().lost_replicas, vec![3]);
        // Caught up and unfenced, it is not elected from the ISR of t-1: no leader rather than an
        // empty log the other replica would truncate to.
        let r = c.broker_heartbeat(&image, &hb(3, 950, 10_000), 2).unwrap();
        commit(&mut image, &r);
        assert!(!image.broker(3).unwrap().fenced);
        assert_eq!(image.partition(topic_id, 1).unwrap().leader, NO_LEADER);
        // The same dir again (a plain restart) marks nothing more.
        let again = BrokerRegistrationRequest { log_dirs: vec![Uuid::from_u128(301)], ..req(3, 35) };
        let r = c.register_broker(&image, &again, 990, 1_000_000).unwrap();
        assert!(!r.records.iter().any(|r| matches!(r, MetadataRecord::ReplicaDirectoryLost(_))), "{:?}", r.records);
        // A snapshot keeps the marks and the directories.
        let mut rebuilt = MetadataImage::new();
        for record in image.to_snapshot_records() {
            rebuilt.apply(&record).unwrap();
        }
        assert_eq!(rebuilt.partition(topic_id, 1).unwrap().lost_replicas, vec![3]);
        assert_eq!(rebuilt.broker(3).unwrap().directories, vec![Uuid::from_u128(301)]);
    }

    #[test]
    fn a_broker_that_does_not_support_the_finalized_metadata_version_is_refused() {
        let mut c = Controller::new(ControllerConfig::default());
        let mut image = MetadataImage::new();
        image.apply(&MetadataRecord::FeatureLevel(FeatureLevelRecord { name: METADATA_VERSION_FEATURE.into(), feature_level: 26 })).unwrap();
        assert_eq!(c.register_broker(&image, &req(1, 1), 5, 0).unwrap_err().error_code(), 35);
    }

    /// The same BrokerRegistration (v4) and BrokerHeartbeat (v1) requests, in the same order, as
    /// were sent to the active controller of a 3-broker Kafka 4.0 reference cluster (finalized
    /// metadata.version 25, group.version 1, transaction.version 2); Kafka's answers are asserted.
    #[test]
    fn registration_and_heartbeats_answer_what_the_kafka_reference_controller_answered() {
        let mut c = Controller::new(ControllerConfig::default());
        let mut image = cluster(2, &[]);
        for (name, level) in [(METADATA_VERSION_FEATURE, 25), ("group.version", 1), ("transaction.version", 2)] {
            image.apply(&MetadataRecord::FeatureLevel(FeatureLevelRecord { name: name.into(), feature_level: level })).unwrap();
        }
        let full = |id: i32, incarnation: u128| BrokerRegistrationRequest {
            features: [(METADATA_VERSION_FEATURE, 7, 25), ("group.version", 0, 1), ("transaction.version", 0, 2), ("kraft.version", 0, 1)]
                .iter()
                .map(|&(n, a, b)| BrokerFeature { name: n.into(), min_supported_version: a, max_supported_version: b })
                .collect(),
            ..req(id, incarnation)
        };
        c.broker_heartbeat(&image, &hb(2, 102, 60), 0).unwrap();
        let code = |r: Result<ControllerResult<BrokerRegistrationReply>, ControllerError>| r.map(|x| x.response.broker_epoch).map_err(|e| e.error_code());
        // A: a new incarnation of live broker 2.
        assert_eq!(code(c.register_broker(&image, &full(2, 77), 66, 100)), Err(101));
        // B: new broker 9 at offset 68 gets epoch 68; C: the same incarnation again (its record
        // lands at 70) keeps epoch 68.
        let r = c.register_broker(&image, &full(9, 9), 68, 100).unwrap();
        assert_eq!(r.response.broker_epoch, 68);
        commit(&mut image, &r);
        let r = c.register_broker(&image, &full(9, 9), 70, 100).unwrap();
        assert_eq!(r.response.broker_epoch, 68);
        commit(&mut image, &r);
        let reply = |r: ControllerResult<BrokerHeartbeatReply>| (r.response.is_caught_up, r.response.is_fenced, r.response.should_shut_down);
        // D, E: not caught up before the latest registration record (Kafka: false/true at 67 and 68).
        assert_eq!(reply(c.broker_heartbeat(&image, &hb(9, 68, 67), 200).unwrap()), (false, true, false));
        assert_eq!(reply(c.broker_heartbeat(&image, &hb(9, 68, 68), 300).unwrap()), (false, true, false));
        // E2: caught up at 73: unfenced.
        let r = c.broker_heartbeat(&image, &hb(9, 68, 73), 400).unwrap();
        assert_eq!(reply(r.clone()), (true, false, false));
        commit(&mut image, &r);
        // F: another incarnation of 9 while its session is live.
        assert_eq!(code(c.register_broker(&image, &full(9, 10), 80, 500)), Err(101));
        // G: a wrong broker epoch.
        assert_eq!(c.broker_heartbeat(&image, &hb(9, 1068, 68), 600).unwrap_err().error_code(), 77);
        // H: a broker whose metadata.version range stops at 7; H2: one listing only metadata.version.
        let mut old = full(10, 10);
        old.features[0].max_supported_version = 7;
        assert_eq!(code(c.register_broker(&image, &old, 81, 700)), Err(35));
        let mut only_mv = full(11, 11);
        only_mv.features.truncate(1);
        assert_eq!(code(c.register_broker(&image, &only_mv, 82, 700)), Err(35));
        // I: broker 9 wants to shut down and leads nothing: fenced, shut down now.
        let shut = BrokerHeartbeatRequest { want_shut_down: true, ..hb(9, 68, 73) };
        assert_eq!(reply(c.broker_heartbeat(&image, &shut, 800).unwrap()), (true, true, true));
        // J: an unknown broker.
        assert_eq!(c.broker_heartbeat(&image, &hb(12, 5, 5), 900).unwrap_err().error_code(), 77);
    }

    #[test]
    fn a_heartbeat_with_a_stale_epoch_or_unknown_broker_is_stale_broker_epoch() {
        let mut c = Controller::new(ControllerConfig::default());
        let image = cluster(1, &[]);
        assert_eq!(c.broker_heartbeat(&image, &hb(1, 5, 0), 0).unwrap_err().error_code(), 77);
        assert_eq!(c.broker_heartbeat(&image, &hb(9, 5, 0), 0).unwrap_err().error_code(), 77);
    }

    #[test]
    fn an_expired_session_fences_the_broker_and_moves_its_leadership_within_the_isr() {
        let mut c = Controller::new(ControllerConfig::default());
        let mut image = cluster(3, &[]);
        let t = with_topic(&mut image, &[(&[1, 2, 3], &[1, 2, 3], 1), (&[2, 1], &[2, 1], 2), (&[1], &[1], 1)]);
        for id in 1..=3 {
            c.broker_heartbeat(&image, &hb(id, 100 + id as i64, 1000), 0).unwrap();
        }
        c.broker_heartbeat(&image, &hb(2, 102, 1000), 8_000).unwrap();
        c.broker_heartbeat(&image, &hb(3, 103, 1000), 8_000).unwrap();
        assert!(c.fence_stale_brokers(&image, 8_999).response.is_empty());
        let r = c.fence_stale_brokers(&image, 9_000);
        assert_eq!(r.response, vec![1]);
        commit(&mut image, &r);
        assert!(image.broker(1).unwrap().fenced);
        let p0 = image.partition(t, 0).unwrap();
        assert_eq!((p0.leader, p0.leader_epoch, p0.isr.clone()), (2, 1, vec![2, 3]));
        // A follower leaving the ISR: partition epoch bumps, leader epoch does not.
        let p1 = image.partition(t, 1).unwrap();
        assert_eq!((p1.leader, p1.leader_epoch, p1.partition_epoch, p1.isr.clone()), (2, 0, 1, vec![2]));
        // Its only replica: no leader, and the ISR keeps its last member.
        let p2 = image.partition(t, 2).unwrap();
        assert_eq!((p2.leader, p2.leader_epoch, p2.isr.clone()), (NO_LEADER, 1, vec![1]));

        // It comes back caught up: unfenced, and leads the partition it alone holds again.
        let r = c.broker_heartbeat(&image, &hb(1, 101, 1000), 10_000).unwrap();
        commit(&mut image, &r);
        assert!(image.is_broker_active(1));
        let p2 = image.partition(t, 2).unwrap();
        assert_eq!((p2.leader, p2.leader_epoch), (1, 2));
        // It is not put back in other ISRs: that is the leader's AlterPartition to make.
        assert_eq!(image.partition(t, 1).unwrap().isr, vec![2]);
    }

    #[test]
    fn unclean_election_enabled_for_a_topic_elects_a_live_out_of_sync_replica() {
        let mut c = Controller::new(ControllerConfig::default());
        let mut image = cluster(2, &[]);
        let t = with_topic(&mut image, &[(&[1, 2], &[1], 1)]);
        image
            .apply(&MetadataRecord::Config(ConfigRecord {
                resource_type: ConfigResourceType::Topic,
                resource_name: "t".into(),
                name: "unclean.leader.election.enable".into(),
                value: Some("true".into()),
            }))
            .unwrap();
        let r = c.broker_heartbeat(&image, &BrokerHeartbeatRequest { want_fence: true, ..hb(1, 101, 1000) }, 0).unwrap();
        commit(&mut image, &r);
        let p = image.partition(t, 0).unwrap();
        assert_eq!((p.leader, p.isr.clone(), p.leader_recovery_state), (2, vec![2], LeaderRecoveryState::Recovering));
    }

    #[test]
    fn controlled_shutdown_moves_leaders_away_then_lets_the_broker_stop() {
        let mut c = Controller::new(ControllerConfig::default());
        let mut image = cluster(3, &[]);
        let t = with_topic(&mut image, &[(&[1, 2, 3], &[1, 2, 3], 1), (&[2, 1], &[2, 1], 2)]);
        let shut = BrokerHeartbeatRequest { want_shut_down: true, ..hb(1, 101, 1000) };
        let r = c.broker_heartbeat(&image, &shut, 0).unwrap();
        assert_eq!((r.response.in_controlled_shutdown, r.response.should_shut_down), (true, false));
        commit(&mut image, &r);
        assert!(image.broker(1).unwrap().in_controlled_shutdown);
        assert_eq!(image.partition(t, 0).unwrap().leader, 2);
        assert_eq!(image.partition(t, 0).unwrap().isr, vec![2, 3]);
        assert_eq!(image.partition(t, 1).unwrap().isr, vec![2]);
        // Leads nothing now: told to shut down, and fenced.
        let r = c.broker_heartbeat(&image, &shut, 100).unwrap();
        assert_eq!((r.response.should_shut_down, r.response.is_fenced), (true, true));
        commit(&mut image, &r);
        assert!(image.broker(1).unwrap().fenced);
    }

    #[test]
    fn a_broker_fenced_during_controlled_shutdown_is_not_unfenced_by_its_next_heartbeat() {
        // Found by the property test: unfencing it made it leader while still shutting down.
        let mut c = Controller::new(ControllerConfig::default());
        let mut image = cluster(2, &[]);
        let t = with_topic(&mut image, &[(&[1, 2], &[1, 2], 1)]);
        let shut = BrokerHeartbeatRequest { want_shut_down: true, ..hb(1, 101, 1000) };
        let r = c.broker_heartbeat(&image, &shut, 0).unwrap();
        commit(&mut image, &r);
        // Its session expires before it stops.
        c.broker_heartbeat(&image, &hb(2, 102, 1000), 9_000).unwrap();
        let r = c.fence_stale_brokers(&image, 9_000);
        assert_eq!(r.response, vec![1]);
        commit(&mut image, &r);
        let r = c.broker_heartbeat(&image, &hb(1, 101, 1000), 9_100).unwrap();
        assert!(r.records.is_empty());
        assert!(r.response.should_shut_down);
        assert_eq!(image.partition(t, 0).unwrap().leader, 2);
        // A new incarnation registers afresh and can be unfenced.
        let mut req = req(1, 5);
        req.features.clear();
        let r = c.register_broker(&image, &req, 2000, 9_200).unwrap();
        commit(&mut image, &r);
        let r = c.broker_heartbeat(&image, &hb(1, 2000, 2000), 9_300).unwrap();
        commit(&mut image, &r);
        assert!(image.is_broker_active(1));
    }

    #[test]
    fn a_broker_leading_nothing_shuts_down_at_once() {
        let mut c = Controller::new(ControllerConfig::default());
        let mut image = cluster(2, &[]);
        with_topic(&mut image, &[(&[2, 1], &[2, 1], 2)]);
        let r = c.broker_heartbeat(&image, &BrokerHeartbeatRequest { want_shut_down: true, ..hb(1, 101, 1000) }, 0).unwrap();
        assert!(r.response.should_shut_down);
        commit(&mut image, &r);
        assert!(image.broker(1).unwrap().fenced);
    }

    #[test]
    fn fencing_writes_the_partition_changes_before_the_fence_record_as_kafka() {
        let mut c = Controller::new(ControllerConfig::default());
        let mut image = cluster(2, &[]);
        with_topic(&mut image, &[(&[1, 2], &[1, 2], 1)]);
        let r = c.broker_heartbeat(&image, &BrokerHeartbeatRequest { want_fence: true, ..hb(1, 101, 1000) }, 0).unwrap();
        assert!(matches!(r.records[0], MetadataRecord::PartitionChange(_)));
        assert!(matches!(r.records[1], MetadataRecord::BrokerRegistrationChange(BrokerRegistrationChangeRecord { fenced: Some(true), .. })));
    }

    #[test]
    fn unfencing_elects_the_broker_uncleanly_where_its_topic_allows_it() {
        let mut c = Controller::new(ControllerConfig { unclean_leader_election_enable: true, ..ControllerConfig::default() });
        let mut image = cluster(2, &[]);
        let t = with_topic(&mut image, &[(&[1, 2], &[1], NO_LEADER)]);
        image.apply(&registration_change(1, 101, Some(true), None)).unwrap();
        image.apply(&registration_change(2, 102, Some(true), None)).unwrap();
        let r = c.broker_heartbeat(&image, &hb(2, 102, 1000), 0).unwrap();
        commit(&mut image, &r);
        let p = image.partition(t, 0).unwrap();
        assert_eq!((p.leader, p.isr.clone(), p.leader_recovery_state), (2, vec![2], LeaderRecoveryState::Recovering));
    }

    #[test]
    fn unregistering_removes_the_broker_from_isrs_then_the_registration() {
        let mut c = Controller::new(ControllerConfig::default());
        let mut image = cluster(2, &[]);
        let t = with_topic(&mut image, &[(&[1, 2], &[1, 2], 1)]);
        assert_eq!(c.unregister_broker(&image, 9).unwrap_err().error_code(), 102);
        let r = c.unregister_broker(&image, 1).unwrap();
        commit(&mut image, &r);
        assert!(image.broker(1).is_none());
        let p = image.partition(t, 0).unwrap();
        assert_eq!((p.leader, p.isr.clone()), (2, vec![2]));
    }

    /// (replicas, isr, leader) of one partition.
    type PartSpec<'a> = (&'a [i32], &'a [i32], i32);
    /// A partition change as (topic, partition, isr, leader).
    type Change = (String, i32, Option<Vec<i32>>, Option<i32>);

    /// Builds topics from (name, partitions) and returns their ids by name.
    fn topics(image: &mut MetadataImage, specs: &[(&str, &[PartSpec])]) -> std::collections::BTreeMap<String, Uuid> {
        let mut ids = std::collections::BTreeMap::new();
        for (n, (name, parts)) in specs.iter().enumerate() {
            let topic_id = Uuid::from_u128(500 + n as u128);
            image.apply(&MetadataRecord::Topic(TopicRecord { name: name.to_string(), topic_id })).unwrap();
            for (i, (r, isr, l)) in parts.iter().enumerate() {
                image.apply(&partition(topic_id, i as i32, r, isr, *l)).unwrap();
            }
            ids.insert(name.to_string(), topic_id);
        }
        ids
    }

    /// The partition changes of a result as (topic, partition, isr, leader), sorted.
    fn changes(r: &ControllerResult<BrokerHeartbeatReply>, ids: &std::collections::BTreeMap<String, Uuid>) -> Vec<Change> {
        let mut out: Vec<_> = r
            .records
            .iter()
            .filter_map(|rec| match rec {
                MetadataRecord::PartitionChange(c) => {
                    let name = ids.iter().find(|(_, id)| **id == c.topic_id).map(|(n, _)| n.clone()).unwrap();
                    Some((name, c.partition_id, c.isr.clone(), c.leader))
                }
                _ => None,
            })
            .collect();
        out.sort();
        out
    }

    fn ch(t: &str, p: i32, isr: Option<&[i32]>, leader: Option<i32>) -> Change {
        (t.to_string(), p, isr.map(<[i32]>::to_vec), leader)
    }

    /// The same cluster as a 3-broker Kafka 4.0 reference run, and the records Kafka's controller
    /// wrote (read back with kafka-dump-log.sh --cluster-metadata-decoder) when broker 1 was
    /// killed with SIGKILL and its session expired.
    #[test]
    fn fencing_a_killed_broker_writes_the_changes_kafka_wrote() {
        let mut c = Controller::new(ControllerConfig::default());
        let mut image = cluster(3, &[]);
        let ids = topics(
            &mut image,
            &[
                ("t6", &[(&[2, 3, 1], &[2, 3, 1], 2), (&[3, 1, 2], &[3, 1, 2], 3), (&[1, 2, 3], &[1, 2, 3], 1), (&[3, 1, 2], &[3, 1, 2], 3), (&[1, 2, 3], &[1, 2, 3], 1), (&[2, 3, 1], &[2, 3, 1], 2)]),
                ("solo", &[(&[1], &[1], 1)]),
                ("pair", &[(&[1, 2], &[1, 2], 1), (&[2, 1], &[2, 1], 2)]),
                ("uncl", &[(&[1, 3], &[1, 3], 1)]),
            ],
        );
        for id in 1..=3 {
            c.broker_heartbeat(&image, &hb(id, 100 + id as i64, 1000), 0).unwrap();
        }
        for id in 2..=3 {
            c.broker_heartbeat(&image, &hb(id, 100 + id as i64, 1000), 9_000).unwrap();
        }
        let r = c.fence_stale_brokers(&image, 9_000);
        let r = ControllerResult::new(r.records, BrokerHeartbeatReply { is_caught_up: true, is_fenced: true, in_controlled_shutdown: false, should_shut_down: false });
        assert_eq!(
            changes(&r, &ids),
            vec![
                ch("pair", 0, Some(&[2]), Some(2)),
                ch("pair", 1, Some(&[2]), None),
                ch("solo", 0, None, Some(NO_LEADER)),
                ch("t6", 0, Some(&[2, 3]), None),
                ch("t6", 1, Some(&[3, 2]), None),
                ch("t6", 2, Some(&[2, 3]), Some(2)),
                ch("t6", 3, Some(&[3, 2]), None),
                ch("t6", 4, Some(&[2, 3]), Some(2)),
                ch("t6", 5, Some(&[2, 3]), None),
                ch("uncl", 0, Some(&[3]), Some(3)),
            ]
        );
        assert_eq!(r.records.last(), Some(&registration_change(1, 101, Some(true), None)));
    }

    /// As above, for a controlled shutdown (SIGTERM) of broker 2 in the reference run.
    #[test]
    fn controlled_shutdown_writes_the_changes_kafka_wrote() {
        let mut c = Controller::new(ControllerConfig::default());
        let mut image = cluster(3, &[]);
        let ids = topics(
            &mut image,
            &[
                ("t6", &[(&[2, 3, 1], &[2, 3, 1], 2), (&[3, 1, 2], &[3, 2, 1], 3), (&[1, 2, 3], &[2, 3, 1], 2), (&[3, 1, 2], &[3, 2, 1], 3), (&[1, 2, 3], &[2, 3, 1], 2), (&[2, 3, 1], &[2, 3, 1], 2)]),
                ("solo", &[(&[1], &[1], 1)]),
                ("pair", &[(&[1, 2], &[2, 1], 2), (&[2, 1], &[2, 1], 2)]),
            ],
        );
        let shut = BrokerHeartbeatRequest { want_shut_down: true, ..hb(2, 102, 1000) };
        let r = c.broker_heartbeat(&image, &shut, 0).unwrap();
        assert_eq!(r.records[0], registration_change(2, 102, None, Some(true)));
        assert_eq!(
            changes(&r, &ids),
            vec![
                ch("pair", 0, Some(&[1]), Some(1)),
                ch("pair", 1, Some(&[1]), Some(1)),
                ch("t6", 0, Some(&[3, 1]), Some(3)),
                ch("t6", 1, Some(&[3, 1]), None),
                ch("t6", 2, Some(&[3, 1]), Some(1)),
                ch("t6", 3, Some(&[3, 1]), None),
                ch("t6", 4, Some(&[3, 1]), Some(1)),
                ch("t6", 5, Some(&[3, 1]), Some(3)),
            ]
        );
        commit(&mut image, &r);
        let r = c.broker_heartbeat(&image, &shut, 100).unwrap();
        assert_eq!(r.records, vec![registration_change(2, 102, Some(true), None)]);
        assert!(r.response.should_shut_down);
    }

    #[test]
    fn a_new_controller_gives_brokers_known_from_the_log_a_fresh_session() {
        let mut c = Controller::new(ControllerConfig::default());
        let image = cluster(2, &[]);
        assert!(c.fence_stale_brokers(&image, 50_000).response.is_empty());
        assert_eq!(c.fence_stale_brokers(&image, 59_000).response, vec![1, 2]);
    }
}

//! Producer-id block allocation (Kafka's `ProducerIdControlManager`): each AllocateProducerIds
//! hands a registered broker the next block of 1000 ids, recorded so no id is ever given twice.

use super::cluster::check_broker_epoch;
use super::{Controller, ControllerError, ControllerResult};
use crate::metadata::image::MetadataImage;
use crate::metadata::records::{MetadataRecord, ProducerIdsRecord};

/// Ids per block, as Kafka's `ProducerIdsBlock.PRODUCER_ID_BLOCK_SIZE`.
pub const PRODUCER_ID_BLOCK_SIZE: i64 = 1000;

/// Ids `first_producer_id .. first_producer_id + size` belong to the asking broker.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProducerIdsBlock {
    pub assigned_broker_id: i32,
    pub first_producer_id: i64,
    pub size: i64,
}

impl Controller {
    /// AllocateProducerIds: the next block for a broker registered at `broker_epoch`.
    pub fn allocate_producer_ids(
        &self,
        image: &MetadataImage,
        broker_id: i32,
        broker_epoch: i64,
    ) -> Result<ControllerResult<ProducerIdsBlock>, ControllerError> {
        check_broker_epoch(image, broker_id, broker_epoch)?;
        let first = image.next_producer_id();
        if first > i64::MAX - PRODUCER_ID_BLOCK_SIZE {
            return Err(ControllerError::UnknownServerError("Exhausted all producerIds.".into()));
        }
        let record = ProducerIdsRecord { broker_id, broker_epoch, next_producer_id: first + PRODUCER_ID_BLOCK_SIZE };
        Ok(ControllerResult::new(
            vec![MetadataRecord::ProducerIds(record)],
            ProducerIdsBlock { assigned_broker_id: broker_id, first_producer_id: first, size: PRODUCER_ID_BLOCK_SIZE },
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controller::test_support::{cluster, commit};

    #[test]
    fn blocks_of_1000_follow_each_other_and_never_repeat() {
        let c = Controller::default();
        let mut image = cluster(2, &[]);
        let r = c.allocate_producer_ids(&image, 1, 101).unwrap();
        assert_eq!(r.response, ProducerIdsBlock { assigned_broker_id: 1, first_producer_id: 0, size: 1000 });
        commit(&mut image, &r);
        let r = c.allocate_producer_ids(&image, 2, 102).unwrap();
        assert_eq!(r.response.first_producer_id, 1000);
        commit(&mut image, &r);
        assert_eq!(image.next_producer_id(), 2000);
    }

    #[test]
    fn a_stale_or_unknown_broker_epoch_is_refused() {
        let c = Controller::default();
        let image = cluster(1, &[]);
        assert_eq!(c.allocate_producer_ids(&image, 1, 7).unwrap_err().error_code(), 77);
        assert_eq!(c.allocate_producer_ids(&image, 5, 7).unwrap_err().error_code(), 77);
    }

    #[test]
    fn exhausted_ids_are_an_error_not_an_overflow() {
        let c = Controller::default();
        let mut image = cluster(1, &[]);
        image.apply(&MetadataRecord::ProducerIds(ProducerIdsRecord { broker_id: 1, broker_epoch: 101, next_producer_id: i64::MAX - 10 })).unwrap();
        assert_eq!(c.allocate_producer_ids(&image, 1, 101).unwrap_err().error_code(), -1);
    }
}

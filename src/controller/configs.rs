//! IncrementalAlterConfigs decisions (Kafka's `ConfigurationControlManager`): SET, DELETE, APPEND
//! and SUBTRACT on topic and broker configs become Config records, one per changed key. Which keys
//! and values are valid is the broker config layer's to say (it passes `validate`); this module
//! checks the resource and applies the operations.

use std::collections::BTreeMap;

use super::replication::validate_topic_name;
use super::{Controller, ControllerError, ControllerResult};
use crate::metadata::image::{ConfigResource, MetadataImage};
use crate::metadata::records::{ConfigRecord, ConfigResourceType, MetadataRecord};

/// Kafka's `AlterConfigOp.OpType` (wire values 0 SET, 1 DELETE, 2 APPEND, 3 SUBTRACT).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AlterConfigOpType {
    Set,
    Delete,
    Append,
    Subtract,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AlterConfigOp {
    pub name: String,
    pub op: AlterConfigOpType,
    pub value: Option<String>,
}

impl Controller {
    /// IncrementalAlterConfigs. `validate(resource, resulting configs)` is the caller's check of
    /// the resulting key/value set (unknown keys, bad values: INVALID_CONFIG). With
    /// `validate_only` nothing is recorded. One result per resource, in request order.
    pub fn incremental_alter_configs(
        &self,
        image: &MetadataImage,
        resources: &[(ConfigResource, Vec<AlterConfigOp>)],
        validate: impl Fn(&ConfigResource, &BTreeMap<String, String>) -> Result<(), ControllerError>,
        validate_only: bool,
    ) -> ControllerResult<Vec<Result<(), ControllerError>>> {
        let mut records = Vec::new();
        let mut results = Vec::with_capacity(resources.len());
        for (resource, ops) in resources {
            match alter_one(image, resource, ops, &validate) {
                Ok(recs) => {
                    if !validate_only {
                        records.extend(recs);
                    }
                    results.push(Ok(()));
                }
                Err(e) => results.push(Err(e)),
            }
        }
        ControllerResult::new(records, results)
    }
}

fn alter_one(
    image: &MetadataImage,
    resource: &ConfigResource,
    ops: &[AlterConfigOp],
    validate: &impl Fn(&ConfigResource, &BTreeMap<String, String>) -> Result<(), ControllerError>,
) -> Result<Vec<MetadataRecord>, ControllerError> {
    match resource.resource_type {
        ConfigResourceType::Topic => {
            validate_topic_name(&resource.name)?;
            if image.topic_by_name(&resource.name).is_none() {
                return Err(ControllerError::UnknownTopicOrPartition(format!("The topic '{}' does not exist.", resource.name)));
            }
        }
        ConfigResourceType::Broker => {
            if !resource.name.is_empty() && resource.name.parse::<i32>().is_err() {
                return Err(ControllerError::InvalidRequest(format!("Illegal non-integral BROKER resource type name {}", resource.name)));
            }
        }
        ConfigResourceType::ClientMetrics | ConfigResourceType::Group => {
            if resource.name.is_empty() {
                return Err(ControllerError::InvalidRequest("A resource name is required".into()));
            }
        }
    }
    let current = image.configs(resource).cloned().unwrap_or_default();
    let mut next = current.clone();
    for op in ops {
        let list = |v: Option<&String>| -> Vec<String> {
            v.map(|s| s.split(',').map(str::trim).filter(|x| !x.is_empty()).map(str::to_string).collect()).unwrap_or_default()
        };
        match op.op {
            AlterConfigOpType::Set => {
                let value = op.value.clone().ok_or_else(|| ControllerError::InvalidRequest(format!("Null value not supported for SET of {}", op.name)))?;
                next.insert(op.name.clone(), value);
            }
            AlterConfigOpType::Delete => {
                next.remove(&op.name);
            }
            AlterConfigOpType::Append | AlterConfigOpType::Subtract => {
                let mut items = list(next.get(&op.name));
                let given = list(op.value.as_ref());
                if op.op == AlterConfigOpType::Append {
                    for g in given {
                        if !items.contains(&g) {
                            items.push(g);
                        }
                    }
                } else {
                    items.retain(|i| !given.contains(i));
                }
                if items.is_empty() && op.op == AlterConfigOpType::Subtract {
                    next.remove(&op.name);
                } else {
                    next.insert(op.name.clone(), items.join(","));
                }
            }
        }
    }
    validate(resource, &next)?;
    let mut records = Vec::new();
    let keys: std::collections::BTreeSet<&String> = current.keys().chain(next.keys()).collect();
    for key in keys {
        let (old, new) = (current.get(key), next.get(key));
        if old != new {
            records.push(MetadataRecord::Config(ConfigRecord {
                resource_type: resource.resource_type,
                resource_name: resource.name.clone(),
                name: key.clone(),
                value: new.cloned(),
            }));
        }
    }
    Ok(records)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controller::test_support::{cluster, commit};
    use crate::controller::{CreatableTopic, ControllerResult};

    fn op(name: &str, op: AlterConfigOpType, value: Option<&str>) -> AlterConfigOp {
        AlterConfigOp { name: name.into(), op, value: value.map(str::to_string) }
    }

    fn ok(_: &ConfigResource, _: &BTreeMap<String, String>) -> Result<(), ControllerError> {
        Ok(())
    }

    fn image_with_topic() -> MetadataImage {
        let c = Controller::default();
        let mut image = cluster(1, &[]);
        let t = CreatableTopic { name: "t".into(), num_partitions: 1, replication_factor: 1, assignments: vec![], configs: vec![] };
        let r = c.create_topics(&image, &[t], || uuid::Uuid::from_u128(9), 0);
        commit(&mut image, &r);
        image
    }

    #[test]
    fn set_delete_append_and_subtract_write_only_changed_keys() {
        let c = Controller::default();
        let mut image = image_with_topic();
        let res = ConfigResource::topic("t");
        let r = c.incremental_alter_configs(
            &image,
            &[(res.clone(), vec![op("retention.ms", AlterConfigOpType::Set, Some("100")), op("cleanup.policy", AlterConfigOpType::Append, Some("compact"))])],
            ok,
            false,
        );
        assert_eq!(r.response, vec![Ok(())]);
        assert_eq!(r.records.len(), 2);
        commit(&mut image, &r);
        let r = c.incremental_alter_configs(
            &image,
            &[(res.clone(), vec![op("retention.ms", AlterConfigOpType::Set, Some("100")), op("cleanup.policy", AlterConfigOpType::Append, Some("delete"))])],
            ok,
            false,
        );
        assert_eq!(r.records.len(), 1, "retention.ms is unchanged");
        commit(&mut image, &r);
        assert_eq!(image.config(&res, "cleanup.policy"), Some("compact,delete"));
        let r = c.incremental_alter_configs(
            &image,
            &[(res.clone(), vec![op("cleanup.policy", AlterConfigOpType::Subtract, Some("compact")), op("retention.ms", AlterConfigOpType::Delete, None)])],
            ok,
            false,
        );
        commit(&mut image, &r);
        assert_eq!(image.config(&res, "cleanup.policy"), Some("delete"));
        assert_eq!(image.config(&res, "retention.ms"), None);
    }

    #[test]
    fn unknown_topics_bad_broker_names_validation_failures_and_validate_only() {
        let c = Controller::default();
        let image = image_with_topic();
        let set = vec![op("x", AlterConfigOpType::Set, Some("1"))];
        let r: ControllerResult<_> = c.incremental_alter_configs(
            &image,
            &[
                (ConfigResource::topic("nope"), set.clone()),
                (ConfigResource::broker("abc"), set.clone()),
                (ConfigResource::broker("1"), set.clone()),
                (ConfigResource::broker(""), vec![op("x", AlterConfigOpType::Set, None)]),
            ],
            |_, m| if m.contains_key("x") && m["x"] == "1" { Err(ControllerError::InvalidConfig("x must not be 1".into())) } else { Ok(()) },
            false,
        );
        let codes: Vec<i16> = r.response.iter().map(|x| x.as_ref().unwrap_err().error_code()).collect();
        assert_eq!(codes, vec![3, 42, 40, 42]);
        let r = c.incremental_alter_configs(&image, &[(ConfigResource::broker(""), set)], ok, true);
        assert_eq!(r.response, vec![Ok(())]);
        assert!(r.records.is_empty());
    }
}

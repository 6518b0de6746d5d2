//! Server-side partition assignors of the KIP-848 consumer group protocol: `uniform` (balanced
//! and sticky: partitions stay where they are while that keeps the group balanced) and `range`
//! (per topic, contiguous ranges over the members subscribed to it, ordered by member id).
//! Pure functions: members and partition counts in, target assignment out. No clocks, no I/O.

use std::collections::{BTreeMap, BTreeSet};

/// Partitions per topic name.
pub type Assignment = BTreeMap<String, BTreeSet<i32>>;

pub const UNIFORM: &str = "uniform";
pub const RANGE: &str = "range";

/// What an assignor sees of one member.
#[derive(Clone, Debug, Default)]
pub struct AssignorMember {
    /// Topics the member subscribes to that exist (names and resolved regex matches).
    pub topics: BTreeSet<String>,
    /// The member's current target, for stickiness.
    pub current: Assignment,
}

/// The short name of an assignor from `group.consumer.assignors` (Kafka lists class names such
/// as `org.apache.kafka.coordinator.group.assignor.UniformAssignor`, or the short names).
pub fn short_name(configured: &str) -> Option<&'static str> {
    let simple = configured.trim().rsplit('.').next().unwrap_or("").to_ascii_lowercase();
    match simple.as_str() {
        "uniform" | "uniformassignor" => Some(UNIFORM),
        "range" | "rangeassignor" => Some(RANGE),
        _ => None,
    }
}

/// Computes the target assignment with the named assignor. `partitions`: partition count of each
/// existing topic. Every member appears in the result (possibly with nothing).
pub fn assign(name: &str, members: &BTreeMap<String, AssignorMember>, partitions: &BTreeMap<String, i32>) -> BTreeMap<String, Assignment> {
    match name {
        RANGE => range(members, partitions),
        _ => uniform(members, partitions),
    }
}

fn add(a: &mut Assignment, topic: &str, p: i32) {
    a.entry(topic.to_string()).or_default().insert(p);
}

/// Range: for each topic, its subscribers in member-id order get contiguous ranges; the first
/// `count % n` members get one partition more.
pub fn range(members: &BTreeMap<String, AssignorMember>, partitions: &BTreeMap<String, i32>) -> BTreeMap<String, Assignment> {
    let mut out: BTreeMap<String, Assignment> = members.keys().map(|id| (id.clone(), Assignment::new())).collect();
    for (topic, &count) in partitions {
        let subscribers: Vec<&String> = members.iter().filter(|(_, m)| m.topics.contains(topic)).map(|(id, _)| id).collect();
        if subscribers.is_empty() || count <= 0 {
            continue;
        }
        let n = subscribers.len() as i32;
        let (base, extra) = (count / n, count % n);
        let mut next = 0;
        for (i, id) in subscribers.iter().enumerate() {
            let take = base + i32::from((i as i32) < extra);
            for p in next..next + take {
                if let Some(a) = out.get_mut(*id) {
                    add(a, topic, p);
                }
            }
            next += take;
        }
    }
    out
}

/// Uniform: every partition goes to one of its subscribers; a member keeps what it had as long as
/// it stays within its fair share, and the rest goes to the eligible member with the fewest
/// partitions (ties: member id order), so counts differ by at most one when subscriptions match.
pub fn uniform(members: &BTreeMap<String, AssignorMember>, partitions: &BTreeMap<String, i32>) -> BTreeMap<String, Assignment> {
    let mut out: BTreeMap<String, Assignment> = members.keys().map(|id| (id.clone(), Assignment::new())).collect();
    let mut counts: BTreeMap<&String, usize> = members.keys().map(|id| (id, 0)).collect();
    // Every (topic, partition) someone subscribes to.
    let all: Vec<(&String, i32)> = partitions
        .iter()
        .filter(|(t, _)| members.values().any(|m| m.topics.contains(*t)))
        .flat_map(|(t, &n)| (0..n.max(0)).map(move |p| (t, p)))
        .collect();
    let subscribed_members = members.values().filter(|m| !m.topics.is_empty()).count().max(1);
    let quota = all.len().div_ceil(subscribed_members);
    // Fewer members may take the rounded-up share than there are members: (len % n) of them.
    let mut over_floor_left = if all.len() % subscribed_members == 0 { subscribed_members } else { all.len() % subscribed_members };
    let floor = all.len() / subscribed_members;
    let mut unassigned = Vec::new();
    for &(topic, p) in &all {
        let keeper = members.iter().find(|(_, m)| m.topics.contains(topic) && m.current.get(topic).is_some_and(|s| s.contains(&p))).map(|(id, _)| id);
        match keeper {
            Some(id) if counts[id] < floor || (counts[id] < quota && over_floor_left > 0) => {
                if counts[id] == floor && floor < quota {
                    over_floor_left -= 1;
                }
                *counts.get_mut(id).expect("member counted") += 1;
                if let Some(a) = out.get_mut(id) {
                    add(a, topic, p);
                }
            }
            _ => unassigned.push((topic, p)),
        }
    }
    for (topic, p) in unassigned {
        let best = members.iter().filter(|(_, m)| m.topics.contains(topic)).min_by_key(|(id, _)| (counts[id], (*id).clone())).map(|(id, _)| id);
        if let Some(id) = best {
            *counts.get_mut(id).expect("member counted") += 1;
            if let Some(a) = out.get_mut(id) {
                add(a, topic, p);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(topics: &[&str], current: &[(&str, &[i32])]) -> AssignorMember {
        AssignorMember {
            topics: topics.iter().map(|t| t.to_string()).collect(),
            current: current.iter().map(|(t, ps)| (t.to_string(), ps.iter().copied().collect())).collect(),
        }
    }

    fn count(a: &Assignment) -> usize {
        a.values().map(|s| s.len()).sum()
    }

    fn parts(pairs: &[(&str, i32)]) -> BTreeMap<String, i32> {
        pairs.iter().map(|(t, n)| (t.to_string(), *n)).collect()
    }

    #[test]
    fn range_gives_contiguous_ranges_and_the_extra_partitions_to_the_first_members() {
        let members = BTreeMap::from([("a".to_string(), member(&["t"], &[])), ("b".to_string(), member(&["t"], &[]))]);
        let out = range(&members, &parts(&[("t", 5), ("other", 3)]));
        assert_eq!(out["a"]["t"], BTreeSet::from([0, 1, 2]));
        assert_eq!(out["b"]["t"], BTreeSet::from([3, 4]));
        assert!(!out["a"].contains_key("other"), "nobody subscribes to it");
    }

    #[test]
    fn uniform_balances_and_keeps_partitions_in_place() {
        let one = BTreeMap::from([("a".to_string(), member(&["t"], &[]))]);
        let first = uniform(&one, &parts(&[("t", 4)]));
        assert_eq!(count(&first["a"]), 4);
        // b joins: a keeps two of its four, b gets the other two.
        let two = BTreeMap::from([
            ("a".to_string(), member(&["t"], &[("t", &[0, 1, 2, 3])])),
            ("b".to_string(), member(&["t"], &[])),
        ]);
        let second = uniform(&two, &parts(&[("t", 4)]));
        assert_eq!((count(&second["a"]), count(&second["b"])), (2, 2));
        assert!(second["a"]["t"].is_subset(&BTreeSet::from([0, 1, 2, 3])));
        // Odd counts: differ by one at most, and nothing is assigned twice.
        let three = BTreeMap::from([
            ("a".to_string(), member(&["t"], &[("t", &[0, 1])])),
            ("b".to_string(), member(&["t"], &[("t", &[2, 3])])),
            ("c".to_string(), member(&["t"], &[])),
        ]);
        let third = uniform(&three, &parts(&[("t", 5)]));
        let counts: Vec<usize> = third.values().map(count).collect();
        assert_eq!(counts.iter().sum::<usize>(), 5);
        assert!(counts.iter().max().unwrap() - counts.iter().min().unwrap() <= 1, "{counts:?}");
    }

    #[test]
    fn uniform_only_assigns_subscribers_and_ignores_stale_or_unknown_current_partitions() {
        let members = BTreeMap::from([
            ("a".to_string(), member(&["x"], &[("y", &[0]), ("x", &[7])])),
            ("b".to_string(), member(&["y"], &[])),
            ("c".to_string(), member(&[], &[])),
        ]);
        let out = uniform(&members, &parts(&[("x", 2), ("y", 1)]));
        assert_eq!(out["a"], BTreeMap::from([("x".to_string(), BTreeSet::from([0, 1]))]));
        assert_eq!(out["b"], BTreeMap::from([("y".to_string(), BTreeSet::from([0]))]));
        assert!(out["c"].is_empty());
    }

    #[test]
    fn assignor_names_accept_kafka_class_names() {
        assert_eq!(short_name("org.apache.kafka.coordinator.group.assignor.UniformAssignor"), Some(UNIFORM));
        assert_eq!(short_name("range"), Some(RANGE));
        assert_eq!(short_name("sticky"), None);
        assert_eq!(short_name(""), None);
    }
}

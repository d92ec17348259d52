//! Server-side partition assignors of KIP-848 consumer groups (`group.remote.assignor`,
//! the `ServerAssignor` field of ConsumerGroupHeartbeat).
//!
//! An assignor is a pure function from members, their subscriptions and their previous target
//! assignment to a new target assignment. It owns nothing and knows nothing of epochs,
//! reconciliation or the wire: `consumer_group` decides when to call it and how members move
//! towards its answer.

use std::collections::{BTreeMap, BTreeSet};

use uuid::Uuid;

/// A topic as the assignor sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicInfo {
    pub id: Uuid,
    pub name: String,
    pub partitions: i32,
}

/// member id -> (topic id -> sorted partitions)
pub type Assignment = BTreeMap<String, BTreeMap<Uuid, Vec<i32>>>;

/// One member as the assignor sees it.
#[derive(Debug, Clone, Copy)]
pub struct AssignorMember<'a> {
    pub member_id: &'a str,
    /// Topic ids it subscribes to, existing topics only.
    pub subscribed: &'a [Uuid],
    /// Its previous target, for stickiness.
    pub current: Option<&'a BTreeMap<Uuid, Vec<i32>>>,
}

/// A server-side assignor. `Send + Sync` so that the `&'static` instances can be shared by
/// every shard.
pub trait ServerAssignor: Send + Sync {
    fn name(&self) -> &'static str;
    fn assign(
        &self,
        members: &[AssignorMember<'_>],
        topics: &BTreeMap<Uuid, TopicInfo>,
    ) -> Assignment;
}

/// Kafka's `uniform` assignor: balanced partition counts, sticky to the previous target.
#[derive(Debug, Clone, Copy, Default)]
pub struct UniformAssignor;

/// Kafka's `range` assignor: contiguous ranges of each topic, members in member id order.
#[derive(Debug, Clone, Copy, Default)]
pub struct RangeAssignor;

/// The assignor a group uses when no member names one (Kafka's default
/// `group.consumer.assignors` lists `uniform` first).
pub const DEFAULT_ASSIGNOR: &str = "uniform";

static UNIFORM: UniformAssignor = UniformAssignor;
static RANGE: RangeAssignor = RangeAssignor;

/// The assignor called `name`, as a client names it in `ServerAssignor`.
pub fn assignor_by_name(name: &str) -> Option<&'static dyn ServerAssignor> {
    match name {
        "uniform" => Some(&UNIFORM),
        "range" => Some(&RANGE),
        _ => None,
    }
}

/// The names `assignor_by_name` knows, for error messages.
pub(crate) const ASSIGNOR_NAMES: &[&str] = &["range", "uniform"];

/// A topic-partition.
type TopicPartition = (Uuid, i32);

impl ServerAssignor for UniformAssignor {
    fn name(&self) -> &'static str {
        "uniform"
    }

    fn assign(
        &self,
        members: &[AssignorMember<'_>],
        topics: &BTreeMap<Uuid, TopicInfo>,
    ) -> Assignment {
        let mut plan = UniformPlan::new(members, topics);
        plan.keep_previous_owners(topics);
        plan.assign_unowned(topics);
        plan.balance();
        plan.into_assignment()
    }
}

/// The uniform assignor's working state: one slot per member, in member id order so that the
/// result does not depend on the order of the input.
struct UniformPlan<'a> {
    member_ids: Vec<&'a str>,
    currents: Vec<Option<&'a BTreeMap<Uuid, Vec<i32>>>>,
    subscriptions: Vec<BTreeSet<Uuid>>,
    owned: Vec<BTreeSet<TopicPartition>>,
    owner: BTreeMap<TopicPartition, usize>,
}

impl<'a> UniformPlan<'a> {
    fn new(members: &[AssignorMember<'a>], topics: &BTreeMap<Uuid, TopicInfo>) -> Self {
        let mut sorted: Vec<&AssignorMember<'a>> = members.iter().collect();
        sorted.sort_by(|a, b| a.member_id.cmp(b.member_id));
        // A member listed twice would otherwise get two slots competing for one name.
        sorted.dedup_by(|a, b| a.member_id == b.member_id);
        let subscriptions = sorted
            .iter()
            .map(|member| existing_subscriptions(member, topics))
            .collect();
        UniformPlan {
            member_ids: sorted.iter().map(|member| member.member_id).collect(),
            currents: sorted.iter().map(|member| member.current).collect(),
            subscriptions,
            owned: vec![BTreeSet::new(); sorted.len()],
            owner: BTreeMap::new(),
        }
    }

    /// Stickiness: every member first keeps what its previous target gave it, as long as the
    /// partition still exists and the member still subscribes to its topic. `balance` then
    /// moves only what balance requires.
    fn keep_previous_owners(&mut self, topics: &BTreeMap<Uuid, TopicInfo>) {
        for slot in 0..self.member_ids.len() {
            let Some(current) = self.currents[slot] else {
                continue;
            };
            for (topic_id, partitions) in current {
                if !self.subscriptions[slot].contains(topic_id) {
                    continue;
                }
                let count = partition_count(topics, topic_id);
                for &partition in partitions {
                    let in_range = (0..count).contains(&partition);
                    if in_range && !self.owner.contains_key(&(*topic_id, partition)) {
                        self.give((*topic_id, partition), slot);
                    }
                }
            }
        }
    }

    /// Hands every partition nobody kept to the least loaded member subscribed to its topic.
    /// Topics with fewer subscribers go first: their partitions have fewer places to go.
    fn assign_unowned(&mut self, topics: &BTreeMap<Uuid, TopicInfo>) {
        let mut subscribed_topics: Vec<(usize, Uuid)> = topics
            .keys()
            .map(|topic_id| (self.subscribers(topic_id).len(), *topic_id))
            .filter(|(subscriber_count, _)| *subscriber_count > 0)
            .collect();
        subscribed_topics.sort();
        for (_, topic_id) in subscribed_topics {
            let subscribers = self.subscribers(&topic_id);
            for partition in 0..partition_count(topics, &topic_id) {
                if self.owner.contains_key(&(topic_id, partition)) {
                    continue;
                }
                if let Some(slot) = self.least_loaded(&subscribers) {
                    self.give((topic_id, partition), slot);
                }
            }
        }
    }

    /// Moves partitions from the most to the least loaded members until no move can narrow a
    /// gap of two or more. Each move lowers the sum of squared loads, so the loop ends; when
    /// all members subscribe to the same topics it ends with loads differing by at most one.
    fn balance(&mut self) {
        while let Some((partition, from, to)) = self.find_move() {
            self.owned[from].remove(&partition);
            self.give(partition, to);
        }
    }

    fn find_move(&self) -> Option<(TopicPartition, usize, usize)> {
        let mut by_load: Vec<usize> = (0..self.member_ids.len()).collect();
        by_load.sort_by_key(|&slot| (self.owned[slot].len(), slot));
        for &heavy in by_load.iter().rev() {
            for &light in &by_load {
                if self.owned[light].len() + 1 >= self.owned[heavy].len() {
                    break;
                }
                let movable = self.owned[heavy]
                    .iter()
                    .rev()
                    .find(|(topic_id, _)| self.subscriptions[light].contains(topic_id));
                if let Some(partition) = movable {
                    return Some((*partition, heavy, light));
                }
            }
        }
        None
    }

    fn subscribers(&self, topic_id: &Uuid) -> Vec<usize> {
        (0..self.member_ids.len())
            .filter(|&slot| self.subscriptions[slot].contains(topic_id))
            .collect()
    }

    fn least_loaded(&self, slots: &[usize]) -> Option<usize> {
        slots
            .iter()
            .copied()
            .min_by_key(|&slot| (self.owned[slot].len(), slot))
    }

    fn give(&mut self, partition: TopicPartition, slot: usize) {
        self.owned[slot].insert(partition);
        self.owner.insert(partition, slot);
    }

    fn into_assignment(self) -> Assignment {
        self.member_ids
            .iter()
            .zip(self.owned)
            .map(|(member_id, owned)| (member_id.to_string(), group_by_topic(owned)))
            .collect()
    }
}

impl ServerAssignor for RangeAssignor {
    fn name(&self) -> &'static str {
        "range"
    }

    fn assign(
        &self,
        members: &[AssignorMember<'_>],
        topics: &BTreeMap<Uuid, TopicInfo>,
    ) -> Assignment {
        let mut assignment: Assignment = members
            .iter()
            .map(|member| (member.member_id.to_string(), BTreeMap::new()))
            .collect();
        let subscriptions: BTreeMap<&str, BTreeSet<Uuid>> = members
            .iter()
            .map(|member| (member.member_id, existing_subscriptions(member, topics)))
            .collect();
        for (topic_id, topic) in topics {
            // BTreeMap iteration gives the subscribers in member id order, as Kafka's
            // RangeAssignor sorts them.
            let subscribers: Vec<&str> = subscriptions
                .iter()
                .filter(|(_, subscribed)| subscribed.contains(topic_id))
                .map(|(member_id, _)| *member_id)
                .collect();
            for (member_id, range) in split_into_ranges(topic.partitions.max(0), &subscribers) {
                if let Some(member_assignment) = assignment.get_mut(member_id) {
                    member_assignment.insert(*topic_id, range.collect());
                }
            }
        }
        assignment
    }
}

/// Kafka's range split: `partitions / members` each, and one more for the first
/// `partitions % members` members. Members that get nothing are left out.
fn split_into_ranges<'m>(
    partitions: i32,
    members: &[&'m str],
) -> Vec<(&'m str, std::ops::Range<i32>)> {
    let Ok(member_count) = i32::try_from(members.len()) else {
        return Vec::new();
    };
    if member_count == 0 {
        return Vec::new();
    }
    let quota = partitions / member_count;
    let extra = partitions % member_count;
    let mut start = 0;
    let mut ranges = Vec::new();
    for (index, member_id) in (0..).zip(members) {
        let length = quota + i32::from(index < extra);
        if length > 0 {
            ranges.push((*member_id, start..start + length));
        }
        start += length;
    }
    ranges
}

/// The member's subscriptions restricted to topics that exist: the caller promises this,
/// but a topic deleted between the two reads must not crash the coordinator.
fn existing_subscriptions(
    member: &AssignorMember<'_>,
    topics: &BTreeMap<Uuid, TopicInfo>,
) -> BTreeSet<Uuid> {
    member
        .subscribed
        .iter()
        .filter(|topic_id| topics.contains_key(topic_id))
        .copied()
        .collect()
}

fn partition_count(topics: &BTreeMap<Uuid, TopicInfo>, topic_id: &Uuid) -> i32 {
    topics
        .get(topic_id)
        .map_or(0, |topic| topic.partitions.max(0))
}

fn group_by_topic(partitions: BTreeSet<TopicPartition>) -> BTreeMap<Uuid, Vec<i32>> {
    let mut by_topic: BTreeMap<Uuid, Vec<i32>> = BTreeMap::new();
    // Sorted set iteration keeps each topic's partitions sorted.
    for (topic_id, partition) in partitions {
        by_topic.entry(topic_id).or_default().push(partition);
    }
    by_topic
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topic(n: u128, name: &str, partitions: i32) -> TopicInfo {
        TopicInfo {
            id: Uuid::from_u128(n),
            name: name.to_string(),
            partitions,
        }
    }

    fn topic_map(list: &[TopicInfo]) -> BTreeMap<Uuid, TopicInfo> {
        list.iter().map(|t| (t.id, t.clone())).collect()
    }

    fn member<'a>(
        member_id: &'a str,
        subscribed: &'a [Uuid],
        current: Option<&'a BTreeMap<Uuid, Vec<i32>>>,
    ) -> AssignorMember<'a> {
        AssignorMember {
            member_id,
            subscribed,
            current,
        }
    }

    fn count(assignment: &Assignment, member_id: &str) -> usize {
        assignment[member_id].values().map(Vec::len).sum()
    }

    /// Every partition of the listed topics appears exactly once.
    fn assert_complete(assignment: &Assignment, topics: &BTreeMap<Uuid, TopicInfo>) {
        let mut seen = BTreeSet::new();
        for partitions in assignment.values() {
            for (topic_id, list) in partitions {
                for p in list {
                    assert!(
                        seen.insert((*topic_id, *p)),
                        "{topic_id}-{p} assigned twice"
                    );
                }
            }
        }
        let expected: usize = topics.values().map(|t| t.partitions as usize).sum();
        assert_eq!(seen.len(), expected);
    }

    #[test]
    fn uniform_balances_partitions_across_members() {
        let topics = topic_map(&[topic(1, "a", 7), topic(2, "b", 4)]);
        let subscribed: Vec<Uuid> = topics.keys().copied().collect();
        let members = [
            member("m1", &subscribed, None),
            member("m2", &subscribed, None),
            member("m3", &subscribed, None),
        ];
        let assignment = UniformAssignor.assign(&members, &topics);
        assert_complete(&assignment, &topics);
        let counts: Vec<usize> = ["m1", "m2", "m3"]
            .iter()
            .map(|m| count(&assignment, m))
            .collect();
        assert_eq!(counts.iter().sum::<usize>(), 11);
        assert!(counts.iter().max().unwrap() - counts.iter().min().unwrap() <= 1);
    }

    #[test]
    fn uniform_keeps_previous_owners_when_balanced() {
        let topics = topic_map(&[topic(1, "a", 12)]);
        let subscribed: Vec<Uuid> = topics.keys().copied().collect();
        let first = UniformAssignor.assign(
            &[
                member("m1", &subscribed, None),
                member("m2", &subscribed, None),
                member("m3", &subscribed, None),
            ],
            &topics,
        );
        let second = UniformAssignor.assign(
            &[
                member("m1", &subscribed, first.get("m1")),
                member("m2", &subscribed, first.get("m2")),
                member("m3", &subscribed, first.get("m3")),
                member("m4", &subscribed, None),
            ],
            &topics,
        );
        assert_complete(&second, &topics);
        for m in ["m1", "m2", "m3"] {
            assert_eq!(count(&second, m), 3);
            let before: BTreeSet<i32> = first[m][&Uuid::from_u128(1)].iter().copied().collect();
            let after: BTreeSet<i32> = second[m][&Uuid::from_u128(1)].iter().copied().collect();
            assert!(
                after.is_subset(&before),
                "{m} gained a partition it did not own"
            );
        }
        assert_eq!(count(&second, "m4"), 3);

        // Same input, same answer; and an unchanged group keeps its assignment exactly.
        let third = UniformAssignor.assign(
            &[
                member("m4", &subscribed, second.get("m4")),
                member("m3", &subscribed, second.get("m3")),
                member("m2", &subscribed, second.get("m2")),
                member("m1", &subscribed, second.get("m1")),
            ],
            &topics,
        );
        assert_eq!(third, second);
    }

    #[test]
    fn uniform_respects_heterogeneous_subscriptions() {
        let topics = topic_map(&[topic(1, "a", 6), topic(2, "b", 2)]);
        let only_a = [Uuid::from_u128(1)];
        let both = [Uuid::from_u128(1), Uuid::from_u128(2)];
        let assignment = UniformAssignor.assign(
            &[member("m1", &only_a, None), member("m2", &both, None)],
            &topics,
        );
        assert_complete(&assignment, &topics);
        assert!(!assignment["m1"].contains_key(&Uuid::from_u128(2)));
        assert_eq!(count(&assignment, "m1"), 4);
        assert_eq!(count(&assignment, "m2"), 4);
    }

    #[test]
    fn uniform_drops_partitions_of_unsubscribed_or_shrunk_topics() {
        let topics = topic_map(&[topic(1, "a", 2)]);
        let subscribed = [Uuid::from_u128(1)];
        let stale: BTreeMap<Uuid, Vec<i32>> = [
            (Uuid::from_u128(1), vec![0, 1, 5]),
            (Uuid::from_u128(9), vec![0]),
        ]
        .into_iter()
        .collect();
        let assignment =
            UniformAssignor.assign(&[member("m1", &subscribed, Some(&stale))], &topics);
        let expected: BTreeMap<Uuid, Vec<i32>> =
            [(Uuid::from_u128(1), vec![0, 1])].into_iter().collect();
        assert_eq!(assignment["m1"], expected);
    }

    #[test]
    fn range_splits_contiguous_ranges() {
        let topics = topic_map(&[topic(1, "a", 7), topic(2, "b", 2)]);
        let subscribed: Vec<Uuid> = topics.keys().copied().collect();
        let assignment = RangeAssignor.assign(
            &[
                member("c", &subscribed, None),
                member("a", &subscribed, None),
                member("b", &subscribed, None),
            ],
            &topics,
        );
        assert_complete(&assignment, &topics);
        let a = Uuid::from_u128(1);
        let b = Uuid::from_u128(2);
        assert_eq!(assignment["a"][&a], vec![0, 1, 2]);
        assert_eq!(assignment["b"][&a], vec![3, 4]);
        assert_eq!(assignment["c"][&a], vec![5, 6]);
        assert_eq!(assignment["a"][&b], vec![0]);
        assert_eq!(assignment["b"][&b], vec![1]);
        assert!(!assignment["c"].contains_key(&b));
    }

    #[test]
    fn every_member_appears_even_without_partitions() {
        let topics = topic_map(&[topic(1, "a", 1)]);
        let subscribed = [Uuid::from_u128(1)];
        let nothing: [Uuid; 0] = [];
        for assignor in [assignor_by_name("uniform"), assignor_by_name("range")] {
            let assignor = assignor.expect("known assignor");
            let assignment = assignor.assign(
                &[
                    member("m1", &subscribed, None),
                    member("m2", &subscribed, None),
                    member("m3", &nothing, None),
                ],
                &topics,
            );
            assert_eq!(assignment.len(), 3, "{}", assignor.name());
            assert!(assignment["m3"].is_empty());
            assert_complete(&assignment, &topics);
        }
    }

    #[test]
    fn assignors_are_found_by_name() {
        assert_eq!(
            assignor_by_name("uniform").map(|a| a.name()),
            Some("uniform")
        );
        assert_eq!(assignor_by_name("range").map(|a| a.name()), Some("range"));
        assert!(assignor_by_name("sticky").is_none());
        assert_eq!(
            assignor_by_name(DEFAULT_ASSIGNOR).map(|a| a.name()),
            Some(DEFAULT_ASSIGNOR)
        );
        for name in ASSIGNOR_NAMES {
            assert!(assignor_by_name(name).is_some());
        }
    }
}

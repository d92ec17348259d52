//! Consumer-group coordination: each group lives on the shard that owns its partition of
//! `__consumer_offsets` (Kafka's placement: the group id's Java hash modulo the partition
//! count). Its offsets and metadata are records in that partition, written durably before
//! a commit or a rebalance is acknowledged, and replayed the first time the shard serves the
//! partition after a start.
//!
//! - `classic`: the JoinGroup/SyncGroup state machine.
//! - `consumer_group` and `assignor`: KIP-848 groups and their server-side assignors.
//! - `records`: Kafka's key and value schemas for `__consumer_offsets`.

pub mod assignor;
pub mod classic;
pub mod consumer_group;
pub mod records;

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use kafka_protocol::records::{
    Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};

use crate::catalog::{Catalog, TopicMeta};
use crate::handlers::topic_admin::{self, NewTopic};
use crate::protocol::error_code;
use crate::server::shard::OwnedPartition;
use crate::server::Shard;
use classic::{ClassicGroup, ClassicSettings, GroupState};
use consumer_group::{ConsumerGroup, GroupSettings, TopicsByName};
use records::{GroupRecord, OffsetValue};

pub const OFFSETS_TOPIC: &str = "__consumer_offsets";

/// How often group timeouts (sessions, rebalances, the initial delay) are checked.
pub const TICK: Duration = Duration::from_millis(100);

/// The `__consumer_offsets` partition of a group: Kafka's `Utils.abs(groupId.hashCode) %
/// partitions`, with Java's String.hashCode over UTF-16 code units, so a group lands on the
/// same partition number as in Kafka.
pub fn offsets_partition(group_id: &str, partitions: i32) -> i32 {
    let mut hash: i32 = 0;
    for unit in group_id.encode_utf16() {
        hash = hash.wrapping_mul(31).wrapping_add(i32::from(unit));
    }
    (hash & 0x7fff_ffff) % partitions.max(1)
}

pub enum GroupKind {
    Classic(Box<ClassicGroup>),
    Consumer(ConsumerGroup),
}

impl GroupKind {
    /// The record that deletes a group of this kind from `__consumer_offsets`.
    pub fn tombstone(&self, group: &str) -> GroupRecord {
        match self {
            GroupKind::Classic(_) => GroupRecord::ClassicGroup {
                group: group.to_string(),
                value: None,
            },
            GroupKind::Consumer(_) => GroupRecord::ConsumerGroup {
                group: group.to_string(),
                epoch: None,
            },
        }
    }
}

/// A group and its committed offsets.
pub struct GroupEntry {
    pub kind: GroupKind,
    pub offsets: BTreeMap<(String, i32), OffsetValue>,
    /// Its `__consumer_offsets` partition.
    pub partition: i32,
}

impl GroupEntry {
    fn new(id: &str, partition: i32, now_ms: i64) -> GroupEntry {
        GroupEntry {
            kind: GroupKind::Classic(Box::new(ClassicGroup::new(id.to_string(), now_ms))),
            offsets: BTreeMap::new(),
            partition,
        }
    }

    pub fn is_empty(&self) -> bool {
        match &self.kind {
            GroupKind::Classic(group) => group.is_empty(),
            GroupKind::Consumer(group) => group.is_empty(),
        }
    }

    /// The state name ListGroups and DescribeGroups show.
    pub fn state_name(&self) -> &'static str {
        match &self.kind {
            GroupKind::Classic(group) => group.state.name(),
            GroupKind::Consumer(group) => group.state_name(),
        }
    }

    pub fn protocol_type(&self) -> String {
        match &self.kind {
            GroupKind::Classic(group) => group.protocol_type.clone().unwrap_or_default(),
            GroupKind::Consumer(_) => "consumer".to_string(),
        }
    }

    /// "classic" or "consumer" (ListGroups v5's group type).
    pub fn type_name(&self) -> &'static str {
        match &self.kind {
            GroupKind::Classic(_) => "classic",
            GroupKind::Consumer(_) => "consumer",
        }
    }
}

/// The groups of one shard.
#[derive(Default)]
pub struct Coordinator {
    pub groups: RefCell<HashMap<String, GroupEntry>>,
    /// `__consumer_offsets` partitions whose records have been replayed (or are being).
    loads: RefCell<HashMap<i32, Rc<tokio::sync::OnceCell<()>>>>,
}

impl Coordinator {
    /// Runs `f` on the group's entry, creating an empty one if it does not exist.
    pub fn with_entry<R>(
        &self,
        group_id: &str,
        partition: i32,
        f: impl FnOnce(&mut GroupEntry) -> R,
    ) -> R {
        let mut groups = self.groups.borrow_mut();
        let entry = groups
            .entry(group_id.to_string())
            .or_insert_with(|| GroupEntry::new(group_id, partition, crate::clock::now_ms()));
        f(entry)
    }

    /// Runs `f` on the group's entry if it exists.
    pub fn with_existing<R>(
        &self,
        group_id: &str,
        f: impl FnOnce(&mut GroupEntry) -> R,
    ) -> Option<R> {
        self.groups.borrow_mut().get_mut(group_id).map(f)
    }

    /// At shutdown: waiting joins and syncs are answered NOT_COORDINATOR at once, so that
    /// connections drain quickly and clients find the coordinator again after the restart.
    pub fn abort_waiters(&self) {
        for entry in self.groups.borrow_mut().values_mut() {
            if let GroupKind::Classic(group) = &mut entry.kind {
                group.abort_waiters(error_code::NOT_COORDINATOR);
            }
        }
    }

    pub fn remove(&self, group_id: &str) {
        self.groups.borrow_mut().remove(group_id);
    }

    fn apply(&self, record: GroupRecord, partition: i32) {
        let now = Instant::now();
        let mut groups = self.groups.borrow_mut();
        match record {
            GroupRecord::Offset {
                group,
                topic,
                partition: index,
                value,
            } => {
                let entry = groups
                    .entry(group.clone())
                    .or_insert_with(|| GroupEntry::new(&group, partition, crate::clock::now_ms()));
                match value {
                    Some(value) => {
                        entry.offsets.insert((topic, index), value);
                    }
                    None => {
                        entry.offsets.remove(&(topic, index));
                    }
                }
            }
            GroupRecord::ClassicGroup { group, value } => match value {
                Some(value) => {
                    let restored = ClassicGroup::restore(group.clone(), value, now);
                    let entry = groups.entry(group.clone()).or_insert_with(|| {
                        GroupEntry::new(&group, partition, crate::clock::now_ms())
                    });
                    entry.kind = GroupKind::Classic(Box::new(restored));
                }
                None => {
                    groups.remove(&group);
                }
            },
            GroupRecord::ConsumerGroup { group, epoch } => match epoch {
                Some(epoch) => {
                    let entry = groups.entry(group.clone()).or_insert_with(|| {
                        GroupEntry::new(&group, partition, crate::clock::now_ms())
                    });
                    let mut restored = ConsumerGroup::new(group.clone());
                    restored.set_group_epoch(epoch);
                    entry.kind = GroupKind::Consumer(restored);
                }
                None => {
                    groups.remove(&group);
                }
            },
        }
    }
}

/// The broker's classic-group limits.
pub fn classic_settings(shard: &Shard) -> ClassicSettings {
    let groups = &shard.config.groups;
    ClassicSettings {
        initial_rebalance_delay: Duration::from_millis(u64::from(
            groups.initial_rebalance_delay_ms,
        )),
        min_session_timeout_ms: groups.min_session_timeout_ms.min(i32::MAX as u32) as i32,
        max_session_timeout_ms: groups.max_session_timeout_ms.min(i32::MAX as u32) as i32,
        max_size: groups.max_size as usize,
    }
}

/// The broker's KIP-848 settings.
pub fn consumer_settings(shard: &Shard) -> GroupSettings {
    let groups = &shard.config.groups;
    GroupSettings {
        session_timeout_ms: groups.consumer_session_timeout_ms.min(i32::MAX as u32) as i32,
        heartbeat_interval_ms: groups.consumer_heartbeat_interval_ms.min(i32::MAX as u32) as i32,
        max_size: groups.max_size,
    }
}

/// The user topics as a KIP-848 assignor sees them.
pub fn topics_by_name(catalog: &Catalog) -> TopicsByName {
    catalog
        .topics_by_id
        .values()
        .filter(|t| !t.is_internal())
        .map(|t| {
            (
                t.name.clone(),
                assignor::TopicInfo {
                    id: t.id,
                    name: t.name.clone(),
                    partitions: t.partition_count,
                },
            )
        })
        .collect()
}

/// `__consumer_offsets`, created on first need with the broker's partition count (as Kafka
/// does on the first FindCoordinator). `None` when it does not exist and `create` is false.
pub async fn offsets_topic(shard: &Rc<Shard>, create: bool) -> Result<Option<Arc<TopicMeta>>, i16> {
    if let Some(topic) = shard.catalog().topic(OFFSETS_TOPIC) {
        return Ok(Some(topic.clone()));
    }
    if !create {
        return Ok(None);
    }
    let new_topic = NewTopic {
        name: OFFSETS_TOPIC.to_string(),
        partitions: shard.config.groups.offsets_topic_partitions,
        replication_factor: -1,
        assigned_partitions: 0,
        configs: vec![
            ("cleanup.policy".to_string(), Some("compact".to_string())),
            ("segment.bytes".to_string(), Some("104857600".to_string())),
        ],
    };
    let created = topic_admin::create_topics(shard, vec![new_topic], false).await;
    match created.into_iter().next() {
        Some(Ok(topic)) => {
            tracing::info!(
                partitions = topic.partition_count,
                "created {OFFSETS_TOPIC}"
            );
            Ok(Some(topic))
        }
        Some(Err((code, _))) if code == error_code::TOPIC_ALREADY_EXISTS => {
            Ok(shard.catalog().topic(OFFSETS_TOPIC).cloned())
        }
        Some(Err((_, message))) => {
            tracing::warn!(%message, "cannot create {OFFSETS_TOPIC}");
            Err(error_code::COORDINATOR_NOT_AVAILABLE)
        }
        None => Err(error_code::COORDINATOR_NOT_AVAILABLE),
    }
}

/// Where a group lives.
#[derive(Debug, Clone, Copy)]
pub struct GroupHome {
    pub topic_id: uuid::Uuid,
    pub partition: i32,
    pub shard: usize,
}

pub fn home_of(shard: &Shard, topic: &TopicMeta, group_id: &str) -> GroupHome {
    let partition = offsets_partition(group_id, topic.partition_count);
    GroupHome {
        topic_id: topic.id,
        partition,
        shard: shard.shards.owner_of(&topic.id, partition),
    }
}

/// Runs `work` on the shard coordinating `group_id`, once that shard has loaded the group's
/// `__consumer_offsets` partition. `Ok(None)` when the topic does not exist and `create` is
/// false (no group exists anywhere).
pub async fn on_group_shard<F, Fut, R>(
    shard: &Rc<Shard>,
    group_id: &str,
    create: bool,
    work: F,
) -> Result<Option<R>, i16>
where
    F: FnOnce(Rc<Shard>, Rc<OwnedPartition>) -> Fut + Send + 'static,
    Fut: Future<Output = R> + 'static,
    R: Send + 'static,
{
    let Some(topic) = offsets_topic(shard, create).await? else {
        return Ok(None);
    };
    let home = home_of(shard, &topic, group_id);
    let outcome = shard
        .run_on(home.shard, move |owner| async move {
            match loaded_partition(&owner, home).await {
                Ok(partition) => Ok(work(owner, partition).await),
                Err(code) => Err(code),
            }
        })
        .await
        .map_err(|_| error_code::COORDINATOR_NOT_AVAILABLE)?;
    outcome.map(Some)
}

/// The owned `__consumer_offsets` partition, replayed into the coordinator once.
pub async fn loaded_partition(
    shard: &Rc<Shard>,
    home: GroupHome,
) -> Result<Rc<OwnedPartition>, i16> {
    let partition = shard
        .partition(&home.topic_id, home.partition)
        .ok_or(error_code::NOT_COORDINATOR)?;
    let cell = shard
        .groups
        .loads
        .borrow_mut()
        .entry(home.partition)
        .or_default()
        .clone();
    cell.get_or_init(|| replay(shard.clone(), partition.clone()))
        .await;
    Ok(partition)
}

/// Loads every `__consumer_offsets` partition this shard owns (for ListGroups).
pub async fn load_all_owned(shard: &Rc<Shard>) {
    let Some(topic) = shard.catalog().topic(OFFSETS_TOPIC).cloned() else {
        return;
    };
    for partition in 0..topic.partition_count {
        if shard.shards.owner_of(&topic.id, partition) == shard.id {
            let home = GroupHome {
                topic_id: topic.id,
                partition,
                shard: shard.id,
            };
            let _ = loaded_partition(shard, home).await;
        }
    }
}

/// Replays a partition's records into the coordinator: the last record for each key wins.
async fn replay(shard: Rc<Shard>, partition: Rc<OwnedPartition>) {
    let log = &partition.log;
    let mut offset = log.log_start_offset();
    let mut records = 0usize;
    let started = Instant::now();
    while offset < log.high_watermark() {
        let read = match log.read(offset, 1 << 20).await {
            Ok(read) => read,
            Err(error) => {
                tracing::error!(partition = partition.index, %error, "cannot read {OFFSETS_TOPIC} while loading groups");
                return;
            }
        };
        if read.records.is_empty() {
            break;
        }
        let mut buf = read.records.clone();
        let sets = match RecordBatchDecoder::decode_all(&mut buf) {
            Ok(sets) => sets,
            Err(error) => {
                tracing::error!(partition = partition.index, %error, offset, "undecodable batch in {OFFSETS_TOPIC}; groups loaded up to here");
                return;
            }
        };
        let mut next = offset;
        for record in sets.into_iter().flat_map(|set| set.records) {
            if record.offset < offset {
                continue;
            }
            next = record.offset + 1;
            let Some(key) = record.key.as_deref() else {
                continue;
            };
            match GroupRecord::decode(key, record.value.as_deref()) {
                Ok(Some(decoded)) => {
                    shard.groups.apply(decoded, partition.index);
                    records += 1;
                }
                Ok(None) => {}
                Err(error) => {
                    tracing::warn!(partition = partition.index, offset = record.offset, %error, "skipping a bad {OFFSETS_TOPIC} record");
                }
            }
        }
        if next <= offset {
            break;
        }
        offset = next;
    }
    if records > 0 {
        tracing::info!(
            partition = partition.index,
            records,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "loaded consumer groups"
        );
    }
}

/// Writes records to the group's partition and waits until they are durable (per the fsync
/// policy). Errors are the code the client should see.
pub async fn append(partition: &OwnedPartition, records: &[GroupRecord]) -> Result<(), i16> {
    if records.is_empty() {
        return Ok(());
    }
    let now_ms = crate::clock::now_ms();
    let encoded: Vec<Record> = records
        .iter()
        .enumerate()
        .map(|(delta, record)| {
            let (key, value) = record.encode();
            Record {
                transactional: false,
                control: false,
                delete_horizon: false,
                partition_leader_epoch: 0,
                producer_id: -1,
                producer_epoch: -1,
                timestamp_type: TimestampType::Creation,
                // Offsets relative to the batch: the log assigns the real ones.
                offset: delta as i64,
                sequence: -1,
                timestamp: now_ms,
                key: Some(key),
                value,
                headers: Default::default(),
            }
        })
        .collect();
    let mut buf = BytesMut::new();
    let options = RecordEncodeOptions {
        version: 2,
        compression: Compression::None,
    };
    if let Err(error) = RecordBatchEncoder::encode(&mut buf, encoded.iter(), &options) {
        tracing::error!(%error, "cannot encode {OFFSETS_TOPIC} records");
        return Err(error_code::UNKNOWN_SERVER_ERROR);
    }
    let bytes: Bytes = buf.freeze();
    match partition.log.append(bytes, now_ms, true).await {
        Ok(_) => Ok(()),
        Err(error) => {
            tracing::warn!(partition = partition.index, %error, "cannot write to {OFFSETS_TOPIC}");
            Err(error_code::COORDINATOR_NOT_AVAILABLE)
        }
    }
}

/// Driven every `TICK` on each shard: group timeouts, and (every minute) removal of the
/// offsets of groups empty for longer than `offsets.retention.minutes`.
pub async fn tick(shard: &Rc<Shard>, now: Instant, expire_offsets: bool) {
    let Some(topic) = shard.catalog().topic(OFFSETS_TOPIC).cloned() else {
        return;
    };
    let settings = consumer_settings(shard);
    let topics = topics_by_name(&shard.catalog());
    let now_ms = crate::clock::now_ms();
    let retention_ms = i64::from(shard.config.groups.offsets_retention_minutes) * 60_000;
    let mut writes: Vec<(i32, Vec<GroupRecord>)> = Vec::new();
    {
        let mut groups = shard.groups.groups.borrow_mut();
        let mut dead = Vec::new();
        for (id, entry) in groups.iter_mut() {
            match &mut entry.kind {
                GroupKind::Classic(group) => {
                    if group.tick(now, now_ms) {
                        writes.push((
                            entry.partition,
                            vec![GroupRecord::ClassicGroup {
                                group: id.clone(),
                                value: Some(group.to_record(now_ms)),
                            }],
                        ));
                    }
                }
                GroupKind::Consumer(group) => {
                    let epoch = group.group_epoch();
                    group.expire_members(&topics, &settings, now);
                    if group.group_epoch() != epoch {
                        writes.push((
                            entry.partition,
                            vec![GroupRecord::ConsumerGroup {
                                group: id.clone(),
                                epoch: Some(group.group_epoch()),
                            }],
                        ));
                    }
                }
            }
            if expire_offsets {
                let (expired, remove_group) = expired_offsets(id, entry, now_ms, retention_ms);
                if !expired.is_empty() {
                    writes.push((entry.partition, expired));
                }
                if remove_group {
                    dead.push(id.clone());
                }
            }
        }
        for id in dead {
            if let Some(entry) = groups.remove(&id) {
                writes.push((entry.partition, vec![entry.kind.tombstone(&id)]));
            }
        }
    }
    for (index, records) in writes {
        if let Some(partition) = shard.partition(&topic.id, index) {
            let _ = append(&partition, &records).await;
        }
    }
}

/// Offsets of an empty group older than the retention (Kafka's KIP-211 rule: counted from
/// when the group became empty, or from the commit for groups that never had members), as
/// tombstones; and whether the group itself is then gone.
fn expired_offsets(
    id: &str,
    entry: &mut GroupEntry,
    now_ms: i64,
    retention_ms: i64,
) -> (Vec<GroupRecord>, bool) {
    let empty_since = match &entry.kind {
        GroupKind::Classic(group) if group.state == GroupState::Empty => Some(group.state_since_ms),
        GroupKind::Consumer(group) if group.is_empty() => Some(-1),
        _ => None,
    };
    let Some(empty_since) = empty_since else {
        return (Vec::new(), false);
    };
    let expired: Vec<(String, i32)> = entry
        .offsets
        .iter()
        .filter(|(_, value)| {
            now_ms.saturating_sub(value.commit_timestamp_ms.max(empty_since)) > retention_ms
        })
        .map(|(key, _)| key.clone())
        .collect();
    let tombstones = expired
        .into_iter()
        .map(|(topic, partition)| {
            entry.offsets.remove(&(topic.clone(), partition));
            GroupRecord::Offset {
                group: id.to_string(),
                topic,
                partition,
                value: None,
            }
        })
        .collect();
    let gone = entry.offsets.is_empty() && now_ms.saturating_sub(empty_since.max(0)) > retention_ms;
    (tombstones, gone)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placement_matches_kafka() {
        // Values from Kafka: Utils.abs("my-group".hashCode()) % 50 and friends.
        assert_eq!("my-group".encode_utf16().count(), 8);
        let java_hash = |s: &str| {
            s.encode_utf16()
                .fold(0i32, |h, c| h.wrapping_mul(31).wrapping_add(i32::from(c)))
        };
        assert_eq!(java_hash("a"), 97);
        assert_eq!(java_hash("ab"), 97 * 31 + 98);
        assert_eq!(offsets_partition("a", 50), 97 % 50);
        // A hash that overflows to a negative number is masked, as Kafka's Utils.abs does.
        let long = "consumer-group-with-a-long-name";
        assert!(java_hash(long) < 0 || offsets_partition(long, 50) == java_hash(long) % 50);
        assert!((0..50).contains(&offsets_partition(long, 50)));
    }

    #[test]
    fn offsets_of_long_empty_groups_expire() {
        let mut entry = GroupEntry::new("g", 0, 0);
        entry.offsets.insert(
            ("t".into(), 0),
            OffsetValue {
                offset: 5,
                leader_epoch: -1,
                metadata: String::new(),
                commit_timestamp_ms: 1_000,
            },
        );
        let (none, gone) = expired_offsets("g", &mut entry, 1_500, 1_000);
        assert!(none.is_empty() && !gone);
        let (expired, gone) = expired_offsets("g", &mut entry, 2_500, 1_000);
        assert_eq!(expired.len(), 1);
        assert!(gone);
        assert!(entry.offsets.is_empty());
    }
}

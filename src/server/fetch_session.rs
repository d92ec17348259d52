//! Incremental fetch sessions (KIP-227), one cache per shard.
//!
//! A session remembers the partitions a client fetches and what it was last told about each
//! (high watermark, log start offset), so that incremental fetch requests need only name the
//! partitions whose fetch position changed, and responses only carry partitions with news.
//! A connection stays on its shard, so its sessions do too; a client that reconnects to
//! another shard gets FETCH_SESSION_ID_NOT_FOUND and starts a new session, as with Kafka.

use std::collections::HashMap;
use std::time::Instant;

use indexmap::IndexMap;
use uuid::Uuid;

/// How a fetch request names a topic: by name before Fetch v13, by id from v13 on.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum TopicKey {
    Name(String),
    Id(Uuid),
}

#[derive(Debug, Clone)]
pub struct SessionPartition {
    pub fetch_offset: i64,
    pub partition_max_bytes: i32,
    /// What the client was last told; -1 before the first response.
    pub last_high_watermark: i64,
    pub last_log_start_offset: i64,
}

pub struct FetchSession {
    pub epoch: i32,
    pub partitions: IndexMap<(TopicKey, i32), SessionPartition>,
    last_used: Instant,
}

pub struct FetchSessionCache {
    shard_id: usize,
    slots: usize,
    next_id: u32,
    sessions: HashMap<i32, FetchSession>,
}

impl FetchSessionCache {
    pub fn new(shard_id: usize, slots: usize) -> FetchSessionCache {
        FetchSessionCache {
            shard_id,
            slots,
            next_id: 0,
            sessions: HashMap::new(),
        }
    }

    /// Opens a session over `partitions`, evicting the least recently used one if the cache is
    /// full. Returns the new session id (never 0) or `None` when sessions are disabled.
    pub fn create(
        &mut self,
        partitions: IndexMap<(TopicKey, i32), SessionPartition>,
    ) -> Option<i32> {
        if self.slots == 0 {
            return None;
        }
        if self.sessions.len() >= self.slots {
            let oldest = self
                .sessions
                .iter()
                .min_by_key(|(_, session)| session.last_used)
                .map(|(id, _)| *id)?;
            self.sessions.remove(&oldest);
        }
        let id = self.allocate_id();
        self.sessions.insert(
            id,
            FetchSession {
                epoch: 1,
                partitions,
                last_used: Instant::now(),
            },
        );
        Some(id)
    }

    pub fn get_mut(&mut self, id: i32) -> Option<&mut FetchSession> {
        let session = self.sessions.get_mut(&id)?;
        session.last_used = Instant::now();
        Some(session)
    }

    pub fn remove(&mut self, id: i32) {
        self.sessions.remove(&id);
    }

    pub fn len(&self) -> usize {
        self.sessions.len()
    }

    pub fn is_empty(&self) -> bool {
        self.sessions.is_empty()
    }

    /// Positive ids, distinct per shard (the shard id is in the low bits) to make a session id
    /// sent to the wrong shard fail instead of matching another client's session.
    fn allocate_id(&mut self) -> i32 {
        loop {
            self.next_id = self.next_id.wrapping_add(1);
            let id = ((self.next_id << 10) | (self.shard_id as u32 & 0x3ff)) & 0x7fff_ffff;
            if id != 0 && !self.sessions.contains_key(&(id as i32)) {
                return id as i32;
            }
        }
    }
}

impl FetchSession {
    /// The epoch a client sends after `epoch`: 1..=i32::MAX, wrapping to 1.
    pub fn next_epoch(epoch: i32) -> i32 {
        if epoch == i32::MAX {
            1
        } else {
            epoch + 1
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one_partition() -> IndexMap<(TopicKey, i32), SessionPartition> {
        let mut partitions = IndexMap::new();
        partitions.insert(
            (TopicKey::Name("t".into()), 0),
            SessionPartition {
                fetch_offset: 0,
                partition_max_bytes: 1024,
                last_high_watermark: -1,
                last_log_start_offset: -1,
            },
        );
        partitions
    }

    #[test]
    fn full_cache_evicts_the_least_recently_used() {
        let mut cache = FetchSessionCache::new(1, 2);
        let a = cache.create(one_partition()).unwrap();
        let b = cache.create(one_partition()).unwrap();
        assert!(cache.get_mut(a).is_some());
        let c = cache.create(one_partition()).unwrap();
        assert_eq!(cache.len(), 2);
        assert!(cache.get_mut(b).is_none());
        assert!(cache.get_mut(a).is_some() && cache.get_mut(c).is_some());
        assert!(a > 0 && c > 0 && a != c);
    }

    #[test]
    fn epochs_wrap_to_one() {
        assert_eq!(FetchSession::next_epoch(i32::MAX), 1);
        assert_eq!(FetchSession::next_epoch(5), 6);
    }
}

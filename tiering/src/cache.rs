//! A byte-bounded least-recently-used map: the remote reader's cache of `.log` chunks and
//! decoded indexes. Knows nothing of what it holds beyond each entry's weight in bytes.

use std::collections::{BTreeMap, HashMap};
use std::hash::Hash;

pub(crate) struct Lru<K, V> {
    entries: HashMap<K, Entry<V>>,
    /// Last use → key; the first entry is the one to evict.
    by_use: BTreeMap<u64, K>,
    use_counter: u64,
    weight_total: u64,
    weight_max: u64,
}

struct Entry<V> {
    value: V,
    weight: u64,
    last_use: u64,
}

impl<K: Eq + Hash + Clone, V: Clone> Lru<K, V> {
    pub fn new(weight_max: u64) -> Lru<K, V> {
        Lru {
            entries: HashMap::new(),
            by_use: BTreeMap::new(),
            use_counter: 0,
            weight_total: 0,
            weight_max,
        }
    }

    /// The value, marked as the most recently used.
    pub fn get(&mut self, key: &K) -> Option<V> {
        let entry = self.entries.get_mut(key)?;
        self.by_use.remove(&entry.last_use);
        self.use_counter += 1;
        entry.last_use = self.use_counter;
        self.by_use.insert(entry.last_use, key.clone());
        Some(entry.value.clone())
    }

    /// Inserts and evicts least recently used entries until the total weight is within the
    /// bound. An entry heavier than the whole bound is not kept at all.
    pub fn insert(&mut self, key: K, value: V, weight: u64) {
        self.remove(&key);
        if weight > self.weight_max {
            return;
        }
        while self.weight_total + weight > self.weight_max {
            let Some((_, oldest)) = self.by_use.pop_first() else {
                break;
            };
            if let Some(evicted) = self.entries.remove(&oldest) {
                self.weight_total -= evicted.weight;
            }
        }
        self.use_counter += 1;
        self.by_use.insert(self.use_counter, key.clone());
        self.entries.insert(
            key,
            Entry {
                value,
                weight,
                last_use: self.use_counter,
            },
        );
        self.weight_total += weight;
        debug_assert!(self.weight_total <= self.weight_max);
        debug_assert_eq!(self.entries.len(), self.by_use.len());
    }

    fn remove(&mut self, key: &K) {
        if let Some(entry) = self.entries.remove(key) {
            self.by_use.remove(&entry.last_use);
            self.weight_total -= entry.weight;
        }
    }

    pub fn weight(&self) -> u64 {
        self.weight_total
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evicts_least_recently_used_within_the_weight_bound() {
        let mut lru = Lru::new(10);
        lru.insert("a", 1, 4);
        lru.insert("b", 2, 4);
        assert_eq!(lru.get(&"a"), Some(1));
        lru.insert("c", 3, 4);
        assert_eq!(lru.get(&"b"), None, "b was least recently used");
        assert_eq!(lru.get(&"a"), Some(1));
        assert_eq!(lru.get(&"c"), Some(3));
        assert_eq!(lru.weight(), 8);
        lru.insert("huge", 4, 11);
        assert_eq!(lru.get(&"huge"), None);
        assert_eq!(lru.weight(), 8);
        lru.insert("a", 5, 2);
        assert_eq!(lru.get(&"a"), Some(5));
        assert_eq!(lru.weight(), 6);
    }
}

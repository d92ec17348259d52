//! Sparse offset index (`.index`) and time index (`.timeindex`) of one segment, in Kafka's
//! on-disk format.
//!
//! Both live in memory; files are written when a segment is sealed and at close, and read back
//! at open (a missing or inconsistent file is rebuilt by scanning the segment). Owns only the
//! entry lists and their encoding, not the segment file.

/// Bytes per `.index` entry: relative offset i32 BE, file position i32 BE.
pub const OFFSET_ENTRY_LEN: usize = 8;
/// Bytes per `.timeindex` entry: timestamp i64 BE, relative offset i32 BE.
pub const TIME_ENTRY_LEN: usize = 12;

/// Relative offset → file position of the batch starting there, sparse.
#[derive(Debug, Default, Clone)]
pub struct OffsetIndex {
    entries: Vec<(u32, u32)>,
}

impl OffsetIndex {
    pub fn push(&mut self, relative_offset: u32, position: u32) {
        debug_assert!(self
            .entries
            .last()
            .is_none_or(|&(o, p)| o < relative_offset && p < position));
        self.entries.push((relative_offset, position));
    }

    /// File position of the last indexed batch starting at or below `relative_offset`
    /// (0 when none is).
    pub fn lookup(&self, relative_offset: u32) -> u32 {
        let index = self.entries.partition_point(|&(o, _)| o <= relative_offset);
        match index {
            0 => 0,
            i => self.entries[i - 1].1,
        }
    }

    /// The last entry at or below `relative_offset`: (relative offset, position).
    pub fn floor_entry(&self, relative_offset: u32) -> Option<(u32, u32)> {
        let index = self.entries.partition_point(|&(o, _)| o <= relative_offset);
        index.checked_sub(1).map(|i| self.entries[i])
    }

    /// The largest indexed batch position in `(after, up_to]`: a batch boundary.
    pub fn last_position_in(&self, after: u32, up_to: u32) -> Option<u32> {
        let index = self.entries.partition_point(|&(_, p)| p <= up_to);
        index
            .checked_sub(1)
            .map(|i| self.entries[i].1)
            .filter(|&p| p > after)
    }

    /// Drops entries at or above `relative_offset` (the log was cut back there).
    pub fn truncate_from(&mut self, relative_offset: u32) {
        self.entries.retain(|&(o, _)| o < relative_offset);
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.entries.len() * OFFSET_ENTRY_LEN);
        for &(offset, position) in &self.entries {
            out.extend_from_slice(&offset.to_be_bytes());
            out.extend_from_slice(&position.to_be_bytes());
        }
        out
    }

    /// Decodes a file, rejecting anything that could not have been written by `encode` for a
    /// segment of `segment_len` bytes (entries must strictly increase and stay inside it).
    pub fn decode(bytes: &[u8], segment_len: u64) -> Option<OffsetIndex> {
        if bytes.len() % OFFSET_ENTRY_LEN != 0 {
            return None;
        }
        let mut index = OffsetIndex::default();
        for entry in bytes.chunks_exact(OFFSET_ENTRY_LEN) {
            let offset = u32::from_be_bytes([entry[0], entry[1], entry[2], entry[3]]);
            let position = u32::from_be_bytes([entry[4], entry[5], entry[6], entry[7]]);
            if position as u64 >= segment_len {
                return None;
            }
            if let Some(&(last_offset, last_position)) = index.entries.last() {
                if offset <= last_offset || position <= last_position {
                    return None;
                }
            }
            index.entries.push((offset, position));
        }
        Some(index)
    }
}

/// Timestamp → relative offset of the first batch whose max timestamp reached it. An entry is
/// added whenever a batch's max timestamp exceeds the last entry's, so the entries are exactly
/// the points where the running max grows: the first entry at or above a target names the
/// first batch that can hold a record at or after it.
#[derive(Debug, Default, Clone)]
pub struct TimeIndex {
    entries: Vec<(i64, u32)>,
}

impl TimeIndex {
    /// Records a batch; returns whether it raised the maximum.
    pub fn observe(&mut self, max_timestamp: i64, relative_offset: u32) -> bool {
        if self
            .entries
            .last()
            .is_some_and(|&(t, _)| max_timestamp <= t)
        {
            return false;
        }
        self.entries.push((max_timestamp, relative_offset));
        true
    }

    /// The first entry whose timestamp is at least `timestamp_ms`.
    pub fn first_at_or_after(&self, timestamp_ms: i64) -> Option<(i64, u32)> {
        let index = self.entries.partition_point(|&(t, _)| t < timestamp_ms);
        self.entries.get(index).copied()
    }

    pub fn first(&self) -> Option<(i64, u32)> {
        self.entries.first().copied()
    }

    pub fn last(&self) -> Option<(i64, u32)> {
        self.entries.last().copied()
    }

    /// Drops entries at or above `relative_offset` (the log was cut back there).
    pub fn truncate_from(&mut self, relative_offset: u32) {
        self.entries.retain(|&(_, o)| o < relative_offset);
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.entries.len() * TIME_ENTRY_LEN);
        for &(timestamp, offset) in &self.entries {
            out.extend_from_slice(&timestamp.to_be_bytes());
            out.extend_from_slice(&offset.to_be_bytes());
        }
        out
    }

    pub fn decode(bytes: &[u8]) -> Option<TimeIndex> {
        if bytes.len() % TIME_ENTRY_LEN != 0 {
            return None;
        }
        let mut index = TimeIndex::default();
        for entry in bytes.chunks_exact(TIME_ENTRY_LEN) {
            let mut raw = [0u8; 8];
            raw.copy_from_slice(&entry[..8]);
            let timestamp = i64::from_be_bytes(raw);
            let offset = u32::from_be_bytes([entry[8], entry[9], entry[10], entry[11]]);
            if let Some(&(last_timestamp, last_offset)) = index.entries.last() {
                if timestamp <= last_timestamp || offset <= last_offset {
                    return None;
                }
            }
            index.entries.push((timestamp, offset));
        }
        Some(index)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offset_lookup_finds_floor() {
        let mut index = OffsetIndex::default();
        index.push(0, 0);
        index.push(10, 4100);
        index.push(25, 8300);
        assert_eq!(index.lookup(0), 0);
        assert_eq!(index.lookup(9), 0);
        assert_eq!(index.lookup(10), 4100);
        assert_eq!(index.lookup(100), 8300);
        let decoded = OffsetIndex::decode(&index.encode(), 9000).unwrap();
        assert_eq!(decoded.lookup(24), 4100);
        assert!(OffsetIndex::decode(&index.encode(), 8000).is_none());
        assert!(OffsetIndex::decode(&[0; 7], 100).is_none());
    }

    #[test]
    fn boundaries_are_found_between_positions() {
        let mut index = OffsetIndex::default();
        index.push(0, 0);
        index.push(10, 4100);
        index.push(25, 8300);
        assert_eq!(index.floor_entry(9), Some((0, 0)));
        assert_eq!(index.floor_entry(25), Some((25, 8300)));
        assert_eq!(index.last_position_in(0, 8299), Some(4100));
        assert_eq!(index.last_position_in(0, 8300), Some(8300));
        assert_eq!(index.last_position_in(4100, 8299), None);
        assert_eq!(index.last_position_in(0, 4099), None);
        assert_eq!(OffsetIndex::default().floor_entry(3), None);
    }

    #[test]
    fn time_index_keeps_running_max() {
        let mut index = TimeIndex::default();
        assert!(index.observe(100, 0));
        assert!(!index.observe(90, 1));
        assert!(index.observe(200, 2));
        assert_eq!(index.first_at_or_after(50), Some((100, 0)));
        assert_eq!(index.first_at_or_after(150), Some((200, 2)));
        assert_eq!(index.first_at_or_after(201), None);
        let decoded = TimeIndex::decode(&index.encode()).unwrap();
        assert_eq!(decoded.last(), Some((200, 2)));
    }
}

//! The per-partition manifest: which remote segments exist, in offset order. It is the truth
//! for what is remote; objects not listed in it are orphans.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemoteSegment {
    pub base_offset: i64,
    pub last_offset: i64,
    pub size_bytes: u64,
    pub max_timestamp_ms: i64,
    /// Makes each upload's object names unique, so a retried upload never overwrites a
    /// segment that a reader may be using.
    pub unique_id: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionManifest {
    /// Bumped on every change.
    pub version: u64,
    pub segments: Vec<RemoteSegment>,
}

impl PartitionManifest {
    /// Adds a segment, keeping offset order; a segment already listed is not added twice.
    pub fn add(&mut self, segment: RemoteSegment) {
        if self
            .segments
            .iter()
            .any(|s| s.base_offset == segment.base_offset)
        {
            return;
        }
        let at = self
            .segments
            .partition_point(|s| s.base_offset < segment.base_offset);
        self.segments.insert(at, segment);
        self.version += 1;
    }

    /// The segment holding `offset`, or the first one after it when `offset` falls in a gap
    /// (as Kafka's fetch skips to the next batch); `None` below the first segment or past the
    /// last.
    pub fn find(&self, offset: i64) -> Option<&RemoteSegment> {
        if self
            .segments
            .first()
            .is_none_or(|first| offset < first.base_offset)
        {
            return None;
        }
        let at = self.segments.partition_point(|s| s.last_offset < offset);
        self.segments.get(at)
    }

    /// One past the last remote offset (0 when empty).
    pub fn end_offset(&self) -> i64 {
        self.segments.last().map_or(0, |s| s.last_offset + 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn segment(base: i64, last: i64) -> RemoteSegment {
        RemoteSegment {
            base_offset: base,
            last_offset: last,
            size_bytes: 1,
            max_timestamp_ms: 0,
            unique_id: format!("u{base}"),
        }
    }

    #[test]
    fn find_locates_the_segment_holding_an_offset() {
        let mut manifest = PartitionManifest::default();
        manifest.add(segment(100, 199));
        manifest.add(segment(0, 99));
        manifest.add(segment(0, 99));
        assert_eq!(manifest.segments.len(), 2);
        assert_eq!(manifest.find(0).unwrap().base_offset, 0);
        assert_eq!(manifest.find(150).unwrap().base_offset, 100);
        assert!(manifest.find(200).is_none());
        assert_eq!(manifest.end_offset(), 200);
        // A gap (segments 200..299 never existed): a fetch inside it gets the next segment.
        manifest.add(segment(300, 399));
        assert_eq!(manifest.find(250).unwrap().base_offset, 300);
        assert!(manifest.find(-1).is_none());
    }
}

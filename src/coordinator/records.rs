//! The records of `__consumer_offsets`, in Kafka's own key and value schemas, so that the
//! topic reads the same as Kafka's: an offset commit (key version 1), classic group metadata
//! (key version 2) and KIP-848 consumer group metadata (key version 3). A record with a null
//! value is a tombstone: the offset or group is gone.

use bytes::{Buf, BufMut, Bytes, BytesMut};

/// What one `__consumer_offsets` record says.
#[derive(Debug, Clone, PartialEq)]
pub enum GroupRecord {
    /// An offset commit; `None` deletes it.
    Offset {
        group: String,
        topic: String,
        partition: i32,
        value: Option<OffsetValue>,
    },
    /// A classic group's metadata after a rebalance; `None` deletes the group.
    ClassicGroup {
        group: String,
        value: Option<ClassicGroupValue>,
    },
    /// A KIP-848 consumer group's epoch; `None` deletes the group.
    ConsumerGroup { group: String, epoch: Option<i32> },
}

#[derive(Debug, Clone, PartialEq)]
pub struct OffsetValue {
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: String,
    pub commit_timestamp_ms: i64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ClassicGroupValue {
    pub protocol_type: String,
    pub generation: i32,
    pub protocol: Option<String>,
    pub leader: Option<String>,
    pub state_timestamp_ms: i64,
    pub members: Vec<ClassicMemberValue>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ClassicMemberValue {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub rebalance_timeout_ms: i32,
    pub session_timeout_ms: i32,
    pub subscription: Bytes,
    pub assignment: Bytes,
}

const OFFSET_KEY_VERSION: i16 = 1;
const GROUP_KEY_VERSION: i16 = 2;
const CONSUMER_GROUP_KEY_VERSION: i16 = 3;
const OFFSET_VALUE_VERSION: i16 = 3;
const GROUP_VALUE_VERSION: i16 = 3;
const CONSUMER_GROUP_VALUE_VERSION: i16 = 0;

impl GroupRecord {
    /// The group the record belongs to.
    pub fn group(&self) -> &str {
        match self {
            GroupRecord::Offset { group, .. }
            | GroupRecord::ClassicGroup { group, .. }
            | GroupRecord::ConsumerGroup { group, .. } => group,
        }
    }

    /// The record's key and value bytes.
    pub fn encode(&self) -> (Bytes, Option<Bytes>) {
        let mut key = BytesMut::new();
        match self {
            GroupRecord::Offset {
                group,
                topic,
                partition,
                value,
            } => {
                key.put_i16(OFFSET_KEY_VERSION);
                put_string(&mut key, group);
                put_string(&mut key, topic);
                key.put_i32(*partition);
                let value = value.as_ref().map(|v| {
                    let mut out = BytesMut::new();
                    out.put_i16(OFFSET_VALUE_VERSION);
                    out.put_i64(v.offset);
                    out.put_i32(v.leader_epoch);
                    put_string(&mut out, &v.metadata);
                    out.put_i64(v.commit_timestamp_ms);
                    out.freeze()
                });
                (key.freeze(), value)
            }
            GroupRecord::ClassicGroup { group, value } => {
                key.put_i16(GROUP_KEY_VERSION);
                put_string(&mut key, group);
                let value = value.as_ref().map(encode_classic_value);
                (key.freeze(), value)
            }
            GroupRecord::ConsumerGroup { group, epoch } => {
                key.put_i16(CONSUMER_GROUP_KEY_VERSION);
                put_string(&mut key, group);
                let value = epoch.map(|epoch| {
                    // ConsumerGroupMetadataValue v0 is a flexible version: an empty tagged
                    // field section follows the epoch.
                    let mut out = BytesMut::new();
                    out.put_i16(CONSUMER_GROUP_VALUE_VERSION);
                    out.put_i32(epoch);
                    out.put_u8(0);
                    out.freeze()
                });
                (key.freeze(), value)
            }
        }
    }

    /// Decodes a record; `Ok(None)` for record kinds this broker does not keep (Kafka's other
    /// coordinator records, such as KIP-848 member and assignment records).
    pub fn decode(key: &[u8], value: Option<&[u8]>) -> Result<Option<GroupRecord>, String> {
        let mut key = key;
        let version = get_i16(&mut key)?;
        match version {
            0 | 1 => {
                let group = get_string(&mut key)?;
                let topic = get_string(&mut key)?;
                let partition = get_i32(&mut key)?;
                let value = value.map(decode_offset_value).transpose()?;
                Ok(Some(GroupRecord::Offset {
                    group,
                    topic,
                    partition,
                    value,
                }))
            }
            2 => {
                let group = get_string(&mut key)?;
                let value = value.map(decode_classic_value).transpose()?;
                Ok(Some(GroupRecord::ClassicGroup { group, value }))
            }
            3 => {
                let group = get_string(&mut key)?;
                let epoch = match value {
                    Some(mut value) => {
                        let _version = get_i16(&mut value)?;
                        Some(get_i32(&mut value)?)
                    }
                    None => None,
                };
                Ok(Some(GroupRecord::ConsumerGroup { group, epoch }))
            }
            _ => Ok(None),
        }
    }
}

fn encode_classic_value(v: &ClassicGroupValue) -> Bytes {
    let mut out = BytesMut::new();
    out.put_i16(GROUP_VALUE_VERSION);
    put_string(&mut out, &v.protocol_type);
    out.put_i32(v.generation);
    put_nullable_string(&mut out, v.protocol.as_deref());
    put_nullable_string(&mut out, v.leader.as_deref());
    out.put_i64(v.state_timestamp_ms);
    out.put_i32(v.members.len() as i32);
    for m in &v.members {
        put_string(&mut out, &m.member_id);
        put_nullable_string(&mut out, m.instance_id.as_deref());
        put_string(&mut out, &m.client_id);
        put_string(&mut out, &m.client_host);
        out.put_i32(m.rebalance_timeout_ms);
        out.put_i32(m.session_timeout_ms);
        out.put_i32(m.subscription.len() as i32);
        out.put_slice(&m.subscription);
        out.put_i32(m.assignment.len() as i32);
        out.put_slice(&m.assignment);
    }
    out.freeze()
}

fn decode_offset_value(mut value: &[u8]) -> Result<OffsetValue, String> {
    let version = get_i16(&mut value)?;
    let offset = get_i64(&mut value)?;
    // v3+ carries the leader epoch; v1 carries an expire timestamp after the commit one.
    let leader_epoch = if version >= 3 {
        get_i32(&mut value)?
    } else {
        -1
    };
    let metadata = get_string(&mut value)?;
    let commit_timestamp_ms = get_i64(&mut value)?;
    Ok(OffsetValue {
        offset,
        leader_epoch,
        metadata,
        commit_timestamp_ms,
    })
}

fn decode_classic_value(mut value: &[u8]) -> Result<ClassicGroupValue, String> {
    let version = get_i16(&mut value)?;
    if !(0..=3).contains(&version) {
        return Err(format!("group metadata value version {version} unknown"));
    }
    let protocol_type = get_string(&mut value)?;
    let generation = get_i32(&mut value)?;
    let protocol = get_nullable_string(&mut value)?;
    let leader = get_nullable_string(&mut value)?;
    let state_timestamp_ms = if version >= 2 {
        get_i64(&mut value)?
    } else {
        -1
    };
    let count = get_i32(&mut value)?;
    let mut members = Vec::new();
    for _ in 0..count.max(0) {
        let member_id = get_string(&mut value)?;
        let instance_id = if version >= 3 {
            get_nullable_string(&mut value)?
        } else {
            None
        };
        let client_id = get_string(&mut value)?;
        let client_host = get_string(&mut value)?;
        let rebalance_timeout_ms = if version >= 1 {
            get_i32(&mut value)?
        } else {
            -1
        };
        let session_timeout_ms = get_i32(&mut value)?;
        let subscription = get_bytes(&mut value)?;
        let assignment = get_bytes(&mut value)?;
        members.push(ClassicMemberValue {
            member_id,
            instance_id,
            client_id,
            client_host,
            rebalance_timeout_ms: if rebalance_timeout_ms < 0 {
                session_timeout_ms
            } else {
                rebalance_timeout_ms
            },
            session_timeout_ms,
            subscription,
            assignment,
        });
    }
    Ok(ClassicGroupValue {
        protocol_type,
        generation,
        protocol,
        leader,
        state_timestamp_ms,
        members,
    })
}

/// An int16-length string; one longer than the format allows is cut at a character boundary,
/// so that what is stored always decodes.
fn put_string(out: &mut BytesMut, s: &str) {
    let mut len = s.len().min(i16::MAX as usize);
    while !s.is_char_boundary(len) {
        len -= 1;
    }
    out.put_i16(len as i16);
    out.put_slice(&s.as_bytes()[..len]);
}

fn put_nullable_string(out: &mut BytesMut, s: Option<&str>) {
    match s {
        Some(s) => put_string(out, s),
        None => out.put_i16(-1),
    }
}

fn need(buf: &[u8], n: usize) -> Result<(), String> {
    if buf.remaining() < n {
        Err("record truncated".to_string())
    } else {
        Ok(())
    }
}

fn get_i16(buf: &mut &[u8]) -> Result<i16, String> {
    need(buf, 2)?;
    Ok(buf.get_i16())
}

fn get_i32(buf: &mut &[u8]) -> Result<i32, String> {
    need(buf, 4)?;
    Ok(buf.get_i32())
}

fn get_i64(buf: &mut &[u8]) -> Result<i64, String> {
    need(buf, 8)?;
    Ok(buf.get_i64())
}

fn get_nullable_string(buf: &mut &[u8]) -> Result<Option<String>, String> {
    let len = get_i16(buf)?;
    if len < 0 {
        return Ok(None);
    }
    let len = len as usize;
    need(buf, len)?;
    let text = String::from_utf8(buf[..len].to_vec()).map_err(|e| e.to_string())?;
    buf.advance(len);
    Ok(Some(text))
}

fn get_string(buf: &mut &[u8]) -> Result<String, String> {
    Ok(get_nullable_string(buf)?.unwrap_or_default())
}

fn get_bytes(buf: &mut &[u8]) -> Result<Bytes, String> {
    let len = get_i32(buf)?;
    if len < 0 {
        return Ok(Bytes::new());
    }
    let len = len as usize;
    need(buf, len)?;
    let bytes = Bytes::copy_from_slice(&buf[..len]);
    buf.advance(len);
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_overlong_string_is_cut_where_it_still_decodes() {
        let metadata = "é".repeat(20_000); // 40,000 bytes, two per character
        let record = GroupRecord::Offset {
            group: "g".into(),
            topic: "t".into(),
            partition: 0,
            value: Some(OffsetValue {
                offset: 5,
                leader_epoch: -1,
                metadata: metadata.clone(),
                commit_timestamp_ms: 1,
            }),
        };
        let (key, value) = record.encode();
        let decoded = GroupRecord::decode(&key, value.as_deref())
            .expect("decodes")
            .expect("a record");
        let GroupRecord::Offset {
            value: Some(value), ..
        } = decoded
        else {
            panic!("an offset record");
        };
        assert!(metadata.starts_with(&value.metadata));
        assert!(value.metadata.len() <= i16::MAX as usize && value.metadata.len() > 32_000);
    }

    fn round_trip(record: GroupRecord) {
        let (key, value) = record.encode();
        let decoded = GroupRecord::decode(&key, value.as_deref()).expect("decodes");
        assert_eq!(decoded, Some(record));
    }

    #[test]
    fn offset_commit_round_trips() {
        round_trip(GroupRecord::Offset {
            group: "g".into(),
            topic: "t".into(),
            partition: 7,
            value: Some(OffsetValue {
                offset: 42,
                leader_epoch: -1,
                metadata: "meta".into(),
                commit_timestamp_ms: 1_700_000_000_000,
            }),
        });
        round_trip(GroupRecord::Offset {
            group: "g".into(),
            topic: "t".into(),
            partition: 7,
            value: None,
        });
    }

    #[test]
    fn group_metadata_round_trips() {
        round_trip(GroupRecord::ClassicGroup {
            group: "g".into(),
            value: Some(ClassicGroupValue {
                protocol_type: "consumer".into(),
                generation: 3,
                protocol: Some("range".into()),
                leader: Some("m1".into()),
                state_timestamp_ms: 5,
                members: vec![ClassicMemberValue {
                    member_id: "m1".into(),
                    instance_id: Some("i1".into()),
                    client_id: "c".into(),
                    client_host: "/127.0.0.1".into(),
                    rebalance_timeout_ms: 300_000,
                    session_timeout_ms: 45_000,
                    subscription: Bytes::from_static(b"sub"),
                    assignment: Bytes::from_static(b"asg"),
                }],
            }),
        });
        round_trip(GroupRecord::ConsumerGroup {
            group: "g".into(),
            epoch: Some(9),
        });
    }

    #[test]
    fn truncated_and_unknown_records_are_told_apart() {
        assert!(GroupRecord::decode(&[0, 1, 0], None).is_err());
        assert_eq!(GroupRecord::decode(&[0, 9], None), Ok(None));
    }
}

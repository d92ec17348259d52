//! Topic configs: the names Kafka defines, their types, defaults and valid values, and the
//! translation of a topic's overrides into the storage crate's `LogConfig`.

use std::collections::BTreeMap;

use tidelog_storage::{FsyncPolicy, LogConfig, TimestampType};

/// Kafka's config value types, as numbered in DescribeConfigs v3+ (`config_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigType {
    Boolean = 1,
    String = 2,
    Int = 3,
    Long = 5,
    Double = 6,
    List = 7,
}

pub struct TopicConfigDef {
    pub name: &'static str,
    pub config_type: ConfigType,
    pub default: &'static str,
    /// Smallest value for numeric configs.
    pub min: Option<i64>,
    /// The only values allowed, for enumerated strings and list items.
    pub choices: &'static [&'static str],
    pub doc: &'static str,
}

const fn def(
    name: &'static str,
    config_type: ConfigType,
    default: &'static str,
    min: Option<i64>,
    choices: &'static [&'static str],
    doc: &'static str,
) -> TopicConfigDef {
    TopicConfigDef {
        name,
        config_type,
        default,
        min,
        choices,
        doc,
    }
}

use ConfigType as T;

/// Every topic config Tidelog accepts, sorted by name. Those marked "accepted, not yet
/// enforced" are stored and described so that tools setting them keep working.
pub const TOPIC_CONFIGS: &[TopicConfigDef] = &[
    def("cleanup.policy", T::List, "delete", None, &["delete", "compact"], "Retention policy for old segments: delete, compact, or both (compact alone turns time and size retention off; compaction itself is not enforced yet)."),
    def("compression.type", T::String, "producer", None, &["producer", "uncompressed", "gzip", "snappy", "lz4", "zstd"], "Final compression type (only 'producer' is enforced: batches are stored as received)."),
    def("delete.retention.ms", T::Long, "86400000", Some(0), &[], "How long delete tombstones are kept in compacted topics."),
    def("file.delete.delay.ms", T::Long, "60000", Some(0), &[], "Delay before deleting a file from the filesystem."),
    def("flush.messages", T::Long, "9223372036854775807", Some(1), &[], "Accepted, not yet enforced: fsync cadence is set by --fsync."),
    def("flush.ms", T::Long, "9223372036854775807", Some(0), &[], "When set on the topic, overrides --fsync for it: 0 = always, 9223372036854775807 = never, else interval:<ms>."),
    def("index.interval.bytes", T::Int, "4096", Some(0), &[], "Bytes between entries of the offset index."),
    def("local.retention.bytes", T::Long, "-2", Some(-2), &[], "Bytes kept locally for tiered topics (-2: same as retention.bytes)."),
    def("local.retention.ms", T::Long, "-2", Some(-2), &[], "Time data is kept locally for tiered topics (-2: same as retention.ms)."),
    def("max.compaction.lag.ms", T::Long, "9223372036854775807", Some(1), &[], "Longest time a message stays ineligible for compaction."),
    def("max.message.bytes", T::Int, "1048588", Some(0), &[], "Largest record batch size allowed."),
    def("message.timestamp.after.max.ms", T::Long, "3600000", Some(0), &[], "Accepted, not yet enforced."),
    def("message.timestamp.before.max.ms", T::Long, "9223372036854775807", Some(0), &[], "Accepted, not yet enforced."),
    def("message.timestamp.type", T::String, "CreateTime", None, &["CreateTime", "LogAppendTime"], "Whether record timestamps are the producer's or the broker's append time."),
    def("min.cleanable.dirty.ratio", T::Double, "0.5", None, &[], "Accepted, not yet enforced."),
    def("min.compaction.lag.ms", T::Long, "0", Some(0), &[], "Accepted, not yet enforced."),
    def("min.insync.replicas", T::Int, "1", Some(1), &[], "Minimum in-sync replicas for acks=all (a single node has one)."),
    def("preallocate", T::Boolean, "false", None, &[], "Accepted, not yet enforced."),
    def("remote.storage.enable", T::Boolean, "false", None, &[], "Upload sealed segments to the tiered store."),
    def("retention.bytes", T::Long, "-1", Some(-1), &[], "Largest size of a partition before old segments are deleted (-1: unlimited)."),
    def("retention.ms", T::Long, "604800000", Some(-1), &[], "Longest time a segment is kept before it is deleted (-1: unlimited)."),
    def("segment.bytes", T::Int, "1073741824", Some(14), &[], "Segment file size at which the log rolls."),
    def("segment.index.bytes", T::Int, "10485760", Some(8), &[], "Largest size of an offset index."),
    def("segment.jitter.ms", T::Long, "0", Some(0), &[], "Accepted, not yet enforced."),
    def("segment.ms", T::Long, "604800000", Some(1), &[], "Time after which the log rolls even if the segment is not full."),
    def("unclean.leader.election.enable", T::Boolean, "false", None, &[], "Accepted; a single node has no unclean elections."),
];

pub fn find(name: &str) -> Option<&'static TopicConfigDef> {
    TOPIC_CONFIGS.iter().find(|d| d.name == name)
}

/// Checks one config name and value; the error says what is wrong, for INVALID_CONFIG.
pub fn validate(name: &str, value: &str) -> Result<(), String> {
    let def = find(name).ok_or_else(|| format!("Unknown topic config name: {name}"))?;
    let invalid = |why: &str| format!("Invalid value {value} for configuration {name}: {why}");
    match def.config_type {
        T::Boolean => {
            if !value.eq_ignore_ascii_case("true") && !value.eq_ignore_ascii_case("false") {
                return Err(invalid("Expected value to be either true or false"));
            }
        }
        T::Int | T::Long => {
            let n: i64 = value.trim().parse().map_err(|_| invalid("Not a number"))?;
            if def.config_type == T::Int && i32::try_from(n).is_err() {
                return Err(invalid("Not a 32-bit integer"));
            }
            if let Some(min) = def.min {
                if n < min {
                    return Err(invalid(&format!("Value must be at least {min}")));
                }
            }
        }
        T::Double => {
            value
                .trim()
                .parse::<f64>()
                .map_err(|_| invalid("Not a number"))?;
        }
        T::String => {
            if !def.choices.is_empty() && !def.choices.contains(&value) {
                return Err(invalid(&format!(
                    "String must be one of: {}",
                    def.choices.join(", ")
                )));
            }
        }
        T::List => {
            for item in value.split(',').map(str::trim) {
                if !def.choices.is_empty() && !def.choices.contains(&item) {
                    return Err(invalid(&format!(
                        "List items must be in: {}",
                        def.choices.join(", ")
                    )));
                }
            }
        }
    }
    Ok(())
}

/// The value in force: the override, else the default.
pub fn effective<'a>(overrides: &'a BTreeMap<String, String>, name: &str) -> Option<&'a str> {
    overrides
        .get(name)
        .map(String::as_str)
        .or_else(|| find(name).map(|d| d.default))
}

fn number(overrides: &BTreeMap<String, String>, name: &str) -> i64 {
    effective(overrides, name)
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

/// The storage settings for a topic with these overrides. `remote_default` is the broker's
/// `--remote-storage-enable`, for topics that do not set `remote.storage.enable`.
pub fn log_config(
    overrides: &BTreeMap<String, String>,
    fsync: FsyncPolicy,
    remote_default: bool,
) -> LogConfig {
    let timestamp_type = match effective(overrides, "message.timestamp.type") {
        Some("LogAppendTime") => TimestampType::LogAppendTime,
        _ => TimestampType::CreateTime,
    };
    // A compacted-only topic (cleanup.policy=compact) keeps its data: Kafka applies
    // retention.ms / retention.bytes only with the delete policy.
    let deletes = effective(overrides, "cleanup.policy")
        .is_none_or(|policy| policy.split(',').any(|p| p.trim() == "delete"));
    let (retention_ms, retention_bytes) = if deletes {
        (
            number(overrides, "retention.ms"),
            number(overrides, "retention.bytes"),
        )
    } else {
        (-1, -1)
    };
    let remote_storage = overrides
        .get("remote.storage.enable")
        .map(|v| v.trim().eq_ignore_ascii_case("true"))
        .unwrap_or(remote_default);
    // -2: the same as the total retention (Kafka's local.retention.* default).
    let local_retention_ms = match number(overrides, "local.retention.ms") {
        -2 => retention_ms,
        ms => ms,
    };
    let local_retention_bytes = match number(overrides, "local.retention.bytes") {
        -2 => retention_bytes,
        bytes => bytes,
    };
    LogConfig {
        segment_bytes: number(overrides, "segment.bytes").max(14) as u64,
        segment_ms: number(overrides, "segment.ms").max(1),
        index_interval_bytes: number(overrides, "index.interval.bytes").clamp(0, i32::MAX as i64)
            as u32,
        max_message_bytes: number(overrides, "max.message.bytes").clamp(0, i32::MAX as i64) as u32,
        message_timestamp_type: timestamp_type,
        retention_ms,
        retention_bytes,
        fsync: topic_fsync(overrides).unwrap_or(fsync),
        remote_storage,
        local_retention_ms,
        local_retention_bytes,
    }
}

/// A topic's own `flush.ms`, as a fsync policy. Only an explicit override counts: Kafka's
/// default (Long.MAX_VALUE, "leave it to the OS") would otherwise turn `--fsync always` off.
fn topic_fsync(overrides: &BTreeMap<String, String>) -> Option<FsyncPolicy> {
    let flush_ms: i64 = overrides.get("flush.ms")?.trim().parse().ok()?;
    Some(match flush_ms {
        0 => FsyncPolicy::Always,
        i64::MAX => FsyncPolicy::Never,
        ms => FsyncPolicy::IntervalMs(ms.max(1) as u64),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_sorted_and_defaults_are_valid() {
        for pair in TOPIC_CONFIGS.windows(2) {
            assert!(pair[0].name < pair[1].name, "{} out of order", pair[1].name);
        }
        for def in TOPIC_CONFIGS {
            validate(def.name, def.default).unwrap();
        }
    }

    #[test]
    fn validation_rejects_what_kafka_rejects() {
        assert!(validate("retention.ms", "abc").is_err());
        assert!(validate("retention.ms", "-5").is_err());
        assert!(validate("segment.bytes", "10").is_err());
        assert!(validate("cleanup.policy", "compact,delete").is_ok());
        assert!(validate("cleanup.policy", "shred").is_err());
        assert!(validate("message.timestamp.type", "LogAppendTime").is_ok());
        assert!(validate("no.such.config", "1").is_err());
    }

    #[test]
    fn overrides_reach_the_log_config() {
        let mut overrides = BTreeMap::new();
        overrides.insert("segment.bytes".to_string(), "1048576".to_string());
        overrides.insert(
            "message.timestamp.type".to_string(),
            "LogAppendTime".to_string(),
        );
        let config = log_config(&overrides, FsyncPolicy::Always, false);
        assert_eq!(config.segment_bytes, 1_048_576);
        assert_eq!(config.message_timestamp_type, TimestampType::LogAppendTime);
        assert_eq!(config.max_message_bytes, 1_048_588);
        assert_eq!(config.fsync, FsyncPolicy::Always);
    }

    #[test]
    fn flush_ms_override_sets_the_topic_fsync_policy() {
        let mut overrides = BTreeMap::new();
        assert_eq!(
            log_config(&overrides, FsyncPolicy::Never, false).fsync,
            FsyncPolicy::Never
        );
        overrides.insert("flush.ms".to_string(), "0".to_string());
        assert_eq!(
            log_config(&overrides, FsyncPolicy::Never, false).fsync,
            FsyncPolicy::Always
        );
        overrides.insert("flush.ms".to_string(), "250".to_string());
        assert_eq!(
            log_config(&overrides, FsyncPolicy::Always, false).fsync,
            FsyncPolicy::IntervalMs(250)
        );
    }
}

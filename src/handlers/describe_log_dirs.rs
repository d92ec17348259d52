//! DescribeLogDirs: the one data directory, with every (requested) partition's size on disk,
//! gathered from the shards that own them, and the file system's total and usable bytes (v4+).

use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;

use futures_util::future::join_all;
use kafka_protocol::messages::describe_log_dirs_response::{
    DescribeLogDirsPartition, DescribeLogDirsResult, DescribeLogDirsTopic,
};
use kafka_protocol::messages::{DescribeLogDirsRequest, DescribeLogDirsResponse};

use super::util::{str_bytes, topic_name};
use crate::protocol::error_code;
use crate::server::Shard;

pub async fn handle(
    shard: &Rc<Shard>,
    request: DescribeLogDirsRequest,
    version: i16,
) -> DescribeLogDirsResponse {
    // None: every partition.
    let wanted: Option<BTreeSet<(String, i32)>> = request.topics.map(|topics| {
        topics
            .iter()
            .flat_map(|t| t.partitions.iter().map(move |p| (t.topic.to_string(), *p)))
            .collect()
    });
    let sizes = (0..shard.shards.len()).map(|target| {
        shard.run_on(target, |owner| async move {
            owner
                .owned_partitions()
                .iter()
                .map(|p| (p.topic.name.clone(), p.index, p.log.size_bytes() as i64))
                .collect::<Vec<_>>()
        })
    });
    let mut by_topic: BTreeMap<String, Vec<(i32, i64)>> = BTreeMap::new();
    for (topic, partition, size) in join_all(sizes).await.into_iter().flatten().flatten() {
        if wanted
            .as_ref()
            .is_none_or(|w| w.contains(&(topic.clone(), partition)))
        {
            by_topic.entry(topic).or_default().push((partition, size));
        }
    }
    let topics = by_topic
        .into_iter()
        .map(|(name, mut partitions)| {
            partitions.sort_unstable();
            DescribeLogDirsTopic::default()
                .with_name(topic_name(&name))
                .with_partitions(
                    partitions
                        .into_iter()
                        .map(|(index, size)| {
                            DescribeLogDirsPartition::default()
                                .with_partition_index(index)
                                .with_partition_size(size)
                                .with_offset_lag(0)
                                .with_is_future_key(false)
                        })
                        .collect(),
                )
        })
        .collect();
    let data_dir = &shard.config.data_dir;
    let mut result = DescribeLogDirsResult::default()
        .with_error_code(error_code::NONE)
        .with_log_dir(str_bytes(&data_dir.display().to_string()))
        .with_topics(topics);
    if version >= 4 {
        if let Some((total, usable)) = filesystem_bytes(data_dir) {
            result.total_bytes = total;
            result.usable_bytes = usable;
        }
    }
    DescribeLogDirsResponse::default()
        .with_throttle_time_ms(0)
        .with_error_code(error_code::NONE)
        .with_results(vec![result])
}

/// (total, usable) bytes of the file system holding `path`.
fn filesystem_bytes(path: &std::path::Path) -> Option<(i64, i64)> {
    use std::os::unix::ffi::OsStrExt;
    let c_path = std::ffi::CString::new(path.as_os_str().as_bytes()).ok()?;
    // SAFETY: statvfs fills the zeroed struct it is given; the path is a valid C string.
    let stats = unsafe {
        let mut stats: libc::statvfs = std::mem::zeroed();
        if libc::statvfs(c_path.as_ptr(), &mut stats) != 0 {
            return None;
        }
        stats
    };
    let block = stats.f_frsize as i64;
    Some((stats.f_blocks as i64 * block, stats.f_bavail as i64 * block))
}

//! End-to-end tests of `Log` on both I/O engines: round trips across segment rolls, reopen,
//! torn-tail recovery, timestamps, ranges and concurrent appends.

use std::future::Future;
use std::rc::Rc;

use bytes::Bytes;
use tidelog_storage::batch::{build_batch, BatchIter, KeyValue};
use tidelog_storage::{
    FsyncPolicy, IoDriver, IoEngine, Log, LogConfig, StorageError, TimestampType,
};

fn run<F: Future>(future: F) -> F::Output {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    tokio::task::LocalSet::new().block_on(&runtime, future)
}

const ENGINES: [IoEngine; 2] = [IoEngine::Portable, IoEngine::Uring];

/// A batch of `count` records with values `"<tag>-<i>"`, timestamps from `timestamp_ms`.
fn batch(tag: &str, count: usize, timestamp_ms: i64) -> Bytes {
    let values: Vec<Vec<u8>> = (0..count)
        .map(|i| format!("{tag}-{i}").into_bytes())
        .collect();
    let records: Vec<KeyValue<'_>> = values.iter().map(|v| (None, Some(v.as_slice()))).collect();
    Bytes::from(build_batch(0, timestamp_ms, &records))
}

fn small_config() -> LogConfig {
    LogConfig {
        segment_bytes: 1024,
        index_interval_bytes: 256,
        ..LogConfig::default()
    }
}

/// Every batch from `offset` on, read in steps of `max_bytes`: (base offset, last offset).
async fn read_all(log: &Log, mut offset: i64, max_bytes: usize) -> Vec<(i64, i64)> {
    let mut batches = Vec::new();
    while offset < log.high_watermark() {
        let read = log.read(offset, max_bytes).await.unwrap();
        assert!(!read.records.is_empty(), "empty read at {offset}");
        for (header, _) in BatchIter::new(&read.records) {
            batches.push((header.base_offset, header.last_offset()));
            offset = header.last_offset() + 1;
        }
    }
    batches
}

fn driver(engine: IoEngine) -> Rc<IoDriver> {
    let io = IoDriver::new(engine).unwrap();
    match engine {
        IoEngine::Uring => assert_eq!(io.engine_name(), "io_uring"),
        IoEngine::Portable => assert_eq!(io.engine_name(), "portable"),
        IoEngine::Auto => {}
    }
    io
}

#[test]
fn round_trip_across_rolls_and_reopen() {
    for engine in ENGINES {
        run(async {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("topic-0");
            let io = driver(engine);
            let log = Log::open(&path, small_config(), io.clone()).await.unwrap();
            let mut expected = Vec::new();
            for i in 0..60 {
                let count = i % 4 + 1;
                let outcome = log
                    .append(batch("v", count, 1_000 + i as i64), 5_000, true)
                    .await
                    .unwrap();
                let next = expected
                    .last()
                    .map_or(0, |&(_, last): &(i64, i64)| last + 1);
                assert_eq!(outcome.base_offset, next, "offsets are dense");
                assert_eq!(outcome.last_offset, next + count as i64 - 1);
                assert_eq!(outcome.log_append_time_ms, -1);
                expected.push((outcome.base_offset, outcome.last_offset));
            }
            let end = expected.last().unwrap().1 + 1;
            assert_eq!(log.high_watermark(), end);
            assert_eq!(log.log_end_offset(), end);
            assert!(log.segment_base_offsets().len() > 3, "segments rolled");
            assert_eq!(read_all(&log, 0, 1).await, expected);
            assert_eq!(read_all(&log, 0, 100_000).await, expected);
            // Reads from every offset start with the batch that holds it.
            for offset in 0..end {
                let read = log.read(offset, 10).await.unwrap();
                let (header, _) = BatchIter::new(&read.records).next().unwrap();
                assert!(header.base_offset <= offset && offset <= header.last_offset());
            }
            let size = log.size_bytes();
            log.close().await.unwrap();
            assert!(path.join(".clean_shutdown").exists());

            let log = Log::open(&path, small_config(), io.clone()).await.unwrap();
            assert!(!path.join(".clean_shutdown").exists());
            assert_eq!(log.log_end_offset(), end);
            assert_eq!(log.high_watermark(), end);
            assert_eq!(log.size_bytes(), size);
            assert_eq!(read_all(&log, 0, 300).await, expected);
            let outcome = log
                .append(batch("w", 2, 9_000), 9_000, false)
                .await
                .unwrap();
            assert_eq!(outcome.base_offset, end);
            log.close().await.unwrap();
        });
    }
}

#[test]
fn torn_tail_is_truncated_and_earlier_data_kept() {
    for engine in ENGINES {
        run(async {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("t-1");
            let io = driver(engine);
            let log = Log::open(&path, small_config(), io.clone()).await.unwrap();
            let mut expected = Vec::new();
            for i in 0..20 {
                let outcome = log.append(batch("x", 3, i), 0, true).await.unwrap();
                expected.push((outcome.base_offset, outcome.last_offset));
            }
            // A crash: no close. Tear the last batch of the active segment and add garbage.
            let active = *log.segment_base_offsets().last().unwrap();
            drop(log);
            let file = path.join(format!("{active:020}.log"));
            let len = std::fs::metadata(&file).unwrap().len();
            let last_batch_len = batch("x", 3, 0).len() as u64;
            let f = std::fs::OpenOptions::new().write(true).open(&file).unwrap();
            f.set_len(len - last_batch_len / 2).unwrap();
            drop(f);
            let mut bytes = std::fs::read(&file).unwrap();
            bytes.extend_from_slice(&[0xab; 100]);
            std::fs::write(&file, &bytes).unwrap();
            expected.pop();

            let log = Log::open(&path, small_config(), io.clone()).await.unwrap();
            let end = expected.last().unwrap().1 + 1;
            assert_eq!(log.log_end_offset(), end);
            assert_eq!(read_all(&log, 0, 1).await, expected);
            assert_eq!(
                std::fs::metadata(&file).unwrap().len(),
                len - last_batch_len
            );
            let outcome = log.append(batch("y", 1, 0), 0, true).await.unwrap();
            assert_eq!(outcome.base_offset, end);
            expected.push((end, end));
            assert_eq!(read_all(&log, 0, 1).await, expected);

            // Corrupt a byte in the middle of the active segment: truncated there.
            drop(log);
            let active = std::fs::read_dir(&path)
                .unwrap()
                .filter_map(|e| e.ok())
                .map(|e| e.file_name().into_string().unwrap())
                .filter(|n| n.ends_with(".log"))
                .max()
                .unwrap();
            let file = path.join(active);
            let mut bytes = std::fs::read(&file).unwrap();
            let middle = bytes.len() - 10;
            bytes[middle] ^= 0xff;
            std::fs::write(&file, &bytes).unwrap();
            let log = Log::open(&path, small_config(), io.clone()).await.unwrap();
            expected.pop();
            assert_eq!(read_all(&log, 0, 1).await, expected);
            log.close().await.unwrap();
        });
    }
}

#[test]
fn unsealed_segments_are_rescanned_when_index_files_are_missing() {
    run(async {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t-2");
        let io = driver(IoEngine::Auto);
        let log = Log::open(&path, small_config(), io.clone()).await.unwrap();
        for i in 0..30 {
            log.append(batch("z", 2, i), 0, true).await.unwrap();
        }
        let expected = read_all(&log, 0, 1).await;
        log.close().await.unwrap();
        // Lose every index file and the marker: recovery rebuilds them all.
        for entry in std::fs::read_dir(&path).unwrap() {
            let entry = entry.unwrap();
            let name = entry.file_name().into_string().unwrap();
            if name.ends_with("index") || name == ".clean_shutdown" {
                std::fs::remove_file(entry.path()).unwrap();
            }
        }
        let log = Log::open(&path, small_config(), io.clone()).await.unwrap();
        assert_eq!(read_all(&log, 0, 1).await, expected);
        for offset in [0, 7, 33, 59] {
            let read = log.read(offset, 1).await.unwrap();
            let (header, _) = BatchIter::new(&read.records).next().unwrap();
            assert!(header.base_offset <= offset && offset <= header.last_offset());
        }
        log.close().await.unwrap();
    });
}

#[test]
fn ranges_and_high_watermark_reads() {
    for engine in ENGINES {
        run(async {
            let dir = tempfile::tempdir().unwrap();
            let log = Log::open(
                &dir.path().join("r-0"),
                LogConfig::default(),
                driver(engine),
            )
            .await
            .unwrap();
            let empty = log.read(0, 1000).await.unwrap();
            assert!(empty.records.is_empty());
            assert_eq!(empty.high_watermark, 0);
            log.append(batch("a", 5, 10), 0, false).await.unwrap();
            let at_hw = log.read(5, 1000).await.unwrap();
            assert!(at_hw.records.is_empty());
            assert_eq!(at_hw.high_watermark, 5);
            assert!(matches!(
                log.read(6, 1000).await,
                Err(StorageError::OffsetOutOfRange { offset: 6, .. })
            ));
            assert!(matches!(
                log.read(-1, 1000).await,
                Err(StorageError::OffsetOutOfRange { .. })
            ));
            // A batch larger than max_bytes still comes back whole (KIP-74).
            let read = log.read(3, 1).await.unwrap();
            assert_eq!(read.records.len(), batch("a", 5, 10).len());
            log.close().await.unwrap();
            assert!(matches!(
                log.read(0, 10).await,
                Err(StorageError::Closed(_))
            ));
            assert!(matches!(
                log.append(batch("a", 1, 0), 0, false).await,
                Err(StorageError::Closed(_))
            ));
        });
    }
}

#[test]
fn invalid_batches_are_refused() {
    run(async {
        let dir = tempfile::tempdir().unwrap();
        let config = LogConfig {
            max_message_bytes: 200,
            ..LogConfig::default()
        };
        let log = Log::open(&dir.path().join("i-0"), config, driver(IoEngine::Portable))
            .await
            .unwrap();
        let mut corrupt = batch("c", 2, 0).to_vec();
        let last = corrupt.len() - 1;
        corrupt[last] ^= 1;
        assert!(matches!(
            log.append(Bytes::from(corrupt), 0, true).await,
            Err(StorageError::InvalidBatch(_))
        ));
        assert!(matches!(
            log.append(batch("big", 30, 0), 0, true).await,
            Err(StorageError::InvalidBatch(_))
        ));
        assert_eq!(log.log_end_offset(), 0);
        log.delete().await.unwrap();
        assert!(!dir.path().join("i-0").exists());
    });
}

#[test]
fn timestamps_lookup_and_log_append_time() {
    for engine in ENGINES {
        run(async {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("ts-0");
            let io = driver(engine);
            let log = Log::open(&path, small_config(), io.clone()).await.unwrap();
            assert_eq!(log.offset_for_timestamp(0).await.unwrap(), None);
            assert_eq!(log.max_timestamp().await.unwrap(), None);
            // Batches of 3 records at 100, 200, ..., each record +1 ms.
            for i in 1..=20 {
                log.append(batch("t", 3, i * 100), 0, false).await.unwrap();
            }
            let lookup = log.offset_for_timestamp(0).await.unwrap().unwrap();
            assert_eq!((lookup.offset, lookup.timestamp_ms), (0, 100));
            let lookup = log.offset_for_timestamp(501).await.unwrap().unwrap();
            assert_eq!((lookup.offset, lookup.timestamp_ms), (13, 501));
            let lookup = log.offset_for_timestamp(1_550).await.unwrap().unwrap();
            assert_eq!((lookup.offset, lookup.timestamp_ms), (45, 1_600));
            assert_eq!(log.offset_for_timestamp(2_003).await.unwrap(), None);
            let max = log.max_timestamp().await.unwrap().unwrap();
            assert_eq!((max.offset, max.timestamp_ms), (59, 2_002));
            log.close().await.unwrap();
            let log = Log::open(&path, small_config(), io.clone()).await.unwrap();
            let max = log.max_timestamp().await.unwrap().unwrap();
            assert_eq!((max.offset, max.timestamp_ms), (59, 2_002));
            let lookup = log.offset_for_timestamp(1_102).await.unwrap().unwrap();
            assert_eq!((lookup.offset, lookup.timestamp_ms), (32, 1_102));

            let mut config = log.config();
            config.message_timestamp_type = TimestampType::LogAppendTime;
            log.set_config(config);
            let outcome = log.append(batch("l", 2, 5), 77_000, true).await.unwrap();
            assert_eq!(outcome.log_append_time_ms, 77_000);
            let read = log.read(outcome.base_offset, 1).await.unwrap();
            let (header, range) = BatchIter::new(&read.records).next().unwrap();
            assert!(header.is_log_append_time());
            assert_eq!(header.max_timestamp, 77_000);
            tidelog_storage::batch::validate_batch(&read.records[range], 1 << 20).unwrap();
            let max = log.max_timestamp().await.unwrap().unwrap();
            assert_eq!(
                (max.offset, max.timestamp_ms),
                (outcome.base_offset, 77_000)
            );
            log.close().await.unwrap();
        });
    }
}

#[test]
fn concurrent_appends_keep_call_order() {
    for engine in ENGINES {
        for fsync in [FsyncPolicy::Always, FsyncPolicy::Never] {
            run(async {
                let dir = tempfile::tempdir().unwrap();
                let config = LogConfig {
                    fsync,
                    ..small_config()
                };
                let log = Log::open(&dir.path().join("c-0"), config, driver(engine))
                    .await
                    .unwrap();
                let mut tasks = Vec::new();
                for task in 0..8i64 {
                    let log = log.clone();
                    tasks.push(tokio::task::spawn_local(async move {
                        let mut offsets = Vec::new();
                        for i in 0..10 {
                            let outcome = log
                                .append(batch(&format!("{task}"), 2, i), 0, true)
                                .await
                                .unwrap();
                            assert!(log.high_watermark() > outcome.last_offset);
                            if fsync == FsyncPolicy::Always {
                                assert!(log.durable_offset() > outcome.last_offset);
                            }
                            offsets.push(outcome.base_offset);
                        }
                        offsets
                    }));
                }
                let mut all = Vec::new();
                for task in tasks {
                    let offsets = task.await.unwrap();
                    assert!(offsets.windows(2).all(|w| w[0] < w[1]));
                    all.extend(offsets);
                }
                all.sort_unstable();
                assert_eq!(all, (0..80).map(|i| i * 2).collect::<Vec<_>>());
                let batches = read_all(&log, 0, 1_000).await;
                assert_eq!(batches.len(), 80);
                assert!(batches.windows(2).all(|w| w[0].1 + 1 == w[1].0));
                log.close().await.unwrap();
            });
        }
    }
}

#[test]
fn waiters_wake_on_append_and_close() {
    run(async {
        let dir = tempfile::tempdir().unwrap();
        let log = Log::open(
            &dir.path().join("w-0"),
            LogConfig::default(),
            driver(IoEngine::Auto),
        )
        .await
        .unwrap();
        let waiter = {
            let log = log.clone();
            tokio::task::spawn_local(async move {
                log.wait_for_offset(0).await;
                log.high_watermark()
            })
        };
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished());
        log.append(batch("w", 3, 0), 0, false).await.unwrap();
        assert_eq!(waiter.await.unwrap(), 3);
        let waiter = {
            let log = log.clone();
            tokio::task::spawn_local(async move { log.wait_for_offset(10).await })
        };
        tokio::task::yield_now().await;
        log.close().await.unwrap();
        waiter.await.unwrap();
    });
}

#[test]
fn time_based_roll_and_interval_flush() {
    run(async {
        let dir = tempfile::tempdir().unwrap();
        let config = LogConfig {
            segment_ms: 1_000,
            fsync: FsyncPolicy::IntervalMs(10),
            ..LogConfig::default()
        };
        let log = Log::open(&dir.path().join("s-0"), config, driver(IoEngine::Auto))
            .await
            .unwrap();
        log.append(batch("s", 1, 10_000), 10_000, true)
            .await
            .unwrap();
        log.roll_if_due(10_500).await.unwrap();
        assert_eq!(log.segment_base_offsets(), vec![0]);
        log.roll_if_due(11_001).await.unwrap();
        assert_eq!(log.segment_base_offsets(), vec![0, 1]);
        log.append(batch("s", 1, 20_000), 20_000, true)
            .await
            .unwrap();
        // The background flusher covers it within a few intervals.
        for _ in 0..100 {
            if log.durable_offset() == 2 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        assert_eq!(log.durable_offset(), 2);
        log.close().await.unwrap();
    });
}

/// A crash during a roll: the new (empty) segment file exists, but the old segment's last
/// writes never reached the disk, so it ends cleanly below the new segment's base. Recovery
/// removes what follows the gap, so offsets stay dense and appends continue from the end.
#[test]
fn a_gap_left_by_a_crash_during_a_roll_is_closed() {
    for engine in ENGINES {
        run(async {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("t-gap");
            let io = driver(engine);
            let log = Log::open(&path, small_config(), io.clone()).await.unwrap();
            let mut expected = Vec::new();
            for i in 0..80 {
                let outcome = log.append(batch("x", 3, i), 0, true).await.unwrap();
                expected.push((outcome.base_offset, outcome.last_offset));
            }
            let bases = log.segment_base_offsets();
            assert!(bases.len() >= 3, "{bases:?}");
            drop(log);
            // Lose the last batch of the next-to-last segment, at a batch boundary (no torn
            // tail to find), and its index files, as if it had never been sealed.
            let victim = bases[bases.len() - 2];
            let file = path.join(format!("{victim:020}.log"));
            let len = std::fs::metadata(&file).unwrap().len();
            let batch_len = batch("x", 3, 0).len() as u64;
            std::fs::OpenOptions::new()
                .write(true)
                .open(&file)
                .unwrap()
                .set_len(len - batch_len)
                .unwrap();
            for extension in ["index", "timeindex"] {
                let _ = std::fs::remove_file(path.join(format!("{victim:020}.{extension}")));
            }
            let next_base = *bases.last().unwrap();
            expected.retain(|(base, _)| *base < next_base - 3);

            let log = Log::open(&path, small_config(), io.clone()).await.unwrap();
            let end = expected.last().unwrap().1 + 1;
            assert_eq!(log.log_end_offset(), end);
            assert_eq!(read_all(&log, 0, 1).await, expected);
            assert!(!path.join(format!("{next_base:020}.log")).exists());
            let outcome = log.append(batch("y", 1, 0), 0, true).await.unwrap();
            assert_eq!(outcome.base_offset, end, "appends continue densely");
            log.close().await.unwrap();
        });
    }
}

/// The bytes a shared read stands for, whether in memory or a range of a segment file.
fn materialize(records: &tidelog_storage::Records) -> Vec<u8> {
    match records {
        tidelog_storage::Records::Memory(bytes) => bytes.to_vec(),
        tidelog_storage::Records::File(slice) => slice
            .read_bytes()
            .expect("the slice lies inside its file")
            .to_vec(),
    }
}

#[test]
fn shared_reads_are_whole_batches_below_the_high_watermark() {
    for engine in ENGINES {
        run(async {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("topic-0");
            let io = driver(engine);
            let config = LogConfig {
                segment_bytes: 16 * 1024,
                index_interval_bytes: 256,
                ..LogConfig::default()
            };
            let log = Log::open(&path, config, io.clone()).await.unwrap();
            // Batches from ~30 B to ~700 B: some indexed, some not, across several segments.
            for i in 0..200 {
                log.append(
                    batch("value-bytes", i % 40 + 1, 1_000 + i as i64),
                    5_000,
                    true,
                )
                .await
                .unwrap();
            }
            let end = log.high_watermark();
            assert!(log.segment_base_offsets().len() > 3, "segments rolled");
            let mut file_slices = 0;
            for offset in 0..end {
                for max_bytes in [1, 700, 5_000, 1 << 20] {
                    let parsed = log.read(offset, max_bytes).await.unwrap().records;
                    for min_file_bytes in [0, usize::MAX] {
                        let shared = log
                            .read_shared(offset, max_bytes, min_file_bytes)
                            .await
                            .unwrap();
                        if matches!(shared.records, tidelog_storage::Records::File(_)) {
                            assert_eq!(min_file_bytes, 0);
                            file_slices += 1;
                        }
                        let bytes = materialize(&shared.records);
                        // A non-empty prefix of what the parsing read returns: whole batches,
                        // the first holding `offset`, within `max_bytes` unless it is one batch.
                        assert!(!bytes.is_empty(), "offset {offset} max {max_bytes}");
                        assert!(
                            parsed.starts_with(&bytes),
                            "offset {offset} max {max_bytes}"
                        );
                        let batches: Vec<_> = BatchIter::new(&bytes).collect();
                        assert_eq!(
                            batches.last().map(|(_, r)| r.end),
                            Some(bytes.len()),
                            "whole batches"
                        );
                        let (first, _) = &batches[0];
                        assert!(first.base_offset <= offset && offset <= first.last_offset());
                        assert!(batches.len() == 1 || bytes.len() <= max_bytes);
                        assert_eq!(shared.high_watermark, end);
                    }
                }
            }
            assert!(
                file_slices > 0,
                "indexed, cached reads come back as file ranges"
            );
            assert!(log
                .read_shared(end, 100, 0)
                .await
                .unwrap()
                .records
                .is_empty());
            assert!(matches!(
                log.read_shared(end + 1, 100, 0).await,
                Err(StorageError::OffsetOutOfRange { .. })
            ));

            // A write in flight is not readable: nothing past the reported high watermark.
            let mut pending = Box::pin(log.append(batch("late", 30, 9_000), 9_000, true));
            std::future::poll_fn(|cx| {
                let _ = pending.as_mut().poll(cx);
                std::task::Poll::Ready(())
            })
            .await;
            let last_base = log.segment_base_offsets().last().copied().unwrap();
            let shared = log.read_shared(last_base, 1 << 20, 0).await.unwrap();
            let bytes = materialize(&shared.records);
            for (header, _) in BatchIter::new(&bytes) {
                assert!(header.last_offset() < shared.high_watermark);
            }
            pending.await.unwrap();
            log.close().await.unwrap();
        });
    }
}

#[test]
fn large_appends_are_written_in_pieces_and_read_back_intact() {
    for engine in ENGINES {
        run(async {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("topic-0");
            let io = driver(engine);
            let log = Log::open(&path, LogConfig::default(), io.clone())
                .await
                .unwrap();
            // Requests of several batches, 100-400 KiB each: above the size that is written
            // from the received buffer in pieces instead of copied.
            let mut expected = Vec::new();
            for request in 0..6 {
                let batches: Vec<Bytes> = (0..request + 2)
                    .map(|b| {
                        let values: Vec<Vec<u8>> = (0..60)
                            .map(|i| format!("r{request}-b{b}-{i}-").repeat(200).into_bytes())
                            .collect();
                        let records: Vec<KeyValue<'_>> =
                            values.iter().map(|v| (None, Some(v.as_slice()))).collect();
                        Bytes::from(build_batch(0, 1_000, &records))
                    })
                    .collect();
                let joined = Bytes::from(batches.concat());
                assert!(joined.len() >= 100 * 1024);
                let outcome = log.append(joined, 2_000, true).await.unwrap();
                assert_eq!(
                    outcome.last_offset - outcome.base_offset + 1,
                    60 * (request + 2) as i64
                );
                expected.extend(batches);
            }
            let end = log.high_watermark();
            let expected = &expected;
            let check = |log: Rc<Log>| async move {
                let mut offset = 0;
                let mut seen = 0;
                while offset < end {
                    let read = log.read(offset, 1 << 20).await.unwrap();
                    for (header, range) in BatchIter::new(&read.records) {
                        let stored = &read.records[range];
                        tidelog_storage::batch::check_stored_batch(stored).unwrap();
                        assert_eq!(header.base_offset, offset, "dense offsets");
                        // Everything after the base offset is the batch as produced.
                        assert_eq!(&stored[8..], &expected[seen][8..]);
                        offset = header.last_offset() + 1;
                        seen += 1;
                    }
                }
                assert_eq!(seen, expected.len());
            };
            check(log.clone()).await;
            log.close().await.unwrap();
            // Reopened after a crash-like start (no clean marker): the scan checks every CRC.
            std::fs::remove_file(path.join(".clean_shutdown")).unwrap();
            let log = Log::open(&path, LogConfig::default(), io.clone())
                .await
                .unwrap();
            assert_eq!(log.high_watermark(), end);
            check(log.clone()).await;
            log.close().await.unwrap();
        });
    }
}

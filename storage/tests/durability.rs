//! Retention, DeleteRecords, idempotent-producer state (dedup, sequence and epoch errors,
//! snapshot and rebuild after a clean close and after a crash), and cutting the log back
//! after a failed write, on both I/O engines.

use std::future::Future;
use std::rc::Rc;

use bytes::Bytes;
use tidelog_storage::batch::{build_batch, build_producer_batch, BatchIter, KeyValue};
use tidelog_storage::{IoDriver, IoEngine, Log, LogConfig, ProducerError, StorageError};

fn run<F: Future>(future: F) -> F::Output {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    tokio::task::LocalSet::new().block_on(&runtime, future)
}

const ENGINES: [IoEngine; 2] = [IoEngine::Portable, IoEngine::Uring];

fn values(tag: &str, count: usize) -> Vec<Vec<u8>> {
    (0..count)
        .map(|i| format!("{tag}-{i}").into_bytes())
        .collect()
}

fn batch(tag: &str, count: usize, timestamp_ms: i64) -> Bytes {
    let values = values(tag, count);
    let records: Vec<KeyValue<'_>> = values.iter().map(|v| (None, Some(v.as_slice()))).collect();
    Bytes::from(build_batch(0, timestamp_ms, &records))
}

fn producer_batch(producer_id: i64, epoch: i16, sequence: i32, count: usize) -> Bytes {
    let values = values(&format!("p{producer_id}-{sequence}"), count);
    let records: Vec<KeyValue<'_>> = values.iter().map(|v| (None, Some(v.as_slice()))).collect();
    Bytes::from(build_producer_batch(
        1_000,
        &records,
        producer_id,
        epoch,
        sequence,
    ))
}

fn small_config() -> LogConfig {
    LogConfig {
        segment_bytes: 1024,
        index_interval_bytes: 256,
        retention_ms: -1,
        retention_bytes: -1,
        ..LogConfig::default()
    }
}

async fn offsets(log: &Log, mut offset: i64) -> Vec<(i64, i64)> {
    let mut batches = Vec::new();
    while offset < log.high_watermark() {
        let read = log.read(offset, 1).await.unwrap();
        assert!(!read.records.is_empty(), "empty read at {offset}");
        for (header, _) in BatchIter::new(&read.records) {
            batches.push((header.base_offset, header.last_offset()));
            offset = header.last_offset() + 1;
        }
    }
    batches
}

fn driver(engine: IoEngine) -> Rc<IoDriver> {
    IoDriver::new(engine).unwrap()
}

fn file_count(dir: &std::path::Path, extension: &str) -> usize {
    std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().ends_with(extension))
        .count()
}

#[test]
fn retention_by_bytes_and_time_deletes_whole_old_segments() {
    for engine in ENGINES {
        run(async {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("r-0");
            let io = driver(engine);
            let log = Log::open(&path, small_config(), io.clone()).await.unwrap();
            for i in 0..60 {
                log.append(batch("v", 3, 1_000 + i), 5_000, true)
                    .await
                    .unwrap();
            }
            let segments = log.segment_base_offsets();
            assert!(segments.len() > 4, "{segments:?}");
            // Unlimited retention deletes nothing.
            assert!(log
                .enforce_retention(i64::MAX / 2)
                .await
                .unwrap()
                .is_empty());

            // retention.bytes: keep at least this many bytes, deleting from the oldest.
            let keep_bytes = log.size_bytes() / 2;
            log.set_config(LogConfig {
                retention_bytes: keep_bytes as i64,
                ..small_config()
            });
            let deleted = log.enforce_retention(0).await.unwrap();
            assert!(!deleted.is_empty());
            assert!(log.size_bytes() >= keep_bytes);
            let first = log.segment_base_offsets()[0];
            assert_eq!(log.log_start_offset(), first);
            assert_eq!(&segments[..deleted.len()], &deleted[..]);
            for base in &deleted {
                assert!(!path.join(format!("{base:020}.log")).exists());
            }
            assert!(matches!(
                log.read(first - 1, 1).await,
                Err(StorageError::OffsetOutOfRange { .. })
            ));
            assert_eq!(offsets(&log, first).await.first().unwrap().0, first);

            // retention.ms: every sealed segment is older than this; the active one stays.
            log.set_config(LogConfig {
                retention_ms: 10,
                ..small_config()
            });
            log.enforce_retention(1_000_000).await.unwrap();
            let remaining = log.segment_base_offsets();
            assert_eq!(remaining.len(), 1, "only the active segment is kept");
            assert_eq!(log.log_start_offset(), remaining[0]);
            let end = log.log_end_offset();
            log.close().await.unwrap();

            // The log start survives a restart.
            let log = Log::open(&path, small_config(), io.clone()).await.unwrap();
            assert_eq!(log.log_start_offset(), remaining[0]);
            assert_eq!(log.log_end_offset(), end);
            log.close().await.unwrap();
        });
    }
}

#[test]
fn delete_records_moves_the_log_start_durably() {
    for engine in ENGINES {
        run(async {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("d-0");
            let io = driver(engine);
            let log = Log::open(&path, small_config(), io.clone()).await.unwrap();
            for i in 0..40 {
                log.append(batch("v", 2, i), 0, true).await.unwrap();
            }
            let high_watermark = log.high_watermark();
            assert!(matches!(
                log.delete_records_before(high_watermark + 1).await,
                Err(StorageError::OffsetOutOfRange { .. })
            ));
            assert_eq!(log.delete_records_before(25).await.unwrap(), 25);
            // Below the log start: nothing changes.
            assert_eq!(log.delete_records_before(3).await.unwrap(), 25);
            assert!(matches!(
                log.read(24, 1).await,
                Err(StorageError::OffsetOutOfRange { .. })
            ));
            // The batch holding 25 may start below it; reads still return it whole.
            let read = log.read(25, 1).await.unwrap();
            assert_eq!(read.log_start_offset, 25);
            assert!(log.segment_base_offsets()[0] <= 25);

            // A crash (no close): the checkpoint written at DeleteRecords holds.
            drop(read);
            drop(log);
            let log = Log::open(&path, small_config(), io.clone()).await.unwrap();
            assert_eq!(log.log_start_offset(), 25);
            // -1 means the high watermark: everything goes but the active segment.
            assert_eq!(log.delete_records_before(-1).await.unwrap(), high_watermark);
            assert_eq!(log.segment_base_offsets().len(), 1);
            let outcome = log.append(batch("w", 1, 0), 0, true).await.unwrap();
            assert_eq!(outcome.base_offset, high_watermark);
            assert_eq!(outcome.log_start_offset, high_watermark);
            log.close().await.unwrap();
            let log = Log::open(&path, small_config(), io.clone()).await.unwrap();
            assert_eq!(log.log_start_offset(), high_watermark);
            assert_eq!(
                offsets(&log, high_watermark).await,
                vec![(high_watermark, high_watermark)]
            );
            log.close().await.unwrap();
        });
    }
}

#[test]
fn idempotent_producer_retries_get_their_original_offsets() {
    for engine in ENGINES {
        run(async {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("p-0");
            let log = Log::open(&path, small_config(), driver(engine))
                .await
                .unwrap();
            log.append(batch("plain", 2, 0), 0, true).await.unwrap();
            let first = log
                .append(producer_batch(7, 0, 0, 3), 0, true)
                .await
                .unwrap();
            assert_eq!((first.base_offset, first.last_offset), (2, 4));
            let second = log
                .append(producer_batch(7, 0, 3, 2), 0, true)
                .await
                .unwrap();
            assert_eq!((second.base_offset, second.last_offset), (5, 6));
            // Retries of either batch: the original offsets, nothing written.
            let retry = log
                .append(producer_batch(7, 0, 0, 3), 0, true)
                .await
                .unwrap();
            assert_eq!((retry.base_offset, retry.last_offset), (2, 4));
            let retry = log
                .append(producer_batch(7, 0, 3, 2), 0, false)
                .await
                .unwrap();
            assert_eq!((retry.base_offset, retry.last_offset), (5, 6));
            assert_eq!(log.log_end_offset(), 7);

            // A gap in the sequence.
            match log.append(producer_batch(7, 0, 9, 1), 0, true).await {
                Err(StorageError::Producer(ProducerError::OutOfOrderSequence {
                    found: 9,
                    expected: 5,
                    ..
                })) => {}
                other => panic!("expected OutOfOrderSequence, got {other:?}"),
            }
            // A new epoch must start at sequence 0; an older one is fenced.
            assert!(matches!(
                log.append(producer_batch(7, 1, 5, 1), 0, true).await,
                Err(StorageError::Producer(
                    ProducerError::OutOfOrderSequence { .. }
                ))
            ));
            let bumped = log
                .append(producer_batch(7, 1, 0, 1), 0, true)
                .await
                .unwrap();
            assert_eq!(bumped.base_offset, 7);
            assert!(matches!(
                log.append(producer_batch(7, 0, 5, 1), 0, true).await,
                Err(StorageError::Producer(
                    ProducerError::InvalidProducerEpoch { .. }
                ))
            ));
            // A producer with no state may start at any sequence (Kafka since KIP-360).
            let other = log
                .append(producer_batch(8, 3, 42, 1), 0, true)
                .await
                .unwrap();
            assert_eq!(other.base_offset, 8);

            let producers = log.producers();
            assert_eq!(producers.len(), 2);
            assert_eq!(producers[0].producer_id, 7);
            assert_eq!(producers[0].producer_epoch, 1);
            assert_eq!(producers[0].last_sequence, 0);
            assert_eq!(producers[1].last_sequence, 42);

            // Only the last five batches are remembered.
            for sequence in 1..=6 {
                log.append(producer_batch(7, 1, sequence, 1), 0, true)
                    .await
                    .unwrap();
            }
            let retry = log
                .append(producer_batch(7, 1, 2, 1), 0, true)
                .await
                .unwrap();
            assert_eq!(retry.base_offset, 10);
            assert!(matches!(
                log.append(producer_batch(7, 1, 1, 1), 0, true).await,
                Err(StorageError::Producer(
                    ProducerError::OutOfOrderSequence { .. }
                ))
            ));
            log.close().await.unwrap();
        });
    }
}

#[test]
fn producer_state_survives_close_crash_and_rolls() {
    for engine in ENGINES {
        run(async {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("p-1");
            let io = driver(engine);
            let log = Log::open(&path, small_config(), io.clone()).await.unwrap();
            let mut originals = Vec::new();
            for sequence in 0..30 {
                let outcome = log
                    .append(producer_batch(11, 0, sequence * 2, 2), 0, true)
                    .await
                    .unwrap();
                originals.push(outcome.base_offset);
            }
            assert!(log.segment_base_offsets().len() > 2);
            // Let the sealing tasks write their snapshots.
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            assert!(file_count(&path, ".snapshot") >= 1);
            log.close().await.unwrap();

            // After a clean close: the snapshot at the log end.
            let log = Log::open(&path, small_config(), io.clone()).await.unwrap();
            let retry = log
                .append(producer_batch(11, 0, 58, 2), 0, true)
                .await
                .unwrap();
            assert_eq!(retry.base_offset, originals[29]);
            for sequence in 30..35 {
                log.append(producer_batch(11, 0, sequence * 2, 2), 0, true)
                    .await
                    .unwrap();
            }
            let end = log.log_end_offset();
            // A crash: no close, no snapshot at the end; rebuilt from the last roll's
            // snapshot plus a scan of the tail.
            drop(log);
            let log = Log::open(&path, small_config(), io.clone()).await.unwrap();
            assert_eq!(log.log_end_offset(), end);
            let retry = log
                .append(producer_batch(11, 0, 68, 2), 0, true)
                .await
                .unwrap();
            assert_eq!(retry.base_offset, end - 2);
            assert_eq!(log.log_end_offset(), end);
            let next = log
                .append(producer_batch(11, 0, 70, 2), 0, true)
                .await
                .unwrap();
            assert_eq!(next.base_offset, end);

            // Every snapshot lost: rebuilt by scanning the whole log.
            drop(log);
            for entry in std::fs::read_dir(&path).unwrap().flatten() {
                if entry.file_name().to_string_lossy().ends_with(".snapshot") {
                    std::fs::remove_file(entry.path()).unwrap();
                }
            }
            let log = Log::open(&path, small_config(), io.clone()).await.unwrap();
            let retry = log
                .append(producer_batch(11, 0, 70, 2), 0, true)
                .await
                .unwrap();
            assert_eq!(retry.base_offset, end);
            assert!(matches!(
                log.append(producer_batch(11, 0, 80, 2), 0, true).await,
                Err(StorageError::Producer(
                    ProducerError::OutOfOrderSequence { .. }
                ))
            ));
            // DeleteRecords past the producer's last batch forgets it.
            log.delete_records_before(-1).await.unwrap();
            assert!(log.producers().is_empty());
            log.close().await.unwrap();
        });
    }
}

#[test]
fn a_torn_snapshot_is_ignored() {
    run(async {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p-2");
        let io = driver(IoEngine::Auto);
        let log = Log::open(&path, small_config(), io.clone()).await.unwrap();
        for sequence in 0..5 {
            log.append(producer_batch(3, 0, sequence, 1), 0, true)
                .await
                .unwrap();
        }
        log.close().await.unwrap();
        let snapshot = path.join(format!("{:020}.snapshot", 5));
        let bytes = std::fs::read(&snapshot).unwrap();
        std::fs::write(&snapshot, &bytes[..bytes.len() - 3]).unwrap();
        let log = Log::open(&path, small_config(), io.clone()).await.unwrap();
        let retry = log
            .append(producer_batch(3, 0, 4, 1), 0, true)
            .await
            .unwrap();
        assert_eq!(retry.base_offset, 4);
        log.close().await.unwrap();
    });
}

#[test]
fn tiered_logs_delete_locally_only_what_is_remote() {
    for engine in ENGINES {
        run(async move {
            let dir = tempfile::tempdir().unwrap();
            let config = LogConfig {
                remote_storage: true,
                local_retention_bytes: 1,
                local_retention_ms: -1,
                ..small_config()
            };
            let log = Log::open(dir.path(), config, driver(engine)).await.unwrap();
            for i in 0..30 {
                log.append(batch(&format!("b{i}"), 10, 1_000), 1_000, true)
                    .await
                    .unwrap();
            }
            log.flush().await.unwrap();
            let sealed = log.sealed_segments();
            assert!(sealed.len() >= 3, "{engine:?}: {sealed:?}");
            assert!(sealed
                .windows(2)
                .all(|w| w[0].next_offset == w[1].base_offset));
            assert!(sealed
                .iter()
                .all(|s| s.index_file.exists() && s.log_file.exists()));

            // Nothing is remote yet: local retention deletes nothing.
            assert!(log.enforce_retention(2_000).await.unwrap().is_empty());
            assert_eq!(log.log_start_offset(), 0);

            // The first two segments are remote: exactly those go.
            log.set_remote_end_offset(sealed[1].next_offset);
            let deleted = log.enforce_retention(2_000).await.unwrap();
            assert_eq!(deleted, vec![sealed[0].base_offset, sealed[1].base_offset]);
            assert_eq!(log.log_start_offset(), sealed[1].next_offset);
            assert!(!sealed[0].log_file.exists());
            assert!(sealed[2].log_file.exists());
        });
    }
}

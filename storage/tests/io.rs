//! The I/O driver on both engines: many operations in flight (more than the ring holds),
//! futures dropped mid-flight, short reads at end of file.

use std::time::Duration;

use bytes::Bytes;
use tidelog_storage::{IoDriver, IoEngine};

fn run<F: std::future::Future>(future: F) -> F::Output {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    tokio::task::LocalSet::new().block_on(&runtime, future)
}

#[test]
fn many_writes_in_flight_and_dropped_futures() {
    for engine in [IoEngine::Portable, IoEngine::Uring] {
        run(async {
            let dir = tempfile::tempdir().unwrap();
            let io = IoDriver::new(engine).unwrap();
            let file = std::sync::Arc::new(
                std::fs::OpenOptions::new()
                    .read(true)
                    .write(true)
                    .create(true)
                    .truncate(true)
                    .open(dir.path().join("f"))
                    .unwrap(),
            );
            let block = 512usize;
            // More than the ring's 256 submission and 4096 completion entries.
            let count = 5_000usize;
            let mut tasks = Vec::new();
            for i in 0..count {
                let io = io.clone();
                let file = file.clone();
                tasks.push(tokio::task::spawn_local(async move {
                    let buf = Bytes::from(vec![(i % 251) as u8; block]);
                    io.write_at(&file, (i * block) as u64, buf).await.unwrap();
                }));
            }
            for task in tasks {
                task.await.unwrap();
            }
            io.fdatasync(&file).await.unwrap();
            // A read abandoned after its first poll must not disturb what follows.
            for _ in 0..20 {
                let _ =
                    tokio::time::timeout(Duration::ZERO, io.read_at(&file, 0, count * block)).await;
            }
            let all = io.read_at(&file, 0, count * block + 1000).await.unwrap();
            assert_eq!(all.len(), count * block, "short only at end of file");
            for i in 0..count {
                assert!(all[i * block..(i + 1) * block]
                    .iter()
                    .all(|&b| b == (i % 251) as u8));
            }
            let past_end = io
                .read_at(&file, (count * block) as u64 + 10, 100)
                .await
                .unwrap();
            assert!(past_end.is_empty());
        });
    }
}

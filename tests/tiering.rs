//! Tiered storage through the protocol, on the embedded `file://` store: sealed segments
//! leave the local disk once uploaded, and every offset still reads back, byte for byte,
//! from object storage. (The S3 tests, against a real S3-compatible server, are in
//! compat-tests/test_tiering.py.)

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::{now_ms, Broker, Deadline};
use kafka_protocol::messages::delete_topics_request::DeleteTopicState;
use kafka_protocol::messages::DeleteTopicsRequest;
use tidelog_bench::{build_batch, decode_batches, KafkaClient, NewRecord};

const TOPIC: &str = "cold";
const EARLIEST: i64 = -2;
const EARLIEST_LOCAL: i64 = -4;
const LATEST_TIERED: i64 = -5;

fn local_segments(broker: &Broker) -> Vec<String> {
    let dir = broker.data_dir().join(format!("{TOPIC}-0"));
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|name| name.ends_with(".log"))
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

fn remote_objects(root: &std::path::Path) -> Vec<String> {
    fn walk(dir: &std::path::Path, out: &mut Vec<String>) {
        if let Ok(entries) = std::fs::read_dir(dir) {
            for entry in entries.flatten() {
                let path = entry.path();
                if path.is_dir() {
                    walk(&path, out);
                } else {
                    out.push(path.to_string_lossy().into_owned());
                }
            }
        }
    }
    let mut out = Vec::new();
    walk(root, &mut out);
    out
}

async fn read_everything(client: &mut KafkaClient, from: i64) -> Vec<(i64, Vec<u8>)> {
    let mut records = Vec::new();
    let mut offset = from;
    loop {
        let data = client
            .fetch(TOPIC, 0, offset, 0, 0, 64 * 1024)
            .await
            .expect("Fetch answer");
        assert_eq!(data.error_code, 0, "fetch at {offset}");
        let batch = decode_batches(&data.records.clone().unwrap_or_default()).expect("batches");
        if batch.is_empty() {
            assert_eq!(offset, data.high_watermark, "read to the high watermark");
            return records;
        }
        for record in batch {
            if record.offset >= offset {
                records.push((
                    record.offset,
                    record.value.clone().unwrap_or_default().to_vec(),
                ));
            }
        }
        offset = records.last().map_or(offset, |r| r.0 + 1);
    }
}

#[tokio::test]
async fn sealed_segments_move_to_the_object_store_and_read_back() {
    let data = tempfile::TempDir::new().unwrap();
    let remote = tempfile::TempDir::new().unwrap();
    let url = format!("file://{}", remote.path().display());
    let broker = Broker::start_in(
        data,
        2,
        &["--tier-url", &url, "--tier-upload-interval-ms", "100"],
    );
    let mut client = broker.client().await;
    let created = client
        .create_topic(
            TOPIC,
            1,
            &[
                ("remote.storage.enable", "true"),
                ("segment.bytes", "8192"),
                ("local.retention.bytes", "1"),
            ],
        )
        .await
        .unwrap();
    assert_eq!(created.error_code, 0, "{:?}", created.error_message);

    // 200 batches of 3 records, ~1 KiB each: dozens of 8 KiB segments.
    let mut expected = Vec::new();
    for i in 0..200 {
        let values: Vec<Vec<u8>> = (0..3)
            .map(|j| format!("value-{i}-{j}-{}", "x".repeat(300)).into_bytes())
            .collect();
        let records: Vec<NewRecord> = values
            .iter()
            .map(|v| NewRecord {
                key: None,
                value: Some(Bytes::from(v.clone())),
                headers: Vec::new(),
                timestamp_delta_ms: 0,
            })
            .collect();
        let batch = build_batch(&records, now_ms());
        client
            .produce_acked(TOPIC, 0, batch, -1)
            .await
            .expect("produce");
        expected.extend(values);
    }

    let deadline = Deadline::new(Duration::from_secs(60), "sealed segments to leave the disk");
    loop {
        let local = local_segments(&broker);
        let earliest_local = client.list_offsets(TOPIC, 0, EARLIEST_LOCAL).await.unwrap();
        if local.len() <= 2 && earliest_local.offset > 0 {
            break;
        }
        deadline.tick().await;
    }
    let objects = remote_objects(remote.path());
    assert!(
        objects.iter().any(|o| o.ends_with("manifest.json")),
        "{objects:?}"
    );
    assert!(
        objects.iter().filter(|o| o.ends_with(".log")).count() > 10,
        "{objects:?}"
    );

    let earliest = client.list_offsets(TOPIC, 0, EARLIEST).await.unwrap();
    let earliest_local = client.list_offsets(TOPIC, 0, EARLIEST_LOCAL).await.unwrap();
    let latest_tiered = client.list_offsets(TOPIC, 0, LATEST_TIERED).await.unwrap();
    assert_eq!(earliest.offset, 0, "earliest counts remote data");
    assert!(
        earliest_local.offset > 0,
        "earliest-local is past the uploaded segments"
    );
    assert!(latest_tiered.offset >= earliest_local.offset - 1);

    let got = read_everything(&mut client, 0).await;
    assert_eq!(got.len(), expected.len());
    for (i, (offset, value)) in got.iter().enumerate() {
        assert_eq!(*offset, i as i64, "offsets are dense");
        assert_eq!(value, &expected[i], "record {i} reads back byte for byte");
    }
    // A read starting in the middle of a remote segment.
    let middle = read_everything(&mut client, 301).await;
    assert_eq!(middle.first().map(|r| r.0), Some(301));

    // Restart: the manifest is the truth, remote data still reads back.
    drop(client);
    let data = broker.stop_and_keep_data();
    let broker = Broker::start_in(data, 2, &["--tier-url", &url]);
    let mut client = broker.client().await;
    assert_eq!(
        client
            .list_offsets(TOPIC, 0, EARLIEST)
            .await
            .unwrap()
            .offset,
        0
    );
    assert_eq!(read_everything(&mut client, 0).await.len(), expected.len());

    // Deleting the topic deletes its remote objects.
    let request = DeleteTopicsRequest::default()
        .with_topics(vec![
            DeleteTopicState::default().with_name(Some(tidelog_bench::topic_name(TOPIC)))
        ])
        .with_timeout_ms(30_000);
    let deleted = client.send(6, request).await.expect("DeleteTopics");
    assert_eq!(deleted.responses[0].error_code, 0);
    let deadline = Deadline::new(Duration::from_secs(30), "remote objects to be deleted");
    while remote_objects(remote.path())
        .iter()
        .any(|o| o.contains("cold-"))
    {
        deadline.tick().await;
    }
    broker.stop();
}

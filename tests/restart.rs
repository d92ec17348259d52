//! Data and topic identity survive a clean restart on the same data directory.

mod common;

use common::{create_topic, now_ms, Broker};
use tidelog_bench::{build_batch, decode_batches, FetchedRecord, KafkaClient, NewRecord};

const PARTITIONS: i32 = 3;

async fn fetch_partition_all(
    client: &mut KafkaClient,
    topic: &str,
    partition: i32,
) -> (i64, Vec<FetchedRecord>) {
    let mut records = Vec::new();
    let mut offset = 0;
    loop {
        let data = client
            .fetch(topic, partition, offset, 0, 0, 8 * 1024 * 1024)
            .await
            .expect("Fetch answer");
        assert_eq!(data.error_code, 0, "{topic}-{partition} at {offset}");
        let batch = decode_batches(&data.records.clone().unwrap_or_default()).unwrap();
        if batch.is_empty() {
            return (data.high_watermark, records);
        }
        offset = batch.last().unwrap().offset + 1;
        records.extend(batch);
    }
}

async fn topic_ids(client: &mut KafkaClient) -> Vec<(String, String)> {
    let metadata = client.metadata(Some(&["kept", "also-kept"])).await.unwrap();
    let mut ids: Vec<(String, String)> = metadata
        .topics
        .iter()
        .map(|t| {
            assert_eq!(t.error_code, 0);
            (
                t.name.as_ref().map(|n| n.to_string()).unwrap_or_default(),
                t.topic_id.to_string(),
            )
        })
        .collect();
    ids.sort();
    ids
}

#[tokio::test]
async fn records_offsets_and_topic_ids_survive_restart() {
    let broker = Broker::start(2);
    let mut client = broker.client().await;
    create_topic(&mut client, "kept", PARTITIONS).await;
    create_topic(&mut client, "also-kept", 1).await;

    for round in 0..4 {
        for partition in 0..PARTITIONS {
            let records: Vec<NewRecord> = (0..5)
                .map(|i| {
                    NewRecord::value(format!("p{partition}-r{round}-{i}"))
                        .with_key(format!("k{i}"))
                        .with_header("round", Some(round.to_string().into()))
                })
                .collect();
            let response = client
                .produce_acked("kept", partition, build_batch(&records, now_ms()), -1)
                .await
                .unwrap();
            assert_eq!(response.error_code, 0);
        }
    }
    let ids_before = topic_ids(&mut client).await;
    assert_eq!(ids_before.len(), 2);
    assert!(ids_before
        .iter()
        .all(|(_, id)| id != "00000000-0000-0000-0000-000000000000"));
    let mut before = Vec::new();
    for partition in 0..PARTITIONS {
        before.push(fetch_partition_all(&mut client, "kept", partition).await);
    }
    drop(client);

    let data_dir = broker.stop_and_keep_data();
    let broker = Broker::start_in(data_dir, 2, &[]);
    let mut client = broker.client().await;

    assert_eq!(
        topic_ids(&mut client).await,
        ids_before,
        "topic ids after restart"
    );
    for partition in 0..PARTITIONS {
        let after = fetch_partition_all(&mut client, "kept", partition).await;
        assert_eq!(after.0, 20, "high watermark of partition {partition}");
        assert_eq!(
            after, before[partition as usize],
            "records of partition {partition}"
        );
    }
    // Appends continue after the recovered end.
    let response = client
        .produce_acked(
            "kept",
            0,
            build_batch(&[NewRecord::value("after")], now_ms()),
            -1,
        )
        .await
        .unwrap();
    assert_eq!(response.error_code, 0);
    assert_eq!(response.base_offset, 20);
    broker.stop();
}

//! One connection talking to partitions owned by different shards: a single Produce and a single
//! Fetch that span all of them.

mod common;

use std::collections::BTreeMap;

use common::{create_topic, now_ms, Broker};
use tidelog_bench::{build_batch, decode_batches, fetch_partition, produce_partition, NewRecord};

const PARTITIONS: i32 = 8;
const ROUNDS: usize = 3;

fn record(partition: i32, round: usize, index: usize) -> NewRecord {
    NewRecord::value(format!("p{partition}-r{round}-i{index}")).with_key(format!("key-{partition}"))
}

#[tokio::test]
async fn one_connection_produces_and_fetches_across_shards() {
    let broker = Broker::start(2);
    let mut client = broker.client().await;
    create_topic(&mut client, "spread", PARTITIONS).await;

    let metadata = client.metadata(Some(&["spread"])).await.unwrap();
    assert_eq!(metadata.topics[0].partitions.len(), PARTITIONS as usize);

    // Partition p gets p + 1 records per round, so offsets differ between partitions.
    let mut sent: BTreeMap<i32, Vec<NewRecord>> = BTreeMap::new();
    for round in 0..ROUNDS {
        let mut entries = Vec::new();
        for partition in 0..PARTITIONS {
            let records: Vec<NewRecord> = (0..=partition as usize)
                .map(|index| record(partition, round, index))
                .collect();
            entries.push(("spread", partition, build_batch(&records, now_ms())));
            sent.entry(partition).or_default().extend(records);
        }
        let response = client
            .produce_many(&entries, -1)
            .await
            .unwrap()
            .expect("acks=-1 answers");
        for partition in 0..PARTITIONS {
            let result = produce_partition(&response, "spread", partition).unwrap();
            assert_eq!(result.error_code, 0, "partition {partition} round {round}");
            assert_eq!(
                result.base_offset,
                (round * (partition as usize + 1)) as i64,
                "base offset of partition {partition} in round {round}"
            );
        }
    }

    let entries: Vec<(&str, i32, i64)> = (0..PARTITIONS).map(|p| ("spread", p, 0)).collect();
    let response = client
        .fetch_many(&entries, 0, 0, 16 * 1024 * 1024)
        .await
        .unwrap();
    for (partition, want) in &sent {
        let data = fetch_partition(&response, "spread", *partition).unwrap();
        assert_eq!(data.error_code, 0, "partition {partition}");
        assert_eq!(
            data.high_watermark,
            want.len() as i64,
            "partition {partition}"
        );
        let got = decode_batches(&data.records.clone().unwrap_or_default()).unwrap();
        let offsets: Vec<i64> = got.iter().map(|r| r.offset).collect();
        let dense: Vec<i64> = (0..want.len() as i64).collect();
        assert_eq!(offsets, dense, "offsets of partition {partition}");
        let values: Vec<_> = got.iter().map(|r| r.value.clone()).collect();
        let want_values: Vec<_> = want.iter().map(|r| r.value.clone()).collect();
        assert_eq!(values, want_values, "records of partition {partition}");
    }
    broker.stop();
}

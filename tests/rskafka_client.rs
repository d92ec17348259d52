//! A pure-Rust Kafka client, rskafka 0.6, against the broker: topic creation, produce with each
//! compression codec, fetch back with offsets, keys, values, headers and timestamps, ListOffsets.

mod common;

use std::collections::BTreeMap;

use chrono::{TimeZone, Utc};
use common::Broker;
use rskafka::client::partition::{Compression, OffsetAt, UnknownTopicHandling};
use rskafka::client::ClientBuilder;
use rskafka::record::Record;

/// Record timestamps start an hour ago (recent, so time retention keeps them).
fn base_ms() -> i64 {
    static BASE: std::sync::OnceLock<i64> = std::sync::OnceLock::new();
    *BASE.get_or_init(|| (Utc::now().timestamp() - 3600) * 1000)
}

fn record(i: i64) -> Record {
    Record {
        key: Some(format!("key-{i}").into_bytes()),
        value: (i % 5 != 4).then(|| format!("value-{i}").into_bytes()),
        headers: BTreeMap::from([("n".to_string(), i.to_string().into_bytes())]),
        timestamp: Utc.timestamp_millis_opt(base_ms() + i).unwrap(),
    }
}

#[tokio::test]
async fn rskafka_produces_and_fetches_with_every_codec() {
    let broker = Broker::start(2);
    let client = ClientBuilder::new(vec![broker.addr.clone()])
        .build()
        .await
        .expect("rskafka connects");
    let controller = client.controller_client().expect("controller client");
    controller
        .create_topic("rs", 2, 1, 5_000)
        .await
        .expect("create topic");
    let topics = client.list_topics().await.unwrap();
    let topic = topics
        .iter()
        .find(|t| t.name == "rs")
        .expect("topic listed");
    assert_eq!(topic.partitions.len(), 2);

    let partition = client
        .partition_client("rs", 1, UnknownTopicHandling::Retry)
        .await
        .unwrap();
    let codecs = [
        Compression::NoCompression,
        Compression::Gzip,
        Compression::Lz4,
        Compression::Snappy,
        Compression::Zstd,
    ];
    let mut next = 0i64;
    for codec in codecs {
        let records: Vec<Record> = (next..next + 10).map(record).collect();
        let offsets = partition.produce(records, codec).await.unwrap();
        assert_eq!(offsets, (next..next + 10).collect::<Vec<_>>(), "{codec:?}");
        next += 10;
    }

    let mut fetched = Vec::new();
    while fetched.len() < 50 {
        let (batch, high_watermark) = partition
            .fetch_records(fetched.len() as i64, 1..1_000_000, 1_000)
            .await
            .unwrap();
        assert_eq!(high_watermark, 50);
        fetched.extend(batch);
    }
    for (i, got) in fetched.iter().enumerate() {
        assert_eq!(got.offset, i as i64);
        assert_eq!(got.record, record(i as i64));
    }
    assert_eq!(partition.get_offset(OffsetAt::Earliest).await.unwrap(), 0);
    assert_eq!(partition.get_offset(OffsetAt::Latest).await.unwrap(), 50);
    let by_time = partition
        .get_offset(OffsetAt::Timestamp(
            Utc.timestamp_millis_opt(base_ms() + 7).unwrap(),
        ))
        .await
        .unwrap();
    assert_eq!(by_time, 7);
    broker.stop();
}

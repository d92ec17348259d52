//! Produce, Fetch and ListOffsets as a client relies on them: offsets, records, watermarks,
//! long polls, out-of-range fetches and pipelined requests.

mod common;

use std::time::{Duration, Instant};

use bytes::Bytes;
use common::{create_topic, now_ms, Broker, Deadline};
use kafka_protocol::messages::api_versions_request::ApiVersionsRequest;
use kafka_protocol::messages::fetch_request::FetchRequest;
use kafka_protocol::messages::produce_request::ProduceRequest;
use kafka_protocol::messages::ApiKey;
use tidelog_bench::{
    build_batch, decode_batches, error_code, fetch_partition, list_offsets_timestamp,
    produce_partition, FetchedRecord, KafkaClient, NewRecord,
};

const FETCH_MAX_BYTES: i32 = 8 * 1024 * 1024;

fn records_for(prefix: &str, count: usize) -> Vec<NewRecord> {
    (0..count)
        .map(|i| {
            NewRecord::value(format!("{prefix}-value-{i}"))
                .with_key(format!("{prefix}-key-{i}"))
                .with_header("seq", Some(Bytes::from(i.to_string())))
                .with_header("null-valued", None)
                .with_timestamp_delta_ms(i as i64)
        })
        .collect()
}

/// Fetches from `offset` until the high watermark, returning all records.
async fn fetch_all(client: &mut KafkaClient, topic: &str, partition: i32) -> Vec<FetchedRecord> {
    let mut records = Vec::new();
    let mut offset = 0;
    loop {
        let data = client
            .fetch(topic, partition, offset, 0, 0, FETCH_MAX_BYTES)
            .await
            .expect("Fetch answer");
        assert_eq!(data.error_code, 0, "fetch {topic}-{partition} at {offset}");
        let bytes = data.records.clone().unwrap_or_default();
        let batch = decode_batches(&bytes).expect("valid batches");
        if batch.is_empty() {
            assert_eq!(
                offset, data.high_watermark,
                "fetch returned nothing below the high watermark"
            );
            return records;
        }
        offset = batch.last().unwrap().offset + 1;
        records.extend(batch);
    }
}

fn assert_records_match(fetched: &[FetchedRecord], sent: &[NewRecord], base_timestamps: &[i64]) {
    assert_eq!(fetched.len(), sent.len(), "record count");
    for (i, (got, want)) in fetched.iter().zip(sent).enumerate() {
        assert_eq!(got.offset, i as i64, "offsets are dense from 0");
        assert_eq!(got.key, want.key, "key at offset {i}");
        assert_eq!(got.value, want.value, "value at offset {i}");
        assert_eq!(got.headers, want.headers, "headers at offset {i}");
        assert_eq!(
            got.timestamp,
            base_timestamps[i] + want.timestamp_delta_ms,
            "timestamp at offset {i}"
        );
    }
}

#[tokio::test]
async fn produce_with_each_acks_setting_then_fetch_back() {
    let broker = Broker::start(1);
    let mut client = broker.client().await;
    create_topic(&mut client, "acks", 1).await;

    let mut sent = Vec::new();
    let mut base_timestamps = Vec::new();
    let base_timestamp = now_ms();

    // acks=1 then acks=-1: base offsets follow each other.
    for (round, acks) in [(0usize, 1i16), (1, -1)] {
        let records = records_for(&format!("acks{acks}"), 5);
        let response = client
            .produce_acked("acks", 0, build_batch(&records, base_timestamp), acks)
            .await
            .expect("Produce answer");
        assert_eq!(response.error_code, 0, "acks={acks}");
        assert_eq!(
            response.base_offset,
            (round * 5) as i64,
            "base offset with acks={acks}"
        );
        base_timestamps.extend(std::iter::repeat_n(base_timestamp, records.len()));
        sent.extend(records);
    }

    // acks=0: no response; poll the log end until the batch is visible.
    let records = records_for("acks0", 3);
    let none = client
        .produce("acks", 0, build_batch(&records, base_timestamp), 0)
        .await
        .expect("write acks=0 produce");
    assert!(none.is_none());
    base_timestamps.extend(std::iter::repeat_n(base_timestamp, records.len()));
    sent.extend(records);
    let deadline = Deadline::new(Duration::from_secs(10), "acks=0 batch to land");
    while client.list_offsets("acks", 0, -1).await.unwrap().offset != 13 {
        deadline.tick().await;
    }

    // A later acks=-1 batch lands after the acks=0 one.
    let records = records_for("after", 2);
    let response = client
        .produce_acked("acks", 0, build_batch(&records, base_timestamp), -1)
        .await
        .unwrap();
    assert_eq!(response.error_code, 0);
    assert_eq!(response.base_offset, 13);
    base_timestamps.extend(std::iter::repeat_n(base_timestamp, records.len()));
    sent.extend(records);

    let data = client
        .fetch("acks", 0, 0, 0, 0, FETCH_MAX_BYTES)
        .await
        .unwrap();
    assert_eq!(data.error_code, 0);
    assert_eq!(data.high_watermark, 15, "high watermark");
    assert_eq!(
        data.last_stable_offset, 15,
        "last stable offset without transactions"
    );
    assert_eq!(data.log_start_offset, 0, "log start offset");

    let fetched = fetch_all(&mut client, "acks", 0).await;
    assert_records_match(&fetched, &sent, &base_timestamps);

    // A fetch from the middle starts at (or, batch-aligned, before) the asked offset.
    let data = client
        .fetch("acks", 0, 7, 0, 0, FETCH_MAX_BYTES)
        .await
        .unwrap();
    let from_middle = decode_batches(&data.records.unwrap_or_default()).unwrap();
    let first_wanted = from_middle
        .iter()
        .find(|r| r.offset == 7)
        .expect("offset 7 present");
    assert_eq!(first_wanted.value, sent[7].value);
    broker.stop();
}

#[tokio::test]
async fn fetch_waits_for_data_and_wakes_on_produce() {
    let broker = Broker::start(1);
    let mut client = broker.client().await;
    create_topic(&mut client, "poll", 1).await;
    let response = client
        .produce_acked(
            "poll",
            0,
            build_batch(&records_for("first", 1), now_ms()),
            -1,
        )
        .await
        .unwrap();
    assert_eq!(response.error_code, 0);

    // With nothing new, the broker holds a fetch for max_wait_ms, then answers empty.
    let started = Instant::now();
    let data = client
        .fetch("poll", 0, 1, 500, 1, FETCH_MAX_BYTES)
        .await
        .unwrap();
    let waited = started.elapsed();
    assert_eq!(data.error_code, 0);
    assert!(decode_batches(&data.records.unwrap_or_default())
        .unwrap()
        .is_empty());
    assert!(
        waited >= Duration::from_millis(400),
        "empty fetch answered after {waited:?}, before max_wait_ms=500"
    );
    assert!(
        waited < Duration::from_secs(5),
        "empty fetch held for {waited:?}"
    );

    // A long poll at the log end returns as soon as another connection produces.
    let addr = broker.addr.clone();
    let waiter = tokio::spawn(async move {
        let mut consumer = KafkaClient::connect(&addr).await.unwrap();
        consumer.api_versions().await.unwrap();
        let started = Instant::now();
        let data = consumer
            .fetch("poll", 0, 1, 10_000, 1, FETCH_MAX_BYTES)
            .await
            .unwrap();
        (data, started.elapsed())
    });
    // Give the fetch time to be parked; if it arrives after the produce it returns at once,
    // which satisfies the same assertions.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let produced_at = Instant::now();
    let records = records_for("second", 2);
    let response = client
        .produce_acked("poll", 0, build_batch(&records, now_ms()), -1)
        .await
        .unwrap();
    assert_eq!(response.error_code, 0);
    assert_eq!(response.base_offset, 1);
    let (data, fetch_elapsed) = tokio::time::timeout(Duration::from_secs(15), waiter)
        .await
        .expect("long poll answered")
        .unwrap();
    let after_produce = produced_at.elapsed();
    assert!(
        fetch_elapsed < Duration::from_secs(5) && after_produce < Duration::from_secs(3),
        "long poll took {fetch_elapsed:?} ({after_produce:?} after the produce) with max_wait_ms=10000"
    );
    assert_eq!(data.error_code, 0);
    assert_eq!(data.high_watermark, 3);
    let fetched = decode_batches(&data.records.unwrap_or_default()).unwrap();
    let values: Vec<_> = fetched
        .iter()
        .filter(|r| r.offset >= 1)
        .map(|r| r.value.clone())
        .collect();
    assert_eq!(
        values,
        vec![records[0].value.clone(), records[1].value.clone()]
    );
    broker.stop();
}

#[tokio::test]
async fn fetch_beyond_log_end_is_offset_out_of_range() {
    let broker = Broker::start(1);
    let mut client = broker.client().await;
    create_topic(&mut client, "range", 1).await;
    client
        .produce_acked("range", 0, build_batch(&records_for("r", 3), now_ms()), -1)
        .await
        .unwrap();
    // At the log end: empty, no error.
    let data = client
        .fetch("range", 0, 3, 0, 0, FETCH_MAX_BYTES)
        .await
        .unwrap();
    assert_eq!(data.error_code, 0, "fetch at the high watermark");
    // Beyond it: OFFSET_OUT_OF_RANGE, promptly even with a long max wait.
    let started = Instant::now();
    let data = client
        .fetch("range", 0, 13, 5_000, 1, FETCH_MAX_BYTES)
        .await
        .unwrap();
    assert_eq!(data.error_code, error_code::OFFSET_OUT_OF_RANGE);
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "out-of-range fetch was held"
    );
    // Negative offsets are out of range too.
    let data = client
        .fetch("range", 0, -5, 0, 0, FETCH_MAX_BYTES)
        .await
        .unwrap();
    assert_eq!(data.error_code, error_code::OFFSET_OUT_OF_RANGE);
    broker.stop();
}

#[tokio::test]
async fn list_offsets_special_timestamps_and_by_time() {
    let broker = Broker::start(1);
    let mut client = broker.client().await;
    create_topic(&mut client, "times", 1).await;

    // Empty partition: earliest = latest = 0.
    let earliest = client
        .list_offsets("times", 0, list_offsets_timestamp::EARLIEST)
        .await
        .unwrap();
    let latest = client
        .list_offsets("times", 0, list_offsets_timestamp::LATEST)
        .await
        .unwrap();
    assert_eq!((earliest.error_code, earliest.offset), (0, 0));
    assert_eq!((latest.error_code, latest.offset), (0, 0));

    // Three batches of two records, one second apart: offsets 0..6.
    let t0 = now_ms() - 60_000;
    for i in 0..3i64 {
        let records = vec![
            NewRecord::value(format!("b{i}r0")),
            NewRecord::value(format!("b{i}r1")).with_timestamp_delta_ms(10),
        ];
        let response = client
            .produce_acked("times", 0, build_batch(&records, t0 + i * 1000), -1)
            .await
            .unwrap();
        assert_eq!(response.error_code, 0);
    }

    let earliest = client
        .list_offsets("times", 0, list_offsets_timestamp::EARLIEST)
        .await
        .unwrap();
    assert_eq!((earliest.error_code, earliest.offset), (0, 0), "earliest");
    let latest = client
        .list_offsets("times", 0, list_offsets_timestamp::LATEST)
        .await
        .unwrap();
    assert_eq!((latest.error_code, latest.offset), (0, 6), "latest");
    let max = client
        .list_offsets("times", 0, list_offsets_timestamp::MAX_TIMESTAMP)
        .await
        .unwrap();
    assert_eq!(max.error_code, 0);
    assert_eq!(
        (max.offset, max.timestamp),
        (5, t0 + 2010),
        "max timestamp record"
    );

    // By time: the first offset whose timestamp is >= the target.
    for (target, offset, timestamp) in [
        (t0 - 5000, 0, t0),
        (t0, 0, t0),
        (t0 + 5, 1, t0 + 10),
        (t0 + 500, 2, t0 + 1000),
        (t0 + 1000, 2, t0 + 1000),
        (t0 + 2010, 5, t0 + 2010),
    ] {
        let found = client.list_offsets("times", 0, target).await.unwrap();
        assert_eq!(found.error_code, 0);
        assert_eq!(
            (found.offset, found.timestamp),
            (offset, timestamp),
            "ListOffsets for timestamp t0{:+}",
            target - t0
        );
    }
    // Past every record: offset -1, as Kafka answers.
    let none = client.list_offsets("times", 0, t0 + 10_000).await.unwrap();
    assert_eq!(none.error_code, 0);
    assert_eq!(none.offset, -1, "no record at or after the timestamp");

    let unknown = client
        .list_offsets("times", 5, list_offsets_timestamp::LATEST)
        .await
        .unwrap();
    assert_eq!(unknown.error_code, error_code::UNKNOWN_TOPIC_OR_PARTITION);
    broker.stop();
}

#[tokio::test]
async fn pipelined_requests_are_answered_in_order() {
    let broker = Broker::start(1);
    let mut client = broker.client().await;
    create_topic(&mut client, "pipe", 1).await;
    let produce_version = client.version_for(ApiKey::Produce).await.unwrap();
    let fetch_version = client.version_for(ApiKey::Fetch).await.unwrap();

    const ROUNDS: usize = 6;
    const RECORDS_PER_BATCH: usize = 4;
    let mut correlation_ids = Vec::new();
    let mut sent = Vec::new();
    for round in 0..ROUNDS {
        let records = records_for(&format!("round{round}"), RECORDS_PER_BATCH);
        let batch = build_batch(&records, now_ms());
        sent.extend(records);
        let produce = KafkaClient::produce_request(&[("pipe", 0, batch)], -1);
        correlation_ids.push(
            client
                .write_pipelined(produce_version, &produce)
                .await
                .unwrap(),
        );
        let fetch = KafkaClient::fetch_request(&[("pipe", 0, 0)], 0, 0, FETCH_MAX_BYTES);
        correlation_ids.push(client.write_pipelined(fetch_version, &fetch).await.unwrap());
    }
    correlation_ids.push(
        client
            .write_pipelined(3, &ApiVersionsRequest::default())
            .await
            .unwrap(),
    );
    assert!(correlation_ids.windows(2).all(|w| w[0] < w[1]));

    // read_pipelined checks each response's correlation id against the oldest request.
    for round in 0..ROUNDS {
        let produced = client
            .read_pipelined::<ProduceRequest>(produce_version)
            .await
            .unwrap();
        let partition = produce_partition(&produced, "pipe", 0).unwrap();
        assert_eq!(partition.error_code, 0);
        assert_eq!(
            partition.base_offset,
            (round * RECORDS_PER_BATCH) as i64,
            "round {round}"
        );

        // Kafka's protocol guide: "the server guarantees that on a single TCP connection,
        // requests will be processed in the order they are sent and responses will return in
        // that order as well". So this fetch, written after an acks=-1 produce, sees it.
        let fetched = client
            .read_pipelined::<FetchRequest>(fetch_version)
            .await
            .unwrap();
        let partition = fetch_partition(&fetched, "pipe", 0).unwrap();
        assert_eq!(partition.error_code, 0);
        let expected_end = ((round + 1) * RECORDS_PER_BATCH) as i64;
        assert_eq!(
            partition.high_watermark, expected_end,
            "round {round}: high watermark seen by the fetch pipelined after the produce"
        );
        let records = decode_batches(&partition.records.clone().unwrap_or_default()).unwrap();
        assert_eq!(records.len() as i64, expected_end, "round {round}");
    }
    let versions = client
        .read_pipelined::<ApiVersionsRequest>(3)
        .await
        .unwrap();
    assert_eq!(versions.error_code, 0);

    let all = fetch_all(&mut client, "pipe", 0).await;
    let values: Vec<_> = all.iter().map(|r| r.value.clone()).collect();
    let expected: Vec<_> = sent.iter().map(|r| r.value.clone()).collect();
    assert_eq!(values, expected);
    broker.stop();
}

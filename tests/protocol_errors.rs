//! Malformed and hostile input: the broker answers as Kafka does or closes the connection, and
//! stays up for everyone else.

mod common;

use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use common::{assert_broker_healthy, create_topic, now_ms, Broker};
use tidelog_bench::{batch_layout, build_batch, error_code, NewRecord};

const CLOSE_TIMEOUT: Duration = Duration::from_secs(10);

/// xorshift64*: deterministic bytes without a dependency; the seed is printed on failure.
struct Xorshift(u64);

impl Xorshift {
    fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn bytes(&mut self, count: usize) -> Vec<u8> {
        (0..count).map(|_| self.next_u64() as u8).collect()
    }
}

#[tokio::test]
async fn random_bytes_close_the_connection_and_the_broker_survives() {
    let broker = Broker::start(1);
    for seed in 1..=40u64 {
        let mut random = Xorshift(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15));
        let mut client = broker.client().await;
        let payload = if seed % 2 == 0 {
            // Pure noise, length prefix included.
            let count = 1 + (random.next_u64() % 300) as usize;
            random.bytes(count)
        } else {
            // A well-formed frame around a known API key and a random version with a noise body,
            // so request decoders see garbage.
            let body_bytes = (random.next_u64() % 300) as usize;
            let mut frame = BytesMut::new();
            frame.put_i32(8 + body_bytes as i32);
            frame.put_i16((random.next_u64() % 70) as i16);
            frame.put_i16((random.next_u64() % 20) as i16);
            frame.put_i32(seed as i32);
            frame.put_slice(&random.bytes(body_bytes));
            frame.to_vec()
        };
        client.send_raw(&payload).await.unwrap();
        client.shutdown_write().await.unwrap();
        if let Err(e) = client.expect_closed(CLOSE_TIMEOUT).await {
            panic!("seed {seed}: {e:#}");
        }
    }
    assert_broker_healthy(&broker).await;
    broker.stop();
}

#[tokio::test]
async fn truncated_frame_then_close_leaves_the_broker_up() {
    let broker = Broker::start(1);
    let mut client = broker.client().await;
    let mut frame = BytesMut::new();
    frame.put_i32(100);
    frame.put_i16(18); // ApiVersions
    frame.put_i16(0);
    frame.put_i32(1);
    frame.put_slice(&[0u8; 12]);
    client.send_raw(&frame).await.unwrap();
    client.shutdown_write().await.unwrap();
    let received = client.expect_closed(CLOSE_TIMEOUT).await.unwrap();
    assert!(
        received.is_empty(),
        "answer to a truncated frame: {received:?}"
    );
    assert_broker_healthy(&broker).await;
    broker.stop();
}

#[tokio::test]
async fn frame_claiming_two_gib_is_refused_without_reading_it() {
    let broker = Broker::start(1);
    let mut client = broker.client().await;
    let mut frame = BytesMut::new();
    frame.put_i32(0x7fff_fff0);
    frame.put_i16(0); // Produce
    frame.put_i16(9);
    frame.put_i32(1);
    frame.put_slice(&[0u8; 64]);
    client.send_raw(&frame).await.unwrap();
    // The write half stays open: the broker must close on the length alone.
    let received = client.expect_closed(CLOSE_TIMEOUT).await.unwrap();
    assert!(
        received.is_empty(),
        "answer to an oversized frame: {received:?}"
    );
    assert_broker_healthy(&broker).await;
    broker.stop();
}

#[tokio::test]
async fn api_versions_with_unsupported_version_answers_v0_layout() {
    let broker = Broker::start(1);
    let mut client = broker.client().await;
    let correlation_id = 0x1234_5678;
    let mut frame = BytesMut::new();
    frame.put_i32(0); // length, patched below
                      // Request header v2.
    frame.put_i16(18); // ApiVersions
    frame.put_i16(99);
    frame.put_i32(correlation_id);
    frame.put_i16(4);
    frame.put_slice(b"test");
    frame.put_u8(0); // no tagged fields
                     // An ApiVersions v3-shaped body: compact strings + tagged fields.
    frame.put_u8(5);
    frame.put_slice(b"test");
    frame.put_u8(2);
    frame.put_slice(b"1");
    frame.put_u8(0);
    let body_bytes = frame.len() as i32 - 4;
    frame[..4].copy_from_slice(&body_bytes.to_be_bytes());
    client.send_raw(&frame).await.unwrap();

    let response = tokio::time::timeout(CLOSE_TIMEOUT, client.read_raw_frame())
        .await
        .expect("answer within 10 s")
        .expect("a response frame");
    // Response header v0: correlation id only.
    assert!(response.len() >= 10, "response too short: {response:?}");
    assert_eq!(
        i32::from_be_bytes(response[0..4].try_into().unwrap()),
        correlation_id
    );
    assert_eq!(
        i16::from_be_bytes(response[4..6].try_into().unwrap()),
        error_code::UNSUPPORTED_VERSION
    );
    let api_count = i32::from_be_bytes(response[6..10].try_into().unwrap());
    assert!(api_count > 0, "api count {api_count}");
    assert_eq!(
        response.len(),
        10 + 6 * api_count as usize,
        "v0 layout is header, error code, then {api_count} (key, min, max) triples and nothing else"
    );
    let triples: Vec<(i16, i16, i16)> = response[10..]
        .chunks_exact(6)
        .map(|c| {
            (
                i16::from_be_bytes([c[0], c[1]]),
                i16::from_be_bytes([c[2], c[3]]),
                i16::from_be_bytes([c[4], c[5]]),
            )
        })
        .collect();
    let api_versions = triples
        .iter()
        .find(|(key, _, _)| *key == 18)
        .expect("ApiVersions is listed");
    assert!(
        api_versions.1 == 0 && api_versions.2 >= 3,
        "ApiVersions range {api_versions:?}"
    );
    for (key, min, max) in &triples {
        assert!(min <= max, "api {key} range {min}..={max}");
    }

    // The same connection keeps working: a client retries with a version it saw.
    let versions = client
        .api_versions()
        .await
        .expect("ApiVersions after the retry");
    assert_eq!(versions.error_code, 0);
    assert_broker_healthy(&broker).await;
    broker.stop();
}

#[tokio::test]
async fn unknown_api_key_closes_the_connection() {
    let broker = Broker::start(1);
    let mut client = broker.client().await;
    let mut frame = BytesMut::new();
    frame.put_i32(10);
    frame.put_i16(9999);
    frame.put_i16(0);
    frame.put_i32(7);
    frame.put_i16(-1); // null client id
    client.send_raw(&frame).await.unwrap();
    let received = client.expect_closed(CLOSE_TIMEOUT).await.unwrap();
    assert!(
        received.is_empty(),
        "answer to an unknown API key: {received:?}"
    );
    assert_broker_healthy(&broker).await;
    broker.stop();
}

#[tokio::test]
async fn produce_with_corrupted_crc_gets_corrupt_message() {
    let broker = Broker::start(1);
    let mut client = broker.client().await;
    create_topic(&mut client, "crc", 1).await;
    let batch = build_batch(
        &[
            NewRecord::value("payload-one"),
            NewRecord::value("payload-two"),
        ],
        now_ms(),
    );
    let mut corrupted = batch.to_vec();
    let last = corrupted.len() - 1;
    corrupted[last] ^= 0xff; // a value byte; the stored CRC no longer matches
    let response = client
        .produce_acked("crc", 0, Bytes::from(corrupted), -1)
        .await
        .expect("Produce answer");
    assert_eq!(response.error_code, error_code::CORRUPT_MESSAGE);

    let mut crc_flipped = batch.to_vec();
    crc_flipped[batch_layout::CRC] ^= 0x01;
    let response = client
        .produce_acked("crc", 0, Bytes::from(crc_flipped), -1)
        .await
        .expect("Produce answer");
    assert_eq!(response.error_code, error_code::CORRUPT_MESSAGE);

    // Nothing was appended, and the intact batch still goes in at offset 0.
    let latest = client.list_offsets("crc", 0, -1).await.unwrap();
    assert_eq!(latest.offset, 0, "log end after rejected batches");
    let response = client.produce_acked("crc", 0, batch, -1).await.unwrap();
    assert_eq!(response.error_code, 0);
    assert_eq!(response.base_offset, 0);
    assert_broker_healthy(&broker).await;
    broker.stop();
}

#[tokio::test]
async fn batch_over_default_max_message_bytes_gets_message_too_large() {
    let broker = Broker::start(1);
    let mut client = broker.client().await;
    create_topic(&mut client, "big", 1).await;
    // Kafka's default max.message.bytes is 1048588.
    let batch = build_batch(&[NewRecord::value(vec![0x5a; 1_100_000])], now_ms());
    let response = client
        .produce_acked("big", 0, batch, -1)
        .await
        .expect("Produce answer");
    assert_eq!(response.error_code, error_code::MESSAGE_TOO_LARGE);
    let latest = client.list_offsets("big", 0, -1).await.unwrap();
    assert_eq!(latest.offset, 0, "log end after a rejected batch");
    assert_broker_healthy(&broker).await;
    broker.stop();
}

#[tokio::test]
async fn batch_over_topic_max_message_bytes_gets_message_too_large() {
    let broker = Broker::start(1);
    let mut client = broker.client().await;
    let result = client
        .create_topic("small-limit", 1, &[("max.message.bytes", "2000")])
        .await
        .expect("CreateTopics answer");
    assert_eq!(result.error_code, 0, "{:?}", result.error_message);
    let too_big = build_batch(&[NewRecord::value(vec![1u8; 4000])], now_ms());
    let response = client
        .produce_acked("small-limit", 0, too_big, -1)
        .await
        .unwrap();
    assert_eq!(response.error_code, error_code::MESSAGE_TOO_LARGE);
    let fits = build_batch(&[NewRecord::value(vec![1u8; 1000])], now_ms());
    let response = client
        .produce_acked("small-limit", 0, fits, -1)
        .await
        .unwrap();
    assert_eq!(response.error_code, 0);
    assert_eq!(response.base_offset, 0);
    broker.stop();
}

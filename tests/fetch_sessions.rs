//! Incremental fetch sessions (KIP-227), as the Java client uses them: a full fetch opens a
//! session, incremental fetches name only changed partitions and get back only partitions with
//! news, forgotten partitions leave the session, and bad ids or epochs get Kafka's errors.
//! Also Fetch v13+, which names topics by id.

mod common;

use common::{create_topic, now_ms, Broker};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic, ForgottenTopic};
use kafka_protocol::messages::{FetchRequest, FetchResponse};
use tidelog_bench::{build_batch, decode_batches, topic_name, KafkaClient, NewRecord};
use uuid::Uuid;

const FETCH_SESSION_ID_NOT_FOUND: i16 = 70;
const INVALID_FETCH_SESSION_EPOCH: i16 = 71;

fn request(session_id: i32, epoch: i32, partitions: &[(i32, i64)]) -> FetchRequest {
    let partitions = partitions
        .iter()
        .map(|&(partition, offset)| {
            FetchPartition::default()
                .with_partition(partition)
                .with_fetch_offset(offset)
                .with_partition_max_bytes(1 << 20)
        })
        .collect::<Vec<_>>();
    let topics = if partitions.is_empty() {
        vec![]
    } else {
        vec![FetchTopic::default()
            .with_topic(topic_name("sessions"))
            .with_partitions(partitions)]
    };
    FetchRequest::default()
        .with_max_wait_ms(0)
        .with_min_bytes(0)
        .with_max_bytes(8 << 20)
        .with_session_id(session_id)
        .with_session_epoch(epoch)
        .with_topics(topics)
}

/// (partition, records) of every partition in the response, in order.
fn partitions_in(response: &FetchResponse) -> Vec<(i32, usize)> {
    response
        .responses
        .iter()
        .flat_map(|t| t.partitions.iter())
        .map(|p| {
            let records = decode_batches(p.records.as_deref().unwrap_or_default()).unwrap();
            (p.partition_index, records.len())
        })
        .collect()
}

async fn produce(client: &mut KafkaClient, partition: i32, count: usize) {
    let records: Vec<NewRecord> = (0..count)
        .map(|i| NewRecord::value(format!("v{i}")))
        .collect();
    let result = client
        .produce_acked("sessions", partition, build_batch(&records, now_ms()), -1)
        .await
        .unwrap();
    assert_eq!(result.error_code, 0);
}

#[tokio::test]
async fn incremental_fetches_carry_only_partitions_with_news() {
    let broker = Broker::start(2);
    let mut client = broker.client().await;
    create_topic(&mut client, "sessions", 2).await;
    produce(&mut client, 0, 3).await;
    const VERSION: i16 = 12;

    // Epoch 0 opens a session and answers every partition.
    let full = client
        .send(VERSION, request(0, 0, &[(0, 0), (1, 0)]))
        .await
        .unwrap();
    assert_eq!(full.error_code, 0);
    let session_id = full.session_id;
    assert!(session_id > 0, "a session id is assigned");
    assert_eq!(partitions_in(&full), vec![(0, 3), (1, 0)]);

    // Nothing changed: an incremental fetch naming partition 0's new position returns nothing.
    let quiet = client
        .send(VERSION, request(session_id, 1, &[(0, 3)]))
        .await
        .unwrap();
    assert_eq!((quiet.error_code, quiet.session_id), (0, session_id));
    assert_eq!(partitions_in(&quiet), vec![]);

    // New records on partition 1 only: only partition 1 comes back, though the request names none.
    produce(&mut client, 1, 2).await;
    let news = client
        .send(VERSION, request(session_id, 2, &[]))
        .await
        .unwrap();
    assert_eq!(partitions_in(&news), vec![(1, 2)]);

    // Forget partition 1; new records there are no longer reported.
    let mut forget = request(session_id, 3, &[]);
    forget.forgotten_topics_data = vec![ForgottenTopic::default()
        .with_topic(topic_name("sessions"))
        .with_partitions(vec![1])];
    let forgotten = client.send(VERSION, forget).await.unwrap();
    assert_eq!(partitions_in(&forgotten), vec![]);
    produce(&mut client, 1, 1).await;
    produce(&mut client, 0, 1).await;
    let after = client
        .send(VERSION, request(session_id, 4, &[]))
        .await
        .unwrap();
    assert_eq!(partitions_in(&after), vec![(0, 1)]);

    // A stale epoch and an unknown session id get Kafka's top-level errors.
    let stale = client
        .send(VERSION, request(session_id, 2, &[]))
        .await
        .unwrap();
    assert_eq!(stale.error_code, INVALID_FETCH_SESSION_EPOCH);
    let unknown = client
        .send(VERSION, request(session_id + 1, 1, &[]))
        .await
        .unwrap();
    assert_eq!(unknown.error_code, FETCH_SESSION_ID_NOT_FOUND);

    // The final epoch closes the session and fetches without one.
    let closing = client
        .send(VERSION, request(session_id, -1, &[(0, 0)]))
        .await
        .unwrap();
    assert_eq!((closing.error_code, closing.session_id), (0, 0));
    assert_eq!(partitions_in(&closing), vec![(0, 4)]);
    let gone = client
        .send(VERSION, request(session_id, 5, &[]))
        .await
        .unwrap();
    assert_eq!(gone.error_code, FETCH_SESSION_ID_NOT_FOUND);
    broker.stop();
}

#[tokio::test]
async fn fetch_v13_names_topics_by_id() {
    let broker = Broker::start(1);
    let mut client = broker.client().await;
    create_topic(&mut client, "sessions", 1).await;
    produce(&mut client, 0, 2).await;
    let metadata = client.metadata(Some(&["sessions"])).await.unwrap();
    let topic_id = metadata.topics[0].topic_id;
    assert_ne!(topic_id, Uuid::nil());

    let by_id = |id: Uuid| {
        let mut fetch = request(0, -1, &[(0, 0)]);
        fetch.topics[0].topic = Default::default();
        fetch.topics[0].topic_id = id;
        fetch
    };
    let response = client.send(13, by_id(topic_id)).await.unwrap();
    assert_eq!(response.responses[0].topic_id, topic_id);
    let partition = &response.responses[0].partitions[0];
    assert_eq!((partition.error_code, partition.high_watermark), (0, 2));
    assert_eq!(
        decode_batches(partition.records.as_deref().unwrap())
            .unwrap()
            .len(),
        2
    );

    let unknown = client.send(13, by_id(Uuid::new_v4())).await.unwrap();
    assert_eq!(unknown.responses[0].partitions[0].error_code, 100); // UNKNOWN_TOPIC_ID
    broker.stop();
}

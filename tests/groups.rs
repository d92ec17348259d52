//! Consumer groups at the protocol level: the classic state machine's answers and error
//! codes (what every client library relies on), and groups and offsets surviving SIGKILL.
//! Real clients' group behaviour is in compat-tests/.

mod common;

use bytes::Bytes;
use common::{create_topic, Broker};
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::leave_group_request::MemberIdentity;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestTopic;
use kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use tidelog_bench::{error_code, topic_name, KafkaClient};

const NONE: i16 = 0;
const ILLEGAL_GENERATION: i16 = 22;
const INCONSISTENT_GROUP_PROTOCOL: i16 = 23;
const UNKNOWN_MEMBER_ID: i16 = 25;
const INVALID_SESSION_TIMEOUT: i16 = 26;
const REBALANCE_IN_PROGRESS: i16 = 27;
const NON_EMPTY_GROUP: i16 = 68;
const GROUP_ID_NOT_FOUND: i16 = 69;
const MEMBER_ID_REQUIRED: i16 = 79;
const GROUP_MAX_SIZE_REACHED: i16 = 81;

fn s(text: &str) -> StrBytes {
    StrBytes::from_string(text.to_string())
}

fn join_request(group: &str, member_id: &str, protocol_type: &str) -> JoinGroupRequest {
    JoinGroupRequest::default()
        .with_group_id(GroupId(s(group)))
        .with_session_timeout_ms(10_000)
        .with_rebalance_timeout_ms(20_000)
        .with_member_id(s(member_id))
        .with_protocol_type(s(protocol_type))
        .with_protocols(vec![JoinGroupRequestProtocol::default()
            .with_name(s("range"))
            .with_metadata(Bytes::from_static(b"subscription"))])
}

/// Joins through MEMBER_ID_REQUIRED; returns the final JoinGroup answer.
async fn join(client: &mut KafkaClient, group: &str) -> JoinGroupResponse {
    let first = client
        .send(9, join_request(group, "", "consumer"))
        .await
        .expect("JoinGroup");
    assert_eq!(first.error_code, MEMBER_ID_REQUIRED);
    assert!(!first.member_id.is_empty());
    client
        .send(9, join_request(group, &first.member_id, "consumer"))
        .await
        .expect("JoinGroup with member id")
}

async fn sync(
    client: &mut KafkaClient,
    group: &str,
    member_id: &str,
    generation: i32,
    assignments: &[(&str, &'static [u8])],
) -> SyncGroupResponse {
    let request = SyncGroupRequest::default()
        .with_group_id(GroupId(s(group)))
        .with_generation_id(generation)
        .with_member_id(s(member_id))
        .with_assignments(
            assignments
                .iter()
                .map(|(member, bytes)| {
                    SyncGroupRequestAssignment::default()
                        .with_member_id(s(member))
                        .with_assignment(Bytes::from_static(bytes))
                })
                .collect(),
        );
    client.send(5, request).await.expect("SyncGroup")
}

async fn heartbeat(client: &mut KafkaClient, group: &str, member_id: &str, generation: i32) -> i16 {
    let request = HeartbeatRequest::default()
        .with_group_id(GroupId(s(group)))
        .with_generation_id(generation)
        .with_member_id(s(member_id));
    client.send(4, request).await.expect("Heartbeat").error_code
}

async fn commit(
    client: &mut KafkaClient,
    group: &str,
    member_id: &str,
    generation: i32,
    topic: &str,
    offset: i64,
) -> i16 {
    let request = OffsetCommitRequest::default()
        .with_group_id(GroupId(s(group)))
        .with_generation_id_or_member_epoch(generation)
        .with_member_id(s(member_id))
        .with_topics(vec![OffsetCommitRequestTopic::default()
            .with_name(topic_name(topic))
            .with_partitions(vec![OffsetCommitRequestPartition::default()
                .with_partition_index(0)
                .with_committed_offset(offset)
                .with_committed_metadata(Some(s("meta")))])]);
    let response = client.send(8, request).await.expect("OffsetCommit");
    response.topics[0].partitions[0].error_code
}

async fn fetch_offset(client: &mut KafkaClient, group: &str, topic: &str) -> (i64, String) {
    let request = OffsetFetchRequest::default()
        .with_group_id(GroupId(s(group)))
        .with_topics(Some(vec![OffsetFetchRequestTopic::default()
            .with_name(topic_name(topic))
            .with_partition_indexes(vec![0])]));
    let response = client.send(7, request).await.expect("OffsetFetch");
    assert_eq!(response.error_code, NONE);
    let partition = &response.topics[0].partitions[0];
    assert_eq!(partition.error_code, NONE);
    (
        partition.committed_offset,
        partition
            .metadata
            .as_ref()
            .map(|m| m.to_string())
            .unwrap_or_default(),
    )
}

async fn describe(client: &mut KafkaClient, group: &str) -> (i16, String, usize) {
    let request = DescribeGroupsRequest::default().with_groups(vec![GroupId(s(group))]);
    let response = client.send(5, request).await.expect("DescribeGroups");
    let described = &response.groups[0];
    (
        described.error_code,
        described.group_state.to_string(),
        described.members.len(),
    )
}

async fn delete_group(client: &mut KafkaClient, group: &str) -> i16 {
    let request = DeleteGroupsRequest::default().with_groups_names(vec![GroupId(s(group))]);
    let response = client.send(2, request).await.expect("DeleteGroups");
    response.results[0].error_code
}

#[tokio::test]
async fn classic_group_answers_with_kafkas_error_codes() {
    let broker = Broker::start(2);
    let mut admin = broker.client().await;
    create_topic(&mut admin, "events", 1).await;
    let group = "g-codes";

    let found = admin
        .send(
            4,
            FindCoordinatorRequest::default()
                .with_key_type(0)
                .with_coordinator_keys(vec![s(group)]),
        )
        .await
        .expect("FindCoordinator");
    assert_eq!(found.coordinators[0].error_code, NONE);
    assert_eq!(found.coordinators[0].port, i32::from(broker.port));

    let mut first = broker.client().await;
    let unknown = first
        .send(9, join_request(group, "nobody", "consumer"))
        .await
        .unwrap();
    assert_eq!(unknown.error_code, UNKNOWN_MEMBER_ID);
    let short = first
        .send(
            9,
            join_request(group, "", "consumer").with_session_timeout_ms(100),
        )
        .await
        .unwrap();
    assert_eq!(short.error_code, INVALID_SESSION_TIMEOUT);

    let joined = join(&mut first, group).await;
    assert_eq!(joined.error_code, NONE);
    assert_eq!(joined.generation_id, 1);
    assert_eq!(joined.leader, joined.member_id, "the only member leads");
    assert_eq!(joined.members.len(), 1);
    assert_eq!(joined.protocol_name.as_deref(), Some("range"));
    let a = joined.member_id.to_string();

    let other_type = admin
        .send(9, join_request(group, "", "connect"))
        .await
        .unwrap();
    assert_eq!(other_type.error_code, INCONSISTENT_GROUP_PROTOCOL);

    assert_eq!(
        sync(&mut first, group, &a, 2, &[]).await.error_code,
        ILLEGAL_GENERATION
    );
    assert_eq!(
        sync(&mut first, group, "nobody", 1, &[]).await.error_code,
        UNKNOWN_MEMBER_ID
    );
    let synced = sync(&mut first, group, &a, 1, &[(&a, b"a-gets-p0")]).await;
    assert_eq!(synced.error_code, NONE);
    assert_eq!(synced.assignment, Bytes::from_static(b"a-gets-p0"));
    assert_eq!(heartbeat(&mut first, group, &a, 1).await, NONE);
    assert_eq!(
        heartbeat(&mut first, group, &a, 0).await,
        ILLEGAL_GENERATION
    );
    assert_eq!(
        heartbeat(&mut first, group, "nobody", 1).await,
        UNKNOWN_MEMBER_ID
    );
    assert_eq!(commit(&mut first, group, &a, 1, "events", 7).await, NONE);
    assert_eq!(
        commit(&mut first, group, &a, 0, "events", 8).await,
        ILLEGAL_GENERATION
    );
    assert_eq!(
        commit(&mut admin, group, "", -1, "events", 8).await,
        UNKNOWN_MEMBER_ID,
        "a simple commit to a group with members is refused"
    );
    assert_eq!(
        fetch_offset(&mut admin, group, "events").await,
        (7, "meta".into())
    );
    assert_eq!(delete_group(&mut admin, group).await, NON_EMPTY_GROUP);
    assert_eq!(
        describe(&mut admin, group).await,
        (NONE, "Stable".into(), 1)
    );

    // A second member: the first learns of the rebalance from its heartbeat and rejoins.
    let mut second = broker.client().await;
    let second_first = second
        .send(9, join_request(group, "", "consumer"))
        .await
        .unwrap();
    assert_eq!(second_first.error_code, MEMBER_ID_REQUIRED);
    let b = second_first.member_id.to_string();
    let group_name = group.to_string();
    let b_join = tokio::spawn(async move {
        second
            .send(9, join_request(&group_name, &b, "consumer"))
            .await
            .map(|response| (second, response))
    });
    let deadline = common::Deadline::new(std::time::Duration::from_secs(20), "a rebalance");
    while heartbeat(&mut first, group, &a, 1).await != REBALANCE_IN_PROGRESS {
        deadline.tick().await;
    }
    let rejoined = first
        .send(9, join_request(group, &a, "consumer"))
        .await
        .unwrap();
    let (mut second, b_joined) = b_join.await.unwrap().unwrap();
    assert_eq!(rejoined.error_code, NONE);
    assert_eq!(b_joined.error_code, NONE);
    assert_eq!(rejoined.generation_id, 2);
    assert_eq!(b_joined.generation_id, 2);
    assert_eq!(rejoined.leader.to_string(), a, "the leader stays");
    assert_eq!(rejoined.members.len(), 2);
    assert!(b_joined.members.is_empty(), "only the leader sees members");

    // Both leave in one batch (v3+); the group is empty and can be deleted.
    let leave = LeaveGroupRequest::default()
        .with_group_id(GroupId(s(group)))
        .with_members(vec![
            MemberIdentity::default().with_member_id(s(&a)),
            MemberIdentity::default().with_member_id(b_joined.member_id.clone()),
        ]);
    let left = second.send(5, leave).await.expect("LeaveGroup");
    assert_eq!(left.error_code, NONE);
    assert!(left.members.iter().all(|m| m.error_code == NONE));
    assert_eq!(describe(&mut admin, group).await, (NONE, "Empty".into(), 0));
    assert_eq!(delete_group(&mut admin, group).await, NONE);
    assert_eq!(describe(&mut admin, group).await.1, "Dead");
    assert_eq!(delete_group(&mut admin, group).await, GROUP_ID_NOT_FOUND);
    assert_eq!(fetch_offset(&mut admin, group, "events").await.0, -1);
    broker.stop();
}

#[tokio::test]
async fn group_max_size_is_enforced() {
    let broker = Broker::start_in(
        tempfile::TempDir::new().unwrap(),
        1,
        &["--group-max-size", "1"],
    );
    let mut first = broker.client().await;
    assert_eq!(join(&mut first, "small").await.error_code, NONE);
    let mut second = broker.client().await;
    let refused = second
        .send(9, join_request("small", "", "consumer"))
        .await
        .unwrap();
    assert_eq!(refused.error_code, GROUP_MAX_SIZE_REACHED);
    broker.stop();
}

#[tokio::test]
async fn groups_and_offsets_survive_sigkill() {
    let broker = Broker::start(2);
    let mut client = broker.client().await;
    create_topic(&mut client, "events", 1).await;
    // Simple commits for many groups spread over both shards' partitions.
    for i in 0..20 {
        let group = format!("resume-{i}");
        assert_eq!(
            commit(&mut client, &group, "", -1, "events", 100 + i).await,
            NONE
        );
    }
    let joined = join(&mut client, "live").await;
    let member = joined.member_id.to_string();
    let synced = sync(&mut client, "live", &member, 1, &[(&member, b"assigned")]).await;
    assert_eq!(synced.error_code, NONE);
    assert_eq!(
        commit(&mut client, "live", &member, 1, "events", 42).await,
        NONE
    );
    drop(client);

    let data = broker.kill_and_keep_data();
    let broker = Broker::start_in(data, 2, &[]);
    let mut client = broker.client().await;
    for i in 0..20 {
        let group = format!("resume-{i}");
        assert_eq!(fetch_offset(&mut client, &group, "events").await.0, 100 + i);
    }
    assert_eq!(fetch_offset(&mut client, "live", "events").await.0, 42);
    // The group comes back Stable with its member, which goes on without rejoining.
    assert_eq!(
        describe(&mut client, "live").await,
        (NONE, "Stable".into(), 1)
    );
    assert_eq!(heartbeat(&mut client, "live", &member, 1).await, NONE);
    let listed = client
        .send(4, ListGroupsRequest::default())
        .await
        .expect("ListGroups");
    assert_eq!(listed.error_code, error_code::NONE);
    assert_eq!(listed.groups.len(), 21);
    broker.stop();
}

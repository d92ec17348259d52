//! `group_bench`: the consumer-group coordinator measured from the outside, against a running
//! broker (it starts nothing itself; `bench/groups.sh` does).
//!
//! `rebalance`: classic-protocol members (KIP-394 two-step join, "consumer" protocol type, one
//! "range" protocol with a ConsumerProtocolSubscription v0), each on its own connection and tokio
//! task, heartbeating every `--heartbeat-ms` and rejoining on REBALANCE_IN_PROGRESS. It measures
//! how long a group takes to reach a generation in which every member holds a SyncGroup answer:
//! - empty: all `--members` join a fresh group at once (one fresh group per round);
//! - join: one member joins a stable group of `--members - 1`, timed from its first JoinGroup;
//! - leave: one member of `--members` leaves with LeaveGroup, timed from that request.
//!
//! Rounds of leave + join run in one long-lived group. Existing members learn of a rebalance on
//! their next heartbeat, so join and leave times include up to one heartbeat interval.
//!
//! `commits`: `--connections` connections each pipelining up to `--in-flight` OffsetCommit
//! requests (generation -1, empty member id: a simple commit to a group without members, as the
//! admin offset reset does) for `--duration-s`, then checks with OffsetFetch that the group holds
//! the last commit acknowledged for every partition.
//!
//! Each phase prints a human line; each subcommand ends with one flat JSON line for scripts. Any
//! error code the protocol does not lead us to expect stops the run with its name.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, ensure, Context, Result};
use bytes::{Buf, BufMut, Bytes, BytesMut};
use clap::{Args, Parser, Subcommand};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::consumer_protocol_assignment::TopicPartition as AssignedPartitions;
use kafka_protocol::messages::find_coordinator_request::FindCoordinatorRequest;
use kafka_protocol::messages::join_group_request::{JoinGroupRequest, JoinGroupRequestProtocol};
use kafka_protocol::messages::join_group_response::JoinGroupResponse;
use kafka_protocol::messages::leave_group_request::{LeaveGroupRequest, MemberIdentity};
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequest, OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_commit_response::OffsetCommitResponse;
use kafka_protocol::messages::offset_fetch_request::{
    OffsetFetchRequest, OffsetFetchRequestGroup, OffsetFetchRequestTopic, OffsetFetchRequestTopics,
};
use kafka_protocol::messages::sync_group_request::{SyncGroupRequest, SyncGroupRequestAssignment};
use kafka_protocol::messages::{
    ApiKey, ConsumerProtocolAssignment, ConsumerProtocolSubscription, GroupId, HeartbeatRequest,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use serde_json::json;
use tidelog_bench::{error_code, topic_name, KafkaClient};
use tokio::sync::{mpsc, watch};

/// Error codes of the group APIs (Kafka's `Errors.java`) beyond those the shared client names.
mod group_error {
    pub const REBALANCE_IN_PROGRESS: i16 = 27;
    pub const MEMBER_ID_REQUIRED: i16 = 79;
}

/// The consumer protocol's type and the one assignor every member offers.
const PROTOCOL_TYPE: &str = "consumer";
const PROTOCOL_NAME: &str = "range";

/// Rejoins one member may go through in a run; more means the group never settles.
const MEMBER_JOINS_MAX: u32 = 10_000;

/// Versions this benchmark can speak per API: (api, lowest, highest). The highest is what
/// kafka-protocol 0.18 encodes (OffsetCommit stops at v9: v10 addresses topics by id). JoinGroup
/// starts at v1, the first with a rebalance timeout.
const GROUP_API_VERSIONS: &[(ApiKey, i16, i16)] = &[
    (ApiKey::FindCoordinator, 0, 6),
    (ApiKey::JoinGroup, 1, 9),
    (ApiKey::SyncGroup, 0, 5),
    (ApiKey::Heartbeat, 0, 4),
    (ApiKey::LeaveGroup, 0, 5),
    (ApiKey::OffsetCommit, 2, 9),
    (ApiKey::OffsetFetch, 1, 9),
];

#[derive(Parser)]
#[command(
    name = "group_bench",
    about = "Consumer-group coordinator benchmark: rebalance times and offset commit rate"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Time for a group to settle when members join an empty group, join a stable one, or leave.
    Rebalance(RebalanceArgs),
    /// OffsetCommit requests per second, pipelined, to a group without members.
    Commits(CommitArgs),
}

#[derive(Args, Clone)]
struct RebalanceArgs {
    /// Broker address, HOST:PORT.
    #[arg(long, default_value = "127.0.0.1:9092")]
    bootstrap: String,
    /// Members of the settled group (N); the join rounds start from N - 1.
    #[arg(long, default_value_t = 10)]
    members: usize,
    /// Rounds of each measurement.
    #[arg(long, default_value_t = 5)]
    rounds: usize,
    /// Pause between a member's heartbeats (Kafka's heartbeat.interval.ms).
    #[arg(long, default_value_t = 100)]
    heartbeat_ms: u64,
    #[arg(long, default_value_t = 45_000)]
    session_timeout_ms: i32,
    #[arg(long, default_value_t = 30_000)]
    rebalance_timeout_ms: i32,
    /// Topic subscribed to, created with 2 x members partitions; default group-bench-n<members>.
    #[arg(long)]
    topic: Option<String>,
}

#[derive(Args, Clone)]
struct CommitArgs {
    /// Broker address, HOST:PORT.
    #[arg(long, default_value = "127.0.0.1:9092")]
    bootstrap: String,
    #[arg(long, default_value_t = 4)]
    connections: usize,
    /// Pipelined OffsetCommit requests per connection.
    #[arg(long, default_value_t = 16)]
    in_flight: usize,
    /// Partitions committed by each request.
    #[arg(long, default_value_t = 1)]
    partitions_per_request: i32,
    #[arg(long, default_value_t = 10)]
    duration_s: u64,
    /// Topic whose offsets are committed (created if missing).
    #[arg(long, default_value = "group-bench-commits")]
    topic: String,
    #[arg(long, default_value_t = 100)]
    topic_partitions: i32,
    /// fdatasyncs per second of the disk (from `tidelog-bench disk-ref`), to print a ratio.
    #[arg(long)]
    disk_syncs_per_s: Option<f64>,
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    match cli.command {
        Command::Rebalance(args) => runtime.block_on(rebalance(args)),
        Command::Commits(args) => runtime.block_on(commits(args)),
    }
}

/// Kafka's name for an error code, for messages.
fn code_name(code: i16) -> String {
    match ResponseError::try_from_code(code) {
        None => "NONE".to_string(),
        Some(error) => format!("{error:?} ({code})"),
    }
}

fn str_bytes(value: &str) -> StrBytes {
    StrBytes::from_string(value.to_string())
}

fn group_id(value: &str) -> GroupId {
    GroupId(str_bytes(value))
}

/// The versions used for each group API, agreed once with the broker and shared by every
/// connection of the run.
#[derive(Clone, Copy, Debug)]
struct GroupVersions {
    find_coordinator: i16,
    join_group: i16,
    sync_group: i16,
    heartbeat: i16,
    leave_group: i16,
    offset_commit: i16,
    offset_fetch: i16,
}

impl GroupVersions {
    async fn negotiate(client: &mut KafkaClient) -> Result<Self> {
        let response = client.api_versions().await?;
        ensure!(
            response.error_code == error_code::NONE,
            "ApiVersions: {}",
            code_name(response.error_code)
        );
        let advertised: HashMap<i16, (i16, i16)> = response
            .api_keys
            .iter()
            .map(|key| (key.api_key, (key.min_version, key.max_version)))
            .collect();
        let pick = |api: ApiKey| -> Result<i16> {
            let &(_, lowest, highest) = GROUP_API_VERSIONS
                .iter()
                .find(|(key, _, _)| *key == api)
                .ok_or_else(|| anyhow!("no version range for {api:?}"))?;
            let &(broker_min, broker_max) = advertised
                .get(&(api as i16))
                .ok_or_else(|| anyhow!("broker does not advertise {api:?}"))?;
            let version = highest.min(broker_max);
            ensure!(
                version >= lowest.max(broker_min),
                "no common version for {api:?}: bench {lowest}..={highest}, broker {broker_min}..={broker_max}"
            );
            Ok(version)
        };
        Ok(Self {
            find_coordinator: pick(ApiKey::FindCoordinator)?,
            join_group: pick(ApiKey::JoinGroup)?,
            sync_group: pick(ApiKey::SyncGroup)?,
            heartbeat: pick(ApiKey::Heartbeat)?,
            leave_group: pick(ApiKey::LeaveGroup)?,
            offset_commit: pick(ApiKey::OffsetCommit)?,
            offset_fetch: pick(ApiKey::OffsetFetch)?,
        })
    }
}

/// Creates the topic unless it exists with at least `partitions` partitions.
async fn ensure_topic(admin: &mut KafkaClient, topic: &str, partitions: i32) -> Result<()> {
    let result = admin.create_topic(topic, partitions, &[]).await?;
    ensure!(
        result.error_code == error_code::NONE
            || result.error_code == error_code::TOPIC_ALREADY_EXISTS,
        "CreateTopics {topic}: {} {:?}",
        code_name(result.error_code),
        result.error_message
    );
    let metadata = admin.metadata(Some(&[topic])).await?;
    let described = metadata
        .topics
        .first()
        .ok_or_else(|| anyhow!("Metadata lacks topic {topic}"))?;
    ensure!(
        described.error_code == error_code::NONE
            && described.partitions.len() >= partitions as usize,
        "topic {topic}: {} with {} partitions, wanted {partitions}",
        code_name(described.error_code),
        described.partitions.len()
    );
    Ok(())
}

/// FindCoordinator for a group; returns the coordinator's HOST:PORT.
async fn find_coordinator(client: &mut KafkaClient, version: i16, group: &str) -> Result<String> {
    let mut request = FindCoordinatorRequest::default().with_key_type(0);
    if version >= 4 {
        request.coordinator_keys = vec![str_bytes(group)];
    } else {
        request.key = str_bytes(group);
    }
    let response = client.send(version, request).await?;
    let (code, message, host, port) = if version >= 4 {
        let coordinator = response
            .coordinators
            .first()
            .ok_or_else(|| anyhow!("FindCoordinator v{version} answered no coordinator"))?;
        ensure!(
            coordinator.key.as_str() == group,
            "FindCoordinator answered for key {:?}, asked {group:?}",
            coordinator.key.as_str()
        );
        (
            coordinator.error_code,
            coordinator.error_message.clone(),
            coordinator.host.clone(),
            coordinator.port,
        )
    } else {
        (
            response.error_code,
            response.error_message.clone(),
            response.host.clone(),
            response.port,
        )
    };
    ensure!(
        code == error_code::NONE,
        "FindCoordinator {group}: {} {message:?}",
        code_name(code)
    );
    Ok(format!("{}:{port}", host.as_str()))
}

/// min, median, max of a sample in milliseconds.
fn spread_ms(samples: &[f64]) -> (f64, f64, f64) {
    if samples.is_empty() {
        return (0.0, 0.0, 0.0);
    }
    let mut sorted = samples.to_vec();
    sorted.sort_by(f64::total_cmp);
    let middle = sorted.len() / 2;
    let median = if sorted.len() % 2 == 1 {
        sorted[middle]
    } else {
        (sorted[middle - 1] + sorted[middle]) / 2.0
    };
    (sorted[0], median, sorted[sorted.len() - 1])
}

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

// ---------------------------------------------------------------------------------------------
// Rebalance
// ---------------------------------------------------------------------------------------------

/// What every member of one group shares.
struct GroupSpec {
    coordinator: String,
    group: String,
    topic: String,
    topic_partitions: i32,
    versions: GroupVersions,
    heartbeat: Duration,
    session_timeout_ms: i32,
    rebalance_timeout_ms: i32,
    /// The member's JoinGroup protocol metadata: a ConsumerProtocolSubscription v0.
    subscription: Bytes,
}

/// What a member task tells the controller.
enum Event {
    /// The member wrote its first JoinGroup.
    JoinSent { slot: usize, at: Instant },
    /// SyncGroup answered NONE for `generation`.
    Synced {
        slot: usize,
        generation: i32,
        at: Instant,
        leader: bool,
        partitions_assigned: usize,
    },
    /// The member wrote its LeaveGroup.
    LeaveSent { slot: usize, at: Instant },
    /// The task ended (after leaving, or with an error).
    Exited { slot: usize, result: Result<()> },
}

struct SyncedState {
    generation: i32,
    at: Instant,
    leader: bool,
    partitions_assigned: usize,
}

struct MemberState {
    stop: watch::Sender<bool>,
    stopping: bool,
    join_sent_at: Option<Instant>,
    synced: Option<SyncedState>,
}

/// A generation in which every live member holds a SyncGroup answer.
struct Settled {
    generation: i32,
    /// When the last member got its SyncGroup answer.
    at: Instant,
}

/// The controller's view of one group: it spawns member tasks, tells them to leave, and waits
/// for the group to settle.
struct Group {
    spec: Arc<GroupSpec>,
    events_tx: mpsc::UnboundedSender<Event>,
    events_rx: mpsc::UnboundedReceiver<Event>,
    members: BTreeMap<usize, MemberState>,
    /// When each member wrote its LeaveGroup; kept after the member is gone.
    leave_sent_at: HashMap<usize, Instant>,
    slot_next: usize,
    wait_limit: Duration,
}

impl Group {
    fn new(spec: GroupSpec) -> Self {
        let (events_tx, events_rx) = mpsc::unbounded_channel();
        // Twice the rebalance timeout: past it the broker should have completed or failed the
        // rebalance on its own.
        let wait_limit = Duration::from_millis(2 * spec.rebalance_timeout_ms.max(1000) as u64);
        Self {
            spec: Arc::new(spec),
            events_tx,
            events_rx,
            members: BTreeMap::new(),
            leave_sent_at: HashMap::new(),
            slot_next: 0,
            wait_limit,
        }
    }

    fn spawn_member(&mut self) -> usize {
        let slot = self.slot_next;
        self.slot_next += 1;
        let (stop_tx, stop_rx) = watch::channel(false);
        let spec = Arc::clone(&self.spec);
        let events = self.events_tx.clone();
        tokio::spawn(async move {
            let result = run_member(&spec, slot, stop_rx, &events).await;
            // The controller may be gone after an error elsewhere; nothing to report then.
            let _ = events.send(Event::Exited { slot, result });
        });
        self.members.insert(
            slot,
            MemberState {
                stop: stop_tx,
                stopping: false,
                join_sent_at: None,
                synced: None,
            },
        );
        slot
    }

    fn stop_member(&mut self, slot: usize) -> Result<()> {
        let member = self
            .members
            .get_mut(&slot)
            .ok_or_else(|| anyhow!("no member in slot {slot}"))?;
        member.stopping = true;
        // A send error means the task has ended; its Exited event says how.
        let _ = member.stop.send(true);
        Ok(())
    }

    /// Applies one event; an exited member is forgotten, and an error or an unasked exit fails
    /// the run.
    fn apply(&mut self, event: Event) -> Result<()> {
        match event {
            Event::JoinSent { slot, at } => {
                if let Some(member) = self.members.get_mut(&slot) {
                    member.join_sent_at = Some(at);
                }
            }
            Event::Synced {
                slot,
                generation,
                at,
                leader,
                partitions_assigned,
            } => {
                if let Some(member) = self.members.get_mut(&slot) {
                    member.synced = Some(SyncedState {
                        generation,
                        at,
                        leader,
                        partitions_assigned,
                    });
                }
            }
            Event::LeaveSent { slot, at } => {
                self.leave_sent_at.insert(slot, at);
            }
            Event::Exited { slot, result } => {
                let member = self.members.remove(&slot);
                result.with_context(|| format!("member {slot} of group {}", self.spec.group))?;
                ensure!(
                    member.is_some_and(|m| m.stopping),
                    "member {slot} of group {} ended without being asked to",
                    self.spec.group
                );
            }
        }
        Ok(())
    }

    async fn next_event(
        &mut self,
        deadline: tokio::time::Instant,
        waiting_for: &str,
    ) -> Result<()> {
        match tokio::time::timeout_at(deadline, self.events_rx.recv()).await {
            Ok(Some(event)) => self.apply(event),
            Ok(None) => bail!("event channel closed"),
            Err(_) => bail!(
                "group {}: {waiting_for} took over {:?}; members by last synced generation: {}",
                self.spec.group,
                self.wait_limit,
                self.describe()
            ),
        }
    }

    fn describe(&self) -> String {
        let mut by_generation: BTreeMap<Option<i32>, usize> = BTreeMap::new();
        for member in self.members.values().filter(|m| !m.stopping) {
            *by_generation
                .entry(member.synced.as_ref().map(|s| s.generation))
                .or_default() += 1;
        }
        by_generation
            .iter()
            .map(|(generation, count)| match generation {
                Some(generation) => format!("{count} at generation {generation}"),
                None => format!("{count} never synced"),
            })
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// The generation in which every member that was not asked to leave holds a SyncGroup
    /// answer, if there is one now and it is later than `after_generation`.
    fn settled(&self, after_generation: i32) -> Result<Option<Settled>> {
        let mut generation = None;
        let mut at: Option<Instant> = None;
        let mut leaders = 0;
        let mut partitions_assigned = 0;
        for member in self.members.values().filter(|m| !m.stopping) {
            let Some(synced) = &member.synced else {
                return Ok(None);
            };
            if synced.generation <= after_generation
                || generation.is_some_and(|g| g != synced.generation)
            {
                return Ok(None);
            }
            generation = Some(synced.generation);
            at = Some(at.map_or(synced.at, |latest| latest.max(synced.at)));
            leaders += usize::from(synced.leader);
            partitions_assigned += synced.partitions_assigned;
        }
        let (Some(generation), Some(at)) = (generation, at) else {
            return Ok(None);
        };
        ensure!(
            leaders == 1,
            "generation {generation} of group {} has {leaders} leaders",
            self.spec.group
        );
        ensure!(
            partitions_assigned == self.spec.topic_partitions as usize,
            "generation {generation} of group {}: members were handed {partitions_assigned} \
             partitions, the leader assigned {}",
            self.spec.group,
            self.spec.topic_partitions
        );
        Ok(Some(Settled { generation, at }))
    }

    async fn wait_settled(&mut self, after_generation: i32) -> Result<Settled> {
        let deadline = tokio::time::Instant::now() + self.wait_limit;
        loop {
            if let Some(settled) = self.settled(after_generation)? {
                return Ok(settled);
            }
            let waiting_for = format!(
                "settling {} members after generation {after_generation}",
                self.members.values().filter(|m| !m.stopping).count()
            );
            self.next_event(deadline, &waiting_for).await?;
        }
    }

    fn leader_slot(&self) -> Option<usize> {
        self.members
            .iter()
            .find(|(_, m)| !m.stopping && m.synced.as_ref().is_some_and(|s| s.leader))
            .map(|(slot, _)| *slot)
    }

    /// Asks every member to leave and waits until all tasks have ended.
    async fn shutdown(&mut self) -> Result<Duration> {
        let started = Instant::now();
        let slots: Vec<usize> = self.members.keys().copied().collect();
        for slot in slots {
            self.stop_member(slot)?;
        }
        let deadline = tokio::time::Instant::now() + self.wait_limit;
        while !self.members.is_empty() {
            let waiting_for = format!("{} members leaving", self.members.len());
            self.next_event(deadline, &waiting_for).await?;
        }
        Ok(started.elapsed())
    }
}

/// ConsumerProtocolSubscription v0 for one topic, with its version prefix as the Java client
/// writes it (`ConsumerProtocol.serializeSubscription`).
fn subscription_bytes(topic: &str) -> Result<Bytes> {
    let mut buf = BytesMut::new();
    buf.put_i16(0);
    ConsumerProtocolSubscription::default()
        .with_topics(vec![str_bytes(topic)])
        .encode(&mut buf, 0)?;
    Ok(buf.freeze())
}

fn assignment_bytes(topic: &str, partitions: Vec<i32>) -> Result<Bytes> {
    let mut buf = BytesMut::new();
    buf.put_i16(0);
    ConsumerProtocolAssignment::default()
        .with_assigned_partitions(vec![AssignedPartitions::default()
            .with_topic(topic_name(topic))
            .with_partitions(partitions)])
        .encode(&mut buf, 0)?;
    Ok(buf.freeze())
}

/// Partitions of `topic` in a SyncGroup assignment written by `assignment_bytes`.
fn assigned_partition_count(topic: &str, assignment: &Bytes) -> Result<usize> {
    let mut buf = assignment.clone();
    ensure!(buf.len() >= 2, "assignment of {} bytes", buf.len());
    let version = buf.get_i16();
    ensure!(
        version == 0,
        "assignment version {version}, the leader wrote 0"
    );
    let decoded = ConsumerProtocolAssignment::decode(&mut buf, 0)?;
    ensure!(
        buf.is_empty(),
        "{} stray bytes after the assignment",
        buf.len()
    );
    let mut count = 0;
    for assigned in &decoded.assigned_partitions {
        ensure!(
            assigned.topic.as_str() == topic,
            "assignment names topic {:?}",
            assigned.topic.as_str()
        );
        count += assigned.partitions.len();
    }
    Ok(count)
}

/// The leader's assignment: partitions split in contiguous ranges over the members sorted by id.
fn range_assignment(
    spec: &GroupSpec,
    join: &JoinGroupResponse,
) -> Result<Vec<SyncGroupRequestAssignment>> {
    let mut member_ids: Vec<&StrBytes> = Vec::with_capacity(join.members.len());
    for member in &join.members {
        ensure!(
            member.metadata == spec.subscription,
            "JoinGroup handed the leader member {:?}'s metadata as {} bytes that differ from the {} sent",
            member.member_id.as_str(),
            member.metadata.len(),
            spec.subscription.len()
        );
        member_ids.push(&member.member_id);
    }
    member_ids.sort();
    let member_count = member_ids.len() as i64;
    let partitions = i64::from(spec.topic_partitions);
    member_ids
        .iter()
        .enumerate()
        .map(|(index, member_id)| {
            let index = index as i64;
            let first = (index * partitions / member_count) as i32;
            let end = ((index + 1) * partitions / member_count) as i32;
            Ok(SyncGroupRequestAssignment::default()
                .with_member_id((*member_id).clone())
                .with_assignment(assignment_bytes(&spec.topic, (first..end).collect())?))
        })
        .collect()
}

/// One member's life: join (twice on v4+: KIP-394), sync, heartbeat until told to leave,
/// rejoining whenever the coordinator answers REBALANCE_IN_PROGRESS.
async fn run_member(
    spec: &GroupSpec,
    slot: usize,
    mut stop: watch::Receiver<bool>,
    events: &mpsc::UnboundedSender<Event>,
) -> Result<()> {
    let versions = spec.versions;
    let mut client = KafkaClient::connect(&spec.coordinator).await?;
    let mut member_id = StrBytes::default();
    let mut first_join = true;
    let mut joins = 0u32;
    'rejoin: loop {
        if *stop.borrow_and_update() {
            if member_id.is_empty() {
                return Ok(());
            }
            return leave_group(spec, &mut client, slot, &member_id, events).await;
        }
        joins += 1;
        ensure!(
            joins <= MEMBER_JOINS_MAX,
            "member {slot} sent {MEMBER_JOINS_MAX} JoinGroups without settling"
        );
        let request = JoinGroupRequest::default()
            .with_group_id(group_id(&spec.group))
            .with_session_timeout_ms(spec.session_timeout_ms)
            .with_rebalance_timeout_ms(spec.rebalance_timeout_ms)
            .with_member_id(member_id.clone())
            .with_protocol_type(str_bytes(PROTOCOL_TYPE))
            .with_protocols(vec![JoinGroupRequestProtocol::default()
                .with_name(str_bytes(PROTOCOL_NAME))
                .with_metadata(spec.subscription.clone())]);
        if first_join {
            first_join = false;
            let _ = events.send(Event::JoinSent {
                slot,
                at: Instant::now(),
            });
        }
        let join = client
            .send(versions.join_group, request)
            .await
            .with_context(|| format!("JoinGroup v{}", versions.join_group))?;
        match join.error_code {
            error_code::NONE => {}
            // KIP-394: the first join of an unknown member is answered with its id only.
            group_error::MEMBER_ID_REQUIRED if member_id.is_empty() && versions.join_group >= 4 => {
                ensure!(
                    !join.member_id.is_empty(),
                    "JoinGroup answered MEMBER_ID_REQUIRED with an empty member id"
                );
                member_id = join.member_id;
                continue 'rejoin;
            }
            code => bail!(
                "JoinGroup v{} (member id {:?}): {}",
                versions.join_group,
                member_id.as_str(),
                code_name(code)
            ),
        }
        ensure!(
            !join.member_id.is_empty(),
            "JoinGroup succeeded with an empty member id"
        );
        ensure!(
            member_id.is_empty() || join.member_id == member_id,
            "JoinGroup changed member id {:?} to {:?}",
            member_id.as_str(),
            join.member_id.as_str()
        );
        member_id = join.member_id.clone();
        if let Some(name) = &join.protocol_name {
            ensure!(
                name.as_str() == PROTOCOL_NAME,
                "JoinGroup chose protocol {:?}",
                name.as_str()
            );
        }
        let generation = join.generation_id;
        let leader = join.leader == member_id;
        ensure!(
            leader || join.members.is_empty(),
            "JoinGroup gave the member list ({} members) to a follower",
            join.members.len()
        );
        // KIP-814 (v9): skip_assignment tells a static leader not to assign; we are not static.
        let assignments = if leader && !join.skip_assignment {
            range_assignment(spec, &join)?
        } else {
            Vec::new()
        };
        let mut request = SyncGroupRequest::default()
            .with_group_id(group_id(&spec.group))
            .with_generation_id(generation)
            .with_member_id(member_id.clone())
            .with_assignments(assignments);
        if versions.sync_group >= 5 {
            request.protocol_type = Some(str_bytes(PROTOCOL_TYPE));
            request.protocol_name = Some(str_bytes(PROTOCOL_NAME));
        }
        let sync = client
            .send(versions.sync_group, request)
            .await
            .with_context(|| format!("SyncGroup v{}", versions.sync_group))?;
        match sync.error_code {
            error_code::NONE => {}
            group_error::REBALANCE_IN_PROGRESS => continue 'rejoin,
            code => bail!(
                "SyncGroup v{} (member {:?}, generation {generation}): {}",
                versions.sync_group,
                member_id.as_str(),
                code_name(code)
            ),
        }
        let at = Instant::now();
        let partitions_assigned = assigned_partition_count(&spec.topic, &sync.assignment)
            .with_context(|| {
                format!(
                    "SyncGroup assignment for member {:?}, generation {generation}",
                    member_id.as_str()
                )
            })?;
        let _ = events.send(Event::Synced {
            slot,
            generation,
            at,
            leader,
            partitions_assigned,
        });
        let mut stop_now = *stop.borrow_and_update();
        loop {
            if stop_now {
                return leave_group(spec, &mut client, slot, &member_id, events).await;
            }
            stop_now = tokio::select! {
                _ = tokio::time::sleep(spec.heartbeat) => false,
                // Err: the controller is gone; leave as if asked.
                changed = stop.changed() => changed.is_err() || *stop.borrow_and_update(),
            };
            if stop_now {
                continue;
            }
            let request = HeartbeatRequest::default()
                .with_group_id(group_id(&spec.group))
                .with_generation_id(generation)
                .with_member_id(member_id.clone());
            let heartbeat = client
                .send(versions.heartbeat, request)
                .await
                .with_context(|| format!("Heartbeat v{}", versions.heartbeat))?;
            match heartbeat.error_code {
                error_code::NONE => {}
                group_error::REBALANCE_IN_PROGRESS => continue 'rejoin,
                code => bail!(
                    "Heartbeat v{} (member {:?}, generation {generation}): {}",
                    versions.heartbeat,
                    member_id.as_str(),
                    code_name(code)
                ),
            }
        }
    }
}

async fn leave_group(
    spec: &GroupSpec,
    client: &mut KafkaClient,
    slot: usize,
    member_id: &StrBytes,
    events: &mpsc::UnboundedSender<Event>,
) -> Result<()> {
    let version = spec.versions.leave_group;
    let mut request = LeaveGroupRequest::default().with_group_id(group_id(&spec.group));
    // KIP-345: v3+ leaves a batch of members.
    if version >= 3 {
        request.members = vec![MemberIdentity::default().with_member_id(member_id.clone())];
    } else {
        request.member_id = member_id.clone();
    }
    let _ = events.send(Event::LeaveSent {
        slot,
        at: Instant::now(),
    });
    let response = client
        .send(version, request)
        .await
        .with_context(|| format!("LeaveGroup v{version}"))?;
    ensure!(
        response.error_code == error_code::NONE,
        "LeaveGroup v{version} (member {:?}): {}",
        member_id.as_str(),
        code_name(response.error_code)
    );
    if version >= 3 {
        ensure!(
            response.members.len() == 1 && response.members[0].member_id == *member_id,
            "LeaveGroup v{version} answered for {} members, asked for {:?}",
            response.members.len(),
            member_id.as_str()
        );
        ensure!(
            response.members[0].error_code == error_code::NONE,
            "LeaveGroup v{version} (member {:?}): {}",
            member_id.as_str(),
            code_name(response.members[0].error_code)
        );
    }
    Ok(())
}

async fn rebalance(args: RebalanceArgs) -> Result<()> {
    ensure!(args.members >= 2, "--members must be at least 2");
    ensure!(args.rounds >= 1, "--rounds must be at least 1");
    let member_count = args.members;
    let topic = args
        .topic
        .clone()
        .unwrap_or_else(|| format!("group-bench-n{member_count}"));
    let topic_partitions = i32::try_from(2 * member_count).context("--members too large")?;
    let mut admin = KafkaClient::connect(&args.bootstrap).await?;
    let versions = GroupVersions::negotiate(&mut admin).await?;
    ensure_topic(&mut admin, &topic, topic_partitions).await?;
    let run_id = std::process::id();
    let subscription = subscription_bytes(&topic)?;
    let new_group = |name: String, coordinator: String| GroupSpec {
        coordinator,
        group: name,
        topic: topic.clone(),
        topic_partitions,
        versions,
        heartbeat: Duration::from_millis(args.heartbeat_ms),
        session_timeout_ms: args.session_timeout_ms,
        rebalance_timeout_ms: args.rebalance_timeout_ms,
        subscription: subscription.clone(),
    };
    println!(
        "rebalance: {member_count} members, topic {topic} ({topic_partitions} partitions), heartbeat every {} ms, \
         JoinGroup v{} SyncGroup v{} Heartbeat v{} LeaveGroup v{}",
        args.heartbeat_ms,
        versions.join_group,
        versions.sync_group,
        versions.heartbeat,
        versions.leave_group
    );

    // All N join an empty group at once; a fresh group per round.
    let mut empty_ms = Vec::new();
    let mut empty_generations = Vec::new();
    let mut shutdown_ms = Vec::new();
    let mut kept: Option<Group> = None;
    for round in 0..args.rounds {
        let name = format!("group-bench-n{member_count}-{run_id}-empty{round}");
        let coordinator = find_coordinator(&mut admin, versions.find_coordinator, &name).await?;
        let mut group = Group::new(new_group(name, coordinator));
        for _ in 0..member_count {
            group.spawn_member();
        }
        let settled = group.wait_settled(0).await?;
        let first_join = group
            .members
            .values()
            .filter_map(|m| m.join_sent_at)
            .min()
            .ok_or_else(|| anyhow!("no member reported its JoinGroup"))?;
        let elapsed_ms = ms(settled.at.duration_since(first_join));
        println!(
            "  empty round {round}: {member_count} members settled in {elapsed_ms:.1} ms at generation {}",
            settled.generation
        );
        empty_ms.push(elapsed_ms);
        empty_generations.push(settled.generation);
        if round + 1 < args.rounds {
            shutdown_ms.push(ms(group.shutdown().await?));
        } else {
            kept = Some(group);
        }
    }
    let mut group = kept.ok_or_else(|| anyhow!("no group kept"))?;

    // Rounds in one group of N: one member leaves (N - 1 settle), a new one joins (N settle).
    let mut generation = group.settled(0)?.map_or(0, |s| s.generation);
    let mut leave_ms = Vec::new();
    let mut join_ms = Vec::new();
    for round in 0..args.rounds {
        let leader = group.leader_slot();
        let leaving = *group
            .members
            .keys()
            .find(|slot| Some(**slot) != leader)
            .ok_or_else(|| anyhow!("no follower to leave"))?;
        group.stop_member(leaving)?;
        let settled = group.wait_settled(generation).await?;
        // The LeaveSent event was queued before the LeaveGroup that let the others settle.
        let left_at = *group
            .leave_sent_at
            .get(&leaving)
            .ok_or_else(|| anyhow!("member {leaving} left without reporting its LeaveGroup"))?;
        let elapsed_ms = ms(settled.at.duration_since(left_at));
        generation = settled.generation;
        leave_ms.push(elapsed_ms);

        let joining = group.spawn_member();
        let settled = group.wait_settled(generation).await?;
        let joined_at = group
            .members
            .get(&joining)
            .and_then(|m| m.join_sent_at)
            .ok_or_else(|| anyhow!("member {joining} settled without reporting its JoinGroup"))?;
        let join_elapsed_ms = ms(settled.at.duration_since(joined_at));
        println!(
            "  round {round}: leave of 1 of {member_count} settled in {elapsed_ms:.1} ms (generation {generation}), \
             join of member {member_count} settled in {join_elapsed_ms:.1} ms (generation {})",
            settled.generation
        );
        generation = settled.generation;
        join_ms.push(join_elapsed_ms);
    }
    shutdown_ms.push(ms(group.shutdown().await?));

    let (empty_min, empty_median, empty_max) = spread_ms(&empty_ms);
    let (join_min, join_median, join_max) = spread_ms(&join_ms);
    let (leave_min, leave_median, leave_max) = spread_ms(&leave_ms);
    let (shutdown_min, shutdown_median, shutdown_max) = spread_ms(&shutdown_ms);
    println!(
        "rebalance n={member_count} heartbeat {} ms: empty group min/median/max {empty_min:.1}/{empty_median:.1}/{empty_max:.1} ms, \
         join {join_min:.1}/{join_median:.1}/{join_max:.1} ms, leave {leave_min:.1}/{leave_median:.1}/{leave_max:.1} ms, \
         all leave {shutdown_median:.1} ms median",
        args.heartbeat_ms
    );
    println!(
        "{}",
        json!({
            "mode": "rebalance",
            "members": member_count,
            "rounds": args.rounds,
            "heartbeat_ms": args.heartbeat_ms,
            "session_timeout_ms": args.session_timeout_ms,
            "rebalance_timeout_ms": args.rebalance_timeout_ms,
            "topic_partitions": topic_partitions,
            "join_group_version": versions.join_group,
            "sync_group_version": versions.sync_group,
            "heartbeat_version": versions.heartbeat,
            "leave_group_version": versions.leave_group,
            "empty_min_ms": empty_min,
            "empty_median_ms": empty_median,
            "empty_max_ms": empty_max,
            "empty_generations_max": empty_generations.iter().max().copied().unwrap_or(0),
            "join_min_ms": join_min,
            "join_median_ms": join_median,
            "join_max_ms": join_max,
            "leave_min_ms": leave_min,
            "leave_median_ms": leave_median,
            "leave_max_ms": leave_max,
            "all_leave_min_ms": shutdown_min,
            "all_leave_median_ms": shutdown_median,
            "all_leave_max_ms": shutdown_max,
            "empty_samples_ms": empty_ms,
            "join_samples_ms": join_ms,
            "leave_samples_ms": leave_ms,
        })
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Commits
// ---------------------------------------------------------------------------------------------

/// What one connection did in the commit phase.
#[derive(Default)]
struct CommitTally {
    requests: u64,
    partition_offsets: u64,
    latencies_us: Vec<u64>,
    /// partition -> the last offset this connection had acknowledged.
    acked_last: HashMap<i32, i64>,
}

fn commit_request(
    group: &str,
    topic: &str,
    partitions: &[i32],
    offset: i64,
) -> OffsetCommitRequest {
    OffsetCommitRequest::default()
        .with_group_id(group_id(group))
        // A simple commit: no generation, no member (Kafka's GroupCoordinator accepts it for a
        // group without members, as the admin offset reset does).
        .with_generation_id_or_member_epoch(-1)
        .with_member_id(StrBytes::default())
        .with_topics(vec![OffsetCommitRequestTopic::default()
            .with_name(topic_name(topic))
            .with_partitions(
                partitions
                    .iter()
                    .map(|partition| {
                        OffsetCommitRequestPartition::default()
                            .with_partition_index(*partition)
                            .with_committed_offset(offset)
                    })
                    .collect(),
            )])
}

fn check_commit_response(
    response: &OffsetCommitResponse,
    version: i16,
    topic: &str,
    partitions: &[i32],
) -> Result<()> {
    let mut answered = 0;
    for topic_response in &response.topics {
        ensure!(
            topic_response.name.as_str() == topic,
            "OffsetCommit v{version} answered for topic {:?}",
            topic_response.name.as_str()
        );
        for partition in &topic_response.partitions {
            ensure!(
                partition.error_code == error_code::NONE,
                "OffsetCommit v{version} {topic}-{}: {}",
                partition.partition_index,
                code_name(partition.error_code)
            );
            answered += 1;
        }
    }
    ensure!(
        answered == partitions.len(),
        "OffsetCommit v{version} answered {answered} partitions, asked {}",
        partitions.len()
    );
    Ok(())
}

async fn commit_connection(
    args: &CommitArgs,
    coordinator: &str,
    group: &str,
    version: i16,
    connection: usize,
    deadline: Instant,
) -> Result<CommitTally> {
    let mut client = KafkaClient::connect(coordinator).await?;
    // Connection c commits partitions c*k .. c*k+k (mod the topic's), k per request.
    let partitions: Vec<i32> = (0..args.partitions_per_request)
        .map(|i| {
            ((connection as i64 * i64::from(args.partitions_per_request) + i64::from(i))
                % i64::from(args.topic_partitions)) as i32
        })
        .collect();
    let mut tally = CommitTally::default();
    let mut in_flight: VecDeque<(Instant, i64)> = VecDeque::new();
    // Offsets differ across connections (sequence * connections + connection), so the final
    // OffsetFetch can tell whose commit the group kept.
    let mut sequence = 0i64;
    loop {
        if Instant::now() < deadline && in_flight.len() < args.in_flight {
            let offset = sequence * args.connections as i64 + connection as i64;
            sequence += 1;
            let request = commit_request(group, &args.topic, &partitions, offset);
            client.write_pipelined(version, &request).await?;
            in_flight.push_back((Instant::now(), offset));
            continue;
        }
        let Some((sent_at, offset)) = in_flight.pop_front() else {
            break;
        };
        let response = client
            .read_pipelined::<OffsetCommitRequest>(version)
            .await
            .with_context(|| format!("OffsetCommit v{version}"))?;
        tally
            .latencies_us
            .push(sent_at.elapsed().as_micros() as u64);
        check_commit_response(&response, version, &args.topic, &partitions)?;
        tally.requests += 1;
        tally.partition_offsets += partitions.len() as u64;
        for partition in &partitions {
            tally.acked_last.insert(*partition, offset);
        }
    }
    Ok(tally)
}

/// OffsetFetch of `partitions`; returns partition -> committed offset.
async fn fetch_offsets(
    client: &mut KafkaClient,
    version: i16,
    group: &str,
    topic: &str,
    partitions: Vec<i32>,
) -> Result<HashMap<i32, i64>> {
    let mut request = OffsetFetchRequest::default();
    // KIP-709: v8+ asks for several groups at once.
    if version >= 8 {
        request.groups = vec![OffsetFetchRequestGroup::default()
            .with_group_id(group_id(group))
            .with_topics(Some(vec![OffsetFetchRequestTopics::default()
                .with_name(topic_name(topic))
                .with_partition_indexes(partitions)]))];
    } else {
        request.group_id = group_id(group);
        request.topics = Some(vec![OffsetFetchRequestTopic::default()
            .with_name(topic_name(topic))
            .with_partition_indexes(partitions)]);
    }
    let response = client
        .send(version, request)
        .await
        .with_context(|| format!("OffsetFetch v{version}"))?;
    let mut committed = HashMap::new();
    let mut record = |partition: i32, offset: i64, code: i16| -> Result<()> {
        ensure!(
            code == error_code::NONE,
            "OffsetFetch v{version} {topic}-{partition}: {}",
            code_name(code)
        );
        committed.insert(partition, offset);
        Ok(())
    };
    if version >= 8 {
        let answered = response
            .groups
            .iter()
            .find(|g| g.group_id.0.as_str() == group)
            .ok_or_else(|| anyhow!("OffsetFetch v{version} did not answer for group {group}"))?;
        ensure!(
            answered.error_code == error_code::NONE,
            "OffsetFetch v{version} group {group}: {}",
            code_name(answered.error_code)
        );
        for topic_response in answered.topics.iter().filter(|t| t.name.as_str() == topic) {
            for partition in &topic_response.partitions {
                record(
                    partition.partition_index,
                    partition.committed_offset,
                    partition.error_code,
                )?;
            }
        }
    } else {
        ensure!(
            response.error_code == error_code::NONE,
            "OffsetFetch v{version} group {group}: {}",
            code_name(response.error_code)
        );
        for topic_response in response.topics.iter().filter(|t| t.name.as_str() == topic) {
            for partition in &topic_response.partitions {
                record(
                    partition.partition_index,
                    partition.committed_offset,
                    partition.error_code,
                )?;
            }
        }
    }
    Ok(committed)
}

async fn commits(args: CommitArgs) -> Result<()> {
    ensure!(args.connections > 0, "--connections must be positive");
    ensure!(args.in_flight > 0, "--in-flight must be positive");
    ensure!(
        args.partitions_per_request > 0 && args.partitions_per_request <= args.topic_partitions,
        "--partitions-per-request must be in 1..=--topic-partitions"
    );
    let mut admin = KafkaClient::connect(&args.bootstrap).await?;
    let versions = GroupVersions::negotiate(&mut admin).await?;
    ensure_topic(&mut admin, &args.topic, args.topic_partitions).await?;
    let group = format!(
        "group-bench-commits-{}-p{}",
        std::process::id(),
        args.partitions_per_request
    );
    let coordinator = find_coordinator(&mut admin, versions.find_coordinator, &group).await?;
    let version = versions.offset_commit;

    let started = Instant::now();
    let deadline = started + Duration::from_secs(args.duration_s);
    let mut tasks = Vec::new();
    for connection in 0..args.connections {
        let args = args.clone();
        let coordinator = coordinator.clone();
        let group = group.clone();
        tasks.push(tokio::spawn(async move {
            commit_connection(&args, &coordinator, &group, version, connection, deadline).await
        }));
    }
    let mut total = CommitTally::default();
    // partition -> the last acknowledged offset of each connection that committed it.
    let mut acked_last: HashMap<i32, HashSet<i64>> = HashMap::new();
    for (connection, task) in tasks.into_iter().enumerate() {
        let tally = task
            .await
            .context("commit task panicked")?
            .with_context(|| format!("commit connection {connection}"))?;
        total.requests += tally.requests;
        total.partition_offsets += tally.partition_offsets;
        total.latencies_us.extend(tally.latencies_us);
        for (partition, offset) in tally.acked_last {
            acked_last.entry(partition).or_default().insert(offset);
        }
    }
    let elapsed_s = started.elapsed().as_secs_f64();
    total.latencies_us.sort_unstable();
    let percentile_ms = |p: f64| -> f64 {
        if total.latencies_us.is_empty() {
            return 0.0;
        }
        let index = ((total.latencies_us.len() - 1) as f64 * p).round() as usize;
        total.latencies_us[index] as f64 / 1000.0
    };
    let commits_per_s = total.requests as f64 / elapsed_s;
    let partition_offsets_per_s = total.partition_offsets as f64 / elapsed_s;
    let ratio = args
        .disk_syncs_per_s
        .filter(|syncs| *syncs > 0.0)
        .map(|syncs| commits_per_s / syncs);

    // The group must hold, for every partition, the last acknowledged commit of one connection.
    let mut partitions: Vec<i32> = acked_last.keys().copied().collect();
    partitions.sort_unstable();
    let committed = fetch_offsets(
        &mut admin,
        versions.offset_fetch,
        &group,
        &args.topic,
        partitions.clone(),
    )
    .await?;
    for partition in &partitions {
        let offset = committed
            .get(partition)
            .ok_or_else(|| anyhow!("OffsetFetch did not answer for {}-{partition}", args.topic))?;
        let expected = &acked_last[partition];
        ensure!(
            expected.contains(offset),
            "group {group} holds offset {offset} for {}-{partition}; the last acknowledged commits were {expected:?}",
            args.topic
        );
    }

    println!(
        "commits: {} OffsetCommit v{version} requests x {} partitions in {elapsed_s:.1} s: {commits_per_s:.0} commits/s, \
         {partition_offsets_per_s:.0} partition offsets/s, p50 {:.2} ms, p99 {:.2} ms ({} connections x {} in flight){}; \
         OffsetFetch v{} agrees on {} partitions",
        total.requests,
        args.partitions_per_request,
        percentile_ms(0.50),
        percentile_ms(0.99),
        args.connections,
        args.in_flight,
        match (ratio, args.disk_syncs_per_s) {
            (Some(ratio), Some(syncs)) => format!(", {ratio:.2} x the disk's {syncs:.0} fdatasyncs/s"),
            _ => String::new(),
        },
        versions.offset_fetch,
        partitions.len()
    );
    println!(
        "{}",
        json!({
            "mode": "commits",
            "offset_commit_version": version,
            "offset_fetch_version": versions.offset_fetch,
            "connections": args.connections,
            "in_flight": args.in_flight,
            "partitions_per_request": args.partitions_per_request,
            "elapsed_s": elapsed_s,
            "commits": total.requests,
            "commits_per_s": commits_per_s,
            "partition_offsets_per_s": partition_offsets_per_s,
            "p50_ms": percentile_ms(0.50),
            "p99_ms": percentile_ms(0.99),
            "disk_syncs_per_s": args.disk_syncs_per_s,
            "commits_per_sync": ratio,
        })
    );
    Ok(())
}

//! KIP-848 consumer groups (`group.protocol=consumer`): the state machine behind the
//! ConsumerGroupHeartbeat API, after Kafka's `GroupMetadataManager` and
//! `CurrentAssignmentBuilder`.
//!
//! It owns a group's members, its group epoch, its target assignment (computed by a
//! server-side assignor whenever the group epoch moves past the assignment epoch) and each
//! member's reconciliation towards its target: a member never receives a partition that
//! another member still holds, and must report that it revoked partitions before it moves to
//! the new epoch.
//!
//! It must not know about the wire, persistence, routing or the clock: callers pass decoded
//! requests, the topics of the catalog and `now`, and turn the answers into responses and
//! records.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use regex::{Regex, RegexBuilder};
use uuid::Uuid;

use super::assignor::{self, Assignment, AssignorMember, ServerAssignor, TopicInfo};
use crate::protocol::error_code;

/// The epoch a member sends to join or rejoin.
const JOIN_GROUP_MEMBER_EPOCH: i32 = 0;
/// The epoch a member sends to leave for good.
const LEAVE_GROUP_MEMBER_EPOCH: i32 = -1;
/// The epoch a static member sends to leave for a while, keeping its partitions for the
/// session timeout (KIP-848 static membership).
const LEAVE_GROUP_STATIC_MEMBER_EPOCH: i32 = -2;

/// The most memory one compiled subscription regex may take: the pattern comes from the
/// network, and the regex crate's default (10 MiB) is generous for topic-name patterns.
const REGEX_SIZE_LIMIT_BYTES: usize = 1 << 20;

/// Group-level settings the coordinator reads from its configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GroupSettings {
    pub session_timeout_ms: i32,
    pub heartbeat_interval_ms: i32,
    pub max_size: u32,
}

/// What the heartbeat sees of the cluster: topic name -> info. The caller builds it from the catalog.
pub type TopicsByName = BTreeMap<String, assignor::TopicInfo>;

/// A decoded ConsumerGroupHeartbeat request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HeartbeatInput {
    /// Empty for a v0 join: the group generates one.
    pub member_id: String,
    /// 0 join, -1 leave, -2 static leave (temporary), >0 normal.
    pub member_epoch: i32,
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    /// -1 = unchanged.
    pub rebalance_timeout_ms: i32,
    /// None = unchanged.
    pub subscribed_topic_names: Option<Vec<String>>,
    /// None = unchanged; Rust `regex` crate semantics, full match.
    pub subscribed_topic_regex: Option<String>,
    /// None = unchanged / default.
    pub server_assignor: Option<String>,
    /// None = unchanged since last heartbeat.
    pub owned: Option<Vec<(Uuid, Vec<i32>)>>,
    pub client_id: String,
    pub client_host: String,
}

/// The fields of a ConsumerGroupHeartbeat response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeartbeatOutput {
    pub error_code: i16,
    pub error_message: Option<String>,
    pub member_id: Option<String>,
    pub member_epoch: i32,
    pub heartbeat_interval_ms: i32,
    /// Some(full assignment of the member) when it changed or was asked for (join / owned
    /// partitions reported); None otherwise.
    pub assignment: Option<BTreeMap<Uuid, Vec<i32>>>,
}

/// One member as ConsumerGroupDescribe shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberDescription {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    pub member_epoch: i32,
    pub client_id: String,
    pub client_host: String,
    pub subscribed_topic_names: Vec<String>,
    pub subscribed_topic_regex: Option<String>,
    pub assignment: BTreeMap<Uuid, Vec<i32>>,
    pub target_assignment: BTreeMap<Uuid, Vec<i32>>,
}

/// Partitions by topic id, as sets for the reconciliation arithmetic.
type Partitions = BTreeMap<Uuid, BTreeSet<i32>>;

/// Kafka's `MemberState` of a consumer group member.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum MemberState {
    /// The member holds its whole target at the assignment epoch, or waits for a new one.
    Stable,
    /// The member must stop consuming some partitions; it stays at its epoch until it
    /// reports (through `owned`) that it did.
    UnrevokedPartitions,
    /// The member moved to the target epoch, but some target partitions are still held by
    /// other members and are given on a later heartbeat.
    UnreleasedPartitions,
}

#[derive(Debug, Clone)]
struct Member {
    member_id: String,
    instance_id: Option<String>,
    rack_id: Option<String>,
    client_id: String,
    client_host: String,
    rebalance_timeout_ms: i32,
    subscribed_topic_names: BTreeSet<String>,
    subscribed_topic_regex: Option<String>,
    server_assignor: Option<&'static str>,
    state: MemberState,
    member_epoch: i32,
    /// The epoch before the last reconciliation step (Kafka's `previousMemberEpoch`): the
    /// epoch a client still uses when the response that moved it was lost.
    previous_member_epoch: i32,
    /// Partitions the member may consume.
    assigned: Partitions,
    /// Partitions the member was asked to stop consuming and has not yet reported revoked.
    pending_revocation: Partitions,
    /// The last heartbeat, or the static leave, that restarted the session timeout.
    last_heartbeat: Instant,
    /// When the member entered or last changed in `UnrevokedPartitions`: it is fenced when
    /// its rebalance timeout passes from there.
    revocation_started: Option<Instant>,
}

impl Member {
    fn new(member_id: String, now: Instant) -> Self {
        Member {
            member_id,
            instance_id: None,
            rack_id: None,
            client_id: String::new(),
            client_host: String::new(),
            rebalance_timeout_ms: 0,
            subscribed_topic_names: BTreeSet::new(),
            subscribed_topic_regex: None,
            server_assignor: None,
            state: MemberState::Stable,
            member_epoch: JOIN_GROUP_MEMBER_EPOCH,
            previous_member_epoch: JOIN_GROUP_MEMBER_EPOCH,
            assigned: Partitions::new(),
            pending_revocation: Partitions::new(),
            last_heartbeat: now,
            revocation_started: None,
        }
    }

    /// The member as it rejoins with epoch 0: same subscription, nothing held (the client
    /// gave up its partitions before rejoining, and sends no owned partitions).
    fn reset_for_rejoin(&self) -> Self {
        let mut member = self.clone();
        member.state = MemberState::Stable;
        member.member_epoch = JOIN_GROUP_MEMBER_EPOCH;
        member.previous_member_epoch = JOIN_GROUP_MEMBER_EPOCH;
        member.assigned.clear();
        member.pending_revocation.clear();
        member.revocation_started = None;
        member
    }

    /// A new member id taking over a static member's instance id: it inherits the
    /// partitions, which are still held for it, and joins at epoch 0 (Kafka's
    /// `getOrMaybeSubscribeStaticConsumerGroupMember`).
    fn replaced_by(&self, member_id: &str) -> Self {
        let mut member = self.clone();
        member.member_id = member_id.to_string();
        member.member_epoch = JOIN_GROUP_MEMBER_EPOCH;
        member.previous_member_epoch = JOIN_GROUP_MEMBER_EPOCH;
        member
    }

    fn is_reconciled_to(&self, assignment_epoch: i32) -> bool {
        self.state == MemberState::Stable && self.member_epoch == assignment_epoch
    }

    fn describe(&self, target: BTreeMap<Uuid, Vec<i32>>) -> MemberDescription {
        MemberDescription {
            member_id: self.member_id.clone(),
            instance_id: self.instance_id.clone(),
            rack_id: self.rack_id.clone(),
            member_epoch: self.member_epoch,
            client_id: self.client_id.clone(),
            client_host: self.client_host.clone(),
            subscribed_topic_names: self.subscribed_topic_names.iter().cloned().collect(),
            subscribed_topic_regex: self.subscribed_topic_regex.clone(),
            assignment: to_lists(&self.assigned),
            target_assignment: target,
        }
    }
}

/// How the member of a join or heartbeat was found.
enum ResolvedMember {
    /// A member heartbeating at (or one behind) its epoch.
    Existing(Member),
    /// A member id the group has not seen.
    New(Member),
    /// A known member id sending epoch 0 again.
    Rejoin(Member),
    /// A new member id taking over the instance id of a static member that left with -2.
    StaticReplacement {
        replaced_member_id: String,
        member: Member,
    },
}

/// The next assignment state of a member, as `CurrentAssignmentBuilder` computes it.
#[derive(Debug, PartialEq, Eq)]
struct NextAssignment {
    state: MemberState,
    member_epoch: i32,
    assigned: Partitions,
    pending_revocation: Partitions,
}

/// A heartbeat refused with a Kafka error code.
#[derive(Debug)]
struct HeartbeatError {
    code: i16,
    message: String,
}

impl HeartbeatError {
    fn new(code: i16, message: impl Into<String>) -> Self {
        HeartbeatError {
            code,
            message: message.into(),
        }
    }

    fn invalid_request(message: impl Into<String>) -> Self {
        HeartbeatError::new(error_code::INVALID_REQUEST, message)
    }
}

/// A KIP-848 consumer group.
#[derive(Debug)]
pub struct ConsumerGroup {
    group_id: String,
    /// Bumped on every membership, subscription or subscribed-topic metadata change.
    group_epoch: i32,
    /// The group epoch the target assignment was computed for.
    assignment_epoch: i32,
    members: BTreeMap<String, Member>,
    /// The target assignment of every member, including members that have nothing.
    target: Assignment,
    /// Which member holds each partition, as assigned or pending revocation: Kafka's
    /// `currentPartitionEpoch`. No partition is given to a member while another holds it.
    holders: BTreeMap<(Uuid, i32), String>,
    /// (name, id, partition count) of every subscribed topic, when the epoch last moved: a
    /// topic created, deleted or grown changes it and triggers a rebalance.
    subscription_signature: Vec<(String, Uuid, i32)>,
    /// The members' regexes, compiled for full matches.
    regexes: BTreeMap<String, Regex>,
}

impl ConsumerGroup {
    pub fn new(group_id: String) -> Self {
        ConsumerGroup {
            group_id,
            group_epoch: 0,
            assignment_epoch: 0,
            members: BTreeMap::new(),
            target: Assignment::new(),
            holders: BTreeMap::new(),
            subscription_signature: Vec::new(),
            regexes: BTreeMap::new(),
        }
    }

    /// Handles one ConsumerGroupHeartbeat: join, heartbeat or leave.
    pub fn heartbeat(
        &mut self,
        input: HeartbeatInput,
        topics: &TopicsByName,
        settings: &GroupSettings,
        now: Instant,
    ) -> HeartbeatOutput {
        let result = self.validate_request(&input).and_then(|()| {
            if input.member_epoch == LEAVE_GROUP_MEMBER_EPOCH
                || input.member_epoch == LEAVE_GROUP_STATIC_MEMBER_EPOCH
            {
                self.leave(&input, topics, settings, now)
            } else {
                self.join_or_heartbeat(&input, topics, settings, now)
            }
        });
        result.unwrap_or_else(|error| HeartbeatOutput {
            error_code: error.code,
            error_message: Some(error.message),
            member_id: None,
            member_epoch: 0,
            heartbeat_interval_ms: settings.heartbeat_interval_ms,
            assignment: None,
        })
    }

    /// Removes members whose session expired (no heartbeat within session timeout) or that
    /// failed to revoke within their rebalance timeout, and rebalances on subscribed-topic
    /// metadata changes; returns true if anything changed.
    pub fn expire_members(
        &mut self,
        topics: &TopicsByName,
        settings: &GroupSettings,
        now: Instant,
    ) -> bool {
        let session_timeout = millis(settings.session_timeout_ms);
        let expired: Vec<String> = self
            .members
            .values()
            .filter(|member| {
                now.saturating_duration_since(member.last_heartbeat) >= session_timeout
                    || revocation_timed_out(member, now)
            })
            .map(|member| member.member_id.clone())
            .collect();
        for member_id in &expired {
            self.remove_member(member_id);
        }
        let rebalanced = self.refresh_target(topics, false);
        !expired.is_empty() || rebalanced
    }

    /// For OffsetCommit/OffsetFetch from members: Ok if member_id is a member and epoch == its
    /// current epoch, or its previous epoch while the client may not yet have seen the bump.
    pub fn validate_member_epoch(&self, member_id: &str, epoch: i32) -> Result<(), i16> {
        let member = self
            .members
            .get(member_id)
            .ok_or(error_code::UNKNOWN_MEMBER_ID)?;
        if epoch == member.member_epoch {
            return Ok(());
        }
        // The response that moved the member to its current epoch may still be in flight
        // (or lost, see `check_member_epoch`): a commit sent meanwhile carries the epoch
        // before, and refusing it would fail commits for partitions the member keeps.
        let just_bumped =
            member.previous_member_epoch > 0 && member.member_epoch > member.previous_member_epoch;
        if just_bumped && epoch == member.previous_member_epoch {
            return Ok(());
        }
        Err(error_code::STALE_MEMBER_EPOCH)
    }

    pub fn group_id(&self) -> &str {
        &self.group_id
    }

    pub fn group_epoch(&self) -> i32 {
        self.group_epoch
    }

    pub fn assignment_epoch(&self) -> i32 {
        self.assignment_epoch
    }

    /// Restored from the durable log at start (members are not restored). The target of a
    /// group without members is empty, so it counts as computed for that epoch too.
    pub fn set_group_epoch(&mut self, epoch: i32) {
        self.group_epoch = epoch;
        if self.members.is_empty() {
            self.assignment_epoch = epoch;
        }
    }

    /// Kafka's `ConsumerGroup.ConsumerGroupState` names, as DescribeGroups and ListGroups show
    /// them.
    pub fn state_name(&self) -> &'static str {
        if self.members.is_empty() {
            "Empty"
        } else if self.group_epoch > self.assignment_epoch {
            "Assigning"
        } else if self
            .members
            .values()
            .any(|member| !member.is_reconciled_to(self.assignment_epoch))
        {
            "Reconciling"
        } else {
            "Stable"
        }
    }

    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    pub fn member_count(&self) -> usize {
        self.members.len()
    }

    /// The assignor most members name (Kafka's preferred server assignor); ties go to the
    /// name that sorts first, and a group where nobody names one uses the default.
    pub fn assignor_name(&self) -> &'static str {
        self.preferred_assignor().name()
    }

    /// Topic names subscribed by any member (names and regex matches), for OffsetDelete's
    /// GROUP_SUBSCRIBED_TO_TOPIC.
    pub fn subscribed_topic_names(&self, topics: &TopicsByName) -> BTreeSet<String> {
        let mut names: BTreeSet<String> = self
            .members
            .values()
            .flat_map(|member| member.subscribed_topic_names.iter().cloned())
            .collect();
        names.extend(self.regex_matches(topics));
        names
    }

    pub fn describe(&self) -> Vec<MemberDescription> {
        self.members
            .values()
            .map(|member| {
                let target = self
                    .target
                    .get(&member.member_id)
                    .cloned()
                    .unwrap_or_default();
                member.describe(target)
            })
            .collect()
    }

    /// Kafka's `throwIfConsumerGroupHeartbeatRequestIsInvalid`, with its messages.
    fn validate_request(&self, input: &HeartbeatInput) -> Result<(), HeartbeatError> {
        let epoch = input.member_epoch;
        if epoch != JOIN_GROUP_MEMBER_EPOCH && is_blank(&input.member_id) {
            return Err(HeartbeatError::invalid_request("MemberId can't be empty."));
        }
        if input.instance_id.as_deref().is_some_and(is_blank) {
            return Err(HeartbeatError::invalid_request(
                "InstanceId can't be empty.",
            ));
        }
        if input.rack_id.as_deref().is_some_and(is_blank) {
            return Err(HeartbeatError::invalid_request("RackId can't be empty."));
        }
        if epoch == JOIN_GROUP_MEMBER_EPOCH {
            validate_join(input)?;
        } else if epoch == LEAVE_GROUP_STATIC_MEMBER_EPOCH && input.instance_id.is_none() {
            return Err(HeartbeatError::invalid_request("InstanceId can't be null."));
        } else if epoch < LEAVE_GROUP_STATIC_MEMBER_EPOCH {
            return Err(HeartbeatError::invalid_request("MemberEpoch is invalid."));
        }
        validate_assignor(input.server_assignor.as_deref())?;
        match input.subscribed_topic_regex.as_deref() {
            Some(pattern) if !pattern.is_empty() && !self.regexes.contains_key(pattern) => {
                compile_full_match(pattern).map(|_| ())
            }
            _ => Ok(()),
        }
    }

    /// Kafka's `consumerGroupLeave`: epoch -1 removes the member, epoch -2 parks a static
    /// member with its partitions until its session expires or its instance id rejoins.
    fn leave(
        &mut self,
        input: &HeartbeatInput,
        topics: &TopicsByName,
        settings: &GroupSettings,
        now: Instant,
    ) -> Result<HeartbeatOutput, HeartbeatError> {
        self.check_group_exists()?;
        let member_id = match input.instance_id.as_deref() {
            None => self.dynamic_member(&input.member_id)?.member_id.clone(),
            Some(instance_id) => self
                .static_member_for(instance_id, &input.member_id)?
                .member_id
                .clone(),
        };
        if input.member_epoch == LEAVE_GROUP_STATIC_MEMBER_EPOCH {
            self.park_static_member(&member_id, now);
        } else {
            self.remove_member(&member_id);
            self.refresh_target(topics, false);
        }
        Ok(HeartbeatOutput {
            error_code: error_code::NONE,
            error_message: None,
            member_id: Some(member_id),
            member_epoch: input.member_epoch,
            heartbeat_interval_ms: settings.heartbeat_interval_ms,
            assignment: None,
        })
    }

    /// Kafka's `consumerGroupHeartbeat`: create or update the member, bump the group epoch on
    /// a subscription or metadata change, recompute the target, reconcile the member.
    fn join_or_heartbeat(
        &mut self,
        input: &HeartbeatInput,
        topics: &TopicsByName,
        settings: &GroupSettings,
        now: Instant,
    ) -> Result<HeartbeatOutput, HeartbeatError> {
        let joining = input.member_epoch == JOIN_GROUP_MEMBER_EPOCH;
        if !joining {
            self.check_group_exists()?;
        }
        let member_id = if joining && input.member_id.is_empty() {
            generate_member_id()
        } else {
            input.member_id.clone()
        };
        let owned = input.owned.as_deref().map(to_partitions);
        let resolved = self.resolve_member(input, &member_id, owned.as_ref(), settings, now)?;
        // Nothing below fails: the group changes only once the request is known to be valid.
        let (mut member, is_new) = self.install_resolved(resolved);
        let subscription_changed = apply_request(&mut member, input);
        member.last_heartbeat = now;
        if let Some(pattern) = member.subscribed_topic_regex.clone() {
            self.cache_regex(&pattern);
        }
        let assigned_before = member.assigned.clone();
        self.members.insert(member_id.clone(), member);
        self.prune_regexes();
        self.refresh_target(topics, is_new || subscription_changed);
        self.reconcile(&member_id, owned.as_ref(), now);
        Ok(self.heartbeat_response(
            input,
            &member_id,
            &assigned_before,
            owned.as_ref(),
            settings,
        ))
    }

    /// Finds or creates the member of a join or heartbeat, refusing it as Kafka does.
    fn resolve_member(
        &self,
        input: &HeartbeatInput,
        member_id: &str,
        owned: Option<&Partitions>,
        settings: &GroupSettings,
        now: Instant,
    ) -> Result<ResolvedMember, HeartbeatError> {
        if input.member_epoch == JOIN_GROUP_MEMBER_EPOCH {
            return self.resolve_joining_member(input, member_id, settings, now);
        }
        let member = match input.instance_id.as_deref() {
            None => self.dynamic_member(member_id)?,
            Some(instance_id) => self.static_member_for(instance_id, member_id)?,
        };
        check_member_epoch(member, input.member_epoch, owned)?;
        Ok(ResolvedMember::Existing(member.clone()))
    }

    fn resolve_joining_member(
        &self,
        input: &HeartbeatInput,
        member_id: &str,
        settings: &GroupSettings,
        now: Instant,
    ) -> Result<ResolvedMember, HeartbeatError> {
        let holder = input
            .instance_id
            .as_deref()
            .and_then(|instance_id| self.static_member(instance_id));
        if let Some(holder) = holder {
            if holder.member_epoch == LEAVE_GROUP_STATIC_MEMBER_EPOCH {
                return self.replace_static_member(holder, member_id);
            }
            if holder.member_id != member_id {
                return Err(HeartbeatError::new(
                    error_code::UNRELEASED_INSTANCE_ID,
                    format!(
                        "Static member {member_id} with instance id {} cannot join the group \
                         because the instance id is owned by {} member.",
                        holder.instance_id.as_deref().unwrap_or_default(),
                        holder.member_id
                    ),
                ));
            }
        }
        if let Some(existing) = self.members.get(member_id) {
            return Ok(ResolvedMember::Rejoin(existing.reset_for_rejoin()));
        }
        let max_size = usize::try_from(settings.max_size).unwrap_or(usize::MAX);
        if self.members.len() >= max_size {
            return Err(HeartbeatError::new(
                error_code::GROUP_MAX_SIZE_REACHED,
                format!(
                    "The consumer group has reached its maximum capacity of {} members.",
                    settings.max_size
                ),
            ));
        }
        Ok(ResolvedMember::New(Member::new(member_id.to_string(), now)))
    }

    /// A new member id taking over the instance id of a static member that left with -2.
    fn replace_static_member(
        &self,
        holder: &Member,
        member_id: &str,
    ) -> Result<ResolvedMember, HeartbeatError> {
        if holder.member_id != member_id && self.members.contains_key(member_id) {
            // Taking over the instance id under the id of another member would merge two
            // members into one.
            return Err(HeartbeatError::invalid_request(format!(
                "MemberId {member_id} is already used by another member."
            )));
        }
        Ok(ResolvedMember::StaticReplacement {
            replaced_member_id: holder.member_id.clone(),
            member: holder.replaced_by(member_id),
        })
    }

    /// Applies what resolving a member implies for the rest of the group, and returns the
    /// member to update, and whether it is new to the group.
    fn install_resolved(&mut self, resolved: ResolvedMember) -> (Member, bool) {
        match resolved {
            ResolvedMember::Existing(member) => (member, false),
            ResolvedMember::New(member) => (member, true),
            ResolvedMember::Rejoin(member) => {
                self.release_holdings(&member.member_id);
                (member, false)
            }
            ResolvedMember::StaticReplacement {
                replaced_member_id,
                member,
            } => {
                self.transfer_member(&replaced_member_id, &member.member_id);
                (member, false)
            }
        }
    }

    /// Moves what the group keeps under a member id (its target and the partitions it holds)
    /// to a new member id, and forgets the old one.
    fn transfer_member(&mut self, from: &str, to: &str) {
        if from == to {
            return;
        }
        self.members.remove(from);
        if let Some(target) = self.target.remove(from) {
            self.target.insert(to.to_string(), target);
        }
        for holder in self.holders.values_mut() {
            if holder == from {
                *holder = to.to_string();
            }
        }
    }

    /// The member id of a dynamic member, or UNKNOWN_MEMBER_ID.
    fn dynamic_member(&self, member_id: &str) -> Result<&Member, HeartbeatError> {
        self.members.get(member_id).ok_or_else(|| {
            HeartbeatError::new(
                error_code::UNKNOWN_MEMBER_ID,
                format!(
                    "Member {member_id} is not a member of group {}.",
                    self.group_id
                ),
            )
        })
    }

    /// The static member holding `instance_id`, which must be `member_id`.
    fn static_member_for(
        &self,
        instance_id: &str,
        member_id: &str,
    ) -> Result<&Member, HeartbeatError> {
        let member = self.static_member(instance_id).ok_or_else(|| {
            HeartbeatError::new(
                error_code::UNKNOWN_MEMBER_ID,
                format!("Instance id {instance_id} is unknown."),
            )
        })?;
        if member.member_id != member_id {
            return Err(HeartbeatError::new(
                error_code::FENCED_INSTANCE_ID,
                format!(
                    "Static member {member_id} with instance id {instance_id} was fenced by \
                     member {}.",
                    member.member_id
                ),
            ));
        }
        Ok(member)
    }

    fn static_member(&self, instance_id: &str) -> Option<&Member> {
        self.members
            .values()
            .find(|member| member.instance_id.as_deref() == Some(instance_id))
    }

    /// Kafka answers GROUP_ID_NOT_FOUND to anything but a join for a group that never had
    /// an epoch; a group that emptied out (or was restored) still exists.
    fn check_group_exists(&self) -> Result<(), HeartbeatError> {
        if self.group_epoch == 0 && self.members.is_empty() {
            return Err(HeartbeatError::new(
                error_code::GROUP_ID_NOT_FOUND,
                format!("Consumer group {} not found.", self.group_id),
            ));
        }
        Ok(())
    }

    /// A static member leaving with -2: it keeps its assigned partitions, held for it, for
    /// the session timeout; what it was revoking is released (Kafka's
    /// `consumerGroupStaticMemberGroupLeave`).
    fn park_static_member(&mut self, member_id: &str, now: Instant) {
        let Some(member) = self.members.get_mut(member_id) else {
            return;
        };
        let released = std::mem::take(&mut member.pending_revocation);
        member.member_epoch = LEAVE_GROUP_STATIC_MEMBER_EPOCH;
        member.last_heartbeat = now;
        member.revocation_started = None;
        for (topic_id, partitions) in released {
            for partition in partitions {
                self.holders.remove(&(topic_id, partition));
            }
        }
    }

    /// Fences a member: it leaves the group and its partitions are free. Bumps the group epoch
    /// so that the others rebalance.
    fn remove_member(&mut self, member_id: &str) {
        self.release_holdings(member_id);
        self.members.remove(member_id);
        self.target.remove(member_id);
        self.group_epoch = self.group_epoch.saturating_add(1);
        self.prune_regexes();
    }

    fn release_holdings(&mut self, member_id: &str) {
        let Some(member) = self.members.get(member_id) else {
            return;
        };
        for (topic_id, partition) in
            flatten(&member.assigned).chain(flatten(&member.pending_revocation))
        {
            if self.holders.get(&(topic_id, partition)).map(String::as_str) == Some(member_id) {
                self.holders.remove(&(topic_id, partition));
            }
        }
    }

    /// Bumps the group epoch when asked to, or when the subscribed topics changed in the
    /// catalog (created, deleted, repartitioned, or matched by a regex), then recomputes
    /// the target if the group epoch moved past it. Returns whether anything changed.
    fn refresh_target(&mut self, topics: &TopicsByName, bump: bool) -> bool {
        let signature = self.subscription_signature(topics);
        let metadata_changed = signature != self.subscription_signature;
        self.subscription_signature = signature;
        if bump || metadata_changed {
            self.group_epoch = self.group_epoch.saturating_add(1);
        }
        let reassign = self.group_epoch > self.assignment_epoch;
        if reassign {
            self.compute_target_assignment(topics);
        }
        bump || metadata_changed || reassign
    }

    fn subscription_signature(&self, topics: &TopicsByName) -> Vec<(String, Uuid, i32)> {
        self.subscribed_topic_names(topics)
            .into_iter()
            .filter_map(|name| {
                let topic = topics.get(&name)?;
                Some((name, topic.id, topic.partitions))
            })
            .collect()
    }

    /// Runs the group's assignor over all members; their previous targets make it sticky.
    fn compute_target_assignment(&mut self, topics: &TopicsByName) {
        let subscriptions: Vec<(&str, Vec<Uuid>)> = self
            .members
            .values()
            .map(|member| {
                (
                    member.member_id.as_str(),
                    self.member_topic_ids(member, topics),
                )
            })
            .collect();
        let subscribed_ids: BTreeSet<Uuid> = subscriptions
            .iter()
            .flat_map(|(_, ids)| ids.iter().copied())
            .collect();
        let topics_by_id: BTreeMap<Uuid, TopicInfo> = topics
            .values()
            .filter(|topic| subscribed_ids.contains(&topic.id))
            .map(|topic| (topic.id, topic.clone()))
            .collect();
        let assignor_members: Vec<AssignorMember<'_>> = subscriptions
            .iter()
            .map(|(member_id, subscribed)| AssignorMember {
                member_id,
                subscribed,
                current: self.target.get(*member_id),
            })
            .collect();
        let target = self
            .preferred_assignor()
            .assign(&assignor_members, &topics_by_id);
        self.target = target;
        self.assignment_epoch = self.group_epoch;
    }

    fn preferred_assignor(&self) -> &'static dyn ServerAssignor {
        let mut votes: BTreeMap<&'static str, usize> = BTreeMap::new();
        for name in self.members.values().filter_map(|m| m.server_assignor) {
            *votes.entry(name).or_default() += 1;
        }
        // Reverse on the name so that, among equal counts, the first name wins `max_by_key`.
        let preferred = votes
            .into_iter()
            .max_by_key(|(name, count)| (*count, std::cmp::Reverse(*name)))
            .map_or(assignor::DEFAULT_ASSIGNOR, |(name, _)| name);
        assignor::assignor_by_name(preferred).unwrap_or(&assignor::UniformAssignor)
    }

    /// The ids of the existing topics a member subscribes to, by name or by regex.
    fn member_topic_ids(&self, member: &Member, topics: &TopicsByName) -> Vec<Uuid> {
        let by_name = member
            .subscribed_topic_names
            .iter()
            .filter_map(|name| topics.get(name));
        let regex = member
            .subscribed_topic_regex
            .as_ref()
            .and_then(|pattern| self.regexes.get(pattern));
        let by_regex = topics
            .iter()
            .filter(|(name, _)| regex.is_some_and(|regex| regex.is_match(name)))
            .map(|(_, topic)| topic);
        let ids: BTreeSet<Uuid> = by_name.chain(by_regex).map(|topic| topic.id).collect();
        ids.into_iter().collect()
    }

    /// The names of the topics that some member's regex matches.
    fn regex_matches(&self, topics: &TopicsByName) -> BTreeSet<String> {
        let used: BTreeSet<&str> = self
            .members
            .values()
            .filter_map(|member| member.subscribed_topic_regex.as_deref())
            .collect();
        let regexes: Vec<&Regex> = used
            .iter()
            .filter_map(|pattern| self.regexes.get(*pattern))
            .collect();
        topics
            .keys()
            .filter(|name| regexes.iter().any(|regex| regex.is_match(name)))
            .cloned()
            .collect()
    }

    fn cache_regex(&mut self, pattern: &str) {
        if self.regexes.contains_key(pattern) {
            return;
        }
        // Validated before the group changed; a failure here would only drop the regex.
        if let Ok(regex) = compile_full_match(pattern) {
            self.regexes.insert(pattern.to_string(), regex);
        }
    }

    /// Forgets the regexes no member uses any more, so the cache stays bounded by members.
    fn prune_regexes(&mut self) {
        let used: BTreeSet<&str> = self
            .members
            .values()
            .filter_map(|member| member.subscribed_topic_regex.as_deref())
            .collect();
        self.regexes
            .retain(|pattern, _| used.contains(pattern.as_str()));
    }

    /// Moves the member one step towards its target (Kafka's `maybeReconcile`).
    fn reconcile(&mut self, member_id: &str, owned: Option<&Partitions>, now: Instant) {
        let Some(member) = self.members.get(member_id) else {
            return;
        };
        let target = self
            .target
            .get(member_id)
            .map(to_partitions_from_lists)
            .unwrap_or_default();
        let holders = &self.holders;
        let held_by_other = |topic_id: &Uuid, partition: i32| {
            holders
                .get(&(*topic_id, partition))
                .is_some_and(|holder| holder != member_id)
        };
        let Some(next) =
            next_assignment(member, &target, self.assignment_epoch, owned, held_by_other)
        else {
            return;
        };
        if next.state == member.state
            && next.member_epoch == member.member_epoch
            && next.assigned == member.assigned
            && next.pending_revocation == member.pending_revocation
        {
            return;
        }
        self.apply_next_assignment(member_id, next, now);
    }

    fn apply_next_assignment(&mut self, member_id: &str, next: NextAssignment, now: Instant) {
        self.release_holdings(member_id);
        for partition in flatten(&next.assigned).chain(flatten(&next.pending_revocation)) {
            let previous = self.holders.insert(partition, member_id.to_string());
            debug_assert!(
                previous.is_none(),
                "partition {partition:?} given to {member_id} while held by {previous:?}"
            );
        }
        let Some(member) = self.members.get_mut(member_id) else {
            return;
        };
        member.previous_member_epoch = member.member_epoch;
        member.member_epoch = next.member_epoch;
        member.state = next.state;
        member.assigned = next.assigned;
        member.pending_revocation = next.pending_revocation;
        // Kafka (re)schedules the rebalance timeout whenever the member changes while it has
        // partitions to revoke, and cancels it otherwise.
        member.revocation_started =
            (member.state == MemberState::UnrevokedPartitions).then_some(now);
    }

    fn heartbeat_response(
        &self,
        input: &HeartbeatInput,
        member_id: &str,
        assigned_before: &Partitions,
        owned: Option<&Partitions>,
        settings: &GroupSettings,
    ) -> HeartbeatOutput {
        let (member_epoch, assignment) = match self.members.get(member_id) {
            Some(member) => {
                let send = input.member_epoch == JOIN_GROUP_MEMBER_EPOCH
                    || is_full_request(input)
                    || member.assigned != *assigned_before
                    || owned.is_some_and(|owned| *owned != member.assigned);
                (
                    member.member_epoch,
                    send.then(|| to_lists(&member.assigned)),
                )
            }
            None => (0, None),
        };
        HeartbeatOutput {
            error_code: error_code::NONE,
            error_message: None,
            member_id: Some(member_id.to_string()),
            member_epoch,
            heartbeat_interval_ms: settings.heartbeat_interval_ms,
            assignment,
        }
    }
}

/// Kafka's `throwIfConsumerGroupMemberEpochIsInvalid`: a client ahead of the coordinator, or
/// behind it, must rejoin; except one epoch behind with owned partitions the member still
/// has, which is a lost response.
fn check_member_epoch(
    member: &Member,
    received_epoch: i32,
    owned: Option<&Partitions>,
) -> Result<(), HeartbeatError> {
    if received_epoch > member.member_epoch {
        return Err(HeartbeatError::new(
            error_code::FENCED_MEMBER_EPOCH,
            format!(
                "The consumer group member has a greater member epoch ({received_epoch}) than \
                 the one known by the group coordinator ({}). The member must abandon all its \
                 partitions and rejoin.",
                member.member_epoch
            ),
        ));
    }
    let lost_response = received_epoch == member.previous_member_epoch
        && owned.is_some_and(|owned| is_subset(owned, &member.assigned));
    if received_epoch < member.member_epoch && !lost_response {
        return Err(HeartbeatError::new(
            error_code::FENCED_MEMBER_EPOCH,
            format!(
                "The consumer group member has a smaller member epoch ({received_epoch}) than \
                 the one known by the group coordinator ({}). The member must abandon all its \
                 partitions and rejoin.",
                member.member_epoch
            ),
        ));
    }
    Ok(())
}

/// Kafka's `CurrentAssignmentBuilder.build`: None when the member cannot or need not move.
fn next_assignment(
    member: &Member,
    target: &Partitions,
    target_epoch: i32,
    owned: Option<&Partitions>,
    held_by_other: impl Fn(&Uuid, i32) -> bool,
) -> Option<NextAssignment> {
    match member.state {
        MemberState::Stable if member.member_epoch == target_epoch => None,
        MemberState::UnrevokedPartitions if owns_any(owned, &member.pending_revocation) => None,
        _ => Some(compute_next_assignment(
            member,
            target,
            target_epoch,
            owned,
            held_by_other,
        )),
    }
}

/// Kafka's `computeNextAssignment`: keep current ∩ target; if the member still owns anything
/// else, ask it to revoke that first, at its current epoch; otherwise move it to the target
/// epoch with every target partition nobody else holds.
fn compute_next_assignment(
    member: &Member,
    target: &Partitions,
    target_epoch: i32,
    owned: Option<&Partitions>,
    held_by_other: impl Fn(&Uuid, i32) -> bool,
) -> NextAssignment {
    let mut kept = Partitions::new();
    let mut to_revoke = Partitions::new();
    let mut to_add = Partitions::new();
    let mut unreleased = false;
    let empty = BTreeSet::new();
    let topic_ids: BTreeSet<&Uuid> = target.keys().chain(member.assigned.keys()).collect();
    for topic_id in topic_ids {
        let wanted = target.get(topic_id).unwrap_or(&empty);
        let current = member.assigned.get(topic_id).unwrap_or(&empty);
        let keep: BTreeSet<i32> = current.intersection(wanted).copied().collect();
        let revoke: BTreeSet<i32> = current.difference(&keep).copied().collect();
        let missing: Vec<i32> = wanted.difference(&keep).copied().collect();
        let add: BTreeSet<i32> = missing
            .iter()
            .copied()
            .filter(|partition| !held_by_other(topic_id, *partition))
            .collect();
        unreleased |= add.len() != missing.len();
        insert_non_empty(&mut kept, *topic_id, keep);
        insert_non_empty(&mut to_revoke, *topic_id, revoke);
        insert_non_empty(&mut to_add, *topic_id, add);
    }
    if !to_revoke.is_empty() && owns_any(owned, &to_revoke) {
        return NextAssignment {
            state: MemberState::UnrevokedPartitions,
            member_epoch: member.member_epoch,
            assigned: kept,
            pending_revocation: to_revoke,
        };
    }
    for (topic_id, partitions) in to_add {
        kept.entry(topic_id).or_default().extend(partitions);
    }
    NextAssignment {
        state: if unreleased {
            MemberState::UnreleasedPartitions
        } else {
            MemberState::Stable
        },
        member_epoch: target_epoch,
        assigned: kept,
        pending_revocation: Partitions::new(),
    }
}

/// Whether the member may still own one of `partitions`: an unknown owned set (None, the
/// client did not report it) counts as owning them all, as in Kafka.
fn owns_any(owned: Option<&Partitions>, partitions: &Partitions) -> bool {
    let Some(owned) = owned else {
        return true;
    };
    owned.iter().any(|(topic_id, owned_partitions)| {
        partitions
            .get(topic_id)
            .is_some_and(|pending| !pending.is_disjoint(owned_partitions))
    })
}

fn is_subset(owned: &Partitions, assigned: &Partitions) -> bool {
    owned.iter().all(|(topic_id, partitions)| {
        assigned
            .get(topic_id)
            .is_some_and(|assigned| partitions.is_subset(assigned))
    })
}

fn revocation_timed_out(member: &Member, now: Instant) -> bool {
    member.state == MemberState::UnrevokedPartitions
        && member.revocation_started.is_some_and(|started| {
            now.saturating_duration_since(started) >= millis(member.rebalance_timeout_ms)
        })
}

/// Updates the member from the request's "unchanged if null" fields; returns whether its
/// subscription changed (Kafka's `hasMemberSubscriptionChanged` and regex update).
fn apply_request(member: &mut Member, input: &HeartbeatInput) -> bool {
    if let Some(instance_id) = &input.instance_id {
        member.instance_id = Some(instance_id.clone());
    }
    if let Some(rack_id) = &input.rack_id {
        member.rack_id = Some(rack_id.clone());
    }
    if input.rebalance_timeout_ms != -1 {
        member.rebalance_timeout_ms = input.rebalance_timeout_ms;
    }
    if let Some(name) = &input.server_assignor {
        member.server_assignor = assignor::assignor_by_name(name).map(|a| a.name());
    }
    member.client_id.clone_from(&input.client_id);
    member.client_host.clone_from(&input.client_host);
    let mut changed = false;
    if let Some(names) = &input.subscribed_topic_names {
        let names: BTreeSet<String> = names.iter().cloned().collect();
        changed |= names != member.subscribed_topic_names;
        member.subscribed_topic_names = names;
    }
    if let Some(pattern) = &input.subscribed_topic_regex {
        // An empty regex is how a client drops its regex subscription.
        let pattern = (!pattern.is_empty()).then(|| pattern.clone());
        changed |= pattern != member.subscribed_topic_regex;
        member.subscribed_topic_regex = pattern;
    }
    changed
}

fn validate_join(input: &HeartbeatInput) -> Result<(), HeartbeatError> {
    if input.rebalance_timeout_ms == -1 {
        return Err(HeartbeatError::invalid_request(
            "RebalanceTimeoutMs must be provided in first request.",
        ));
    }
    if input.owned.as_ref().is_some_and(|owned| !owned.is_empty()) {
        return Err(HeartbeatError::invalid_request(
            "TopicPartitions must be empty when (re-)joining.",
        ));
    }
    let has_names = input
        .subscribed_topic_names
        .as_ref()
        .is_some_and(|names| !names.is_empty());
    let has_regex = input
        .subscribed_topic_regex
        .as_ref()
        .is_some_and(|pattern| !pattern.is_empty());
    if !has_names && !has_regex {
        return Err(HeartbeatError::invalid_request(
            "SubscribedTopicNames or SubscribedTopicRegex must be set in first request.",
        ));
    }
    Ok(())
}

fn validate_assignor(name: Option<&str>) -> Result<(), HeartbeatError> {
    match name {
        Some(name) if assignor::assignor_by_name(name).is_none() => Err(HeartbeatError::new(
            error_code::UNSUPPORTED_ASSIGNOR,
            format!(
                "ServerAssignor {name} is not supported. Supported assignors: {}.",
                assignor::ASSIGNOR_NAMES.join(", ")
            ),
        )),
        _ => Ok(()),
    }
}

/// Kafka matches a subscription regex against the whole topic name (`Matcher.matches`).
/// The pattern is compiled alone first, so that wrapping it cannot make an invalid pattern
/// valid (`a)|(b` would otherwise compile).
fn compile_full_match(pattern: &str) -> Result<Regex, HeartbeatError> {
    let invalid = |error: regex::Error| {
        HeartbeatError::invalid_request(format!(
            "SubscribedTopicRegex `{pattern}` is not a valid regular expression: {error}."
        ))
    };
    let compile = |source: &str| {
        RegexBuilder::new(source)
            .size_limit(REGEX_SIZE_LIMIT_BYTES)
            .build()
            .map_err(invalid)
    };
    compile(pattern)?;
    compile(&format!("^(?:{pattern})$"))
}

/// Kafka's `throwIfEmptyString`: Java's `trim` drops every char at or below U+0020.
fn is_blank(value: &str) -> bool {
    value.chars().all(|c| c <= ' ')
}

/// A full request (Kafka's definition): the client sends all its fields after an error;
/// it gets its full assignment back.
fn is_full_request(input: &HeartbeatInput) -> bool {
    input.rebalance_timeout_ms != -1
        && input.subscribed_topic_names.is_some()
        && input.owned.is_some()
}

fn millis(ms: i32) -> Duration {
    Duration::from_millis(u64::try_from(ms).unwrap_or(0))
}

/// A member id as Kafka's `Uuid.randomUuid().toString()` makes one: a random v4 UUID in
/// URL-safe base64 without padding (22 chars), never starting with '-' (Kafka redraws those
/// so that ids never look like command-line flags).
fn generate_member_id() -> String {
    loop {
        let id = base64_url_no_pad(Uuid::new_v4().as_bytes());
        if !id.starts_with('-') {
            return id;
        }
    }
}

fn base64_url_no_pad(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut encoded = String::with_capacity((bytes.len() * 4).div_ceil(3));
    for chunk in bytes.chunks(3) {
        let bits = chunk
            .iter()
            .chain(std::iter::repeat(&0))
            .take(3)
            .fold(0u32, |bits, byte| (bits << 8) | u32::from(*byte));
        // n input bytes carry 8n bits: n + 1 six-bit digits, most significant first.
        for digit in 0..=chunk.len() {
            let index = (bits >> (18 - 6 * digit)) & 0x3f;
            encoded.push(char::from(ALPHABET[index as usize]));
        }
    }
    encoded
}

fn to_partitions(list: &[(Uuid, Vec<i32>)]) -> Partitions {
    let mut partitions = Partitions::new();
    for (topic_id, topic_partitions) in list {
        // A topic listed with no partitions owns nothing; keep it out so that comparisons
        // with the assignment are by content.
        if !topic_partitions.is_empty() {
            partitions
                .entry(*topic_id)
                .or_default()
                .extend(topic_partitions.iter().copied());
        }
    }
    partitions
}

fn to_partitions_from_lists(lists: &BTreeMap<Uuid, Vec<i32>>) -> Partitions {
    lists
        .iter()
        .filter(|(_, partitions)| !partitions.is_empty())
        .map(|(topic_id, partitions)| (*topic_id, partitions.iter().copied().collect()))
        .collect()
}

fn to_lists(partitions: &Partitions) -> BTreeMap<Uuid, Vec<i32>> {
    partitions
        .iter()
        .map(|(topic_id, set)| (*topic_id, set.iter().copied().collect()))
        .collect()
}

fn flatten(partitions: &Partitions) -> impl Iterator<Item = (Uuid, i32)> + '_ {
    partitions
        .iter()
        .flat_map(|(topic_id, set)| set.iter().map(move |partition| (*topic_id, *partition)))
}

fn insert_non_empty(partitions: &mut Partitions, topic_id: Uuid, set: BTreeSet<i32>) {
    if !set.is_empty() {
        partitions.insert(topic_id, set);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const REBALANCE_TIMEOUT_MS: i32 = 30_000;

    fn topic_id(n: u128) -> Uuid {
        Uuid::from_u128(n)
    }

    fn topics(list: &[(&str, u128, i32)]) -> TopicsByName {
        list.iter()
            .map(|(name, id, partitions)| {
                let info = TopicInfo {
                    id: topic_id(*id),
                    name: name.to_string(),
                    partitions: *partitions,
                };
                (name.to_string(), info)
            })
            .collect()
    }

    /// A client that does what the Java consumer does: it owns exactly what it was last
    /// given, revoking at once, and reports it on every heartbeat.
    #[derive(Debug, Clone)]
    struct Client {
        member_id: String,
        epoch: i32,
        owned: BTreeMap<Uuid, Vec<i32>>,
        instance_id: Option<String>,
    }

    impl Client {
        fn count(&self) -> usize {
            self.owned.values().map(Vec::len).sum()
        }
    }

    struct Harness {
        group: ConsumerGroup,
        topics: TopicsByName,
        settings: GroupSettings,
        now: Instant,
    }

    impl Harness {
        fn new(topics: TopicsByName) -> Self {
            Harness {
                group: ConsumerGroup::new("g".to_string()),
                topics,
                settings: GroupSettings {
                    session_timeout_ms: 45_000,
                    heartbeat_interval_ms: 5_000,
                    max_size: 100,
                },
                now: Instant::now(),
            }
        }

        fn advance(&mut self, ms: u64) {
            self.now += Duration::from_millis(ms);
        }

        fn send(&mut self, input: HeartbeatInput) -> HeartbeatOutput {
            let output = self
                .group
                .heartbeat(input, &self.topics, &self.settings, self.now);
            check_invariants(&self.group);
            output
        }

        fn join_input(names: &[&str], instance_id: Option<&str>) -> HeartbeatInput {
            HeartbeatInput {
                member_epoch: 0,
                instance_id: instance_id.map(str::to_string),
                rebalance_timeout_ms: REBALANCE_TIMEOUT_MS,
                subscribed_topic_names: Some(names.iter().map(|n| n.to_string()).collect()),
                owned: Some(Vec::new()),
                client_id: "client".to_string(),
                client_host: "/127.0.0.1".to_string(),
                ..HeartbeatInput::default()
            }
        }

        fn join_with(&mut self, input: HeartbeatInput) -> Client {
            let instance_id = input.instance_id.clone();
            let output = self.send(input);
            assert_eq!(output.error_code, error_code::NONE, "{output:?}");
            Client {
                member_id: output.member_id.expect("member id"),
                epoch: output.member_epoch,
                owned: output.assignment.expect("a join gets its assignment"),
                instance_id,
            }
        }

        fn join(&mut self, names: &[&str]) -> Client {
            self.join_with(Self::join_input(names, None))
        }

        fn beat_input(client: &Client) -> HeartbeatInput {
            HeartbeatInput {
                member_id: client.member_id.clone(),
                member_epoch: client.epoch,
                instance_id: client.instance_id.clone(),
                rebalance_timeout_ms: -1,
                owned: Some(client.owned.clone().into_iter().collect()),
                ..HeartbeatInput::default()
            }
        }

        fn beat(&mut self, client: &mut Client) -> HeartbeatOutput {
            let output = self.send(Self::beat_input(client));
            if output.error_code == error_code::NONE {
                client.epoch = output.member_epoch;
                if let Some(assignment) = &output.assignment {
                    client.owned = assignment.clone();
                }
            }
            output
        }

        /// Heartbeats every client in turn, checking after each that no partition is
        /// consumed by two clients.
        fn round(&mut self, clients: &mut [Client]) {
            for index in 0..clients.len() {
                let output = self.beat(&mut clients[index]);
                assert_eq!(output.error_code, error_code::NONE, "{output:?}");
                assert_disjoint(clients);
            }
        }

        fn settle(&mut self, clients: &mut [Client]) {
            for _ in 0..4 {
                self.round(clients);
            }
            assert_eq!(self.group.state_name(), "Stable");
        }
    }

    fn assert_disjoint(clients: &[Client]) {
        let mut seen = BTreeMap::new();
        for client in clients {
            for (topic, partitions) in &client.owned {
                for partition in partitions {
                    let other = seen.insert((*topic, *partition), &client.member_id);
                    assert!(other.is_none(), "{topic}-{partition} owned twice");
                }
            }
        }
    }

    /// Server side: every partition held by at most one member, and the holder index agrees.
    fn check_invariants(group: &ConsumerGroup) {
        let mut held = BTreeMap::new();
        for member in group.members.values() {
            let all = flatten(&member.assigned).chain(flatten(&member.pending_revocation));
            for partition in all {
                let other = held.insert(partition, member.member_id.clone());
                assert!(other.is_none(), "{partition:?} held twice");
            }
        }
        assert_eq!(held, group.holders);
    }

    fn union_count(clients: &[Client]) -> usize {
        clients.iter().map(Client::count).sum()
    }

    fn twelve_partitions() -> Harness {
        Harness::new(topics(&[("orders", 1, 12)]))
    }

    #[test]
    fn generated_member_ids_look_like_kafka_uuids() {
        let mut bytes = [0u8; 16];
        bytes[15] = 1;
        assert_eq!(base64_url_no_pad(&bytes), "AAAAAAAAAAAAAAAAAAAAAQ");
        let id = generate_member_id();
        assert_eq!(id.len(), 22);
        assert!(!id.starts_with('-'));
        assert!(id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'));
    }

    #[test]
    fn first_member_gets_everything_and_group_is_stable() {
        let mut h = twelve_partitions();
        assert_eq!(h.group.state_name(), "Empty");
        let client = h.join(&["orders"]);
        assert_eq!(client.epoch, 1);
        assert_eq!(client.count(), 12);
        assert_eq!(h.group.group_epoch(), 1);
        assert_eq!(h.group.assignment_epoch(), 1);
        assert_eq!(h.group.state_name(), "Stable");
        assert_eq!(h.group.assignor_name(), "uniform");
    }

    #[test]
    fn three_members_joining_one_by_one_never_share_a_partition() {
        let mut h = twelve_partitions();
        let mut clients = Vec::new();
        for expected_each in [12, 6, 4] {
            clients.push(h.join(&["orders"]));
            assert_disjoint(&clients);
            if clients.len() > 1 {
                assert_eq!(h.group.state_name(), "Reconciling");
            }
            h.settle(&mut clients);
            for client in &clients {
                assert_eq!(client.count(), expected_each);
                assert_eq!(client.epoch, h.group.group_epoch());
            }
            assert_eq!(union_count(&clients), 12);
        }
    }

    #[test]
    fn heartbeat_resends_assignment_only_when_it_changes() {
        let mut h = twelve_partitions();
        let mut client = h.join(&["orders"]);
        let output = h.beat(&mut client);
        assert_eq!(output.assignment, None);
        assert_eq!(output.heartbeat_interval_ms, 5_000);
        // A client reporting something else than it was given gets its assignment again.
        let mut confused = client.clone();
        confused.owned.clear();
        assert!(h.beat(&mut confused).assignment.is_some());
    }

    #[test]
    fn leaving_member_partitions_go_to_the_others() {
        let mut h = twelve_partitions();
        let mut clients = vec![h.join(&["orders"]), h.join(&["orders"])];
        h.settle(&mut clients);
        clients.push(h.join(&["orders"]));
        h.settle(&mut clients);
        let epoch_before = h.group.group_epoch();

        let leaver = clients.pop().expect("three clients");
        let mut input = Harness::beat_input(&leaver);
        input.member_epoch = LEAVE_GROUP_MEMBER_EPOCH;
        let output = h.send(input);
        assert_eq!(output.error_code, error_code::NONE);
        assert_eq!(output.member_epoch, LEAVE_GROUP_MEMBER_EPOCH);
        assert_eq!(h.group.member_count(), 2);
        assert_eq!(h.group.group_epoch(), epoch_before + 1);

        h.settle(&mut clients);
        assert_eq!(clients[0].count(), 6);
        assert_eq!(clients[1].count(), 6);
    }

    #[test]
    fn unknown_members_and_wrong_epochs_are_refused() {
        let mut h = twelve_partitions();
        let mut first = h.join(&["orders"]);
        let mut stranger = first.clone();
        stranger.member_id = "nobody".to_string();
        assert_eq!(
            h.beat(&mut stranger).error_code,
            error_code::UNKNOWN_MEMBER_ID
        );

        let mut ahead = first.clone();
        ahead.epoch += 1;
        assert_eq!(
            h.beat(&mut ahead).error_code,
            error_code::FENCED_MEMBER_EPOCH
        );

        // Move `first` from epoch 1 to 2 through a revocation, then lose the response.
        let everything = first.owned.clone();
        let mut second = h.join(&["orders"]);
        h.beat(&mut first);
        assert_eq!(first.epoch, 1, "revoking keeps the epoch");
        let before_bump = first.clone();
        h.beat(&mut first);
        assert_eq!(first.epoch, 2);
        h.beat(&mut second);

        // One epoch behind with owned partitions it still has: a lost response, accepted.
        let mut lost = before_bump.clone();
        lost.owned = first.owned.clone();
        let output = h.beat(&mut lost);
        assert_eq!(output.error_code, error_code::NONE);
        assert_eq!(output.member_epoch, 2);

        // One epoch behind but still owning partitions it was asked to give up: fenced.
        let mut zombie = before_bump;
        zombie.owned = everything;
        assert_eq!(
            h.beat(&mut zombie).error_code,
            error_code::FENCED_MEMBER_EPOCH
        );
    }

    #[test]
    fn requests_are_validated_like_kafka() {
        let mut h = twelve_partitions();
        let no_subscription = HeartbeatInput {
            subscribed_topic_names: Some(Vec::new()),
            ..Harness::join_input(&[], None)
        };
        let output = h.send(no_subscription);
        assert_eq!(output.error_code, error_code::INVALID_REQUEST);
        assert_eq!(
            output.error_message.as_deref(),
            Some("SubscribedTopicNames or SubscribedTopicRegex must be set in first request.")
        );
        let no_timeout = HeartbeatInput {
            rebalance_timeout_ms: -1,
            ..Harness::join_input(&["orders"], None)
        };
        assert_eq!(h.send(no_timeout).error_code, error_code::INVALID_REQUEST);
        let bad_assignor = HeartbeatInput {
            server_assignor: Some("sticky".to_string()),
            ..Harness::join_input(&["orders"], None)
        };
        assert_eq!(
            h.send(bad_assignor).error_code,
            error_code::UNSUPPORTED_ASSIGNOR
        );
        let bad_regex = HeartbeatInput {
            subscribed_topic_regex: Some("orders-(".to_string()),
            ..Harness::join_input(&[], None)
        };
        assert_eq!(h.send(bad_regex).error_code, error_code::INVALID_REQUEST);
        let bad_epoch = HeartbeatInput {
            member_id: "m".to_string(),
            member_epoch: -3,
            ..HeartbeatInput::default()
        };
        assert_eq!(h.send(bad_epoch).error_code, error_code::INVALID_REQUEST);
        // No group was ever created by those: a heartbeat finds no group.
        let heartbeat = HeartbeatInput {
            member_id: "m".to_string(),
            member_epoch: 1,
            ..HeartbeatInput::default()
        };
        assert_eq!(h.send(heartbeat).error_code, error_code::GROUP_ID_NOT_FOUND);
        assert!(h.group.is_empty());
        assert_eq!(h.group.group_epoch(), 0);
    }

    #[test]
    fn group_max_size_is_enforced() {
        let mut h = twelve_partitions();
        h.settings.max_size = 1;
        let first = h.join(&["orders"]);
        let output = h.send(Harness::join_input(&["orders"], None));
        assert_eq!(output.error_code, error_code::GROUP_MAX_SIZE_REACHED);
        // The member already in the group may still rejoin.
        let rejoin = HeartbeatInput {
            member_id: first.member_id.clone(),
            ..Harness::join_input(&["orders"], None)
        };
        assert_eq!(h.send(rejoin).error_code, error_code::NONE);
    }

    #[test]
    fn rejoining_with_epoch_zero_resets_the_member() {
        let mut h = twelve_partitions();
        let mut clients = vec![h.join(&["orders"]), h.join(&["orders"])];
        h.settle(&mut clients);
        let epoch = h.group.group_epoch();
        let rejoin = HeartbeatInput {
            member_id: clients[0].member_id.clone(),
            ..Harness::join_input(&["orders"], None)
        };
        let output = h.send(rejoin);
        assert_eq!(output.error_code, error_code::NONE);
        assert_eq!(output.member_epoch, epoch);
        assert_eq!(
            h.group.group_epoch(),
            epoch,
            "same subscription, no rebalance"
        );
        let owned = output.assignment.expect("a join gets its assignment");
        assert_eq!(owned, clients[0].owned);
    }

    #[test]
    fn expired_sessions_remove_members() {
        let mut h = twelve_partitions();
        let mut clients = vec![h.join(&["orders"]), h.join(&["orders"])];
        h.settle(&mut clients);
        h.advance(30_000);
        h.beat(&mut clients[0]);
        h.advance(16_000);
        assert!(h.group.expire_members(&h.topics, &h.settings, h.now));
        check_invariants(&h.group);
        assert_eq!(h.group.member_count(), 1);
        assert!(!h.group.expire_members(&h.topics, &h.settings, h.now));
        clients.truncate(1);
        h.settle(&mut clients);
        assert_eq!(clients[0].count(), 12);
    }

    #[test]
    fn member_that_does_not_revoke_in_time_is_fenced() {
        let mut h = twelve_partitions();
        let mut slow = h.join(&["orders"]);
        let mut other = h.join(&["orders"]);
        let all = slow.owned.clone();
        h.beat(&mut slow);
        assert_eq!(slow.count(), 6);
        // The client keeps consuming everything and says so.
        slow.owned = all;
        h.advance(REBALANCE_TIMEOUT_MS as u64 / 2);
        h.beat(&mut slow);
        h.beat(&mut other);
        assert_eq!(other.count(), 0, "partitions still held by the slow member");
        h.advance(REBALANCE_TIMEOUT_MS as u64 / 2);
        assert!(h.group.expire_members(&h.topics, &h.settings, h.now));
        assert_eq!(h.group.member_count(), 1);
        let mut clients = vec![other];
        h.settle(&mut clients);
        assert_eq!(clients[0].count(), 12);
        assert_eq!(h.beat(&mut slow).error_code, error_code::UNKNOWN_MEMBER_ID);
    }

    #[test]
    fn static_member_rejoin_keeps_its_partitions_without_moving_others() {
        let mut h = twelve_partitions();
        let mut clients = vec![
            h.join_with(Harness::join_input(&["orders"], Some("i1"))),
            h.join_with(Harness::join_input(&["orders"], Some("i2"))),
        ];
        h.settle(&mut clients);
        let epoch = h.group.group_epoch();
        let (before_1, before_2) = (clients[0].owned.clone(), clients[1].owned.clone());

        // A second process claiming a live instance id is refused.
        let output = h.send(Harness::join_input(&["orders"], Some("i1")));
        assert_eq!(output.error_code, error_code::UNRELEASED_INSTANCE_ID);

        let mut input = Harness::beat_input(&clients[0]);
        input.member_epoch = LEAVE_GROUP_STATIC_MEMBER_EPOCH;
        let output = h.send(input);
        assert_eq!(output.member_epoch, LEAVE_GROUP_STATIC_MEMBER_EPOCH);
        assert_eq!(
            h.group.group_epoch(),
            epoch,
            "a temporary leave does not rebalance"
        );
        assert_eq!(h.group.member_count(), 2);
        let mut stayer = clients.remove(1);
        h.beat(&mut stayer);
        assert_eq!(stayer.owned, before_2);

        h.advance(10_000);
        let mut restarted = h.join_with(Harness::join_input(&["orders"], Some("i1")));
        assert_ne!(restarted.member_id, clients[0].member_id);
        assert_eq!(restarted.owned, before_1);
        assert_eq!(restarted.epoch, epoch);
        assert_eq!(h.group.group_epoch(), epoch);
        let mut clients = vec![restarted.clone(), stayer];
        h.settle(&mut clients);
        assert_eq!(clients[0].owned, before_1);
        assert_eq!(clients[1].owned, before_2);
        // The old member id is gone: its instance id now belongs to the new one.
        let mut old = Harness::beat_input(&restarted);
        old.member_id = "old".to_string();
        assert_eq!(h.send(old).error_code, error_code::FENCED_INSTANCE_ID);
        assert_eq!(h.beat(&mut restarted).error_code, error_code::NONE);
    }

    #[test]
    fn static_member_that_never_returns_expires() {
        let mut h = twelve_partitions();
        let mut clients = vec![
            h.join_with(Harness::join_input(&["orders"], Some("i1"))),
            h.join(&["orders"]),
        ];
        h.settle(&mut clients);
        let mut input = Harness::beat_input(&clients[0]);
        input.member_epoch = LEAVE_GROUP_STATIC_MEMBER_EPOCH;
        h.send(input);
        h.advance(20_000);
        h.beat(&mut clients[1]);
        assert!(!h.group.expire_members(&h.topics, &h.settings, h.now));
        h.advance(30_000);
        h.beat(&mut clients[1]);
        assert!(h.group.expire_members(&h.topics, &h.settings, h.now));
        let mut clients = vec![clients.remove(1)];
        h.settle(&mut clients);
        assert_eq!(clients[0].count(), 12);
    }

    #[test]
    fn regex_subscription_picks_up_topics_created_later() {
        let mut h = Harness::new(topics(&[("orders-eu", 1, 2), ("payments", 2, 2)]));
        let mut client = h.join_with(HeartbeatInput {
            subscribed_topic_names: None,
            subscribed_topic_regex: Some("orders-.*".to_string()),
            ..Harness::join_input(&[], None)
        });
        assert_eq!(client.owned.keys().collect::<Vec<_>>(), vec![&topic_id(1)]);
        let epoch = h.group.group_epoch();

        h.topics = topics(&[("orders-eu", 1, 2), ("orders-us", 3, 3), ("payments", 2, 2)]);
        let output = h.beat(&mut client);
        assert_eq!(h.group.group_epoch(), epoch + 1);
        assert_eq!(output.member_epoch, epoch + 1);
        assert_eq!(client.count(), 5);
        assert!(!client.owned.contains_key(&topic_id(2)));
        let names = h.group.subscribed_topic_names(&h.topics);
        assert_eq!(
            names.into_iter().collect::<Vec<_>>(),
            vec!["orders-eu".to_string(), "orders-us".to_string()]
        );
        // Full match: a regex matching a prefix only does not subscribe.
        h.topics = topics(&[("orders", 4, 1), ("orders-eu", 1, 2), ("orders-us", 3, 3)]);
        h.beat(&mut client);
        assert!(!client.owned.contains_key(&topic_id(4)));
    }

    #[test]
    fn added_partitions_bump_the_group_epoch() {
        let mut h = Harness::new(topics(&[("orders", 1, 4)]));
        let mut client = h.join(&["orders"]);
        assert_eq!(client.count(), 4);
        let epoch = h.group.group_epoch();
        assert!(!h.group.expire_members(&h.topics, &h.settings, h.now));

        h.topics = topics(&[("orders", 1, 6)]);
        assert!(h.group.expire_members(&h.topics, &h.settings, h.now));
        assert_eq!(h.group.group_epoch(), epoch + 1);
        h.beat(&mut client);
        assert_eq!(client.count(), 6);
        assert_eq!(client.epoch, epoch + 1);

        // A deleted topic is revoked.
        h.topics = TopicsByName::new();
        h.beat(&mut client);
        assert_eq!(h.group.group_epoch(), epoch + 2);
        assert_eq!(client.count(), 0);
    }

    #[test]
    fn offset_requests_check_member_and_epoch() {
        let mut h = twelve_partitions();
        let mut first = h.join(&["orders"]);
        assert_eq!(h.group.validate_member_epoch(&first.member_id, 1), Ok(()));
        assert_eq!(
            h.group.validate_member_epoch("nobody", 1),
            Err(error_code::UNKNOWN_MEMBER_ID)
        );
        assert_eq!(
            h.group.validate_member_epoch(&first.member_id, 2),
            Err(error_code::STALE_MEMBER_EPOCH)
        );
        let mut second = h.join(&["orders"]);
        h.beat(&mut first);
        h.beat(&mut first);
        h.beat(&mut second);
        assert_eq!(first.epoch, 2);
        // A commit sent before the client saw its bump still counts.
        assert_eq!(h.group.validate_member_epoch(&first.member_id, 1), Ok(()));
        assert_eq!(h.group.validate_member_epoch(&first.member_id, 2), Ok(()));
        assert_eq!(
            h.group.validate_member_epoch(&first.member_id, 0),
            Err(error_code::STALE_MEMBER_EPOCH)
        );
    }

    #[test]
    fn range_assignor_named_by_members_is_used() {
        let mut h = twelve_partitions();
        let range = |h: &mut Harness| {
            h.join_with(HeartbeatInput {
                server_assignor: Some("range".to_string()),
                ..Harness::join_input(&["orders"], None)
            })
        };
        let mut clients = vec![range(&mut h), range(&mut h), h.join(&["orders"])];
        h.settle(&mut clients);
        assert_eq!(h.group.assignor_name(), "range");
        let mut ranges: Vec<Vec<i32>> = h
            .group
            .describe()
            .into_iter()
            .map(|member| member.assignment[&topic_id(1)].clone())
            .collect();
        ranges.sort();
        assert_eq!(
            ranges,
            vec![vec![0, 1, 2, 3], vec![4, 5, 6, 7], vec![8, 9, 10, 11]]
        );
    }

    #[test]
    fn restored_group_epoch_survives_until_members_join() {
        let mut h = twelve_partitions();
        h.group.set_group_epoch(7);
        assert_eq!(h.group.state_name(), "Empty");
        let heartbeat = HeartbeatInput {
            member_id: "m".to_string(),
            member_epoch: 7,
            ..HeartbeatInput::default()
        };
        assert_eq!(h.send(heartbeat).error_code, error_code::UNKNOWN_MEMBER_ID);
        let client = h.join(&["orders"]);
        assert_eq!(client.epoch, 8);
        let described = h.group.describe();
        assert_eq!(described.len(), 1);
        assert_eq!(
            described[0].subscribed_topic_names,
            vec!["orders".to_string()]
        );
        assert_eq!(described[0].assignment, described[0].target_assignment);
    }

    #[test]
    fn seeded_churn_never_gives_a_partition_to_two_members() {
        for seed in 1..=20u64 {
            churn(seed);
        }
    }

    /// Random joins, leaves, heartbeats and topic growth from a fixed seed, printed first so
    /// that a failure names the seed that reproduces it.
    fn churn(seed: u64) {
        eprintln!("churn seed {seed}");
        let mut state = seed;
        let mut next = move |bound: usize| {
            // Knuth's MMIX LCG: enough to shuffle test actions reproducibly.
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            usize::try_from(state >> 33).unwrap_or(0) % bound
        };
        let mut partitions = 5;
        let mut h = Harness::new(topics(&[("orders", 1, partitions), ("audit", 2, 3)]));
        let mut clients = vec![h.join(&["orders", "audit"])];
        for _ in 0..300 {
            match next(10) {
                0 if clients.len() < 6 => {
                    let names: &[&str] = if next(2) == 0 {
                        &["orders"]
                    } else {
                        &["orders", "audit"]
                    };
                    clients.push(h.join(names));
                }
                1 if clients.len() > 1 => {
                    let leaver = clients.remove(next(clients.len()));
                    let mut input = Harness::beat_input(&leaver);
                    input.member_epoch = LEAVE_GROUP_MEMBER_EPOCH;
                    assert_eq!(h.send(input).error_code, error_code::NONE, "seed {seed}");
                }
                2 if partitions < 24 => {
                    partitions += 1;
                    h.topics = topics(&[("orders", 1, partitions), ("audit", 2, 3)]);
                }
                _ => {
                    let index = next(clients.len());
                    let output = h.beat(&mut clients[index]);
                    assert_eq!(output.error_code, error_code::NONE, "seed {seed}");
                }
            }
            h.advance(100);
            assert_disjoint(&clients);
        }
        h.settle(&mut clients);
        // Every partition of every subscribed topic has exactly one owner.
        let subscribed = h.group.subscribed_topic_names(&h.topics);
        let expected: i32 = subscribed
            .iter()
            .map(|name| h.topics[name].partitions)
            .sum();
        let expected = usize::try_from(expected).unwrap_or(0);
        assert_eq!(union_count(&clients), expected, "seed {seed}");
    }
}

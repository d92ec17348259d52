//! A classic consumer group (JoinGroup / SyncGroup / Heartbeat / LeaveGroup) and Kafka's
//! state machine for it: Empty → PreparingRebalance → CompletingRebalance → Stable, back to
//! PreparingRebalance when members come, go, change their protocols or time out.
//!
//! Everything here is synchronous and owned by one shard: a request that must wait (a join
//! until the rebalance completes, a sync until the leader's assignment arrives) gets a
//! oneshot receiver, and the shard's coordinator tick drives timeouts. Assignors run in the
//! clients; the group only relays the leader's assignment.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::oneshot;

use super::records::{ClassicGroupValue, ClassicMemberValue};
use crate::protocol::error_code;

/// Kafka's group states, named as DescribeGroups and ListGroups show them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupState {
    Empty,
    PreparingRebalance,
    CompletingRebalance,
    Stable,
}

impl GroupState {
    pub fn name(self) -> &'static str {
        match self {
            GroupState::Empty => "Empty",
            GroupState::PreparingRebalance => "PreparingRebalance",
            GroupState::CompletingRebalance => "CompletingRebalance",
            GroupState::Stable => "Stable",
        }
    }
}

/// The broker-wide limits a classic group checks.
#[derive(Debug, Clone, Copy)]
pub struct ClassicSettings {
    pub initial_rebalance_delay: Duration,
    pub min_session_timeout_ms: i32,
    pub max_session_timeout_ms: i32,
    pub max_size: usize,
}

/// A JoinGroup as the group sees it.
pub struct JoinParams {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout_ms: i32,
    pub rebalance_timeout_ms: i32,
    pub protocol_type: String,
    pub protocols: Vec<(String, Bytes)>,
    /// v4+: a new member must first get a member id (MEMBER_ID_REQUIRED) and join again.
    pub require_known_member_id: bool,
}

/// The answer to a JoinGroup.
#[derive(Debug, Clone)]
pub struct JoinOutcome {
    pub error: i16,
    pub generation: i32,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub leader: String,
    pub member_id: String,
    /// Only the leader gets the members, with their metadata for the chosen protocol.
    pub members: Vec<(String, Option<String>, Bytes)>,
}

impl JoinOutcome {
    pub fn error(error: i16, member_id: &str) -> JoinOutcome {
        JoinOutcome {
            error,
            generation: -1,
            protocol_type: None,
            protocol_name: None,
            leader: String::new(),
            member_id: member_id.to_string(),
            members: Vec::new(),
        }
    }
}

/// The answer to a SyncGroup.
#[derive(Debug, Clone)]
pub struct SyncOutcome {
    pub error: i16,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub assignment: Bytes,
}

impl SyncOutcome {
    fn error(error: i16) -> SyncOutcome {
        SyncOutcome {
            error,
            protocol_type: None,
            protocol_name: None,
            assignment: Bytes::new(),
        }
    }
}

pub enum Reply<T> {
    Now(T),
    Wait(oneshot::Receiver<T>),
}

/// A SyncGroup's reply: the leader's reply waits for the group's metadata to be written
/// (`Store`): the caller writes `value`, then calls `complete_sync`.
pub enum SyncReply {
    Now(SyncOutcome),
    Wait(oneshot::Receiver<SyncOutcome>),
    Store {
        generation: i32,
        value: ClassicGroupValue,
        wait: oneshot::Receiver<SyncOutcome>,
    },
}

/// A SyncGroup as the group sees it.
pub struct SyncParams<'a> {
    pub member_id: &'a str,
    pub instance_id: Option<&'a str>,
    pub generation: i32,
    /// The protocol type and name the member believes in (v5+), checked against the group's.
    pub protocol: (Option<&'a str>, Option<&'a str>),
    /// The leader's assignment: member id → its bytes.
    pub assignments: Vec<(String, Bytes)>,
}

pub struct Member {
    pub id: String,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout_ms: i32,
    pub rebalance_timeout_ms: i32,
    pub protocol_type: String,
    pub protocols: Vec<(String, Bytes)>,
    pub assignment: Bytes,
    join_waiter: Option<oneshot::Sender<JoinOutcome>>,
    sync_waiter: Option<oneshot::Sender<SyncOutcome>>,
    last_heartbeat: Instant,
    /// Order of joining, for choosing a leader.
    joined_seq: u64,
}

impl Member {
    fn metadata_for(&self, protocol: &str) -> Bytes {
        self.protocols
            .iter()
            .find(|(name, _)| name == protocol)
            .map(|(_, metadata)| metadata.clone())
            .unwrap_or_default()
    }

    fn same_protocols(&self, protocols: &[(String, Bytes)]) -> bool {
        self.protocols == protocols
    }
}

pub struct ClassicGroup {
    pub id: String,
    pub state: GroupState,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub generation: i32,
    pub leader: Option<String>,
    pub members: BTreeMap<String, Member>,
    /// Member ids handed out with MEMBER_ID_REQUIRED, until they join or time out.
    pending: HashMap<String, Instant>,
    /// group.instance.id → member id, for static members (KIP-345).
    static_members: HashMap<String, String>,
    /// When the group entered its current state (ms since the epoch).
    pub state_since_ms: i64,
    /// PreparingRebalance: the join phase ends at `deadline` at the latest, and not before
    /// `initial_until` (group.initial.rebalance.delay.ms for a group that was empty).
    /// CompletingRebalance: members that have not synced by `deadline` are removed.
    deadline: Option<Instant>,
    initial_until: Option<Instant>,
    initial_limit: Option<Instant>,
    next_seq: u64,
}

impl ClassicGroup {
    pub fn new(id: String, now_ms: i64) -> ClassicGroup {
        ClassicGroup {
            id,
            state: GroupState::Empty,
            protocol_type: None,
            protocol_name: None,
            generation: 0,
            leader: None,
            members: BTreeMap::new(),
            pending: HashMap::new(),
            static_members: HashMap::new(),
            state_since_ms: now_ms,
            deadline: None,
            initial_until: None,
            initial_limit: None,
            next_seq: 0,
        }
    }

    /// Rebuilds a group from its last metadata record: Stable with its members (their
    /// sessions start now), or Empty.
    pub fn restore(id: String, value: ClassicGroupValue, now: Instant) -> ClassicGroup {
        let mut group = ClassicGroup::new(id, value.state_timestamp_ms);
        group.protocol_type = Some(value.protocol_type).filter(|t| !t.is_empty());
        group.protocol_name = value.protocol.clone();
        group.generation = value.generation;
        group.leader = value.leader;
        for (seq, m) in value.members.into_iter().enumerate() {
            if let Some(instance) = &m.instance_id {
                group
                    .static_members
                    .insert(instance.clone(), m.member_id.clone());
            }
            let protocols = match &value.protocol {
                Some(name) => vec![(name.clone(), m.subscription.clone())],
                None => Vec::new(),
            };
            group.members.insert(
                m.member_id.clone(),
                Member {
                    id: m.member_id,
                    instance_id: m.instance_id,
                    client_id: m.client_id,
                    client_host: m.client_host,
                    session_timeout_ms: m.session_timeout_ms,
                    rebalance_timeout_ms: m.rebalance_timeout_ms,
                    protocol_type: group.protocol_type.clone().unwrap_or_default(),
                    protocols,
                    assignment: m.assignment,
                    join_waiter: None,
                    sync_waiter: None,
                    last_heartbeat: now,
                    joined_seq: seq as u64,
                },
            );
        }
        group.next_seq = group.members.len() as u64;
        group.state = if group.members.is_empty() {
            GroupState::Empty
        } else {
            GroupState::Stable
        };
        group
    }

    /// The group's metadata record, as Kafka writes it after a rebalance.
    pub fn to_record(&self, now_ms: i64) -> ClassicGroupValue {
        let protocol = self.protocol_name.clone();
        ClassicGroupValue {
            protocol_type: self.protocol_type.clone().unwrap_or_default(),
            generation: self.generation,
            protocol: protocol.clone(),
            leader: self.leader.clone(),
            state_timestamp_ms: now_ms,
            members: self
                .members
                .values()
                .map(|m| ClassicMemberValue {
                    member_id: m.id.clone(),
                    instance_id: m.instance_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    rebalance_timeout_ms: m.rebalance_timeout_ms,
                    session_timeout_ms: m.session_timeout_ms,
                    subscription: protocol
                        .as_deref()
                        .map(|p| m.metadata_for(p))
                        .unwrap_or_default(),
                    assignment: m.assignment.clone(),
                })
                .collect(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.members.is_empty() && self.pending.is_empty()
    }

    fn set_state(&mut self, state: GroupState, now_ms: i64) {
        self.state = state;
        self.state_since_ms = now_ms;
    }

    /// Whether `protocol_type` and `protocols` could join: same type as the group, and at
    /// least one protocol every member (and this one) supports.
    fn supports(&self, protocol_type: &str, protocols: &[(String, Bytes)]) -> bool {
        if protocol_type.is_empty() || protocols.is_empty() {
            return false;
        }
        if self.members.is_empty() {
            return true;
        }
        if self.protocol_type.as_deref() != Some(protocol_type) {
            return false;
        }
        protocols.iter().any(|(name, _)| {
            self.members
                .values()
                .all(|m| m.protocols.iter().any(|(n, _)| n == name))
        })
    }

    fn validate_session(&self, params: &JoinParams, settings: &ClassicSettings) -> Result<(), i16> {
        if params.session_timeout_ms < settings.min_session_timeout_ms
            || params.session_timeout_ms > settings.max_session_timeout_ms
        {
            return Err(error_code::INVALID_SESSION_TIMEOUT);
        }
        Ok(())
    }

    /// JoinGroup (Kafka's GroupCoordinator.handleJoinGroup).
    pub fn join(
        &mut self,
        params: JoinParams,
        settings: &ClassicSettings,
        now: Instant,
        now_ms: i64,
    ) -> Reply<JoinOutcome> {
        if let Err(error) = self.validate_session(&params, settings) {
            return Reply::Now(JoinOutcome::error(error, &params.member_id));
        }
        if !self.supports(&params.protocol_type, &params.protocols) {
            return Reply::Now(JoinOutcome::error(
                error_code::INCONSISTENT_GROUP_PROTOCOL,
                &params.member_id,
            ));
        }
        if params.member_id.is_empty() {
            self.join_unknown_member(params, settings, now, now_ms)
        } else {
            self.join_known_member(params, settings, now, now_ms)
        }
    }

    fn join_unknown_member(
        &mut self,
        params: JoinParams,
        settings: &ClassicSettings,
        now: Instant,
        now_ms: i64,
    ) -> Reply<JoinOutcome> {
        let new_id = format!("{}-{}", params.client_id, uuid::Uuid::new_v4());
        if let Some(instance) = params.instance_id.clone() {
            if let Some(old_id) = self.static_members.get(&instance).cloned() {
                return self.replace_static_member(old_id, new_id, params, now, now_ms);
            }
        }
        if self.members.len() + self.pending.len() >= settings.max_size {
            return Reply::Now(JoinOutcome::error(error_code::GROUP_MAX_SIZE_REACHED, ""));
        }
        if params.require_known_member_id && params.instance_id.is_none() {
            self.pending.insert(new_id.clone(), now);
            return Reply::Now(JoinOutcome::error(error_code::MEMBER_ID_REQUIRED, &new_id));
        }
        self.add_member_and_rebalance(new_id, params, settings, now, now_ms)
    }

    fn join_known_member(
        &mut self,
        params: JoinParams,
        settings: &ClassicSettings,
        now: Instant,
        now_ms: i64,
    ) -> Reply<JoinOutcome> {
        let member_id = params.member_id.clone();
        if self.pending.remove(&member_id).is_some() {
            return self.add_member_and_rebalance(member_id, params, settings, now, now_ms);
        }
        if let Some(instance) = &params.instance_id {
            match self.static_members.get(instance) {
                Some(known) if *known != member_id => {
                    return Reply::Now(JoinOutcome::error(
                        error_code::FENCED_INSTANCE_ID,
                        &member_id,
                    ))
                }
                _ => {}
            }
        }
        if !self.members.contains_key(&member_id) {
            return Reply::Now(JoinOutcome::error(
                error_code::UNKNOWN_MEMBER_ID,
                &member_id,
            ));
        }
        match self.state {
            GroupState::PreparingRebalance => {
                let (tx, rx) = oneshot::channel();
                self.update_member(&member_id, &params, Some(tx), now);
                self.try_complete_join(now, now_ms);
                Reply::Wait(rx)
            }
            GroupState::CompletingRebalance | GroupState::Stable => {
                let unchanged = self
                    .members
                    .get(&member_id)
                    .is_some_and(|m| m.same_protocols(&params.protocols));
                let is_leader = self.leader.as_deref() == Some(member_id.as_str());
                if unchanged && (self.state == GroupState::CompletingRebalance || !is_leader) {
                    // A member that lost the join response, or a follower rejoining without
                    // a change: it gets the current generation again, no rebalance.
                    if let Some(m) = self.members.get_mut(&member_id) {
                        m.last_heartbeat = now;
                    }
                    return Reply::Now(self.join_outcome_for(&member_id));
                }
                let (tx, rx) = oneshot::channel();
                self.update_member(&member_id, &params, Some(tx), now);
                self.prepare_rebalance(now, now_ms);
                self.try_complete_join(now, now_ms);
                Reply::Wait(rx)
            }
            GroupState::Empty => Reply::Now(JoinOutcome::error(
                error_code::UNKNOWN_MEMBER_ID,
                &member_id,
            )),
        }
    }

    /// A static member rejoining under a new member id (KIP-345): the old id is fenced, the
    /// new one takes its place and its assignment. When the group is Stable and the member's
    /// protocols are unchanged, no rebalance happens.
    fn replace_static_member(
        &mut self,
        old_id: String,
        new_id: String,
        params: JoinParams,
        now: Instant,
        now_ms: i64,
    ) -> Reply<JoinOutcome> {
        let Some(mut member) = self.members.remove(&old_id) else {
            self.static_members
                .remove(params.instance_id.as_deref().unwrap_or_default());
            return Reply::Now(JoinOutcome::error(error_code::UNKNOWN_MEMBER_ID, ""));
        };
        if let Some(waiter) = member.join_waiter.take() {
            let _ = waiter.send(JoinOutcome::error(error_code::FENCED_INSTANCE_ID, &old_id));
        }
        if let Some(waiter) = member.sync_waiter.take() {
            let _ = waiter.send(SyncOutcome::error(error_code::FENCED_INSTANCE_ID));
        }
        let unchanged = member.same_protocols(&params.protocols);
        member.id = new_id.clone();
        member.client_id = params.client_id.clone();
        member.client_host = params.client_host.clone();
        member.session_timeout_ms = params.session_timeout_ms;
        member.rebalance_timeout_ms = params.rebalance_timeout_ms;
        member.last_heartbeat = now;
        if self.leader.as_deref() == Some(old_id.as_str()) {
            self.leader = Some(new_id.clone());
        }
        if let Some(instance) = &params.instance_id {
            self.static_members.insert(instance.clone(), new_id.clone());
        }
        self.members.insert(new_id.clone(), member);
        match self.state {
            GroupState::Stable if unchanged => {
                // The new id holds the old assignment; the leader is not told (Kafka skips
                // the member list so the leader does not reassign).
                let mut outcome = self.join_outcome_for(&new_id);
                outcome.members.clear();
                Reply::Now(outcome)
            }
            _ => {
                let (tx, rx) = oneshot::channel();
                self.update_member(&new_id, &params, Some(tx), now);
                self.prepare_rebalance(now, now_ms);
                self.try_complete_join(now, now_ms);
                Reply::Wait(rx)
            }
        }
    }

    fn add_member_and_rebalance(
        &mut self,
        member_id: String,
        params: JoinParams,
        settings: &ClassicSettings,
        now: Instant,
        now_ms: i64,
    ) -> Reply<JoinOutcome> {
        if self.members.len() >= settings.max_size {
            return Reply::Now(JoinOutcome::error(
                error_code::GROUP_MAX_SIZE_REACHED,
                &member_id,
            ));
        }
        let (tx, rx) = oneshot::channel();
        if let Some(instance) = &params.instance_id {
            self.static_members
                .insert(instance.clone(), member_id.clone());
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        self.members.insert(
            member_id.clone(),
            Member {
                id: member_id.clone(),
                instance_id: params.instance_id.clone(),
                client_id: params.client_id.clone(),
                client_host: params.client_host.clone(),
                session_timeout_ms: params.session_timeout_ms,
                rebalance_timeout_ms: params.rebalance_timeout_ms,
                protocol_type: params.protocol_type.clone(),
                protocols: params.protocols,
                assignment: Bytes::new(),
                join_waiter: Some(tx),
                sync_waiter: None,
                last_heartbeat: now,
                joined_seq: seq,
            },
        );
        if self.protocol_type.is_none() {
            self.protocol_type = Some(params.protocol_type);
        }
        if self.state == GroupState::PreparingRebalance {
            // A new member during the initial delay extends it, up to the rebalance timeout.
            if let (Some(until), Some(limit)) = (self.initial_until, self.initial_limit) {
                if until > now {
                    self.initial_until = Some((now + settings.initial_rebalance_delay).min(limit));
                }
            }
        } else {
            let was_empty = self.state == GroupState::Empty;
            self.prepare_rebalance(now, now_ms);
            if was_empty && !settings.initial_rebalance_delay.is_zero() {
                let limit = now + Duration::from_millis(params.rebalance_timeout_ms.max(0) as u64);
                self.initial_until = Some((now + settings.initial_rebalance_delay).min(limit));
                self.initial_limit = Some(limit);
            }
        }
        self.try_complete_join(now, now_ms);
        Reply::Wait(rx)
    }

    fn update_member(
        &mut self,
        member_id: &str,
        params: &JoinParams,
        waiter: Option<oneshot::Sender<JoinOutcome>>,
        now: Instant,
    ) {
        if let Some(member) = self.members.get_mut(member_id) {
            member.protocols = params.protocols.clone();
            member.protocol_type = params.protocol_type.clone();
            member.session_timeout_ms = params.session_timeout_ms;
            member.rebalance_timeout_ms = params.rebalance_timeout_ms;
            member.last_heartbeat = now;
            if let Some(old) = member.join_waiter.take() {
                // The client gave up on its earlier join and sent another.
                let _ = old.send(JoinOutcome::error(
                    error_code::REBALANCE_IN_PROGRESS,
                    member_id,
                ));
            }
            member.join_waiter = waiter;
        }
    }

    /// Starts a rebalance: sync waiters of an unfinished one are told to rejoin.
    fn prepare_rebalance(&mut self, now: Instant, now_ms: i64) {
        if self.state == GroupState::CompletingRebalance {
            for member in self.members.values_mut() {
                member.assignment = Bytes::new();
                if let Some(waiter) = member.sync_waiter.take() {
                    let _ = waiter.send(SyncOutcome::error(error_code::REBALANCE_IN_PROGRESS));
                }
            }
        }
        let timeout = self
            .members
            .values()
            .map(|m| m.rebalance_timeout_ms.max(0))
            .max()
            .unwrap_or(0);
        self.deadline = Some(now + Duration::from_millis(timeout as u64));
        self.initial_until = None;
        self.initial_limit = None;
        self.set_state(GroupState::PreparingRebalance, now_ms);
    }

    fn all_joined(&self) -> bool {
        self.pending.is_empty() && self.members.values().all(|m| m.join_waiter.is_some())
    }

    /// Ends the join phase when every member has rejoined (and the initial delay is over),
    /// or when the rebalance timeout has passed (dropping those that did not rejoin).
    /// Returns true when the group's metadata changed in a way worth writing (it became
    /// Empty).
    fn try_complete_join(&mut self, now: Instant, now_ms: i64) -> bool {
        if self.state != GroupState::PreparingRebalance {
            return false;
        }
        let timed_out = self.deadline.is_some_and(|d| now >= d);
        let delayed = self.initial_until.is_some_and(|until| now < until);
        if !timed_out && (delayed || !self.all_joined()) {
            return false;
        }
        if timed_out {
            let missing: Vec<String> = self
                .members
                .values()
                .filter(|m| m.join_waiter.is_none())
                .map(|m| m.id.clone())
                .collect();
            for id in missing {
                self.remove_member(&id);
            }
            self.pending.clear();
        }
        self.generation += 1;
        self.deadline = None;
        self.initial_until = None;
        self.initial_limit = None;
        if self.members.is_empty() {
            self.protocol_name = None;
            self.protocol_type = None;
            self.leader = None;
            self.set_state(GroupState::Empty, now_ms);
            return true;
        }
        self.protocol_name = self.select_protocol();
        if !self
            .leader
            .as_ref()
            .is_some_and(|l| self.members.contains_key(l))
        {
            self.leader = self
                .members
                .values()
                .min_by_key(|m| m.joined_seq)
                .map(|m| m.id.clone());
        }
        self.set_state(GroupState::CompletingRebalance, now_ms);
        let sync_timeout = self
            .members
            .values()
            .map(|m| m.rebalance_timeout_ms.max(0))
            .max()
            .unwrap_or(0);
        self.deadline = Some(now + Duration::from_millis(sync_timeout as u64));
        let ids: Vec<String> = self.members.keys().cloned().collect();
        for id in ids {
            let outcome = self.join_outcome_for(&id);
            if let Some(member) = self.members.get_mut(&id) {
                member.last_heartbeat = now;
                if let Some(waiter) = member.join_waiter.take() {
                    let _ = waiter.send(outcome);
                }
            }
        }
        false
    }

    /// The protocol every member supports that most members list first among those.
    fn select_protocol(&self) -> Option<String> {
        // Ties go to the longest-standing member's preference.
        let first = self.members.values().min_by_key(|m| m.joined_seq)?;
        let candidates: Vec<&String> = first
            .protocols
            .iter()
            .map(|(name, _)| name)
            .filter(|name| {
                self.members
                    .values()
                    .all(|m| m.protocols.iter().any(|(n, _)| n == *name))
            })
            .collect();
        let mut votes: Vec<(&String, usize)> = candidates.iter().map(|c| (*c, 0)).collect();
        for member in self.members.values() {
            if let Some((name, _)) = member
                .protocols
                .iter()
                .find(|(name, _)| candidates.contains(&name))
            {
                if let Some(entry) = votes.iter_mut().find(|(c, _)| *c == name) {
                    entry.1 += 1;
                }
            }
        }
        let mut best: Option<(&String, usize)> = None;
        for (name, count) in votes {
            if best.is_none_or(|(_, c)| count > c) {
                best = Some((name, count));
            }
        }
        best.map(|(name, _)| name.clone())
    }

    fn join_outcome_for(&self, member_id: &str) -> JoinOutcome {
        let leader = self.leader.clone().unwrap_or_default();
        let members = if leader == member_id {
            let protocol = self.protocol_name.clone().unwrap_or_default();
            let mut members: Vec<&Member> = self.members.values().collect();
            members.sort_by_key(|m| m.joined_seq);
            members
                .into_iter()
                .map(|m| {
                    (
                        m.id.clone(),
                        m.instance_id.clone(),
                        m.metadata_for(&protocol),
                    )
                })
                .collect()
        } else {
            Vec::new()
        };
        JoinOutcome {
            error: error_code::NONE,
            generation: self.generation,
            protocol_type: self.protocol_type.clone(),
            protocol_name: self.protocol_name.clone(),
            leader,
            member_id: member_id.to_string(),
            members,
        }
    }

    fn remove_member(&mut self, member_id: &str) -> Option<Member> {
        let mut member = self.members.remove(member_id)?;
        if let Some(instance) = &member.instance_id {
            if self.static_members.get(instance).map(String::as_str) == Some(member_id) {
                self.static_members.remove(instance);
            }
        }
        if let Some(waiter) = member.join_waiter.take() {
            let _ = waiter.send(JoinOutcome::error(error_code::UNKNOWN_MEMBER_ID, member_id));
        }
        if let Some(waiter) = member.sync_waiter.take() {
            let _ = waiter.send(SyncOutcome::error(error_code::UNKNOWN_MEMBER_ID));
        }
        Some(member)
    }

    /// Checks a member id and generation for SyncGroup, Heartbeat and OffsetCommit.
    fn check_member(
        &self,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
    ) -> Result<(), i16> {
        if let Some(instance) = instance_id {
            if let Some(known) = self.static_members.get(instance) {
                if known != member_id {
                    return Err(error_code::FENCED_INSTANCE_ID);
                }
            }
        }
        if !self.members.contains_key(member_id) {
            return Err(error_code::UNKNOWN_MEMBER_ID);
        }
        if generation != self.generation {
            return Err(error_code::ILLEGAL_GENERATION);
        }
        Ok(())
    }

    /// SyncGroup (Kafka's GroupCoordinator.handleSyncGroup).
    pub fn sync(&mut self, request: SyncParams<'_>, now: Instant, now_ms: i64) -> SyncReply {
        let SyncParams {
            member_id,
            instance_id,
            generation,
            protocol,
            assignments,
        } = request;
        if self.state == GroupState::Empty {
            return SyncReply::Now(SyncOutcome::error(error_code::UNKNOWN_MEMBER_ID));
        }
        if let Err(error) = self.check_member(member_id, instance_id, generation) {
            return SyncReply::Now(SyncOutcome::error(error));
        }
        let (protocol_type, protocol_name) = protocol;
        if protocol_type.is_some_and(|t| Some(t) != self.protocol_type.as_deref())
            || protocol_name.is_some_and(|n| Some(n) != self.protocol_name.as_deref())
        {
            return SyncReply::Now(SyncOutcome::error(error_code::INCONSISTENT_GROUP_PROTOCOL));
        }
        if let Some(member) = self.members.get_mut(member_id) {
            member.last_heartbeat = now;
        }
        match self.state {
            GroupState::PreparingRebalance => {
                SyncReply::Now(SyncOutcome::error(error_code::REBALANCE_IN_PROGRESS))
            }
            GroupState::Stable => SyncReply::Now(self.sync_outcome_for(member_id)),
            GroupState::CompletingRebalance => {
                let (tx, rx) = oneshot::channel();
                if let Some(member) = self.members.get_mut(member_id) {
                    if let Some(old) = member.sync_waiter.replace(tx) {
                        let _ = old.send(SyncOutcome::error(error_code::REBALANCE_IN_PROGRESS));
                    }
                }
                if self.leader.as_deref() != Some(member_id) {
                    return SyncReply::Wait(rx);
                }
                let assignments: HashMap<String, Bytes> = assignments.into_iter().collect();
                for member in self.members.values_mut() {
                    member.assignment = assignments.get(&member.id).cloned().unwrap_or_default();
                }
                SyncReply::Store {
                    generation: self.generation,
                    value: self.to_record(now_ms),
                    wait: rx,
                }
            }
            GroupState::Empty => SyncReply::Now(SyncOutcome::error(error_code::UNKNOWN_MEMBER_ID)),
        }
    }

    /// After the leader's assignment was written (or failed to be): the group becomes Stable
    /// and every waiting member gets its assignment, or the rebalance starts over.
    pub fn complete_sync(&mut self, generation: i32, stored: bool, now: Instant, now_ms: i64) {
        if self.generation != generation || self.state != GroupState::CompletingRebalance {
            return;
        }
        if !stored {
            for member in self.members.values_mut() {
                member.assignment = Bytes::new();
                if let Some(waiter) = member.sync_waiter.take() {
                    let _ = waiter.send(SyncOutcome::error(error_code::COORDINATOR_NOT_AVAILABLE));
                }
            }
            self.prepare_rebalance(now, now_ms);
            return;
        }
        self.deadline = None;
        self.set_state(GroupState::Stable, now_ms);
        let ids: Vec<String> = self.members.keys().cloned().collect();
        for id in ids {
            let outcome = self.sync_outcome_for(&id);
            if let Some(member) = self.members.get_mut(&id) {
                if let Some(waiter) = member.sync_waiter.take() {
                    let _ = waiter.send(outcome);
                }
            }
        }
    }

    fn sync_outcome_for(&self, member_id: &str) -> SyncOutcome {
        SyncOutcome {
            error: error_code::NONE,
            protocol_type: self.protocol_type.clone(),
            protocol_name: self.protocol_name.clone(),
            assignment: self
                .members
                .get(member_id)
                .map(|m| m.assignment.clone())
                .unwrap_or_default(),
        }
    }

    /// Heartbeat: keeps the session alive and tells the member when to rejoin.
    pub fn heartbeat(
        &mut self,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
        now: Instant,
    ) -> i16 {
        if self.state == GroupState::Empty {
            return error_code::UNKNOWN_MEMBER_ID;
        }
        if let Err(error) = self.check_member(member_id, instance_id, generation) {
            // A member of the group with an old generation must still rejoin: Kafka answers
            // REBALANCE_IN_PROGRESS while a rebalance is under way.
            if error == error_code::ILLEGAL_GENERATION
                && self.state == GroupState::PreparingRebalance
            {
                if let Some(member) = self.members.get_mut(member_id) {
                    member.last_heartbeat = now;
                }
                return error_code::REBALANCE_IN_PROGRESS;
            }
            return error;
        }
        if let Some(member) = self.members.get_mut(member_id) {
            member.last_heartbeat = now;
        }
        match self.state {
            GroupState::PreparingRebalance => error_code::REBALANCE_IN_PROGRESS,
            _ => error_code::NONE,
        }
    }

    /// LeaveGroup for one member (by member id, or by instance id for static members).
    pub fn leave(
        &mut self,
        member_id: &str,
        instance_id: Option<&str>,
        now: Instant,
        now_ms: i64,
    ) -> i16 {
        let id = match instance_id {
            Some(instance) => match self.static_members.get(instance) {
                Some(known) if member_id.is_empty() || known == member_id => known.clone(),
                Some(_) => return error_code::FENCED_INSTANCE_ID,
                None => return error_code::UNKNOWN_MEMBER_ID,
            },
            None => member_id.to_string(),
        };
        if self.pending.remove(&id).is_some() {
            return error_code::NONE;
        }
        if self.remove_member(&id).is_none() {
            return error_code::UNKNOWN_MEMBER_ID;
        }
        self.after_member_removed(now, now_ms);
        error_code::NONE
    }

    fn after_member_removed(&mut self, now: Instant, now_ms: i64) {
        match self.state {
            GroupState::Stable | GroupState::CompletingRebalance => {
                self.prepare_rebalance(now, now_ms);
                self.try_complete_join(now, now_ms);
            }
            GroupState::PreparingRebalance => {
                self.try_complete_join(now, now_ms);
            }
            GroupState::Empty => {}
        }
    }

    /// Timeouts: expired sessions, members that did not rejoin or sync in time, pending
    /// member ids never used, the end of the initial delay. Returns true when the group
    /// became Empty through it (its metadata should be written).
    pub fn tick(&mut self, now: Instant, now_ms: i64) -> bool {
        let before = self.state;
        self.pending
            .retain(|_, since| now.duration_since(*since) < Duration::from_millis(300_000));
        let expired: Vec<String> = self
            .members
            .values()
            .filter(|m| {
                m.join_waiter.is_none()
                    && m.sync_waiter.is_none()
                    && now.duration_since(m.last_heartbeat)
                        > Duration::from_millis(m.session_timeout_ms.max(0) as u64)
            })
            .map(|m| m.id.clone())
            .collect();
        for id in &expired {
            tracing::info!(group = %self.id, member = %id, "member's session expired");
            self.remove_member(id);
        }
        match self.state {
            GroupState::PreparingRebalance => {
                self.try_complete_join(now, now_ms);
            }
            GroupState::CompletingRebalance => {
                if !expired.is_empty() {
                    self.after_member_removed(now, now_ms);
                } else if self.deadline.is_some_and(|d| now >= d) {
                    // The leader never sent the assignment: drop who has not synced.
                    let missing: Vec<String> = self
                        .members
                        .values()
                        .filter(|m| m.sync_waiter.is_none())
                        .map(|m| m.id.clone())
                        .collect();
                    for id in missing {
                        self.remove_member(&id);
                    }
                    self.after_member_removed(now, now_ms);
                }
            }
            GroupState::Stable => {
                if !expired.is_empty() {
                    self.after_member_removed(now, now_ms);
                }
            }
            GroupState::Empty => {}
        }
        before != GroupState::Empty && self.state == GroupState::Empty
    }

    /// Validates an OffsetCommit from a member: Ok(()) also for a simple (admin) commit to
    /// an empty group.
    pub fn validate_commit(
        &self,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
    ) -> Result<(), i16> {
        if generation < 0 && member_id.is_empty() {
            // A commit from outside any generation (assign() consumers, admin offset
            // resets): allowed only while nobody consumes through the group.
            return if self.members.is_empty() {
                Ok(())
            } else {
                Err(error_code::UNKNOWN_MEMBER_ID)
            };
        }
        if self.state == GroupState::Empty {
            return Err(error_code::UNKNOWN_MEMBER_ID);
        }
        self.check_member(member_id, instance_id, generation)?;
        if self.state == GroupState::CompletingRebalance {
            return Err(error_code::REBALANCE_IN_PROGRESS);
        }
        Ok(())
    }

    /// Answers every waiting join and sync with `error` (the coordinator is going away: the
    /// clients look for it again).
    pub fn abort_waiters(&mut self, error: i16) {
        for member in self.members.values_mut() {
            if let Some(waiter) = member.join_waiter.take() {
                let _ = waiter.send(JoinOutcome::error(error, &member.id));
            }
            if let Some(waiter) = member.sync_waiter.take() {
                let _ = waiter.send(SyncOutcome::error(error));
            }
        }
    }

    /// Topics the members subscribe to (from their `consumer` protocol metadata).
    pub fn subscribed_topics(&self) -> Vec<String> {
        if self.protocol_type.as_deref() != Some("consumer") {
            return Vec::new();
        }
        let protocol = self.protocol_name.clone().unwrap_or_default();
        let mut topics = Vec::new();
        for member in self.members.values() {
            topics.extend(parse_subscription_topics(&member.metadata_for(&protocol)));
        }
        topics.sort();
        topics.dedup();
        topics
    }

    /// Members as DescribeGroups shows them: metadata and assignment.
    pub fn describe_members(&self) -> Vec<(&Member, Bytes)> {
        let protocol = self.protocol_name.clone().unwrap_or_default();
        self.members
            .values()
            .map(|m| (m, m.metadata_for(&protocol)))
            .collect()
    }
}

/// The topic names of a ConsumerProtocolSubscription (any version: they come first).
pub fn parse_subscription_topics(metadata: &[u8]) -> Vec<String> {
    use bytes::Buf;
    let mut buf = metadata;
    let mut topics = Vec::new();
    if buf.remaining() < 6 {
        return topics;
    }
    let _version = buf.get_i16();
    let count = buf.get_i32();
    for _ in 0..count.max(0) {
        if buf.remaining() < 2 {
            break;
        }
        let len = buf.get_i16();
        if len < 0 || buf.remaining() < len as usize {
            break;
        }
        topics.push(String::from_utf8_lossy(&buf[..len as usize]).into_owned());
        buf.advance(len as usize);
    }
    topics
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(delay_ms: u64) -> ClassicSettings {
        ClassicSettings {
            initial_rebalance_delay: Duration::from_millis(delay_ms),
            min_session_timeout_ms: 6000,
            max_session_timeout_ms: 1_800_000,
            max_size: 100,
        }
    }

    fn params(member_id: &str, protocols: &[&str]) -> JoinParams {
        JoinParams {
            member_id: member_id.to_string(),
            instance_id: None,
            client_id: "c".into(),
            client_host: "/127.0.0.1".into(),
            session_timeout_ms: 10_000,
            rebalance_timeout_ms: 30_000,
            protocol_type: "consumer".into(),
            protocols: protocols
                .iter()
                .map(|p| (p.to_string(), Bytes::from_static(b"meta")))
                .collect(),
            require_known_member_id: true,
        }
    }

    fn now_outcome(reply: Reply<JoinOutcome>) -> JoinOutcome {
        match reply {
            Reply::Now(outcome) => outcome,
            Reply::Wait(_) => panic!("expected an immediate answer"),
        }
    }

    fn waited(reply: Reply<JoinOutcome>) -> oneshot::Receiver<JoinOutcome> {
        match reply {
            Reply::Wait(rx) => rx,
            Reply::Now(outcome) => panic!("expected to wait, got {outcome:?}"),
        }
    }

    /// A member's SyncGroup with no protocol check and no assignments (a follower's, or a
    /// leader's that assigns nothing).
    fn sync_params(member_id: &str, generation: i32) -> SyncParams<'_> {
        SyncParams {
            member_id,
            instance_id: None,
            generation,
            protocol: (None, None),
            assignments: vec![],
        }
    }

    /// Joins a new member through MEMBER_ID_REQUIRED; returns its member id and receiver.
    fn join_new(
        group: &mut ClassicGroup,
        protocols: &[&str],
        now: Instant,
    ) -> (String, oneshot::Receiver<JoinOutcome>) {
        let first = now_outcome(group.join(params("", protocols), &settings(0), now, 0));
        assert_eq!(first.error, error_code::MEMBER_ID_REQUIRED);
        let id = first.member_id;
        let rx = waited(group.join(params(&id, protocols), &settings(0), now, 0));
        (id, rx)
    }

    #[test]
    fn first_member_becomes_leader_and_group_stabilises() {
        let now = Instant::now();
        let mut group = ClassicGroup::new("g".into(), 0);
        let (id, mut rx) = join_new(&mut group, &["range"], now);
        let joined = rx.try_recv().expect("join completes at once");
        assert_eq!(joined.error, error_code::NONE);
        assert_eq!(joined.generation, 1);
        assert_eq!(joined.leader, id);
        assert_eq!(joined.members.len(), 1);
        assert_eq!(group.state, GroupState::CompletingRebalance);
        let SyncReply::Store {
            generation,
            mut wait,
            ..
        } = group.sync(
            SyncParams {
                member_id: &id,
                instance_id: None,
                generation: 1,
                protocol: (None, None),
                assignments: vec![(id.clone(), Bytes::from_static(b"a"))],
            },
            now,
            0,
        )
        else {
            panic!("leader sync stores the group");
        };
        group.complete_sync(generation, true, now, 0);
        assert_eq!(group.state, GroupState::Stable);
        assert_eq!(wait.try_recv().expect("synced").assignment, &b"a"[..]);
        assert_eq!(group.heartbeat(&id, None, 1, now), error_code::NONE);
    }

    #[test]
    fn second_member_triggers_rebalance_and_protocol_vote() {
        let now = Instant::now();
        let mut group = ClassicGroup::new("g".into(), 0);
        let (a, mut rx_a) = join_new(&mut group, &["range", "roundrobin"], now);
        rx_a.try_recv().expect("first join");
        group.sync(sync_params(&a, 1), now, 0);
        group.complete_sync(1, true, now, 0);
        let (b, mut rx_b) = join_new(&mut group, &["roundrobin", "range"], now);
        assert_eq!(group.state, GroupState::PreparingRebalance);
        assert!(rx_b.try_recv().is_err(), "waits for the other member");
        assert_eq!(
            group.heartbeat(&a, None, 1, now),
            error_code::REBALANCE_IN_PROGRESS
        );
        let mut rx_a =
            waited(group.join(params(&a, &["range", "roundrobin"]), &settings(0), now, 0));
        let joined_a = rx_a.try_recv().expect("rebalance completes");
        let joined_b = rx_b.try_recv().expect("rebalance completes");
        assert_eq!(joined_a.generation, 2);
        assert_eq!(joined_a.leader, a);
        assert_eq!(joined_a.members.len(), 2);
        assert!(joined_b.members.is_empty());
        // One vote each: the first candidate in the first member's order wins the tie.
        assert_eq!(joined_a.protocol_name.as_deref(), Some("range"));
        assert_eq!(b, joined_b.member_id);
    }

    #[test]
    fn inconsistent_protocols_and_bad_session_timeouts_are_refused() {
        let now = Instant::now();
        let mut group = ClassicGroup::new("g".into(), 0);
        let (_, mut rx) = join_new(&mut group, &["range"], now);
        rx.try_recv().expect("joined");
        let other = now_outcome(group.join(params("", &["sticky"]), &settings(0), now, 0));
        assert_eq!(other.error, error_code::INCONSISTENT_GROUP_PROTOCOL);
        let mut short = params("", &["range"]);
        short.session_timeout_ms = 100;
        let refused = now_outcome(group.join(short, &settings(0), now, 0));
        assert_eq!(refused.error, error_code::INVALID_SESSION_TIMEOUT);
        let unknown = now_outcome(group.join(params("nobody", &["range"]), &settings(0), now, 0));
        assert_eq!(unknown.error, error_code::UNKNOWN_MEMBER_ID);
    }

    #[test]
    fn expired_session_removes_member_and_rebalances() {
        let now = Instant::now();
        let mut group = ClassicGroup::new("g".into(), 0);
        let (a, mut rx_a) = join_new(&mut group, &["range"], now);
        let (b, mut rx_b) = join_new(&mut group, &["range"], now);
        // a joined alone first (generation 1), then b's join started generation 2.
        let _ = rx_a.try_recv();
        let mut rx_a = waited(group.join(params(&a, &["range"]), &settings(0), now, 0));
        let _ = rx_b.try_recv();
        let _ = rx_a.try_recv();
        let generation = group.generation;
        group.sync(sync_params(&a, generation), now, 0);
        group.sync(sync_params(&b, generation), now, 0);
        group.complete_sync(generation, true, now, 0);
        assert_eq!(group.state, GroupState::Stable);
        let later = now + Duration::from_secs(11);
        assert_eq!(
            group.heartbeat(&a, None, generation, later),
            error_code::NONE
        );
        group.tick(later, 0);
        assert!(!group.members.contains_key(&b));
        assert_eq!(group.state, GroupState::PreparingRebalance);
        let mut rx = waited(group.join(params(&a, &["range"]), &settings(0), later, 0));
        assert_eq!(rx.try_recv().expect("joined").generation, generation + 1);
    }

    #[test]
    fn last_member_leaving_empties_the_group() {
        let now = Instant::now();
        let mut group = ClassicGroup::new("g".into(), 0);
        let (a, mut rx) = join_new(&mut group, &["range"], now);
        rx.try_recv().expect("joined");
        group.sync(sync_params(&a, 1), now, 0);
        group.complete_sync(1, true, now, 0);
        assert_eq!(group.leave(&a, None, now, 0), error_code::NONE);
        assert_eq!(group.state, GroupState::Empty);
        assert_eq!(group.generation, 2);
        assert_eq!(group.leave(&a, None, now, 0), error_code::UNKNOWN_MEMBER_ID);
    }

    #[test]
    fn initial_delay_holds_the_first_rebalance() {
        let now = Instant::now();
        let mut group = ClassicGroup::new("g".into(), 0);
        let first = now_outcome(group.join(params("", &["range"]), &settings(3000), now, 0));
        let mut rx = waited(group.join(
            params(&first.member_id, &["range"]),
            &settings(3000),
            now,
            0,
        ));
        assert!(rx.try_recv().is_err());
        group.tick(now + Duration::from_millis(1000), 0);
        assert!(rx.try_recv().is_err());
        group.tick(now + Duration::from_millis(3001), 0);
        assert_eq!(rx.try_recv().expect("joined").generation, 1);
    }

    #[test]
    fn static_member_rejoining_keeps_its_assignment_without_rebalance() {
        let now = Instant::now();
        let mut group = ClassicGroup::new("g".into(), 0);
        let mut p = params("", &["range"]);
        p.instance_id = Some("i1".into());
        let mut rx = waited(group.join(p, &settings(0), now, 0));
        let joined = rx.try_recv().expect("joined");
        let id = joined.member_id.clone();
        group.sync(
            SyncParams {
                member_id: &id,
                instance_id: Some("i1"),
                generation: 1,
                protocol: (None, None),
                assignments: vec![(id.clone(), Bytes::from_static(b"p0"))],
            },
            now,
            0,
        );
        group.complete_sync(1, true, now, 0);
        let mut again = params("", &["range"]);
        again.instance_id = Some("i1".into());
        let rejoined = now_outcome(group.join(again, &settings(0), now, 0));
        assert_eq!(rejoined.error, error_code::NONE);
        assert_eq!(rejoined.generation, 1);
        assert_ne!(rejoined.member_id, id);
        assert_eq!(group.state, GroupState::Stable);
        assert_eq!(
            group.heartbeat(&id, Some("i1"), 1, now),
            error_code::FENCED_INSTANCE_ID
        );
        let SyncReply::Now(synced) = group.sync(
            SyncParams {
                member_id: &rejoined.member_id,
                instance_id: Some("i1"),
                generation: 1,
                protocol: (None, None),
                assignments: vec![],
            },
            now,
            0,
        ) else {
            panic!("stable group answers at once");
        };
        assert_eq!(synced.assignment, &b"p0"[..]);
    }

    #[test]
    fn commits_check_generation_and_allow_simple_commits_to_empty_groups() {
        let now = Instant::now();
        let mut group = ClassicGroup::new("g".into(), 0);
        assert_eq!(group.validate_commit("", None, -1), Ok(()));
        let (a, mut rx) = join_new(&mut group, &["range"], now);
        rx.try_recv().expect("joined");
        group.sync(sync_params(&a, 1), now, 0);
        group.complete_sync(1, true, now, 0);
        assert_eq!(group.validate_commit(&a, None, 1), Ok(()));
        assert_eq!(
            group.validate_commit(&a, None, 0),
            Err(error_code::ILLEGAL_GENERATION)
        );
        assert_eq!(
            group.validate_commit("", None, -1),
            Err(error_code::UNKNOWN_MEMBER_ID)
        );
    }

    #[test]
    fn subscription_topics_are_parsed() {
        let mut metadata = vec![0u8, 1, 0, 0, 0, 2];
        for topic in ["a", "bc"] {
            metadata.extend_from_slice(&(topic.len() as i16).to_be_bytes());
            metadata.extend_from_slice(topic.as_bytes());
        }
        assert_eq!(parse_subscription_topics(&metadata), vec!["a", "bc"]);
        assert!(parse_subscription_topics(&[0, 1]).is_empty());
    }
}

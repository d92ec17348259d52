//! Placeholder: replaced by the KIP-848 group.
use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;
use uuid::Uuid;

use super::assignor;
use crate::protocol::error_code;

pub struct GroupSettings {
    pub session_timeout_ms: i32,
    pub heartbeat_interval_ms: i32,
    pub max_size: u32,
}
pub type TopicsByName = BTreeMap<String, assignor::TopicInfo>;
pub struct HeartbeatInput {
    pub member_id: String,
    pub member_epoch: i32,
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    pub rebalance_timeout_ms: i32,
    pub subscribed_topic_names: Option<Vec<String>>,
    pub subscribed_topic_regex: Option<String>,
    pub server_assignor: Option<String>,
    pub owned: Option<Vec<(Uuid, Vec<i32>)>>,
    pub client_id: String,
    pub client_host: String,
}
pub struct HeartbeatOutput {
    pub error_code: i16,
    pub error_message: Option<String>,
    pub member_id: Option<String>,
    pub member_epoch: i32,
    pub heartbeat_interval_ms: i32,
    pub assignment: Option<BTreeMap<Uuid, Vec<i32>>>,
}
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
pub struct ConsumerGroup {
    id: String,
    epoch: i32,
}
impl ConsumerGroup {
    pub fn new(group_id: String) -> Self {
        ConsumerGroup {
            id: group_id,
            epoch: 0,
        }
    }
    pub fn heartbeat(
        &mut self,
        input: HeartbeatInput,
        _topics: &TopicsByName,
        settings: &GroupSettings,
        _now: Instant,
    ) -> HeartbeatOutput {
        HeartbeatOutput {
            error_code: error_code::INVALID_REQUEST,
            error_message: None,
            member_id: Some(input.member_id),
            member_epoch: -1,
            heartbeat_interval_ms: settings.heartbeat_interval_ms,
            assignment: None,
        }
    }
    pub fn expire_members(
        &mut self,
        _topics: &TopicsByName,
        _settings: &GroupSettings,
        _now: Instant,
    ) -> bool {
        false
    }
    pub fn validate_member_epoch(&self, _member_id: &str, _epoch: i32) -> Result<(), i16> {
        Err(error_code::UNKNOWN_MEMBER_ID)
    }
    pub fn group_id(&self) -> &str {
        &self.id
    }
    pub fn group_epoch(&self) -> i32 {
        self.epoch
    }
    pub fn assignment_epoch(&self) -> i32 {
        self.epoch
    }
    pub fn set_group_epoch(&mut self, epoch: i32) {
        self.epoch = epoch
    }
    pub fn state_name(&self) -> &'static str {
        "Empty"
    }
    pub fn is_empty(&self) -> bool {
        true
    }
    pub fn member_count(&self) -> usize {
        0
    }
    pub fn assignor_name(&self) -> &'static str {
        assignor::DEFAULT_ASSIGNOR
    }
    pub fn subscribed_topic_names(&self, _topics: &TopicsByName) -> BTreeSet<String> {
        BTreeSet::new()
    }
    pub fn describe(&self) -> Vec<MemberDescription> {
        Vec::new()
    }
}

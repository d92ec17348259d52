//! Placeholder: replaced by the server-side assignors.
use std::collections::BTreeMap;
use uuid::Uuid;

pub struct TopicInfo {
    pub id: Uuid,
    pub name: String,
    pub partitions: i32,
}
pub type Assignment = BTreeMap<String, BTreeMap<Uuid, Vec<i32>>>;
pub const DEFAULT_ASSIGNOR: &str = "uniform";

//! ListGroups (v0–v5): every shard lists the groups it coordinates, filtered by state (v4+)
//! and type (v5+), compared case-insensitively as Kafka does.

use std::rc::Rc;

use kafka_protocol::messages::list_groups_response::ListedGroup;
use kafka_protocol::messages::{GroupId, ListGroupsRequest, ListGroupsResponse};

use super::util::str_bytes;
use crate::coordinator;
use crate::protocol::error_code;
use crate::server::Shard;

pub async fn handle(
    shard: &Rc<Shard>,
    request: ListGroupsRequest,
    version: i16,
) -> ListGroupsResponse {
    let states: Vec<String> = request
        .states_filter
        .iter()
        .map(|s| s.to_lowercase())
        .collect();
    let types: Vec<String> = request
        .types_filter
        .iter()
        .map(|s| s.to_lowercase())
        .collect();
    let mut listed = Vec::new();
    if shard.catalog().topic(coordinator::OFFSETS_TOPIC).is_some() {
        let asks: Vec<_> = (0..shard.shards.len())
            .map(|target| {
                shard.run_on(target, |owner| async move {
                    coordinator::load_all_owned(&owner).await;
                    owner
                        .groups
                        .groups
                        .borrow()
                        .iter()
                        .map(|(id, entry)| {
                            (
                                id.clone(),
                                entry.protocol_type(),
                                entry.state_name(),
                                entry.type_name(),
                            )
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        for groups in futures_util::future::join_all(asks)
            .await
            .into_iter()
            .flatten()
        {
            listed.extend(groups);
        }
    }
    listed.sort();
    let groups = listed
        .into_iter()
        .filter(|(_, _, state, kind)| {
            (states.is_empty() || states.contains(&state.to_lowercase()))
                && (types.is_empty() || types.contains(&kind.to_string()))
        })
        .map(|(id, protocol_type, state, kind)| {
            let mut group = ListedGroup::default()
                .with_group_id(GroupId(str_bytes(&id)))
                .with_protocol_type(str_bytes(&protocol_type));
            if version >= 4 {
                group.group_state = str_bytes(state);
            }
            if version >= 5 {
                group.group_type = str_bytes(kind);
            }
            group
        })
        .collect();
    ListGroupsResponse::default()
        .with_throttle_time_ms(0)
        .with_error_code(error_code::NONE)
        .with_groups(groups)
}

//! DeleteGroups (v0–v2): an empty group and its offsets are removed (tombstones in
//! `__consumer_offsets`); a group with members is NON_EMPTY_GROUP.

use std::rc::Rc;

use kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
use kafka_protocol::messages::{DeleteGroupsRequest, DeleteGroupsResponse, GroupId};

use super::util::str_bytes;
use crate::coordinator;
use crate::coordinator::records::GroupRecord;
use crate::protocol::error_code;
use crate::server::Shard;

pub async fn handle(shard: &Rc<Shard>, request: DeleteGroupsRequest) -> DeleteGroupsResponse {
    let mut results = Vec::new();
    for group in request.groups_names {
        let group_id = group.to_string();
        let code = delete_one(shard, group_id.clone()).await;
        results.push(
            DeletableGroupResult::default()
                .with_group_id(GroupId(str_bytes(&group_id)))
                .with_error_code(code),
        );
    }
    DeleteGroupsResponse::default()
        .with_throttle_time_ms(0)
        .with_results(results)
}

async fn delete_one(shard: &Rc<Shard>, group_id: String) -> i16 {
    if group_id.is_empty() {
        return error_code::INVALID_GROUP_ID;
    }
    let id = group_id.clone();
    let outcome = coordinator::on_group_shard(
        shard,
        &group_id,
        false,
        move |owner, partition| async move {
            let planned = owner.groups.with_existing(&id, |entry| {
                if !entry.is_empty() {
                    return Err(error_code::NON_EMPTY_GROUP);
                }
                let mut records: Vec<GroupRecord> = entry
                    .offsets
                    .keys()
                    .map(|(topic, index)| GroupRecord::Offset {
                        group: id.clone(),
                        topic: topic.clone(),
                        partition: *index,
                        value: None,
                    })
                    .collect();
                records.push(entry.kind.tombstone(&id));
                Ok(records)
            });
            match planned {
                None => error_code::GROUP_ID_NOT_FOUND,
                Some(Err(code)) => code,
                Some(Ok(records)) => match coordinator::append(&partition, &records).await {
                    Ok(()) => {
                        owner.groups.remove(&id);
                        error_code::NONE
                    }
                    Err(code) => code,
                },
            }
        },
    )
    .await;
    match outcome {
        Ok(Some(code)) => code,
        Ok(None) => error_code::GROUP_ID_NOT_FOUND,
        Err(code) => code,
    }
}

//! InitProducerId (v0–v6) for idempotent, non-transactional producers.
//!
//! A request without a producer id gets a fresh id (from the durable blocks of
//! `server::producer_ids`, on shard 0) and epoch 0. A request carrying its current id and
//! epoch (KIP-360, sent after an error to reset sequences) gets the same id with the epoch
//! bumped; when the epoch would overflow, or the id is not one this broker handed out, a
//! fresh id instead. Transactional ids are refused until transactions exist.

use std::rc::Rc;

use kafka_protocol::messages::{InitProducerIdRequest, InitProducerIdResponse, ProducerId};

use crate::protocol::error_code;
use crate::server::Shard;

/// The controller's shard, which hosts the allocator.
const ALLOCATOR_SHARD: usize = 0;

pub async fn handle(shard: &Rc<Shard>, request: InitProducerIdRequest) -> InitProducerIdResponse {
    let response = InitProducerIdResponse::default()
        .with_throttle_time_ms(0)
        .with_producer_id(ProducerId(-1))
        .with_producer_epoch(-1)
        .with_ongoing_txn_producer_id(ProducerId(-1))
        .with_ongoing_txn_producer_epoch(-1);
    if request.transactional_id.is_some() {
        // The response has no message field: the broker log says why.
        tracing::info!(
            "InitProducerId with a transactional id refused: transactions are not supported yet"
        );
        return response.with_error_code(error_code::TRANSACTIONAL_ID_AUTHORIZATION_FAILED);
    }
    let current_id = request.producer_id.0;
    let current_epoch = request.producer_epoch;
    let allocated = shard
        .run_on(ALLOCATOR_SHARD, move |owner| async move {
            let Some(allocator) = owner.producer_ids.clone() else {
                return Err("this shard has no producer id allocator".to_string());
            };
            let bump = current_id >= 0
                && (0..i16::MAX - 1).contains(&current_epoch)
                && allocator
                    .was_allocated(current_id)
                    .await
                    .map_err(|e| e.to_string())?;
            if bump {
                return Ok((current_id, current_epoch + 1));
            }
            let id = allocator.allocate().await.map_err(|e| e.to_string())?;
            Ok((id, 0))
        })
        .await;
    match allocated {
        Ok(Ok((producer_id, producer_epoch))) => response
            .with_error_code(error_code::NONE)
            .with_producer_id(ProducerId(producer_id))
            .with_producer_epoch(producer_epoch),
        Ok(Err(error)) => {
            tracing::error!(%error, "allocating a producer id failed");
            response.with_error_code(error_code::COORDINATOR_NOT_AVAILABLE)
        }
        Err(unavailable) => {
            tracing::warn!(%unavailable, "allocating a producer id failed");
            response.with_error_code(error_code::COORDINATOR_NOT_AVAILABLE)
        }
    }
}

//! Batches of operations into envelopes: at most [`BATCH_OPS`] and about [`BATCH_BYTES`] each
//! (under the image's broker's packet limit), published in order.

use std::sync::atomic::Ordering;

use rumqttc::{AsyncClient, QoS};

use crate::cluster::stats::ClusterStats;
use crate::cluster::vector::NodeId;
use crate::cluster::wire::{Message, Operation, Signer};

/// Operations per published envelope (a request's answer is sent in several).
const BATCH_OPS: usize = 1024;
/// Bytes of operations per envelope, about: well under the image's broker's packet limit
/// (1 MiB, `max_packet_size`), which drops the connection of a client that sends more.
const BATCH_BYTES: usize = 256 * 1024;

/// How many of `ops` (from the front) go into one envelope: at most [`BATCH_OPS`] and about
/// [`BATCH_BYTES`] of bodies, and always at least one.
fn envelope_len(ops: &[Operation]) -> usize {
    let mut bytes = 0;
    ops.iter()
        .take(BATCH_OPS)
        .position(|op| {
            bytes += op.body.len() + 24;
            bytes > BATCH_BYTES
        })
        .unwrap_or(ops.len().min(BATCH_OPS))
        .max(1)
}

pub(super) async fn publish_batches(
    client: &AsyncClient,
    signer: &Signer,
    sender: NodeId,
    topic: String,
    origin: NodeId,
    mut ops: Vec<Operation>,
    stats: &ClusterStats,
) {
    while !ops.is_empty() {
        let rest = ops.split_off(envelope_len(&ops));
        let count = ops.len() as u64;
        let envelope = signer.seal(sender, &Message::Ops { origin, ops });
        if client
            .publish(topic.clone(), QoS::AtLeastOnce, false, envelope)
            .await
            .is_err()
        {
            return;
        }
        stats.published.fetch_add(count, Ordering::Relaxed);
        ops = rest;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::hlc::Timestamp;
    use crate::cluster::vector::Dot;

    fn ops(sizes: &[usize]) -> Vec<Operation> {
        sizes
            .iter()
            .enumerate()
            .map(|(i, n)| Operation {
                dot: Dot {
                    origin: 1,
                    seq: i as u64 + 1,
                },
                hlc: Timestamp::default(),
                body: vec![0; *n],
            })
            .collect()
    }

    #[test]
    fn envelopes_stay_under_the_byte_and_count_limits_and_take_at_least_one() {
        assert_eq!(envelope_len(&ops(&[100; 3000])), BATCH_OPS);
        assert_eq!(envelope_len(&ops(&[100; 10])), 10);
        // 100 KiB bodies: two fit, the third would pass 256 KiB.
        assert_eq!(envelope_len(&ops(&[100 * 1024; 5])), 2);
        // One body larger than the limit still goes, alone.
        assert_eq!(envelope_len(&ops(&[600 * 1024, 10])), 1);
    }
}

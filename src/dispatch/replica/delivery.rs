//! Delivery outcomes in cluster mode: what this box's channels made of replies, stamped for
//! the other boxes, each reply named by its message's dot.
//!
//! Only the box whose channel sent a reply reports on it; every box (this one too) joins the
//! reports into one outcome per message (`cluster/outcome.rs`), in the store, from the
//! journaled operations (`store/replicated.rs`): applying another box's report needs nothing
//! of the dispatcher. A reply without a dot (written before cluster mode) and a conversation
//! event's delivery (a webhook's) have nothing to name them by on the other boxes: not stamped.
//!
//! Invariant: the dot of a reply the outbox reports on is in the store, since the reply's
//! record and its stamp are journaled (and applied) in one batch before the outbox can read
//! the reply at all.

use super::Body;
use crate::cluster::outcome::{Outcome, Rank};
use crate::cluster::wire::RemoteDelivery;
use crate::dispatch::ports::{Journal, Snapshot};
use crate::dispatch::{Decider, DispatchError};
use crate::model::MessageId;
use crate::op::Op;

/// The outcome a local delivery record reports, and the replies it names.
fn reported(op: &Op) -> (Vec<MessageId>, Outcome) {
    match op {
        Op::Delivered { messages, at_ms } => (
            messages.clone(),
            Outcome {
                rank: Rank::Delivered,
                attempts: 0,
                error: String::new(),
                at_ms: *at_ms,
            },
        ),
        Op::DeliveryFailed {
            message,
            attempts,
            dead,
            error,
            at_ms,
        } => (
            vec![*message],
            Outcome {
                rank: if *dead { Rank::Dead } else { Rank::Failed },
                attempts: *attempts,
                error: error.clone(),
                at_ms: *at_ms,
            },
        ),
        _ => unreachable!("invariant: called for delivery records only"),
    }
}

impl<J: Journal, S: Snapshot> Decider<J, S> {
    /// The cluster body of a local delivery record: its replies by dot, if any has one.
    pub(super) fn delivery_body(&self, op: &Op) -> Result<Option<Body>, DispatchError> {
        let (messages, outcome) = reported(op);
        let mut dots = Vec::with_capacity(messages.len());
        for message in messages {
            if let Some(dot) = self.store.message_dot(message)? {
                dots.push(dot);
            }
        }
        Ok((!dots.is_empty()).then_some(Body::Delivery(RemoteDelivery {
            messages: dots,
            outcome,
        })))
    }
}

//! The cluster bodies about what agents and customers add to a conversation, and their codec:
//! its labels (the whole set, by name and colour: label ids are each box's own) and the
//! customer's rating. Each is a last-writer-wins register per conversation, its version the
//! operation's HLC time and origin (`store/replicated_annotations.rs` applies them).
//!
//! Layouts after the body kind: labels `key | contact | at_ms | u32 n | n × (name | colour)`;
//! rating `key | contact | at_ms | score | comment`. The contact lets a box that has not yet
//! seen the conversation make its copy, as a message's does.
//!
//! Invariant: `decode(encode(x)) == x`; the label count never sizes an allocation beyond what
//! the payload can hold.

use super::{put_identity, put_key, read_key, ConvKey};
use crate::model::Identity;
use crate::op::codec::{put_i64, put_str, put_u32, Reader};
use crate::op::DecodeError;

/// A label as every box names it: by its name (unique per box), with the colour its box gave.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct LabelName {
    pub name: String,
    pub color: String,
}

/// A conversation's label set as an agent left it (the whole register's value).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteLabels {
    pub conversation: ConvKey,
    pub contact: Identity,
    pub labels: Vec<LabelName>,
    pub at_ms: i64,
}

/// The customer's rating of a conversation (a later one replaces it, as on one box).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteRating {
    pub conversation: ConvKey,
    pub contact: Identity,
    pub score: u8,
    pub comment: String,
    pub at_ms: i64,
}

impl RemoteLabels {
    pub(super) fn encode(&self, buf: &mut Vec<u8>) {
        put_key(buf, self.conversation);
        put_identity(buf, &self.contact);
        put_i64(buf, self.at_ms);
        put_u32(
            buf,
            u32::try_from(self.labels.len()).expect("invariant: bounded by the API"),
        );
        for label in &self.labels {
            put_str(buf, &label.name);
            put_str(buf, &label.color);
        }
    }

    pub(super) fn decode(r: &mut Reader<'_>) -> Result<RemoteLabels, DecodeError> {
        let conversation = read_key(r)?;
        let contact = r.identity()?;
        let at_ms = r.i64()?;
        let n = r.u32()? as usize;
        // Each label takes at least its two 4-byte lengths.
        if n > r.buf.len() / 8 {
            return Err(DecodeError::Truncated);
        }
        let labels = (0..n)
            .map(|_| {
                Ok(LabelName {
                    name: r.str()?.to_owned(),
                    color: r.str()?.to_owned(),
                })
            })
            .collect::<Result<_, DecodeError>>()?;
        Ok(RemoteLabels {
            conversation,
            contact,
            labels,
            at_ms,
        })
    }
}

impl RemoteRating {
    pub(super) fn encode(&self, buf: &mut Vec<u8>) {
        put_key(buf, self.conversation);
        put_identity(buf, &self.contact);
        put_i64(buf, self.at_ms);
        buf.push(self.score);
        put_str(buf, &self.comment);
    }

    pub(super) fn decode(r: &mut Reader<'_>) -> Result<RemoteRating, DecodeError> {
        Ok(RemoteRating {
            conversation: read_key(r)?,
            contact: r.identity()?,
            at_ms: r.i64()?,
            score: r.u8()?,
            comment: r.str()?.to_owned(),
        })
    }
}

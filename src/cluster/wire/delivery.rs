//! The codec of [`RemoteDelivery`]: what a box's channel made of replies it delivered, for
//! every box to join into its view (`cluster/outcome.rs`).
//!
//! Layout after the body kind: `u32 n | n × (origin u64 | seq u64) | u8 rank | u32 attempts |
//! error | at_ms`. Invariant: `decode(encode(x)) == x`; the message count never sizes an
//! allocation beyond what the payload can hold.

use crate::cluster::outcome::{Outcome, Rank};
use crate::cluster::vector::Dot;
use crate::op::codec::{put_i64, put_str, put_u32, put_u64, Reader};
use crate::op::DecodeError;

/// One outcome of replies, each named by its message's dot (the same on every box).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteDelivery {
    pub messages: Vec<Dot>,
    pub outcome: Outcome,
}

fn rank_code(rank: Rank) -> u8 {
    match rank {
        Rank::Pending => 0,
        Rank::Failed => 1,
        Rank::Dead => 2,
        Rank::Delivered => 3,
    }
}

impl RemoteDelivery {
    pub(super) fn encode(&self, buf: &mut Vec<u8>) {
        put_u32(
            buf,
            u32::try_from(self.messages.len()).expect("invariant: one report's messages"),
        );
        for dot in &self.messages {
            put_u64(buf, dot.origin);
            put_u64(buf, dot.seq);
        }
        buf.push(rank_code(self.outcome.rank));
        put_u32(buf, self.outcome.attempts);
        put_str(buf, &self.outcome.error);
        put_i64(buf, self.outcome.at_ms);
    }

    pub(super) fn decode(r: &mut Reader<'_>) -> Result<RemoteDelivery, DecodeError> {
        let n = r.u32()? as usize;
        if n > r.buf.len() / 16 {
            return Err(DecodeError::Truncated);
        }
        let messages = (0..n)
            .map(|_| {
                Ok(Dot {
                    origin: r.u64()?,
                    seq: r.u64()?,
                })
            })
            .collect::<Result<_, DecodeError>>()?;
        let code = r.u8()?;
        let rank = [Rank::Pending, Rank::Failed, Rank::Dead, Rank::Delivered]
            .into_iter()
            .find(|k| rank_code(*k) == code)
            .ok_or(DecodeError::BadValue("delivery rank"))?;
        Ok(RemoteDelivery {
            messages,
            outcome: Outcome {
                rank,
                attempts: r.u32()?,
                error: r.str()?.to_owned(),
                at_ms: r.i64()?,
            },
        })
    }
}

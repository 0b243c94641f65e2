//! The codec of [`RemoteKb`]: a knowledge-base entry put or deleted on its origin box
//! (`cluster/kb_lww.rs` says how boxes merge them; the operation's HLC time and origin are its
//! version, so the body carries none).
//!
//! Layout after the body kind: `intent | at_ms | u8 put | (u32 n | n examples | answer |
//! team)`. Invariant: `decode(encode(x)) == x`; the example count never sizes an allocation
//! beyond what the payload can hold.

use crate::op::codec::{put_i64, put_str, put_u32, Reader};
use crate::op::{DecodeError, KbEntry};

/// A knowledge-base write: `entry` put under `intent`, or the intent deleted (`None`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteKb {
    pub intent: String,
    /// The entry put (its intent is `intent`); `None`: a delete.
    pub entry: Option<KbEntry>,
    /// When its origin made the change (wall ms).
    pub at_ms: i64,
}

impl RemoteKb {
    pub(super) fn encode(&self, buf: &mut Vec<u8>) {
        put_str(buf, &self.intent);
        put_i64(buf, self.at_ms);
        match &self.entry {
            Some(entry) => {
                buf.push(1);
                put_u32(
                    buf,
                    u32::try_from(entry.examples.len()).expect("invariant: bounded by the import"),
                );
                for example in &entry.examples {
                    put_str(buf, example);
                }
                put_str(buf, &entry.answer);
                put_str(buf, &entry.team);
            }
            None => buf.push(0),
        }
    }

    pub(super) fn decode(r: &mut Reader<'_>) -> Result<RemoteKb, DecodeError> {
        let intent = r.str()?.to_owned();
        let at_ms = r.i64()?;
        let entry = if r.flag()? {
            let n = r.u32()? as usize;
            // Each example takes at least its 4-byte length.
            if n > r.buf.len() / 4 {
                return Err(DecodeError::Truncated);
            }
            let examples = (0..n)
                .map(|_| r.str().map(str::to_owned))
                .collect::<Result<_, _>>()?;
            Some(KbEntry {
                intent: intent.clone(),
                examples,
                answer: r.str()?.to_owned(),
                team: r.str()?.to_owned(),
            })
        } else {
            None
        };
        Ok(RemoteKb {
            intent,
            entry,
            at_ms,
        })
    }
}

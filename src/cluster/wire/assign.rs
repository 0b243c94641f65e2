//! The wire form of an assignment: who now holds a conversation, with what the assigning box
//! had applied (the register's causal context, see `cluster::register`).
//!
//! Invariant: `decode(encode(x)) == x`; a name is at most [`MAX_NAME`] bytes on the wire
//! (longer ones are cut at a character boundary when made).

use super::{put_identity, put_key, read_key, ConvKey};
use crate::cluster::register::AgentRef;
use crate::cluster::vector::VersionVector;
use crate::model::Identity;
use crate::op::codec::{put_i64, put_str, put_u64, Reader};
use crate::op::DecodeError;

/// Names travel for display only: bounded so an operation stays small.
pub const MAX_NAME: usize = 128;

/// An agent's taking of a conversation (or its giving to them), made on the agent's box or on
/// the box where someone gave it to them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteAssign {
    pub conversation: ConvKey,
    pub contact: Identity,
    pub agent: AgentRef,
    /// The agent's display name on their box.
    pub name: String,
    /// What the assigning box had applied: the holders it replaces.
    pub seen: VersionVector,
    pub at_ms: i64,
}

/// `name` cut to [`MAX_NAME`] bytes at a character boundary.
pub fn bounded_name(name: &str) -> String {
    cut(name, MAX_NAME).to_string()
}

/// `text` cut to at most `max` bytes at a character boundary.
pub(super) fn cut(text: &str, max: usize) -> &str {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

pub(super) fn encode(a: &RemoteAssign, buf: &mut Vec<u8>) {
    put_key(buf, a.conversation);
    put_identity(buf, &a.contact);
    put_u64(buf, a.agent.node);
    put_u64(buf, a.agent.agent);
    put_str(buf, &a.name);
    a.seen.encode(buf);
    put_i64(buf, a.at_ms);
}

pub(super) fn decode(r: &mut Reader<'_>) -> Result<RemoteAssign, DecodeError> {
    let conversation = read_key(r)?;
    let contact = r.identity()?;
    let agent = AgentRef {
        node: r.u64()?,
        agent: r.u64()?,
    };
    let name = r.str()?;
    if name.len() > MAX_NAME {
        return Err(DecodeError::BadValue("agent name"));
    }
    let name = name.to_owned();
    let (seen, used) = VersionVector::decode(r.buf).map_err(|_| DecodeError::BadValue("vector"))?;
    r.take(used)?;
    Ok(RemoteAssign {
        conversation,
        contact,
        agent,
        name,
        seen,
        at_ms: r.i64()?,
    })
}

#[cfg(test)]
mod tests {
    use super::super::Body;
    use super::*;

    fn sample() -> RemoteAssign {
        let mut seen = VersionVector::default();
        seen.advance(3, 17);
        seen.advance(9, 2);
        RemoteAssign {
            conversation: ConvKey { home: 3, id: 44 },
            contact: Identity {
                channel: crate::model::bounded_id("web").unwrap(),
                external_id: crate::model::bounded_id("tea-lover").unwrap(),
            },
            agent: AgentRef { node: 9, agent: 5 },
            name: "小王 Wang".into(),
            seen,
            at_ms: 1_700_000_000_123,
        }
    }

    #[test]
    fn an_assignment_round_trips_and_every_cut_is_refused() {
        let body = Body::Assign(sample());
        let bytes = body.encode();
        assert_eq!(Body::decode(&bytes).unwrap(), body);
        for cut in 0..bytes.len() {
            assert!(Body::decode(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(Body::decode(&longer).is_err());
    }

    #[test]
    fn names_are_bounded_at_a_character_boundary() {
        let long = "王".repeat(100);
        let cut = bounded_name(&long);
        assert!(cut.len() <= MAX_NAME && long.starts_with(&cut));
        let mut a = sample();
        a.name = long;
        let bytes = Body::Assign(a).encode();
        assert!(
            Body::decode(&bytes).is_err(),
            "an over-long name is refused"
        );
    }
}

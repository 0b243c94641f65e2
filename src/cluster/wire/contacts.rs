//! The cluster bodies about contacts, and their codec: a link between two identities (an
//! edge of the grow-only set that says which identities are one person) and a contact's name
//! and details (a last-writer-wins register, its version the operation's HLC time and origin).
//!
//! Both name contacts by an identity (channel, external id), never by a box's contact id.
//!
//! Invariant: `decode(encode(x)) == x`; decoding refuses input that ends early or has bytes
//! left over (checked by `Body::decode`, which these are read from).

use super::put_identity;
use crate::model::Identity;
use crate::op::codec::{put_i64, put_str, Reader};
use crate::op::DecodeError;

/// Two identities are one person: every box links the contacts holding them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteLink {
    pub a: Identity,
    pub b: Identity,
    pub at_ms: i64,
}

/// A contact's name and details as an agent or the customer left them (the whole register's
/// value: the API merged the fields it was given into the stored ones).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteDetails {
    pub contact: Identity,
    pub name: String,
    /// A JSON object.
    pub details: String,
    pub at_ms: i64,
}

impl RemoteLink {
    pub(super) fn encode(&self, buf: &mut Vec<u8>) {
        put_identity(buf, &self.a);
        put_identity(buf, &self.b);
        put_i64(buf, self.at_ms);
    }

    pub(super) fn decode(r: &mut Reader<'_>) -> Result<RemoteLink, DecodeError> {
        Ok(RemoteLink {
            a: r.identity()?,
            b: r.identity()?,
            at_ms: r.i64()?,
        })
    }
}

impl RemoteDetails {
    pub(super) fn encode(&self, buf: &mut Vec<u8>) {
        put_identity(buf, &self.contact);
        put_str(buf, &self.name);
        put_str(buf, &self.details);
        put_i64(buf, self.at_ms);
    }

    pub(super) fn decode(r: &mut Reader<'_>) -> Result<RemoteDetails, DecodeError> {
        Ok(RemoteDetails {
            contact: r.identity()?,
            name: r.str()?.to_owned(),
            details: r.str()?.to_owned(),
            at_ms: r.i64()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::Body;
    use super::*;
    use crate::model::bounded_id;

    fn identity(channel: &str, id: &str) -> Identity {
        Identity {
            channel: bounded_id(channel).unwrap(),
            external_id: bounded_id(id).unwrap(),
        }
    }

    #[test]
    fn contact_bodies_round_trip_and_refuse_every_truncation() {
        let bodies = [
            Body::Link(RemoteLink {
                a: identity("web", "v1"),
                b: identity("api", "kiosk-3"),
                at_ms: 1_796_000_000_000,
            }),
            Body::Details(RemoteDetails {
                contact: identity("web", "v1"),
                name: "李伟".into(),
                details: r#"{"phone":"+86 138"}"#.into(),
                at_ms: -1,
            }),
        ];
        for body in bodies {
            let bytes = body.encode();
            assert_eq!(Body::decode(&bytes), Ok(body.clone()));
            for cut in 0..bytes.len() {
                assert!(Body::decode(&bytes[..cut]).is_err(), "cut at {cut}");
            }
            let mut longer = bytes.clone();
            longer.push(0);
            assert_eq!(Body::decode(&longer), Err(DecodeError::Trailing(1)));
        }
    }
}

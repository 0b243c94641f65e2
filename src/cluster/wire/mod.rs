//! The cluster's wire format: operations in terms every box understands, and the signed
//! envelopes boxes exchange over MQTT.
//!
//! A [`Body`] names things by what is the same on every box: a contact by its identity
//! (channel, external id), a conversation by its [`ConvKey`] (the box where its customer wrote
//! and that box's id for it), a message by its dot. Local ids never travel. Messages and
//! statuses are coded here; assignments in `assign.rs`, contact links and details in
//! `contacts.rs`, knowledge-base writes in `kb.rs`, delivery reports in `delivery.rs`, labels
//! and ratings in `annotations.rs`, and a box's roster of agents (an envelope of its own, not
//! an operation) in `roster.rs`.
//!
//! Every envelope is `MAGIC | kind | sender node | payload | HMAC-SHA256`, the MAC keyed by
//! the cluster's secret over the cluster's name and everything before it: a message from
//! another cluster, or from anyone without the secret, fails [`open`] and is never decoded
//! further. Replays pass the MAC and are dropped by their dots (see `vector.rs`).
//!
//! Invariant: `decode(encode(x)) == x` for every body and envelope; decoding refuses input
//! that ends early or has bytes left over, and never allocates from an untrusted count.

use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::hlc::Timestamp;
use super::vector::{Dot, NodeId, VersionVector};
use crate::conversation::Event;
use crate::model::{ClientId, Identity, Sender};
use crate::op::codec::{put_bytes, put_i64, put_str, put_u32, put_u64, Reader};
use crate::op::DecodeError;

mod annotations;
mod assign;
mod contacts;
mod delivery;
mod kb;
mod roster;

pub use annotations::{LabelName, RemoteLabels, RemoteRating};
pub use assign::{bounded_name, RemoteAssign};
pub use contacts::{RemoteDetails, RemoteLink};
pub use delivery::RemoteDelivery;
pub use kb::RemoteKb;
pub use roster::{Presence, RosterAgent, MAX_ROSTER};

const MAGIC: &[u8; 4] = b"KFC1";
const MAC_LEN: usize = 32;

/// A conversation as every box names it: its home box and that box's id for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ConvKey {
    pub home: NodeId,
    pub id: u64,
}

/// A message or a note, written on its origin box.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteMessage {
    pub conversation: ConvKey,
    /// The contact's identity the conversation's home box knows it by.
    pub contact: Identity,
    pub sender: Sender,
    pub client_id: Option<ClientId>,
    pub text: String,
    pub at_ms: i64,
    pub via: Option<Identity>,
}

/// A conversation's status event (resolve, reopen), with what its origin had seen:
/// a resolve does not close over a customer message its origin had not applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteStatus {
    pub conversation: ConvKey,
    pub contact: Identity,
    pub event: Event,
    pub seen: VersionVector,
    pub at_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Body {
    Message(RemoteMessage),
    Status(RemoteStatus),
    Assign(RemoteAssign),
    Link(RemoteLink),
    Details(RemoteDetails),
    Kb(RemoteKb),
    Delivery(RemoteDelivery),
    Labels(RemoteLabels),
    Rating(RemoteRating),
}

const BODY_MESSAGE: u8 = 1;
const BODY_STATUS: u8 = 2;
const BODY_LINK: u8 = 3;
/// Bodies the store projects beyond `cluster_ops` (`store/replicated.rs`,
/// `queries/cluster.rs`) start with these.
pub const BODY_DETAILS: u8 = 4;
const BODY_ASSIGN: u8 = 5;
pub(crate) const BODY_KB: u8 = 6;
pub(crate) const BODY_DELIVERY: u8 = 7;
pub(crate) const BODY_LABELS: u8 = 8;
pub(crate) const BODY_RATING: u8 = 9;

fn event_code(event: Event) -> u8 {
    match event {
        Event::CustomerMessage => 1,
        Event::Assign => 2,
        Event::AgentReply => 3,
        Event::BotReply => 4,
        Event::Resolve => 5,
        Event::Reopen => 6,
        Event::IdleTimeout => 7,
    }
}

fn event_from_code(code: u8) -> Option<Event> {
    [
        Event::CustomerMessage,
        Event::Assign,
        Event::AgentReply,
        Event::BotReply,
        Event::Resolve,
        Event::Reopen,
        Event::IdleTimeout,
    ]
    .into_iter()
    .find(|e| event_code(*e) == code)
}

fn put_identity(buf: &mut Vec<u8>, identity: &Identity) {
    put_str(buf, &identity.channel);
    put_str(buf, &identity.external_id);
}

fn put_key(buf: &mut Vec<u8>, key: ConvKey) {
    put_u64(buf, key.home);
    put_u64(buf, key.id);
}

fn read_key(r: &mut Reader<'_>) -> Result<ConvKey, DecodeError> {
    Ok(ConvKey {
        home: r.u64()?,
        id: r.u64()?,
    })
}

fn finish<T>(r: &Reader<'_>, value: T) -> Result<T, DecodeError> {
    if r.buf.is_empty() {
        Ok(value)
    } else {
        Err(DecodeError::Trailing(r.buf.len()))
    }
}

impl Body {
    pub fn encode(&self) -> Vec<u8> {
        let mut buf = Vec::with_capacity(96);
        match self {
            Body::Message(m) => {
                buf.push(BODY_MESSAGE);
                put_key(&mut buf, m.conversation);
                put_identity(&mut buf, &m.contact);
                buf.push(m.sender.code());
                match &m.client_id {
                    Some(c) => {
                        buf.push(1);
                        put_str(&mut buf, c);
                    }
                    None => buf.push(0),
                }
                put_str(&mut buf, &m.text);
                put_i64(&mut buf, m.at_ms);
                match &m.via {
                    Some(v) => {
                        buf.push(1);
                        put_identity(&mut buf, v);
                    }
                    None => buf.push(0),
                }
            }
            Body::Status(s) => {
                buf.push(BODY_STATUS);
                put_key(&mut buf, s.conversation);
                put_identity(&mut buf, &s.contact);
                buf.push(event_code(s.event));
                s.seen.encode(&mut buf);
                put_i64(&mut buf, s.at_ms);
            }
            Body::Assign(a) => {
                buf.push(BODY_ASSIGN);
                assign::encode(a, &mut buf);
            }
            Body::Link(l) => {
                buf.push(BODY_LINK);
                l.encode(&mut buf);
            }
            Body::Details(d) => {
                buf.push(BODY_DETAILS);
                d.encode(&mut buf);
            }
            Body::Kb(k) => {
                buf.push(BODY_KB);
                k.encode(&mut buf);
            }
            Body::Delivery(d) => {
                buf.push(BODY_DELIVERY);
                d.encode(&mut buf);
            }
            Body::Labels(l) => {
                buf.push(BODY_LABELS);
                l.encode(&mut buf);
            }
            Body::Rating(r) => {
                buf.push(BODY_RATING);
                r.encode(&mut buf);
            }
        }
        buf
    }

    /// # Errors
    /// [`DecodeError`] when `bytes` is not exactly one body.
    pub fn decode(bytes: &[u8]) -> Result<Body, DecodeError> {
        let mut r = Reader { buf: bytes };
        let body = match r.u8()? {
            BODY_MESSAGE => Body::Message(RemoteMessage {
                conversation: read_key(&mut r)?,
                contact: r.identity()?,
                sender: Sender::from_code(r.u8()?).ok_or(DecodeError::BadValue("sender"))?,
                client_id: if r.flag()? { Some(r.bounded()?) } else { None },
                text: r.str()?.to_owned(),
                at_ms: r.i64()?,
                via: if r.flag()? { Some(r.identity()?) } else { None },
            }),
            BODY_STATUS => {
                let conversation = read_key(&mut r)?;
                let contact = r.identity()?;
                let event = event_from_code(r.u8()?).ok_or(DecodeError::BadValue("event"))?;
                let (seen, used) =
                    VersionVector::decode(r.buf).map_err(|_| DecodeError::BadValue("vector"))?;
                r.take(used)?;
                Body::Status(RemoteStatus {
                    conversation,
                    contact,
                    event,
                    seen,
                    at_ms: r.i64()?,
                })
            }
            BODY_ASSIGN => Body::Assign(assign::decode(&mut r)?),
            BODY_LINK => Body::Link(RemoteLink::decode(&mut r)?),
            BODY_DETAILS => Body::Details(RemoteDetails::decode(&mut r)?),
            BODY_KB => Body::Kb(RemoteKb::decode(&mut r)?),
            BODY_DELIVERY => Body::Delivery(RemoteDelivery::decode(&mut r)?),
            BODY_LABELS => Body::Labels(RemoteLabels::decode(&mut r)?),
            BODY_RATING => Body::Rating(RemoteRating::decode(&mut r)?),
            _ => return Err(DecodeError::BadValue("body kind")),
        };
        finish(&r, body)
    }
}

/// One operation as it travels: its dot, its time, its body still encoded (stored and served
/// as received).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Operation {
    pub dot: Dot,
    pub hlc: Timestamp,
    pub body: Vec<u8>,
}

/// What boxes say to one another.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// Operations of one origin, in seq order (published by the origin, or by any box
    /// answering a request for them).
    Ops { origin: NodeId, ops: Vec<Operation> },
    /// The sender's applied vector (how far it has applied each origin) and its clock.
    Vector {
        applied: VersionVector,
        hlc: Timestamp,
    },
    /// The sender's agents, their presence and load (retained: the latest stands).
    Roster { agents: Vec<RosterAgent> },
    /// "Send origin's operations `first..=last`", asked of box `target`.
    Request {
        target: NodeId,
        origin: NodeId,
        first: u64,
        last: u64,
    },
}

const KIND_OPS: u8 = 1;
const KIND_VECTOR: u8 = 2;
const KIND_REQUEST: u8 = 3;
const KIND_ROSTER: u8 = 4;

/// Why an envelope was dropped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OpenError {
    #[error("not a kefud cluster envelope")]
    NotAnEnvelope,
    #[error("the signature does not match (another cluster, a wrong secret, or forged)")]
    BadSignature,
    #[error("malformed: {0}")]
    Malformed(#[from] DecodeError),
}

/// The key an envelope's MAC is made with: the cluster's secret, bound to its name.
#[derive(Clone)]
pub struct Signer {
    mac: Hmac<Sha256>,
}

impl Signer {
    pub fn new(cluster: &str, secret: &str) -> Signer {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret.as_bytes())
            .expect("invariant: HMAC takes a key of any length");
        put_str_bytes(&mut mac, cluster.as_bytes());
        Signer { mac }
    }

    /// The envelope for `message` from `sender`.
    pub fn seal(&self, sender: NodeId, message: &Message) -> Vec<u8> {
        let mut buf = Vec::with_capacity(64);
        buf.extend_from_slice(MAGIC);
        match message {
            Message::Ops { origin, ops } => {
                buf.push(KIND_OPS);
                put_u64(&mut buf, sender);
                put_u64(&mut buf, *origin);
                put_u32(
                    &mut buf,
                    u32::try_from(ops.len()).expect("invariant: batches are small"),
                );
                for op in ops {
                    put_u64(&mut buf, op.dot.seq);
                    put_u64(&mut buf, op.hlc.0);
                    put_bytes(&mut buf, &op.body);
                }
            }
            Message::Vector { applied, hlc } => {
                buf.push(KIND_VECTOR);
                put_u64(&mut buf, sender);
                applied.encode(&mut buf);
                put_u64(&mut buf, hlc.0);
            }
            Message::Request {
                target,
                origin,
                first,
                last,
            } => {
                buf.push(KIND_REQUEST);
                put_u64(&mut buf, sender);
                put_u64(&mut buf, *target);
                put_u64(&mut buf, *origin);
                put_u64(&mut buf, *first);
                put_u64(&mut buf, *last);
            }
            Message::Roster { agents } => {
                buf.push(KIND_ROSTER);
                put_u64(&mut buf, sender);
                roster::encode(agents, &mut buf);
            }
        }
        let mut mac = self.mac.clone();
        mac.update(&buf);
        buf.extend_from_slice(&mac.finalize().into_bytes());
        buf
    }

    /// Checks an envelope's signature, then decodes it: (sender, message).
    ///
    /// # Errors
    /// [`OpenError`]: not an envelope, a signature that does not match (checked before any
    /// decoding), or a malformed payload.
    pub fn open(&self, envelope: &[u8]) -> Result<(NodeId, Message), OpenError> {
        if envelope.len() < MAGIC.len() + 1 + 8 + MAC_LEN || &envelope[..4] != MAGIC {
            return Err(OpenError::NotAnEnvelope);
        }
        let (signed, tag) = envelope.split_at(envelope.len() - MAC_LEN);
        let mut mac = self.mac.clone();
        mac.update(signed);
        mac.verify_slice(tag).map_err(|_| OpenError::BadSignature)?;
        let mut r = Reader {
            buf: &signed[MAGIC.len()..],
        };
        let kind = r.u8()?;
        let sender = r.u64()?;
        let message = match kind {
            KIND_OPS => {
                let origin = r.u64()?;
                let count = r.u32()? as usize;
                // Each operation takes at least 20 bytes: never trust the count further.
                let mut ops = Vec::with_capacity(count.min(r.buf.len() / 20));
                for _ in 0..count {
                    let seq = r.u64()?;
                    let hlc = Timestamp(r.u64()?);
                    let body = r.bytes()?.to_vec();
                    ops.push(Operation {
                        dot: Dot { origin, seq },
                        hlc,
                        body,
                    });
                }
                Message::Ops { origin, ops }
            }
            KIND_VECTOR => {
                let (applied, used) =
                    VersionVector::decode(r.buf).map_err(|_| DecodeError::BadValue("vector"))?;
                r.take(used)?;
                Message::Vector {
                    applied,
                    hlc: Timestamp(r.u64()?),
                }
            }
            KIND_REQUEST => Message::Request {
                target: r.u64()?,
                origin: r.u64()?,
                first: r.u64()?,
                last: r.u64()?,
            },
            KIND_ROSTER => Message::Roster {
                agents: roster::decode(&mut r)?,
            },
            _ => return Err(OpenError::Malformed(DecodeError::BadValue("envelope kind"))),
        };
        Ok((sender, finish(&r, message)?))
    }
}

/// A length-prefixed byte string into the MAC (so name and envelope cannot run together).
fn put_str_bytes(mac: &mut Hmac<Sha256>, bytes: &[u8]) {
    mac.update(&(bytes.len() as u64).to_le_bytes());
    mac.update(bytes);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::bounded_id;

    fn identity(channel: &str, id: &str) -> Identity {
        Identity {
            channel: bounded_id(channel).unwrap(),
            external_id: bounded_id(id).unwrap(),
        }
    }

    fn bodies() -> Vec<Body> {
        let mut seen = VersionVector::default();
        seen.advance(7, 12);
        seen.advance(9, 3);
        vec![
            Body::Message(RemoteMessage {
                conversation: ConvKey { home: 7, id: 3 },
                contact: identity("web", "v1"),
                sender: Sender::Visitor,
                client_id: Some(bounded_id("c-1").unwrap()),
                text: "你好, hello".into(),
                at_ms: 1_796_000_000_000,
                via: Some(identity("web", "v1")),
            }),
            Body::Message(RemoteMessage {
                conversation: ConvKey { home: 9, id: 1 },
                contact: identity("mqtt", "kiosk-2"),
                sender: Sender::Agent,
                client_id: None,
                text: "ok".into(),
                at_ms: -5,
                via: None,
            }),
            Body::Status(RemoteStatus {
                conversation: ConvKey { home: 7, id: 3 },
                contact: identity("web", "v1"),
                event: Event::Resolve,
                seen,
                at_ms: 17,
            }),
            Body::Kb(RemoteKb {
                intent: "hours".into(),
                entry: Some(crate::op::KbEntry {
                    intent: "hours".into(),
                    examples: vec!["when are you open".into(), "营业时间".into()],
                    answer: "9 to 6".into(),
                    team: String::new(),
                }),
                at_ms: 3,
            }),
            Body::Kb(RemoteKb {
                intent: "parking".into(),
                entry: None,
                at_ms: 4,
            }),
            Body::Delivery(RemoteDelivery {
                messages: vec![Dot { origin: 7, seq: 2 }, Dot { origin: 9, seq: 5 }],
                outcome: crate::cluster::outcome::Outcome {
                    rank: crate::cluster::outcome::Rank::Failed,
                    attempts: 2,
                    error: "timeout".into(),
                    at_ms: 8,
                },
            }),
            Body::Labels(RemoteLabels {
                conversation: ConvKey { home: 7, id: 3 },
                contact: identity("web", "v1"),
                labels: vec![LabelName {
                    name: "vip 贵宾".into(),
                    color: "#ff0000".into(),
                }],
                at_ms: 9,
            }),
            Body::Rating(RemoteRating {
                conversation: ConvKey { home: 9, id: 1 },
                contact: identity("web", "v2"),
                score: 4,
                comment: "quick 快".into(),
                at_ms: 10,
            }),
        ]
    }

    #[test]
    fn bodies_round_trip_and_refuse_every_truncation() {
        for body in bodies() {
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

    fn messages() -> Vec<Message> {
        let mut applied = VersionVector::default();
        applied.advance(1, 40);
        vec![
            Message::Ops {
                origin: 7,
                ops: bodies()
                    .iter()
                    .enumerate()
                    .map(|(i, b)| Operation {
                        dot: Dot {
                            origin: 7,
                            seq: i as u64 + 1,
                        },
                        hlc: Timestamp::new(1_796_000_000_000, i as u16),
                        body: b.encode(),
                    })
                    .collect(),
            },
            Message::Vector {
                applied,
                hlc: Timestamp::new(5, 1),
            },
            Message::Request {
                target: 3,
                origin: 7,
                first: 10,
                last: 20,
            },
            Message::Roster {
                agents: vec![
                    RosterAgent {
                        id: 2,
                        name: "Ann 王".into(),
                        presence: Presence::Online,
                        open: 3,
                        capacity: 5,
                        teams: vec!["tea".into(), "茶".into()],
                    },
                    RosterAgent {
                        id: 9,
                        name: String::new(),
                        presence: Presence::Away,
                        open: 0,
                        capacity: 1,
                        teams: Vec::new(),
                    },
                ],
            },
        ]
    }

    #[test]
    fn every_message_refuses_every_cut_of_its_payload() {
        let signer = Signer::new("tea", "s3cret");
        for m in messages() {
            let sealed = signer.seal(42, &m);
            let payload_end = sealed.len() - MAC_LEN;
            for cut in MAGIC.len() + 1 + 8..payload_end {
                // Re-signed, so only the decoding can refuse it.
                let mut short = sealed[..cut].to_vec();
                let mut mac = signer.mac.clone();
                mac.update(&short);
                short.extend_from_slice(&mac.finalize().into_bytes());
                assert!(signer.open(&short).is_err(), "{m:?} cut at {cut}");
            }
        }
    }

    #[test]
    fn envelopes_round_trip_under_the_same_secret_only() {
        let signer = Signer::new("tea", "s3cret");
        for m in messages() {
            let sealed = signer.seal(42, &m);
            assert_eq!(signer.open(&sealed), Ok((42, m.clone())));
            let other_secret = Signer::new("tea", "guess");
            assert_eq!(other_secret.open(&sealed), Err(OpenError::BadSignature));
            let other_cluster = Signer::new("coffee", "s3cret");
            assert_eq!(other_cluster.open(&sealed), Err(OpenError::BadSignature));
        }
    }

    #[test]
    fn any_changed_byte_breaks_the_signature() {
        let signer = Signer::new("tea", "s3cret");
        let sealed = signer.seal(42, &messages()[0]);
        for i in 4..sealed.len() {
            let mut forged = sealed.clone();
            forged[i] ^= 0x01;
            assert_eq!(
                signer.open(&forged),
                Err(OpenError::BadSignature),
                "byte {i}"
            );
        }
        assert_eq!(signer.open(b"hello"), Err(OpenError::NotAnEnvelope));
        assert_eq!(signer.open(&[]), Err(OpenError::NotAnEnvelope));
    }
}

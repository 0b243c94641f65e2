//! Operations: every state change the daemon makes, as it is written to the journal.
//!
//! An operation is appended (and fsync'd) before anything else sees it; the store, the live
//! subscribers and the acks are all derived from the committed sequence of operations. The
//! binary payload codec lives here and is pure: `decode(kind, encode(op)) == op` for every op.
//!
//! Payload layout: fixed-width little-endian integers, strings as `u32 len | UTF-8 bytes`,
//! optional values as `u8 present | value`. Adding a field means adding a new kind; existing
//! kinds never change shape, so old journals stay readable.

use crate::conversation::Status;
use crate::model::{AgentId, ClientId, ContactId, ConversationId, Identity, MessageId, Sender};

#[derive(Debug, Clone, PartialEq)]
pub enum Op {
    ContactCreated {
        contact: ContactId,
        identity: Identity,
        at_ms: i64,
    },
    ConversationOpened {
        conversation: ConversationId,
        contact: ContactId,
        at_ms: i64,
    },
    MessageAdded(MessageAdded),
    StatusChanged(StatusChanged),
    /// A knowledge-base entry created or replaced (keyed by its intent name).
    KbEntryPut {
        entry: KbEntry,
        at_ms: i64,
    },
    KbEntryDeleted {
        intent: String,
        at_ms: i64,
    },
    /// The intent detected in a customer message (only while the knowledge base has entries).
    MessageClassified {
        message: MessageId,
        intent: String,
        /// The classification score, in 0..=1 (see `KnowledgeBase::classify`: the trained
        /// model's calibrated probability, or the nearest example's cosine).
        score: f32,
    },
    /// The conversation now waits for a person (the scheduler's queue), for `team`.
    HandedToHuman {
        conversation: ConversationId,
        team: String,
        reason: HandoffReason,
        at_ms: i64,
    },
    /// Contact `merged` is the same person as `keep`: its identities, conversations and
    /// messages become `keep`'s. When both had an open conversation, `folded` names the one
    /// whose messages moved into the other (from, into), which stays the only open one.
    ContactsLinked {
        keep: ContactId,
        merged: ContactId,
        folded: Option<(ConversationId, ConversationId)>,
        at_ms: i64,
    },
    /// Outbound messages their channel confirmed (an MQTT PUBACK, a webhook's 2xx).
    Delivered {
        messages: Vec<MessageId>,
        at_ms: i64,
    },
    /// An outbound message's channel refused it or could not be reached; `dead` once the
    /// outbox gave up on it (the dead-letter state).
    DeliveryFailed {
        message: MessageId,
        attempts: u32,
        dead: bool,
        error: String,
        at_ms: i64,
    },
    /// The wall clock stepped by `offset_ms` when kefud's time read `before_ms` (see
    /// `clock.rs`). Token expiries and upload times move by it; with `correct_since_ms`, so do
    /// the times of records from `correct_from_lsn` on that were stamped between then and
    /// `before_ms` by a clock that was not synchronised.
    ClockStepped {
        offset_ms: i64,
        before_ms: i64,
        correct_since_ms: Option<i64>,
        correct_from_lsn: u64,
        at_ms: i64,
    },
}

/// A knowledge-base entry: what customers ask (examples), the bot's answer, who handles it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KbEntry {
    pub intent: String,
    pub examples: Vec<String>,
    /// Empty: the bot never answers this intent itself, it routes it.
    pub answer: String,
    /// The team (skill) that handles it; empty for anyone.
    pub team: String,
}

/// Why a conversation went to a person.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HandoffReason {
    /// The customer asked for one ("人工", "agent", ...).
    Asked,
    /// The best intent was below the bot's threshold, or has no answer.
    NotConfident,
    /// An agent's reply, or a manual assignment, took it out of the bot's hands.
    Taken,
}

impl HandoffReason {
    pub const fn as_str(self) -> &'static str {
        match self {
            HandoffReason::Asked => "asked",
            HandoffReason::NotConfident => "not_confident",
            HandoffReason::Taken => "taken",
        }
    }

    const fn code(self) -> u8 {
        match self {
            HandoffReason::Asked => 1,
            HandoffReason::NotConfident => 2,
            HandoffReason::Taken => 3,
        }
    }

    const fn from_code(code: u8) -> Option<Self> {
        match code {
            1 => Some(HandoffReason::Asked),
            2 => Some(HandoffReason::NotConfident),
            3 => Some(HandoffReason::Taken),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageAdded {
    pub conversation: ConversationId,
    pub contact: ContactId,
    pub sender: Sender,
    /// The agent who wrote it, for `Sender::Agent`.
    pub agent: Option<AgentId>,
    /// The sender's idempotency key, for messages that came with one.
    pub client_id: Option<ClientId>,
    pub text: String,
    pub at_ms: i64,
    /// An uploaded file (an image) the message carries: its upload id. Journaled as its own
    /// kind (`KIND_MESSAGE_WITH_ATTACHMENT`), so messages without one keep the original shape.
    pub attachment: Option<String>,
    /// The identity the message came in on (a customer's) or goes out to (a reply): its
    /// route. Journaled as `KIND_MESSAGE_ROUTED`; `None` only in records written before it.
    pub via: Option<Identity>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusChanged {
    pub conversation: ConversationId,
    pub from: Status,
    pub to: Status,
    /// Who holds the conversation after the change.
    pub assignee: Option<AgentId>,
    /// The agent who made the change; `None` for the customer or a timer.
    pub by: Option<AgentId>,
    pub at_ms: i64,
}

pub const KIND_CONTACT_CREATED: u8 = 1;
pub const KIND_CONVERSATION_OPENED: u8 = 2;
pub const KIND_MESSAGE_ADDED: u8 = 3;
pub const KIND_STATUS_CHANGED: u8 = 4;
pub const KIND_KB_ENTRY_PUT: u8 = 5;
pub const KIND_KB_ENTRY_DELETED: u8 = 6;
pub const KIND_MESSAGE_CLASSIFIED: u8 = 7;
pub const KIND_HANDED_TO_HUMAN: u8 = 8;
pub const KIND_MESSAGE_WITH_ATTACHMENT: u8 = 9;
pub const KIND_MESSAGE_ROUTED: u8 = 10;
pub const KIND_CONTACTS_LINKED: u8 = 11;
pub const KIND_DELIVERED: u8 = 12;
pub const KIND_DELIVERY_FAILED: u8 = 13;
pub const KIND_CLOCK_STEPPED: u8 = 14;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("unknown operation kind {0}")]
    UnknownKind(u8),
    #[error("payload ends early")]
    Truncated,
    #[error("payload has {0} trailing bytes")]
    Trailing(usize),
    #[error("invalid string in payload")]
    BadString,
    #[error("invalid value for {0}")]
    BadValue(&'static str),
}

impl Op {
    pub fn kind(&self) -> u8 {
        match self {
            Op::ContactCreated { .. } => KIND_CONTACT_CREATED,
            Op::ConversationOpened { .. } => KIND_CONVERSATION_OPENED,
            Op::MessageAdded(m) if m.via.is_some() => KIND_MESSAGE_ROUTED,
            Op::MessageAdded(m) if m.attachment.is_some() => KIND_MESSAGE_WITH_ATTACHMENT,
            Op::MessageAdded(_) => KIND_MESSAGE_ADDED,
            Op::StatusChanged(_) => KIND_STATUS_CHANGED,
            Op::KbEntryPut { .. } => KIND_KB_ENTRY_PUT,
            Op::KbEntryDeleted { .. } => KIND_KB_ENTRY_DELETED,
            Op::MessageClassified { .. } => KIND_MESSAGE_CLASSIFIED,
            Op::HandedToHuman { .. } => KIND_HANDED_TO_HUMAN,
            Op::ContactsLinked { .. } => KIND_CONTACTS_LINKED,
            Op::Delivered { .. } => KIND_DELIVERED,
            Op::DeliveryFailed { .. } => KIND_DELIVERY_FAILED,
            Op::ClockStepped { .. } => KIND_CLOCK_STEPPED,
        }
    }

    /// Appends the payload (not the frame header) to `buf`.
    ///
    /// One piece on purpose, like [`Op::decode`]: the two mirror each other arm by arm (the
    /// journal's format of every operation), and split apart they could drift.
    pub fn encode(&self, buf: &mut Vec<u8>) {
        match self {
            Op::ContactCreated {
                contact,
                identity,
                at_ms,
            } => {
                put_u64(buf, *contact);
                put_str(buf, &identity.channel);
                put_str(buf, &identity.external_id);
                put_i64(buf, *at_ms);
            }
            Op::ConversationOpened {
                conversation,
                contact,
                at_ms,
            } => {
                put_u64(buf, *conversation);
                put_u64(buf, *contact);
                put_i64(buf, *at_ms);
            }
            Op::MessageAdded(m) => {
                put_u64(buf, m.conversation);
                put_u64(buf, m.contact);
                buf.push(m.sender.code());
                put_opt_u64(buf, m.agent);
                match &m.client_id {
                    Some(c) => {
                        buf.push(1);
                        put_str(buf, c);
                    }
                    None => buf.push(0),
                }
                put_str(buf, &m.text);
                put_i64(buf, m.at_ms);
                match (&m.via, &m.attachment) {
                    (Some(via), attachment) => {
                        match attachment {
                            Some(a) => {
                                buf.push(1);
                                put_str(buf, a);
                            }
                            None => buf.push(0),
                        }
                        put_str(buf, &via.channel);
                        put_str(buf, &via.external_id);
                    }
                    (None, Some(a)) => put_str(buf, a),
                    (None, None) => {}
                }
            }
            Op::StatusChanged(s) => {
                put_u64(buf, s.conversation);
                buf.push(s.from.code());
                buf.push(s.to.code());
                put_opt_u64(buf, s.assignee);
                put_opt_u64(buf, s.by);
                put_i64(buf, s.at_ms);
            }
            Op::KbEntryPut { entry, at_ms } => {
                put_str(buf, &entry.intent);
                put_u32(buf, entry.examples.len() as u32);
                for example in &entry.examples {
                    put_str(buf, example);
                }
                put_str(buf, &entry.answer);
                put_str(buf, &entry.team);
                put_i64(buf, *at_ms);
            }
            Op::KbEntryDeleted { intent, at_ms } => {
                put_str(buf, intent);
                put_i64(buf, *at_ms);
            }
            Op::MessageClassified {
                message,
                intent,
                score,
            } => {
                put_u64(buf, *message);
                put_str(buf, intent);
                put_u32(buf, score.to_bits());
            }
            Op::HandedToHuman {
                conversation,
                team,
                reason,
                at_ms,
            } => {
                put_u64(buf, *conversation);
                put_str(buf, team);
                buf.push(reason.code());
                put_i64(buf, *at_ms);
            }
            Op::ContactsLinked {
                keep,
                merged,
                folded,
                at_ms,
            } => {
                put_u64(buf, *keep);
                put_u64(buf, *merged);
                match folded {
                    Some((from, into)) => {
                        buf.push(1);
                        put_u64(buf, *from);
                        put_u64(buf, *into);
                    }
                    None => buf.push(0),
                }
                put_i64(buf, *at_ms);
            }
            Op::Delivered { messages, at_ms } => {
                put_u32(buf, messages.len() as u32);
                for m in messages {
                    put_u64(buf, *m);
                }
                put_i64(buf, *at_ms);
            }
            Op::DeliveryFailed {
                message,
                attempts,
                dead,
                error,
                at_ms,
            } => {
                put_u64(buf, *message);
                put_u32(buf, *attempts);
                buf.push(u8::from(*dead));
                put_str(buf, error);
                put_i64(buf, *at_ms);
            }
            Op::ClockStepped {
                offset_ms,
                before_ms,
                correct_since_ms,
                correct_from_lsn,
                at_ms,
            } => {
                put_i64(buf, *offset_ms);
                put_i64(buf, *before_ms);
                match correct_since_ms {
                    Some(since) => {
                        buf.push(1);
                        put_i64(buf, *since);
                    }
                    None => buf.push(0),
                }
                put_u64(buf, *correct_from_lsn);
                put_i64(buf, *at_ms);
            }
        }
    }

    /// The inverse of [`Op::encode`], arm by arm (one piece for the same reason).
    ///
    /// # Errors
    /// [`DecodeError`] when the payload does not hold exactly one operation of `kind`.
    pub fn decode(kind: u8, payload: &[u8]) -> Result<Op, DecodeError> {
        let mut r = Reader { buf: payload };
        let op = match kind {
            KIND_CONTACT_CREATED => Op::ContactCreated {
                contact: r.u64()?,
                identity: r.identity()?,
                at_ms: r.i64()?,
            },
            KIND_CONVERSATION_OPENED => Op::ConversationOpened {
                conversation: r.u64()?,
                contact: r.u64()?,
                at_ms: r.i64()?,
            },
            KIND_MESSAGE_ADDED | KIND_MESSAGE_WITH_ATTACHMENT | KIND_MESSAGE_ROUTED => {
                Op::MessageAdded(MessageAdded {
                    conversation: r.u64()?,
                    contact: r.u64()?,
                    sender: Sender::from_code(r.u8()?).ok_or(DecodeError::BadValue("sender"))?,
                    agent: r.opt_u64()?,
                    client_id: if r.flag()? { Some(r.bounded()?) } else { None },
                    text: r.str()?.to_owned(),
                    at_ms: r.i64()?,
                    attachment: match kind {
                        KIND_MESSAGE_WITH_ATTACHMENT => Some(r.str()?.to_owned()),
                        KIND_MESSAGE_ROUTED if r.flag()? => Some(r.str()?.to_owned()),
                        _ => None,
                    },
                    via: if kind == KIND_MESSAGE_ROUTED {
                        Some(r.identity()?)
                    } else {
                        None
                    },
                })
            }
            KIND_STATUS_CHANGED => Op::StatusChanged(StatusChanged {
                conversation: r.u64()?,
                from: Status::from_code(r.u8()?).ok_or(DecodeError::BadValue("status"))?,
                to: Status::from_code(r.u8()?).ok_or(DecodeError::BadValue("status"))?,
                assignee: r.opt_u64()?,
                by: r.opt_u64()?,
                at_ms: r.i64()?,
            }),
            KIND_KB_ENTRY_PUT => Op::KbEntryPut {
                entry: KbEntry {
                    intent: r.str()?.to_owned(),
                    examples: {
                        let n = r.u32()? as usize;
                        // Each example takes at least its 4-byte length: a count beyond what
                        // the payload can hold is damage, not a reason to allocate.
                        if n > r.buf.len() / 4 {
                            return Err(DecodeError::Truncated);
                        }
                        (0..n)
                            .map(|_| r.str().map(str::to_owned))
                            .collect::<Result<_, _>>()?
                    },
                    answer: r.str()?.to_owned(),
                    team: r.str()?.to_owned(),
                },
                at_ms: r.i64()?,
            },
            KIND_KB_ENTRY_DELETED => Op::KbEntryDeleted {
                intent: r.str()?.to_owned(),
                at_ms: r.i64()?,
            },
            KIND_MESSAGE_CLASSIFIED => Op::MessageClassified {
                message: r.u64()?,
                intent: r.str()?.to_owned(),
                score: f32::from_bits(r.u32()?),
            },
            KIND_HANDED_TO_HUMAN => Op::HandedToHuman {
                conversation: r.u64()?,
                team: r.str()?.to_owned(),
                reason: HandoffReason::from_code(r.u8()?)
                    .ok_or(DecodeError::BadValue("handoff reason"))?,
                at_ms: r.i64()?,
            },
            KIND_CONTACTS_LINKED => Op::ContactsLinked {
                keep: r.u64()?,
                merged: r.u64()?,
                folded: if r.flag()? {
                    Some((r.u64()?, r.u64()?))
                } else {
                    None
                },
                at_ms: r.i64()?,
            },
            KIND_DELIVERED => Op::Delivered {
                messages: {
                    let n = r.u32()? as usize;
                    if n > r.buf.len() / 8 {
                        return Err(DecodeError::Truncated);
                    }
                    (0..n).map(|_| r.u64()).collect::<Result<_, _>>()?
                },
                at_ms: r.i64()?,
            },
            KIND_DELIVERY_FAILED => Op::DeliveryFailed {
                message: r.u64()?,
                attempts: r.u32()?,
                dead: r.flag()?,
                error: r.str()?.to_owned(),
                at_ms: r.i64()?,
            },
            KIND_CLOCK_STEPPED => Op::ClockStepped {
                offset_ms: r.i64()?,
                before_ms: r.i64()?,
                correct_since_ms: match r.u8()? {
                    0 => None,
                    1 => Some(r.i64()?),
                    _ => return Err(DecodeError::BadValue("option flag")),
                },
                correct_from_lsn: r.u64()?,
                at_ms: r.i64()?,
            },
            other => return Err(DecodeError::UnknownKind(other)),
        };
        if !r.buf.is_empty() {
            return Err(DecodeError::Trailing(r.buf.len()));
        }
        Ok(op)
    }
}

fn put_u64(buf: &mut Vec<u8>, v: u64) {
    buf.extend_from_slice(&v.to_le_bytes());
}

fn put_u32(buf: &mut Vec<u8>, v: u32) {
    buf.extend_from_slice(&v.to_le_bytes());
}

fn put_i64(buf: &mut Vec<u8>, v: i64) {
    buf.extend_from_slice(&v.to_le_bytes());
}

fn put_opt_u64(buf: &mut Vec<u8>, v: Option<u64>) {
    match v {
        Some(v) => {
            buf.push(1);
            put_u64(buf, v);
        }
        None => buf.push(0),
    }
}

fn put_str(buf: &mut Vec<u8>, s: &str) {
    let len = u32::try_from(s.len())
        .expect("invariant: op strings are bounded far below 4 GiB by the frame limits");
    buf.extend_from_slice(&len.to_le_bytes());
    buf.extend_from_slice(s.as_bytes());
}

struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if self.buf.len() < n {
            return Err(DecodeError::Truncated);
        }
        let (head, rest) = self.buf.split_at(n);
        self.buf = rest;
        Ok(head)
    }

    fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.take(1)?[0])
    }

    fn u32(&mut self) -> Result<u32, DecodeError> {
        Ok(u32::from_le_bytes(
            self.take(4)?
                .try_into()
                .expect("invariant: take(4) yields 4 bytes"),
        ))
    }

    fn u64(&mut self) -> Result<u64, DecodeError> {
        Ok(u64::from_le_bytes(
            self.take(8)?
                .try_into()
                .expect("invariant: take(8) yields 8 bytes"),
        ))
    }

    fn i64(&mut self) -> Result<i64, DecodeError> {
        Ok(i64::from_le_bytes(
            self.take(8)?
                .try_into()
                .expect("invariant: take(8) yields 8 bytes"),
        ))
    }

    fn flag(&mut self) -> Result<bool, DecodeError> {
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(DecodeError::BadValue("flag")),
        }
    }

    fn identity(&mut self) -> Result<Identity, DecodeError> {
        Ok(Identity {
            channel: self.bounded()?,
            external_id: self.bounded()?,
        })
    }

    fn opt_u64(&mut self) -> Result<Option<u64>, DecodeError> {
        match self.u8()? {
            0 => Ok(None),
            1 => Ok(Some(self.u64()?)),
            _ => Err(DecodeError::BadValue("option flag")),
        }
    }

    fn str(&mut self) -> Result<&'a str, DecodeError> {
        let len = u32::from_le_bytes(
            self.take(4)?
                .try_into()
                .expect("invariant: take(4) yields 4 bytes"),
        );
        std::str::from_utf8(self.take(len as usize)?).map_err(|_| DecodeError::BadString)
    }

    fn bounded<const N: usize>(&mut self) -> Result<heapless::String<N>, DecodeError> {
        let s = self.str()?;
        let mut out = heapless::String::new();
        out.push_str(s).map_err(|()| DecodeError::BadString)?;
        Ok(out)
    }
}
/// An operation with its LSN, on its way through the journal to the post-commit consumers.
#[derive(Debug, Clone)]
pub struct Entry {
    pub lsn: crate::model::Lsn,
    pub op: Op,
    /// The identities whose live connections must see this record. Not journaled: it is the
    /// dispatcher's routing knowledge at append time, carried along so that fan-out needs no
    /// lookup of its own.
    pub audience: Option<std::sync::Arc<[Identity]>>,
}

impl Entry {
    /// Roughly the bytes this entry takes framed, for batch sizing.
    pub fn op_size_estimate(&self) -> usize {
        match &self.op {
            Op::MessageAdded(m) => 64 + m.text.len(),
            Op::KbEntryPut { entry, .. } => {
                64 + entry.answer.len() + entry.examples.iter().map(|e| e.len() + 4).sum::<usize>()
            }
            _ => 64,
        }
    }
}

#[cfg(test)]
mod tests;

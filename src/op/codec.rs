//! The operations' binary payload codec: pure, `decode(kind, encode(op)) == op` for every op.
//! The layout is described in `op.rs`.

use super::*;
use crate::cluster::register::AgentRef;
use crate::cluster::vector::Dot;

impl Op {
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
            Op::ConversationHomed {
                conversation,
                home_node,
                home_id,
                joined,
            } => {
                put_u64(buf, *conversation);
                put_u64(buf, *home_node);
                put_u64(buf, *home_id);
                buf.push(u8::from(*joined));
            }
            Op::Replicated(r) => {
                put_u64(buf, r.origin);
                put_u64(buf, r.seq);
                put_u64(buf, r.hlc);
                put_opt_u64(buf, r.message);
                put_bytes(buf, &r.body);
            }
            Op::ContactDetails {
                contact,
                name,
                details,
                at_ms,
            } => {
                put_u64(buf, *contact);
                put_str(buf, name);
                put_str(buf, details);
                put_i64(buf, *at_ms);
            }
            Op::ConversationLabeled {
                conversation,
                labels,
                by,
                at_ms,
            } => {
                put_u64(buf, *conversation);
                put_u32(buf, labels.len() as u32);
                for label in labels {
                    put_u64(buf, *label);
                }
                put_u64(buf, *by);
                put_i64(buf, *at_ms);
            }
            Op::ConversationRated {
                conversation,
                score,
                comment,
                at_ms,
            } => {
                put_u64(buf, *conversation);
                buf.push(*score);
                put_str(buf, comment);
                put_i64(buf, *at_ms);
            }
            Op::ConversationHeld {
                conversation,
                holders,
                context,
            } => {
                put_u64(buf, *conversation);
                put_u32(buf, holders.len() as u32);
                for h in holders {
                    put_u64(buf, h.dot.origin);
                    put_u64(buf, h.dot.seq);
                    put_u64(buf, h.agent.node);
                    put_u64(buf, h.agent.agent);
                    put_str(buf, &h.name);
                }
                context.encode(buf);
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
            KIND_CONVERSATION_HOMED => Op::ConversationHomed {
                conversation: r.u64()?,
                home_node: r.u64()?,
                home_id: r.u64()?,
                joined: r.flag()?,
            },
            KIND_REPLICATED => Op::Replicated(Replicated {
                origin: r.u64()?,
                seq: r.u64()?,
                hlc: r.u64()?,
                message: r.opt_u64()?,
                body: r.bytes()?.to_vec(),
            }),
            KIND_CONTACT_DETAILS => Op::ContactDetails {
                contact: r.u64()?,
                name: r.str()?.to_owned(),
                details: r.str()?.to_owned(),
                at_ms: r.i64()?,
            },
            KIND_CONVERSATION_LABELED => {
                let conversation = r.u64()?;
                let count = r.u32()? as usize;
                // Each id takes 8 bytes: a count the payload cannot hold is damage, not a
                // reason to allocate.
                if count > r.buf.len() / 8 {
                    return Err(DecodeError::Truncated);
                }
                let labels = (0..count).map(|_| r.u64()).collect::<Result<_, _>>()?;
                Op::ConversationLabeled {
                    conversation,
                    labels,
                    by: r.u64()?,
                    at_ms: r.i64()?,
                }
            }
            KIND_CONVERSATION_RATED => Op::ConversationRated {
                conversation: r.u64()?,
                score: match r.u8()? {
                    s @ 1..=5 => s,
                    _ => return Err(DecodeError::BadValue("score")),
                },
                comment: r.str()?.to_owned(),
                at_ms: r.i64()?,
            },
            KIND_CONVERSATION_HELD => {
                let conversation = r.u64()?;
                let count = r.u32()? as usize;
                // Each holder takes at least 36 bytes: a count the payload cannot hold is
                // damage, not a reason to allocate.
                if count > r.buf.len() / 36 {
                    return Err(DecodeError::Truncated);
                }
                let holders = (0..count)
                    .map(|_| {
                        Ok(Holder {
                            dot: Dot {
                                origin: r.u64()?,
                                seq: r.u64()?,
                            },
                            agent: AgentRef {
                                node: r.u64()?,
                                agent: r.u64()?,
                            },
                            name: r.str()?.to_owned(),
                        })
                    })
                    .collect::<Result<_, DecodeError>>()?;
                let (context, used) =
                    VersionVector::decode(r.buf).map_err(|_| DecodeError::BadValue("vector"))?;
                r.take(used)?;
                Op::ConversationHeld {
                    conversation,
                    holders,
                    context,
                }
            }
            other => return Err(DecodeError::UnknownKind(other)),
        };
        if !r.buf.is_empty() {
            return Err(DecodeError::Trailing(r.buf.len()));
        }
        Ok(op)
    }
}

pub(crate) fn put_u64(buf: &mut Vec<u8>, v: u64) {
    buf.extend_from_slice(&v.to_le_bytes());
}

pub(crate) fn put_u32(buf: &mut Vec<u8>, v: u32) {
    buf.extend_from_slice(&v.to_le_bytes());
}

pub(crate) fn put_i64(buf: &mut Vec<u8>, v: i64) {
    buf.extend_from_slice(&v.to_le_bytes());
}

pub(crate) fn put_opt_u64(buf: &mut Vec<u8>, v: Option<u64>) {
    match v {
        Some(v) => {
            buf.push(1);
            put_u64(buf, v);
        }
        None => buf.push(0),
    }
}

pub(crate) fn put_str(buf: &mut Vec<u8>, s: &str) {
    let len = u32::try_from(s.len())
        .expect("invariant: op strings are bounded far below 4 GiB by the frame limits");
    buf.extend_from_slice(&len.to_le_bytes());
    buf.extend_from_slice(s.as_bytes());
}

pub(crate) fn put_bytes(buf: &mut Vec<u8>, bytes: &[u8]) {
    let len = u32::try_from(bytes.len())
        .expect("invariant: op byte strings are bounded far below 4 GiB by the frame limits");
    buf.extend_from_slice(&len.to_le_bytes());
    buf.extend_from_slice(bytes);
}

/// Reads a payload front to back; every read refuses input that ends early.
pub(crate) struct Reader<'a> {
    pub(crate) buf: &'a [u8],
}

impl<'a> Reader<'a> {
    pub(crate) fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if self.buf.len() < n {
            return Err(DecodeError::Truncated);
        }
        let (head, rest) = self.buf.split_at(n);
        self.buf = rest;
        Ok(head)
    }

    pub(crate) fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.take(1)?[0])
    }

    pub(crate) fn u32(&mut self) -> Result<u32, DecodeError> {
        Ok(u32::from_le_bytes(
            self.take(4)?
                .try_into()
                .expect("invariant: take(4) yields 4 bytes"),
        ))
    }

    pub(crate) fn u64(&mut self) -> Result<u64, DecodeError> {
        Ok(u64::from_le_bytes(
            self.take(8)?
                .try_into()
                .expect("invariant: take(8) yields 8 bytes"),
        ))
    }

    pub(crate) fn i64(&mut self) -> Result<i64, DecodeError> {
        Ok(i64::from_le_bytes(
            self.take(8)?
                .try_into()
                .expect("invariant: take(8) yields 8 bytes"),
        ))
    }

    pub(crate) fn flag(&mut self) -> Result<bool, DecodeError> {
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(DecodeError::BadValue("flag")),
        }
    }

    pub(crate) fn identity(&mut self) -> Result<Identity, DecodeError> {
        Ok(Identity {
            channel: self.bounded()?,
            external_id: self.bounded()?,
        })
    }

    pub(crate) fn opt_u64(&mut self) -> Result<Option<u64>, DecodeError> {
        match self.u8()? {
            0 => Ok(None),
            1 => Ok(Some(self.u64()?)),
            _ => Err(DecodeError::BadValue("option flag")),
        }
    }

    pub(crate) fn bytes(&mut self) -> Result<&'a [u8], DecodeError> {
        let len = self.u32()?;
        self.take(len as usize)
    }

    pub(crate) fn str(&mut self) -> Result<&'a str, DecodeError> {
        std::str::from_utf8(self.bytes()?).map_err(|_| DecodeError::BadString)
    }

    pub(crate) fn bounded<const N: usize>(&mut self) -> Result<heapless::String<N>, DecodeError> {
        let s = self.str()?;
        let mut out = heapless::String::new();
        out.push_str(s).map_err(|()| DecodeError::BadString)?;
        Ok(out)
    }
}

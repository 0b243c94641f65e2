//! The JSON frames of the public contract (PRODUCT.md), in one place.
//!
//! Outbound frames are built here both from live operations (fan-out) and from stored rows
//! (resume), so a resumed client sees byte-for-byte the frames a live one saw. Inbound visitor
//! frames are parsed and validated here; every refusal has a stable `code`.
//!
//! Allocation: outbound frames are encoded into a per-thread arena of `ARENA_CHUNK`-byte
//! chunks and handed out as reference-counted slices of it, so a frame costs no allocation of
//! its own (a chunk is one or two, shared by the frames encoded into it). A frame that is kept
//! keeps its whole chunk alive, which is why chunks are small. Inbound frames are parsed by
//! borrowing from the frame's text: only the message text is copied out (escapes aside).

use std::borrow::Cow;
use std::cell::RefCell;

use axum::extract::ws::Utf8Bytes;
use bytes::{BufMut, BytesMut};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::model::{
    bounded_id, check_text, AgentId, ClientId, ContactId, ConversationId, Lsn, MessageId, RowId,
    TextError, CLIENT_ID_MAX,
};
use crate::store::queries::{AgentEventRow, MessageRow};

/// `{"type":"message",...}` as a visitor sees it.
#[derive(Serialize)]
struct VisitorMessage<'a> {
    r#type: &'static str,
    message_id: MessageId,
    sender: &'a str,
    text: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    client_id: Option<&'a str>,
    created_at: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    attachment: Option<&'a str>,
}

pub fn visitor_message(
    message_id: MessageId,
    sender: &str,
    text: &str,
    client_id: Option<&str>,
    created_at: i64,
    attachment: Option<&str>,
) -> Utf8Bytes {
    to_json(&VisitorMessage {
        r#type: "message",
        message_id,
        sender,
        text,
        client_id,
        created_at,
        attachment,
    })
}

pub fn visitor_message_row(m: &MessageRow) -> Utf8Bytes {
    visitor_message(
        m.id,
        &m.sender,
        &m.text,
        m.client_id.as_deref(),
        m.created_at,
        m.attachment.as_deref(),
    )
}

#[derive(Serialize)]
struct AgentMessage<'a> {
    r#type: &'static str,
    seq: Lsn,
    message: MessageView<'a>,
}

/// A message as agents see it (API responses and live events).
#[derive(Serialize)]
pub struct MessageView<'a> {
    pub id: MessageId,
    pub conversation_id: ConversationId,
    pub contact_id: ContactId,
    pub sender: &'a str,
    pub agent_id: Option<AgentId>,
    pub client_id: Option<&'a str>,
    pub text: &'a str,
    pub created_at: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub intent: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub intent_score: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attachment: Option<&'a str>,
    /// The channel it came in on, or a reply went out on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub channel: Option<&'a str>,
    /// A reply's delivery on its channel: `pending`, `delivered` or `dead`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delivery: Option<&'a str>,
}

impl<'a> From<&'a MessageRow> for MessageView<'a> {
    fn from(m: &'a MessageRow) -> Self {
        MessageView {
            id: m.id,
            conversation_id: m.conversation_id,
            contact_id: m.contact_id,
            sender: &m.sender,
            agent_id: m.agent_id,
            client_id: m.client_id.as_deref(),
            text: &m.text,
            created_at: m.created_at,
            intent: m.intent.as_deref(),
            intent_score: m.intent_score,
            attachment: m.attachment.as_deref(),
            channel: m.channel.as_deref(),
            delivery: m.delivery.as_deref(),
        }
    }
}

pub fn agent_message(message: MessageView<'_>) -> Utf8Bytes {
    to_json(&AgentMessage {
        r#type: "message",
        seq: message.id,
        message,
    })
}

#[derive(Serialize)]
pub struct ConversationEvent<'a> {
    pub r#type: &'static str,
    pub seq: Lsn,
    pub conversation_id: ConversationId,
    pub from: &'a str,
    pub to: &'a str,
    pub assignee: Option<AgentId>,
    pub by: Option<AgentId>,
    pub at: i64,
}

pub fn conversation_event(e: &ConversationEvent<'_>) -> Utf8Bytes {
    to_json(e)
}

/// Agents' live frame for replies their channel confirmed (`delivered`), or refused (`pending`
/// again after a failed attempt, `dead` after the last).
pub fn delivery_event(
    seq: Lsn,
    message_ids: &[MessageId],
    state: &str,
    error: Option<&str>,
) -> Utf8Bytes {
    to_json(&serde_json::json!({
        "type": "delivery",
        "seq": seq,
        "message_ids": message_ids,
        "state": state,
        "error": error,
    }))
}

/// Agents' live frame for two contacts linked into one; `folded` is the conversation that
/// closed into the other, (from, into).
pub fn contacts_linked_event(
    seq: Lsn,
    keep: ContactId,
    merged: ContactId,
    folded: Option<(ConversationId, ConversationId)>,
) -> Utf8Bytes {
    to_json(&serde_json::json!({
        "type": "contacts_linked",
        "seq": seq,
        "contact_id": keep,
        "merged_contact_id": merged,
        "closed_conversation_id": folded.map(|(from, _)| from),
        "conversation_id": folded.map(|(_, into)| into),
    }))
}

/// Agents' live frame for a conversation's labels, replaced.
pub fn labels_event(seq: Lsn, conversation: ConversationId, labels: &[u64]) -> Utf8Bytes {
    to_json(&serde_json::json!({
        "type": "labels",
        "seq": seq,
        "conversation_id": conversation,
        "labels": labels,
    }))
}

/// Agents' live frame for who holds a conversation across a cluster's boxes (two or more: a
/// conflict).
pub fn holders_event(
    seq: Lsn,
    conversation: ConversationId,
    holders: &[crate::store::holders::HolderView],
) -> Utf8Bytes {
    to_json(&serde_json::json!({
        "type": "holders",
        "seq": seq,
        "conversation_id": conversation,
        "holders": holders,
        "conflict": holders.len() > 1,
    }))
}

/// Agents' live frame for a contact's name and details, replaced.
pub fn contact_event(seq: Lsn, contact: ContactId, name: &str) -> Utf8Bytes {
    to_json(&serde_json::json!({
        "type": "contact",
        "seq": seq,
        "contact_id": contact,
        "name": name,
    }))
}

/// Agents' live frame for a customer's rating.
pub fn rating_event(seq: Lsn, conversation: ConversationId, score: u8) -> Utf8Bytes {
    to_json(&serde_json::json!({
        "type": "rating",
        "seq": seq,
        "conversation_id": conversation,
        "score": score,
    }))
}

pub fn agent_event_row(e: &AgentEventRow) -> Utf8Bytes {
    match e {
        AgentEventRow::Message(m) => agent_message(m.into()),
        AgentEventRow::Status {
            lsn,
            conversation_id,
            from,
            to,
            assignee,
            by,
            at,
        } => conversation_event(&ConversationEvent {
            r#type: "conversation",
            seq: *lsn,
            conversation_id: *conversation_id,
            from,
            to,
            assignee: *assignee,
            by: *by,
            at: *at,
        }),
    }
}

pub fn ack(client_id: &str, message_id: MessageId) -> Utf8Bytes {
    #[derive(Serialize)]
    struct Ack<'a> {
        r#type: &'static str,
        client_id: &'a str,
        message_id: MessageId,
    }
    to_json(&Ack {
        r#type: "ack",
        client_id,
        message_id,
    })
}

/// `{"type":"error","code","message"}`, with the `client_id` of the message it refuses when
/// the frame named one, so a client knows which message will never be acknowledged.
pub fn error(e: &FrameError) -> Utf8Bytes {
    #[derive(Serialize)]
    struct ErrorFrame<'a> {
        r#type: &'static str,
        code: &'a str,
        message: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        client_id: Option<&'a str>,
    }
    to_json(&ErrorFrame {
        r#type: "error",
        code: e.code,
        message: &e.message,
        client_id: e.client_id.as_deref(),
    })
}

/// The `client_id` a frame names, if it is a JSON object with a string one (for error
/// frames about frames that were refused before or during parsing).
pub fn frame_client_id(raw: &str) -> Option<String> {
    #[derive(Deserialize)]
    struct Named {
        client_id: Option<String>,
    }
    serde_json::from_str::<Named>(raw).ok()?.client_id
}

/// `{"type":"typing","conversation_id":C,"contact_id":K}`: to agents, the customer is typing.
pub fn typing_for_agents(conversation: ConversationId, contact: ContactId) -> String {
    format!(r#"{{"type":"typing","conversation_id":{conversation},"contact_id":{contact}}}"#)
}

/// `{"type":"read",...}`: to agents, the customer has seen the shop's messages up to
/// `message_id` in this conversation.
pub fn read_for_agents(
    conversation: ConversationId,
    contact: ContactId,
    message_id: MessageId,
) -> String {
    format!(
        r#"{{"type":"read","conversation_id":{conversation},"contact_id":{contact},"message_id":{message_id}}}"#
    )
}

/// `{"type":"typing","sender":"agent"}`: to the customer, an agent is typing.
pub fn typing_for_visitor() -> String {
    r#"{"type":"typing","sender":"agent"}"#.to_string()
}

/// `{"type":"resolved","conversation_id":C}`: to the customer, their conversation was
/// resolved (the widget offers a rating).
pub fn resolved_for_visitor(conversation: ConversationId) -> String {
    format!(r#"{{"type":"resolved","conversation_id":{conversation}}}"#)
}

/// `{"type":"welcome"}`: the first frame on every connection, naming the identity in use.
pub fn welcome(visitor_id: &str, resumed_after: Option<MessageId>) -> Utf8Bytes {
    #[derive(Serialize)]
    struct Welcome<'a> {
        r#type: &'static str,
        visitor_id: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        after: Option<MessageId>,
    }
    to_json(&Welcome {
        r#type: "welcome",
        visitor_id,
        after: resumed_after,
    })
}

/// The size of the arena's chunks: a few frames each.
const ARENA_CHUNK: usize = 4096;
/// A chunk with less room than this left is not started on (a frame rarely is larger).
const ARENA_MIN_ROOM: usize = 512;

thread_local! {
    static ARENA: RefCell<BytesMut> = RefCell::new(BytesMut::new());
}

/// Encodes a frame into this thread's arena (see the module header).
fn to_json<T: Serialize>(v: &T) -> Utf8Bytes {
    ARENA.with(|arena| {
        let mut arena = arena.borrow_mut();
        if arena.capacity() < ARENA_MIN_ROOM {
            // Reuses the chunk in place when no frame from it is alive any more.
            arena.reserve(ARENA_CHUNK);
        }
        serde_json::to_writer((&mut *arena).writer(), v)
            .expect("invariant: frames serialize (no maps with non-string keys)");
        Utf8Bytes::try_from(arena.split().freeze()).expect("invariant: serde_json writes UTF-8")
    })
}

/// A visitor frame that was refused, with the stable code sent back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrameError {
    pub code: &'static str,
    pub message: String,
    /// The refused message's client id, when known.
    pub client_id: Option<String>,
}

impl FrameError {
    pub fn new(code: &'static str, message: impl Into<String>) -> Self {
        FrameError {
            code,
            message: message.into(),
            client_id: None,
        }
    }

    #[must_use]
    pub fn for_client_id(mut self, client_id: Option<String>) -> Self {
        self.client_id = client_id;
        self
    }
}

/// A valid visitor → server frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VisitorFrame {
    /// `text` may be empty when the message carries an attachment (an upload id).
    Message {
        client_id: ClientId,
        text: String,
        attachment: Option<String>,
    },
    /// The customer is typing.
    Typing,
    /// The customer has seen the shop's messages up to this one.
    Read { message_id: MessageId },
}

/// Whether `id` has the shape of an upload id: 64 hex digits of SHA-256 and an image
/// extension.
pub fn is_upload_id(id: &str) -> bool {
    id.split_once('.').is_some_and(|(hash, ext)| {
        hash.len() == 64
            && hash
                .bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
            && matches!(ext, "png" | "jpg" | "gif" | "webp")
    })
}

/// Parses a visitor frame; `max_text_chars` bounds the message text.
///
/// # Errors
/// [`FrameError`] with one of the codes `bad_json`, `unknown_type`, `bad_client_id`,
/// `bad_text`, `bad_attachment`, `empty_text`, `text_too_long`, `bad_message_id`, `bad_id`
/// (a read frame's `message_id` above i64::MAX).
///
/// One piece on purpose: the contract's visitor frames, one arm per type, checked in the
/// order the contract gives its error codes.
pub fn parse_visitor_frame(raw: &str, max_text_chars: usize) -> Result<VisitorFrame, FrameError> {
    /// Borrowed from the frame: a field is only checked or copied once the type is known.
    #[derive(Deserialize)]
    struct Raw<'a> {
        #[serde(borrow)]
        r#type: Option<&'a RawValue>,
        #[serde(borrow)]
        client_id: Option<&'a RawValue>,
        #[serde(borrow)]
        text: Option<&'a RawValue>,
        #[serde(borrow)]
        attachment: Option<&'a RawValue>,
        #[serde(borrow)]
        message_id: Option<&'a RawValue>,
    }
    /// A JSON string, borrowed unless it has escapes.
    #[derive(Deserialize)]
    struct Str<'a>(#[serde(borrow)] Cow<'a, str>);
    /// A field's value if it is a JSON string.
    fn string(v: Option<&RawValue>) -> Option<Cow<'_, str>> {
        serde_json::from_str::<Str>(v?.get()).ok().map(|s| s.0)
    }
    let parsed: Raw = serde_json::from_str(raw)
        .map_err(|e| FrameError::new("bad_json", format!("frame is not a JSON object: {e}")))?;
    // As when it was parsed into a `String`: a `type` that is not a string is not JSON we take.
    let kind = match parsed.r#type {
        None => None,
        Some(v) => Some(string(Some(v)).ok_or_else(|| {
            FrameError::new(
                "bad_json",
                "frame is not a JSON object: \"type\" must be a string",
            )
        })?),
    };
    match kind.as_deref() {
        Some("message") => {}
        Some("typing") => return Ok(VisitorFrame::Typing),
        Some("read") => {
            return match parsed
                .message_id
                .and_then(|v| serde_json::from_str::<u64>(v.get()).ok())
            {
                Some(raw) => match RowId::try_from(raw) {
                    Ok(id) => Ok(VisitorFrame::Read {
                        message_id: id.get(),
                    }),
                    Err(e) => Err(FrameError::new("bad_id", format!("message_id {e}"))),
                },
                None => Err(FrameError::new(
                    "bad_message_id",
                    "a read frame needs the message_id (a number) of the last message seen",
                )),
            }
        }
        Some(other) => {
            return Err(FrameError::new(
                "unknown_type",
                format!(
                    "unknown frame type {other:?}; expected \"message\", \"typing\" or \"read\""
                ),
            ))
        }
        None => return Err(FrameError::new("unknown_type", "frame has no \"type\"")),
    }
    let client_id = match string(parsed.client_id) {
        Some(s) => bounded_id::<CLIENT_ID_MAX>(&s)
            .map_err(|e| FrameError::new("bad_client_id", format!("client_id {e}")))?,
        _ => {
            return Err(FrameError::new(
                "bad_client_id",
                "client_id must be a string of 1-64 characters",
            ))
        }
    };
    // The one copy a message costs: its text moves on into the journal record.
    let text = match string(parsed.text) {
        Some(s) => s.into_owned(),
        None => return Err(FrameError::new("bad_text", "text must be a string")),
    };
    let attachment = match parsed.attachment {
        None => None,
        Some(v) => match string(Some(v)) {
            Some(id) if is_upload_id(&id) => Some(id.into_owned()),
            _ => {
                return Err(FrameError::new(
                    "bad_attachment",
                    "attachment must be an upload id from POST /api/v1/visitor/uploads",
                ))
            }
        },
    };
    match check_text(&text, max_text_chars) {
        Ok(()) => {}
        // An image may come without a caption.
        Err(TextError::Empty) if attachment.is_some() => {}
        Err(e) => return Err(FrameError::new(e.code(), e.to_string())),
    }
    Ok(VisitorFrame::Message {
        client_id,
        text,
        attachment,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_message() {
        let f =
            parse_visitor_frame(r#"{"type":"message","client_id":"a1","text":"hi"}"#, 10).unwrap();
        assert_eq!(
            f,
            VisitorFrame::Message {
                client_id: bounded_id("a1").unwrap(),
                text: "hi".into(),
                attachment: None,
            }
        );
        let upload = format!("{}.png", "ab".repeat(32));
        let f = parse_visitor_frame(
            &format!(r#"{{"type":"message","client_id":"a2","text":"","attachment":"{upload}"}}"#),
            10,
        )
        .unwrap();
        assert!(matches!(f, VisitorFrame::Message { attachment: Some(a), .. } if a == upload));
        // A caption is still held to the limit, blank or not.
        let blank = parse_visitor_frame(
            &format!(
                r#"{{"type":"message","client_id":"a2","text":"{}","attachment":"{upload}"}}"#,
                " ".repeat(11)
            ),
            10,
        )
        .unwrap_err();
        assert_eq!(blank.code, "text_too_long");
        assert_eq!(
            parse_visitor_frame(r#"{"type":"typing"}"#, 10).unwrap(),
            VisitorFrame::Typing
        );
        let bad = parse_visitor_frame(
            r#"{"type":"message","client_id":"a3","text":"x","attachment":"../../etc/passwd"}"#,
            10,
        )
        .unwrap_err();
        assert_eq!(bad.code, "bad_attachment");
    }

    #[test]
    fn refusals_have_stable_codes() {
        let cases = [
            ("not json", "bad_json"),
            ("[1,2]", "bad_json"),
            (r#"{"type":"subscribe"}"#, "unknown_type"),
            (r#"{"client_id":"a","text":"x"}"#, "unknown_type"),
            (
                r#"{"type":"message","client_id":"","text":"x"}"#,
                "bad_client_id",
            ),
            (
                &format!(
                    r#"{{"type":"message","client_id":"{}","text":"x"}}"#,
                    "a".repeat(65)
                ),
                "bad_client_id",
            ),
            (
                r#"{"type":"message","client_id":7,"text":"x"}"#,
                "bad_client_id",
            ),
            (r#"{"type":"message","text":"x"}"#, "bad_client_id"),
            (
                r#"{"type":"message","client_id":"a","text":"  "}"#,
                "empty_text",
            ),
            (
                r#"{"type":"message","client_id":"a","text":"12345678901"}"#,
                "text_too_long",
            ),
            (
                r#"{"type":"message","client_id":"a","text":null}"#,
                "bad_text",
            ),
            (r#"{"type":"read"}"#, "bad_message_id"),
            (r#"{"type":"read","message_id":0}"#, "bad_id"),
            (
                r#"{"type":"read","message_id":18446744073709551615}"#,
                "bad_id",
            ),
        ];
        for (raw, code) in cases {
            assert_eq!(
                parse_visitor_frame(raw, 10).unwrap_err().code,
                code,
                "{raw}"
            );
        }
    }

    #[test]
    fn text_limit_counts_characters_not_bytes() {
        let ten_chinese = "你".repeat(10);
        let raw = format!(r#"{{"type":"message","client_id":"a","text":"{ten_chinese}"}}"#);
        assert!(parse_visitor_frame(&raw, 10).is_ok());
    }

    #[test]
    fn frames_escape_text() {
        let f = visitor_message(
            5,
            "agent",
            "<img src=x onerror=alert(1)> \"q\"",
            None,
            1,
            None,
        );
        let v: serde_json::Value = serde_json::from_str(&f).unwrap();
        assert_eq!(v["text"], "<img src=x onerror=alert(1)> \"q\"");
        assert_eq!(v["message_id"], 5);
        assert!(v.get("client_id").is_none());
    }
}

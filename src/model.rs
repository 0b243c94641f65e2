//! Domain identifiers and small value types shared by the journal, the store and the API.
//!
//! Bounded identifiers (channel names, external ids, client ids) are `heapless::String`s: the
//! protocol caps their length, so they never allocate and a too-long value is refused at the
//! edge with [`IdError`] instead of travelling inward. Numeric ids a client sends (a path's
//! `{id}`, `after=N`, a read frame's `message_id`) are [`CheckedId`]s, refused at the edge with
//! [`IdRangeError`] unless SQLite can hold them: no id wraps to a negative one in a query.
//! A message's text is checked by [`check_text`], the one rule for every way a message comes
//! in (the widget, the agent API, the console, every channel), refused with [`TextError`]'s
//! two stable codes.
//!
//! The outbox's vocabulary lives here too, below both its users: an [`Outbound`] is the row
//! the store reads and an adapter sends, a [`ChannelFilter`] the rows one adapter delivers (the
//! channel's route table builds it, the store's outbox query applies it).

use std::fmt;

/// Every journaled operation gets one log sequence number; a message's id is the LSN of the
/// operation that added it, so message ids only grow (with gaps) across the whole daemon.
pub type Lsn = u64;
pub type MessageId = u64;
pub type ContactId = u64;
pub type ConversationId = u64;
pub type AgentId = u64;

/// Longest client id the contract allows (`client_id` is 1–64 chars).
pub const CLIENT_ID_MAX: usize = 64;
/// Longest external id (a visitor id, a WeChat openid, an MQTT contact segment).
pub const EXTERNAL_ID_MAX: usize = 64;
/// Longest channel name (`web`, `mqtt`, an integrator's own).
pub const CHANNEL_MAX: usize = 32;

pub type ClientId = heapless::String<CLIENT_ID_MAX>;
pub type ExternalId = heapless::String<EXTERNAL_ID_MAX>;
pub type ChannelName = heapless::String<CHANNEL_MAX>;

/// The channel name of the built-in visitor WebSocket.
pub const WEB_CHANNEL: &str = "web";

/// Why an identifier was refused at the edge.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    #[error("must not be empty")]
    Empty,
    #[error("must be at most {max} characters")]
    TooLong { max: usize },
    #[error("may contain only letters, digits, '-', '_', '.', ':' and '@'")]
    BadCharacter,
}

/// Validates and copies a bounded identifier. Allowed: ASCII letters, digits and `-_.:@`,
/// which keeps ids safe in URLs, MQTT topics and log lines.
///
/// # Errors
/// [`IdError`] when the id is empty, longer than `N` or holds another character.
pub fn bounded_id<const N: usize>(raw: &str) -> Result<heapless::String<N>, IdError> {
    if raw.is_empty() {
        return Err(IdError::Empty);
    }
    if raw.len() > N {
        return Err(IdError::TooLong { max: N });
    }
    if !raw
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':' | b'@'))
    {
        return Err(IdError::BadCharacter);
    }
    let mut out = heapless::String::new();
    out.push_str(raw)
        .map_err(|()| IdError::TooLong { max: N })?;
    Ok(out)
}

/// Why a message's text was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TextError {
    #[error("text must not be empty")]
    Empty,
    #[error("text has {chars} characters; the limit is {max}")]
    TooLong { chars: usize, max: usize },
}

impl TextError {
    /// The error code clients see: `empty_text` or `text_too_long`.
    pub const fn code(&self) -> &'static str {
        match self {
            TextError::Empty => "empty_text",
            TextError::TooLong { .. } => "text_too_long",
        }
    }
}

/// Checks a message's text: at most `max_chars` characters (Unicode scalar values, not bytes:
/// `limits.max_text_chars` means the same for Chinese as for English), and something besides
/// whitespace.
///
/// # Errors
/// [`TextError::TooLong`] beyond `max_chars`, whatever the text holds; else
/// [`TextError::Empty`] for text that is empty or only whitespace. So a caller that takes an
/// empty text (an image without a caption) still gets the limit by accepting `Empty`.
pub fn check_text(text: &str, max_chars: usize) -> Result<(), TextError> {
    // No more bytes than the limit means no more characters either: skip the count.
    if text.len() > max_chars {
        let chars = text.chars().count();
        if chars > max_chars {
            return Err(TextError::TooLong {
                chars,
                max: max_chars,
            });
        }
    }
    if text.trim().is_empty() {
        return Err(TextError::Empty);
    }
    Ok(())
}

/// The largest id kefud stores: SQLite's integers are i64.
pub const ID_MAX: u64 = i64::MAX as u64;

/// A numeric id from a client, checked to lie in `MIN..=ID_MAX` ([`RowId`], [`After`]).
/// It deserializes from a JSON number or the digits of a path or query value, and refuses
/// anything out of range, so its value always converts to an i64 unchanged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(try_from = "u64")]
pub struct CheckedId<const MIN: u64>(u64);

/// The id of a stored row (a conversation, a message, an agent, ...): `1..=ID_MAX`.
pub type RowId = CheckedId<1>;
/// A resume point (`after=N`, the last id seen): `0..=ID_MAX`, 0 meaning from the start.
pub type After = CheckedId<0>;

impl<const MIN: u64> CheckedId<MIN> {
    pub fn get(self) -> u64 {
        self.0
    }

    /// The id as SQLite stores it (the same number: it is at most [`ID_MAX`]).
    pub fn as_i64(self) -> i64 {
        i64::try_from(self.0).expect("invariant: a checked id is at most ID_MAX")
    }
}

impl<const MIN: u64> TryFrom<u64> for CheckedId<MIN> {
    type Error = IdRangeError;

    fn try_from(value: u64) -> Result<Self, IdRangeError> {
        if (MIN..=ID_MAX).contains(&value) {
            Ok(CheckedId(value))
        } else {
            Err(IdRangeError { value, min: MIN })
        }
    }
}

/// The words every [`IdRangeError`] message holds, by which an HTTP rejection is told apart
/// (its text is all an extractor's rejection keeps) and answered `bad_id`.
pub const ID_RANGE_WORDS: &str = "is not an id in the range";

/// A numeric id out of the range kefud stores ids in.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{value} {ID_RANGE_WORDS} {min}..={ID_MAX}")]
pub struct IdRangeError {
    pub value: u64,
    pub min: u64,
}

/// A contact's address on one channel: (channel, external id).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Identity {
    pub channel: ChannelName,
    pub external_id: ExternalId,
}

impl fmt::Display for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.channel, self.external_id)
    }
}

/// Who wrote a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Sender {
    Visitor,
    Agent,
    Bot,
    /// An agent's private note: in the thread for agents, never sent to the customer.
    Note,
}

impl Sender {
    pub const fn as_str(self) -> &'static str {
        match self {
            Sender::Visitor => "visitor",
            Sender::Agent => "agent",
            Sender::Bot => "bot",
            Sender::Note => "note",
        }
    }

    pub const fn code(self) -> u8 {
        match self {
            Sender::Visitor => 1,
            Sender::Agent => 2,
            Sender::Bot => 3,
            Sender::Note => 4,
        }
    }

    pub const fn from_code(code: u8) -> Option<Sender> {
        match code {
            1 => Some(Sender::Visitor),
            2 => Some(Sender::Agent),
            3 => Some(Sender::Bot),
            4 => Some(Sender::Note),
            _ => None,
        }
    }

    pub fn parse(s: &str) -> Option<Sender> {
        [Sender::Visitor, Sender::Agent, Sender::Bot, Sender::Note]
            .into_iter()
            .find(|v| v.as_str() == s)
    }
}

/// What an outbox row delivers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutboundKind {
    /// An agent's or the bot's reply.
    Message,
    /// A customer's first message opened a conversation (webhooks only).
    ConversationOpened,
    /// An agent resolved the conversation (webhooks only).
    ConversationResolved,
}

impl OutboundKind {
    pub const fn as_str(self) -> &'static str {
        match self {
            OutboundKind::Message => "message",
            OutboundKind::ConversationOpened => "conversation_opened",
            OutboundKind::ConversationResolved => "conversation_resolved",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [
            OutboundKind::Message,
            OutboundKind::ConversationOpened,
            OutboundKind::ConversationResolved,
        ]
        .into_iter()
        .find(|k| k.as_str() == s)
    }
}

/// A reply, or a conversation event, to deliver.
#[derive(Debug, Clone, PartialEq)]
pub struct Outbound {
    /// The message id, or the event's LSN: unique, and what receivers deduplicate on.
    pub id: MessageId,
    pub kind: OutboundKind,
    pub conversation_id: ConversationId,
    /// The customer's identity on the adapter's channel.
    pub to: Identity,
    /// `agent` or `bot` (empty for events).
    pub sender: String,
    /// Empty for events.
    pub text: String,
    /// When the message was written, or the event happened (ms).
    pub created_at: i64,
    /// Delivery attempts already made (0 for the first).
    pub attempts: u32,
}

/// The outbox rows an adapter delivers, as a store filter (`crate::channel::routes` builds
/// it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChannelFilter {
    /// Rows of these channels.
    Only(Vec<String>),
    /// Rows of every channel but these.
    AllBut(Vec<String>),
}

impl ChannelFilter {
    /// Whether `channel` passes (the web widget's never does: it is no adapter's).
    pub fn allows(&self, channel: &str) -> bool {
        channel != WEB_CHANNEL
            && match self {
                ChannelFilter::Only(c) => c.iter().any(|c| c == channel),
                ChannelFilter::AllBut(c) => !c.iter().any(|c| c == channel),
            }
    }
}

/// Milliseconds since the Unix epoch, the timestamp unit of every record: the wall clock as
/// kefud knows it (see [`crate::clock`]).
pub fn now_ms() -> i64 {
    crate::clock::now_ms()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checked_ids_are_the_range_sqlite_holds() {
        assert_eq!(RowId::try_from(1).map(RowId::get), Ok(1));
        assert_eq!(RowId::try_from(ID_MAX).map(RowId::as_i64), Ok(i64::MAX));
        assert_eq!(After::try_from(0).map(After::get), Ok(0));
        assert_eq!(RowId::try_from(0), Err(IdRangeError { value: 0, min: 1 }));
        for wraps in [ID_MAX + 1, u64::MAX] {
            assert!(RowId::try_from(wraps).is_err());
            assert!(After::try_from(wraps).is_err());
        }
        let e = serde_json::from_str::<After>("18446744073709551615").unwrap_err();
        assert!(e.to_string().contains(ID_RANGE_WORDS), "{e}");
        assert!(serde_json::from_str::<RowId>("-1").is_err());
        assert_eq!(serde_json::from_str::<RowId>("42").unwrap().get(), 42);
    }

    #[test]
    fn bounded_id_accepts_and_refuses() {
        assert!(bounded_id::<64>("abc-1_2.x:y@z").is_ok());
        assert_eq!(bounded_id::<64>(""), Err(IdError::Empty));
        assert_eq!(
            bounded_id::<64>(&"a".repeat(65)),
            Err(IdError::TooLong { max: 64 })
        );
        assert!(bounded_id::<64>(&"a".repeat(64)).is_ok());
        assert_eq!(bounded_id::<64>("a b"), Err(IdError::BadCharacter));
        assert_eq!(bounded_id::<64>("é"), Err(IdError::BadCharacter));
    }

    #[test]
    fn text_is_something_besides_whitespace_within_the_limit_in_characters() {
        assert_eq!(check_text("hi", 2), Ok(()));
        assert_eq!(check_text(" hi\n", 4), Ok(()));
        for empty in ["", " ", "\n\t ", "\u{3000}"] {
            assert_eq!(check_text(empty, 10), Err(TextError::Empty), "{empty:?}");
        }
        assert_eq!(
            check_text("abc", 2),
            Err(TextError::TooLong { chars: 3, max: 2 })
        );
        // Characters, not bytes: ten Chinese characters are 30 bytes.
        assert_eq!(check_text(&"你".repeat(10), 10), Ok(()));
        assert_eq!(
            check_text(&"你".repeat(11), 10),
            Err(TextError::TooLong { chars: 11, max: 10 })
        );
        // Whitespace counts toward the limit: the text is stored as sent.
        assert_eq!(
            check_text(" ab ", 3),
            Err(TextError::TooLong { chars: 4, max: 3 })
        );
        // Too long comes first: `Empty` means empty within the limit.
        assert_eq!(
            check_text(&" ".repeat(11), 10),
            Err(TextError::TooLong { chars: 11, max: 10 })
        );
        assert_eq!(TextError::Empty.code(), "empty_text");
        assert_eq!(
            TextError::TooLong { chars: 3, max: 2 }.code(),
            "text_too_long"
        );
        assert_eq!(
            TextError::TooLong { chars: 3, max: 2 }.to_string(),
            "text has 3 characters; the limit is 2"
        );
    }

    #[test]
    fn sender_codes_round_trip() {
        for s in [Sender::Visitor, Sender::Agent, Sender::Bot, Sender::Note] {
            assert_eq!(Sender::from_code(s.code()), Some(s));
            assert_eq!(Sender::parse(s.as_str()), Some(s));
        }
        assert_eq!(Sender::from_code(0), None);
    }
}

//! Domain identifiers and small value types shared by the journal, the store and the API.
//!
//! Bounded identifiers (channel names, external ids, client ids) are `heapless::String`s: the
//! protocol caps their length, so they never allocate and a too-long value is refused at the
//! edge with [`IdError`] instead of travelling inward.

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

/// Milliseconds since the Unix epoch, the timestamp unit of every record.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn sender_codes_round_trip() {
        for s in [Sender::Visitor, Sender::Agent, Sender::Bot, Sender::Note] {
            assert_eq!(Sender::from_code(s.code()), Some(s));
            assert_eq!(Sender::parse(s.as_str()), Some(s));
        }
        assert_eq!(Sender::from_code(0), None);
    }
}

//! The handle an adapter puts customer messages through: validation at the edge, then the
//! dispatcher, then the journal's fsync.
//!
//! [`Inbound::submit`] hands the message to the dispatcher and returns at once with a
//! [`Pending`]; awaiting [`Pending::durable`] gives the message id once it is on disk. An
//! adapter that must acknowledge in arrival order (MQTT) submits in order and awaits the
//! pendings in the same order, so many messages share one fsync.

use tokio::sync::{mpsc, oneshot, watch};

use crate::dispatch::{
    Accepted, Command, CustomerMessage, DispatchError, Reply, VisitorRead, VisitorTyping,
};
use crate::model::{
    bounded_id, check_text, ChannelFilter, Identity, Lsn, MessageId, CLIENT_ID_MAX, EXTERNAL_ID_MAX,
};

/// Why a message was not taken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InboundError {
    /// The message itself is wrong (`code` is stable, as in the HTTP API); sending it again
    /// will not help.
    #[error("{code}: {message}")]
    Invalid { code: &'static str, message: String },
    /// The daemon is stopping: do not acknowledge, the sender should try again later.
    #[error("kefud is stopping")]
    Unavailable,
    /// The pipeline refused it (a store read failed); logged, not retried.
    #[error("{0}")]
    Failed(String),
}

impl InboundError {
    fn invalid(code: &'static str, message: impl Into<String>) -> Self {
        InboundError::Invalid {
            code,
            message: message.into(),
        }
    }
}

#[derive(Clone)]
pub struct Inbound {
    commands: mpsc::Sender<Command>,
    durable: watch::Receiver<Lsn>,
    max_text_chars: usize,
    /// The channels this handle may write as (an adapter's own); `None`: any.
    channels: Option<std::sync::Arc<ChannelFilter>>,
}

/// A message the dispatcher took, not yet known to be durable.
pub struct Pending {
    accepted: oneshot::Receiver<Result<Accepted, DispatchError>>,
    durable: watch::Receiver<Lsn>,
}

impl Inbound {
    pub fn new(
        commands: mpsc::Sender<Command>,
        durable: watch::Receiver<Lsn>,
        max_text_chars: usize,
    ) -> Self {
        Inbound {
            commands,
            durable,
            max_text_chars,
            channels: None,
        }
    }

    /// This handle, limited to the channels `filter` lets through: an adapter writes only as
    /// its own channels' contacts (an MQTT topic naming `web` or the WeChat channel is
    /// refused, not stored as that widget visitor or WeChat user).
    #[must_use]
    pub fn restricted_to(mut self, filter: ChannelFilter) -> Self {
        self.channels = Some(std::sync::Arc::new(filter));
        self
    }

    fn identity(&self, channel: &str, contact_id: &str) -> Result<Identity, InboundError> {
        if self.channels.as_ref().is_some_and(|f| !f.allows(channel)) {
            return Err(InboundError::invalid(
                "bad_channel",
                format!("channel {channel:?} is not one this adapter receives"),
            ));
        }
        identity(channel, contact_id)
    }

    /// Validates a customer message from `channel`/`contact_id` and hands it to the
    /// dispatcher. The same `client_id` from the same identity is stored once.
    ///
    /// # Errors
    /// [`InboundError::Invalid`] for a bad id or text, [`InboundError::Unavailable`] while
    /// stopping.
    pub async fn submit(
        &self,
        channel: &str,
        contact_id: &str,
        client_id: &str,
        text: String,
    ) -> Result<Pending, InboundError> {
        let identity = self.identity(channel, contact_id)?;
        let client_id = bounded_id::<CLIENT_ID_MAX>(client_id)
            .map_err(|e| InboundError::invalid("bad_client_id", format!("client_id {e}")))?;
        check_text(&text, self.max_text_chars)
            .map_err(|e| InboundError::invalid(e.code(), e.to_string()))?;
        let (tx, rx) = oneshot::channel();
        self.commands
            .send(Command::CustomerMessage(
                CustomerMessage {
                    identity,
                    client_id: Some(client_id),
                    text,
                    attachment: None,
                },
                Reply::Once(tx),
            ))
            .await
            .map_err(|_| InboundError::Unavailable)?;
        Ok(Pending {
            accepted: rx,
            durable: self.durable.clone(),
        })
    }
}

impl Inbound {
    /// The customer is typing (best effort: dropped when the pipeline is busy).
    pub fn typing(&self, channel: &str, contact_id: &str) {
        if let Ok(identity) = self.identity(channel, contact_id) {
            let _ = self
                .commands
                .try_send(Command::VisitorTyping(VisitorTyping { identity }));
        }
    }

    /// The customer has seen the shop's messages up to `message_id` (best effort).
    pub fn read(&self, channel: &str, contact_id: &str, message_id: MessageId) {
        if let Ok(identity) = self.identity(channel, contact_id) {
            let _ = self.commands.try_send(Command::VisitorRead(VisitorRead {
                identity,
                message_id,
            }));
        }
    }
}

fn identity(channel: &str, contact_id: &str) -> Result<Identity, InboundError> {
    Ok(Identity {
        channel: bounded_id(channel)
            .map_err(|e| InboundError::invalid("bad_channel", format!("channel {e}")))?,
        external_id: bounded_id::<EXTERNAL_ID_MAX>(contact_id)
            .map_err(|e| InboundError::invalid("bad_contact_id", format!("contact_id {e}")))?,
    })
}

impl Pending {
    /// The message id, once the message is durable.
    ///
    /// # Errors
    /// [`InboundError::Unavailable`] if the daemon stopped first, [`InboundError::Failed`] if
    /// the dispatcher refused it.
    pub async fn durable(mut self) -> Result<MessageId, InboundError> {
        let accepted = self
            .accepted
            .await
            .map_err(|_| InboundError::Unavailable)?
            .map_err(|e| match e {
                DispatchError::Unavailable => InboundError::Unavailable,
                other => InboundError::Failed(other.to_string()),
            })?;
        self.durable
            .wait_for(|d| *d >= accepted.lsn)
            .await
            .map_err(|_| InboundError::Unavailable)?;
        Ok(accepted.message_id.unwrap_or(0))
    }
}

//! What an inbound publish on `PREFIX/in/CHANNEL/CONTACT_ID` means: a message, typing, or a
//! read mark, or the reason it is refused. Pure: no broker, no pipeline.

use super::*;

/// An inbound payload: a message (the contract's `{"client_id","text"}`), or
/// `{"type":"typing"}`, or `{"type":"read","message_id":N}` (the customer saw the shop's
/// messages up to N).
#[derive(Deserialize)]
struct InboundPayload {
    #[serde(default)]
    r#type: Option<String>,
    client_id: Option<String>,
    text: Option<String>,
    message_id: Option<crate::model::RowId>,
}

/// What an inbound message asks for.
#[derive(Debug, PartialEq)]
pub enum Received {
    Message { client_id: String, text: String },
    Typing,
    Read(u64),
}

/// `(channel, contact_id, what)` of an inbound message on `PREFIX/in/CHANNEL/CONTACT_ID`.
/// Public for the fuzz targets (`tests/fuzz.rs`).
///
/// # Errors
/// A message naming what is wrong with the topic or the JSON payload.
pub fn parse_inbound<'t>(
    prefix: &str,
    publish: &'t rumqttc::Publish,
) -> Result<(&'t str, &'t str, Received), String> {
    let rest = publish
        .topic
        .strip_prefix(prefix)
        .and_then(|r| r.strip_prefix("/in/"))
        .ok_or_else(|| format!("topic is not {prefix}/in/CHANNEL/CONTACT_ID"))?;
    let (channel, contact) = rest
        .split_once('/')
        .filter(|(c, id)| !c.is_empty() && !id.is_empty() && !id.contains('/'))
        .ok_or_else(|| format!("topic is not {prefix}/in/CHANNEL/CONTACT_ID"))?;
    let payload: InboundPayload = serde_json::from_slice(&publish.payload)
        .map_err(|e| format!("payload is not {{\"client_id\",\"text\"}} JSON: {e}"))?;
    let kind = payload.r#type.clone();
    let received = match (kind.as_deref(), payload) {
        (
            None | Some("message"),
            InboundPayload {
                client_id: Some(client_id),
                text: Some(text),
                ..
            },
        ) => Received::Message { client_id, text },
        (None | Some("message"), _) => {
            return Err("a message needs \"client_id\" and \"text\"".into())
        }
        (Some("typing"), _) => Received::Typing,
        (
            Some("read"),
            InboundPayload {
                message_id: Some(id),
                ..
            },
        ) => Received::Read(id.get()),
        (Some("read"), _) => return Err("a read event needs \"message_id\"".into()),
        (Some(other), _) => return Err(format!("unknown type {other:?}")),
    };
    Ok((channel, contact, received))
}

//! Cluster mode: a conversation's holders as the store keeps them (`conversation_holders`,
//! written from `ConversationHeld` records): JSON for the reads, read back at start into the
//! dispatcher's registers.
//!
//! Invariant: `from_json(&to_json(h)) == Some(h)`; node ids are hex, as `home` is.

use serde::{Deserialize, Serialize};

use crate::cluster::register::{AgentRef, Holder};
use crate::cluster::vector::Dot;

/// One holder as the API shows it (and as it is stored, with its dot).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HolderView {
    /// The box the agent signs in on (hex node id).
    pub node: String,
    /// That box's id for the agent.
    pub agent: u64,
    pub name: String,
    /// The assignment's dot: its origin (hex) and seq there.
    pub origin: String,
    pub seq: u64,
}

fn hex(id: u64) -> String {
    format!("{id:016x}")
}

pub fn views_of(holders: &[Holder]) -> Vec<HolderView> {
    holders
        .iter()
        .map(|h| HolderView {
            node: hex(h.agent.node),
            agent: h.agent.agent,
            name: h.name.clone(),
            origin: hex(h.dot.origin),
            seq: h.dot.seq,
        })
        .collect()
}

pub fn to_json(holders: &[Holder]) -> String {
    serde_json::to_string(&views_of(holders)).expect("invariant: plain data serialises")
}

pub fn views(json: &str) -> Option<Vec<HolderView>> {
    serde_json::from_str(json).ok()
}

pub fn from_json(json: &str) -> Option<Vec<Holder>> {
    views(json)?
        .into_iter()
        .map(|v| {
            Some(Holder {
                dot: Dot {
                    origin: u64::from_str_radix(&v.origin, 16).ok()?,
                    seq: v.seq,
                },
                agent: AgentRef {
                    node: u64::from_str_radix(&v.node, 16).ok()?,
                    agent: v.agent,
                },
                name: v.name,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holders_survive_their_stored_form() {
        let holders = vec![
            Holder {
                dot: Dot {
                    origin: u64::MAX >> 1,
                    seq: 3,
                },
                agent: AgentRef { node: 7, agent: 2 },
                name: "Ann \"the\" 王".into(),
            },
            Holder {
                dot: Dot { origin: 9, seq: 1 },
                agent: AgentRef { node: 9, agent: 4 },
                name: String::new(),
            },
        ];
        assert_eq!(from_json(&to_json(&holders)), Some(holders));
        assert_eq!(from_json("not json"), None);
        assert_eq!(
            from_json(r#"[{"node":"zz","agent":1,"name":"","origin":"1","seq":1}]"#),
            None
        );
    }
}

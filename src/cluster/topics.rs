//! The topic names of one cluster, under `kefu/v1/{cluster}/`: `ops/{origin}`, `vv/{node}`,
//! `req/{node}`, `presence/{node}`, `agents/{node}`, each node as 16 hex digits; and their parsing (anything
//! else under the prefix, or another cluster's, is not ours).

use super::node;
use super::vector::NodeId;

/// The topic names of one cluster.
#[derive(Clone)]
pub(super) struct Topics {
    pub(super) prefix: String,
}

#[derive(Debug, PartialEq, Eq)]
pub(super) enum Topic {
    Ops(NodeId),
    Vector(NodeId),
    Request(NodeId),
    Presence(NodeId),
    Agents(NodeId),
}

impl Topics {
    pub(super) fn new(cluster: &str) -> Topics {
        Topics {
            prefix: format!("kefu/v1/{cluster}"),
        }
    }

    pub(super) fn of(&self, kind: &str, node: NodeId) -> String {
        format!("{}/{kind}/{}", self.prefix, node::display(node))
    }

    pub(super) fn parse(&self, topic: &str) -> Option<Topic> {
        let rest = topic.strip_prefix(&self.prefix)?.strip_prefix('/')?;
        let (kind, node) = rest.split_once('/')?;
        let node = u64::from_str_radix(node, 16)
            .ok()
            .filter(|_| node.len() == 16)?;
        match kind {
            "ops" => Some(Topic::Ops(node)),
            "vv" => Some(Topic::Vector(node)),
            "req" => Some(Topic::Request(node)),
            "presence" => Some(Topic::Presence(node)),
            "agents" => Some(Topic::Agents(node)),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topics_name_and_parse_the_same_nodes() {
        let t = Topics::new("tea");
        let node = 0x0123_4567_89ab_cdef;
        assert_eq!(t.of("ops", node), "kefu/v1/tea/ops/0123456789abcdef");
        assert_eq!(t.parse(&t.of("ops", node)), Some(Topic::Ops(node)));
        assert_eq!(t.parse(&t.of("vv", node)), Some(Topic::Vector(node)));
        assert_eq!(t.parse(&t.of("req", node)), Some(Topic::Request(node)));
        assert_eq!(
            t.parse(&t.of("presence", node)),
            Some(Topic::Presence(node))
        );
        assert_eq!(t.parse(&t.of("agents", node)), Some(Topic::Agents(node)));
        assert_eq!(t.parse("kefu/v1/coffee/ops/0123456789abcdef"), None);
        assert_eq!(t.parse("kefu/v1/tea/ops/123"), None);
        assert_eq!(t.parse("kefu/v1/tea/other/0123456789abcdef"), None);
        assert_eq!(t.parse("kefu/in/web/x"), None);
    }
}

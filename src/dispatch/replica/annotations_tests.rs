//! Unit tests of `annotations.rs`: boxes as deciders over in-memory ports, their cluster
//! operations handed from one to another as the link would, and each box's journal then
//! projected by the real store (labels and ratings are applied there), to read what an agent
//! would see.

use std::time::Duration;

use crate::cluster::hlc::Timestamp;
use crate::cluster::vector::{Dot, NodeId};
use crate::cluster::wire::Operation;
use crate::cluster::wire::{Body, ConvKey};
use crate::dispatch::fakes::{at, config, decider_over, identity, MemoryStore, TestDecider};
use crate::dispatch::ports::Journal;
use crate::dispatch::state::{ClusterRole, Now};
use crate::dispatch::{CustomerMessage, LabelConversation, RateConversation, Resolve};
use crate::model::{ConversationId, Identity};
use crate::op::Op;
use crate::store::applier::{Applier, Loading};
use crate::store::cadence::CadenceConfig;
use crate::store::queries::Label;

const A: NodeId = 0xa;
const B: NodeId = 0xb;
const C: NodeId = 0xc;

/// A box whose admins defined `labels` (the API writes definitions, not the journal).
fn box_of(node: NodeId, labels: &[(u64, &str, &str)]) -> TestDecider {
    let mut cfg = config();
    cfg.cluster = Some(ClusterRole {
        node,
        max_clock_ahead_ms: 500,
    });
    let mut store = MemoryStore::default();
    store.labels = (labels.iter())
        .map(|(id, name, color)| Label {
            id: *id,
            name: (*name).into(),
            color: (*color).into(),
        })
        .collect();
    decider_over(cfg, store)
}

fn held(d: &TestDecider) -> Vec<Operation> {
    (d.journal.entries.iter())
        .filter_map(|e| match &e.op {
            Op::Replicated(r) => Some(Operation {
                dot: Dot {
                    origin: r.origin,
                    seq: r.seq,
                },
                hlc: Timestamp(r.hlc),
                body: r.body.clone(),
            }),
            _ => None,
        })
        .collect()
}

/// Hands `from`'s operations to `to`, all of them twice (the second time changes nothing).
fn sync(from: &TestDecider, to: &mut TestDecider, now: Now) {
    to.replicate(held(from), now).unwrap();
    to.replicate(held(from), now).unwrap();
    to.store_catches_up();
}

fn web(who: &str) -> Identity {
    identity("web", who)
}

fn customer_writes(d: &mut TestDecider, who: &Identity, now: Now) -> ConversationId {
    let message = CustomerMessage {
        identity: who.clone(),
        client_id: None,
        text: "hi".into(),
        attachment: None,
    };
    let conversation = d.customer_message(message, now).unwrap().conversation;
    d.store_catches_up();
    conversation
}

fn label(d: &mut TestDecider, conversation: ConversationId, labels: &[u64], now: Now) {
    let command = LabelConversation {
        conversation,
        labels: labels.to_vec(),
        by: 1,
    };
    d.label_conversation(command, now).unwrap();
    d.store_catches_up();
}

/// The conversation here that box `home`'s conversation `id` is.
fn here(d: &TestDecider, home: NodeId, id: ConversationId) -> ConversationId {
    let replica = d.replica.as_ref().unwrap();
    if replica.node == home {
        return id;
    }
    replica
        .names
        .conversation(ConvKey { home, id })
        .expect("a copy here")
}

/// What an agent of the box sees once its store applied its journal: the label names on
/// `conversation`, every label's (name, colour), and the conversation's rating.
type Shown = (Vec<String>, Vec<(String, String)>, Option<(u8, String)>);

fn shown(d: &TestDecider, definitions: &[(u64, &str, &str)], conv: ConversationId) -> Shown {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kefud.db");
    let conn = crate::store::open(&path).unwrap();
    for (id, name, color) in definitions {
        conn.execute(
            "INSERT INTO labels (id, name, color, created_at) VALUES (?1, ?2, ?3, 0)",
            rusqlite::params![*id as i64, name, color],
        )
        .unwrap();
    }
    let cadence = CadenceConfig {
        commit_interval: Duration::from_secs(3600),
        max_records: 1000,
        min_gap: Duration::from_millis(1),
        checkpoint_interval: Duration::from_secs(3600),
        checkpoint_pages: 1 << 20,
        retry: Duration::from_secs(1),
    };
    let mut applier = Applier::new(conn, Vec::new(), cadence, 8, Loading::Live).unwrap();
    applier
        .apply(d.journal.entries.iter().map(|e| (e.lsn, &e.op)))
        .unwrap();
    let conn = crate::store::connect(&path).unwrap();
    let names = conn
        .prepare(
            "SELECT l.name FROM conversation_labels cl JOIN labels l ON l.id = cl.label_id
             WHERE cl.conversation_id = ?1 ORDER BY l.name",
        )
        .unwrap()
        .query_map([conv as i64], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let defined = crate::store::queries::labels(&conn).unwrap();
    let rating = conn
        .query_row(
            "SELECT score, comment FROM ratings WHERE conversation_id = ?1",
            [conv as i64],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .ok();
    let defined = defined.into_iter().map(|l| (l.name, l.color)).collect();
    (names, defined, rating)
}

const VIP: (u64, &str, &str) = (5, "vip", "#ff0000");
const REFUND: (u64, &str, &str) = (2, "refund", "#00aa00");

#[test]
fn a_label_put_on_b_shows_on_a_and_c_and_defines_the_name_there() {
    let mut a = box_of(A, &[]);
    let mut b = box_of(B, &[VIP, REFUND]);
    let mut c = box_of(C, &[(1, "vip", "#0000ff")]);
    let conversation = customer_writes(&mut a, &web("ann"), at(0));
    sync(&a, &mut b, at(1));
    sync(&a, &mut c, at(1));
    let on_b = here(&b, A, conversation);
    let before = b.journal.last();
    label(&mut b, on_b, &[5, 2, 99], at(2));
    assert!(matches!(&b.ops_since(before)[..],
        [Op::ConversationLabeled { labels, .. }, Op::Replicated(r)]
        if labels == &[2, 5, 99] && r.origin == B
            && matches!(Body::decode(&r.body), Ok(Body::Labels(l))
                if l.labels.iter().map(|l| l.name.as_str()).collect::<Vec<_>>() == ["refund", "vip"]
                && l.conversation == ConvKey { home: A, id: conversation })));
    sync(&b, &mut a, at(3));
    sync(&b, &mut c, at(3));
    let both = vec!["refund".to_string(), "vip".into()];
    let (names, defined, _) = shown(&a, &[], conversation);
    assert_eq!(names, both);
    assert_eq!(
        defined,
        [
            ("refund".into(), "#00aa00".into()),
            ("vip".into(), "#ff0000".into())
        ],
        "A lacked both: defined with B's colours"
    );
    let (names, defined, _) = shown(&c, &[(1, "vip", "#0000ff")], here(&c, A, conversation));
    assert_eq!(names, both);
    assert!(
        defined.contains(&("vip".into(), "#0000ff".into())),
        "C's own colour stays"
    );
    assert_eq!(shown(&b, &[VIP, REFUND], on_b).0, both);
}

#[test]
fn concurrent_label_edits_on_two_boxes_converge_on_the_later_in_any_order() {
    for a_first in [false, true] {
        let mut a = box_of(A, &[VIP]);
        let mut b = box_of(B, &[VIP, REFUND]);
        let mut c = box_of(C, &[]);
        let conversation = customer_writes(&mut a, &web("ann"), at(0));
        sync(&a, &mut b, at(1));
        // Neither has seen the other's: B's comes later by its clock.
        label(&mut a, conversation, &[5], at(2));
        let on_b = here(&b, A, conversation);
        label(&mut b, on_b, &[2], at(3));
        if a_first {
            sync(&a, &mut c, at(4));
            sync(&b, &mut c, at(4));
        } else {
            sync(&b, &mut c, at(4));
            sync(&a, &mut c, at(4));
        }
        sync(&b, &mut a, at(5));
        sync(&a, &mut b, at(5));
        let refund = vec!["refund".to_string()];
        assert_eq!(shown(&a, &[VIP], conversation).0, refund);
        assert_eq!(
            shown(&b, &[VIP, REFUND], here(&b, A, conversation)).0,
            refund
        );
        let (names, defined, _) = shown(&c, &[], here(&c, A, conversation));
        assert_eq!(names, refund, "a_first {a_first}");
        assert_eq!(defined.len(), 2, "the losing write's name is defined too");
    }
}

#[test]
fn a_relabel_after_seeing_a_box_whose_clock_runs_ahead_wins_and_one_its_store_had_not_shown_loses()
{
    for store_caught_up in [true, false] {
        let mut a = box_of(A, &[VIP, REFUND]);
        let mut b = box_of(B, &[VIP, REFUND]);
        let conversation = customer_writes(&mut a, &web("ann"), at(0));
        sync(&a, &mut b, at(1));
        // B's clock is ten minutes ahead; A's clock follows it by at most 500 ms.
        let on_b = here(&b, A, conversation);
        label(&mut b, on_b, &[5], at(600_000));
        a.replicate(held(&b), at(2)).unwrap();
        if store_caught_up {
            a.store_catches_up();
        }
        label(&mut a, conversation, &[2], at(3));
        sync(&a, &mut b, at(600_004));
        let expected = if store_caught_up { "refund" } else { "vip" };
        for (d, on) in [(&a, conversation), (&b, on_b)] {
            assert_eq!(
                shown(d, &[VIP, REFUND], on).0,
                [expected],
                "{store_caught_up}"
            );
        }
    }
}

fn rate(d: &mut TestDecider, who: &Identity, conversation: ConversationId, score: u8, now: Now) {
    let command = RateConversation {
        identity: who.clone(),
        conversation,
        score,
        comment: format!("{score} stars"),
    };
    d.rate_conversation(command, now).unwrap();
    d.store_catches_up();
}

#[test]
fn a_rating_given_on_the_customers_box_shows_on_the_others_and_a_re_rating_replaces_it() {
    let (mut a, mut b, mut c) = (box_of(A, &[]), box_of(B, &[]), box_of(C, &[]));
    let ann = web("ann");
    let conversation = customer_writes(&mut a, &ann, at(0));
    a.resolve(
        Resolve {
            conversation,
            by: 1,
        },
        at(1),
    )
    .unwrap();
    rate(&mut a, &ann, conversation, 2, at(2));
    // B hears of the rating before C does; C only after the re-rating too.
    sync(&a, &mut b, at(3));
    assert_eq!(
        shown(&b, &[], here(&b, A, conversation)).2,
        Some((2, "2 stars".into()))
    );
    rate(&mut a, &ann, conversation, 5, at(4));
    sync(&a, &mut b, at(5));
    sync(&a, &mut c, at(5));
    for d in [&a, &b, &c] {
        let on = here(d, A, conversation);
        assert_eq!(shown(d, &[], on).2, Some((5, "5 stars".into())));
    }
}

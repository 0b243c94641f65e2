//! Unit tests of `kb.rs` and `delivery.rs`: boxes as deciders over in-memory ports, their
//! cluster operations handed from one to another as the link would (shuffled, some twice,
//! through an inbox that releases each origin's in order).

use std::collections::BTreeMap;

use super::super::{Operation, Replica};
use super::*;
use crate::cluster::hlc::Timestamp;
use crate::cluster::outcome::Rank;
use crate::cluster::vector::{Dot, Inbox, VersionVector};
use crate::dispatch::fakes::{at, config, decider_over, identity, MemoryStore, TestDecider, T0};
use crate::dispatch::state::{ClusterRole, Now};
use crate::dispatch::{AgentMessage, CustomerMessage, DeliveryReport, KbChange};
use crate::model::Sender;
use crate::op::KbEntry;

const A: NodeId = 0xa;
const B: NodeId = 0xb;
const C: NodeId = 0xc;

fn box_of(node: NodeId) -> TestDecider {
    let mut cfg = config();
    cfg.cluster = Some(ClusterRole {
        node,
        max_clock_ahead_ms: 500,
    });
    decider_over(cfg, MemoryStore::default())
}

/// Every cluster operation `d` holds (its own and others'), as a peer would be sent them.
fn held(d: &TestDecider) -> Vec<Operation> {
    d.journal
        .entries
        .iter()
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

fn sync(from: &TestDecider, to: &mut TestDecider, now: Now) {
    to.replicate(held(from), now).unwrap();
    to.store_catches_up();
}

fn entry(intent: &str, answer: &str) -> KbEntry {
    KbEntry {
        intent: intent.into(),
        examples: vec![format!("tell me about {intent}")],
        answer: answer.into(),
        team: String::new(),
    }
}

fn put(d: &mut TestDecider, intent: &str, answer: &str, now: Now) {
    let change = KbChange {
        put: vec![entry(intent, answer)],
        delete: vec![],
    };
    d.kb_change(change, now).unwrap();
    d.store_catches_up();
}

fn delete(d: &mut TestDecider, intent: &str, now: Now) {
    let change = KbChange {
        put: vec![],
        delete: vec![intent.into()],
    };
    d.kb_change(change, now).unwrap();
    d.store_catches_up();
}

/// The knowledge base a box holds: intent → answer.
fn kb_of(d: &TestDecider) -> BTreeMap<String, String> {
    d.kb.entries()
        .map(|e| (e.intent.clone(), e.answer.clone()))
        .collect()
}

fn replica(d: &TestDecider) -> &Replica {
    d.replica.as_ref().unwrap()
}

#[test]
fn a_put_on_one_box_is_journaled_on_the_other_and_answers_there() {
    let (mut a, mut b) = (box_of(A), box_of(B));
    put(&mut a, "hours", "9 to 6", T0);
    let before = b.journal.last();
    sync(&a, &mut b, at(1));
    assert!(matches!(&b.ops_since(before)[..],
        [Op::KbEntryPut { entry, .. }, Op::Replicated(r)] if entry.answer == "9 to 6" && r.origin == A));
    assert_eq!(kb_of(&b), kb_of(&a));
    // Applied twice, nothing more.
    let before = b.journal.last();
    sync(&a, &mut b, at(2));
    assert_eq!(b.journal.last(), before);
}

#[test]
fn a_delete_leaves_a_tombstone_that_an_older_put_does_not_pass_and_a_later_put_does() {
    let (mut a, mut b, mut c) = (box_of(A), box_of(B), box_of(C));
    put(&mut b, "hours", "from B", T0);
    // C deletes after B's put by its clock, never having seen it.
    put(&mut c, "hours", "from C", at(5));
    delete(&mut c, "hours", at(10));
    sync(&c, &mut a, at(11));
    sync(&b, &mut a, at(12));
    assert!(kb_of(&a).is_empty(), "B's older put stays deleted");
    let tombstone = replica(&a).kb_versions["hours"];
    assert!(tombstone.deleted && tombstone.version.origin == C);
    // A writes after seeing the delete: it wins everywhere.
    put(&mut a, "hours", "from A", at(13));
    for d in [&mut b, &mut c] {
        sync(&a, d, at(20));
    }
    sync(&c, &mut b, at(21));
    sync(&b, &mut c, at(21));
    for d in [&a, &b, &c] {
        assert_eq!(
            kb_of(d),
            BTreeMap::from([("hours".into(), "from A".into())])
        );
    }
}

#[test]
fn a_write_after_seeing_a_box_whose_clock_runs_ahead_still_wins() {
    let (mut a, mut b) = (box_of(A), box_of(B));
    // B's clock is ten minutes ahead; A's clock follows it by at most 500 ms.
    put(&mut b, "hours", "from B", at(600_000));
    sync(&b, &mut a, T0);
    put(&mut a, "hours", "from A, who saw B's", at(1));
    sync(&a, &mut b, at(600_002));
    for d in [&a, &b] {
        assert_eq!(kb_of(d)["hours"], "from A, who saw B's");
    }
}

/// A small deterministic generator (xorshift), so a failing interleaving can be replayed.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }
}

/// Hands `from`'s operations to `to` as the link does: shuffled, some twice, only what is in
/// order applied.
fn gossip(from: &TestDecider, to: &mut TestDecider, inbox: &mut Inbox<Operation>, rng: &mut Rng) {
    let mut ops = held(from);
    for i in (1..ops.len()).rev() {
        ops.swap(i, rng.below(i + 1));
    }
    let twice: Vec<Operation> = ops.iter().filter(|_| rng.below(4) == 0).cloned().collect();
    ops.extend(twice);
    for op in ops {
        let _ = inbox.offer(op.dot, op);
    }
    let ready: Vec<Operation> = std::iter::from_fn(|| inbox.pop_ready())
        .map(|(_, op)| op)
        .collect();
    to.replicate(ready, T0).unwrap();
    to.store_catches_up();
}

fn pair(boxes: &mut [TestDecider], from: usize, to: usize) -> (&TestDecider, &mut TestDecider) {
    if from < to {
        let (l, r) = boxes.split_at_mut(to);
        (&l[from], &mut r[0])
    } else {
        let (l, r) = boxes.split_at_mut(from);
        (&r[0], &mut l[to])
    }
}

#[test]
fn any_interleaving_of_puts_deletes_and_gossip_converges_on_one_knowledge_base() {
    let nodes = [A, B, C];
    for seed in 1..=200u64 {
        let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
        let mut boxes: Vec<TestDecider> = nodes.iter().map(|n| box_of(*n)).collect();
        let mut inboxes: Vec<Inbox<Operation>> = nodes
            .iter()
            .map(|_| Inbox::new(VersionVector::default(), 1000))
            .collect();
        for step in 0..30 {
            let here = rng.below(3);
            // Clocks that disagree by up to a second, and writes in the same millisecond.
            let now = at((step / 3) as i64 + rng.below(3) as i64 * 400);
            let intent = ["hours", "parking", "returns"][rng.below(3)];
            match rng.below(3) {
                0 => put(&mut boxes[here], intent, &format!("{here} at {step}"), now),
                1 => delete(&mut boxes[here], intent, now),
                _ => {
                    let to = rng.below(3);
                    if to != here {
                        let (from_box, to_box) = pair(&mut boxes, here, to);
                        gossip(from_box, to_box, &mut inboxes[to], &mut rng);
                    }
                }
            }
        }
        for _ in 0..2 {
            for from in 0..3 {
                for to in (0..3).filter(|t| *t != from) {
                    let (from_box, to_box) = pair(&mut boxes, from, to);
                    gossip(from_box, to_box, &mut inboxes[to], &mut rng);
                }
            }
        }
        let kb = kb_of(&boxes[0]);
        for (i, d) in boxes.iter().enumerate() {
            assert_eq!(kb_of(d), kb, "seed {seed}, box {i}");
            assert_eq!(
                replica(d).kb_versions,
                replica(&boxes[0]).kb_versions,
                "seed {seed}, box {i}"
            );
        }
    }
}

#[test]
fn a_box_alone_journals_its_knowledge_base_as_before() {
    let mut d = decider_over(config(), MemoryStore::default());
    put(&mut d, "hours", "9 to 6", T0);
    delete(&mut d, "hours", at(1));
    assert!(matches!(
        &d.ops_since(0)[..],
        [Op::KbEntryPut { .. }, Op::KbEntryDeleted { .. }]
    ));
}

#[test]
fn a_reply_delivered_on_its_home_box_is_reported_by_its_dot_to_the_others() {
    let (mut a, mut b) = (box_of(A), box_of(B));
    let kiosk = CustomerMessage {
        identity: identity("mqtt", "kiosk-1"),
        client_id: None,
        text: "is the oolong in?".into(),
        attachment: None,
    };
    let conversation = a.customer_message(kiosk, T0).unwrap().conversation;
    let reply = AgentMessage {
        conversation,
        agent: 1,
        text: "yes".into(),
        via: None,
    };
    let reply = a.agent_message(reply, at(1)).unwrap().lsn;
    a.store_catches_up();
    sync(&a, &mut b, at(2));
    a.delivery(DeliveryReport::Delivered(vec![reply]), at(3))
        .unwrap();
    a.delivery(
        DeliveryReport::Failed {
            message: 999,
            attempts: 1,
            dead: false,
            error: "not a reply with a dot".into(),
        },
        at(4),
    )
    .unwrap();
    let reports: Vec<Operation> = held(&a)
        .into_iter()
        .filter(|op| matches!(Body::decode(&op.body), Ok(Body::Delivery(_))))
        .collect();
    let [report] = &reports[..] else {
        panic!("one report: {reports:?}")
    };
    let Ok(Body::Delivery(d)) = Body::decode(&report.body) else {
        unreachable!()
    };
    assert_eq!(d.outcome.rank, Rank::Delivered);
    // B names the same message by that dot: its copy of A's reply.
    let on_b = b
        .journal
        .entries
        .iter()
        .find_map(|e| match &e.op {
            Op::Replicated(r) if (r.origin, r.seq) == (d.messages[0].origin, d.messages[0].seq) => {
                r.message
            }
            _ => None,
        })
        .expect("B holds the reply's operation");
    assert!(b.journal.entries.iter().any(|e| e.lsn == on_b
        && matches!(&e.op, Op::MessageAdded(m) if m.sender == Sender::Agent && m.text == "yes")));
    // B applies the report: journaled for the others, nothing else decided here.
    let before = b.journal.last();
    sync(&a, &mut b, at(5));
    assert!(matches!(&b.ops_since(before)[..], [Op::Replicated(r)] if r.origin == A));
}

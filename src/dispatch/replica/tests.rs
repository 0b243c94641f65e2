//! Unit tests of `replica.rs`: two or three boxes as deciders over in-memory ports, their
//! cluster operations handed from one to another as the link would.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use super::*;
use crate::cluster::vector::Inbox;
use crate::dispatch::fakes::{config, decider_over, identity, MemoryStore, TestDecider, T0};
use crate::dispatch::state::ClusterRole;
use crate::dispatch::{AgentMessage, CustomerMessage, Resolve};
use crate::model::bounded_id;

pub(super) const A: NodeId = 0xa;
pub(super) const B: NodeId = 0xb;

pub(super) fn box_of(node: NodeId) -> TestDecider {
    let mut cfg = config();
    cfg.cluster = Some(ClusterRole {
        node,
        max_clock_ahead_ms: 500,
    });
    decider_over(cfg, MemoryStore::default())
}

/// Every cluster operation `d` holds (its own and others'), as a peer would be sent them.
pub(super) fn held(d: &TestDecider) -> Vec<Operation> {
    d.journal
        .entries
        .iter()
        .filter_map(|e| match &e.op {
            Op::Replicated(r) => Some(Operation {
                dot: crate::cluster::vector::Dot {
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

pub(super) fn sync(from: &TestDecider, to: &mut TestDecider, now: Now) {
    to.replicate(held(from), now).unwrap();
    to.store_catches_up();
}

pub(super) fn write(d: &mut TestDecider, client_id: &str, text: &str, now: Now) -> ConversationId {
    let c = d
        .customer_message(
            CustomerMessage {
                identity: identity("web", "v1"),
                client_id: Some(bounded_id(client_id).unwrap()),
                text: text.into(),
                attachment: None,
            },
            now,
        )
        .unwrap()
        .conversation;
    d.store_catches_up();
    c
}

/// The messages journaled, in order: (conversation, sender, text).
fn messages(d: &TestDecider) -> Vec<(ConversationId, Sender, String)> {
    d.journal
        .entries
        .iter()
        .filter_map(|e| match &e.op {
            Op::MessageAdded(m) => Some((m.conversation, m.sender, m.text.clone())),
            _ => None,
        })
        .collect()
}

fn texts(d: &TestDecider) -> Vec<String> {
    let mut t: Vec<_> = messages(d).into_iter().map(|(_, _, t)| t).collect();
    t.sort();
    t
}

#[test]
fn a_reply_written_on_another_box_reaches_the_customer_on_theirs() {
    let (mut a, mut b) = (box_of(A), box_of(B));
    let on_a = write(&mut a, "c1", "is the shop open?", T0);
    sync(&a, &mut b, T0);
    let on_b = messages(&b)[0].0;
    assert_eq!(
        messages(&b),
        [(on_b, Sender::Visitor, "is the shop open?".into())]
    );
    assert_eq!(b.conversations[&on_b].status, Status::Waiting);
    b.agent_message(
        AgentMessage {
            conversation: on_b,
            agent: 1,
            text: "yes, until 8".into(),
            via: None,
        },
        T0,
    )
    .unwrap();
    b.store_catches_up();
    let before = a.journal.last();
    sync(&b, &mut a, T0);
    let reply = a
        .journal
        .entries
        .iter()
        .find_map(|e| match &e.op {
            Op::MessageAdded(m) if e.lsn > before => Some((m.clone(), e.audience.clone())),
            _ => None,
        })
        .expect("the reply is journaled on the customer's box");
    assert_eq!(reply.0.conversation, on_a, "in the customer's conversation");
    assert_eq!(reply.0.sender, Sender::Agent);
    assert_eq!(reply.0.via, Some(identity("web", "v1")));
    assert!(
        reply.1.unwrap().contains(&identity("web", "v1")),
        "live to the widget"
    );
    // Everything again, both ways: nothing new.
    let (last_a, last_b) = (a.journal.last(), b.journal.last());
    sync(&b, &mut a, T0);
    sync(&a, &mut b, T0);
    assert_eq!((a.journal.last(), b.journal.last()), (last_a, last_b));
    assert_eq!(texts(&a), texts(&b));
}

#[test]
fn a_resolve_does_not_close_over_a_customer_message_it_had_not_seen() {
    let (mut a, mut b) = (box_of(A), box_of(B));
    let on_a = write(&mut a, "c1", "hello", T0);
    sync(&a, &mut b, T0);
    // Partition: A resolves; the customer writes again, on B (the same conversation).
    a.resolve(
        Resolve {
            conversation: on_a,
            by: 1,
        },
        T0,
    )
    .unwrap();
    a.store_catches_up();
    let on_b = write(&mut b, "c2", "one more thing", T0);
    // Healed, in either order.
    sync(&b, &mut a, T0);
    sync(&a, &mut b, T0);
    assert!(a.conversations[&on_a].status.is_open(), "reopened on A");
    assert!(b.conversations[&on_b].status.is_open(), "still open on B");
    assert_eq!(texts(&a), texts(&b));
}

#[test]
fn a_resolve_that_saw_every_message_closes_everywhere() {
    let (mut a, mut b) = (box_of(A), box_of(B));
    let on_a = write(&mut a, "c1", "thanks, bye", T0);
    sync(&a, &mut b, T0);
    a.resolve(
        Resolve {
            conversation: on_a,
            by: 1,
        },
        T0,
    )
    .unwrap();
    a.store_catches_up();
    sync(&a, &mut b, T0);
    let on_b = messages(&b)[0].0;
    assert_eq!(b.conversations[&on_b].status, Status::Resolved);
}

#[test]
fn operations_of_one_origin_are_stamped_with_dense_seqs_and_rising_clocks() {
    let mut a = box_of(A);
    write(&mut a, "c1", "one", T0);
    write(&mut a, "c2", "two", T0);
    let ops = held(&a);
    assert_eq!(
        ops.iter()
            .map(|o| (o.dot.origin, o.dot.seq))
            .collect::<Vec<_>>(),
        [(A, 1), (A, 2)]
    );
    assert!(ops[0].hlc < ops[1].hlc, "same wall time, rising clock");
}

/// A small deterministic generator (xorshift), so a failing interleaving can be replayed.
pub(super) struct Rng(pub(super) u64);

impl Rng {
    pub(super) fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    pub(super) fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// Delivers every operation `from` holds to `to` through an inbox, as the link does:
/// shuffled, some twice, only what is in order applied.
pub(super) fn gossip(
    from: &TestDecider,
    to: &mut TestDecider,
    inbox: &mut Inbox<Operation>,
    rng: &mut Rng,
) {
    let mut ops = held(from);
    for i in (1..ops.len()).rev() {
        ops.swap(i, rng.below(i + 1));
    }
    let twice: Vec<Operation> = ops.iter().filter(|_| rng.below(4) == 0).cloned().collect();
    ops.extend(twice);
    for op in ops {
        let _ = inbox.offer(op.dot, op);
    }
    let mut ready = Vec::new();
    while let Some((_, op)) = inbox.pop_ready() {
        ready.push(op);
    }
    to.replicate(ready, T0).unwrap();
    to.store_catches_up();
    to.after_command(T0);
}

/// Per customer identity, the texts every box holds (whatever conversation they are in).
fn texts_by_customer(d: &TestDecider) -> BTreeMap<String, BTreeSet<String>> {
    let mut contact_of: HashMap<ContactId, String> = HashMap::new();
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for e in &d.journal.entries {
        match &e.op {
            Op::ContactCreated {
                contact, identity, ..
            } => {
                contact_of.insert(*contact, identity.to_string());
            }
            Op::MessageAdded(m) => {
                out.entry(contact_of[&m.contact].clone())
                    .or_default()
                    .insert(m.text.clone());
            }
            _ => {}
        }
    }
    out
}

#[test]
fn any_interleaving_of_writes_resolves_and_gossip_converges_on_the_same_messages_and_open_state() {
    let nodes = [A, B, 0xc];
    for seed in 1..=200u64 {
        let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
        let mut boxes: Vec<TestDecider> = nodes.iter().map(|n| box_of(*n)).collect();
        let mut inboxes: Vec<Inbox<Operation>> = nodes
            .iter()
            .map(|_| Inbox::new(VersionVector::default(), 1000))
            .collect();
        let mut written = BTreeMap::<String, BTreeSet<String>>::new();
        for step in 0..40 {
            let at = rng.below(3);
            let who = ["v1", "v2"][rng.below(2)];
            match rng.below(4) {
                0 | 1 => {
                    let text = format!("{who} says {step}");
                    boxes[at]
                        .customer_message(
                            CustomerMessage {
                                identity: identity("web", who),
                                client_id: Some(bounded_id(&format!("c{step}")).unwrap()),
                                text: text.clone(),
                                attachment: None,
                            },
                            T0,
                        )
                        .unwrap();
                    written
                        .entry(format!("web:{who}"))
                        .or_default()
                        .insert(text);
                }
                2 => {
                    // An agent on box `at` resolves the first open conversation it holds.
                    let open: Option<ConversationId> = boxes[at]
                        .conversations
                        .iter()
                        .filter(|(_, s)| s.status.is_open())
                        .map(|(c, _)| *c)
                        .min();
                    if let Some(c) = open {
                        boxes[at]
                            .resolve(
                                Resolve {
                                    conversation: c,
                                    by: 1,
                                },
                                T0,
                            )
                            .unwrap();
                    }
                }
                _ => {
                    let to = rng.below(3);
                    if to != at {
                        let (from_box, to_box) = if at < to {
                            let (l, r) = boxes.split_at_mut(to);
                            (&l[at], &mut r[0])
                        } else {
                            let (l, r) = boxes.split_at_mut(at);
                            (&r[0], &mut l[to])
                        };
                        gossip(from_box, to_box, &mut inboxes[to], &mut rng);
                    }
                }
            }
            boxes[at].store_catches_up();
            boxes[at].after_command(T0);
        }
        // Healed: everyone gossips with everyone until nothing moves.
        for _ in 0..3 {
            for from in 0..3 {
                for to in 0..3 {
                    if from != to {
                        let (from_box, to_box) = if from < to {
                            let (l, r) = boxes.split_at_mut(to);
                            (&l[from], &mut r[0])
                        } else {
                            let (l, r) = boxes.split_at_mut(from);
                            (&r[0], &mut l[to])
                        };
                        gossip(from_box, to_box, &mut inboxes[to], &mut rng);
                    }
                }
            }
        }
        for (i, d) in boxes.iter().enumerate() {
            assert_eq!(texts_by_customer(d), written, "seed {seed}, box {i}");
        }
    }
}

#[test]
fn a_record_and_its_stamp_are_glued_so_the_journal_keeps_both_or_neither() {
    let (mut a, mut b) = (box_of(A), box_of(B));
    write(&mut a, "c1", "hi", T0);
    let entries = &a.journal.entries;
    for pair in entries.windows(2) {
        if matches!(pair[1].op, Op::Replicated(_)) {
            assert!(pair[0].glue, "the stamped record is glued to its stamp");
        }
    }
    assert!(entries
        .iter()
        .filter(|e| matches!(e.op, Op::Replicated(_)))
        .all(|e| !e.glue));
    // On B, every record the remote operation made is glued up to its Replicated record.
    sync(&a, &mut b, T0);
    let entries = &b.journal.entries;
    let (last, made) = entries.split_last().expect("B journaled the operation");
    assert!(matches!(last.op, Op::Replicated(_)) && !last.glue);
    assert!(!made.is_empty() && made.iter().all(|e| e.glue));
}

/// The HLC times of a box's message stamps, by text: (time, origin, seq) as every box sorts.
pub(super) fn message_keys(d: &TestDecider) -> BTreeMap<String, (u64, NodeId, u64)> {
    let texts: HashMap<Lsn, String> = d
        .journal
        .entries
        .iter()
        .filter_map(|e| match &e.op {
            Op::MessageAdded(m) => Some((e.lsn, m.text.clone())),
            _ => None,
        })
        .collect();
    d.journal
        .entries
        .iter()
        .filter_map(|e| match &e.op {
            Op::Replicated(r) => r
                .message
                .and_then(|m| texts.get(&m))
                .map(|t| (t.clone(), (r.hlc, r.origin, r.seq))),
            _ => None,
        })
        .collect()
}

#[test]
fn a_reply_to_a_message_from_a_box_whose_clock_runs_ahead_still_sorts_after_it() {
    let (mut a, mut b) = (box_of(A), box_of(B));
    // B's clock is ten minutes ahead; A does not let it drag its own clock.
    let ahead = Now {
        wall_ms: T0.wall_ms + 600_000,
        timer_ms: T0.timer_ms,
    };
    let on_b = write(&mut b, "c1", "from the future", ahead);
    assert_eq!(on_b, 1);
    sync(&b, &mut a, T0);
    let on_a = messages(&a)[0].0;
    a.agent_message(
        AgentMessage {
            conversation: on_a,
            agent: 1,
            text: "answered after it".into(),
            via: None,
        },
        T0,
    )
    .unwrap();
    a.store_catches_up();
    sync(&a, &mut b, ahead);
    for d in [&a, &b] {
        let keys = message_keys(d);
        assert!(
            keys["from the future"] < keys["answered after it"],
            "causal order on every box: {keys:?}"
        );
    }
    // Another conversation is not pushed: its messages keep the clock's time.
    let other = a
        .customer_message(
            CustomerMessage {
                identity: identity("web", "v2"),
                client_id: Some(bounded_id("x1").unwrap()),
                text: "unrelated".into(),
                attachment: None,
            },
            T0,
        )
        .unwrap();
    assert_ne!(other.conversation, on_a);
    let keys = message_keys(&a);
    assert!(keys["unrelated"].0 < keys["from the future"].0);
}

//! Unit tests of `replica/contacts.rs`: boxes as deciders over in-memory ports, linking
//! contacts and naming them, their operations handed from one to another as the link would —
//! in order, in any interleaving across origins, and repeated.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use super::tests::{box_of, gossip, held, sync, Rng};
use super::*;
use crate::cluster::vector::Inbox;
use crate::dispatch::fakes::{at, identity, TestDecider, T0};
use crate::dispatch::{Accepted, CustomerMessage, EditContact, LinkContacts};
use crate::model::bounded_id;

const A: NodeId = 0xa;
const B: NodeId = 0xb;
const C: NodeId = 0xc;

fn write(d: &mut TestDecider, who: &str, client_id: &str, text: &str, now: Now) {
    d.customer_message(
        CustomerMessage {
            identity: identity("web", who),
            client_id: Some(bounded_id(client_id).unwrap()),
            text: text.into(),
            attachment: None,
        },
        now,
    )
    .unwrap();
    caught_up(d);
}

/// The store applies everything journaled, and memory lets go of what it then holds (versions
/// and names are read back from the store from then on).
fn caught_up(d: &mut TestDecider) {
    d.store_catches_up();
    d.settle_contacts();
}

fn contact_of(d: &TestDecider, who: &str) -> Option<ContactId> {
    d.contact_holding(&identity("web", who)).unwrap()
}

fn link(d: &mut TestDecider, keep: &str, merged: &str, now: Now) -> Accepted {
    let (keep, merged) = (contact_of(d, keep).unwrap(), contact_of(d, merged).unwrap());
    let accepted = d.link_contacts(LinkContacts { keep, merged }, now).unwrap();
    caught_up(d);
    accepted
}

fn rename(d: &mut TestDecider, who: &str, name: &str, now: Now) {
    let contact = contact_of(d, who).unwrap();
    d.edit_contact(
        EditContact {
            contact,
            name: name.into(),
            details: "{}".into(),
        },
        now,
    )
    .unwrap();
    caught_up(d);
}

/// Every box hands everything it holds to every other, twice (what one learns from a second
/// reaches the third).
fn everyone(boxes: &mut [TestDecider], now: Now) {
    for _ in 0..2 {
        for from in 0..boxes.len() {
            for to in 0..boxes.len() {
                if from != to {
                    let ops = held(&boxes[from]);
                    boxes[to].replicate(ops, now).unwrap();
                    caught_up(&mut boxes[to]);
                }
            }
        }
    }
}

/// A contact as a box shows it: its name and its conversations' texts, each in cluster
/// order (HLC time, origin, seq).
#[derive(Debug, PartialEq, Eq)]
struct Shown {
    name: String,
    conversations: BTreeSet<Vec<String>>,
}

/// What a box shows, the store's way (projected from its journal), per contact named by its
/// identities: what every box must show alike.
fn view(d: &TestDecider) -> BTreeMap<BTreeSet<String>, Shown> {
    let mut identities: HashMap<ContactId, BTreeSet<String>> = HashMap::new();
    let mut names: HashMap<ContactId, String> = HashMap::new();
    let mut owner: HashMap<ConversationId, ContactId> = HashMap::new();
    let mut folded: BTreeSet<ConversationId> = BTreeSet::new();
    let mut messages: Vec<(Lsn, ConversationId, String)> = Vec::new();
    let mut order: HashMap<Lsn, (u64, NodeId, u64)> = HashMap::new();
    for e in &d.journal.entries {
        match &e.op {
            Op::ContactCreated {
                contact, identity, ..
            } => {
                identities.insert(*contact, BTreeSet::from([identity.to_string()]));
            }
            Op::ConversationOpened {
                conversation,
                contact,
                ..
            } => {
                owner.insert(*conversation, *contact);
            }
            Op::MessageAdded(m) => messages.push((e.lsn, m.conversation, m.text.clone())),
            Op::ContactsLinked {
                keep,
                merged,
                folded: f,
                ..
            } => {
                let moved = identities.remove(merged).unwrap();
                identities.get_mut(keep).unwrap().extend(moved);
                names.remove(merged);
                for c in owner.values_mut().filter(|c| **c == *merged) {
                    *c = *keep;
                }
                if let Some((from, into)) = f {
                    folded.insert(*from);
                    for m in messages.iter_mut().filter(|m| m.1 == *from) {
                        m.1 = *into;
                    }
                }
            }
            Op::ContactDetails { contact, name, .. } => {
                names.insert(*contact, name.clone());
            }
            Op::Replicated(r) => {
                if let Some(m) = r.message {
                    order.insert(m, (r.hlc, r.origin, r.seq));
                }
            }
            _ => {}
        }
    }
    messages.sort_by_key(|m| order[&m.0]);
    let mut out = BTreeMap::new();
    for (contact, ids) in identities {
        let conversations = owner
            .iter()
            .filter(|(c, o)| **o == contact && !folded.contains(c))
            .map(|(c, _)| {
                messages
                    .iter()
                    .filter(|m| m.1 == *c)
                    .map(|m| m.2.clone())
                    .collect::<Vec<_>>()
            })
            .filter(|texts| !texts.is_empty())
            .collect();
        let name = names.get(&contact).cloned().unwrap_or_default();
        out.insert(
            ids,
            Shown {
                name,
                conversations,
            },
        );
    }
    out
}

/// Per contact, how many conversations are open: never more than one.
fn assert_one_open_per_contact(d: &TestDecider, context: &str) {
    let mut open: HashMap<ContactId, usize> = HashMap::new();
    for state in d.conversations.values().filter(|s| s.status.is_open()) {
        *open.entry(d.resolve_linked(state.contact)).or_default() += 1;
    }
    assert!(open.values().all(|n| *n == 1), "{context}: {open:?}");
}

fn ids(who: &[&str]) -> BTreeSet<String> {
    who.iter().map(|w| format!("web:{w}")).collect()
}

#[test]
fn a_link_made_on_a_third_box_joins_both_customers_and_their_conversations_everywhere() {
    let mut boxes = [box_of(A), box_of(B), box_of(C)];
    write(&mut boxes[0], "v1", "a1", "from A", T0);
    write(&mut boxes[1], "v2", "b1", "from B", at(1));
    everyone(&mut boxes, at(2));
    link(&mut boxes[2], "v1", "v2", at(3));
    // B writes again before it hears of the link: into its own conversation, which the link
    // folds away everywhere (A's comes first by its cluster name): it lands in the kept one.
    write(&mut boxes[1], "v2", "b2", "again from B", at(4));
    everyone(&mut boxes, at(5));
    write(&mut boxes[1], "v2", "b3", "after the link", at(6));
    everyone(&mut boxes, at(7));
    let expected = BTreeMap::from([(
        ids(&["v1", "v2"]),
        Shown {
            name: String::new(),
            conversations: BTreeSet::from([vec![
                "from A".to_string(),
                "from B".into(),
                "again from B".into(),
                "after the link".into(),
            ]]),
        },
    )]);
    for (i, d) in boxes.iter().enumerate() {
        assert_eq!(view(d), expected, "box {i}");
        assert_one_open_per_contact(d, &format!("box {i}"));
    }
    // Linking again, anywhere, changes nothing.
    let last = boxes[0].journal.last();
    let ops = held(&boxes[2]);
    boxes[0].replicate(ops, at(8)).unwrap();
    assert_eq!(boxes[0].journal.last(), last);
}

#[test]
fn a_link_reaching_a_box_before_the_customer_does_makes_the_contact_and_waits_for_nothing() {
    let (mut a, mut b, mut c) = (box_of(A), box_of(B), box_of(C));
    write(&mut a, "v1", "a1", "hello", T0);
    write(&mut b, "v2", "b1", "it is me, on my phone", at(1));
    sync(&b, &mut a, at(2));
    link(&mut a, "v1", "v2", at(3));
    // C hears from A first: v1's message and the link, not yet v2's message (B's).
    let from_a: Vec<Operation> = held(&a).into_iter().filter(|o| o.dot.origin == A).collect();
    c.replicate(from_a, at(4)).unwrap();
    c.store_catches_up();
    assert_eq!(
        view(&c).keys().collect::<Vec<_>>(),
        [&ids(&["v1", "v2"])],
        "v2 has a contact on C already, linked"
    );
    sync(&b, &mut c, at(5));
    sync(&c, &mut b, at(5));
    for (name, d) in [("B", &b), ("C", &c)] {
        assert_eq!(view(d), view(&a), "{name}");
        assert_one_open_per_contact(d, name);
    }
    assert_eq!(view(&c)[&ids(&["v1", "v2"])].conversations.len(), 1);
}

/// The cluster name of the conversation `who`'s contact holds now, on `d`.
fn current_key(d: &TestDecider, who: &str) -> ConvKey {
    let contact = contact_of(d, who).unwrap();
    let current = d.contacts[&contact].current.unwrap();
    d.key_of(current).unwrap()
}

#[test]
fn the_kept_conversation_is_the_same_on_every_box_whichever_contact_each_keeps() {
    let mut boxes = [box_of(A), box_of(B), box_of(C)];
    write(&mut boxes[0], "v1", "a1", "from A", T0);
    write(&mut boxes[1], "v2", "b1", "from B", T0);
    everyone(&mut boxes, at(1));
    // B names v2 just before C links them: C keeps v1's contact, B and A (once they hear of
    // the name) keep v2's. The conversation kept is still the same: A's, named first.
    rename(&mut boxes[1], "v2", "Bo", at(2));
    link(&mut boxes[2], "v1", "v2", at(3));
    everyone(&mut boxes, at(4));
    let on_a = ConvKey {
        home: A,
        id: boxes[0].contacts[&contact_of(&boxes[0], "v1").unwrap()]
            .current
            .unwrap(),
    };
    for (i, d) in boxes.iter().enumerate() {
        assert_eq!(current_key(d, "v2"), on_a, "box {i}");
        assert_eq!(view(d)[&ids(&["v1", "v2"])].name, "Bo", "box {i}");
    }
    // The customer on B writes again: into the kept one everywhere.
    write(&mut boxes[1], "v2", "b2", "me again", at(5));
    everyone(&mut boxes, at(6));
    for (i, d) in boxes.iter().enumerate() {
        let texts = &view(d)[&ids(&["v1", "v2"])].conversations;
        assert_eq!(texts.len(), 1, "box {i}: {texts:?}");
        assert_one_open_per_contact(d, &format!("box {i}"));
    }
}

#[test]
fn an_operation_naming_a_conversation_folded_here_lands_in_the_kept_one() {
    let mut boxes = [box_of(A), box_of(B), box_of(C)];
    write(&mut boxes[0], "v1", "a1", "from A", T0);
    write(&mut boxes[1], "v2", "b1", "from B", T0);
    everyone(&mut boxes, at(1));
    // An agent on A answers B's customer, in A's copy of B's conversation.
    let copy = contact_of(&boxes[0], "v2").unwrap();
    let copy = boxes[0].contacts[&copy].current.unwrap();
    boxes[0]
        .agent_message(
            crate::dispatch::AgentMessage {
                conversation: copy,
                agent: 1,
                text: "answered on A".into(),
                via: None,
            },
            at(2),
        )
        .unwrap();
    boxes[0].store_catches_up();
    // B hears of C's link first (its own conversation folds into A's), then of the answer,
    // which names B's conversation.
    link(&mut boxes[2], "v1", "v2", at(3));
    let (c, b) = pair(&mut boxes, 2, 1);
    sync(c, b, at(4));
    let (a, b) = pair(&mut boxes, 0, 1);
    sync(a, b, at(5));
    let shown = view(&boxes[1]);
    assert_eq!(
        shown[&ids(&["v1", "v2"])].conversations,
        BTreeSet::from([vec![
            "from A".to_string(),
            "from B".into(),
            "answered on A".into()
        ]])
    );
    everyone(&mut boxes, at(6));
    for (i, d) in boxes.iter().enumerate() {
        assert_eq!(view(d), shown, "box {i}");
    }
}

#[test]
fn the_newer_name_wins_on_every_box_and_a_link_keeps_the_newer_of_the_two() {
    let mut boxes = [box_of(A), box_of(B), box_of(C)];
    write(&mut boxes[0], "v1", "a1", "hi", T0);
    write(&mut boxes[1], "v2", "b1", "hi again", T0);
    everyone(&mut boxes, T0);
    rename(&mut boxes[0], "v1", "Ann", at(10));
    rename(&mut boxes[1], "v2", "Ann Lee", at(20));
    // Concurrently, C links them, knowing neither name.
    link(&mut boxes[2], "v1", "v2", at(15));
    everyone(&mut boxes, at(30));
    for (i, d) in boxes.iter().enumerate() {
        let v = view(d);
        assert_eq!(v[&ids(&["v1", "v2"])].name, "Ann Lee", "box {i}: {v:?}");
    }
    // Two agents rename it at the same moment on A and C: one write wins, the same everywhere.
    rename(&mut boxes[0], "v2", "Mrs Lee", at(40));
    rename(&mut boxes[2], "v1", "Ann L.", at(40));
    everyone(&mut boxes, at(50));
    let names: Vec<String> = boxes
        .iter()
        .map(|d| view(d)[&ids(&["v1", "v2"])].name.clone())
        .collect();
    assert!(names.windows(2).all(|w| w[0] == w[1]), "{names:?}");
    assert!(names[0] == "Mrs Lee" || names[0] == "Ann L.");
    assert!(
        boxes
            .iter()
            .all(|d| d.replica.as_ref().unwrap().versions.len() == 0),
        "every version is read back from the store"
    );
}

#[test]
fn the_agent_asks_to_keep_one_contact_but_the_one_with_the_newer_name_is_kept() {
    let mut a = box_of(A);
    write(&mut a, "v1", "a1", "hi", T0);
    write(&mut a, "v2", "a2", "hi", T0);
    rename(&mut a, "v1", "Old name", at(1));
    rename(&mut a, "v2", "New name", at(2));
    let v2 = contact_of(&a, "v2").unwrap();
    let accepted = link(&mut a, "v1", "v2", at(3));
    assert!(
        matches!(a.ops_since(accepted.lsn - 1)[..], [Op::ContactsLinked { keep, .. }, ..] if *keep == v2)
    );
    assert_eq!(view(&a)[&ids(&["v1", "v2"])].name, "New name");
}

#[test]
fn a_name_written_here_after_one_from_a_box_whose_clock_runs_ahead_still_wins() {
    let (mut a, mut b) = (box_of(A), box_of(B));
    write(&mut a, "v1", "a1", "hi", T0);
    sync(&a, &mut b, T0);
    let ahead = at(600_000);
    rename(&mut b, "v1", "From the future", ahead);
    sync(&b, &mut a, T0);
    assert_eq!(view(&a)[&ids(&["v1"])].name, "From the future");
    // A's clock is not dragged ten minutes ahead, yet its later write wins.
    rename(&mut a, "v1", "Corrected", at(1));
    sync(&a, &mut b, ahead);
    assert_eq!(view(&a)[&ids(&["v1"])].name, "Corrected");
    assert_eq!(view(&b)[&ids(&["v1"])].name, "Corrected");
}

#[test]
fn a_version_the_store_has_not_applied_stays_in_memory_and_an_applied_one_is_read_back() {
    let (mut a, mut b, mut c, mut d) = (box_of(A), box_of(B), box_of(C), box_of(0xd));
    write(&mut a, "v1", "a1", "hi", T0);
    for other in [&mut b, &mut c, &mut d] {
        sync(&a, other, T0);
    }
    // C and D name v1 first; A later. B gets A's name, its store lagging.
    rename(&mut c, "v1", "Older", at(5));
    rename(&mut d, "v1", "Also older", at(6));
    rename(&mut a, "v1", "Newer", at(10));
    b.replicate(held(&a), at(10)).unwrap();
    b.settle_contacts();
    let versions = |d: &TestDecider| d.replica.as_ref().unwrap().versions.len();
    assert_eq!(versions(&b), 1, "the store has not applied it");
    let ops_before = b.journal.last();
    b.replicate(held(&c), at(11)).unwrap();
    caught_up(&mut b);
    assert_eq!(
        versions(&b),
        0,
        "applied: read back from the store from now on"
    );
    let renamed = |d: &TestDecider, after| {
        d.ops_since(after)
            .iter()
            .filter(|op| matches!(op, Op::ContactDetails { .. }))
            .count()
    };
    assert_eq!(
        renamed(&b, ops_before),
        0,
        "C's older name lost to A's, held in memory"
    );
    // A's name is in B's store only now: an older write arriving still loses.
    let ops_before = b.journal.last();
    b.replicate(held(&d), at(12)).unwrap();
    assert_eq!(
        renamed(&b, ops_before),
        0,
        "lost to the version in the store"
    );
    assert_eq!(view(&b)[&ids(&["v1"])].name, "Newer");
}

/// A small union-find over identities: the partition the link edges make.
fn partition(edges: &[(String, String)], all: &BTreeSet<String>) -> BTreeSet<BTreeSet<String>> {
    let mut class: BTreeMap<String, usize> = all.iter().cloned().zip(0..).collect();
    for (a, b) in edges {
        let (ca, cb) = (class[a], class[b]);
        for c in class.values_mut() {
            if *c == cb {
                *c = ca;
            }
        }
    }
    let mut out: BTreeMap<usize, BTreeSet<String>> = BTreeMap::new();
    for (id, c) in class {
        out.entry(c).or_default().insert(id);
    }
    out.into_values().collect()
}

/// The name every box must show for a class: the write with the highest (HLC time, origin)
/// among its identities' writes.
fn winner(ops: &[Operation], class: &BTreeSet<String>) -> String {
    ops.iter()
        .filter_map(|o| match Body::decode(&o.body) {
            Ok(Body::Details(d)) if class.contains(&d.contact.to_string()) => {
                Some(((o.hlc, o.dot.origin), d.name))
            }
            _ => None,
        })
        .max()
        .map(|(_, name)| name)
        .unwrap_or_default()
}

#[test]
fn any_interleaving_and_duplication_of_links_and_names_gives_one_partition_and_one_name() {
    let nodes = [A, B, C];
    let who = ["v0", "v1", "v2", "v3", "v4"];
    for seed in 1..=150u64 {
        let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
        let mut boxes: Vec<TestDecider> = nodes.iter().map(|n| box_of(*n)).collect();
        let mut inboxes: Vec<Inbox<Operation>> = nodes
            .iter()
            .map(|_| Inbox::new(VersionVector::default(), 1000))
            .collect();
        let mut edges: Vec<(String, String)> = Vec::new();
        let mut seen: BTreeSet<String> = BTreeSet::new();
        for step in 0..40 {
            let on = rng.below(3);
            let now = at(step * 10);
            let (x, y) = (who[rng.below(5)], who[rng.below(5)]);
            match rng.below(6) {
                0 | 1 => {
                    write(
                        &mut boxes[on],
                        x,
                        &format!("c{step}"),
                        &format!("{x} {step}"),
                        now,
                    );
                    seen.insert(format!("web:{x}"));
                }
                2 => {
                    let d = &mut boxes[on];
                    match (contact_of(d, x), contact_of(d, y)) {
                        (Some(k), Some(m)) if k != m => {
                            d.link_contacts(LinkContacts { keep: k, merged: m }, now)
                                .unwrap();
                            caught_up(d);
                            edges.push((format!("web:{x}"), format!("web:{y}")));
                        }
                        _ => {}
                    }
                }
                3 => {
                    if contact_of(&boxes[on], x).is_some() {
                        rename(&mut boxes[on], x, &format!("name {step}"), now);
                    }
                }
                _ => {
                    let to = rng.below(3);
                    if to != on {
                        let (source, target) = pair(&mut boxes, on, to);
                        gossip(source, target, &mut inboxes[to], &mut rng);
                    }
                }
            }
            boxes[on].after_command(now);
        }
        // Healed: everyone gossips with everyone until nothing moves, some twice.
        for _ in 0..3 {
            for from in 0..3 {
                for (to, inbox) in inboxes.iter_mut().enumerate() {
                    if from != to {
                        let (source, target) = pair(&mut boxes, from, to);
                        gossip(source, target, inbox, &mut rng);
                    }
                }
            }
        }
        let expected = partition(&edges, &seen);
        let all_ops = held(&boxes[0]);
        let first = view(&boxes[0]);
        for (i, d) in boxes.iter().enumerate() {
            let shown = view(d);
            assert_eq!(shown, first, "seed {seed}: box {i} differs from box 0");
            let classes: BTreeSet<BTreeSet<String>> = shown.keys().cloned().collect();
            assert_eq!(classes, expected, "seed {seed}, box {i}");
            for (class, s) in &shown {
                assert_eq!(s.name, winner(&all_ops, class), "seed {seed}, box {i}");
                assert!(s.conversations.len() <= 1, "seed {seed}, box {i}: {s:?}");
            }
            assert_one_open_per_contact(d, &format!("seed {seed}, box {i}"));
        }
    }
}

/// Box `from` to read and box `to` to change, of `boxes`.
fn pair(boxes: &mut [TestDecider], from: usize, to: usize) -> (&TestDecider, &mut TestDecider) {
    if from < to {
        let (l, r) = boxes.split_at_mut(to);
        (&l[from], &mut r[0])
    } else {
        let (l, r) = boxes.split_at_mut(from);
        (&r[0], &mut l[to])
    }
}

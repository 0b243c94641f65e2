//! Unit tests of `holders.rs`: boxes as deciders over in-memory ports, assigning the same
//! conversation apart and together, their operations handed over as the link would.

use super::super::tests::{held, sync, write, A, B};
use super::*;
use crate::cluster::vector::NodeId;
use crate::cluster::wire::Operation;
use crate::conversation::Status;
use crate::dispatch::fakes::{agent, config, decider_over, MemoryStore, TestDecider, T0};
use crate::dispatch::state::ClusterRole;
use crate::dispatch::{AgentMessage, Assign};

const C: NodeId = 0xc;

/// A box with agents 1 and 2 of its own.
fn staffed(node: NodeId) -> TestDecider {
    let mut cfg = config();
    cfg.cluster = Some(ClusterRole {
        node,
        max_clock_ahead_ms: 500,
    });
    let store = MemoryStore::with(Vec::new(), vec![agent(1, &[], 5), agent(2, &[], 5)]);
    decider_over(cfg, store)
}

fn take(d: &mut TestDecider, conversation: ConversationId, agent: AgentId) {
    d.assign(
        Assign {
            conversation,
            to: agent,
            by: agent,
        },
        T0,
    )
    .unwrap();
    d.store_catches_up();
}

/// (node, agent) of each holder, by dot.
fn holders(d: &TestDecider, conversation: ConversationId) -> Vec<(NodeId, AgentId)> {
    d.replica
        .as_ref()
        .unwrap()
        .holders
        .get(&conversation)
        .map_or_else(Vec::new, |h| {
            h.values()
                .iter()
                .map(|v| (v.agent.node, v.agent.agent))
                .collect()
        })
}

/// The last `ConversationHeld` journaled: what the store shows.
fn stored_holders(d: &TestDecider) -> Vec<(NodeId, AgentId)> {
    d.journal
        .entries
        .iter()
        .rev()
        .find_map(|e| match &e.op {
            Op::ConversationHeld { holders, .. } => Some(
                holders
                    .iter()
                    .map(|h| (h.agent.node, h.agent.agent))
                    .collect(),
            ),
            _ => None,
        })
        .unwrap_or_default()
}

#[test]
fn a_conversation_taken_on_its_home_box_is_held_there_on_every_box() {
    let (mut a, mut b) = (staffed(A), staffed(B));
    let on_a = write(&mut a, "c1", "hello", T0);
    sync(&a, &mut b, T0);
    take(&mut a, on_a, 1);
    assert_eq!(holders(&a, on_a), [(A, 1)]);
    assert_eq!(stored_holders(&a), [(A, 1)]);
    sync(&a, &mut b, T0);
    let on_b = b.replica.as_ref().unwrap().names.any_named().unwrap();
    assert_eq!(holders(&b, on_b), [(A, 1)]);
    assert_eq!(stored_holders(&b), [(A, 1)]);
    assert_eq!(b.conversations[&on_b].status, Status::InProgress);
    assert_eq!(b.conversations[&on_b].assignee, None, "held on A");
    assert!(b.held_elsewhere(on_b) && !a.held_elsewhere(on_a));
    // A reply on B does not take it from A's agent.
    b.agent_message(
        AgentMessage {
            conversation: on_b,
            agent: 2,
            text: "I can help too".into(),
            via: None,
        },
        T0,
    )
    .unwrap();
    b.store_catches_up();
    assert_eq!(b.conversations[&on_b].assignee, None);
    sync(&b, &mut a, T0);
    assert_eq!(holders(&a, on_a), [(A, 1)]);
    assert_eq!(a.conversations[&on_a].assignee, Some(1));
}

#[test]
fn assignments_made_apart_are_both_kept_and_one_made_after_both_settles_them() {
    let (mut a, mut b) = (staffed(A), staffed(B));
    let on_a = write(&mut a, "c1", "hello", T0);
    sync(&a, &mut b, T0);
    let on_b = b.replica.as_ref().unwrap().names.any_named().unwrap();
    // Cut off from each other: each box's agent takes it.
    take(&mut a, on_a, 1);
    take(&mut b, on_b, 2);
    sync(&a, &mut b, T0);
    sync(&b, &mut a, T0);
    assert_eq!(holders(&a, on_a), [(A, 1), (B, 2)], "a conflict on A");
    assert_eq!(
        holders(&b, on_b),
        [(A, 1), (B, 2)],
        "the same conflict on B"
    );
    assert_eq!(
        a.conversations[&on_a].assignee,
        Some(1),
        "each sees it as theirs"
    );
    assert_eq!(b.conversations[&on_b].assignee, Some(2));
    // A's agent, who already holds it on A, takes it again: that alone settles it.
    take(&mut a, on_a, 1);
    assert_eq!(holders(&a, on_a), [(A, 1)]);
    sync(&a, &mut b, T0);
    assert_eq!(holders(&b, on_b), [(A, 1)]);
    assert_eq!(b.conversations[&on_b].assignee, None);
    // B's agent takes it back (having seen A's), and gives it to A's agent, online there.
    take(&mut b, on_b, 2);
    assert_eq!(holders(&b, on_b), [(B, 2)]);
    b.assign_elsewhere(
        AssignElsewhere {
            conversation: on_b,
            to: AgentRef { node: A, agent: 1 },
            name: "agent 1".into(),
            by: 2,
        },
        T0,
    )
    .unwrap();
    b.store_catches_up();
    assert_eq!(holders(&b, on_b), [(A, 1)]);
    assert_eq!(b.conversations[&on_b].assignee, None);
    assert_eq!(b.conversations[&on_b].status, Status::InProgress);
    sync(&b, &mut a, T0);
    assert_eq!(holders(&a, on_a), [(A, 1)]);
    assert_eq!(a.conversations[&on_a].assignee, Some(1));
    assert!(!a.held_elsewhere(on_a));
}

#[test]
fn a_conversation_given_to_another_box_leaves_this_box_s_queue() {
    let (mut a, mut b) = (staffed(A), staffed(B));
    let on_a = write(&mut a, "c1", "hello", T0);
    a.after_command(T0);
    a.store_catches_up();
    // Agent 1 of A took it (the scheduler): A gives it to B's agent 2.
    sync(&a, &mut b, T0);
    a.assign_elsewhere(
        AssignElsewhere {
            conversation: on_a,
            to: AgentRef { node: B, agent: 2 },
            name: "agent 2".into(),
            by: 1,
        },
        T0,
    )
    .unwrap();
    a.after_command(T0);
    a.store_catches_up();
    assert_eq!(
        a.conversations[&on_a].assignee, None,
        "the scheduler leaves it alone"
    );
    assert!(a.held_elsewhere(on_a));
    sync(&a, &mut b, T0);
    let on_b = b.replica.as_ref().unwrap().names.any_named().unwrap();
    assert_eq!(b.conversations[&on_b].assignee, Some(2));
    assert_eq!(holders(&b, on_b), [(B, 2)]);
    // Refused: an agent of this very box is assigned the usual way.
    assert!(a
        .assign_elsewhere(
            AssignElsewhere {
                conversation: on_a,
                to: AgentRef { node: A, agent: 1 },
                name: "agent 1".into(),
                by: 1,
            },
            T0,
        )
        .is_err());
}

/// Every box ends with the same holders of every conversation, whatever order and however
/// often the operations reach it.
#[test]
fn three_boxes_assigning_apart_agree_once_every_operation_reached_every_box() {
    for seed in 1..40u64 {
        let mut rng = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        let mut next = move |n: u64| {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng % n
        };
        let mut boxes = [staffed(A), staffed(B), staffed(C)];
        let home = write(&mut boxes[0], "c1", "hello", T0);
        let [a, b, c] = &mut boxes;
        sync(a, b, T0);
        sync(a, c, T0);
        for _ in 0..8 {
            let i = next(3) as usize;
            let j = next(3) as usize;
            if i != j {
                let ops = held(&boxes[j]);
                boxes[i].replicate(ops, T0).unwrap();
                boxes[i].store_catches_up();
            }
            let d = &mut boxes[i];
            let conversation = if i == 0 {
                home
            } else {
                d.replica.as_ref().unwrap().names.any_named().unwrap()
            };
            if d.conversations
                .get(&conversation)
                .is_some_and(|s| s.status.is_open())
            {
                take(d, conversation, 1 + next(2));
            }
        }
        // Gossip until all agree: every box takes every other's operations, twice over, in a
        // seeded order (duplicates are dropped by their dots).
        for round in 0..2 {
            for pair in 0..6 {
                let (to, from) = [(0, 1), (0, 2), (1, 0), (1, 2), (2, 0), (2, 1)]
                    [(pair + seed as usize + round) % 6];
                let ops = held(&boxes[from]);
                boxes[to].replicate(ops, T0).unwrap();
                boxes[to].store_catches_up();
            }
        }
        let views: Vec<Vec<(NodeId, AgentId)>> = boxes
            .iter()
            .map(|d| {
                let r = d.replica.as_ref().unwrap();
                let conversation = r.names.any_named().unwrap_or(home);
                holders(d, conversation)
            })
            .collect();
        assert!(!views[0].is_empty(), "seed {seed}");
        assert_eq!(views[0], views[1], "seed {seed}");
        assert_eq!(views[1], views[2], "seed {seed}");
    }
}

/// A box with no agent online gives its customer to another box's agent who has room (the
/// scheduler counts the other boxes' agents, `elsewhere.rs`), who holds it on their box.
#[test]
fn a_customer_goes_to_an_agent_of_another_box_when_none_here_has_room() {
    use crate::cluster::wire::{Presence, RosterAgent};
    let (mut a, mut b) = (staffed(A), staffed(B));
    let roster = |presence, open| {
        vec![RosterAgent {
            id: 2,
            name: "Bo".into(),
            presence,
            open,
            capacity: 2,
            teams: Vec::new(),
        }]
    };
    // B's agent 2 is away at first: nobody can take it.
    a.peer_roster(B, roster(Presence::Away, 0), true, T0);
    let on_a = write(&mut a, "c1", "hello", T0);
    a.after_command(T0);
    a.store_catches_up();
    assert!(holders(&a, on_a).is_empty());
    assert_eq!(a.conversations[&on_a].status, Status::Waiting);
    assert!(
        a.roster()
            .iter()
            .all(|(id, _)| *id < super::super::elsewhere::PROXY),
        "stand-ins stay out of this box's roster"
    );
    // Online with room: the next pass gives it to them.
    a.peer_roster(B, roster(Presence::Online, 0), true, T0);
    a.after_command(T0);
    a.store_catches_up();
    assert_eq!(holders(&a, on_a), [(B, 2)]);
    assert_eq!(a.conversations[&on_a].status, Status::InProgress);
    assert_eq!(a.conversations[&on_a].assignee, None);
    sync(&a, &mut b, T0);
    let on_b = b.replica.as_ref().unwrap().names.any_named().unwrap();
    assert_eq!(b.conversations[&on_b].assignee, Some(2));
    // Counted against their load until their box says otherwise: at capacity 2, a second
    // customer goes to them too, a third waits.
    for (i, visitor) in ["v2", "v3"].into_iter().enumerate() {
        a.customer_message(
            crate::dispatch::CustomerMessage {
                identity: crate::dispatch::fakes::identity("web", visitor),
                client_id: None,
                text: format!("customer {i}"),
                attachment: None,
            },
            T0,
        )
        .unwrap();
        a.after_command(T0);
        a.store_catches_up();
    }
    let held_by_bo = a
        .replica
        .as_ref()
        .unwrap()
        .holders
        .values()
        .filter(|h| {
            h.values()
                .iter()
                .any(|v| v.agent == AgentRef { node: B, agent: 2 })
        })
        .count();
    assert_eq!(held_by_bo, 2);
    // A roster their box published before it took them does not make room.
    a.peer_roster(B, roster(Presence::Online, 0), true, T0);
    a.customer_message(
        crate::dispatch::CustomerMessage {
            identity: crate::dispatch::fakes::identity("web", "v4"),
            client_id: None,
            text: "customer 3".into(),
            attachment: None,
        },
        T0,
    )
    .unwrap();
    a.after_command(T0);
    a.store_catches_up();
    let held_by_bo = |a: &TestDecider| {
        a.replica
            .as_ref()
            .unwrap()
            .holders
            .values()
            .filter(|h| {
                h.values()
                    .iter()
                    .any(|v| v.agent == AgentRef { node: B, agent: 2 })
            })
            .count()
    };
    assert_eq!(
        held_by_bo(&a),
        2,
        "at capacity until their box says otherwise"
    );
    // Their box says they hold one (seconds later): room for one more.
    let later = crate::dispatch::fakes::at(6_000);
    a.peer_roster(B, roster(Presence::Online, 1), true, later);
    a.after_command(later);
    a.store_catches_up();
    assert_eq!(held_by_bo(&a), 3);
    // Their box goes offline: nothing more goes to them.
    a.peer_roster(B, roster(Presence::Online, 0), false, T0);
    a.after_command(T0);
    assert_eq!(a.roster().len(), 2, "this box's own agents only");
}

/// Two customers' conversations folded into one by a link: who holds the kept one is the same
/// on every box, whether an assignment of the folded one reached a box before the link or
/// after it.
#[test]
fn holders_of_folded_conversations_are_the_same_whether_the_link_came_first_or_last() {
    use crate::dispatch::fakes::identity;
    use crate::dispatch::{CustomerMessage, LinkContacts};
    let (mut a, mut b, mut c) = (staffed(A), staffed(B), staffed(C));
    let say = |d: &mut TestDecider, who: &str| {
        d.customer_message(
            CustomerMessage {
                identity: identity("web", who),
                client_id: None,
                text: format!("hello from {who}"),
                attachment: None,
            },
            T0,
        )
        .unwrap();
        d.store_catches_up();
    };
    say(&mut a, "phone");
    say(&mut b, "laptop");
    sync(&a, &mut b, T0);
    sync(&b, &mut a, T0);
    // A's agent takes the laptop's conversation (B's, the one the link folds away: the kept
    // one is the lesser cluster name, A's); B links the two contacts without having seen that
    // assignment.
    let laptop_on_a = a.contacts[&a
        .contact_holding(&identity("web", "laptop"))
        .unwrap()
        .unwrap()]
        .current
        .unwrap();
    take(&mut a, laptop_on_a, 1);
    let contact =
        |d: &TestDecider, who: &str| d.contact_holding(&identity("web", who)).unwrap().unwrap();
    let (keep, merged) = (contact(&b, "laptop"), contact(&b, "phone"));
    b.link_contacts(LinkContacts { keep, merged }, T0).unwrap();
    b.store_catches_up();
    // C gets A's customer message, then B's link, then A's assignment last.
    let from_a: Vec<Operation> = held(&a)
        .into_iter()
        .filter(|op| op.dot.origin == A)
        .collect();
    let (assign, before): (Vec<Operation>, Vec<Operation>) = from_a
        .into_iter()
        .partition(|op| matches!(Body::decode(&op.body), Ok(Body::Assign(_))));
    c.replicate(before, T0).unwrap();
    c.replicate(held(&b), T0).unwrap();
    c.replicate(assign, T0).unwrap();
    c.store_catches_up();
    // A and B get each other's (the assignment before the link on B, after it on A).
    sync(&a, &mut b, T0);
    sync(&b, &mut a, T0);
    let kept = |d: &TestDecider| {
        let contact = contact(d, "phone");
        let current = d.contacts[&contact].current.unwrap();
        holders(d, current)
    };
    assert_eq!(kept(&a), [(A, 1)]);
    assert_eq!(kept(&b), [(A, 1)]);
    assert_eq!(kept(&c), [(A, 1)]);
}

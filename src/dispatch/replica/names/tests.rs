//! Unit tests of `names.rs`: the names themselves, then two boxes over in-memory ports where
//! many of one box's conversations close on the other.

use super::*;
use crate::dispatch::fakes::{at, identity, TestDecider, T0};
use crate::dispatch::replica::tests::{box_of, held, A, B};
use crate::dispatch::{CustomerMessage, Resolve};
use crate::model::bounded_id;
use crate::op::Op;

const K1: ConvKey = ConvKey { home: A, id: 1 };
const K2: ConvKey = ConvKey { home: A, id: 2 };
const OWN: ConvKey = ConvKey { home: B, id: 7 };

#[test]
fn a_fold_moves_every_name_and_a_closed_conversation_lets_go_once_the_store_has_it() {
    let mut names = Names::from_stored(vec![(A, 1, 10, true), (A, 2, 20, true)]);
    assert_eq!(names.copy_key(10), Some(K1));
    names.insert(OWN, 20, false);
    names.fold(10, 20);
    assert_eq!(names.conversation(K1), Some(20));
    assert_eq!(
        names.copy_key(10),
        None,
        "the folded one is no copy any more"
    );
    assert_eq!(
        names.copy_key(20),
        Some(K2),
        "the kept one keeps its own name"
    );
    names.closed(10, 5);
    assert_eq!(
        names.len(),
        3,
        "nothing names the folded one: nothing to let go"
    );
    names.closed(20, 9);
    names.settle(8);
    assert_eq!(names.len(), 3, "the store has not applied the closing yet");
    names.settle(9);
    assert_eq!(names.len(), 0);
    assert_eq!(names.conversation(K1), None);
    assert_eq!(names.copy_key(20), None);
}

/// A customer `who` writes on `d` (its own conversation there).
fn customer_writes(d: &mut TestDecider, who: &str, now: crate::dispatch::state::Now) {
    let message = CustomerMessage {
        identity: identity("web", who),
        client_id: Some(bounded_id(&format!("{who}-{}", now.wall_ms)).unwrap()),
        text: format!("hello from {who}"),
        attachment: None,
    };
    d.customer_message(message, now).unwrap();
    d.store_catches_up();
}

/// B applies what A holds that B lacks (its store does not apply it: the test decides when).
fn a_to_b(a: &TestDecider, b: &mut TestDecider) {
    b.replicate(held(a), T0).unwrap();
}

fn names_held(d: &TestDecider) -> usize {
    d.replica.as_ref().unwrap().names.len()
}

/// B's copies, each its own conversation on B, resolved there and closed after the idle time.
fn close_all(b: &mut TestDecider, copies: &[ConversationId]) {
    for &c in copies {
        b.resolve(
            Resolve {
                conversation: c,
                by: 4,
            },
            at(1),
        )
        .unwrap();
    }
    b.fire_idle_timeouts(at(120_000));
    assert!(copies.iter().all(|c| !b.conversations.contains_key(c)));
}

/// A with `n` customers, each with a conversation B holds a copy of.
fn many_copies(n: usize) -> (TestDecider, TestDecider, Vec<ConversationId>) {
    let (mut a, mut b) = (box_of(A), box_of(B));
    for i in 0..n {
        customer_writes(&mut a, &format!("v{i}"), T0);
    }
    a_to_b(&a, &mut b);
    b.store_catches_up();
    let mut copies: Vec<ConversationId> = b.conversations.keys().copied().collect();
    copies.sort_unstable();
    assert_eq!(copies.len(), n);
    assert_eq!(names_held(&b), n);
    (a, b, copies)
}

#[test]
fn names_of_closed_copies_leave_memory_and_a_late_operation_still_finds_its_copy() {
    let (mut a, mut b, copies) = many_copies(300);
    close_all(&mut b, &copies);
    b.store_catches_up();
    b.settle_contacts();
    assert_eq!(
        names_held(&b),
        0,
        "no conversation not closed, no name held"
    );
    // A never saw B's resolves: its customer v7 writes again in the same conversation there.
    let v7 = b
        .store
        .contact_by_identity(&identity("web", "v7"))
        .unwrap()
        .unwrap();
    let copy_of_v7 = b.store.contact(v7, 0).unwrap();
    assert!(copy_of_v7.current.is_none(), "closed on B");
    customer_writes(&mut a, "v7", at(2));
    let before = b.journal.last();
    a_to_b(&a, &mut b);
    let landed: Vec<&Op> = b.ops_since(before);
    let conversation = landed
        .iter()
        .find_map(|op| match op {
            Op::MessageAdded(m) => Some(m.conversation),
            _ => None,
        })
        .expect("the message is journaled on B");
    let first = b
        .journal
        .entries
        .iter()
        .find_map(|e| match &e.op {
            Op::MessageAdded(m) if m.contact == v7 => Some(m.conversation),
            _ => None,
        })
        .unwrap();
    assert_eq!(
        conversation, first,
        "the copy it names, read from the store"
    );
    assert!(
        !landed.iter().any(|op| matches!(
            op,
            Op::ConversationHomed { .. } | Op::ConversationOpened { .. }
        )),
        "no second copy: {landed:?}"
    );
    assert_eq!(
        names_held(&b),
        0,
        "a closed conversation's name is not held again"
    );
}

#[test]
fn a_closed_copys_names_stay_until_the_store_has_applied_its_closing() {
    let (_a, mut b, copies) = many_copies(3);
    let homed = b.journal.last();
    close_all(&mut b, &copies);
    b.settle_contacts();
    assert_eq!(
        names_held(&b),
        3,
        "the store has applied none of the closings"
    );
    // The store applies up to the copies' own records, not the closings.
    let entries: Vec<_> = b
        .journal
        .entries
        .iter()
        .filter(|e| e.lsn <= homed)
        .cloned()
        .collect();
    b.store.apply(&entries);
    b.settle_contacts();
    assert_eq!(names_held(&b), 3, "still not the closings");
    b.store_catches_up();
    b.settle_contacts();
    assert_eq!(names_held(&b), 0);
}

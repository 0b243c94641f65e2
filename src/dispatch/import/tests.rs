use super::*;
use crate::conversation::Status;
use crate::dispatch::fakes::{at, decider, identity, TestDecider, T0};
use crate::model::bounded_id;
use crate::op::StatusChanged;

const HOUR: i64 = 3_600_000;

fn message(who: &str, key: &str, sender: Sender, at_ms: i64) -> ImportStep {
    ImportStep::Message {
        identity: identity("web", who),
        sender,
        agent: (sender == Sender::Agent).then_some(7),
        key: bounded_id(key).unwrap(),
        text: format!("text of {key}"),
        at_ms,
    }
}

fn statuses(d: &TestDecider) -> Vec<(Status, Status, i64)> {
    d.ops_since(0)
        .into_iter()
        .filter_map(|op| match op {
            Op::StatusChanged(StatusChanged {
                from, to, at_ms, ..
            }) => Some((*from, *to, *at_ms)),
            _ => None,
        })
        .collect()
}

#[test]
fn history_keeps_its_times_and_senders_and_is_never_routed() {
    let mut d = decider();
    let old = T0.wall_ms - 100 * HOUR;
    let steps = vec![
        ImportStep::Contact {
            identity: identity("web", "v1"),
            name: "Li".into(),
            details: r#"{"city":"Hangzhou"}"#.into(),
            at_ms: old,
        },
        message("v1", "gofly:1", Sender::Visitor, old + 1_000),
        message("v1", "gofly:2", Sender::Agent, old + 2_000),
        ImportStep::Close {
            identity: identity("web", "v1"),
            at_ms: old + 2_000,
        },
    ];
    let lsn = d.import(steps, T0).unwrap();
    assert_eq!(lsn, d.journal.last());
    let ops = d.ops_since(0);
    assert!(matches!(ops[0], Op::ContactCreated { at_ms, .. } if *at_ms == old));
    assert!(matches!(ops[1], Op::ContactDetails { name, .. } if name == "Li"));
    let messages: Vec<&MessageAdded> = ops
        .iter()
        .filter_map(|op| match op {
            Op::MessageAdded(m) => Some(m),
            _ => None,
        })
        .collect();
    assert_eq!(messages.len(), 2);
    assert_eq!(messages[0].sender, Sender::Visitor);
    assert_eq!(messages[0].at_ms, old + 1_000);
    assert_eq!(messages[1].sender, Sender::Agent);
    assert_eq!(messages[1].agent, Some(7));
    assert_eq!(messages[1].client_id.as_ref().unwrap().as_str(), "gofly:2");
    assert!(
        messages.iter().all(|m| m.via.is_none()),
        "history is never delivered"
    );
    assert!(d.journal.entries.iter().all(|e| e.audience.is_none()));
    assert!(
        !ops.iter()
            .any(|op| matches!(op, Op::HandedToHuman { .. } | Op::MessageClassified { .. })),
        "no bot and no queue for history"
    );
    // Opened waiting, resolved at its last message, closed a day's idle time later.
    let idle_after = d.cfg.resolved_idle_after_ms;
    assert_eq!(
        statuses(&d),
        vec![
            (Status::Idle, Status::Waiting, old + 1_000),
            (Status::Waiting, Status::Resolved, old + 2_000),
            (Status::Resolved, Status::Idle, old + 2_000 + idle_after),
        ]
    );
    assert_eq!(d.contacts[&1].current, None, "closed");
    assert!(d.idle_deadlines.is_empty());
    // A kill -9 keeps a new conversation with its first message or neither, and a resolve
    // with its close.
    let glued: Vec<(u8, bool)> = d
        .journal
        .entries
        .iter()
        .map(|e| (e.op.kind(), e.glue))
        .collect();
    assert_eq!(
        glued,
        [
            (crate::op::KIND_CONTACT_CREATED, false),
            (crate::op::KIND_CONTACT_DETAILS, false),
            (crate::op::KIND_CONVERSATION_OPENED, true),
            (crate::op::KIND_STATUS_CHANGED, true),
            (crate::op::KIND_MESSAGE_ADDED, false),
            (crate::op::KIND_MESSAGE_ADDED, false),
            (crate::op::KIND_STATUS_CHANGED, true),
            (crate::op::KIND_STATUS_CHANGED, false),
        ]
    );
}

#[test]
fn a_close_cuts_the_stream_and_the_next_message_opens_another_conversation() {
    let mut d = decider();
    let old = T0.wall_ms - 100 * HOUR;
    let steps = vec![
        message("v1", "k1", Sender::Visitor, old),
        ImportStep::Close {
            identity: identity("web", "v1"),
            at_ms: old,
        },
        message("v1", "k2", Sender::Visitor, old + 30 * HOUR),
    ];
    d.import(steps, T0).unwrap();
    let conversations: Vec<u64> = d
        .ops_since(0)
        .into_iter()
        .filter_map(|op| match op {
            Op::MessageAdded(m) => Some(m.conversation),
            _ => None,
        })
        .collect();
    assert_eq!(conversations.len(), 2);
    assert_ne!(conversations[0], conversations[1]);
    assert_eq!(d.contacts[&1].current, Some(conversations[1]));
}

#[test]
fn a_recently_ended_conversation_is_resolved_but_not_yet_closed() {
    let mut d = decider();
    let recent = T0.wall_ms - 1_000;
    d.import(
        vec![
            message("v1", "k1", Sender::Visitor, recent),
            ImportStep::Close {
                identity: identity("web", "v1"),
                at_ms: recent,
            },
        ],
        T0,
    )
    .unwrap();
    let c = d.contacts[&1].current.unwrap();
    assert_eq!(d.conversations[&c].status, Status::Resolved);
    // Its timer is armed where a live resolve at that time would have put it.
    let deadline = T0.to_timer(recent) + d.cfg.resolved_idle_after_ms;
    assert!(d.idle_deadlines.contains(&(deadline, c)));
    d.fire_idle_timeouts(at(d.cfg.resolved_idle_after_ms));
    assert_eq!(d.contacts[&1].current, None);
}

#[test]
fn a_recent_conversation_waits_for_a_person_and_is_assigned_when_one_is_online() {
    let mut d = decider();
    d.scheduler.set_agent(3, Vec::new(), 5, false);
    d.agent_feed(3, true);
    let recent = T0.wall_ms - 1_000;
    d.import(
        vec![
            message("v1", "k1", Sender::Visitor, recent),
            ImportStep::Hand {
                identity: identity("web", "v1"),
                at_ms: recent,
            },
            // Twice is once.
            ImportStep::Hand {
                identity: identity("web", "v1"),
                at_ms: recent,
            },
        ],
        T0,
    )
    .unwrap();
    let handed = d
        .ops_since(0)
        .into_iter()
        .filter(|op| matches!(op, Op::HandedToHuman { .. }))
        .count();
    assert_eq!(handed, 1);
    d.after_command(T0);
    let c = d.contacts[&1].current.unwrap();
    assert_eq!(d.conversations[&c].assignee, Some(3));
}

#[test]
fn closing_or_handing_a_contact_with_nothing_open_does_nothing() {
    let mut d = decider();
    d.import(
        vec![
            ImportStep::Close {
                identity: identity("web", "nobody"),
                at_ms: 1,
            },
            ImportStep::Hand {
                identity: identity("web", "nobody"),
                at_ms: 1,
            },
        ],
        T0,
    )
    .unwrap();
    assert!(d.journal.entries.is_empty());
}

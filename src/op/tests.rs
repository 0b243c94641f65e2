//! Unit tests of `op`.

use super::*;
use crate::model::bounded_id;

fn samples() -> Vec<Op> {
    vec![
        Op::ContactCreated {
            contact: 7,
            identity: Identity {
                channel: bounded_id("web").unwrap(),
                external_id: bounded_id("v-1").unwrap(),
            },
            at_ms: 1_700_000_000_000,
        },
        Op::ConversationOpened {
            conversation: 3,
            contact: 7,
            at_ms: -1,
        },
        Op::MessageAdded(MessageAdded {
            conversation: 3,
            contact: 7,
            sender: Sender::Visitor,
            agent: None,
            client_id: Some(bounded_id("c1").unwrap()),
            text: "你好 <b>world</b> 👋".into(),
            at_ms: 5,
            attachment: None,
            via: None,
        }),
        Op::MessageAdded(MessageAdded {
            conversation: 3,
            contact: 7,
            sender: Sender::Agent,
            agent: Some(2),
            client_id: None,
            text: String::new(),
            at_ms: 6,
            attachment: None,
            via: None,
        }),
        Op::MessageAdded(MessageAdded {
            conversation: 3,
            contact: 7,
            sender: Sender::Visitor,
            agent: None,
            client_id: Some(bounded_id("c2").unwrap()),
            text: String::new(),
            at_ms: 7,
            attachment: Some("9f86d081884c7d65.png".into()),
            via: None,
        }),
        Op::MessageAdded(MessageAdded {
            conversation: 3,
            contact: 7,
            sender: Sender::Visitor,
            agent: None,
            client_id: Some(bounded_id("c3").unwrap()),
            text: "from the kiosk".into(),
            at_ms: 7,
            attachment: Some("9f86d081884c7d65.png".into()),
            via: Some(Identity {
                channel: bounded_id("kiosk").unwrap(),
                external_id: bounded_id("k-9").unwrap(),
            }),
        }),
        Op::MessageAdded(MessageAdded {
            conversation: 3,
            contact: 7,
            sender: Sender::Bot,
            agent: None,
            client_id: None,
            text: "answer".into(),
            at_ms: 7,
            attachment: None,
            via: Some(Identity {
                channel: bounded_id("mqtt").unwrap(),
                external_id: bounded_id("m").unwrap(),
            }),
        }),
        Op::MessageAdded(MessageAdded {
            conversation: 3,
            contact: 7,
            sender: Sender::Note,
            agent: Some(2),
            client_id: None,
            text: "customer is a regular".into(),
            at_ms: 8,
            attachment: None,
            via: None,
        }),
        Op::StatusChanged(StatusChanged {
            conversation: 3,
            from: Status::Waiting,
            to: Status::InProgress,
            assignee: Some(2),
            by: Some(2),
            at_ms: 9,
        }),
        Op::KbEntryPut {
            entry: KbEntry {
                intent: "returns".into(),
                examples: vec!["我要退货".into(), "how do I return this".into()],
                answer: "Bring it back within 30 days.".into(),
                team: "after-sales".into(),
            },
            at_ms: 10,
        },
        Op::KbEntryPut {
            entry: KbEntry {
                intent: "empty".into(),
                examples: vec![],
                answer: String::new(),
                team: String::new(),
            },
            at_ms: 11,
        },
        Op::KbEntryDeleted {
            intent: "returns".into(),
            at_ms: 12,
        },
        Op::MessageClassified {
            message: 40,
            intent: "returns".into(),
            score: 0.8125,
        },
        Op::HandedToHuman {
            conversation: 3,
            team: "after-sales".into(),
            reason: HandoffReason::Asked,
            at_ms: 13,
        },
        Op::ContactsLinked {
            keep: 7,
            merged: 9,
            folded: Some((4, 3)),
            at_ms: 14,
        },
        Op::ContactsLinked {
            keep: 7,
            merged: 10,
            folded: None,
            at_ms: 15,
        },
        Op::Delivered {
            messages: vec![40, 41, 44],
            at_ms: 16,
        },
        Op::DeliveryFailed {
            message: 41,
            attempts: 3,
            dead: true,
            error: "HTTP 500".into(),
            at_ms: 17,
        },
        Op::ClockStepped {
            offset_ms: 218_000_000_000,
            before_ms: 1_577_836_861_000,
            correct_since_ms: Some(1_577_836_800_000),
            correct_from_lsn: 1,
            at_ms: 1_796_000_000_000,
        },
        Op::ClockStepped {
            offset_ms: -5_000,
            before_ms: 1_796_000_005_000,
            correct_since_ms: None,
            correct_from_lsn: 90,
            at_ms: 1_796_000_000_000,
        },
        Op::ConversationHomed {
            conversation: 12,
            home_node: 0x1234_5678_9abc_def0,
            home_id: 3,
            joined: true,
        },
        Op::Replicated(Replicated {
            origin: 0x1234_5678_9abc_def0,
            seq: 7,
            hlc: 1_796_000_000_000 << 16 | 3,
            message: Some(44),
            body: vec![1, 2, 3, 0, 255],
        }),
        Op::Replicated(Replicated {
            origin: 9,
            seq: 1,
            hlc: 5,
            message: None,
            body: Vec::new(),
        }),
        Op::ContactDetails {
            contact: 4,
            name: "北京网友 Li".into(),
            details: r#"{"city":"北京","refer":"https://shop.example/"}"#.into(),
            at_ms: 1_596_000_000_000,
        },
        Op::ConversationLabeled {
            conversation: 9,
            labels: vec![1, 7, u64::MAX],
            by: 2,
            at_ms: 1_700_000_000_000,
        },
        Op::ConversationLabeled {
            conversation: 9,
            labels: vec![],
            by: 2,
            at_ms: 1_700_000_000_001,
        },
        Op::ConversationRated {
            conversation: 9,
            score: 5,
            comment: "很好 thanks".into(),
            at_ms: 1_700_000_000_002,
        },
    ]
}

#[test]
fn every_op_round_trips() {
    for op in samples() {
        let mut buf = Vec::new();
        op.encode(&mut buf);
        assert_eq!(Op::decode(op.kind(), &buf), Ok(op));
    }
}

#[test]
fn truncated_and_trailing_payloads_are_refused() {
    for op in samples() {
        let mut buf = Vec::new();
        op.encode(&mut buf);
        for cut in 0..buf.len() {
            assert!(
                Op::decode(op.kind(), &buf[..cut]).is_err(),
                "cut at {cut} of {op:?}"
            );
        }
        buf.push(0);
        assert_eq!(Op::decode(op.kind(), &buf), Err(DecodeError::Trailing(1)));
    }
    assert_eq!(Op::decode(99, &[]), Err(DecodeError::UnknownKind(99)));
}

#[test]
fn flags_other_than_0_and_1_are_refused() {
    // A message without a client id whose flag byte reads 2 (found by tests/fuzz.rs).
    let mut payload = vec![0; 16];
    payload.extend([1, 0, 2]);
    payload.extend([0; 12]);
    assert_eq!(
        Op::decode(KIND_MESSAGE_ADDED, &payload),
        Err(DecodeError::BadValue("flag"))
    );
}

#[test]
fn damaged_labels_and_ratings_are_refused_without_allocating_for_them() {
    use crate::op::{KIND_CONVERSATION_LABELED, KIND_CONVERSATION_RATED};
    // A count of u32::MAX labels with 8 bytes left: the payload cannot hold them.
    let mut labeled = 9u64.to_le_bytes().to_vec();
    labeled.extend(u32::MAX.to_le_bytes());
    labeled.extend(1u64.to_le_bytes());
    assert_eq!(
        Op::decode(KIND_CONVERSATION_LABELED, &labeled),
        Err(DecodeError::Truncated)
    );
    for score in [0u8, 6, 255] {
        let mut rated = 9u64.to_le_bytes().to_vec();
        rated.push(score);
        rated.extend(0u32.to_le_bytes());
        rated.extend(0i64.to_le_bytes());
        assert_eq!(
            Op::decode(KIND_CONVERSATION_RATED, &rated),
            Err(DecodeError::BadValue("score"))
        );
    }
}

use super::*;
use crate::model::{bounded_id, Identity};
use crate::op::MessageAdded;

const BOOT: i64 = 1_577_836_800_000;
const OFFSET: i64 = 218_000_000_000;

fn identity() -> Identity {
    Identity {
        channel: bounded_id("web").unwrap(),
        external_id: bounded_id("v1").unwrap(),
    }
}

fn message(conversation: u64, at_ms: i64) -> Op {
    Op::MessageAdded(MessageAdded {
        conversation,
        contact: 1,
        sender: Sender::Visitor,
        agent: None,
        client_id: None,
        text: "hi".into(),
        at_ms,
        attachment: None,
        via: Some(identity()),
    })
}

fn times(conn: &Connection) -> Vec<i64> {
    let mut stmt = conn
        .prepare("SELECT created_at FROM messages ORDER BY id")
        .unwrap();
    stmt.query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

#[test]
fn a_clock_step_corrects_what_an_unsynchronised_clock_stamped_and_keeps_durations() {
    let mut conn = Connection::open_in_memory().unwrap();
    crate::store::schema::migrate(&mut conn, None).unwrap();
    conn.execute(
        "INSERT INTO agents (id, username, display_name, password_hash, is_admin, created_at) VALUES (1, 'li', 'li', 'x', 1, 0)",
        [],
    )
    .unwrap();
    conn.execute(
        "INSERT INTO tokens (hash, agent_id, created_at, expires_at) VALUES (x'00', 1, ?1, ?2)",
        params![BOOT, BOOT + 3_600_000],
    )
    .unwrap();
    let ops = [
        Op::ContactCreated {
            contact: 1,
            identity: identity(),
            at_ms: BOOT,
        },
        Op::ConversationOpened {
            conversation: 1,
            contact: 1,
            at_ms: BOOT,
        },
        message(1, BOOT + 1_000),
        message(1, BOOT + 2_000),
        Op::ClockStepped {
            offset_ms: OFFSET,
            before_ms: BOOT + 3_000,
            correct_since_ms: Some(BOOT),
            correct_from_lsn: 1,
            at_ms: BOOT + 3_000 + OFFSET,
        },
        message(1, BOOT + OFFSET + 4_000),
        // Synchronised since: a later step moves durations only.
        Op::ClockStepped {
            offset_ms: -10_000,
            before_ms: BOOT + OFFSET + 5_000,
            correct_since_ms: None,
            correct_from_lsn: 6,
            at_ms: BOOT + OFFSET - 5_000,
        },
    ];
    let tx = conn.transaction().unwrap();
    for (i, op) in ops.iter().enumerate() {
        apply_op(
            &mut Prepared::new(&tx, Loading::Live),
            i as u64 + 1,
            op,
            &[],
        )
        .unwrap();
    }
    tx.commit().unwrap();
    let conn = &conn;
    assert_eq!(
        times(conn),
        [
            BOOT + 1_000 + OFFSET,
            BOOT + 2_000 + OFFSET,
            BOOT + OFFSET + 4_000
        ]
    );
    let (activity, created): (i64, i64) = conn
        .query_row(
            "SELECT last_activity_at, created_at FROM conversations WHERE id = 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!(created, BOOT + OFFSET);
    assert_eq!(activity, BOOT + OFFSET + 4_000);
    // The token still expires an hour after it was made, on the clock as it is now.
    let expires: i64 = conn
        .query_row("SELECT expires_at FROM tokens", [], |r| r.get(0))
        .unwrap();
    assert_eq!(expires, BOOT + 3_600_000 + OFFSET - 10_000);
}

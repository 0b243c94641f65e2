//! Unit tests of `mqtt`.

use super::*;

fn publish(topic: &str, payload: &[u8]) -> rumqttc::Publish {
    rumqttc::Publish::new(topic, QoS::AtLeastOnce, payload.to_vec())
}

#[test]
fn inbound_topics_and_payloads() {
    let p = publish("kefu/in/app/u-1", br#"{"client_id":"c1","text":"hi"}"#);
    let (channel, contact, received) = parse_inbound("kefu", &p).unwrap();
    assert_eq!((channel, contact), ("app", "u-1"));
    assert_eq!(
        received,
        Received::Message {
            client_id: "c1".into(),
            text: "hi".into()
        }
    );
    let typing = publish("kefu/in/app/u-1", br#"{"type":"typing"}"#);
    assert_eq!(parse_inbound("kefu", &typing).unwrap().2, Received::Typing);
    let read = publish("kefu/in/app/u-1", br#"{"type":"read","message_id":42}"#);
    assert_eq!(parse_inbound("kefu", &read).unwrap().2, Received::Read(42));
    for (topic, body) in [
        ("kefu/in/app", &br#"{"client_id":"c1","text":"hi"}"#[..]),
        ("kefu/in/app/u/x", br#"{"client_id":"c1","text":"hi"}"#),
        ("kefu/out/app/u", br#"{"client_id":"c1","text":"hi"}"#),
        ("other/in/app/u", br#"{"client_id":"c1","text":"hi"}"#),
        ("kefu/in/app/u", b"not json"),
        ("kefu/in/app/u", br#"{"text":"no client id"}"#),
        ("kefu/in/app/u", b"{\"client_id\":\"c\",\"text\":\"\xff\"}"),
        ("kefu/in/app/u", br#"{"type":"read"}"#),
        // Message ids are what SQLite holds: 1..=i64::MAX.
        ("kefu/in/app/u", br#"{"type":"read","message_id":0}"#),
        (
            "kefu/in/app/u",
            br#"{"type":"read","message_id":9223372036854775808}"#,
        ),
        ("kefu/in/app/u", br#"{"type":"dance"}"#),
    ] {
        assert!(
            parse_inbound("kefu", &publish(topic, body)).is_err(),
            "{topic} {body:?}"
        );
    }
}

#[test]
fn unacknowledged_replies_keep_their_order() {
    let mut t = Tracker::default();
    let unacked = |seq| Unacked {
        seq,
        topic: String::new(),
        payload: Vec::new(),
        done: oneshot::channel().0,
    };
    t.in_flight.insert(9, unacked(2));
    t.in_flight.insert(3, unacked(1));
    t.requested.push_back(unacked(3));
    t.unsent.push(unacked(4));
    let order: Vec<u64> = t.take_all().iter().map(|u| u.seq).collect();
    assert_eq!(order, [1, 2, 3, 4]);
}

#[test]
fn a_durable_message_waiting_too_long_for_its_puback_is_a_stall() {
    let secs = Duration::from_secs;
    assert_eq!(reported_state("connected", None), "connected");
    assert_eq!(reported_state("connected", Some(secs(1))), "connected");
    assert_eq!(reported_state("connected", Some(STALL_AFTER)), "connected");
    assert_eq!(
        reported_state("connected", Some(STALL_AFTER + secs(1))),
        "stalled"
    );
    // Not connected: that is what it reports (its backlog is the last connection's).
    assert_eq!(
        reported_state("disconnected", Some(STALL_AFTER + secs(1))),
        "disconnected"
    );
}

#[test]
fn the_backlog_measures_the_oldest_durable_message_without_a_puback() {
    let t0 = Instant::now();
    let at = |s| t0 + Duration::from_secs(s);
    let mut b = AckBacklog::default();
    b.connected(1);
    assert_eq!(b.oldest_wait(at(100)), None);
    // Waiting for room in rumqttc's queue counts from when it became durable.
    b.next = Some(at(3));
    assert_eq!(b.oldest_wait(at(10)), Some(Duration::from_secs(7)));
    b.next = None;
    b.handed.extend([at(1), at(2)]);
    b.next = Some(at(4));
    assert_eq!(b.len(), 3);
    assert_eq!(b.oldest_wait(at(10)), Some(Duration::from_secs(9)));
    b.written();
    assert_eq!(b.oldest_wait(at(10)), Some(Duration::from_secs(8)));
    b.written();
    assert_eq!(b.oldest_wait(at(10)), Some(Duration::from_secs(6)));
    // The connection ended: its PUBACKs will never be written; the broker sends again.
    b.handed.push_back(at(5));
    b.connected(0);
    assert_eq!((b.len(), b.oldest_wait(at(10))), (0, None));
}

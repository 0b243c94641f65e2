//! A box of a cluster killed at the two exact moments a kill must lose and double nothing, with
//! real processes on loopback (three kefud boxes, each with its own mosquitto bridged to a
//! central one, as in `cluster.rs`):
//! - between the fsync of its own operations and their publication: the others get them from
//!   it after its restart (its journal holds them; they ask for what they lack);
//! - between applying another box's operations (fsync'd) and their PUBACK to its broker: its
//!   broker sends them again after its restart, and it drops them by dot.
//!
//! The kill is the binary's test-only crash point (`src/cluster/fault.rs`, debug builds only):
//! the box is started with `KEFUD_CRASH_AT` naming the point and `KEFUD_CRASH_ARMED` a file,
//! and aborts (like kill -9) the first time it reaches the point once the file exists. After
//! the restart every box must hold every message exactly once: the same projection on every
//! box, each text once, the counts exact.
//!
//! Release builds have no crash points (the hook compiles to nothing): this file runs only in
//! debug builds (`cargo test --release`, as the aarch64 suite runs, leaves it out).
#![cfg(debug_assertions)]

mod common;

use std::collections::BTreeSet;
use std::ops::Range;
use std::path::Path;
use std::time::{Duration, Instant};

use common::cluster::*;
use common::*;
use serde_json::json;

/// `range` messages from visitor `visitor` on `shop`, each acknowledged (after its fsync);
/// their texts go into `expected`.
async fn write(
    shop: &Shop,
    visitor: &str,
    prefix: &str,
    range: Range<usize>,
    expected: &mut BTreeSet<String>,
) {
    let mut ws = connect(&shop.d().ws(&format!("/ws/visitor?visitor_id={visitor}"))).await;
    for i in range {
        let text = format!("{prefix} {i}");
        assert!(
            send_for_ack(&mut ws, &format!("{prefix}-{i}"), &text)
                .await
                .is_some(),
            "{text} acknowledged"
        );
        expected.insert(text);
    }
}

/// Waits until the box has aborted at `point` (it says so on stderr just before).
async fn aborted_at(shop: &Shop, point: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    let said = format!("KEFUD_CRASH_AT={point}: aborting");
    while !shop.d().log().contains(&said) {
        assert!(
            Instant::now() < deadline,
            "the box never reached {point}:\n{}",
            shop.d().log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Every box holds exactly `expected`: the same projection, each text once, nothing else.
async fn hold_exactly_once(shops: &[&Shop], expected: &BTreeSet<String>) {
    let view = converged(shops, |v| {
        v.iter().map(|(_, m)| m.len()).sum::<usize>() >= expected.len()
    })
    .await;
    let texts: Vec<&String> = view
        .iter()
        .flat_map(|(_, m)| m.iter().map(|(_, t)| t))
        .collect();
    assert_eq!(texts.len(), expected.len(), "nothing doubled: {view:?}");
    let held: BTreeSet<String> = texts.into_iter().cloned().collect();
    assert_eq!(&held, expected, "nothing lost");
    for s in shops {
        assert_eq!(s.message_count().await, expected.len() as u64);
    }
}

/// Three boxes; box `crashing` is started with the crash point `point`, armed by `armed`.
async fn three_shops_one_armed(
    dir: &Path,
    crashing: usize,
    point: &str,
    armed: &Path,
) -> (Brokers, Vec<Shop>) {
    let brokers = Brokers::start(dir, 3);
    let env = [
        ("KEFUD_CRASH_AT", point),
        ("KEFUD_CRASH_ARMED", armed.to_str().unwrap()),
    ];
    let mut shops = Vec::new();
    for (i, b) in brokers.shops.iter().enumerate() {
        let env: &[(&str, &str)] = if i == crashing { &env } else { &[] };
        shops.push(Shop::start_with_env(dir.join(format!("box{i}")), b.port, env).await);
    }
    (brokers, shops)
}

#[tokio::test]
async fn a_box_killed_between_fsync_and_publish_loses_and_doubles_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let armed = tmp.path().join("armed");
    let (_brokers, mut shops) =
        three_shops_one_armed(tmp.path(), 0, "before-publish", &armed).await;
    let mut expected = BTreeSet::new();
    write(&shops[0], "early", "before", 0..20, &mut expected).await;
    hold_exactly_once(&[&shops[0], &shops[1], &shops[2]], &expected).await;

    std::fs::write(&armed, "").unwrap();
    // Journaled and fsync'd on box A, which dies before its link publishes it (its ack may
    // or may not have gone out first: it is durable either way).
    let mut ws = connect(&shops[0].d().ws("/ws/visitor?visitor_id=early")).await;
    send_json(
        &mut ws,
        json!({"type": "message", "client_id": "crash-0", "text": "crash 0"}),
    )
    .await;
    aborted_at(&shops[0], "before-publish").await;
    expected.insert("crash 0".to_string());
    for s in &shops[1..] {
        assert_eq!(s.message_count().await, 20, "published before the abort");
    }

    shops[0].daemon.take().unwrap().kill9();
    std::fs::remove_file(&armed).unwrap();
    shops[0].restart().await;
    write(&shops[0], "late", "after", 0..5, &mut expected).await;
    hold_exactly_once(&[&shops[0], &shops[1], &shops[2]], &expected).await;
}

#[tokio::test]
async fn a_box_killed_between_apply_and_puback_loses_and_doubles_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let armed = tmp.path().join("armed");
    let (_brokers, mut shops) = three_shops_one_armed(tmp.path(), 1, "before-puback", &armed).await;
    let mut expected = BTreeSet::new();
    write(&shops[0], "early", "before", 0..20, &mut expected).await;
    hold_exactly_once(&[&shops[0], &shops[1], &shops[2]], &expected).await;

    std::fs::write(&armed, "").unwrap();
    // Applied and fsync'd on box B, which dies before it acknowledges it to its broker.
    write(&shops[0], "early", "crash", 0..1, &mut expected).await;
    aborted_at(&shops[1], "before-puback").await;
    shops[1].daemon.take().unwrap().kill9();
    // More while B is down: its broker keeps them for it.
    write(&shops[0], "late", "during", 0..10, &mut expected).await;

    std::fs::remove_file(&armed).unwrap();
    shops[1].restart().await;
    hold_exactly_once(&[&shops[0], &shops[1], &shops[2]], &expected).await;
    // The batch it had not acknowledged came again from its broker, and was dropped by dot.
    let view = shops[1].cluster().await;
    assert!(
        view["counters"]["duplicates"].as_u64().unwrap() >= 1,
        "{view}"
    );
}

//! Durability against the real binary: kill -9 under load, SIGTERM, torn tails, damage.

mod common;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

/// What one visitor was told was acknowledged: client_id → (message_id, text).
type Acked = Arc<Mutex<HashMap<String, (u64, String)>>>;

/// Sends numbered messages as fast as acks come back (window 8) until the connection dies.
async fn pump(url: String, prefix: String, start: usize, acked: Acked) -> usize {
    let Ok((ws, _)) = tokio_tungstenite::connect_async(&url).await else {
        return start;
    };
    let (mut tx, mut rx) = ws.split();
    let mut outstanding = std::collections::VecDeque::new();
    let mut n = start;
    loop {
        while outstanding.len() < 8 {
            let cid = format!("{prefix}-{n}");
            let text = format!("{prefix} message {n}");
            let frame = json!({"type": "message", "client_id": cid, "text": text});
            if tx
                .send(Message::Text(frame.to_string().into()))
                .await
                .is_err()
            {
                return n;
            }
            outstanding.push_back((cid, text));
            n += 1;
        }
        match tokio::time::timeout(Duration::from_secs(10), rx.next()).await {
            Ok(Some(Ok(Message::Text(t)))) => {
                let v: Value = serde_json::from_str(t.as_str()).unwrap();
                if v["type"] == "ack" {
                    let (cid, text) = outstanding.pop_front().unwrap();
                    assert_eq!(v["client_id"], cid.as_str(), "acks come in send order");
                    acked
                        .lock()
                        .unwrap()
                        .insert(cid, (v["message_id"].as_u64().unwrap(), text));
                }
            }
            Ok(Some(Ok(_))) => {}
            _ => return n,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill9_under_load_loses_no_acknowledged_message() {
    let dir = tempfile::tempdir().unwrap();
    let visitors = ["alpha", "beta", "gamma", "delta"];
    let acked: HashMap<&str, Acked> = visitors.iter().map(|v| (*v, Acked::default())).collect();
    let mut next: HashMap<&str, usize> = visitors.iter().map(|v| (*v, 0)).collect();
    let rounds = 20;
    for round in 0..rounds {
        let d = TestDaemon::start(
            dir.path(),
            "[limits]\nmessages_per_second = 100000\nburst = 100000\n",
        );
        let mut tasks = Vec::new();
        for v in visitors {
            let url = d.ws(&format!("/ws/visitor?visitor_id={v}"));
            tasks.push((
                v,
                tokio::spawn(pump(url, v.to_string(), next[v], Arc::clone(&acked[v]))),
            ));
        }
        // Let the load run a varying while, then pull the plug.
        tokio::time::sleep(Duration::from_millis(150 + (round as u64 * 37) % 200)).await;
        d.kill9();
        for (v, t) in tasks {
            *next.get_mut(v).unwrap() = t.await.unwrap();
        }
    }
    let d = TestDaemon::start(dir.path(), "");
    let mut total = 0;
    for v in visitors {
        let acked = acked[v].lock().unwrap().clone();
        assert!(!acked.is_empty(), "{v} got acks");
        total += acked.len();
        let thread = history(&d, v).await;
        let ids: Vec<u64> = thread
            .iter()
            .map(|m| m["message_id"].as_u64().unwrap())
            .collect();
        assert!(
            ids.windows(2).all(|w| w[0] < w[1]),
            "{v}: ids strictly increase (in order, none twice)"
        );
        let mut seen = HashSet::new();
        let stored: HashMap<String, (u64, String)> = thread
            .iter()
            .map(|m| {
                let cid = m["client_id"].as_str().unwrap().to_string();
                assert!(seen.insert(cid.clone()), "{v}: {cid} stored twice");
                (
                    cid,
                    (
                        m["message_id"].as_u64().unwrap(),
                        m["text"].as_str().unwrap().to_string(),
                    ),
                )
            })
            .collect();
        for (cid, (id, text)) in &acked {
            assert_eq!(
                stored.get(cid),
                Some(&(*id, text.clone())),
                "{v}: acknowledged {cid} lost or changed"
            );
        }
        // Order per conversation: the visitor's own numbering is the stored order.
        let numbers: Vec<usize> = thread
            .iter()
            .map(|m| {
                m["client_id"]
                    .as_str()
                    .unwrap()
                    .rsplit('-')
                    .next()
                    .unwrap()
                    .parse()
                    .unwrap()
            })
            .collect();
        assert!(
            numbers.windows(2).all(|w| w[0] < w[1]),
            "{v}: stored in send order"
        );
    }
    eprintln!("{rounds} kill -9 rounds, {total} acknowledged messages, all present exactly once");

    // A resend of an acknowledged client_id after all those restarts: same id, stored once.
    let (cid, (id, text)) = acked["alpha"]
        .lock()
        .unwrap()
        .iter()
        .next()
        .map(|(k, v)| (k.clone(), v.clone()))
        .unwrap();
    let mut ws = connect(&d.ws("/ws/visitor?visitor_id=alpha")).await;
    next_json(&mut ws, 5).await;
    send_json(
        &mut ws,
        json!({"type": "message", "client_id": cid, "text": text}),
    )
    .await;
    let (ack, _) = next_of_type(&mut ws, "ack", 5).await;
    assert_eq!(ack["message_id"].as_u64(), Some(id));
}

#[tokio::test]
async fn sigterm_stops_cleanly_and_restart_keeps_history() {
    let dir = tempfile::tempdir().unwrap();
    let d = TestDaemon::start(dir.path(), "");
    let mut ws = connect(&d.ws("/ws/visitor?visitor_id=term")).await;
    next_json(&mut ws, 5).await;
    send_json(
        &mut ws,
        json!({"type": "message", "client_id": "t1", "text": "before restart"}),
    )
    .await;
    let (ack, _) = next_of_type(&mut ws, "ack", 5).await;
    let (status, log) = d.terminate();
    assert!(status.success(), "exit {status}\n{log}");
    assert!(log.contains("STOPPING"), "{log}");
    assert!(log.contains("stopped cleanly"), "{log}");
    // The connection was closed with 1001 (going away).
    let close = loop {
        match tokio::time::timeout(Duration::from_secs(5), ws.next())
            .await
            .unwrap()
        {
            Some(Ok(Message::Close(f))) => break f.map(|f| u16::from(f.code)),
            Some(Ok(_)) => continue,
            other => panic!("expected close, got {other:?}"),
        }
    };
    assert_eq!(close, Some(1001));

    let d = TestDaemon::start(dir.path(), "");
    let thread = history(&d, "term").await;
    assert_eq!(thread.len(), 1);
    assert_eq!(thread[0]["message_id"], ack["message_id"]);
    assert_eq!(thread[0]["text"], "before restart");
}

/// Where the frames of the segment at `path` (its content `bytes`) end.
fn records_end(path: &std::path::Path, bytes: &[u8]) -> usize {
    use kefud::journal::{frame, segment};
    let name = path.file_name().unwrap().to_str().unwrap();
    let first_lsn = segment::parse_name(name).unwrap();
    let mut at = segment::check_header(bytes, first_lsn).unwrap().data_offset as usize;
    while let frame::Decoded::Frame(f) = frame::decode(&bytes[at..], first_lsn) {
        at += f.size;
    }
    at
}

#[tokio::test]
async fn a_torn_tail_is_cleared_and_startup_succeeds() {
    let dir = tempfile::tempdir().unwrap();
    let d = TestDaemon::start(dir.path(), "");
    send_n(&d, "torn", 5, 20).await;
    d.kill9();
    let last = journal_segments(dir.path()).pop().unwrap();
    let mut bytes = std::fs::read(&last).unwrap();
    // The records end at a sector boundary, after the last batch's padding frame (whose
    // payload is zeros too), zeros after them (written ahead).
    let at = records_end(&last, &bytes);
    assert_eq!(at % 512, 0);
    assert!(bytes[at..].iter().all(|&b| b == 0) && bytes.len() > at + 512);
    // A half-written record there: a plausible header and some payload, then nothing.
    let half = [
        40, 0, 0, 0, 1, 2, 3, 4, 6, 0, 0, 0, 0, 0, 0, 0, 3, b'h', b'a',
    ];
    bytes[at..at + half.len()].copy_from_slice(&half);
    std::fs::write(&last, &bytes).unwrap();
    let d = TestDaemon::start(dir.path(), "");
    assert!(d.log().contains("clearing the torn tail"), "{}", d.log());
    let after = std::fs::read(&last).unwrap();
    assert_eq!(
        after.len(),
        bytes.len(),
        "cleared in place, the file keeps its size"
    );
    assert!(after[at..].iter().all(|&b| b == 0));
    assert_eq!(history(&d, "torn").await.len(), 5);
}

#[tokio::test]
async fn damaged_middle_segment_stops_startup_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = "[journal]\nsegment_bytes = 65536\nretain_segments = 100\n[limits]\nmessages_per_second = 100000\nburst = 100000\n";
    let d = TestDaemon::start(dir.path(), cfg);
    send_n(&d, "seg", 250, 600).await;
    let (status, _) = d.terminate();
    assert!(status.success());
    let segments = journal_segments(dir.path());
    assert!(
        segments.len() >= 3,
        "expected several segments, got {segments:?}"
    );
    let middle = &segments[1];
    let mut bytes = std::fs::read(middle).unwrap();
    let at = bytes.len() / 2;
    bytes[at] ^= 0x5a;
    std::fs::write(middle, bytes).unwrap();
    let log = TestDaemon::try_start(dir.path(), cfg)
        .err()
        .expect("startup must refuse");
    let name = middle.file_name().unwrap().to_str().unwrap();
    assert!(log.contains(name) && log.contains("damaged"), "{log}");
    assert!(log.contains("exit"), "{log}");
}

#[tokio::test]
async fn checkpointed_segments_are_retired_and_history_survives() {
    let dir = tempfile::tempdir().unwrap();
    // No periodic checkpoint while it runs (a slow machine would let one retire segments
    // mid-run): only the clean stop's checkpoint, so the next start is what retires them.
    let cfg = "[store]\ncommit_interval_ms = 20\ncheckpoint_interval_secs = 3600\n[journal]\nsegment_bytes = 65536\nretain_segments = 1\n[limits]\nmessages_per_second = 100000\nburst = 100000\n";
    let d = TestDaemon::start(dir.path(), cfg);
    send_n(&d, "retire", 400, 600).await;
    let (status, _) = d.terminate();
    assert!(status.success());
    assert!(journal_segments(dir.path()).len() >= 4);
    // A clean stop checkpoints everything; the next start retires all but the retained
    // segment and the open one.
    let d = TestDaemon::start(dir.path(), cfg);
    let left = journal_segments(dir.path());
    assert_eq!(left.len(), 2, "{left:?}");
    assert!(
        d.log().contains("retired checkpointed segment"),
        "{}",
        d.log()
    );
    assert_eq!(history(&d, "retire").await.len(), 400);
}

#[tokio::test]
async fn sigterm_completes_even_with_a_connection_stuck_on_a_full_socket() {
    let dir = tempfile::tempdir().unwrap();
    add_agent(dir.path(), "li", "password-li", false);
    let cfg = "[server]\nlisten = \"127.0.0.1:0\"\nshutdown_grace_secs = 1\n[limits]\nmessages_per_second = 100000\nburst = 100000\nmax_text_chars = 16000\nmax_frame_bytes = 65536\nsubscriber_queue = 4096\n";
    let d = TestDaemon::start(dir.path(), cfg);
    let token = login(&d, "li", "password-li").await;
    // An agent feed that never reads: its connection task ends up blocked writing to a full
    // socket, where it cannot see the shutdown signal.
    let _stuck = connect(&d.ws(&format!("/ws/agent?token={token}"))).await;
    let mut ws = connect(&d.ws("/ws/visitor?visitor_id=flood")).await;
    next_json(&mut ws, 5).await;
    let big = "q".repeat(16_000);
    for i in 0..1200 {
        send_json(
            &mut ws,
            json!({"type": "message", "client_id": format!("q{i}"), "text": big}),
        )
        .await;
        next_of_type(&mut ws, "ack", 10).await;
    }
    let started = std::time::Instant::now();
    let (status, log) = d.terminate();
    assert!(status.success(), "{log}");
    assert!(
        log.contains("did not close within the grace period"),
        "{log}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "shutdown took {:?}",
        started.elapsed()
    );
}

/// The offset a refusal names: "... at offset N: ...".
fn refused_offset(log: &str) -> u64 {
    let rest = log
        .split("at offset ")
        .nth(1)
        .unwrap_or_else(|| panic!("no offset in:\n{log}"));
    rest[..rest.find(|c: char| !c.is_ascii_digit()).unwrap()]
        .parse()
        .unwrap()
}

/// Flips one bit in the middle of the last segment's records; returns it and its damaged
/// bytes.
fn flip_middle_of_last_segment(dir: &std::path::Path) -> (std::path::PathBuf, Vec<u8>) {
    let last = journal_segments(dir).pop().unwrap();
    let mut bytes = std::fs::read(&last).unwrap();
    let records_end = bytes.iter().rposition(|&b| b != 0).unwrap() + 1;
    let at = records_end / 2;
    bytes[at] ^= 0x04;
    std::fs::write(&last, &bytes).unwrap();
    (last, bytes)
}

/// The SD-card failure: 100 acknowledged messages, one bit flipped in the middle of
/// the last segment, the store not yet caught up (an older copy of it put back). Startup must
/// refuse naming the file and offset and leave the segment whole — not cut the acknowledged
/// records after the flip. The operator's `kefud journal truncate` then accepts the loss.
#[tokio::test]
async fn bit_flip_in_the_last_segment_refuses_instead_of_cutting_acknowledged_records() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = "[limits]\nmessages_per_second = 100000\nburst = 100000\n";
    let d = TestDaemon::start(dir.path(), cfg);
    let (status, _) = d.terminate();
    assert!(status.success());
    let empty_store = store_files(dir.path());
    let d = TestDaemon::start(dir.path(), cfg);
    send_n(&d, "flip", 100, 40).await;
    let (status, _) = d.terminate();
    assert!(status.success());
    restore_store(&empty_store);
    let (last, damaged) = flip_middle_of_last_segment(dir.path());

    let log = TestDaemon::try_start(dir.path(), cfg)
        .err()
        .expect("startup must refuse");
    let name = last.file_name().unwrap().to_str().unwrap();
    assert!(log.contains("exit status: 1"), "{log}");
    assert!(log.contains(name) && log.contains("damaged"), "{log}");
    assert!(log.contains("yet a valid record"), "{log}");
    let offset = refused_offset(&log);
    let records_end = damaged.iter().rposition(|&b| b != 0).unwrap() + 1;
    let flipped_at = records_end / 2;
    assert!(offset <= flipped_at as u64, "{log}");
    assert_eq!(
        std::fs::read(&last).unwrap(),
        damaged,
        "the segment is untouched"
    );
    // Refusing again is stable.
    assert!(TestDaemon::try_start(dir.path(), cfg).is_err());
    assert_eq!(std::fs::read(&last).unwrap(), damaged);

    // The operator accepts losing the records from the damaged one on.
    let (ok, out) = kefud_cli(
        dir.path(),
        &["journal", "truncate", name, &offset.to_string()],
        "",
    );
    assert!(ok, "{out}");
    let kept: Vec<_> = std::fs::read_dir(dir.path().join("data/journal/damaged"))
        .unwrap()
        .map(|e| std::fs::read(e.unwrap().path()).unwrap())
        .collect();
    // Kept without the zeros written ahead of the records.
    let records_end = damaged.iter().rposition(|&b| b != 0).unwrap() + 1;
    assert_eq!(kept, vec![damaged[offset as usize..records_end].to_vec()]);
    let d = TestDaemon::start(dir.path(), cfg);
    let thread = history(&d, "flip").await;
    assert!(!thread.is_empty() && thread.len() < 100, "{}", thread.len());
    for (i, m) in thread.iter().enumerate() {
        assert_eq!(m["client_id"], format!("flip{i}"));
    }
}

/// The same flip once the store has applied everything: the damaged record was synced, so
/// startup refuses (before, it cut the file and only then noticed the store was ahead).
#[tokio::test]
async fn bit_flip_the_store_already_applied_refuses_and_keeps_the_segment() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = "[limits]\nmessages_per_second = 100000\nburst = 100000\n";
    let d = TestDaemon::start(dir.path(), cfg);
    send_n(&d, "applied", 100, 40).await;
    let (status, _) = d.terminate();
    assert!(status.success());
    let (last, damaged) = flip_middle_of_last_segment(dir.path());
    let log = TestDaemon::try_start(dir.path(), cfg)
        .err()
        .expect("startup must refuse");
    let name = last.file_name().unwrap().to_str().unwrap();
    assert!(log.contains("exit status: 1"), "{log}");
    assert!(
        log.contains(name) && log.contains("already applied"),
        "{log}"
    );
    refused_offset(&log);
    assert_eq!(
        std::fs::read(&last).unwrap(),
        damaged,
        "the segment is untouched"
    );
    assert!(!dir.path().join("data/journal/damaged").exists());
}

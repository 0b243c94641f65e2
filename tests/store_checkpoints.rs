//! The store commits without an fsync and becomes durable at its checkpoints; the journal keeps
//! every record the store has not checkpointed. These tests crash kefud at each step of that
//! cycle, against the real binary, and check that no acknowledged message is lost.

mod common;

use common::*;

/// A store that commits quickly and never checkpoints on its own while the test runs.
const NO_CHECKPOINT: &str = "[store]\ncommit_interval_ms = 20\ncheckpoint_interval_secs = 86400\ncheckpoint_wal_mib = 1024\n[limits]\nmessages_per_second = 100000\nburst = 100000\n";

fn committed_not_checkpointed(m: &std::collections::HashMap<String, u64>) -> bool {
    let durable = m["kefud_journal_durable_lsn"];
    m["kefud_store_applied_lsn"] >= durable && m["kefud_store_checkpointed_lsn"] < durable
}

#[tokio::test]
async fn kill9_after_the_store_commits_but_before_it_checkpoints_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let d = TestDaemon::start(dir.path(), NO_CHECKPOINT);
    send_n(&d, "commit", 200, 40).await;
    wait_for_metrics(
        &d,
        "a commit without a checkpoint",
        committed_not_checkpointed,
    )
    .await;
    d.kill9();

    let d = TestDaemon::start(dir.path(), NO_CHECKPOINT);
    let thread = history(&d, "commit").await;
    assert_eq!(thread.len(), 200);
    for (i, m) in thread.iter().enumerate() {
        assert_eq!(m["client_id"], format!("commit{i}"));
    }
}

/// A power cut takes back what SQLite committed after its last checkpoint (its WAL was never
/// synced). Modelled by putting the store's files back as they were at a checkpoint. The
/// journal, rotated into many small segments meanwhile, must still hold everything after that
/// checkpoint: retention follows the checkpointed mark, not the committed one.
#[tokio::test]
async fn a_power_cut_that_takes_back_uncheckpointed_commits_is_replayed_from_the_journal() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = format!("{NO_CHECKPOINT}[journal]\nsegment_bytes = 65536\nretain_segments = 0\n");
    let d = TestDaemon::start(dir.path(), &cfg);
    send_n(&d, "before", 20, 40).await;
    let (status, _) = d.terminate();
    assert!(status.success());
    // A clean stop checkpoints: this is the store as of its last checkpoint.
    let at_checkpoint = store_files(dir.path());

    let d = TestDaemon::start(dir.path(), &cfg);
    send_n(&d, "after", 400, 600).await;
    wait_for_metrics(
        &d,
        "a commit without a checkpoint",
        committed_not_checkpointed,
    )
    .await;
    let segments = journal_segments(dir.path()).len();
    assert!(segments >= 3, "the journal rotated: {segments} segments");
    d.kill9();
    restore_store(&at_checkpoint);

    let d = TestDaemon::start(dir.path(), &cfg);
    assert_eq!(history(&d, "before").await.len(), 20);
    let thread = history(&d, "after").await;
    assert_eq!(thread.len(), 400);
    for (i, m) in thread.iter().enumerate() {
        assert_eq!(m["client_id"], format!("after{i}"));
    }
}

/// Checkpointed, then killed before the next rotation could retire anything: every segment is
/// still there, recovery skips what the store holds, and the next start retires them.
#[tokio::test]
async fn kill9_after_a_checkpoint_before_retention_loses_nothing_and_retires_later() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = "[store]\ncommit_interval_ms = 20\ncheckpoint_interval_secs = 1\n[journal]\nsegment_bytes = 65536\nretain_segments = 0\n[limits]\nmessages_per_second = 100000\nburst = 100000\n";
    let d = TestDaemon::start(dir.path(), cfg);
    send_n(&d, "ckpt", 300, 600).await;
    wait_for_metrics(&d, "a checkpoint of everything", |m| {
        m["kefud_store_checkpointed_lsn"] >= m["kefud_journal_durable_lsn"]
    })
    .await;
    // Rotations during the run may have retired segments checkpointed earlier (on a slow
    // machine the 1-s checkpoints come while it sends); the one closed at the last rotation
    // held records not yet checkpointed then, so it is still here beside the open one.
    let before = journal_segments(dir.path());
    assert!(before.len() >= 2, "{before:?}");
    d.kill9();

    let d = TestDaemon::start(dir.path(), cfg);
    let thread = history(&d, "ckpt").await;
    assert_eq!(thread.len(), 300);
    for (i, m) in thread.iter().enumerate() {
        assert_eq!(m["client_id"], format!("ckpt{i}"));
    }
    let after = journal_segments(dir.path());
    assert_eq!(
        after.len(),
        1,
        "startup retired the checkpointed segments: {after:?}"
    );
    assert!(
        d.log().contains("retired checkpointed segment"),
        "{}",
        d.log()
    );
}

/// An idle daemon commits and checkpoints once after the last message, then stays silent.
#[tokio::test]
async fn an_idle_store_stops_committing_and_checkpointing() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = "[store]\ncommit_interval_ms = 50\ncheckpoint_interval_secs = 1\n";
    let d = TestDaemon::start(dir.path(), cfg);
    send_n(&d, "idle", 5, 10).await;
    let settled = wait_for_metrics(&d, "the last checkpoint", |m| {
        m["kefud_store_checkpointed_lsn"] >= m["kefud_journal_durable_lsn"]
    })
    .await;
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    let later = metrics(&d).await;
    for name in [
        "kefud_store_commits_total",
        "kefud_store_checkpoints_total",
        "kefud_journal_fsyncs_total",
    ] {
        assert_eq!(settled[name], later[name], "{name} moved while idle");
    }
}

/// A client sends more messages than the dispatcher remembers client ids for, faster than the
/// store commits (its interval is long here), then resends its first: still stored once.
#[tokio::test]
async fn a_resend_older_than_the_ring_is_stored_once_while_the_store_lags() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = "[store]\ncommit_interval_ms = 60000\n[conversations]\nrecent_client_ids = 4\n[limits]\nmessages_per_second = 100000\nburst = 100000\n";
    let d = TestDaemon::start(dir.path(), cfg);
    let mut ws = connect(&d.ws("/ws/visitor?visitor_id=lag")).await;
    next_of_type(&mut ws, "welcome", 5).await;
    let mut ids = Vec::new();
    for i in 0..20 {
        ids.push(
            send_for_ack(&mut ws, &format!("c{i}"), &format!("m{i}"))
                .await
                .unwrap(),
        );
    }
    for i in [0, 3, 10] {
        let again = send_for_ack(&mut ws, &format!("c{i}"), "resent")
            .await
            .unwrap();
        assert_eq!(again, ids[i], "c{i} is the message stored first");
    }
    drop(ws);
    let thread = history(&d, "lag").await;
    assert_eq!(thread.len(), 20);
}

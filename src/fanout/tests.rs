//! Unit tests of `fanout`.

use super::*;
use crate::model::{bounded_id, Sender};
use crate::op::MessageAdded;

fn visitor(id: &str) -> Audience {
    Audience::Visitor(Arc::new(identity(id)))
}

fn identity(id: &str) -> Identity {
    Identity {
        channel: bounded_id("web").unwrap(),
        external_id: bounded_id(id).unwrap(),
    }
}

fn entry(lsn: Lsn, to: &str) -> Entry {
    Entry {
        lsn,
        op: Op::MessageAdded(MessageAdded {
            conversation: 1,
            contact: 1,
            sender: Sender::Visitor,
            agent: None,
            client_id: None,
            text: "hello".into(),
            at_ms: 0,
            attachment: None,
            via: None,
        }),
        audience: Some(Arc::from(vec![identity(to)])),
        glue: false,
    }
}

fn subscribe(f: &mut Fanout, audience: Audience, cap: usize) -> (Live, Lsn) {
    let (feed, live) = subscription(cap);
    let (wtx, mut wrx) = oneshot::channel();
    f.add(Subscribe {
        audience,
        feed,
        watermark: wtx,
    });
    (live, wrx.try_recv().unwrap())
}

/// The zero-copy claim: every subscriber of a record gets the same bytes, not a copy.
#[test]
fn one_encoding_is_shared_by_every_subscriber() {
    let (store, _store_rx) = mpsc::channel(4);
    let (mut f, _, _, stats) = Fanout::new(0, store);
    let mut tabs: Vec<_> = (0..3)
        .map(|_| subscribe(&mut f, visitor("v1"), 8).0)
        .collect();
    let mut agents: Vec<_> = (0..2)
        .map(|_| subscribe(&mut f, Audience::Agents, 8).0)
        .collect();
    let (mut other, _) = subscribe(&mut f, visitor("v2"), 8);
    f.deliver(&[entry(5, "v1")]);
    let tab_ptrs: Vec<_> = tabs
        .iter_mut()
        .map(|rx| rx.try_recv().unwrap().1.as_str().as_ptr())
        .collect();
    assert!(
        tab_ptrs.windows(2).all(|w| w[0] == w[1]),
        "visitor tabs share one buffer"
    );
    let agent_ptrs: Vec<_> = agents
        .iter_mut()
        .map(|rx| rx.try_recv().unwrap().1.as_str().as_ptr())
        .collect();
    assert!(
        agent_ptrs.windows(2).all(|w| w[0] == w[1]),
        "agents share one buffer"
    );
    assert!(other.try_recv().is_err(), "another visitor sees nothing");
    assert_eq!(stats.delivered.load(Ordering::Relaxed), 5);
}

#[test]
fn watermark_and_a_full_queue_drops_only_that_subscriber() {
    let (store, _store_rx) = mpsc::channel(4);
    let (mut f, _, _, stats) = Fanout::new(7, store);
    let (mut slow, w) = subscribe(&mut f, visitor("v1"), 1);
    assert_eq!(w, 7, "a new subscriber learns the last fanned-out LSN");
    let (mut fast, _) = subscribe(&mut f, visitor("v1"), 8);
    f.deliver(&[entry(8, "v1"), entry(9, "v1")]);
    assert_eq!(slow.try_recv().unwrap().0, 8);
    assert!(
        matches!(slow.try_recv(), Err(TryRecvError::Disconnected)),
        "dropped, not blocked"
    );
    assert_eq!(
        (fast.try_recv().unwrap().0, fast.try_recv().unwrap().0),
        (8, 9)
    );
    assert_eq!(stats.lagged.load(Ordering::Relaxed), 1);
    let (_, w) = subscribe(&mut f, Audience::Agents, 8);
    assert_eq!(w, 9);
}

/// A stream of visitors who connect once and leave: the table of subscribers stays near
/// its live size without the timer (which a busy fan-out never gets to).
#[test]
fn subscribers_that_left_are_swept_as_the_table_grows() {
    let (store, _store_rx) = mpsc::channel(4);
    let (mut f, _, _, _) = Fanout::new(0, store);
    let (_stays, _) = subscribe(&mut f, visitor("stays"), 8);
    for i in 0..20_000 {
        let (gone, _) = subscribe(&mut f, visitor(&format!("v{i}")), 8);
        drop(gone);
        assert!(
            f.visitors.len() <= 2 * 1024 + 2,
            "{} at {i}",
            f.visitors.len()
        );
    }
    f.sweep();
    assert_eq!(f.visitors.len(), 1);
}

fn frame(lsn: Lsn) -> Frame {
    (lsn, Utf8Bytes::from(format!("f{lsn}")))
}

/// Counts wake-ups, to see that a push wakes the connection waiting on its queue.
struct CountWaker(AtomicU64);

impl std::task::Wake for CountWaker {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

#[test]
fn a_subscription_delivers_in_order_and_refuses_beyond_its_capacity() {
    let (feed, mut live) = subscription(3);
    for lsn in 1..=3 {
        assert_eq!(feed.push(frame(lsn)), Pushed::Queued);
    }
    assert_eq!(
        feed.push(frame(4)),
        Pushed::Full,
        "a full queue takes nothing"
    );
    assert_eq!(live.try_recv().unwrap().0, 1);
    assert_eq!(
        feed.push(frame(4)),
        Pushed::Queued,
        "room again after a read"
    );
    let got: Vec<_> = std::iter::from_fn(|| live.try_recv().ok())
        .map(|(lsn, text)| (lsn, text.as_str().to_owned()))
        .collect();
    assert_eq!(
        got,
        [2, 3, 4].map(|l| (l, format!("f{l}"))),
        "nothing lost, nothing reordered"
    );
    assert_eq!(live.try_recv(), Err(TryRecvError::Empty));
}

#[test]
fn a_dropped_feed_ends_after_its_queued_frames() {
    let (feed, mut live) = subscription(4);
    feed.push(frame(1));
    feed.push(frame(2));
    drop(feed);
    assert_eq!(live.try_recv().unwrap().0, 1);
    assert_eq!(live.try_recv().unwrap().0, 2);
    assert_eq!(live.try_recv(), Err(TryRecvError::Disconnected));
}

#[test]
fn a_dropped_connection_is_seen_by_the_feed_and_frees_its_queue() {
    let (feed, live) = subscription(4);
    feed.push(frame(1));
    assert!(!feed.is_gone());
    drop(live);
    assert!(feed.is_gone());
    assert!(feed.0.lock().frames.is_empty());
    assert_eq!(feed.push(frame(2)), Pushed::Gone);
}

#[test]
fn a_push_wakes_the_waiting_connection() {
    let (feed, mut live) = subscription(4);
    let count = Arc::new(CountWaker(AtomicU64::new(0)));
    let waker = std::task::Waker::from(Arc::clone(&count));
    let mut cx = Context::from_waker(&waker);
    assert!(live.poll_recv(&mut cx).is_pending());
    assert_eq!(count.0.load(Ordering::SeqCst), 0);
    feed.push(frame(7));
    assert_eq!(count.0.load(Ordering::SeqCst), 1, "woken by the push");
    assert!(matches!(live.poll_recv(&mut cx), Poll::Ready(Some((7, _)))));
    assert!(live.poll_recv(&mut cx).is_pending());
    drop(feed);
    assert_eq!(count.0.load(Ordering::SeqCst), 2, "woken by the end");
    assert!(matches!(live.poll_recv(&mut cx), Poll::Ready(None)));
}

/// A lagging subscriber: the record that finds its queue full drops it (counted), it reads
/// every frame queued before that, then the end; the ephemeral frames never drop it.
#[test]
fn a_full_queue_drops_the_subscriber_after_its_queued_frames() {
    let (store, _store_rx) = mpsc::channel(4);
    let (mut f, _, _, stats) = Fanout::new(0, store);
    let (mut slow, _) = subscribe(&mut f, visitor("v1"), 2);
    f.deliver_ephemeral(Ephemeral::Visitors(
        Arc::from(vec![identity("v1")]),
        "typing".into(),
    ));
    f.deliver(&[entry(1, "v1")]);
    f.deliver_ephemeral(Ephemeral::Visitors(
        Arc::from(vec![identity("v1")]),
        "typing".into(),
    ));
    assert_eq!(
        stats.lagged.load(Ordering::Relaxed),
        0,
        "typing is only dropped"
    );
    f.deliver(&[entry(2, "v1"), entry(3, "v1")]);
    assert_eq!(stats.lagged.load(Ordering::Relaxed), 1);
    assert_eq!(f.visitors.get(&identity("v1")).map_or(0, |s| s.len()), 0);
    assert_eq!(slow.try_recv().unwrap().0, 0);
    assert_eq!(slow.try_recv().unwrap().0, 1);
    assert_eq!(slow.try_recv(), Err(TryRecvError::Disconnected));
}

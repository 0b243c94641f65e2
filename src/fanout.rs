//! Post-commit fan-out: live delivery of committed records, then hand-off to the store.
//!
//! Ownership: one task owns the subscriber table (visitor connections by identity, agent
//! connections) and sees every committed batch, in LSN order, straight from the journal
//! writer. Each record is encoded to JSON once (into `wire`'s per-thread arena); every
//! subscriber gets a clone of the same reference-counted bytes (no per-subscriber encoding or
//! copy).
//!
//! Invariants:
//! - A subscription is answered with the watermark `W`, the last LSN fanned out before it
//!   joined; it then receives exactly the records with LSN > W. A resuming client fills the
//!   gap (after, W] from the store once the store has applied W. Nothing is missed or doubled.
//! - Subscriber queues are bounded. A subscriber whose queue is full is dropped, counted and
//!   told so (its connection closes with "reconnect with after=N"); it never stalls the others
//!   and nothing is buffered without bound.
//! - The store receives each batch after it is fanned out, over a bounded channel: a slow store
//!   slows the journal writer (backpressure), it does not grow memory.
//! - Ephemeral frames (typing indicators) are not journaled: they carry LSN 0 (connections keep
//!   their resume point), are dropped rather than queued when a subscriber or the channel is
//!   full, and never cost a subscriber its connection.
//!
//! A subscription is a [`Feed`] (the fan-out's end) and a [`Live`] (the connection's end)
//! sharing one small queue: a mutex-guarded `VecDeque` of at most `capacity` frames (no
//! allocation while it has never held a frame) and a waker. It costs an idle connection about
//! 100 bytes, where a channel cost it about 1.8 KiB. The queue keeps channel semantics: when
//! either end is dropped the other sees it; the connection still reads every frame queued
//! before the fan-out let go of its end, then the end of the feed.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::extract::ws::Utf8Bytes;
use futures_util::task::AtomicWaker;
use smallvec::SmallVec;
use tokio::sync::{mpsc, oneshot};

use crate::model::{Identity, Lsn, Sender};
use crate::op::{Entry, MessageAdded, Op};
use crate::wire;

/// A frame for one subscriber, with the LSN it carries (so a dropped subscriber knows where to
/// resume).
pub type Frame = (Lsn, Utf8Bytes);

pub enum Audience {
    /// Shared with the connection: the table's key costs a pointer.
    Visitor(Arc<Identity>),
    Agents,
}

/// A frame that is not a record: delivered now or never.
pub enum Ephemeral {
    /// To the live connections of these identities (a contact's).
    Visitors(Arc<[Identity]>, Utf8Bytes),
    Agents(Utf8Bytes),
}

/// What the fan-out task reads besides committed records: new subscribers, ephemeral frames.
pub type FanoutInputs = (mpsc::Receiver<Subscribe>, mpsc::Receiver<Ephemeral>);

pub struct Subscribe {
    pub audience: Audience,
    pub feed: Feed,
    pub watermark: oneshot::Sender<Lsn>,
}

/// A new subscription's two ends; `capacity` bounds the frames queued for the connection.
pub fn subscription(capacity: usize) -> (Feed, Live) {
    let shared = Arc::new(Shared {
        queue: Mutex::new(Queue {
            frames: VecDeque::new(),
            feed_gone: false,
            live_gone: false,
        }),
        capacity,
        waker: AtomicWaker::new(),
    });
    (Feed(Arc::clone(&shared)), Live(shared))
}

struct Shared {
    queue: Mutex<Queue>,
    capacity: usize,
    /// The connection task waiting for a frame (or for the feed's end).
    waker: AtomicWaker,
}

struct Queue {
    frames: VecDeque<Frame>,
    /// The fan-out dropped its end (the subscriber lagged, or the fan-out stopped): the
    /// connection reads what is queued, then the end.
    feed_gone: bool,
    /// The connection dropped its end: the fan-out forgets the subscription.
    live_gone: bool,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Queue> {
        // Nothing panics while the lock is held, so a poisoned queue is still consistent.
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// What [`Feed::push`] did with a frame.
#[derive(Debug, PartialEq, Eq)]
enum Pushed {
    Queued,
    /// The queue holds `capacity` frames; the frame was not queued.
    Full,
    /// The connection has gone; the frame was not queued.
    Gone,
}

/// The subscriptions of one identity (most have one connection: kept inline), or the agents'.
type Subscribers = SmallVec<[Feed; 1]>;

/// The fan-out's end of a subscription. Dropping it ends the feed (after the queued frames).
pub struct Feed(Arc<Shared>);

impl Feed {
    fn push(&self, frame: Frame) -> Pushed {
        {
            let mut q = self.0.lock();
            if q.live_gone {
                return Pushed::Gone;
            }
            if q.frames.len() >= self.0.capacity {
                return Pushed::Full;
            }
            q.frames.push_back(frame);
        }
        self.0.waker.wake();
        Pushed::Queued
    }

    fn is_gone(&self) -> bool {
        self.0.lock().live_gone
    }
}

impl Drop for Feed {
    fn drop(&mut self) {
        self.0.lock().feed_gone = true;
        self.0.waker.wake();
    }
}

/// Why [`Live::try_recv`] returned no frame.
#[derive(Debug, PartialEq, Eq)]
pub enum TryRecvError {
    Empty,
    /// The feed has ended and every queued frame was read.
    Disconnected,
}

/// A queue that held more frames than this at once gives its memory back once drained.
const KEPT_QUEUE_CAPACITY: usize = 16;

/// The connection's end of a subscription: the frames for it, in LSN order.
pub struct Live(Arc<Shared>);

impl Live {
    /// The next queued frame, without waiting.
    ///
    /// # Errors
    /// [`TryRecvError::Empty`] when none is queued, [`TryRecvError::Disconnected`] once the
    /// feed has ended and its last frame was read.
    pub fn try_recv(&mut self) -> Result<Frame, TryRecvError> {
        let mut q = self.0.lock();
        match q.frames.pop_front() {
            Some(frame) => {
                if q.frames.is_empty() && q.frames.capacity() > KEPT_QUEUE_CAPACITY {
                    q.frames = VecDeque::new();
                }
                Ok(frame)
            }
            None if q.feed_gone => Err(TryRecvError::Disconnected),
            None => Err(TryRecvError::Empty),
        }
    }

    /// The next frame, or `None` once the feed has ended and every queued frame was read.
    pub fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<Frame>> {
        match self.try_recv() {
            Ok(frame) => return Poll::Ready(Some(frame)),
            Err(TryRecvError::Disconnected) => return Poll::Ready(None),
            Err(TryRecvError::Empty) => {}
        }
        // Registered before looking again, so a frame pushed in between wakes this task.
        self.0.waker.register(cx.waker());
        match self.try_recv() {
            Ok(frame) => Poll::Ready(Some(frame)),
            Err(TryRecvError::Disconnected) => Poll::Ready(None),
            Err(TryRecvError::Empty) => Poll::Pending,
        }
    }

    /// As [`Live::poll_recv`]. Cancel-safe: a frame is taken only when it is returned.
    pub async fn recv(&mut self) -> Option<Frame> {
        std::future::poll_fn(|cx| self.poll_recv(cx)).await
    }
}

impl Drop for Live {
    fn drop(&mut self) {
        let mut q = self.0.lock();
        q.live_gone = true;
        q.frames = VecDeque::new();
    }
}

#[derive(Default, Debug)]
pub struct FanoutStats {
    /// Subscribers dropped because their queue was full.
    pub lagged: AtomicU64,
    /// Frames delivered to subscribers.
    pub delivered: AtomicU64,
}

#[derive(Clone)]
pub struct FanoutHandle {
    tx: mpsc::Sender<Subscribe>,
    ephemeral: mpsc::Sender<Ephemeral>,
}

impl FanoutHandle {
    /// Joins the live feed; returns the watermark (see the module invariants), or `None` if
    /// the daemon is stopping.
    pub async fn subscribe(&self, audience: Audience, feed: Feed) -> Option<Lsn> {
        let (wtx, wrx) = oneshot::channel();
        self.tx
            .send(Subscribe {
                audience,
                feed,
                watermark: wtx,
            })
            .await
            .ok()?;
        wrx.await.ok()
    }

    /// Hands over an ephemeral frame; dropped if the fan-out is busy (a typing indicator is
    /// worth nothing late).
    pub fn notify(&self, frame: Ephemeral) {
        let _ = self.ephemeral.try_send(frame);
    }
}

pub struct Fanout {
    visitors: HashMap<Arc<Identity>, Subscribers>,
    agents: Subscribers,
    /// Last LSN fanned out: the watermark new subscribers get.
    last_lsn: Lsn,
    store: mpsc::Sender<Vec<Entry>>,
    stats: Arc<FanoutStats>,
    /// Subscriptions added since the table was last swept of closed connections, and how
    /// many identities it held right after that sweep.
    added_since_sweep: usize,
    live_at_sweep: usize,
    /// Cluster mode: this node's stamped operations go to the cluster link once durable.
    cluster: Option<ClusterTap>,
}

/// Where this node's committed cluster operations go (`crate::cluster::link` publishes them).
pub struct ClusterTap {
    pub node: u64,
    pub ops: mpsc::Sender<Vec<crate::cluster::wire::Operation>>,
    /// The last seq of this node that is durable: never dropped, unlike `ops`.
    pub durable_seq: tokio::sync::watch::Sender<u64>,
}

impl Fanout {
    /// Hands this node's cluster operations, batch by batch, to the cluster link. A batch the
    /// link has no room for is dropped: the other boxes ask for what they miss (anti-entropy).
    pub fn tap_cluster(&mut self, tap: ClusterTap) {
        self.cluster = Some(tap);
    }

    fn publish_cluster_ops(&self, batch: &[Entry]) {
        let Some(tap) = &self.cluster else { return };
        let ops: Vec<_> = batch
            .iter()
            .filter_map(|e| match &e.op {
                Op::Replicated(r) if r.origin == tap.node => {
                    Some(crate::cluster::wire::Operation {
                        dot: crate::cluster::vector::Dot {
                            origin: r.origin,
                            seq: r.seq,
                        },
                        hlc: crate::cluster::hlc::Timestamp(r.hlc),
                        body: r.body.clone(),
                    })
                }
                _ => None,
            })
            .collect();
        if let Some(last) = ops.last() {
            let seq = last.dot.seq;
            tap.durable_seq.send_if_modified(|s| {
                let newer = seq > *s;
                *s = (*s).max(seq);
                newer
            });
            let _ = tap.ops.try_send(ops);
        }
    }

    pub fn new(
        last_lsn: Lsn,
        store: mpsc::Sender<Vec<Entry>>,
    ) -> (Self, FanoutHandle, FanoutInputs, Arc<FanoutStats>) {
        let (tx, rx) = mpsc::channel(256);
        let (ephemeral, ephemeral_rx) = mpsc::channel(256);
        let stats = Arc::new(FanoutStats::default());
        (
            Fanout {
                visitors: HashMap::new(),
                agents: SmallVec::new(),
                last_lsn,
                store,
                stats: Arc::clone(&stats),
                added_since_sweep: 0,
                live_at_sweep: 0,
                cluster: None,
            },
            FanoutHandle { tx, ephemeral },
            (rx, ephemeral_rx),
            stats,
        )
    }

    /// Runs until the journal writer closes the committed stream; subscriptions still arriving
    /// after that are simply dropped.
    pub async fn run(
        mut self,
        mut committed: mpsc::Receiver<Vec<Entry>>,
        (mut subscribe, mut ephemeral): FanoutInputs,
    ) {
        let mut sweep = tokio::time::interval(Duration::from_secs(10));
        loop {
            // Cancel safety: `mpsc::Receiver::recv` and `Interval::tick` are cancel-safe, so a
            // branch that loses the race loses nothing.
            tokio::select! {
                biased;
                batch = committed.recv() => {
                    let Some(batch) = batch else { break };
                    self.deliver(&batch);
                    self.publish_cluster_ops(&batch);
                    if self.store.send(batch).await.is_err() {
                        tracing::error!("store applier is gone; committed records will be replayed at restart");
                    }
                }
                Some(sub) = subscribe.recv() => self.add(sub),
                Some(frame) = ephemeral.recv() => self.deliver_ephemeral(frame),
                _ = sweep.tick() => self.sweep(),
            }
        }
        tracing::debug!(last_lsn = self.last_lsn, "fan-out stopped");
    }

    fn add(&mut self, sub: Subscribe) {
        // Swept as it grows, not only on the timer: under sustained load the committed branch
        // always wins the biased select, and a closed subscriber's feed keeps its queue's
        // memory alive. Sweeping after as many additions as the table held live at the last
        // sweep keeps it within about twice its live size at an amortised constant cost per
        // subscription.
        self.added_since_sweep += 1;
        if self.added_since_sweep > self.live_at_sweep.max(1024) {
            self.sweep();
        }
        match sub.audience {
            Audience::Visitor(identity) => {
                self.visitors.entry(identity).or_default().push(sub.feed)
            }
            Audience::Agents => self.agents.push(sub.feed),
        }
        let _ = sub.watermark.send(self.last_lsn);
    }

    fn deliver(&mut self, batch: &[Entry]) {
        for entry in batch {
            match &entry.op {
                Op::MessageAdded(m) => {
                    if let Some(audience) = &entry.audience {
                        let frame: Utf8Bytes = wire::visitor_message(
                            entry.lsn,
                            m.sender.as_str(),
                            &m.text,
                            m.client_id.as_deref(),
                            m.at_ms,
                            m.attachment.as_deref(),
                        );
                        for identity in audience.iter() {
                            if let Some(subs) = self.visitors.get_mut(identity) {
                                send_all(subs, entry.lsn, &frame, &self.stats);
                            }
                        }
                    }
                    if !self.agents.is_empty() {
                        let frame = agent_message_frame(entry.lsn, m);
                        send_all(&mut self.agents, entry.lsn, &frame, &self.stats);
                    }
                }
                Op::StatusChanged(s) => {
                    // Resolved: the customer's widget offers a rating. Not a message, so it
                    // carries LSN 0 and never moves a connection's resume point.
                    if let Some(audience) = &entry.audience {
                        let frame: Utf8Bytes = wire::resolved_for_visitor(s.conversation).into();
                        for identity in audience.iter() {
                            if let Some(subs) = self.visitors.get_mut(identity) {
                                send_all(subs, 0, &frame, &self.stats);
                            }
                        }
                    }
                    if !self.agents.is_empty() {
                        let frame: Utf8Bytes = wire::conversation_event(&wire::ConversationEvent {
                            r#type: "conversation",
                            seq: entry.lsn,
                            conversation_id: s.conversation,
                            from: s.from.as_str(),
                            to: s.to.as_str(),
                            assignee: s.assignee,
                            by: s.by,
                            at: s.at_ms,
                        });
                        send_all(&mut self.agents, entry.lsn, &frame, &self.stats);
                    }
                }
                Op::Delivered { messages, .. } if !self.agents.is_empty() => {
                    let frame: Utf8Bytes =
                        wire::delivery_event(entry.lsn, messages, "delivered", None);
                    send_all(&mut self.agents, entry.lsn, &frame, &self.stats);
                }
                Op::DeliveryFailed {
                    message,
                    dead,
                    error,
                    ..
                } if !self.agents.is_empty() => {
                    let state = if *dead { "dead" } else { "pending" };
                    let frame: Utf8Bytes =
                        wire::delivery_event(entry.lsn, &[*message], state, Some(error));
                    send_all(&mut self.agents, entry.lsn, &frame, &self.stats);
                }
                Op::ConversationLabeled {
                    conversation,
                    labels,
                    ..
                } if !self.agents.is_empty() => {
                    let frame = wire::labels_event(entry.lsn, *conversation, labels);
                    send_all(&mut self.agents, entry.lsn, &frame, &self.stats);
                }
                Op::ConversationHeld {
                    conversation,
                    holders,
                    ..
                } if !self.agents.is_empty() => {
                    let views = crate::store::holders::views_of(holders);
                    let frame = wire::holders_event(entry.lsn, *conversation, &views);
                    send_all(&mut self.agents, entry.lsn, &frame, &self.stats);
                }
                Op::ContactDetails { contact, name, .. } if !self.agents.is_empty() => {
                    let frame = wire::contact_event(entry.lsn, *contact, name);
                    send_all(&mut self.agents, entry.lsn, &frame, &self.stats);
                }
                Op::ConversationRated {
                    conversation,
                    score,
                    ..
                } if !self.agents.is_empty() => {
                    let frame = wire::rating_event(entry.lsn, *conversation, *score);
                    send_all(&mut self.agents, entry.lsn, &frame, &self.stats);
                }
                Op::ContactsLinked {
                    keep,
                    merged,
                    folded,
                    ..
                } if !self.agents.is_empty() => {
                    let frame: Utf8Bytes =
                        wire::contacts_linked_event(entry.lsn, *keep, *merged, *folded);
                    send_all(&mut self.agents, entry.lsn, &frame, &self.stats);
                }
                _ => {}
            }
            self.last_lsn = entry.lsn;
        }
    }

    fn deliver_ephemeral(&mut self, frame: Ephemeral) {
        // A full queue drops the frame, not the subscriber.
        let send = |subs: &[Feed], text: &Utf8Bytes| {
            for feed in subs {
                let _ = feed.push((0, text.clone()));
            }
        };
        match frame {
            Ephemeral::Visitors(identities, text) => {
                for identity in identities.iter() {
                    if let Some(subs) = self.visitors.get(identity) {
                        send(subs, &text);
                    }
                }
            }
            Ephemeral::Agents(text) => send(&self.agents, &text),
        }
    }

    /// Forgets subscribers whose connections have closed.
    fn sweep(&mut self) {
        self.added_since_sweep = 0;
        self.visitors.retain(|_, subs| {
            subs.retain(|feed| !feed.is_gone());
            !subs.is_empty()
        });
        self.agents.retain(|feed| !feed.is_gone());
        self.live_at_sweep = self.visitors.len();
    }
}

/// A customer's, agent's, bot's message or note as the agents' feed shows it.
fn agent_message_frame(lsn: Lsn, m: &MessageAdded) -> Utf8Bytes {
    wire::agent_message(wire::MessageView {
        id: lsn,
        conversation_id: m.conversation,
        contact_id: m.contact,
        sender: m.sender.as_str(),
        agent_id: m.agent,
        client_id: m.client_id.as_deref(),
        text: &m.text,
        created_at: m.at_ms,
        // Classified just after, by its own record; the thread API shows it.
        intent: None,
        intent_score: None,
        attachment: m.attachment.as_deref(),
        channel: m.via.as_ref().map(|v| v.channel.as_str()),
        delivery: m
            .via
            .as_ref()
            .filter(|v| {
                matches!(m.sender, Sender::Agent | Sender::Bot)
                    && v.channel != crate::model::WEB_CHANNEL
            })
            .map(|_| "pending"),
    })
}

/// Queues a record's frame for each subscriber; one whose queue is full is dropped (its
/// connection reads what it has, then closes with a resume point).
fn send_all(subs: &mut Subscribers, lsn: Lsn, frame: &Utf8Bytes, stats: &FanoutStats) {
    subs.retain(|feed| match feed.push((lsn, frame.clone())) {
        Pushed::Queued => {
            stats.delivered.fetch_add(1, Ordering::Relaxed);
            true
        }
        Pushed::Full => {
            stats.lagged.fetch_add(1, Ordering::Relaxed);
            tracing::info!(
                lsn,
                "fan-out: dropping a subscriber whose queue is full; it will resume"
            );
            false
        }
        Pushed::Gone => false,
    });
}

#[cfg(test)]
mod tests;

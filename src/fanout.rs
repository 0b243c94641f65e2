//! Post-commit fan-out: live delivery of committed records, then hand-off to the store.
//!
//! Ownership: one task owns the subscriber table (visitor connections by identity, agent
//! connections) and sees every committed batch, in LSN order, straight from the journal
//! writer. Each record is encoded to JSON once; every subscriber gets a clone of the same
//! reference-counted bytes (no per-subscriber encoding or copy).
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

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::Utf8Bytes;
use tokio::sync::{mpsc, oneshot};

use crate::model::{Identity, Lsn, Sender};
use crate::op::{Entry, Op};
use crate::wire;

/// A frame for one subscriber, with the LSN it carries (so a dropped subscriber knows where to
/// resume).
pub type Frame = (Lsn, Utf8Bytes);

pub enum Audience {
    Visitor(Identity),
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
    pub tx: mpsc::Sender<Frame>,
    pub watermark: oneshot::Sender<Lsn>,
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
    pub async fn subscribe(&self, audience: Audience, tx: mpsc::Sender<Frame>) -> Option<Lsn> {
        let (wtx, wrx) = oneshot::channel();
        self.tx
            .send(Subscribe {
                audience,
                tx,
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
    visitors: HashMap<Identity, Vec<mpsc::Sender<Frame>>>,
    agents: Vec<mpsc::Sender<Frame>>,
    /// Last LSN fanned out: the watermark new subscribers get.
    last_lsn: Lsn,
    store: mpsc::Sender<Vec<Entry>>,
    stats: Arc<FanoutStats>,
    /// Subscriptions added since the table was last swept of closed connections, and how
    /// many identities it held right after that sweep.
    added_since_sweep: usize,
    live_at_sweep: usize,
}

impl Fanout {
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
                agents: Vec::new(),
                last_lsn,
                store,
                stats: Arc::clone(&stats),
                added_since_sweep: 0,
                live_at_sweep: 0,
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
        // always wins the biased select, and a closed subscriber's sender keeps its channel's
        // buffer alive. Sweeping after as many additions as the table held live at the last
        // sweep keeps it within about twice its live size at an amortised constant cost per
        // subscription.
        self.added_since_sweep += 1;
        if self.added_since_sweep > self.live_at_sweep.max(1024) {
            self.sweep();
        }
        match sub.audience {
            Audience::Visitor(identity) => self.visitors.entry(identity).or_default().push(sub.tx),
            Audience::Agents => self.agents.push(sub.tx),
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
                        )
                        .into();
                        for identity in audience.iter() {
                            if let Some(subs) = self.visitors.get_mut(identity) {
                                send_all(subs, entry.lsn, &frame, &self.stats);
                            }
                        }
                    }
                    if !self.agents.is_empty() {
                        let frame: Utf8Bytes = wire::agent_message(wire::MessageView {
                            id: entry.lsn,
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
                        .into();
                        send_all(&mut self.agents, entry.lsn, &frame, &self.stats);
                    }
                }
                Op::StatusChanged(s) if !self.agents.is_empty() => {
                    let frame: Utf8Bytes = wire::conversation_event(&wire::ConversationEvent {
                        r#type: "conversation",
                        seq: entry.lsn,
                        conversation_id: s.conversation,
                        from: s.from.as_str(),
                        to: s.to.as_str(),
                        assignee: s.assignee,
                        by: s.by,
                        at: s.at_ms,
                    })
                    .into();
                    send_all(&mut self.agents, entry.lsn, &frame, &self.stats);
                }
                Op::Delivered { messages, .. } if !self.agents.is_empty() => {
                    let frame: Utf8Bytes =
                        wire::delivery_event(entry.lsn, messages, "delivered", None).into();
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
                        wire::delivery_event(entry.lsn, &[*message], state, Some(error)).into();
                    send_all(&mut self.agents, entry.lsn, &frame, &self.stats);
                }
                Op::ContactsLinked {
                    keep,
                    merged,
                    folded,
                    ..
                } if !self.agents.is_empty() => {
                    let frame: Utf8Bytes =
                        wire::contacts_linked_event(entry.lsn, *keep, *merged, *folded).into();
                    send_all(&mut self.agents, entry.lsn, &frame, &self.stats);
                }
                _ => {}
            }
            self.last_lsn = entry.lsn;
        }
    }

    fn deliver_ephemeral(&mut self, frame: Ephemeral) {
        let send = |subs: &[mpsc::Sender<Frame>], text: &Utf8Bytes| {
            for tx in subs {
                let _ = tx.try_send((0, text.clone()));
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
            subs.retain(|tx| !tx.is_closed());
            !subs.is_empty()
        });
        self.agents.retain(|tx| !tx.is_closed());
        self.live_at_sweep = self.visitors.len();
    }
}

fn send_all(subs: &mut Vec<mpsc::Sender<Frame>>, lsn: Lsn, frame: &Utf8Bytes, stats: &FanoutStats) {
    subs.retain(|tx| match tx.try_send((lsn, frame.clone())) {
        Ok(()) => {
            stats.delivered.fetch_add(1, Ordering::Relaxed);
            true
        }
        Err(mpsc::error::TrySendError::Full(_)) => {
            stats.lagged.fetch_add(1, Ordering::Relaxed);
            tracing::info!(
                lsn,
                "fan-out: dropping a subscriber whose queue is full; it will resume"
            );
            false
        }
        Err(mpsc::error::TrySendError::Closed(_)) => false,
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{bounded_id, Sender};
    use crate::op::MessageAdded;

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
        }
    }

    fn subscribe(f: &mut Fanout, audience: Audience, cap: usize) -> (mpsc::Receiver<Frame>, Lsn) {
        let (tx, rx) = mpsc::channel(cap);
        let (wtx, mut wrx) = oneshot::channel();
        f.add(Subscribe {
            audience,
            tx,
            watermark: wtx,
        });
        (rx, wrx.try_recv().unwrap())
    }

    /// The zero-copy claim: every subscriber of a record gets the same bytes, not a copy.
    #[test]
    fn one_encoding_is_shared_by_every_subscriber() {
        let (store, _store_rx) = mpsc::channel(4);
        let (mut f, _, _, stats) = Fanout::new(0, store);
        let mut tabs: Vec<_> = (0..3)
            .map(|_| subscribe(&mut f, Audience::Visitor(identity("v1")), 8).0)
            .collect();
        let mut agents: Vec<_> = (0..2)
            .map(|_| subscribe(&mut f, Audience::Agents, 8).0)
            .collect();
        let (mut other, _) = subscribe(&mut f, Audience::Visitor(identity("v2")), 8);
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
        let (mut slow, w) = subscribe(&mut f, Audience::Visitor(identity("v1")), 1);
        assert_eq!(w, 7, "a new subscriber learns the last fanned-out LSN");
        let (mut fast, _) = subscribe(&mut f, Audience::Visitor(identity("v1")), 8);
        f.deliver(&[entry(8, "v1"), entry(9, "v1")]);
        assert_eq!(slow.try_recv().unwrap().0, 8);
        assert!(
            matches!(
                slow.try_recv(),
                Err(mpsc::error::TryRecvError::Disconnected)
            ),
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
        let (_stays, _) = subscribe(&mut f, Audience::Visitor(identity("stays")), 8);
        for i in 0..20_000 {
            let (gone, _) = subscribe(&mut f, Audience::Visitor(identity(&format!("v{i}"))), 8);
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
}

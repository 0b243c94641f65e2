//! The cluster link: this box's one MQTT connection to the cluster's topics, and the task that
//! keeps this box and the others converging.
//!
//! Topics, under `kefu/v1/{cluster}/`: `ops/{origin}` (batches of an origin's operations, QoS
//! 1: published by the origin after fsync, and by any box answering a request), `vv/{node}`
//! (a box's applied vector, retained, every second), `req/{node}` (requests for ranges, to
//! the box that holds them), `presence/{node}` (retained `online`, and `offline` as the
//! connection's last will), `agents/{node}` (the box's agents, retained: `presence.rs`).
//! Every payload but presence is a signed envelope (`wire.rs`).
//!
//! One task owns the state (the inbox that orders each origin's operations, the peers'
//! vectors, the ranges asked for) and does one thing at a time; the MQTT event loop runs
//! beside it and only forwards what arrives, so keep-alives never wait for the disk.
//!
//! Group commit both ways: the task takes every arrival already queued (up to
//! [`DRAIN_MESSAGES`]) before it applies, so a burst's envelopes share one dispatcher command
//! and one fsync here instead of queueing behind one fsync each; likewise this node's batches
//! queued while it waited go out in one envelope.
//!
//! Acknowledgements are manual: an arrival's PUBACK goes to the broker once what it carried
//! is applied and fsync'd here (or at once if it carried nothing to apply now: a duplicate, a
//! presence or vector, or operations held in memory beyond a gap, which after a crash come
//! back through the vectors and a request, not from the broker), in arrival order; a box
//! killed before that gets it again from its broker's session and drops it by dot.
//! `fault.rs` has test-only crash points at the two moments a kill must lose nothing: before
//! this node's operations are published, and before the PUBACK of applied ones.
//!
//! Recovery needs nothing from the broker but delivery: an operation lost anywhere (a broker
//! restarted without persistence, a box killed between fsync and publish, a full queue) shows
//! as a gap in the inbox or as a peer's vector ahead of this box's, and is asked for again
//! until it arrives. Invariant: the vector this box publishes covers only operations its
//! journal holds durably, so no box ever waits on this one for something it cannot serve.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rumqttc::{AsyncClient, Event, EventLoop, LastWill, MqttOptions, Packet, Publish, QoS};
use tokio::sync::{mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;

use super::catchup::{Asked, PeerState, ANSWER_OPS};
use super::fault::{self, Point};
use super::hlc::Timestamp;
use super::node;
use super::presence::Roster;
use super::stats::{ClusterStats, PeerView};
use super::topics::{Topic, Topics};
use super::vector::{Dot, Inbox, NodeId, Offer, VersionVector};
use super::wire::{Message, OpenError, Operation, RosterAgent, Signer};
use crate::dispatch::Command;
use crate::model::Lsn;
use crate::store::pool::ReadPool;

mod batches;
mod peers;

use batches::publish_batches;

/// Operations held out of order, waiting for a gap to be filled, across all origins.
const MAX_BUFFERED: usize = 20_000;
/// How often the vector is published and gaps are looked for.
const TICK: Duration = Duration::from_secs(1);
/// A peer not heard from for this long counts as unreachable (it publishes every second).
const PEER_SILENT: Duration = Duration::from_secs(5);
/// Publishes waiting for the event loop; beyond, arrivals are dropped (and asked for again).
const INCOMING_QUEUE: usize = 1024;
/// Arrivals taken together into one apply (the broker sends at most its in-flight window,
/// mosquitto's `max_inflight_messages`, 20 by default, before their PUBACKs).
const DRAIN_MESSAGES: usize = 64;

/// What the link needs of the rest of the daemon.
pub struct Pipeline {
    pub commands: mpsc::Sender<Command>,
    pub durable: watch::Receiver<Lsn>,
    pub reads: ReadPool,
    /// The store's progress: answers are read from the store, which commits on a cadence.
    pub store: Arc<crate::store::progress::Progress>,
    /// This node's committed operations (the fan-out's cluster tap; dropped when the link
    /// falls behind, then asked for by the others).
    pub own_ops: mpsc::Receiver<Vec<Operation>>,
    /// The last of this node's seqs that is durable (never dropped).
    pub own_durable_seq: watch::Receiver<u64>,
}

struct Peer {
    /// What the dispatcher was last told of it: online or not (`None`: nothing yet).
    told: Option<bool>,
    vector: VersionVector,
    /// Its agents, as it last published them.
    agents: Vec<RosterAgent>,
    last_seen_ms: i64,
    online: bool,
    skew_ms: i64,
}

/// The link's state, owned by its one task.
struct Link {
    node: NodeId,
    topics: Topics,
    signer: Signer,
    client: AsyncClient,
    pipeline: Pipeline,
    stats: Arc<ClusterStats>,
    inbox: Inbox<(Timestamp, Vec<u8>)>,
    /// What this box's journal holds durably, every origin (its own included).
    durable: VersionVector,
    peers: HashMap<NodeId, Peer>,
    /// The requests in flight.
    asked: Asked,
    /// This box's agents, as last published.
    roster: Roster,
    connected: Arc<std::sync::atomic::AtomicBool>,
}

/// Starts the link: its MQTT connection and its task. `applied` is how far the store has
/// applied each origin at start (the whole journal: recovery caught it up).
#[allow(clippy::too_many_arguments)]
pub fn spawn(
    node: NodeId,
    cluster: &str,
    secret: &str,
    mut options: MqttOptions,
    applied: VersionVector,
    pipeline: Pipeline,
    stats: Arc<ClusterStats>,
    stop: CancellationToken,
    tasks: &tokio_util::task::TaskTracker,
) {
    let topics = Topics::new(cluster);
    options.set_manual_acks(true);
    options.set_last_will(LastWill::new(
        topics.of("presence", node),
        "offline",
        QoS::AtLeastOnce,
        true,
    ));
    let (client, mut events) = AsyncClient::new(options, 256);
    // Small batches, each waited for by another box: no Nagle delay.
    let mut network = events.network_options();
    network.set_tcp_nodelay(true);
    events.set_network_options(network);
    let (incoming_tx, incoming_rx) = mpsc::channel(INCOMING_QUEUE);
    let connected = Arc::new(std::sync::atomic::AtomicBool::new(false));
    {
        let mut view = stats.lock();
        view.node = node::display(node);
        view.cluster = cluster.to_string();
    }
    tasks.spawn(poll_events(
        events,
        client.clone(),
        topics.clone(),
        node,
        incoming_tx,
        Arc::clone(&connected),
        Arc::clone(&stats),
        stop.clone(),
    ));
    let link = Link {
        node,
        topics,
        signer: Signer::new(cluster, secret),
        client,
        pipeline,
        stats,
        inbox: Inbox::new(applied.clone(), MAX_BUFFERED),
        durable: applied,
        peers: HashMap::new(),
        asked: Asked::default(),
        roster: Roster::default(),
        connected,
    };
    tasks.spawn(link.run(incoming_rx, stop));
}

/// The MQTT event loop: (re)connects, subscribes, announces presence, and forwards arrivals.
#[allow(clippy::too_many_arguments)]
async fn poll_events(
    mut events: EventLoop,
    client: AsyncClient,
    topics: Topics,
    node: NodeId,
    incoming: mpsc::Sender<Publish>,
    connected: Arc<std::sync::atomic::AtomicBool>,
    stats: Arc<ClusterStats>,
    stop: CancellationToken,
) {
    // Acknowledgements of dropped arrivals that found the client's request queue full: tried
    // again before each event (each one unsent holds a slot of the broker's in-flight window;
    // the broker holds back at most that window, so this stays small).
    let mut owed: Vec<Publish> = Vec::new();
    loop {
        owed.retain(|p| client.try_ack(p).is_err());
        // Cancel safety: a cancelled poll drops the connection, which is what stopping means.
        let event = tokio::select! {
            _ = stop.cancelled() => break,
            event = events.poll() => event,
        };
        match event {
            Ok(Event::Incoming(Packet::ConnAck(_))) => {
                // A new connection: the broker sends again what it held unacknowledged.
                owed.clear();
                connected.store(true, Ordering::Relaxed);
                tracing::info!("cluster link connected");
                let _ = client.try_subscribe(format!("{}/#", topics.prefix), QoS::AtLeastOnce);
                let _ = client.try_publish(
                    topics.of("presence", node),
                    QoS::AtLeastOnce,
                    true,
                    "online",
                );
            }
            Ok(Event::Incoming(Packet::Publish(p))) => {
                if let Err(e) = incoming.try_send(p) {
                    // Dropped (asked for again later): acknowledged, or the broker's in-flight
                    // window for this client stays short of it until the next connection.
                    let p = match e {
                        mpsc::error::TrySendError::Full(p)
                        | mpsc::error::TrySendError::Closed(p) => p,
                    };
                    if client.try_ack(&p).is_err() {
                        owed.push(p);
                    }
                    stats.dropped.fetch_add(1, Ordering::Relaxed);
                }
            }
            Ok(_) => {}
            Err(e) => {
                if connected.swap(false, Ordering::Relaxed) {
                    tracing::warn!(error = %e, "cluster link lost its broker; reconnecting");
                }
                tokio::select! {
                    _ = stop.cancelled() => break,
                    _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                }
            }
        }
    }
}

impl Link {
    async fn run(mut self, mut incoming: mpsc::Receiver<Publish>, stop: CancellationToken) {
        let mut tick = tokio::time::interval(TICK);
        loop {
            // Cancel safety: `recv`, `tick` and `cancelled` are cancel-safe.
            tokio::select! {
                _ = stop.cancelled() => break,
                Some(first) = incoming.recv() => {
                    let mut arrivals = vec![first];
                    while arrivals.len() < DRAIN_MESSAGES {
                        match incoming.try_recv() {
                            Ok(p) => arrivals.push(p),
                            Err(_) => break,
                        }
                    }
                    self.take(arrivals).await;
                }
                Some(mut ops) = self.pipeline.own_ops.recv() => {
                    while let Ok(more) = self.pipeline.own_ops.try_recv() {
                        ops.extend(more);
                    }
                    self.publish_own(ops).await;
                }
                _ = tick.tick() => self.tick().await,
            }
        }
        let _ = self
            .client
            .publish(
                self.topics.of("presence", self.node),
                QoS::AtLeastOnce,
                true,
                "offline",
            )
            .await;
        let _ = self.client.disconnect().await;
    }

    /// Takes arrivals: reads each, applies the operations they bring in one go, and once
    /// those are durable acknowledges them all, in order.
    async fn take(&mut self, arrivals: Vec<Publish>) {
        for p in &arrivals {
            self.arrived(&p.topic, &p.payload);
        }
        if !self.apply_ready().await {
            // Stopping: unacknowledged, so the broker sends them again after the restart.
            return;
        }
        for p in &arrivals {
            if self.client.ack(p).await.is_err() {
                return;
            }
        }
    }

    fn arrived(&mut self, topic: &str, payload: &[u8]) {
        let Some(topic) = self.topics.parse(topic) else {
            return;
        };
        if let Topic::Presence(node) = topic {
            if node != self.node {
                let online = payload == b"online";
                let peer = self.peer(node);
                if peer.online != online {
                    peer.online = online;
                    self.tell_roster(node);
                }
            }
            return;
        }
        let (sender, message) = match self.signer.open(payload) {
            Ok(opened) => opened,
            Err(OpenError::BadSignature | OpenError::NotAnEnvelope) => {
                self.stats.forged.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(?topic, "cluster message with a bad signature dropped");
                return;
            }
            Err(OpenError::Malformed(e)) => {
                self.stats.malformed.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(?topic, error = %e, "malformed cluster message dropped");
                return;
            }
        };
        match (topic, message) {
            (Topic::Ops(origin), Message::Ops { origin: o, ops }) if o == origin => {
                if origin != self.node {
                    self.receive(ops);
                }
            }
            (Topic::Vector(node), Message::Vector { applied, hlc }) if node == sender => {
                if node != self.node {
                    let skew = hlc.wall_ms() as i64 - crate::clock::now_ms();
                    let peer = self.peer(node);
                    peer.vector = applied;
                    peer.skew_ms = skew;
                    peer.online = true;
                    self.ask_for_missing();
                }
            }
            (Topic::Agents(node), Message::Roster { agents }) if node == sender => {
                if node != self.node {
                    self.peer(node).agents = agents;
                    self.tell_roster(node);
                }
            }
            (
                Topic::Request(target),
                Message::Request {
                    target: t,
                    origin,
                    first,
                    last,
                },
            ) if target == t => {
                // Requests to the other boxes pass by too (one subscription): not ours.
                if target == self.node {
                    self.answer(origin, first, last);
                }
            }
            _ => {
                self.stats.malformed.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    fn peer(&mut self, node: NodeId) -> &mut Peer {
        let peer = self.peers.entry(node).or_insert(Peer {
            told: None,
            vector: VersionVector::default(),
            agents: Vec::new(),
            last_seen_ms: 0,
            online: false,
            skew_ms: 0,
        });
        peer.last_seen_ms = crate::clock::now_ms();
        peer
    }

    /// Takes another box's operations into the inbox: duplicates dropped, gaps held.
    fn receive(&mut self, ops: Vec<Operation>) {
        for op in ops {
            match self.inbox.offer(op.dot, (op.hlc, op.body)) {
                Offer::Duplicate => {
                    self.stats.duplicates.fetch_add(1, Ordering::Relaxed);
                }
                Offer::Full => {
                    self.stats.dropped.fetch_add(1, Ordering::Relaxed);
                }
                Offer::Ready | Offer::Buffered => {}
            }
        }
    }

    /// Applies what the inbox has in order through the dispatcher and waits until it is
    /// durable. False only when the daemon is stopping; operations the dispatcher refuses
    /// are logged and acknowledged all the same, or the broker's in-flight window for this
    /// box would fill with them and nothing more (not even vectors) would arrive.
    async fn apply_ready(&mut self) -> bool {
        let mut ready = Vec::new();
        while let Some((dot, (hlc, body))) = self.inbox.pop_ready() {
            ready.push(Operation { dot, hlc, body });
        }
        if ready.is_empty() {
            self.ask_for_missing();
            return true;
        }
        let count = ready.len() as u64;
        let (reply, answer) = oneshot::channel();
        if self
            .pipeline
            .commands
            .send(Command::Replicate(ready, reply))
            .await
            .is_err()
        {
            return false;
        }
        let lsn = match answer.await {
            Ok(Ok(lsn)) => lsn,
            Ok(Err(crate::dispatch::DispatchError::Unavailable)) => return false,
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "cluster operations not applied");
                return true;
            }
            Err(_) => return false,
        };
        if self.pipeline.durable.wait_for(|d| *d >= lsn).await.is_err() {
            return false;
        }
        fault::reached(Point::BeforePuback);
        self.stats.applied.fetch_add(count, Ordering::Relaxed);
        self.durable.merge(self.inbox.applied());
        // Shown at once (the rest of the view follows at the next tick).
        self.stats.lock().applied = self.durable.clone();
        self.ask_for_missing();
        true
    }

    /// Publishes this node's committed operations (they are durable: the tap is post-commit).
    async fn publish_own(&mut self, ops: Vec<Operation>) {
        fault::reached(Point::BeforePublish);
        self.publish_ops(self.node, ops).await;
    }

    async fn publish_ops(&self, origin: NodeId, ops: Vec<Operation>) {
        publish_batches(
            &self.client,
            &self.signer,
            self.node,
            self.topics.of("ops", origin),
            origin,
            ops,
            &self.stats,
        )
        .await;
    }

    /// Asks for every range this box lacks (`catchup.rs` decides what and whom).
    fn ask_for_missing(&mut self) {
        let peers: Vec<PeerState<'_>> = self
            .peers
            .iter()
            .map(|(node, p)| PeerState {
                node: *node,
                vector: &p.vector,
                online: p.online,
            })
            .collect();
        let asks = self.asked.plan(
            self.node,
            self.inbox.applied(),
            &self.inbox.gaps(),
            &peers,
            Instant::now(),
        );
        for ask in asks {
            let envelope = self.signer.seal(
                self.node,
                &Message::Request {
                    target: ask.target,
                    origin: ask.origin,
                    first: ask.first,
                    last: ask.last,
                },
            );
            if self
                .client
                .try_publish(
                    self.topics.of("req", ask.target),
                    QoS::AtLeastOnce,
                    false,
                    envelope,
                )
                .is_ok()
            {
                self.stats.requests_sent.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Answers a request from the store, on the origin's topic, off this task.
    fn answer(&self, origin: NodeId, first: u64, last: u64) {
        if first == 0 || last < first {
            return;
        }
        let last = last.min(first + ANSWER_OPS - 1);
        let reads = self.pipeline.reads.clone();
        let store = Arc::clone(&self.pipeline.store);
        let durable = *self.pipeline.durable.borrow();
        let client = self.client.clone();
        let signer = self.signer.clone();
        let (node, topic) = (self.node, self.topics.of("ops", origin));
        let stats = Arc::clone(&self.stats);
        tokio::spawn(async move {
            // What is durable now is in the store once it commits: ask it to now. Rows it has
            // not applied in time are asked for again.
            store.reach(durable, Duration::from_secs(5)).await;
            let rows = reads
                .run(move |conn| {
                    crate::store::queries::cluster_ops_range(
                        conn,
                        origin,
                        first,
                        last,
                        ANSWER_OPS as usize,
                    )
                })
                .await;
            let rows = match rows {
                Ok(rows) => rows,
                Err(e) => {
                    tracing::warn!(error = %e, "cluster request not answered");
                    return;
                }
            };
            if rows.is_empty() {
                return;
            }
            stats.requests_served.fetch_add(1, Ordering::Relaxed);
            let ops = rows
                .into_iter()
                .map(|(seq, hlc, body)| Operation {
                    dot: Dot { origin, seq },
                    hlc: Timestamp(hlc),
                    body,
                })
                .collect();
            publish_batches(&client, &signer, node, topic, origin, ops, &stats).await;
        });
    }

    /// Publishes the vector (retained), asks for what is missing, refreshes the view.
    async fn tick(&mut self) {
        let own = *self.pipeline.own_durable_seq.borrow();
        self.durable.advance(self.node, own);
        let hlc = Timestamp::new(crate::clock::now_ms().max(0) as u64, 0);
        let envelope = self.signer.seal(
            self.node,
            &Message::Vector {
                applied: self.durable.clone(),
                hlc,
            },
        );
        let _ = self.client.try_publish(
            self.topics.of("vv", self.node),
            QoS::AtLeastOnce,
            true,
            envelope,
        );
        self.ask_for_missing();
        self.publish_roster().await;
        self.tell_changed_peers();
        let mine = self.inbox.applied();
        let in_sync = self.inbox.buffered() == 0
            && self.peers.values().all(|p| {
                mine.missing_from(&p.vector)
                    .iter()
                    .all(|(o, _, _)| *o == self.node)
            });
        let mut view = self.stats.lock();
        view.connected = self.connected.load(Ordering::Relaxed);
        view.in_sync = in_sync;
        view.waiting = self.inbox.buffered();
        view.applied = self.durable.clone();
        view.largest_skew_ms = self
            .peers
            .values()
            .map(|p| p.skew_ms)
            .max_by_key(|s| s.abs())
            .unwrap_or(0);
        view.peers = self
            .peers
            .iter()
            .map(|(node, p)| PeerView {
                node: node::display(*node),
                online: self.reachable(p),
                last_seen_ms: p.last_seen_ms,
                behind_peer: mine
                    .missing_from(&p.vector)
                    .into_iter()
                    .filter(|(o, _, _)| *o != self.node)
                    .map(|(o, first, last)| (node::display(o), last + 1 - first))
                    .collect(),
                skew_ms: p.skew_ms,
                agents: p.agents.clone(),
            })
            .collect();
        view.peers.sort_by(|a, b| a.node.cmp(&b.node));
    }
}

//! `cluster`'s split of a message's sync time in two stages: a subscriber to the cluster's
//! operations topics on each other box's own broker (which opens the signed envelopes) notes
//! when each message's operation reached that broker. So "origin ack → on the other box"
//! splits into "origin ack → the other box's broker" (the origin's link, its broker, the
//! bridges and the central broker) and "that broker → that box's agent feed" (that box's
//! link, dispatcher, fsync and fan-out). The subscribers take QoS 0 copies: they cost the
//! brokers one more delivery per envelope and add nothing to the path measured.

use super::*;
use kefud::cluster::wire::{Body, Message as Wire, Signer};

/// Per message text, when it reached each of the two other boxes (its broker, or its feed).
pub(crate) type Seen = Arc<std::sync::Mutex<HashMap<String, [Option<Instant>; 2]>>>;

/// Subscribes to the operations of cluster `cluster` on the brokers at `ports`, and notes in
/// `seen` each message's first arrival on each (slot 0 and 1, as `ports`). Returns once both
/// subscriptions are acknowledged; the tasks run until aborted.
pub(crate) async fn watch_ops(
    ports: [u16; 2],
    cluster: &str,
    secret: &str,
    seen: Seen,
) -> Result<Vec<tokio::task::JoinHandle<()>>> {
    use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
    let mut tasks = Vec::new();
    for (slot, port) in ports.into_iter().enumerate() {
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
        let mut opts = MqttOptions::new(format!("bench-stages-{slot}"), "127.0.0.1", port);
        opts.set_keep_alive(Duration::from_secs(30))
            .set_max_packet_size(4 << 20, 4 << 20);
        let (client, mut events) = AsyncClient::new(opts, 100);
        let mut network = events.network_options();
        network.set_tcp_nodelay(true);
        events.set_network_options(network);
        client
            .subscribe(format!("kefu/v1/{cluster}/ops/#"), QoS::AtMostOnce)
            .await?;
        let signer = Signer::new(cluster, secret);
        let seen = Arc::clone(&seen);
        tasks.push(tokio::spawn(async move {
            let _client = client;
            let mut ready = Some(ready_tx);
            while let Ok(event) = events.poll().await {
                match event {
                    Event::Incoming(Packet::SubAck(_)) => {
                        if let Some(r) = ready.take() {
                            let _ = r.send(());
                        }
                    }
                    Event::Incoming(Packet::Publish(p)) => {
                        let at = Instant::now();
                        let Ok((_, Wire::Ops { ops, .. })) = signer.open(&p.payload) else {
                            continue;
                        };
                        let mut s = seen.lock().expect("not poisoned");
                        for op in ops {
                            if let Ok(Body::Message(m)) = Body::decode(&op.body) {
                                s.entry(m.text).or_default()[slot].get_or_insert(at);
                            }
                        }
                    }
                    _ => {}
                }
            }
        }));
        ready_rx.await?;
    }
    Ok(tasks)
}

/// One message's sync time (ms) on the slower of the two other boxes, and its two stages
/// there (NaN when its broker's copy was not seen).
#[derive(Clone, Copy)]
pub(crate) struct Sample {
    pub(crate) total: f64,
    pub(crate) to_broker: f64,
    pub(crate) apply: f64,
}

/// The sample of a message acknowledged at `acked`, from its arrivals at the two boxes'
/// brokers and feeds; `None` unless both feeds have it.
pub(crate) fn sample(
    acked: Instant,
    brokers: Option<&[Option<Instant>; 2]>,
    feeds: &[Option<Instant>; 2],
) -> Option<Sample> {
    let ms = |from: Instant, to: Instant| {
        if to >= from {
            to.duration_since(from).as_secs_f64() * 1000.0
        } else {
            -(from.duration_since(to).as_secs_f64() * 1000.0)
        }
    };
    let [Some(b), Some(c)] = *feeds else {
        return None;
    };
    let (slot, feed) = if c > b { (1, c) } else { (0, b) };
    let broker = brokers.and_then(|a| a[slot]);
    Some(Sample {
        total: ms(acked, feed),
        to_broker: broker.map_or(f64::NAN, |at| ms(acked, at)),
        apply: broker.map_or(f64::NAN, |at| ms(at, feed)),
    })
}

//! `mqtt`: QoS 1 messages through mosquitto into kefud with durable PUBACKs, against mosquitto alone.

use super::*;

/// Publishes `count` QoS 1 messages (topic and payload from `make(i)`) as fast as the broker
/// acknowledges them (rumqttc's window of 100), returning when every PUBACK is in.
pub(crate) async fn publish_qos1(
    port: u16,
    id: String,
    count: usize,
    make: impl Fn(usize) -> (String, String),
) -> Result<()> {
    use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
    let mut opts = MqttOptions::new(id, "127.0.0.1", port);
    opts.set_inflight(100)
        .set_keep_alive(Duration::from_secs(30));
    let (client, mut events) = AsyncClient::new(opts, 200);
    let poller = tokio::spawn(async move {
        let mut acked = 0;
        while acked < count {
            match events.poll().await {
                Ok(Event::Incoming(Packet::PubAck(_))) => acked += 1,
                Ok(_) => {}
                Err(e) => return Err(anyhow::anyhow!("publisher connection: {e}")),
            }
        }
        Ok(())
    });
    for i in 0..count {
        let (topic, payload) = make(i);
        client
            .publish(topic, QoS::AtLeastOnce, false, payload)
            .await?;
    }
    poller.await?
}

/// Receives `count` messages on `filter` at QoS 1; returns when the last arrived.
pub(crate) async fn subscribe_qos1(
    port: u16,
    filter: &str,
    count: usize,
    ready: tokio::sync::oneshot::Sender<()>,
) -> Result<Instant> {
    use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
    let mut opts = MqttOptions::new("kefud-load-sub", "127.0.0.1", port);
    opts.set_keep_alive(Duration::from_secs(30));
    let (client, mut events) = AsyncClient::new(opts, 200);
    client.subscribe(filter, QoS::AtLeastOnce).await?;
    let mut ready = Some(ready);
    let mut received = 0;
    while received < count {
        match events.poll().await? {
            Event::Incoming(Packet::SubAck(_)) => {
                if let Some(r) = ready.take() {
                    let _ = r.send(());
                }
            }
            Event::Incoming(Packet::Publish(_)) => received += 1,
            _ => {}
        }
    }
    Ok(Instant::now())
}

/// One piece on purpose: the run's phases (mosquitto alone, then kefud behind it) in order,
/// sharing the broker and the measurements.
pub(crate) async fn mqtt_throughput(
    bin: &Path,
    conf: &Path,
    messages: usize,
    publishers: usize,
    limit: Duration,
    broker_saver: bool,
) -> Result<()> {
    let broker = Mosquitto::start(conf, None)?;
    // `kefud broker-saver`, as the SD image runs it: killed when the run ends.
    let _saver = if broker_saver {
        let pid = broker.pid().context("the broker is not running")?;
        Some(KillOnDrop(
            std::process::Command::new(bin)
                .args([
                    "broker-saver",
                    "--broker",
                    &format!("127.0.0.1:{}", broker.port),
                ])
                .args(["--pid", &pid.to_string()])
                .stderr(std::process::Stdio::null())
                .spawn()
                .context("start kefud broker-saver")?,
        ))
    } else {
        None
    };
    let per = messages / publishers.max(1);
    let total = per * publishers.max(1);
    let payload = |p: usize, i: usize| {
        serde_json::json!({"client_id": format!("p{p}-{i}"), "text": "load message of about sixty-four bytes of text, like a chat line"}).to_string()
    };

    // Baseline: mosquitto alone, publishers → one QoS 1 subscriber.
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
    let subscriber = tokio::spawn(subscribe_qos1(broker.port, "bench/#", total, ready_tx));
    ready_rx.await.context("subscriber did not subscribe")?;
    let bare_written_before = broker.disk_bytes_written();
    let started = Instant::now();
    let mut pubs = Vec::new();
    for p in 0..publishers {
        pubs.push(tokio::spawn(publish_qos1(
            broker.port,
            format!("bench-pub-{p}"),
            per,
            move |i| (format!("bench/{p}"), payload(p, i)),
        )));
    }
    let last = tokio::time::timeout(limit, subscriber)
        .await
        .context("baseline timed out")???;
    for p in pubs {
        p.await??;
    }
    let bare_secs = (last - started).as_secs_f64();
    let bare_written = bytes_since(&broker, bare_written_before);

    // kefud: the same publishers into kefu/in/load/{p}; done when kefud acknowledged them all
    // (each PUBACK after the journal's fsync).
    let daemon = start_kefud(
        bin,
        None,
        &format!("[mqtt]\nenabled = true\nport = {}\n", broker.port),
        None,
    )?;
    let acked_metric = "kefud_channel_events_total{adapter=\"mqtt\",event=\"acknowledged\"}";
    let connected_at = Instant::now();
    while metric(daemon.addr, "kefud_channel_connected{adapter=\"mqtt\"}").await != Some(1) {
        if connected_at.elapsed() > Duration::from_secs(30) {
            bail!("kefud's MQTT bridge did not connect");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let allocations_before = metric(daemon.addr, "kefud_heap_allocations_total")
        .await
        .unwrap_or(0);
    let kefud_written_before = broker.disk_bytes_written();
    let started = Instant::now();
    let mut pubs = Vec::new();
    for p in 0..publishers {
        pubs.push(tokio::spawn(publish_qos1(
            broker.port,
            format!("load-pub-{p}"),
            per,
            move |i| (format!("kefu/in/load/c{p}"), payload(p, i)),
        )));
    }
    let mut done = 0;
    while done < total as u64 {
        if started.elapsed() > limit {
            bail!("kefud acknowledged {done} of {total} within {limit:?}");
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
        done = metric(daemon.addr, acked_metric).await.unwrap_or(0);
    }
    let kefud_secs = started.elapsed().as_secs_f64();
    for p in pubs {
        p.await??;
    }
    let kefud_written = bytes_since(&broker, kefud_written_before);
    let allocations = metric(daemon.addr, "kefud_heap_allocations_total")
        .await
        .unwrap_or(0)
        - allocations_before;
    daemon.stop(DAEMON_STOP)?;
    let (bare, kefud) = (total as f64 / bare_secs, total as f64 / kefud_secs);
    println!(
        "mqtt: {total} QoS 1 messages from {publishers} publishers, ~100 B payloads{}",
        if broker_saver {
            "; the broker saved by kefud broker-saver (the SD image's setup)"
        } else {
            ""
        }
    );
    println!("  mosquitto alone, publish -> subscribe: {bare:>9.0} msg/s");
    println!("  into kefud, PUBACK after fsync:        {kefud:>9.0} msg/s");
    println!(
        "  ratio kefud / mosquitto alone:         {:>9.2}",
        kefud / bare
    );
    println!(
        "  kefud heap allocations per message:    {:>9.1}",
        allocations as f64 / total as f64
    );
    let per_message = |written: Option<u64>| {
        written.map_or("unknown".to_string(), |b| {
            format!("{:.0} B", b as f64 / total as f64)
        })
    };
    println!(
        "  broker's disk writes per message (its persistence saves): alone {}, into kefud {}",
        per_message(bare_written),
        per_message(kefud_written)
    );
    Ok(())
}

/// A child process killed (and reaped) when dropped.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// What the broker has written to storage since `before` (both `None` where `/proc` does not
/// say).
fn bytes_since(broker: &Mosquitto, before: Option<u64>) -> Option<u64> {
    Some(broker.disk_bytes_written()?.saturating_sub(before?))
}

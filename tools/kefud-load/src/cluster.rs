//! `cluster`: three kefud boxes in cluster mode, each with its own mosquitto bridged to a
//! central one (the topology of README "Several shops"), on loopback.
//!
//! Sync latency: visitors write on box A at a steady rate, then in a burst; each message's
//! time runs from its ack on A (sent once it is fsync'd there) to its arrival in the agent
//! feeds of boxes B and C (sent once it is fsync'd there): the slower of the two is the
//! message's "origin fsync → applied on every other box". Baseline, same run: QoS 1 messages
//! at the same rate from a client of A's broker to clients of B's and C's, through the same
//! bridges (what the brokers alone cost). Each message's time is also split at the other
//! box's broker (`cluster_stages.rs`): origin → that broker, and that broker → applied there.
//!
//! Catch-up: C's broker is killed, N messages are written on A, C's broker comes back; the
//! time until C has applied all of them (its `/api/v1/cluster` vector), as operations/s.
//! Baseline: N QoS 1 messages from A's broker to C's through the bridges.

use super::cluster_stages::{sample, watch_ops, Sample, Seen};
use super::*;
use kefud_testkit::{free_port, Daemon, Mosquitto};

const SECRET: &str = "load-cluster-secret";

struct Topology {
    _central: Mosquitto,
    shops: Vec<Mosquitto>,
    boxes: Vec<Daemon>,
    tokens: Vec<String>,
    _dir: tempfile::TempDir,
}

fn broker(dir: &Path, config: impl Fn(u16) -> String) -> Result<Mosquitto> {
    std::fs::create_dir_all(dir)?;
    let port = free_port()?;
    Mosquitto::with_config(dir, &config(port), port)
}

async fn start(bin: &Path) -> Result<Topology> {
    let dir = scratch_dir()?;
    let central = broker(&dir.path().join("central"), |p| {
        format!("listener {p} 127.0.0.1\nallow_anonymous true\npersistence false\nset_tcp_nodelay true\n")
    })?;
    let mut shops = Vec::new();
    for i in 0..3 {
        shops.push(broker(&dir.path().join(format!("shop{i}")), |p| {
            format!(
                "listener {p} 127.0.0.1\nallow_anonymous true\npersistence false\nset_tcp_nodelay true\n\
                 connection central\naddress 127.0.0.1:{}\nremote_clientid shop{i}\n\
                 topic kefu/# both 1\ncleansession false\nrestart_timeout 1 2\n\
                 notifications false\nlog_dest file /tmp/mqlog-shop{i}.log\nlog_type error\nlog_type warning\n\
                 log_type notice\nlog_type information\n",
                central.port
            )
        })?);
    }
    let mut boxes = Vec::new();
    let mut tokens = Vec::new();
    for (i, shop) in shops.iter().enumerate() {
        let config = format!(
            "[mqtt]\nport = {}\n[cluster]\nenabled = true\nname = \"load\"\nsecret = \"{SECRET}\"\n",
            shop.port
        );
        let d = start_kefud(
            bin,
            Some(&dir.path().join(format!("box{i}"))),
            &config,
            None,
        )?;
        tokens.push(setup_admin(d.addr, "owner", "owner-password").await?);
        boxes.push(d);
    }
    let t = Topology {
        _central: central,
        shops,
        boxes,
        tokens,
        _dir: dir,
    };
    // Every box has heard from the two others.
    let deadline = Instant::now() + Duration::from_secs(30);
    for i in 0..3 {
        while t.view(i).await?["peers"].as_array().map_or(0, Vec::len) < 2 {
            if Instant::now() > deadline {
                bail!("box {i} did not hear from the others: {}", t.view(i).await?);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    Ok(t)
}

impl Topology {
    async fn view(&self, i: usize) -> Result<serde_json::Value> {
        let (status, body) = http(
            self.boxes[i].addr,
            "GET",
            "/api/v1/cluster",
            Some(&self.tokens[i]),
            None,
        )
        .await?;
        if status != 200 {
            bail!("/api/v1/cluster answered {status}");
        }
        Ok(serde_json::from_slice::<serde_json::Value>(&body)?["view"].clone())
    }

    /// How far box `i` has applied box `origin`'s operations.
    async fn applied(&self, i: usize, origin: usize) -> Result<u64> {
        let node = self.view(origin).await?["node"]
            .as_str()
            .context("node id")?
            .to_string();
        Ok(self.view(i).await?["applied"][&node].as_u64().unwrap_or(0))
    }
}

/// Milliseconds, p50/p99/max, of `samples` (ms).
fn spread(samples: &mut [f64]) -> (f64, f64, f64) {
    samples.sort_by(f64::total_cmp);
    let at = |q: f64| samples[((samples.len() as f64 * q) as usize).min(samples.len() - 1)];
    (at(0.5), at(0.99), *samples.last().unwrap_or(&f64::NAN))
}

/// Each message's time from its ack on box 0 to its arrival in boxes 1's and 2's agent
/// feeds (the later of the two), split at that box's broker, for `count` messages at
/// `rate`/s from 10 visitors.
async fn kefud_latencies(t: &Topology, tag: &str, rate: u64, count: usize) -> Result<Vec<Sample>> {
    let arrivals: Seen = Arc::default();
    let at_brokers: Seen = Arc::default();
    let mut feeds = watch_ops(
        [t.shops[1].port, t.shops[2].port],
        "load",
        SECRET,
        Arc::clone(&at_brokers),
    )
    .await?;
    for i in 1..3 {
        let url = format!("ws://{}/ws/agent?token={}", t.boxes[i].addr, t.tokens[i]);
        let (mut ws, _) = tokio_tungstenite::connect_async(&url).await?;
        let arrivals = Arc::clone(&arrivals);
        feeds.push(tokio::spawn(async move {
            while let Some(Ok(frame)) = ws.next().await {
                let Message::Text(raw) = frame else { continue };
                let Ok(v) = serde_json::from_str::<serde_json::Value>(raw.as_str()) else {
                    continue;
                };
                if let Some(text) = v["message"]["text"].as_str() {
                    let mut a = arrivals.lock().expect("not poisoned");
                    a.entry(text.to_string()).or_default()[i - 1].get_or_insert(Instant::now());
                }
            }
        }));
    }
    let visitors = 10;
    let mut senders = Vec::new();
    for v in 0..visitors {
        let addr = t.boxes[0].addr;
        let tag = tag.to_string();
        senders.push(tokio::spawn(async move {
            let mut visitor = Visitor::connect(addr, &format!("{tag}{v}"), None).await?;
            let gap = Duration::from_secs_f64(visitors as f64 / rate as f64);
            let mut tick = tokio::time::interval(gap);
            let mut acked = Vec::new();
            for i in (v..count).step_by(visitors) {
                tick.tick().await;
                let text = format!("{tag} {i}");
                visitor
                    .send_acked(&format!("{tag}-{i}"), &text, None)
                    .await?;
                acked.push((text, Instant::now()));
            }
            anyhow::Ok(acked)
        }));
    }
    let mut acked = Vec::new();
    for s in senders {
        acked.extend(s.await??);
    }
    acked.sort_by_key(|(_, at)| *at);
    // Every message on both other boxes, or 30 s.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let all = {
            let a = arrivals.lock().expect("not poisoned");
            acked
                .iter()
                .all(|(text, _)| a.get(text).is_some_and(|v| v.iter().all(Option::is_some)))
        };
        if all || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for f in feeds {
        f.abort();
    }
    let a = arrivals.lock().expect("not poisoned");
    let b = at_brokers.lock().expect("not poisoned");
    let mut out = Vec::new();
    for (text, at) in &acked {
        match a
            .get(text)
            .and_then(|feeds| sample(*at, b.get(text), feeds))
        {
            Some(s) => out.push(s),
            None => bail!("{text} did not reach both other boxes within 30 s"),
        }
    }
    Ok(out)
}

/// TCP_NODELAY, as kefud's cluster link sets it, so the baseline pays no Nagle delay either.
fn no_delay(events: &mut rumqttc::EventLoop) {
    let mut network = events.network_options();
    network.set_tcp_nodelay(true);
    events.set_network_options(network);
}

/// The same messages through the brokers alone: published QoS 1 to box 0's broker at `rate`,
/// each one's time to arrive at subscribers of boxes 1's and 2's brokers (the later).
async fn broker_latencies(t: &Topology, tag: &str, rate: u64, count: usize) -> Result<Vec<f64>> {
    use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
    let topic = format!("kefu/bench/{tag}");
    let arrivals: Arc<std::sync::Mutex<HashMap<usize, Vec<Instant>>>> = Arc::default();
    let mut subscribers = Vec::new();
    for i in 1..3 {
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
        let mut opts =
            MqttOptions::new(format!("bench-sub-{tag}-{i}"), "127.0.0.1", t.shops[i].port);
        opts.set_keep_alive(Duration::from_secs(30));
        let (client, mut events) = AsyncClient::new(opts, 100);
        no_delay(&mut events);
        client.subscribe(topic.clone(), QoS::AtLeastOnce).await?;
        let arrivals = Arc::clone(&arrivals);
        subscribers.push(tokio::spawn(async move {
            let mut ready = Some(ready_tx);
            let _client = client;
            while let Ok(event) = events.poll().await {
                match event {
                    Event::Incoming(Packet::SubAck(_)) => {
                        if let Some(r) = ready.take() {
                            let _ = r.send(());
                        }
                    }
                    Event::Incoming(Packet::Publish(p)) => {
                        if let Ok(i) = std::str::from_utf8(&p.payload).unwrap_or("").parse() {
                            let mut a = arrivals.lock().expect("not poisoned");
                            a.entry(i).or_default().push(Instant::now());
                        }
                    }
                    _ => {}
                }
            }
        }));
        ready_rx.await?;
    }
    // The subscriptions travel through the bridges to the central broker: let them settle.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut opts = MqttOptions::new(format!("bench-pub-{tag}"), "127.0.0.1", t.shops[0].port);
    opts.set_keep_alive(Duration::from_secs(30));
    let (client, mut events) = AsyncClient::new(opts, 100);
    no_delay(&mut events);
    let poller = tokio::spawn(async move { while events.poll().await.is_ok() {} });
    let mut sent = Vec::new();
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / rate as f64));
    for i in 0..count {
        tick.tick().await;
        sent.push(Instant::now());
        client
            .publish(topic.clone(), QoS::AtLeastOnce, false, i.to_string())
            .await?;
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while arrivals
        .lock()
        .expect("not poisoned")
        .values()
        .filter(|v| v.len() >= 2)
        .count()
        < count
        && Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    poller.abort();
    for s in subscribers {
        s.abort();
    }
    let a = arrivals.lock().expect("not poisoned");
    let mut out = Vec::new();
    for (i, at) in sent.iter().enumerate() {
        if let Some(v) = a.get(&i).filter(|v| v.len() >= 2) {
            let last = v.iter().max().expect("two arrivals");
            out.push(last.saturating_duration_since(*at).as_secs_f64() * 1000.0);
        }
    }
    if out.len() < count {
        bail!(
            "the brokers delivered {} of {count} to both other shops",
            out.len()
        );
    }
    Ok(out)
}

/// N messages from box 0's broker to a subscriber on box 2's, QoS 1, as fast as they go
/// with at most 100 on their way (a bridge drops what overflows its queue): messages/s, the
/// brokers' own catch-up rate.
async fn broker_rate(t: &Topology, count: usize) -> Result<f64> {
    use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
    let window = Arc::new(tokio::sync::Semaphore::new(100));
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
    let mut opts = MqttOptions::new("bench-rate-sub", "127.0.0.1", t.shops[2].port);
    opts.set_keep_alive(Duration::from_secs(30));
    let (sub, mut sub_events) = AsyncClient::new(opts, 100);
    sub.subscribe("kefu/bench/rate", QoS::AtLeastOnce).await?;
    let arrived = {
        let window = Arc::clone(&window);
        tokio::spawn(async move {
            let _sub = sub;
            let mut ready = Some(ready_tx);
            let mut received = 0;
            while received < count {
                match sub_events.poll().await? {
                    Event::Incoming(Packet::SubAck(_)) => {
                        if let Some(r) = ready.take() {
                            let _ = r.send(());
                        }
                    }
                    Event::Incoming(Packet::Publish(_)) => {
                        received += 1;
                        window.add_permits(1);
                    }
                    _ => {}
                }
            }
            anyhow::Ok(Instant::now())
        })
    };
    ready_rx.await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut opts = MqttOptions::new("bench-rate-pub", "127.0.0.1", t.shops[0].port);
    opts.set_keep_alive(Duration::from_secs(30));
    let (client, mut events) = AsyncClient::new(opts, 100);
    let poller = tokio::spawn(async move { while events.poll().await.is_ok() {} });
    let started = Instant::now();
    for i in 0..count {
        window.acquire().await?.forget();
        client
            .publish(
                "kefu/bench/rate",
                QoS::AtLeastOnce,
                false,
                format!("{i:0>200}"),
            )
            .await?;
    }
    let done = tokio::time::timeout(Duration::from_secs(120), arrived)
        .await
        .context("the brokers did not deliver within 120 s")???;
    poller.abort();
    Ok(count as f64 / done.duration_since(started).as_secs_f64())
}

/// How fast box 2 applies `count` operations it missed while its broker was down (ops/s,
/// from the first it applies after its broker comes back to the last).
async fn catch_up(t: &mut Topology, count: usize) -> Result<f64> {
    t.shops[2].kill9();
    let before = t.applied(0, 0).await?;
    let visitors = 20;
    let mut senders = Vec::new();
    for v in 0..visitors {
        let addr = t.boxes[0].addr;
        senders.push(tokio::spawn(async move {
            let mut visitor = Visitor::connect(addr, &format!("catchup{v}"), None).await?;
            for i in (v..count).step_by(visitors) {
                visitor
                    .send_acked(&format!("c-{i}"), &format!("catch-up message {i}"), None)
                    .await?;
            }
            anyhow::Ok(())
        }));
    }
    for s in senders {
        s.await??;
    }
    // Its view is refreshed every second.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut target = t.applied(0, 0).await?;
    while target < before + count as u64 {
        if Instant::now() > deadline {
            bail!(
                "box 0 stamped {} operations for {count} messages: {}",
                target - before,
                t.view(0).await?
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        target = t.applied(0, 0).await?;
    }
    t.shops[2].start_again()?;
    let restarted = Instant::now();
    // From the first operation applied after the broker came back (its bridge and box 2's
    // link reconnect first) to the last.
    let deadline = Instant::now() + Duration::from_secs(300);
    let stalled_at = t.applied(2, 0).await?;
    let (started, from) = loop {
        let now = t.applied(2, 0).await?;
        if now > stalled_at {
            break (Instant::now(), now);
        }
        if Instant::now() > deadline {
            bail!("box 2 applied nothing within 300 s: {}", t.view(2).await?);
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    while t.applied(2, 0).await? < target {
        if Instant::now() > deadline {
            bail!("box 2 did not catch up within 300 s: {}", t.view(2).await?);
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let elapsed = started.elapsed().as_secs_f64();
    println!(
        "  box 2 caught up {:.2} s after its broker came back ({:.2} s of it reconnecting)",
        restarted.elapsed().as_secs_f64(),
        started.duration_since(restarted).as_secs_f64()
    );
    if target - from < count as u64 / 2 {
        bail!("box 2 had most of the operations before it could be timed ({from} of {target})");
    }
    Ok((target - from) as f64 / elapsed)
}

/// One piece on purpose: the run's phases in order over one topology (steady, burst, then
/// catch-up, each with its baseline), printed as one table.
pub(crate) async fn cluster_sync(
    bin: &Path,
    steady_rate: u64,
    steady_secs: u64,
    burst_rate: u64,
    burst_secs: u64,
    catch_up_ops: usize,
) -> Result<()> {
    let mut t = start(bin).await?;
    println!("cluster: 3 kefud boxes, each mosquitto bridged to a central one (loopback)");
    println!(
        "{:<34} {:>9} {:>9} {:>9}",
        "origin ack -> on both other boxes", "p50 ms", "p99 ms", "max ms"
    );
    for (tag, rate, secs) in [
        ("steady", steady_rate, steady_secs),
        ("burst", burst_rate, burst_secs),
    ] {
        let count = (rate * secs) as usize;
        let (bp50, bp99, bmax) = spread(&mut broker_latencies(&t, tag, rate, count).await?);
        let samples = kefud_latencies(&t, tag, rate, count).await?;
        let slowest: Vec<String> = {
            let mut by_index: Vec<(usize, Sample)> = samples.iter().copied().enumerate().collect();
            by_index.sort_by(|a, b| b.1.total.total_cmp(&a.1.total));
            by_index
                .iter()
                .take(5)
                .map(|(i, s)| format!("#{i} {:.1} ({:.1} + {:.1})", s.total, s.to_broker, s.apply))
                .collect()
        };
        let column = |f: fn(&Sample) -> f64| -> Vec<f64> {
            samples.iter().map(f).filter(|ms| !ms.is_nan()).collect()
        };
        let mut kefud = column(|s| s.total);
        let (kp50, kp99, kmax) = spread(&mut kefud);
        let (tp50, tp99, tmax) = spread(&mut column(|s| s.to_broker));
        let (ap50, ap99, amax) = spread(&mut column(|s| s.apply));
        println!(
            "{:<34} {bp50:>9.2} {bp99:>9.2} {bmax:>9.2}",
            format!("  brokers alone, {rate}/s x {count}")
        );
        println!(
            "{:<34} {kp50:>9.2} {kp99:>9.2} {kmax:>9.2}",
            format!("  kefud, {rate}/s x {count}")
        );
        println!(
            "{:<34} {tp50:>9.2} {tp99:>9.2} {tmax:>9.2}",
            "    of it: origin -> that broker"
        );
        println!(
            "{:<34} {ap50:>9.2} {ap99:>9.2} {amax:>9.2}",
            "    of it: that broker -> applied"
        );
        println!(
            "{:<34} {:>9.2} {:>9.2}",
            "  kefud / brokers",
            kp50 / bp50,
            kp99 / bp99
        );
        println!(
            "  kefud's slowest five (# in ack order, ms (to broker + applied)): {}",
            slowest.join(", ")
        );
    }
    let base = broker_rate(&t, catch_up_ops).await?;
    let rate = match catch_up(&mut t, catch_up_ops).await {
        Ok(rate) => rate,
        Err(e) => {
            for (i, b) in t.shops.iter().enumerate() {
                eprintln!("--- shop broker {i}:\n{}", b.log());
            }
            return Err(e);
        }
    };
    println!(
        "catch-up after a partition, {catch_up_ops} operations: kefud {rate:.0} ops/s, brokers alone {base:.0} msg/s, ratio {:.2}",
        rate / base
    );
    for (i, d) in t.boxes.into_iter().enumerate() {
        d.stop(DAEMON_STOP)
            .with_context(|| format!("box {i} did not stop cleanly"))?;
    }
    Ok(())
}

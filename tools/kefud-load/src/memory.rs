//! `idle`, `coldstart`, `spam`: memory per connection and per visitor id, and start time with many stored.

use super::*;

pub(crate) async fn idle(bin: &Path, connections: usize) -> Result<()> {
    let daemon = start_kefud(bin, None, "", None)?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss_idle = rss_kib(&daemon)?;
    let mut held = Vec::with_capacity(connections);
    for i in 0..connections {
        let url = format!("ws://{}/ws/visitor?visitor_id=idle-{i}", daemon.addr);
        let (mut ws, _) = tokio_tungstenite::connect_async(&url)
            .await
            .with_context(|| format!("connection {i}"))?;
        ws.next().await.context("welcome")??;
        held.push(ws);
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss_loaded = rss_kib(&daemon)?;
    let per_conn = (rss_loaded.saturating_sub(rss_idle)) as f64 * 1024.0 / connections as f64;
    println!(
        "idle RSS (no connections): {:.1} MiB",
        rss_idle as f64 / 1024.0
    );
    println!(
        "RSS with {connections} idle visitor connections: {:.1} MiB",
        rss_loaded as f64 / 1024.0
    );
    println!(
        "per idle connection: {per_conn:.0} bytes ({:.2} KiB)",
        per_conn / 1024.0
    );
    drop(held);
    daemon.stop(DAEMON_STOP)
}

pub(crate) async fn coldstart(bin: &Path, messages: u64, runs: usize) -> Result<()> {
    let dir = scratch_dir()?;
    let daemon = start_kefud(bin, Some(dir.path()), "", None)?;
    let filled = Instant::now();
    fill(daemon.addr, messages).await?;
    println!(
        "filled {messages} messages in {:.1} s",
        filled.elapsed().as_secs_f64()
    );
    daemon.stop(DAEMON_STOP)?;
    let mut times = Vec::new();
    let mut rss = 0;
    for _ in 0..runs {
        let started = Instant::now();
        let d = start_kefud(bin, Some(dir.path()), "", None)?;
        times.push(started.elapsed());
        tokio::time::sleep(Duration::from_millis(300)).await;
        rss = rss_kib(&d)?;
        d.stop(DAEMON_STOP)?;
    }
    times.sort();
    println!(
        "cold start to /healthz 200 with {messages} messages stored: median {:.1} ms (min {:.1}, max {:.1}, {runs} runs)",
        times[times.len() / 2].as_secs_f64() * 1000.0,
        times[0].as_secs_f64() * 1000.0,
        times[times.len() - 1].as_secs_f64() * 1000.0
    );
    println!(
        "idle RSS after start with {messages} messages stored: {:.1} MiB",
        rss as f64 / 1024.0
    );
    Ok(())
}

/// One piece on purpose: a script of phases (idle, the visitors arriving, the restart with all
/// of them waiting) that share the daemon and its measurements.
pub(crate) async fn spam(
    bin: &Path,
    contacts: u64,
    concurrency: u64,
    runs: usize,
    config: &str,
) -> Result<()> {
    let empty = scratch_dir()?;
    let mut empty_starts = Vec::new();
    for _ in 0..runs {
        let started = Instant::now();
        let d = start_kefud(bin, Some(empty.path()), config, None)?;
        empty_starts.push(started.elapsed());
        d.stop(DAEMON_STOP)?;
    }
    drop(empty);

    let dir = scratch_dir()?;
    let daemon = start_kefud(bin, Some(dir.path()), config, None)?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss_idle = rss_kib(&daemon)?;
    println!("idle RSS: {:.1} MiB", rss_idle as f64 / 1024.0);
    let sent = Arc::new(AtomicU64::new(0));
    let addr = daemon.addr;
    let began = Instant::now();
    let workers: Vec<_> = (0..concurrency)
        .map(|w| {
            let sent = Arc::clone(&sent);
            tokio::spawn(async move {
                let mut i = w;
                while i < contacts {
                    let url = format!("ws://{addr}/ws/visitor?visitor_id=spam-{i}");
                    let (mut ws, _) = tokio_tungstenite::connect_async(&url)
                        .await
                        .with_context(|| format!("visitor {i}"))?;
                    let f = format!(
                        r#"{{"type":"message","client_id":"s","text":"hello from visitor {i}"}}"#
                    );
                    ws.send(Message::Text(f.into())).await?;
                    loop {
                        match tokio::time::timeout(Duration::from_secs(30), ws.next()).await {
                            Ok(Some(Ok(Message::Text(t))))
                                if t.as_str().starts_with(r#"{"type":"ack""#) =>
                            {
                                break
                            }
                            Ok(Some(Ok(_))) => {}
                            other => bail!("visitor {i}: {other:?}"),
                        }
                    }
                    let _ = ws.close(None).await;
                    sent.fetch_add(1, Ordering::Relaxed);
                    i += concurrency;
                }
                anyhow::Ok(())
            })
        })
        .collect();
    let mut next_report = contacts / 10;
    while sent.load(Ordering::Relaxed) < contacts {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let n = sent.load(Ordering::Relaxed);
        if n >= next_report {
            println!(
                "{n:>9} visitor ids: RSS {:.1} MiB (+{:.1}), {} contacts held in memory, {:.0} visitors/s",
                rss_kib(&daemon)? as f64 / 1024.0,
                rss_kib(&daemon)?.saturating_sub(rss_idle) as f64 / 1024.0,
                metric(addr, "kefud_dispatcher_contacts").await.unwrap_or(0),
                n as f64 / began.elapsed().as_secs_f64()
            );
            next_report += contacts / 10;
        }
        if workers.iter().all(|w| w.is_finished()) {
            break;
        }
    }
    for w in workers {
        w.await??;
    }
    let rss_full = rss_kib(&daemon)?;
    println!(
        "{contacts} visitor ids, one message each: RSS {:.1} MiB, {:.2} x idle, {:.1} bytes per visitor id",
        rss_full as f64 / 1024.0,
        rss_full as f64 / rss_idle as f64,
        rss_full.saturating_sub(rss_idle) as f64 * 1024.0 / contacts as f64
    );
    daemon.stop(DAEMON_STOP)?;

    let mut starts = Vec::new();
    let mut rss = 0;
    for _ in 0..runs {
        let started = Instant::now();
        let d = start_kefud(bin, Some(dir.path()), config, None)?;
        starts.push(started.elapsed());
        tokio::time::sleep(Duration::from_millis(300)).await;
        rss = rss_kib(&d)?;
        d.stop(DAEMON_STOP)?;
    }
    drop(dir);
    empty_starts.sort();
    starts.sort();
    let median = |v: &[Duration]| v[v.len() / 2].as_secs_f64() * 1000.0;
    println!(
        "start to /healthz 200 with {contacts} conversations waiting: median {:.1} ms; empty data directory: {:.1} ms; ratio {:.2} ({runs} runs each)",
        median(&starts),
        median(&empty_starts),
        median(&starts) / median(&empty_starts)
    );
    println!("RSS after that start: {:.1} MiB", rss as f64 / 1024.0);
    Ok(())
}

/// Sends `messages` messages through 200 visitors with a window of 32.
pub(crate) async fn fill(addr: SocketAddr, messages: u64) -> Result<()> {
    let visitors = 200u64;
    let mut tasks = Vec::new();
    for v in 0..visitors {
        let count = messages / visitors + u64::from(v < messages % visitors);
        tasks.push(tokio::spawn(async move {
            let url = format!("ws://{addr}/ws/visitor?visitor_id=fill-{v}");
            let (ws, _) = tokio_tungstenite::connect_async_with_config(&url, None, true).await?;
            let (mut tx, mut rx) = ws.split();
            let (mut sent, mut acked) = (0u64, 0u64);
            while acked < count {
                while sent < count && sent - acked < 32 {
                    let f = format!(r#"{{"type":"message","client_id":"f{sent}","text":"order 10{sent} for customer {v}: where is it?"}}"#);
                    tx.send(Message::Text(f.into())).await?;
                    sent += 1;
                }
                match tokio::time::timeout(Duration::from_secs(30), rx.next()).await {
                    Ok(Some(Ok(Message::Text(t)))) if t.as_str().starts_with(r#"{"type":"ack""#) => acked += 1,
                    Ok(Some(Ok(Message::Text(t)))) if t.as_str().starts_with(r#"{"type":"error""#) => bail!("refused: {t}"),
                    Ok(Some(Ok(_))) => {}
                    other => bail!("fill connection {v} ended: {other:?}"),
                }
            }
            anyhow::Ok(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    Ok(())
}

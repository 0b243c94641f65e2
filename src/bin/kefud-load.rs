//! kefud-load: the project's load tool. Every figure it prints is measured in the same run as
//! its baseline, and every loop is bounded in count and time; it only talks to loopback.
//!
//! - `throughput`: N visitor WebSockets send messages (at a target total rate, or as fast as
//!   acks allow) to a bare tokio-tungstenite echo server in this process, then to kefud; prints
//!   acked messages/s, ack latency p50/p99/p999, the ratio kefud / bare, and kefud's heap
//!   allocations per message (from its `/metrics`).
//! - `idle`: opens N idle visitor connections and reports kefud's resident memory per
//!   connection and at idle.
//! - `coldstart`: fills kefud with M messages, restarts it, and times spawn → `/healthz` 200.
//! - `probe`: one visitor's check of a running kefud (the SD-image boot test uses it): send a
//!   message and wait for its durable ack, or wait for a text in the replayed history.
//! - `mqtt`: QoS 1 publishers through mosquitto into kefud (PUBACK after fsync), against
//!   mosquitto's own publish-to-subscribe rate in the same run.
//! - `spam`: N visitors who each send one message under a fresh visitor id (each opens a
//!   conversation that waits for a person): kefud's resident memory as they come, against
//!   its idle RSS; then restarts with all N waiting, against a start on an empty directory.
//!
//! `--spawn PATH` starts the kefud binary at PATH on a temporary data directory (and stops it
//! at the end); otherwise `--url` names a running kefud. Whatever the tool starts (kefud,
//! mosquitto) it stops on every exit path, a failed or timed-out run included.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::Message;

#[derive(Parser)]
#[command(
    name = "kefud-load",
    about = "Load tool for kefud (loopback only, bounded runs)"
)]
struct Cli {
    /// Start this kefud binary on a temporary data directory.
    #[arg(long, global = true)]
    spawn: Option<PathBuf>,
    /// Address of a running kefud (when not spawning).
    #[arg(long, global = true, default_value = "127.0.0.1:8080")]
    addr: SocketAddr,
    #[command(subcommand)]
    mode: Mode,
}

#[derive(Subcommand)]
enum Mode {
    Throughput {
        #[arg(long, default_value_t = 1000)]
        visitors: usize,
        #[arg(long, default_value_t = 10)]
        seconds: u64,
        /// Total messages/s offered; 0 sends as fast as acks come back.
        #[arg(long, default_value_t = 0)]
        rate: u64,
        /// Unacknowledged messages per connection.
        #[arg(long, default_value_t = 1)]
        window: usize,
        #[arg(long, default_value_t = 64)]
        text_bytes: usize,
    },
    Idle {
        #[arg(long, default_value_t = 10_000)]
        connections: usize,
    },
    Coldstart {
        #[arg(long, default_value_t = 1_000_000)]
        messages: u64,
        #[arg(long, default_value_t = 5)]
        runs: usize,
    },
    /// MQTT in: messages/s from QoS 1 publishers through mosquitto into kefud with durable
    /// acks, against mosquitto's own QoS 1 publish-to-subscribe rate in the same run. Starts
    /// mosquitto (with the given config, e.g. the image's, on its own port) and kefud.
    Mqtt {
        /// A mosquitto config file; its listener and persistence lines are replaced.
        #[arg(long)]
        mosquitto_conf: PathBuf,
        #[arg(long, default_value_t = 40_000)]
        messages: usize,
        #[arg(long, default_value_t = 4)]
        publishers: usize,
        /// Each measurement is abandoned after this long.
        #[arg(long, default_value_t = 120)]
        timeout_secs: u64,
    },
    /// One message from each of N fresh visitor ids: memory as they come, start time with
    /// all of them waiting.
    Spam {
        #[arg(long, default_value_t = 1_000_000)]
        contacts: u64,
        /// Connections sending at once.
        #[arg(long, default_value_t = 64)]
        concurrency: u64,
        #[arg(long, default_value_t = 3)]
        runs: usize,
        /// TOML appended to the spawned kefud's config (e.g. "[conversations]
        /// cached_contacts = 1000").
        #[arg(long, default_value = "")]
        daemon_config: String,
    },
    /// Exits 0 once the check passes, 1 when it fails or times out.
    Probe {
        #[arg(long)]
        visitor_id: String,
        /// Send this text and wait for its ack.
        #[arg(long, conflicts_with = "expect", required_unless_present = "expect")]
        send: Option<String>,
        /// Wait for a message with exactly this text in the visitor's history.
        #[arg(long)]
        expect: Option<String>,
        #[arg(long, default_value_t = 20)]
        timeout_secs: u64,
    },
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    kefud::app::raise_fd_limit();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        match cli.mode {
            Mode::Throughput {
                visitors,
                seconds,
                rate,
                window,
                text_bytes,
            } => {
                let load = Load {
                    visitors,
                    seconds,
                    rate,
                    window,
                    text: "x".repeat(text_bytes),
                };
                throughput(cli.spawn.as_deref(), cli.addr, &load).await
            }
            Mode::Idle { connections } => {
                idle(
                    cli.spawn.as_deref().context("idle needs --spawn")?,
                    connections,
                )
                .await
            }
            Mode::Coldstart { messages, runs } => {
                coldstart(
                    cli.spawn.as_deref().context("coldstart needs --spawn")?,
                    messages,
                    runs,
                )
                .await
            }
            Mode::Mqtt {
                mosquitto_conf,
                messages,
                publishers,
                timeout_secs,
            } => {
                let bin = cli.spawn.as_deref().context("mqtt needs --spawn")?;
                mqtt_throughput(
                    bin,
                    &mosquitto_conf,
                    messages,
                    publishers,
                    Duration::from_secs(timeout_secs),
                )
                .await
            }
            Mode::Spam {
                contacts,
                concurrency,
                runs,
                daemon_config,
            } => {
                spam(
                    cli.spawn.as_deref().context("spam needs --spawn")?,
                    contacts,
                    concurrency,
                    runs,
                    &daemon_config,
                )
                .await
            }
            Mode::Probe {
                visitor_id,
                send,
                expect,
                timeout_secs,
            } => {
                let deadline = Instant::now() + Duration::from_secs(timeout_secs);
                let check = match (send, expect) {
                    (Some(text), _) => ProbeCheck::Acked(text),
                    (None, Some(text)) => ProbeCheck::InHistory(text),
                    (None, None) => unreachable!("clap requires --send or --expect"),
                };
                tokio::time::timeout_at(deadline.into(), probe(cli.addr, &visitor_id, check))
                    .await
                    .context("probe timed out")?
            }
        }
    })
}

struct Load {
    visitors: usize,
    seconds: u64,
    rate: u64,
    window: usize,
    text: String,
}

#[derive(Default)]
struct Outcome {
    acked: u64,
    elapsed: Duration,
    latencies_us: Vec<u32>,
    errors: u64,
}

impl Outcome {
    fn rate(&self) -> f64 {
        self.acked as f64 / self.elapsed.as_secs_f64()
    }

    fn percentile_ms(&mut self, p: f64) -> f64 {
        if self.latencies_us.is_empty() {
            return f64::NAN;
        }
        self.latencies_us.sort_unstable();
        let i = ((self.latencies_us.len() as f64 - 1.0) * p).round() as usize;
        f64::from(self.latencies_us[i]) / 1000.0
    }
}

async fn throughput(spawn: Option<&Path>, addr: SocketAddr, load: &Load) -> Result<()> {
    let echo = start_echo_server().await?;
    let mut bare = drive(&format!("ws://{echo}/"), load, false).await?;
    let daemon = match spawn {
        Some(bin) => Some(Daemon::spawn(bin, None, "")?),
        None => None,
    };
    let target = daemon.as_ref().map_or(addr, |d| d.addr);
    let allocs_before = metric(target, "kefud_heap_allocations_total")
        .await
        .unwrap_or(0);
    let mut kefud = drive(&format!("ws://{target}/ws/visitor"), load, true).await?;
    let allocs_after = metric(target, "kefud_heap_allocations_total")
        .await
        .unwrap_or(0);
    let allocs_per_msg = (allocs_after - allocs_before) as f64 / kefud.acked.max(1) as f64;
    println!(
        "machine: {} cores, {}; load: {} visitors, window {}, {} s, offered {}, text {} B",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        std::env::consts::ARCH,
        load.visitors,
        load.window,
        load.seconds,
        if load.rate == 0 {
            "max".to_string()
        } else {
            format!("{} msg/s", load.rate)
        },
        load.text.len()
    );
    println!(
        "{:<28}{:>14}{:>10}{:>10}{:>10}{:>8}",
        "target", "acked msg/s", "p50 ms", "p99 ms", "p999 ms", "errors"
    );
    for (name, o) in [
        ("bare WebSocket echo", &mut bare),
        ("kefud durable (fsync'd)", &mut kefud),
    ] {
        let (p50, p99, p999) = (
            o.percentile_ms(0.5),
            o.percentile_ms(0.99),
            o.percentile_ms(0.999),
        );
        println!(
            "{name:<28}{:>14.0}{p50:>10.2}{p99:>10.2}{p999:>10.2}{:>8}",
            o.rate(),
            o.errors
        );
    }
    println!("ratio kefud / bare: {:.3}", kefud.rate() / bare.rate());
    println!("kefud heap allocations per acked message (whole daemon): {allocs_per_msg:.1}");
    if kefud.acked == 0 {
        bail!("kefud acknowledged nothing");
    }
    if let Some(d) = daemon {
        d.stop()?;
    }
    Ok(())
}

/// Runs the load against `url`; `kefud` selects the ack rule (kefud's ack frames, or any
/// frame back from the echo server).
async fn drive(url: &str, load: &Load, kefud: bool) -> Result<Outcome> {
    let acked = Arc::new(AtomicU64::new(0));
    let per_conn_rate = if load.rate == 0 {
        0.0
    } else {
        load.rate as f64 / load.visitors as f64
    };
    let mut conns = Vec::with_capacity(load.visitors);
    for i in 0..load.visitors {
        let url = if kefud {
            format!("{url}?visitor_id=load-{}-{i}", std::process::id())
        } else {
            url.to_string()
        };
        let (ws, _) = tokio_tungstenite::connect_async_with_config(&url, None, true)
            .await
            .with_context(|| format!("connect {url}"))?;
        conns.push(ws);
    }
    let started = Instant::now();
    let deadline = started + Duration::from_secs(load.seconds);
    let mut tasks = Vec::new();
    for (i, ws) in conns.into_iter().enumerate() {
        let (acked, text, window) = (Arc::clone(&acked), load.text.clone(), load.window);
        tasks.push(tokio::spawn(async move {
            visitor(ws, i, text, window, per_conn_rate, deadline, kefud, acked).await
        }));
    }
    let mut out = Outcome::default();
    for t in tasks {
        let (lat, errors) = t.await?;
        out.latencies_us.extend(lat);
        out.errors += errors;
    }
    out.acked = acked.load(Ordering::Relaxed);
    out.elapsed = Duration::from_secs(load.seconds);
    Ok(out)
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

#[allow(clippy::too_many_arguments)]
async fn visitor(
    ws: Ws,
    conn: usize,
    text: String,
    window: usize,
    rate: f64,
    deadline: Instant,
    kefud: bool,
    acked: Arc<AtomicU64>,
) -> (Vec<u32>, u64) {
    let (mut tx, mut rx) = ws.split();
    let mut sent_at = std::collections::VecDeque::new();
    let mut latencies = Vec::new();
    let mut errors = 0;
    let mut seq = 0u64;
    let interval = if rate > 0.0 {
        Some(Duration::from_secs_f64(1.0 / rate))
    } else {
        None
    };
    let mut next_send =
        Instant::now() + interval.map_or(Duration::ZERO, |i| i.mul_f64((conn % 97) as f64 / 97.0));
    loop {
        let now = Instant::now();
        if now >= deadline && sent_at.is_empty() {
            break;
        }
        let can_send = now < deadline && sent_at.len() < window && now >= next_send;
        if can_send {
            let frame =
                format!(r#"{{"type":"message","client_id":"c{conn}-{seq}","text":"{text}"}}"#);
            seq += 1;
            if tx.send(Message::Text(frame.into())).await.is_err() {
                errors += 1;
                break;
            }
            sent_at.push_back(Instant::now());
            if let Some(i) = interval {
                next_send += i;
            }
            continue;
        }
        let wait_until = if now >= deadline {
            deadline + Duration::from_secs(5)
        } else if sent_at.len() < window {
            next_send.min(deadline)
        } else {
            deadline + Duration::from_secs(5)
        };
        match tokio::time::timeout_at(wait_until.into(), rx.next()).await {
            Ok(Some(Ok(Message::Text(t)))) => {
                let is_ack = !kefud || t.as_str().starts_with(r#"{"type":"ack""#);
                if t.as_str().starts_with(r#"{"type":"error""#) {
                    errors += 1;
                    sent_at.pop_front();
                } else if is_ack {
                    if let Some(at) = sent_at.pop_front() {
                        if at < deadline {
                            latencies
                                .push(at.elapsed().as_micros().min(u128::from(u32::MAX)) as u32);
                            acked.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            }
            Ok(Some(Ok(_))) => {}
            Ok(Some(Err(_)) | None) => {
                errors += 1;
                break;
            }
            Err(_) if now >= deadline => break,
            Err(_) => {}
        }
    }
    (latencies, errors)
}

enum ProbeCheck {
    Acked(String),
    InHistory(String),
}

async fn probe(addr: SocketAddr, visitor_id: &str, check: ProbeCheck) -> Result<()> {
    // after=0 replays the whole history before live messages.
    let url = format!("ws://{addr}/ws/visitor?visitor_id={visitor_id}&after=0");
    let (mut ws, _) = tokio_tungstenite::connect_async(&url)
        .await
        .with_context(|| format!("connect {url}"))?;
    let client_id = format!("probe-{}", std::process::id());
    if let ProbeCheck::Acked(text) = &check {
        let frame = serde_json::json!({"type": "message", "client_id": client_id, "text": text});
        ws.send(Message::Text(frame.to_string().into())).await?;
    }
    while let Some(frame) = ws.next().await {
        let Message::Text(raw) = frame? else { continue };
        let v: serde_json::Value = serde_json::from_str(raw.as_str())?;
        let passed = match (&check, v["type"].as_str()) {
            (ProbeCheck::Acked(_), Some("ack")) => v["client_id"] == client_id.as_str(),
            (ProbeCheck::InHistory(text), Some("message")) => v["text"] == text.as_str(),
            (_, Some("error")) => bail!("kefud refused the probe: {raw}"),
            _ => false,
        };
        if passed {
            println!("{raw}");
            return Ok(());
        }
    }
    bail!("connection closed before the check passed")
}

/// The baseline: a bare tokio-tungstenite server that sends every text frame straight back.
async fn start_echo_server() -> Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let _ = stream.set_nodelay(true);
            tokio::spawn(async move {
                let Ok(ws) = tokio_tungstenite::accept_async(stream).await else {
                    return;
                };
                let (mut tx, mut rx) = ws.split();
                while let Some(Ok(msg)) = rx.next().await {
                    if msg.is_text() && tx.send(msg).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    Ok(addr)
}

async fn idle(bin: &Path, connections: usize) -> Result<()> {
    let daemon = Daemon::spawn(bin, None, "")?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss_idle = daemon.rss_kib()?;
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
    let rss_loaded = daemon.rss_kib()?;
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
    daemon.stop()
}

async fn coldstart(bin: &Path, messages: u64, runs: usize) -> Result<()> {
    let dir = tempdir()?;
    let daemon = Daemon::spawn(bin, Some(&dir), "")?;
    let filled = Instant::now();
    fill(daemon.addr, messages).await?;
    println!(
        "filled {messages} messages in {:.1} s",
        filled.elapsed().as_secs_f64()
    );
    daemon.stop()?;
    let mut times = Vec::new();
    let mut rss = 0;
    for _ in 0..runs {
        let started = Instant::now();
        let d = Daemon::spawn(bin, Some(&dir), "")?;
        wait_healthz(d.addr, started).await?;
        times.push(started.elapsed());
        tokio::time::sleep(Duration::from_millis(300)).await;
        rss = d.rss_kib()?;
        d.stop()?;
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
    std::fs::remove_dir_all(&dir).ok();
    Ok(())
}

async fn spam(
    bin: &Path,
    contacts: u64,
    concurrency: u64,
    runs: usize,
    config: &str,
) -> Result<()> {
    let empty = tempdir()?;
    let mut empty_starts = Vec::new();
    for _ in 0..runs {
        let started = Instant::now();
        let d = Daemon::spawn(bin, Some(&empty), config)?;
        wait_healthz(d.addr, started).await?;
        empty_starts.push(started.elapsed());
        d.stop()?;
    }
    std::fs::remove_dir_all(&empty).ok();

    let dir = tempdir()?;
    let daemon = Daemon::spawn(bin, Some(&dir), config)?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss_idle = daemon.rss_kib()?;
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
                daemon.rss_kib()? as f64 / 1024.0,
                daemon.rss_kib()?.saturating_sub(rss_idle) as f64 / 1024.0,
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
    let rss_full = daemon.rss_kib()?;
    println!(
        "{contacts} visitor ids, one message each: RSS {:.1} MiB, {:.2} x idle, {:.1} bytes per visitor id",
        rss_full as f64 / 1024.0,
        rss_full as f64 / rss_idle as f64,
        rss_full.saturating_sub(rss_idle) as f64 * 1024.0 / contacts as f64
    );
    daemon.stop()?;

    let mut starts = Vec::new();
    let mut rss = 0;
    for _ in 0..runs {
        let started = Instant::now();
        let d = Daemon::spawn(bin, Some(&dir), config)?;
        wait_healthz(d.addr, started).await?;
        starts.push(started.elapsed());
        tokio::time::sleep(Duration::from_millis(300)).await;
        rss = d.rss_kib()?;
        d.stop()?;
    }
    std::fs::remove_dir_all(&dir).ok();
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
async fn fill(addr: SocketAddr, messages: u64) -> Result<()> {
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

async fn wait_healthz(addr: SocketAddr, started: Instant) -> Result<()> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    while started.elapsed() < Duration::from_secs(60) {
        if let Ok(mut s) = tokio::net::TcpStream::connect(addr).await {
            let req = format!("GET /healthz HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
            if s.write_all(req.as_bytes()).await.is_ok() {
                let mut buf = Vec::new();
                let _ = s.read_to_end(&mut buf).await;
                if buf.starts_with(b"HTTP/1.1 200") {
                    return Ok(());
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    bail!("no /healthz within 60 s")
}

async fn metric(addr: SocketAddr, name: &str) -> Option<u64> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.ok()?;
    let req = format!("GET /metrics HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.ok()?;
    let mut buf = String::new();
    s.read_to_string(&mut buf).await.ok()?;
    buf.lines()
        .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
}

/// A mosquitto started from a config file, on a free loopback port, with its persistence in
/// a temporary directory.
struct Mosquitto {
    child: Child,
    port: u16,
    dir: PathBuf,
}

impl Mosquitto {
    fn start(conf: &Path) -> Result<Mosquitto> {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempdir()?;
        // Started as root, mosquitto drops to its own user, which must write here.
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777))?;
        let port = free_port()?;
        let text: String = std::fs::read_to_string(conf)
            .with_context(|| format!("read {}", conf.display()))?
            .lines()
            .map(|l| {
                if l.starts_with("listener ") {
                    format!("listener {port} 127.0.0.1")
                } else if l.starts_with("persistence_location ") {
                    format!("persistence_location {}/", dir.display())
                } else {
                    l.to_string()
                }
            })
            .collect::<Vec<_>>()
            .join("\n");
        let path = dir.join("mosquitto.conf");
        std::fs::write(&path, text)?;
        let bin = ["/usr/sbin/mosquitto", "/usr/bin/mosquitto"]
            .into_iter()
            .find(|p| Path::new(p).exists())
            .context("mosquitto is not installed (scripts/setup-host.sh installs it)")?;
        let mut child = Command::new(bin)
            .arg("-c")
            .arg(&path)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if child.try_wait()?.is_some() || started.elapsed() > Duration::from_secs(10) {
                bail!("mosquitto did not start");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(Mosquitto { child, port, dir })
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Publishes `count` QoS 1 messages (topic and payload from `make(i)`) as fast as the broker
/// acknowledges them (rumqttc's window of 100), returning when every PUBACK is in.
async fn publish_qos1(
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
async fn subscribe_qos1(
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

async fn mqtt_throughput(
    bin: &Path,
    conf: &Path,
    messages: usize,
    publishers: usize,
    limit: Duration,
) -> Result<()> {
    let broker = Mosquitto::start(conf)?;
    let per = messages / publishers.max(1);
    let total = per * publishers.max(1);
    let payload = |p: usize, i: usize| {
        serde_json::json!({"client_id": format!("p{p}-{i}"), "text": "load message of about sixty-four bytes of text, like a chat line"}).to_string()
    };

    // Baseline: mosquitto alone, publishers → one QoS 1 subscriber.
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
    let subscriber = tokio::spawn(subscribe_qos1(broker.port, "bench/#", total, ready_tx));
    ready_rx.await.context("subscriber did not subscribe")?;
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

    // kefud: the same publishers into kefu/in/load/{p}; done when kefud acknowledged them all
    // (each PUBACK after the journal's fsync).
    let daemon = Daemon::spawn(
        bin,
        None,
        &format!("[mqtt]\nenabled = true\nport = {}\n", broker.port),
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
    let allocations = metric(daemon.addr, "kefud_heap_allocations_total")
        .await
        .unwrap_or(0)
        - allocations_before;
    daemon.stop()?;
    let (bare, kefud) = (total as f64 / bare_secs, total as f64 / kefud_secs);
    println!("mqtt: {total} QoS 1 messages from {publishers} publishers, ~100 B payloads");
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
    Ok(())
}

/// A kefud process on a temporary (or given) data directory, listening on a loopback port.
struct Daemon {
    child: Child,
    addr: SocketAddr,
    /// Removed on stop when this daemon created it.
    own_dir: Option<PathBuf>,
}

impl Daemon {
    /// The port is found before the daemon listens (the `listening on` line), so the spawn →
    /// healthz time includes the whole startup.
    fn spawn(bin: &Path, dir: Option<&Path>, extra_config: &str) -> Result<Daemon> {
        let (dir, own_dir) = match dir {
            Some(d) => (d.to_path_buf(), None),
            None => {
                let d = tempdir()?;
                (d.clone(), Some(d))
            }
        };
        let port = free_port()?;
        let config = dir.join("kefud.toml");
        std::fs::write(
            &config,
            format!(
                "[server]\nlisten = \"127.0.0.1:{port}\"\n[storage]\ndata_dir = {:?}\n[limits]\nmessages_per_second = 1000000\nburst = 1000000\n[log]\nlevel = \"warn\"\n{extra_config}",
                dir.join("data").display().to_string()
            ),
        )?;
        let mut child = Command::new(bin)
            .arg("--config")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("spawn {}", bin.display()))?;
        let stderr = child.stderr.take().context("stderr")?;
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                eprintln!("kefud: {line}");
            }
        });
        Ok(Daemon {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            own_dir,
        })
        .and_then(|d| d.wait_ready())
    }

    fn wait_ready(self) -> Result<Daemon> {
        let started = Instant::now();
        while std::net::TcpStream::connect(self.addr).is_err() {
            if started.elapsed() > Duration::from_secs(120) {
                bail!("kefud did not listen within 120 s");
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        Ok(self)
    }

    fn rss_kib(&self) -> Result<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))?;
        status
            .lines()
            .find_map(|l| {
                l.strip_prefix("VmRSS:")?
                    .trim()
                    .trim_end_matches("kB")
                    .trim()
                    .parse()
                    .ok()
            })
            .context("VmRSS")
    }

    /// SIGTERM, and a clean exit within [`DAEMON_STOP`] (else it is killed, on drop).
    fn stop(mut self) -> Result<()> {
        // SAFETY: kill(2) on our own child.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let asked = Instant::now();
        let status = loop {
            if let Some(status) = self.child.try_wait()? {
                break status;
            }
            if asked.elapsed() > DAEMON_STOP {
                bail!("kefud did not stop within {DAEMON_STOP:?} of SIGTERM; killed");
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        if !status.success() {
            bail!("kefud exited with {status}");
        }
        Ok(())
    }
}

/// How long [`Daemon::stop`] waits after SIGTERM.
const DAEMON_STOP: Duration = Duration::from_secs(30);

/// Every exit path, a failed or timed-out run included, stops the kefud this tool started
/// (SIGKILL if it still runs) and removes the data directory it created.
impl Drop for Daemon {
    fn drop(&mut self) {
        if !matches!(self.child.try_wait(), Ok(Some(_))) {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
        if let Some(d) = self.own_dir.take() {
            std::fs::remove_dir_all(d).ok();
        }
    }
}

fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

fn tempdir() -> Result<PathBuf> {
    let mut raw = [0u8; 8];
    getrandom::getrandom(&mut raw)?;
    let name: String = raw.iter().map(|b| format!("{b:02x}")).collect();
    let dir = std::env::temp_dir().join(format!("kefud-load-{name}"));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

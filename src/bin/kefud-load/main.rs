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
//! - `logins`: a storm of concurrent wrong-password logins, once with a limiter that lets
//!   every guess reach the password gate and once with the default limiter; peak and after
//!   RSS against idle, status counts, an agent's `GET /me` latency during the storm against
//!   before it.
//! - `flood`: N half-sent requests and N idle visitor WebSockets (optionally with kefud under
//!   `prlimit --nofile`); kefud's open descriptors over time, refused connections, and whether
//!   an open and a new visitor still get their messages acknowledged.
//! - `soak`: mixed load for M minutes (visitors connecting, writing, uploading images and
//!   leaving; an agent logging in and replying; wrong logins; SIGTERM and restart of kefud on
//!   the same data directory every few minutes), RSS, descriptors and threads sampled into a
//!   CSV, and at the end, after a last restart, every acknowledged message checked stored.
//!
//! `throughput --slow-device a1-good|a1-cheap` (root, with --spawn) puts the spawned kefud's
//! data directory on a loop device throttled like an SD card (module `slow_device`), checks
//! the throttle, and adds the device's write IOs/s and bytes per acknowledged message.
//!
//! `--spawn PATH` starts the kefud binary at PATH on a temporary data directory (and stops it
//! at the end); otherwise `--addr` names a running kefud. Whatever the tool starts (kefud,
//! mosquitto, their temporary directories) it stops and removes on every exit path, a failed
//! or timed-out run and a SIGINT or SIGTERM to the tool included.

use std::collections::{BTreeMap, HashMap, HashSet};
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

mod slow_device;
use slow_device::{DevStat, SlowDevice};

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
        /// TOML appended to the spawned kefud's config, e.g. "[store]\ncommit_interval_ms = 1".
        #[arg(long, default_value = "")]
        kefud_config: String,
        /// Put the spawned kefud's data directory on a loop device throttled like an SD card
        /// (root; cgroup v1 blk-throttle): a1-good = 2,000 write IOPS, 20 MB/s; a1-cheap =
        /// 300 write IOPS, 10 MB/s, a worn or cheap card (the A1 class minimum is 500 random
        /// write IOPS); both 1,500 read IOPS (the A1 minimum). Limits IOPS and bandwidth
        /// only: per-I/O flush latency is not modelled.
        #[arg(long, value_enum)]
        slow_device: Option<slow_device::Profile>,
        /// Override the profile's write IOPS limit.
        #[arg(long, requires = "slow_device")]
        wiops: Option<u64>,
        /// Override the profile's write bytes/s limit.
        #[arg(long, requires = "slow_device")]
        wbps: Option<u64>,
        /// Override the profile's read IOPS limit.
        #[arg(long, requires = "slow_device")]
        riops: Option<u64>,
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
    /// Concurrent wrong-password logins against a fresh kefud per run: with a limiter high
    /// enough that every guess reaches the password gate, then with the default limiter.
    Logins {
        #[arg(long, default_value_t = 200)]
        concurrent: usize,
        /// Runs per limiter setting (a fresh kefud each, so its peak RSS is the storm's).
        #[arg(long, default_value_t = 3)]
        runs: usize,
    },
    /// N half-sent requests and N idle visitor WebSockets held against kefud.
    Flood {
        #[arg(long, default_value_t = 1000)]
        connections: usize,
        /// Start kefud under `prlimit --nofile=N:N`.
        #[arg(long)]
        nofile: Option<u64>,
        /// How long the flood is held once open (kefud's header-read timeout is 10 s).
        #[arg(long, default_value_t = 15)]
        hold_secs: u64,
        /// Floods one after another against the same kefud.
        #[arg(long, default_value_t = 1)]
        rounds: usize,
    },
    /// Mixed load with restarts; RSS, descriptors and threads sampled into a CSV.
    Soak {
        #[arg(long, default_value_t = 60)]
        minutes: u64,
        /// SIGTERM and restart kefud (same data directory) this often.
        #[arg(long, default_value_t = 600)]
        restart_every_secs: u64,
        #[arg(long, default_value_t = 5)]
        sample_secs: u64,
        /// Concurrent visitor loops (each connects, writes, sometimes uploads, leaves).
        #[arg(long, default_value_t = 20)]
        visitors: usize,
        #[arg(long, default_value = "soak.csv")]
        csv: PathBuf,
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
    // SIGINT or SIGTERM drops the running mode, and with it (on drop) whatever it started.
    rt.block_on(async move {
        use tokio::signal::unix::{signal, SignalKind};
        let (mut int, mut term) = (
            signal(SignalKind::interrupt())?,
            signal(SignalKind::terminate())?,
        );
        tokio::select! {
            result = run(cli) => result,
            _ = int.recv() => bail!("interrupted (SIGINT)"),
            _ = term.recv() => bail!("terminated (SIGTERM)"),
        }
    })
}

async fn run(cli: Cli) -> Result<()> {
    match cli.mode {
        Mode::Throughput {
            visitors,
            seconds,
            rate,
            window,
            text_bytes,
            kefud_config,
            slow_device,
            wiops,
            wbps,
            riops,
        } => {
            let load = Load {
                visitors,
                seconds,
                rate,
                window,
                text: "x".repeat(text_bytes),
            };
            let slow = match slow_device {
                Some(profile) => {
                    if cli.spawn.is_none() {
                        bail!("--slow-device needs --spawn (it puts the spawned kefud's data directory on the device)");
                    }
                    Some(slow_device::Limits::new(profile, wiops, wbps, riops)?)
                }
                None => None,
            };
            throughput(cli.spawn.as_deref(), cli.addr, &load, &kefud_config, slow).await
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
        Mode::Logins { concurrent, runs } => {
            logins(
                cli.spawn.as_deref().context("logins needs --spawn")?,
                concurrent,
                runs,
            )
            .await
        }
        Mode::Flood {
            connections,
            nofile,
            hold_secs,
            rounds,
        } => {
            flood(
                cli.spawn.as_deref().context("flood needs --spawn")?,
                connections,
                nofile,
                Duration::from_secs(hold_secs),
                rounds,
            )
            .await
        }
        Mode::Soak {
            minutes,
            restart_every_secs,
            sample_secs,
            visitors,
            csv,
        } => {
            let plan = SoakPlan {
                duration: Duration::from_secs(minutes * 60),
                restart_every: Duration::from_secs(restart_every_secs),
                sample_every: Duration::from_secs(sample_secs.max(1)),
                visitors,
                csv,
            };
            soak(cli.spawn.as_deref().context("soak needs --spawn")?, &plan).await
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

async fn throughput(
    spawn: Option<&Path>,
    addr: SocketAddr,
    load: &Load,
    kefud_config: &str,
    slow: Option<slow_device::Limits>,
) -> Result<()> {
    // Declared before the daemon, so that on every exit path it is dropped (unmounted,
    // detached) after the daemon has been stopped.
    let device = match slow {
        Some(limits) => {
            let device = SlowDevice::setup(limits)?;
            device.verify()?;
            Some(device)
        }
        None => None,
    };
    let echo = start_echo_server().await?;
    let mut bare = drive(&format!("ws://{echo}/"), load, false).await?;
    let daemon = match spawn {
        Some(bin) => Some(Daemon::spawn(
            bin,
            device.as_ref().map(|d| d.mount()),
            &kefud_config.replace("\\n", "\n"),
        )?),
        None => None,
    };
    let device_before = match &device {
        Some(d) => Some(d.sync_and_stat()?),
        None => None,
    };
    let target = daemon.as_ref().map_or(addr, |d| d.addr);
    let allocs_before = metric(target, "kefud_heap_allocations_total")
        .await
        .unwrap_or(0);
    let costs_before = Costs::read(daemon.as_ref(), target).await;
    let reaped_before = Reaped::read();
    let mut kefud = drive(&format!("ws://{target}/ws/visitor"), load, true).await?;
    // The store applies what was acknowledged a moment later: its writes count too.
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let costs_after = Costs::read(daemon.as_ref(), target).await;
    let allocs_after = metric(target, "kefud_heap_allocations_total")
        .await
        .unwrap_or(0);
    let allocs_per_msg = (allocs_after - allocs_before) as f64 / kefud.acked.max(1) as f64;
    let device_after = match &device {
        Some(d) => Some(d.sync_and_stat()?),
        None => None,
    };
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
    if let (Some(b), Some(a)) = (&costs_before, &costs_after) {
        let n = kefud.acked.max(1) as f64;
        let secs = load.seconds as f64 + 1.0;
        let by_thread: Vec<String> = a
            .threads
            .iter()
            .map(|(name, &ticks)| {
                let spent = ticks.saturating_sub(b.threads.get(name).copied().unwrap_or(0));
                (name, spent as f64 * 1e6 / ticks_per_second() / n)
            })
            .filter(|(_, us)| *us > 0.0)
            .map(|(name, us)| format!("{name} {us:.0}"))
            .collect();
        println!(
            "CPU us per acked message by thread: {}",
            by_thread.join(", ")
        );
        println!(
            "per acked message (whole daemon, /proc/PID/io and stat): disk {:.0} B written, {:.1} write syscalls, {:.1} us CPU; journal {:.0} B in {:.2} fsyncs",
            a.write_bytes.saturating_sub(b.write_bytes) as f64 / n,
            a.syscw.saturating_sub(b.syscw) as f64 / n,
            a.cpu_ticks.saturating_sub(b.cpu_ticks) as f64 * 1e6 / ticks_per_second() / n,
            a.journal_bytes.saturating_sub(b.journal_bytes) as f64 / n,
            a.fsyncs.saturating_sub(b.fsyncs) as f64 / n,
        );
        println!(
            "journal fsyncs/s: {:.0}; store commits/s {:.2}, checkpoints {}, WAL pages/msg {:.2} (over the run and 1 s after it)",
            a.fsyncs.saturating_sub(b.fsyncs) as f64 / secs,
            a.store_commits.saturating_sub(b.store_commits) as f64 / secs,
            a.store_checkpoints.saturating_sub(b.store_checkpoints),
            a.store_wal_pages.saturating_sub(b.store_wal_pages) as f64 / n,
        );
    }
    if let (Some(d), Some(b), Some(a)) = (&device, device_before, device_after) {
        print_device(d, &b, &a, &kefud, "over the run, 1 s after it and a syncfs");
    }
    if kefud.acked == 0 {
        bail!("kefud acknowledged nothing");
    }
    if let Some(d) = daemon {
        d.stop()?;
        if let (Some(dev), Some(b)) = (&device, device_before) {
            let a = dev.sync_and_stat()?;
            print_device(dev, &b, &a, &kefud, "through a clean stop and a syncfs");
        }
        // Stopped and reaped: its whole life's writes and CPU are now this tool's children's.
        // Less what it had used when the load began, that is the load's full cost, the
        // store's deferred commit and its last checkpoint (at the clean stop) included.
        if let (Some(b), Some(before), Some(after)) = (costs_before, reaped_before, Reaped::read())
        {
            let n = kefud.acked.max(1) as f64;
            let disk = after
                .write_bytes
                .saturating_sub(before.write_bytes + b.write_bytes);
            let cpu_at_start_us = (b.cpu_ticks as f64 * 1e6 / ticks_per_second()) as u64;
            let cpu_us = after.cpu_us.saturating_sub(before.cpu_us + cpu_at_start_us);
            println!(
                "per acked message through a clean stop (the store's deferred commit and final checkpoint included): disk {:.0} B written, {:.1} us CPU",
                disk as f64 / n,
                cpu_us as f64 / n
            );
        }
    }
    Ok(())
}

/// The slow device's figures for the kefud run, from its `/sys/block/loopN/stat` before and
/// after (each read after a `syncfs` of the mount).
fn print_device(device: &SlowDevice, b: &DevStat, a: &DevStat, kefud: &Outcome, span: &str) {
    let n = kefud.acked.max(1) as f64;
    let secs = a.at.duration_since(b.at).as_secs_f64();
    let writes = a.writes.saturating_sub(b.writes);
    println!(
        "slow device {}: kefud {:.0} acked msg/s; device {:.0} write IOs/s (limit {}; the {:.0} flushes/s are among them) over {secs:.1} s, {:.0} B written and {:.2} write IOs per acked message ({span})",
        device.limits.describe(),
        kefud.rate(),
        writes as f64 / secs,
        device.limits.wiops,
        a.flushes.saturating_sub(b.flushes) as f64 / secs,
        a.bytes_written().saturating_sub(b.bytes_written()) as f64 / n,
        writes as f64 / n,
    );
}

/// What this tool's reaped children used, all together: a child's `/proc/PID/io` and CPU time
/// are added to its parent's when the parent waits for it.
struct Reaped {
    /// The tool's own disk writes are nil during a run (it writes its config before), so the
    /// change of its `write_bytes` is its children's.
    write_bytes: u64,
    cpu_us: u64,
}

impl Reaped {
    fn read() -> Option<Reaped> {
        let io = std::fs::read_to_string("/proc/self/io").ok()?;
        let write_bytes = io
            .lines()
            .find_map(|l| l.strip_prefix("write_bytes:")?.trim().parse().ok())?;
        // SAFETY: getrusage fills the struct it is given.
        let usage = unsafe {
            let mut usage: libc::rusage = std::mem::zeroed();
            if libc::getrusage(libc::RUSAGE_CHILDREN, &mut usage) != 0 {
                return None;
            }
            usage
        };
        let us = |t: libc::timeval| t.tv_sec as u64 * 1_000_000 + t.tv_usec as u64;
        Some(Reaped {
            write_bytes,
            cpu_us: us(usage.ru_utime) + us(usage.ru_stime),
        })
    }
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
    let dir = ScratchDir::new()?;
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

/// What kefud has spent so far: bytes it caused to be written to disk and write syscalls
/// (`/proc/PID/io`: `write_bytes` counts pages when they are dirtied, SQLite's WAL and the
/// journal alike; `syscw` counts every write, sockets included), CPU ticks (`/proc/PID/stat`
/// utime + stime), and the journal's own bytes and fsyncs (`/metrics`).
#[derive(Debug, Clone)]
struct Costs {
    /// CPU ticks by thread name (threads of one name summed: tokio's workers).
    threads: BTreeMap<String, u64>,
    write_bytes: u64,
    syscw: u64,
    cpu_ticks: u64,
    journal_bytes: u64,
    fsyncs: u64,
    store_commits: u64,
    store_checkpoints: u64,
    store_wal_pages: u64,
}

impl Costs {
    /// Only for a kefud this tool spawned (its PID is known).
    async fn read(daemon: Option<&Daemon>, addr: SocketAddr) -> Option<Costs> {
        let pid = daemon?.pid();
        let io = std::fs::read_to_string(format!("/proc/{pid}/io")).ok()?;
        let field = |name: &str| {
            io.lines()
                .find_map(|l| l.strip_prefix(name)?.trim().parse::<u64>().ok())
        };
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        // Fields after the command name (which may hold spaces) start at field 3.
        let rest = stat.rsplit_once(')')?.1;
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let utime: u64 = fields.get(11)?.parse().ok()?;
        let stime: u64 = fields.get(12)?.parse().ok()?;
        let mut threads = BTreeMap::new();
        for task in std::fs::read_dir(format!("/proc/{pid}/task"))
            .ok()?
            .flatten()
        {
            let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
            let stat = std::fs::read_to_string(task.path().join("stat")).unwrap_or_default();
            let ticks = stat.rsplit_once(')').map_or(0, |(_, rest)| {
                rest.split_whitespace()
                    .skip(11)
                    .take(2)
                    .filter_map(|f| f.parse::<u64>().ok())
                    .sum()
            });
            *threads.entry(comm.trim().to_string()).or_insert(0) += ticks;
        }
        Some(Costs {
            threads,
            write_bytes: field("write_bytes:")?,
            syscw: field("syscw:")?,
            cpu_ticks: utime + stime,
            journal_bytes: metric(addr, "kefud_journal_bytes_total").await.unwrap_or(0),
            fsyncs: metric(addr, "kefud_journal_fsyncs_total")
                .await
                .unwrap_or(0),
            store_commits: metric(addr, "kefud_store_commits_total").await.unwrap_or(0),
            store_checkpoints: metric(addr, "kefud_store_checkpoints_total")
                .await
                .unwrap_or(0),
            store_wal_pages: metric(addr, "kefud_store_wal_pages_total")
                .await
                .unwrap_or(0),
        })
    }
}

fn ticks_per_second() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks > 0 {
        ticks as f64
    } else {
        100.0
    }
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
        Daemon::spawn_limited(bin, dir, extra_config, None)
    }

    /// As [`Daemon::spawn`], under `prlimit --nofile=N:N` when `nofile` is given (prlimit
    /// execs kefud, so the child's pid is kefud's).
    fn spawn_limited(
        bin: &Path,
        dir: Option<&Path>,
        extra_config: &str,
        nofile: Option<u64>,
    ) -> Result<Daemon> {
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
        let mut command = match nofile {
            Some(n) => {
                let mut c = Command::new("prlimit");
                c.arg(format!("--nofile={n}:{n}")).arg("--").arg(bin);
                c
            }
            None => Command::new(bin),
        };
        let mut child = command
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
        proc_status(self.pid(), "VmRSS")
    }

    fn pid(&self) -> u32 {
        self.child.id()
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

/// A data directory shared by several daemons in turn, removed on every exit path unless
/// kept for a post-mortem.
struct ScratchDir {
    path: PathBuf,
    keep: bool,
}

impl ScratchDir {
    fn new() -> Result<ScratchDir> {
        Ok(ScratchDir {
            path: tempdir()?,
            keep: false,
        })
    }
}

impl std::ops::Deref for ScratchDir {
    type Target = Path;

    fn deref(&self) -> &Path {
        &self.path
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        if !self.keep {
            std::fs::remove_dir_all(&self.path).ok();
        }
    }
}

fn tempdir() -> Result<PathBuf> {
    let mut raw = [0u8; 8];
    getrandom::getrandom(&mut raw)?;
    let name: String = raw.iter().map(|b| format!("{b:02x}")).collect();
    let dir = std::env::temp_dir().join(format!("kefud-load-{name}"));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

/// A number from `/proc/PID/status` (`VmRSS`, `VmHWM` in KiB; `Threads` a count).
fn proc_status(pid: u32, field: &str) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| {
            l.strip_prefix(field)?
                .strip_prefix(':')?
                .split_whitespace()
                .next()?
                .parse()
                .ok()
        })
        .with_context(|| format!("{field} in /proc/{pid}/status"))
}

/// The descriptors a process has open.
fn open_fds(pid: u32) -> Result<u64> {
    Ok(std::fs::read_dir(format!("/proc/{pid}/fd"))?.count() as u64)
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

fn median(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

fn json_body(v: &serde_json::Value) -> Option<(&'static str, Vec<u8>)> {
    Some(("application/json", v.to_string().into_bytes()))
}

/// One HTTP request on its own connection, answered within 60 s: the status and the body.
async fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<(&'static str, Vec<u8>)>,
) -> Result<(u16, bytes::Bytes)> {
    let url = kefud::httpc::Url::parse(&format!("http://{addr}{path}"))?;
    let mut headers = Vec::new();
    if let Some(t) = token {
        headers.push(("authorization", format!("Bearer {t}")));
    }
    let body = match body {
        Some((content_type, b)) => {
            headers.push(("content-type", content_type.to_string()));
            bytes::Bytes::from(b)
        }
        None => bytes::Bytes::new(),
    };
    let method = hyper::Method::from_bytes(method.as_bytes())?;
    let r = kefud::httpc::request(
        method,
        &url,
        &headers,
        body,
        Duration::from_secs(60),
        1 << 20,
    )
    .await?;
    Ok((r.status, r.body))
}

/// First-run setup through the API: the admin `username`, logged in; returns the token.
async fn setup_admin(addr: SocketAddr, username: &str, password: &str) -> Result<String> {
    let body = serde_json::json!({"shop_name": "load", "username": username, "password": password});
    let (status, body) = http(addr, "POST", "/api/v1/setup", None, json_body(&body)).await?;
    if status != 201 {
        bail!(
            "setup answered {status}: {}",
            String::from_utf8_lossy(&body)
        );
    }
    let v: serde_json::Value = serde_json::from_slice(&body)?;
    v["token"]
        .as_str()
        .map(str::to_owned)
        .context("token in the setup answer")
}

/// `GET /api/v1/me`, which must answer 200; its latency in ms.
async fn me_ms(addr: SocketAddr, token: &str) -> Result<f64> {
    let started = Instant::now();
    let (status, _) = http(addr, "GET", "/api/v1/me", Some(token), None).await?;
    if status != 200 {
        bail!("GET /me answered {status}");
    }
    Ok(started.elapsed().as_secs_f64() * 1000.0)
}

/// A visitor WebSocket that sends messages and waits for their acks.
struct Visitor {
    ws: Ws,
}

impl Visitor {
    /// Connects and waits for the welcome frame, within 10 s.
    async fn connect(addr: SocketAddr, visitor_id: &str, after: Option<u64>) -> Result<Visitor> {
        let mut url = format!("ws://{addr}/ws/visitor?visitor_id={visitor_id}");
        if let Some(a) = after {
            url.push_str(&format!("&after={a}"));
        }
        let (mut ws, _) = tokio::time::timeout(
            Duration::from_secs(10),
            tokio_tungstenite::connect_async(&url),
        )
        .await
        .context("connect timed out")??;
        tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .context("no welcome")?
            .context("closed before the welcome")??;
        Ok(Visitor { ws })
    }

    /// Sends a message and returns its id once acknowledged (within 10 s).
    async fn send_acked(
        &mut self,
        client_id: &str,
        text: &str,
        attachment: Option<&str>,
    ) -> Result<u64> {
        let mut frame =
            serde_json::json!({"type": "message", "client_id": client_id, "text": text});
        if let Some(a) = attachment {
            frame["attachment"] = a.into();
        }
        self.ws
            .send(Message::Text(frame.to_string().into()))
            .await?;
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let frame = tokio::time::timeout_at(deadline.into(), self.ws.next())
                .await
                .context("no ack within 10 s")?
                .context("closed before the ack")??;
            let Message::Text(raw) = frame else { continue };
            let v: serde_json::Value = serde_json::from_str(raw.as_str())?;
            match v["type"].as_str() {
                Some("ack") if v["client_id"] == client_id => {
                    return v["message_id"].as_u64().context("message_id in the ack")
                }
                Some("error") => bail!("refused: {raw}"),
                _ => {}
            }
        }
    }

    /// The ids of the messages the server replays (after=0 on connect) until `expected` are
    /// all seen or it is silent for 3 s (at most 60 s).
    async fn replayed(mut self, expected: &HashSet<u64>) -> Result<HashSet<u64>> {
        let mut seen = HashSet::new();
        let deadline = Instant::now() + Duration::from_secs(60);
        while !expected.is_subset(&seen) && Instant::now() < deadline {
            let Ok(frame) = tokio::time::timeout(Duration::from_secs(3), self.ws.next()).await
            else {
                break;
            };
            let Some(Ok(Message::Text(raw))) = frame else {
                break;
            };
            let v: serde_json::Value = serde_json::from_str(raw.as_str())?;
            if v["type"] == "message" {
                seen.extend(v["message_id"].as_u64());
            }
        }
        Ok(seen)
    }
}

/// One login storm against a fresh kefud.
struct Storm {
    rss_idle: u64,
    hwm_before: u64,
    hwm: u64,
    rss_after: u64,
    statuses: BTreeMap<u16, usize>,
    secs: f64,
    me_before_ms: f64,
    me_during_ms: Vec<f64>,
}

async fn logins(bin: &Path, concurrent: usize, runs: usize) -> Result<()> {
    println!("login storm: {concurrent} concurrent wrong-password logins (7 unknown names), a fresh kefud per run");
    for (label, extra) in [
        (
            "auth.login_failures_per_minute = 100000 (every guess reaches the password gate)",
            "[auth]\nlogin_failures_per_minute = 100000\n",
        ),
        (
            "default limiter (5 a minute per account, 15 per address)",
            "",
        ),
    ] {
        println!("{label}:");
        let mut storms = Vec::new();
        for run in 1..=runs {
            let s = login_storm(bin, concurrent, extra).await?;
            let statuses: Vec<String> = s
                .statuses
                .iter()
                .map(|(code, n)| {
                    if *code == 0 {
                        format!("no answer x {n}")
                    } else {
                        format!("{code} x {n}")
                    }
                })
                .collect();
            println!(
                "  run {run}: RSS idle {:.1} MiB; VmHWM after setup {:.1}, after the storm {:.1} MiB; RSS 2 s after {:.1} MiB; answered in {:.2} s: {}; GET /me before p50 {:.2} ms, during ({} requests) p50 {:.2} ms, max {:.2} ms",
                mib(s.rss_idle),
                mib(s.hwm_before),
                mib(s.hwm),
                mib(s.rss_after),
                s.secs,
                statuses.join(", "),
                s.me_before_ms,
                s.me_during_ms.len(),
                median(&s.me_during_ms),
                s.me_during_ms.iter().copied().fold(0.0, f64::max),
            );
            storms.push(s);
        }
        let m = |f: &dyn Fn(&Storm) -> f64| median(&storms.iter().map(f).collect::<Vec<_>>());
        println!(
            "  median of {runs}: RSS idle {:.1} MiB, peak (VmHWM) {:.1} MiB, after {:.1} MiB, storm {:.2} s, GET /me p50 before {:.2} ms / during {:.2} ms, max during {:.2} ms",
            m(&|s| mib(s.rss_idle)),
            m(&|s| mib(s.hwm)),
            m(&|s| mib(s.rss_after)),
            m(&|s| s.secs),
            m(&|s| s.me_before_ms),
            m(&|s| median(&s.me_during_ms)),
            m(&|s| s.me_during_ms.iter().copied().fold(0.0, f64::max)),
        );
    }
    Ok(())
}

async fn login_storm(bin: &Path, concurrent: usize, extra: &str) -> Result<Storm> {
    let d = Daemon::spawn(bin, None, extra)?;
    let (pid, addr) = (d.pid(), d.addr);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss_idle = proc_status(pid, "VmRSS")?;
    let token = setup_admin(addr, "li", "right-password").await?;
    let mut before = Vec::new();
    for _ in 0..20 {
        before.push(me_ms(addr, &token).await?);
    }
    let hwm_before = proc_status(pid, "VmHWM")?;
    let started = Instant::now();
    let storm: Vec<_> = (0..concurrent)
        .map(|i| {
            tokio::spawn(async move {
                let body = serde_json::json!({"username": format!("user{}", i % 7), "password": "guess-guess"});
                http(addr, "POST", "/api/v1/login", None, json_body(&body))
                    .await
                    .map_or(0, |(status, _)| status)
            })
        })
        .collect();
    // Meanwhile an agent's ordinary request, one after another (each bounded by `http`).
    let mut during = Vec::new();
    while !storm.iter().all(tokio::task::JoinHandle::is_finished)
        && started.elapsed() < Duration::from_secs(120)
    {
        during.push(me_ms(addr, &token).await?);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut statuses = BTreeMap::new();
    for t in storm {
        *statuses.entry(t.await?).or_insert(0) += 1;
    }
    let secs = started.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let storm = Storm {
        rss_idle,
        hwm_before,
        hwm: proc_status(pid, "VmHWM")?,
        rss_after: proc_status(pid, "VmRSS")?,
        statuses,
        secs,
        me_before_ms: median(&before),
        me_during_ms: during,
    };
    d.stop()?;
    Ok(storm)
}

/// A TCP connection that sent half a request's headers.
async fn half_request(addr: SocketAddr) -> Result<tokio::net::TcpStream> {
    use tokio::io::AsyncWriteExt;
    let mut s = tokio::net::TcpStream::connect(addr).await?;
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n").await?;
    Ok(s)
}

async fn flood(
    bin: &Path,
    connections: usize,
    nofile: Option<u64>,
    hold: Duration,
    rounds: usize,
) -> Result<()> {
    let d = Daemon::spawn_limited(bin, None, "", nofile)?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let idle = (open_fds(d.pid())?, proc_status(d.pid(), "VmRSS")?);
    println!(
        "flood: {connections} half-sent requests + {connections} idle visitor WebSockets, kefud {}",
        nofile.map_or("with its own descriptor limit".to_string(), |n| format!(
            "under prlimit --nofile={n}"
        ))
    );
    for round in 1..=rounds {
        println!("  round {round} of {rounds}:");
        flood_round(&d, connections, hold, round, idle).await?;
    }
    d.stop()
}

/// One flood against `d`, whose descriptors and RSS at idle were `idle`.
async fn flood_round(
    d: &Daemon,
    connections: usize,
    hold: Duration,
    round: usize,
    (fds_idle, rss_idle): (u64, u64),
) -> Result<()> {
    let (pid, addr) = (d.pid(), d.addr);
    let mut old = Visitor::connect(addr, "flood-old", None).await?;
    old.send_acked(&format!("before-{round}"), "before the flood", None)
        .await?;
    let refused_before = metric(addr, "kefud_connections_refused_total")
        .await
        .unwrap_or(0);

    let started = Instant::now();
    let sampling = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let sampler = {
        let sampling = Arc::clone(&sampling);
        tokio::spawn(async move {
            let mut samples = Vec::new();
            while sampling.load(Ordering::Relaxed) && started.elapsed() < Duration::from_secs(300) {
                if let Ok(n) = open_fds(pid) {
                    samples.push((started.elapsed().as_secs_f64(), n));
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            samples
        })
    };
    // Half-sent requests and idle WebSockets, interleaved, opened within 60 s at most.
    let (mut half, mut sockets) = (Vec::new(), Vec::new());
    let (mut half_failed, mut ws_failed) = (0, 0);
    for i in 0..connections {
        if started.elapsed() > Duration::from_secs(60) {
            bail!("opening the flood took over 60 s");
        }
        match tokio::time::timeout(Duration::from_secs(2), half_request(addr)).await {
            Ok(Ok(s)) => half.push(s),
            _ => half_failed += 1,
        }
        let url = format!("ws://{addr}/ws/visitor?visitor_id=flood-{i}");
        match tokio::time::timeout(
            Duration::from_secs(2),
            tokio_tungstenite::connect_async(url),
        )
        .await
        {
            Ok(Ok((ws, _))) => sockets.push(ws),
            _ => ws_failed += 1,
        }
    }
    let opened = started.elapsed();
    // The visitor connected before the flood, and a new one (retrying for up to 20 s).
    let old_ack = old
        .send_acked(&format!("during-{round}"), "during the flood", None)
        .await;
    let probe_started = Instant::now();
    let mut new_ack = None;
    let mut new_tries = 0;
    while new_ack.is_none() && probe_started.elapsed() < Duration::from_secs(20) {
        new_tries += 1;
        if let Ok(mut v) = Visitor::connect(addr, "flood-new", None).await {
            if v.send_acked(&format!("new-{round}-{new_tries}"), "a new visitor", None)
                .await
                .is_ok()
            {
                new_ack = Some(probe_started.elapsed());
            }
        }
        if new_ack.is_none() {
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
    tokio::time::sleep_until((started + opened + hold).into()).await;
    let fds_held = open_fds(pid)?;
    let mut buf = [0u8; 64];
    let half_cut = half
        .iter()
        .filter(|s| !matches!(s.try_read(&mut buf), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock))
        .count();
    let (half_open, ws_open) = (half.len(), sockets.len());
    drop(half);
    drop(sockets);
    tokio::time::sleep(Duration::from_secs(3)).await;
    sampling.store(false, Ordering::Relaxed);
    let samples = sampler.await?;
    let fds_after = open_fds(pid)?;
    let refused = metric(addr, "kefud_connections_refused_total")
        .await
        .unwrap_or(0)
        - refused_before;
    let accept_errors = metric(addr, "kefud_accept_errors_total").await.unwrap_or(0);
    let (health, _) = http(addr, "GET", "/healthz", None, None).await?;
    let rss_end = proc_status(pid, "VmRSS")?;

    println!(
        "  opened in {:.1} s: TCP connects failed {half_failed}, WebSocket handshakes failed {ws_failed} (refused at once)",
        opened.as_secs_f64()
    );
    println!(
        "  kefud descriptors: idle {fds_idle}, peak {}, at the end of the {} s hold {fds_held}, 3 s after the flood closed {fds_after}",
        samples.iter().map(|s| s.1).max().unwrap_or(0),
        hold.as_secs()
    );
    let mut timeline = String::new();
    let mut next = 0.0;
    for (t, n) in &samples {
        if *t >= next {
            timeline.push_str(&format!(" {t:.0}s:{n}"));
            next += 1.0;
        }
    }
    println!("  descriptors over time:{timeline}");
    println!(
        "  half-sent requests closed by kefud by the end of the hold: {half_cut} of {half_open} the client still held; WebSockets held: {ws_open}"
    );
    println!("  refused connections (kefud_connections_refused_total): {refused}; accept errors: {accept_errors}");
    println!(
        "  visitor connected before the flood: {}",
        match &old_ack {
            Ok(_) => "message acknowledged".to_string(),
            Err(e) => format!("NOT acknowledged ({e})"),
        }
    );
    println!(
        "  new visitor during the flood: {}",
        new_ack.map_or(
            format!("NOT acknowledged within 20 s ({new_tries} tries)"),
            |t| format!(
                "acknowledged {:.0} ms after the flood was open ({new_tries} tries)",
                t.as_secs_f64() * 1000.0
            )
        )
    );
    println!(
        "  /healthz after: {health}; RSS idle {:.1} MiB, after {:.1} MiB",
        mib(rss_idle),
        mib(rss_end)
    );
    Ok(())
}

/// xorshift64: the soak's choices, seeded from the OS.
struct Rng(u64);

impl Rng {
    fn new() -> Result<Rng> {
        let mut b = [0u8; 8];
        getrandom::getrandom(&mut b)?;
        Ok(Rng(u64::from_le_bytes(b) | 1))
    }

    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n.max(1)
    }
}

struct SoakPlan {
    duration: Duration,
    restart_every: Duration,
    sample_every: Duration,
    visitors: usize,
    csv: PathBuf,
}

/// What the soak's load got done, shared by its loops.
#[derive(Default)]
struct Tally {
    /// (visitor id, message id) of every acknowledged visitor message.
    acked: std::sync::Mutex<Vec<(String, u64)>>,
    /// (conversation id, message id) of every agent reply answered 201.
    replies: std::sync::Mutex<Vec<(u64, u64)>>,
    /// Upload ids sent in acknowledged messages.
    images: std::sync::Mutex<Vec<String>>,
    /// Login answers by kind ("right 200", "wrong 429", ...).
    logins: std::sync::Mutex<BTreeMap<String, u64>>,
    /// Failed steps by kind (most are connections cut by a restart).
    errors: std::sync::Mutex<BTreeMap<String, u64>>,
}

impl Tally {
    fn count(map: &std::sync::Mutex<BTreeMap<String, u64>>, key: String) {
        *map.lock()
            .expect("invariant: never poisoned")
            .entry(key)
            .or_insert(0) += 1;
    }

    fn error(&self, e: &anyhow::Error) {
        let kind: String = format!("{e:#}").chars().take(70).collect();
        Tally::count(&self.errors, kind);
    }

    fn len<T>(v: &std::sync::Mutex<Vec<T>>) -> usize {
        v.lock().expect("invariant: never poisoned").len()
    }
}

/// A 1x1 PNG's header followed by random bytes (the upload checks the magic number only).
fn image(rng: &mut Rng, len: usize) -> Vec<u8> {
    let mut body =
        b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x06\0\0\0\x1f\x15\xc4\x89".to_vec();
    while body.len() < len {
        body.extend_from_slice(&rng.below(u64::MAX).to_le_bytes());
    }
    body
}

async fn upload(addr: SocketAddr, visitor_id: &str, body: Vec<u8>) -> Result<String> {
    let path = format!("/api/v1/visitor/uploads?visitor_id={visitor_id}");
    let (status, answer) = http(addr, "POST", &path, None, Some(("image/png", body))).await?;
    if status != 201 {
        bail!("upload answered {status}");
    }
    let v: serde_json::Value = serde_json::from_slice(&answer)?;
    v["upload"].as_str().map(str::to_owned).context("upload id")
}

/// One visit: connect, write 1-8 messages (about one in twenty with an image), leave (with a
/// close frame or by dropping the socket).
async fn soak_visit(
    addr: SocketAddr,
    visitor_id: &str,
    client_prefix: &str,
    rng: &mut Rng,
    deadline: Instant,
    tally: &Tally,
) -> Result<()> {
    let mut v = Visitor::connect(addr, visitor_id, None).await?;
    for _ in 0..1 + rng.below(8) {
        if Instant::now() >= deadline {
            break;
        }
        let attachment = if rng.below(20) == 0 {
            let len = 4096 + rng.below(28 * 1024) as usize;
            Some(upload(addr, visitor_id, image(rng, len)).await?)
        } else {
            None
        };
        let client_id = format!("{client_prefix}-{}", rng.below(u64::MAX));
        let id = v
            .send_acked(
                &client_id,
                "soak: where is my order?",
                attachment.as_deref(),
            )
            .await?;
        tally
            .acked
            .lock()
            .expect("invariant: never poisoned")
            .push((visitor_id.to_string(), id));
        if let Some(a) = attachment {
            tally
                .images
                .lock()
                .expect("invariant: never poisoned")
                .push(a);
        }
        tokio::time::sleep(Duration::from_millis(50 + rng.below(300))).await;
    }
    if rng.below(2) == 0 {
        v.ws.close(None).await?;
        // The server's close frame, then the end (bounded).
        let _ = tokio::time::timeout(Duration::from_secs(2), async {
            while let Some(Ok(_)) = v.ws.next().await {}
        })
        .await;
    }
    Ok(())
}

async fn soak_visitor_loop(
    actor: usize,
    pool: u64,
    addr: tokio::sync::watch::Receiver<SocketAddr>,
    deadline: Instant,
    tally: Arc<Tally>,
) -> Result<()> {
    let mut rng = Rng::new()?;
    while Instant::now() < deadline {
        let visitor_id = format!("soak-{}", rng.below(pool));
        let target = *addr.borrow();
        let prefix = format!("a{actor}");
        if let Err(e) = soak_visit(target, &visitor_id, &prefix, &mut rng, deadline, &tally).await {
            tally.error(&e);
        }
        tokio::time::sleep(Duration::from_millis(rng.below(1000))).await;
    }
    Ok(())
}

/// The agent: logs in with the right password (and the device proof from its first login),
/// replies to an open conversation every second or two, logs out and in again every 30 s.
async fn soak_agent_loop(
    addr: tokio::sync::watch::Receiver<SocketAddr>,
    deadline: Instant,
    tally: Arc<Tally>,
) -> Result<()> {
    let mut rng = Rng::new()?;
    let (mut token, mut device): (Option<String>, Option<String>) = (None, None);
    let mut logged_in_at = Instant::now();
    while Instant::now() < deadline {
        let target = *addr.borrow();
        let step = async {
            if token.is_none() || logged_in_at.elapsed() > Duration::from_secs(30) {
                if let Some(t) = token.take() {
                    http(target, "POST", "/api/v1/logout", Some(&t), None).await?;
                }
                let body = serde_json::json!({"username": "li", "password": "right-password", "device": device});
                let (status, answer) =
                    http(target, "POST", "/api/v1/login", None, json_body(&body)).await?;
                Tally::count(&tally.logins, format!("right password: {status}"));
                if status != 200 {
                    bail!("right login answered {status}");
                }
                let v: serde_json::Value = serde_json::from_slice(&answer)?;
                token = v["token"].as_str().map(str::to_owned);
                device = v["device"].as_str().map(str::to_owned);
                logged_in_at = Instant::now();
            }
            let t = token.clone().context("token")?;
            let (status, answer) = http(
                target,
                "GET",
                "/api/v1/conversations?status=open&limit=20",
                Some(&t),
                None,
            )
            .await?;
            if status == 401 {
                token = None;
            }
            if status != 200 {
                bail!("conversations answered {status}");
            }
            let v: serde_json::Value = serde_json::from_slice(&answer)?;
            let ids: Vec<u64> = v["conversations"]
                .as_array()
                .map(|a| a.iter().filter_map(|c| c["id"].as_u64()).collect())
                .unwrap_or_default();
            if ids.is_empty() {
                return Ok(());
            }
            let conversation = ids[rng.below(ids.len() as u64) as usize];
            let body = serde_json::json!({"text": "soak: it ships today"});
            let path = format!("/api/v1/conversations/{conversation}/messages");
            let (status, answer) = http(target, "POST", &path, Some(&t), json_body(&body)).await?;
            if status != 201 {
                bail!("reply answered {status}");
            }
            let v: serde_json::Value = serde_json::from_slice(&answer)?;
            tally
                .replies
                .lock()
                .expect("invariant: never poisoned")
                .push((
                    conversation,
                    v["message_id"].as_u64().context("message_id")?,
                ));
            anyhow::Ok(())
        };
        if let Err(e) = step.await {
            tally.error(&e);
        }
        tokio::time::sleep(Duration::from_millis(1000 + rng.below(1000))).await;
    }
    Ok(())
}

/// Someone guessing the agent's password every 3 s (no device proof).
async fn soak_guesser_loop(
    addr: tokio::sync::watch::Receiver<SocketAddr>,
    deadline: Instant,
    tally: Arc<Tally>,
) -> Result<()> {
    // Let the agent's first login (which earns its device proof) go first.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let mut n = 0u64;
    while Instant::now() < deadline {
        n += 1;
        let target = *addr.borrow();
        let body = serde_json::json!({"username": "li", "password": format!("guess-{n}")});
        match http(target, "POST", "/api/v1/login", None, json_body(&body)).await {
            Ok((status, _)) => Tally::count(&tally.logins, format!("wrong password: {status}")),
            Err(e) => tally.error(&e),
        }
        tokio::time::sleep(Duration::from_secs(3)).await;
    }
    Ok(())
}

/// One row of the soak's CSV.
struct Sample {
    secs: f64,
    generation: u32,
    pid: u32,
    rss_kib: u64,
    fds: u64,
    threads: u64,
    connections: u64,
}

async fn sample(daemon: &Daemon, started: Instant, generation: u32) -> Result<Sample> {
    let pid = daemon.pid();
    Ok(Sample {
        secs: started.elapsed().as_secs_f64(),
        generation,
        pid,
        rss_kib: proc_status(pid, "VmRSS")?,
        fds: open_fds(pid)?,
        threads: proc_status(pid, "Threads")?,
        connections: metric(daemon.addr, "kefud_connections_open")
            .await
            .unwrap_or(0),
    })
}

async fn soak(bin: &Path, plan: &SoakPlan) -> Result<()> {
    use std::io::Write;
    let mut dir = ScratchDir::new()?;
    let mut daemon = Daemon::spawn(bin, Some(&dir), "")?;
    let admin = setup_admin(daemon.addr, "li", "right-password").await?;
    let (addr_tx, addr_rx) = tokio::sync::watch::channel(daemon.addr);
    let started = Instant::now();
    let deadline = started + plan.duration;
    let tally = Arc::new(Tally::default());
    let mut loops = Vec::new();
    for actor in 0..plan.visitors {
        loops.push(tokio::spawn(soak_visitor_loop(
            actor,
            plan.visitors as u64 * 10,
            addr_rx.clone(),
            deadline,
            Arc::clone(&tally),
        )));
    }
    loops.push(tokio::spawn(soak_agent_loop(
        addr_rx.clone(),
        deadline,
        Arc::clone(&tally),
    )));
    loops.push(tokio::spawn(soak_guesser_loop(
        addr_rx,
        deadline,
        Arc::clone(&tally),
    )));

    let mut csv = std::io::BufWriter::new(std::fs::File::create(&plan.csv)?);
    writeln!(
        csv,
        "seconds,generation,pid,rss_kib,fds,threads,connections,acked,replies,images,errors"
    )?;
    let mut samples: Vec<Sample> = Vec::new();
    let mut restarts = Vec::new();
    let (mut generation, mut last_start) = (0u32, Instant::now());
    let mut next_sample = started;
    while Instant::now() < deadline {
        if last_start.elapsed() >= plan.restart_every {
            let stopping = daemon;
            let asked = Instant::now();
            tokio::task::spawn_blocking(move || stopping.stop()).await??;
            let stopped = asked.elapsed();
            daemon = Daemon::spawn(bin, Some(&dir), "")?;
            wait_healthz(daemon.addr, asked).await?;
            restarts.push((stopped, asked.elapsed() - stopped));
            addr_tx.send_replace(daemon.addr);
            generation += 1;
            last_start = Instant::now();
        }
        if Instant::now() >= next_sample {
            let s = sample(&daemon, started, generation).await?;
            let errors: u64 = tally
                .errors
                .lock()
                .expect("invariant: never poisoned")
                .values()
                .sum();
            writeln!(
                csv,
                "{:.1},{},{},{},{},{},{},{},{},{},{errors}",
                s.secs,
                s.generation,
                s.pid,
                s.rss_kib,
                s.fds,
                s.threads,
                s.connections,
                Tally::len(&tally.acked),
                Tally::len(&tally.replies),
                Tally::len(&tally.images),
            )?;
            csv.flush()?;
            samples.push(s);
            next_sample += plan.sample_every;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    for l in loops {
        l.await??;
    }
    // A last restart, then every acknowledged message must be there.
    let stopping = daemon;
    tokio::task::spawn_blocking(move || stopping.stop()).await??;
    let daemon = Daemon::spawn(bin, Some(&dir), "")?;
    let acked = std::mem::take(&mut *tally.acked.lock().expect("invariant: never poisoned"));
    let replies = std::mem::take(&mut *tally.replies.lock().expect("invariant: never poisoned"));
    let images = std::mem::take(&mut *tally.images.lock().expect("invariant: never poisoned"));
    let mut by_visitor: HashMap<String, HashSet<u64>> = HashMap::new();
    for (v, id) in &acked {
        by_visitor.entry(v.clone()).or_default().insert(*id);
    }
    let mut missing = 0;
    for (v, ids) in &by_visitor {
        let seen = Visitor::connect(daemon.addr, v, Some(0))
            .await?
            .replayed(ids)
            .await?;
        missing += ids.difference(&seen).count();
    }
    let mut by_conversation: HashMap<u64, HashSet<u64>> = HashMap::new();
    for (c, id) in &replies {
        by_conversation.entry(*c).or_default().insert(*id);
    }
    let mut replies_missing = 0;
    for (c, ids) in &by_conversation {
        let mut seen = HashSet::new();
        let mut after = 0;
        // Pages of 1,000; bounded by what can have been written.
        for _ in 0..1000 {
            let path = format!("/api/v1/conversations/{c}/messages?after={after}&limit=1000");
            let (status, body) = http(daemon.addr, "GET", &path, Some(&admin), None).await?;
            if status != 200 {
                bail!("messages of conversation {c} answered {status}");
            }
            let v: serde_json::Value = serde_json::from_slice(&body)?;
            let page: Vec<u64> = v["messages"]
                .as_array()
                .map(|a| a.iter().filter_map(|m| m["id"].as_u64()).collect())
                .unwrap_or_default();
            seen.extend(&page);
            match page.last() {
                Some(last) if page.len() == 1000 => after = *last,
                _ => break,
            }
        }
        replies_missing += ids.difference(&seen).count();
    }
    let mut images_missing = 0;
    for id in &images {
        let (status, _) = http(
            daemon.addr,
            "GET",
            &format!("/api/v1/uploads/{id}"),
            Some(&admin),
            None,
        )
        .await?;
        if status != 200 {
            images_missing += 1;
        }
    }
    daemon.stop()?;

    println!(
        "soak: {:.1} min, {} visitor loops over {} visitor ids, an agent, a guesser; kefud restarted (SIGTERM) every {} s; samples every {} s in {}",
        plan.duration.as_secs_f64() / 60.0,
        plan.visitors,
        plan.visitors * 10,
        plan.restart_every.as_secs(),
        plan.sample_every.as_secs(),
        plan.csv.display()
    );
    println!(
        "  acknowledged: {} visitor messages ({} with an image), {} agent replies",
        acked.len(),
        images.len(),
        replies.len()
    );
    for (kind, n) in tally
        .logins
        .lock()
        .expect("invariant: never poisoned")
        .iter()
    {
        println!("  login, {kind}: {n}");
    }
    for (kind, n) in tally
        .errors
        .lock()
        .expect("invariant: never poisoned")
        .iter()
    {
        println!("  failed step x {n}: {kind}");
    }
    for (i, (stop, start)) in restarts.iter().enumerate() {
        println!(
            "  restart {}: SIGTERM to exit {:.0} ms, spawn to /healthz {:.0} ms",
            i + 1,
            stop.as_secs_f64() * 1000.0,
            start.as_secs_f64() * 1000.0
        );
    }
    println!(
        "  after a last restart: visitor messages missing {missing} of {}, agent replies missing {replies_missing} of {}, images unreadable {images_missing} of {}",
        acked.len(),
        replies.len(),
        images.len()
    );
    println!("  per lifetime (first sample 30 s after start -> last; min / median / max):");
    for g in 0..=generation {
        let life: Vec<&Sample> = samples
            .iter()
            .filter(|s| {
                s.generation == g
                    && s.secs
                        >= samples
                            .iter()
                            .find(|f| f.generation == g)
                            .map_or(0.0, |f| f.secs)
                            + 30.0
            })
            .collect();
        let (Some(first), Some(last)) = (life.first(), life.last()) else {
            continue;
        };
        let stats = |f: &dyn Fn(&Sample) -> f64| {
            let v: Vec<f64> = life.iter().map(|s| f(s)).collect();
            format!(
                "{:.1} -> {:.1} ({:.1} / {:.1} / {:.1})",
                f(first),
                f(last),
                v.iter().copied().fold(f64::INFINITY, f64::min),
                median(&v),
                v.iter().copied().fold(0.0, f64::max)
            )
        };
        println!(
            "    #{g} pid {}: RSS MiB {}; fds {}; threads {}",
            first.pid,
            stats(&|s| mib(s.rss_kib)),
            stats(&|s| s.fds as f64),
            stats(&|s| s.threads as f64)
        );
    }
    if missing + replies_missing + images_missing > 0 {
        dir.keep = true;
        bail!(
            "acknowledged data missing after the soak (data directory kept: {})",
            dir.path.display()
        );
    }
    Ok(())
}

//! `throughput`: kefud's durable acks against a bare WebSocket echo, and what each message costs (disk, syscalls, CPU by thread, through a clean stop).

use super::*;

pub(crate) struct Load {
    pub(crate) visitors: usize,
    pub(crate) seconds: u64,
    pub(crate) rate: u64,
    pub(crate) window: usize,
    pub(crate) text: String,
}

#[derive(Default)]
pub(crate) struct Outcome {
    pub(crate) acked: u64,
    pub(crate) elapsed: Duration,
    pub(crate) latencies_us: Vec<u32>,
    pub(crate) errors: u64,
}

impl Outcome {
    pub(crate) fn rate(&self) -> f64 {
        self.acked as f64 / self.elapsed.as_secs_f64()
    }

    pub(crate) fn percentile_ms(&mut self, p: f64) -> f64 {
        if self.latencies_us.is_empty() {
            return f64::NAN;
        }
        self.latencies_us.sort_unstable();
        let i = ((self.latencies_us.len() as f64 - 1.0) * p).round() as usize;
        f64::from(self.latencies_us[i]) / 1000.0
    }
}

/// One piece on purpose: the run's phases in the order they happen (bare echo, then kefud with
/// its costs read before and after, then the report), sharing their measurements.
pub(crate) async fn throughput(
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
        Some(bin) => Some(start_kefud(
            bin,
            device.as_ref().map(|d| d.mount()),
            &kefud_config.replace("\\n", "\n"),
            None,
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
        let mut total_switches = 0.0;
        let switches: Vec<String> = a
            .switches
            .iter()
            .map(|(name, &count)| {
                let per =
                    count.saturating_sub(b.switches.get(name).copied().unwrap_or(0)) as f64 / n;
                total_switches += per;
                (name, per)
            })
            .filter(|(_, per)| *per >= 0.05)
            .map(|(name, per)| format!("{name} {per:.2}"))
            .collect();
        println!(
            "context switches per acked message by thread: {} (total {total_switches:.2})",
            switches.join(", ")
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
        d.stop(DAEMON_STOP)?;
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
pub(crate) fn print_device(
    device: &SlowDevice,
    b: &DevStat,
    a: &DevStat,
    kefud: &Outcome,
    span: &str,
) {
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
pub(crate) struct Reaped {
    /// The tool's own disk writes are nil during a run (it writes its config before), so the
    /// change of its `write_bytes` is its children's.
    pub(crate) write_bytes: u64,
    pub(crate) cpu_us: u64,
}

impl Reaped {
    pub(crate) fn read() -> Option<Reaped> {
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
pub(crate) async fn drive(url: &str, load: &Load, kefud: bool) -> Result<Outcome> {
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

pub(crate) type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// One piece on purpose: one visitor's `select!` loop over its socket and its sending
/// schedule, whose arms share what is in flight.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn visitor(
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

pub(crate) enum ProbeCheck {
    Acked(String),
    InHistory(String),
}

pub(crate) async fn probe(addr: SocketAddr, visitor_id: &str, check: ProbeCheck) -> Result<()> {
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
pub(crate) async fn start_echo_server() -> Result<SocketAddr> {
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

/// What kefud has spent so far: bytes it caused to be written to disk and write syscalls
/// (`/proc/PID/io`: `write_bytes` counts pages when they are dirtied, SQLite's WAL and the
/// journal alike; `syscw` counts every write, sockets included), CPU ticks (`/proc/PID/stat`
/// utime + stime), and the journal's own bytes and fsyncs (`/metrics`).
#[derive(Debug, Clone)]
pub(crate) struct Costs {
    /// CPU ticks by thread name (threads of one name summed: tokio's workers).
    pub(crate) threads: BTreeMap<String, u64>,
    /// Context switches (voluntary and not) by thread name: each is the thread going to sleep
    /// or being preempted, so the voluntary ones count its wake-ups.
    pub(crate) switches: BTreeMap<String, u64>,
    pub(crate) write_bytes: u64,
    pub(crate) syscw: u64,
    pub(crate) cpu_ticks: u64,
    pub(crate) journal_bytes: u64,
    pub(crate) fsyncs: u64,
    pub(crate) store_commits: u64,
    pub(crate) store_checkpoints: u64,
    pub(crate) store_wal_pages: u64,
}

impl Costs {
    /// Only for a kefud this tool spawned (its PID is known).
    pub(crate) async fn read(daemon: Option<&Daemon>, addr: SocketAddr) -> Option<Costs> {
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
        let mut switches = BTreeMap::new();
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
            let status = std::fs::read_to_string(task.path().join("status")).unwrap_or_default();
            let switched: u64 = status
                .lines()
                .filter_map(|l| {
                    l.strip_prefix("voluntary_ctxt_switches:")
                        .or_else(|| l.strip_prefix("nonvoluntary_ctxt_switches:"))
                })
                .filter_map(|v| v.trim().parse::<u64>().ok())
                .sum();
            *switches.entry(comm.trim().to_string()).or_insert(0) += switched;
        }
        Some(Costs {
            threads,
            switches,
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

pub(crate) fn ticks_per_second() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks > 0 {
        ticks as f64
    } else {
        100.0
    }
}

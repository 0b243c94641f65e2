//! `logins` and `flood`: a login storm, and half-sent requests and idle sockets held against kefud.

use super::*;

/// One login storm against a fresh kefud.
pub(crate) struct Storm {
    pub(crate) rss_idle: u64,
    pub(crate) hwm_before: u64,
    pub(crate) hwm: u64,
    pub(crate) rss_after: u64,
    pub(crate) statuses: BTreeMap<u16, usize>,
    pub(crate) secs: f64,
    pub(crate) me_before_ms: f64,
    pub(crate) me_during_ms: Vec<f64>,
}

pub(crate) async fn logins(bin: &Path, concurrent: usize, runs: usize) -> Result<()> {
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

pub(crate) async fn login_storm(bin: &Path, concurrent: usize, extra: &str) -> Result<Storm> {
    let d = start_kefud(bin, None, extra, None)?;
    let (pid, addr) = (d.pid(), d.addr);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss_idle = proc::status(pid, "VmRSS")?;
    let token = setup_admin(addr, "li", "right-password").await?;
    let mut before = Vec::new();
    for _ in 0..20 {
        before.push(me_ms(addr, &token).await?);
    }
    let hwm_before = proc::status(pid, "VmHWM")?;
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
        hwm: proc::status(pid, "VmHWM")?,
        rss_after: proc::status(pid, "VmRSS")?,
        statuses,
        secs,
        me_before_ms: median(&before),
        me_during_ms: during,
    };
    d.stop(DAEMON_STOP)?;
    Ok(storm)
}

/// A TCP connection that sent half a request's headers.
pub(crate) async fn half_request(addr: SocketAddr) -> Result<tokio::net::TcpStream> {
    use tokio::io::AsyncWriteExt;
    let mut s = tokio::net::TcpStream::connect(addr).await?;
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n").await?;
    Ok(s)
}

pub(crate) async fn flood(
    bin: &Path,
    connections: usize,
    nofile: Option<u64>,
    hold: Duration,
    rounds: usize,
) -> Result<()> {
    let d = start_kefud(bin, None, "", nofile)?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let idle = (proc::open_fds(d.pid())?, proc::status(d.pid(), "VmRSS")?);
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
    d.stop(DAEMON_STOP)
}

/// One flood against `d`, whose descriptors and RSS at idle were `idle`.
///
/// One piece on purpose: a script (open the half-sent requests and idle sockets, sample, check
/// a visitor still gets acks, close, sample) whose steps share the connections held.
pub(crate) async fn flood_round(
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
                if let Ok(n) = proc::open_fds(pid) {
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
    let fds_held = proc::open_fds(pid)?;
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
    let fds_after = proc::open_fds(pid)?;
    let refused = metric(addr, "kefud_connections_refused_total")
        .await
        .unwrap_or(0)
        - refused_before;
    let accept_errors = metric(addr, "kefud_accept_errors_total").await.unwrap_or(0);
    let (health, _) = http(addr, "GET", "/healthz", None, None).await?;
    let rss_end = proc::status(pid, "VmRSS")?;

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

//! `soak`: an hour of mixed visitors, agents and guessers, sampled.

use super::*;

/// xorshift64: the soak's choices, seeded from the OS.
pub(crate) struct Rng(pub(crate) u64);

impl Rng {
    pub(crate) fn new() -> Result<Rng> {
        let mut b = [0u8; 8];
        getrandom::getrandom(&mut b)?;
        Ok(Rng(u64::from_le_bytes(b) | 1))
    }

    pub(crate) fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n.max(1)
    }
}

pub(crate) struct SoakPlan {
    pub(crate) duration: Duration,
    pub(crate) restart_every: Duration,
    pub(crate) sample_every: Duration,
    pub(crate) visitors: usize,
    pub(crate) csv: PathBuf,
}

/// What the soak's load got done, shared by its loops.
#[derive(Default)]
pub(crate) struct Tally {
    /// (visitor id, message id) of every acknowledged visitor message.
    pub(crate) acked: std::sync::Mutex<Vec<(String, u64)>>,
    /// (conversation id, message id) of every agent reply answered 201.
    pub(crate) replies: std::sync::Mutex<Vec<(u64, u64)>>,
    /// Upload ids sent in acknowledged messages.
    pub(crate) images: std::sync::Mutex<Vec<String>>,
    /// Login answers by kind ("right 200", "wrong 429", ...).
    pub(crate) logins: std::sync::Mutex<BTreeMap<String, u64>>,
    /// Failed steps by kind (most are connections cut by a restart).
    pub(crate) errors: std::sync::Mutex<BTreeMap<String, u64>>,
}

impl Tally {
    pub(crate) fn count(map: &std::sync::Mutex<BTreeMap<String, u64>>, key: String) {
        *map.lock()
            .expect("invariant: never poisoned")
            .entry(key)
            .or_insert(0) += 1;
    }

    pub(crate) fn error(&self, e: &anyhow::Error) {
        let kind: String = format!("{e:#}").chars().take(70).collect();
        Tally::count(&self.errors, kind);
    }

    pub(crate) fn len<T>(v: &std::sync::Mutex<Vec<T>>) -> usize {
        v.lock().expect("invariant: never poisoned").len()
    }
}

/// A 1x1 PNG's header followed by random bytes (the upload checks the magic number only).
pub(crate) fn image(rng: &mut Rng, len: usize) -> Vec<u8> {
    let mut body =
        b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x06\0\0\0\x1f\x15\xc4\x89".to_vec();
    while body.len() < len {
        body.extend_from_slice(&rng.below(u64::MAX).to_le_bytes());
    }
    body
}

pub(crate) async fn upload(addr: SocketAddr, visitor_id: &str, body: Vec<u8>) -> Result<String> {
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
pub(crate) async fn soak_visit(
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

pub(crate) async fn soak_visitor_loop(
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
pub(crate) async fn soak_agent_loop(
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
pub(crate) async fn soak_guesser_loop(
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
pub(crate) struct Sample {
    pub(crate) secs: f64,
    pub(crate) generation: u32,
    pub(crate) pid: u32,
    pub(crate) rss_kib: u64,
    pub(crate) fds: u64,
    pub(crate) threads: u64,
    pub(crate) connections: u64,
}

pub(crate) async fn sample(daemon: &Daemon, started: Instant, generation: u32) -> Result<Sample> {
    let pid = daemon.pid();
    Ok(Sample {
        secs: started.elapsed().as_secs_f64(),
        generation,
        pid,
        rss_kib: proc::status(pid, "VmRSS")?,
        fds: proc::open_fds(pid)?,
        threads: proc::status(pid, "Threads")?,
        connections: metric(daemon.addr, "kefud_connections_open")
            .await
            .unwrap_or(0),
    })
}

/// One piece on purpose: the soak is a script read top to bottom (start, rounds of mixed load
/// with restarts, the final check of every acknowledged message), and its steps share the
/// ledger of what was acknowledged.
pub(crate) async fn soak(bin: &Path, plan: &SoakPlan) -> Result<()> {
    use std::io::Write;
    let mut dir = scratch_dir()?;
    let mut daemon = start_kefud(bin, Some(dir.path()), "", None)?;
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
            tokio::task::spawn_blocking(move || stopping.stop(DAEMON_STOP)).await??;
            let stopped = asked.elapsed();
            daemon = start_kefud(bin, Some(dir.path()), "", None)?;
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
    tokio::task::spawn_blocking(move || stopping.stop(DAEMON_STOP)).await??;
    let daemon = start_kefud(bin, Some(dir.path()), "", None)?;
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
    daemon.stop(DAEMON_STOP)?;

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
        dir.disable_cleanup(true);
        bail!(
            "acknowledged data missing after the soak (data directory kept: {})",
            dir.path().display()
        );
    }
    Ok(())
}

//! What every mode shares: a kefud (and scratch directories) this tool starts and always stops, /proc readings, plain HTTP and a visitor client.

use super::*;

pub(crate) async fn wait_healthz(addr: SocketAddr, started: Instant) -> Result<()> {
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

pub(crate) async fn metric(addr: SocketAddr, name: &str) -> Option<u64> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.ok()?;
    let req = format!("GET /metrics HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.ok()?;
    let mut buf = String::new();
    s.read_to_string(&mut buf).await.ok()?;
    buf.lines()
        .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
}

/// A kefud process on a temporary (or given) data directory, listening on a loopback port.
pub(crate) struct Daemon {
    pub(crate) child: Child,
    pub(crate) addr: SocketAddr,
    /// Removed on stop when this daemon created it.
    pub(crate) own_dir: Option<PathBuf>,
}

impl Daemon {
    /// The port is found before the daemon listens (the `listening on` line), so the spawn →
    /// healthz time includes the whole startup.
    pub(crate) fn spawn(bin: &Path, dir: Option<&Path>, extra_config: &str) -> Result<Daemon> {
        Daemon::spawn_limited(bin, dir, extra_config, None)
    }

    /// As [`Daemon::spawn`], under `prlimit --nofile=N:N` when `nofile` is given (prlimit
    /// execs kefud, so the child's pid is kefud's).
    pub(crate) fn spawn_limited(
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

    pub(crate) fn wait_ready(self) -> Result<Daemon> {
        let started = Instant::now();
        while std::net::TcpStream::connect(self.addr).is_err() {
            if started.elapsed() > Duration::from_secs(120) {
                bail!("kefud did not listen within 120 s");
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        Ok(self)
    }

    pub(crate) fn rss_kib(&self) -> Result<u64> {
        proc_status(self.pid(), "VmRSS")
    }

    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGTERM, and a clean exit within [`DAEMON_STOP`] (else it is killed, on drop).
    pub(crate) fn stop(mut self) -> Result<()> {
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
pub(crate) const DAEMON_STOP: Duration = Duration::from_secs(30);

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

pub(crate) fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// A data directory shared by several daemons in turn, removed on every exit path unless
/// kept for a post-mortem.
pub(crate) struct ScratchDir {
    pub(crate) path: PathBuf,
    pub(crate) keep: bool,
}

impl ScratchDir {
    pub(crate) fn new() -> Result<ScratchDir> {
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

pub(crate) fn tempdir() -> Result<PathBuf> {
    let mut raw = [0u8; 8];
    getrandom::getrandom(&mut raw)?;
    let name: String = raw.iter().map(|b| format!("{b:02x}")).collect();
    let dir = std::env::temp_dir().join(format!("kefud-load-{name}"));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

/// A number from `/proc/PID/status` (`VmRSS`, `VmHWM` in KiB; `Threads` a count).
pub(crate) fn proc_status(pid: u32, field: &str) -> Result<u64> {
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
pub(crate) fn open_fds(pid: u32) -> Result<u64> {
    Ok(std::fs::read_dir(format!("/proc/{pid}/fd"))?.count() as u64)
}

pub(crate) fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

pub(crate) fn median(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

pub(crate) fn json_body(v: &serde_json::Value) -> Option<(&'static str, Vec<u8>)> {
    Some(("application/json", v.to_string().into_bytes()))
}

/// One HTTP request on its own connection, answered within 60 s: the status and the body.
pub(crate) async fn http(
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
pub(crate) async fn setup_admin(
    addr: SocketAddr,
    username: &str,
    password: &str,
) -> Result<String> {
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
pub(crate) async fn me_ms(addr: SocketAddr, token: &str) -> Result<f64> {
    let started = Instant::now();
    let (status, _) = http(addr, "GET", "/api/v1/me", Some(token), None).await?;
    if status != 200 {
        bail!("GET /me answered {status}");
    }
    Ok(started.elapsed().as_secs_f64() * 1000.0)
}

/// A visitor WebSocket that sends messages and waits for their acks.
pub(crate) struct Visitor {
    pub(crate) ws: Ws,
}

impl Visitor {
    /// Connects and waits for the welcome frame, within 10 s.
    pub(crate) async fn connect(
        addr: SocketAddr,
        visitor_id: &str,
        after: Option<u64>,
    ) -> Result<Visitor> {
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
    pub(crate) async fn send_acked(
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
    pub(crate) async fn replayed(mut self, expected: &HashSet<u64>) -> Result<HashSet<u64>> {
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

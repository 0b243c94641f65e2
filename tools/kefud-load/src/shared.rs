//! What every mode shares: kefud started the tool's way (the test kit's launcher, shared with
//! the integration tests), `/metrics`, plain HTTP, a visitor client, and a few figures.

use super::*;

/// How long a stop waits after SIGTERM before it kills kefud and fails the run.
pub(crate) const DAEMON_STOP: Duration = Duration::from_secs(30);

/// Starts the kefud at `bin` on `dir` (a temporary directory, removed on drop, when `None`),
/// with no limit on visitors' message rate, `extra` appended to its config, under `prlimit
/// --nofile` when `nofile` is given, and its warnings echoed as `kefud: ...`. Returns once
/// `/healthz` answers 200, so the time this call takes is spawn to ready.
pub(crate) fn start_kefud(
    bin: &Path,
    dir: Option<&Path>,
    extra: &str,
    nofile: Option<u64>,
) -> Result<Daemon> {
    let mut launch = Launch::new(bin)
        .config("[limits]\nmessages_per_second = 1000000\nburst = 1000000\n")
        .config(extra)
        .echo_warnings("kefud: ");
    if let Some(d) = dir {
        launch = launch.dir(d);
    }
    if let Some(n) = nofile {
        launch = launch.nofile(n);
    }
    launch.start()
}

/// A data directory several daemons use in turn; removed on drop, unless kept for a
/// post-mortem (`disable_cleanup`).
pub(crate) fn scratch_dir() -> Result<tempfile::TempDir> {
    Ok(tempfile::Builder::new().prefix("kefud-load-").tempdir()?)
}

/// The resident memory of a kefud, in KiB.
pub(crate) fn rss_kib(daemon: &Daemon) -> Result<u64> {
    proc::status(daemon.pid(), "VmRSS")
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

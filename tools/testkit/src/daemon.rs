//! The kefud launcher. [`Launch`] writes `DIR/kefud.toml` (loopback port 0 for HTTP and
//! HTTPS, the data in `DIR/data`, the caller's TOML appended), spawns the binary with `RUST_LOG=info`, learns its
//! address from the `listening on ADDR` line (logged once recovery is done and the listener is
//! bound) and returns once `/healthz` answers 200. [`Daemon`] keeps every line kefud writes
//! to stderr, for a test's assertions or a failure's message.
//!
//! Stopping: [`Daemon::terminate`] (SIGTERM, bounded wait, the exit status and the log),
//! [`Daemon::stop`] (the same, and the exit must be clean), [`Daemon::kill9`]; dropping the
//! handle kills a process still running and then removes a directory the launcher created.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use tempfile::TempDir;

/// From spawn to `/healthz` 200: recovery of a large journal (a million messages stored)
/// runs before kefud listens.
const READY_WITHIN: Duration = Duration::from_secs(120);

/// Writes `dir/kefud.toml`: the data in `dir/data`, loopback port 0 unless `extra` has its own
/// `[server]` table, then `extra`. Returns the file's path.
///
/// # Errors
/// The file could not be written.
pub fn write_config(dir: &Path, extra: &str) -> Result<PathBuf> {
    let path = dir.join("kefud.toml");
    let data = dir.join("data");
    let mut text = String::new();
    // HTTPS (on by default) on a port of its own too, so that daemons side by side never
    // compete for 8443. First, so that the caller's TOML follows the same sections as before.
    if !extra.contains("[tls]") {
        text.push_str("[tls]\nlisten = \"127.0.0.1:0\"\n\n");
    }
    text.push_str(&format!(
        "[storage]\ndata_dir = {:?}\n\n",
        data.display().to_string()
    ));
    if !extra.contains("[server]") {
        text.push_str("[server]\nlisten = \"127.0.0.1:0\"\n\n");
    }
    text.push_str(extra);
    std::fs::write(&path, text).with_context(|| format!("write {}", path.display()))?;
    Ok(path)
}

/// How to start one kefud; [`Launch::start`] starts it.
#[derive(Debug)]
pub struct Launch {
    bin: PathBuf,
    dir: Option<PathBuf>,
    config: String,
    env: Vec<(String, String)>,
    nofile: Option<u64>,
    echo: Option<String>,
}

impl Launch {
    /// The kefud binary at `bin`, on a temporary directory, with the default config.
    pub fn new(bin: impl Into<PathBuf>) -> Launch {
        Launch {
            bin: bin.into(),
            dir: None,
            config: String::new(),
            env: Vec::new(),
            nofile: None,
            echo: None,
        }
    }

    /// The directory for `kefud.toml` and `data/`: created if missing and left in place, so
    /// that a later daemon can start on the same data. Without it, a temporary directory
    /// removed when the [`Daemon`] is dropped.
    pub fn dir(mut self, dir: impl Into<PathBuf>) -> Launch {
        self.dir = Some(dir.into());
        self
    }

    /// TOML appended to the config (see [`write_config`]).
    pub fn config(mut self, extra: &str) -> Launch {
        self.config.push_str(extra);
        self
    }

    /// An environment variable for kefud (set after the launcher's own, so it may override
    /// `RUST_LOG` or hand kefud a `NOTIFY_SOCKET`).
    pub fn env(mut self, key: &str, value: &str) -> Launch {
        self.env.push((key.to_string(), value.to_string()));
        self
    }

    /// Runs kefud under `prlimit --nofile=N:N` (prlimit execs kefud, so the pid is kefud's).
    pub fn nofile(mut self, limit: u64) -> Launch {
        self.nofile = Some(limit);
        self
    }

    /// Copies to this process's stderr, as they come and after `prefix`, the lines kefud
    /// writes other than INFO, DEBUG and TRACE events: warnings, errors, a panic's message.
    pub fn echo_warnings(mut self, prefix: &str) -> Launch {
        self.echo = Some(prefix.to_string());
        self
    }

    /// Starts kefud and waits until it is ready: listening, and `/healthz` answering 200.
    ///
    /// # Errors
    /// The directory or config could not be written, the binary not spawned, or kefud exited
    /// (the error holds its exit status and its whole log) or was not ready within 120 s
    /// (killed; the error holds the log).
    pub fn start(self) -> Result<Daemon> {
        let (dir, temp) = match &self.dir {
            Some(d) => {
                std::fs::create_dir_all(d).with_context(|| format!("create {}", d.display()))?;
                (d.clone(), None)
            }
            None => {
                let t = tempfile::Builder::new().prefix("kefud-").tempdir()?;
                (t.path().to_path_buf(), Some(t))
            }
        };
        let config = write_config(&dir, &self.config)?;
        let mut command = match self.nofile {
            Some(n) => {
                let mut c = Command::new("prlimit");
                c.arg(format!("--nofile={n}:{n}")).arg("--").arg(&self.bin);
                c
            }
            None => Command::new(&self.bin),
        };
        let mut child = command
            .arg("--config")
            .arg(&config)
            // Inherited from a test runner or a shell under systemd, these would send kefud's
            // log to the journal instead of the pipe read here, and its readiness and
            // watchdog messages to the runner's own unit.
            .env_remove("JOURNAL_STREAM")
            .env_remove("NOTIFY_SOCKET")
            .env_remove("WATCHDOG_USEC")
            .env_remove("WATCHDOG_PID")
            // The `listening on` line is an INFO event.
            .env("RUST_LOG", "info")
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("spawn {}", self.bin.display()))?;
        let stderr = child.stderr.take().context("kefud's stderr")?;
        let log = Arc::new(Mutex::new(String::new()));
        let (listening_tx, listening) = mpsc::channel();
        let reader = {
            let log = Arc::clone(&log);
            let echo = self.echo.clone();
            std::thread::spawn(move || read_log(stderr, &log, echo.as_deref(), &listening_tx))
        };
        let mut daemon = Daemon {
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            dir,
            child: Some(child),
            log,
            reader: Some(reader),
            _temp: temp,
        };
        // On an error the daemon is dropped: killed, and its temporary directory removed.
        daemon.wait_ready(&listening)?;
        Ok(daemon)
    }
}

/// Keeps every line of kefud's stderr in `log` (warnings and worse echoed after `echo` when
/// given) and sends the address of the first `listening on ADDR` line. Ends when kefud closes
/// its stderr.
fn read_log(
    stderr: impl Read,
    log: &Mutex<String>,
    echo: Option<&str>,
    listening: &mpsc::Sender<String>,
) {
    for line in BufReader::new(stderr).lines() {
        let Ok(line) = line else { break };
        if let Some(rest) = line.split("listening on ").nth(1) {
            let addr = rest.split_whitespace().next().unwrap_or("").to_string();
            let _ = listening.send(addr);
        }
        if let Some(prefix) = echo {
            // An event line is `TIMESTAMP LEVEL message` (the fmt layer, no colours on a pipe).
            let level = line.split_whitespace().nth(1);
            if !matches!(level, Some("INFO" | "DEBUG" | "TRACE")) {
                eprintln!("{prefix}{line}");
            }
        }
        let mut l = log
            .lock()
            .expect("invariant: the log lock is never poisoned");
        l.push_str(&line);
        l.push('\n');
    }
}

/// One kefud process, started by [`Launch::start`].
pub struct Daemon {
    /// Where it listens, from its `listening on` line.
    pub addr: SocketAddr,
    /// Holds `kefud.toml` and `data/`.
    pub dir: PathBuf,
    /// `None` once stopped or killed through this handle.
    child: Option<Child>,
    /// Every line of its stderr so far.
    log: Arc<Mutex<String>>,
    /// The thread filling `log`; it ends soon after the process does.
    reader: Option<JoinHandle<()>>,
    /// The directory the launcher created; a field, so it is removed after `drop` has killed
    /// the process.
    _temp: Option<TempDir>,
}

impl Daemon {
    fn wait_ready(&mut self, listening: &mpsc::Receiver<String>) -> Result<()> {
        let deadline = Instant::now() + READY_WITHIN;
        let addr = loop {
            if let Ok(addr) = listening.recv_timeout(Duration::from_millis(50)) {
                break addr;
            }
            self.fail_if_exited()?;
            if Instant::now() > deadline {
                bail!(
                    "kefud did not listen within {READY_WITHIN:?}:\n{}",
                    self.log()
                );
            }
        };
        self.addr = addr
            .parse()
            .map_err(|e| anyhow!("listening address {addr:?}: {e}\n{}", self.log()))?;
        while !healthz_ok(self.addr) {
            self.fail_if_exited()?;
            if Instant::now() > deadline {
                bail!(
                    "kefud's /healthz did not answer 200 within {READY_WITHIN:?}:\n{}",
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        Ok(())
    }

    /// An error with the exit status and the whole log if the process has exited.
    fn fail_if_exited(&mut self) -> Result<()> {
        let child = self.child.as_mut().context("kefud was stopped")?;
        if let Some(status) = child.try_wait()? {
            // The process is gone, so its stderr reaches end of file: the log is complete.
            self.join_reader();
            bail!(
                "kefud exited with {status} before it was ready:\n{}",
                self.log()
            );
        }
        Ok(())
    }

    /// Waits (at most 2 s) for the log reader to reach the end of the exited process's
    /// output.
    fn join_reader(&mut self) {
        if let Some(reader) = self.reader.take() {
            let deadline = Instant::now() + Duration::from_secs(2);
            while !reader.is_finished() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(5));
            }
            if reader.is_finished() {
                let _ = reader.join();
            }
        }
    }

    /// Its process id.
    ///
    /// # Panics
    /// After it was stopped through this handle (which consumes it, so never).
    pub fn pid(&self) -> u32 {
        self.child
            .as_ref()
            .expect("invariant: a Daemon not consumed has its process")
            .id()
    }

    /// Everything it has logged so far.
    pub fn log(&self) -> String {
        self.log
            .lock()
            .expect("invariant: the log lock is never poisoned")
            .clone()
    }

    /// `http://ADDR{path}`.
    pub fn http(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// `ws://ADDR{path_and_query}`.
    pub fn ws(&self, path_and_query: &str) -> String {
        format!("ws://{}{}", self.addr, path_and_query)
    }

    /// Sends a signal (SIGHUP to reload, ...).
    pub fn signal(&self, signal: libc::c_int) {
        // SAFETY: kill(2) on our own child, which has not been reaped (so its pid is its own).
        unsafe { libc::kill(self.pid() as libc::pid_t, signal) };
    }

    /// SIGTERM, then waits up to `within` for the exit; returns the exit status and the whole
    /// log.
    ///
    /// # Errors
    /// It did not exit within `within` (it is then killed, as the handle is dropped).
    pub fn terminate(mut self, within: Duration) -> Result<(ExitStatus, String)> {
        self.signal(libc::SIGTERM);
        let asked = Instant::now();
        let status = loop {
            let child = self
                .child
                .as_mut()
                .expect("invariant: a Daemon not consumed has its process");
            if let Some(status) = child.try_wait()? {
                self.child = None;
                break status;
            }
            if asked.elapsed() > within {
                bail!(
                    "kefud did not stop within {within:?} of SIGTERM; killed:\n{}",
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        self.join_reader();
        Ok((status, self.log()))
    }

    /// [`Daemon::terminate`], and the exit must be clean (status 0).
    ///
    /// # Errors
    /// It did not exit within `within`, or exited with another status.
    pub fn stop(self, within: Duration) -> Result<()> {
        let (status, log) = self.terminate(within)?;
        if !status.success() {
            bail!("kefud exited with {status}:\n{log}");
        }
        Ok(())
    }

    /// SIGKILL: no chance to flush or sync anything.
    pub fn kill9(mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// One `GET /healthz` on its own connection (2 s at most): whether it answered 200.
fn healthz_ok(addr: SocketAddr) -> bool {
    let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_secs(2)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    let _ = s.set_write_timeout(Some(Duration::from_secs(2)));
    let request = format!("GET /healthz HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    if s.write_all(request.as_bytes()).is_err() {
        return false;
    }
    let mut head = [0u8; 12];
    s.read_exact(&mut head).is_ok() && head.starts_with(b"HTTP/1.1 200")
}

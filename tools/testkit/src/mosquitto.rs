//! The mosquitto launcher. [`Mosquitto::start`] takes a broker config (the SD image's
//! `image/overlay/etc/mosquitto/conf.d/kefu.conf`, so that what is tested and measured is the
//! broker as shipped), puts its one `listener` on a free loopback port and its persistence in
//! a directory of ours, and waits until the port accepts with the broker still running (a
//! broker that could not bind exits, and the port answering would be someone else's).
//! [`Mosquitto::with_config`] runs a whole config of the caller's (several listeners, TLS).
//!
//! The broker writes its log to `DIR/mosquitto.log`. [`Mosquitto::stop`] is a SIGTERM (it saves
//! its persistence file); dropping the handle kills it, then removes a directory the launcher
//! created.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use tempfile::TempDir;

/// From spawn to the port accepting.
const READY_WITHIN: Duration = Duration::from_secs(10);
/// From SIGTERM to the exit (it writes its persistence file first).
const STOP_WITHIN: Duration = Duration::from_secs(20);

/// A mosquitto process on loopback.
pub struct Mosquitto {
    /// The port its config names (the one [`Mosquitto::start`] chose).
    pub port: u16,
    /// Holds `mosquitto.conf`, `mosquitto.log` and the persistence file.
    dir: PathBuf,
    /// `None` while stopped.
    child: Option<Child>,
    /// The directory the launcher created; a field, so it is removed after `drop` has killed
    /// the process.
    _temp: Option<TempDir>,
}

fn mosquitto_bin() -> Result<&'static str> {
    ["/usr/sbin/mosquitto", "/usr/bin/mosquitto"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .context("mosquitto is not installed: run scripts/setup-host.sh (the test command does)")
}

impl Mosquitto {
    /// The config at `conf` with its one `listener` line replaced by a free loopback port and
    /// its `persistence_location` by `dir` (added when absent). Without `dir`, a temporary
    /// directory removed on drop.
    ///
    /// # Errors
    /// `conf` cannot be read or has not exactly one `listener` line; the directory cannot be
    /// prepared; mosquitto is not installed or did not start (the error holds its log).
    pub fn start(conf: &Path, dir: Option<&Path>) -> Result<Mosquitto> {
        use std::os::unix::fs::PermissionsExt;
        let shipped =
            std::fs::read_to_string(conf).with_context(|| format!("read {}", conf.display()))?;
        let (dir, temp) = match dir {
            Some(d) => {
                std::fs::create_dir_all(d).with_context(|| format!("create {}", d.display()))?;
                (d.to_path_buf(), None)
            }
            None => {
                let t = tempfile::Builder::new().prefix("mosquitto-").tempdir()?;
                (t.path().to_path_buf(), Some(t))
            }
        };
        // Started as root, mosquitto drops to its own user, which must write here.
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777))?;
        let port = crate::free_port()?;
        let listeners = shipped
            .lines()
            .filter(|l| l.starts_with("listener "))
            .count();
        if listeners != 1 {
            bail!(
                "{}: {listeners} `listener` lines; one is needed to put on a free port",
                conf.display()
            );
        }
        let persistence = format!("persistence_location {}/", dir.display());
        let mut text: Vec<String> = shipped
            .lines()
            .map(|l| {
                if l.starts_with("listener ") {
                    format!("listener {port} 127.0.0.1")
                } else if l.starts_with("persistence_location ") {
                    persistence.clone()
                } else {
                    l.to_string()
                }
            })
            .collect();
        if !text.contains(&persistence) {
            text.push(persistence);
        }
        let mut broker = Mosquitto::with_config(&dir, &text.join("\n"), port)?;
        broker._temp = temp;
        Ok(broker)
    }

    /// Exactly `config` as its config file, in `dir` (which must exist); ready once `port`
    /// (one of its listeners) accepts.
    ///
    /// # Errors
    /// The config cannot be written; mosquitto is not installed or did not start.
    pub fn with_config(dir: &Path, config: &str, port: u16) -> Result<Mosquitto> {
        std::fs::write(dir.join("mosquitto.conf"), config)
            .with_context(|| format!("write {}/mosquitto.conf", dir.display()))?;
        let mut broker = Mosquitto {
            port,
            dir: dir.to_path_buf(),
            child: None,
            _temp: None,
        };
        broker.spawn()?;
        Ok(broker)
    }

    fn spawn(&mut self) -> Result<()> {
        let log = std::fs::File::create(self.dir.join("mosquitto.log"))?;
        let mut child = Command::new(mosquitto_bin()?)
            .arg("-c")
            .arg(self.dir.join("mosquitto.conf"))
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("spawn mosquitto")?;
        match accepting(&mut child, self.port) {
            Ok(()) => {
                self.child = Some(child);
                Ok(())
            }
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                Err(anyhow!("{e}:\n{}", self.log()))
            }
        }
    }

    /// Its process id while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Bytes it has caused to be written to storage (`write_bytes` of `/proc/PID/io`: its
    /// persistence saves; its log goes to a file too, but the image's config logs little).
    /// `None` while stopped or where `/proc` does not say.
    pub fn disk_bytes_written(&self) -> Option<u64> {
        let pid = self.child.as_ref()?.id();
        let io = std::fs::read_to_string(format!("/proc/{pid}/io")).ok()?;
        io.lines()
            .find_map(|l| l.strip_prefix("write_bytes:"))
            .and_then(|v| v.trim().parse().ok())
    }

    /// What it has logged (`DIR/mosquitto.log`).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("mosquitto.log")).unwrap_or_default()
    }

    /// SIGTERM, and waits for the exit: mosquitto saves its persistence file (sessions,
    /// queued messages) first. Nothing to do when already stopped.
    ///
    /// # Errors
    /// It did not exit within 20 s (it is then killed).
    pub fn stop(&mut self) -> Result<()> {
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        // SAFETY: kill(2) on our own child, not yet reaped.
        unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
        let asked = Instant::now();
        while child.try_wait()?.is_none() {
            if asked.elapsed() > STOP_WITHIN {
                let _ = child.kill();
                let _ = child.wait();
                bail!("mosquitto did not stop within {STOP_WITHIN:?} of SIGTERM; killed");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }

    /// SIGKILL, and waits for the exit: a broker without persistence loses everything it
    /// held (sessions, queued and in-flight messages). Nothing to do when already stopped.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again after [`Mosquitto::stop`] or [`Mosquitto::kill9`]: the same config,
    /// port and directory.
    ///
    /// # Errors
    /// mosquitto did not start.
    pub fn start_again(&mut self) -> Result<()> {
        if self.child.is_some() {
            return Ok(());
        }
        self.spawn()
    }

    /// [`Mosquitto::stop`], then the same config, port and directory again (what it saved
    /// is loaded back).
    ///
    /// # Errors
    /// As [`Mosquitto::stop`] and [`Mosquitto::with_config`].
    pub fn restart(&mut self) -> Result<()> {
        self.stop()?;
        self.spawn()
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Waits until `port` accepts with `child` still running.
fn accepting(child: &mut Child, port: u16) -> Result<()> {
    let deadline = Instant::now() + READY_WITHIN;
    loop {
        if let Some(status) = child.try_wait()? {
            bail!("mosquitto exited with {status}");
        }
        if TcpStream::connect(("127.0.0.1", port)).is_ok() && child.try_wait()?.is_none() {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("mosquitto did not accept on port {port} within {READY_WITHIN:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

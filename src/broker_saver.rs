//! `kefud broker-saver`: makes the local mosquitto write what it acknowledged to disk within a
//! moment of receiving it, without writing anything while nothing arrives.
//!
//! mosquitto 2.0 sends PUBACK as it reads a QoS 1 message and saves its state (sessions, queued
//! and in-flight messages) only by rewriting its whole database file: every `autosave_interval`
//! seconds (even when idle), after every N changes (`autosave_on_changes`; with N = 1, a burst
//! that queues thousands of messages rewrites the growing queue once per message), or on
//! SIGUSR1. This process subscribes to every topic at QoS 0 and, once something arrived, sends
//! the broker SIGUSR1 at most once per `min_interval` (100 ms by default): the save follows
//! within about that, a burst costs at most ten saves a second, and an idle broker writes
//! nothing. It runs as the broker's user (the SD image's `kefu-broker-saver.service`).
//!
//! Invariants: a signal is sent only after the message that called for it was seen, and the
//! broker stores a message (queues it for its subscribers) before it fans it out to this one,
//! so the save that follows the signal holds every message seen before it; a message seen after
//! a signal calls for another. Once the subscription is in place (SUBACK) one save is asked
//! for, since something may have arrived while there was none; a signal that could not be sent
//! leaves the save pending. Topics starting with `$` are not covered by `#` (MQTT's rule): only
//! the broker's own `$SYS` uses them here. "Within 100 ms" holds while this process keeps up
//! with the broker's traffic; behind a backlog of its own queue, the signal follows when it
//! reaches the message. The decisions are in [`SaveSchedule`]; the loop only does I/O.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};

/// When to ask the broker to save.
#[derive(Debug, Clone)]
pub struct SaveSchedule {
    min_interval: Duration,
    last_signal: Option<Instant>,
    /// Since when something waits for a save.
    pending_since: Option<Instant>,
}

impl SaveSchedule {
    pub fn new(min_interval: Duration) -> SaveSchedule {
        SaveSchedule {
            min_interval,
            last_signal: None,
            pending_since: None,
        }
    }

    /// Something arrived (or may have) at `now`.
    pub fn arrived(&mut self, now: Instant) {
        self.pending_since.get_or_insert(now);
    }

    /// When the next signal is due; `None` while nothing waits for a save.
    pub fn due(&self) -> Option<Instant> {
        let pending = self.pending_since?;
        Some(match self.last_signal {
            Some(last) => pending.max(last + self.min_interval),
            None => pending,
        })
    }

    /// The broker was signalled at `now`: what arrived before is in the save it makes.
    pub fn signalled(&mut self, now: Instant) {
        self.last_signal = Some(now);
        self.pending_since = None;
    }

    /// The signal could not be sent at `now`: the save stays pending, tried again one interval
    /// later.
    pub fn failed(&mut self, now: Instant) {
        self.last_signal = Some(now);
    }
}

/// Where the broker is and how to find its process.
#[derive(Debug, Clone)]
pub struct Options {
    pub host: String,
    pub port: u16,
    pub broker: BrokerProcess,
    pub min_interval: Duration,
}

/// The broker's process id, read from its pid file at each signal (a restarted broker has a
/// new one), or given.
#[derive(Debug, Clone)]
pub enum BrokerProcess {
    PidFile(PathBuf),
    Pid(i32),
}

impl BrokerProcess {
    fn pid(&self) -> Result<i32, String> {
        match self {
            BrokerProcess::Pid(p) => Ok(*p),
            BrokerProcess::PidFile(path) => std::fs::read_to_string(path)
                .map_err(|e| format!("{}: {e}", path.display()))?
                .trim()
                .parse()
                .map_err(|_| format!("{}: not a process id", path.display())),
        }
    }

    /// SIGUSR1: the broker saves its state at the next turn of its event loop.
    fn ask_to_save(&self) -> Result<(), String> {
        let pid = self.pid()?;
        if pid <= 1 {
            return Err(format!("refusing to signal process {pid}"));
        }
        // SAFETY: kill(2) with a plain signal number; no memory is involved.
        if unsafe { libc::kill(pid, libc::SIGUSR1) } != 0 {
            return Err(format!(
                "signal to the broker (process {pid}): {}",
                std::io::Error::last_os_error()
            ));
        }
        Ok(())
    }
}

/// Runs until the process is stopped; reconnects to the broker as often as needed.
pub async fn run(opts: Options) {
    let mut mqtt = MqttOptions::new(
        format!("kefu-broker-saver-{}", std::process::id()),
        opts.host.clone(),
        opts.port,
    );
    // Payloads are never read: take any packet the broker may send.
    mqtt.set_keep_alive(Duration::from_secs(30))
        .set_clean_session(true)
        .set_max_packet_size(256 << 20, 256 << 20);
    let mut schedule = SaveSchedule::new(opts.min_interval);
    let mut saves: u64 = 0;
    eprintln!(
        "kefud broker-saver: watching {}:{}; a save at most every {} ms after something arrives",
        opts.host,
        opts.port,
        opts.min_interval.as_millis()
    );
    loop {
        let (client, mut events) = AsyncClient::new(mqtt.clone(), 10);
        if client.subscribe("#", QoS::AtMostOnce).await.is_err() {
            return;
        }
        let error = loop {
            let wait = schedule
                .due()
                .map(|due| due.saturating_duration_since(Instant::now()));
            tokio::select! {
                event = events.poll() => match event {
                    Ok(Event::Incoming(Packet::Publish(_))) => schedule.arrived(Instant::now()),
                    Ok(Event::Incoming(Packet::SubAck(_))) => schedule.arrived(Instant::now()),
                    Ok(_) => {}
                    Err(e) => break e.to_string(),
                },
                _ = tokio::time::sleep(wait.unwrap_or_default()), if wait.is_some() => {
                    match opts.broker.ask_to_save() {
                        Ok(()) => {
                            saves += 1;
                            schedule.signalled(Instant::now());
                        }
                        Err(e) => {
                            // Still pending: tried again after the interval.
                            eprintln!("kefud broker-saver: {e}");
                            schedule.failed(Instant::now());
                        }
                    }
                }
            }
        };
        eprintln!(
            "kefud broker-saver: broker connection: {error}; {saves} saves so far; retrying in 1 s"
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn nothing_arrived_nothing_to_save() {
        let s = SaveSchedule::new(100 * MS);
        assert_eq!(s.due(), None);
    }

    #[test]
    fn the_first_arrival_is_saved_at_once_and_a_burst_at_most_once_per_interval() {
        let t0 = Instant::now();
        let mut s = SaveSchedule::new(100 * MS);
        s.arrived(t0);
        assert_eq!(s.due(), Some(t0));
        s.signalled(t0);
        assert_eq!(s.due(), None);
        // A burst right after: one save, 100 ms after the last.
        for i in 1..50 {
            s.arrived(t0 + i * MS);
        }
        assert_eq!(s.due(), Some(t0 + 100 * MS));
        s.signalled(t0 + 100 * MS);
        // Quiet for a while, then one message: saved at once.
        s.arrived(t0 + 1000 * MS);
        assert_eq!(s.due(), Some(t0 + 1000 * MS));
    }

    #[test]
    fn what_arrives_after_a_signal_calls_for_another() {
        let t0 = Instant::now();
        let mut s = SaveSchedule::new(100 * MS);
        s.arrived(t0);
        s.signalled(t0 + MS);
        s.arrived(t0 + 2 * MS);
        assert_eq!(s.due(), Some(t0 + 101 * MS));
    }

    #[test]
    fn a_signal_that_failed_is_tried_again_an_interval_later() {
        let t0 = Instant::now();
        let mut s = SaveSchedule::new(100 * MS);
        s.arrived(t0);
        s.failed(t0);
        assert_eq!(s.due(), Some(t0 + 100 * MS));
    }

    #[test]
    fn a_process_id_that_would_signal_everything_is_refused() {
        for pid in [0, 1, -1] {
            assert!(BrokerProcess::Pid(pid).ask_to_save().is_err());
        }
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("mosquitto.pid");
        std::fs::write(&file, "not a pid\n").unwrap();
        assert!(BrokerProcess::PidFile(file.clone()).pid().is_err());
        std::fs::write(&file, "4242\n").unwrap();
        assert_eq!(BrokerProcess::PidFile(file).pid(), Ok(4242));
    }
}

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
//! - `cluster`: three kefud boxes in cluster mode, each with its own mosquitto bridged to a
//!   central one: origin ack to applied on both other boxes, steady and in a burst, and the
//!   catch-up rate after a partition, each against the brokers alone.
//! - `import`: a generated go-fly dump (`gofly_dump`) through `kefud import gofly`, against a
//!   parse-only pass over the same file; `gofly-dump` writes such a dump for other uses.
//! - `handoff`: what one hand-off between two sleeping threads costs on this machine (CPU and
//!   wall time), with the channel kefud's pipeline threads use: the unit of its per-message
//!   cost at low rates, where each message wakes each thread in turn.
//!
//! `throughput --slow-device a1-good|a1-cheap` (root, with --spawn) puts the spawned kefud's
//! data directory on a loop device throttled like an SD card (module `slow_device`), checks
//! the throttle, and adds the device's write IOs/s and bytes per acknowledged message.
//!
//! `--spawn PATH` starts the kefud binary at PATH on a temporary data directory (and stops it
//! at the end); otherwise `--addr` names a running kefud. kefud and mosquitto are started by
//! the test kit's launchers (`tools/testkit`, the integration tests' own); whatever the tool
//! starts (kefud, mosquitto, their temporary directories) it stops and removes on every exit
//! path, a failed or timed-out run and a SIGINT or SIGTERM to the tool included.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use futures_util::{SinkExt, StreamExt};
use kefud_testkit::{proc, Daemon, Launch, Mosquitto};
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::Message;

mod cluster;
mod cluster_stages;
mod gofly_dump;
mod handoff;
mod import;
mod memory;
mod mqtt;
mod shared;
mod slow_device;
mod soak;
mod storm;
mod throughput;

use cluster::*;
use memory::*;
use mqtt::*;
use shared::*;
use slow_device::{DevStat, SlowDevice};
use soak::*;
use storm::*;
use throughput::*;

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
        /// Run `kefud broker-saver` beside the broker in both phases, as the SD image does.
        #[arg(long)]
        broker_saver: bool,
    },
    /// Cluster sync: three boxes, each mosquitto bridged to a central one; origin ack to
    /// applied on both other boxes at a steady rate and in a burst, and the catch-up rate
    /// after a partition, each against the brokers alone in the same run.
    Cluster {
        #[arg(long, default_value_t = 50)]
        steady_rate: u64,
        #[arg(long, default_value_t = 10)]
        steady_secs: u64,
        #[arg(long, default_value_t = 500)]
        burst_rate: u64,
        #[arg(long, default_value_t = 4)]
        burst_secs: u64,
        #[arg(long, default_value_t = 20_000)]
        catch_up_ops: usize,
    },
    /// A generated go-fly dump of N messages imported by `kefud import gofly` (with --spawn),
    /// against a parse-only pass over the same file; then imported again (nothing twice).
    Import {
        #[arg(long, default_value_t = 1_000_000)]
        messages: u64,
        #[arg(long, default_value_t = 40_000)]
        visitors: u64,
        #[arg(long, default_value_t = 10)]
        agents: u32,
        /// Write the dump here (kept) instead of a temporary directory.
        #[arg(long)]
        dump: Option<PathBuf>,
    },
    /// Writes a go-fly dump (mysqldump of go-fly's database) of N messages to a file.
    GoflyDump {
        #[arg(long, default_value_t = 10_000)]
        messages: u64,
        #[arg(long, default_value_t = 500)]
        visitors: u64,
        #[arg(long, default_value_t = 3)]
        agents: u32,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// One row per INSERT (mysqldump --skip-extended-insert).
        #[arg(long)]
        single_row_inserts: bool,
        #[arg(long)]
        out: PathBuf,
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
    /// What one hand-off between two threads costs here (CPU and wall time), with the channel
    /// kefud's pipeline uses between its threads
    Handoff {
        #[arg(long, default_value_t = 20_000)]
        round_trips: u32,
        #[arg(long, default_value_t = 5)]
        runs: usize,
        /// Pause between round trips (0: back to back).
        #[arg(long, default_value_t = 0)]
        gap_ms: u64,
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

/// One piece on purpose: the command line's modes, one arm each.
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
        Mode::Import {
            messages,
            visitors,
            agents,
            dump,
        } => {
            let bin = cli.spawn.clone().context("import needs --spawn")?;
            tokio::task::spawn_blocking(move || {
                import::import_bench(&bin, messages, visitors, agents, dump)
            })
            .await?
        }
        Mode::GoflyDump {
            messages,
            visitors,
            agents,
            seed,
            single_row_inserts,
            out,
        } => {
            let spec = gofly_dump::Spec {
                messages,
                visitors,
                agents,
                seed,
                extended_insert: !single_row_inserts,
                rows_per_insert: 0,
            };
            let mut file = std::io::BufWriter::new(std::fs::File::create(&out)?);
            let summary = gofly_dump::write_dump(&spec, &mut file)?;
            std::io::Write::flush(&mut file)?;
            println!(
                "gofly-dump: {} messages of {} visitors, {} agents, {} reply items, {} bytes",
                summary.messages,
                summary.visitors,
                summary.agents,
                summary.reply_items,
                summary.bytes
            );
            Ok(())
        }
        Mode::Cluster {
            steady_rate,
            steady_secs,
            burst_rate,
            burst_secs,
            catch_up_ops,
        } => {
            let bin = cli.spawn.as_deref().context("cluster needs --spawn")?;
            cluster_sync(
                bin,
                steady_rate,
                steady_secs,
                burst_rate,
                burst_secs,
                catch_up_ops,
            )
            .await
        }
        Mode::Mqtt {
            mosquitto_conf,
            messages,
            publishers,
            timeout_secs,
            broker_saver,
        } => {
            let bin = cli.spawn.as_deref().context("mqtt needs --spawn")?;
            mqtt_throughput(
                bin,
                &mosquitto_conf,
                messages,
                publishers,
                Duration::from_secs(timeout_secs),
                broker_saver,
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
        Mode::Handoff {
            round_trips,
            runs,
            gap_ms,
        } => {
            let gap = Duration::from_millis(gap_ms);
            tokio::task::spawn_blocking(move || handoff::handoff(round_trips, runs, gap)).await?
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

//! `import`: a go-fly dump of N messages (`gofly_dump`) imported by `kefud import gofly`,
//! against a plain parse-only pass over the same file in the same run (kefud's mysqldump
//! reader counting rows, in this process), then run again to show it imports nothing twice.
//! Prints the rate and total time of each, the import's CPU time, bytes written and peak
//! memory (from the child's own accounting, `wait4`), and checks the count the import
//! reports against what the generator wrote.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use kefud::import::mysqldump::{DumpReader, DumpSink, Malformed, Row};

use crate::gofly_dump::{write_dump, Spec};

/// What one `kefud import` child cost.
struct ChildCost {
    wall: Duration,
    cpu: Duration,
    written_bytes: u64,
    peak_rss_kib: u64,
    stdout: String,
    stderr: String,
    success: bool,
}

/// Runs `kefud --config CONFIG import gofly DUMP` and reads its costs when it is reaped.
fn run_import(bin: &Path, config: &Path, dump: &Path) -> Result<ChildCost> {
    let started = Instant::now();
    let child = Command::new(bin)
        .arg("--config")
        .arg(config)
        .args(["import", "gofly"])
        .arg(dump)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot start {}", bin.display()))?;
    let pid = child.id() as libc::pid_t;
    let output = std::thread::spawn(move || child.wait_with_output());
    // wait_with_output reaps the child itself; its accounting is read from /proc while the
    // output thread drains the pipes, the last sample before exit being the figure.
    let mut peak_rss_kib = 0;
    let mut written_bytes = 0;
    let mut cpu = Duration::ZERO;
    let ticks = clock_ticks();
    while !output.is_finished() {
        if let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) {
            if let Some(v) = field_kib(&status, "VmHWM:") {
                peak_rss_kib = peak_rss_kib.max(v);
            }
        }
        if let Ok(io) = std::fs::read_to_string(format!("/proc/{pid}/io")) {
            if let Some(v) = io
                .lines()
                .find_map(|l| l.strip_prefix("write_bytes:")?.trim().parse().ok())
            {
                written_bytes = v;
            }
        }
        if let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            // Fields 14 and 15 (utime, stime) after the command name's closing parenthesis.
            if let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) {
                let f: Vec<&str> = rest.split_whitespace().collect();
                if let (Some(u), Some(s)) = (f.get(11), f.get(12)) {
                    let t = u.parse::<u64>().unwrap_or(0) + s.parse::<u64>().unwrap_or(0);
                    cpu = Duration::from_secs_f64(t as f64 / ticks);
                }
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = output
        .join()
        .map_err(|_| anyhow::anyhow!("output thread panicked"))??;
    Ok(ChildCost {
        wall: started.elapsed(),
        cpu,
        written_bytes,
        peak_rss_kib,
        stdout: String::from_utf8_lossy(&out.stdout).into(),
        stderr: String::from_utf8_lossy(&out.stderr).into(),
        success: out.status.success(),
    })
}

fn clock_ticks() -> f64 {
    // SAFETY: sysconf only reads a system constant.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as f64
    } else {
        100.0
    }
}

fn field_kib(status: &str, name: &str) -> Option<u64> {
    status.lines().find_map(|l| {
        l.strip_prefix(name)?
            .trim()
            .strip_suffix("kB")?
            .trim()
            .parse()
            .ok()
    })
}

/// The parse-only baseline: every row read, nothing else.
#[derive(Default)]
struct CountRows {
    rows: u64,
    malformed: u64,
}

impl DumpSink for CountRows {
    type Error = std::convert::Infallible;

    fn row(&mut self, _row: &Row<'_>) -> Result<(), Self::Error> {
        self.rows += 1;
        Ok(())
    }

    fn malformed(&mut self, _malformed: &Malformed) -> Result<(), Self::Error> {
        self.malformed += 1;
        Ok(())
    }
}

/// The `import` mode.
pub(crate) fn import_bench(
    bin: &Path,
    messages: u64,
    visitors: u64,
    agents: u32,
    dump: Option<PathBuf>,
) -> Result<()> {
    let dir = tempfile::tempdir()?;
    let dump = dump.unwrap_or_else(|| dir.path().join("goflychat.sql"));
    let spec = Spec {
        messages,
        visitors,
        agents,
        seed: 7,
        extended_insert: true,
        rows_per_insert: 0,
    };
    let started = Instant::now();
    let file = std::fs::File::create(&dump)?;
    let mut out = std::io::BufWriter::with_capacity(1 << 20, file);
    let summary = write_dump(&spec, &mut out)?;
    std::io::Write::flush(&mut out)?;
    drop(out);
    println!(
        "import: generated {} messages of {} visitors ({} conversations at a 24 h gap), {} agents, {:.1} MB in {:.1} s",
        summary.messages,
        summary.visitors_with_messages,
        summary.conversations_24h,
        summary.agents,
        summary.bytes as f64 / 1e6,
        started.elapsed().as_secs_f64()
    );

    let started = Instant::now();
    let mut counted = CountRows::default();
    let file = std::fs::File::open(&dump)?;
    let stats = match DumpReader::new(std::io::BufReader::with_capacity(1 << 20, file))
        .read(&mut counted)
    {
        Ok(stats) => stats,
        Err(kefud::import::mysqldump::ReadError::Io(e)) => return Err(e.into()),
        Err(kefud::import::mysqldump::ReadError::Sink(never)) => match never {},
    };
    let parse = started.elapsed();
    if counted.malformed > 0 {
        bail!(
            "the generated dump has {} malformed parts",
            counted.malformed
        );
    }
    println!(
        "import: parse only: {} rows, {:.0} MB/s, {:.0} rows/s, {:.2} s",
        stats.rows,
        stats.bytes as f64 / 1e6 / parse.as_secs_f64(),
        stats.rows as f64 / parse.as_secs_f64(),
        parse.as_secs_f64()
    );

    let config = kefud_testkit::write_config(dir.path(), "")?;
    let first = run_import(bin, &config, &dump)?;
    if !first.success {
        bail!("kefud import failed:\n{}{}", first.stdout, first.stderr);
    }
    let expected = format!("imported {} messages", summary.messages);
    if !first.stdout.contains(&expected) {
        bail!("expected {expected:?}, kefud said:\n{}", first.stdout);
    }
    let n = summary.messages as f64;
    println!(
        "import: kefud import gofly: {} messages in {:.1} s, {:.0} messages/s; CPU {:.1} µs/message; {:.0} bytes written/message; peak RSS {} MiB",
        summary.messages,
        first.wall.as_secs_f64(),
        n / first.wall.as_secs_f64(),
        first.cpu.as_secs_f64() * 1e6 / n,
        first.written_bytes as f64 / n,
        first.peak_rss_kib / 1024
    );
    println!(
        "import: ratio import / parse-only time: {:.1}",
        first.wall.as_secs_f64() / parse.as_secs_f64()
    );
    let again = run_import(bin, &config, &dump)?;
    if !again.success || !again.stdout.contains("imported 0 messages") {
        bail!(
            "a second run imported something:\n{}{}",
            again.stdout,
            again.stderr
        );
    }
    println!(
        "import: run again: nothing imported twice, {:.1} s",
        again.wall.as_secs_f64()
    );
    Ok(())
}

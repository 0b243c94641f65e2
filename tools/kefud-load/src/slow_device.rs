//! `throughput --slow-device`: kefud's data directory on a loop device throttled to an SD
//! card's write IOPS and bandwidth, so the SD-card bound is measured, not guessed.
//!
//! Mechanism (what this kernel offers; docs/issue12-plan.md §6 item 5): a sparse image under
//! /var/tmp on a loop device (`--direct-io=on`, no double page cache), ext4 mounted
//! `noatime,commit=60` as the SD image mounts root, and cgroup v1 blk-throttle rules for the
//! loop device's MAJ:MIN in the ROOT blkio group, so that jbd2 and the flusher threads are
//! throttled too (v1 charges writeback to the root group). The rules name only this loop
//! device. No device-mapper here, so per-I/O (flush) latency is not modelled.
//!
//! [`SlowDevice`] undoes everything on drop (rules reset to 0, umount, `losetup -d`, image
//! removed): on success, on error, and when a SIGINT/SIGTERM drops the running mode.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

/// Card classes. The SD A1 class minimum is 1,500 random read and 500 random write IOPS
/// (4 KiB) and 10 MB/s sustained.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum Profile {
    /// A good A1 card: 2,000 write IOPS, 20 MB/s write, 1,500 read IOPS.
    A1Good,
    /// A worn or cheap card, below the A1 minimum of 500 write IOPS: 300 write IOPS,
    /// 10 MB/s write, 1,500 read IOPS.
    A1Cheap,
}

/// The throttle a run uses: a profile, with any of its figures overridden.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub profile: Profile,
    pub wiops: u64,
    pub wbps: u64,
    pub riops: u64,
}

impl Limits {
    pub fn new(
        profile: Profile,
        wiops: Option<u64>,
        wbps: Option<u64>,
        riops: Option<u64>,
    ) -> Result<Limits> {
        let (w, b, r) = match profile {
            Profile::A1Good => (2_000, 20_000_000, 1_500),
            Profile::A1Cheap => (300, 10_000_000, 1_500),
        };
        let limits = Limits {
            profile,
            wiops: wiops.unwrap_or(w),
            wbps: wbps.unwrap_or(b),
            riops: riops.unwrap_or(r),
        };
        if limits.wiops == 0 || limits.wbps == 0 || limits.riops == 0 {
            bail!("--wiops, --wbps and --riops must be above 0 (0 would remove the limit)");
        }
        Ok(limits)
    }

    pub fn describe(&self) -> String {
        format!(
            "{} = write {} IOPS, write {:.1} MB/s, read {} IOPS",
            match self.profile {
                Profile::A1Good => "a1-good",
                Profile::A1Cheap => "a1-cheap",
            },
            self.wiops,
            self.wbps as f64 / 1e6,
            self.riops
        )
    }
}

const BLKIO: &str = "/sys/fs/cgroup/blkio";
const WRITE_IOPS: &str = "blkio.throttle.write_iops_device";
const WRITE_BPS: &str = "blkio.throttle.write_bps_device";
const READ_IOPS: &str = "blkio.throttle.read_iops_device";
const IMAGE_BYTES: u64 = 2 << 30;
/// The check file's size, and how many threads write to it in the checks.
const CHECK_SPAN: u64 = 16 << 20;
const CHECK_THREADS: usize = 4;
/// How long teardown keeps retrying a busy umount before a lazy one.
const UMOUNT_RETRY: Duration = Duration::from_secs(10);

/// A throttled loop-device filesystem; everything it set up is undone on drop.
pub struct SlowDevice {
    pub limits: Limits,
    image: PathBuf,
    image_created: bool,
    /// `/dev/loopN`, once attached.
    loop_dev: Option<String>,
    mount: PathBuf,
    mount_dir_created: bool,
    mounted: bool,
    /// MAJ:MIN and the throttle files a rule was written to.
    maj_min: String,
    rules: Vec<&'static str>,
}

/// `/sys/block/loopN/stat`: fields 5 (writes completed), 7 (sectors written) and 16
/// (flush requests completed; flushes are not in the write count).
#[derive(Clone, Copy, Debug)]
pub struct DevStat {
    pub at: Instant,
    pub writes: u64,
    pub sectors_written: u64,
    pub flushes: u64,
}

impl DevStat {
    pub fn bytes_written(&self) -> u64 {
        self.sectors_written * 512
    }
}

/// What was missing to run `--slow-device`, or nothing.
fn missing_prerequisites() -> Vec<String> {
    let mut missing = Vec::new();
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        missing.push("root (the loop device, mount and blkio rules need it)".to_string());
    }
    for file in [WRITE_IOPS, WRITE_BPS, READ_IOPS] {
        let path = Path::new(BLKIO).join(file);
        if !path.exists() {
            missing.push(format!(
                "{} (cgroup v1 blk-throttle: CONFIG_BLK_DEV_THROTTLING and the blkio hierarchy at {BLKIO})",
                path.display()
            ));
        }
    }
    if !Path::new("/dev/loop-control").exists() {
        missing.push("/dev/loop-control (loop devices)".to_string());
    }
    for tool in ["losetup", "mkfs.ext4", "mount", "umount"] {
        let found = Command::new(tool)
            .arg("--version")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok();
        if !found {
            missing.push(format!("the {tool} command"));
        }
    }
    missing
}

fn run(cmd: &mut Command) -> Result<String> {
    let out = cmd.output().with_context(|| format!("run {cmd:?}"))?;
    if !out.status.success() {
        bail!(
            "{cmd:?} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

impl SlowDevice {
    /// Refuses (naming what is missing) unless root with blk-throttle and loop devices; then
    /// image, loop device, ext4, mount, throttle rules. A failure part-way undoes what was
    /// done (the guard is built up step by step).
    ///
    /// One piece on purpose: each step adds to the guard that undoes it on failure, so the steps
    /// and their undoing are read together.
    pub fn setup(limits: Limits) -> Result<SlowDevice> {
        let missing = missing_prerequisites();
        if !missing.is_empty() {
            bail!(
                "--slow-device cannot run here; missing:\n  - {}",
                missing.join("\n  - ")
            );
        }
        let blkio_group = std::fs::read_to_string("/proc/self/cgroup")
            .ok()
            .and_then(|s| {
                s.lines()
                    .find_map(|l| l.split_once(":blkio:").map(|(_, g)| g.to_string()))
            });
        if blkio_group.as_deref() != Some("/") {
            eprintln!(
                "slow device: warning: this tool is in blkio group {blkio_group:?}, not the root; root-group rules still throttle writeback and jbd2, which v1 charges to the root"
            );
        }
        let id = std::process::id();
        let mut dev = SlowDevice {
            limits,
            image: PathBuf::from(format!("/var/tmp/kefud-sd-{id}.img")),
            image_created: false,
            loop_dev: None,
            mount: PathBuf::from(format!("/var/tmp/kefud-sd-{id}")),
            mount_dir_created: false,
            mounted: false,
            maj_min: String::new(),
            rules: Vec::new(),
        };
        // Sparse: set_len allocates nothing.
        let image = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&dev.image)
            .with_context(|| format!("create {}", dev.image.display()))?;
        dev.image_created = true;
        image.set_len(IMAGE_BYTES)?;
        drop(image);
        let loop_dev = run(Command::new("losetup")
            .args(["--find", "--show", "--direct-io=on"])
            .arg(&dev.image))?;
        if !loop_dev.starts_with("/dev/loop") {
            bail!("losetup printed {loop_dev:?}, not a /dev/loopN");
        }
        dev.loop_dev = Some(loop_dev.clone());
        let dio = std::fs::read_to_string(format!("/sys/block/{}/loop/dio", dev.name()))
            .unwrap_or_default();
        if dio.trim() != "1" {
            eprintln!(
                "slow device: warning: {loop_dev} runs without direct I/O (loop/dio = {:?}): the backing file's page cache sits under it",
                dio.trim()
            );
        }
        run(Command::new("mkfs.ext4").args([
            "-q",
            "-E",
            "lazy_itable_init=0,lazy_journal_init=0",
            &loop_dev,
        ]))?;
        std::fs::create_dir(&dev.mount)
            .with_context(|| format!("mkdir {}", dev.mount.display()))?;
        dev.mount_dir_created = true;
        run(Command::new("mount")
            .args(["-t", "ext4", "-o", "noatime,commit=60", &loop_dev])
            .arg(&dev.mount))?;
        dev.mounted = true;
        dev.maj_min = std::fs::read_to_string(format!("/sys/block/{}/dev", dev.name()))?
            .trim()
            .to_string();
        dev.prepare_check_file()?;
        dev.sync_and_stat()?;
        dev.baseline()?;
        for (file, value) in [
            (WRITE_IOPS, limits.wiops),
            (WRITE_BPS, limits.wbps),
            (READ_IOPS, limits.riops),
        ] {
            let path = Path::new(BLKIO).join(file);
            // Recorded first: a write that fails half-way is still reset on drop.
            dev.rules.push(file);
            std::fs::write(&path, format!("{} {value}\n", dev.maj_min)).with_context(|| {
                format!("write \"{} {value}\" to {}", dev.maj_min, path.display())
            })?;
            let now = std::fs::read_to_string(&path)?;
            if !now
                .lines()
                .any(|l| l.trim() == format!("{} {value}", dev.maj_min))
            {
                bail!(
                    "{} does not show the rule \"{} {value}\" after writing it (it reads {now:?})",
                    path.display(),
                    dev.maj_min
                );
            }
        }
        println!(
            "slow device: {} on {loop_dev} ({}; sparse {} GiB image {}, loop direct-io {}), ext4 mounted noatime,commit=60 at {}",
            limits.describe(),
            dev.maj_min,
            IMAGE_BYTES >> 30,
            dev.image.display(),
            if dio.trim() == "1" { "on" } else { "OFF" },
            dev.mount.display()
        );
        println!(
            "slow device: mechanism: cgroup v1 blk-throttle, rules for {} in the root blkio group ({BLKIO}/{{{WRITE_IOPS},{WRITE_BPS},{READ_IOPS}}}), so writeback and jbd2 are throttled too",
            dev.maj_min
        );
        println!(
            "slow device: caveat: IOPS/bandwidth-limited only; per-I/O flush latency is not modelled (no dm-delay on this kernel), so a real card's slow fsyncs are missing"
        );
        Ok(dev)
    }

    /// `loopN`.
    fn name(&self) -> &str {
        self.loop_dev
            .as_deref()
            .and_then(|d| d.strip_prefix("/dev/"))
            .unwrap_or("")
    }

    pub fn mount(&self) -> &Path {
        &self.mount
    }

    pub fn stat(&self) -> Result<DevStat> {
        let path = format!("/sys/block/{}/stat", self.name());
        let text = std::fs::read_to_string(&path)?;
        let f: Vec<u64> = text
            .split_whitespace()
            .map(|x| x.parse().unwrap_or(0))
            .collect();
        if f.len() < 7 {
            bail!("{path}: {} fields, expected at least 7", f.len());
        }
        Ok(DevStat {
            at: Instant::now(),
            writes: f[4],
            sectors_written: f[6],
            flushes: f.get(15).copied().unwrap_or(0),
        })
    }

    /// `syncfs` of the mount (everything dirty in it, jbd2's commit included, reaches the
    /// device), then the device's counters.
    pub fn sync_and_stat(&self) -> Result<DevStat> {
        let dir = File::open(&self.mount)?;
        // SAFETY: syncfs on a descriptor we own.
        if unsafe { libc::syncfs(dir.as_raw_fd()) } != 0 {
            return Err(std::io::Error::last_os_error()).context("syncfs");
        }
        self.stat()
    }

    fn check_file(&self) -> PathBuf {
        self.mount.join("throttle-check.bin")
    }

    /// The file the checks overwrite: written and synced first, so that the checks' writes
    /// go to allocated blocks (no extent conversion in the journal).
    fn prepare_check_file(&self) -> Result<()> {
        let mut f = File::create(self.check_file())?;
        let chunk = vec![0u8; 1 << 20];
        for _ in 0..(CHECK_SPAN >> 20) {
            f.write_all(&chunk)?;
        }
        f.sync_all()?;
        Ok(())
    }

    /// Before the rules: what the loop device does on this host at all (a limit above it
    /// cannot bind), 1.5 s for each kind of write.
    fn baseline(&self) -> Result<()> {
        let cap = Duration::from_millis(1500);
        let direct = self.timed_writes(4096, 1_000_000, CHECK_THREADS, false, cap)?;
        let dsync = self.timed_writes(4096, 1_000_000, 1, true, cap)?;
        println!(
            "slow device: unthrottled loop device on this host (before the rules): 4 KiB O_DIRECT writes x{CHECK_THREADS} threads {:.0} device write IOs/s, {:.1} MB/s; 4 KiB O_DIRECT|O_DSYNC writes (one thread) {:.0}/s = {:.0} device write IOs/s incl. {:.0} flushes/s (each flush is an fsync of the image file on the host's disk)",
            direct.ios as f64 / direct.secs,
            direct.bytes as f64 / direct.secs / 1e6,
            dsync.done as f64 / dsync.secs,
            dsync.ios as f64 / dsync.secs,
            dsync.flushes as f64 / dsync.secs,
        );
        Ok(())
    }

    /// Checks that the rules take effect, with writes from this process, each check bounded
    /// to about 2 s of the limit's worth and to 6 s of wall time: 4 KiB O_DIRECT writes from
    /// several threads against the IOPS limit; 4 KiB O_DIRECT|O_DSYNC writes (whether the
    /// empty flush write is charged too); 64 KiB O_DIRECT writes against the bandwidth
    /// limit. Prints the device's write IOs/s and bytes/s (its stat) against the limits.
    pub fn verify(&self) -> Result<()> {
        let cap = Duration::from_secs(6);
        let limit = self.limits.wiops as f64;

        let r = self.timed_writes(
            4096,
            (self.limits.wiops * 2).clamp(50, 20_000),
            CHECK_THREADS,
            false,
            cap,
        )?;
        let iops = r.ios as f64 / r.secs;
        println!(
            "slow device: check: {} x 4 KiB O_DIRECT writes (x{CHECK_THREADS} threads) in {:.2} s: device {iops:.0} write IOs/s against a limit of {} ({:.0}%)",
            r.done,
            r.secs,
            self.limits.wiops,
            iops * 100.0 / limit
        );

        let r = self.timed_writes(4096, self.limits.wiops.clamp(50, 10_000), 1, true, cap)?;
        let iops = r.ios as f64 / r.secs;
        println!(
            "slow device: check: {} x 4 KiB O_DIRECT|O_DSYNC writes (one thread) in {:.2} s: device {iops:.0} write IOs/s against a limit of {} ({:.0}%), {:.2} device write IOs per write with {:.0} flushes/s (the empty flush write is counted as a write)",
            r.done,
            r.secs,
            self.limits.wiops,
            iops * 100.0 / limit,
            r.ios as f64 / r.done.max(1) as f64,
            r.flushes as f64 / r.secs,
        );

        let block: u64 = 64 << 10;
        // Whichever limit binds first at 64 KiB per write.
        let expected_bps = (self.limits.wbps as f64).min(limit * block as f64);
        let count = ((expected_bps * 2.0 / block as f64) as u64).clamp(8, 5_000);
        let r = self.timed_writes(block, count, CHECK_THREADS, false, cap)?;
        let bps = r.bytes as f64 / r.secs;
        println!(
            "slow device: check: {} x 64 KiB O_DIRECT writes (x{CHECK_THREADS} threads) in {:.2} s: device {:.1} MB/s written against {:.1} MB/s expected ({:.0}%; write limit {:.1} MB/s)",
            r.done,
            r.secs,
            bps / 1e6,
            expected_bps / 1e6,
            bps * 100.0 / expected_bps,
            self.limits.wbps as f64 / 1e6
        );
        std::fs::remove_file(self.check_file())?;
        self.sync_and_stat()?;
        Ok(())
    }

    /// Up to `count` writes of `block` bytes over the check file from `threads` threads,
    /// stopping at `cap`; the device's counters around them.
    fn timed_writes(
        &self,
        block: u64,
        count: u64,
        threads: usize,
        dsync: bool,
        cap: Duration,
    ) -> Result<WriteRun> {
        let flags = libc::O_DIRECT | if dsync { libc::O_DSYNC } else { 0 };
        let files = (0..threads)
            .map(|_| {
                OpenOptions::new()
                    .write(true)
                    .custom_flags(flags)
                    .open(self.check_file())
            })
            .collect::<std::io::Result<Vec<File>>>()?;
        let blocks = CHECK_SPAN / block;
        let next = AtomicU64::new(0);
        let done = AtomicU64::new(0);
        let before = self.stat()?;
        let started = Instant::now();
        let errors: Vec<String> = std::thread::scope(|s| {
            let workers: Vec<_> = files
                .iter()
                .map(|file| {
                    let (next, done) = (&next, &done);
                    s.spawn(move || -> Result<()> {
                        let buf = AlignedBuf::new(block as usize)?;
                        loop {
                            let i = next.fetch_add(1, Ordering::Relaxed);
                            if i >= count || started.elapsed() >= cap {
                                return Ok(());
                            }
                            // A stride that is not a power of two: scattered, not merged.
                            let offset = (i * 7 % blocks) * block;
                            file.write_all_at(buf.as_slice(), offset)?;
                            done.fetch_add(1, Ordering::Relaxed);
                        }
                    })
                })
                .collect();
            workers
                .into_iter()
                .filter_map(|w| match w.join() {
                    Ok(Ok(())) => None,
                    Ok(Err(e)) => Some(format!("{e:#}")),
                    Err(_) => Some("a check thread panicked".to_string()),
                })
                .collect()
        });
        let secs = started.elapsed().as_secs_f64();
        let after = self.stat()?;
        if let Some(e) = errors.first() {
            bail!("O_DIRECT write on the slow device: {e}");
        }
        Ok(WriteRun {
            done: done.load(Ordering::Relaxed),
            ios: after.writes - before.writes,
            bytes: after.bytes_written() - before.bytes_written(),
            flushes: after.flushes - before.flushes,
            secs,
        })
    }

    fn teardown(&mut self) -> Vec<String> {
        let mut failed = Vec::new();
        // Rules first: the umount's final writeback then runs at full speed.
        for file in std::mem::take(&mut self.rules) {
            let path = Path::new(BLKIO).join(file);
            if let Err(e) = std::fs::write(&path, format!("{} 0\n", self.maj_min)) {
                failed.push(format!("reset {}: {e}", path.display()));
            }
        }
        if self.mounted {
            let started = Instant::now();
            loop {
                match run(Command::new("umount").arg(&self.mount)) {
                    Ok(_) => {
                        self.mounted = false;
                        break;
                    }
                    Err(e) if started.elapsed() >= UMOUNT_RETRY => {
                        // Still busy: detach it now, the kernel finishes when it is free.
                        match run(Command::new("umount").arg("-l").arg(&self.mount)) {
                            Ok(_) => {
                                self.mounted = false;
                                failed.push(format!("umount was busy ({e}); lazily unmounted"));
                            }
                            Err(e) => failed.push(format!("umount {}: {e}", self.mount.display())),
                        }
                        break;
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(200)),
                }
            }
        }
        if self.mount_dir_created && !self.mounted {
            if let Err(e) = std::fs::remove_dir(&self.mount) {
                failed.push(format!("rmdir {}: {e}", self.mount.display()));
            }
            self.mount_dir_created = false;
        }
        if let Some(dev) = self.loop_dev.take() {
            if let Err(e) = run(Command::new("losetup").arg("-d").arg(&dev)) {
                failed.push(format!("losetup -d {dev}: {e}"));
            }
        }
        if self.image_created {
            if let Err(e) = std::fs::remove_file(&self.image) {
                failed.push(format!("rm {}: {e}", self.image.display()));
            }
            self.image_created = false;
        }
        failed
    }
}

/// Every exit path: rules reset to 0, umount, `losetup -d`, image removed. Runs after the
/// spawned kefud is gone (the caller declares the device first, so it drops last).
impl Drop for SlowDevice {
    fn drop(&mut self) {
        let failed = self.teardown();
        if failed.is_empty() {
            eprintln!(
                "slow device: undone (throttle rules reset, unmounted, loop device detached, image removed)"
            );
        } else {
            eprintln!(
                "slow device: teardown problems:\n  - {}",
                failed.join("\n  - ")
            );
        }
    }
}

/// The bytes at least 4,096 long and 4,096-aligned, as O_DIRECT wants them.
struct AlignedBuf {
    ptr: *mut u8,
    layout: std::alloc::Layout,
}

impl AlignedBuf {
    fn new(len: usize) -> Result<AlignedBuf> {
        let layout = std::alloc::Layout::from_size_align(len.max(4096), 4096)?;
        // SAFETY: the size is not zero.
        let ptr = unsafe { std::alloc::alloc_zeroed(layout) };
        if ptr.is_null() {
            bail!("allocating {len} aligned bytes");
        }
        Ok(AlignedBuf { ptr, layout })
    }

    fn as_slice(&self) -> &[u8] {
        // SAFETY: ptr is valid for layout.size() bytes, zero-initialised, freed only on drop.
        unsafe { std::slice::from_raw_parts(self.ptr, self.layout.size()) }
    }
}

impl Drop for AlignedBuf {
    fn drop(&mut self) {
        // SAFETY: allocated in new with this layout.
        unsafe { std::alloc::dealloc(self.ptr, self.layout) };
    }
}

/// One check's writes: how many the tool completed, and the device's write IOs, bytes
/// written and flushes meanwhile.
struct WriteRun {
    done: u64,
    ios: u64,
    bytes: u64,
    flushes: u64,
    secs: f64,
}

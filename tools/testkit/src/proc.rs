//! Figures of a running process from `/proc/PID`: what the load tool reports and the tests
//! bound (resident memory, its peak, threads, open descriptors).

use anyhow::{Context, Result};

/// A number from `/proc/PID/status`: `VmRSS` and `VmHWM` in KiB, `Threads` a count.
///
/// # Errors
/// The file cannot be read (the process is gone) or has no such field.
pub fn status(pid: u32, field: &str) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("read /proc/{pid}/status"))?;
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
///
/// # Errors
/// `/proc/PID/fd` cannot be read (the process is gone, or is not ours).
pub fn open_fds(pid: u32) -> Result<u64> {
    Ok(std::fs::read_dir(format!("/proc/{pid}/fd"))
        .with_context(|| format!("read /proc/{pid}/fd"))?
        .count() as u64)
}

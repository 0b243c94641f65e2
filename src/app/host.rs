//! What the daemon asks of the host process: the open-files limit, raised for idle sockets.

/// The soft open-files limit now.
pub(super) fn fd_limit() -> u64 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit with a valid, initialised rlimit struct.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } == 0 {
        // rlim_t is 32 bits on armv7, 64 elsewhere.
        #[allow(clippy::useless_conversion)]
        u64::from(lim.rlim_cur)
    } else {
        1024
    }
}

/// Every idle visitor holds a socket: lift the soft open-files limit to the hard one.
pub fn raise_fd_limit() {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit with a valid, initialised rlimit struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < lim.rlim_max {
            lim.rlim_cur = lim.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}

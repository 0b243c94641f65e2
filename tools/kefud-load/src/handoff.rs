//! `handoff`: what one hand-off between two threads costs on this machine, with the primitive
//! kefud's pipeline uses between its threads (a tokio mpsc channel, `blocking_send` on one side
//! and `blocking_recv` on the other). Two threads pass a token back and forth; each pass wakes
//! the other thread from sleep, as a message at a low rate wakes each pipeline thread in turn.
//! Prints the CPU time the woken thread spends per hand-off (its own thread CPU clock) and
//! the wall time, as the median of several runs; `--gap-ms` rests between round trips, so
//! the woken thread's core is idle when the hand-off comes, as between messages at a low rate.

use super::*;

/// One run: `round_trips` passes each way, the first thread pausing `gap` between round trips
/// (a machine at rest between messages, as at a low rate). Returns, per one-way hand-off, the
/// CPU µs of the thread woken by it (the peer's CPU per pass it received and answered: a wake
/// from sleep, a receive and a send) and the wall µs of a round trip's half.
fn one_run(round_trips: u32, gap: Duration) -> (f64, f64) {
    let (to_peer, mut from_main) = tokio::sync::mpsc::channel::<u32>(1);
    let (to_main, mut from_peer) = tokio::sync::mpsc::channel::<u32>(1);
    let peer = std::thread::spawn(move || {
        let started = thread_cpu_us();
        while let Some(n) = from_main.blocking_recv() {
            if to_main.blocking_send(n).is_err() {
                break;
            }
        }
        thread_cpu_us() - started
    });
    let mut wall_us = 0.0;
    for n in 0..round_trips {
        if !gap.is_zero() {
            std::thread::sleep(gap);
        }
        let wall = Instant::now();
        to_peer
            .blocking_send(n)
            .expect("the peer runs until the channel closes");
        from_peer
            .blocking_recv()
            .expect("the peer answers every pass");
        wall_us += wall.elapsed().as_secs_f64() * 1e6;
    }
    drop(to_peer);
    let peer_cpu = peer.join().expect("the peer thread does not panic");
    let round_trips = f64::from(round_trips);
    (peer_cpu / round_trips, wall_us / (2.0 * round_trips))
}

/// This thread's CPU time so far, in µs.
fn thread_cpu_us() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes the timespec it is given.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as f64 * 1e6 + ts.tv_nsec as f64 / 1e3
}

pub(crate) fn handoff(round_trips: u32, runs: usize, gap: Duration) -> Result<()> {
    if round_trips == 0 || runs == 0 {
        bail!("--round-trips and --runs must be at least 1");
    }
    let mut results: Vec<(f64, f64)> = (0..runs).map(|_| one_run(round_trips, gap)).collect();
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let mut cpu: Vec<f64> = results.iter().map(|r| r.0).collect();
    let mut wall: Vec<f64> = results.drain(..).map(|r| r.1).collect();
    println!(
        "one hand-off to a sleeping thread (tokio mpsc, blocking), {} ms apart: {:.1} us CPU in the woken thread (wake, receive, answer), {:.1} us wall; median of {runs} runs of {round_trips} round trips",
        gap.as_millis(),
        median(&mut cpu),
        median(&mut wall)
    );
    Ok(())
}

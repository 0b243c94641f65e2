//! Test-only crash points of the cluster link, so tests can kill a box at an exact moment.
//!
//! Compiled in debug builds only (`cfg(debug_assertions)`: the binary `cargo test` runs); in a
//! release build [`reached`] is an empty inline function and the environment is never read.
//!
//! `KEFUD_CRASH_AT=<point>` names one point (`before-publish` or `before-puback`) and
//! `KEFUD_CRASH_ARMED=<file>` a file: the first time the process reaches that point while the
//! file exists, it aborts (`std::process::abort`: no unwinding, no clean shutdown, nothing
//! flushed, as kill -9 leaves it). A test starts the box with both set, writes what it wants
//! delivered normally, creates the file, then triggers the point.
//!
//! The points:
//! - `before-publish`: this box's own operations are in its fsync'd journal (the fan-out's
//!   cluster tap is post-commit) and the link is about to publish them;
//! - `before-puback`: another box's operations are applied here and the journal holding them
//!   is fsync'd, and the link is about to send their PUBACKs to the broker.

/// A crash point (see the module header).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Point {
    BeforePublish,
    BeforePuback,
}

impl Point {
    /// The name `KEFUD_CRASH_AT` gives it.
    pub fn name(self) -> &'static str {
        match self {
            Point::BeforePublish => "before-publish",
            Point::BeforePuback => "before-puback",
        }
    }
}

/// Aborts the process if `point` is the armed one and its file exists (debug builds only).
#[cfg(debug_assertions)]
pub fn reached(point: Point) {
    let named = std::env::var("KEFUD_CRASH_AT").is_ok_and(|at| at == point.name());
    let armed = std::env::var_os("KEFUD_CRASH_ARMED")
        .is_some_and(|file| std::path::Path::new(&file).exists());
    if named && armed {
        eprintln!("KEFUD_CRASH_AT={}: aborting", point.name());
        std::process::abort();
    }
}

/// Nothing in a release build.
#[cfg(not(debug_assertions))]
#[inline(always)]
pub fn reached(_point: Point) {}

//! The open segment: where the journal writer appends, one synchronous, sector-aligned write
//! per batch.
//!
//! - Each batch ends with a [`frame::PAD`] frame that pads it to the segment's alignment (the
//!   device's logical block size, 512 bytes on an SD card; the segment is sealed, see
//!   `segment.rs`), so every write starts and ends on a sector boundary and never rewrites a
//!   sector that holds an earlier batch. A torn write can damage only the batch being written,
//!   which nobody was told about, and the padding frame, written last in the batch's bytes,
//!   says that the batch is whole: recovery keeps a batch only with it.
//! - Writes are `O_DIRECT | O_DSYNC`: one `pwrite` per batch, durable when it returns, with no
//!   page-cache copy and no separate `fdatasync`. Where the file system refuses direct I/O
//!   (tmpfs, or an alignment it does not take) they go through the page cache with `O_DSYNC`,
//!   the layout unchanged.
//! - A thread of the segment's own writes zeros ahead of the records, [`ZERO_AHEAD`] at a time,
//!   and syncs them. Batches therefore overwrite blocks that are allocated and written
//!   already: their sync has no file size or extent change to commit through the file system's
//!   journal, only the data, and the writer does not wait for the zeros. Recovery reads an
//!   all-zero tail as the end of the records.
//!
//! Invariants: `position` (where the next batch goes) is a multiple of the alignment; a batch
//! is written only within what the zero-filler reported done, and the zero-filler writes only
//! beyond that, so the two never write the same bytes.

use std::alloc::{self, Layout};
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::ptr::NonNull;
use std::sync::{Arc, Condvar, Mutex};

use super::frame;
use super::segment;

/// What a new segment is zero-filled to before it is named.
pub const ZERO_CHUNK: u64 = 64 * 1024;
/// How far ahead of the records the zero-filler keeps the file written (asked again once
/// half of it is used).
pub const ZERO_AHEAD: u64 = 256 * 1024;
/// Alignments tried for direct I/O, smallest first (a 4Kn device refuses 512).
const ALIGNMENTS: [usize; 2] = [512, 4096];
/// Memory alignment of the write buffer: enough for any device's direct I/O.
const BUFFER_ALIGN: usize = 4096;

pub struct Appender {
    file: File,
    path: PathBuf,
    direct: bool,
    align: usize,
    position: u64,
    zeros: ZeroFiller,
    buf: AlignedBuf,
}

impl Appender {
    /// Creates the segment for `first_lsn` in `dir`: its header sector and a first zeroed
    /// chunk written and synced under a temporary name, renamed, the directory synced (so a
    /// segment is never visible under its name without its header).
    ///
    /// # Errors
    /// Any I/O error; a half-made temporary file is left for the next recovery to delete.
    pub fn create(dir: &Path, first_lsn: u64) -> io::Result<Appender> {
        let path = dir.join(segment::file_name(first_lsn));
        let tmp = dir.join(format!("{}.tmp", segment::file_name(first_lsn)));
        let mut candidates = ALIGNMENTS
            .iter()
            .map(|&a| (a, true))
            .chain([(ALIGNMENTS[0], false)]);
        let opened = loop {
            let Some((align, direct)) = candidates.next() else {
                unreachable!("the buffered candidate ends the list and returns or fails");
            };
            let opened = open(&tmp, direct, true);
            let file = match opened {
                Ok(f) => f,
                Err(e) if direct && e.raw_os_error() == Some(libc::EINVAL) => continue,
                Err(e) => return Err(e),
            };
            let header = segment::encode_sealed(first_lsn, align as u32);
            let mut buf = AlignedBuf::default();
            match file.write_all_at(buf.filled(&header, ZERO_CHUNK as usize), 0) {
                Ok(()) => break (file, direct, align, buf),
                Err(e) if direct && e.raw_os_error() == Some(libc::EINVAL) => continue,
                Err(e) => return Err(e),
            }
        };
        let (file, direct, align, buf) = opened;
        file.sync_all()?;
        std::fs::rename(&tmp, &path)?;
        segment::sync_dir(dir)?;
        Ok(Appender {
            zeros: ZeroFiller::start(&path, direct, ZERO_CHUNK)?,
            file,
            path,
            direct,
            align,
            position: 2 * align as u64,
            buf,
        })
    }

    /// Reopens the last segment, laid out as `layout` says, to append at `position`, the end
    /// of its records; `None` if it cannot take sealed batches there (a version 1 or an
    /// unsealed segment, or records that end off the alignment), and the writer starts a new
    /// segment instead.
    ///
    /// # Errors
    /// Any I/O error opening the file.
    pub fn resume(
        path: &Path,
        layout: segment::Layout,
        position: u64,
    ) -> io::Result<Option<Appender>> {
        let align = layout.align as usize;
        if !layout.sealed || !ALIGNMENTS.contains(&align) || position % layout.align != 0 {
            return Ok(None);
        }
        let (file, direct) = match open(path, true, false) {
            Ok(f) => (f, true),
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => (open(path, false, false)?, false),
            Err(e) => return Err(e),
        };
        let written = file.metadata()?.len();
        Ok(Some(Appender {
            zeros: ZeroFiller::start(path, direct, written.max(position))?,
            file,
            path: path.to_path_buf(),
            direct,
            align,
            position,
            buf: AlignedBuf::default(),
        }))
    }

    /// Where the next batch goes: the bytes this segment's records (and padding) take.
    pub fn position(&self) -> u64 {
        self.position
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Seals `frames` (appending a padding frame) and writes them at the position, durably.
    /// `next_lsn` is the LSN the next record will carry. Returns the bytes written, padding
    /// included.
    ///
    /// # Errors
    /// Any I/O error of the write; the position is then unchanged.
    pub fn append(
        &mut self,
        frames: &mut Vec<u8>,
        segment_id: u64,
        next_lsn: u64,
    ) -> io::Result<u64> {
        frame::seal(frames, self.align, segment_id, next_lsn);
        match self.write_at_position(frames) {
            Err(e) if self.direct && e.raw_os_error() == Some(libc::EINVAL) => {
                tracing::info!(file = %self.path.display(), "journal: direct I/O refused here; writing through the page cache (O_DSYNC)");
                self.file = open(&self.path, false, false)?;
                self.direct = false;
                self.write_at_position(frames)
            }
            other => other,
        }
    }

    /// Makes everything written durable, metadata included (before the segment is closed).
    ///
    /// # Errors
    /// Any I/O error of the fsync.
    pub fn sync_all(&self) -> io::Result<()> {
        self.file.sync_all()
    }

    /// Writes `data` (a multiple of the alignment) at the position, once the zeros reach past
    /// it; advances the position.
    fn write_at_position(&mut self, data: &[u8]) -> io::Result<u64> {
        debug_assert_eq!(data.len() % self.align, 0);
        let end = self.position + data.len() as u64;
        self.zeros.reserve(end)?;
        let out = self.buf.filled(data, data.len());
        self.file.write_all_at(out, self.position)?;
        self.position = end;
        Ok(data.len() as u64)
    }
}

/// Opens a segment for writing (`create`: a new file, truncated).
fn open(path: &Path, direct: bool, create: bool) -> io::Result<File> {
    let mut flags = libc::O_DSYNC;
    if direct {
        flags |= libc::O_DIRECT;
    }
    OpenOptions::new()
        .write(true)
        .create(create)
        .truncate(create)
        .custom_flags(flags)
        .open(path)
}

/// The thread that writes zeros ahead of a segment's records (one per open segment).
struct ZeroFiller {
    shared: Arc<Filling>,
    thread: Option<std::thread::JoinHandle<()>>,
}

struct Filling {
    state: Mutex<FillState>,
    changed: Condvar,
}

struct FillState {
    /// The file is written (data or zeros) up to here.
    done: u64,
    /// Zeros are wanted up to here.
    wanted: u64,
    /// Why zero-filling stopped: the writer fails when it needs the space.
    failed: Option<(io::ErrorKind, String)>,
    closed: bool,
}

/// Bytes of zeros per write.
const ZERO_WRITE: usize = 256 * 1024;

impl ZeroFiller {
    fn start(path: &Path, direct: bool, done: u64) -> io::Result<ZeroFiller> {
        let shared = Arc::new(Filling {
            state: Mutex::new(FillState {
                done,
                wanted: done,
                failed: None,
                closed: false,
            }),
            changed: Condvar::new(),
        });
        let file = match open(path, direct, false) {
            Ok(f) => f,
            Err(e) if direct && e.raw_os_error() == Some(libc::EINVAL) => open(path, false, false)?,
            Err(e) => return Err(e),
        };
        let thread = std::thread::Builder::new()
            .name("kefud-zerofill".into())
            .spawn({
                let shared = Arc::clone(&shared);
                let path = path.to_path_buf();
                move || fill(&shared, file, &path, direct)
            })?;
        Ok(ZeroFiller {
            shared,
            thread: Some(thread),
        })
    }

    /// Returns once the file is written up to `end`, asking for more zeros ahead; waits only
    /// when the writer has outrun the zero-filler.
    fn reserve(&self, end: u64) -> io::Result<()> {
        let mut state = self.shared.state.lock().expect("invariant: never poisoned");
        if state.wanted < end + ZERO_AHEAD / 2 {
            state.wanted = end + ZERO_AHEAD;
            self.shared.changed.notify_all();
        }
        while state.done < end {
            if let Some((kind, why)) = &state.failed {
                return Err(io::Error::new(
                    *kind,
                    format!("zero-filling the segment: {why}"),
                ));
            }
            state = self
                .shared
                .changed
                .wait(state)
                .expect("invariant: never poisoned");
        }
        Ok(())
    }
}

impl Drop for ZeroFiller {
    fn drop(&mut self) {
        self.shared
            .state
            .lock()
            .expect("invariant: never poisoned")
            .closed = true;
        self.shared.changed.notify_all();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The zero-filler's body: writes and syncs zeros from `done` to `wanted`, a write at a time.
fn fill(shared: &Filling, mut file: File, path: &Path, mut direct: bool) {
    let mut buf = AlignedBuf::default();
    loop {
        let (from, to) = {
            let mut state = shared.state.lock().expect("invariant: never poisoned");
            while !state.closed && (state.wanted <= state.done || state.failed.is_some()) {
                state = shared
                    .changed
                    .wait(state)
                    .expect("invariant: never poisoned");
            }
            if state.closed {
                return;
            }
            (state.done, state.wanted.min(state.done + ZERO_WRITE as u64))
        };
        let zeros = buf.filled(&[], (to - from) as usize);
        let mut written = file.write_all_at(zeros, from);
        if direct && matches!(&written, Err(e) if e.raw_os_error() == Some(libc::EINVAL)) {
            direct = false;
            written = open(path, false, false).and_then(|f| {
                file = f;
                file.write_all_at(zeros, from)
            });
        }
        let mut state = shared.state.lock().expect("invariant: never poisoned");
        // The descriptor is O_DSYNC: the write returned synced, the new size included.
        match written {
            Ok(()) => state.done = to,
            Err(e) => state.failed = Some((e.kind(), e.to_string())),
        }
        shared.changed.notify_all();
    }
}

/// A heap buffer aligned for direct I/O, reused across batches.
struct AlignedBuf {
    ptr: NonNull<u8>,
    capacity: usize,
}

// SAFETY: the buffer is plain owned memory with no interior references.
unsafe impl Send for AlignedBuf {}

impl Default for AlignedBuf {
    fn default() -> Self {
        AlignedBuf {
            ptr: NonNull::dangling(),
            capacity: 0,
        }
    }
}

impl AlignedBuf {
    /// `data` followed by zeros, `len` bytes in all, in aligned memory.
    fn filled(&mut self, data: &[u8], len: usize) -> &[u8] {
        debug_assert!(len >= data.len());
        if len > self.capacity {
            self.release();
            let capacity = len.next_multiple_of(BUFFER_ALIGN);
            let layout = Layout::from_size_align(capacity, BUFFER_ALIGN)
                .expect("invariant: a nonzero size rounded to a power-of-two alignment");
            // SAFETY: the layout has a nonzero size.
            let ptr = unsafe { alloc::alloc(layout) };
            self.ptr = NonNull::new(ptr).unwrap_or_else(|| alloc::handle_alloc_error(layout));
            self.capacity = capacity;
        }
        // SAFETY: `ptr` is valid for `capacity >= len` bytes, owned by this buffer, and
        // borrowed mutably through `self` for the slice's lifetime.
        let out = unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), len) };
        out[..data.len()].copy_from_slice(data);
        out[data.len()..].fill(0);
        out
    }

    fn release(&mut self) {
        if self.capacity > 0 {
            let layout = Layout::from_size_align(self.capacity, BUFFER_ALIGN)
                .expect("invariant: the layout it was allocated with");
            // SAFETY: allocated with this layout in `filled`, not freed since.
            unsafe { alloc::dealloc(self.ptr.as_ptr(), layout) };
            self.capacity = 0;
            self.ptr = NonNull::dangling();
        }
    }
}

impl Drop for AlignedBuf {
    fn drop(&mut self) {
        self.release();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal::frame::{decode, Decoded};

    fn records(segment_id: u64, lsns: std::ops::Range<u64>, len: usize) -> Vec<u8> {
        let mut buf = Vec::new();
        for lsn in lsns {
            frame::encode_with(&mut buf, segment_id, lsn, 3, |b| {
                b.resize(b.len() + len, b'r');
            });
        }
        buf
    }

    #[test]
    fn batches_land_on_sector_boundaries_ahead_of_a_zeroed_tail() {
        let dir = tempfile::tempdir().unwrap();
        let mut a = Appender::create(dir.path(), 1).unwrap();
        let align = a.align as u64;
        assert_eq!(
            a.position(),
            2 * align,
            "the header has a sector of its own, and the next one stays zero"
        );
        let path = dir.path().join(segment::file_name(1));
        assert_eq!(a.path(), path);
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(
            segment::check_header(&bytes, 1),
            Ok(segment::Layout {
                data_offset: 2 * align,
                align,
                sealed: true
            })
        );
        assert_eq!(
            bytes.len() as u64,
            ZERO_CHUNK,
            "the header and a first chunk"
        );

        let mut batch = records(1, 1..4, 40);
        a.append(&mut batch, 1, 4).unwrap();
        assert_eq!(a.position() % align, 0);
        let mut batch = records(1, 4..5, 3000);
        a.append(&mut batch, 1, 5).unwrap();
        // Records that end exactly on the alignment: the seal takes a whole unit.
        let before = a.position();
        let mut batch = records(1, 5..6, align as usize - frame::HEADER_LEN);
        a.append(&mut batch, 1, 6).unwrap();
        assert_eq!(a.position(), before + 2 * align);
        let bytes = std::fs::read(&path).unwrap();
        assert!(bytes[a.position() as usize..].iter().all(|&b| b == 0));

        // Frames then padding, in order, from the data offset.
        let mut at = 2 * align as usize;
        let mut seen = Vec::new();
        while at < a.position() as usize {
            let Decoded::Frame(f) = decode(&bytes[at..], 1) else {
                panic!("no frame at {at}");
            };
            seen.push((f.kind, f.lsn));
            at += f.size;
        }
        assert_eq!(
            seen,
            [
                (3, 1),
                (3, 2),
                (3, 3),
                (frame::PAD, 4),
                (3, 4),
                (frame::PAD, 5),
                (3, 5),
                (frame::PAD, 6)
            ]
        );
    }

    #[test]
    fn the_zeros_run_ahead_of_a_batch_larger_than_what_was_zeroed() {
        let dir = tempfile::tempdir().unwrap();
        let mut a = Appender::create(dir.path(), 1).unwrap();
        let mut big = records(1, 1..2, 3 * ZERO_CHUNK as usize);
        a.append(&mut big, 1, 2).unwrap();
        let mut small = records(1, 2..3, 10);
        a.append(&mut small, 1, 3).unwrap();
        let position = a.position() as usize;
        drop(a);
        let bytes = std::fs::read(dir.path().join(segment::file_name(1))).unwrap();
        assert!(
            bytes.len() >= position + ZERO_AHEAD as usize / 2,
            "{}",
            bytes.len()
        );
        assert!(bytes[position..].iter().all(|&b| b == 0));
    }

    #[test]
    fn resuming_continues_at_the_position_and_refuses_an_unaligned_one() {
        let dir = tempfile::tempdir().unwrap();
        let mut a = Appender::create(dir.path(), 1).unwrap();
        let align = a.align as u64;
        a.append(&mut records(1, 1..2, 10), 1, 2).unwrap();
        let position = a.position();
        drop(a);
        let path = dir.path().join(segment::file_name(1));
        let sealed = segment::check_header(&std::fs::read(&path).unwrap(), 1).unwrap();
        assert!(Appender::resume(&path, sealed, position + 1)
            .unwrap()
            .is_none());
        let v1 = segment::Layout {
            data_offset: segment::HEADER_LEN,
            align: segment::HEADER_LEN,
            sealed: false,
        };
        assert!(Appender::resume(&path, v1, segment::HEADER_LEN)
            .unwrap()
            .is_none());
        // An unsealed version 2 segment (an older kefud's) is never appended to: its batches
        // cannot be told apart, so the writer starts a sealed segment instead.
        let unsealed = segment::Layout {
            data_offset: align,
            align,
            sealed: false,
        };
        assert!(Appender::resume(&path, unsealed, position)
            .unwrap()
            .is_none());
        let mut a = Appender::resume(&path, sealed, position).unwrap().unwrap();
        a.append(&mut records(1, 2..3, 10), 1, 3).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        assert!(matches!(
            decode(&bytes[position as usize..], 1),
            Decoded::Frame(f) if f.lsn == 2 && f.kind == 3
        ));
    }
}

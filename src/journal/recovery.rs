//! Startup recovery: verify the segments, replay what the store has not applied, truncate a
//! torn tail of the last segment, refuse anything else.
//!
//! Policy (see `journal/mod.rs` for why it is safe):
//! - Every segment is read frame by frame; each frame must decode, pass its CRC and carry the
//!   next LSN. Records above the store's applied LSN must also hold a decodable operation, and
//!   are replayed; the others the store already has.
//! - Padding frames carry the next record's LSN and are skipped. Zeros from the end of the
//!   records to the end of the file are where a segment's records end (the writer writes
//!   zeros ahead of them), in any segment.
//! - A batch is a unit. In a sealed segment (`segment.rs`) every batch ends with a padding
//!   frame, so a segment's records end after its last padding frame: records after it are a
//!   batch whose write did not complete (a power cut persists the sectors of one write
//!   independently, so any prefix of a batch can survive), and none of them is replayed,
//!   whatever follows them. A record glued to the next (a record and its cluster stamp, the
//!   writer never ends a batch between them) is therefore kept with it or dropped with it.
//!   Version 1 and unsealed segments do not say where batches end: there, every frame is its
//!   own unit, as before sealing.
//! - In the last segment, a torn batch (records without their padding frame), or a first frame
//!   that is incomplete or fails its CRC with something other than zeros after it, is judged
//!   by [`judge_tail`] (pure): it is a torn tail only if nothing in it could have been
//!   acknowledged — the store has applied no record of it, and no valid frame of this segment
//!   follows the first bad byte at any offset. A torn tail, from the end of the last whole
//!   batch, is copied aside into `damaged/` (trailing zeros left out), then overwritten with
//!   zeros and synced (the file keeps its size, so appends stay within written blocks), and
//!   startup goes on.
//! - Anything else — a bad frame followed by a valid one, a bad frame the store has already
//!   applied, a bad header, a bad frame before the last segment, a gap or an overlap between
//!   segments, an undecodable operation — stops startup with [`Error::Corrupt`] naming the
//!   file and offset, leaving every file as it is.
//! - [`truncate_at`] is the operator's override (`kefud journal truncate FILE OFFSET`): it
//!   clears the last segment from the offset a refusal named, keeping the bytes in `damaged/`.

use std::fs::OpenOptions;
use std::path::{Path, PathBuf};

use super::frame::{self, Decoded, Frame};
use super::segment::{self, Layout, SegmentFile};
use super::Error;
use crate::model::Lsn;
use crate::op::{DecodeError, Op};

/// Where cut tails are kept for inspection, inside the journal directory.
pub const DAMAGED_DIR: &str = "damaged";

#[derive(Debug)]
pub struct Recovered {
    pub segments: Vec<SegmentFile>,
    /// LSN of the last committed record (0 for an empty journal).
    pub last_lsn: Lsn,
    /// How the last segment is laid out (the default when there is none).
    pub layout: Layout,
    /// Valid length of the last segment, where appending resumes.
    pub tail_len: u64,
    /// Bytes of a torn tail cleared.
    pub truncated_bytes: u64,
}

/// Where a segment's records end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct End {
    /// After the last whole batch (in an unsealed segment, the last valid frame).
    pub(crate) offset: usize,
    /// The LSN the next record must carry.
    pub(crate) next_lsn: Lsn,
    /// Why the bytes at `offset` are not the end of the records; `None` when only zeros, or
    /// nothing, follow.
    pub(crate) bad: Option<&'static str>,
    /// Where the valid frames stop (at or after `offset`: the frames between are a batch
    /// without its padding frame), and the LSN the frame there should carry.
    pub(crate) stop: usize,
    pub(crate) stop_lsn: Lsn,
}

/// Why the bytes after a sealed segment's last whole batch are not its end.
const UNSEALED_BATCH: &str = "records without the padding frame that ends their batch";

/// Walks `bytes` (a segment whose header was checked, laid out as `layout`) frame by frame,
/// calling `each` with the offset of every record of a whole batch (of every valid record,
/// unsealed), in order, until the file ends or a frame is incomplete or corrupt.
///
/// # Errors
/// [`Error::Corrupt`] for a valid frame carrying the wrong LSN or the largest LSN there is
/// (no next one), or whatever `each` returns.
pub(crate) fn walk<'a>(
    bytes: &'a [u8],
    seg: &SegmentFile,
    layout: Layout,
    mut each: impl FnMut(usize, Frame<'a>) -> Result<(), Error>,
) -> Result<End, Error> {
    let mut at = (layout.data_offset as usize).min(bytes.len());
    let mut next_lsn = seg.first_lsn;
    // The records of the batch being read, until its padding frame.
    let mut batch: Vec<(usize, Frame<'a>)> = Vec::new();
    let mut whole = (at, next_lsn);
    let bad = loop {
        match frame::decode(&bytes[at..], seg.first_lsn) {
            Decoded::Frame(f) => {
                if f.lsn != next_lsn {
                    return Err(Error::corrupt(
                        &seg.path,
                        at as u64,
                        format!("record has LSN {} where {next_lsn} was expected", f.lsn),
                    ));
                }
                // The writer cannot get there (2^64 records), and the next LSN must exist.
                if f.lsn == Lsn::MAX {
                    return Err(Error::corrupt(
                        &seg.path,
                        at as u64,
                        format!("record has LSN {}, the largest there is", f.lsn),
                    ));
                }
                if f.kind != frame::PAD {
                    batch.push((at, f));
                    next_lsn += 1;
                }
                at += f.size;
                if f.kind == frame::PAD || !layout.sealed {
                    for (offset, f) in batch.drain(..) {
                        each(offset, f)?;
                    }
                    whole = (at, next_lsn);
                }
            }
            Decoded::Incomplete if at == bytes.len() => break None,
            // The zeros written ahead of the records.
            _ if is_zero(&bytes[at..]) => break None,
            Decoded::Incomplete => break Some("incomplete record"),
            Decoded::Corrupt(why) => break Some(why),
        }
    };
    let (offset, whole_lsn) = whole;
    Ok(End {
        offset,
        next_lsn: whole_lsn,
        bad: bad.or((offset < at).then_some(UNSEALED_BATCH)),
        stop: at,
        stop_lsn: next_lsn,
    })
}

/// What the bytes of the last segment from its first bad frame on are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tail {
    /// A write that never completed: nothing in it was acknowledged. Clear it.
    Torn,
    /// Damage to data that was (or may have been) synced and acknowledged: refuse.
    Damaged(String),
}

/// Judges the tail of the last segment after its records, `end` (where `end.bad` says why it
/// is not their end): from `end.offset`, whose record would be LSN `end.next_lsn`, to the
/// first bad byte at `end.stop`, valid records of a batch without its padding frame (none in
/// an unsealed segment), then whatever is there. Pure.
///
/// The writer issues its next write only after the previous fsync returned, and never writes
/// again after a failed one, so only the last write can be torn. That write began at or
/// before `end.offset` (a batch is one write, and ends with its padding frame), and:
/// - if the store has applied `end.next_lsn`, the batch was synced (the store only sees
///   committed batches): damage;
/// - if a valid frame of this segment with a later LSN starts anywhere after `end.stop`, the
///   bytes at `end.stop` were written before it, and were most likely synced: damage. (A power
///   cut can also persist the sectors of one unsynced multi-record write out of order, leaving
///   a later record whole and an earlier one torn; nothing in it was acknowledged, but the
///   file cannot tell the two apart, so recovery refuses and the operator decides, with
///   [`truncate_at`].)
/// - otherwise nothing acknowledged can lie at or after `end.offset`: a torn tail.
pub(crate) fn judge_tail(bytes: &[u8], segment_id: u64, end: &End, applied_lsn: Lsn) -> Tail {
    let why = end.bad.unwrap_or("no end");
    let (lsn, bad) = (end.next_lsn, end.offset);
    let place = if end.stop > bad {
        format!(
            "{why} at offset {}, where record {} should be, so the batch of records {lsn} on \
             (from offset {bad}) is not whole",
            end.stop, end.stop_lsn
        )
    } else {
        format!("{why} where record {lsn} should be")
    };
    if applied_lsn >= lsn {
        return Tail::Damaged(format!(
            "{place}, but the store has already applied records up to {applied_lsn}, so \
             record {lsn} was synced and acknowledged: damage, not a torn write. The store \
             still holds it; keep this file and restore the segment from a backup"
        ));
    }
    if let Some((at, next)) = next_valid_frame(bytes, segment_id, end.stop, end.stop_lsn) {
        return Tail::Damaged(format!(
            "{place}, yet a valid record {next} follows at offset {at}: damage to records \
             that were written and most likely acknowledged, not a torn write. Restore the \
             segment from a backup, or, if you accept losing records {lsn} onwards of this \
             segment, run `kefud journal truncate {} {bad}` (it keeps the cut bytes under \
             journal/{DAMAGED_DIR}/)",
            segment::file_name(segment_id)
        ));
    }
    Tail::Torn
}

/// Whether every byte is zero (in blocks, so the compiler vectorises the scan of a
/// zero-filled segment's tail).
fn is_zero(bytes: &[u8]) -> bool {
    bytes
        .chunks(256)
        .all(|block| block.iter().fold(0u8, |acc, &b| acc | b) == 0)
}

/// The length of `bytes` without its trailing zeros.
fn nonzero_len(bytes: &[u8]) -> usize {
    bytes.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1)
}

/// The first offset after `bad` where a frame of this segment decodes with a valid CRC and an
/// LSN after `lsn` that fits in the bytes left (every frame takes at least a header), and that
/// LSN. The LSN test is a cheap filter so the CRC runs at few offsets.
fn next_valid_frame(bytes: &[u8], segment_id: u64, bad: usize, lsn: Lsn) -> Option<(usize, Lsn)> {
    let most = lsn.saturating_add(((bytes.len() - bad) / frame::HEADER_LEN) as u64);
    // A frame's header holds its LSN (not zero), so none starts in the trailing zeros.
    let last_start = bytes
        .len()
        .saturating_sub(frame::HEADER_LEN - 1)
        .min(nonzero_len(bytes));
    (bad + 1..last_start).find_map(|at| {
        let field = u64::from_le_bytes(
            bytes[at + 8..at + 16]
                .try_into()
                .expect("invariant: 8-byte slice"),
        );
        if field <= lsn || field > most {
            return None;
        }
        match frame::decode(&bytes[at..], segment_id) {
            Decoded::Frame(f) => Some((at, f.lsn)),
            _ => None,
        }
    })
}

/// Recovers the journal in `dir`, calling `on_record` for every committed record with an LSN
/// above `applied_lsn`, in LSN order.
///
/// # Errors
/// [`Error::Corrupt`] on damage recovery may not repair, [`Error::Io`] on I/O failure, or
/// whatever `on_record` returns.
pub fn recover(
    dir: &Path,
    applied_lsn: Lsn,
    mut on_record: impl FnMut(Lsn, Op) -> Result<(), Error>,
) -> Result<Recovered, Error> {
    let segments = segment::list(dir).map_err(|e| Error::io(dir, e))?;
    let mut last_lsn = 0;
    let mut layout = Layout::default();
    let mut tail_len = 0;
    let mut truncated_bytes = 0;
    for (i, seg) in segments.iter().enumerate() {
        let is_last = i + 1 == segments.len();
        if i > 0 && seg.first_lsn != last_lsn + 1 {
            return Err(Error::corrupt(
                &seg.path,
                0,
                format!(
                    "segment starts at LSN {} but the previous one ends at {last_lsn}",
                    seg.first_lsn
                ),
            ));
        }
        let mapped = Mapped::open(&seg.path).map_err(|e| Error::io(&seg.path, e))?;
        let bytes = mapped.bytes();
        layout = segment::check_header(bytes, seg.first_lsn)
            .map_err(|e| Error::corrupt(&seg.path, 0, e.to_string()))?;
        let end = walk(bytes, seg, layout, |offset, f| {
            if f.lsn > applied_lsn {
                let op = Op::decode(f.kind, f.payload).map_err(|e| match e {
                    DecodeError::UnknownKind(kind) => Error::Newer {
                        path: seg.path.clone(),
                        lsn: f.lsn,
                        kind,
                    },
                    e => Error::corrupt(
                        &seg.path,
                        offset as u64,
                        format!("undecodable operation: {e}"),
                    ),
                })?;
                on_record(f.lsn, op)?;
            }
            Ok(())
        })?;
        last_lsn = end.next_lsn - 1;
        tail_len = end.offset as u64;
        let Some(why) = end.bad else { continue };
        if !is_last {
            return Err(Error::corrupt(&seg.path, tail_len, why.to_string()));
        }
        match judge_tail(bytes, seg.first_lsn, &end, applied_lsn) {
            Tail::Damaged(reason) => return Err(Error::corrupt(&seg.path, tail_len, reason)),
            Tail::Torn => {
                let damaged_end = nonzero_len(bytes);
                truncated_bytes = (damaged_end - end.offset) as u64;
                let kept = set_aside(dir, &seg.path, end.offset, &bytes[end.offset..damaged_end])?;
                tracing::warn!(
                    file = %seg.path.display(),
                    offset = end.offset,
                    bytes = truncated_bytes,
                    reason = why,
                    kept = %kept.display(),
                    "journal: clearing the torn tail of the last segment (never acknowledged: nothing valid follows and the store has not applied it)"
                );
                clear(&seg.path, tail_len, damaged_end as u64)?;
            }
        }
    }
    Ok(Recovered {
        segments,
        last_lsn,
        layout,
        tail_len,
        truncated_bytes,
    })
}

/// What [`truncate_at`] did.
#[derive(Debug)]
pub struct Truncated {
    pub bytes: u64,
    /// Where the cut bytes were kept.
    pub kept: PathBuf,
    /// The LSN of the first record cut; the journal now ends just before it.
    pub first_lost_lsn: Lsn,
}

/// The operator's override after a refusal: cuts the last segment, named `file` (a path or a
/// bare file name in `dir`), at `offset`, which must be exactly where its valid prefix ends,
/// keeping the cut bytes in `damaged/`. Refuses when the store has already applied the record
/// there (cutting would leave the journal behind the store, which startup refuses anyway).
///
/// # Errors
/// [`Error::Corrupt`] when the file is not the last segment, the offset is not where its
/// damage starts, or the store is past it; [`Error::Io`] on I/O failure.
pub fn truncate_at(
    dir: &Path,
    file: &Path,
    offset: u64,
    applied_lsn: Lsn,
) -> Result<Truncated, Error> {
    let segments = segment::list(dir).map_err(|e| Error::io(dir, e))?;
    let Some(seg) = segments
        .last()
        .filter(|s| Some(s.path.file_name()) == Some(file.file_name()))
    else {
        return Err(Error::corrupt(
            file,
            offset,
            format!(
                "only the last segment of {} can be truncated, and this is not it",
                dir.display()
            ),
        ));
    };
    let mapped = Mapped::open(&seg.path).map_err(|e| Error::io(&seg.path, e))?;
    let bytes = mapped.bytes();
    let layout = segment::check_header(bytes, seg.first_lsn)
        .map_err(|e| Error::corrupt(&seg.path, 0, e.to_string()))?;
    let end = walk(bytes, seg, layout, |_, _| Ok(()))?;
    if end.bad.is_none() || end.offset as u64 != offset {
        return Err(Error::corrupt(
            &seg.path,
            offset,
            format!(
                "not where this segment's damage starts (its valid records end at offset {}{})",
                end.offset,
                if end.bad.is_none() {
                    ", the end of the file"
                } else {
                    ""
                }
            ),
        ));
    }
    if applied_lsn >= end.next_lsn {
        return Err(Error::corrupt(
            &seg.path,
            offset,
            format!(
                "the store has already applied records up to {applied_lsn}, past record {} \
                 here; cutting would leave the journal behind the store",
                end.next_lsn
            ),
        ));
    }
    let damaged_end = nonzero_len(bytes);
    let kept = set_aside(dir, &seg.path, end.offset, &bytes[end.offset..damaged_end])?;
    clear(&seg.path, offset, damaged_end as u64)?;
    tracing::warn!(file = %seg.path.display(), offset, kept = %kept.display(), "journal: cleared by the operator");
    Ok(Truncated {
        bytes: (damaged_end - end.offset) as u64,
        kept,
        first_lost_lsn: end.next_lsn,
    })
}

/// Copies `tail`, cut from `segment` at `offset`, to `dir/damaged/{segment}.{offset}.{ms}.tail`
/// and makes it durable, before the cut.
fn set_aside(dir: &Path, segment: &Path, offset: usize, tail: &[u8]) -> Result<PathBuf, Error> {
    use std::io::Write;
    let damaged = dir.join(DAMAGED_DIR);
    let name = segment
        .file_name()
        .expect("invariant: segments have file names")
        .to_string_lossy();
    let path = damaged.join(format!("{name}.{offset}.{}.tail", crate::model::now_ms()));
    let io = |e| Error::io(&path, e);
    std::fs::create_dir_all(&damaged).map_err(io)?;
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&path)
        .map_err(io)?;
    f.write_all(tail).map_err(io)?;
    f.sync_all().map_err(io)?;
    segment::sync_dir(&damaged).map_err(io)?;
    segment::sync_dir(dir).map_err(io)?;
    Ok(path)
}

/// Overwrites `path` from `from` to `to` with zeros and syncs it: the file keeps its size (and
/// a preallocated segment its written blocks); the zeros read as the end of the records.
fn clear(path: &Path, from: u64, to: u64) -> Result<(), Error> {
    use std::os::unix::fs::FileExt;
    let file = OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(|e| Error::io(path, e))?;
    let zeros = vec![0u8; (to - from).min(1 << 20) as usize];
    let mut at = from;
    while at < to {
        let n = (to - at).min(zeros.len() as u64) as usize;
        file.write_all_at(&zeros[..n], at)
            .map_err(|e| Error::io(path, e))?;
        at += n as u64;
    }
    file.sync_data().map_err(|e| Error::io(path, e))
}

/// A segment mapped read-only for the scan. Mapping instead of reading keeps the daemon's
/// heap from growing by a segment's size at every start (glibc keeps freed large buffers);
/// the pages leave the process's resident set at `munmap`.
struct Mapped {
    ptr: *mut libc::c_void,
    len: usize,
}

impl Mapped {
    fn open(path: &Path) -> std::io::Result<Mapped> {
        use std::os::fd::AsRawFd;
        let file = std::fs::File::open(path)?;
        let len = usize::try_from(file.metadata()?.len()).map_err(std::io::Error::other)?;
        if len == 0 {
            return Ok(Mapped {
                ptr: std::ptr::null_mut(),
                len: 0,
            });
        }
        // SAFETY: a private read-only mapping of a file this process owns; nothing truncates
        // it while mapped (the journal writer starts only after recovery returns).
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ,
                libc::MAP_PRIVATE,
                file.as_raw_fd(),
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(std::io::Error::last_os_error());
        }
        Ok(Mapped { ptr, len })
    }

    fn bytes(&self) -> &[u8] {
        if self.len == 0 {
            return &[];
        }
        // SAFETY: `ptr` maps `len` readable bytes for as long as `self` lives.
        unsafe { std::slice::from_raw_parts(self.ptr.cast::<u8>(), self.len) }
    }
}

impl Drop for Mapped {
    fn drop(&mut self) {
        if self.len > 0 {
            // SAFETY: unmaps exactly the mapping made in `open`.
            unsafe { libc::munmap(self.ptr, self.len) };
        }
    }
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod torn_batches;

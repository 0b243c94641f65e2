//! Startup recovery: verify the segments, replay what the store has not applied, truncate a
//! torn tail of the last segment, refuse anything else.
//!
//! Policy (see `journal/mod.rs` for why it is safe):
//! - Every segment is read frame by frame; each frame must decode, pass its CRC and carry the
//!   next LSN. Records above the store's applied LSN must also hold a decodable operation, and
//!   are replayed; the others the store already has.
//! - In the last segment the first frame that is incomplete or fails its CRC marks the end of
//!   what was ever fsync'd; the file is truncated there (and fsync'd) and startup goes on.
//! - Anywhere else — a bad header, a bad frame before the last segment's tail, a gap or an
//!   overlap between segments, an undecodable operation — startup stops with
//!   [`Error::Corrupt`] naming the file and offset.

use std::fs::OpenOptions;
use std::path::Path;

use super::frame::{self, Decoded};
use super::segment::{self, SegmentFile};
use super::Error;
use crate::model::Lsn;
use crate::op::Op;

#[derive(Debug)]
pub struct Recovered {
    pub segments: Vec<SegmentFile>,
    /// LSN of the last committed record (0 for an empty journal).
    pub last_lsn: Lsn,
    /// Valid length of the last segment, where appending resumes.
    pub tail_len: u64,
    /// Bytes cut from a torn tail.
    pub truncated_bytes: u64,
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
        segment::check_header(bytes, seg.first_lsn)
            .map_err(|e| Error::corrupt(&seg.path, 0, e.to_string()))?;
        let mut offset = segment::HEADER_LEN as usize;
        let mut expected = seg.first_lsn;
        let torn = loop {
            match frame::decode(&bytes[offset..], seg.first_lsn) {
                Decoded::Frame(f) => {
                    if f.lsn != expected {
                        return Err(Error::corrupt(
                            &seg.path,
                            offset as u64,
                            format!("record has LSN {} where {expected} was expected", f.lsn),
                        ));
                    }
                    if f.lsn > applied_lsn {
                        let op = Op::decode(f.kind, f.payload).map_err(|e| {
                            Error::corrupt(
                                &seg.path,
                                offset as u64,
                                format!("undecodable operation: {e}"),
                            )
                        })?;
                        on_record(f.lsn, op)?;
                    }
                    expected += 1;
                    offset += f.size;
                }
                Decoded::Incomplete if offset == bytes.len() => break None,
                Decoded::Incomplete => break Some("incomplete record"),
                Decoded::Corrupt(why) => break Some(why),
            }
        };
        last_lsn = expected - 1;
        tail_len = offset as u64;
        if let Some(why) = torn {
            if !is_last {
                return Err(Error::corrupt(&seg.path, offset as u64, why.to_string()));
            }
            truncated_bytes = (bytes.len() - offset) as u64;
            tracing::warn!(
                file = %seg.path.display(),
                offset,
                bytes = truncated_bytes,
                reason = why,
                "journal: truncating torn tail of the last segment (never acknowledged)"
            );
            let file = OpenOptions::new()
                .write(true)
                .open(&seg.path)
                .map_err(|e| Error::io(&seg.path, e))?;
            file.set_len(offset as u64)
                .map_err(|e| Error::io(&seg.path, e))?;
            file.sync_all().map_err(|e| Error::io(&seg.path, e))?;
        }
    }
    Ok(Recovered {
        segments,
        last_lsn,
        tail_len,
        truncated_bytes,
    })
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
mod tests {
    use super::*;
    use crate::journal::segment;
    use crate::model::Sender;
    use crate::op::MessageAdded;
    use std::io::Write;

    fn msg(n: u64) -> Op {
        Op::MessageAdded(MessageAdded {
            conversation: 1,
            contact: 1,
            sender: Sender::Visitor,
            agent: None,
            client_id: None,
            text: format!("message number {n}"),
            at_ms: n as i64,
            attachment: None,
            via: None,
        })
    }

    /// Writes `count` records starting at `first` into a new segment; returns the frame end
    /// offsets (the committed prefixes).
    fn write_segment(dir: &Path, first: u64, count: u64) -> Vec<u64> {
        let mut file = segment::create(dir, first).unwrap();
        let mut buf = Vec::new();
        let mut ends = vec![segment::HEADER_LEN];
        for lsn in first..first + count {
            let op = msg(lsn);
            frame::encode_with(&mut buf, first, lsn, op.kind(), |b| op.encode(b));
            ends.push(segment::HEADER_LEN + buf.len() as u64);
        }
        file.write_all(&buf).unwrap();
        file.sync_all().unwrap();
        ends
    }

    fn collect(dir: &Path, applied: Lsn) -> Result<(Recovered, Vec<Lsn>), Error> {
        let mut seen = Vec::new();
        let r = recover(dir, applied, |lsn, op| {
            assert_eq!(op, msg(lsn));
            seen.push(lsn);
            Ok(())
        })?;
        Ok((r, seen))
    }

    #[test]
    fn empty_directory_recovers_to_zero() {
        let dir = tempfile::tempdir().unwrap();
        let (r, seen) = collect(dir.path(), 0).unwrap();
        assert_eq!((r.last_lsn, seen.len()), (0, 0));
    }

    /// The redb-style crash test: cut the last segment at every byte offset; recovery must
    /// yield exactly the records wholly before the cut, and a second recovery the same.
    #[test]
    fn cut_at_every_offset_of_the_last_segment_yields_the_committed_prefix() {
        let src = tempfile::tempdir().unwrap();
        write_segment(src.path(), 1, 5);
        let ends = write_segment(src.path(), 6, 6);
        let last = src.path().join(segment::file_name(6));
        let full = std::fs::read(&last).unwrap();
        for cut in segment::HEADER_LEN..=full.len() as u64 {
            let dir = tempfile::tempdir().unwrap();
            std::fs::copy(
                src.path().join(segment::file_name(1)),
                dir.path().join(segment::file_name(1)),
            )
            .unwrap();
            std::fs::write(
                dir.path().join(segment::file_name(6)),
                &full[..cut as usize],
            )
            .unwrap();
            let committed = ends.iter().filter(|&&e| e <= cut).count() as u64 - 1;
            let (r, seen) = collect(dir.path(), 0).unwrap();
            assert_eq!(r.last_lsn, 5 + committed, "cut at {cut}");
            assert_eq!(
                seen,
                (1..=5 + committed).collect::<Vec<_>>(),
                "cut at {cut}"
            );
            let valid_end = ends[committed as usize];
            assert_eq!(r.tail_len, valid_end);
            assert_eq!(r.truncated_bytes, cut - valid_end);
            assert_eq!(
                std::fs::metadata(dir.path().join(segment::file_name(6)))
                    .unwrap()
                    .len(),
                valid_end
            );
            let (again, _) = collect(dir.path(), 0).unwrap();
            assert_eq!((again.last_lsn, again.truncated_bytes), (r.last_lsn, 0));
        }
    }

    #[test]
    fn garbage_after_the_last_record_is_truncated() {
        let dir = tempfile::tempdir().unwrap();
        let ends = write_segment(dir.path(), 1, 3);
        let path = dir.path().join(segment::file_name(1));
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(&[0xAB; 100]).unwrap();
        let (r, _) = collect(dir.path(), 0).unwrap();
        assert_eq!(
            (r.last_lsn, r.tail_len, r.truncated_bytes),
            (3, ends[3], 100)
        );
    }

    #[test]
    fn damage_in_a_middle_segment_refuses_and_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let ends = write_segment(dir.path(), 1, 5);
        write_segment(dir.path(), 6, 5);
        let path = dir.path().join(segment::file_name(1));
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[ends[2] as usize + 20] ^= 0xFF;
        std::fs::write(&path, bytes).unwrap();
        let err = collect(dir.path(), 0).unwrap_err().to_string();
        assert!(err.contains(&segment::file_name(1)), "{err}");
        assert!(err.contains("checksum"), "{err}");
    }

    #[test]
    fn applied_records_are_verified_but_not_replayed() {
        let dir = tempfile::tempdir().unwrap();
        let ends = write_segment(dir.path(), 1, 5);
        write_segment(dir.path(), 6, 5);
        let (r, seen) = collect(dir.path(), 7).unwrap();
        assert_eq!(r.last_lsn, 10);
        assert_eq!(seen, vec![8, 9, 10]);
        let path = dir.path().join(segment::file_name(1));
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[ends[1] as usize + 20] ^= 0xFF;
        std::fs::write(&path, bytes).unwrap();
        assert!(matches!(collect(dir.path(), 7), Err(Error::Corrupt { .. })));
    }

    #[test]
    fn a_gap_between_segments_refuses() {
        let dir = tempfile::tempdir().unwrap();
        write_segment(dir.path(), 1, 5);
        write_segment(dir.path(), 9, 2);
        let err = collect(dir.path(), 0).unwrap_err().to_string();
        assert!(
            err.contains(&segment::file_name(9)) && err.contains("ends at 5"),
            "{err}"
        );
    }

    #[test]
    fn a_damaged_header_refuses() {
        let dir = tempfile::tempdir().unwrap();
        write_segment(dir.path(), 1, 2);
        let path = dir.path().join(segment::file_name(1));
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[3] ^= 1;
        std::fs::write(&path, bytes).unwrap();
        assert!(matches!(collect(dir.path(), 0), Err(Error::Corrupt { .. })));
    }
}

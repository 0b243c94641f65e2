//! Which journal segments a backup takes, and how much of each: the decisions, over bytes
//! already read. Pure: no I/O.
//!
//! - [`first_needed`]: the segments from the one holding record `applied + 1` (the first the
//!   store snapshot lacks) on; when that record is not written yet, from the last segment
//!   (it holds `applied`, or starts right after it), so the restored journal reaches the
//!   store's LSN as recovery demands.
//! - [`verified_len`]: a segment is taken up to the end of its records as recovery reads them
//!   (its last whole batch; in an unsealed segment, its last frame whose CRC checks). A closed
//!   segment must be whole (valid batches, then zeros or the end of the file). The last one may
//!   be mid-write: it is cut at the end of its last whole batch, which is after every record
//!   acknowledged before the backup began (those were synced before it read a byte), so the
//!   cut loses only records written while it ran.
//! - [`contiguous`]: the segments taken must chain LSN to LSN, from at or before
//!   `applied + 1` to at least `applied`; a gap means the listing raced a rotation and
//!   retention, and the backup starts over.

use crate::journal::recovery::walk;
use crate::journal::segment::{self, SegmentFile};
use crate::model::Lsn;

/// The index of the first segment a backup needs, from segments' first LSNs in order; `None`
/// for no segments at all.
pub fn first_needed(firsts: &[Lsn], applied: Lsn) -> Option<usize> {
    if firsts.is_empty() {
        return None;
    }
    Some(
        firsts
            .iter()
            .rposition(|&first| first <= applied.saturating_add(1))
            .unwrap_or(0),
    )
}

/// How much of one segment a backup takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Taken {
    /// Bytes from the start of the file: the header and whole, checked frames.
    pub len: usize,
    pub first_lsn: Lsn,
    /// The LSN after its last record (`first_lsn` when it has none).
    pub next_lsn: Lsn,
}

/// The checked prefix of `bytes`, the content of `seg`; `last` when it is the open segment.
///
/// # Errors
/// A sentence naming the offset: a bad header, a frame with the wrong LSN, or (in a closed
/// segment) a frame that does not check.
pub fn verified_len(bytes: &[u8], seg: &SegmentFile, last: bool) -> Result<Taken, String> {
    let layout = segment::check_header(bytes, seg.first_lsn)
        .map_err(|e| format!("{} at offset 0: {e}", seg.path.display()))?;
    let end = walk(bytes, seg, layout, |_, _| Ok(())).map_err(|e| e.to_string())?;
    if let (Some(why), false) = (end.bad, last) {
        return Err(format!(
            "{} at offset {}: {why} in a closed segment: the live journal is damaged (kefud \
             will refuse to start on it too)",
            seg.path.display(),
            end.offset
        ));
    }
    Ok(Taken {
        len: end.offset,
        first_lsn: seg.first_lsn,
        next_lsn: end.next_lsn,
    })
}

/// Checks that `taken` (in order) chain without a gap and cover `applied + 1` onwards: the
/// range of records they hold, `(first, last)`.
///
/// # Errors
/// A sentence describing the gap.
pub fn contiguous(taken: &[Taken], applied: Lsn) -> Result<(Lsn, Lsn), String> {
    let (Some(first), Some(last)) = (taken.first(), taken.last()) else {
        return if applied == 0 {
            Ok((1, 0))
        } else {
            Err(format!(
                "no journal segment holds the records after the store's LSN {applied}"
            ))
        };
    };
    if first.first_lsn > applied.saturating_add(1) {
        return Err(format!(
            "the journal starts at LSN {} but the store snapshot needs it from {}",
            first.first_lsn,
            applied + 1
        ));
    }
    for pair in taken.windows(2) {
        if pair[1].first_lsn != pair[0].next_lsn {
            return Err(format!(
                "segment {} follows one that ends before LSN {}",
                pair[1].first_lsn, pair[0].next_lsn
            ));
        }
    }
    if last.next_lsn <= applied {
        return Err(format!(
            "the journal ends at LSN {} before the store's {applied}",
            last.next_lsn - 1
        ));
    }
    Ok((first.first_lsn, last.next_lsn - 1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal::frame;

    fn segment_bytes(first: Lsn, records: u64) -> Vec<u8> {
        let mut buf = segment::encode_sealed(first, 512).to_vec();
        buf.resize(1024, 0);
        for lsn in first..first + records {
            frame::encode_with(&mut buf, first, lsn, 1, |b| b.extend_from_slice(b"payload"));
        }
        frame::seal(&mut buf, 512, first, first + records);
        buf.resize(buf.len() + 4096, 0);
        buf
    }

    fn seg(first: Lsn) -> SegmentFile {
        SegmentFile {
            first_lsn: first,
            path: segment::file_name(first).into(),
        }
    }

    #[test]
    fn first_needed_holds_the_record_after_the_store() {
        assert_eq!(first_needed(&[], 0), None);
        assert_eq!(first_needed(&[1, 10, 20], 0), Some(0));
        assert_eq!(first_needed(&[1, 10, 20], 8), Some(0));
        assert_eq!(first_needed(&[1, 10, 20], 9), Some(1));
        assert_eq!(first_needed(&[1, 10, 20], 19), Some(2));
        assert_eq!(first_needed(&[1, 10, 20], 500), Some(2));
        // Retention deleted what the store has: the first left is still the one to start at.
        assert_eq!(first_needed(&[10, 20], 3), Some(0));
    }

    #[test]
    fn a_closed_segment_is_taken_whole_without_its_zeros() {
        let bytes = segment_bytes(5, 3);
        let t = verified_len(&bytes, &seg(5), false).unwrap();
        assert_eq!((t.first_lsn, t.next_lsn), (5, 8));
        assert_eq!(
            t.len, 1536,
            "header sector, a zero sector, one sealed batch"
        );
    }

    #[test]
    fn the_open_segment_is_cut_at_its_last_whole_batch() {
        let whole = segment_bytes(5, 3);
        let batch = whole.len() - 4096;
        // Every prefix of the frame being written, the whole frame without the batch's
        // padding frame included: the cut stays at the last whole batch.
        for keep in 0..=frame::HEADER_LEN + 13 {
            let mut bytes = whole[..batch].to_vec();
            let mut next = Vec::new();
            frame::encode_with(&mut next, 5, 8, 1, |b| {
                b.extend_from_slice(b"being written")
            });
            bytes.extend_from_slice(&next[..keep]);
            bytes.resize(whole.len(), 0);
            let t = verified_len(&bytes, &seg(5), true).unwrap();
            assert_eq!((t.len, t.next_lsn), (batch, 8), "keep {keep}");
            assert!(
                verified_len(&bytes, &seg(5), false).is_err() || keep == 0,
                "a closed segment with a torn frame is damage (keep {keep})"
            );
        }
    }

    #[test]
    fn contiguity() {
        let t = |first, next| Taken {
            len: 0,
            first_lsn: first,
            next_lsn: next,
        };
        assert_eq!(contiguous(&[], 0), Ok((1, 0)));
        assert!(contiguous(&[], 3).is_err());
        assert_eq!(contiguous(&[t(1, 10), t(10, 15)], 4), Ok((1, 14)));
        assert_eq!(contiguous(&[t(10, 10)], 9), Ok((10, 9)));
        assert!(contiguous(&[t(1, 10), t(11, 15)], 4).is_err(), "gap");
        assert!(contiguous(&[t(12, 15)], 4).is_err(), "starts too late");
        assert!(contiguous(&[t(1, 4)], 9).is_err(), "ends before the store");
    }
}

//! Unit tests of `recovery`.

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

/// Writes `count` records starting at `first` into a new version 1 segment (frames right
/// after the header, no padding, no zeros ahead: the harshest layout to cut); returns the
/// frame end offsets (the committed prefixes).
fn write_segment(dir: &Path, first: u64, count: u64) -> Vec<u64> {
    let mut bytes = segment::encode_header(first, 0).to_vec();
    bytes[8..12].copy_from_slice(&1u32.to_le_bytes());
    let crc = crc32c::crc32c(&bytes[0..24]);
    bytes[24..28].copy_from_slice(&crc.to_le_bytes());
    let mut ends = vec![segment::HEADER_LEN];
    for lsn in first..first + count {
        let op = msg(lsn);
        frame::encode_with(&mut bytes, first, lsn, op.kind(), |b| op.encode(b));
        ends.push(bytes.len() as u64);
    }
    std::fs::write(dir.join(segment::file_name(first)), bytes).unwrap();
    ends
}

/// `bytes` without trailing zeros, as tails are kept.
fn trimmed(bytes: &[u8]) -> Vec<u8> {
    bytes[..nonzero_len(bytes)].to_vec()
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
        let torn = trimmed(&full[valid_end as usize..cut as usize]);
        assert_eq!(r.tail_len, valid_end);
        assert_eq!(r.truncated_bytes, torn.len() as u64);
        let after = std::fs::read(dir.path().join(segment::file_name(6))).unwrap();
        assert_eq!(after.len() as u64, cut, "cleared in place, not cut");
        assert!(is_zero(&after[valid_end as usize..]), "cut at {cut}");
        let (again, _) = collect(dir.path(), 0).unwrap();
        assert_eq!((again.last_lsn, again.truncated_bytes), (r.last_lsn, 0));
        let kept = kept_tails(dir.path());
        if torn.is_empty() {
            assert!(kept.is_empty(), "cut at {cut}");
        } else {
            assert_eq!(kept, vec![torn], "cut at {cut}: the torn bytes are kept");
        }
    }
}

/// The contents of every tail kept under `damaged/`.
fn kept_tails(dir: &Path) -> Vec<Vec<u8>> {
    let Ok(entries) = std::fs::read_dir(dir.join(DAMAGED_DIR)) else {
        return Vec::new();
    };
    entries
        .map(|e| std::fs::read(e.unwrap().path()).unwrap())
        .collect()
}

/// Two segments (LSNs 1-5 and 6-11); returns the last one's path, bytes and frame ends.
fn two_segments(dir: &Path) -> (std::path::PathBuf, Vec<u8>, Vec<u64>) {
    write_segment(dir, 1, 5);
    let ends = write_segment(dir, 6, 6);
    let path = dir.join(segment::file_name(6));
    let bytes = std::fs::read(&path).unwrap();
    (path, bytes, ends)
}

/// The SD-card failure: one bit flipped in a record of the last segment that
/// valid records follow. Whatever byte it hits, recovery refuses naming the file and the
/// damaged record's offset, and leaves the file exactly as it was.
#[test]
fn a_flipped_bit_followed_by_valid_records_refuses_and_touches_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (path, clean, ends) = two_segments(dir.path());
    let last_frame = ends[ends.len() - 2];
    for at in segment::HEADER_LEN..last_frame {
        let mut bytes = clean.clone();
        bytes[at as usize] ^= 1 << (at % 8);
        std::fs::write(&path, &bytes).unwrap();
        let frame_start = *ends.iter().rfind(|&&e| e <= at).unwrap();
        match collect(dir.path(), 0) {
            Err(Error::Corrupt {
                path: p,
                offset,
                reason,
            }) => {
                assert_eq!((p.as_path(), offset), (path.as_path(), frame_start), "{at}");
                assert!(reason.contains("valid record"), "{at}: {reason}");
                assert!(reason.contains("kefud journal truncate"), "{at}: {reason}");
            }
            other => panic!("flip at {at}: expected a refusal, got {other:?}"),
        }
        assert_eq!(std::fs::read(&path).unwrap(), bytes, "flip at {at}");
        assert!(kept_tails(dir.path()).is_empty());
    }
}

/// Damage in the last record, with nothing after it, looks exactly like a torn write;
/// only the store can tell: once it has applied the record, it was synced.
#[test]
fn a_bad_record_the_store_has_applied_refuses() {
    let dir = tempfile::tempdir().unwrap();
    let (path, clean, ends) = two_segments(dir.path());
    for (applied, at) in [(11, ends[5] + 3), (11, ends[6] - 1), (8, ends[2] + 20)] {
        let mut bytes = clean.clone();
        bytes[at as usize] ^= 0x10;
        std::fs::write(&path, &bytes).unwrap();
        match collect(dir.path(), applied) {
            Err(Error::Corrupt { offset, reason, .. }) => {
                assert!(offset < at, "{at}");
                assert!(reason.contains("already applied"), "{reason}");
            }
            other => panic!("flip at {at}: expected a refusal, got {other:?}"),
        }
        assert_eq!(std::fs::read(&path).unwrap(), bytes);
    }
    // Not yet applied: indistinguishable from a torn write, cleared, and the bytes kept.
    let mut bytes = clean.clone();
    bytes[ends[6] as usize - 1] ^= 0x10;
    std::fs::write(&path, &bytes).unwrap();
    let (r, _) = collect(dir.path(), 10).unwrap();
    assert_eq!((r.last_lsn, r.tail_len), (10, ends[5]));
    assert_eq!(
        kept_tails(dir.path()),
        vec![trimmed(&bytes[ends[5] as usize..])]
    );
}

/// Zeros after the last record (written ahead by the writer, or a file size that reached
/// the disk before its data) are the end of the records: nothing cleared, nothing kept,
/// the file left as it is, in the last segment or any other.
#[test]
fn a_zero_tail_is_the_end_of_the_records_and_is_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let first = dir.path().join(segment::file_name(1));
    let (path, _, ends) = two_segments(dir.path());
    for p in [&first, &path] {
        let mut f = OpenOptions::new().append(true).open(p).unwrap();
        f.write_all(&[0; 8192]).unwrap();
    }
    let len = std::fs::metadata(&path).unwrap().len();
    let (r, seen) = collect(dir.path(), 0).unwrap();
    assert_eq!(
        (r.last_lsn, r.tail_len, r.truncated_bytes),
        (11, ends[6], 0)
    );
    assert_eq!(seen, (1..=11).collect::<Vec<_>>());
    assert_eq!(std::fs::metadata(&path).unwrap().len(), len);
    assert!(kept_tails(dir.path()).is_empty());
}

/// Segments as the writer makes them: a header sector, batches padded to the alignment,
/// zeros ahead; a crash in the middle of a batch's write leaves a torn tail, cleared.
#[test]
fn padded_segments_recover_and_a_torn_batch_is_cleared() {
    use crate::journal::appender::Appender;
    let dir = tempfile::tempdir().unwrap();
    let mut lsn = 1;
    let mut last_position = 0;
    for first in [1u64, 8] {
        let mut a = Appender::create(dir.path(), first).unwrap();
        for batch in [2u64, 1, 4] {
            let mut buf = Vec::new();
            for _ in 0..batch.min(first + 7 - lsn) {
                let op = msg(lsn);
                frame::encode_with(&mut buf, first, lsn, op.kind(), |b| op.encode(b));
                lsn += 1;
            }
            if !buf.is_empty() {
                a.append(&mut buf, first, lsn).unwrap();
            }
        }
        last_position = a.position();
    }
    let (r, seen) = collect(dir.path(), 0).unwrap();
    assert_eq!(seen, (1..=14).collect::<Vec<_>>());
    assert_eq!(
        (r.last_lsn, r.tail_len, r.truncated_bytes),
        (14, last_position, 0)
    );
    assert!(r.layout.sealed && r.layout.align % 512 == 0);

    // Half a batch reached the disk after the last complete one.
    let path = dir.path().join(segment::file_name(8));
    let mut bytes = std::fs::read(&path).unwrap();
    let op = msg(15);
    let mut torn = Vec::new();
    frame::encode_with(&mut torn, 8, 15, op.kind(), |b| op.encode(b));
    let at = last_position as usize;
    bytes[at..at + torn.len() / 2].copy_from_slice(&torn[..torn.len() / 2]);
    std::fs::write(&path, &bytes).unwrap();
    let (r, _) = collect(dir.path(), 0).unwrap();
    assert_eq!((r.last_lsn, r.tail_len), (14, last_position));
    assert!(r.truncated_bytes > 0);
    let after = std::fs::read(&path).unwrap();
    assert_eq!(after.len(), bytes.len());
    assert!(is_zero(&after[at..]));
}

/// Pages of one unsynced multi-record write persisted out of order: an earlier record
/// zeroed, later ones whole. Recovery cannot tell this from damage and refuses; the
/// operator's truncate cuts at the named offset and keeps the bytes.
#[test]
fn out_of_order_torn_write_refuses_until_the_operator_truncates() {
    let dir = tempfile::tempdir().unwrap();
    let (path, mut bytes, ends) = two_segments(dir.path());
    bytes[ends[3] as usize..ends[4] as usize].fill(0);
    std::fs::write(&path, &bytes).unwrap();
    let Err(Error::Corrupt { offset, .. }) = collect(dir.path(), 0) else {
        panic!("expected a refusal");
    };
    assert_eq!(offset, ends[3]);
    let first = dir.path().join(segment::file_name(1));
    for (file, at, applied, says) in [
        (first.as_path(), offset, 0, "only the last segment"),
        (path.as_path(), offset + 1, 0, "valid records end at offset"),
        (path.as_path(), offset, 9, "already applied"),
    ] {
        let err = truncate_at(dir.path(), file, at, applied)
            .unwrap_err()
            .to_string();
        assert!(err.contains(says), "{err}");
        assert_eq!(std::fs::read(&path).unwrap(), bytes);
    }
    let name = Path::new(path.file_name().unwrap());
    let t = truncate_at(dir.path(), name, offset, 8).unwrap();
    let lost = trimmed(&bytes[offset as usize..]);
    assert_eq!((t.first_lost_lsn, t.bytes), (9, lost.len() as u64));
    assert_eq!(std::fs::read(&t.kept).unwrap(), lost);
    let (r, seen) = collect(dir.path(), 0).unwrap();
    assert_eq!((r.last_lsn, r.truncated_bytes), (8, 0));
    assert_eq!(seen, (1..=8).collect::<Vec<_>>());
}

#[test]
fn garbage_after_the_last_record_is_cleared() {
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

#[test]
fn an_operation_of_a_newer_kefud_refuses_and_names_it() {
    let dir = tempfile::tempdir().unwrap();
    write_segment(dir.path(), 1, 3);
    let path = dir.path().join(segment::file_name(1));
    let mut bytes = std::fs::read(&path).unwrap();
    frame::encode_with(&mut bytes, 1, 4, 250, |b| b.extend_from_slice(b"later"));
    std::fs::write(&path, &bytes).unwrap();
    let err = collect(dir.path(), 0).unwrap_err();
    assert!(
        matches!(
            err,
            Error::Newer {
                lsn: 4,
                kind: 250,
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("newer kefud"), "{err}");
    assert_eq!(
        std::fs::read(&path).unwrap(),
        bytes,
        "the file is left as it is"
    );
}

//! Unit tests of `recovery` on batches: in a sealed segment a batch is kept whole or dropped
//! whole, whatever part of its write reached the disk; older segments recover as before.

use super::*;
use crate::journal::writer::{Writer, WriterConfig};
use crate::model::Sender;
use crate::op::MessageAdded;

const ALIGN: usize = 512;
/// Zeros after the records, as the zero-filler leaves them.
const ZEROS_AHEAD: usize = 4 * ALIGN;

/// Record `lsn`, a message of `text_len` bytes of text (its frame grows with it).
fn record(lsn: Lsn, text_len: usize) -> Op {
    Op::MessageAdded(MessageAdded {
        conversation: 1,
        contact: 1,
        sender: Sender::Visitor,
        agent: None,
        client_id: None,
        text: format!("{lsn:>text_len$}"),
        at_ms: lsn as i64,
        attachment: None,
        via: None,
    })
}

/// The text length that makes record `lsn`'s frame exactly `size` bytes.
fn text_for_frame(lsn: Lsn, size: usize) -> usize {
    (0..size)
        .find(|&len| {
            let mut payload = Vec::new();
            record(lsn, len).encode(&mut payload);
            frame::HEADER_LEN + payload.len() == size
        })
        .expect("some text length fits")
}

/// A segment as bytes, the records in it, and where each batch starts and ends.
struct Built {
    bytes: Vec<u8>,
    ops: Vec<(Lsn, Op)>,
    batches: Vec<(usize, usize)>,
}

/// Segment `first` holding `batches` (each the text lengths of its records): sealed as this
/// kefud writes it, or unsealed (version 2 before sealing: padded only when the records end
/// off the alignment).
fn build(first: Lsn, batches: &[&[usize]], sealed: bool) -> Built {
    let mut bytes = if sealed {
        segment::encode_sealed(first, ALIGN as u32).to_vec()
    } else {
        segment::encode_header(first, ALIGN as u32).to_vec()
    };
    bytes.resize(if sealed { 2 * ALIGN } else { ALIGN }, 0);
    let (mut ops, mut spans, mut lsn) = (Vec::new(), Vec::new(), first);
    for texts in batches {
        let start = bytes.len();
        for &len in *texts {
            let op = record(lsn, len);
            frame::encode_with(&mut bytes, first, lsn, op.kind(), |b| op.encode(b));
            ops.push((lsn, op));
            lsn += 1;
        }
        if sealed || bytes.len() % ALIGN != 0 {
            frame::seal(&mut bytes, ALIGN, first, lsn);
        }
        spans.push((start, bytes.len()));
    }
    Built {
        bytes,
        ops,
        batches: spans,
    }
}

/// A directory for a journal: on tmpfs where there is one (recovery fsyncs, and these tests
/// recover a thousand times).
fn scratch() -> tempfile::TempDir {
    tempfile::tempdir_in("/dev/shm").unwrap_or_else(|_| tempfile::tempdir().unwrap())
}

fn recovered(dir: &Path, applied: Lsn) -> Result<(Recovered, Vec<(Lsn, Op)>), Error> {
    let mut seen = Vec::new();
    let r = recover(dir, applied, |lsn, op| {
        seen.push((lsn, op));
        Ok(())
    })?;
    Ok((r, seen))
}

/// Writes `bytes` and the zeros ahead as the journal's only segment, starting at LSN 1.
fn write(dir: &Path, bytes: &[u8]) -> PathBuf {
    let path = dir.join(segment::file_name(1));
    let mut file = bytes.to_vec();
    file.resize(bytes.len() + ZEROS_AHEAD, 0);
    std::fs::write(&path, file).unwrap();
    path
}

/// Two whole batches (records 1-3), then a batch of five records over three sectors.
fn with_a_last_batch() -> Built {
    build(1, &[&[40], &[100, 30], &[300, 20, 500, 120, 200]], true)
}

/// The power cut: the last batch's write stops after any byte (its sectors reach the
/// disk in order, up to any point). Recovery keeps the batches before it and nothing of it,
/// though whole records of it lie there (a message without its cluster stamp), unless every
/// byte it wrote is there.
#[test]
fn a_batch_torn_at_any_byte_is_dropped_whole() {
    let b = with_a_last_batch();
    let (start, end) = b.batches[2];
    assert!(end - start > 2 * ALIGN, "the batch spans several sectors");
    let written = start + nonzero_len(&b.bytes[start..end]);
    for cut in start..=end {
        let dir = scratch();
        let path = write(dir.path(), &b.bytes[..cut]);
        let (r, seen) = recovered(dir.path(), 0).unwrap();
        let whole = cut >= written;
        let kept = if whole { &b.ops[..] } else { &b.ops[..3] };
        assert_eq!(seen, kept, "cut at {cut}");
        assert_eq!(r.last_lsn, kept.len() as Lsn, "cut at {cut}");
        assert_eq!(r.tail_len, if whole { end } else { start } as u64);
        let torn = if whole {
            0
        } else {
            nonzero_len(&b.bytes[start..cut])
        };
        assert_eq!(r.truncated_bytes, torn as u64, "cut at {cut}");
        let after = std::fs::read(&path).unwrap();
        assert!(is_zero(&after[r.tail_len as usize..]), "cut at {cut}");
        let (again, _) = recovered(dir.path(), 0).unwrap();
        assert_eq!((again.last_lsn, again.truncated_bytes), (r.last_lsn, 0));
    }
}

/// The batch's sectors reach the disk in any order, any of them missing: recovery keeps the
/// batches before it, or the whole batch when every sector it wrote is there, or refuses
/// (a later record whole after a missing one looks like damage) touching nothing; never a
/// part of the batch. A prefix of its sectors is always a torn batch.
#[test]
fn a_batch_with_any_of_its_sectors_missing_is_dropped_whole_or_refused() {
    let b = with_a_last_batch();
    let (start, end) = b.batches[2];
    let sectors = (end - start) / ALIGN;
    let (mut torn, mut refused) = (0, 0);
    for persisted in 0u32..1 << sectors {
        let mut bytes = b.bytes.clone();
        for i in (0..sectors).filter(|i| persisted & 1 << i == 0) {
            bytes[start + i * ALIGN..start + (i + 1) * ALIGN].fill(0);
        }
        let dir = scratch();
        let path = write(dir.path(), &bytes);
        let before = std::fs::read(&path).unwrap();
        let whole = bytes[start..end] == b.bytes[start..end];
        let prefix = (persisted + 1).is_power_of_two();
        match recovered(dir.path(), 3) {
            Ok((r, seen)) => {
                let kept = if whole { &b.ops[3..] } else { &[][..] };
                assert_eq!(seen, kept, "sectors {persisted:b}");
                let last = if whole { b.ops.len() } else { 3 };
                assert_eq!(r.last_lsn, last as Lsn, "sectors {persisted:b}");
                torn += usize::from(!whole);
            }
            Err(Error::Corrupt { offset, .. }) if !prefix => {
                assert_eq!(offset, start as u64, "sectors {persisted:b}");
                assert_eq!(std::fs::read(&path).unwrap(), before);
                refused += 1;
            }
            Err(e) => panic!("sectors {persisted:b}: {e}"),
        }
    }
    assert!(
        torn >= sectors && refused > 0,
        "{torn} torn, {refused} refused"
    );
}

/// A torn batch of which the store has applied a record was synced: damage, refused.
#[test]
fn a_torn_batch_the_store_has_applied_refuses() {
    let b = with_a_last_batch();
    let (start, end) = b.batches[2];
    let dir = scratch();
    let path = write(dir.path(), &b.bytes[..(start + end) / 2]);
    let before = std::fs::read(&path).unwrap();
    match recovered(dir.path(), 4) {
        Err(Error::Corrupt { offset, reason, .. }) => {
            assert_eq!(offset, start as u64);
            assert!(reason.contains("already applied"), "{reason}");
            assert!(reason.contains("batch of records 4 on"), "{reason}");
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert_eq!(std::fs::read(&path).unwrap(), before);
}

/// Whole batches followed by zeros are kept whole, those whose records end exactly on the
/// alignment (a whole sector of padding) or just short of it (the padding spills into the
/// next sector) included; without that last sector, the batch is dropped whole.
#[test]
fn whole_batches_are_kept_whole_however_they_end() {
    let exact = text_for_frame(1, ALIGN);
    let short = text_for_frame(2, ALIGN - 10);
    let (a, b2) = (text_for_frame(3, 300), text_for_frame(4, 2 * ALIGN - 300));
    let b = build(1, &[&[exact], &[short], &[a, b2]], true);
    let sizes: Vec<usize> = b.batches.iter().map(|(s, e)| e - s).collect();
    assert_eq!(sizes, [2 * ALIGN, 2 * ALIGN, 3 * ALIGN]);
    let dir = scratch();
    let path = write(dir.path(), &b.bytes);
    let before = std::fs::read(&path).unwrap();
    let (r, seen) = recovered(dir.path(), 0).unwrap();
    assert_eq!(seen, b.ops);
    assert_eq!((r.tail_len, r.truncated_bytes), (b.bytes.len() as u64, 0));
    assert!(r.layout.sealed);
    assert_eq!(std::fs::read(&path).unwrap(), before, "nothing touched");

    // The last sector (all padding) lost: records 3 and 4 lie whole before it, but their
    // batch is not, and goes.
    let (start, end) = b.batches[2];
    write(dir.path(), &b.bytes[..end - ALIGN]);
    let (r, seen) = recovered(dir.path(), 0).unwrap();
    assert_eq!(seen, b.ops[..2]);
    assert_eq!(r.tail_len, start as u64);
}

/// An unsealed version 2 segment (an older kefud's) recovers as before: a batch ending on the
/// alignment without padding is kept, a torn one keeps its whole records; and the writer
/// then starts a sealed segment rather than append to it.
#[test]
fn an_unsealed_segment_recovers_frame_by_frame_and_is_not_appended_to() {
    let exact = text_for_frame(1, ALIGN);
    let b = build(1, &[&[exact], &[40, 50], &[60, 70]], false);
    assert_eq!(b.batches[0], (ALIGN, 2 * ALIGN), "no padding frame");
    let dir = scratch();
    write(dir.path(), &b.bytes);
    let (r, seen) = recovered(dir.path(), 0).unwrap();
    assert_eq!(seen, b.ops);
    assert!(!r.layout.sealed);

    // The last batch torn after its first record: that record is kept, as before sealing.
    let (start, _) = b.batches[2];
    let first_record = match frame::decode(&b.bytes[start..], 1) {
        Decoded::Frame(f) => f.size,
        other => panic!("{other:?}"),
    };
    write(dir.path(), &b.bytes[..start + first_record + 5]);
    let (r, seen) = recovered(dir.path(), 0).unwrap();
    assert_eq!(seen, b.ops[..4]);
    assert_eq!(r.tail_len, (start + first_record) as u64);

    let (tx, _rx) = tokio::sync::mpsc::channel(1);
    let cfg = WriterConfig {
        segment_bytes: 1 << 20,
        max_batch_bytes: 1 << 16,
        retain_segments: 8,
        keep_for_rollback: None,
    };
    let opened = Writer::open(
        dir.path().to_path_buf(),
        cfg,
        r.segments,
        r.layout,
        r.tail_len,
        r.last_lsn,
        tx,
        Default::default(),
        Default::default(),
    );
    drop(opened.map_err(|e| e.to_string()).unwrap());
    let new = std::fs::read(dir.path().join(segment::file_name(5))).unwrap();
    assert!(segment::check_header(&new, 5).unwrap().sealed);
    let (r, _) = recovered(dir.path(), 0).unwrap();
    assert_eq!((r.last_lsn, r.segments.len()), (4, 2));
}

//! Segment files for the journal recovery target, read out of fuzz input.

use kefud::journal::{frame, segment};

use super::Cursor;

/// Reads segment files out of fuzz input, so that random bytes make segments with valid
/// headers and checksums often enough to go past them: each command starts with a byte
/// choosing a valid frame, a frame holding a valid operation, raw bytes, zeros or a new
/// segment. A segment is unsealed (frames from byte 32) or sealed (frames from byte 64, at an
/// alignment of 32), as the byte after its first LSN says; in a sealed one, an odd count of
/// zeros ends the batch with its padding frame, and half as many zeros follow.
pub(super) struct Segments<'a> {
    input: Cursor<'a>,
    /// `(first_lsn, bytes)` of each segment file.
    files: Vec<(u64, Vec<u8>)>,
    /// The LSN the next frame carries unless the input says otherwise.
    next_lsn: u64,
    /// Whether the last segment is sealed.
    sealed: bool,
}

/// The alignment of the fuzzer's sealed segments (their frames start at twice it).
const SEAL_ALIGN: usize = 32;

impl Segments<'_> {
    /// A first LSN: usually where the previous segment ended, sometimes an edge.
    fn first_lsn(&mut self) -> u64 {
        match self.input.byte() {
            0..=191 => self.next_lsn,
            192..=199 => 0,
            200..=207 => 1,
            208..=215 => u64::MAX,
            216..=223 => u64::MAX - 1,
            224..=239 => self.next_lsn.wrapping_add(1),
            _ => self.next_lsn.wrapping_sub(1),
        }
    }

    fn start_segment(&mut self) {
        let first_lsn = self.first_lsn();
        let mut header = segment::encode_header(first_lsn, segment::HEADER_LEN as u32).to_vec();
        // One header in sixteen damaged at a byte the input chooses, about half of the
        // others sealed.
        let flaw = self.input.byte();
        self.sealed = (16..128).contains(&flaw);
        if flaw < 16 {
            header[usize::from(flaw) * 2] ^= 0x5a;
        } else if self.sealed {
            header = segment::encode_sealed(first_lsn, SEAL_ALIGN as u32).to_vec();
            header.resize(2 * SEAL_ALIGN, 0);
        }
        self.next_lsn = first_lsn;
        self.files.push((first_lsn, header));
    }

    fn frame(&mut self, kind: u8, payload: &[u8]) {
        let lsn = match self.input.byte() {
            0..=239 => self.next_lsn,
            skew => self.next_lsn.wrapping_add(u64::from(skew - 240)),
        };
        self.next_lsn = lsn.wrapping_add(1);
        let (id, bytes) = self.files.last_mut().expect("a segment was started");
        frame::encode_with(bytes, *id, lsn, kind, |b| b.extend_from_slice(payload));
    }

    fn last(&mut self) -> &mut Vec<u8> {
        &mut self.files.last_mut().expect("a segment was started").1
    }

    pub(super) fn build(input: &[u8]) -> Vec<(u64, Vec<u8>)> {
        let mut s = Segments {
            input: Cursor { input },
            files: Vec::new(),
            next_lsn: 1,
            sealed: false,
        };
        s.start_segment();
        while !s.input.input.is_empty() {
            match s.input.byte() % 5 {
                0 => {
                    let kind = s.input.byte();
                    let len = usize::from(s.input.byte());
                    let payload = s.input.bytes(len);
                    s.frame(kind, payload);
                }
                1 => {
                    let op = s.input.op();
                    let mut payload = Vec::new();
                    op.encode(&mut payload);
                    s.frame(op.kind(), &payload);
                }
                2 => {
                    let len = usize::from(s.input.byte());
                    let raw = s.input.bytes(len);
                    s.last().extend_from_slice(raw);
                }
                3 => {
                    let count = s.input.byte();
                    let (sealed, next_lsn) = (s.sealed, s.next_lsn);
                    let (id, bytes) = s.files.last_mut().expect("a segment was started");
                    let zeros = if sealed && count % 2 == 1 {
                        frame::seal(bytes, SEAL_ALIGN, *id, next_lsn);
                        count / 2
                    } else {
                        count
                    };
                    bytes.resize(bytes.len() + usize::from(zeros) * 4, 0);
                }
                _ => s.start_segment(),
            }
        }
        s.files
    }
}

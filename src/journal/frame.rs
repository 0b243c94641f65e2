//! Record framing: `len u32 LE | crc32c u32 LE | lsn u64 LE | kind u8 | payload[len]`.
//!
//! The CRC covers `segment_id u64 LE | len | lsn | kind | payload`, so a frame copied into the
//! wrong segment, or a length field that points into garbage, fails the check. Pure code:
//! no I/O, every case tested inline.
//!
//! A frame of kind [`PAD`] is filler, not a record: it carries the LSN the next record will
//! have, a zero payload, and pads a batch to the segment's write alignment. In a sealed
//! segment (`segment.rs`) every batch ends with one ([`seal`]), so it also says where the
//! batch ends.

pub const HEADER_LEN: usize = 17;
/// The kind of a padding frame (operations' kinds start at 1).
pub const PAD: u8 = 0;
/// A payload longer than this is corruption, not a record: it bounds what recovery will trust
/// from a length field, and the writer never produces one (the API limits text far below it).
pub const MAX_PAYLOAD: usize = 16 * 1024 * 1024;

/// Appends one frame to `buf`, writing the payload with `write_payload` in place (no copy).
pub fn encode_with(
    buf: &mut Vec<u8>,
    segment_id: u64,
    lsn: u64,
    kind: u8,
    write_payload: impl FnOnce(&mut Vec<u8>),
) {
    let start = buf.len();
    buf.extend_from_slice(&[0u8; HEADER_LEN]);
    write_payload(buf);
    let payload_len = buf.len() - start - HEADER_LEN;
    assert!(
        payload_len <= MAX_PAYLOAD,
        "invariant: payloads are bounded by the API limits"
    );
    let len = payload_len as u32;
    let header = &mut buf[start..start + HEADER_LEN];
    header[0..4].copy_from_slice(&len.to_le_bytes());
    header[8..16].copy_from_slice(&lsn.to_le_bytes());
    header[16] = kind;
    let crc = checksum(segment_id, &buf[start..]);
    buf[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
}

/// Ends a batch: appends a padding frame that makes `buf.len()` a multiple of `align` (a power
/// of two, at least [`HEADER_LEN`]). There is always one, a whole unit of it when the batch's
/// frames already end on the boundary. `next_lsn` is the LSN the next record will carry.
pub fn seal(buf: &mut Vec<u8>, align: usize, segment_id: u64, next_lsn: u64) {
    let short = buf.len().next_multiple_of(align) - buf.len();
    // A frame takes at least a header: too little room left fills the next unit as well.
    let size = if short >= HEADER_LEN {
        short
    } else {
        short + align
    };
    encode_with(buf, segment_id, next_lsn, PAD, |b| {
        b.resize(b.len() + size - HEADER_LEN, 0);
    });
}

/// CRC over the segment id and the frame with its crc field skipped.
fn checksum(segment_id: u64, frame: &[u8]) -> u32 {
    let crc = crc32c::crc32c(&segment_id.to_le_bytes());
    let crc = crc32c::crc32c_append(crc, &frame[0..4]);
    crc32c::crc32c_append(crc, &frame[8..])
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame<'a> {
    pub lsn: u64,
    pub kind: u8,
    pub payload: &'a [u8],
    /// Bytes the whole frame occupies, header included.
    pub size: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decoded<'a> {
    Frame(Frame<'a>),
    /// `buf` ends before the frame does (a torn write, or simply the end).
    Incomplete,
    /// The bytes are not a frame.
    Corrupt(&'static str),
}

/// Decodes the frame at the start of `buf`.
pub fn decode(buf: &[u8], segment_id: u64) -> Decoded<'_> {
    if buf.len() < HEADER_LEN {
        return Decoded::Incomplete;
    }
    let len = u32::from_le_bytes(buf[0..4].try_into().expect("invariant: 4-byte slice")) as usize;
    if len > MAX_PAYLOAD {
        return Decoded::Corrupt("length field exceeds the largest payload");
    }
    let size = HEADER_LEN + len;
    if buf.len() < size {
        return Decoded::Incomplete;
    }
    let stored = u32::from_le_bytes(buf[4..8].try_into().expect("invariant: 4-byte slice"));
    if stored != checksum(segment_id, &buf[..size]) {
        return Decoded::Corrupt("checksum mismatch");
    }
    Decoded::Frame(Frame {
        lsn: u64::from_le_bytes(buf[8..16].try_into().expect("invariant: 8-byte slice")),
        kind: buf[16],
        payload: &buf[HEADER_LEN..size],
        size,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(seg: u64, lsn: u64, payload: &[u8]) -> Vec<u8> {
        let mut buf = Vec::new();
        encode_with(&mut buf, seg, lsn, 3, |b| b.extend_from_slice(payload));
        buf
    }

    #[test]
    fn round_trip() {
        let buf = frame(1, 42, b"hello");
        assert_eq!(
            decode(&buf, 1),
            Decoded::Frame(Frame {
                lsn: 42,
                kind: 3,
                payload: b"hello",
                size: HEADER_LEN + 5
            })
        );
    }

    #[test]
    fn every_prefix_is_incomplete() {
        let buf = frame(1, 42, b"hello world");
        for cut in 0..buf.len() {
            assert_eq!(decode(&buf[..cut], 1), Decoded::Incomplete, "cut {cut}");
        }
    }

    #[test]
    fn any_flipped_bit_or_wrong_segment_is_corrupt() {
        let buf = frame(1, 42, b"hello");
        assert_eq!(decode(&buf, 2), Decoded::Corrupt("checksum mismatch"));
        for byte in 4..buf.len() {
            for bit in 0..8 {
                let mut bad = buf.clone();
                bad[byte] ^= 1 << bit;
                assert!(
                    matches!(decode(&bad, 1), Decoded::Corrupt(_)),
                    "byte {byte} bit {bit}"
                );
            }
        }
    }

    #[test]
    fn a_seal_reaches_the_alignment_and_decodes_as_a_pad_frame() {
        for (used, padded) in [
            (0, 512),
            (1, 512),
            (17, 512),
            (100, 512),
            (495, 512),
            (496, 1024),
            (497, 1024),
            (511, 1024),
            (512, 1024),
            (1000, 1024),
        ] {
            let mut buf = vec![7u8; used];
            seal(&mut buf, 512, 3, 9);
            assert_eq!(buf.len(), padded, "used {used}");
            match decode(&buf[used..], 3) {
                Decoded::Frame(f) => {
                    assert_eq!((f.kind, f.lsn, f.size), (PAD, 9, buf.len() - used));
                    assert!(f.payload.iter().all(|&b| b == 0));
                }
                other => panic!("used {used}: {other:?}"),
            }
        }
    }

    #[test]
    fn huge_length_is_corrupt_not_incomplete() {
        let mut buf = frame(1, 1, b"x");
        buf[0..4].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(decode(&buf, 1), Decoded::Corrupt(_)));
    }
}

//! Segment files: naming, the 32-byte header, creation with the fsyncs rotation needs.
//!
//! A segment is `{first_lsn:020}.wal` in the journal directory. Its header is
//! `magic "KEFUWAL\0" | version u32 | data_offset u32 | first_lsn u64 | crc32c u32 | pad u32`,
//! the CRC covering the 24 bytes before it. Frames start at the data offset and follow each
//! other back to back. The segment's first LSN is its id; frames' CRCs include it.
//!
//! Version 1 (read only): frames right after the 32-byte header (the data-offset field is 0),
//! appended through the page cache. Version 2: the header has a sector of its own, batches
//! are padded to the segment's write alignment and the file is zero-filled ahead of them
//! (`appender.rs`); an all-zero tail is where the records end. Two layouts of version 2:
//!
//! - Unsealed (read only, written before batches were sealed): frames start at the data
//!   offset, which is also the alignment; a batch that ends on the alignment has no padding
//!   frame, so where one batch ends and the next begins is not on disk.
//! - Sealed (written): the 16 bytes after the header are the seal extension,
//!   `magic "KEFUSEAL" | crc32c u32 | pad u32`, the CRC covering the header's first 24 bytes
//!   and the magic; the data offset is twice the alignment (the sector after the header's is
//!   left zero). Every batch ends with a padding frame, a whole unit of it when its records
//!   end on the alignment (`frame::seal`), so frames after the last padding frame are a batch
//!   whose write did not complete. The header's version stays 2 so that the kefud before
//!   sealing (which reads versions 1 and 2 and ignores the rest of the header sector) still
//!   reads these segments after a `kefud-rollback`; the doubled data offset is not an
//!   alignment it appends at, so it starts a segment of its own instead of appending unsealed
//!   batches to a sealed one.
//!
//! Invariants: a segment is visible under its final name only after its header is on disk and
//! the directory entry is fsync'd, so recovery never meets a named segment with no header
//! except one torn by a crash during creation, which can only be the last. Only a sealing
//! writer appends to a sealed segment.

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};

pub const HEADER_LEN: u64 = 32;
/// The header and the seal extension after it.
pub const SEALED_HEADER_LEN: usize = 48;
const MAGIC: &[u8; 8] = b"KEFUWAL\0";
const SEAL_MAGIC: &[u8; 8] = b"KEFUSEAL";
/// The version this build writes; it reads this one and 1.
const VERSION: u32 = 2;

pub fn file_name(first_lsn: u64) -> String {
    format!("{first_lsn:020}.wal")
}

/// The first LSN encoded in a segment's file name, or `None` for any other file.
pub fn parse_name(name: &str) -> Option<u64> {
    let digits = name.strip_suffix(".wal")?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// The header of a sealed segment written at alignment `align` (its frames start at twice
/// that): a version 2 header followed by the seal extension.
pub fn encode_sealed(first_lsn: u64, align: u32) -> [u8; SEALED_HEADER_LEN] {
    let mut h = [0u8; SEALED_HEADER_LEN];
    h[..HEADER_LEN as usize].copy_from_slice(&encode_header(first_lsn, 2 * align));
    h[32..40].copy_from_slice(SEAL_MAGIC);
    let crc = seal_checksum(&h);
    h[40..44].copy_from_slice(&crc.to_le_bytes());
    h
}

/// CRC of a seal extension: the header's first 24 bytes, then the seal's magic.
fn seal_checksum(h: &[u8]) -> u32 {
    crc32c::crc32c_append(crc32c::crc32c(&h[0..24]), &h[32..40])
}

/// A version 2 header whose frames start at `data_offset` (an unsealed segment unless the
/// seal extension follows it).
pub fn encode_header(first_lsn: u64, data_offset: u32) -> [u8; HEADER_LEN as usize] {
    let mut h = [0u8; HEADER_LEN as usize];
    h[0..8].copy_from_slice(MAGIC);
    h[8..12].copy_from_slice(&VERSION.to_le_bytes());
    h[12..16].copy_from_slice(&data_offset.to_le_bytes());
    h[16..24].copy_from_slice(&first_lsn.to_le_bytes());
    let crc = crc32c::crc32c(&h[0..24]);
    h[24..28].copy_from_slice(&crc.to_le_bytes());
    h
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HeaderError {
    #[error("file is shorter than a segment header")]
    Short,
    #[error("bad magic: not a kefud journal segment")]
    Magic,
    #[error("header checksum mismatch")]
    Checksum,
    #[error("unsupported segment version {0}")]
    Version(u32),
    #[error("header says first LSN {header} but the file name says {name}")]
    NameMismatch { header: u64, name: u64 },
    #[error("first LSN 0: LSNs start at 1")]
    ZeroLsn,
    #[error("data offset {0} is not a power of two between 32 and 65536")]
    DataOffset(u32),
    #[error("the bytes after the header are neither zeros nor a valid seal extension")]
    Seal,
}

/// How a segment's frames are laid out, from its header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Layout {
    /// Where frames start.
    pub data_offset: u64,
    /// The write alignment batches are padded to (version 2).
    pub align: u64,
    /// Every batch ends with a padding frame: frames after the last one are a torn batch.
    pub sealed: bool,
}

/// Checks a header read from the segment named for `name_lsn`, and the seal extension after
/// it when there is room for one before the frames; returns the segment's layout.
///
/// # Errors
/// [`HeaderError`] describing the first problem found.
pub fn check_header(bytes: &[u8], name_lsn: u64) -> Result<Layout, HeaderError> {
    if bytes.len() < HEADER_LEN as usize {
        return Err(HeaderError::Short);
    }
    if &bytes[0..8] != MAGIC {
        return Err(HeaderError::Magic);
    }
    let crc = u32::from_le_bytes(bytes[24..28].try_into().expect("invariant: 4-byte slice"));
    if crc != crc32c::crc32c(&bytes[0..24]) {
        return Err(HeaderError::Checksum);
    }
    let version = u32::from_le_bytes(bytes[8..12].try_into().expect("invariant: 4-byte slice"));
    let data_offset = match version {
        1 => HEADER_LEN as u32,
        VERSION => u32::from_le_bytes(bytes[12..16].try_into().expect("invariant: 4-byte slice")),
        other => return Err(HeaderError::Version(other)),
    };
    if !data_offset.is_power_of_two() || !(HEADER_LEN as u32..=65536).contains(&data_offset) {
        return Err(HeaderError::DataOffset(data_offset));
    }
    let header = u64::from_le_bytes(bytes[16..24].try_into().expect("invariant: 8-byte slice"));
    if header != name_lsn {
        return Err(HeaderError::NameMismatch {
            header,
            name: name_lsn,
        });
    }
    if header == 0 {
        return Err(HeaderError::ZeroLsn);
    }
    let data_offset = u64::from(data_offset);
    let unsealed = Layout {
        data_offset,
        align: data_offset,
        sealed: false,
    };
    if data_offset < SEALED_HEADER_LEN as u64 {
        return Ok(unsealed);
    }
    let Some(seal) = bytes.get(HEADER_LEN as usize..SEALED_HEADER_LEN) else {
        return Err(HeaderError::Short);
    };
    if seal.iter().all(|&b| b == 0) {
        return Ok(unsealed);
    }
    let crc = u32::from_le_bytes(bytes[40..44].try_into().expect("invariant: 4-byte slice"));
    if &seal[0..8] != SEAL_MAGIC || crc != seal_checksum(bytes) || seal[12..16] != [0; 4] {
        return Err(HeaderError::Seal);
    }
    Ok(Layout {
        data_offset,
        align: data_offset / 2,
        sealed: true,
    })
}

/// Makes a directory's entries (creations, renames, deletions) durable.
///
/// # Errors
/// Any I/O error from open or fsync.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// A segment found on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentFile {
    pub first_lsn: u64,
    pub path: PathBuf,
}

/// The directory's segments in LSN order. Leftover `*.wal.tmp` files (a crash during
/// creation) are deleted.
///
/// # Errors
/// Any I/O error while listing.
pub fn list(dir: &Path) -> io::Result<Vec<SegmentFile>> {
    scan(dir, true)
}

/// The directory's segments in LSN order, touching nothing: for a reader beside a running
/// writer (a backup), where a `*.wal.tmp` is a segment being created.
///
/// # Errors
/// Any I/O error while listing.
pub fn list_read_only(dir: &Path) -> io::Result<Vec<SegmentFile>> {
    scan(dir, false)
}

fn scan(dir: &Path, remove_tmp: bool) -> io::Result<Vec<SegmentFile>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if remove_tmp && name.ends_with(".wal.tmp") {
            std::fs::remove_file(entry.path())?;
            continue;
        }
        if let Some(first_lsn) = parse_name(name) {
            out.push(SegmentFile {
                first_lsn,
                path: entry.path(),
            });
        }
    }
    out.sort_by_key(|s| s.first_lsn);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_others_are_ignored() {
        assert_eq!(parse_name(&file_name(42)), Some(42));
        assert_eq!(parse_name("00000000000000000042.wal.tmp"), None);
        assert_eq!(parse_name("42.wal"), None);
        assert_eq!(parse_name("kefud.db"), None);
    }

    #[test]
    fn header_checks() {
        let mut h = [0u8; 512];
        h[..HEADER_LEN as usize].copy_from_slice(&encode_header(7, 512));
        let unsealed = |data_offset| Layout {
            data_offset,
            align: data_offset,
            sealed: false,
        };
        assert_eq!(check_header(&h, 7), Ok(unsealed(512)));
        assert_eq!(
            check_header(&h, 8),
            Err(HeaderError::NameMismatch { header: 7, name: 8 })
        );
        assert_eq!(check_header(&h[..10], 7), Err(HeaderError::Short));
        let mut bad = h;
        bad[0] = b'X';
        assert_eq!(check_header(&bad, 7), Err(HeaderError::Magic));
        let mut bad = h;
        bad[17] ^= 1;
        assert_eq!(check_header(&bad, 7), Err(HeaderError::Checksum));
        assert_eq!(
            check_header(&encode_header(0, 512), 0),
            Err(HeaderError::ZeroLsn)
        );
        assert_eq!(
            check_header(&encode_header(7, 500), 7),
            Err(HeaderError::DataOffset(500))
        );
        // Version 1: frames right after the header.
        let mut v1 = encode_header(7, 0);
        v1[8..12].copy_from_slice(&1u32.to_le_bytes());
        let crc = crc32c::crc32c(&v1[0..24]);
        v1[24..28].copy_from_slice(&crc.to_le_bytes());
        assert_eq!(check_header(&v1, 7), Ok(unsealed(HEADER_LEN)));
    }

    #[test]
    fn a_sealed_header_says_so_and_a_damaged_seal_refuses() {
        let mut sector = [0u8; 512];
        sector[..SEALED_HEADER_LEN].copy_from_slice(&encode_sealed(7, 512));
        let sealed = Layout {
            data_offset: 1024,
            align: 512,
            sealed: true,
        };
        assert_eq!(check_header(&sector, 7), Ok(sealed));
        assert_eq!(
            check_header(&sector[..40], 7),
            Err(HeaderError::Short),
            "the seal cut off"
        );
        for byte in HEADER_LEN as usize..SEALED_HEADER_LEN {
            let mut bad = sector;
            bad[byte] ^= 0x20;
            assert_eq!(check_header(&bad, 7), Err(HeaderError::Seal), "byte {byte}");
        }
        // Another segment's seal after this header.
        let mut moved = sector;
        moved[..HEADER_LEN as usize].copy_from_slice(&encode_header(8, 1024));
        assert_eq!(check_header(&moved, 8), Err(HeaderError::Seal));
    }

    #[test]
    fn list_orders_segments_and_removes_half_made_ones() {
        let dir = tempfile::tempdir().unwrap();
        for name in [file_name(10), file_name(1), "kefud.db".into()] {
            std::fs::write(dir.path().join(name), b"x").unwrap();
        }
        std::fs::write(dir.path().join("00000000000000000011.wal.tmp"), b"x").unwrap();
        let segs = list(dir.path()).unwrap();
        assert_eq!(
            segs.iter().map(|s| s.first_lsn).collect::<Vec<_>>(),
            vec![1, 10]
        );
        assert!(!dir.path().join("00000000000000000011.wal.tmp").exists());
    }
}

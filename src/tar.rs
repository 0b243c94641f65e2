//! ustar (POSIX.1-1988) archives, which any `tar` reads: the headers of a backup streamed as
//! one archive, and the reading of an update bundle. Pure: a writer writes each [`header`],
//! the file's bytes, then [`padding`], and [`END`] after the last file; a reader parses each
//! header block with [`parse_header`], takes `size` bytes and skips [`padding`].
//!
//! Invariants: names are split into ustar's `prefix` (at most 155 bytes) and `name` (at most
//! 100) at a `/`; sizes are at most 8 GiB - 1 (eleven octal digits). A backup's paths (its
//! directory name plus `kefud.db`, `journal/…`, `uploads/…`) fit both by construction;
//! anything else is refused, never truncated. A header read back must carry a valid checksum
//! and be a regular file; anything else is an error, never guessed at.

/// A tar block.
pub const BLOCK: usize = 512;
/// Two zero blocks end an archive.
pub const END: [u8; 2 * BLOCK] = [0; 2 * BLOCK];
/// The largest size eleven octal digits hold.
const MAX_SIZE: u64 = (1 << 33) - 1;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TarError {
    #[error("{0:?} does not fit a tar header's name fields")]
    Name(String),
    #[error("{0} bytes do not fit a tar header")]
    Size(u64),
    #[error("not a tar header (bad checksum or number field)")]
    Header,
    #[error("{0:?} is not a regular file")]
    NotAFile(String),
}

/// A regular file's header, read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The whole path (`prefix/name` when ustar split it).
    pub path: String,
    pub size: u64,
}

/// The entry `block` starts, or `None` for a zero block (the end of the archive).
///
/// # Errors
/// [`TarError::Header`] for a block that is not a valid header; [`TarError::NotAFile`] for a
/// directory, link or anything but a regular file.
pub fn parse_header(block: &[u8; BLOCK]) -> Result<Option<Entry>, TarError> {
    if block.iter().all(|&b| b == 0) {
        return Ok(None);
    }
    let mut blank = *block;
    blank[148..156].fill(b' ');
    let sum: u64 = blank.iter().map(|&b| u64::from(b)).sum();
    if read_octal(&block[148..156]) != Some(sum) {
        return Err(TarError::Header);
    }
    let text = |range: std::ops::Range<usize>| {
        let field = &block[range];
        let end = field.iter().position(|&b| b == 0).unwrap_or(field.len());
        String::from_utf8_lossy(&field[..end]).into_owned()
    };
    let (name, prefix) = (text(0..100), text(345..500));
    let path = if prefix.is_empty() {
        name
    } else {
        format!("{prefix}/{name}")
    };
    if !matches!(block[156], b'0' | 0) {
        return Err(TarError::NotAFile(path));
    }
    let size = read_octal(&block[124..136]).ok_or(TarError::Header)?;
    Ok(Some(Entry { path, size }))
}

/// An octal number field: digits, optionally space-padded, ended by NUL or space.
fn read_octal(field: &[u8]) -> Option<u64> {
    let digits: Vec<u8> = field
        .iter()
        .copied()
        .skip_while(|&b| b == b' ')
        .take_while(|&b| b != 0 && b != b' ')
        .collect();
    if digits.is_empty() || digits.len() > 11 {
        return None;
    }
    u64::from_str_radix(std::str::from_utf8(&digits).ok()?, 8).ok()
}

/// The header block of a regular file `path` (`/`-separated) of `size` bytes.
///
/// # Errors
/// [`TarError`] for a path or size ustar cannot hold.
pub fn header(path: &str, size: u64, mtime_secs: u64) -> Result<[u8; BLOCK], TarError> {
    if size > MAX_SIZE {
        return Err(TarError::Size(size));
    }
    let (prefix, name) = split_name(path).ok_or_else(|| TarError::Name(path.to_string()))?;
    let mut h = [0u8; BLOCK];
    h[..name.len()].copy_from_slice(name.as_bytes());
    octal(&mut h[100..108], 0o644);
    octal(&mut h[108..116], 0);
    octal(&mut h[116..124], 0);
    octal(&mut h[124..136], size);
    octal(&mut h[136..148], mtime_secs.min(MAX_SIZE));
    h[148..156].fill(b' ');
    h[156] = b'0';
    h[257..263].copy_from_slice(b"ustar\0");
    h[263..265].copy_from_slice(b"00");
    h[345..345 + prefix.len()].copy_from_slice(prefix.as_bytes());
    let sum: u32 = h.iter().map(|&b| u32::from(b)).sum();
    octal(&mut h[148..155], u64::from(sum));
    Ok(h)
}

/// Zeros after a file of `size` bytes, up to the next block.
pub fn padding(size: u64) -> &'static [u8] {
    const ZEROS: [u8; BLOCK] = [0; BLOCK];
    &ZEROS[..(BLOCK - (size % BLOCK as u64) as usize) % BLOCK]
}

/// `(prefix, name)`: the whole path as the name when it fits, else split at the last `/`
/// that makes both parts fit.
fn split_name(path: &str) -> Option<(&str, &str)> {
    if path.is_empty() || !path.is_ascii() {
        return None;
    }
    if path.len() <= 100 {
        return Some(("", path));
    }
    path.match_indices('/')
        .map(|(i, _)| (&path[..i], &path[i + 1..]))
        .find(|(prefix, name)| prefix.len() <= 155 && !name.is_empty() && name.len() <= 100)
}

/// Writes `value` as zero-padded octal filling all but the last byte of `field`, then NUL.
fn octal(field: &mut [u8], value: u64) {
    let digits = field.len() - 1;
    let text = format!("{value:0digits$o}");
    field[..digits].copy_from_slice(text.as_bytes());
    field[digits] = 0;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(h: &[u8], range: std::ops::Range<usize>) -> String {
        String::from_utf8(h[range].to_vec())
            .unwrap()
            .trim_end_matches('\0')
            .to_string()
    }

    #[test]
    fn a_header_is_valid_ustar() {
        let h = header("kefud-backup-x/kefud.db", 1234, 1_700_000_000).unwrap();
        assert_eq!(field(&h, 0..100), "kefud-backup-x/kefud.db");
        assert_eq!(field(&h, 124..136), format!("{:011o}", 1234));
        assert_eq!(&h[257..263], b"ustar\0");
        // The checksum: every byte summed with the checksum field read as spaces.
        let mut blank = h;
        blank[148..156].fill(b' ');
        let sum: u32 = blank.iter().map(|&b| u32::from(b)).sum();
        let stored = u32::from_str_radix(&field(&h, 148..155), 8).unwrap();
        assert_eq!(stored, sum);
    }

    #[test]
    fn long_paths_use_the_prefix_and_impossible_ones_are_refused() {
        let path = format!(
            "kefud-backup-20260101T000000Z/uploads/{}.webp",
            "a".repeat(64)
        );
        assert!(path.len() > 100);
        let h = header(&path, 1, 0).unwrap();
        assert_eq!(field(&h, 345..500), "kefud-backup-20260101T000000Z");
        assert_eq!(
            field(&h, 0..100),
            format!("uploads/{}.webp", "a".repeat(64))
        );
        assert!(header(&"x".repeat(101), 1, 0).is_err());
        assert!(header("", 1, 0).is_err());
        assert!(header("a", MAX_SIZE + 1, 0).is_err());
    }

    #[test]
    fn headers_read_back() {
        let long = format!("dir/{}/{}.deb", "d".repeat(120), "f".repeat(90));
        for (path, size) in [
            ("manifest.json", 0),
            ("a.deb", 3_600_000),
            (long.as_str(), 7),
        ] {
            let h = header(path, size, 5).unwrap();
            assert_eq!(
                parse_header(&h).unwrap(),
                Some(Entry {
                    path: path.to_string(),
                    size
                })
            );
        }
        assert_eq!(parse_header(&[0; BLOCK]).unwrap(), None);
    }

    #[test]
    fn damaged_or_special_headers_are_refused() {
        let mut h = header("a.deb", 10, 0).unwrap();
        h[0] = b'b';
        assert_eq!(parse_header(&h), Err(TarError::Header));
        let mut dir = header("d", 0, 0).unwrap();
        dir[156] = b'5';
        dir[148..156].fill(b' ');
        let sum: u32 = dir.iter().map(|&b| u32::from(b)).sum();
        octal(&mut dir[148..155], u64::from(sum));
        assert_eq!(parse_header(&dir), Err(TarError::NotAFile("d".into())));
    }

    #[test]
    fn padding_reaches_the_block() {
        assert_eq!(padding(0).len(), 0);
        assert_eq!(padding(1).len(), 511);
        assert_eq!(padding(512).len(), 0);
        assert_eq!(padding(1000).len(), 24);
    }
}

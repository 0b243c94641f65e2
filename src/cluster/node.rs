//! This box's node identity: a random 63-bit number made at the first start and kept in
//! `data_dir/node-id` (16 hex digits), so it survives restarts and upgrades. Every operation
//! this box originates carries it (the origin of its dots).
//!
//! Invariant: once written, the file never changes. A backup does not carry it (`backup`
//! copies the store and the journal only), so a box restored from another's backup makes a
//! new one at its first start and never claims the dots of the box it was copied from.

use std::io::Write;
use std::path::Path;

use super::vector::NodeId;

pub const FILE: &str = "node-id";

/// As the console and `/healthz` show it.
pub fn display(node: NodeId) -> String {
    format!("{node:016x}")
}

/// The node id kept in `data_dir`, made (and fsync'd) at the first call.
///
/// # Errors
/// The file cannot be read or written, or holds something else than a node id.
pub fn load_or_create(data_dir: &Path) -> std::io::Result<NodeId> {
    let path = data_dir.join(FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) => parse(text.trim()).ok_or_else(|| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!(
                    "{} does not hold a node id (16 hex digits); remove it to make a new one",
                    path.display()
                ),
            )
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let mut bytes = [0u8; 8];
            getrandom::getrandom(&mut bytes).map_err(std::io::Error::other)?;
            // 63 bits: the id is stored in SQLite's signed integers unchanged; never 0.
            let node = (u64::from_le_bytes(bytes) >> 1).max(1);
            let partial = data_dir.join(format!("{FILE}.partial"));
            let mut f = std::fs::File::create(&partial)?;
            writeln!(f, "{}", display(node))?;
            f.sync_all()?;
            std::fs::rename(&partial, &path)?;
            std::fs::File::open(data_dir)?.sync_all()?;
            Ok(node)
        }
        Err(e) => Err(e),
    }
}

fn parse(text: &str) -> Option<NodeId> {
    if text.len() != 16 {
        return None;
    }
    u64::from_str_radix(text, 16)
        .ok()
        .filter(|n| *n != 0 && *n >> 63 == 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn made_once_then_kept() {
        let dir = tempfile::tempdir().unwrap();
        let first = load_or_create(dir.path()).unwrap();
        assert_eq!(load_or_create(dir.path()).unwrap(), first);
        assert_eq!(first >> 63, 0);
        let other = tempfile::tempdir().unwrap();
        assert_ne!(load_or_create(other.path()).unwrap(), first);
    }

    #[test]
    fn a_damaged_file_is_refused_with_what_to_do() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(FILE), "not a node\n").unwrap();
        let e = load_or_create(dir.path()).unwrap_err();
        assert!(e.to_string().contains("remove it"), "{e}");
    }
}

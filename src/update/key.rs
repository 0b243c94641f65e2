//! The update signing key: an Ed25519 key pair (ring), and its two text files.
//!
//! - Public key file (`/usr/share/kefud/update-key.pub` in the .deb and the image):
//!   one line `kefud-update-key ed25519 BASE64`, the 32-byte raw public key.
//! - Secret key file (the release key, supplied at build time, never committed; mode 0600):
//!   one line `kefud-update-secret-key ed25519 BASE64`, ring's PKCS#8 v2 document.
//!
//! Invariants: a signature is over the exact bytes of a bundle's manifest; a public key file
//! with anything but one such line is refused, so a truncated or swapped file never verifies.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use ring::signature::{self, Ed25519KeyPair, KeyPair as _};

const PUBLIC_TAG: &str = "kefud-update-key ed25519 ";
const SECRET_TAG: &str = "kefud-update-secret-key ed25519 ";

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KeyError {
    #[error("not a kefud update public key file (expected one line `{}BASE64`)", PUBLIC_TAG.trim_end())]
    Public,
    #[error("not a kefud update secret key file (expected one line `{}BASE64`)", SECRET_TAG.trim_end())]
    Secret,
    #[error("no random numbers for a new key")]
    Random,
}

/// A public key that verifies bundle signatures.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicKey([u8; 32]);

/// The release key that signs bundles, with the PKCS#8 document its file holds.
pub struct SecretKey {
    pair: Ed25519KeyPair,
    pkcs8: Vec<u8>,
}

impl PublicKey {
    /// Reads a public key file's text.
    ///
    /// # Errors
    /// [`KeyError::Public`] for anything but one well-formed line.
    pub fn parse(text: &str) -> Result<PublicKey, KeyError> {
        let line = one_line(text).ok_or(KeyError::Public)?;
        let raw = line
            .strip_prefix(PUBLIC_TAG)
            .and_then(|b| B64.decode(b).ok())
            .ok_or(KeyError::Public)?;
        Ok(PublicKey(raw.try_into().map_err(|_| KeyError::Public)?))
    }

    /// The file's text.
    pub fn to_text(&self) -> String {
        format!("{PUBLIC_TAG}{}\n", B64.encode(self.0))
    }

    /// Whether `signature` is this key's over `message`.
    pub fn verifies(&self, message: &[u8], signature: &[u8]) -> bool {
        signature::UnparsedPublicKey::new(&signature::ED25519, &self.0)
            .verify(message, signature)
            .is_ok()
    }

    /// A short fingerprint to name the key in messages (the first 8 bytes, hex).
    pub fn fingerprint(&self) -> String {
        self.0[..8].iter().map(|b| format!("{b:02x}")).collect()
    }
}

impl SecretKey {
    /// A new key pair from the system's random numbers.
    ///
    /// # Errors
    /// [`KeyError::Random`] when the system has none to give.
    pub fn generate() -> Result<SecretKey, KeyError> {
        let rng = ring::rand::SystemRandom::new();
        let doc = Ed25519KeyPair::generate_pkcs8(&rng).map_err(|_| KeyError::Random)?;
        SecretKey::from_pkcs8(doc.as_ref().to_vec()).ok_or(KeyError::Random)
    }

    fn from_pkcs8(pkcs8: Vec<u8>) -> Option<SecretKey> {
        let pair = Ed25519KeyPair::from_pkcs8(&pkcs8).ok()?;
        Some(SecretKey { pair, pkcs8 })
    }

    /// Reads a secret key file's text.
    ///
    /// # Errors
    /// [`KeyError::Secret`] for anything but one well-formed line holding a valid key.
    pub fn parse(text: &str) -> Result<SecretKey, KeyError> {
        let line = one_line(text).ok_or(KeyError::Secret)?;
        line.strip_prefix(SECRET_TAG)
            .and_then(|b| B64.decode(b).ok())
            .and_then(SecretKey::from_pkcs8)
            .ok_or(KeyError::Secret)
    }

    /// The file's text (secret: write it with mode 0600).
    pub fn to_text(&self) -> String {
        format!("{SECRET_TAG}{}\n", B64.encode(&self.pkcs8))
    }

    /// The public half.
    pub fn public(&self) -> PublicKey {
        let mut raw = [0u8; 32];
        raw.copy_from_slice(self.pair.public_key().as_ref());
        PublicKey(raw)
    }

    /// The signature over `message` (64 bytes).
    pub fn sign(&self, message: &[u8]) -> Vec<u8> {
        self.pair.sign(message).as_ref().to_vec()
    }
}

/// The text of a line-based key file without its trailing newline, if it has one line.
fn one_line(text: &str) -> Option<&str> {
    let line = text.strip_suffix('\n').unwrap_or(text);
    (!line.contains('\n')).then_some(line.trim_end_matches('\r'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_verifies_with_its_key_only() {
        let key = SecretKey::generate().unwrap();
        let other = SecretKey::generate().unwrap();
        let sig = key.sign(b"manifest");
        assert!(key.public().verifies(b"manifest", &sig));
        assert!(!key.public().verifies(b"manifesT", &sig));
        assert!(!other.public().verifies(b"manifest", &sig));
        assert!(!key.public().verifies(b"manifest", &sig[..63]));
    }

    #[test]
    fn key_files_read_back_and_damaged_ones_are_refused() {
        let key = SecretKey::generate().unwrap();
        let again = SecretKey::parse(&key.to_text()).unwrap();
        assert_eq!(again.public(), key.public());
        let public = PublicKey::parse(&key.public().to_text()).unwrap();
        assert_eq!(public, key.public());
        assert_eq!(public.fingerprint().len(), 16);
        let text = key.public().to_text();
        assert_eq!(
            PublicKey::parse(&text[..text.len() - 6]),
            Err(KeyError::Public)
        );
        assert_eq!(
            PublicKey::parse(&format!("{text}{text}")),
            Err(KeyError::Public)
        );
        assert_eq!(PublicKey::parse(""), Err(KeyError::Public));
        assert!(matches!(SecretKey::parse(&text), Err(KeyError::Secret)));
        assert!(matches!(
            PublicKey::parse(&key.to_text()),
            Err(KeyError::Public)
        ));
    }
}

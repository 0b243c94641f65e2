//! Signed identities: a shop's website vouches for a logged-in customer, so their chats follow
//! them from device to device and one visitor cannot pose as another.
//!
//! The website's server computes `signature = hex(HMAC-SHA256(secret, user_id "\n" name "\n"
//! email))` with the shop's identity secret (shown to admins in the console) and gives the
//! widget the user id, name, e-mail and signature. kefud verifies it (constant time) and the
//! customer's identity on the web channel becomes `user:<user_id>`. Pure: no I/O here.
//!
//! Invariant: an identity in the `user:` namespace is only ever taken with a valid signature;
//! a plain visitor id there is refused ([`plain_visitor_id_allowed`]).

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The prefix of signed customers' web identities.
pub const USER_PREFIX: &str = "user:";
/// The longest user id (the identity, with its prefix, fits the 64-byte id limit).
pub const MAX_USER_ID: usize = 64 - USER_PREFIX.len();
/// The longest name or e-mail a signed identity carries, in characters.
pub const MAX_FIELD_CHARS: usize = 200;

/// What the website vouches for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedUser {
    pub user_id: String,
    pub name: String,
    pub email: String,
    /// Lowercase or uppercase hex of the HMAC-SHA256.
    pub signature: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("signed identities are off: an admin sets the identity secret in the console first")]
    NoSecret,
    #[error("user_id must be 1 to {MAX_USER_ID} letters, digits or - _ . @")]
    BadUserId,
    #[error("name and email are at most {MAX_FIELD_CHARS} characters, without control characters")]
    BadField,
    #[error("the signature does not match: this identity was not signed with the shop's secret")]
    Mismatch,
}

/// The text the signature covers.
fn signed_text(user: &SignedUser) -> String {
    format!("{}\n{}\n{}", user.user_id, user.name, user.email)
}

/// The signature of `user`'s fields with `secret` (what the shop's website computes).
pub fn sign(secret: &[u8], user_id: &str, name: &str, email: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(format!("{user_id}\n{name}\n{email}").as_bytes());
    mac.finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Checks `user` against the shop's secret; the identity's external id on success.
///
/// # Errors
/// [`SignatureError`]: no secret set, a malformed field, or a signature that does not match.
pub fn verify(secret: Option<&[u8]>, user: &SignedUser) -> Result<String, SignatureError> {
    let secret = secret
        .filter(|s| !s.is_empty())
        .ok_or(SignatureError::NoSecret)?;
    let id_ok = !user.user_id.is_empty()
        && user.user_id.len() <= MAX_USER_ID
        && user
            .user_id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'@'));
    if !id_ok {
        return Err(SignatureError::BadUserId);
    }
    for field in [&user.name, &user.email] {
        if field.chars().count() > MAX_FIELD_CHARS || field.chars().any(char::is_control) {
            return Err(SignatureError::BadField);
        }
    }
    let given = decode_hex(&user.signature).ok_or(SignatureError::Mismatch)?;
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(signed_text(user).as_bytes());
    mac.verify_slice(&given)
        .map_err(|_| SignatureError::Mismatch)?;
    Ok(format!("{USER_PREFIX}{}", user.user_id))
}

/// Whether a visitor id given without a signature may be used: not in the signed namespace.
pub fn plain_visitor_id_allowed(visitor_id: &str) -> bool {
    !visitor_id.starts_with(USER_PREFIX)
}

/// A new identity secret: 32 random bytes, hex.
pub fn new_secret() -> String {
    let mut raw = [0u8; 32];
    getrandom::getrandom(&mut raw).expect("invariant: the OS random source is available");
    raw.iter().map(|b| format!("{b:02x}")).collect()
}

fn decode_hex(s: &str) -> Option<Vec<u8>> {
    if s.len() != 64 {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(secret: &[u8], id: &str) -> SignedUser {
        SignedUser {
            user_id: id.into(),
            name: "Li Wei".into(),
            email: "li@example.com".into(),
            signature: sign(secret, id, "Li Wei", "li@example.com"),
        }
    }

    #[test]
    fn a_signed_user_becomes_a_user_identity() {
        let u = user(b"shop secret", "42");
        assert_eq!(verify(Some(b"shop secret"), &u), Ok("user:42".into()));
        let upper = SignedUser {
            signature: u.signature.to_uppercase(),
            ..u
        };
        assert_eq!(verify(Some(b"shop secret"), &upper), Ok("user:42".into()));
    }

    #[test]
    fn forged_or_changed_fields_are_refused() {
        let u = user(b"shop secret", "42");
        assert_eq!(
            verify(Some(b"another secret"), &u),
            Err(SignatureError::Mismatch)
        );
        for changed in [
            SignedUser {
                user_id: "43".into(),
                ..u.clone()
            },
            SignedUser {
                name: "Someone Else".into(),
                ..u.clone()
            },
            SignedUser {
                email: "x@example.com".into(),
                ..u.clone()
            },
            SignedUser {
                signature: "zz".repeat(32),
                ..u.clone()
            },
            SignedUser {
                signature: String::new(),
                ..u.clone()
            },
        ] {
            assert_eq!(
                verify(Some(b"shop secret"), &changed),
                Err(SignatureError::Mismatch)
            );
        }
        assert_eq!(verify(None, &u), Err(SignatureError::NoSecret));
        assert_eq!(verify(Some(b""), &u), Err(SignatureError::NoSecret));
    }

    #[test]
    fn malformed_fields_are_refused_before_the_signature_is_checked() {
        let secret = b"s";
        assert_eq!(
            verify(Some(secret), &user(secret, "")),
            Err(SignatureError::BadUserId)
        );
        assert_eq!(
            verify(Some(secret), &user(secret, "a b")),
            Err(SignatureError::BadUserId)
        );
        assert_eq!(
            verify(Some(secret), &user(secret, &"x".repeat(MAX_USER_ID + 1))),
            Err(SignatureError::BadUserId)
        );
        let mut u = user(secret, "7");
        u.name = "a\nb".into();
        assert_eq!(verify(Some(secret), &u), Err(SignatureError::BadField));
    }

    #[test]
    fn the_user_namespace_is_closed_to_plain_visitor_ids() {
        assert!(!plain_visitor_id_allowed("user:42"));
        assert!(plain_visitor_id_allowed("v-0123"));
        assert_ne!(new_secret(), new_secret());
        assert_eq!(new_secret().len(), 64);
    }
}

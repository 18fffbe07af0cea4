//! Token secrets: drawn from the OS random source, shown once, kept only
//! as their SHA-256 digest.
//!
//! A secret is `mrd_` followed by 64 lowercase hex digits (32 random
//! bytes), so it survives shells, URLs and headers unquoted.

use ring::{digest, rand::SecureRandom};

/// What every token secret starts with (so secret scanners and humans can
/// tell a Meridian token from another string).
pub const PREFIX: &str = "mrd_";
/// Random bytes in a secret.
pub const SECRET_BYTES: usize = 32;

/// The OS random source failed (no secret was made).
#[derive(Debug, thiserror::Error)]
#[error("the system random source failed")]
pub struct RandomError;

/// A new secret: [`PREFIX`] and [`SECRET_BYTES`] random bytes in hex.
pub fn generate(rng: &dyn SecureRandom) -> Result<String, RandomError> {
    let mut bytes = [0u8; SECRET_BYTES];
    rng.fill(&mut bytes).map_err(|_| RandomError)?;
    Ok(format!("{PREFIX}{}", hex::encode(bytes)))
}

/// A new secret from the operating system's random source.
pub fn generate_os() -> Result<String, RandomError> {
    generate(&ring::rand::SystemRandom::new())
}

/// The SHA-256 digest of `secret`.
pub fn digest_of(secret: &str) -> [u8; 32] {
    let d = digest::digest(&digest::SHA256, secret.as_bytes());
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

/// The digest as the control state keys tokens by (lowercase hex).
pub fn digest_hex(secret: &str) -> String {
    hex::encode(digest_of(secret))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_prefixed_random_and_hash_to_a_state_key() {
        let a = generate_os().expect("random");
        let b = generate(&ring::rand::SystemRandom::new()).expect("random");
        assert_ne!(a, b);
        assert!(a.starts_with(PREFIX));
        assert_eq!(a.len(), PREFIX.len() + 2 * SECRET_BYTES);
        assert!(control_state::state::tokens::is_digest(&digest_hex(&a)));
        // The known SHA-256 of "abc".
        assert_eq!(
            digest_hex("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}

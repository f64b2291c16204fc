//! Opaque secrets (refresh, relay and registration tokens): random, shown once, stored as
//! SHA-256 hex. A high-entropy random token needs no slow hash.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// 64 URL-safe characters (48 random bytes).
pub fn random() -> String {
    let mut bytes = [0u8; 48];
    getrandom::fill(&mut bytes).expect("the OS random source works");
    URL_SAFE_NO_PAD.encode(bytes)
}

pub fn sha256_hex(token: &str) -> String {
    Sha256::digest(token.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Does `token` hash to `stored`? Constant time in the hash comparison.
pub fn matches(token: &str, stored: &str) -> bool {
    sha256_hex(token).as_bytes().ct_eq(stored.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_64_url_safe_characters_and_match_only_their_hash() {
        let token = random();
        assert_eq!(token.len(), 64);
        assert!(token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
        let hash = sha256_hex(&token);
        assert_eq!(hash.len(), 64);
        assert!(matches(&token, &hash));
        assert!(!matches(&random(), &hash));
        assert!(!matches(&token, ""));
    }
}

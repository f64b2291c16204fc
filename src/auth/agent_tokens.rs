//! Agent tokens: `mca_<lookup>.<secret>`. The lookup id (public, indexed, unique) finds the
//! agent with one query; the secret is checked against an HMAC-SHA256 of it keyed with
//! AGENT_TOKEN_KEY, in constant time. The reference runs PBKDF2 against every agent with a
//! token on every request; a 256-bit random secret needs no slow hash, and the key means a
//! leaked table alone cannot be used to check guesses.

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

const PREFIX: &str = "mca_";

/// A new token, and what is stored of it.
pub struct Minted {
    /// Shown once to whoever created or rotated the agent.
    pub token: String,
    pub lookup: String,
    pub hash: Vec<u8>,
}

fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    getrandom::fill(&mut buf).expect("the OS random source works");
    buf.iter().map(|b| format!("{b:02x}")).collect()
}

fn keyed_hash(key: &str, secret: &str) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key.as_bytes()).expect("HMAC takes any key");
    mac.update(secret.as_bytes());
    mac.finalize().into_bytes().to_vec()
}

pub fn mint(key: &str) -> Minted {
    let lookup = random_hex(12);
    let secret = random_hex(32);
    Minted {
        token: format!("{PREFIX}{lookup}.{secret}"),
        hash: keyed_hash(key, &secret),
        lookup,
    }
}

/// The lookup id and secret of a well-formed token.
pub fn parse(token: &str) -> Option<(&str, &str)> {
    let (lookup, secret) = token.trim().strip_prefix(PREFIX)?.split_once('.')?;
    let hex = |s: &str, len: usize| s.len() == len && s.bytes().all(|b| b.is_ascii_hexdigit());
    (hex(lookup, 24) && hex(secret, 64)).then_some((lookup, secret))
}

pub fn verify(key: &str, secret: &str, stored: &[u8]) -> bool {
    keyed_hash(key, secret).ct_eq(stored).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_minted_token_parses_and_verifies_only_with_its_key_and_secret() {
        let minted = mint("key-1");
        let (lookup, secret) = parse(&minted.token).expect("well formed");
        assert_eq!(lookup, minted.lookup);
        assert!(verify("key-1", secret, &minted.hash));
        assert!(!verify("key-2", secret, &minted.hash));
        let other = mint("key-1");
        let (_, other_secret) = parse(&other.token).unwrap();
        assert!(!verify("key-1", other_secret, &minted.hash));
    }

    #[test]
    fn malformed_tokens_do_not_parse() {
        for bad in [
            "",
            "mca_",
            "mca_abc.def",
            "xyz_0123456789abcdef01234567.00",
            "mca_zz3456789abcdef012345678.0",
        ] {
            assert!(parse(bad).is_none(), "{bad}");
        }
    }
}

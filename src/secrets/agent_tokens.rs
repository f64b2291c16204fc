//! Agent tokens: `mca_<lookup>.<secret>` (the one shown to whoever created or rotated the
//! agent) and `mcg_<lookup>.<secret>` (the one minted for the agent's gateway). The prefix
//! names the table that holds it, so one query on the indexed lookup id finds the agent;
//! the secret is checked against an HMAC-SHA256 of it keyed with AGENT_TOKEN_KEY, in
//! constant time. The reference runs PBKDF2 against every agent with a token on every
//! request; a 256-bit random secret needs no slow hash, and the key means a leaked table
//! alone cannot be used to check guesses.

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

/// Who holds a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Holder {
    /// The admin or lead that created or rotated the agent (`agents.token_*`).
    Creator,
    /// The agent's gateway (`agent_gateway_tokens`).
    Gateway,
}

impl Holder {
    fn prefix(self) -> &'static str {
        match self {
            Holder::Creator => "mca_",
            Holder::Gateway => "mcg_",
        }
    }
}

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

pub fn mint(key: &str, holder: Holder) -> Minted {
    let lookup = random_hex(12);
    let secret = random_hex(32);
    Minted {
        token: format!("{}{lookup}.{secret}", holder.prefix()),
        hash: keyed_hash(key, &secret),
        lookup,
    }
}

/// The holder, lookup id and secret of a well-formed token.
pub fn parse(token: &str) -> Option<(Holder, &str, &str)> {
    let token = token.trim();
    let (holder, rest) = [Holder::Creator, Holder::Gateway]
        .into_iter()
        .find_map(|h| token.strip_prefix(h.prefix()).map(|rest| (h, rest)))?;
    let (lookup, secret) = rest.split_once('.')?;
    let hex = |s: &str, len: usize| s.len() == len && s.bytes().all(|b| b.is_ascii_hexdigit());
    (hex(lookup, 24) && hex(secret, 64)).then_some((holder, lookup, secret))
}

pub fn verify(key: &str, secret: &str, stored: &[u8]) -> bool {
    keyed_hash(key, secret).ct_eq(stored).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_minted_token_parses_and_verifies_only_with_its_key_and_secret() {
        let minted = mint("key-1", Holder::Creator);
        let (holder, lookup, secret) = parse(&minted.token).expect("well formed");
        assert_eq!((holder, lookup), (Holder::Creator, minted.lookup.as_str()));
        let gateways = mint("key-1", Holder::Gateway);
        assert!(gateways.token.starts_with("mcg_"));
        assert_eq!(parse(&gateways.token).unwrap().0, Holder::Gateway);
        assert!(verify("key-1", secret, &minted.hash));
        assert!(!verify("key-2", secret, &minted.hash));
        let other = mint("key-1", Holder::Creator);
        let (_, _, other_secret) = parse(&other.token).unwrap();
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
            "mcx_0123456789abcdef01234567.0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
        ] {
            assert!(parse(bad).is_none(), "{bad}");
        }
    }
}

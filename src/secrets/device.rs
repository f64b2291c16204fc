//! The deployment's device identity towards OpenClaw gateways: one Ed25519 key pair, the
//! same on every instance and across restarts (a gateway pairs a device once), kept as its
//! 32-byte seed. The id a gateway knows us by is the hex SHA-256 of the raw public key.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use ring::signature::{Ed25519KeyPair, KeyPair};
use sha2::{Digest, Sha256};

pub const SEED_LEN: usize = 32;

pub struct DeviceKey {
    pair: Ed25519KeyPair,
    id: String,
    public_key: String,
}

impl std::fmt::Debug for DeviceKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the seed.
        f.debug_struct("DeviceKey").field("id", &self.id).finish()
    }
}

impl DeviceKey {
    /// `None` when `seed` is not 32 bytes.
    pub fn from_seed(seed: &[u8]) -> Option<DeviceKey> {
        if seed.len() != SEED_LEN {
            return None;
        }
        let pair = Ed25519KeyPair::from_seed_unchecked(seed).ok()?;
        let raw = pair.public_key().as_ref();
        let id = Sha256::digest(raw)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let public_key = URL_SAFE_NO_PAD.encode(raw);
        Some(DeviceKey {
            pair,
            id,
            public_key,
        })
    }

    pub fn generate_seed() -> [u8; SEED_LEN] {
        let mut seed = [0u8; SEED_LEN];
        getrandom::fill(&mut seed).expect("the operating system's random source");
        seed
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    pub fn public_key(&self) -> &str {
        &self.public_key
    }

    /// Unpadded base64url of the Ed25519 signature over `message`.
    pub fn sign(&self, message: &str) -> String {
        URL_SAFE_NO_PAD.encode(self.pair.sign(message.as_bytes()).as_ref())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ring::signature::{UnparsedPublicKey, ED25519};

    #[test]
    fn signatures_verify_with_the_published_key() {
        let key = DeviceKey::from_seed(&DeviceKey::generate_seed()).unwrap();
        assert_eq!(key.id().len(), 64);
        let raw = URL_SAFE_NO_PAD.decode(key.public_key()).unwrap();
        assert_eq!(raw.len(), 32);
        let signature = URL_SAFE_NO_PAD.decode(key.sign("v3|x")).unwrap();
        UnparsedPublicKey::new(&ED25519, &raw)
            .verify(b"v3|x", &signature)
            .unwrap();
        assert!(!key.sign("v3|x").contains('='));
    }

    #[test]
    fn the_same_seed_is_the_same_device() {
        let seed = DeviceKey::generate_seed();
        let again = DeviceKey::from_seed(&seed).unwrap();
        assert_eq!(DeviceKey::from_seed(&seed).unwrap().id(), again.id());
        assert!(DeviceKey::from_seed(&[1u8; 31]).is_none());
    }
}

//! The connector's identity, kept between starts in one JSON file readable by its owner only:
//! the gateway id and relay token registration gave, and the seed of the device key it reads
//! the local gateway's metrics with (the gateway pairs that device once).

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use mission_control::secrets::device::DeviceKey;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

#[derive(Serialize, Deserialize)]
pub struct State {
    pub gateway_id: Uuid,
    pub relay_token: String,
    /// Base64 of the device key's 32-byte seed.
    #[serde(with = "seed")]
    pub device_seed: Vec<u8>,
}

mod seed {
    use super::*;

    pub fn serialize<S: serde::Serializer>(seed: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&STANDARD.encode(seed))
    }

    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(d)?;
        STANDARD.decode(text).map_err(serde::de::Error::custom)
    }
}

impl State {
    pub fn new_seed() -> Vec<u8> {
        DeviceKey::generate_seed().to_vec()
    }

    /// `None` when there is no state yet (first start).
    pub fn load(path: &Path) -> Result<Option<State>, String> {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(format!("{}: {e}", path.display())),
        };
        let state: State =
            serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        if DeviceKey::from_seed(&state.device_seed).is_none() {
            return Err(format!(
                "{}: the device seed is not 32 bytes",
                path.display()
            ));
        }
        Ok(Some(state))
    }

    /// Written whole or not at all (a temporary file renamed over the old one), 0600.
    pub fn save(&self, path: &Path) -> Result<(), String> {
        let fail = |e: std::io::Error| format!("{}: {e}", path.display());
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(fail)?;
        }
        let temporary = path.with_extension("tmp");
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&temporary)
            .map_err(fail)?;
        file.set_permissions(std::fs::Permissions::from_mode(0o600))
            .map_err(fail)?;
        let text = serde_json::to_vec_pretty(self).map_err(|e| e.to_string())?;
        file.write_all(&text).map_err(fail)?;
        file.sync_all().map_err(fail)?;
        std::fs::rename(&temporary, path).map_err(fail)
    }
}

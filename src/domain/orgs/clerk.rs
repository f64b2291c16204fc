//! AUTH_MODE=clerk: Clerk session tokens (RS256 JWTs) verified against the Clerk
//! instance's keys, as Clerk's backend SDK does for the reference.
//!
//! The keys (`GET {CLERK_API_URL}/v1/jwks`, Bearer `CLERK_SECRET_KEY`) are fetched once
//! and kept; a token naming a key we do not have refreshes them, at most once per
//! [`MIN_REFRESH`] (a stream of made-up key ids cannot make us hammer Clerk), so a request
//! costs no network call once the keys are known. Only RS256 is taken: `alg: none`, HS256
//! or any other is refused before a key is looked at. `exp`, `nbf` and (with
//! `CLERK_VERIFY_IAT`) `iat` are checked with `CLERK_LEEWAY`; `iss` against
//! `CLERK_ISSUER` and `azp` against `CLERK_AUTHORIZED_PARTIES` when they are set.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use ring::signature::{RsaPublicKeyComponents, RSA_PKCS1_2048_8192_SHA256};
use serde_json::Value;
use tokio::sync::{Mutex, RwLock};

use crate::config::ClerkSettings;

/// The least time between two key refreshes caused by unknown key ids.
pub const MIN_REFRESH: Duration = Duration::from_secs(1);
const CALL_TIMEOUT: Duration = Duration::from_secs(5);

/// Who a valid token speaks for, with what its claims say of them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub clerk_user_id: String,
    pub email: Option<String>,
    pub name: Option<String>,
}

/// An RSA public key: modulus and exponent, big-endian.
#[derive(Clone)]
struct Key {
    n: Vec<u8>,
    e: Vec<u8>,
}

pub struct Verifier {
    settings: ClerkSettings,
    keys: RwLock<HashMap<String, Key>>,
    /// When the keys were last fetched (held while fetching, so one fetch runs at a time).
    refreshed: Mutex<Option<Instant>>,
}

impl Verifier {
    pub fn new(settings: ClerkSettings) -> Verifier {
        Verifier {
            settings,
            keys: RwLock::new(HashMap::new()),
            refreshed: Mutex::new(None),
        }
    }

    /// The identity `token` proves, or why it proves none (for the log; callers answer 401).
    pub async fn verify(&self, token: &str) -> Result<Identity, String> {
        let mut parts = token.trim().split('.');
        let (Some(header), Some(payload), Some(signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err("not a JWT".into());
        };
        let head = decode_json(header)?;
        if head["alg"] != "RS256" {
            return Err(format!("algorithm {} is not RS256", head["alg"]));
        }
        let kid = head["kid"].as_str().ok_or("no key id")?.to_string();
        let signature = URL_SAFE_NO_PAD
            .decode(signature)
            .map_err(|_| "the signature is not base64url")?;
        let key = self.key(&kid).await?;
        let signed = &token.trim()[..header.len() + 1 + payload.len()];
        RsaPublicKeyComponents {
            n: &key.n,
            e: &key.e,
        }
        .verify(&RSA_PKCS1_2048_8192_SHA256, signed.as_bytes(), &signature)
        .map_err(|_| "bad signature")?;
        let claims = decode_json(payload)?;
        self.check_claims(&claims, now_secs())?;
        let sub = claims["sub"].as_str().map(str::trim).unwrap_or_default();
        if sub.is_empty() {
            return Err("no subject".into());
        }
        Ok(Identity {
            clerk_user_id: sub.to_string(),
            email: claim_email(&claims),
            name: claim_name(&claims),
        })
    }

    fn check_claims(&self, claims: &Value, now: i64) -> Result<(), String> {
        let leeway = self.settings.leeway.as_secs() as i64;
        let exp = claims["exp"].as_i64().ok_or("no expiry")?;
        if now > exp + leeway {
            return Err("expired".into());
        }
        if claims["nbf"].as_i64().is_some_and(|nbf| now + leeway < nbf) {
            return Err("not valid yet".into());
        }
        if self.settings.verify_iat && claims["iat"].as_i64().is_some_and(|iat| now + leeway < iat)
        {
            return Err("issued in the future".into());
        }
        if let Some(issuer) = &self.settings.issuer {
            if claims["iss"].as_str().map(|i| i.trim_end_matches('/')) != Some(issuer) {
                return Err("another issuer".into());
            }
        }
        let parties = &self.settings.authorized_parties;
        if let Some(azp) = claims["azp"].as_str() {
            if !parties.is_empty() && !parties.iter().any(|p| p == azp.trim_end_matches('/')) {
                return Err("another authorized party".into());
            }
        }
        Ok(())
    }

    /// The key `kid`: cached, else after a refresh (unless one ran within [`MIN_REFRESH`]).
    async fn key(&self, kid: &str) -> Result<Key, String> {
        if let Some(key) = self.keys.read().await.get(kid) {
            return Ok(key.clone());
        }
        let mut refreshed = self.refreshed.lock().await;
        // Another request may have fetched them while this one waited.
        if let Some(key) = self.keys.read().await.get(kid) {
            return Ok(key.clone());
        }
        if refreshed.is_some_and(|at| at.elapsed() < MIN_REFRESH) {
            return Err("unknown key id (keys refreshed a moment ago)".into());
        }
        let fetched = self.fetch_keys().await;
        *refreshed = Some(Instant::now());
        let keys = fetched?;
        let found = keys.get(kid).cloned();
        *self.keys.write().await = keys;
        found.ok_or_else(|| "unknown key id".into())
    }

    async fn fetch_keys(&self) -> Result<HashMap<String, Key>, String> {
        let body = self.get("/v1/jwks").await?;
        let mut keys = HashMap::new();
        for jwk in body["keys"].as_array().into_iter().flatten() {
            let (Some(kid), Some(n), Some(e)) =
                (jwk["kid"].as_str(), jwk["n"].as_str(), jwk["e"].as_str())
            else {
                continue;
            };
            if jwk["kty"] != "RSA" {
                continue;
            }
            let (Ok(n), Ok(e)) = (URL_SAFE_NO_PAD.decode(n), URL_SAFE_NO_PAD.decode(e)) else {
                continue;
            };
            keys.insert(kid.to_string(), Key { n, e });
        }
        tracing::info!(keys = keys.len(), "Clerk keys fetched");
        Ok(keys)
    }

    /// The user's email and name from Clerk's API (first sight of a user whose token does
    /// not carry them); nothing when Clerk does not answer.
    pub async fn profile(&self, clerk_user_id: &str) -> (Option<String>, Option<String>) {
        match self.get(&format!("/v1/users/{clerk_user_id}")).await {
            Ok(user) => (profile_email(&user), profile_name(&user)),
            Err(why) => {
                tracing::warn!(%why, "Clerk profile not read");
                (None, None)
            }
        }
    }

    async fn get(&self, path: &str) -> Result<Value, String> {
        let url = format!("{}{}", self.settings.api_url, path);
        let mut response = crate::outbound::client(CALL_TIMEOUT)
            .get(&url)
            .bearer_auth(&self.settings.secret_key.0)
            .send()
            .await
            .map_err(|e| format!("{url}: {e}"))?;
        if !response.status().is_success() {
            return Err(format!("{url}: {}", response.status()));
        }
        // Read as JSON whatever the content type says.
        let body = response
            .body()
            .limit(1 << 20)
            .await
            .map_err(|e| format!("{url}: {e}"))?;
        serde_json::from_slice(&body).map_err(|e| format!("{url}: {e}"))
    }
}

fn now_secs() -> i64 {
    chrono::Utc::now().timestamp()
}

fn decode_json(part: &str) -> Result<Value, String> {
    let bytes = URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| "a part is not base64url")?;
    serde_json::from_slice(&bytes).map_err(|_| "a part is not JSON".into())
}

fn text(value: &Value) -> Option<String> {
    value
        .as_str()
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(str::to_string)
}

/// The reference's reading of an email in the claims: `email`, `email_address`,
/// `primary_email_address`, else the primary (or first) of `email_addresses`; lowercased.
fn claim_email(claims: &Value) -> Option<String> {
    ["email", "email_address", "primary_email_address"]
        .iter()
        .find_map(|k| text(&claims[*k]))
        .or_else(|| listed_email(claims, &claims["primary_email_address_id"]))
        .map(|e| e.to_lowercase())
}

fn listed_email(holder: &Value, primary: &Value) -> Option<String> {
    let list = holder["email_addresses"].as_array()?;
    let address = |item: &Value| {
        text(item)
            .or_else(|| text(&item["email_address"]))
            .or_else(|| text(&item["email"]))
    };
    list.iter()
        .find(|item| primary.is_string() && item["id"] == *primary)
        .and_then(address)
        .or_else(|| list.iter().find_map(address))
}

/// `name`, `full_name`, else the given and family names.
fn claim_name(claims: &Value) -> Option<String> {
    ["name", "full_name"]
        .iter()
        .find_map(|k| text(&claims[*k]))
        .or_else(|| {
            let first = text(&claims["given_name"]).or_else(|| text(&claims["first_name"]));
            let last = text(&claims["family_name"]).or_else(|| text(&claims["last_name"]));
            let parts: Vec<String> = first.into_iter().chain(last).collect();
            (!parts.is_empty()).then(|| parts.join(" "))
        })
}

fn profile_email(user: &Value) -> Option<String> {
    text(&user["email_address"])
        .or_else(|| listed_email(user, &user["primary_email_address_id"]))
        .map(|e| e.to_lowercase())
}

fn profile_name(user: &Value) -> Option<String> {
    ["full_name", "name", "first_name", "username"]
        .iter()
        .find_map(|k| text(&user[*k]))
        .or_else(|| claim_name(user))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn emails_and_names_are_read_like_the_reference() {
        let claims = json!({"email_addresses": [{"id": "a", "email_address": "Other@x.io"},
                                                {"id": "b", "email_address": "Main@X.io"}],
                            "primary_email_address_id": "b", "given_name": "Ada", "family_name": "L"});
        assert_eq!(claim_email(&claims).as_deref(), Some("main@x.io"));
        assert_eq!(claim_name(&claims).as_deref(), Some("Ada L"));
        assert_eq!(
            claim_email(&json!({"email": " A@B.C "})).as_deref(),
            Some("a@b.c")
        );
        assert_eq!(claim_email(&json!({})), None);
        let user =
            json!({"email_addresses": [{"id": "x", "email_address": "u@v.w"}], "username": "ada"});
        assert_eq!(profile_email(&user).as_deref(), Some("u@v.w"));
        assert_eq!(profile_name(&user).as_deref(), Some("ada"));
    }

    #[test]
    fn claims_are_checked_with_the_leeway() {
        let verifier = Verifier::new(ClerkSettings {
            secret_key: crate::config::Secret("sk".into()),
            api_url: "http://127.0.0.1:9".into(),
            verify_iat: true,
            leeway: Duration::from_secs(10),
            issuer: Some("https://clerk.example.com".into()),
            authorized_parties: vec!["https://console.example.com".into()],
        });
        let now = 1_000_000;
        let ok = json!({"exp": now + 60, "iat": now, "nbf": now, "iss": "https://clerk.example.com",
                        "azp": "https://console.example.com"});
        assert!(verifier.check_claims(&ok, now).is_ok());
        let mut late = ok.clone();
        late["exp"] = json!(now - 5);
        assert!(
            verifier.check_claims(&late, now).is_ok(),
            "within the leeway"
        );
        late["exp"] = json!(now - 11);
        assert_eq!(verifier.check_claims(&late, now).unwrap_err(), "expired");
        let mut future = ok.clone();
        future["iat"] = json!(now + 30);
        assert!(verifier.check_claims(&future, now).is_err());
        let mut elsewhere = ok.clone();
        elsewhere["iss"] = json!("https://evil.example.com");
        assert!(verifier.check_claims(&elsewhere, now).is_err());
        let mut party = ok;
        party["azp"] = json!("https://evil.example.com");
        assert!(verifier.check_claims(&party, now).is_err());
    }
}

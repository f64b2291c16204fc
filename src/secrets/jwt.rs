//! H5 user tokens. Access: an HS256 JWT with the reference's claims (`sub`, `org`,
//! `type: "h5"`, `iat`, `exp`), signed with H5_JWT_SECRET only. Refresh: 64 random URL-safe
//! characters, stored as their SHA-256.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::Utc;
use hmac::{KeyInit, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use uuid::Uuid;

type HmacSha256 = hmac::Hmac<Sha256>;

const HEADER: &str = r#"{"alg":"HS256","typ":"JWT"}"#;
const TOKEN_TYPE: &str = "h5";
/// Tolerated clock difference between instances for `iat`.
const IAT_LEEWAY_SECONDS: i64 = 5;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    pub sub: Uuid,
    pub org: Uuid,
    #[serde(rename = "type")]
    pub kind: String,
    pub iat: i64,
    pub exp: i64,
}

fn mac(secret: &str) -> HmacSha256 {
    HmacSha256::new_from_slice(secret.as_bytes()).expect("HMAC takes keys of any length")
}

pub fn sign(secret: &str, claims: &Claims) -> String {
    let header = URL_SAFE_NO_PAD.encode(HEADER);
    let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).expect("claims serialize"));
    let signing_input = format!("{header}.{payload}");
    let mut m = mac(secret);
    m.update(signing_input.as_bytes());
    let signature = URL_SAFE_NO_PAD.encode(m.finalize().into_bytes());
    format!("{signing_input}.{signature}")
}

/// A fresh access token for this user.
pub fn access_token(
    secret: &str,
    user_id: Uuid,
    organization_id: Uuid,
    ttl: std::time::Duration,
) -> String {
    let iat = Utc::now().timestamp();
    sign(
        secret,
        &Claims {
            sub: user_id,
            org: organization_id,
            kind: TOKEN_TYPE.into(),
            iat,
            exp: iat + ttl.as_secs() as i64,
        },
    )
}

/// The claims of a valid, unexpired H5 access token; `None` for anything else.
pub fn verify(secret: &str, token: &str) -> Option<Claims> {
    let mut parts = token.split('.');
    let (header, payload, signature) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    let mut m = mac(secret);
    m.update(header.as_bytes());
    m.update(b".");
    m.update(payload.as_bytes());
    m.verify_slice(&URL_SAFE_NO_PAD.decode(signature).ok()?)
        .ok()?;
    // Only after the signature holds: the header must say HS256 (no "none", no key confusion).
    let header: serde_json::Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(header).ok()?).ok()?;
    if header.get("alg")?.as_str()? != "HS256" {
        return None;
    }
    let claims: Claims = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).ok()?).ok()?;
    let now = Utc::now().timestamp();
    (claims.kind == TOKEN_TYPE && claims.exp > now && claims.iat <= now + IAT_LEEWAY_SECONDS)
        .then_some(claims)
}

/// A new refresh token and the hash to store.
pub fn refresh_token() -> (String, String) {
    let token = super::tokens::random();
    let hash = super::tokens::sha256_hex(&token);
    (token, hash)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "0123456789abcdef0123456789abcdef";

    fn claims(iat: i64, exp: i64, kind: &str) -> Claims {
        Claims {
            sub: Uuid::new_v4(),
            org: Uuid::new_v4(),
            kind: kind.into(),
            iat,
            exp,
        }
    }

    #[test]
    fn a_signed_token_verifies_and_carries_its_claims() {
        let now = Utc::now().timestamp();
        let c = claims(now, now + 60, "h5");
        assert_eq!(verify(SECRET, &sign(SECRET, &c)), Some(c));
    }

    #[test]
    fn expired_foreign_tampered_or_wrong_type_tokens_fail() {
        let now = Utc::now().timestamp();
        assert_eq!(
            verify(SECRET, &sign(SECRET, &claims(now - 120, now - 60, "h5"))),
            None
        );
        assert_eq!(
            verify(
                SECRET,
                &sign(
                    "another-secret-another-secret-xx",
                    &claims(now, now + 60, "h5")
                )
            ),
            None
        );
        assert_eq!(
            verify(SECRET, &sign(SECRET, &claims(now, now + 60, "admin"))),
            None
        );
        let token = sign(SECRET, &claims(now, now + 60, "h5"));
        let mut tampered = token.clone();
        tampered.insert(token.find('.').unwrap() + 3, 'x');
        assert_eq!(verify(SECRET, &tampered), None);
        assert_eq!(verify(SECRET, "a.b"), None);
        assert_eq!(verify(SECRET, "not-a-jwt"), None);
    }

    #[test]
    fn the_none_algorithm_is_refused() {
        let now = Utc::now().timestamp();
        let header = URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"JWT"}"#);
        let payload =
            URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims(now, now + 60, "h5")).unwrap());
        assert_eq!(verify(SECRET, &format!("{header}.{payload}.")), None);
    }
}

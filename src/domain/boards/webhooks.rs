//! Inbound board webhooks (domain.md §A15): the admin CRUD, the stored payloads, and the
//! rules of the unauthenticated ingest (signature, body decoding, header capture).
//!
//! As in the reference, a webhook's URL (with its random id) is enough to call it. Each
//! webhook also has a secret: a call carrying `X-Webhook-Signature: sha256=<hex
//! HMAC-SHA256 of the raw body>` is checked against it (a wrong one is always refused),
//! and a webhook with `require_signature` refuses unsigned calls. The secret is answered
//! by the create, secret and rotate calls only.

use chrono::{DateTime, Utc};
use hmac::{KeyInit, Mac};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::Sha256;
use subtle::ConstantTimeEq;
use tokio_postgres::Row;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::db::record::{self, Record, RowError};
use crate::db::GenericClient;
use crate::domain::model::Principal;
use crate::domain::support::access::{self, Access};
use crate::domain::support::pagination::{fetch_page, Page, PageParams};
use crate::domain::support::validation::non_empty;
use crate::domain::{DomainError, DomainResult};
use crate::secrets::tokens;

pub const SIGNATURE_HEADER: &str = "x-webhook-signature";
const SIGNATURE_PREFIX: &str = "sha256=";
const ERR_AGENT_NOT_ON_BOARD: &str = "agent_id must reference an agent on this board.";

crate::db::record! {
    /// `BoardWebhookRead`. `endpoint_url` reads empty: [`Webhook::read`] fills it.
    #[derive(Debug, Clone, Serialize, ToSchema)]
    pub struct Webhook in "w" {
        pub id: Uuid,
        pub board_id: Uuid,
        pub agent_id: Option<Uuid>,
        pub description: String,
        pub enabled: bool,
        pub require_signature: bool,
        pub endpoint_path: String = "'/api/v1/boards/' || w.board_id || '/webhooks/' || w.id",
        pub endpoint_url: Option<String> = "NULL::text",
        pub created_at: DateTime<Utc>,
        pub updated_at: DateTime<Utc>,
    }
}

/// `BoardWebhookRead` plus the signing secret (create, secret, rotate).
#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookWithSecret {
    #[serde(flatten)]
    pub webhook: Webhook,
    pub secret: String,
}

impl Webhook {
    /// The webhook in `row` (see `Webhook::COLUMNS`). `base_url` is the deployment's public
    /// URL (`BASE_URL`); without it there is no `endpoint_url`, as in the reference.
    fn read(row: &Row, base_url: Option<&str>) -> Result<Webhook, RowError> {
        let mut webhook = Webhook::from_row(row)?;
        webhook.endpoint_url =
            base_url.map(|b| format!("{}{}", b.trim_end_matches('/'), webhook.endpoint_path));
        Ok(webhook)
    }
}

/// `BoardWebhookCreate`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct WebhookCreate {
    pub description: String,
    #[serde(default = "enabled_default")]
    pub enabled: bool,
    #[serde(default)]
    pub agent_id: Option<Uuid>,
    /// Refuse calls without a valid signature (default false, as in the reference).
    #[serde(default)]
    pub require_signature: bool,
}

fn enabled_default() -> bool {
    true
}

/// `BoardWebhookUpdate`: absent fields stay; `agent_id: null` unbinds the agent.
/// `null` on `description` or `enabled`, which cannot be empty, counts as absent.
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct WebhookUpdate {
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub enabled: Option<bool>,
    #[serde(default, deserialize_with = "crate::domain::support::patch::field")]
    #[schema(value_type = Option<Uuid>)]
    pub agent_id: Option<Option<Uuid>>,
    #[serde(default)]
    pub require_signature: Option<bool>,
}

async fn check_agent(
    client: &impl GenericClient,
    board_id: Uuid,
    agent_id: Option<Uuid>,
) -> DomainResult<()> {
    let Some(agent_id) = agent_id else {
        return Ok(());
    };
    let found = client
        .query_opt(
            "SELECT 1 FROM agents WHERE id = $1 AND board_id = $2",
            &[&agent_id, &board_id],
        )
        .await?;
    match found {
        Some(_) => Ok(()),
        None => Err(DomainError::unprocessable(ERR_AGENT_NOT_ON_BOARD)),
    }
}

async fn find(
    client: &impl GenericClient,
    board_id: Uuid,
    webhook_id: Uuid,
    base_url: Option<&str>,
) -> DomainResult<Webhook> {
    client
        .query_opt(
            &format!(
                "SELECT {columns} FROM board_webhooks w WHERE w.id = $1 AND w.board_id = $2",
                columns = Webhook::COLUMNS
            ),
            &[&webhook_id, &board_id],
        )
        .await?
        .map(|r| Webhook::read(&r, base_url))
        .transpose()?
        .ok_or_else(DomainError::not_found)
}

/// The board's webhooks, newest first.
pub async fn list(
    client: &impl GenericClient,
    principal: &Principal,
    board_id: Uuid,
    page: PageParams,
    base_url: Option<&str>,
) -> DomainResult<Page<Webhook>> {
    let board = access::board_for_user(client, principal, board_id, Access::Read).await?;
    fetch_page(
        client,
        Webhook::COLUMNS,
        "FROM board_webhooks w WHERE w.board_id = $1",
        "w.created_at DESC, w.id",
        &[&board.id],
        page,
        |r| Webhook::read(r, base_url),
    )
    .await
}

pub async fn create(
    client: &impl GenericClient,
    principal: &Principal,
    board_id: Uuid,
    input: WebhookCreate,
    base_url: Option<&str>,
) -> DomainResult<WebhookWithSecret> {
    let description = non_empty("description", &input.description)?;
    let board = access::board_for_user(client, principal, board_id, Access::Write).await?;
    check_agent(client, board.id, input.agent_id).await?;
    let secret = tokens::random();
    let row = client
        .query_one(
            &format!(
                "INSERT INTO board_webhooks AS w \
                 (id, organization_id, board_id, agent_id, description, enabled, secret, \
                  require_signature) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING {columns}",
                columns = Webhook::COLUMNS
            ),
            &[
                &Uuid::new_v4(),
                &board.organization_id,
                &board.id,
                &input.agent_id,
                &description,
                &input.enabled,
                &secret,
                &input.require_signature,
            ],
        )
        .await?;
    Ok(WebhookWithSecret {
        webhook: Webhook::read(&row, base_url)?,
        secret,
    })
}

pub async fn get(
    client: &impl GenericClient,
    principal: &Principal,
    board_id: Uuid,
    webhook_id: Uuid,
    base_url: Option<&str>,
) -> DomainResult<Webhook> {
    let board = access::board_for_user(client, principal, board_id, Access::Read).await?;
    find(client, board.id, webhook_id, base_url).await
}

pub async fn update(
    client: &impl GenericClient,
    principal: &Principal,
    board_id: Uuid,
    webhook_id: Uuid,
    patch: WebhookUpdate,
    base_url: Option<&str>,
) -> DomainResult<Webhook> {
    let description = match &patch.description {
        Some(text) => Some(non_empty("description", text)?),
        None => None,
    };
    let board = access::board_for_user(client, principal, board_id, Access::Write).await?;
    let current = find(client, board.id, webhook_id, base_url).await?;
    if let Some(agent_id) = patch.agent_id {
        check_agent(client, board.id, agent_id).await?;
    }
    let row = client
        .query_one(
            &format!(
                "UPDATE board_webhooks w SET description = $3, enabled = $4, agent_id = $5, \
                 require_signature = $6, updated_at = now() \
                 WHERE w.id = $1 AND w.board_id = $2 RETURNING {columns}",
                columns = Webhook::COLUMNS
            ),
            &[
                &current.id,
                &board.id,
                &description.unwrap_or(current.description),
                &patch.enabled.unwrap_or(current.enabled),
                &patch.agent_id.unwrap_or(current.agent_id),
                &patch.require_signature.unwrap_or(current.require_signature),
            ],
        )
        .await?;
    Ok(Webhook::read(&row, base_url)?)
}

/// The webhook with its signing secret, for whoever administers the board.
pub async fn secret(
    client: &impl GenericClient,
    principal: &Principal,
    board_id: Uuid,
    webhook_id: Uuid,
    base_url: Option<&str>,
) -> DomainResult<WebhookWithSecret> {
    let board = access::board_for_user(client, principal, board_id, Access::Write).await?;
    let webhook = find(client, board.id, webhook_id, base_url).await?;
    let secret = client
        .query_one(
            "SELECT secret FROM board_webhooks WHERE id = $1",
            &[&webhook.id],
        )
        .await?;
    Ok(WebhookWithSecret {
        webhook,
        secret: record::get(&secret, "secret")?,
    })
}

/// A new secret; the old one stops verifying at once.
pub async fn rotate_secret(
    client: &impl GenericClient,
    principal: &Principal,
    board_id: Uuid,
    webhook_id: Uuid,
    base_url: Option<&str>,
) -> DomainResult<WebhookWithSecret> {
    let board = access::board_for_user(client, principal, board_id, Access::Write).await?;
    let secret = tokens::random();
    let row = client
        .query_opt(
            &format!(
                "UPDATE board_webhooks w SET secret = $3, updated_at = now() \
                 WHERE w.id = $1 AND w.board_id = $2 RETURNING {columns}",
                columns = Webhook::COLUMNS
            ),
            &[&webhook_id, &board.id, &secret],
        )
        .await?
        .ok_or_else(DomainError::not_found)?;
    Ok(WebhookWithSecret {
        webhook: Webhook::read(&row, base_url)?,
        secret,
    })
}

/// Deletes the webhook; its payloads go with it (foreign key cascade).
pub async fn delete(
    client: &impl GenericClient,
    principal: &Principal,
    board_id: Uuid,
    webhook_id: Uuid,
) -> DomainResult<()> {
    let board = access::board_for_user(client, principal, board_id, Access::Write).await?;
    let deleted = client
        .execute(
            "DELETE FROM board_webhooks WHERE id = $1 AND board_id = $2",
            &[&webhook_id, &board.id],
        )
        .await?;
    if deleted == 0 {
        return Err(DomainError::not_found());
    }
    Ok(())
}

crate::db::record! {
    /// `BoardWebhookPayloadRead`.
    #[derive(Debug, Serialize, ToSchema)]
    pub struct Payload in "p" {
        pub id: Uuid,
        pub board_id: Uuid,
        pub webhook_id: Uuid,
        #[schema(value_type = Object)]
        pub payload: Option<Value>,
        #[schema(value_type = Object)]
        pub headers: Option<Value>,
        pub source_ip: Option<String>,
        pub content_type: Option<String>,
        pub received_at: DateTime<Utc>,
    }
}

/// The webhook's stored payloads, newest first.
pub async fn list_payloads(
    client: &impl GenericClient,
    principal: &Principal,
    board_id: Uuid,
    webhook_id: Uuid,
    page: PageParams,
) -> DomainResult<Page<Payload>> {
    let board = access::board_for_user(client, principal, board_id, Access::Read).await?;
    let webhook = find(client, board.id, webhook_id, None).await?;
    fetch_page(
        client,
        Payload::COLUMNS,
        "FROM board_webhook_payloads p WHERE p.webhook_id = $1",
        "p.received_at DESC, p.id",
        &[&webhook.id],
        page,
        Payload::from_row,
    )
    .await
}

pub async fn get_payload(
    client: &impl GenericClient,
    principal: &Principal,
    board_id: Uuid,
    webhook_id: Uuid,
    payload_id: Uuid,
) -> DomainResult<Payload> {
    let board = access::board_for_user(client, principal, board_id, Access::Read).await?;
    let webhook = find(client, board.id, webhook_id, None).await?;
    client
        .query_opt(
            &format!(
                "SELECT {columns} FROM board_webhook_payloads p \
                 WHERE p.id = $1 AND p.webhook_id = $2",
                columns = Payload::COLUMNS
            ),
            &[&payload_id, &webhook.id],
        )
        .await?
        .map(|r| Payload::from_row(&r))
        .transpose()?
        .ok_or_else(DomainError::not_found)
}

/// What the ingest needs to know about a webhook before it reads the body.
pub struct IngestTarget {
    pub id: Uuid,
    pub board_id: Uuid,
    pub enabled: bool,
    require_signature: bool,
    secret: String,
}

impl IngestTarget {
    /// May a call with this signature `header` and `body` be taken? A present signature
    /// must be right; an absent one only where the webhook does not require it.
    pub fn accepts(&self, header: Option<&str>, body: &[u8]) -> bool {
        match header {
            Some(header) => self.signature_matches(header, body),
            None => !self.require_signature,
        }
    }

    /// Does `header` (`sha256=<hex>`) carry the HMAC-SHA256 of `body` under this webhook's
    /// secret? Compared in constant time.
    fn signature_matches(&self, header: &str, body: &[u8]) -> bool {
        let Some(given) = header.trim().strip_prefix(SIGNATURE_PREFIX) else {
            return false;
        };
        let Ok(mut mac) = hmac::Hmac::<Sha256>::new_from_slice(self.secret.as_bytes()) else {
            return false;
        };
        mac.update(body);
        let expected = hex(&mac.finalize().into_bytes());
        expected
            .as_bytes()
            .ct_eq(given.to_ascii_lowercase().as_bytes())
            .into()
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The webhook of this board, whatever its organization (the ingest has no caller).
pub async fn ingest_target(
    client: &impl GenericClient,
    board_id: Uuid,
    webhook_id: Uuid,
) -> DomainResult<IngestTarget> {
    let r = client
        .query_opt(
            "SELECT id, board_id, enabled, require_signature, secret FROM board_webhooks \
             WHERE id = $1 AND board_id = $2",
            &[&webhook_id, &board_id],
        )
        .await?
        .ok_or_else(DomainError::not_found)?;
    Ok(IngestTarget {
        id: record::get(&r, "id")?,
        board_id: record::get(&r, "board_id")?,
        enabled: record::get(&r, "enabled")?,
        require_signature: record::get(&r, "require_signature")?,
        secret: record::get(&r, "secret")?,
    })
}

/// The reference's body decoding: empty → `{}`; JSON when the content type says so or the
/// text looks like JSON, falling back to the text itself. A NUL character (which
/// PostgreSQL cannot store) becomes U+FFFD: a sender cannot be asked to change its payload.
pub fn decode_body(body: &[u8], content_type: Option<&str>) -> Value {
    if body.is_empty() {
        return Value::Object(Default::default());
    }
    let text = String::from_utf8_lossy(body);
    let json_type =
        content_type.is_some_and(|c| c.to_ascii_lowercase().contains("application/json"));
    let looks_json = text.starts_with(['{', '[', '"']) || text == "true" || text == "false";
    let parsed = (json_type || looks_json)
        .then(|| serde_json::from_str::<Value>(&text).ok())
        .flatten();
    let mut value = parsed.unwrap_or_else(|| Value::String(text.into_owned()));
    crate::protocol::nul::replace(&mut value);
    value
}

/// The request headers the reference keeps: `content-type`, `user-agent` and every `x-*`,
/// lowercased; `None` when there are none.
pub fn captured_headers<'a>(headers: impl Iterator<Item = (&'a str, &'a str)>) -> Option<Value> {
    let kept: serde_json::Map<String, Value> = headers
        .map(|(name, value)| (name.to_ascii_lowercase(), value))
        .filter(|(name, _)| {
            name == "content-type" || name == "user-agent" || name.starts_with("x-")
        })
        .map(|(name, value)| (name, Value::String(value.to_string())))
        .collect();
    (!kept.is_empty()).then_some(Value::Object(kept))
}

/// A received body, decoded, ready to store.
pub struct Received {
    pub payload: Value,
    pub headers: Option<Value>,
    pub source_ip: Option<String>,
    pub content_type: Option<String>,
}

/// Stores the payload (`coordination::deliver_webhook` then queues it for the webhook's
/// agent).
pub async fn store_payload(
    client: &impl GenericClient,
    target: &IngestTarget,
    received: &Received,
) -> DomainResult<Uuid> {
    let id = Uuid::new_v4();
    client
        .execute(
            "INSERT INTO board_webhook_payloads \
             (id, board_id, webhook_id, payload, headers, source_ip, content_type) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
            &[
                &id,
                &target.board_id,
                &target.id,
                &received.payload,
                &received.headers,
                &received.source_ip,
                &received.content_type,
            ],
        )
        .await?;
    Ok(id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn target(secret: &str, require_signature: bool) -> IngestTarget {
        IngestTarget {
            id: Uuid::nil(),
            board_id: Uuid::nil(),
            enabled: true,
            require_signature,
            secret: secret.into(),
        }
    }

    #[test]
    fn signature_is_hmac_sha256_hex_with_prefix() {
        let t = target("key", true);
        // HMAC-SHA256("key", "The quick brown fox jumps over the lazy dog")
        let sig = "sha256=f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8";
        let body = b"The quick brown fox jumps over the lazy dog";
        assert!(t.accepts(Some(sig), body));
        assert!(t.accepts(
            Some(&sig.to_uppercase().replace("SHA256=", "sha256=")),
            body
        ));
        assert!(!t.accepts(Some(&sig[7..]), body));
        assert!(!t.accepts(Some(sig), b"other"));
        assert!(!t.accepts(None, body));
        assert!(!target("other", true).accepts(Some(sig), body));
    }

    #[test]
    fn unsigned_calls_pass_only_where_no_signature_is_required() {
        let open = target("key", false);
        assert!(open.accepts(None, b"{}"));
        assert!(
            !open.accepts(Some("sha256=00"), b"{}"),
            "a wrong signature is refused"
        );
        assert!(!target("key", true).accepts(None, b"{}"));
    }

    #[test]
    fn bodies_decode_as_the_reference_does() {
        assert_eq!(decode_body(b"", None), json!({}));
        assert_eq!(decode_body(b"{\"a\":1}", None), json!({"a": 1}));
        assert_eq!(decode_body(b"true", None), json!(true));
        assert_eq!(decode_body(b"42", None), json!("42"));
        assert_eq!(decode_body(b"42", Some("application/json")), json!(42));
        assert_eq!(decode_body(b"{oops", None), json!("{oops"));
        assert_eq!(decode_body(b"plain", Some("text/plain")), json!("plain"));
    }

    #[test]
    fn only_content_type_user_agent_and_x_headers_are_kept() {
        let kept = captured_headers(
            [
                ("Content-Type", "application/json"),
                ("Authorization", "secret"),
                ("X-GitHub-Event", "push"),
                ("User-Agent", "curl"),
            ]
            .into_iter(),
        );
        assert_eq!(
            kept,
            Some(
                json!({"content-type": "application/json", "x-github-event": "push", "user-agent": "curl"})
            )
        );
        assert_eq!(captured_headers([("Accept", "*/*")].into_iter()), None);
    }
}

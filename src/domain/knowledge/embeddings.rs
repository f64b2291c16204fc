//! Embeddings (domain.md §E4, done right): the three providers' request shapes, and the
//! rows the background worker (`actors::embedder`) embeds. Nothing here runs inside a
//! request's transaction: an entry is stored at once with `embed_due_at` set, and is found
//! by keyword until its embedding is written.
//!
//! | provider | request | vectors at |
//! |---|---|---|
//! | `openai` (and compatible servers) | `POST {base}/embeddings` `{model, input: [texts]}` | `data[i].embedding` (by `index`) |
//! | `tongyi` (DashScope) | `POST {base}/services/embeddings/text-embedding/text-embedding` `{model, input: {texts}, parameters: {text_type}}` | `output.embeddings[i].embedding` (by `text_index`) |
//! | `local` (Ollama) | `POST {base}/api/embeddings` `{model, prompt}`, one text per call | `embedding` |

use std::time::Duration;

use serde_json::{json, Value};
use uuid::Uuid;

use crate::config::{EmbeddingProvider, EmbeddingSettings};
use crate::db::record::get;
use crate::db::GenericClient;
use crate::domain::DomainResult;

/// How long a claimed entry is left to its worker before another may take it.
const CLAIM_SECONDS: f64 = 600.0;
/// Retries wait 2ⁿ s after the n-th failure, at most this.
const MAX_RETRY_SECONDS: f64 = 3600.0;

/// Why an embedding call gave nothing.
#[derive(Debug)]
pub enum EmbedError {
    /// HTTP 429: wait this long (its `Retry-After`, else a default) before calling again.
    RateLimited(Duration),
    Failed(String),
}

impl std::fmt::Display for EmbedError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            EmbedError::RateLimited(d) => write!(f, "rate limited for {} s", d.as_secs()),
            EmbedError::Failed(e) => f.write_str(e),
        }
    }
}

/// Whether the text is stored (a document) or searched for (a query): DashScope embeds
/// them differently.
#[derive(Debug, Clone, Copy)]
pub enum Purpose {
    Document,
    Query,
}

/// The text an entry is embedded from, as in the reference.
pub fn entry_text(title: &str, content: &str) -> String {
    format!("{title}\n\n{content}")
}

/// The pgvector literal of a vector.
pub fn literal(vector: &[f32]) -> String {
    let parts: Vec<String> = vector.iter().map(|x| x.to_string()).collect();
    format!("[{}]", parts.join(","))
}

/// Embeds `texts` with the configured provider: one vector per text, in order.
pub async fn embed(
    settings: &EmbeddingSettings,
    texts: &[String],
    purpose: Purpose,
) -> Result<Vec<Vec<f32>>, EmbedError> {
    match settings.provider {
        EmbeddingProvider::Local => {
            let mut vectors = Vec::with_capacity(texts.len());
            for text in texts {
                let body = json!({"model": settings.model, "prompt": text});
                let answer = call(settings, "/api/embeddings", body).await?;
                vectors.push(vector_at(&answer["embedding"])?);
            }
            Ok(vectors)
        }
        EmbeddingProvider::OpenAi => {
            let body = json!({"model": settings.model, "input": texts});
            let answer = call(settings, "/embeddings", body).await?;
            ordered(&answer["data"], "index", texts.len())
        }
        EmbeddingProvider::Tongyi => {
            let text_type = match purpose {
                Purpose::Document => "document",
                Purpose::Query => "query",
            };
            let body = json!({
                "model": settings.model, "input": {"texts": texts},
                "parameters": {"text_type": text_type},
            });
            let answer = call(
                settings,
                "/services/embeddings/text-embedding/text-embedding",
                body,
            )
            .await?;
            ordered(&answer["output"]["embeddings"], "text_index", texts.len())
        }
    }
}

fn vector_at(value: &Value) -> Result<Vec<f32>, EmbedError> {
    let items = value
        .as_array()
        .filter(|a| !a.is_empty())
        .ok_or_else(|| EmbedError::Failed("the provider answered no vector".into()))?;
    items
        .iter()
        .map(|x| x.as_f64().map(|x| x as f32))
        .collect::<Option<Vec<f32>>>()
        .ok_or_else(|| {
            EmbedError::Failed("the provider answered a vector that is not numbers".into())
        })
}

/// The vectors of a list of `{<index_key>, embedding}`, in input order.
fn ordered(items: &Value, index_key: &str, expected: usize) -> Result<Vec<Vec<f32>>, EmbedError> {
    let items = items
        .as_array()
        .ok_or_else(|| EmbedError::Failed("the provider's answer has no embeddings".into()))?;
    let mut vectors: Vec<Option<Vec<f32>>> = vec![None; expected];
    for (position, item) in items.iter().enumerate() {
        let index = item[index_key].as_u64().map_or(position, |i| i as usize);
        if let Some(slot) = vectors.get_mut(index) {
            *slot = Some(vector_at(&item["embedding"])?);
        }
    }
    vectors
        .into_iter()
        .collect::<Option<Vec<_>>>()
        .ok_or_else(|| {
            EmbedError::Failed(format!(
                "the provider answered fewer than {expected} vectors"
            ))
        })
}

async fn call(settings: &EmbeddingSettings, path: &str, body: Value) -> Result<Value, EmbedError> {
    let mut request = crate::outbound::client(settings.timeout)
        .post(format!("{}{path}", settings.base_url))
        .insert_header(("Content-Type", "application/json"));
    if let Some(key) = &settings.api_key {
        request = request.insert_header(("Authorization", format!("Bearer {}", key.0)));
    }
    let mut response = request
        .send_json(&body)
        .await
        .map_err(|e| EmbedError::Failed(format!("embedding call failed: {e}")))?;
    let status = response.status();
    if status.as_u16() == 429 {
        let wait = response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .unwrap_or(30);
        return Err(EmbedError::RateLimited(Duration::from_secs(
            wait.clamp(1, 3600),
        )));
    }
    let bytes = response
        .body()
        .limit(64 << 20)
        .await
        .map_err(|e| EmbedError::Failed(format!("embedding answer unreadable: {e}")))?;
    if !status.is_success() {
        let text = String::from_utf8_lossy(&bytes[..bytes.len().min(300)]).to_string();
        return Err(EmbedError::Failed(format!(
            "the provider answered HTTP {status}: {text}"
        )));
    }
    serde_json::from_slice(&bytes)
        .map_err(|e| EmbedError::Failed(format!("embedding answer is not JSON: {e}")))
}

/// An entry to embed, claimed by one worker.
pub struct Due {
    pub id: Uuid,
    pub version: i32,
    pub text: String,
}

/// Claims up to `limit` entries whose embedding is due (new, changed, of another model, or
/// a retry whose time came), oldest due first.
pub async fn claim_due(client: &impl GenericClient, limit: i64) -> DomainResult<Vec<Due>> {
    let rows = client
        .query(
            "UPDATE knowledge_entries e SET embed_due_at = now() + make_interval(secs => $2) \
             WHERE e.id IN (SELECT id FROM knowledge_entries WHERE embed_due_at <= now() \
               ORDER BY embed_due_at LIMIT $1 FOR UPDATE SKIP LOCKED) \
             RETURNING e.id, e.embed_version, e.title, e.content",
            &[&limit, &CLAIM_SECONDS],
        )
        .await?;
    rows.iter()
        .map(|r| {
            let (title, content): (String, String) = (get(r, "title")?, get(r, "content")?);
            Ok(Due {
                id: get(r, "id")?,
                version: get(r, "embed_version")?,
                text: entry_text(&title, &content),
            })
        })
        .collect()
}

/// Writes the embeddings of a batch (`vectors[i]` of `due[i]`) in one statement, each
/// unless its entry's text changed since it was claimed.
pub async fn store(
    client: &impl GenericClient,
    due: &[Due],
    model: &str,
    vectors: &[Vec<f32>],
) -> DomainResult<()> {
    let (ids, versions) = keys(due);
    let literals: Vec<String> = vectors.iter().map(|v| literal(v)).collect();
    let dims: Vec<i32> = vectors.iter().map(|v| v.len() as i32).collect();
    client
        .execute(
            "UPDATE knowledge_entries e SET embedding = v.vec::vector, embedding_model = $4, \
               embedding_dims = v.dims, embed_due_at = NULL, embed_attempts = 0, embed_error = NULL \
             FROM unnest($1::uuid[], $2::int[], $3::text[], $5::int[]) AS v(id, version, vec, dims) \
             WHERE e.id = v.id AND e.embed_version = v.version",
            &[&ids, &versions, &literals, &model, &dims],
        )
        .await?;
    Ok(())
}

/// Records a failed attempt of a batch: each entry is tried again after its backoff.
pub async fn failed(client: &impl GenericClient, due: &[Due], error: &str) -> DomainResult<()> {
    let (ids, versions) = keys(due);
    client
        .execute(
            "UPDATE knowledge_entries e SET embed_attempts = e.embed_attempts + 1, embed_error = $3, \
               embed_due_at = now() + make_interval(secs => least($4, power(2, e.embed_attempts + 1))) \
             FROM unnest($1::uuid[], $2::int[]) AS v(id, version) \
             WHERE e.id = v.id AND e.embed_version = v.version",
            &[&ids, &versions, &error, &MAX_RETRY_SECONDS],
        )
        .await?;
    Ok(())
}

/// The ids and text versions of claimed entries, as parallel arrays.
fn keys(due: &[Due]) -> (Vec<Uuid>, Vec<i32>) {
    due.iter().map(|d| (d.id, d.version)).unzip()
}

/// Gives back claimed entries untried (a rate limit): due again at `after` seconds.
pub async fn postpone(
    client: &impl GenericClient,
    ids: &[Uuid],
    after: Duration,
) -> DomainResult<()> {
    client
        .execute(
            "UPDATE knowledge_entries SET embed_due_at = now() + make_interval(secs => $2) WHERE id = ANY($1)",
            &[&ids, &after.as_secs_f64()],
        )
        .await?;
    Ok(())
}

/// Entries embedded by another model are embedded again (a changed EMBEDDING_MODEL).
pub async fn reembed_other_models(client: &impl GenericClient, model: &str) -> DomainResult<u64> {
    Ok(client
        .execute(
            "UPDATE knowledge_entries SET embed_due_at = now(), embed_attempts = 0 \
             WHERE embed_due_at IS NULL AND embedding_model IS DISTINCT FROM $1",
            &[&model],
        )
        .await?)
}

/// The HNSW index (cosine) of the vectors of `dims` dimensions, made once. Built
/// concurrently: writes go on while it is made.
pub async fn ensure_index(client: &impl GenericClient, dims: usize) -> DomainResult<()> {
    client
        .batch_execute(&format!(
            "CREATE INDEX CONCURRENTLY IF NOT EXISTS knowledge_entries_embedding_{dims}_idx \
             ON knowledge_entries USING hnsw ((embedding::vector({dims})) vector_cosine_ops) \
             WHERE embedding_dims = {dims}"
        ))
        .await?;
    Ok(())
}

/// Whether the database has the text search configuration `name` (an unknown one indexes
/// as `simple`).
pub async fn language_exists(client: &impl GenericClient, name: &str) -> DomainResult<bool> {
    let row = client
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM pg_ts_config WHERE cfgname = $1) AS found",
            &[&name],
        )
        .await?;
    Ok(get(&row, "found")?)
}

/// Re-indexes entries written under another KNOWLEDGE_SEARCH_LANGUAGE, a batch at a time;
/// how many were changed.
pub async fn reindex_language(client: &impl GenericClient, config: &str) -> DomainResult<u64> {
    Ok(client
        .execute(
            "UPDATE knowledge_entries SET search_config = knowledge_search_config($1) WHERE id IN ( \
               SELECT id FROM knowledge_entries WHERE search_config <> knowledge_search_config($1) LIMIT 1000)",
            &[&config],
        )
        .await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_read_in_input_order() {
        let data =
            json!([{"index": 1, "embedding": [3.0, 4.0]}, {"index": 0, "embedding": [1.0, 2.0]}]);
        assert_eq!(
            ordered(&data, "index", 2).unwrap(),
            vec![vec![1.0, 2.0], vec![3.0, 4.0]]
        );
        assert!(ordered(&json!([{"index": 0, "embedding": [1.0]}]), "index", 2).is_err());
        assert!(vector_at(&json!(["x"])).is_err());
        assert_eq!(literal(&[1.0, 0.5]), "[1,0.5]");
    }
}

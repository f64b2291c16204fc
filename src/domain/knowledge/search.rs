//! `POST /knowledge/search` (domain.md §E3, done right). Three modes over the entries the
//! member may read, with the optional board and category filters:
//!
//! - **keyword**: `search_vector @@ query` in KNOWLEDGE_SEARCH_LANGUAGE (`websearch_to_tsquery`:
//!   words, "quoted phrases", `or`, `-word`), CJK runs as phrases of character bigrams
//!   (`text`), over the entry and the chunks of its documents; score `ts_rank_cd(…, 32)` in
//!   [0, 1) (× 0.9 for a chunk).
//! - **semantic**: cosine distance to the query's embedding on the HNSW index of the model's
//!   dimension, with iterative index scans so that filters do not starve the result; score
//!   the cosine similarity.
//! - **hybrid** (default): reciprocal rank fusion of the two lists (Σ 1/(60 + rank)), a pinned
//!   entry's score × 1.25; score the fused one.
//!
//! Without an embedding (provider `none`, or it failed or timed out) semantic and hybrid
//! answer the keyword results with `degraded: true` and the reason: never a 500.

use serde::{Deserialize, Serialize};
use tokio_postgres::types::ToSql;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::db::record::{get, Record};
use crate::db::{GenericClient, Transaction};
use crate::domain::knowledge::embeddings::literal;
use crate::domain::knowledge::entries::KnowledgeEntry;
use crate::domain::knowledge::manage::{readable, with_documents};
use crate::domain::knowledge::text;
use crate::domain::model::Principal;
use crate::domain::DomainResult;

/// RRF's constant: ranks past the first few count less and less.
const RRF_K: f64 = 60.0;
const PIN_BOOST: f64 = 1.25;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    Keyword,
    Semantic,
    Hybrid,
}

/// `KnowledgeSearchRequest`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct SearchRequest {
    pub query: String,
    #[serde(default = "hybrid")]
    pub mode: Mode,
    #[serde(default)]
    pub board_id: Option<Uuid>,
    #[serde(default)]
    pub category: Option<String>,
    #[serde(default = "default_limit")]
    pub limit: i64,
}

fn hybrid() -> Mode {
    Mode::Hybrid
}

fn default_limit() -> i64 {
    20
}

/// `KnowledgeSearchResponse` (`items` and `scores` in parallel), and what was searched.
#[derive(Debug, Serialize, ToSchema)]
pub struct SearchResponse {
    pub items: Vec<KnowledgeEntry>,
    pub scores: Vec<f64>,
    /// The mode that ran: `keyword` when the query could not be embedded.
    pub mode: Mode,
    /// True when semantic or hybrid was asked for and only keyword ran.
    pub degraded: bool,
    /// Why it degraded.
    pub reason: Option<String>,
}

/// The query's embedding and its model, or why there is none.
pub type QueryVector = Result<(Vec<f32>, String), String>;

pub async fn search(
    tx: &Transaction<'_>,
    principal: &Principal,
    request: SearchRequest,
    language: &str,
    vector: QueryVector,
) -> DomainResult<SearchResponse> {
    let boards = readable(tx, principal).await?;
    let limit = request.limit.clamp(1, 100);
    let candidates = (limit * 5).clamp(50, 500);
    let (words, cjk) = text::split_query(&request.query);
    let (mode, reason, vector) = match (request.mode, vector) {
        (Mode::Keyword, _) => (Mode::Keyword, None, None),
        (asked, Ok(v)) => (asked, None, Some(v)),
        (_, Err(reason)) => (Mode::Keyword, Some(reason), None),
    };
    // Parameters: $1 org, $2 readable boards, $3 board filter, $4 category, $5 candidates,
    // $6 words, $7 CJK tsquery, $8 language, $9 vector, $10 model.
    let filters =
        "organization_id = $1 AND ($2::uuid[] IS NULL OR board_id IS NULL OR board_id = ANY($2)) \
         AND ($3::uuid IS NULL OR board_id = $3) AND ($4::text IS NULL OR category = $4)";
    let tsquery = match (words.is_empty(), cjk.is_some()) {
        (false, true) => {
            "(websearch_to_tsquery(knowledge_search_config($8), $6) && to_tsquery('simple', $7))"
        }
        (true, true) => "to_tsquery('simple', $7)",
        _ => "websearch_to_tsquery(knowledge_search_config($8), $6)",
    };
    // An entry matches by its own text or by a chunk of one of its documents (ranked a
    // little lower): its best match counts.
    let keyword = format!(
        "kw AS (SELECT id, max(s) AS s FROM ( \
           SELECT id, ts_rank_cd(search_vector, {tsquery}, 32)::float8 AS s FROM knowledge_entries \
           WHERE {filters} AND search_vector @@ {tsquery} \
           UNION ALL \
           SELECT c.knowledge_entry_id, 0.9 * ts_rank_cd(c.search_vector, {tsquery}, 32)::float8 \
           FROM knowledge_chunks c WHERE c.search_vector @@ {tsquery} AND c.knowledge_entry_id IN \
             (SELECT id FROM knowledge_entries WHERE {filters})) m \
         GROUP BY id ORDER BY s DESC, id LIMIT $5)"
    );
    let (vector_text, model) = vector
        .as_ref()
        .map(|(v, m)| (literal(v), m.clone()))
        .unwrap_or_default();
    let dims = vector.as_ref().map_or(0, |(v, _)| v.len());
    // MATERIALIZED with a re-sort: an iterative scan in relaxed order may return
    // neighbours slightly out of order.
    let semantic = format!(
        "sem AS MATERIALIZED (SELECT id, (1 - (embedding::vector({dims}) <=> $9::text::vector({dims})))::float8 AS s \
         FROM knowledge_entries WHERE {filters} AND embedding_dims = {dims} AND embedding_model = $10 \
         ORDER BY embedding::vector({dims}) <=> $9::text::vector({dims}) LIMIT $5)"
    );
    let scored = match mode {
        Mode::Keyword => format!("WITH {keyword} SELECT id, s FROM kw"),
        Mode::Semantic => format!("WITH {semantic} SELECT id, s FROM sem"),
        Mode::Hybrid => format!(
            "WITH {keyword}, {semantic}, ranked AS ( \
               SELECT id, row_number() OVER (ORDER BY s DESC, id) AS r FROM kw \
               UNION ALL SELECT id, row_number() OVER (ORDER BY s DESC, id) AS r FROM sem) \
             SELECT id, sum(1.0 / ({RRF_K} + r))::float8 AS s FROM ranked GROUP BY id"
        ),
    };
    let boost = if mode == Mode::Hybrid { PIN_BOOST } else { 1.0 };
    let sql = format!(
        "SELECT {columns}, (f.s * CASE WHEN e.is_pinned THEN {boost}::float8 ELSE 1 END) AS score \
         FROM ({scored}) f JOIN knowledge_entries e USING (id) \
         ORDER BY score DESC, e.is_pinned DESC, e.id LIMIT $11",
        columns = KnowledgeEntry::COLUMNS
            .split(", ")
            .map(|c| format!("e.{c}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    if vector.is_some() {
        tx.batch_execute(
            "SET LOCAL hnsw.iterative_scan = relaxed_order; SET LOCAL hnsw.ef_search = 200",
        )
        .await?;
    }
    let cjk_text = cjk.unwrap_or_default();
    let params: [&(dyn ToSql + Sync); 11] = [
        &principal.organization.id,
        &boards,
        &request.board_id,
        &request.category,
        &candidates,
        &words,
        &cjk_text,
        &language,
        &vector_text,
        &model,
        &limit,
    ];
    // A mode leaves some parameters unused: PostgreSQL cannot infer their types, so the
    // statement is prepared with each value's own type (see `db::client`).
    let rows = tx.query(&sql, &params).await?;
    let scores = rows
        .iter()
        .map(|r| get::<f64>(r, "score"))
        .collect::<Result<Vec<_>, _>>()?;
    let items = with_documents(tx, KnowledgeEntry::from_rows(&rows)?).await?;
    Ok(SearchResponse {
        items,
        scores,
        mode,
        degraded: reason.is_some(),
        reason,
    })
}

/// What a search request reads as its text to embed.
pub fn query_text(request: &SearchRequest) -> Option<&str> {
    (request.mode != Mode::Keyword).then_some(request.query.as_str())
}

//! The knowledge base (domain.md §E): entries of the organization's memory, searchable by
//! their words (`search_vector`, kept by the database) and later by meaning (`embedding`).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use tokio_postgres::types::Json;
use tokio_postgres::Row;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::db::record::{column, Record, RowError};
use crate::db::GenericClient;
use crate::domain::knowledge::text;
use crate::domain::model::AgentPrincipal;
use crate::domain::support::access::{self, PostTargets};
use crate::domain::support::validation::Invalid;
use crate::domain::DomainResult;

/// The reference's `Field(max_length=…)` limits.
const TITLE_MAX: usize = 512;
const CATEGORY_MAX: usize = 128;

/// Title and content are not blank; title and category within the reference's lengths.
pub fn check_texts(
    invalid: &mut Invalid,
    title: Option<&str>,
    content: Option<&str>,
    category: Option<&str>,
) {
    for (field, text) in [("title", title), ("content", content)] {
        if let Some(text) = text.filter(|t| t.trim().is_empty()) {
            invalid.blank(field, text);
        }
    }
    if let Some(title) = title {
        invalid.max_chars("title", title, TITLE_MAX);
    }
    if let Some(category) = category {
        invalid.max_chars("category", category, CATEGORY_MAX);
    }
}

/// `source_type` of what agents save.
const AGENT_GENERATED: &str = "agent_generated";

crate::db::record! {
    /// `KnowledgeDocumentRead`: a file attached to an entry.
    #[derive(Debug, Clone, Serialize, ToSchema)]
    pub struct KnowledgeDocument in "d" {
        pub id: Uuid,
        pub knowledge_entry_id: Uuid,
        pub file_name: String,
        pub file_type: Option<String>,
        pub file_size_bytes: Option<i64>,
        pub storage_url: String,
        pub created_at: DateTime<Utc>,
    }
}

/// `KnowledgeEntryRead`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct KnowledgeEntry {
    pub id: Uuid,
    pub organization_id: Uuid,
    pub board_id: Option<Uuid>,
    pub board_group_id: Option<Uuid>,
    pub agent_id: Option<Uuid>,
    pub title: String,
    pub content: String,
    pub category: Option<String>,
    #[schema(value_type = Vec<Object>)]
    pub tags: Vec<Value>,
    pub source_type: Option<String>,
    #[schema(value_type = Option<Object>)]
    pub source_ref: Option<Map<String, Value>>,
    pub is_pinned: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub documents: Vec<KnowledgeDocument>,
}

/// Written by hand rather than with `record!`: `tags` and `source_ref` are stored as JSON
/// and read through `Json`, and `documents` is not a column (the entry reads without them).
impl Record for KnowledgeEntry {
    const COLUMNS: &'static str = "id, organization_id, board_id, board_group_id, agent_id, \
         title, content, category, tags, source_type, source_ref, is_pinned, created_at, updated_at";
    const WIDTH: usize = 14;

    fn from_row_at(row: &Row, at: usize) -> Result<KnowledgeEntry, RowError> {
        let mut i = at;
        let record = "KnowledgeEntry";
        Ok(KnowledgeEntry {
            id: column(row, &mut i, record, "id")?,
            organization_id: column(row, &mut i, record, "organization_id")?,
            board_id: column(row, &mut i, record, "board_id")?,
            board_group_id: column(row, &mut i, record, "board_group_id")?,
            agent_id: column(row, &mut i, record, "agent_id")?,
            title: column(row, &mut i, record, "title")?,
            content: column(row, &mut i, record, "content")?,
            category: column(row, &mut i, record, "category")?,
            tags: column::<Json<Vec<Value>>>(row, &mut i, record, "tags")?.0,
            source_type: column(row, &mut i, record, "source_type")?,
            source_ref: column::<Option<Json<Map<String, Value>>>>(
                row,
                &mut i,
                record,
                "source_ref",
            )?
            .map(|r| r.0),
            is_pinned: column(row, &mut i, record, "is_pinned")?,
            created_at: column(row, &mut i, record, "created_at")?,
            updated_at: column(row, &mut i, record, "updated_at")?,
            documents: Vec::new(),
        })
    }
}

/// `AgentKnowledgeCreate`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct AgentKnowledgeCreate {
    pub title: String,
    pub content: String,
    #[serde(default)]
    pub category: Option<String>,
    #[serde(default)]
    #[schema(value_type = Vec<Object>)]
    pub tags: Vec<Value>,
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub source_ref: Option<Map<String, Value>>,
    #[serde(default)]
    pub board_id: Option<Uuid>,
}

/// Saves what an agent learned as an entry of its organization, signed by the agent. The
/// board is only the one named (unnamed, the entry is the organization's). Its embedding
/// is left to the knowledge base's provider.
pub async fn create_by_agent(
    client: &impl GenericClient,
    agent: &AgentPrincipal,
    input: AgentKnowledgeCreate,
    language: &str,
) -> DomainResult<KnowledgeEntry> {
    let mut invalid = Invalid::default();
    check_texts(
        &mut invalid,
        Some(&input.title),
        Some(&input.content),
        input.category.as_deref(),
    );
    invalid.finish()?;
    let targets = access::post_targets(
        client,
        agent,
        PostTargets {
            board_id: input.board_id,
            ..PostTargets::default()
        },
    )
    .await?;
    let row = client
        .query_one(
            &format!(
                "INSERT INTO knowledge_entries (id, organization_id, board_id, agent_id, title, content, \
                   category, tags, source_type, source_ref, search_config, search_extra) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, knowledge_search_config($11), $12) RETURNING {columns}",
                columns = KnowledgeEntry::COLUMNS
            ),
            &[
                &Uuid::new_v4(),
                &agent.organization_id,
                &targets.board_id,
                &agent.agent.id,
                &input.title,
                &input.content,
                &input.category,
                &Json(&input.tags),
                &AGENT_GENERATED,
                &input.source_ref.as_ref().map(Json),
                &language,
                &text::index_tokens(&[&input.title, &input.content, input.category.as_deref().unwrap_or("")]),
            ],
        )
        .await?;
    Ok(KnowledgeEntry::from_row(&row)?)
}

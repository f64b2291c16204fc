//! The knowledge base through the admin API (domain.md §E2, working): list, create, read
//! (with its documents), change, delete, pin, and documents by URL (the reference's
//! query-parameter form).
//!
//! Entries are the organization's; an entry of a board is seen by members who may read the
//! board and changed by those who may write it. Board, group and agent ids are checked
//! against the organization (422 naming the field). Changing the title or content re-indexes
//! the entry and queues its embedding again.

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use tokio_postgres::types::Json;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::db::record::{get, Record};
use crate::db::GenericClient;
use crate::domain::knowledge::entries::{check_texts, KnowledgeDocument, KnowledgeEntry};
use crate::domain::knowledge::text;
use crate::domain::model::Principal;
use crate::domain::support::access::{self, Access, BoardScope};
use crate::domain::support::validation::Invalid;
use crate::domain::{DomainError, DomainResult};

const NOT_FOUND: &str = "Knowledge entry not found";
const FILE_NAME_MAX: usize = 512;
const STORAGE_URL_MAX: usize = 2048;

/// `KnowledgeEntryCreate`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct EntryCreate {
    pub title: String,
    pub content: String,
    #[serde(default)]
    pub category: Option<String>,
    #[serde(default)]
    #[schema(value_type = Vec<Object>)]
    pub tags: Vec<Value>,
    #[serde(default)]
    pub source_type: Option<String>,
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub source_ref: Option<Map<String, Value>>,
    #[serde(default)]
    pub board_id: Option<Uuid>,
    #[serde(default)]
    pub board_group_id: Option<Uuid>,
    #[serde(default)]
    pub agent_id: Option<Uuid>,
}

/// `KnowledgeEntryUpdate`: absent fields stay; `null` clears the optional ones (and leaves
/// title, content, tags and is_pinned as they are).
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct EntryUpdate {
    #[serde(default)]
    pub title: Option<String>,
    #[serde(default)]
    pub content: Option<String>,
    #[serde(default, deserialize_with = "crate::domain::support::patch::field")]
    #[schema(value_type = Option<String>)]
    pub category: Option<Option<String>>,
    #[serde(default)]
    #[schema(value_type = Option<Vec<Object>>)]
    pub tags: Option<Vec<Value>>,
    #[serde(default, deserialize_with = "crate::domain::support::patch::field")]
    #[schema(value_type = Option<String>)]
    pub source_type: Option<Option<String>>,
    #[serde(default, deserialize_with = "crate::domain::support::patch::field")]
    #[schema(value_type = Option<Object>)]
    pub source_ref: Option<Option<Map<String, Value>>>,
    #[serde(default, deserialize_with = "crate::domain::support::patch::field")]
    #[schema(value_type = Option<Uuid>)]
    pub board_id: Option<Option<Uuid>>,
    #[serde(default)]
    pub is_pinned: Option<bool>,
}

/// The list's filters and page (the reference's: 20 by default, at most 100).
#[derive(Debug, Deserialize, IntoParams)]
pub struct EntryQuery {
    pub category: Option<String>,
    pub board_id: Option<Uuid>,
    pub agent_id: Option<Uuid>,
    pub is_pinned: Option<bool>,
    #[serde(default = "default_limit")]
    #[param(minimum = 1, maximum = 100)]
    pub limit: i64,
    #[serde(default)]
    #[param(minimum = 0)]
    pub offset: i64,
}

fn default_limit() -> i64 {
    20
}

/// `{items, total}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct EntryPage {
    pub items: Vec<KnowledgeEntry>,
    pub total: i64,
}

/// The reference's query-parameter form of `POST /knowledge/{id}/documents`: a document
/// stored elsewhere, by URL.
#[derive(Debug, Deserialize, IntoParams)]
pub struct DocumentLink {
    pub file_name: String,
    pub file_type: Option<String>,
    pub file_size_bytes: Option<i64>,
    pub storage_url: String,
}

/// The boards whose entries the member reads (`None`: every board).
pub async fn readable(
    client: &impl GenericClient,
    principal: &Principal,
) -> DomainResult<Option<Vec<Uuid>>> {
    let scope = access::board_scope(client, &principal.member, Access::Read).await?;
    Ok(scope.ids().map(<[Uuid]>::to_vec))
}

/// Each entry with its documents, in one query.
pub async fn with_documents(
    client: &impl GenericClient,
    mut entries: Vec<KnowledgeEntry>,
) -> DomainResult<Vec<KnowledgeEntry>> {
    if entries.is_empty() {
        return Ok(entries);
    }
    let ids: Vec<Uuid> = entries.iter().map(|e| e.id).collect();
    let rows = client
        .query(
            &format!(
                "SELECT {columns} FROM knowledge_documents d WHERE d.knowledge_entry_id = ANY($1) \
                 ORDER BY d.created_at, d.id",
                columns = KnowledgeDocument::COLUMNS
            ),
            &[&ids],
        )
        .await?;
    for document in KnowledgeDocument::from_rows(&rows)? {
        if let Some(entry) = entries
            .iter_mut()
            .find(|e| e.id == document.knowledge_entry_id)
        {
            entry.documents.push(document);
        }
    }
    Ok(entries)
}

pub async fn list(
    client: &impl GenericClient,
    principal: &Principal,
    query: EntryQuery,
) -> DomainResult<EntryPage> {
    let boards = readable(client, principal).await?;
    let filter = "FROM knowledge_entries WHERE organization_id = $1 \
           AND ($2::uuid[] IS NULL OR board_id IS NULL OR board_id = ANY($2)) \
           AND ($3::text IS NULL OR category = $3) AND ($4::uuid IS NULL OR board_id = $4) \
           AND ($5::uuid IS NULL OR agent_id = $5) AND ($6::bool IS NULL OR is_pinned = $6)";
    let params: [&(dyn tokio_postgres::types::ToSql + Sync); 6] = [
        &principal.organization.id,
        &boards,
        &query.category,
        &query.board_id,
        &query.agent_id,
        &query.is_pinned,
    ];
    let total: i64 = get(
        &client
            .query_one(&format!("SELECT count(*) AS total {filter}"), &params)
            .await?,
        "total",
    )?;
    let mut all = params.to_vec();
    let (limit, offset) = (query.limit.clamp(1, 100), query.offset.max(0));
    all.extend([
        &limit as &(dyn tokio_postgres::types::ToSql + Sync),
        &offset,
    ]);
    let rows = client
        .query(
            &format!(
                "SELECT {columns} {filter} ORDER BY is_pinned DESC, created_at DESC, id LIMIT $7 OFFSET $8",
                columns = KnowledgeEntry::COLUMNS
            ),
            &all,
        )
        .await?;
    let items = with_documents(client, KnowledgeEntry::from_rows(&rows)?).await?;
    Ok(EntryPage { items, total })
}

/// Checks that the member may change the entry (404 / 403 otherwise).
pub async fn writable(
    client: &impl GenericClient,
    principal: &Principal,
    entry_id: Uuid,
) -> DomainResult<()> {
    entry(client, principal, entry_id, Access::Write)
        .await
        .map(|_| ())
}

/// The entry, if the member may see it (`access` Write: change it).
pub(super) async fn entry(
    client: &impl GenericClient,
    principal: &Principal,
    entry_id: Uuid,
    access: Access,
) -> DomainResult<KnowledgeEntry> {
    let row = client
        .query_opt(
            &format!(
                "SELECT {columns} FROM knowledge_entries WHERE id = $1 AND organization_id = $2",
                columns = KnowledgeEntry::COLUMNS
            ),
            &[&entry_id, &principal.organization.id],
        )
        .await?
        .ok_or_else(|| DomainError::NotFound(json!(NOT_FOUND)))?;
    let entry = KnowledgeEntry::from_row(&row)?;
    if let Some(board) = entry.board_id {
        let scope = access::board_scope(client, &principal.member, access).await?;
        match (scope.allows(board), access) {
            (true, _) => {}
            (false, Access::Write) if readable_board(client, principal, board).await? => {
                return Err(DomainError::forbidden("Board access denied"))
            }
            (false, _) => return Err(DomainError::NotFound(json!(NOT_FOUND))),
        }
    }
    Ok(entry)
}

async fn readable_board(
    client: &impl GenericClient,
    principal: &Principal,
    board: Uuid,
) -> DomainResult<bool> {
    let scope: BoardScope = access::board_scope(client, &principal.member, Access::Read).await?;
    Ok(scope.allows(board))
}

pub async fn get_one(
    client: &impl GenericClient,
    principal: &Principal,
    entry_id: Uuid,
) -> DomainResult<KnowledgeEntry> {
    let found = entry(client, principal, entry_id, Access::Read).await?;
    Ok(with_documents(client, vec![found]).await?.remove(0))
}

/// Board, group and agent named by a write: the organization's, and the board writable by
/// the member.
async fn check_refs(
    client: &impl GenericClient,
    principal: &Principal,
    invalid: &mut Invalid,
    refs: &[(&str, &str, Option<Uuid>)],
) -> DomainResult<()> {
    for &(field, table, id) in refs {
        let Some(id) = id else { continue };
        let found = client
            .query_opt(
                &format!("SELECT 1 AS found FROM {table} WHERE id = $1 AND organization_id = $2"),
                &[&id, &principal.organization.id],
            )
            .await?;
        if found.is_none() {
            invalid.value_error(field, "no such id in this organization", json!(id));
        } else if table == "boards" {
            let scope = access::board_scope(client, &principal.member, Access::Write).await?;
            if !scope.allows(id) {
                return Err(DomainError::forbidden("Board access denied"));
            }
        }
    }
    Ok(())
}

pub async fn create(
    client: &impl GenericClient,
    principal: &Principal,
    input: EntryCreate,
    language: &str,
) -> DomainResult<KnowledgeEntry> {
    let mut invalid = Invalid::default();
    check_texts(
        &mut invalid,
        Some(&input.title),
        Some(&input.content),
        input.category.as_deref(),
    );
    let refs = [
        ("board_id", "boards", input.board_id),
        ("board_group_id", "board_groups", input.board_group_id),
        ("agent_id", "agents", input.agent_id),
    ];
    check_refs(client, principal, &mut invalid, &refs).await?;
    invalid.finish()?;
    let extra = text::index_tokens(&[
        &input.title,
        &input.content,
        input.category.as_deref().unwrap_or(""),
    ]);
    let row = client
        .query_one(
            &format!(
                "INSERT INTO knowledge_entries (id, organization_id, board_id, board_group_id, agent_id, title, \
                   content, category, tags, source_type, source_ref, search_config, search_extra) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, knowledge_search_config($12), $13) RETURNING {columns}",
                columns = KnowledgeEntry::COLUMNS
            ),
            &[
                &Uuid::new_v4(),
                &principal.organization.id,
                &input.board_id,
                &input.board_group_id,
                &input.agent_id,
                &input.title,
                &input.content,
                &input.category,
                &Json(&input.tags),
                &input.source_type,
                &input.source_ref.as_ref().map(Json),
                &language,
                &extra,
            ],
        )
        .await?;
    Ok(KnowledgeEntry::from_row(&row)?)
}

pub async fn update(
    client: &impl GenericClient,
    principal: &Principal,
    entry_id: Uuid,
    patch: EntryUpdate,
    language: &str,
) -> DomainResult<KnowledgeEntry> {
    let current = entry(client, principal, entry_id, Access::Write).await?;
    let mut invalid = Invalid::default();
    let category = patch.category.clone().unwrap_or(current.category.clone());
    check_texts(
        &mut invalid,
        patch.title.as_deref(),
        patch.content.as_deref(),
        category.as_deref(),
    );
    let board_id = patch.board_id.unwrap_or(current.board_id);
    if board_id != current.board_id {
        check_refs(
            client,
            principal,
            &mut invalid,
            &[("board_id", "boards", board_id)],
        )
        .await?;
    }
    invalid.finish()?;
    let title = patch.title.unwrap_or(current.title.clone());
    let content = patch.content.unwrap_or(current.content.clone());
    let text_changed = title != current.title || content != current.content;
    let extra = text::index_tokens(&[&title, &content, category.as_deref().unwrap_or("")]);
    let source_ref = patch.source_ref.unwrap_or(current.source_ref);
    let row = client
        .query_one(
            &format!(
                "UPDATE knowledge_entries SET title = $2, content = $3, category = $4, tags = $5, source_type = $6, \
                   source_ref = $7, board_id = $8, is_pinned = $9, search_config = knowledge_search_config($10), \
                   search_extra = $11, updated_at = now(), \
                   embed_version = embed_version + CASE WHEN $12 THEN 1 ELSE 0 END, \
                   embed_due_at = CASE WHEN $12 THEN now() ELSE embed_due_at END, \
                   embed_attempts = CASE WHEN $12 THEN 0 ELSE embed_attempts END \
                 WHERE id = $1 RETURNING {columns}",
                columns = KnowledgeEntry::COLUMNS
            ),
            &[
                &entry_id,
                &title,
                &content,
                &category,
                &Json(patch.tags.as_ref().unwrap_or(&current.tags)),
                &patch.source_type.unwrap_or(current.source_type),
                &source_ref.as_ref().map(Json),
                &board_id,
                &patch.is_pinned.unwrap_or(current.is_pinned),
                &language,
                &extra,
                &text_changed,
            ],
        )
        .await?;
    Ok(
        with_documents(client, vec![KnowledgeEntry::from_row(&row)?])
            .await?
            .remove(0),
    )
}

/// Deletes the entry with its documents; the stored objects to delete once committed.
pub async fn delete(
    client: &impl GenericClient,
    principal: &Principal,
    entry_id: Uuid,
) -> DomainResult<Vec<String>> {
    entry(client, principal, entry_id, Access::Write).await?;
    let rows = client
        .query(
            "SELECT storage_key FROM knowledge_documents WHERE knowledge_entry_id = $1 AND storage_key IS NOT NULL",
            &[&entry_id],
        )
        .await?;
    let keys = rows
        .iter()
        .map(|r| get(r, "storage_key"))
        .collect::<Result<_, _>>()?;
    client
        .execute("DELETE FROM knowledge_entries WHERE id = $1", &[&entry_id])
        .await?;
    Ok(keys)
}

/// Toggles `is_pinned`, as the reference does.
pub async fn pin(
    client: &impl GenericClient,
    principal: &Principal,
    entry_id: Uuid,
) -> DomainResult<KnowledgeEntry> {
    entry(client, principal, entry_id, Access::Write).await?;
    let row = client
        .query_one(
            &format!(
                "UPDATE knowledge_entries SET is_pinned = NOT is_pinned, updated_at = now() WHERE id = $1 \
                 RETURNING {columns}",
                columns = KnowledgeEntry::COLUMNS
            ),
            &[&entry_id],
        )
        .await?;
    Ok(
        with_documents(client, vec![KnowledgeEntry::from_row(&row)?])
            .await?
            .remove(0),
    )
}

/// Records a document stored elsewhere (the reference's form): an http(s) URL.
pub async fn link_document(
    client: &impl GenericClient,
    principal: &Principal,
    entry_id: Uuid,
    link: DocumentLink,
) -> DomainResult<KnowledgeDocument> {
    entry(client, principal, entry_id, Access::Write).await?;
    let mut invalid = Invalid::default();
    invalid.non_empty("file_name", &link.file_name);
    invalid.max_chars("file_name", &link.file_name, FILE_NAME_MAX);
    invalid.max_chars("storage_url", &link.storage_url, STORAGE_URL_MAX);
    if !url::Url::parse(&link.storage_url).is_ok_and(|u| matches!(u.scheme(), "http" | "https")) {
        invalid.value_error(
            "storage_url",
            "must be an http(s) URL",
            json!(link.storage_url),
        );
    }
    if link.file_size_bytes.is_some_and(|n| n < 0) {
        invalid.value_error(
            "file_size_bytes",
            "must not be negative",
            json!(link.file_size_bytes),
        );
    }
    invalid.finish()?;
    let row = client
        .query_one(
            &format!(
                "INSERT INTO knowledge_documents AS d (id, knowledge_entry_id, file_name, file_type, file_size_bytes, storage_url) \
                 VALUES ($1, $2, $3, $4, $5, $6) RETURNING {columns}",
                columns = KnowledgeDocument::COLUMNS
            ),
            &[&Uuid::new_v4(), &entry_id, &link.file_name, &link.file_type, &link.file_size_bytes, &link.storage_url],
        )
        .await?;
    Ok(KnowledgeDocument::from_row(&row)?)
}

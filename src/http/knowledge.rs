//! `/api/v1/knowledge*` (domain.md §E2): the organization's knowledge base — entries,
//! their documents, and search (docs/knowledge.md). Members of the organization; entries of a
//! board follow the member's access to it.

use actix_multipart::Multipart;
use actix_web::http::header::{
    Charset, ContentDisposition, DispositionParam, DispositionType, ExtendedValue,
};
use actix_web::http::StatusCode;
use actix_web::web::{self, Bytes, Data};
use actix_web::{delete, get, patch, post, HttpRequest, HttpResponse};
use futures_util::StreamExt;
use serde_json::{json, Value};
use utoipa_actix_web::service_config::ServiceConfig;
use uuid::Uuid;

use crate::auth::admin::Admin;
use crate::db::in_transaction;
use crate::domain::knowledge::documents;
use crate::domain::knowledge::embeddings::{self, Purpose};
use crate::domain::knowledge::entries::{KnowledgeDocument, KnowledgeEntry};
use crate::domain::knowledge::manage::{
    self, DocumentLink, EntryCreate, EntryPage, EntryQuery, EntryUpdate,
};
use crate::domain::knowledge::search::{self, QueryVector, SearchRequest, SearchResponse};
use crate::domain::support::access::Access;
use crate::domain::DomainError;
use crate::error::{ApiError, ApiResult};
use crate::http::json::{self, Json};
use crate::http::OkResponse;
use crate::state::AppState;

/// The organization's entries, pinned first, newest first.
#[utoipa::path(tag = "knowledge", params(EntryQuery),
    responses((status = 200, body = EntryPage), (status = 401), (status = 403), (status = 422)),
    security(("bearer" = [])))]
#[get("/api/v1/knowledge")]
pub async fn list_entries(
    state: Data<AppState>,
    Admin(principal): Admin,
    query: web::Query<EntryQuery>,
) -> ApiResult<web::Json<EntryPage>> {
    let conn = state.db.get().await.map_err(DomainError::from)?;
    Ok(web::Json(
        manage::list(&*conn, &principal, query.into_inner()).await?,
    ))
}

/// Stores an entry at once; its embedding follows in the background (it is found by
/// keyword meanwhile).
#[utoipa::path(tag = "knowledge", request_body = EntryCreate,
    responses((status = 201, body = KnowledgeEntry), (status = 401), (status = 403), (status = 422)),
    security(("bearer" = [])))]
#[post("/api/v1/knowledge")]
pub async fn create_entry(
    state: Data<AppState>,
    Admin(principal): Admin,
    Json(input): Json<EntryCreate>,
) -> ApiResult<HttpResponse> {
    let language = state.settings.knowledge.search_language.as_str();
    let entry = in_transaction!(state, |tx| manage::create(&tx, &principal, input, language));
    Ok(HttpResponse::Created().json(entry))
}

/// Keyword, semantic or hybrid (default) search; `items` and `scores` in parallel, with the
/// mode that ran and whether it was degraded to keyword.
#[utoipa::path(tag = "knowledge", request_body = SearchRequest,
    responses((status = 200, body = SearchResponse), (status = 401), (status = 403), (status = 422)),
    security(("bearer" = [])))]
#[post("/api/v1/knowledge/search")]
pub async fn search_entries(
    state: Data<AppState>,
    Admin(principal): Admin,
    Json(request): Json<SearchRequest>,
) -> ApiResult<web::Json<SearchResponse>> {
    // The query is embedded before a connection is taken: a slow provider holds none.
    let vector: QueryVector = match (
        search::query_text(&request),
        &state.settings.knowledge.embedding,
    ) {
        (None, _) => Err("keyword search asked for".into()),
        (Some(_), None) => {
            Err("no embedding provider is configured (EMBEDDING_PROVIDER=none)".into())
        }
        (Some(text), Some(settings)) => {
            match embeddings::embed(settings, &[text.to_string()], Purpose::Query).await {
                Ok(mut vectors) if !vectors.is_empty() => {
                    Ok((vectors.remove(0), settings.model.clone()))
                }
                Ok(_) => Err("the embedding provider answered no vector".into()),
                Err(e) => {
                    tracing::warn!(error = %e, "query not embedded; searching by keyword");
                    Err(format!("the embedding provider failed: {e}"))
                }
            }
        }
    };
    let language = state.settings.knowledge.search_language.as_str();
    let found = in_transaction!(state, |tx| search::search(
        &tx, &principal, request, language, vector
    ));
    Ok(web::Json(found))
}

#[utoipa::path(tag = "knowledge", params(("entry_id" = Uuid, Path)),
    responses((status = 200, body = KnowledgeEntry), (status = 401), (status = 403), (status = 404)),
    security(("bearer" = [])))]
#[get("/api/v1/knowledge/{entry_id}")]
pub async fn get_entry(
    state: Data<AppState>,
    Admin(principal): Admin,
    path: web::Path<Uuid>,
) -> ApiResult<web::Json<KnowledgeEntry>> {
    let conn = state.db.get().await.map_err(DomainError::from)?;
    Ok(web::Json(
        manage::get_one(&*conn, &principal, path.into_inner()).await?,
    ))
}

/// Changes an entry; a new title or content is embedded again.
#[utoipa::path(tag = "knowledge", params(("entry_id" = Uuid, Path)), request_body = EntryUpdate,
    responses((status = 200, body = KnowledgeEntry), (status = 401), (status = 403), (status = 404), (status = 422)),
    security(("bearer" = [])))]
#[patch("/api/v1/knowledge/{entry_id}")]
pub async fn update_entry(
    state: Data<AppState>,
    Admin(principal): Admin,
    path: web::Path<Uuid>,
    Json(patch): Json<EntryUpdate>,
) -> ApiResult<web::Json<KnowledgeEntry>> {
    let id = path.into_inner();
    let language = state.settings.knowledge.search_language.as_str();
    Ok(web::Json(in_transaction!(state, |tx| manage::update(
        &tx, &principal, id, patch, language
    ))))
}

/// Deletes an entry with its documents and their stored files.
#[utoipa::path(tag = "knowledge", params(("entry_id" = Uuid, Path)),
    responses((status = 200, body = OkResponse), (status = 401), (status = 403), (status = 404)),
    security(("bearer" = [])))]
#[delete("/api/v1/knowledge/{entry_id}")]
pub async fn delete_entry(
    state: Data<AppState>,
    Admin(principal): Admin,
    path: web::Path<Uuid>,
) -> ApiResult<web::Json<OkResponse>> {
    let id = path.into_inner();
    let keys = in_transaction!(state, |tx| manage::delete(&tx, &principal, id));
    forget(&state, keys).await;
    Ok(OkResponse::json())
}

/// Toggles `is_pinned`.
#[utoipa::path(tag = "knowledge", params(("entry_id" = Uuid, Path)),
    responses((status = 200, body = KnowledgeEntry), (status = 401), (status = 403), (status = 404)),
    security(("bearer" = [])))]
#[post("/api/v1/knowledge/{entry_id}/pin")]
pub async fn pin_entry(
    state: Data<AppState>,
    Admin(principal): Admin,
    path: web::Path<Uuid>,
) -> ApiResult<web::Json<KnowledgeEntry>> {
    let id = path.into_inner();
    Ok(web::Json(in_transaction!(state, |tx| manage::pin(
        &tx, &principal, id
    ))))
}

/// Attaches a document stored elsewhere, by its URL (the reference's query parameters).
#[utoipa::path(tag = "knowledge", params(("entry_id" = Uuid, Path), DocumentLink),
    responses((status = 201, body = KnowledgeDocument), (status = 401), (status = 403), (status = 404), (status = 422)),
    security(("bearer" = [])))]
#[post("/api/v1/knowledge/{entry_id}/documents")]
pub async fn add_document(
    state: Data<AppState>,
    Admin(principal): Admin,
    path: web::Path<Uuid>,
    link: web::Query<DocumentLink>,
) -> ApiResult<HttpResponse> {
    let (id, link) = (path.into_inner(), link.into_inner());
    let document = in_transaction!(state, |tx| manage::link_document(&tx, &principal, id, link));
    Ok(HttpResponse::Created().json(document))
}

/// Deletes a document and its stored file.
#[utoipa::path(tag = "knowledge", params(("doc_id" = Uuid, Path)),
    responses((status = 200, body = OkResponse), (status = 401), (status = 403), (status = 404)),
    security(("bearer" = [])))]
#[delete("/api/v1/knowledge/documents/{doc_id}")]
pub async fn delete_document(
    state: Data<AppState>,
    Admin(principal): Admin,
    path: web::Path<Uuid>,
) -> ApiResult<web::Json<OkResponse>> {
    let id = path.into_inner();
    let key = in_transaction!(state, |tx| documents::delete(&tx, &principal, id));
    forget(&state, key.into_iter().collect()).await;
    Ok(OkResponse::json())
}

/// Deletes stored files whose rows are gone (committed); a failure leaves an orphan file,
/// logged, never a lost row.
async fn forget(state: &AppState, keys: Vec<String>) {
    for key in keys {
        if let Err(e) = state.storage.delete(&key).await {
            tracing::warn!(%key, error = %e, "stored document not deleted");
        }
    }
}

/// Uploads a document (multipart, field `file`): stored (KNOWLEDGE_STORAGE_DIR or the OSS
/// bucket), its text read (plain text, Markdown, HTML, PDF) and searched with its entry.
/// Larger than KNOWLEDGE_MAX_DOCUMENT_SIZE_MB: 413 as soon as that many bytes came in, and
/// nothing is stored.
#[utoipa::path(tag = "knowledge", params(("entry_id" = Uuid, Path)),
    request_body(content_type = "multipart/form-data", content = Object),
    responses((status = 201, body = KnowledgeDocument), (status = 401), (status = 403), (status = 404), (status = 413), (status = 422)),
    security(("bearer" = [])))]
#[post("/api/v1/knowledge/{entry_id}/documents/upload")]
pub async fn upload_document(
    state: Data<AppState>,
    Admin(principal): Admin,
    path: web::Path<Uuid>,
    request: HttpRequest,
    payload: web::Payload,
) -> ApiResult<HttpResponse> {
    let entry_id = path.into_inner();
    {
        let conn = state.db.get().await.map_err(DomainError::from)?;
        manage::writable(&*conn, &principal, entry_id).await?;
    }
    let limit = state.settings.knowledge.max_document_bytes;
    let (file_name, file_type, bytes) = read_file(&request, payload, limit).await?;
    documents::check_name(&file_name)?;
    let kind = documents::kind_of(&file_name, file_type.as_deref());
    let size = bytes.len() as i64;
    // Reading a PDF is CPU work: off the worker's thread.
    let (text, bytes) = web::block(move || (documents::extract(kind, &bytes), bytes))
        .await
        .map_err(|e| ApiError::status(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    let id = Uuid::new_v4();
    let key = documents::storage_key(principal.organization.id, entry_id, id);
    state.storage.put(&key, bytes).await.map_err(|e| {
        tracing::error!(error = %e, "document not stored");
        ApiError::status(
            StatusCode::SERVICE_UNAVAILABLE,
            "the document store is unavailable",
        )
    })?;
    let upload = documents::Upload {
        id,
        file_name,
        file_type,
        size,
        storage_key: key.clone(),
        text,
    };
    let language = state.settings.knowledge.search_language.as_str();
    let recorded: ApiResult<KnowledgeDocument> = async {
        Ok(in_transaction!(state, |tx| documents::record_upload(
            &tx, &principal, entry_id, upload, language
        )))
    }
    .await;
    match recorded {
        Ok(document) => Ok(HttpResponse::Created().json(document)),
        Err(e) => {
            forget(&state, vec![key]).await;
            Err(e)
        }
    }
}

/// The `file` field of a multipart body: its name, type and bytes, read up to `limit`.
async fn read_file(
    request: &HttpRequest,
    payload: web::Payload,
    limit: usize,
) -> ApiResult<(String, Option<String>, Bytes)> {
    let too_large = || {
        ApiError::status(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("the document is larger than {} MB", limit / (1024 * 1024)),
        )
    };
    // The multipart framing adds a little to the file itself.
    if json::declared_length(request).is_some_and(|n| n > limit + 64 * 1024) {
        return Err(too_large());
    }
    let bad = |msg: String| {
        ApiError::validation(
            "value_error",
            vec![json!("body"), json!("file")],
            msg,
            Value::Null,
        )
    };
    let mut multipart = Multipart::new(request.headers(), payload);
    let mut found = None;
    while let Some(field) = multipart.next().await {
        let mut field = field.map_err(|e| bad(format!("not a multipart body: {e}")))?;
        if field.name() != Some("file") || found.is_some() {
            while let Some(chunk) = field.next().await {
                chunk.map_err(|e| bad(e.to_string()))?;
            }
            continue;
        }
        let name = field
            .content_disposition()
            .and_then(|d| d.get_filename())
            .unwrap_or("")
            .to_string();
        let file_type = field.content_type().map(|m| m.essence_str().to_string());
        let bytes = json::gather(&mut field, limit)
            .await
            .map_err(|e| bad(e.to_string()))?
            .ok_or_else(too_large)?;
        found = Some((name, file_type, bytes.freeze()));
    }
    found.ok_or_else(|| bad("a multipart field named file is required".into()))
}

/// The document's file (an authorised download); a document recorded by URL redirects to it.
#[utoipa::path(tag = "knowledge", params(("doc_id" = Uuid, Path)),
    responses((status = 200), (status = 307), (status = 401), (status = 403), (status = 404)),
    security(("bearer" = [])))]
#[get("/api/v1/knowledge/documents/{doc_id}/download")]
pub async fn download_document(
    state: Data<AppState>,
    Admin(principal): Admin,
    path: web::Path<Uuid>,
) -> ApiResult<HttpResponse> {
    let (document, key) = {
        let conn = state.db.get().await.map_err(DomainError::from)?;
        documents::readable(&*conn, &principal, path.into_inner(), Access::Read).await?
    };
    let Some(key) = key else {
        return Ok(HttpResponse::TemporaryRedirect()
            .insert_header(("Location", document.storage_url))
            .finish());
    };
    let bytes = state
        .storage
        .get(&key)
        .await
        .map_err(|e| {
            ApiError::status(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("the document store failed: {e}"),
            )
        })?
        .ok_or_else(|| ApiError::status(StatusCode::NOT_FOUND, "the document's file is missing"))?;
    let disposition = ContentDisposition {
        disposition: DispositionType::Attachment,
        parameters: vec![DispositionParam::FilenameExt(ExtendedValue {
            charset: Charset::Ext("UTF-8".into()),
            language_tag: None,
            value: document.file_name.into_bytes(),
        })],
    };
    Ok(HttpResponse::Ok()
        .content_type(
            document
                .file_type
                .unwrap_or_else(|| "application/octet-stream".into()),
        )
        .insert_header(disposition)
        .body(bytes))
}

pub fn routes(cfg: &mut ServiceConfig) {
    cfg.service(list_entries)
        .service(create_entry)
        .service(search_entries)
        .service(delete_document)
        .service(download_document)
        .service(upload_document)
        .service(get_entry)
        .service(update_entry)
        .service(delete_entry)
        .service(pin_entry)
        .service(add_document);
}

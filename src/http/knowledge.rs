//! `/api/v1/knowledge*` (domain.md §E2): the organization's knowledge base — entries,
//! their documents, and search (docs/knowledge.md). Members of the organization; entries of a
//! board follow the member's access to it.

use actix_web::web::{self, Data};
use actix_web::{delete, get, patch, post, HttpResponse};
use utoipa_actix_web::service_config::ServiceConfig;
use uuid::Uuid;

use crate::auth::admin::Admin;
use crate::db::in_transaction;
use crate::domain::knowledge::embeddings::{self, Purpose};
use crate::domain::knowledge::entries::{KnowledgeDocument, KnowledgeEntry};
use crate::domain::knowledge::manage::{
    self, DocumentLink, EntryCreate, EntryPage, EntryQuery, EntryUpdate,
};
use crate::domain::knowledge::search::{self, QueryVector, SearchRequest, SearchResponse};
use crate::domain::DomainError;
use crate::error::ApiResult;
use crate::http::json::Json;
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

/// Deletes an entry with its documents.
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
    in_transaction!(state, |tx| manage::delete(&tx, &principal, id));
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
    in_transaction!(state, |tx| manage::delete_document(&tx, &principal, id));
    Ok(OkResponse::json())
}

pub fn routes(cfg: &mut ServiceConfig) {
    cfg.service(list_entries)
        .service(create_entry)
        .service(search_entries)
        .service(delete_document)
        .service(get_entry)
        .service(update_entry)
        .service(delete_entry)
        .service(pin_entry)
        .service(add_document);
}

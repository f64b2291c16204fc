//! `/api/v1/souls-directory` (domain.md §A18): search and read souls of the directory at
//! SOULS_DIRECTORY_URL. An unreachable or failing directory answers 502.

use actix_web::get;
use actix_web::http::StatusCode;
use actix_web::web::{self, Data, Query};
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_actix_web::service_config::ServiceConfig;

use crate::domain::agents::souls_directory::{self as souls, SoulMarkdown, SoulSearch, Upstream};
use crate::domain::support::access::Caller;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

#[derive(Debug, Deserialize, IntoParams)]
pub struct SearchQuery {
    #[serde(default)]
    q: String,
    #[param(minimum = 1, maximum = 100)]
    limit: Option<i64>,
}

impl From<Upstream> for ApiError {
    fn from(e: Upstream) -> Self {
        ApiError::status(StatusCode::BAD_GATEWAY, e.0)
    }
}

/// Souls whose `handle/slug` contains `q` (case-insensitive), from the directory's sitemap.
#[utoipa::path(
    tag = "souls-directory",
    params(SearchQuery),
    responses((status = 200, body = SoulSearch), (status = 401), (status = 422), (status = 502)),
    security(("bearer" = []))
)]
#[get("/api/v1/souls-directory/search")]
pub async fn search(
    state: Data<AppState>,
    _caller: Caller,
    query: Query<SearchQuery>,
) -> ApiResult<web::Json<SoulSearch>> {
    let limit = query.limit.unwrap_or(20);
    if !(1..=100).contains(&limit) {
        let (kind, msg) = if limit < 1 {
            (
                "greater_than_equal",
                "Input should be greater than or equal to 1",
            )
        } else {
            (
                "less_than_equal",
                "Input should be less than or equal to 100",
            )
        };
        return Err(ApiError::validation(
            kind,
            vec!["query".into(), "limit".into()],
            msg,
            limit.to_string().into(),
        ));
    }
    let base = &state.settings.souls_directory_url;
    let refs = souls::sitemap(base).await?;
    Ok(web::Json(SoulSearch {
        items: souls::search(&refs, &query.q, limit as usize),
    }))
}

async fn markdown(
    state: &AppState,
    handle: &str,
    slug: &str,
) -> ApiResult<web::Json<SoulMarkdown>> {
    let slug = slug.trim().strip_suffix(".md").unwrap_or(slug.trim());
    souls::check_segment("handle", handle)?;
    souls::check_segment("slug", slug)?;
    let (handle, slug) = (handle.trim(), slug.trim());
    let base = &state.settings.souls_directory_url;
    let content = souls::fetch_text(&format!("{base}/api/souls/{handle}/{slug}.md")).await?;
    Ok(web::Json(SoulMarkdown {
        handle: handle.into(),
        slug: slug.into(),
        content,
    }))
}

/// One soul's markdown.
#[utoipa::path(
    tag = "souls-directory",
    params(("handle" = String, Path), ("slug" = String, Path)),
    responses((status = 200, body = SoulMarkdown), (status = 401), (status = 422), (status = 502)),
    security(("bearer" = []))
)]
#[get("/api/v1/souls-directory/{handle}/{slug}.md")]
pub async fn get_soul_md(
    state: Data<AppState>,
    _caller: Caller,
    path: web::Path<(String, String)>,
) -> ApiResult<web::Json<SoulMarkdown>> {
    markdown(&state, &path.0, &path.1).await
}

/// One soul's markdown (the same as the `.md` form).
#[utoipa::path(
    tag = "souls-directory",
    params(("handle" = String, Path), ("slug" = String, Path)),
    responses((status = 200, body = SoulMarkdown), (status = 401), (status = 422), (status = 502)),
    security(("bearer" = []))
)]
#[get("/api/v1/souls-directory/{handle}/{slug}")]
pub async fn get_soul(
    state: Data<AppState>,
    _caller: Caller,
    path: web::Path<(String, String)>,
) -> ApiResult<web::Json<SoulMarkdown>> {
    markdown(&state, &path.0, &path.1).await
}

pub fn routes(cfg: &mut ServiceConfig) {
    cfg.service(search).service(get_soul_md).service(get_soul);
}

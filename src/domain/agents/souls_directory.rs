//! The souls directory (domain.md §A18): a read-through proxy of SOULS_DIRECTORY_URL, its
//! sitemap for search and `/api/souls/{handle}/{slug}.md` for one soul.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::json;
use utoipa::ToSchema;

use crate::domain::DomainError;

/// How long one call to the directory may take before it answers 502.
const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(5);

/// `SoulsDirectorySoulRef`.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct SoulRef {
    pub handle: String,
    pub slug: String,
    pub page_url: String,
    pub raw_md_url: String,
}

/// `SoulsDirectorySearchResponse`.
#[derive(Debug, Serialize, ToSchema)]
pub struct SoulSearch {
    pub items: Vec<SoulRef>,
}

/// `SoulsDirectoryMarkdownResponse`.
#[derive(Debug, Serialize, ToSchema)]
pub struct SoulMarkdown {
    pub handle: String,
    pub slug: String,
    pub content: String,
}

/// The upstream failed or could not be reached; answered as 502 with this detail.
#[derive(Debug)]
pub struct Upstream(pub String);

/// The `{base}/souls/{handle}/{slug}` pages listed in the sitemap's `<loc>` elements.
pub fn parse_sitemap(base: &str, xml: &str) -> Vec<SoulRef> {
    let prefix = format!("{base}/souls/");
    let mut refs = Vec::new();
    // Lowercased once (ASCII only, so byte offsets match the original) to find the tags.
    let lower = xml.to_ascii_lowercase();
    let mut at = 0;
    while let Some(start) = lower[at..].find("loc>").map(|i| at + i) {
        let after = &xml[start + 4..];
        let Some(end) = after.find('<') else { break };
        let loc = unescape(after[..end].trim());
        at = start + 4 + end;
        let Some(tail) = loc.strip_prefix(&prefix) else {
            continue;
        };
        let mut parts = tail.split('/').map(str::trim);
        if let (Some(handle), Some(slug)) = (parts.next(), parts.next()) {
            if !handle.is_empty() && !slug.is_empty() {
                refs.push(soul_ref(base, handle, slug));
            }
        }
    }
    refs
}

fn unescape(text: &str) -> String {
    text.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&amp;", "&")
}

fn soul_ref(base: &str, handle: &str, slug: &str) -> SoulRef {
    SoulRef {
        handle: handle.into(),
        slug: slug.into(),
        page_url: format!("{base}/souls/{handle}/{slug}"),
        raw_md_url: format!("{base}/api/souls/{handle}/{slug}.md"),
    }
}

/// The first `limit` refs whose `handle/slug` contains `q`, case-insensitively.
pub fn search(refs: &[SoulRef], q: &str, limit: usize) -> Vec<SoulRef> {
    let q = q.trim().to_lowercase();
    refs.iter()
        .filter(|r| {
            q.is_empty()
                || format!("{}/{}", r.handle, r.slug)
                    .to_lowercase()
                    .contains(&q)
        })
        .take(limit)
        .cloned()
        .collect()
}

/// A path segment of a soul: `^[a-zA-Z0-9][a-zA-Z0-9_-]*$`, else 422.
pub fn check_segment(name: &str, value: &str) -> Result<(), DomainError> {
    let value = value.trim();
    if value.is_empty() {
        return Err(DomainError::Unprocessable(json!(format!(
            "{name} is required"
        ))));
    }
    let mut chars = value.chars();
    let ok = chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if ok {
        Ok(())
    } else {
        Err(DomainError::Unprocessable(json!(format!(
            "{name} contains unsupported characters"
        ))))
    }
}

/// How long a fetched sitemap is searched before it is fetched again (the reference's hour).
const SITEMAP_TTL: Duration = Duration::from_secs(3600);

/// The souls listed in `base`'s sitemap, fetched at most once per `SITEMAP_TTL` per
/// instance; a failed fetch is not kept.
pub async fn sitemap(base: &str) -> Result<Arc<Vec<SoulRef>>, Upstream> {
    type Cached = Option<(String, Instant, Arc<Vec<SoulRef>>)>;
    static CACHE: Mutex<Cached> = Mutex::new(None);
    let cached = |cache: &Cached| match cache {
        Some((b, at, refs)) if b == base && at.elapsed() < SITEMAP_TTL => Some(refs.clone()),
        _ => None,
    };
    if let Some(refs) = cached(&CACHE.lock().unwrap_or_else(|e| e.into_inner())) {
        return Ok(refs);
    }
    let xml = fetch_text(&format!("{base}/sitemap.xml")).await?;
    let refs = Arc::new(parse_sitemap(base, &xml));
    *CACHE.lock().unwrap_or_else(|e| e.into_inner()) =
        Some((base.to_string(), Instant::now(), refs.clone()));
    Ok(refs)
}

/// GETs `url` and returns its body as text; any failure is an `Upstream` error.
pub async fn fetch_text(url: &str) -> Result<String, Upstream> {
    let client = crate::outbound::client(UPSTREAM_TIMEOUT);
    let mut response = client
        .get(url)
        .insert_header(("User-Agent", "mission-control/1.0"))
        .send()
        .await
        .map_err(|e| Upstream(format!("souls directory unreachable ({url}): {e}")))?;
    if !response.status().is_success() {
        return Err(Upstream(format!(
            "souls directory answered {} for {url}",
            response.status().as_u16()
        )));
    }
    let body = response
        .body()
        .limit(8 * 1024 * 1024)
        .await
        .map_err(|e| Upstream(format!("souls directory read failed ({url}): {e}")))?;
    String::from_utf8(body.to_vec())
        .map_err(|_| Upstream(format!("souls directory sent non-UTF-8 text ({url})")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sitemap_yields_soul_pages_only() {
        let xml = "<urlset><url><loc>https://d/souls/ann/helper</loc></url>\
                   <url><LOC> https://d/about </LOC></url><url><s:loc>https://d/souls/bob/x&amp;y/extra</s:loc></url>\
                   <url><loc>https://d/souls/only</loc></url></urlset>";
        let refs = parse_sitemap("https://d", xml);
        assert_eq!(refs.len(), 2);
        assert_eq!(refs[0], soul_ref("https://d", "ann", "helper"));
        assert_eq!(refs[1].slug, "x&y");
        assert_eq!(search(&refs, "ANN/", 5).len(), 1);
        assert_eq!(search(&refs, "", 1).len(), 1);
    }

    #[test]
    fn segments_are_plain_names() {
        assert!(check_segment("handle", "a-b_1").is_ok());
        assert!(check_segment("handle", "-a").is_err());
        assert!(check_segment("handle", "a.b").is_err());
        assert!(check_segment("handle", "").is_err());
        assert!(check_segment("handle", " ok ").is_ok());
    }
}

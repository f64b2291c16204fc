//! The souls directory (domain.md §A18): a read-through proxy of SOULS_DIRECTORY_URL, its
//! sitemap for search and `/api/souls/{handle}/{slug}.md` for one soul.

use std::time::Duration;

use serde::Serialize;
use serde_json::json;
use utoipa::ToSchema;

use super::DomainError;

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
    let mut rest = xml;
    while let Some(start) = find_ci(rest, "loc>") {
        let after = &rest[start + 4..];
        let Some(end) = after.find('<') else { break };
        let loc = unescape(after[..end].trim());
        rest = &after[end..];
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

fn find_ci(haystack: &str, needle: &str) -> Option<usize> {
    haystack.to_ascii_lowercase().find(needle)
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
pub fn search(refs: Vec<SoulRef>, q: &str, limit: usize) -> Vec<SoulRef> {
    let q = q.trim().to_lowercase();
    refs.into_iter()
        .filter(|r| {
            q.is_empty()
                || format!("{}/{}", r.handle, r.slug)
                    .to_lowercase()
                    .contains(&q)
        })
        .take(limit)
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
        assert_eq!(search(refs.clone(), "ANN/", 5).len(), 1);
        assert_eq!(search(refs, "", 1).len(), 1);
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

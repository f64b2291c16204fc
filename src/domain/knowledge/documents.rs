//! Uploaded documents: the text read from them (plain text, Markdown, HTML, PDF), cut into
//! chunks that are searched as part of their entry, and the rows that name their objects in
//! the store (`crate::storage`). The bytes themselves are stored and deleted by the caller,
//! outside the transaction: an object is written before its row commits (a failed commit
//! deletes it) and deleted after its row's deletion commits.

use serde_json::json;
use uuid::Uuid;

use crate::db::record::{get, Record};
use crate::db::GenericClient;
use crate::domain::knowledge::entries::KnowledgeDocument;
use crate::domain::knowledge::manage::entry;
use crate::domain::knowledge::text;
use crate::domain::model::Principal;
use crate::domain::support::access::Access;
use crate::domain::support::validation::Invalid;
use crate::domain::{DomainError, DomainResult};

/// Chunks of about this many characters, cut at paragraph or line ends where possible.
const CHUNK_CHARS: usize = 2000;
/// Text kept per document: enough for any document a person reads.
const MAX_TEXT_CHARS: usize = 2_000_000;
const FILE_NAME_MAX: usize = 512;

/// The kind of text a file holds, by its type or else its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Text,
    Html,
    Pdf,
    Other,
}

pub fn kind_of(file_name: &str, content_type: Option<&str>) -> Kind {
    let ext = file_name
        .rsplit_once('.')
        .map(|(_, e)| e.to_ascii_lowercase())
        .unwrap_or_default();
    let mime = content_type.unwrap_or("").to_ascii_lowercase();
    if mime.starts_with("application/pdf") || ext == "pdf" {
        Kind::Pdf
    } else if mime.starts_with("text/html") || matches!(ext.as_str(), "html" | "htm") {
        Kind::Html
    } else if mime.starts_with("text/")
        || matches!(ext.as_str(), "txt" | "md" | "markdown" | "csv" | "log")
    {
        Kind::Text
    } else {
        Kind::Other
    }
}

/// The readable text of a file (`None`: a kind we do not read, or a PDF we could not).
pub fn extract(kind: Kind, bytes: &[u8]) -> Option<String> {
    let text = match kind {
        Kind::Text => String::from_utf8_lossy(bytes).into_owned(),
        Kind::Html => html_text(&String::from_utf8_lossy(bytes)),
        Kind::Pdf => {
            let document = lopdf::Document::load_mem(bytes).ok()?;
            let pages: Vec<u32> = document.get_pages().keys().copied().collect();
            document.extract_text(&pages).ok()?
        }
        Kind::Other => return None,
    };
    // PostgreSQL text cannot hold NUL.
    let text: String = text
        .replace('\0', " ")
        .chars()
        .take(MAX_TEXT_CHARS)
        .collect();
    Some(text)
}

/// The text of an HTML page: tags dropped, `script` and `style` with their content, the
/// common entities decoded, blocks on their own lines.
fn html_text(html: &str) -> String {
    let mut out = String::with_capacity(html.len() / 2);
    let mut rest = html;
    while let Some(open) = rest.find('<') {
        out.push_str(&rest[..open]);
        let tag_end = rest[open..].find('>').map_or(rest.len(), |e| open + e + 1);
        let tag = rest[open..tag_end].to_ascii_lowercase();
        rest = &rest[tag_end..];
        for skipped in ["script", "style"] {
            if tag.starts_with(&format!("<{skipped}")) {
                let close = format!("</{skipped}");
                let end = rest.to_ascii_lowercase().find(&close).unwrap_or(rest.len());
                rest = &rest[end..];
            }
        }
        let block = [
            "<p", "<br", "<div", "<li", "<h1", "<h2", "<h3", "<h4", "<tr", "</p", "</div",
        ];
        if block.iter().any(|b| tag.starts_with(b)) {
            out.push('\n');
        }
    }
    out.push_str(rest);
    out.replace("&nbsp;", " ")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&amp;", "&")
}

/// The text cut into chunks of about CHUNK_CHARS characters, at a paragraph or line end
/// when there is one in the second half of the chunk.
pub fn chunks(text: &str) -> Vec<String> {
    let chars: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let mut start = 0;
    while start < chars.len() {
        let mut end = (start + CHUNK_CHARS).min(chars.len());
        if end < chars.len() {
            let window: String = chars[start + CHUNK_CHARS / 2..end].iter().collect();
            if let Some(cut) = window.rfind("\n\n").or_else(|| window.rfind('\n')) {
                end = start + CHUNK_CHARS / 2 + window[..cut].chars().count() + 1;
            }
        }
        let chunk: String = chars[start..end].iter().collect();
        if !chunk.trim().is_empty() {
            out.push(chunk.trim().to_string());
        }
        start = end;
    }
    out
}

/// An upload whose bytes are in the store under `storage_key`.
pub struct Upload {
    pub id: Uuid,
    pub file_name: String,
    pub file_type: Option<String>,
    pub size: i64,
    pub storage_key: String,
    pub text: Option<String>,
}

/// Where an upload's object is kept: under its entry, by the document's id (the file's
/// name is only metadata).
pub fn storage_key(organization_id: Uuid, entry_id: Uuid, document_id: Uuid) -> String {
    format!("knowledge/{organization_id}/{entry_id}/{document_id}")
}

/// Checks an upload's name before its bytes are read.
pub fn check_name(file_name: &str) -> DomainResult<()> {
    let mut invalid = Invalid::default();
    invalid.non_empty("file", file_name);
    invalid.max_chars("file", file_name, FILE_NAME_MAX);
    invalid.finish()
}

/// Records an uploaded document and its text's chunks; the entry's `updated_at` moves.
pub async fn record_upload(
    client: &impl GenericClient,
    principal: &Principal,
    entry_id: Uuid,
    upload: Upload,
    language: &str,
) -> DomainResult<KnowledgeDocument> {
    entry(client, principal, entry_id, Access::Write).await?;
    let url = format!("/api/v1/knowledge/documents/{}/download", upload.id);
    let pieces = upload.text.as_deref().map(chunks).unwrap_or_default();
    let extracted = upload.text.as_ref().map(|t| t.chars().count() as i32);
    let row = client
        .query_one(
            &format!(
                "INSERT INTO knowledge_documents AS d (id, knowledge_entry_id, file_name, file_type, file_size_bytes, \
                   storage_url, storage_key, extracted_chars) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING {columns}",
                columns = KnowledgeDocument::COLUMNS
            ),
            &[&upload.id, &entry_id, &upload.file_name, &upload.file_type, &upload.size, &url, &upload.storage_key, &extracted],
        )
        .await?;
    let extras: Vec<String> = pieces.iter().map(|p| text::index_tokens(&[p])).collect();
    let positions: Vec<i32> = (0..pieces.len() as i32).collect();
    client
        .execute(
            "INSERT INTO knowledge_chunks (id, knowledge_entry_id, document_id, position, content, search_config, search_extra) \
             SELECT gen_random_uuid(), $1, $2, p, c, knowledge_search_config($3), x \
             FROM unnest($4::int[], $5::text[], $6::text[]) AS u(p, c, x)",
            &[&entry_id, &upload.id, &language, &positions, &pieces, &extras],
        )
        .await?;
    client
        .execute(
            "UPDATE knowledge_entries SET updated_at = now() WHERE id = $1",
            &[&entry_id],
        )
        .await?;
    Ok(KnowledgeDocument::from_row(&row)?)
}

/// The document, if the member may read its entry, with its object's key (`None`: a
/// document recorded by URL).
pub async fn readable(
    client: &impl GenericClient,
    principal: &Principal,
    document_id: Uuid,
    access: Access,
) -> DomainResult<(KnowledgeDocument, Option<String>)> {
    let row = client
        .query_opt(
            &format!(
                "SELECT {columns}, d.storage_key FROM knowledge_documents d \
                 JOIN knowledge_entries e ON e.id = d.knowledge_entry_id \
                 WHERE d.id = $1 AND e.organization_id = $2",
                columns = KnowledgeDocument::COLUMNS
            ),
            &[&document_id, &principal.organization.id],
        )
        .await?
        .ok_or_else(|| DomainError::NotFound(json!("Knowledge document not found")))?;
    let document = KnowledgeDocument::from_row(&row)?;
    entry(client, principal, document.knowledge_entry_id, access).await?;
    Ok((document, get(&row, "storage_key")?))
}

/// Deletes a document (its chunks go with it); its object's key, to delete once committed.
pub async fn delete(
    client: &impl GenericClient,
    principal: &Principal,
    document_id: Uuid,
) -> DomainResult<Option<String>> {
    let (_, key) = readable(client, principal, document_id, Access::Write).await?;
    client
        .execute(
            "DELETE FROM knowledge_documents WHERE id = $1",
            &[&document_id],
        )
        .await?;
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn html_keeps_its_text_only() {
        let html =
            "<html><head><style>p {color: red}</style><script>var x = '<p>';</script></head>\
                    <body><h1>Title</h1><p>One &amp; two</p><div>three</div></body></html>";
        let text = html_text(html);
        assert!(
            text.contains("Title") && text.contains("One & two") && text.contains("three"),
            "{text}"
        );
        assert!(!text.contains("color") && !text.contains("var x"), "{text}");
    }

    #[test]
    fn long_text_is_cut_at_paragraphs() {
        let paragraph = "word ".repeat(100);
        let text = vec![paragraph.trim(); 20].join("\n\n");
        let pieces = chunks(&text);
        assert!(pieces.len() > 1);
        assert!(pieces.iter().all(|p| p.chars().count() <= CHUNK_CHARS));
        assert!(
            pieces
                .iter()
                .all(|p| p.starts_with("word") && p.ends_with("word")),
            "{pieces:?}"
        );
        assert_eq!(kind_of("a.PDF", None), Kind::Pdf);
        assert_eq!(kind_of("notes", Some("text/markdown")), Kind::Text);
        assert_eq!(
            kind_of("x.bin", Some("application/octet-stream")),
            Kind::Other
        );
    }
}

//! M12 knowledge (domain.md §E, docs/knowledge.md): entries and what agents post
//! (`entries`), the API's reads and writes (`manage`), uploads (`documents`), search (`search`, with CJK text in
//! `text`), and embeddings (`embeddings`).

pub mod documents;
pub mod embeddings;
pub mod entries;
pub mod manage;
pub mod search;
pub mod text;

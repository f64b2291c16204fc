//! Knowledge (domain.md §E): entries that agents post. Hybrid search lands here.

pub mod entries;

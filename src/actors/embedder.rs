//! `Embedder`: the knowledge base's background embedding worker, one per instance when an
//! EMBEDDING_PROVIDER is configured (docs/knowledge.md). Every second, and at once again after
//! a full batch, it claims a batch of
//! entries whose embedding is due (new, changed, of another model, or a retry whose time
//! came; `SKIP LOCKED`, so instances share the work), embeds them in one provider call and
//! writes the vectors; a failure is retried with backoff, a 429 pauses the worker for its
//! `Retry-After`. The HNSW index of a new dimension is built the first time one is seen.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use actix::prelude::*;

use crate::config::EmbeddingSettings;
use crate::db::PgPool;
use crate::domain::knowledge::embeddings::{self, EmbedError, Purpose};

/// Texts per provider call (OpenAI and DashScope take lists; Ollama gets one call each).
const BATCH: i64 = 64;
const EVERY: Duration = Duration::from_secs(1);

pub struct Embedder {
    db: PgPool,
    settings: EmbeddingSettings,
    busy: bool,
    paused_until: Option<Instant>,
    indexed: HashSet<usize>,
}

impl Embedder {
    pub fn new(db: PgPool, settings: EmbeddingSettings) -> Embedder {
        Embedder {
            db,
            settings,
            busy: false,
            paused_until: None,
            indexed: HashSet::new(),
        }
    }

    fn tick(&mut self, ctx: &mut Context<Self>) {
        if self.busy || self.paused_until.is_some_and(|t| Instant::now() < t) {
            return;
        }
        self.busy = true;
        let (db, settings, indexed) =
            (self.db.clone(), self.settings.clone(), self.indexed.clone());
        let work = async move { embed_due(&db, &settings, indexed).await };
        ctx.spawn(work.into_actor(self).map(|result, act, ctx| {
            act.busy = false;
            match result {
                Ok(Round::Done { dims, full }) => {
                    act.indexed.extend(dims);
                    // A full batch: more are probably due; go on without waiting for the tick.
                    if full {
                        act.tick(ctx);
                    }
                }
                Ok(Round::RateLimited(wait)) => {
                    tracing::warn!(
                        seconds = wait.as_secs(),
                        "embedding provider rate limit: pausing"
                    );
                    act.paused_until = Some(Instant::now() + wait);
                }
                Err(e) => tracing::warn!(error = %e, "embedding round failed"),
            }
        }));
    }
}

enum Round {
    /// `dims`: the dimensions whose index exists now; `full`: the batch was full.
    Done {
        dims: Vec<usize>,
        full: bool,
    },
    RateLimited(Duration),
}

async fn embed_due(
    db: &PgPool,
    settings: &EmbeddingSettings,
    indexed: HashSet<usize>,
) -> Result<Round, String> {
    let due = {
        let conn = db.get().await.map_err(|e| e.to_string())?;
        embeddings::claim_due(&*conn, BATCH)
            .await
            .map_err(|e| e.to_string())?
    };
    if due.is_empty() {
        return Ok(Round::Done {
            dims: Vec::new(),
            full: false,
        });
    }
    let full = due.len() as i64 == BATCH;
    let texts: Vec<String> = due.iter().map(|d| d.text.clone()).collect();
    // No connection is held during the provider's call.
    let answer = embeddings::embed(settings, &texts, Purpose::Document).await;
    let conn = db.get().await.map_err(|e| e.to_string())?;
    match answer {
        Ok(vectors) => {
            let mut dims = Vec::new();
            for vector in &vectors {
                if !indexed.contains(&vector.len()) && !dims.contains(&vector.len()) {
                    embeddings::ensure_index(&*conn, vector.len())
                        .await
                        .map_err(|e| e.to_string())?;
                    dims.push(vector.len());
                }
            }
            embeddings::store(&*conn, &due, &settings.model, &vectors)
                .await
                .map_err(|e| e.to_string())?;
            tracing::debug!(entries = due.len(), "entries embedded");
            Ok(Round::Done { dims, full })
        }
        Err(EmbedError::RateLimited(wait)) => {
            let ids: Vec<_> = due.iter().map(|d| d.id).collect();
            embeddings::postpone(&*conn, &ids, wait)
                .await
                .map_err(|e| e.to_string())?;
            Ok(Round::RateLimited(wait))
        }
        Err(EmbedError::Failed(error)) => {
            tracing::warn!(entries = due.len(), %error, "entries not embedded; retried later");
            embeddings::failed(&*conn, &due, &error)
                .await
                .map_err(|e| e.to_string())?;
            // Failed entries wait for their retry: no hurry for the next round.
            Ok(Round::Done {
                dims: Vec::new(),
                full: false,
            })
        }
    }
}

impl Actor for Embedder {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        let (db, model) = (self.db.clone(), self.settings.model.clone());
        ctx.spawn(
            async move {
                let queued = async {
                    let conn = db.get().await.map_err(|e| e.to_string())?;
                    embeddings::reembed_other_models(&*conn, &model).await.map_err(|e| e.to_string())
                };
                match queued.await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(entries = n, %model, "entries of another model queued for embedding"),
                    Err(e) => tracing::warn!(error = %e, "entries of another model not queued"),
                }
            }
            .into_actor(self),
        );
        ctx.run_interval(EVERY, |act, ctx| act.tick(ctx));
        tracing::info!(provider = ?self.settings.provider, model = %self.settings.model, "embedding worker started");
    }
}

impl Supervised for Embedder {
    fn restarting(&mut self, _: &mut Context<Self>) {
        self.busy = false;
    }
}

/// At start: says when KNOWLEDGE_SEARCH_LANGUAGE is not a configuration of the database
/// (entries are then indexed as `simple`), and re-indexes entries written under another
/// language, a batch at a time. Waits for the database if it is not up yet.
pub async fn reindex_language(db: PgPool, language: String) {
    let mut changed = 0;
    loop {
        let round = async {
            let conn = db.get().await.map_err(|e| e.to_string())?;
            if changed == 0
                && !embeddings::language_exists(&*conn, &language)
                    .await
                    .map_err(|e| e.to_string())?
            {
                tracing::error!(%language, "KNOWLEDGE_SEARCH_LANGUAGE is not a text search configuration of this database; knowledge entries are indexed with 'simple'");
            }
            embeddings::reindex_language(&*conn, &language)
                .await
                .map_err(|e| e.to_string())
        };
        match round.await {
            Ok(0) => break,
            Ok(n) => changed += n,
            Err(e) => {
                tracing::debug!(error = %e, "knowledge re-index waits for the database");
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
        }
    }
    if changed > 0 {
        tracing::info!(entries = changed, %language, "knowledge entries re-indexed in the search language");
    }
}

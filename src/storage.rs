//! Where uploaded files are kept, through the `object_store` crate: a directory of the local
//! filesystem (KNOWLEDGE_STORAGE_DIR; the default, nothing to run), or an S3-compatible bucket
//! — Alibaba OSS, S3, MinIO — when OSS_BUCKET is set (OSS_ENDPOINT, OSS_ACCESS_KEY,
//! OSS_SECRET_KEY, OSS_REGION; virtual-hosted requests, as OSS requires, unless
//! OSS_PATH_STYLE).

use std::sync::Arc;

use bytes::Bytes;
use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::{ObjectStore, PutPayload};

use crate::config::StorageSettings;

#[derive(Clone)]
pub struct Storage {
    store: Arc<dyn ObjectStore>,
}

impl std::fmt::Debug for Storage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Storage({})", self.store)
    }
}

impl Storage {
    /// The configured store (the local directory is created if missing).
    pub fn open(settings: &StorageSettings) -> Result<Storage, String> {
        let store: Arc<dyn ObjectStore> = match settings {
            StorageSettings::Local { dir } => {
                std::fs::create_dir_all(dir).map_err(|e| {
                    format!(
                        "KNOWLEDGE_STORAGE_DIR: cannot create {}: {e}",
                        dir.display()
                    )
                })?;
                Arc::new(
                    LocalFileSystem::new_with_prefix(dir)
                        .map_err(|e| format!("KNOWLEDGE_STORAGE_DIR: {e}"))?,
                )
            }
            StorageSettings::Bucket {
                endpoint,
                bucket,
                access_key,
                secret_key,
                region,
                path_style,
            } => {
                // Virtual-hosted requests go to `bucket.<endpoint host>`, which object_store
                // expects in the endpoint itself.
                let endpoint = if *path_style {
                    endpoint.clone()
                } else {
                    let mut url =
                        url::Url::parse(endpoint).map_err(|e| format!("OSS_ENDPOINT: {e}"))?;
                    let host = format!("{bucket}.{}", url.host_str().unwrap_or_default());
                    url.set_host(Some(&host))
                        .map_err(|e| format!("OSS_ENDPOINT: {e}"))?;
                    url.as_str().trim_end_matches('/').to_string()
                };
                Arc::new(
                    AmazonS3Builder::new()
                        .with_endpoint(endpoint)
                        .with_bucket_name(bucket)
                        .with_access_key_id(access_key)
                        .with_secret_access_key(&secret_key.0)
                        .with_region(region)
                        .with_virtual_hosted_style_request(!path_style)
                        .with_allow_http(true)
                        .build()
                        .map_err(|e| format!("OSS_*: {e}"))?,
                )
            }
        };
        Ok(Storage { store })
    }

    pub async fn put(&self, key: &str, bytes: Bytes) -> Result<(), String> {
        self.store
            .put(&Path::from(key), PutPayload::from(bytes))
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    /// The object's bytes; `Ok(None)` when it is not there.
    pub async fn get(&self, key: &str) -> Result<Option<Bytes>, String> {
        match self.store.get(&Path::from(key)).await {
            Ok(found) => found.bytes().await.map(Some).map_err(|e| e.to_string()),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e.to_string()),
        }
    }

    /// Deletes the object (one that is already gone is fine).
    pub async fn delete(&self, key: &str) -> Result<(), String> {
        match self.store.delete(&Path::from(key)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(e.to_string()),
        }
    }
}

//! `TierConfig`: which object store the `--tier-*` flags name, and how it is opened.
//!
//! Owns the translation from URL and flags to an `object_store` backend; knows nothing of
//! the object layout (that is `store.rs`).

use std::sync::Arc;
use std::time::Duration;

use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::local::LocalFileSystem;
use object_store::{BackoffConfig, ClientConfigKey, ObjectStore, RetryConfig};

use crate::error::{Result, TieringError};

/// The `--tier-*` flags. `url`: `file:///path` or `s3://bucket[/prefix]`.
#[derive(Clone, Default)]
pub struct TierConfig {
    pub url: String,
    pub endpoint: Option<String>,
    pub region: Option<String>,
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
    pub allow_http: bool,
}

/// By hand, so that logging the broker's configuration never prints the secret key.
impl std::fmt::Debug for TierConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TierConfig")
            .field("url", &self.url)
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("access_key_id", &self.access_key_id)
            .field(
                "secret_access_key",
                &self.secret_access_key.as_ref().map(|_| "<redacted>"),
            )
            .field("allow_http", &self.allow_http)
            .finish()
    }
}

/// Region when neither the flags nor `AWS_REGION` / `AWS_DEFAULT_REGION` name one; S3-compatible
/// servers accept any, and AWS routes this one by default.
pub const DEFAULT_REGION: &str = "us-east-1";
/// An unreachable store must fail the attempt, not hang it: the broker retries uploads with
/// its own back-off, and a fetch waiting on a remote read holds a consumer.
pub const CONNECT_TIMEOUT: &str = "5s";
/// Bounds one request, including an 8 MiB multipart part or a 1 MiB range GET.
pub const REQUEST_TIMEOUT: &str = "30s";
/// Few retries inside object_store: the broker's own back-off is the retry loop that matters,
/// and stacking object_store's default 10 retries over 3 minutes under it would hide outages.
const RETRY_MAX: usize = 2;
const RETRY_TIMEOUT: Duration = Duration::from_secs(30);

/// An opened backend and the key prefix under which this broker's objects live.
pub(crate) struct OpenedStore {
    pub store: Arc<dyn ObjectStore>,
    pub prefix: String,
}

pub(crate) fn open(config: &TierConfig) -> Result<OpenedStore> {
    if let Some(path) = config.url.strip_prefix("file://") {
        return open_local(path);
    }
    if let Some(rest) = config.url.strip_prefix("s3://") {
        return open_s3(config, rest);
    }
    Err(TieringError::UnsupportedUrl(config.url.clone()))
}

pub(crate) fn open_local(path: &str) -> Result<OpenedStore> {
    if path.is_empty() {
        return Err(TieringError::UnsupportedUrl(format!("file://{path}")));
    }
    std::fs::create_dir_all(path).map_err(|source| TieringError::LocalIo {
        path: path.to_string(),
        source,
    })?;
    let local = LocalFileSystem::new_with_prefix(path)
        .map_err(|source| TieringError::StoreConfig {
            url: format!("file://{path}"),
            source,
        })?
        // Local retention deletes the broker's copy once the manifest lists a segment, so the
        // remote copy must be on disk by then, as it would be on S3.
        .with_fsync(true);
    Ok(OpenedStore {
        store: Arc::new(local),
        prefix: String::new(),
    })
}

fn open_s3(config: &TierConfig, bucket_and_prefix: &str) -> Result<OpenedStore> {
    let (bucket, prefix) = bucket_and_prefix
        .split_once('/')
        .unwrap_or((bucket_and_prefix, ""));
    if bucket.is_empty() {
        return Err(TieringError::UnsupportedUrl(config.url.clone()));
    }
    // The usual AWS_* variables first; the flags, where given, override them.
    let mut builder = AmazonS3Builder::from_env().with_bucket_name(bucket);
    if let Some(endpoint) = &config.endpoint {
        // S3-compatible servers (MinIO, moto, Ceph) are addressed by path, not by a
        // bucket-named host that their DNS would not resolve.
        builder = builder
            .with_endpoint(endpoint)
            .with_virtual_hosted_style_request(false);
    }
    if let Some(region) = &config.region {
        builder = builder.with_region(region);
    } else if builder
        .get_config_value(&AmazonS3ConfigKey::Region)
        .is_none()
    {
        builder = builder.with_region(DEFAULT_REGION);
    }
    if let Some(access_key_id) = &config.access_key_id {
        builder = builder.with_access_key_id(access_key_id);
    }
    if let Some(secret_access_key) = &config.secret_access_key {
        builder = builder.with_secret_access_key(secret_access_key);
    }
    // `false` is also what an absent flag reads as, so it must not override AWS_ALLOW_HTTP.
    if config.allow_http {
        builder = builder.with_allow_http(true);
    }
    // Set key by key rather than with `with_client_options`, which would replace the client
    // options AWS_* variables set (proxy, certificates, allow_http).
    builder = builder
        .with_config(
            AmazonS3ConfigKey::Client(ClientConfigKey::ConnectTimeout),
            CONNECT_TIMEOUT,
        )
        .with_config(
            AmazonS3ConfigKey::Client(ClientConfigKey::Timeout),
            REQUEST_TIMEOUT,
        )
        .with_retry(RetryConfig {
            backoff: BackoffConfig {
                init_backoff: Duration::from_millis(100),
                max_backoff: Duration::from_secs(2),
                base: 2.0,
            },
            max_retries: RETRY_MAX,
            retry_timeout: RETRY_TIMEOUT,
        });
    let s3 = builder
        .build()
        .map_err(|source| TieringError::StoreConfig {
            url: config.url.clone(),
            source,
        })?;
    Ok(OpenedStore {
        store: Arc::new(s3),
        prefix: prefix.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn s3_url_builds_a_store_without_touching_the_network() {
        let config = TierConfig {
            url: "s3://tidelog-bucket/cluster-a/tiered".into(),
            // Nothing listens here; building must not connect.
            endpoint: Some("http://127.0.0.1:9".into()),
            region: None,
            access_key_id: Some("AKIDEXAMPLE".into()),
            secret_access_key: Some("secret".into()),
            allow_http: true,
        };
        assert!(
            !format!("{config:?}").contains("secret\""),
            "Debug redacts the secret"
        );
        let opened = open(&config).expect("s3 store builds offline");
        assert_eq!(opened.prefix, "cluster-a/tiered");
        assert!(opened.store.to_string().contains("tidelog-bucket"));

        let bare = TierConfig {
            url: "s3://bucket-only".into(),
            access_key_id: Some("AKIDEXAMPLE".into()),
            secret_access_key: Some("secret".into()),
            ..TierConfig::default()
        };
        assert_eq!(open(&bare).expect("bucket without prefix").prefix, "");
    }

    #[test]
    fn bad_urls_are_rejected() {
        for url in ["s3://", "s3:///prefix", "ftp://host/x", "file://", "bucket"] {
            let config = TierConfig {
                url: url.into(),
                ..TierConfig::default()
            };
            assert!(open(&config).is_err(), "{url} should be rejected");
        }
    }
}

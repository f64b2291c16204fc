//! The HTTP client of the server's own calls out (the souls directory): HTTPS through
//! rustls with the system's trusted roots, read once per process. `SSL_CERT_FILE` and
//! `SSL_CERT_DIR` point it at other roots, as for OpenSSL-based tools.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use rustls::{ClientConfig, RootCertStore};

fn tls() -> Arc<ClientConfig> {
    static TLS: OnceLock<Arc<ClientConfig>> = OnceLock::new();
    TLS.get_or_init(|| {
        let found = rustls_native_certs::load_native_certs();
        for error in &found.errors {
            tracing::warn!(%error, "reading trusted root certificates");
        }
        let mut roots = RootCertStore::empty();
        let (added, ignored) = roots.add_parsable_certificates(found.certs);
        if added == 0 {
            tracing::warn!("no trusted root certificates found: outbound HTTPS calls will fail");
        }
        tracing::debug!(added, ignored, "trusted root certificates loaded");
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("ring supports the default TLS versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Arc::new(config)
    })
    .clone()
}

/// A client whose requests (connect included) give up after `timeout`.
pub fn client(timeout: Duration) -> awc::Client {
    awc::Client::builder()
        .timeout(timeout)
        .connector(awc::Connector::new().timeout(timeout).rustls_0_23(tls()))
        .finish()
}

//! Optional TLS (rustls with the ring provider) for the HTTP listener.

use std::sync::Arc;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;

use crate::config::Config;

/// The acceptor for `[agent] tls_cert_file` and `tls_key_file`, or `None` without TLS.
///
/// # Errors
///
/// A message naming the file that cannot be read or used.
pub fn acceptor(config: &Config) -> Result<Option<TlsAcceptor>, String> {
    let Some(files) = &config.tls else {
        return Ok(None);
    };
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&files.cert)
        .and_then(Iterator::collect)
        .map_err(|e| format!("[agent] tls_cert_file {}: {e}", files.cert.display()))?;
    if certs.is_empty() {
        return Err(format!(
            "[agent] tls_cert_file {}: no certificate found",
            files.cert.display()
        ));
    }
    let key = PrivateKeyDer::from_pem_file(&files.key)
        .map_err(|e| format!("[agent] tls_key_file {}: {e}", files.key.display()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut server = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS: {e}"))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| format!("[agent] tls_cert_file/tls_key_file: {e}"))?;
    server.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Some(TlsAcceptor::from(Arc::new(server))))
}

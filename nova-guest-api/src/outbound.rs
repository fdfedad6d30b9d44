//! The HTTP(S) client for every outbound call (Keystone, Nova, Neutron, nova-guest-agent):
//! hyper-util's pooled client over rustls, each exchange (connect, request, whole response
//! body) bounded by a deadline and the response body by a size limit.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Request, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

/// Largest response body read from any upstream.
const MAX_RESPONSE: usize = 32 * 1024 * 1024;

/// A received response, body read in full.
#[derive(Debug)]
pub struct Reply {
    /// Status.
    pub status: StatusCode,
    /// Headers.
    pub headers: HeaderMap,
    /// Body.
    pub body: Bytes,
}

/// Why an outbound call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OutboundError {
    /// No answer within the deadline.
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    /// The connection could not be made.
    #[error("cannot connect: {0}")]
    Connect(String),
    /// Anything else on the way (reset, TLS, malformed response, body too large).
    #[error("{0}")]
    Transport(String),
}

/// The client shared by all calls of one configuration.
#[derive(Clone, Debug)]
pub struct Outbound {
    client: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
}

fn tls_config(ca_file: Option<&Path>) -> Result<rustls::ClientConfig, String> {
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?;
    if let Some(path) = ca_file {
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?
            .collect::<Result<_, _>>()
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        if certs.is_empty() {
            return Err(format!("{} holds no PEM certificate", path.display()));
        }
        for cert in certs {
            roots
                .add(cert)
                .map_err(|e| format!("{}: {e}", path.display()))?;
        }
        return Ok(builder.with_root_certificates(roots).with_no_client_auth());
    }
    Ok(builder.with_root_certificates(roots).with_no_client_auth())
}

impl Outbound {
    /// A client verifying TLS servers against `ca_file` (PEM), or the system roots.
    ///
    /// # Errors
    ///
    /// The CA file cannot be read or holds no certificate.
    pub fn new(ca_file: Option<&Path>, connect_timeout: Duration) -> Result<Self, String> {
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_connect_timeout(Some(connect_timeout));
        http.set_nodelay(true);
        let builder = hyper_rustls::HttpsConnectorBuilder::new();
        let builder = if ca_file.is_some() {
            builder.with_tls_config(tls_config(ca_file)?)
        } else {
            let provider = rustls::crypto::ring::default_provider();
            match builder.with_provider_and_native_roots(provider) {
                Ok(b) => b,
                Err(e) => {
                    tracing::warn!(error = %e, "no system CA certificates; https upstreams will fail");
                    hyper_rustls::HttpsConnectorBuilder::new().with_tls_config(tls_config(None)?)
                }
            }
        };
        let https = builder.https_or_http().enable_http1().wrap_connector(http);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(60))
            .pool_max_idle_per_host(256)
            .build(https);
        Ok(Self { client })
    }

    /// Sends `request`, reads the whole response, all within `timeout`.
    ///
    /// # Errors
    ///
    /// See [`OutboundError`].
    pub async fn send(
        &self,
        request: Request<Full<Bytes>>,
        timeout: Duration,
    ) -> Result<Reply, OutboundError> {
        let exchange = async {
            let response = self.client.request(request).await.map_err(|e| {
                if e.is_connect() {
                    OutboundError::Connect(error_chain(&e))
                } else {
                    OutboundError::Transport(error_chain(&e))
                }
            })?;
            let (parts, body) = response.into_parts();
            let body = Limited::new(body, MAX_RESPONSE)
                .collect()
                .await
                .map_err(|e| OutboundError::Transport(format!("reading the response: {e}")))?
                .to_bytes();
            Ok(Reply {
                status: parts.status,
                headers: parts.headers,
                body,
            })
        };
        tokio::time::timeout(timeout, exchange)
            .await
            .map_err(|_| OutboundError::Timeout(timeout))?
    }
}

/// An error and its sources on one line.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let t = c.to_string();
        if !s.contains(&t) {
            s.push_str(": ");
            s.push_str(&t);
        }
        cur = c.source();
    }
    s
}

//! TLS for `serve` (rustls with ring): the server configuration from PEM files, and a
//! listener that hands axum connections whose handshake is done.
//!
//! In: a certificate chain and a private key (PEM, as `[serve] tls_cert` / `tls_key` name
//! them). Out: the rustls server configuration; [`super::listen`] runs each handshake in the
//! connection's own task, under the header timeout and the connection limit, so a slow or
//! silent client holds up nobody else.

use std::path::Path;
use std::sync::Arc;

use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("TLS certificate {path}: {message}")]
    Certificate { path: String, message: String },
    #[error("TLS key {path}: {message}")]
    Key { path: String, message: String },
    #[error("TLS: {0}")]
    Rustls(#[from] rustls::Error),
}

/// The server configuration: the chain of `cert` (leaf first) and the key of `key`.
pub fn server_config(cert: &Path, key: &Path) -> Result<ServerConfig, TlsError> {
    let cert_err = |message: String| TlsError::Certificate {
        path: cert.display().to_string(),
        message,
    };
    let chain = CertificateDer::pem_file_iter(cert)
        .map_err(|e| cert_err(e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| cert_err(e.to_string()))?;
    if chain.is_empty() {
        return Err(cert_err("holds no certificate".into()));
    }
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| TlsError::Key {
        path: key.display().to_string(),
        message: e.to_string(),
    })?;
    let mut config =
        ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(chain, key)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// The acceptor of a server configuration.
pub fn acceptor(config: ServerConfig) -> TlsAcceptor {
    TlsAcceptor::from(Arc::new(config))
}

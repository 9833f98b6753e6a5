//! TLS client settings for the servers the service connects to: mail servers, the SCIM
//! portal and directory sources (rustls with ring).
//!
//! In: an optional PEM file of the CA that signed a server's certificate. Out: a rustls
//! client configuration that trusts only that CA, or the platform's roots when none is given.

use std::path::Path;
use std::sync::Arc;

use rustls::ClientConfig;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("CA file {path}: {message}")]
    Ca { path: String, message: String },
    #[error("{0}")]
    Rustls(#[from] rustls::Error),
}

/// Reads every certificate of a PEM file.
pub fn read_ca(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let err = |message: String| TlsError::Ca {
        path: path.display().to_string(),
        message,
    };
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| err(e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| err(e.to_string()))?;
    if certs.is_empty() {
        return Err(err("holds no certificate".into()));
    }
    Ok(certs)
}

pub fn client_config(ca_file: Option<&Path>) -> Result<ClientConfig, TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    match ca_file {
        Some(path) => {
            let mut roots = rustls::RootCertStore::empty();
            for cert in read_ca(path)? {
                roots.add(cert)?;
            }
            Ok(ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()?
                .with_root_certificates(roots)
                .with_no_client_auth())
        }
        None => {
            use rustls_platform_verifier::BuilderVerifierExt;
            Ok(ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()?
                .with_platform_verifier()?
                .with_no_client_auth())
        }
    }
}

//! TLS for FlowMesh, on rustls with one crypto provider (ring) everywhere:
//! the server's listener, the workers' and the CLI's HTTPS clients.
//!
//! - [`install_crypto_provider`] makes ring the process's provider; every
//!   entry point calls it before it builds an HTTP client or a listener.
//! - [`ServerTls`] is an operator's certificate and key (PEM files), or a
//!   local CA and server certificate made once for `--tls-self-signed`
//!   ([`ServerTls::self_signed`]) and kept in the data directory, so the
//!   CLI and a local worker can pin the CA with no flags.
//! - [`serve`] runs an axum router over TLS: each connection's handshake
//!   runs in its own task, under a deadline, so a client that never
//!   finishes one holds up nobody else.
//! - [`client_builder`] is a `reqwest` client builder that trusts the
//!   system's roots and, when given, one more CA (`--ca-cert`).

mod listener;
mod local_ca;

use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use listener::serve;
pub use local_ca::LocalCa;

/// Why TLS could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read or written.
    #[error("{}: {error}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// What failed.
        error: std::io::Error,
    },
    /// A PEM file holds no certificate or key of the kind expected.
    #[error("{}: {what}", path.display())]
    Pem {
        /// The file.
        path: PathBuf,
        /// What is wrong, and what to do.
        what: String,
    },
    /// rustls refused the certificate and key.
    #[error("the TLS certificate and key do not make a server configuration: {0}")]
    Rustls(#[from] rustls::Error),
    /// A certificate could not be made.
    #[error("making the local certificate failed: {0}")]
    Generate(#[from] rcgen::Error),
}

/// Makes ring the process's rustls crypto provider, once; later calls do
/// nothing. Call it before building any HTTP client or TLS listener.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// The server's certificate chain and key.
#[derive(Clone)]
pub struct ServerTls {
    config: Arc<rustls::ServerConfig>,
}

impl std::fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ServerTls")
    }
}

impl ServerTls {
    /// From PEM files: `cert` (the chain, leaf first) and `key`.
    pub fn from_pem_files(cert: &Path, key: &Path) -> Result<Self, TlsError> {
        let chain = read_certs(cert)?;
        let key = read_key(key)?;
        Self::from_parts(chain, key)
    }

    /// A certificate for `names` (host names or IP addresses) signed by the
    /// local CA in `dir`, made there once and reused after.
    pub fn self_signed(dir: &Path, names: &[String]) -> Result<(Self, LocalCa), TlsError> {
        let ca = LocalCa::open_or_create(dir)?;
        let (chain, key) = ca.server_certificate(names)?;
        Ok((Self::from_parts(chain, key)?, ca))
    }

    fn from_parts(
        chain: Vec<rustls::pki_types::CertificateDer<'static>>,
        key: rustls::pki_types::PrivateKeyDer<'static>,
    ) -> Result<Self, TlsError> {
        install_crypto_provider();
        let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(chain, key)?;
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Self {
            config: Arc::new(config),
        })
    }

    /// The rustls configuration.
    pub fn config(&self) -> Arc<rustls::ServerConfig> {
        self.config.clone()
    }
}

/// Reads every certificate in a PEM file.
pub fn read_certs(
    path: &Path,
) -> Result<Vec<rustls::pki_types::CertificateDer<'static>>, TlsError> {
    use rustls::pki_types::pem::PemObject;
    let bytes = read(path)?;
    let certs: Vec<_> = rustls::pki_types::CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<_, _>>()
        .map_err(|error| TlsError::Pem {
            path: path.to_path_buf(),
            what: format!("not a PEM certificate file ({error})"),
        })?;
    if certs.is_empty() {
        return Err(TlsError::Pem {
            path: path.to_path_buf(),
            what: "holds no certificate (-----BEGIN CERTIFICATE-----)".into(),
        });
    }
    Ok(certs)
}

fn read_key(path: &Path) -> Result<rustls::pki_types::PrivateKeyDer<'static>, TlsError> {
    use rustls::pki_types::pem::PemObject;
    let bytes = read(path)?;
    rustls::pki_types::PrivateKeyDer::from_pem_slice(&bytes).map_err(|error| TlsError::Pem {
        path: path.to_path_buf(),
        what: format!("holds no private key in PEM (PKCS#8, PKCS#1 or SEC1): {error}"),
    })
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|error| TlsError::Io {
        path: path.to_path_buf(),
        error,
    })
}

/// A `reqwest` client builder over rustls with ring, trusting the system's
/// roots and the CA in `ca_cert` (PEM) when given.
pub fn client_builder(ca_cert: Option<&Path>) -> Result<reqwest::ClientBuilder, TlsError> {
    install_crypto_provider();
    let mut builder = reqwest::Client::builder();
    if let Some(path) = ca_cert {
        for der in read_certs(path)? {
            let cert = reqwest::Certificate::from_der(&der).map_err(|error| TlsError::Pem {
                path: path.to_path_buf(),
                what: format!("a certificate in it is not usable: {error}"),
            })?;
            builder = builder.add_root_certificate(cert);
        }
    }
    Ok(builder)
}

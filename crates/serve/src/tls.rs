//! Server TLS: PEM files -> a rustls [`ServerConfig`] (TLS 1.3, optionally 1.2, ALPN
//! `http/1.1`, optional client-certificate verification), and [`Tls`], the configuration a
//! listener uses, replaceable while it runs (certificate rotation without a restart: each new
//! connection takes the current one; established connections keep theirs).
//!
//! What stays with the servers: cipher-suite policy (pass a [`CryptoProvider`] with the suites
//! you want) and any rule about *which* verified client may connect (wrap the verifier from
//! [`client_ca_verifier`] in your own [`ClientCertVerifier`]). This module never reads files
//! other than the ones it is given, and never logs key material or PEM contents.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arc_swap::ArcSwap;
use rustls::crypto::CryptoProvider;
use rustls::server::danger::ClientCertVerifier;
use rustls::server::WebPkiClientVerifier;
use rustls::ServerConfig;
use rustls_pki_types::pem::{self, PemObject};
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// Why a TLS configuration could not be built. Messages name the file, never its contents.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// The file could not be read, or a PEM section in it is malformed.
    #[error("{}: {source}", path.display())]
    Pem { path: PathBuf, source: pem::Error },
    /// The file holds no `CERTIFICATE` section.
    #[error("{}: no PEM certificate found", path.display())]
    NoCertificate { path: PathBuf },
    /// The file holds no PKCS#8, PKCS#1 or SEC1 private key section.
    #[error("{}: no PEM private key found", path.display())]
    NoPrivateKey { path: PathBuf },
    /// A certificate of the client CA file is not a usable trust anchor.
    #[error("client CA {}: {source}", path.display())]
    ClientCa {
        path: PathBuf,
        source: rustls::Error,
    },
    /// No client-certificate verifier can be built from the client CA file.
    #[error("client CA {}: {source}", path.display())]
    ClientVerifier {
        path: PathBuf,
        source: rustls::server::VerifierBuilderError,
    },
    /// The provider supports none of the requested protocol versions.
    #[error("TLS protocol versions: {0}")]
    Versions(rustls::Error),
    /// The private key does not match the certificate, or is of an unsupported type.
    #[error("{}: {source}", key_file.display())]
    CertifiedKey {
        key_file: PathBuf,
        source: rustls::Error,
    },
}

/// How [`server_config`] builds a configuration.
#[derive(Debug, Clone)]
pub struct TlsOptions {
    /// The cryptography, and the cipher suites it offers. Default: rustls' *ring* provider with
    /// its default suites.
    pub provider: Arc<CryptoProvider>,
    /// Also offer TLS 1.2 (TLS 1.3 always). Default: true.
    pub tls12: bool,
    /// Require and verify client certificates (mTLS) with this verifier. Default: none.
    pub client_verifier: Option<Arc<dyn ClientCertVerifier>>,
}

impl Default for TlsOptions {
    fn default() -> Self {
        TlsOptions {
            provider: Arc::new(rustls::crypto::ring::default_provider()),
            tls12: true,
            client_verifier: None,
        }
    }
}

/// Every certificate in a PEM file, in file order (a chain: leaf first). Other sections are
/// skipped; a file without any certificate is an error.
pub fn read_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem_error = |source| TlsError::Pem {
        path: path.to_path_buf(),
        source,
    };
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(pem_error)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(pem_error)?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate {
            path: path.to_path_buf(),
        });
    }
    Ok(certs)
}

/// The first private key (PKCS#8, PKCS#1 or SEC1) in a PEM file.
pub fn read_private_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| match e {
        pem::Error::NoItemsFound => TlsError::NoPrivateKey {
            path: path.to_path_buf(),
        },
        source => TlsError::Pem {
            path: path.to_path_buf(),
            source,
        },
    })
}

/// A verifier that requires a client certificate chaining to one of the certificates in
/// `ca_file` (webpki path validation, with `provider`'s signature algorithms).
pub fn client_ca_verifier(
    ca_file: &Path,
    provider: Arc<CryptoProvider>,
) -> Result<Arc<dyn ClientCertVerifier>, TlsError> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in read_certificates(ca_file)? {
        roots.add(cert).map_err(|source| TlsError::ClientCa {
            path: ca_file.to_path_buf(),
            source,
        })?;
    }
    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
        .build()
        .map_err(|source| TlsError::ClientVerifier {
            path: ca_file.to_path_buf(),
            source,
        })
}

/// A server configuration from a PEM certificate chain and private key: TLS 1.3 (and 1.2 if
/// `options.tls12`), ALPN `http/1.1` (the only protocol the listener speaks), client
/// certificates as `options.client_verifier` says.
pub fn server_config(
    cert_file: &Path,
    key_file: &Path,
    options: &TlsOptions,
) -> Result<Arc<ServerConfig>, TlsError> {
    let certs = read_certificates(cert_file)?;
    let key = read_private_key(key_file)?;
    let versions: &[&rustls::SupportedProtocolVersion] = if options.tls12 {
        &[&rustls::version::TLS13, &rustls::version::TLS12]
    } else {
        &[&rustls::version::TLS13]
    };
    let builder = ServerConfig::builder_with_provider(options.provider.clone())
        .with_protocol_versions(versions)
        .map_err(TlsError::Versions)?;
    let builder = match &options.client_verifier {
        None => builder.with_no_client_auth(),
        Some(verifier) => builder.with_client_cert_verifier(verifier.clone()),
    };
    let mut config =
        builder
            .with_single_cert(certs, key)
            .map_err(|source| TlsError::CertifiedKey {
                key_file: key_file.to_path_buf(),
                source,
            })?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// The TLS configuration of a listener. [`Tls::replace`] swaps it while the listener runs; the
/// swap is lock-free for the connections reading it (one atomic load per handshake).
pub struct Tls {
    current: ArcSwap<ServerConfig>,
}

impl Tls {
    pub fn new(config: Arc<ServerConfig>) -> Tls {
        Tls {
            current: ArcSwap::new(config),
        }
    }

    /// [`server_config`] wrapped for a listener.
    pub fn from_files(
        cert_file: &Path,
        key_file: &Path,
        options: &TlsOptions,
    ) -> Result<Tls, TlsError> {
        Ok(Tls::new(server_config(cert_file, key_file, options)?))
    }

    /// The configuration the next handshake will use.
    pub fn current(&self) -> Arc<ServerConfig> {
        self.current.load_full()
    }

    /// New connections use `config` from now on; established ones are not touched.
    pub fn replace(&self, config: Arc<ServerConfig>) {
        self.current.store(config);
    }
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tls").finish_non_exhaustive()
    }
}

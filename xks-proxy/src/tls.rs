//! TLS (rustls, ring provider): TLS 1.3 and optionally 1.2, by default only the four cipher
//! suites the XKS spec names, HTTP/1.1 via ALPN, and optional mTLS that accepts only client
//! certificates chaining to a configured CA *and* whose subject CN is one of the configured
//! names (default `cks.kms.<region>.amazonaws.com`). Any client-certificate rejection ends the
//! handshake with a `handshake_failure` alert.
//!
//! The server configuration is rebuilt by [`TlsHolder::reload`] (certificate rotation without a
//! restart); each new connection uses the current one.

use std::path::Path;
use std::sync::{Arc, RwLock};

use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::WebPkiClientVerifier;
use rustls::{CipherSuite, DigitallySignedStruct, DistinguishedName, SignatureScheme};

use crate::config::TlsConfig;

/// The suites of the XKS spec (§ transport).
const SPEC_SUITES: [CipherSuite; 4] = [
    CipherSuite::TLS13_AES_256_GCM_SHA384,
    CipherSuite::TLS13_CHACHA20_POLY1305_SHA256,
    CipherSuite::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
    CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
];

fn provider(spec_only: bool) -> CryptoProvider {
    let mut p = rustls::crypto::ring::default_provider();
    if spec_only {
        p.cipher_suites.retain(|s| SPEC_SUITES.contains(&s.suite()));
    }
    p
}

fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let f = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let certs = rustls_pemfile::certs(&mut std::io::BufReader::new(f))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{}: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!("{}: no PEM certificate found", path.display()));
    }
    Ok(certs)
}

fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, String> {
    let f = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    rustls_pemfile::private_key(&mut std::io::BufReader::new(f))
        .map_err(|e| format!("{}: {e}", path.display()))?
        .ok_or_else(|| format!("{}: no PEM private key found", path.display()))
}

/// The subject common names of a DER certificate.
pub fn subject_common_names(der: &[u8]) -> Vec<String> {
    match x509_parser::parse_x509_certificate(der) {
        Ok((_, cert)) => cert
            .subject()
            .iter_common_name()
            .filter_map(|cn| cn.as_str().ok().map(str::to_string))
            .collect(),
        Err(_) => Vec::new(),
    }
}

/// Chain validation by webpki, then the subject check; every failure is reported as a
/// generic error so that rustls answers with a `handshake_failure` alert.
#[derive(Debug)]
struct SubjectVerifier {
    inner: Arc<dyn ClientCertVerifier>,
    subjects: Vec<String>,
}

impl ClientCertVerifier for SubjectVerifier {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        true
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        if let Err(e) = self
            .inner
            .verify_client_cert(end_entity, intermediates, now)
        {
            tracing::warn!(error = %e, "mTLS: client certificate rejected");
            return Err(rustls::Error::General(format!(
                "client certificate rejected: {e}"
            )));
        }
        let names = subject_common_names(end_entity.as_ref());
        if names.iter().any(|n| self.subjects.iter().any(|s| s == n)) {
            Ok(ClientCertVerified::assertion())
        } else {
            tracing::warn!(subject_cn = ?names, allowed = ?self.subjects, "mTLS: client certificate subject not allowed");
            Err(rustls::Error::General(
                "client certificate subject is not allowed".into(),
            ))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner
            .verify_tls12_signature(message, cert, dss)
            .map_err(|e| rustls::Error::General(format!("client signature: {e}")))
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner
            .verify_tls13_signature(message, cert, dss)
            .map_err(|e| rustls::Error::General(format!("client signature: {e}")))
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// Builds the rustls server configuration from files.
pub fn server_config(cfg: &TlsConfig) -> Result<Arc<rustls::ServerConfig>, String> {
    let provider = Arc::new(provider(cfg.spec_suites_only));
    let versions: &[&rustls::SupportedProtocolVersion] = if cfg.tls12 {
        &[&rustls::version::TLS13, &rustls::version::TLS12]
    } else {
        &[&rustls::version::TLS13]
    };
    let certs = read_certs(&cfg.cert_file)?;
    let key = read_key(&cfg.key_file)?;
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(versions)
        .map_err(|e| e.to_string())?;
    let builder = match &cfg.client_auth {
        None => builder.with_no_client_auth(),
        Some(ca) => {
            let mut roots = rustls::RootCertStore::empty();
            for c in read_certs(&ca.ca_file)? {
                roots
                    .add(c)
                    .map_err(|e| format!("{}: {e}", ca.ca_file.display()))?;
            }
            let inner = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|e| format!("client CA {}: {e}", ca.ca_file.display()))?;
            builder.with_client_cert_verifier(Arc::new(SubjectVerifier {
                inner,
                subjects: ca.subjects.clone(),
            }))
        }
    };
    let mut config = builder
        .with_single_cert(certs, key)
        .map_err(|e| format!("{}: {e}", cfg.key_file.display()))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// The current TLS configuration, replaceable at run time.
pub struct TlsHolder {
    current: RwLock<Arc<rustls::ServerConfig>>,
    pub mtls: bool,
}

impl TlsHolder {
    pub fn new(cfg: &TlsConfig) -> Result<TlsHolder, String> {
        Ok(TlsHolder {
            current: RwLock::new(server_config(cfg)?),
            mtls: cfg.client_auth.is_some(),
        })
    }

    pub fn acceptor(&self) -> tokio_rustls::TlsAcceptor {
        tokio_rustls::TlsAcceptor::from(
            self.current
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .clone(),
        )
    }

    /// Rebuilds from files; on error the current configuration stays.
    pub fn reload(&self, cfg: &TlsConfig) -> Result<(), String> {
        let new = server_config(cfg)?;
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = new;
        Ok(())
    }
}

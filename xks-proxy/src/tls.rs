//! TLS (rustls, ring provider): TLS 1.3 and optionally 1.2, by default only the four cipher
//! suites the XKS spec names, HTTP/1.1 via ALPN, and optional mTLS that accepts only client
//! certificates chaining to a configured CA *and* whose subject CN is one of the configured
//! names (default `cks.kms.<region>.amazonaws.com`). Any client-certificate rejection ends the
//! handshake with a `handshake_failure` alert.
//!
//! The server configuration is rebuilt by [`TlsHolder::reload`] (certificate rotation without a
//! restart); each new connection uses the current one. PEM reading, protocol versions, ALPN and
//! the CA chain check are the shared listener's (`serve::tls`); the suites and the subject
//! check are this module's.

use std::sync::Arc;

use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
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

/// Builds the rustls server configuration from files: the generic part (PEM files, versions,
/// ALPN, CA chain validation) is the shared listener's (`serve::tls`); the suites and the
/// subject check are this proxy's policy.
pub fn server_config(cfg: &TlsConfig) -> Result<Arc<rustls::ServerConfig>, String> {
    let provider = Arc::new(provider(cfg.spec_suites_only));
    let client_verifier = match &cfg.client_auth {
        None => None,
        Some(ca) => {
            let inner = serve::tls::client_ca_verifier(&ca.ca_file, provider.clone())
                .map_err(|e| e.to_string())?;
            let verifier: Arc<dyn ClientCertVerifier> = Arc::new(SubjectVerifier {
                inner,
                subjects: ca.subjects.clone(),
            });
            Some(verifier)
        }
    };
    let options = serve::TlsOptions {
        provider,
        tls12: cfg.tls12,
        client_verifier,
    };
    serve::tls::server_config(&cfg.cert_file, &cfg.key_file, &options).map_err(|e| e.to_string())
}

/// The listener's TLS configuration, replaced by [`TlsHolder::reload`].
pub struct TlsHolder {
    listener: Arc<serve::Tls>,
    pub mtls: bool,
}

impl TlsHolder {
    pub fn new(cfg: &TlsConfig) -> Result<TlsHolder, String> {
        Ok(TlsHolder {
            listener: Arc::new(serve::Tls::new(server_config(cfg)?)),
            mtls: cfg.client_auth.is_some(),
        })
    }

    /// What the listener reads at each handshake.
    pub fn listener(&self) -> Arc<serve::Tls> {
        self.listener.clone()
    }

    /// Rebuilds from files; on error the current configuration stays.
    pub fn reload(&self, cfg: &TlsConfig) -> Result<(), String> {
        self.listener.replace(server_config(cfg)?);
        Ok(())
    }
}

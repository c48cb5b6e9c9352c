//! The HTTPS + SigV4 client of one external key store proxy.

use std::sync::Arc;

use parking_lot::Mutex;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use rustls_pki_types::pem::{self, PemObject};
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use secrecy::{ExposeSecret, SecretString};
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::endpoint::{EndpointPolicy, Refused};
use sigv4::{SignableRequest, Signer};
use xks_wire::{self, ErrorName, ErrorResponse, Operation};

/// Per-attempt time budget (AWS KMS waits 250 ms for the proxy).
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_millis(250);
/// Largest response body read from a proxy.
const MAX_RESPONSE: usize = 64 * 1024;
/// Idle connections kept per proxy.
const MAX_IDLE: usize = 64;

/// Where a store's proxy is and how to authenticate to it.
#[derive(Clone)]
pub struct XksTarget {
    /// Host name (SNI and certificate name) of `XksProxyUriEndpoint`.
    pub host: String,
    pub port: u16,
    /// `XksProxyUriPath`: `[/prefix]/kms/xks/v1`.
    pub uri_path: String,
    pub access_key_id: String,
    pub secret: SecretString,
    /// The region the KMS signs for.
    pub region: String,
}

impl std::fmt::Debug for XksTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("XksTarget")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("uri_path", &self.uri_path)
            .field("access_key_id", &self.access_key_id)
            .finish()
    }
}

/// TLS settings of the client side: trusted roots and an optional client certificate.
#[derive(Clone)]
pub struct XksTls(pub Arc<rustls::ClientConfig>);

impl XksTls {
    /// Roots from a PEM bundle (or the public web PKI roots when `ca_pem` is `None`), and an
    /// optional client certificate chain + key (PEM) for mTLS.
    pub fn new(ca_pem: Option<&[u8]>, client: Option<(&[u8], &[u8])>) -> Result<Self, String> {
        let mut roots = rustls::RootCertStore::empty();
        match ca_pem {
            Some(pem) => {
                for cert in CertificateDer::pem_slice_iter(pem) {
                    let cert = cert.map_err(|e| format!("CA bundle: {e}"))?;
                    roots.add(cert).map_err(|e| format!("CA bundle: {e}"))?;
                }
                if roots.is_empty() {
                    return Err("CA bundle: no certificate".into());
                }
            }
            None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .map_err(|e| e.to_string())?
            .with_root_certificates(roots);
        let mut config = match client {
            None => builder.with_no_client_auth(),
            Some((chain, key)) => {
                let certs = CertificateDer::pem_slice_iter(chain)
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| format!("client certificate: {e}"))?;
                let key = PrivateKeyDer::from_pem_slice(key).map_err(|e| match e {
                    pem::Error::NoItemsFound => "client key: none found".to_string(),
                    e => format!("client key: {e}"),
                })?;
                builder
                    .with_client_auth_cert(certs, key)
                    .map_err(|e| format!("client certificate: {e}"))?
            }
        };
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(XksTls(Arc::new(config)))
    }
}

/// A failed call, classified.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum XksError {
    /// No answer within the budget (after the retry).
    #[error("the external key store proxy did not respond in time")]
    Timeout,
    /// TCP connection failed.
    #[error("cannot connect to the external key store proxy")]
    Unreachable,
    /// The TLS handshake failed (certificate, protocol).
    #[error("TLS handshake with the external key store proxy failed: {0}")]
    Tls(String),
    /// The proxy answered with an error body; `name` is `None` for a name outside the spec's
    /// set (such names are not kept: they would be unbounded text from a tenant's proxy).
    #[error("the external key store proxy returned {} (HTTP {status})", name.map_or("an error outside the XKS specification", ErrorName::as_str))]
    Proxy {
        status: u16,
        name: Option<ErrorName>,
    },
    /// The proxy's answer cannot be interpreted.
    #[error("cannot interpret the external key store proxy's response: {0}")]
    InvalidResponse(String),
    /// The endpoint resolves to an address the KMS does not connect to (nothing was sent).
    #[error("the external key store proxy endpoint resolves to {}, which this server does not connect to", .0.as_str())]
    RefusedAddress(Refused),
}

impl XksError {
    /// Whether AWS KMS retries this (network timeouts and connection failures).
    fn retryable(&self) -> bool {
        matches!(self, XksError::Timeout | XksError::Unreachable)
    }
}

/// The client of one proxy.
pub struct XksClient {
    target: XksTarget,
    /// Metrics and the store id they are labelled with.
    metrics: Option<(Arc<crate::metrics::Metrics>, String)>,
    /// `notAfter` (Unix seconds) of the proxy certificate seen on the last new connection.
    cert_not_after: Mutex<Option<i64>>,
    tls: XksTls,
    idle: Mutex<Vec<SendRequest<Full<Bytes>>>>,
    timeout: Duration,
    /// Which resolved addresses may be connected to.
    policy: Arc<EndpointPolicy>,
}

impl XksClient {
    pub fn new(target: XksTarget, tls: XksTls) -> Self {
        XksClient {
            target,
            metrics: None,
            cert_not_after: Mutex::new(None),
            tls,
            idle: Mutex::default(),
            timeout: ATTEMPT_TIMEOUT,
            policy: Arc::default(),
        }
    }

    /// Sets the rules for the addresses the endpoint may resolve to (default: public
    /// addresses and private ranges; see [`EndpointPolicy`]).
    pub fn with_policy(mut self, policy: Arc<EndpointPolicy>) -> Self {
        self.policy = policy;
        self
    }

    /// Overrides the per-attempt budget (tests).
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Records latency and errors of this client's calls, labelled with a store id.
    pub fn with_metrics(mut self, metrics: Arc<crate::metrics::Metrics>, store_id: &str) -> Self {
        self.metrics = Some((metrics, store_id.to_string()));
        self
    }

    /// Unix time at which the proxy's certificate expires (from the last new connection).
    pub fn certificate_not_after(&self) -> Option<i64> {
        *self.cert_not_after.lock()
    }

    pub fn target(&self) -> &XksTarget {
        &self.target
    }

    /// Resolves the endpoint and checks every address before any is connected to: a name
    /// that resolves to one refused address is refused as a whole (no traffic is sent).
    async fn checked_addresses(&self) -> Result<Vec<std::net::SocketAddr>, XksError> {
        let addrs: Vec<std::net::SocketAddr> =
            tokio::net::lookup_host((self.target.host.as_str(), self.target.port))
                .await
                .map_err(|_| XksError::Unreachable)?
                .collect();
        for a in &addrs {
            self.policy
                .check(a.ip())
                .map_err(XksError::RefusedAddress)?;
        }
        Ok(addrs)
    }

    async fn connect(&self) -> Result<SendRequest<Full<Bytes>>, XksError> {
        // Only the addresses that were checked are connected to (no second lookup), in the
        // resolver's order, as `TcpStream::connect(host)` would.
        let mut tcp = None;
        for addr in self.checked_addresses().await? {
            if let Ok(t) = tokio::net::TcpStream::connect(addr).await {
                tcp = Some(t);
                break;
            }
        }
        let tcp = tcp.ok_or(XksError::Unreachable)?;
        let _ = tcp.set_nodelay(true);
        let name = rustls::pki_types::ServerName::try_from(self.target.host.clone())
            .map_err(|e| XksError::Tls(e.to_string()))?;
        let tls = tokio_rustls::TlsConnector::from(self.tls.0.clone())
            .connect(name, tcp)
            .await
            .map_err(|e| XksError::Tls(e.to_string()))?;
        if let Some(cert) = tls.get_ref().1.peer_certificates().and_then(|c| c.first()) {
            if let Ok((_, parsed)) = x509_parser::parse_x509_certificate(cert.as_ref()) {
                *self.cert_not_after.lock() = Some(parsed.validity().not_after.timestamp());
            }
        }
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .map_err(|e| XksError::Tls(e.to_string()))?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(sender)
    }

    async fn sender(&self) -> Result<SendRequest<Full<Bytes>>, XksError> {
        loop {
            let next = self.idle.lock().pop();
            match next {
                Some(mut s) => {
                    if s.ready().await.is_ok() {
                        return Ok(s);
                    }
                }
                None => return self.connect().await,
            }
        }
    }

    async fn attempt(&self, path: &str, body: &Bytes) -> Result<Vec<u8>, XksError> {
        let mut sender = self.sender().await?;
        let host = if self.target.port == 443 {
            self.target.host.clone()
        } else {
            format!("{}:{}", self.target.host, self.target.port)
        };
        // Signed like AWS KMS signs towards a proxy: `host;x-amz-date` only (XKS API §1.10);
        // `content-type` is added unsigned. A signer per attempt costs a few small copies of
        // the credentials, nothing next to the round trip.
        let signer = Signer::new(
            self.target.access_key_id.as_str(),
            self.target.secret.expose_secret(),
            self.target.region.as_str(),
            xks_wire::SIGV4_SERVICE,
        );
        let signed = signer
            .sign(
                &SignableRequest {
                    method: "POST",
                    host: &host,
                    path,
                    query: "",
                    headers: &[],
                    body,
                },
                chrono::Utc::now(),
            )
            .map_err(|e| XksError::InvalidResponse(e.to_string()))?;
        let mut req = hyper::Request::builder()
            .method("POST")
            .uri(path)
            .header("host", &host)
            .header("content-type", "application/json");
        for (name, value) in signed.headers() {
            req = req.header(name, value);
        }
        let req = req
            .body(Full::new(body.clone()))
            .map_err(|e| XksError::InvalidResponse(e.to_string()))?;
        let resp = sender
            .send_request(req)
            .await
            .map_err(|_| XksError::Unreachable)?;
        let status = resp.status().as_u16();
        let bytes = http_body_util::Limited::new(resp.into_body(), MAX_RESPONSE)
            .collect()
            .await
            .map_err(|_| XksError::InvalidResponse("response body unreadable or too large".into()))?
            .to_bytes();
        // Keep the connection for the next call.
        {
            let mut idle = self.idle.lock();
            if idle.len() < MAX_IDLE {
                idle.push(sender);
            }
        }
        if status == 200 {
            return Ok(bytes.to_vec());
        }
        match serde_json::from_slice::<ErrorResponse>(&bytes) {
            Ok(e) => Err(XksError::Proxy {
                status,
                name: ErrorName::parse(&e.error_name),
            }),
            Err(_) => Err(XksError::InvalidResponse(format!(
                "HTTP {status} without an XKS error body"
            ))),
        }
    }

    /// One API call: 250 ms per attempt, one retry on a timeout or connection failure.
    pub async fn call<Req: Serialize, Resp: DeserializeOwned>(
        &self,
        op: Operation,
        key_id: &str,
        req: &Req,
    ) -> Result<Resp, XksError> {
        let base = self.target.uri_path.trim_end_matches('/');
        let prefix = base.strip_suffix(xks_wire::API_BASE).unwrap_or(base);
        let path = xks_wire::uri_path(prefix.trim_matches('/'), op, key_id);
        let body = Bytes::from(
            serde_json::to_vec(req).map_err(|e| XksError::InvalidResponse(e.to_string()))?,
        );
        let started = std::time::Instant::now();
        let result = self.call_with_retry(op, &path, &body).await;
        if let Some((m, store)) = &self.metrics {
            m.observe_xks_call(store, op.as_str(), started.elapsed().as_secs_f64());
            if let Err(e) = &result {
                let kind = match e {
                    XksError::Timeout => "Timeout",
                    XksError::Unreachable => "Unreachable",
                    XksError::Tls(_) => "TlsError",
                    XksError::InvalidResponse(_) => "InvalidResponse",
                    XksError::RefusedAddress(_) => "RefusedAddress",
                    XksError::Proxy { name, .. } => name.map_or("Other", ErrorName::as_str),
                };
                m.count_xks_error(store, kind);
            }
        }
        result
    }

    async fn call_with_retry<Resp: DeserializeOwned>(
        &self,
        op: Operation,
        path: &str,
        body: &Bytes,
    ) -> Result<Resp, XksError> {
        let mut last = XksError::Timeout;
        for _ in 0..2 {
            match tokio::time::timeout(self.timeout, self.attempt(path, body)).await {
                Ok(Ok(bytes)) => {
                    return serde_json::from_slice(&bytes).map_err(|e| {
                        XksError::InvalidResponse(format!("{op} response: {}", e.classify_name()))
                    })
                }
                Ok(Err(e)) if !e.retryable() => return Err(e),
                Ok(Err(e)) => last = e,
                Err(_) => last = XksError::Timeout,
            }
        }
        Err(last)
    }
}

trait ClassifyName {
    fn classify_name(&self) -> &'static str;
}

impl ClassifyName for serde_json::Error {
    fn classify_name(&self) -> &'static str {
        match self.classify() {
            serde_json::error::Category::Io => "I/O error",
            serde_json::error::Category::Syntax => "malformed JSON",
            serde_json::error::Category::Data => "unexpected fields or types",
            serde_json::error::Category::Eof => "truncated JSON",
        }
    }
}

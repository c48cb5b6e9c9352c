//! Where requests go and what they carry: the loopback-only endpoint, HTTP/1.1 connections,
//! and signed request templates.
//!
//! Loopback only: the endpoint must be plain `http://` to `localhost`, an address in
//! 127.0.0.0/8 or `::1`, with no user info, path or query; a name is resolved and *every*
//! address it resolves to must be loopback, or nothing is sent. A load generator pointed at
//! another machine by a typo is a denial-of-service tool.
//!
//! Signing: every request is SigV4-signed through [`sigv4::Signer`] (the `aws-sigv4` crate),
//! but a [`Template`] reuses one signature for up to [`SIGNATURE_REUSE`] (see the crate
//! documentation for why and what it does to the numbers).

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use chrono::Utc;
use http::header::{HeaderName, HeaderValue, CONTENT_TYPE, HOST};
use http::{Method, Request, StatusCode, Uri};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use parking_lot::Mutex;
use sigv4::{SignableRequest, Signer};
use tokio::net::TcpStream;
use tokio::time::Instant;

use crate::BoxError;

/// Per-request timeout: a hung server cannot keep a run from ending.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// How long one signature is reused for a template's request (see the crate documentation).
/// Far inside the servers' clock-skew window (5 minutes by default in both).
pub const SIGNATURE_REUSE: Duration = Duration::from_secs(1);

/// A sender over one HTTP/1.1 keep-alive connection.
pub type Sender = SendRequest<Full<Bytes>>;

/// A resolved loopback endpoint.
#[derive(Debug, Clone)]
pub struct Endpoint {
    /// The addresses the endpoint resolved to (all loopback).
    pub addrs: Vec<SocketAddr>,
    /// The `Host` header (the endpoint's authority as given), which is also signed.
    pub host: String,
    /// The endpoint as given.
    pub url: String,
    /// Several servers (`--endpoint A,B`): each new connection goes to the next one in turn,
    /// as a round-robin load balancer would send it; otherwise the addresses are fallbacks.
    pub round_robin: bool,
    next: Arc<AtomicUsize>,
}

impl Endpoint {
    /// Parses and resolves `endpoint`, refusing anything that is not loopback.
    pub async fn resolve(endpoint: &str) -> Result<Endpoint, BoxError> {
        let uri: Uri = endpoint.parse()?;
        if uri.scheme_str() != Some("http") {
            return Err(format!("endpoint {endpoint}: only http:// is supported").into());
        }
        let authority = uri
            .authority()
            .ok_or_else(|| format!("endpoint {endpoint}: no host"))?;
        if authority.as_str().contains('@') {
            return Err(format!("endpoint {endpoint}: user info is not supported").into());
        }
        if !matches!(uri.path(), "" | "/") || uri.query().is_some() {
            return Err(format!("endpoint {endpoint}: must not have a path or query").into());
        }
        let host = authority.host();
        let port = authority.port_u16().unwrap_or(80);
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        let addrs: Vec<SocketAddr> = if let Ok(ip) = bare.parse::<IpAddr>() {
            vec![SocketAddr::new(ip, port)]
        } else if bare.eq_ignore_ascii_case("localhost") {
            tokio::net::lookup_host((bare, port)).await?.collect()
        } else {
            return Err(format!("endpoint {endpoint}: host must be a loopback address").into());
        };
        if addrs.is_empty() || addrs.iter().any(|addr| !addr.ip().is_loopback()) {
            return Err(format!(
                "endpoint {endpoint}: refusing non-loopback address(es) {addrs:?}; only \
                 127.0.0.0/8, ::1 and localhost are allowed"
            )
            .into());
        }
        Ok(Endpoint {
            addrs,
            host: authority.as_str().to_owned(),
            url: endpoint.to_owned(),
            round_robin: false,
            next: Arc::default(),
        })
    }

    /// Resolves a comma-separated list of endpoints (each as [`Endpoint::resolve`]). With more
    /// than one, connections go round-robin over the servers (the first one's first address
    /// each), all with the first endpoint's `Host` (which the servers sign over, not check).
    pub async fn resolve_list(list: &str) -> Result<Endpoint, BoxError> {
        let parts: Vec<&str> = list.split(',').map(str::trim).collect();
        if parts.len() == 1 {
            return Self::resolve(list).await;
        }
        let mut resolved = Vec::with_capacity(parts.len());
        for p in &parts {
            resolved.push(Self::resolve(p).await?);
        }
        Ok(Endpoint {
            addrs: resolved.iter().map(|e| e.addrs[0]).collect(),
            host: resolved[0].host.clone(),
            url: list.to_owned(),
            round_robin: true,
            next: Arc::default(),
        })
    }

    /// Opens one keep-alive connection (Nagle off, as the servers' clients do).
    pub async fn connect(&self) -> Result<Sender, BoxError> {
        let mut last_error: Option<BoxError> = None;
        // Round-robin: start at the next server in turn (then fall back to the others).
        let first = if self.round_robin {
            self.next.fetch_add(1, Ordering::Relaxed) % self.addrs.len().max(1)
        } else {
            0
        };
        let order = self.addrs[first..].iter().chain(&self.addrs[..first]);
        for addr in order {
            match TcpStream::connect(addr).await {
                Ok(stream) => {
                    stream.set_nodelay(true)?;
                    let (sender, connection) =
                        hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
                    tokio::spawn(async move {
                        // Its errors surface on the sender side.
                        let _ = connection.await;
                    });
                    return Ok(sender);
                }
                Err(e) => last_error = Some(e.into()),
            }
        }
        Err(last_error.unwrap_or_else(|| "no address to connect to".into()))
    }
}

/// Sends one request and collects the response, within [`REQUEST_TIMEOUT`].
pub async fn send(
    sender: &mut Sender,
    request: Request<Full<Bytes>>,
) -> Result<(StatusCode, Bytes), BoxError> {
    let exchange = async {
        sender.ready().await?;
        let response = sender.send_request(request).await?;
        let status = response.status();
        let body = response.into_body().collect().await?.to_bytes();
        Ok::<_, BoxError>((status, body))
    };
    tokio::time::timeout(REQUEST_TIMEOUT, exchange)
        .await
        .map_err(|_| BoxError::from("request timed out"))?
}

/// How a request is signed.
#[derive(Debug, Clone)]
pub enum Scheme {
    /// The KMS JSON protocol: `X-Amz-Target: TrentService.<operation>` and `Content-Type`
    /// signed with `host;x-amz-date`, as botocore signs (the signature is for `POST /`, so the
    /// same headers sent to the baseline route are those of the real request).
    KmsJson { operation: String },
    /// The XKS proxy API: `host;x-amz-date` signed, as AWS KMS signs towards a proxy;
    /// `Content-Type: application/json` is sent unsigned.
    Xks,
}

/// The headers a signature adds (shared by the requests that reuse it).
type Signed = Arc<[(HeaderName, HeaderValue)]>;

/// One scenario's fixed request: a path, a body, how it is signed, and extra headers (the
/// benchmark floor's key header). Shared by every connection of a scenario.
pub struct Template {
    path: String,
    body: Bytes,
    scheme: Scheme,
    extra: Vec<(HeaderName, HeaderValue)>,
    signer: Signer,
    host: String,
    /// The last signature and when it was made (see [`SIGNATURE_REUSE`]).
    signed: Mutex<Option<(Instant, Signed)>>,
}

impl Template {
    pub fn new(
        endpoint: &Endpoint,
        signer: &Signer,
        scheme: Scheme,
        path: impl Into<String>,
        body: Bytes,
    ) -> Template {
        Template {
            path: path.into(),
            body,
            scheme,
            extra: Vec::new(),
            signer: signer.clone(),
            host: endpoint.host.clone(),
            signed: Mutex::new(None),
        }
    }

    /// The same request with one more (unsigned) header.
    pub fn with_header(mut self, name: &'static str, value: &str) -> Result<Template, BoxError> {
        self.extra
            .push((HeaderName::from_static(name), HeaderValue::from_str(value)?));
        Ok(self)
    }

    /// Signed headers made now, for one request.
    fn sign(&self) -> Result<Vec<(HeaderName, HeaderValue)>, BoxError> {
        let now = Utc::now();
        let mut out = Vec::with_capacity(5);
        match &self.scheme {
            Scheme::KmsJson { operation } => {
                for (name, value) in self
                    .signer
                    .sign_kms_json(&self.host, operation, &self.body, now)?
                {
                    out.push((
                        HeaderName::from_bytes(name.as_bytes())?,
                        HeaderValue::from_str(&value)?,
                    ));
                }
            }
            Scheme::Xks => {
                let signed = self.signer.sign(
                    &SignableRequest {
                        method: "POST",
                        host: &self.host,
                        path: &self.path,
                        query: "",
                        headers: &[],
                        body: &self.body,
                    },
                    now,
                )?;
                out.push((CONTENT_TYPE, HeaderValue::from_static("application/json")));
                for (name, value) in signed.headers() {
                    out.push((HeaderName::from_static(name), HeaderValue::from_str(value)?));
                }
            }
        }
        Ok(out)
    }

    /// The headers of the current signature, signing again when the last one is older than
    /// [`SIGNATURE_REUSE`]. One caller signs while the others wait on the lock (a few µs once
    /// a second).
    fn signed_headers(&self) -> Result<Signed, BoxError> {
        let mut slot = self.signed.lock();
        if let Some((at, headers)) = slot.as_ref() {
            if at.elapsed() < SIGNATURE_REUSE {
                return Ok(Arc::clone(headers));
            }
        }
        let headers: Signed = self.sign()?.into();
        *slot = Some((Instant::now(), Arc::clone(&headers)));
        Ok(headers)
    }

    /// A request ready to send (the signature possibly reused).
    pub fn request(&self) -> Result<Request<Full<Bytes>>, BoxError> {
        self.build(&self.signed_headers()?)
    }

    /// A request with a signature made now (setup calls).
    pub fn fresh_request(&self) -> Result<Request<Full<Bytes>>, BoxError> {
        self.build(&self.sign()?)
    }

    fn build(
        &self,
        signed: &[(HeaderName, HeaderValue)],
    ) -> Result<Request<Full<Bytes>>, BoxError> {
        let mut request = Request::builder()
            .method(Method::POST)
            .uri(self.path.as_str())
            .body(Full::new(self.body.clone()))?;
        let headers = request.headers_mut();
        headers.insert(HOST, HeaderValue::from_str(&self.host)?);
        for (name, value) in signed.iter().chain(&self.extra) {
            headers.append(name.clone(), value.clone());
        }
        Ok(request)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn only_loopback_endpoints() {
        for ok in [
            "http://127.0.0.1:4599",
            "http://127.1.2.3:80/",
            "http://[::1]:4599",
            "http://localhost:4599",
        ] {
            let endpoint = Endpoint::resolve(ok).await.unwrap();
            assert!(endpoint.addrs.iter().all(|a| a.ip().is_loopback()), "{ok}");
        }
        for bad in [
            "http://10.0.0.1:4599",
            "http://example.com",
            "https://127.0.0.1:4599",
            "http://[::ffff:7f00:1]:4599",
            "http://user@127.0.0.1:4599",
            "http://127.0.0.1:4599/prefix",
            "http://127.0.0.1:4599/?a=b",
            "http://0.0.0.0:4599",
            "http://192.168.1.1",
        ] {
            assert!(Endpoint::resolve(bad).await.is_err(), "{bad}");
        }
    }

    #[tokio::test]
    async fn signatures_are_reused_within_the_window_only() {
        let endpoint = Endpoint::resolve("http://127.0.0.1:4599").await.unwrap();
        let signer = Signer::new("AKIDEXAMPLE", "secret", "us-east-1", "kms");
        let template = Template::new(
            &endpoint,
            &signer,
            Scheme::KmsJson {
                operation: "Encrypt".into(),
            },
            "/__baseline",
            Bytes::from_static(b"{}"),
        )
        .with_header("x-kms-bench-key", "k")
        .unwrap();
        let a = template.request().unwrap();
        let b = template.request().unwrap();
        assert_eq!(a.headers(), b.headers());
        assert_eq!(a.uri().path(), "/__baseline");
        let auth = a.headers()["authorization"].to_str().unwrap();
        assert!(
            auth.contains("SignedHeaders=content-type;host;x-amz-date;x-amz-target"),
            "{auth}"
        );
        assert_eq!(a.headers()["x-amz-target"], "TrentService.Encrypt");
        assert_eq!(a.headers()["x-kms-bench-key"], "k");
        assert_eq!(a.headers()["host"], "127.0.0.1:4599");
        // An expired signature is replaced (X-Amz-Date has a resolution of one second).
        tokio::time::sleep(SIGNATURE_REUSE + Duration::from_millis(100)).await;
        let c = template.request().unwrap();
        assert_ne!(a.headers()["x-amz-date"], c.headers()["x-amz-date"]);
    }

    #[tokio::test]
    async fn xks_requests_sign_host_and_date() {
        let endpoint = Endpoint::resolve("http://localhost:9000").await.unwrap();
        let signer = Signer::new("AKIDEXAMPLE", "secret", "us-east-1", "kms-xks-proxy");
        let template = Template::new(
            &endpoint,
            &signer,
            Scheme::Xks,
            "/p/kms/xks/v1/keys/k/encrypt",
            Bytes::from_static(b"{}"),
        );
        let request = template.fresh_request().unwrap();
        let auth = request.headers()["authorization"].to_str().unwrap();
        assert!(auth.contains("SignedHeaders=host;x-amz-date,"), "{auth}");
        assert_eq!(request.headers()["content-type"], "application/json");
        assert_eq!(request.uri().path(), "/p/kms/xks/v1/keys/k/encrypt");
    }
}

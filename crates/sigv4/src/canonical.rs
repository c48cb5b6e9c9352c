//! The canonical request and the string to sign of a received request, computed the way
//! AWS's signers compute them, streamed into a hash or HMAC context without materializing the
//! text (the verifier's hot path), or into a buffer for tests and diagnostics
//! ([`canonical_request_and_string_to_sign`]).
//!
//! This module owns the canonicalization rules; it does not decide which headers must be
//! signed or whether a payload hash placeholder is acceptable (that is
//! [`verify`](crate::verify)'s policy), and it never signs.
//!
//! # Canonicalization rules (as implemented)
//! * **Path**: the raw (on-the-wire, already percent-encoded) path is normalized the way the
//!   AWS SDKs do for services other than S3 (empty and `.` segments are dropped, `..` removes
//!   the previous segment, a trailing `/` is kept), then every byte outside the RFC 3986
//!   unreserved set `A-Z a-z 0-9 - . _ ~` is percent-encoded (upper-case hex). Because the input
//!   is the already-encoded wire path, this is the "each path segment is URI-encoded twice" rule
//!   that AWS documents for every service except S3 (botocore and the Rust SDK do the same):
//!   a wire path `/a%2Fb` is canonicalized as `/a%252Fb`. For the paths our servers use
//!   (`/`, `/kms/xks/v1/keys/{id}/encrypt` with an optional prefix), which contain only
//!   unreserved characters, single and double encoding agree.
//! * **Query**: split on `&`, each pair at its first `=`; names and values are percent-decoded
//!   and re-encoded with the strict RFC 3986 rule (so `~`/`%7E` and `%2f`/`%2F` are equivalent,
//!   and `+` stays a literal plus, `%2B`); pairs sorted by encoded name, then encoded value.
//!   For presigned requests `X-Amz-Signature` is left out.
//! * **Headers**: the `SignedHeaders` list is used in the order given (clients send it
//!   sorted); each value is trimmed and internal runs of spaces/tabs collapsed to one space;
//!   multiple values of one header are joined with `,`. A signed header that is absent
//!   contributes an empty value (the signature then fails unless the client did the same).
//! * **Payload hash**: lower-case hex SHA-256 of the body, unless `x-amz-content-sha256` is
//!   present *and signed*: then its value is used. `UNSIGNED-PAYLOAD` is passed through as
//!   [`PayloadHash::Unsigned`] for the policy to judge; any other value must equal the body's
//!   SHA-256, else [`SigV4Error::ContentSha256Mismatch`].
//!
//! Presigned requests are hashed like header-signed ones (the payload hash is the body's
//! SHA-256, never an implicit `UNSIGNED-PAYLOAD`), which is what the SDKs do for services other
//! than S3.
//!
//! # Where signers disagree (found by `tests/differential.rs`)
//! Real signers differ on inputs that no AWS client sends to KMS or XKS; we follow botocore
//! and the JS SDK, the clients most of our traffic comes from:
//! * a path ending in a `.` or `..` segment: `aws-sigv4` keeps a trailing `/` (RFC 3986
//!   `remove_dot_segments`), botocore does not, and neither do we;
//! * a tab inside a header value: botocore and the JS SDK collapse it like a space, and so do
//!   we; `aws-sigv4` keeps it;
//! * a raw `+` in the query: `aws-sigv4` reads it as a space (form encoding); we read it as a
//!   plus (botocore and the JS SDK always send `%20` and `%2B`, never a raw `+`);
//! * a percent-escape that is not UTF-8 in the query (`%FF`): `aws-sigv4` replaces it with
//!   U+FFFD before re-encoding; we keep the byte.

use http::HeaderMap;
use ring::{digest, hmac};

use crate::error::SigV4Error;
use crate::parse::CredentialScope;
use crate::{ALGORITHM, TERMINATOR, UNSIGNED_PAYLOAD, X_AMZ_CONTENT_SHA256};

/// The parts of an HTTP request that SigV4 covers, borrowed from the server's request.
#[derive(Debug, Clone, Copy)]
pub struct RequestParts<'a> {
    /// Method, e.g. `POST`.
    pub method: &'a str,
    /// Raw path as received (percent-encoded as on the wire), e.g. `/`.
    pub path: &'a str,
    /// Raw query string without the `?`; empty when there is none.
    pub query: &'a str,
    /// All request headers.
    pub headers: &'a HeaderMap,
    /// The complete body.
    pub body: &'a [u8],
}

impl<'a> RequestParts<'a> {
    /// Builds the parts from an `http` request head and its collected body.
    pub fn from_http(parts: &'a http::request::Parts, body: &'a [u8]) -> Self {
        RequestParts {
            method: parts.method.as_str(),
            path: parts.uri.path(),
            query: parts.uri.query().unwrap_or(""),
            headers: &parts.headers,
            body,
        }
    }
}

/// Receives the bytes of a canonical request or string to sign: a buffer (for debugging and
/// tests) or directly a hash/HMAC context (the hot path: no allocation for the canonical text).
pub(crate) trait Sink {
    fn put(&mut self, bytes: &[u8]);
}

impl Sink for Vec<u8> {
    fn put(&mut self, bytes: &[u8]) {
        self.extend_from_slice(bytes);
    }
}

impl Sink for digest::Context {
    fn put(&mut self, bytes: &[u8]) {
        self.update(bytes);
    }
}

impl Sink for hmac::Context {
    fn put(&mut self, bytes: &[u8]) {
        self.update(bytes);
    }
}

/// Writes the canonical value of header `name` (lower case): all values trimmed,
/// whitespace-collapsed and joined with `,`.
fn write_header_value<S: Sink>(sink: &mut S, headers: &HeaderMap, name: &str) {
    for (i, value) in headers.get_all(name).iter().enumerate() {
        if i > 0 {
            sink.put(b",");
        }
        write_trimmed(sink, value.as_bytes());
    }
}

fn is_space(b: &u8) -> bool {
    *b == b' ' || *b == b'\t'
}

/// Writes `value` without leading/trailing whitespace and with internal runs collapsed.
fn write_trimmed<S: Sink>(sink: &mut S, value: &[u8]) {
    let mut first = true;
    for word in value.split(is_space).filter(|word| !word.is_empty()) {
        if !first {
            sink.put(b" ");
        }
        first = false;
        sink.put(word);
    }
}

const fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

const HEX_UPPER: &[u8; 16] = b"0123456789ABCDEF";
const HEX_LOWER: &[u8; 16] = b"0123456789abcdef";

/// Writes `bytes` with every byte outside the unreserved set as `%XX` (upper-case hex).
pub(crate) fn write_uri_encoded<S: Sink>(sink: &mut S, bytes: &[u8]) {
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        if !is_unreserved(b) {
            sink.put(&bytes[start..i]);
            let hi = HEX_UPPER[usize::from(b >> 4)];
            let lo = HEX_UPPER[usize::from(b & 0x0f)];
            sink.put(&[b'%', hi, lo]);
            start = i + 1;
        }
    }
    sink.put(&bytes[start..]);
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Percent-decodes `raw`; invalid escapes are kept literally, `+` is kept as `+`.
fn percent_decode_bytes(raw: &str) -> Vec<u8> {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'%' {
            if let (Some(hi), Some(lo)) = (
                bytes.get(i + 1).copied().and_then(hex_value),
                bytes.get(i + 2).copied().and_then(hex_value),
            ) {
                out.push(hi << 4 | lo);
                i += 3;
                continue;
            }
        }
        out.push(b);
        i += 1;
    }
    out
}

/// Percent-decodes a query value to text (lossy UTF-8).
pub(crate) fn percent_decode(raw: &str) -> String {
    match String::from_utf8(percent_decode_bytes(raw)) {
        Ok(s) => s,
        Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
    }
}

/// Re-encodes a raw query component: decode, then strict RFC 3986 encoding. Components made
/// only of unreserved bytes (every KMS/XKS request, and most query names) are copied as they
/// are, without decoding.
fn canonical_query_component(raw: &str) -> Vec<u8> {
    if raw.bytes().all(is_unreserved) {
        return raw.as_bytes().to_vec();
    }
    let decoded = percent_decode_bytes(raw);
    let mut out = Vec::with_capacity(decoded.len() + 8);
    write_uri_encoded(&mut out, &decoded);
    out
}

/// Does the path need dot-segment / empty-segment normalization? (Checked first so that the
/// paths real clients send, which never do, are encoded in one pass without a segment list.)
fn needs_normalization(path: &str) -> bool {
    let Some(rest) = path.strip_prefix('/') else {
        return true;
    };
    let mut segments = rest.split('/').peekable();
    while let Some(segment) = segments.next() {
        let last = segments.peek().is_none();
        match segment {
            "." | ".." => return true,
            "" if !last => return true,
            _ => {}
        }
    }
    false
}

pub(crate) fn write_canonical_path<S: Sink>(sink: &mut S, path: &str) {
    if path == "/" || path.is_empty() {
        sink.put(b"/");
        return;
    }
    if !needs_normalization(path) {
        // Starts with '/': encode every segment, keeping the separators.
        for (i, segment) in path.split('/').enumerate() {
            if i > 0 {
                sink.put(b"/");
            }
            write_uri_encoded(sink, segment.as_bytes());
        }
        return;
    }
    let mut segments: Vec<&str> = Vec::new();
    for segment in path.split('/') {
        match segment {
            "" | "." => {}
            ".." => {
                segments.pop();
            }
            other => segments.push(other),
        }
    }
    for segment in &segments {
        sink.put(b"/");
        write_uri_encoded(sink, segment.as_bytes());
    }
    if segments.is_empty() || path.ends_with('/') {
        sink.put(b"/");
    }
}

fn write_canonical_query<S: Sink>(sink: &mut S, query: &str, exclude_signature: bool) {
    if query.is_empty() {
        return;
    }
    let mut pairs: Vec<(Vec<u8>, Vec<u8>)> = query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            (
                canonical_query_component(key),
                canonical_query_component(value),
            )
        })
        .filter(|(key, _)| !(exclude_signature && key == b"X-Amz-Signature"))
        .collect();
    pairs.sort_unstable();
    for (i, (key, value)) in pairs.iter().enumerate() {
        if i > 0 {
            sink.put(b"&");
        }
        sink.put(key);
        sink.put(b"=");
        sink.put(value);
    }
}

/// The request fields that enter the canonical request.
pub(crate) struct CanonicalInput<'a, N> {
    pub(crate) method: &'a str,
    pub(crate) path: &'a str,
    pub(crate) query: &'a str,
    pub(crate) exclude_query_signature: bool,
    pub(crate) headers: &'a HeaderMap,
    pub(crate) signed_headers: &'a [N],
    pub(crate) payload_hash: &'a [u8],
}

pub(crate) fn write_canonical_request<S: Sink, N: AsRef<str>>(
    sink: &mut S,
    input: &CanonicalInput<'_, N>,
) {
    sink.put(input.method.as_bytes());
    sink.put(b"\n");
    write_canonical_path(sink, input.path);
    sink.put(b"\n");
    write_canonical_query(sink, input.query, input.exclude_query_signature);
    sink.put(b"\n");
    for name in input.signed_headers {
        let name = name.as_ref();
        sink.put(name.as_bytes());
        sink.put(b":");
        write_header_value(sink, input.headers, name);
        sink.put(b"\n");
    }
    sink.put(b"\n");
    for (i, name) in input.signed_headers.iter().enumerate() {
        if i > 0 {
            sink.put(b";");
        }
        sink.put(name.as_ref().as_bytes());
    }
    sink.put(b"\n");
    sink.put(input.payload_hash);
}

pub(crate) fn write_string_to_sign<S: Sink>(
    sink: &mut S,
    amz_date: &str,
    scope: &CredentialScope<'_>,
    canonical_request_hash: &[u8; 64],
) {
    sink.put(ALGORITHM.as_bytes());
    sink.put(b"\n");
    sink.put(amz_date.as_bytes());
    sink.put(b"\n");
    sink.put(scope.date.as_bytes());
    sink.put(b"/");
    sink.put(scope.region.as_bytes());
    sink.put(b"/");
    sink.put(scope.service.as_bytes());
    sink.put(b"/");
    sink.put(TERMINATOR.as_bytes());
    sink.put(b"\n");
    sink.put(canonical_request_hash);
}

/// Lower-case hex of a 32-byte value.
pub(crate) fn hex32(bytes: &[u8]) -> [u8; 64] {
    let mut out = [0u8; 64];
    for (pair, b) in out.chunks_exact_mut(2).zip(bytes) {
        pair[0] = HEX_LOWER[usize::from(b >> 4)];
        pair[1] = HEX_LOWER[usize::from(b & 0x0f)];
    }
    out
}

/// Decodes exactly 64 hex digits (either case).
pub(crate) fn unhex32(hex: &str) -> Option<[u8; 32]> {
    let bytes = hex.as_bytes();
    if bytes.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (b, pair) in out.iter_mut().zip(bytes.chunks_exact(2)) {
        *b = hex_value(pair[0])? << 4 | hex_value(pair[1])?;
    }
    Some(out)
}

pub(crate) fn sha256_hex(data: &[u8]) -> [u8; 64] {
    hex32(digest::digest(&digest::SHA256, data).as_ref())
}

/// The payload hash that enters the canonical request, per the rules in the module
/// documentation.
pub(crate) enum PayloadHash<'a> {
    /// The body's SHA-256, computed here (no signed `x-amz-content-sha256`).
    Computed([u8; 64]),
    /// A signed `x-amz-content-sha256` equal to the body's SHA-256 (either hex case).
    Header(&'a [u8]),
    /// A signed `x-amz-content-sha256: UNSIGNED-PAYLOAD`: the body is not covered.
    Unsigned,
}

impl PayloadHash<'_> {
    pub(crate) fn as_bytes(&self) -> &[u8] {
        match self {
            PayloadHash::Computed(hex) => hex,
            PayloadHash::Header(value) => value,
            PayloadHash::Unsigned => UNSIGNED_PAYLOAD.as_bytes(),
        }
    }
}

fn payload_hash<'a>(header: Option<&'a [u8]>, body: &[u8]) -> Result<PayloadHash<'a>, SigV4Error> {
    match header {
        None => Ok(PayloadHash::Computed(sha256_hex(body))),
        Some(value) if value == UNSIGNED_PAYLOAD.as_bytes() => Ok(PayloadHash::Unsigned),
        Some(value) => {
            if value.eq_ignore_ascii_case(&sha256_hex(body)) {
                Ok(PayloadHash::Header(value))
            } else {
                Err(SigV4Error::ContentSha256Mismatch)
            }
        }
    }
}

/// The payload hash of `req` given its signed headers.
pub(crate) fn request_payload_hash<'a>(
    req: &RequestParts<'a>,
    signed_headers: &[impl AsRef<str>],
) -> Result<PayloadHash<'a>, SigV4Error> {
    let header = if signed_headers
        .iter()
        .any(|name| name.as_ref() == X_AMZ_CONTENT_SHA256)
    {
        req.headers
            .get(X_AMZ_CONTENT_SHA256)
            .map(|value| value.as_bytes())
    } else {
        None
    };
    payload_hash(header, req.body)
}

/// Computes the canonical request and the string to sign of `req`, as a verifier would.
///
/// `signed_headers` are lower-case names in signing order; `amz_date` is the request's
/// `X-Amz-Date`; `exclude_query_signature` leaves `X-Amz-Signature` out of the canonical query
/// (presigned requests). Meant for tests and diagnostics: [`verify`](crate::verify) computes
/// the same bytes without materializing them.
pub fn canonical_request_and_string_to_sign(
    req: &RequestParts<'_>,
    signed_headers: &[impl AsRef<str>],
    amz_date: &str,
    scope: &CredentialScope<'_>,
    exclude_query_signature: bool,
) -> Result<(String, String), SigV4Error> {
    let hash = request_payload_hash(req, signed_headers)?;
    let mut canonical = Vec::with_capacity(256 + req.query.len());
    write_canonical_request(
        &mut canonical,
        &CanonicalInput {
            method: req.method,
            path: req.path,
            query: req.query,
            exclude_query_signature,
            headers: req.headers,
            signed_headers,
            payload_hash: hash.as_bytes(),
        },
    );
    let mut to_sign = Vec::with_capacity(160);
    write_string_to_sign(&mut to_sign, amz_date, scope, &sha256_hex(&canonical));
    Ok((
        String::from_utf8_lossy(&canonical).into_owned(),
        String::from_utf8_lossy(&to_sign).into_owned(),
    ))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use http::HeaderValue;

    #[test]
    fn canonical_request_text() {
        let mut headers = HeaderMap::new();
        headers.insert("host", HeaderValue::from_static("example.amazonaws.com"));
        headers.insert("x-amz-date", HeaderValue::from_static("20150830T123600Z"));
        headers.append("my-header", HeaderValue::from_static("  a   b  "));
        headers.append("my-header", HeaderValue::from_static("c\t\td"));
        let parts = RequestParts {
            method: "GET",
            path: "/a/./b/../c//d%2Fe/",
            query: "b=2&a=%7e x&a=1&X-Amz-Signature=zz&c",
            headers: &headers,
            body: b"",
        };
        let scope = CredentialScope {
            date: "20150830",
            region: "us-east-1",
            service: "service",
        };
        let signed = ["host", "my-header", "x-amz-date"];
        let (canonical, to_sign) =
            canonical_request_and_string_to_sign(&parts, &signed, "20150830T123600Z", &scope, true)
                .unwrap();
        assert_eq!(
            canonical,
            "GET\n/a/c/d%252Fe/\na=1&a=~%20x&b=2&c=\nhost:example.amazonaws.com\n\
             my-header:a b,c d\nx-amz-date:20150830T123600Z\n\nhost;my-header;x-amz-date\n\
             e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        let hash = sha256_hex(canonical.as_bytes());
        assert_eq!(
            to_sign,
            format!(
                "AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/service/aws4_request\n{}",
                std::str::from_utf8(&hash).unwrap()
            )
        );
        // Without the presigned flag, X-Amz-Signature stays in the query.
        let (canonical, _) = canonical_request_and_string_to_sign(
            &parts,
            &signed,
            "20150830T123600Z",
            &scope,
            false,
        )
        .unwrap();
        assert!(canonical.contains("\nX-Amz-Signature=zz&a=1&"));
    }

    #[test]
    fn canonical_paths() {
        let canon = |path: &str| {
            let mut out = Vec::new();
            write_canonical_path(&mut out, path);
            String::from_utf8(out).unwrap()
        };
        assert_eq!(canon("/"), "/");
        assert_eq!(canon(""), "/");
        assert_eq!(
            canon("/prefix/kms/xks/v1/keys/key-1_a.b~c/encrypt"),
            "/prefix/kms/xks/v1/keys/key-1_a.b~c/encrypt"
        );
        assert_eq!(canon("/a/"), "/a/");
        assert_eq!(canon("//"), "/");
        assert_eq!(canon("/.."), "/");
        // botocore's rule (no trailing slash after a final dot segment); see the module docs.
        assert_eq!(canon("/a/b/.."), "/a");
        assert_eq!(canon("/a/b/./"), "/a/b/");
        assert_eq!(canon("/a b:c"), "/a%20b%3Ac");
        assert_eq!(canon("/a%20b"), "/a%2520b");
        assert_eq!(canon("a/b"), "/a/b");
    }

    #[test]
    fn query_components_are_re_encoded_strictly() {
        let canon = |raw: &str| String::from_utf8(canonical_query_component(raw)).unwrap();
        assert_eq!(canon("abc-._~"), "abc-._~");
        assert_eq!(canon("%7e%7E~"), "~~~");
        assert_eq!(canon("a+b"), "a%2Bb");
        assert_eq!(canon("%2f/"), "%2F%2F");
        assert_eq!(canon("%zz"), "%25zz");
        assert_eq!(canon("%c3%A9"), "%C3%A9");
    }

    #[test]
    fn payload_hash_rules() {
        let body = b"{}";
        let hash = sha256_hex(body);
        assert!(matches!(
            payload_hash(None, body),
            Ok(PayloadHash::Computed(h)) if h == hash
        ));
        assert!(matches!(
            payload_hash(Some(UNSIGNED_PAYLOAD.as_bytes()), body),
            Ok(PayloadHash::Unsigned)
        ));
        let upper = std::str::from_utf8(&hash).unwrap().to_ascii_uppercase();
        assert!(matches!(
            payload_hash(Some(upper.as_bytes()), body),
            Ok(PayloadHash::Header(_))
        ));
        assert!(matches!(
            payload_hash(Some(&hash), b"{ }"),
            Err(SigV4Error::ContentSha256Mismatch)
        ));
        assert!(matches!(
            payload_hash(Some(b"STREAMING-UNSIGNED-PAYLOAD-TRAILER"), body),
            Err(SigV4Error::ContentSha256Mismatch)
        ));
    }

    #[test]
    fn hex_helpers() {
        let bytes: Vec<u8> = (0u8..32).map(|i| i.wrapping_mul(37)).collect();
        let hex = hex32(&bytes);
        assert_eq!(
            unhex32(std::str::from_utf8(&hex).unwrap()).unwrap()[..],
            bytes[..]
        );
        assert_eq!(unhex32("zz"), None);
    }
}

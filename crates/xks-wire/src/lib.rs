//! Wire types of the AWS External Key Store (XKS) Proxy API v1: the JSON request and response
//! bodies of GetHealthStatus, GetKeyMetadata, Encrypt and Decrypt, the error body and the
//! error names with their HTTP statuses, and the URI layout.
//!
//! Shared by the `xks-proxy` server and the KMS's XKS client. Pure data: no I/O, no policy.
//!
//! Conventions:
//! * field names are the spec's camelCase names; unknown fields are ignored when reading
//!   (KMS may add fields at any time);
//! * binary fields are carried as their standard Base64 text (RFC 4648 §4) in [`Base64`], so
//!   each side decodes with its own error mapping; plaintext is carried in [`SecretBase64`],
//!   which is zeroized on drop and redacted in `Debug`;
//! * required request fields that are strings default to empty when absent, so a server can
//!   report *which* field is missing instead of a generic parse error.

#![forbid(unsafe_code)]

use std::fmt;

use base64::Engine as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use zeroize::Zeroizing;

/// The fixed part of every API path: `[/{prefix}]/kms/xks/v1`.
pub const API_BASE: &str = "/kms/xks/v1";
/// The signing service name of XKS requests.
pub const SIGV4_SERVICE: &str = "kms-xks-proxy";
/// The only encryption algorithm of API v1.
pub const AES_GCM: &str = "AES_GCM";
/// The only ciphertext data integrity value algorithm of API v1.
pub const SHA_256: &str = "SHA_256";
/// keySpec of a 256-bit AES key.
pub const KEY_SPEC_AES_256: &str = "AES_256";
/// keyStatus values.
pub const KEY_STATUS_ENABLED: &str = "ENABLED";
pub const KEY_STATUS_DISABLED: &str = "DISABLED";

/// Largest plaintext (and ciphertext) every proxy must accept, in bytes.
pub const MIN_SUPPORTED_PLAINTEXT: usize = 4300;
/// Largest AAD every proxy must accept, in bytes.
pub const MIN_SUPPORTED_AAD: usize = 8192;
/// Largest `ciphertextMetadata`, in bytes.
pub const MAX_CIPHERTEXT_METADATA: usize = 20;
/// Largest `externalKeyId`, in characters.
pub const MAX_KEY_ID_LEN: usize = 128;
/// Largest `XksProxyUriPath` (`[/{prefix}]/kms/xks/v1`), in characters.
pub const MAX_URI_PATH_LEN: usize = 128;
/// Length of the authentication tag, in bytes.
pub const TAG_LEN: usize = 16;
/// Most `keyUsage` values in a GetKeyMetadata response.
pub const MAX_KEY_USAGES: usize = 10;
/// Most `ekmFleetDetails` entries in a GetHealthStatus response.
pub const MAX_FLEET_DETAILS: usize = 10;
/// Longest `errorMessage`, in characters (exclusive bound: it must be shorter).
pub const MAX_ERROR_MESSAGE_LEN: usize = 512;

/// The four API operations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Operation {
    GetHealthStatus,
    GetKeyMetadata,
    Encrypt,
    Decrypt,
}

impl Operation {
    /// The operation's name as in the spec.
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::GetHealthStatus => "GetHealthStatus",
            Operation::GetKeyMetadata => "GetKeyMetadata",
            Operation::Encrypt => "Encrypt",
            Operation::Decrypt => "Decrypt",
        }
    }

    /// The last path segment: `health`, `metadata`, `encrypt`, `decrypt`.
    pub fn path_suffix(self) -> &'static str {
        match self {
            Operation::GetHealthStatus => "health",
            Operation::GetKeyMetadata => "metadata",
            Operation::Encrypt => "encrypt",
            Operation::Decrypt => "decrypt",
        }
    }

    /// All operations.
    pub const ALL: [Operation; 4] = [
        Operation::GetHealthStatus,
        Operation::GetKeyMetadata,
        Operation::Encrypt,
        Operation::Decrypt,
    ];
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The URI path of an operation: `[/{prefix}]/kms/xks/v1/health` or
/// `[/{prefix}]/kms/xks/v1/keys/{key_id}/{metadata|encrypt|decrypt}`. `prefix` is given without
/// leading or trailing slashes and may be empty; `key_id` is ignored for GetHealthStatus.
pub fn uri_path(prefix: &str, op: Operation, key_id: &str) -> String {
    let mut p = String::with_capacity(prefix.len() + key_id.len() + 40);
    if !prefix.is_empty() {
        p.push('/');
        p.push_str(prefix.trim_matches('/'));
    }
    p.push_str(API_BASE);
    match op {
        Operation::GetHealthStatus => p.push_str("/health"),
        other => {
            p.push_str("/keys/");
            p.push_str(key_id);
            p.push('/');
            p.push_str(other.path_suffix());
        }
    }
    p
}

/// Whether `id` is a valid `externalKeyId`: 1 to 128 characters from `A-Z a-z 0-9 - . _`.
pub fn is_valid_key_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_KEY_ID_LEN
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'))
}

// ---------------------------------------------------------------------------------------------
// Base64 fields
// ---------------------------------------------------------------------------------------------

/// A binary field carried as standard Base64 text.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Base64(pub String);

impl Base64 {
    /// Encodes bytes.
    pub fn encode(bytes: &[u8]) -> Self {
        Base64(base64::engine::general_purpose::STANDARD.encode(bytes))
    }

    /// Decodes the text (standard alphabet, padding required).
    pub fn decode(&self) -> Result<Vec<u8>, base64::DecodeError> {
        base64::engine::general_purpose::STANDARD.decode(self.0.as_bytes())
    }

    /// The number of bytes the text decodes to at most (without decoding it); padding makes
    /// the real length up to 2 bytes shorter.
    pub fn max_decoded_len(&self) -> usize {
        self.0.len().div_ceil(4) * 3
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Base64 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Base64({} chars)", self.0.len())
    }
}

/// A secret binary field (plaintext) carried as Base64 text; zeroized on drop, redacted in
/// `Debug`, never logged.
#[derive(Clone, Default)]
pub struct SecretBase64(Zeroizing<String>);

impl SecretBase64 {
    /// Encodes secret bytes.
    pub fn encode(bytes: &[u8]) -> Self {
        let mut text = Zeroizing::new(String::with_capacity(bytes.len().div_ceil(3) * 4));
        base64::engine::general_purpose::STANDARD.encode_string(bytes, &mut text);
        SecretBase64(text)
    }

    /// Decodes into a zeroizing buffer.
    pub fn decode(&self) -> Result<Zeroizing<Vec<u8>>, base64::DecodeError> {
        let mut out = Zeroizing::new(Vec::with_capacity(self.0.len() / 4 * 3 + 3));
        base64::engine::general_purpose::STANDARD.decode_vec(self.0.as_bytes(), &mut out)?;
        Ok(out)
    }

    /// Length of the Base64 text.
    pub fn text_len(&self) -> usize {
        self.0.len()
    }

    /// The Base64 text (for serializers that need it; never log it).
    pub fn expose_text(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SecretBase64 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretBase64(<redacted>)")
    }
}

impl Serialize for SecretBase64 {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for SecretBase64 {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = SecretBase64;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a Base64 string")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<SecretBase64, E> {
                Ok(SecretBase64(Zeroizing::new(v.to_owned())))
            }
            fn visit_string<E: serde::de::Error>(self, v: String) -> Result<SecretBase64, E> {
                Ok(SecretBase64(Zeroizing::new(v)))
            }
        }
        d.deserialize_string(V)
    }
}

// ---------------------------------------------------------------------------------------------
// Requests
// ---------------------------------------------------------------------------------------------

/// `requestMetadata`, sent with every request. Which fields are required depends on the
/// operation (see [`RequestMetadata::missing_required`]).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RequestMetadata {
    /// The KMS request id (opaque; never validated).
    #[serde(default)]
    pub kms_request_id: String,
    /// The KMS API that caused the call (unknown values are accepted).
    #[serde(default)]
    pub kms_operation: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aws_principal_arn: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kms_key_arn: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kms_via_service: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aws_source_vpc: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aws_source_vpce: Option<String>,
}

impl RequestMetadata {
    /// The first required field of `op` that is absent or empty, by its wire name.
    pub fn missing_required(&self, op: Operation) -> Option<&'static str> {
        if self.kms_request_id.is_empty() {
            return Some("kmsRequestId");
        }
        if self.kms_operation.is_empty() {
            return Some("kmsOperation");
        }
        let empty = |f: &Option<String>| f.as_deref().is_none_or(str::is_empty);
        match op {
            Operation::GetHealthStatus => None,
            Operation::GetKeyMetadata => {
                empty(&self.aws_principal_arn).then_some("awsPrincipalArn")
            }
            Operation::Encrypt | Operation::Decrypt => {
                if empty(&self.aws_principal_arn) {
                    Some("awsPrincipalArn")
                } else if empty(&self.kms_key_arn) {
                    Some("kmsKeyArn")
                } else {
                    None
                }
            }
        }
    }
}

/// GetHealthStatus and GetKeyMetadata request body.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MetadataOnlyRequest {
    /// Absent in malformed requests (reported as a ValidationException).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_metadata: Option<RequestMetadata>,
}

/// GetHealthStatus request body.
pub type GetHealthStatusRequest = MetadataOnlyRequest;
/// GetKeyMetadata request body.
pub type GetKeyMetadataRequest = MetadataOnlyRequest;

/// Encrypt request body.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EncryptRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_metadata: Option<RequestMetadata>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plaintext: Option<SecretBase64>,
    #[serde(default)]
    pub encryption_algorithm: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub additional_authenticated_data: Option<Base64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ciphertext_data_integrity_value_algorithm: Option<String>,
}

/// Decrypt request body.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DecryptRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_metadata: Option<RequestMetadata>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ciphertext: Option<Base64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ciphertext_metadata: Option<Base64>,
    #[serde(default)]
    pub encryption_algorithm: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub additional_authenticated_data: Option<Base64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub initialization_vector: Option<Base64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authentication_tag: Option<Base64>,
}

// ---------------------------------------------------------------------------------------------
// Responses
// ---------------------------------------------------------------------------------------------

/// GetKeyMetadata response body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GetKeyMetadataResponse {
    pub key_spec: String,
    pub key_usage: Vec<String>,
    pub key_status: String,
}

/// Encrypt response body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EncryptResponse {
    pub authentication_tag: Base64,
    pub ciphertext: Base64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ciphertext_data_integrity_value: Option<Base64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ciphertext_metadata: Option<Base64>,
    pub initialization_vector: Base64,
}

/// Decrypt response body.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DecryptResponse {
    pub plaintext: SecretBase64,
}

/// Health of one external key manager instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum HealthStatus {
    /// Healthy.
    Active,
    /// Unhealthy but still serving.
    Degraded,
    /// Cannot serve.
    Unavailable,
}

impl HealthStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            HealthStatus::Active => "ACTIVE",
            HealthStatus::Degraded => "DEGRADED",
            HealthStatus::Unavailable => "UNAVAILABLE",
        }
    }
}

/// One `ekmFleetDetails` entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EkmFleetDetail {
    pub id: String,
    pub model: String,
    pub health_status: HealthStatus,
}

/// GetHealthStatus response body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GetHealthStatusResponse {
    pub xks_proxy_fleet_size: u32,
    pub xks_proxy_vendor: String,
    pub xks_proxy_model: String,
    pub ekm_vendor: String,
    pub ekm_fleet_details: Vec<EkmFleetDetail>,
}

// ---------------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------------

/// The error body of every failed call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ErrorResponse {
    pub error_name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_message: Option<String>,
}

/// The spec's error names, each with its fixed HTTP status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorName {
    ValidationException,
    InvalidStateException,
    InvalidCiphertextException,
    InvalidKeyUsageException,
    AuthenticationFailedException,
    AccessDeniedException,
    KeyNotFoundException,
    InvalidUriPathException,
    ThrottlingException,
    UnsupportedOperationException,
    DependencyTimeoutException,
    InternalException,
}

impl ErrorName {
    /// Every error name.
    pub const ALL: [ErrorName; 12] = [
        ErrorName::ValidationException,
        ErrorName::InvalidStateException,
        ErrorName::InvalidCiphertextException,
        ErrorName::InvalidKeyUsageException,
        ErrorName::AuthenticationFailedException,
        ErrorName::AccessDeniedException,
        ErrorName::KeyNotFoundException,
        ErrorName::InvalidUriPathException,
        ErrorName::ThrottlingException,
        ErrorName::UnsupportedOperationException,
        ErrorName::DependencyTimeoutException,
        ErrorName::InternalException,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ErrorName::ValidationException => "ValidationException",
            ErrorName::InvalidStateException => "InvalidStateException",
            ErrorName::InvalidCiphertextException => "InvalidCiphertextException",
            ErrorName::InvalidKeyUsageException => "InvalidKeyUsageException",
            ErrorName::AuthenticationFailedException => "AuthenticationFailedException",
            ErrorName::AccessDeniedException => "AccessDeniedException",
            ErrorName::KeyNotFoundException => "KeyNotFoundException",
            ErrorName::InvalidUriPathException => "InvalidUriPathException",
            ErrorName::ThrottlingException => "ThrottlingException",
            ErrorName::UnsupportedOperationException => "UnsupportedOperationException",
            ErrorName::DependencyTimeoutException => "DependencyTimeoutException",
            ErrorName::InternalException => "InternalException",
        }
    }

    /// The HTTP status the spec assigns to this error.
    pub fn http_status(self) -> u16 {
        match self {
            ErrorName::ValidationException
            | ErrorName::InvalidStateException
            | ErrorName::InvalidCiphertextException
            | ErrorName::InvalidKeyUsageException => 400,
            ErrorName::AuthenticationFailedException => 401,
            ErrorName::AccessDeniedException => 403,
            ErrorName::KeyNotFoundException | ErrorName::InvalidUriPathException => 404,
            ErrorName::ThrottlingException => 429,
            ErrorName::UnsupportedOperationException => 501,
            ErrorName::DependencyTimeoutException => 503,
            ErrorName::InternalException => 500,
        }
    }

    /// Whether KMS treats the error as retryable.
    pub fn retryable(self) -> bool {
        matches!(
            self,
            ErrorName::ThrottlingException
                | ErrorName::DependencyTimeoutException
                | ErrorName::InternalException
        )
    }

    /// Parses an `errorName`.
    pub fn parse(name: &str) -> Option<ErrorName> {
        ErrorName::ALL.into_iter().find(|e| e.as_str() == name)
    }
}

impl fmt::Display for ErrorName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Makes a string a valid `errorMessage`: printable ASCII (0x20–0x7e) only, other characters
/// replaced by `?`, and shorter than 512 characters.
pub fn sanitize_error_message(msg: &str) -> String {
    msg.chars()
        .map(|c| if (' '..='~').contains(&c) { c } else { '?' })
        .take(MAX_ERROR_MESSAGE_LEN - 1)
        .collect()
}

// ---------------------------------------------------------------------------------------------
// AAD and CDIV
// ---------------------------------------------------------------------------------------------

/// The AAD passed to AES-GCM, as the spec text defines it:
/// `uint16_be(len(aad)) ‖ aad ‖ uint8(len(metadata)) ‖ metadata` (absent fields are empty).
/// `None` when `aad` is longer than 65535 bytes or `metadata` longer than 255 bytes.
pub fn gcm_aad(aad: &[u8], metadata: &[u8]) -> Option<Vec<u8>> {
    let aad_len = u16::try_from(aad.len()).ok()?;
    let md_len = u8::try_from(metadata.len()).ok()?;
    let mut out = Vec::with_capacity(3 + aad.len() + metadata.len());
    out.extend_from_slice(&aad_len.to_be_bytes());
    out.extend_from_slice(aad);
    out.push(md_len);
    out.extend_from_slice(metadata);
    Some(out)
}

/// The ciphertext data integrity value: `SHA-256(aad ‖ metadata ‖ iv ‖ ciphertext ‖ tag)` over
/// raw bytes (absent fields empty, no lengths).
pub fn cdiv_sha256(
    aad: &[u8],
    metadata: &[u8],
    iv: &[u8],
    ciphertext: &[u8],
    tag: &[u8],
) -> [u8; 32] {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    for part in [aad, metadata, iv, ciphertext, tag] {
        ctx.update(part);
    }
    let mut out = [0u8; 32];
    out.copy_from_slice(ctx.finish().as_ref());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths() {
        assert_eq!(
            uri_path("", Operation::GetHealthStatus, ""),
            "/kms/xks/v1/health"
        );
        assert_eq!(
            uri_path("a/b", Operation::Encrypt, "k1"),
            "/a/b/kms/xks/v1/keys/k1/encrypt"
        );
        assert!(is_valid_key_id("foo-1.2_3"));
        assert!(!is_valid_key_id(""));
        assert!(!is_valid_key_id("a/b"));
        assert!(!is_valid_key_id(&"x".repeat(129)));
        assert!(is_valid_key_id(&"x".repeat(128)));
    }

    #[test]
    fn aad_layout() {
        assert_eq!(gcm_aad(b"", b""), Some(vec![0, 0, 0]));
        assert_eq!(gcm_aad(b"ab", b"c"), Some(vec![0, 2, b'a', b'b', 1, b'c']));
        // The example of the spec: metadata passed as AAD must not collide.
        assert_ne!(gcm_aad(b"", b"m"), gcm_aad(b"m", b""));
    }

    #[test]
    fn error_statuses() {
        assert_eq!(ErrorName::ThrottlingException.http_status(), 429);
        assert_eq!(
            ErrorName::parse("KeyNotFoundException"),
            Some(ErrorName::KeyNotFoundException)
        );
        assert_eq!(sanitize_error_message("a\u{e9}\n"), "a??");
        assert_eq!(sanitize_error_message(&"x".repeat(600)).len(), 511);
    }

    #[test]
    fn wire_shapes() {
        let req: EncryptRequest = serde_json::from_str(
            r#"{"requestMetadata":{"kmsRequestId":"r","kmsOperation":"Encrypt","awsPrincipalArn":"p","kmsKeyArn":"k","futureField":1},"plaintext":"AAEC","encryptionAlgorithm":"AES_GCM"}"#,
        )
        .unwrap_or_default();
        let md = req.request_metadata.clone().unwrap_or_default();
        assert_eq!(md.missing_required(Operation::Encrypt), None);
        assert_eq!(
            req.plaintext.map(|p| p.decode().map(|v| v.to_vec())),
            Some(Ok(vec![0, 1, 2]))
        );
        let empty = RequestMetadata::default();
        assert_eq!(
            empty.missing_required(Operation::GetHealthStatus),
            Some("kmsRequestId")
        );
        let s = serde_json::to_string(&GetKeyMetadataResponse {
            key_spec: KEY_SPEC_AES_256.into(),
            key_usage: vec!["ENCRYPT".into(), "DECRYPT".into()],
            key_status: KEY_STATUS_ENABLED.into(),
        })
        .unwrap_or_default();
        assert_eq!(
            s,
            r#"{"keySpec":"AES_256","keyUsage":["ENCRYPT","DECRYPT"],"keyStatus":"ENABLED"}"#
        );
        assert_eq!(
            format!("{:?}", SecretBase64::encode(b"secret")),
            "SecretBase64(<redacted>)"
        );
    }
}

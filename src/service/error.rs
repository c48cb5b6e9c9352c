//! The domain error: one variant per AWS KMS exception the KMS rules can raise. It carries no
//! HTTP: the API layer maps it to the wire (status, `{"__type","message"}`) in exactly one place
//! (`api::error`), and protocol failures (authentication, decoding, unknown operations) are the
//! API layer's own errors.

use std::sync::Arc;

use crate::backend::BackendError;
use crate::store::StoreError;

/// Every error a KMS operation can return. Messages are the AWS wording; they never carry
/// plaintext, key material or secrets.
#[derive(Debug, Clone, thiserror::Error)]
pub enum KmsError {
    #[error("{0}")]
    AccessDenied(String),
    #[error("{0}")]
    AlreadyExists(String),
    #[error("{0}")]
    Disabled(String),
    #[error("The request would have succeeded, but the DryRun option is set.")]
    DryRunOperation,
    #[error("The key ID in the request does not identify a CMK that can perform this operation.")]
    IncorrectKey,
    #[error("{0}")]
    InvalidAliasName(String),
    #[error("{0}")]
    InvalidArn(String),
    /// AWS sends this one without a message.
    #[error("")]
    InvalidCiphertext,
    #[error("{0}")]
    InvalidGrantId(String),
    #[error("{0}")]
    InvalidImportToken(String),
    #[error("{0}")]
    ExpiredImportToken(String),
    #[error("{0}")]
    IncorrectKeyMaterial(String),
    #[error("{0}")]
    InvalidGrantToken(String),
    #[error("{0}")]
    InvalidKeyUsage(String),
    #[error("{0}")]
    InvalidMarker(String),
    /// `KMSInternalException`: `message` is what the caller reads; `cause`, when there is one,
    /// is logged once, where the error is answered.
    #[error("{message}")]
    KmsInternal {
        message: String,
        cause: Option<Arc<InternalCause>>,
    },
    #[error("{0}")]
    KmsInvalidState(String),
    /// Verify: the signature does not verify. AWS sends it without a message (and never
    /// `SignatureValid: false`).
    #[error("")]
    KmsInvalidSignature,
    /// VerifyMac: the MAC does not match. AWS sends it without a message.
    #[error("")]
    KmsInvalidMac,
    #[error("{0}")]
    LimitExceeded(String),
    #[error("{0}")]
    MalformedPolicyDocument(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Tag(String),
    #[error(
        "You have exceeded the rate at which you may call KMS. Reduce the frequency of your calls."
    )]
    Throttling,
    #[error("{0}")]
    UnsupportedOperation(String),
    #[error("{0}")]
    Validation(String),
    #[error("{0}")]
    DependencyTimeout(String),
    #[error("{0}")]
    CustomKeyStoreNotFound(String),
    #[error("{0}")]
    CustomKeyStoreInvalidState(String),
    #[error("{0}")]
    CustomKeyStoreNameInUse(String),
    #[error("{0}")]
    CustomKeyStoreHasCmks(String),
    #[error("{0}")]
    CloudHsmClusterNotFound(String),
    #[error("{0}")]
    CloudHsmClusterInUse(String),
    #[error("{0}")]
    CloudHsmClusterInvalidConfiguration(String),
    #[error("{0}")]
    CloudHsmClusterNotActive(String),
    #[error("{0}")]
    CloudHsmClusterNotRelated(String),
    #[error("{0}")]
    IncorrectTrustAnchor(String),
    #[error("{0}")]
    XksProxyIncorrectAuthenticationCredential(String),
    #[error("{0}")]
    XksProxyInvalidConfiguration(String),
    #[error("{0}")]
    XksProxyInvalidResponse(String),
    #[error("{0}")]
    XksProxyUriUnreachable(String),
    #[error("{0}")]
    XksProxyUriInUse(String),
    #[error("{0}")]
    XksProxyVpcEndpointServiceNotFound(String),
    #[error("{0}")]
    XksKeyNotFound(String),
    #[error("{0}")]
    XksKeyInvalidConfiguration(String),
    #[error("{0}")]
    XksKeyInvalidResponse(String),
    #[error("{0}")]
    XksKeyAlreadyInUse(String),
}

/// What went wrong behind a `KMSInternalException` (for the log, never for the caller).
#[derive(Debug, thiserror::Error)]
pub enum InternalCause {
    #[error("metadata store: {0}")]
    Store(#[from] StoreError),
    #[error("crypto backend: {0}")]
    Backend(#[from] BackendError),
    /// An invariant did not hold (a bug).
    #[error("{0}")]
    Invariant(&'static str),
    /// Durable audit mode: the request's record could not be written.
    #[error("audit log: the request's record could not be written")]
    Audit,
}

const RETRY: &str = "An internal error occurred. Retry the request.";

impl KmsError {
    /// The AWS exception name (`__type` on the wire).
    pub fn code(&self) -> &'static str {
        use KmsError::*;
        match self {
            AccessDenied(_) => "AccessDeniedException",
            AlreadyExists(_) => "AlreadyExistsException",
            Disabled(_) => "DisabledException",
            DryRunOperation => "DryRunOperationException",
            IncorrectKey => "IncorrectKeyException",
            InvalidAliasName(_) => "InvalidAliasNameException",
            InvalidArn(_) => "InvalidArnException",
            InvalidCiphertext => "InvalidCiphertextException",
            InvalidGrantId(_) => "InvalidGrantIdException",
            InvalidImportToken(_) => "InvalidImportTokenException",
            ExpiredImportToken(_) => "ExpiredImportTokenException",
            IncorrectKeyMaterial(_) => "IncorrectKeyMaterialException",
            InvalidGrantToken(_) => "InvalidGrantTokenException",
            InvalidKeyUsage(_) => "InvalidKeyUsageException",
            InvalidMarker(_) => "InvalidMarkerException",
            KmsInternal { .. } => "KMSInternalException",
            KmsInvalidState(_) => "KMSInvalidStateException",
            KmsInvalidSignature => "KMSInvalidSignatureException",
            KmsInvalidMac => "KMSInvalidMacException",
            LimitExceeded(_) => "LimitExceededException",
            MalformedPolicyDocument(_) => "MalformedPolicyDocumentException",
            NotFound(_) => "NotFoundException",
            Tag(_) => "TagException",
            Throttling => "ThrottlingException",
            UnsupportedOperation(_) => "UnsupportedOperationException",
            Validation(_) => "ValidationException",
            DependencyTimeout(_) => "DependencyTimeoutException",
            CustomKeyStoreNotFound(_) => "CustomKeyStoreNotFoundException",
            CustomKeyStoreInvalidState(_) => "CustomKeyStoreInvalidStateException",
            CustomKeyStoreNameInUse(_) => "CustomKeyStoreNameInUseException",
            CustomKeyStoreHasCmks(_) => "CustomKeyStoreHasCMKsException",
            CloudHsmClusterNotFound(_) => "CloudHsmClusterNotFoundException",
            CloudHsmClusterInUse(_) => "CloudHsmClusterInUseException",
            CloudHsmClusterInvalidConfiguration(_) => {
                "CloudHsmClusterInvalidConfigurationException"
            }
            CloudHsmClusterNotActive(_) => "CloudHsmClusterNotActiveException",
            CloudHsmClusterNotRelated(_) => "CloudHsmClusterNotRelatedException",
            IncorrectTrustAnchor(_) => "IncorrectTrustAnchorException",
            XksProxyIncorrectAuthenticationCredential(_) => {
                "XksProxyIncorrectAuthenticationCredentialException"
            }
            XksProxyInvalidConfiguration(_) => "XksProxyInvalidConfigurationException",
            XksProxyInvalidResponse(_) => "XksProxyInvalidResponseException",
            XksProxyUriUnreachable(_) => "XksProxyUriUnreachableException",
            XksProxyUriInUse(_) => "XksProxyUriInUseException",
            XksProxyVpcEndpointServiceNotFound(_) => "XksProxyVpcEndpointServiceNotFoundException",
            XksKeyNotFound(_) => "XksKeyNotFoundException",
            XksKeyInvalidConfiguration(_) => "XksKeyInvalidConfigurationException",
            XksKeyInvalidResponse(_) => "XksKeyInvalidResponseException",
            XksKeyAlreadyInUse(_) => "XksKeyAlreadyInUseException",
        }
    }

    /// The message, or `None` where AWS sends none.
    pub fn message(&self) -> Option<String> {
        match self {
            KmsError::InvalidCiphertext
            | KmsError::KmsInvalidSignature
            | KmsError::KmsInvalidMac => None,
            // An UnsupportedOperationException AWS sends without a message (rotation of a
            // non-symmetric key).
            KmsError::UnsupportedOperation(m) if m.is_empty() => None,
            other => Some(other.to_string()),
        }
    }

    /// `KMSInternalException` with AWS's generic text and no known cause.
    pub fn internal() -> Self {
        KmsError::KmsInternal {
            message: RETRY.into(),
            cause: None,
        }
    }

    /// `KMSInternalException` with AWS's generic text, caused by `cause`.
    pub fn internal_because(cause: impl Into<InternalCause>) -> Self {
        KmsError::KmsInternal {
            message: RETRY.into(),
            cause: Some(Arc::new(cause.into())),
        }
    }

    /// `KMSInternalException` with a specific (retryable) message.
    pub fn internal_message(message: impl Into<String>) -> Self {
        KmsError::KmsInternal {
            message: message.into(),
            cause: None,
        }
    }

    /// The cause of an internal error, for the log.
    pub fn cause(&self) -> Option<&InternalCause> {
        match self {
            KmsError::KmsInternal { cause, .. } => cause.as_deref(),
            _ => None,
        }
    }
}

impl From<StoreError> for KmsError {
    fn from(e: StoreError) -> Self {
        match e {
            // A lost optimistic-concurrency race is retryable by the client.
            StoreError::Conflict => {
                KmsError::internal_message("The key was modified concurrently. Retry the request.")
            }
            // The atomic key quota refused the insert (concurrent creates at the limit).
            StoreError::KeyQuota { limit, usage } => super::keys::key_quota_exceeded(limit, usage),
            // The aliases-per-key quota, counted in the alias write's transaction.
            StoreError::AliasQuota { limit, usage } => {
                super::aliases::alias_quota_exceeded(limit, usage)
            }
            // The grants-per-key and custom key store quotas, counted in the insert's transaction.
            StoreError::GrantQuota { limit, usage } => {
                super::grants::grant_quota_exceeded(limit, usage)
            }
            StoreError::CustomKeyStoreQuota { limit, .. } => {
                super::custom_key_stores::store_quota_exceeded(limit)
            }
            // A custom key store's unique name or cluster, decided by the store's indexes
            // (a concurrent create or update got there first).
            StoreError::CustomKeyStoreNameInUse { name } => {
                super::custom_key_stores::store_name_in_use(&name)
            }
            StoreError::ClusterInUse { cluster_id } => {
                super::custom_key_stores::cluster_in_use(&cluster_id)
            }
            // The database is out of reach (restarting, fail-over): 503, retryable.
            StoreError::Unavailable(cause) => {
                tracing::warn!(%cause, "metadata store unavailable");
                KmsError::DependencyTimeout(
                    "The service could not reach its metadata store in time. Retry the request."
                        .into(),
                )
            }
            other => KmsError::internal_because(other),
        }
    }
}

impl From<BackendError> for KmsError {
    fn from(e: BackendError) -> Self {
        match e {
            BackendError::InvalidCiphertext => KmsError::InvalidCiphertext,
            BackendError::Unsupported(m) => KmsError::UnsupportedOperation(m),
            BackendError::IncorrectKeyMaterial(m) => KmsError::IncorrectKeyMaterial(m),
            BackendError::Busy => KmsError::Throttling,
            BackendError::KeyMaterialMissing => KmsError::KmsInvalidState(
                "The key material of this KMS key is missing from its key store.".into(),
            ),
            BackendError::Timeout => KmsError::DependencyTimeout(
                "The key store did not respond in time. Retry the request.".into(),
            ),
            BackendError::Unavailable { retryable: true } => KmsError::internal_message(
                "The key store is temporarily unavailable. Retry the request.",
            ),
            other => KmsError::internal_because(other),
        }
    }
}

pub type KmsResult<T> = Result<T, KmsError>;

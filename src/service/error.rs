//! The service's error type: one variant per AWS KMS exception. The API layer renders it to the
//! wire (`{"__type", "message"}` + HTTP status) in exactly one place (`api::error`).

use crate::backend::BackendError;
use crate::store::StoreError;

/// Every error a KMS operation can return. Messages are the AWS wording; they never carry
/// plaintext, key material or secrets.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
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
    InvalidGrantToken(String),
    #[error("{0}")]
    InvalidKeyUsage(String),
    #[error("{0}")]
    InvalidMarker(String),
    #[error("{0}")]
    KmsInternal(String),
    #[error("{0}")]
    KmsInvalidState(String),
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
    Serialization(String),
    #[error("")]
    UnknownOperation,
    #[error("Missing Authentication Token")]
    MissingAuthenticationToken,
    #[error("{0}")]
    IncompleteSignature(String),
    #[error("{0}")]
    InvalidSignature(String),
    #[error("The security token included in the request is invalid.")]
    UnrecognizedClient,
    #[error("{0}")]
    RequestEntityTooLarge(String),
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

impl KmsError {
    /// The AWS exception name (`__type`).
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
            InvalidGrantToken(_) => "InvalidGrantTokenException",
            InvalidKeyUsage(_) => "InvalidKeyUsageException",
            InvalidMarker(_) => "InvalidMarkerException",
            KmsInternal(_) => "KMSInternalException",
            KmsInvalidState(_) => "KMSInvalidStateException",
            LimitExceeded(_) => "LimitExceededException",
            MalformedPolicyDocument(_) => "MalformedPolicyDocumentException",
            NotFound(_) => "NotFoundException",
            Tag(_) => "TagException",
            Throttling => "ThrottlingException",
            UnsupportedOperation(_) => "UnsupportedOperationException",
            Validation(_) => "ValidationException",
            Serialization(_) => "SerializationException",
            UnknownOperation => "UnknownOperationException",
            MissingAuthenticationToken => "MissingAuthenticationTokenException",
            IncompleteSignature(_) => "IncompleteSignatureException",
            InvalidSignature(_) => "InvalidSignatureException",
            UnrecognizedClient => "UnrecognizedClientException",
            RequestEntityTooLarge(_) => "RequestEntityTooLargeException",
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

    /// The HTTP status AWS KMS uses for this exception.
    pub fn http_status(&self) -> u16 {
        use KmsError::*;
        match self {
            KmsInternal(_) => 500,
            DependencyTimeout(_) => 503,
            RequestEntityTooLarge(_) => 413,
            _ => 400,
        }
    }

    /// The message, or `None` where AWS sends none.
    pub fn message(&self) -> Option<String> {
        match self {
            KmsError::InvalidCiphertext | KmsError::UnknownOperation => None,
            other => Some(other.to_string()),
        }
    }

    pub fn internal() -> Self {
        KmsError::KmsInternal("An internal error occurred. Retry the request.".into())
    }
}

impl From<StoreError> for KmsError {
    fn from(e: StoreError) -> Self {
        match e {
            // A lost optimistic-concurrency race is retryable by the client.
            StoreError::Conflict => KmsError::KmsInternal(
                "The key was modified concurrently. Retry the request.".into(),
            ),
            other => {
                tracing::error!(error = %other, "metadata store failure");
                KmsError::internal()
            }
        }
    }
}

impl From<BackendError> for KmsError {
    fn from(e: BackendError) -> Self {
        match e {
            BackendError::InvalidCiphertext => KmsError::InvalidCiphertext,
            BackendError::Unsupported(m) => KmsError::UnsupportedOperation(m),
            BackendError::Busy => KmsError::Throttling,
            BackendError::KeyMaterialMissing => KmsError::KmsInvalidState(
                "The key material of this KMS key is missing from its key store.".into(),
            ),
            BackendError::Timeout => KmsError::DependencyTimeout(
                "The key store did not respond in time. Retry the request.".into(),
            ),
            BackendError::Unavailable { retryable: true } => KmsError::KmsInternal(
                "The key store is temporarily unavailable. Retry the request.".into(),
            ),
            other => {
                tracing::error!(error = %other, "crypto backend failure");
                KmsError::internal()
            }
        }
    }
}

pub type KmsResult<T> = Result<T, KmsError>;

//! CKR codes -> classified errors, in one place.

use cryptoki::context::Function;
use cryptoki::error::{Error as CkError, RvError};

use crate::gcm::GcmError;
use crate::VendorProfile;

/// What a failed PKCS#11 call means for the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// The ciphertext or its tag is invalid (decryption only).
    InvalidCiphertext,
    /// The session is unusable; drop it and use another.
    SessionLost,
    /// The login is gone (token restarted, last session closed); log in again.
    NotLoggedIn,
    /// An object handle is stale; look the object up again.
    StaleHandle,
    /// The token or device failed; repeated, the connection is rebuilt.
    Device,
    /// The PIN is wrong.
    PinIncorrect,
    /// The user is locked out.
    PinLocked,
    /// The token is not there.
    TokenNotPresent,
    /// The mechanism or a parameter is not supported.
    Unsupported,
    /// A request-level problem (bad arguments, data length).
    Invalid,
    /// Anything else.
    Other,
}

/// A classified PKCS#11 failure. The text never contains key material or PINs.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Pkcs11Error {
    /// A PKCS#11 function returned an error; the return value and the function stay typed.
    #[error("C_{function:?} failed: {}", ckr_name(.rv))]
    Call {
        class: ErrorClass,
        rv: RvError,
        function: Function,
    },
    #[error("PKCS#11 module {path}: {reason}")]
    Module { path: String, reason: String },
    #[error("no initialized token labelled '{label}'")]
    TokenNotFound { label: String },
    #[error("no free session within the deadline")]
    Busy,
    #[error("required mechanism {0} is not supported by the token")]
    MissingMechanism(String),
    #[error("object '{0}' not found on the token")]
    ObjectNotFound(String),
    /// AES-GCM went wrong without a failed call (see [`GcmError`]).
    #[error(transparent)]
    Gcm(#[from] GcmError),
    #[error("{0}")]
    Other(String),
}

impl Pkcs11Error {
    pub fn class(&self) -> ErrorClass {
        match self {
            Pkcs11Error::Call { class, .. } => *class,
            Pkcs11Error::TokenNotFound { .. } => ErrorClass::TokenNotPresent,
            Pkcs11Error::MissingMechanism(_) => ErrorClass::Unsupported,
            Pkcs11Error::Gcm(e) => e.class(),
            _ => ErrorClass::Other,
        }
    }

    /// The return value of a failed call.
    pub fn rv(&self) -> Option<RvError> {
        match self {
            Pkcs11Error::Call { rv, .. } => Some(*rv),
            _ => None,
        }
    }
}

/// `GeneralError` -> `CKR_GENERAL_ERROR`.
pub fn ckr_name(rv: &RvError) -> String {
    let debug = format!("{rv:?}");
    let mut out = String::from("CKR_");
    for (i, c) in debug.chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            out.push('_');
        }
        out.push(c.to_ascii_uppercase());
    }
    out
}

/// Classifies a cryptoki error. `decrypting` marks an AEAD decryption, where the profile's
/// authentication-failure codes mean an invalid ciphertext.
pub fn classify(e: &CkError, profile: &VendorProfile, decrypting: bool) -> Pkcs11Error {
    match e {
        CkError::Pkcs11(rv, function) => {
            let class = if decrypting && is_gcm_auth_failure(rv, profile) {
                ErrorClass::InvalidCiphertext
            } else {
                class_of(rv)
            };
            Pkcs11Error::Call {
                class,
                rv: *rv,
                function: *function,
            }
        }
        CkError::LibraryLoading(l) => Pkcs11Error::Other(format!("library: {l}")),
        other => Pkcs11Error::Other(other.to_string()),
    }
}

/// Whether the profile lists `rv` as its "GCM tag did not verify" answer (profiles name the
/// codes, so a vendor quirk is configuration, not code).
fn is_gcm_auth_failure(rv: &RvError, profile: &VendorProfile) -> bool {
    let name = ckr_name(rv);
    profile.gcm_auth_failure_rv.contains(&name)
}

fn class_of(rv: &RvError) -> ErrorClass {
    use RvError::*;
    match rv {
        SessionHandleInvalid | SessionClosed | SessionCount => ErrorClass::SessionLost,
        UserNotLoggedIn | CryptokiNotInitialized => ErrorClass::NotLoggedIn,
        ObjectHandleInvalid
        | KeyHandleInvalid
        | WrappingKeyHandleInvalid
        | UnwrappingKeyHandleInvalid => ErrorClass::StaleHandle,
        DeviceError | DeviceRemoved | DeviceMemory | GeneralError | FunctionFailed => {
            ErrorClass::Device
        }
        TokenNotPresent | TokenNotRecognized | SlotIdInvalid => ErrorClass::TokenNotPresent,
        PinIncorrect | PinInvalid | PinLenRange => ErrorClass::PinIncorrect,
        PinLocked | PinExpired => ErrorClass::PinLocked,
        MechanismInvalid
        | MechanismParamInvalid
        | FunctionNotSupported
        | KeyTypeInconsistent
        | KeyFunctionNotPermitted => ErrorClass::Unsupported,
        EncryptedDataInvalid | EncryptedDataLenRange => ErrorClass::InvalidCiphertext,
        ArgumentsBad
        | DataInvalid
        | DataLenRange
        | TemplateIncomplete
        | TemplateInconsistent
        | AttributeValueInvalid
        | AttributeTypeInvalid
        | BufferTooSmall => ErrorClass::Invalid,
        _ => ErrorClass::Other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_vendor_quirks() {
        assert_eq!(ckr_name(&RvError::GeneralError), "CKR_GENERAL_ERROR");
        assert_eq!(
            ckr_name(&RvError::EncryptedDataInvalid),
            "CKR_ENCRYPTED_DATA_INVALID"
        );
        let soft = VendorProfile::builtin("softhsm2").unwrap_or_default();
        let e = CkError::Pkcs11(RvError::GeneralError, Function::Decrypt);
        assert_eq!(
            classify(&e, &soft, true).class(),
            ErrorClass::InvalidCiphertext
        );
        assert_eq!(classify(&e, &soft, false).class(), ErrorClass::Device);
        let e = CkError::Pkcs11(RvError::PinIncorrect, Function::Login);
        assert_eq!(classify(&e, &soft, false).class(), ErrorClass::PinIncorrect);
        assert_eq!(classify(&e, &soft, false).rv(), Some(RvError::PinIncorrect));
        assert_eq!(
            classify(&e, &soft, false).to_string(),
            "C_Login failed: CKR_PIN_INCORRECT"
        );
        // Vendors that answer a bad tag with the spec's code need no quirk.
        let generic = VendorProfile::default();
        let e = CkError::Pkcs11(RvError::EncryptedDataInvalid, Function::Decrypt);
        assert_eq!(
            classify(&e, &generic, true).class(),
            ErrorClass::InvalidCiphertext
        );
        let e = CkError::Pkcs11(RvError::GeneralError, Function::Decrypt);
        assert_eq!(classify(&e, &generic, true).class(), ErrorClass::Device);
    }
}

//! AES-256-GCM over PKCS#11: the one encrypt and decrypt path of both servers (the KMS's HSM
//! root and CloudHSM-style clusters, the XKS proxy's external keys and its health probe).
//!
//! What it owns:
//! - the mechanism: CKM_AES_GCM with the caller's AAD and a 128-bit tag appended to the
//!   ciphertext, as one C_EncryptInit/C_Encrypt (C_DecryptInit/C_Decrypt) on a pooled session
//!   of a [`Token`];
//! - the IV policy ([`IvPolicy`], from the profile's `host_generated_iv`): either the host draws
//!   the IV from its CSPRNG ([`IvPool`]) and passes it in, or the token generates it (AWS
//!   CloudHSM refuses caller IVs): the caller then passes a zeroed buffer of the IV's length and
//!   the token writes its IV into it. Either way [`encrypt`] returns the IV read back from that
//!   buffer after the call, i.e. the one the token used;
//! - checking what came back: with token IVs, a buffer still all zeros means the HSM does not
//!   generate IVs and encrypted under the all-zero IV (a profile that does not match the HSM):
//!   that is an error, never a ciphertext. Output that is not exactly plaintext + tag long is an
//!   error too;
//! - failure classes: a tag that does not verify is [`ErrorClass::InvalidCiphertext`] whatever
//!   code the vendor answers with (profile `gcm_auth_failure_rv`, through [`crate::error`]).
//!
//! What it refuses: finding keys and failing over between tokens (callers do both), tags
//! shorter than 128 bits, and message-based GCM (PKCS#11 3.0; SoftHSM 2.6 lacks it).
//!
//! Every call blocks: run it on the HSM threads.

use cryptoki::mechanism::aead::GcmParams;
use cryptoki::mechanism::Mechanism;
use cryptoki::object::ObjectHandle;
use zeroize::Zeroizing;

use crate::error::{ErrorClass, Pkcs11Error};
use crate::iv::IvPool;
use crate::{Token, VendorProfile};

/// Length of the authentication tag appended to every ciphertext (128 bits).
pub const TAG_LEN: usize = 16;
const TAG_BITS: u64 = TAG_LEN as u64 * 8;
/// The longest IV PKCS#11 2.40 allows for CKM_AES_GCM.
pub const MAX_IV_LEN: usize = 256;

/// Where the IV of an encryption comes from.
#[derive(Clone, Copy)]
pub enum IvPolicy<'a> {
    /// The host's CSPRNG; the token is given the IV (profile `host_generated_iv = true`).
    Host(&'a IvPool),
    /// The token generates the IV and writes it into the zeroed parameter buffer (profile
    /// `host_generated_iv = false`).
    Token,
}

impl<'a> IvPolicy<'a> {
    /// The policy `profile` asks for; host IVs come from `pool`.
    pub fn of(profile: &VendorProfile, pool: &'a IvPool) -> Self {
        if profile.host_generated_iv {
            IvPolicy::Host(pool)
        } else {
            IvPolicy::Token
        }
    }
}

impl std::fmt::Debug for IvPolicy<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            IvPolicy::Host(_) => "Host",
            IvPolicy::Token => "Token",
        })
    }
}

/// The result of an encryption.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sealed {
    /// The IV the token used: the host's, or the one the token generated.
    pub iv: Vec<u8>,
    /// The ciphertext with the [`TAG_LEN`]-byte tag appended.
    pub ciphertext_and_tag: Vec<u8>,
}

/// AES-GCM went wrong without a PKCS#11 call failing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum GcmError {
    /// The token was to generate the IV but left the buffer all zeros.
    #[error(
        "the HSM did not generate the AES-GCM IV (it came back all zeros): its profile says \
         host_generated_iv = false, but this HSM seems to expect IVs from the caller"
    )]
    TokenIvMissing,
    /// An IV length PKCS#11 does not allow.
    #[error("an AES-GCM IV of {0} bytes is not supported (1 to 256 bytes)")]
    IvLength(usize),
    /// The token's output does not have the length GCM gives.
    #[error("the HSM returned {got} bytes of AES-GCM output where {expected} were due")]
    OutputLength { expected: usize, got: usize },
    /// A ciphertext shorter than its tag.
    #[error("the AES-GCM ciphertext is shorter than its {TAG_LEN}-byte tag")]
    Truncated,
    /// The host's random number generator failed (host IVs).
    #[error("the random number generator failed")]
    Rng,
}

impl GcmError {
    pub fn class(&self) -> ErrorClass {
        match self {
            GcmError::Truncated => ErrorClass::InvalidCiphertext,
            GcmError::IvLength(_) => ErrorClass::Invalid,
            GcmError::TokenIvMissing | GcmError::OutputLength { .. } | GcmError::Rng => {
                ErrorClass::Other
            }
        }
    }
}

fn check_iv_len(len: usize) -> Result<(), GcmError> {
    if (1..=MAX_IV_LEN).contains(&len) {
        Ok(())
    } else {
        Err(GcmError::IvLength(len))
    }
}

/// Encrypts `plaintext` under the AES-256 key `key` with a fresh IV of `iv_len` bytes (12 for
/// the KMS) from `ivs`, authenticating `aad`. Returns the IV used and ciphertext ‖ tag.
pub fn encrypt(
    token: &Token,
    key: ObjectHandle,
    ivs: IvPolicy<'_>,
    iv_len: usize,
    plaintext: &[u8],
    aad: &[u8],
) -> Result<Sealed, Pkcs11Error> {
    check_iv_len(iv_len)?;
    let mut iv = [0u8; MAX_IV_LEN];
    let iv = &mut iv[..iv_len];
    if let IvPolicy::Host(pool) = ivs {
        pool.fill(iv).map_err(|_| GcmError::Rng)?;
    }
    let iv: &[u8] = iv;
    let (used, ciphertext_and_tag) = token.with_session(false, |s| {
        // A fresh buffer per attempt: a retry on another session (the first one was lost) must
        // again pass the host's IV, or a zeroed buffer for the token to fill.
        let mut buf = iv.to_vec();
        let out = {
            let params = GcmParams::new(&mut buf, aad, TAG_BITS.into())?;
            s.encrypt(&Mechanism::AesGcm(params), key, plaintext)?
        };
        Ok((buf, out))
    })?;
    let expected = plaintext.len() + TAG_LEN;
    if ciphertext_and_tag.len() != expected {
        return Err(GcmError::OutputLength {
            expected,
            got: ciphertext_and_tag.len(),
        }
        .into());
    }
    // 2^-96 for a random 12-byte IV: an all-zero buffer means the token wrote nothing.
    if matches!(ivs, IvPolicy::Token) && used.iter().all(|b| *b == 0) {
        return Err(GcmError::TokenIvMissing.into());
    }
    Ok(Sealed {
        iv: used,
        ciphertext_and_tag,
    })
}

/// Decrypts `ciphertext_and_tag` under the AES-256 key `key` with `iv` and `aad`. A tag that
/// does not verify (or a ciphertext shorter than a tag) is [`ErrorClass::InvalidCiphertext`].
pub fn decrypt(
    token: &Token,
    key: ObjectHandle,
    iv: &[u8],
    ciphertext_and_tag: &[u8],
    aad: &[u8],
) -> Result<Zeroizing<Vec<u8>>, Pkcs11Error> {
    check_iv_len(iv.len())?;
    let Some(expected) = ciphertext_and_tag.len().checked_sub(TAG_LEN) else {
        return Err(GcmError::Truncated.into());
    };
    let plaintext = token.with_session(true, |s| {
        let mut buf = [0u8; MAX_IV_LEN];
        let buf = &mut buf[..iv.len()];
        buf.copy_from_slice(iv);
        let params = GcmParams::new(buf, aad, TAG_BITS.into())?;
        s.decrypt(&Mechanism::AesGcm(params), key, ciphertext_and_tag)
            .map(Zeroizing::new)
    })?;
    if plaintext.len() != expected {
        return Err(GcmError::OutputLength {
            expected,
            got: plaintext.len(),
        }
        .into());
    }
    Ok(plaintext)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_and_policies() {
        assert_eq!(
            Pkcs11Error::from(GcmError::Truncated).class(),
            ErrorClass::InvalidCiphertext
        );
        assert_eq!(GcmError::IvLength(0).class(), ErrorClass::Invalid);
        assert_eq!(GcmError::TokenIvMissing.class(), ErrorClass::Other);
        assert_eq!(check_iv_len(0), Err(GcmError::IvLength(0)));
        assert_eq!(check_iv_len(12), Ok(()));
        assert_eq!(check_iv_len(MAX_IV_LEN), Ok(()));
        assert_eq!(
            check_iv_len(MAX_IV_LEN + 1),
            Err(GcmError::IvLength(MAX_IV_LEN + 1))
        );
        let pool = IvPool::new();
        let mut profile = VendorProfile::default();
        assert!(matches!(IvPolicy::of(&profile, &pool), IvPolicy::Host(_)));
        profile.host_generated_iv = false;
        assert!(matches!(IvPolicy::of(&profile, &pool), IvPolicy::Token));
        let cloudhsm = VendorProfile::builtin("aws-cloudhsm").unwrap_or_default();
        assert!(matches!(IvPolicy::of(&cloudhsm, &pool), IvPolicy::Token));
    }
}

//! The KMS's PKCS#11 key stores, on the shared driver (the `hsm` crate): the HSM root of the
//! default key store ([`root::Pkcs11Root`]) and CloudHSM-style custom key store clusters
//! ([`cluster`]) with their crypto-user PIN book ([`pin_book`]). Both encrypt and decrypt through
//! `hsm::gcm` with the IV policy of their profile.
//!
//! Their PKCS#11 calls block: the backends submit them to the HSM threads, never run them on
//! async workers.

pub mod cluster;
mod ec_point;
pub mod encoding;
pub mod pin_book;
pub mod root;

use super::{BackendError, BackendResult, Sealed};

/// The IV length of the KMS's ciphertexts (96 bits).
const IV_LEN: usize = 12;

/// The backend's form of an encryption by `hsm::gcm` with a [`IV_LEN`]-byte IV.
fn sealed(out: hsm::gcm::Sealed) -> BackendResult<Sealed> {
    let iv = <[u8; IV_LEN]>::try_from(out.iv.as_slice())
        .map_err(|_| BackendError::Internal("AES-GCM used an IV of another length than asked"))?;
    Ok(Sealed {
        iv,
        ciphertext_and_tag: out.ciphertext_and_tag,
    })
}

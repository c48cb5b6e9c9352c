//! The PKCS#11 driver (on `cryptoki`) shared by both servers: the KMS's HSM root and
//! CloudHSM-style custom key stores, and the XKS proxy.
//!
//! What it owns:
//! - loading and initializing each PKCS#11 module once per process ([`module`]);
//! - one [`Token`] per (module, token label): an *anchor* session that stays logged in for the
//!   life of the process (login state and session objects die with the last session), and a
//!   bounded pool of sessions with a deadline for waiting ([`token`]);
//! - error classification: CKR codes -> [`Pkcs11Error`] classes in one place, with vendor quirks
//!   (e.g. SoftHSM's CKR_GENERAL_ERROR for a failed GCM tag) taken from the [`VendorProfile`]
//!   ([`error`], [`profile`]);
//! - recovery: a broken session is dropped, a lost login is redone, repeated device errors
//!   rebuild the token connection (cached object handles are invalidated by a generation
//!   counter);
//! - mechanism detection at start-up (`C_GetMechanismList`) checked against the profile;
//! - the HSM threads every PKCS#11 call runs on ([`threads`]) and their default sizes;
//! - the one AES-256-GCM path of both servers, with the IV policy of the profile
//!   (`host_generated_iv`: the host's IV or the token's) ([`gcm`]);
//! - GCM IVs from the host's CSPRNG ([`iv`]).
//!
//! It knows nothing of KMS keys, XKS requests, HTTP or storage. Every call here blocks:
//! callers run it on the HSM threads, never on async workers.

#![forbid(unsafe_code)]

pub mod error;
pub mod gcm;
pub mod iv;
pub mod module;
pub mod profile;
pub mod threads;
pub mod token;

pub use error::{ErrorClass, Pkcs11Error};
pub use profile::VendorProfile;
pub use token::{Token, TokenConfig};

/// The CPU count (2 when it cannot be read).
pub fn cpus() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get())
}

/// The default async worker count beside `hsm_threads` HSM threads (the KMS's and the XKS
/// proxy's): the CPU count, less half the HSM threads when the module computes in this process
/// (`in_process`, SoftHSM), since those threads need the same cores; at least 1.
pub fn async_threads_beside(hsm_threads: usize, in_process: bool) -> usize {
    let cpus = cpus();
    if in_process {
        cpus.saturating_sub(hsm_threads / 2).max(1)
    } else {
        cpus
    }
}

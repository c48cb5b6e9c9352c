//! The PKCS#11 driver (on `cryptoki`), shared by the HSM-backed default key store
//! ([`root::Pkcs11Root`]), CloudHSM-style custom key stores and the XKS proxy.
//!
//! What it owns:
//! - loading and initializing each PKCS#11 module once per process ([`module`]);
//! - one [`Token`] per (module, token label): an *anchor* session that stays logged in for the
//!   life of the process (login state and session objects die with the last session), and a
//!   bounded pool of sessions with a deadline for waiting;
//! - error classification: CKR codes -> [`Pkcs11Error`] classes in one place, with vendor quirks
//!   (e.g. SoftHSM's CKR_GENERAL_ERROR for a failed GCM tag) taken from the [`VendorProfile`];
//! - recovery: a broken session is dropped, a lost login is redone, repeated device errors
//!   rebuild the token connection (cached object handles are invalidated by a generation
//!   counter);
//! - mechanism detection at start-up (`C_GetMechanismList`) checked against the profile.
//!
//! Every call here blocks: callers run it on a blocking thread, never on async workers.

pub mod cluster;
pub mod error;
pub mod module;
pub mod pin_book;
pub mod profile;
pub mod root;
pub mod token;

pub use error::{ErrorClass, Pkcs11Error};
pub use profile::VendorProfile;
pub use token::{Token, TokenConfig};

//! The KMS's PKCS#11 key stores, on the shared driver (the `hsm` crate): the HSM root of the
//! default key store ([`root::Pkcs11Root`]) and CloudHSM-style custom key store clusters
//! ([`cluster`]) with their crypto-user PIN book ([`pin_book`]).
//!
//! Every call here blocks: callers run it on the HSM threads, never on async workers.

pub mod cluster;
pub mod pin_book;
pub mod root;

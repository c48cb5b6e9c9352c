//! `kms`: a hardware-backed, AWS-KMS-compatible key management service.
//!
//! # Layout
//! - [`config`]: TOML file + `KMS_*` environment -> validated [`config::Config`].
//! - [`app`]: assembles store, backend, audit sink and service into the shared state.
//! - [`api`]: the HTTP edge (router, SigV4, request ids, body limits, JSON, the one error
//!   mapping); [`api::operations`] has one file per AWS operation.
//! - [`service`]: the KMS rules (key states, identifiers, aliases, ciphertext format,
//!   rotation, deletion, audit emission). No HTTP types.
//! - [`model`]: domain types used by every layer.
//! - [`backend`]: where key material lives and crypto runs (trait `CryptoBackend`).
//! - [`crypto`]: host-side public-key work, data key pairs, and the software root's
//!   asymmetric private operations.
//! - [`store`]: metadata persistence (trait `MetadataStore`, SQLite).
//! - [`audit`]: CloudTrail-shaped audit records.
//!
//! Shared ground, in `crates/`: `sigv4` (SigV4), `xks_wire` (XKS Proxy API v1 types) and `hsm`
//! (the PKCS#11 driver and the HSM threads).
//!
//! Dependencies point one way: `api -> service -> {backend, store, audit}`, `backend -> crypto`; `model` is shared.

#![forbid(unsafe_code)]

pub mod api;
pub mod app;
pub mod audit;
pub mod backend;
pub mod config;
pub mod crypto;
pub mod iam;
pub mod metrics;
pub mod model;
pub mod service;
pub mod store;

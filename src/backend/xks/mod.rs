//! The XKS client: how the KMS talks to an external key store proxy (XKS Proxy API v1) over
//! HTTPS with SigV4 (service `kms-xks-proxy`), optional mTLS, a 250 ms budget per attempt and
//! one retry, and pooled keep-alive connections, only to addresses the operator's
//! [`EndpointPolicy`] accepts. Proxy errors and network failures come back
//! classified ([`XksError`]); the service maps them to the AWS exceptions of each operation.

pub mod client;
pub mod endpoint;

pub use client::{XksClient, XksError, XksTarget, XksTls};
pub use endpoint::{EndpointPolicy, Network, Refused};

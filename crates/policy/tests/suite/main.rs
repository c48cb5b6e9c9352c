//! The kms-policy test suite: one binary (one link on small machines), one module per concern.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
mod grants;
mod operators;
mod properties;
mod timing;
mod validation;
mod worked_examples;

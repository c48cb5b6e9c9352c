//! Grants as stored: who may use a key for which operations, under which encryption context
//! constraints, and who may retire the grant.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use super::KeyId;

/// `GrantConstraints`: encryption context pairs a request must carry.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GrantConstraints {
    /// The request's context must be exactly these pairs.
    pub encryption_context_equals: Option<BTreeMap<String, String>>,
    /// The request's context must include these pairs.
    pub encryption_context_subset: Option<BTreeMap<String, String>>,
}

impl GrantConstraints {
    pub fn is_empty(&self) -> bool {
        self.encryption_context_equals.is_none() && self.encryption_context_subset.is_none()
    }
}

/// One grant on one key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrantRecord {
    /// 64 hex characters.
    pub grant_id: String,
    pub key_id: KeyId,
    /// The account of the principal that created the grant (`IssuingAccount` is its root ARN).
    pub issuing_account: String,
    pub name: Option<String>,
    pub grantee_principal: String,
    pub retiring_principal: Option<String>,
    /// Grant operation names (`Encrypt`, `ReEncryptFrom`, ...).
    pub operations: Vec<String>,
    pub constraints: GrantConstraints,
    pub creation_date: DateTime<Utc>,
}

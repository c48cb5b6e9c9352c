//! One file per AWS KMS operation, named after it. Each defines the PascalCase request and
//! response shapes, validates the request with AWS's wording, calls the service, and says what
//! the audit record holds (sanitized: never plaintext, ciphertext or data keys).

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

use std::future::Future;

use crate::service::crypto::DecryptRun;
use crate::service::{Call, Kms, KmsResult};

use super::validate::Checks;

pub mod cancel_key_deletion;
pub mod connect_custom_key_store;
pub mod create_alias;
pub mod create_custom_key_store;
pub mod create_grant;
pub mod create_key;
pub mod decrypt;
pub mod delete_alias;
pub mod delete_custom_key_store;
pub mod delete_imported_key_material;
pub mod derive_shared_secret;
pub mod describe_custom_key_stores;
pub mod describe_key;
pub mod disable_key;
pub mod disable_key_rotation;
pub mod disconnect_custom_key_store;
pub mod enable_key;
pub mod enable_key_rotation;
pub mod encrypt;
pub mod generate_data_key;
pub mod generate_data_key_pair;
pub mod generate_data_key_pair_without_plaintext;
pub mod generate_data_key_without_plaintext;
pub mod generate_mac;
pub mod generate_random;
pub mod get_key_policy;
pub mod get_key_rotation_status;
pub mod get_parameters_for_import;
pub mod get_public_key;
pub mod import_key_material;
pub mod list_aliases;
pub mod list_grants;
pub mod list_key_policies;
pub mod list_key_rotations;
pub mod list_keys;
pub mod list_resource_tags;
pub mod list_retirable_grants;
pub mod put_key_policy;
pub mod re_encrypt;
pub mod replicate_key;
pub mod retire_grant;
pub mod revoke_grant;
pub mod rotate_key_on_demand;
pub mod schedule_key_deletion;
pub mod sign;
pub mod tag_resource;
pub mod untag_resource;
pub mod update_alias;
pub mod update_custom_key_store;
pub mod update_key_description;
pub mod update_primary_region;
pub mod verify;
pub mod verify_mac;

/// An AWS KMS operation.
pub trait Operation {
    /// The operation name (`X-Amz-Target: TrentService.<NAME>`).
    const NAME: &'static str;
    /// CloudTrail `readOnly`.
    const READ_ONLY: bool;
    type Request: DeserializeOwned + Send + 'static;
    type Response: Serialize + Send + 'static;

    /// Sanitized `requestParameters` for the audit record.
    fn audit_parameters(req: &Self::Request) -> Value;

    /// Validates and executes (on the request's task: only blocking calls leave it, inside
    /// the service).
    fn execute(
        kms: &Kms,
        call: &mut Call,
        req: Self::Request,
    ) -> impl Future<Output = KmsResult<Self::Response>> + Send;

    /// Sanitized `responseElements` for the audit record.
    fn audit_response(_resp: &Self::Response) -> Value {
        Value::Null
    }
}

/// A response without members.
#[derive(Debug, Default, Serialize)]
pub struct Empty {}

/// A response without members whose audit record names the key the call affected: CloudTrail
/// puts that key's ARN in `responseElements.keyId` for CreateAlias, DeleteAlias, DisableKey,
/// EnableKey, EnableKeyRotation, TagResource, UntagResource and UpdateAlias.
#[derive(Debug, Default, Serialize)]
pub struct KeyAffected {
    #[serde(skip)]
    key_arn: Option<String>,
}

impl KeyAffected {
    /// The first key the call touched (for UpdateAlias, the new target).
    pub fn of(call: &Call) -> Self {
        KeyAffected {
            key_arn: call
                .resources
                .iter()
                .find(|r| r.kind == "AWS::KMS::Key")
                .map(|r| r.arn.clone()),
        }
    }

    /// `responseElements` of the audit record.
    pub fn audit(&self) -> Value {
        match &self.key_arn {
            Some(arn) => serde_json::json!({ "keyId": arn }),
            None => Value::Null,
        }
    }
}

/// Checks a required `KeyId`-like member: present, 1-2048 characters.
pub fn check_key_id(c: &mut Checks, field: &str, v: &Option<String>) {
    c.required(field, v).len(field, v.as_deref(), 1, 2048);
}

/// `Limit` of list operations.
pub fn check_limit(c: &mut Checks, v: Option<i64>, max: i64) {
    c.range("limit", v, 1, max);
}

/// `Marker` of list operations.
pub fn check_marker(c: &mut Checks, v: &Option<String>) {
    c.len("marker", v.as_deref(), 1, 1024).pattern(
        "marker",
        v.as_deref(),
        |s| s.chars().all(|ch| ('\u{20}'..='\u{FF}').contains(&ch)),
        "[\\u0020-\\u00FF]*",
    );
}

/// `GrantTokens`: up to 10 tokens of 1-8192 characters. Their content is checked by
/// [`accept_grant_tokens`] once the request is valid.
pub fn check_grant_tokens(c: &mut Checks, v: &Option<Vec<String>>) {
    c.string_list("grantTokens", v.as_deref(), (0, 10), (1, 8192));
}

/// `DryRun` and `DryRunModifiers` of Decrypt and ReEncrypt. The modifiers apply only to a dry
/// run; `IGNORE_CIPHERTEXT` is their one value.
pub fn decrypt_run(
    c: &mut Checks,
    dry_run: Option<bool>,
    modifiers: &Option<Vec<String>>,
) -> DecryptRun {
    let mut ignore = false;
    if let Some(list) = modifiers {
        if list.iter().any(|m| m != IGNORE_CIPHERTEXT) {
            c.violation(
                "dryRunModifiers",
                Some(&format!("[{}]", list.join(", "))),
                &format!(
                    "satisfy constraint: [Member must satisfy enum value set: \
                     [{IGNORE_CIPHERTEXT}]]"
                ),
            );
        }
        ignore = list.iter().any(|m| m == IGNORE_CIPHERTEXT);
    }
    match (dry_run.unwrap_or(false), ignore) {
        (false, _) => DecryptRun::Real,
        (true, false) => DecryptRun::DryRun,
        (true, true) => DecryptRun::DryRunIgnoringCiphertext,
    }
}

const IGNORE_CIPHERTEXT: &str = "IGNORE_CIPHERTEXT";

/// `CiphertextBlob` of Decrypt and ReEncrypt: optional in AWS's model because a dry run with
/// `IGNORE_CIPHERTEXT` needs none; required otherwise (AWS's text for its absence is not
/// recorded: the model's `Member must not be null` wording is kept).
pub fn check_ciphertext_blob(c: &mut Checks, run: DecryptRun, blob: Option<&[u8]>) {
    if run != DecryptRun::DryRunIgnoringCiphertext && blob.is_none() {
        c.required::<()>("ciphertextBlob", &None);
    }
    c.blob_len("ciphertextBlob", blob, 1, 6144);
}

/// Accepts the `GrantTokens` of a valid request: each must be a token this server issued
/// (`InvalidGrantTokenException` otherwise). They are never needed: a grant works here as soon
/// as CreateGrant returns.
pub async fn accept_grant_tokens(kms: &Kms, tokens: &Option<Vec<String>>) -> KmsResult<()> {
    match tokens {
        Some(t) => kms.grants.accept_tokens(t).await,
        None => Ok(()),
    }
}

/// Applies `f` to a required value that validation has already shown present.
pub fn present<T>(v: Option<T>) -> KmsResult<T> {
    v.ok_or_else(|| {
        crate::service::KmsError::internal_because(crate::service::InternalCause::Invariant(
            "a validated member is missing",
        ))
    })
}

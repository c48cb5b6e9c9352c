//! `CreateKey`.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::Operation;
use crate::api::shapes::{KeyMetadata, WireTag};
use crate::api::validate::{is_policy_text, Checks};
use crate::model::{KeySpec, KeyUsage, Origin, Tag};
use crate::service::keys::NewKey;
use crate::service::policy::MAX_POLICY_BYTES;
use crate::service::{Call, Kms, KmsError, KmsResult};

pub struct CreateKey;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Request {
    description: Option<String>,
    key_usage: Option<String>,
    key_spec: Option<String>,
    customer_master_key_spec: Option<String>,
    origin: Option<String>,
    policy: Option<String>,
    bypass_policy_lockout_safety_check: Option<bool>,
    tags: Option<Vec<WireTag>>,
    multi_region: Option<bool>,
    custom_key_store_id: Option<String>,
    xks_key_id: Option<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Response {
    key_metadata: KeyMetadata,
}

/// Validates `Tags` members (lengths) and converts them. AWS names a member by its 1-based
/// position: `tags.1.member.tagValue` (recorded AWS response, docs/errors.md).
pub fn wire_tags(c: &mut Checks, tags: Option<Vec<WireTag>>) -> Vec<Tag> {
    let mut out = Vec::new();
    for (i, t) in tags.unwrap_or_default().into_iter().enumerate() {
        let key_field = format!("tags.{}.member.tagKey", i + 1);
        let value_field = format!("tags.{}.member.tagValue", i + 1);
        c.required(&key_field, &t.tag_key)
            .required(&value_field, &t.tag_value)
            .len(&key_field, t.tag_key.as_deref(), 1, 128)
            .len(&value_field, t.tag_value.as_deref(), 0, 256);
        if let (Some(key), Some(value)) = (t.tag_key, t.tag_value) {
            out.push(Tag { key, value });
        }
    }
    out
}

/// Size and character checks shared by CreateKey and PutKeyPolicy. The limit is 32 KB in bytes
/// (`[003:L9095]`; the model's own bound is 131072 characters): one violation, however it is
/// exceeded.
pub fn check_policy_text(c: &mut Checks, policy: Option<&str>) -> KmsResult<()> {
    c.len("policy", policy, 1, MAX_POLICY_BYTES);
    if let Some(p) = policy {
        if p.len() > MAX_POLICY_BYTES && p.chars().count() <= MAX_POLICY_BYTES {
            c.violation(
                "policy",
                Some(p),
                &format!("have length less than or equal to {MAX_POLICY_BYTES}"),
            );
        }
        c.pattern(
            "policy",
            Some(p),
            is_policy_text,
            "[\\u0009\\u000A\\u000D\\u0020-\\u00FF]+",
        );
    }
    Ok(())
}

impl Operation for CreateKey {
    const NAME: &'static str = "CreateKey";
    const READ_ONLY: bool = false;
    type Request = Request;
    type Response = Response;

    fn audit_parameters(r: &Request) -> Value {
        json!({
            "description": r.description,
            "keyUsage": r.key_usage.as_deref().unwrap_or("ENCRYPT_DECRYPT"),
            "keySpec": r.key_spec.as_deref().or(r.customer_master_key_spec.as_deref()).unwrap_or("SYMMETRIC_DEFAULT"),
            "origin": r.origin.as_deref().unwrap_or("AWS_KMS"),
            "bypassPolicyLockoutSafetyCheck": r.bypass_policy_lockout_safety_check.unwrap_or(false),
            "multiRegion": r.multi_region.unwrap_or(false),
            "tags": r.tags.as_ref().map(|t| t.iter().map(|t| json!({"tagKey": t.tag_key, "tagValue": t.tag_value})).collect::<Vec<_>>()),
        })
    }

    fn audit_response(r: &Response) -> Value {
        json!({ "keyMetadata": { "keyId": r.key_metadata.key_id, "arn": r.key_metadata.arn } })
    }

    async fn execute(kms: &Kms, call: &mut Call, r: Request) -> KmsResult<Response> {
        let mut c = Checks::new();
        c.len("description", r.description.as_deref(), 0, 8192);
        let usage = c.enum_value(
            "keyUsage",
            r.key_usage.as_deref(),
            KeyUsage::parse,
            KeyUsage::wire_list(),
        );
        let spec = c.enum_value(
            "keySpec",
            r.key_spec.as_deref(),
            KeySpec::parse,
            KeySpec::wire_list(),
        );
        let cmk_spec = c.enum_value(
            "customerMasterKeySpec",
            r.customer_master_key_spec.as_deref(),
            KeySpec::parse,
            KeySpec::wire_list(),
        );
        let origin = c.enum_value(
            "origin",
            r.origin.as_deref(),
            Origin::parse,
            Origin::wire_list(),
        );
        check_policy_text(&mut c, r.policy.as_deref())?;
        c.len("customKeyStoreId", r.custom_key_store_id.as_deref(), 1, 64)
            .len("xksKeyId", r.xks_key_id.as_deref(), 1, 128);
        let tags = wire_tags(&mut c, r.tags);
        c.finish()?;
        if spec.is_some() && cmk_spec.is_some() {
            return Err(KmsError::Validation(
                "You cannot specify KeySpec and CustomerMasterKeySpec in the same request. \
                 CustomerMasterKeySpec is deprecated."
                    .into(),
            ));
        }
        if r.xks_key_id.is_some() && origin != Some(Origin::ExternalKeyStore) {
            return Err(KmsError::Validation(
                "XksKeyId is valid only with Origin EXTERNAL_KEY_STORE.".into(),
            ));
        }
        crate::service::tags::check_tags(&tags)?;
        let key_spec = spec.or(cmk_spec).unwrap_or(KeySpec::SymmetricDefault);
        let origin = origin.unwrap_or(Origin::AwsKms);
        let key_usage =
            crate::service::keys::check_spec_usage(kms.core().region_of(call), key_spec, usage)?;
        let bypass = r.bypass_policy_lockout_safety_check;
        kms.keys.authorize_create(
            call,
            key_spec,
            key_usage,
            origin,
            r.multi_region.unwrap_or(false),
            bypass,
            &tags,
        )?;
        let custom = matches!(origin, Origin::AwsCloudhsm | Origin::ExternalKeyStore);
        if custom || r.custom_key_store_id.is_some() {
            let Some(store_id) = r.custom_key_store_id.as_deref() else {
                return Err(KmsError::Validation(format!(
                    "Origin {origin} requires a CustomKeyStoreId."
                )));
            };
            if !custom {
                return Err(KmsError::Validation(format!(
                    "A key in a custom key store must have Origin AWS_CLOUDHSM or \
                     EXTERNAL_KEY_STORE, not {origin}."
                )));
            }
            if key_spec != KeySpec::SymmetricDefault
                || key_usage != KeyUsage::EncryptDecrypt
                || r.multi_region.unwrap_or(false)
            {
                return Err(KmsError::UnsupportedOperation(
                    "Custom key stores support only single-Region symmetric encryption keys \
                     (SYMMETRIC_DEFAULT, ENCRYPT_DECRYPT)."
                        .into(),
                ));
            }
            let policy = r.policy;
            let key = if origin == Origin::ExternalKeyStore {
                let Some(xks_key_id) = r.xks_key_id.as_deref() else {
                    return Err(KmsError::Validation(
                        "Origin EXTERNAL_KEY_STORE requires an XksKeyId.".into(),
                    ));
                };
                kms.custom_key_stores
                    .create_xks_key(
                        call,
                        store_id,
                        xks_key_id,
                        r.description.unwrap_or_default(),
                        policy,
                        bypass,
                        tags,
                    )
                    .await?
            } else {
                kms.custom_key_stores
                    .create_cloudhsm_key(
                        call,
                        store_id,
                        r.description.unwrap_or_default(),
                        policy,
                        bypass,
                        tags,
                    )
                    .await?
            };
            return Ok(Response {
                key_metadata: KeyMetadata::of(kms, &key).await?,
            });
        }
        let key = kms
            .keys
            .create_key(
                call,
                NewKey {
                    description: r.description.unwrap_or_default(),
                    key_spec,
                    key_usage,
                    origin,
                    policy: r.policy,
                    bypass_policy_lockout: bypass,
                    tags,
                    multi_region: r.multi_region.unwrap_or(false),
                },
            )
            .await?;
        Ok(Response {
            key_metadata: KeyMetadata::of(kms, &key).await?,
        })
    }
}

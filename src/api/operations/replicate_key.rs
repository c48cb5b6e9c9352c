//! `ReplicateKey`: a replica of a multi-Region primary key in another served region.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::create_key::{check_policy_text, wire_tags};
use super::{check_key_id, present, Operation};
use crate::api::shapes::{KeyMetadata, WireTag};
use crate::api::validate::Checks;
use crate::service::multi_region::ReplicateRequest;
use crate::service::{Call, Kms, KmsResult};

pub struct ReplicateKey;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Request {
    key_id: Option<String>,
    replica_region: Option<String>,
    policy: Option<String>,
    bypass_policy_lockout_safety_check: Option<bool>,
    description: Option<String>,
    tags: Option<Vec<WireTag>>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Response {
    replica_key_metadata: KeyMetadata,
    replica_policy: String,
    replica_tags: Vec<WireTag>,
}

/// `^([a-z]+-){2,3}\d+$`, the model's pattern for a region name.
fn is_region_name(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    let (last, words) = match parts.split_last() {
        Some(p) => p,
        None => return false,
    };
    (2..=3).contains(&words.len())
        && words
            .iter()
            .all(|w| !w.is_empty() && w.bytes().all(|b| b.is_ascii_lowercase()))
        && !last.is_empty()
        && last.bytes().all(|b| b.is_ascii_digit())
}

impl Operation for ReplicateKey {
    const NAME: &'static str = "ReplicateKey";
    const READ_ONLY: bool = false;
    type Request = Request;
    type Response = Response;

    fn audit_parameters(r: &Request) -> Value {
        json!({
            "keyId": r.key_id,
            "replicaRegion": r.replica_region,
            "bypassPolicyLockoutSafetyCheck": r.bypass_policy_lockout_safety_check.unwrap_or(false),
            "description": r.description,
        })
    }

    fn audit_response(r: &Response) -> Value {
        json!({ "replicaKeyMetadata": {
            "keyId": r.replica_key_metadata.key_id,
            "arn": r.replica_key_metadata.arn,
        } })
    }

    async fn execute(kms: &Kms, call: &mut Call, r: Request) -> KmsResult<Response> {
        let mut c = Checks::new();
        check_key_id(&mut c, "keyId", &r.key_id);
        c.required("replicaRegion", &r.replica_region)
            .len("replicaRegion", r.replica_region.as_deref(), 1, 32)
            .pattern(
                "replicaRegion",
                r.replica_region.as_deref(),
                is_region_name,
                "^([a-z]+-){2,3}\\d+$",
            )
            .len("description", r.description.as_deref(), 0, 8192);
        check_policy_text(&mut c, r.policy.as_deref())?;
        let tags = wire_tags(&mut c, r.tags);
        c.finish()?;
        crate::service::tags::check_tags(&tags)?;
        let replica = kms
            .keys
            .replicate_key(
                call,
                ReplicateRequest {
                    key_id: present(r.key_id)?,
                    replica_region: present(r.replica_region)?,
                    policy: r.policy,
                    bypass_policy_lockout: r.bypass_policy_lockout_safety_check,
                    description: r.description,
                    tags,
                },
            )
            .await?;
        Ok(Response {
            replica_key_metadata: KeyMetadata::of(kms, &replica.key).await?,
            replica_policy: replica.policy,
            replica_tags: replica
                .tags
                .into_iter()
                .map(|t| WireTag {
                    tag_key: Some(t.key),
                    tag_value: Some(t.value),
                })
                .collect(),
        })
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn region_names_follow_the_model_pattern() {
        for ok in ["us-east-1", "eu-west-3", "us-gov-west-1", "ap-southeast-12"] {
            assert!(super::is_region_name(ok), "{ok}");
        }
        for bad in [
            "us-east",
            "useast1",
            "US-east-1",
            "us--1",
            "a-b-c-d-1",
            "us-east-1a",
        ] {
            assert!(!super::is_region_name(bad), "{bad}");
        }
    }
}

//! Key policies: the default policy, document validation, Get/Put. Policy *evaluation* is not
//! done yet: every authenticated principal of the key's account may use its keys.

use super::{part, Call, KmsError, KmsResult, StateRule};

/// The only policy name.
pub const POLICY_NAME: &str = "default";
/// Maximum key policy size in bytes.
pub const MAX_POLICY_BYTES: usize = 32_768;

/// The programmatic default key policy (`key-default-1`).
pub fn default_policy(partition: &str, account: &str) -> String {
    format!(
        "{{\n  \"Version\" : \"2012-10-17\",\n  \"Id\" : \"key-default-1\",\n  \"Statement\" : [ {{\n    \
         \"Sid\" : \"Enable IAM User Permissions\",\n    \"Effect\" : \"Allow\",\n    \"Principal\" : {{\n      \
         \"AWS\" : \"arn:{partition}:iam::{account}:root\"\n    }},\n    \"Action\" : \"kms:*\",\n    \
         \"Resource\" : \"*\"\n  }} ]\n}}"
    )
}

/// Validates a policy document: size, characters, and JSON grammar.
pub fn validate_policy(policy: &str) -> KmsResult<()> {
    // Size and character checks are the API layer's (they are ValidationExceptions).
    let doc: serde_json::Value = serde_json::from_str(policy)
        .map_err(|_| malformed("the document is not valid JSON"))
        .and_then(|v| match v {
            serde_json::Value::Object(_) => Ok(v),
            _ => Err(malformed("Policy document must be a JSON object")),
        })?;
    let statements = match doc.get("Statement") {
        Some(serde_json::Value::Array(a)) if !a.is_empty() => a.clone(),
        Some(o @ serde_json::Value::Object(_)) => vec![o.clone()],
        _ => return Err(malformed("Policy document must contain a Statement")),
    };
    for s in &statements {
        let Some(obj) = s.as_object() else {
            return Err(malformed("Each Statement must be a JSON object"));
        };
        match obj.get("Effect").and_then(|e| e.as_str()) {
            Some("Allow") | Some("Deny") => {}
            _ => return Err(malformed("Statement Effect must be Allow or Deny")),
        }
        if !obj.contains_key("Principal") && !obj.contains_key("NotPrincipal") {
            return Err(malformed("Statement must have a Principal"));
        }
        if !obj.contains_key("Action") && !obj.contains_key("NotAction") {
            return Err(malformed("Statement must have an Action"));
        }
    }
    Ok(())
}

fn malformed(why: &str) -> KmsError {
    KmsError::MalformedPolicyDocument(format!("The key policy is malformed: {why}."))
}

part!(
    /// GetKeyPolicy, PutKeyPolicy, ListKeyPolicies.
    Policies
);

impl Policies {
    pub async fn get_key_policy(
        &self,
        call: &mut Call,
        key_id: &str,
        name: &str,
    ) -> KmsResult<String> {
        let key = self.resolve(call, key_id, false).await?;
        check_name(name)?;
        Ok(key.policy)
    }

    pub async fn put_key_policy(
        &self,
        call: &mut Call,
        key_id: &str,
        name: &str,
        policy: String,
    ) -> KmsResult<()> {
        let mut key = self.resolve(call, key_id, false).await?;
        self.check_state(&key, StateRule::Any)?;
        check_name(name)?;
        validate_policy(&policy)?;
        key.policy = policy;
        self.store.update_key(&key).await?;
        Ok(())
    }

    pub async fn list_key_policies(&self, call: &mut Call, key_id: &str) -> KmsResult<Vec<String>> {
        self.resolve(call, key_id, false).await?;
        Ok(vec![POLICY_NAME.to_string()])
    }
}

fn check_name(name: &str) -> KmsResult<()> {
    if name != POLICY_NAME {
        return Err(KmsError::NotFound(format!("No such policy exists: {name}")));
    }
    Ok(())
}

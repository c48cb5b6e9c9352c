//! Key policies: Get/Put/ListKeyPolicies. The grammar, validation, default policy and
//! evaluation are `kms_policy`'s; authorization (`service::authz`) evaluates a key's policy on
//! every request.

use super::{part, Call, KmsError, KmsResult, StateRule};

/// The only policy name.
pub const POLICY_NAME: &str = "default";
/// Maximum key policy size in bytes.
pub const MAX_POLICY_BYTES: usize = 32_768;

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
        let key = self.resolve_authorized(call, key_id, false).await?;
        check_name(name)?;
        Ok(key.policy)
    }

    pub async fn put_key_policy(
        &self,
        call: &mut Call,
        key_id: &str,
        name: &str,
        policy: String,
        bypass_policy_lockout: Option<bool>,
    ) -> KmsResult<()> {
        let mut key = self.resolve(call, key_id, false).await?;
        self.authorize_key(call, "PutKeyPolicy", &key, None, |ctx| {
            if let Some(b) = bypass_policy_lockout {
                ctx.set("kms:BypassPolicyLockoutSafetyCheck", b);
            }
        })
        .await?;
        self.check_state(&key, StateRule::Any)?;
        check_name(name)?;
        let parsed = self.parse_key_policy(&policy)?;
        if bypass_policy_lockout != Some(true) {
            self.lockout_check(call, &key.arn, &parsed, bypass_policy_lockout)?;
        }
        key.policy = policy;
        self.store.update_key(&key).await?;
        Ok(())
    }

    pub async fn list_key_policies(&self, call: &mut Call, key_id: &str) -> KmsResult<Vec<String>> {
        self.resolve_authorized(call, key_id, false).await?;
        Ok(vec![POLICY_NAME.to_string()])
    }
}

fn check_name(name: &str) -> KmsResult<()> {
    if name != POLICY_NAME {
        return Err(KmsError::NotFound(format!("No such policy exists: {name}")));
    }
    Ok(())
}

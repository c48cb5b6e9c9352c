//! Identifier newtypes: key ids, key ARNs, alias names, and the parsed form of the `KeyId`
//! request parameter (key id, key ARN, alias name or alias ARN).

use std::fmt;
use std::sync::Arc;

/// A KMS key id: a lower-case UUID (`1234abcd-12ab-34cd-56ef-1234567890ab`), or a multi-Region
/// key id, `mrk-` and 32 lower-case hex digits (`mrk-1234abcd12ab34cd56ef1234567890ab`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyId(String);

impl KeyId {
    /// A fresh random key id.
    pub fn generate() -> Self {
        KeyId(uuid::Uuid::new_v4().to_string())
    }

    /// Parses a key id (either form, normalized to lower case). A well-formed id that names no
    /// key is AWS's "Key '...' does not exist"; anything else is "Invalid keyId".
    pub fn parse(s: &str) -> Option<Self> {
        if let Some(hex) = s.strip_prefix("mrk-") {
            let ok = hex.len() == 32 && hex.bytes().all(|b| b.is_ascii_hexdigit());
            return ok.then(|| KeyId(format!("mrk-{}", hex.to_ascii_lowercase())));
        }
        if s.len() != 36 {
            return None;
        }
        let ok = s.bytes().enumerate().all(|(i, b)| match i {
            8 | 13 | 18 | 23 => b == b'-',
            _ => b.is_ascii_digit() || (b'a'..=b'f').contains(&b) || (b'A'..=b'F').contains(&b),
        });
        ok.then(|| KeyId(s.to_ascii_lowercase()))
    }

    /// A fresh random multi-Region key id (`mrk-` and a UUID's 32 hex digits), not yet placed
    /// in a region (see [`KeyId::in_region`]).
    pub fn generate_multi_region() -> Self {
        KeyId(format!("mrk-{}", uuid::Uuid::new_v4().simple()))
    }

    /// The id as the store keeps it: a single-Region key's id as is; a multi-Region key's id
    /// with its region (`mrk-<hex>/<region>`), because related keys share the public id and
    /// each region has its own row. Never on the wire: use [`KeyId::public`] (or `Display`).
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The id as AWS shows it (`mrk-<hex>` without a region).
    pub fn public(&self) -> &str {
        self.0.split_once('/').map_or(&self.0, |(id, _)| id)
    }

    /// Whether this is a multi-Region key id.
    pub fn is_multi_region(&self) -> bool {
        self.0.starts_with("mrk-")
    }

    /// The key of this id in `region`: a multi-Region id gets the region (the stored form);
    /// a single-Region id is unchanged (its id is unique in every region).
    pub fn in_region(&self, region: &str) -> KeyId {
        if self.is_multi_region() {
            KeyId(format!("{}/{region}", self.public()))
        } else {
            self.clone()
        }
    }

    /// Parses the stored form ([`KeyId::as_str`]): a key id, or a multi-Region id with its
    /// region.
    pub fn from_storage(s: &str) -> Option<Self> {
        match s.split_once('/') {
            None => Self::parse(s),
            Some((id, region)) => {
                let ok = !region.is_empty()
                    && region.len() <= 32
                    && region
                        .bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
                let id = Self::parse(id).filter(|id| id.is_multi_region() && ok)?;
                Some(id.in_region(region))
            }
        }
    }
}

impl fmt::Display for KeyId {
    /// The public form (no region).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.public())
    }
}

/// `arn:aws:kms:<region>:<account>:key/<key-id>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyArn(pub String);

impl KeyArn {
    pub fn new(partition: &str, region: &str, account: &str, key_id: &KeyId) -> Self {
        KeyArn(format!(
            "arn:{partition}:kms:{region}:{account}:key/{key_id}"
        ))
    }
}

impl fmt::Display for KeyArn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An alias name, always with its `alias/` prefix.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AliasName(pub String);

impl AliasName {
    /// The alias ARN in the given account and region.
    pub fn arn(&self, partition: &str, region: &str, account: &str) -> String {
        format!("arn:{partition}:kms:{region}:{account}:{}", self.0)
    }
}

impl fmt::Display for AliasName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The four ways a request can name a key. ARN forms keep the account and region they name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyRef {
    Id(KeyId),
    Arn {
        region: String,
        account: String,
        key_id: KeyId,
    },
    AliasName(AliasName),
    AliasArn {
        region: String,
        account: String,
        alias: AliasName,
    },
}

/// Why a `KeyId` parameter could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyRefError {
    /// Not a key id, alias name or ARN at all.
    InvalidKeyId,
    /// Starts with `arn:` but is not a KMS key or alias ARN.
    InvalidArn,
}

impl KeyRef {
    pub fn parse(s: &str) -> Result<Self, KeyRefError> {
        if let Some(rest) = s.strip_prefix("arn:") {
            // partition:kms:region:account:resource
            let mut parts = rest.splitn(5, ':');
            let (Some(partition), Some(service), Some(region), Some(account), Some(resource)) = (
                parts.next(),
                parts.next(),
                parts.next(),
                parts.next(),
                parts.next(),
            ) else {
                return Err(KeyRefError::InvalidArn);
            };
            if partition.is_empty()
                || service != "kms"
                || region.is_empty()
                || account.len() != 12
                || !account.bytes().all(|b| b.is_ascii_digit())
            {
                return Err(KeyRefError::InvalidArn);
            }
            if let Some(id) = resource.strip_prefix("key/") {
                let key_id = KeyId::parse(id).ok_or(KeyRefError::InvalidArn)?;
                return Ok(KeyRef::Arn {
                    region: region.into(),
                    account: account.into(),
                    key_id,
                });
            }
            if resource.starts_with("alias/") && resource.len() > "alias/".len() {
                return Ok(KeyRef::AliasArn {
                    region: region.into(),
                    account: account.into(),
                    alias: AliasName(resource.to_string()),
                });
            }
            return Err(KeyRefError::InvalidArn);
        }
        if s.starts_with("alias/") && s.len() > "alias/".len() {
            return Ok(KeyRef::AliasName(AliasName(s.to_string())));
        }
        KeyId::parse(s)
            .map(KeyRef::Id)
            .ok_or(KeyRefError::InvalidKeyId)
    }

    pub fn is_alias(&self) -> bool {
        matches!(self, KeyRef::AliasName(_) | KeyRef::AliasArn { .. })
    }
}

/// The authenticated caller, resolved from the access key id of a verified SigV4 request, with
/// the policies that apply to it (a snapshot: a reload does not change a request in flight).
#[derive(Debug, Clone)]
pub struct Principal {
    /// 12-digit account id.
    pub account: String,
    /// `arn:aws:iam::<account>:user/<name>`, `...:root`, or a role session's
    /// `arn:aws:sts::<account>:assumed-role/<role>/<session>`.
    pub arn: String,
    pub access_key_id: String,
    /// The identity as policies see it (`None`: unauthenticated, or the service itself).
    pub caller: Option<kms_policy::Caller>,
    /// Identity policies: a user's own and its groups', a session's role's.
    pub policies: Arc<[Arc<kms_policy::Policy>]>,
    /// A role session's inline session policy (it narrows the role's policies).
    pub session_policies: Option<Arc<[Arc<kms_policy::Policy>]>>,
    /// Deny-only guardrail policies of the account.
    pub guardrails: Arc<[Arc<kms_policy::Policy>]>,
    /// A role session's tags (key, value): the `aws:PrincipalTag/<key>` condition keys.
    pub principal_tags: Arc<[(String, String)]>,
    /// A role session's source identity (`aws:SourceIdentity`).
    pub source_identity: Option<String>,
    /// A role session's transitive tag keys: its tags with these keys pass to the sessions it
    /// makes by assuming another role.
    pub transitive_tag_keys: Arc<[String]>,
    /// When a role session was issued (`aws:TokenIssueTime`); `None` for long-term credentials.
    pub token_issue_time: Option<chrono::DateTime<chrono::Utc>>,
}

impl Principal {
    /// A principal that is no identity: a request that failed authentication, or a call the
    /// service makes on its own behalf (`account` may be empty).
    pub fn anonymous(account: &str, access_key_id: &str) -> Principal {
        Principal {
            account: account.to_string(),
            arn: String::new(),
            access_key_id: access_key_id.to_string(),
            caller: None,
            policies: Arc::from(Vec::new()),
            session_policies: None,
            guardrails: Arc::from(Vec::new()),
            principal_tags: Arc::from(Vec::new()),
            source_identity: None,
            transitive_tag_keys: Arc::from(Vec::new()),
            token_issue_time: None,
        }
    }

    /// `IAMUser`, `AssumedRole` or `Root`, as CloudTrail's `userIdentity.type` says.
    pub fn identity_type(&self) -> &'static str {
        match self.caller.as_ref().map(kms_policy::Caller::kind) {
            Some(kms_policy::CallerKind::Root) => "Root",
            Some(kms_policy::CallerKind::AssumedRole { .. }) => "AssumedRole",
            _ => "IAMUser",
        }
    }

    /// The last path segment of the ARN (user name, or session name).
    pub fn name(&self) -> &str {
        self.arn.rsplit('/').next().unwrap_or(&self.arn)
    }

    /// The unique id (`AIDA...`, `AROA...:session`, or the account for root).
    pub fn unique_id(&self) -> Option<&str> {
        self.caller.as_ref().and_then(kms_policy::Caller::unique_id)
    }
}

/// Lowercase hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(DIGITS[usize::from(b >> 4)] as char);
        out.push(DIGITS[usize::from(b & 0x0f)] as char);
    }
    out
}

/// A fresh `KeyMaterialId` for generated material: 32 random bytes, 64 lowercase hex.
pub fn random_material_id() -> String {
    use ring::rand::SecureRandom;
    let mut bytes = [0u8; 32];
    // The system CSPRNG does not fail on supported platforms; an all-zero id would still be
    // a well-formed (if unlucky) id, never a security property.
    let _ = ring::rand::SystemRandom::new().fill(&mut bytes);
    hex(&bytes)
}

/// Whether `s` is a well-formed `KeyMaterialId`: 64 lowercase hex digits.
pub fn is_material_id(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multi_region_ids_carry_their_region_in_storage_only() {
        let id = KeyId::generate_multi_region();
        assert!(KeyId::parse(id.as_str()).is_some(), "{id}");
        let west = id.in_region("us-west-2");
        assert_eq!(west.public(), id.as_str());
        assert_eq!(west.to_string(), id.to_string());
        assert_eq!(west.as_str(), format!("{id}/us-west-2"));
        assert_ne!(west, id.in_region("us-east-1"));
        assert_eq!(west.in_region("eu-west-1"), id.in_region("eu-west-1"));
        assert_eq!(KeyId::from_storage(west.as_str()), Some(west.clone()));
        assert_eq!(KeyId::from_storage(&format!("{id}/US")), None);
        let uuid = KeyId::generate();
        assert_eq!(uuid.in_region("us-west-2"), uuid);
        assert_eq!(KeyId::from_storage(&format!("{uuid}/us-west-2")), None);
    }

    #[test]
    fn parses_every_form() {
        let id = "1234abcd-12ab-34cd-56ef-1234567890ab";
        assert!(matches!(KeyRef::parse(id), Ok(KeyRef::Id(_))));
        let arn = format!("arn:aws:kms:us-east-1:111122223333:key/{id}");
        assert!(matches!(KeyRef::parse(&arn), Ok(KeyRef::Arn { .. })));
        assert!(matches!(KeyRef::parse("alias/x"), Ok(KeyRef::AliasName(_))));
        let aarn = "arn:aws:kms:us-east-1:111122223333:alias/x";
        assert!(matches!(KeyRef::parse(aarn), Ok(KeyRef::AliasArn { .. })));
        assert_eq!(KeyRef::parse("foo"), Err(KeyRefError::InvalidKeyId));
        let mrk = "mrk-1234abcd12ab34cd56ef1234567890ab";
        assert_eq!(KeyRef::parse(mrk), Ok(KeyRef::Id(KeyId(mrk.into()))));
        let arn = format!("arn:aws:kms:us-east-1:111122223333:key/{mrk}");
        assert!(matches!(KeyRef::parse(&arn), Ok(KeyRef::Arn { .. })));
        // AWS: "Invalid keyId 'mrk-fake-key-id'", and a UUID without its hyphens.
        for bad in [
            "mrk-fake-key-id",
            "mrk-1234abcd12ab34cd56ef1234567890a",
            "134f2428cec14b25a1ae9048164dba47",
        ] {
            assert_eq!(KeyRef::parse(bad), Err(KeyRefError::InvalidKeyId), "{bad}");
        }
        assert_eq!(KeyRef::parse("alias/"), Err(KeyRefError::InvalidKeyId));
        // The stored form of a multi-Region key is never request input.
        assert_eq!(
            KeyRef::parse(&format!("{mrk}/us-west-2")),
            Err(KeyRefError::InvalidKeyId)
        );
        assert_eq!(
            KeyRef::parse("arn:aws:kms:us-east-1:1:key/x"),
            Err(KeyRefError::InvalidArn)
        );
        assert_eq!(
            KeyRef::parse("arn:aws:s3:::bucket"),
            Err(KeyRefError::InvalidArn)
        );
    }
}

//! Grants: CreateGrant, ListGrants, ListRetirableGrants, RetireGrant, RevokeGrant, and the grant
//! tokens every operation that takes `GrantTokens` accepts.
//!
//! This part owns the grant rules that need the store or the caller: which principals a grant
//! may name, which operations and constraints a key type takes, the per-key quota and `Name`
//! idempotency (decided by the store in its insert, atomically across nodes), who may retire,
//! paging, and the tokens. The pure rules (does a grant cover a request, may a grant create a
//! child grant, who may retire) are `kms_policy::grant`'s; using a grant to authorize a request
//! is [`super::authz`]'s.
//!
//! Grant tokens: `base64(version ‖ grant id ‖ nonce ‖ HMAC-SHA-256)`, the MAC under a key made
//! once from the root's randomness, stored only sealed under the root (a system secret) and
//! cached in memory. A token maps back to its grant; it is never required, because one node
//! reads its own writes, so a grant works as soon as CreateGrant returns. A token of a grant
//! retired since is still a well-formed token (AWS tokens only bridge propagation).

use std::collections::BTreeMap;
use std::sync::Arc;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use kms_policy::{GrantConstraints as PolicyConstraints, GrantKeyType, GrantOperation};
use ring::hmac;
use ring::rand::{SecureRandom, SystemRandom};
use secrecy::{ExposeSecret, SecretString};
use zeroize::Zeroizing;

use super::authz::{grant_operations, grant_view, GrantRule};
use super::{Call, Core, InternalCause, KmsError, KmsResult, StateRule};
use crate::model::{GrantConstraints, GrantRecord, KeyRecord, KeyRef, KeySpec, KeyUsage};
use crate::store::StoreError;

/// Grants per key (AWS quota, not adjustable here).
pub const MAX_GRANTS_PER_KEY: usize = 50_000;

/// The system secret holding the sealed token MAC key.
const TOKEN_KEY_SECRET: &str = "grant-token-key-v1";
/// The AAD the token MAC key is sealed with.
const TOKEN_KEY_PURPOSE: &str = "grant-token-mac-key";
const TOKEN_VERSION: u8 = 1;
const GRANT_ID_BYTES: usize = 32;
const TOKEN_NONCE_BYTES: usize = 16;
const TOKEN_BODY_BYTES: usize = 1 + GRANT_ID_BYTES + TOKEN_NONCE_BYTES;
const TOKEN_BYTES: usize = TOKEN_BODY_BYTES + 32;

/// Validated CreateGrant input.
#[derive(Debug, Clone)]
pub struct NewGrant {
    pub grantee_principal: String,
    pub retiring_principal: Option<String>,
    /// Without duplicates, in request order.
    pub operations: Vec<GrantOperation>,
    pub constraints: GrantConstraints,
    pub name: Option<String>,
}

/// What CreateGrant returns.
pub struct CreatedGrant {
    pub key: KeyRecord,
    pub grant_id: String,
    pub grant_token: String,
}

/// One entry of ListGrants or ListRetirableGrants.
pub struct ListedGrant {
    pub grant: GrantRecord,
    pub key_arn: String,
    /// `arn:<partition>:iam::<account>:root` of the account that created the grant.
    pub issuing_account: String,
}

/// One page of grants.
pub struct GrantPage {
    pub grants: Vec<ListedGrant>,
    /// The marker of the next page, when there is one.
    pub next_marker: Option<String>,
}

/// How RetireGrant names its grant.
#[derive(Debug, Clone, Copy)]
pub struct RetireTarget<'a> {
    pub grant_token: Option<&'a str>,
    pub key_id: Option<&'a str>,
    pub grant_id: Option<&'a str>,
}

/// CreateGrant, ListGrants, ListRetirableGrants, RetireGrant, RevokeGrant, grant tokens.
pub struct Grants {
    core: Arc<Core>,
    /// The token MAC key, loaded (or made) on first use.
    token_key: tokio::sync::OnceCell<hmac::Key>,
}

impl std::ops::Deref for Grants {
    type Target = Core;
    fn deref(&self) -> &Core {
        &self.core
    }
}

/// The grant-relevant type of a key (reference §6.2).
pub fn grant_key_type(key: &KeyRecord) -> GrantKeyType {
    match key.key_usage {
        KeyUsage::EncryptDecrypt if key.key_spec == KeySpec::SymmetricDefault => {
            GrantKeyType::SymmetricEncryption
        }
        KeyUsage::EncryptDecrypt => GrantKeyType::AsymmetricEncryptDecrypt,
        KeyUsage::SignVerify => GrantKeyType::AsymmetricSignVerify,
        KeyUsage::KeyAgreement => GrantKeyType::AsymmetricKeyAgreement,
        KeyUsage::GenerateVerifyMac => GrantKeyType::Hmac,
    }
}

/// Whether `id` has the shape of a grant id this server makes (64 lower-case hex digits).
fn is_grant_id(id: &str) -> bool {
    id.len() == 2 * GRANT_ID_BYTES && id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

fn invalid_grant_id(id: &str) -> KmsError {
    KmsError::InvalidGrantId(format!("Invalid grantId '{id}'"))
}

fn grant_not_found(id: &str) -> KmsError {
    KmsError::NotFound(format!("Grant ID {id} does not exist"))
}

/// LimitExceededException for the grants-per-key quota, in the shape of AWS's key quota message
/// ("Key quota for this account in this region is 101 but the current usage is 101.").
pub(crate) fn grant_quota_exceeded(limit: usize, usage: usize) -> KmsError {
    KmsError::LimitExceeded(format!(
        "Grant quota for this key is {limit} but the current usage is {usage}."
    ))
}

fn invalid_token() -> KmsError {
    KmsError::InvalidGrantToken("Invalid grant token".into())
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(DIGITS[usize::from(b >> 4)] as char);
        out.push(DIGITS[usize::from(b & 15)] as char);
    }
    out
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    let digit = |b: u8| match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        _ => None,
    };
    if !s.len().is_multiple_of(2) {
        return None;
    }
    s.as_bytes()
        .chunks(2)
        .map(|p| Some(digit(p[0])? << 4 | digit(p[1])?))
        .collect()
}

fn random_bytes<const N: usize>() -> KmsResult<[u8; N]> {
    let mut out = [0u8; N];
    SystemRandom::new().fill(&mut out).map_err(|_| {
        KmsError::internal_because(InternalCause::Invariant("no system randomness"))
    })?;
    Ok(out)
}

/// The ListGrants marker of a grant: its place in creation order.
fn list_marker(g: &GrantRecord) -> String {
    format!("{}:{}", g.creation_date.timestamp_millis(), g.grant_id)
}

fn parse_list_marker(m: &str) -> KmsResult<(i64, &str)> {
    let invalid = || KmsError::InvalidMarker("Invalid marker".into());
    let (ms, id) = m.split_once(':').ok_or_else(invalid)?;
    let ms = ms.parse::<i64>().map_err(|_| invalid())?;
    if !is_grant_id(id) {
        return Err(invalid());
    }
    Ok((ms, id))
}

/// The merged encryption context of a grant's constraints (`kms:EncryptionContext:` keys of
/// CreateGrant); an Equals pair wins over a Subset pair of the same key.
fn constraint_context(c: &GrantConstraints) -> Option<BTreeMap<String, String>> {
    if c.is_empty() {
        return None;
    }
    let mut out = c.encryption_context_subset.clone().unwrap_or_default();
    if let Some(e) = &c.encryption_context_equals {
        out.extend(e.iter().map(|(k, v)| (k.clone(), v.clone())));
    }
    Some(out)
}

/// Whether `a` is the grant a CreateGrant of `b` would make again: same name, issuing
/// account, grantee, retiring principal, constraints and operations (in any order). AWS
/// returns the existing grant's id for such a retry.
fn same_grant(a: &GrantRecord, b: &GrantRecord) -> bool {
    a.name.is_some()
        && a.name == b.name
        && a.key_id == b.key_id
        && a.issuing_account == b.issuing_account
        && a.grantee_principal == b.grantee_principal
        && a.retiring_principal == b.retiring_principal
        && a.constraints == b.constraints
        && same_operations(&a.operations, &b.operations)
}

fn same_operations(a: &[String], b: &[String]) -> bool {
    let mut a: Vec<&str> = a.iter().map(String::as_str).collect();
    let mut b: Vec<&str> = b.iter().map(String::as_str).collect();
    a.sort_unstable();
    b.sort_unstable();
    a == b
}

impl Grants {
    pub(crate) fn new(core: Arc<Core>) -> Self {
        Grants {
            core,
            token_key: tokio::sync::OnceCell::new(),
        }
    }

    // ---------------------------------------------------------------------------------------
    // Tokens

    /// The token MAC key: the stored one, or a new one from the root's randomness, sealed
    /// under the root and stored once (a concurrent first use by another node keeps the one
    /// stored first).
    async fn token_key(&self) -> KmsResult<&hmac::Key> {
        self.token_key
            .get_or_try_init(|| async {
                let sealed = match self.store.get_system_secret(TOKEN_KEY_SECRET).await? {
                    Some(sealed) => sealed,
                    None => {
                        let raw = self.root.random(32).await?;
                        let fresh = self
                            .seal_secret(TOKEN_KEY_PURPOSE, &SecretString::from(hex(&raw)))
                            .await?;
                        self.store
                            .put_system_secret_if_absent(TOKEN_KEY_SECRET, &fresh)
                            .await?
                    }
                };
                let opened = self.open_secret(TOKEN_KEY_PURPOSE, &sealed).await?;
                let raw = Zeroizing::new(unhex(opened.expose_secret()).ok_or_else(|| {
                    KmsError::internal_because(InternalCause::Invariant(
                        "the stored grant token key is corrupt",
                    ))
                })?);
                Ok(hmac::Key::new(hmac::HMAC_SHA256, &raw))
            })
            .await
    }

    /// A fresh token for a grant (every CreateGrant returns a new one; all work alike).
    async fn mint_token(&self, grant_id: &str) -> KmsResult<String> {
        let id = unhex(grant_id)
            .filter(|b| b.len() == GRANT_ID_BYTES)
            .ok_or_else(|| {
                KmsError::internal_because(InternalCause::Invariant("a grant id is malformed"))
            })?;
        let key = self.token_key().await?;
        let mut token = Vec::with_capacity(TOKEN_BYTES);
        token.push(TOKEN_VERSION);
        token.extend_from_slice(&id);
        token.extend_from_slice(&random_bytes::<TOKEN_NONCE_BYTES>()?);
        let tag = hmac::sign(key, &token);
        token.extend_from_slice(tag.as_ref());
        Ok(B64.encode(token))
    }

    /// The grant id a token names, if this server made the token.
    async fn token_grant_id(&self, token: &str) -> KmsResult<String> {
        let bytes = B64.decode(token.as_bytes()).map_err(|_| invalid_token())?;
        if bytes.len() != TOKEN_BYTES || bytes[0] != TOKEN_VERSION {
            return Err(invalid_token());
        }
        let (body, tag) = bytes.split_at(TOKEN_BODY_BYTES);
        hmac::verify(self.token_key().await?, body, tag).map_err(|_| invalid_token())?;
        Ok(hex(&body[1..1 + GRANT_ID_BYTES]))
    }

    /// Checks the `GrantTokens` of a request: each must be a token this server made
    /// (InvalidGrantTokenException otherwise). Tokens are never needed here, so a valid one
    /// changes nothing, even when its grant is gone.
    pub async fn accept_tokens(&self, tokens: &[String]) -> KmsResult<()> {
        for t in tokens {
            self.token_grant_id(t).await?;
        }
        Ok(())
    }

    // ---------------------------------------------------------------------------------------
    // Principals

    /// Checks that `arn` names a principal a grant may name (reference §6.1): an account root,
    /// user, role or role session ARN of this partition, which exists (account roots always
    /// do). AWS's InvalidArnException otherwise.
    fn check_principal(&self, arn: &str) -> KmsResult<()> {
        let invalid =
            || KmsError::InvalidArn(format!("ARN does not refer to a valid principal: {arn}"));
        principal_account(arn, &self.partition).ok_or_else(invalid)?;
        if arn.ends_with(":root") {
            return Ok(());
        }
        use kms_policy::PrincipalDirectory;
        if self.iam.directory().principal_exists(arn) {
            Ok(())
        } else {
            Err(invalid())
        }
    }

    // ---------------------------------------------------------------------------------------
    // Operations

    /// CreateGrant. `dry_run` stops after every check, before anything is written.
    pub async fn create_grant(
        &self,
        call: &mut Call,
        key_id: &str,
        grant: NewGrant,
        dry_run: bool,
    ) -> KmsResult<CreatedGrant> {
        let key = self.resolve(call, key_id, false).await?;
        let ops: Vec<&str> = grant.operations.iter().map(|o| o.as_str()).collect();
        let constraint_type = if grant.constraints.encryption_context_equals.is_some() {
            Some("EncryptionContextEquals")
        } else if grant.constraints.encryption_context_subset.is_some() {
            Some("EncryptionContextSubset")
        } else {
            None
        };
        let context = constraint_context(&grant.constraints);
        let child = GrantRule::ChildGrant {
            operations: &grant.operations,
            constraints: PolicyConstraints {
                encryption_context_equals: grant.constraints.encryption_context_equals.as_ref(),
                encryption_context_subset: grant.constraints.encryption_context_subset.as_ref(),
            },
        };
        self.authorize_key_under(call, "CreateGrant", &key, context.as_ref(), child, |ctx| {
            ctx.set_multi("kms:GrantOperations", super::authz::strings(ops))
                .set("kms:GranteePrincipal", grant.grantee_principal.as_str())
                .set("kms:GrantIsForAWSResource", false);
            if let Some(r) = &grant.retiring_principal {
                ctx.set("kms:RetiringPrincipal", r.as_str());
            }
            if let Some(t) = constraint_type {
                ctx.set("kms:GrantConstraintType", t);
            }
        })
        .await?;
        self.check_state(&key, StateRule::CreateGrant)?;
        self.check_principal(&grant.grantee_principal)?;
        if let Some(r) = &grant.retiring_principal {
            self.check_principal(r)?;
        }
        check_for_key_type(&key, &grant)?;
        if dry_run {
            return Err(KmsError::DryRunOperation);
        }

        let record = GrantRecord {
            grant_id: hex(&random_bytes::<GRANT_ID_BYTES>()?),
            key_id: key.key_id.clone(),
            issuing_account: call.principal.account.clone(),
            name: grant.name,
            grantee_principal: grant.grantee_principal,
            retiring_principal: grant.retiring_principal,
            operations: grant
                .operations
                .iter()
                .map(|o| o.as_str().to_string())
                .collect(),
            constraints: grant.constraints,
            creation_date: self.now(),
        };
        // The store decides atomically, whichever node asks: a named retry gets the grant in
        // force, a new grant is inserted only below the key's quota.
        let quota = self.limits.grants_for(&key.account);
        let (grant, _new) = self
            .store
            .insert_grant(&record, quota, same_grant)
            .await
            .map_err(|e| match e {
                StoreError::AlreadyExists => KmsError::internal_because(InternalCause::Invariant(
                    "a random grant id repeated",
                )),
                other => other.into(),
            })?;
        let grant_id = grant.grant_id;
        let grant_token = self.mint_token(&grant_id).await?;
        Ok(CreatedGrant {
            key,
            grant_id,
            grant_token,
        })
    }

    /// ListGrants: the key's grants in creation order, optionally only one grant id or one
    /// grantee.
    pub async fn list_grants(
        &self,
        call: &mut Call,
        key_id: &str,
        grant_id: Option<&str>,
        grantee_principal: Option<&str>,
        marker: Option<&str>,
        limit: usize,
    ) -> KmsResult<GrantPage> {
        let key = self.resolve(call, key_id, false).await?;
        self.authorize_key(call, "ListGrants", &key, None, |ctx| {
            ctx.set("kms:GrantIsForAWSResource", false);
        })
        .await?;
        if let Some(id) = grant_id {
            if !is_grant_id(id) {
                return Err(invalid_grant_id(id));
            }
        }
        let after = marker.map(parse_list_marker).transpose()?;
        let all = self.store.list_grants(&key.key_id).await?;
        let mut page: Vec<&GrantRecord> = all
            .iter()
            .filter(|g| grant_id.is_none_or(|id| g.grant_id == id))
            .filter(|g| grantee_principal.is_none_or(|p| g.grantee_principal == p))
            .filter(|g| {
                after.is_none_or(|(ms, id)| {
                    (g.creation_date.timestamp_millis(), g.grant_id.as_str()) > (ms, id)
                })
            })
            .take(limit + 1)
            .collect();
        let truncated = page.len() > limit;
        page.truncate(limit);
        let next_marker = if truncated {
            page.last().map(|g| list_marker(g))
        } else {
            None
        };
        Ok(GrantPage {
            grants: page
                .into_iter()
                .map(|g| self.listed(g.clone(), key.arn.clone()))
                .collect(),
            next_marker,
        })
    }

    fn listed(&self, grant: GrantRecord, key_arn: String) -> ListedGrant {
        let issuing_account = format!("arn:{}:iam::{}:root", self.partition, grant.issuing_account);
        ListedGrant {
            grant,
            key_arn,
            issuing_account,
        }
    }

    /// ListRetirableGrants: the grants, on keys of any account, that a principal of the
    /// caller's account may retire as their retiring principal, ordered by grant id.
    pub async fn list_retirable_grants(
        &self,
        call: &mut Call,
        retiring_principal: &str,
        marker: Option<&str>,
        limit: usize,
    ) -> KmsResult<GrantPage> {
        self.authorize_identity(call, "ListRetirableGrants", None, |_| {})?;
        match principal_account(retiring_principal, &self.partition) {
            None => {
                return Err(KmsError::InvalidArn(format!(
                    "ARN does not refer to a valid principal: {retiring_principal}"
                )))
            }
            // Only principals of the caller's own account (reference §3.3).
            Some(account) if account != call.principal.account => {
                return Err(KmsError::AccessDenied(kms_policy::messages::cross_account(
                    &call.principal.arn,
                    "kms:ListRetirableGrants",
                )))
            }
            Some(_) => {}
        }
        if let Some(m) = marker {
            if !is_grant_id(m) {
                return Err(KmsError::InvalidMarker("Invalid marker".into()));
            }
        }
        let mut found = self
            .store
            .list_retirable_grants(retiring_principal, marker, limit + 1)
            .await?;
        let truncated = found.len() > limit;
        found.truncate(limit);
        let next_marker = if truncated {
            found.last().map(|g| g.grant_id.clone())
        } else {
            None
        };
        let mut grants = Vec::with_capacity(found.len());
        for g in found {
            // A grant whose key was deleted since has gone with it.
            if let Some(k) = self.store.get_key(&g.key_id).await? {
                grants.push(self.listed(g, k.arn));
            }
        }
        Ok(GrantPage {
            grants,
            next_marker,
        })
    }

    /// RetireGrant, by token or by key ARN and grant id. Who may retire is the grant's to say
    /// (`kms_policy::grant::retire_allowed`); `kms:RetireGrant` in a key policy has no effect,
    /// and a Deny in an identity or guardrail policy still blocks.
    pub async fn retire_grant(
        &self,
        call: &mut Call,
        target: RetireTarget<'_>,
        dry_run: bool,
    ) -> KmsResult<()> {
        let (key, grant) = self.retire_target(call, target).await?;
        let caller = match call.principal.caller.as_ref() {
            Some(c) => c.clone(),
            None => return Err(self.not_allowed_on_key(call, "RetireGrant", &key)),
        };
        let identity_allows = self
            .identity_allows_on_key(call, "RetireGrant", &key)
            .await?;
        let ops = grant_operations(&grant);
        let view = grant_view(&grant, &ops);
        if !kms_policy::grant::retire_allowed(
            &view,
            &caller,
            &grant.issuing_account,
            identity_allows,
        ) {
            return Err(self.not_allowed_on_key(call, "RetireGrant", &key));
        }
        if dry_run {
            return Err(KmsError::DryRunOperation);
        }
        if !self.store.delete_grant(&grant.grant_id).await? {
            return Err(grant_not_found(&grant.grant_id));
        }
        Ok(())
    }

    /// The key and grant RetireGrant names; records the grant id for the audit record.
    async fn retire_target(
        &self,
        call: &mut Call,
        target: RetireTarget<'_>,
    ) -> KmsResult<(KeyRecord, GrantRecord)> {
        let from_token = match target.grant_token {
            Some(t) => Some(self.token_grant_id(t).await?),
            None => None,
        };
        let grant_id = match (from_token, target.grant_id) {
            (Some(from_token), Some(named)) if from_token != named => {
                return Err(KmsError::InvalidGrantId(format!(
                    "Grant ID {named} does not match the grant token"
                )))
            }
            (Some(id), _) => id,
            (None, Some(id)) if target.key_id.is_some() => id.to_string(),
            (None, _) => {
                return Err(KmsError::Validation(
                    "Either a grant token or a key ARN and a grant ID must be specified.".into(),
                ))
            }
        };
        // By id, the key must be named by its ARN (it may be another account's).
        let named_key = match target.key_id {
            Some(k) => {
                if !matches!(KeyRef::parse(k), Ok(KeyRef::Arn { .. })) {
                    return Err(KmsError::InvalidArn(format!("Invalid arn {k}")));
                }
                Some(self.resolve(call, k, false).await?)
            }
            None => None,
        };
        if !is_grant_id(&grant_id) {
            return Err(invalid_grant_id(&grant_id));
        }
        record_grant_id(call, &grant_id);
        let grant = self
            .store
            .get_grant(&grant_id)
            .await?
            .filter(|g| named_key.as_ref().is_none_or(|k| k.key_id == g.key_id))
            .ok_or_else(|| grant_not_found(&grant_id))?;
        let key = match named_key {
            Some(k) => k,
            None => {
                let k = self
                    .store
                    .get_key(&grant.key_id)
                    .await?
                    .ok_or_else(|| grant_not_found(&grant_id))?;
                let k = self.annotate(k);
                call.touch(&k);
                k
            }
        };
        Ok((key, grant))
    }

    /// RevokeGrant: deletes a grant of the key, authorized by `kms:RevokeGrant` on the key.
    pub async fn revoke_grant(
        &self,
        call: &mut Call,
        key_id: &str,
        grant_id: &str,
        dry_run: bool,
    ) -> KmsResult<()> {
        let key = self.resolve(call, key_id, false).await?;
        self.authorize_key(call, "RevokeGrant", &key, None, |ctx| {
            ctx.set("kms:GrantIsForAWSResource", false);
        })
        .await?;
        if !is_grant_id(grant_id) {
            return Err(invalid_grant_id(grant_id));
        }
        let on_key = self
            .store
            .get_grant(grant_id)
            .await?
            .is_some_and(|g| g.key_id == key.key_id);
        if !on_key {
            return Err(grant_not_found(grant_id));
        }
        if dry_run {
            return Err(KmsError::DryRunOperation);
        }
        if !self.store.delete_grant(grant_id).await? {
            return Err(grant_not_found(grant_id));
        }
        Ok(())
    }
}

/// `additionalEventData.grantId` of the audit record (as CloudTrail's RetireGrant records).
fn record_grant_id(call: &mut Call, grant_id: &str) {
    let id = serde_json::Value::String(grant_id.to_string());
    match &mut call.additional {
        Some(serde_json::Value::Object(m)) => {
            m.insert("grantId".into(), id);
        }
        _ => call.additional = Some(serde_json::json!({ "grantId": id })),
    }
}

/// The account of a principal ARN a grant may name (`arn:<partition>:iam::<account>:root`,
/// `...:user/[path/]name`, `...:role/[path/]name`,
/// `arn:<partition>:sts::<account>:assumed-role/<role>/<session>`); `None` for anything else.
fn principal_account<'a>(arn: &'a str, partition: &str) -> Option<&'a str> {
    let mut parts = arn.splitn(6, ':');
    let (Some("arn"), Some(p), Some(service), Some(""), Some(account), Some(resource)) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return None;
    };
    if p != partition || account.len() != 12 || !account.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let name_char = |c: char| c.is_ascii_alphanumeric() || "+=,.@_-".contains(c);
    let path_and_name = |s: &str| {
        !s.is_empty()
            && !s.starts_with('/')
            && !s.ends_with('/')
            && !s.contains("//")
            && s.chars().all(|c| name_char(c) || c == '/')
    };
    let ok = match service {
        "iam" => {
            resource == "root"
                || resource.strip_prefix("user/").is_some_and(path_and_name)
                || resource.strip_prefix("role/").is_some_and(path_and_name)
        }
        "sts" => resource
            .strip_prefix("assumed-role/")
            .and_then(|r| r.split_once('/'))
            .is_some_and(|(role, session)| {
                !role.is_empty()
                    && !session.is_empty()
                    && role.chars().all(name_char)
                    && session.chars().all(name_char)
            }),
        _ => false,
    };
    ok.then_some(account)
}

/// The operations and constraints a key of this type takes (reference §6.2, §6.1).
fn check_for_key_type(key: &KeyRecord, grant: &NewGrant) -> KmsResult<()> {
    let key_type = grant_key_type(key);
    let valid = key_type.operations();
    if let Some(op) = grant.operations.iter().find(|op| !valid.contains(op)) {
        return Err(KmsError::Validation(format!(
            "The grant operation {} is not valid for {}, whose key spec is {} and key usage {}.",
            op.as_str(),
            key.arn,
            key.key_spec,
            key.key_usage
        )));
    }
    if !grant.constraints.is_empty() && !key_type.allows_constraints() {
        return Err(KmsError::Validation(format!(
            "Grant constraints are valid only for symmetric encryption KMS keys; {} has key spec \
             {} and key usage {}.",
            key.arn, key.key_spec, key.key_usage
        )));
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn principal_arns() {
        let ok = [
            ("arn:aws:iam::111122223333:root", "111122223333"),
            ("arn:aws:iam::111122223333:user/alice", "111122223333"),
            ("arn:aws:iam::111122223333:user/a/b/alice", "111122223333"),
            ("arn:aws:iam::444455556666:role/app", "444455556666"),
            (
                "arn:aws:sts::111122223333:assumed-role/app/s-1@x",
                "111122223333",
            ),
        ];
        for (arn, account) in ok {
            assert_eq!(principal_account(arn, "aws"), Some(account), "{arn}");
        }
        let bad = [
            "111122223333",
            "ec2.amazonaws.com",
            "arn:aws:iam::111122223333:group/admins",
            "arn:aws:iam::111122223333:user/",
            "arn:aws:iam::111122223333:user/a//b",
            "arn:aws:iam::11112222333:root",
            "arn:aws:iam:us-east-1:111122223333:root",
            "arn:aws-cn:iam::111122223333:root",
            "arn:aws:sts::111122223333:assumed-role/app",
            "arn:aws:sts::111122223333:assumed-role/app/s/x",
            "arn:aws:sts::111122223333:federated-user/bob",
            "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab",
            "arn:aws:iam::111122223333:user/*",
        ];
        for arn in bad {
            assert_eq!(principal_account(arn, "aws"), None, "{arn}");
        }
    }

    #[test]
    fn hex_round_trip_and_grant_ids() {
        let bytes: Vec<u8> = (0..=255).collect();
        assert_eq!(unhex(&hex(&bytes)).unwrap(), bytes);
        assert_eq!(unhex("0g"), None);
        assert_eq!(unhex("abc"), None);
        assert!(is_grant_id(&"ab".repeat(32)));
        assert!(!is_grant_id(&"AB".repeat(32)));
        assert!(!is_grant_id(&"ab".repeat(31)));
        assert!(!is_grant_id("x"));
    }

    #[test]
    fn list_markers() {
        let id = "0f".repeat(32);
        assert_eq!(
            parse_list_marker(&format!("12:{id}")).unwrap(),
            (12, id.as_str())
        );
        for bad in ["", "12", "x:y", &format!("a:{id}"), "12:abc"] {
            assert_eq!(
                parse_list_marker(bad).unwrap_err().code(),
                "InvalidMarkerException",
                "{bad}"
            );
        }
    }

    #[test]
    fn constraint_context_merges() {
        let map = |pairs: &[(&str, &str)]| {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<BTreeMap<_, _>>()
        };
        assert_eq!(constraint_context(&GrantConstraints::default()), None);
        let c = GrantConstraints {
            encryption_context_equals: Some(map(&[("a", "1")])),
            encryption_context_subset: Some(map(&[("a", "2"), ("b", "3")])),
        };
        assert_eq!(constraint_context(&c), Some(map(&[("a", "1"), ("b", "3")])));
    }
}

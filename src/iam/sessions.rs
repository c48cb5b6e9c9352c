//! Temporary credentials of role sessions (`sts:AssumeRole`): an `ASIA...` access key id, a
//! secret, a session token and an expiry. No node remembers a session: the session token *is*
//! the session, sealed (AES-256-GCM) under the deployment's session-token key, so any node with
//! that key (same root, same database) accepts it, and a restart ends nothing.
//!
//! Token format (standard base64): `version (1) || nonce (12) || ciphertext || tag (16)`, with
//! `version || access key id` as the additional authenticated data. The plaintext is the JSON
//! claims: access key id, secret access key, expiration, role ARN, session name, session
//! policy text, session tags, transitive tag keys, source identity, issue time. A token opens
//! only under the key that sealed it and only with the access key id it was issued with; a
//! changed byte anywhere fails the tag.
//!
//! The issue time (`aws:TokenIssueTime`, claim `i`) was added without a new version: the
//! claims are JSON read with defaults, so a node of the previous release opens new tokens (and
//! ignores the claim), and a token sealed before it opens here as issued
//! [`LONGEST_SESSION_SECONDS`] before its expiry, the earliest it can have been issued. Such a
//! token is therefore never *newer* than it is: a revocation Deny (`DateLessThan` on
//! `aws:TokenIssueTime`) catches every old session issued before its time, and at worst also one
//! issued after it. Those tokens are all expired 12 hours after the upgrade.
//!
//! A request signed with a session's key must carry its token (`X-Amz-Security-Token`); the
//! principal is the role session, with the role's identity policies *as configured at the time
//! of the request* (a reload that changes the role applies to live sessions, as in IAM) and the
//! session policy given to AssumeRole. Opened tokens are kept in a bounded LRU cache (by a
//! SHA-256 of the token) so that a request does not parse the session policy again; an expired
//! entry is never served, and is dropped when next looked up or by the sweep of each
//! maintenance pass.
//!
//! The key is installed once, at start-up ([`SessionTokens::install_key`], by `app::build`,
//! which loads or makes it through `Sts::load_session_key`), so the synchronous authenticator
//! never waits on the database or the root.

use std::sync::{Arc, OnceLock};

use arc_swap::ArcSwapOption;
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use chrono::{DateTime, SubsecRound, Utc};
use hashlink::LruCache;
use kms_policy::{Policy, PolicyKind};
use parking_lot::Mutex;
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use ring::rand::{SecureRandom, SystemRandom};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

/// The token format's version (the first byte of every token).
const TOKEN_VERSION: u8 = 1;
/// Opened sessions kept in memory at most.
pub const OPENED_CACHE_ENTRIES: usize = 10_000;
/// Bytes of the session-token key.
pub const KEY_BYTES: usize = 32;
/// The shortest token that can open: version, nonce and tag around an empty plaintext.
const MIN_TOKEN_BYTES: usize = 1 + NONCE_LEN + 16;
/// The longest token accepted (a session policy is at most 2048 characters and tags are
/// bounded by the packed-policy budget: far below this).
const MAX_TOKEN_BYTES: usize = 16 * 1024;
/// The longest session AssumeRole gives (43200 s): what a token without an issue time is taken
/// to have lasted.
pub const LONGEST_SESSION_SECONDS: i64 = 43_200;

/// One session tag carried in a token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tag {
    pub key: String,
    pub value: String,
}

/// What a new session is made of (everything but its credentials).
#[derive(Debug, Clone)]
pub struct NewSession<'a> {
    /// The role's ARN with its path.
    pub role_arn: &'a str,
    pub session_name: &'a str,
    pub expiration: DateTime<Utc>,
    /// The session policy as given to AssumeRole, and as parsed there.
    pub session_policy: Option<(&'a str, Arc<Policy>)>,
    pub tags: &'a [Tag],
    pub transitive_tag_keys: &'a [String],
    pub source_identity: Option<&'a str>,
    /// When AssumeRole issued the session (`aws:TokenIssueTime`).
    pub issued: DateTime<Utc>,
}

/// The plaintext of a token (serialized only into a zeroized buffer).
#[derive(Serialize)]
struct ClaimsOut<'a> {
    #[serde(rename = "k")]
    access_key_id: &'a str,
    #[serde(rename = "s")]
    secret_access_key: &'a str,
    #[serde(rename = "e")]
    expiration: i64,
    #[serde(rename = "r")]
    role_arn: &'a str,
    #[serde(rename = "n")]
    session_name: &'a str,
    #[serde(rename = "p", skip_serializing_if = "Option::is_none")]
    session_policy: Option<&'a str>,
    #[serde(rename = "t", skip_serializing_if = "<[Tag]>::is_empty")]
    tags: &'a [Tag],
    #[serde(rename = "tt", skip_serializing_if = "<[String]>::is_empty")]
    transitive_tag_keys: &'a [String],
    #[serde(rename = "si", skip_serializing_if = "Option::is_none")]
    source_identity: Option<&'a str>,
    #[serde(rename = "i")]
    issued: i64,
}

/// The claims of an opened token.
#[derive(Deserialize)]
struct Claims {
    #[serde(rename = "k")]
    access_key_id: String,
    #[serde(rename = "s")]
    secret_access_key: SecretString,
    #[serde(rename = "e")]
    expiration: i64,
    #[serde(rename = "r")]
    role_arn: String,
    #[serde(rename = "n")]
    session_name: String,
    #[serde(rename = "p", default)]
    session_policy: Option<String>,
    #[serde(rename = "t", default)]
    tags: Vec<Tag>,
    #[serde(rename = "tt", default)]
    transitive_tag_keys: Vec<String>,
    #[serde(rename = "si", default)]
    source_identity: Option<String>,
    /// Absent from tokens sealed before the claim existed (see the module docs).
    #[serde(rename = "i", default)]
    issued: Option<i64>,
}

/// One role session: made by AssumeRole, or opened from a request's token.
pub struct Session {
    pub access_key_id: String,
    pub secret_access_key: SecretString,
    /// The sealed token (what AssumeRole hands out and requests carry).
    pub session_token: SecretString,
    pub expiration: DateTime<Utc>,
    /// The role's ARN with its path.
    pub role_arn: String,
    pub session_name: String,
    /// The inline session policy, if AssumeRole was given one.
    pub session_policy: Option<Arc<Policy>>,
    /// Session tags (the values of `aws:PrincipalTag/<key>`).
    pub tags: Vec<Tag>,
    /// The tag keys that pass to sessions this session makes by assuming another role.
    pub transitive_tag_keys: Vec<String>,
    pub source_identity: Option<String>,
    /// When the session was issued (`aws:TokenIssueTime`).
    pub issued: DateTime<Utc>,
    /// The principal built for this session from the identities in force
    /// ([`Session::principal_in`]), kept with the snapshot it was built from.
    principal: ArcSwapOption<PrincipalMemo>,
}

/// A session's principal and the identity snapshot it was built from (held, so that the
/// snapshot's address cannot be reused while the memo compares against it).
struct PrincipalMemo {
    directory: Arc<super::Directory>,
    principal: Arc<crate::model::Principal>,
}

impl Session {
    /// The session's principal under `directory` (the identities in force): built once per
    /// snapshot, so a configuration reload that changes the role applies to the next request.
    /// `None` when the role no longer exists.
    pub fn principal_in(
        &self,
        directory: &Arc<super::Directory>,
    ) -> Option<Arc<crate::model::Principal>> {
        if let Some(memo) = self.principal.load().as_ref() {
            if Arc::ptr_eq(&memo.directory, directory) {
                return Some(memo.principal.clone());
            }
        }
        let principal = Arc::new(directory.session_principal(self)?);
        self.principal.store(Some(Arc::new(PrincipalMemo {
            directory: directory.clone(),
            principal: principal.clone(),
        })));
        Some(principal)
    }
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("access_key_id", &self.access_key_id)
            .field("role_arn", &self.role_arn)
            .field("session_name", &self.session_name)
            .field("expiration", &self.expiration)
            .finish_non_exhaustive()
    }
}

/// Why a session could not be made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SessionError {
    #[error("the random number generator failed")]
    Random,
    #[error("the session-token key is not loaded")]
    NoKey,
    #[error("the session claims could not be serialized")]
    Encode,
}

/// Why a request's token was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum OpenError {
    /// Not a token of this deployment, changed, or issued with another access key id.
    #[error("the security token is invalid")]
    Invalid,
    /// A valid token past its expiration.
    #[error("the security token is expired")]
    Expired,
}

/// The session-token key: seals new sessions, opens the tokens requests carry, and keeps the
/// opened ones in a bounded cache.
pub struct SessionTokens {
    key: OnceLock<LessSafeKey>,
    opened: Mutex<LruCache<[u8; 32], Arc<Session>>>,
}

impl Default for SessionTokens {
    fn default() -> Self {
        SessionTokens {
            key: OnceLock::new(),
            opened: Mutex::new(LruCache::new(OPENED_CACHE_ENTRIES)),
        }
    }
}

impl std::fmt::Debug for SessionTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionTokens")
            .field("key_loaded", &self.key.get().is_some())
            .finish_non_exhaustive()
    }
}

fn random_chars(rng: &SystemRandom, alphabet: &[u8], n: usize) -> Result<String, SessionError> {
    let mut raw = Zeroizing::new(vec![0u8; n]);
    rng.fill(&mut raw).map_err(|_| SessionError::Random)?;
    // Rejection-free mapping: every alphabet used here has 32 or 64 symbols.
    Ok(raw
        .iter()
        .map(|b| alphabet[usize::from(*b) % alphabet.len()] as char)
        .collect())
}

fn aad(access_key_id: &str) -> Vec<u8> {
    let mut aad = Vec::with_capacity(1 + access_key_id.len());
    aad.push(TOKEN_VERSION);
    aad.extend_from_slice(access_key_id.as_bytes());
    aad
}

/// The token of the claims `plain` (JSON), sealed in place for `access_key_id`.
fn seal(
    key: &LessSafeKey,
    rng: &SystemRandom,
    access_key_id: &str,
    mut plain: Zeroizing<Vec<u8>>,
) -> Result<String, SessionError> {
    let mut nonce = [0u8; NONCE_LEN];
    rng.fill(&mut nonce).map_err(|_| SessionError::Random)?;
    key.seal_in_place_append_tag(
        Nonce::assume_unique_for_key(nonce),
        Aad::from(aad(access_key_id)),
        &mut *plain,
    )
    .map_err(|_| SessionError::Encode)?;
    let mut token = Vec::with_capacity(1 + NONCE_LEN + plain.len());
    token.push(TOKEN_VERSION);
    token.extend_from_slice(&nonce);
    token.extend_from_slice(&plain);
    Ok(B64.encode(token))
}

fn cache_key(token: &str) -> [u8; 32] {
    let digest = ring::digest::digest(&ring::digest::SHA256, token.as_bytes());
    let mut out = [0u8; 32];
    out.copy_from_slice(digest.as_ref());
    out
}

impl SessionTokens {
    /// Installs the deployment's key (once; a second call changes nothing and returns false).
    pub fn install_key(&self, raw: &[u8; KEY_BYTES]) -> bool {
        let Ok(unbound) = UnboundKey::new(&AES_256_GCM, raw) else {
            return false;
        };
        self.key.set(LessSafeKey::new(unbound)).is_ok()
    }

    /// Whether the key is installed.
    pub fn has_key(&self) -> bool {
        self.key.get().is_some()
    }

    /// Makes a session: fresh credentials, sealed with the claims into its token.
    pub fn create(&self, new: &NewSession<'_>) -> Result<Session, SessionError> {
        const UPPER32: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
        const BASE64ISH: &[u8] =
            b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let key = self.key.get().ok_or(SessionError::NoKey)?;
        let rng = SystemRandom::new();
        let access_key_id = format!("ASIA{}", random_chars(&rng, UPPER32, 16)?);
        let secret = SecretString::from(random_chars(&rng, BASE64ISH, 40)?);
        let claims = ClaimsOut {
            access_key_id: &access_key_id,
            secret_access_key: secret.expose_secret(),
            expiration: new.expiration.timestamp(),
            role_arn: new.role_arn,
            session_name: new.session_name,
            session_policy: new.session_policy.as_ref().map(|(text, _)| *text),
            tags: new.tags,
            transitive_tag_keys: new.transitive_tag_keys,
            source_identity: new.source_identity,
            issued: new.issued.timestamp(),
        };
        // One buffer, sized so that neither the JSON (unless it escapes most of its characters)
        // nor the tag reallocates it: a reallocation would leave an unzeroized copy behind.
        let extra: usize = new.session_policy.as_ref().map_or(0, |(p, _)| p.len())
            + new
                .tags
                .iter()
                .map(|t| t.key.len() + t.value.len() + 16)
                .sum::<usize>()
            + new
                .transitive_tag_keys
                .iter()
                .map(|k| k.len() + 4)
                .sum::<usize>()
            + new.source_identity.map_or(0, str::len);
        let mut sealed = Zeroizing::new(Vec::with_capacity(1024 + 2 * extra));
        serde_json::to_writer(&mut *sealed, &claims).map_err(|_| SessionError::Encode)?;
        let token = seal(key, &rng, &access_key_id, sealed)?;
        Ok(Session {
            access_key_id,
            secret_access_key: secret,
            session_token: SecretString::from(token),
            expiration: new.expiration,
            role_arn: new.role_arn.to_string(),
            session_name: new.session_name.to_string(),
            session_policy: new.session_policy.as_ref().map(|(_, p)| p.clone()),
            tags: new.tags.to_vec(),
            transitive_tag_keys: new.transitive_tag_keys.to_vec(),
            source_identity: new.source_identity.map(str::to_string),
            issued: new.issued.trunc_subsecs(0),
            principal: ArcSwapOption::empty(),
        })
    }

    /// The session of a request signed with `access_key_id` and carrying `token`, valid at
    /// `now`.
    pub fn open(
        &self,
        access_key_id: &str,
        token: &str,
        now: DateTime<Utc>,
    ) -> Result<Arc<Session>, OpenError> {
        let id = cache_key(token);
        let cached = self.opened.lock().get(&id).cloned();
        let session = match cached {
            // The hash names the token; the access key id must still be the token's.
            Some(s) if s.access_key_id == access_key_id => s,
            Some(_) => return Err(OpenError::Invalid),
            None => {
                let s = Arc::new(self.unseal(access_key_id, token)?);
                if s.expiration > now {
                    self.opened.lock().insert(id, s.clone());
                }
                s
            }
        };
        if session.expiration <= now {
            self.opened.lock().remove(&id);
            return Err(OpenError::Expired);
        }
        Ok(session)
    }

    /// Opens a token without the cache.
    fn unseal(&self, access_key_id: &str, token: &str) -> Result<Session, OpenError> {
        let key = self.key.get().ok_or(OpenError::Invalid)?;
        if token.len() > MAX_TOKEN_BYTES * 4 / 3 + 4 {
            return Err(OpenError::Invalid);
        }
        let bytes = Zeroizing::new(
            B64.decode(token.as_bytes())
                .map_err(|_| OpenError::Invalid)?,
        );
        if bytes.len() < MIN_TOKEN_BYTES || bytes[0] != TOKEN_VERSION {
            return Err(OpenError::Invalid);
        }
        let mut nonce = [0u8; NONCE_LEN];
        nonce.copy_from_slice(&bytes[1..1 + NONCE_LEN]);
        let mut body = Zeroizing::new(bytes[1 + NONCE_LEN..].to_vec());
        let plain = key
            .open_in_place(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad(access_key_id)),
                &mut body,
            )
            .map_err(|_| OpenError::Invalid)?;
        let claims: Claims = serde_json::from_slice(plain).map_err(|_| OpenError::Invalid)?;
        if claims.access_key_id != access_key_id {
            return Err(OpenError::Invalid);
        }
        let expiration =
            DateTime::<Utc>::from_timestamp(claims.expiration, 0).ok_or(OpenError::Invalid)?;
        // A token of the earlier format: issued no earlier than the longest session allows.
        let issued = match claims.issued {
            Some(secs) => DateTime::<Utc>::from_timestamp(secs, 0).ok_or(OpenError::Invalid)?,
            None => expiration - chrono::Duration::seconds(LONGEST_SESSION_SECONDS),
        };
        // The policy was validated by AssumeRole under the same rules.
        let session_policy = match &claims.session_policy {
            Some(text) => Some(Arc::new(
                Policy::parse(text, PolicyKind::Session, &kms_policy::AnyPrincipalExists)
                    .map_err(|_| OpenError::Invalid)?,
            )),
            None => None,
        };
        Ok(Session {
            access_key_id: claims.access_key_id,
            secret_access_key: claims.secret_access_key,
            session_token: SecretString::from(token.to_string()),
            expiration,
            role_arn: claims.role_arn,
            session_name: claims.session_name,
            session_policy,
            tags: claims.tags,
            transitive_tag_keys: claims.transitive_tag_keys,
            source_identity: claims.source_identity,
            issued,
            principal: ArcSwapOption::empty(),
        })
    }

    /// Drops the opened sessions that have expired by `now` (run with each maintenance pass;
    /// an expired entry is never served in any case). Returns how many are left.
    pub fn sweep(&self, now: DateTime<Utc>) -> usize {
        let mut opened = self.opened.lock();
        opened.retain(|_, s| s.expiration > now);
        opened.len()
    }

    /// Opened sessions in the cache now (for tests and metrics).
    pub fn cached(&self) -> usize {
        self.opened.lock().len()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn tokens(byte: u8) -> SessionTokens {
        let t = SessionTokens::default();
        assert!(t.install_key(&[byte; KEY_BYTES]));
        assert!(
            !t.install_key(&[byte ^ 1; KEY_BYTES]),
            "the key is installed once"
        );
        t
    }

    fn new_session(now: DateTime<Utc>, policy: Option<&str>) -> NewSession<'_> {
        let session_policy = policy.map(|text| {
            let parsed =
                Policy::parse(text, PolicyKind::Session, &kms_policy::AnyPrincipalExists).unwrap();
            (text, Arc::new(parsed))
        });
        NewSession {
            role_arn: "arn:aws:iam::111122223333:role/app",
            session_name: "s1",
            expiration: now + chrono::Duration::hours(1),
            session_policy,
            tags: &[],
            transitive_tag_keys: &[],
            source_identity: None,
            issued: now,
        }
    }

    #[test]
    fn sessions_have_aws_shaped_credentials_and_open_anywhere_with_the_key() {
        let now = DateTime::<Utc>::from_timestamp(1_800_000_000, 0).unwrap();
        let a = tokens(7);
        let policy = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"kms:Decrypt","Resource":"*"}]}"#;
        let s = a.create(&new_session(now, Some(policy))).unwrap();
        assert!(s.access_key_id.starts_with("ASIA"));
        assert_eq!(s.access_key_id.len(), 20);
        assert_eq!(s.secret_access_key.expose_secret().len(), 40);
        let token = s.session_token.expose_secret();
        assert!(!token.contains(s.secret_access_key.expose_secret()));

        // Another node with the same key opens it.
        let b = tokens(7);
        let opened = b.open(&s.access_key_id, token, now).unwrap();
        assert_eq!(
            opened.secret_access_key.expose_secret(),
            s.secret_access_key.expose_secret()
        );
        assert_eq!(opened.role_arn, s.role_arn);
        assert_eq!(opened.session_name, "s1");
        assert_eq!(opened.expiration, s.expiration);
        assert!(opened.session_policy.is_some());
        assert_eq!(b.cached(), 1);
        // Cached: the same answer again.
        assert!(Arc::ptr_eq(
            &opened,
            &b.open(&s.access_key_id, token, now).unwrap()
        ));

        // Another deployment's key does not.
        assert_eq!(
            tokens(8).open(&s.access_key_id, token, now).unwrap_err(),
            OpenError::Invalid
        );
        // Nor does another access key id, cached or not.
        let other = a.create(&new_session(now, None)).unwrap();
        assert_eq!(
            b.open(&other.access_key_id, token, now).unwrap_err(),
            OpenError::Invalid
        );
        assert_eq!(
            tokens(7)
                .open(&other.access_key_id, token, now)
                .unwrap_err(),
            OpenError::Invalid
        );
        // No key installed: nothing opens, nothing is made.
        let none = SessionTokens::default();
        assert_eq!(
            none.open(&s.access_key_id, token, now).unwrap_err(),
            OpenError::Invalid
        );
        assert_eq!(
            none.create(&new_session(now, None)).unwrap_err(),
            SessionError::NoKey
        );
    }

    #[test]
    fn the_issue_time_is_sealed_and_earlier_tokens_open_as_issued_at_the_earliest() {
        let now = DateTime::<Utc>::from_timestamp(1_800_000_000, 0).unwrap();
        let t = tokens(3);
        let mut new = new_session(now, None);
        new.issued = now + chrono::Duration::milliseconds(700);
        let s = t.create(&new).unwrap();
        assert_eq!(s.issued, now, "whole seconds, as on the wire");
        let opened = tokens(3)
            .open(&s.access_key_id, s.session_token.expose_secret(), now)
            .unwrap();
        assert_eq!(opened.issued, now);

        // A token of the previous format (no `i` claim) opens, issued 12 hours before expiry.
        let expiration = now + chrono::Duration::hours(1);
        let claims = serde_json::json!({
            "k": "ASIAOLDFORMAT0000001", "s": "old-secret", "e": expiration.timestamp(),
            "r": "arn:aws:iam::111122223333:role/app", "n": "old",
        });
        let key = t.key.get().unwrap();
        let token = seal(
            key,
            &SystemRandom::new(),
            "ASIAOLDFORMAT0000001",
            Zeroizing::new(claims.to_string().into_bytes()),
        )
        .unwrap();
        let old = t.open("ASIAOLDFORMAT0000001", &token, now).unwrap();
        assert_eq!(old.session_name, "old");
        assert_eq!(
            old.issued,
            expiration - chrono::Duration::seconds(LONGEST_SESSION_SECONDS)
        );
        assert!(old.issued < now);
    }

    #[test]
    fn every_changed_byte_is_refused() {
        let now = DateTime::<Utc>::from_timestamp(1_800_000_000, 0).unwrap();
        let t = tokens(1);
        let s = t.create(&new_session(now, None)).unwrap();
        let raw = B64.decode(s.session_token.expose_secret()).unwrap();
        for i in 0..raw.len() {
            let mut changed = raw.clone();
            changed[i] ^= 0x01;
            let fresh = tokens(1);
            assert_eq!(
                fresh
                    .open(&s.access_key_id, &B64.encode(&changed), now)
                    .unwrap_err(),
                OpenError::Invalid,
                "byte {i}"
            );
        }
        assert_eq!(
            t.open(&s.access_key_id, "bm90IHRoZSB0b2tlbg==", now)
                .unwrap_err(),
            OpenError::Invalid
        );
        assert_eq!(
            t.open(&s.access_key_id, "not base64!", now).unwrap_err(),
            OpenError::Invalid
        );
    }

    #[test]
    fn expired_sessions_are_refused_and_leave_the_cache() {
        let now = DateTime::<Utc>::from_timestamp(1_800_000_000, 0).unwrap();
        let t = tokens(2);
        let s = t.create(&new_session(now, None)).unwrap();
        let token = s.session_token.expose_secret();
        t.open(&s.access_key_id, token, now).unwrap();
        assert_eq!(t.cached(), 1);
        let later = s.expiration;
        assert_eq!(
            t.open(&s.access_key_id, token, later).unwrap_err(),
            OpenError::Expired
        );
        assert_eq!(t.cached(), 0);
        // Not cached when already expired.
        assert_eq!(
            t.open(&s.access_key_id, token, later).unwrap_err(),
            OpenError::Expired
        );
        assert_eq!(t.cached(), 0);
        // A sweep drops expired entries nobody asks for again.
        t.open(&s.access_key_id, token, now).unwrap();
        assert_eq!(t.sweep(now), 1);
        assert_eq!(t.sweep(later), 0);
    }

    /// The role `app` of the sessions above, with `policies` as its identity policies.
    fn directory(policies: &[&str]) -> Arc<super::super::Directory> {
        let parse = |text: &str, kind| {
            Arc::new(Policy::parse(text, kind, &kms_policy::AnyPrincipalExists).unwrap())
        };
        let config = crate::config::IamConfig {
            roles: vec![crate::config::RoleConfig {
                arn: "arn:aws:iam::111122223333:role/app".into(),
                account: "111122223333".into(),
                name: "app".into(),
                unique_id: "AROAEXAMPLEEXAMPLE001".into(),
                trust_policy: parse(
                    r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111122223333:root"},"Action":"sts:AssumeRole"}]}"#,
                    PolicyKind::Trust,
                ),
                policies: policies
                    .iter()
                    .map(|p| parse(p, PolicyKind::Identity))
                    .collect(),
                max_session_seconds: 3600,
            }],
            ..Default::default()
        };
        Arc::new(super::super::Directory::new(&config))
    }

    #[test]
    fn a_sessions_principal_is_built_once_per_identity_snapshot() {
        let t = tokens(7);
        let now = Utc::now();
        let s = t.create(&new_session(now, None)).unwrap();
        let allow = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"kms:*","Resource":"*"}]}"#;
        let first = directory(&[allow]);
        let p1 = s.principal_in(&first).unwrap();
        assert_eq!(p1.arn, "arn:aws:sts::111122223333:assumed-role/app/s1");
        assert_eq!(p1.token_issue_time, Some(s.issued));
        assert!(Arc::ptr_eq(&p1, &s.principal_in(&first).unwrap()));
        // A reload (a new snapshot) that changes the role's policies: built again, with them.
        let reloaded = directory(&[allow, allow]);
        let p2 = s.principal_in(&reloaded).unwrap();
        assert!(!Arc::ptr_eq(&p1, &p2));
        assert_eq!(p1.policies.len(), 1);
        assert_eq!(p2.policies.len(), 2);
        // The role removed: no principal.
        let without = Arc::new(super::super::Directory::new(&Default::default()));
        assert!(s.principal_in(&without).is_none());
    }
}

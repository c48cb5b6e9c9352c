//! Temporary credentials of role sessions (`sts:AssumeRole`): an `ASIA...` access key id, a
//! secret, an opaque session token and an expiry. Kept in memory: a restart ends every
//! session (clients assume the role again), as documented in `docs/authorization.md`.
//!
//! A request signed with a session's key must carry the token (`X-Amz-Security-Token`); the
//! principal is the role session, with the role's identity policies *as configured at the time
//! of the request* (a reload that changes the role applies to live sessions, as in IAM) and the
//! session policy given to AssumeRole.

use std::collections::HashMap;
use std::sync::Arc;

use base64::Engine as _;
use chrono::{DateTime, Utc};
use kms_policy::Policy;
use parking_lot::RwLock;
use ring::rand::{SecureRandom, SystemRandom};
use secrecy::{ExposeSecret, SecretString};
use subtle::ConstantTimeEq;

/// Sessions kept at most (older expired ones are swept first; beyond it AssumeRole fails).
pub const MAX_SESSIONS: usize = 100_000;

/// One role session.
pub struct Session {
    pub access_key_id: String,
    pub secret_access_key: SecretString,
    pub session_token: SecretString,
    pub expiration: DateTime<Utc>,
    /// The role's ARN with its path.
    pub role_arn: String,
    pub session_name: String,
    /// The inline session policy, if AssumeRole was given one.
    pub session_policy: Option<Arc<Policy>>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("access_key_id", &self.access_key_id)
            .field("role_arn", &self.role_arn)
            .field("session_name", &self.session_name)
            .field("expiration", &self.expiration)
            .finish()
    }
}

impl Session {
    /// Whether `token` is this session's token (constant time).
    pub fn token_matches(&self, token: &str) -> bool {
        self.session_token
            .expose_secret()
            .as_bytes()
            .ct_eq(token.as_bytes())
            .into()
    }
}

/// Why a session could not be made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SessionError {
    #[error("the random number generator failed")]
    Random,
    #[error("too many live sessions")]
    TooMany,
}

/// The live sessions by access key id.
#[derive(Default)]
pub struct Sessions {
    by_key: RwLock<HashMap<String, Arc<Session>>>,
}

fn random_chars(rng: &SystemRandom, alphabet: &[u8], n: usize) -> Result<String, SessionError> {
    let mut raw = vec![0u8; n];
    rng.fill(&mut raw).map_err(|_| SessionError::Random)?;
    // Rejection-free mapping: every alphabet used here has 32 or 64 symbols.
    Ok(raw
        .iter()
        .map(|b| alphabet[usize::from(*b) % alphabet.len()] as char)
        .collect())
}

impl Sessions {
    /// Makes a session of `role_arn` valid until `expiration`.
    pub fn create(
        &self,
        role_arn: &str,
        session_name: &str,
        expiration: DateTime<Utc>,
        session_policy: Option<Arc<Policy>>,
        now: DateTime<Utc>,
    ) -> Result<Arc<Session>, SessionError> {
        const UPPER32: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
        const BASE64ISH: &[u8] =
            b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let rng = SystemRandom::new();
        let access_key_id = format!("ASIA{}", random_chars(&rng, UPPER32, 16)?);
        let secret = random_chars(&rng, BASE64ISH, 40)?;
        let mut token = [0u8; 96];
        rng.fill(&mut token).map_err(|_| SessionError::Random)?;
        let token = base64::engine::general_purpose::STANDARD.encode(token);
        let session = Arc::new(Session {
            access_key_id: access_key_id.clone(),
            secret_access_key: SecretString::from(secret),
            session_token: SecretString::from(token),
            expiration,
            role_arn: role_arn.to_string(),
            session_name: session_name.to_string(),
            session_policy,
        });
        let mut map = self.by_key.write();
        if map.len() >= MAX_SESSIONS {
            map.retain(|_, s| s.expiration > now);
            if map.len() >= MAX_SESSIONS {
                return Err(SessionError::TooMany);
            }
        }
        map.insert(access_key_id, session.clone());
        Ok(session)
    }

    /// The session of an access key id (expired ones too: the caller says "expired").
    pub fn get(&self, access_key_id: &str) -> Option<Arc<Session>> {
        self.by_key.read().get(access_key_id).cloned()
    }

    /// Forgets sessions that expired before `now`; returns how many are left.
    pub fn sweep(&self, now: DateTime<Utc>) -> usize {
        let mut map = self.by_key.write();
        map.retain(|_, s| s.expiration > now);
        map.len()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn sessions_have_aws_shaped_credentials() {
        let sessions = Sessions::default();
        let now = Utc::now();
        let s = sessions
            .create(
                "arn:aws:iam::111122223333:role/app",
                "s1",
                now + chrono::Duration::hours(1),
                None,
                now,
            )
            .unwrap();
        assert!(s.access_key_id.starts_with("ASIA"));
        assert_eq!(s.access_key_id.len(), 20);
        assert_eq!(s.secret_access_key.expose_secret().len(), 40);
        assert!(s.token_matches(s.session_token.expose_secret()));
        assert!(!s.token_matches("nope"));
        assert!(sessions.get(&s.access_key_id).is_some());
        assert_eq!(sessions.sweep(now + chrono::Duration::hours(2)), 0);
        assert!(sessions.get(&s.access_key_id).is_none());
    }
}

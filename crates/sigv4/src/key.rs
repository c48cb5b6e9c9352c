//! Signing-key derivation ([`signing_key`], [`SigningKey`]) and the bounded, thread-safe cache
//! of derived keys the verifier uses on its hot path ([`SigningKeyCache`]).
//!
//! Deriving a key costs four HMAC-SHA256 computations and a fresh HMAC key schedule; a cached
//! [`SigningKey`] keeps ring's precomputed HMAC pads, so a verification with a cache hit costs
//! one HMAC over the string to sign. The cache holds secrets (to notice a rotated secret) in
//! [`Zeroizing`] buffers and never exposes them; [`SigningKey`]'s `Debug` prints nothing.

use parking_lot::RwLock;
use std::collections::HashMap;
use std::fmt;

use ring::hmac;
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use crate::parse::CredentialScope;
use crate::TERMINATOR;

/// Derives the SigV4 signing key: `HMAC(HMAC(HMAC(HMAC("AWS4" + secret, date), region),
/// service), "aws4_request")`.
pub fn signing_key(secret: &[u8], date: &str, region: &str, service: &str) -> [u8; 32] {
    let mut k_secret = Zeroizing::new(Vec::with_capacity(4 + secret.len()));
    k_secret.extend_from_slice(b"AWS4");
    k_secret.extend_from_slice(secret);
    let step = |key: &[u8], data: &str| {
        hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, key), data.as_bytes())
    };
    let k_date = step(&k_secret, date);
    let k_region = step(k_date.as_ref(), region);
    let k_service = step(k_region.as_ref(), service);
    let k_signing = step(k_service.as_ref(), TERMINATOR);
    let mut out = [0u8; 32];
    for (dst, src) in out.iter_mut().zip(k_signing.as_ref()) {
        *dst = *src;
    }
    out
}

/// A derived signing key, ready for HMAC (the HMAC pads are precomputed).
#[derive(Clone)]
pub struct SigningKey(hmac::Key);

impl SigningKey {
    /// Derives the key for a secret and credential scope.
    pub fn derive(secret: &[u8], scope: &CredentialScope<'_>) -> Self {
        let bytes = Zeroizing::new(signing_key(secret, scope.date, scope.region, scope.service));
        Self::from_bytes(&bytes)
    }

    /// Wraps raw signing-key bytes (as returned by [`signing_key`]).
    pub fn from_bytes(bytes: &[u8; 32]) -> Self {
        SigningKey(hmac::Key::new(hmac::HMAC_SHA256, bytes))
    }

    pub(crate) fn hmac_key(&self) -> &hmac::Key {
        &self.0
    }
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SigningKey(..)")
    }
}

struct CacheEntry {
    date: String,
    region: String,
    service: String,
    secret: Zeroizing<Vec<u8>>,
    key: SigningKey,
}

#[derive(Default)]
struct CacheMap {
    by_access_key_id: HashMap<String, Vec<CacheEntry>>,
    len: usize,
}

/// A bounded, thread-safe cache of signing keys keyed by (access key id, date, region,
/// service).
///
/// Each entry also remembers the secret it was derived from: a lookup with a different secret
/// (e.g. after a rotation) derives and replaces the key. When full, the whole cache is cleared
/// (entries are only valid for a day anyway). Lookups take a read lock and do not allocate.
pub struct SigningKeyCache {
    max_entries: usize,
    inner: RwLock<CacheMap>,
}

impl SigningKeyCache {
    /// Default bound on the number of cached keys.
    pub const DEFAULT_MAX_ENTRIES: usize = 1024;

    /// A cache holding at most [`Self::DEFAULT_MAX_ENTRIES`] keys.
    pub fn new() -> Self {
        Self::with_max_entries(Self::DEFAULT_MAX_ENTRIES)
    }

    /// A cache holding at most `max_entries` keys (at least 1).
    pub fn with_max_entries(max_entries: usize) -> Self {
        SigningKeyCache {
            max_entries: max_entries.max(1),
            inner: RwLock::new(CacheMap::default()),
        }
    }

    /// Returns the signing key for `access_key_id`/`secret` and `scope`, deriving and caching
    /// it on a miss.
    pub fn get_or_derive(
        &self,
        access_key_id: &str,
        secret: &[u8],
        scope: &CredentialScope<'_>,
    ) -> SigningKey {
        let matches = |entry: &CacheEntry| {
            entry.date == scope.date
                && entry.region == scope.region
                && entry.service == scope.service
        };
        {
            let map = self.inner.read();
            if let Some(entry) = map
                .by_access_key_id
                .get(access_key_id)
                .and_then(|entries| entries.iter().find(|e| matches(e)))
            {
                if bool::from(entry.secret.as_slice().ct_eq(secret)) {
                    return entry.key.clone();
                }
            }
        }
        let key = SigningKey::derive(secret, scope);
        let mut map = self.inner.write();
        if map.len >= self.max_entries {
            map.by_access_key_id.clear();
            map.len = 0;
        }
        let entry = CacheEntry {
            date: scope.date.to_owned(),
            region: scope.region.to_owned(),
            service: scope.service.to_owned(),
            secret: Zeroizing::new(secret.to_vec()),
            key: key.clone(),
        };
        let entries = map
            .by_access_key_id
            .entry(access_key_id.to_owned())
            .or_default();
        if let Some(existing) = entries.iter_mut().find(|e| matches(e)) {
            *existing = entry;
        } else {
            entries.push(entry);
            map.len += 1;
        }
        key
    }

    /// Number of cached keys.
    pub fn len(&self) -> usize {
        self.inner.read().len
    }

    /// Whether the cache is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Drops every cached key (e.g. after credentials were reconfigured).
    pub fn clear(&self) {
        let mut map = self.inner.write();
        map.by_access_key_id.clear();
        map.len = 0;
    }
}

impl Default for SigningKeyCache {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for SigningKeyCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKeyCache")
            .field("max_entries", &self.max_entries)
            .field("len", &self.len())
            .finish()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use crate::canonical::hex32;

    #[test]
    fn signing_key_matches_aws_documentation_example() {
        let key = signing_key(
            b"wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
            "20150830",
            "us-east-1",
            "iam",
        );
        assert_eq!(
            &hex32(&key)[..],
            b"c4afb1cc5771d871763a393e44b703571b55cc28424d1a5e86da6ed3c154a4b9"
        );
    }

    #[test]
    fn cache_is_bounded_and_tracks_secrets() {
        let cache = SigningKeyCache::with_max_entries(2);
        let scope = |date| CredentialScope {
            date,
            region: "r",
            service: "s",
        };
        let tag = |key: &SigningKey| hmac::sign(key.hmac_key(), b"m").as_ref().to_vec();
        let a_x = cache.get_or_derive("a", b"x", &scope("20260101"));
        assert_eq!(
            tag(&a_x),
            tag(&cache.get_or_derive("a", b"x", &scope("20260101")))
        );
        assert_eq!(cache.len(), 1);
        // Another secret for the same id and scope replaces the entry, and gets its own key.
        let a_y = cache.get_or_derive("a", b"y", &scope("20260101"));
        assert_ne!(tag(&a_x), tag(&a_y));
        assert_eq!(cache.len(), 1);
        cache.get_or_derive("b", b"x", &scope("20260101"));
        assert_eq!(cache.len(), 2);
        // Full: cleared, then the new entry.
        cache.get_or_derive("a", b"x", &scope("20260102"));
        assert_eq!(cache.len(), 1);
        cache.clear();
        assert!(cache.is_empty());
        assert_eq!(format!("{a_x:?}"), "SigningKey(..)");
    }
}

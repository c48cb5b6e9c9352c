//! Request quotas per account, as AWS applies them (`/work/shared/reference/kms-api.md` §11.2):
//! the cryptographic operations share one rate per key-type class (symmetric and HMAC, RSA,
//! ECC), GenerateDataKeyPair has a rate per pair spec, and every other operation its own rate.
//! A request over its quota is `ThrottlingException` (HTTP 400, AWS's message).
//!
//! Each (account, region, quota) has a token bucket holding one second of its rate (at least one
//! request), refilled continuously. The region is the request's (a server can serve several),
//! so a bucket is per (account, region, quota). The buckets live in memory in a bounded LRU map: a bucket untouched for one
//! second (ten for the slowest rates) is full again, which is the same as having none, so
//! evicting the least recently used one forgets nothing unless more than the map's capacity of
//! (account, region, quota) triples were used within that time. With several nodes each enforces
//! `1 / [limits] cluster_nodes` of every rate (`docs/operations.md`).
//!
//! The per-operation check runs at the API edge after authentication
//! ([`RequestQuotas::admit_operation`]); the cryptographic quotas need the key's type and run
//! in the service once the key is resolved ([`super::Core::admit_crypto`]).

use std::collections::HashMap;
use std::hash::{BuildHasher, Hash};
use std::time::Instant;

use hashlink::LruCache;
use parking_lot::Mutex;

use crate::model::{DataKeyPairSpec, KeyFamily, KeySpec};

/// One request quota of AWS KMS.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Quota {
    /// Symmetric encryption and HMAC operations, shared (and GenerateRandom).
    CryptoSymmetric,
    /// Operations on RSA keys, shared.
    CryptoRsa,
    /// Operations on elliptic-curve keys (and, here, Ed25519 and ML-DSA keys), shared.
    CryptoEcc,
    /// GenerateDataKeyPair(WithoutPlaintext) of one pair spec.
    DataKeyPair(DataKeyPairSpec),
    /// One operation's own rate (the management operations).
    Operation(&'static str),
}

/// AWS's per-operation rates (requests per second) of the operations that have their own.
const OPERATION_RATES: &[(&str, f64)] = &[
    ("DescribeKey", 2000.0),
    ("GetPublicKey", 2000.0),
    ("ListResourceTags", 2000.0),
    ("GetKeyPolicy", 1000.0),
    ("GetKeyRotationStatus", 1000.0),
    ("ListAliases", 500.0),
    ("ListKeys", 500.0),
    ("ListGrants", 100.0),
    ("ListKeyPolicies", 100.0),
    ("ListRetirableGrants", 100.0),
    // Not in AWS's table; as its neighbours ListGrants and ListKeyPolicies.
    ("ListKeyRotations", 100.0),
    ("CreateGrant", 50.0),
    ("RetireGrant", 30.0),
    ("RevokeGrant", 30.0),
    ("DeleteAlias", 15.0),
    ("EnableKeyRotation", 15.0),
    ("PutKeyPolicy", 15.0),
    ("ScheduleKeyDeletion", 15.0),
    ("TagResource", 10.0),
    ("CancelKeyDeletion", 5.0),
    ("CreateAlias", 5.0),
    ("CreateKey", 5.0),
    ("DeleteImportedKeyMaterial", 5.0),
    ("DisableKey", 5.0),
    ("DisableKeyRotation", 5.0),
    ("EnableKey", 5.0),
    ("ImportKeyMaterial", 5.0),
    ("ReplicateKey", 5.0),
    ("UntagResource", 5.0),
    ("UpdateAlias", 5.0),
    ("UpdateKeyDescription", 5.0),
    ("UpdatePrimaryRegion", 5.0),
    // Not in AWS's table; as UpdateKeyDescription and EnableKeyRotation's kin.
    ("RotateKeyOnDemand", 5.0),
    ("ConnectCustomKeyStore", 5.0),
    ("CreateCustomKeyStore", 5.0),
    ("DeleteCustomKeyStore", 5.0),
    ("DescribeCustomKeyStores", 5.0),
    ("DisconnectCustomKeyStore", 5.0),
    ("UpdateCustomKeyStore", 5.0),
    ("GetParametersForImport", 0.25),
];

/// Operations counted against a cryptographic quota of their key's type (in the service).
const KEYED_CRYPTO: &[&str] = &[
    "Encrypt",
    "Decrypt",
    "ReEncrypt",
    "GenerateDataKey",
    "GenerateDataKeyWithoutPlaintext",
    "GenerateMac",
    "VerifyMac",
    "Sign",
    "Verify",
    "DeriveSharedSecret",
    "GenerateDataKeyPair",
    "GenerateDataKeyPairWithoutPlaintext",
];

/// Regions whose shared symmetric rate is 10,000 rather than 5,500.
const SYMMETRIC_10K: &[&str] = &[
    "us-east-2",
    "ap-southeast-1",
    "ap-southeast-2",
    "ap-northeast-1",
    "eu-central-1",
    "eu-west-2",
];
/// Regions whose shared symmetric rate is 50,000.
const SYMMETRIC_50K: &[&str] = &["us-east-1", "us-west-2", "eu-west-1"];

impl Quota {
    /// The configuration name: `cryptographic_symmetric`, `cryptographic_rsa`,
    /// `cryptographic_ecc`, `GenerateDataKeyPair:<spec>`, or the operation name.
    pub fn parse(name: &str) -> Option<Quota> {
        match name {
            "cryptographic_symmetric" => return Some(Quota::CryptoSymmetric),
            "cryptographic_rsa" => return Some(Quota::CryptoRsa),
            "cryptographic_ecc" => return Some(Quota::CryptoEcc),
            _ => {}
        }
        if let Some(spec) = name.strip_prefix("GenerateDataKeyPair:") {
            return DataKeyPairSpec::parse(spec).map(Quota::DataKeyPair);
        }
        OPERATION_RATES
            .iter()
            .find(|(op, _)| *op == name)
            .map(|(op, _)| Quota::Operation(op))
    }

    /// The quota of an operation checked at the API edge; `None` for the operations whose
    /// quota depends on their key (checked in the service) and for operations without one.
    pub fn of_operation(operation: &str) -> Option<Quota> {
        if operation == "GenerateRandom" {
            return Some(Quota::CryptoSymmetric);
        }
        if KEYED_CRYPTO.contains(&operation) {
            return None;
        }
        Quota::parse(operation).filter(|q| matches!(q, Quota::Operation(_)))
    }

    /// The shared cryptographic quota of a key's type.
    pub fn of_key(spec: KeySpec) -> Quota {
        match spec.family() {
            KeyFamily::Symmetric | KeyFamily::Hmac => Quota::CryptoSymmetric,
            KeyFamily::Rsa => Quota::CryptoRsa,
            // SM2 has its own 300/s in China; ML-DSA and Ed25519 are not in AWS's table: they
            // share the ECC rate here.
            KeyFamily::Ecc | KeyFamily::Ed25519 | KeyFamily::MlDsa | KeyFamily::Sm2 => {
                Quota::CryptoEcc
            }
        }
    }

    /// AWS's default rate in `region` (requests per second).
    pub fn default_rate(self, region: &str) -> f64 {
        match self {
            Quota::CryptoSymmetric if SYMMETRIC_50K.contains(&region) => 50_000.0,
            Quota::CryptoSymmetric if SYMMETRIC_10K.contains(&region) => 10_000.0,
            Quota::CryptoSymmetric => 5_500.0,
            Quota::CryptoRsa => 500.0,
            Quota::CryptoEcc => 300.0,
            Quota::DataKeyPair(spec) => match spec {
                DataKeyPairSpec::Rsa2048 => 1.0,
                DataKeyPairSpec::Rsa3072 => 0.5,
                DataKeyPairSpec::Rsa4096 => 0.1,
                DataKeyPairSpec::Sm2 => 25.0,
                // The ECC specs are 100 each; Ed25519 (not in AWS's table) likewise.
                _ => 100.0,
            },
            Quota::Operation(op) => OPERATION_RATES
                .iter()
                .find(|(o, _)| *o == op)
                .map_or(f64::INFINITY, |(_, r)| *r),
        }
    }
}

/// The request-quota settings of `[limits]`.
#[derive(Debug, Clone)]
pub struct QuotaSettings {
    /// Enforce request quotas at all (`request_quotas`, default true).
    pub enabled: bool,
    /// Nodes sharing the rates (`cluster_nodes`, default 1): each enforces an even share.
    pub cluster_nodes: u32,
    /// Rates replacing AWS's defaults for every account (`[limits.request_rates]`).
    pub rates: HashMap<Quota, f64>,
    /// Accounts with rates of their own (`[limits.accounts.<id>.request_rates]`).
    pub rates_by_account: HashMap<String, HashMap<Quota, f64>>,
    /// Capacity of the bucket map (`quota_buckets`, default 100,000).
    pub buckets: usize,
}

impl Default for QuotaSettings {
    fn default() -> Self {
        QuotaSettings {
            enabled: true,
            cluster_nodes: 1,
            rates: HashMap::new(),
            rates_by_account: HashMap::new(),
            buckets: 100_000,
        }
    }
}

/// One bucket: tokens left and when they were counted.
#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// Shards of the bucket map (a request locks one).
const SHARDS: usize = 16;

/// One shard: buckets by (account, region, quota), least recently used dropped at the capacity.
type Shard = Mutex<LruCache<(String, String, Quota), Bucket>>;

/// The request quotas in force on this node.
pub struct RequestQuotas {
    settings: QuotaSettings,
    shards: Box<[Shard]>,
    hasher: std::collections::hash_map::RandomState,
}

impl RequestQuotas {
    pub fn new(settings: QuotaSettings) -> Self {
        let per_shard = settings.buckets.div_ceil(SHARDS).max(1);
        RequestQuotas {
            shards: (0..SHARDS)
                .map(|_| Mutex::new(LruCache::new(per_shard)))
                .collect(),
            settings,
            hasher: Default::default(),
        }
    }

    /// This node's rate for `account` and `quota` in `region`: the account's, else the
    /// configured global, else AWS's default in that region, divided among the cluster's nodes.
    pub fn rate(&self, account: &str, region: &str, quota: Quota) -> f64 {
        let s = &self.settings;
        let rate = s
            .rates_by_account
            .get(account)
            .and_then(|r| r.get(&quota))
            .or_else(|| s.rates.get(&quota))
            .copied()
            .unwrap_or_else(|| quota.default_rate(region));
        rate / f64::from(s.cluster_nodes.max(1))
    }

    /// Takes one request from `account`'s `quota` in `region`; false when the bucket is empty.
    pub fn admit(&self, account: &str, region: &str, quota: Quota) -> bool {
        self.admit_at(account, region, quota, Instant::now())
    }

    /// [`Self::admit`] at a given instant (tests).
    pub fn admit_at(&self, account: &str, region: &str, quota: Quota, now: Instant) -> bool {
        if !self.settings.enabled {
            return true;
        }
        let rate = self.rate(account, region, quota);
        if !rate.is_finite() {
            return true;
        }
        // One second of the rate, and at least one request (rates below 1/s).
        let capacity = rate.max(1.0);
        let key = (account.to_string(), region.to_string(), quota);
        let shard = (self.hasher.hash_one(&key) as usize) % SHARDS;
        let mut map = self.shards[shard].lock();
        let bucket = match map.get_mut(&key) {
            Some(b) => b,
            None => {
                map.insert(
                    key.clone(),
                    Bucket {
                        tokens: capacity,
                        at: now,
                    },
                );
                match map.get_mut(&key) {
                    Some(b) => b,
                    None => return true,
                }
            }
        };
        let elapsed = now.saturating_duration_since(bucket.at).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * rate).min(capacity);
        bucket.at = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// The per-operation quota of `operation` for `account` in `region` (at the API edge).
    pub fn admit_operation(&self, account: &str, region: &str, operation: &str) -> bool {
        match Quota::of_operation(operation) {
            Some(q) => self.admit(account, region, q),
            None => true,
        }
    }

    /// Buckets held now (metrics, tests).
    pub fn buckets(&self) -> usize {
        self.shards.iter().map(|s| s.lock().len()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn quotas(f: impl FnOnce(&mut QuotaSettings)) -> RequestQuotas {
        let mut s = QuotaSettings::default();
        f(&mut s);
        RequestQuotas::new(s)
    }

    #[test]
    fn names_and_defaults_follow_aws() {
        assert_eq!(
            Quota::parse("CreateKey"),
            Some(Quota::Operation("CreateKey"))
        );
        assert_eq!(
            Quota::parse("GenerateDataKeyPair:RSA_4096"),
            Some(Quota::DataKeyPair(DataKeyPairSpec::Rsa4096))
        );
        assert_eq!(Quota::parse("Encrypt"), None);
        assert_eq!(Quota::parse("nonsense"), None);
        assert_eq!(Quota::of_operation("Encrypt"), None);
        assert_eq!(
            Quota::of_operation("GenerateRandom"),
            Some(Quota::CryptoSymmetric)
        );
        assert_eq!(Quota::CryptoSymmetric.default_rate("us-east-1"), 50_000.0);
        assert_eq!(Quota::CryptoSymmetric.default_rate("eu-west-2"), 10_000.0);
        assert_eq!(Quota::CryptoSymmetric.default_rate("sa-east-1"), 5_500.0);
        assert_eq!(Quota::of_key(KeySpec::Hmac256), Quota::CryptoSymmetric);
        assert_eq!(Quota::of_key(KeySpec::Rsa2048), Quota::CryptoRsa);
        assert_eq!(Quota::of_key(KeySpec::EccNistP256), Quota::CryptoEcc);
        assert_eq!(Quota::Operation("CreateKey").default_rate("x"), 5.0);
        assert_eq!(
            Quota::Operation("GetParametersForImport").default_rate("x"),
            0.25
        );
    }

    #[test]
    fn bucket_holds_one_second_and_refills() {
        let q = quotas(|_| {});
        let t0 = Instant::now();
        let create = Quota::Operation("CreateKey");
        let admitted = (0..20)
            .filter(|_| q.admit_at("a", "us-east-1", create, t0))
            .count();
        assert_eq!(admitted, 5);
        // Another account has its own bucket.
        assert!(q.admit_at("b", "us-east-1", create, t0));
        // 200 ms later one more (5/s).
        assert!(q.admit_at("a", "us-east-1", create, t0 + Duration::from_millis(200)));
        assert!(!q.admit_at("a", "us-east-1", create, t0 + Duration::from_millis(200)));
    }

    #[test]
    fn overrides_per_account_and_cluster_share() {
        let q = quotas(|s| {
            s.rates.insert(Quota::CryptoSymmetric, 40.0);
            s.rates_by_account
                .insert("b".into(), HashMap::from([(Quota::CryptoSymmetric, 400.0)]));
            s.cluster_nodes = 2;
        });
        assert_eq!(q.rate("a", "us-east-1", Quota::CryptoSymmetric), 20.0);
        assert_eq!(q.rate("b", "us-east-1", Quota::CryptoSymmetric), 200.0);
        assert_eq!(q.rate("a", "us-east-1", Quota::CryptoRsa), 250.0);
        let t0 = Instant::now();
        let n = (0..100)
            .filter(|_| q.admit_at("a", "us-east-1", Quota::CryptoSymmetric, t0))
            .count();
        assert_eq!(n, 20);
    }

    #[test]
    fn disabled_admits_everything_and_map_is_bounded() {
        let off = quotas(|s| s.enabled = false);
        let t0 = Instant::now();
        assert!((0..100).all(|_| off.admit_at(
            "a",
            "us-east-1",
            Quota::Operation("CreateKey"),
            t0
        )));
        assert_eq!(off.buckets(), 0);

        let q = quotas(|s| s.buckets = 64);
        for i in 0..10_000 {
            q.admit_at(&format!("{i:012}"), "us-east-1", Quota::CryptoSymmetric, t0);
        }
        assert!(q.buckets() <= 64, "{}", q.buckets());
    }
}

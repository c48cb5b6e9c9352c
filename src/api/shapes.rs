//! Wire shapes shared by several operations: base64 blobs, encryption context, `KeyMetadata`,
//! tags, and epoch-seconds timestamps.

use std::collections::BTreeMap;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use zeroize::Zeroizing;

use crate::model::{
    epoch_seconds, EncryptionAlgorithm, KeyAgreementAlgorithm, KeyRecord, KeySpec, KeyState,
    KeyUsage, MacAlgorithm, SigningAlgorithm,
};
use crate::service::ciphertext::EncryptionContext;
use crate::service::KmsResult;

/// A base64 blob in a request or response.
#[derive(Clone, PartialEq, Eq)]
pub struct Blob(pub Vec<u8>);

impl std::fmt::Debug for Blob {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Blob({} bytes)", self.0.len())
    }
}

impl<'de> Deserialize<'de> for Blob {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        B64.decode(s.as_bytes())
            .map(Blob)
            .map_err(|_| serde::de::Error::custom("Invalid base64"))
    }
}

impl Serialize for Blob {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&B64.encode(&self.0))
    }
}

/// A secret base64 blob (plaintext, data keys): zeroized on drop, never printed.
pub struct SecretBlob(pub Zeroizing<Vec<u8>>);

impl std::fmt::Debug for SecretBlob {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SecretBlob({} bytes)", self.0.len())
    }
}

impl<'de> Deserialize<'de> for SecretBlob {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = Zeroizing::new(String::deserialize(d)?);
        B64.decode(s.as_bytes())
            .map(|v| SecretBlob(Zeroizing::new(v)))
            .map_err(|_| serde::de::Error::custom("Invalid base64"))
    }
}

impl Serialize for SecretBlob {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let encoded = Zeroizing::new(B64.encode(&*self.0));
        s.serialize_str(&encoded)
    }
}

/// `EncryptionContext`: a string map; numbers and booleans are taken as their text, the way
/// AWS interprets non-string JSON values.
#[derive(Debug, Clone, Default)]
pub struct WireContext(pub EncryptionContext);

impl<'de> Deserialize<'de> for WireContext {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = BTreeMap::<String, serde_json::Value>::deserialize(d)?;
        let mut out = EncryptionContext::new();
        for (k, v) in raw {
            let v = match v {
                serde_json::Value::String(s) => s,
                serde_json::Value::Number(n) => n.to_string(),
                serde_json::Value::Bool(b) => b.to_string(),
                _ => {
                    return Err(serde::de::Error::custom(
                        "Encryption context values must be strings",
                    ))
                }
            };
            out.insert(k, v);
        }
        Ok(WireContext(out))
    }
}

/// Seconds since the epoch as a JSON number.
pub fn epoch<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(epoch_seconds(*t))
}

pub fn epoch_opt<S: Serializer>(t: &Option<DateTime<Utc>>, s: S) -> Result<S::Ok, S::Error> {
    match t {
        Some(t) => s.serialize_f64(epoch_seconds(*t)),
        None => s.serialize_none(),
    }
}

/// `XksProxyAuthenticationCredential`: `{AccessKeyId, RawSecretAccessKey}`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct XksCredential {
    pub access_key_id: Option<String>,
    pub raw_secret_access_key: Option<secrecy::SecretString>,
}

/// `{TagKey, TagValue}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct WireTag {
    pub tag_key: Option<String>,
    pub tag_value: Option<String>,
}

/// `KeyMetadata`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct KeyMetadata {
    #[serde(rename = "AWSAccountId")]
    pub aws_account_id: String,
    pub key_id: String,
    pub arn: String,
    #[serde(serialize_with = "epoch")]
    pub creation_date: DateTime<Utc>,
    pub enabled: bool,
    pub description: String,
    pub key_usage: &'static str,
    pub key_state: &'static str,
    #[serde(serialize_with = "epoch_opt", skip_serializing_if = "Option::is_none")]
    pub deletion_date: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pending_deletion_window_in_days: Option<i64>,
    pub origin: &'static str,
    pub key_manager: &'static str,
    pub customer_master_key_spec: &'static str,
    pub key_spec: &'static str,
    /// Exactly one of the four algorithm lists is present: the one of the key's usage.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub encryption_algorithms: Option<Vec<&'static str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signing_algorithms: Option<Vec<&'static str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mac_algorithms: Option<Vec<&'static str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_agreement_algorithms: Option<Vec<&'static str>>,
    pub multi_region: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub multi_region_configuration: Option<MultiRegionConfiguration>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub custom_key_store_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cloud_hsm_cluster_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub xks_key_configuration: Option<XksKeyConfiguration>,
    /// Symmetric keys with material (AWS_KMS or EXTERNAL origin).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub current_key_material_id: Option<String>,
    /// EXTERNAL keys with imported material.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expiration_model: Option<&'static str>,
    #[serde(serialize_with = "epoch_opt", skip_serializing_if = "Option::is_none")]
    pub valid_to: Option<DateTime<Utc>>,
}

/// `XksKeyConfiguration` of a key in an external key store.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct XksKeyConfiguration {
    pub id: String,
}

/// `MultiRegionConfiguration`: the same for every key of a set.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct MultiRegionConfiguration {
    pub multi_region_key_type: &'static str,
    pub primary_key: MultiRegionKey,
    pub replica_keys: Vec<MultiRegionKey>,
}

/// `MultiRegionKey`: `{Arn, Region}`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct MultiRegionKey {
    pub arn: String,
    pub region: String,
}

impl KeyMetadata {
    /// Metadata with the fields that need the service (the CloudHSM cluster id, the key
    /// material fields, the related keys of a multi-Region key in every served region). The
    /// material fields come from the metadata cache beside the key's row when it has them. A
    /// store failure reading any of these fails the call (`KMSInternalException` or
    /// `DependencyTimeoutException`, as store errors map): metadata with fields silently left
    /// out would be a wrong answer with status 200.
    pub async fn of(kms: &crate::service::Kms, k: &KeyRecord) -> KmsResult<Self> {
        let mut m = KeyMetadata::from(k);
        m.cloud_hsm_cluster_id = kms.cloud_hsm_cluster_id(k).await?;
        let summary = kms.material_summary(k).await?;
        m.current_key_material_id = summary.current_material_id;
        m.expiration_model = summary.expiration_model.map(|e| e.as_str());
        m.valid_to = summary.valid_to;
        if let Some(primary_region) = &k.mrk_primary_region {
            let related = kms.related_keys(k).await?;
            let entry = |r: &KeyRecord| MultiRegionKey {
                arn: r.arn.clone(),
                region: r.region.clone(),
            };
            let primary = related
                .iter()
                .find(|r| r.region == *primary_region)
                .map(entry)
                .unwrap_or_else(|| MultiRegionKey {
                    arn: crate::model::KeyArn::new("aws", primary_region, &k.account, &k.key_id).0,
                    region: primary_region.clone(),
                });
            m.multi_region_configuration = Some(MultiRegionConfiguration {
                multi_region_key_type: if k.region == *primary_region {
                    "PRIMARY"
                } else {
                    "REPLICA"
                },
                primary_key: primary,
                replica_keys: related
                    .iter()
                    .filter(|r| r.region != *primary_region)
                    .map(entry)
                    .collect(),
            });
        }
        Ok(m)
    }
}

/// The algorithm lists of a key as KeyMetadata and GetPublicKey carry them: only the
/// non-empty one (the one of the key's usage) is `Some`.
#[derive(Debug, Default)]
pub struct AlgorithmLists {
    pub encryption: Option<Vec<&'static str>>,
    pub signing: Option<Vec<&'static str>>,
    pub mac: Option<Vec<&'static str>>,
    pub key_agreement: Option<Vec<&'static str>>,
}

impl AlgorithmLists {
    pub fn of(spec: KeySpec, usage: KeyUsage) -> Self {
        fn list<T: Copy>(items: &[T], name: fn(T) -> &'static str) -> Option<Vec<&'static str>> {
            (!items.is_empty()).then(|| items.iter().map(|a| name(*a)).collect())
        }
        let a = spec.algorithms(usage);
        AlgorithmLists {
            encryption: list(a.encryption, EncryptionAlgorithm::as_str),
            signing: list(a.signing, SigningAlgorithm::as_str),
            mac: list(a.mac, MacAlgorithm::as_str),
            key_agreement: list(a.key_agreement, KeyAgreementAlgorithm::as_str),
        }
    }
}

impl From<&KeyRecord> for KeyMetadata {
    fn from(k: &KeyRecord) -> Self {
        let algorithms = AlgorithmLists::of(k.key_spec, k.key_usage);
        KeyMetadata {
            aws_account_id: k.account.clone(),
            key_id: k.key_id.to_string(),
            arn: k.arn.clone(),
            creation_date: k.creation_date,
            enabled: k.effective_state() == KeyState::Enabled,
            description: k.description.clone(),
            key_usage: k.key_usage.as_str(),
            key_state: k.effective_state().as_str(),
            deletion_date: k.deletion_date,
            pending_deletion_window_in_days: k.pending_window_days,
            origin: k.origin.as_str(),
            key_manager: "CUSTOMER",
            customer_master_key_spec: k.key_spec.as_str(),
            key_spec: k.key_spec.as_str(),
            encryption_algorithms: algorithms.encryption,
            signing_algorithms: algorithms.signing,
            mac_algorithms: algorithms.mac,
            key_agreement_algorithms: algorithms.key_agreement,
            multi_region: k.mrk_primary_region.is_some(),
            multi_region_configuration: None,
            custom_key_store_id: k.custom_key_store_id.clone(),
            cloud_hsm_cluster_id: None,
            xks_key_configuration: k.xks_key_id.clone().map(|id| XksKeyConfiguration { id }),
            current_key_material_id: None,
            expiration_model: None,
            valid_to: None,
        }
    }
}

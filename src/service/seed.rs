//! The seed file (`[server] seed_file`): keys with fixed ids, their aliases, descriptions,
//! tags, policies, multi-Region replicas and (Origin `EXTERNAL`) fixed key material, created
//! at start-up so that a test suite finds the same keys on every fresh start, even on a fresh
//! store. Format and rules: `docs/seeding.md`; material goes through the root's import path
//! (`Import::seed_material`).
//!
//! Idempotent: a key that exists with the seed's fixed properties (account, region, spec,
//! usage, origin) is left as it is, whatever was changed on it since (description, tags,
//! policy, state); a missing alias or replica is added. An existing key or alias that
//! contradicts the seed (another spec, an alias on another key) is a start-up error naming it,
//! never overwritten. The seed is operator input: no authorization, no lockout check (the
//! policy grammar is checked like CreateKey's).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use zeroize::Zeroizing;

use serde::Deserialize;

use super::import::SeedMaterial;
use super::keys::NewKey;
use super::{Call, Kms, KmsError};
use crate::model::{AliasRecord, KeyId, KeyRecord, KeySpec, KeyState, KeyUsage, Origin, Tag};

/// A seed file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeedFile {
    #[serde(default)]
    pub keys: Vec<SeedKey>,
    /// The directory `file:` material paths are relative to: the seed file's (set by
    /// [`load`]; the working directory when unset).
    #[serde(skip)]
    pub base_dir: Option<PathBuf>,
}

/// One key of a seed file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeedKey {
    /// A key id (`1234abcd-...`) or a multi-Region key id (`mrk-` + 32 hex digits): the key
    /// is multi-Region exactly when its id is.
    pub id: String,
    /// Default: the account of the first configured credential.
    pub account: Option<String>,
    /// The key's region (a multi-Region key's primary region). Default: the server's default
    /// region.
    pub region: Option<String>,
    #[serde(default)]
    pub description: String,
    /// Default `SYMMETRIC_DEFAULT`.
    pub key_spec: Option<String>,
    /// Default: `ENCRYPT_DECRYPT` for symmetric keys; required for the others.
    pub key_usage: Option<String>,
    /// Default `AWS_KMS`; `EXTERNAL` for a key with imported key material (see `material`).
    pub origin: Option<String>,
    /// Key material of an `EXTERNAL` key: `base64:<bytes>` or `file:<path>` (relative to the
    /// seed file), imported `KEY_MATERIAL_DOES_NOT_EXPIRE`. Without it the key is created in
    /// `PendingImport`.
    pub material: Option<String>,
    /// The key policy (JSON text). Default: the default key policy.
    pub policy: Option<String>,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    /// Aliases (`alias/...`), made in the key's region and in each replica region.
    #[serde(default)]
    pub aliases: Vec<String>,
    /// Multi-Region keys: regions that get a replica.
    #[serde(default)]
    pub replica_regions: Vec<String>,
    /// Default true; false creates the key Disabled.
    pub enabled: Option<bool>,
}

/// Why a seed file could not be applied (the server does not start).
#[derive(Debug, thiserror::Error)]
pub enum SeedError {
    #[error("seed file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("seed file {path}: {message}")]
    Parse { path: String, message: String },
    /// A seed key is not valid (named by its id).
    #[error("seed key {id}: {message}")]
    Invalid { id: String, message: String },
    /// An existing key or alias contradicts the seed.
    #[error("seed key {id}: {message}")]
    Conflict { id: String, message: String },
    /// The service refused a seed key.
    #[error("seed key {id}: {code}: {message}")]
    Refused {
        id: String,
        code: &'static str,
        message: String,
    },
}

/// What applying a seed did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SeedReport {
    /// Keys (and replicas) created.
    pub created: usize,
    /// Keys (and replicas) that existed already.
    pub existing: usize,
    /// Aliases created.
    pub aliases: usize,
}

/// Reads and parses a seed file (TOML).
pub fn load(path: &Path) -> Result<SeedFile, SeedError> {
    let text = std::fs::read_to_string(path).map_err(|source| SeedError::Read {
        path: path.display().to_string(),
        source,
    })?;
    let mut seed = parse(&text).map_err(|message| SeedError::Parse {
        path: path.display().to_string(),
        message,
    })?;
    seed.base_dir = path.parent().map(Path::to_path_buf);
    Ok(seed)
}

/// Parses seed file text.
pub fn parse(text: &str) -> Result<SeedFile, String> {
    toml::from_str(text).map_err(|e| e.to_string())
}

/// A seed key checked against the server: its parsed fields.
#[derive(Clone)]
struct Checked {
    id: KeyId,
    account: String,
    region: String,
    spec: KeySpec,
    usage: KeyUsage,
    origin: Origin,
    tags: Vec<Tag>,
    /// The material of an `EXTERNAL` key, decoded.
    material: Option<Zeroizing<Vec<u8>>>,
}

impl Kms {
    /// Applies a seed: creates what is missing, checks what exists. `default_account` is the
    /// account of keys that name none.
    pub async fn apply_seed(
        &self,
        seed: &SeedFile,
        default_account: Option<&str>,
    ) -> Result<SeedReport, SeedError> {
        let mut report = SeedReport::default();
        for k in &seed.keys {
            let c = self.check_seed_key(k, default_account, seed.base_dir.as_deref())?;
            let refused = |e: KmsError| SeedError::Refused {
                id: k.id.clone(),
                code: e.code(),
                message: e.to_string(),
            };
            let conflict = |message: String| SeedError::Conflict {
                id: k.id.clone(),
                message,
            };
            let here = c.id.in_region(&c.region);
            let key = match self
                .store
                .get_key(&here)
                .await
                .map_err(|e| refused(e.into()))?
            {
                Some(existing) => {
                    check_same(&existing, &c).map_err(conflict)?;
                    report.existing += 1;
                    self.seed_material(existing, &c, &k.id).await?
                }
                None => {
                    let mut call = Call::internal(&c.account, "CreateKey");
                    call.region = c.region.clone();
                    let key = self
                        .keys
                        .create_key_with_id(
                            &mut call,
                            here.clone(),
                            NewKey {
                                description: k.description.clone(),
                                key_spec: c.spec,
                                key_usage: c.usage,
                                origin: c.origin,
                                policy: k.policy.clone(),
                                bypass_policy_lockout: Some(true),
                                tags: c.tags.clone(),
                                multi_region: c.id.is_multi_region(),
                            },
                        )
                        .await
                        .map_err(refused)?;
                    let key = self.seed_material(key, &c, &k.id).await?;
                    let key = self.seed_state(key, k.enabled).await.map_err(refused)?;
                    tracing::info!(key_arn = %key.arn, "seed: created key");
                    report.created += 1;
                    key
                }
            };
            let mut regional = vec![key.clone()];
            for region in &k.replica_regions {
                let rid = c.id.in_region(region);
                match self
                    .store
                    .get_key(&rid)
                    .await
                    .map_err(|e| refused(e.into()))?
                {
                    Some(existing) => {
                        check_same(
                            &existing,
                            &Checked {
                                region: region.clone(),
                                ..c.clone()
                            },
                        )
                        .map_err(conflict)?;
                        report.existing += 1;
                        regional.push(existing);
                    }
                    None => {
                        // The replica is made from whichever related key is the primary now.
                        let primary_region =
                            key.mrk_primary_region.clone().unwrap_or(c.region.clone());
                        let primary = self
                            .store
                            .get_key(&c.id.in_region(&primary_region))
                            .await
                            .map_err(|e| refused(e.into()))?
                            .ok_or_else(|| {
                                conflict(format!("its primary in {primary_region} is gone"))
                            })?;
                        let mut call = Call::internal(&c.account, "CreateKey");
                        call.region = region.clone();
                        let policy = self
                            .new_key_policy(&call, "", k.policy.clone(), Some(true))
                            .map_err(refused)?;
                        let replica = self
                            .keys
                            .make_replica(&primary, region, policy, k.description.clone(), &c.tags)
                            .await
                            .map_err(refused)?;
                        let replica = self
                            .store
                            .get_key(&replica.key_id)
                            .await
                            .map_err(|e| refused(e.into()))?
                            .ok_or_else(|| conflict("its replica vanished".into()))?;
                        let replica = self.seed_state(replica, k.enabled).await.map_err(refused)?;
                        tracing::info!(key_arn = %replica.arn, "seed: created replica");
                        report.created += 1;
                        regional.push(replica);
                    }
                }
            }
            for key in &regional {
                for alias in &k.aliases {
                    if self.seed_alias(key, alias).await.map_err(|e| match e {
                        SeedAliasError::Conflict(m) => conflict(m),
                        SeedAliasError::Kms(e) => refused(e),
                    })? {
                        report.aliases += 1;
                    }
                }
            }
        }
        Ok(report)
    }

    fn check_seed_key(
        &self,
        k: &SeedKey,
        default_account: Option<&str>,
        base_dir: Option<&Path>,
    ) -> Result<Checked, SeedError> {
        let invalid = |message: String| SeedError::Invalid {
            id: k.id.clone(),
            message,
        };
        let id = KeyId::parse(&k.id)
            .filter(|id| id.as_str() == k.id)
            .ok_or_else(|| {
                invalid(
                    "id must be a lower-case key id (a UUID) or a multi-Region key id \
                     (mrk- and 32 lower-case hex digits)"
                        .into(),
                )
            })?;
        let account = match (&k.account, default_account) {
            (Some(a), _) => a.clone(),
            (None, Some(a)) => a.to_string(),
            (None, None) => {
                return Err(invalid(
                    "no account: name one, or configure a credential".into(),
                ))
            }
        };
        if account.len() != 12 || !account.bytes().all(|b| b.is_ascii_digit()) {
            return Err(invalid(format!("account '{account}' is not 12 digits")));
        }
        let region = k.region.clone().unwrap_or_else(|| self.region.clone());
        for r in std::iter::once(&region).chain(&k.replica_regions) {
            if !self.regions.contains(r) {
                return Err(invalid(format!(
                    "region {r} is not served ([server] regions)"
                )));
            }
        }
        if !k.replica_regions.is_empty() && !id.is_multi_region() {
            return Err(invalid(
                "replica_regions needs a multi-Region key id (mrk-...)".into(),
            ));
        }
        if k.replica_regions.contains(&region)
            || k.replica_regions
                .iter()
                .enumerate()
                .any(|(i, r)| k.replica_regions[..i].contains(r))
        {
            return Err(invalid(
                "replica_regions names the key's own region or a region twice".into(),
            ));
        }
        let spec = match &k.key_spec {
            None => KeySpec::SymmetricDefault,
            Some(s) => KeySpec::parse(s).ok_or_else(|| {
                invalid(format!(
                    "key_spec {s} is not one of {}",
                    KeySpec::wire_list()
                ))
            })?,
        };
        let usage = match &k.key_usage {
            None => None,
            Some(u) => Some(KeyUsage::parse(u).ok_or_else(|| {
                invalid(format!(
                    "key_usage {u} is not one of {}",
                    KeyUsage::wire_list()
                ))
            })?),
        };
        let usage = super::keys::check_spec_usage(&region, spec, usage)
            .map_err(|e| invalid(e.to_string()))?;
        let origin = match &k.origin {
            None => Origin::AwsKms,
            Some(o) => Origin::parse(o).ok_or_else(|| invalid(format!("origin {o} is unknown")))?,
        };
        match origin {
            Origin::AwsKms => {}
            Origin::External if super::import::importable(spec) => {}
            Origin::External => {
                return Err(invalid(format!(
                    "origin EXTERNAL is not supported for key_spec {spec}"
                )))
            }
            _ => {
                return Err(invalid(format!(
                    "origin {} cannot be seeded: AWS_KMS or EXTERNAL",
                    origin
                )))
            }
        }
        if origin == Origin::External && !k.replica_regions.is_empty() {
            return Err(invalid(
                "replica_regions of an EXTERNAL key cannot be seeded (each replica needs its \
                 own import)"
                    .into(),
            ));
        }
        let material = match &k.material {
            None => None,
            Some(_) if origin != Origin::External => {
                return Err(invalid("material needs origin = \"EXTERNAL\"".into()))
            }
            Some(m) => Some(read_material(m, base_dir).map_err(invalid)?),
        };
        for alias in &k.aliases {
            let ok = alias.starts_with("alias/")
                && !alias.starts_with("alias/aws/")
                && alias.len() > "alias/".len()
                && alias.len() <= 256
                && alias[6..]
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"/_-".contains(&b));
            if !ok {
                return Err(invalid(format!(
                    "alias '{alias}' is not a valid alias name"
                )));
            }
        }
        let tags: Vec<Tag> = k
            .tags
            .iter()
            .map(|(key, value)| Tag {
                key: key.clone(),
                value: value.clone(),
            })
            .collect();
        super::tags::check_tags(&tags).map_err(|e| invalid(e.to_string()))?;
        Ok(Checked {
            id,
            account,
            region,
            spec,
            usage,
            origin,
            tags,
            material,
        })
    }

    /// Imports the seed's material into `key` (when it has some) and returns the key as
    /// stored; material other than the key's is a conflict.
    async fn seed_material(
        &self,
        key: KeyRecord,
        c: &Checked,
        id: &str,
    ) -> Result<KeyRecord, SeedError> {
        let Some(material) = &c.material else {
            return Ok(key);
        };
        let refused = |e: KmsError| SeedError::Refused {
            id: id.to_string(),
            code: e.code(),
            message: e.to_string(),
        };
        match self.import.seed_material(&key, material).await {
            Ok(SeedMaterial::Unchanged) => Ok(key),
            Ok(SeedMaterial::Imported) => {
                tracing::info!(key_arn = %key.arn, "seed: imported key material");
                self.store
                    .get_key(&key.key_id)
                    .await
                    .map_err(|e| refused(e.into()))?
                    .ok_or_else(|| SeedError::Conflict {
                        id: id.to_string(),
                        message: "the key vanished".into(),
                    })
            }
            Ok(SeedMaterial::Differs) => Err(SeedError::Conflict {
                id: id.to_string(),
                message: format!(
                    "an existing key {} has other key material than the seed's",
                    key.arn
                ),
            }),
            Err(e) => Err(refused(e)),
        }
    }

    /// A freshly seeded key made Disabled when the seed says so.
    async fn seed_state(
        &self,
        mut key: KeyRecord,
        enabled: Option<bool>,
    ) -> super::KmsResult<KeyRecord> {
        if enabled == Some(false) && key.state == KeyState::Enabled {
            key.state = KeyState::Disabled;
            key = self.store.update_key(&key).await?;
        }
        Ok(key)
    }

    /// Makes `alias` point at `key` in the key's region unless it does already; `true` when
    /// it was created.
    async fn seed_alias(&self, key: &KeyRecord, alias: &str) -> Result<bool, SeedAliasError> {
        let existing = self
            .store
            .get_alias(&key.account, &key.region, alias)
            .await
            .map_err(|e| SeedAliasError::Kms(e.into()))?;
        match existing {
            Some(a) if a.target_key_id == key.key_id => Ok(false),
            Some(a) => Err(SeedAliasError::Conflict(format!(
                "{alias} in {} points at another key ({})",
                key.region, a.target_key_id
            ))),
            None => {
                let now = self.clock.now();
                self.store
                    .create_alias(
                        &AliasRecord {
                            account: key.account.clone(),
                            region: key.region.clone(),
                            name: alias.to_string(),
                            target_key_id: key.key_id.clone(),
                            creation_date: now,
                            last_updated_date: now,
                        },
                        self.limits.aliases_for(&key.account),
                    )
                    .await
                    .map_err(|e| SeedAliasError::Kms(e.into()))?;
                Ok(true)
            }
        }
    }
}

enum SeedAliasError {
    Conflict(String),
    Kms(KmsError),
}

/// Decodes a seed's `material`: `base64:<bytes>` or `file:<path>` (relative to `base_dir`).
/// Errors name the file but never the material.
fn read_material(spec: &str, base_dir: Option<&Path>) -> Result<Zeroizing<Vec<u8>>, String> {
    use base64::Engine as _;
    if let Some(b64) = spec.strip_prefix("base64:") {
        return base64::engine::general_purpose::STANDARD
            .decode(b64.trim().as_bytes())
            .map(Zeroizing::new)
            .map_err(|_| "material is not valid base64".into());
    }
    if let Some(path) = spec.strip_prefix("file:") {
        let path = Path::new(path);
        let path = match base_dir {
            Some(dir) if path.is_relative() => dir.join(path),
            _ => path.to_path_buf(),
        };
        let bytes =
            std::fs::read(&path).map_err(|e| format!("material file {}: {e}", path.display()))?;
        return Ok(Zeroizing::new(bytes));
    }
    Err("material must be base64:<bytes> or file:<path>".into())
}

/// An existing key agrees with the seed on what cannot change.
fn check_same(existing: &KeyRecord, c: &Checked) -> Result<(), String> {
    let mut diffs = Vec::new();
    if existing.account != c.account {
        diffs.push(format!(
            "account is {}, the seed says {}",
            existing.account, c.account
        ));
    }
    if existing.region != c.region {
        diffs.push(format!(
            "region is {}, the seed says {}",
            existing.region, c.region
        ));
    }
    if existing.key_spec != c.spec {
        diffs.push(format!(
            "key_spec is {}, the seed says {}",
            existing.key_spec, c.spec
        ));
    }
    if existing.key_usage != c.usage {
        diffs.push(format!(
            "key_usage is {}, the seed says {}",
            existing.key_usage, c.usage
        ));
    }
    if existing.origin != c.origin {
        diffs.push(format!(
            "origin is {}, the seed says {}",
            existing.origin, c.origin
        ));
    }
    if diffs.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "an existing key {} differs from the seed: {}",
            existing.arn,
            diffs.join("; ")
        ))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_documented_example() {
        let seed = parse(
            r#"
[[keys]]
id = "11111111-2222-3333-4444-555555555555"
description = "app data key"
aliases = ["alias/app"]
tags = { team = "payments" }

[[keys]]
id = "mrk-0123456789abcdef0123456789abcdef"
key_spec = "SYMMETRIC_DEFAULT"
replica_regions = ["us-west-2"]
enabled = false
"#,
        )
        .unwrap();
        assert_eq!(seed.keys.len(), 2);
        assert_eq!(seed.keys[0].aliases, vec!["alias/app".to_string()]);
        assert_eq!(seed.keys[0].tags["team"], "payments");
        assert_eq!(seed.keys[1].replica_regions, vec!["us-west-2".to_string()]);
        assert_eq!(seed.keys[1].enabled, Some(false));
        // The sample the docs name parses.
        let sample = parse(include_str!("../../hsm-config/seed.example.toml")).unwrap();
        assert_eq!(sample.keys.len(), 2);
        // Unknown fields are errors, not silently ignored.
        assert!(parse("[[keys]]\nid = 'x'\nkeyspec = 'RSA_2048'\n").is_err());
    }

    #[test]
    fn material_is_base64_or_a_file_beside_the_seed() {
        assert_eq!(
            read_material("base64:AAEC", None).unwrap().as_slice(),
            &[0, 1, 2]
        );
        assert!(read_material("base64:not base64!", None)
            .unwrap_err()
            .contains("base64"));
        assert!(read_material("hex:00", None)
            .unwrap_err()
            .contains("file:<path>"));
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("k.bin"), [5u8; 32]).unwrap();
        assert_eq!(
            read_material("file:k.bin", Some(dir.path()))
                .unwrap()
                .as_slice(),
            &[5u8; 32]
        );
        let err = read_material("file:missing.bin", Some(dir.path())).unwrap_err();
        assert!(err.contains("missing.bin"), "{err}");
    }
}

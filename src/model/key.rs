//! Key metadata types: spec, usage, state, origin, and the records the metadata store keeps.

use chrono::{DateTime, Utc};

use super::KeyId;

macro_rules! wire_enum {
    ($(#[$m:meta])* $name:ident { $($variant:ident => $wire:literal),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name { $($variant),+ }

        impl $name {
            /// Every value, in the order AWS documents them.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The wire (and database) spelling.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $wire),+ }
            }

            /// Parses the exact wire spelling.
            pub fn parse(s: &str) -> Option<Self> {
                match s { $($wire => Some($name::$variant),)+ _ => None }
            }

            /// `[A, B, C]` as AWS prints an enum constraint (built once: validation passes it
            /// on every request).
            pub fn wire_list() -> &'static str {
                static LIST: std::sync::OnceLock<String> = std::sync::OnceLock::new();
                LIST.get_or_init(|| {
                    let names: Vec<&str> = Self::ALL.iter().map(|v| v.as_str()).collect();
                    format!("[{}]", names.join(", "))
                })
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

wire_enum!(
    /// `KeySpec` (and the deprecated `CustomerMasterKeySpec`).
    KeySpec {
        Rsa2048 => "RSA_2048",
        Rsa3072 => "RSA_3072",
        Rsa4096 => "RSA_4096",
        EccNistP256 => "ECC_NIST_P256",
        EccNistP384 => "ECC_NIST_P384",
        EccNistP521 => "ECC_NIST_P521",
        EccSecgP256k1 => "ECC_SECG_P256K1",
        SymmetricDefault => "SYMMETRIC_DEFAULT",
        Hmac224 => "HMAC_224",
        Hmac256 => "HMAC_256",
        Hmac384 => "HMAC_384",
        Hmac512 => "HMAC_512",
        Sm2 => "SM2",
        MlDsa44 => "ML_DSA_44",
        MlDsa65 => "ML_DSA_65",
        MlDsa87 => "ML_DSA_87",
        EccNistEdwards25519 => "ECC_NIST_EDWARDS25519",
    }
);

wire_enum!(
    /// `KeyUsage`.
    KeyUsage {
        SignVerify => "SIGN_VERIFY",
        EncryptDecrypt => "ENCRYPT_DECRYPT",
        GenerateVerifyMac => "GENERATE_VERIFY_MAC",
        KeyAgreement => "KEY_AGREEMENT",
    }
);

wire_enum!(
    /// `KeyState`.
    KeyState {
        Creating => "Creating",
        Enabled => "Enabled",
        Disabled => "Disabled",
        PendingDeletion => "PendingDeletion",
        PendingImport => "PendingImport",
        PendingReplicaDeletion => "PendingReplicaDeletion",
        Unavailable => "Unavailable",
        Updating => "Updating",
    }
);

wire_enum!(
    /// `Origin`: where the key material comes from.
    Origin {
        AwsKms => "AWS_KMS",
        External => "EXTERNAL",
        AwsCloudhsm => "AWS_CLOUDHSM",
        ExternalKeyStore => "EXTERNAL_KEY_STORE",
    }
);

wire_enum!(
    /// `DataKeySpec` of GenerateDataKey.
    DataKeySpec {
        Aes256 => "AES_256",
        Aes128 => "AES_128",
    }
);

wire_enum!(
    /// `RotationType` in ListKeyRotations.
    RotationType {
        Automatic => "AUTOMATIC",
        OnDemand => "ON_DEMAND",
    }
);

wire_enum!(
    /// `AlgorithmSpec` of GetParametersForImport: how the caller wraps imported material.
    WrappingAlgorithm {
        RsaesPkcs1V15 => "RSAES_PKCS1_V1_5",
        RsaesOaepSha1 => "RSAES_OAEP_SHA_1",
        RsaesOaepSha256 => "RSAES_OAEP_SHA_256",
        RsaAesKeyWrapSha1 => "RSA_AES_KEY_WRAP_SHA_1",
        RsaAesKeyWrapSha256 => "RSA_AES_KEY_WRAP_SHA_256",
        Sm2Pke => "SM2PKE",
    }
);

wire_enum!(
    /// `WrappingKeySpec` of GetParametersForImport.
    WrappingKeySpec {
        Rsa2048 => "RSA_2048",
        Rsa3072 => "RSA_3072",
        Rsa4096 => "RSA_4096",
        Sm2 => "SM2",
    }
);

wire_enum!(
    /// `ExpirationModelType` of imported key material.
    ExpirationModel {
        KeyMaterialExpires => "KEY_MATERIAL_EXPIRES",
        KeyMaterialDoesNotExpire => "KEY_MATERIAL_DOES_NOT_EXPIRE",
    }
);

wire_enum!(
    /// `ImportType` of ImportKeyMaterial.
    ImportType {
        NewKeyMaterial => "NEW_KEY_MATERIAL",
        ExistingKeyMaterial => "EXISTING_KEY_MATERIAL",
    }
);

wire_enum!(
    /// `ImportState` of one imported key material.
    ImportState {
        Imported => "IMPORTED",
        PendingImport => "PENDING_IMPORT",
    }
);

wire_enum!(
    /// `KeyMaterialState` in ListKeyRotations.
    KeyMaterialState {
        NonCurrent => "NON_CURRENT",
        Current => "CURRENT",
        PendingRotation => "PENDING_ROTATION",
        PendingMultiRegionImportAndRotation => "PENDING_MULTI_REGION_IMPORT_AND_ROTATION",
    }
);

wire_enum!(
    /// `IncludeKeyMaterial` of ListKeyRotations.
    IncludeKeyMaterial {
        AllKeyMaterial => "ALL_KEY_MATERIAL",
        RotationsOnly => "ROTATIONS_ONLY",
    }
);

impl WrappingKeySpec {
    /// The RSA modulus length in bytes (`None` for SM2).
    pub fn modulus_len(self) -> Option<usize> {
        match self {
            WrappingKeySpec::Rsa2048 => Some(256),
            WrappingKeySpec::Rsa3072 => Some(384),
            WrappingKeySpec::Rsa4096 => Some(512),
            WrappingKeySpec::Sm2 => None,
        }
    }

    /// The key spec of the wrapping key pair (`None` for SM2).
    pub fn key_spec(self) -> Option<KeySpec> {
        match self {
            WrappingKeySpec::Rsa2048 => Some(KeySpec::Rsa2048),
            WrappingKeySpec::Rsa3072 => Some(KeySpec::Rsa3072),
            WrappingKeySpec::Rsa4096 => Some(KeySpec::Rsa4096),
            WrappingKeySpec::Sm2 => None,
        }
    }
}

impl WrappingAlgorithm {
    /// The OAEP hash (and MGF1 hash) of an RSA wrapping algorithm.
    pub fn oaep_hash(self) -> Option<crate::model::HashAlg> {
        use crate::model::HashAlg;
        match self {
            WrappingAlgorithm::RsaesOaepSha1 | WrappingAlgorithm::RsaAesKeyWrapSha1 => {
                Some(HashAlg::Sha1)
            }
            WrappingAlgorithm::RsaesOaepSha256 | WrappingAlgorithm::RsaAesKeyWrapSha256 => {
                Some(HashAlg::Sha256)
            }
            _ => None,
        }
    }

    /// `RSA_AES_KEY_WRAP_*`: an RSA-OAEP-wrapped AES key, then AES-KWP of the material.
    pub fn is_hybrid(self) -> bool {
        matches!(
            self,
            WrappingAlgorithm::RsaAesKeyWrapSha1 | WrappingAlgorithm::RsaAesKeyWrapSha256
        )
    }
}

impl DataKeySpec {
    pub fn byte_len(self) -> usize {
        match self {
            DataKeySpec::Aes256 => 32,
            DataKeySpec::Aes128 => 16,
        }
    }
}

/// A KMS key as the metadata store keeps it (tags, aliases and material live beside it).
#[derive(Debug, Clone, PartialEq)]
pub struct KeyRecord {
    pub key_id: KeyId,
    pub account: String,
    pub region: String,
    pub arn: String,
    pub description: String,
    pub key_spec: KeySpec,
    pub key_usage: KeyUsage,
    pub origin: Origin,
    pub state: KeyState,
    pub creation_date: DateTime<Utc>,
    pub deletion_date: Option<DateTime<Utc>>,
    pub pending_window_days: Option<i64>,
    /// The key policy document (the only policy name is `default`).
    pub policy: String,
    pub rotation_enabled: bool,
    pub rotation_period_days: Option<i64>,
    pub next_rotation_date: Option<DateTime<Utc>>,
    /// The newest key material version (encryptions use it).
    pub current_material: u32,
    /// Optimistic-concurrency version of this row.
    pub row_version: i64,
    /// The custom key store holding the key material, if any.
    pub custom_key_store_id: Option<String>,
    /// The external key of a key in an external key store (`XksKeyId`).
    pub xks_key_id: Option<String>,
    /// Asymmetric keys: the public key as DER SubjectPublicKeyInfo, made at creation and never
    /// changed (host-side Verify and RSA Encrypt use it; GetPublicKey returns it).
    pub public_key: Option<Vec<u8>>,
    /// Multi-Region keys: the region of the primary key of the set (the same in every related
    /// key's row; `None` for a single-Region key).
    pub mrk_primary_region: Option<String>,
    /// Not stored: set when the key's custom key store is not connected.
    pub unavailable: bool,
}

impl KeyRecord {
    /// The key state as the API reports it: keys of a disconnected custom key store are
    /// `Unavailable` unless they are pending deletion; they return to their stored state when
    /// the store reconnects.
    pub fn effective_state(&self) -> KeyState {
        match self.state {
            KeyState::Enabled | KeyState::Disabled if self.unavailable => KeyState::Unavailable,
            s => s,
        }
    }
}

wire_enum!(
    /// `ConnectionStateType` of a custom key store.
    ConnectionState {
        Connected => "CONNECTED",
        Connecting => "CONNECTING",
        Failed => "FAILED",
        Disconnected => "DISCONNECTED",
        Disconnecting => "DISCONNECTING",
    }
);

wire_enum!(
    /// `CustomKeyStoreType`.
    CustomKeyStoreType {
        AwsCloudhsm => "AWS_CLOUDHSM",
        ExternalKeyStore => "EXTERNAL_KEY_STORE",
    }
);

/// A custom key store as stored. Secrets (the `kmsuser` password) are kept only encrypted
/// under the root.
#[derive(Clone, PartialEq)]
pub struct CustomKeyStoreRecord {
    pub id: String,
    pub account: String,
    pub region: String,
    pub name: String,
    pub store_type: CustomKeyStoreType,
    pub cluster_id: Option<String>,
    pub trust_anchor: Option<String>,
    /// The `kmsuser` password, encrypted under the root (see `service::secrets`).
    pub password_encrypted: Vec<u8>,
    pub connection_state: ConnectionState,
    pub connection_error: Option<String>,
    pub creation_date: DateTime<Utc>,
    pub row_version: i64,
    /// External key stores: where the proxy is (the secret is in `password_encrypted`).
    pub xks: Option<XksProxySettings>,
}

/// The proxy settings of an external key store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct XksProxySettings {
    /// `https://host[:port]`.
    pub uri_endpoint: String,
    /// `[/prefix]/kms/xks/v1`.
    pub uri_path: String,
    /// `PUBLIC_ENDPOINT` or `VPC_ENDPOINT_SERVICE`.
    pub connectivity: String,
    pub vpc_endpoint_service_name: Option<String>,
    pub access_key_id: String,
    /// When the current credential was associated with the store (create or update).
    pub credential_date: Option<DateTime<Utc>>,
}

impl std::fmt::Debug for CustomKeyStoreRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CustomKeyStoreRecord")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("cluster_id", &self.cluster_id)
            .field("connection_state", &self.connection_state)
            .finish()
    }
}

/// One version of key material, wrapped by the root backend.
#[derive(Clone, PartialEq)]
pub struct MaterialRecord {
    pub key_id: KeyId,
    pub version: u32,
    /// The material wrapped under the root; never plaintext.
    pub wrapped: Vec<u8>,
    pub created: DateTime<Utc>,
    /// How this version came to be (None for the initial material).
    pub rotation_type: Option<RotationType>,
    /// `KeyMaterialId` (64 lowercase hex): random for generated material, derived from the key
    /// id and the material's fingerprint for imported material; `None` while an EXTERNAL key
    /// has never received material.
    pub material_id: Option<String>,
    /// EXTERNAL keys: the import's state, expiration and description.
    pub import: Option<ImportInfo>,
}

/// What an import said about one imported key material.
#[derive(Debug, Clone, PartialEq)]
pub struct ImportInfo {
    pub state: ImportState,
    pub expiration_model: ExpirationModel,
    /// Set with `KEY_MATERIAL_EXPIRES`.
    pub valid_to: Option<DateTime<Utc>>,
    pub description: Option<String>,
}

impl std::fmt::Debug for MaterialRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MaterialRecord")
            .field("key_id", &self.key_id)
            .field("version", &self.version)
            .field("wrapped_len", &self.wrapped.len())
            .field("material_id", &self.material_id)
            .field("import", &self.import)
            .finish()
    }
}

/// The key material fields of a key's metadata (`KeyMetadata`): the current material's id
/// (symmetric keys of origin `AWS_KMS` or `EXTERNAL`), the expiration model of the current
/// import, and the earliest `ValidTo` of any permanently associated imported material.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MaterialSummary {
    pub current_material_id: Option<String>,
    pub expiration_model: Option<ExpirationModel>,
    pub valid_to: Option<DateTime<Utc>>,
}

/// Which material rows a key's [`MaterialSummary`] is made of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SummaryInput {
    /// None: the summary is empty.
    Nothing,
    /// The current version only (symmetric `AWS_KMS` keys).
    Current,
    /// Every version (`EXTERNAL` keys).
    All,
}

impl MaterialSummary {
    /// The material rows `key`'s summary needs.
    pub fn input(key: &KeyRecord) -> SummaryInput {
        match key.origin {
            Origin::AwsKms if key.key_spec == KeySpec::SymmetricDefault => SummaryInput::Current,
            Origin::External => SummaryInput::All,
            _ => SummaryInput::Nothing,
        }
    }

    /// The summary of `key` with its material rows (those [`Self::input`] names; others are
    /// ignored). Versions above the current one (imported for a rotation) do not count.
    pub fn of<'a>(
        key: &KeyRecord,
        materials: impl IntoIterator<Item = &'a MaterialRecord>,
    ) -> Self {
        let mut out = MaterialSummary::default();
        let symmetric = key.key_spec == KeySpec::SymmetricDefault;
        let input = Self::input(key);
        for m in materials {
            if input == SummaryInput::Nothing || m.version > key.current_material {
                continue;
            }
            if input == SummaryInput::Current {
                if m.version == key.current_material {
                    out.current_material_id = m.material_id.clone();
                }
                continue;
            }
            let Some(import) = &m.import else { continue };
            if m.version == key.current_material {
                if symmetric {
                    out.current_material_id = m.material_id.clone();
                }
                if m.material_id.is_some() {
                    out.expiration_model = Some(import.expiration_model);
                }
            }
            if import.state == ImportState::Imported {
                if let Some(v) = import.valid_to {
                    out.valid_to = Some(out.valid_to.map_or(v, |o| o.min(v)));
                }
            }
        }
        out
    }
}

/// An alias as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct AliasRecord {
    pub account: String,
    pub region: String,
    pub name: String,
    pub target_key_id: KeyId,
    pub creation_date: DateTime<Utc>,
    pub last_updated_date: DateTime<Utc>,
}

/// A resource tag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tag {
    pub key: String,
    pub value: String,
}

wire_enum!(
    /// `EncryptionAlgorithmSpec`.
    EncryptionAlgorithm {
        SymmetricDefault => "SYMMETRIC_DEFAULT",
        RsaesOaepSha1 => "RSAES_OAEP_SHA_1",
        RsaesOaepSha256 => "RSAES_OAEP_SHA_256",
        Sm2Pke => "SM2PKE",
    }
);

wire_enum!(
    /// `SigningAlgorithmSpec`.
    SigningAlgorithm {
        RsassaPssSha256 => "RSASSA_PSS_SHA_256",
        RsassaPssSha384 => "RSASSA_PSS_SHA_384",
        RsassaPssSha512 => "RSASSA_PSS_SHA_512",
        RsassaPkcs1V15Sha256 => "RSASSA_PKCS1_V1_5_SHA_256",
        RsassaPkcs1V15Sha384 => "RSASSA_PKCS1_V1_5_SHA_384",
        RsassaPkcs1V15Sha512 => "RSASSA_PKCS1_V1_5_SHA_512",
        EcdsaSha256 => "ECDSA_SHA_256",
        EcdsaSha384 => "ECDSA_SHA_384",
        EcdsaSha512 => "ECDSA_SHA_512",
        Sm2Dsa => "SM2DSA",
        MlDsaShake256 => "ML_DSA_SHAKE_256",
        Ed25519Sha512 => "ED25519_SHA_512",
        Ed25519PhSha512 => "ED25519_PH_SHA_512",
    }
);

wire_enum!(
    /// `MacAlgorithmSpec`.
    MacAlgorithm {
        HmacSha224 => "HMAC_SHA_224",
        HmacSha256 => "HMAC_SHA_256",
        HmacSha384 => "HMAC_SHA_384",
        HmacSha512 => "HMAC_SHA_512",
    }
);

wire_enum!(
    /// `KeyAgreementAlgorithmSpec`.
    KeyAgreementAlgorithm {
        Ecdh => "ECDH",
    }
);

wire_enum!(
    /// `MessageType` of Sign and Verify.
    MessageType {
        Raw => "RAW",
        Digest => "DIGEST",
        ExternalMu => "EXTERNAL_MU",
    }
);

wire_enum!(
    /// `DataKeyPairSpec` of GenerateDataKeyPair(WithoutPlaintext).
    DataKeyPairSpec {
        Rsa2048 => "RSA_2048",
        Rsa3072 => "RSA_3072",
        Rsa4096 => "RSA_4096",
        EccNistP256 => "ECC_NIST_P256",
        EccNistP384 => "ECC_NIST_P384",
        EccNistP521 => "ECC_NIST_P521",
        EccSecgP256k1 => "ECC_SECG_P256K1",
        Sm2 => "SM2",
        EccNistEdwards25519 => "ECC_NIST_EDWARDS25519",
    }
);

//! Domain types shared by every layer: key identifiers, key specs, usages, states, origins and
//! the key record as the metadata store holds it. No I/O and no HTTP types live here.

mod grant;
mod ids;
mod key;
mod spec;

pub use grant::{GrantConstraints, GrantRecord};
pub use ids::{
    hex, is_material_id, random_material_id, AliasName, KeyArn, KeyId, KeyRef, KeyRefError,
    Principal,
};
pub use key::{
    AliasRecord, ConnectionState, CustomKeyStoreRecord, CustomKeyStoreType, DataKeyPairSpec,
    DataKeySpec, EncryptionAlgorithm, KeyAgreementAlgorithm, KeyRecord, KeySpec, KeyState,
    KeyUsage, MacAlgorithm, MaterialRecord, MaterialSummary, MessageType, Origin, RotationType,
    SigningAlgorithm, SummaryInput, Tag, XksProxySettings,
};
pub use key::{
    ExpirationModel, ImportInfo, ImportState, ImportType, IncludeKeyMaterial, KeyMaterialState,
    WrappingAlgorithm, WrappingKeySpec,
};
pub use spec::{HashAlg, KeyAlgorithms, KeyFamily};

/// Seconds since the Unix epoch with millisecond precision, the way KMS renders timestamps
/// (`1502910355.475`).
pub fn epoch_seconds(t: chrono::DateTime<chrono::Utc>) -> f64 {
    t.timestamp_millis() as f64 / 1000.0
}

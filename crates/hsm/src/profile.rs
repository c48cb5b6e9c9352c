//! Vendor profiles: what differs between HSMs (module path, error-code quirks, replication,
//! session limits, IV generation, required mechanisms). One TOML file per vendor in
//! `hsm-config/profiles/`; the files are compiled in and can be overridden by path.

use std::path::Path;

use serde::Deserialize;

/// A vendor profile.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VendorProfile {
    pub name: String,
    pub vendor: String,
    pub default_module: String,
    /// CKR names that mean "GCM tag did not verify" on decryption.
    pub gcm_auth_failure_rv: Vec<String>,
    /// True when the vendor library replicates keys between cluster members itself.
    pub replicates_keys: bool,
    /// Sessions per token the driver opens at most.
    pub max_sessions: usize,
    /// True when the token accepts caller-supplied GCM IVs.
    pub host_generated_iv: bool,
    /// Mechanism names (`CKM_AES_GCM`) that must be present.
    pub required_mechanisms: Vec<String>,
    /// True when the module computes in this process (no device or network round trips): the
    /// server then runs at most one HSM thread per CPU core (more threads only contend).
    /// PKCS#11 calls still never run on the async workers.
    #[serde(default)]
    pub in_process: bool,
    /// CKA_PRIVATE of the session objects the PKCS#11 root unwraps key material into (they
    /// are always sensitive and non-extractable, and session objects are visible to this
    /// process only). `false` is for modules that re-decrypt a private object's value on every
    /// operation (SoftHSM: half of its C_EncryptInit cost); token objects are always private.
    #[serde(default = "yes")]
    pub private_session_keys: bool,
    /// True when the module's object store is not safe for concurrent use within a process:
    /// the driver then runs token-object writes (create, generate, unwrap, destroy) one at a
    /// time and never alongside an object search. SoftHSM 2.6 fails C_GenerateKey with
    /// CKR_GENERAL_ERROR when another thread writes or searches token objects at that moment,
    /// and a search beside a write can miss objects that exist.
    #[serde(default)]
    pub serialize_object_store: bool,
    /// True when the token decrypts RSAES-OAEP with SHA-256 (CKM_RSA_PKCS_OAEP with
    /// CKM_SHA256 / CKG_MGF1_SHA256). False for tokens that refuse it (SoftHSM 2.6.1 accepts
    /// only SHA-1): the KMS then decrypts with raw RSA (CKM_RSA_X_509) in the token and
    /// decodes OAEP on the host, the private key staying in the token either way.
    #[serde(default = "yes")]
    pub oaep_sha256_in_token: bool,
}

fn yes() -> bool {
    true
}

impl Default for VendorProfile {
    fn default() -> Self {
        VendorProfile {
            name: "generic".into(),
            vendor: "unknown".into(),
            default_module: String::new(),
            gcm_auth_failure_rv: vec![
                "CKR_ENCRYPTED_DATA_INVALID".into(),
                "CKR_ENCRYPTED_DATA_LEN_RANGE".into(),
            ],
            replicates_keys: false,
            max_sessions: 8,
            host_generated_iv: true,
            required_mechanisms: vec![
                "CKM_AES_KEY_GEN".into(),
                "CKM_AES_GCM".into(),
                "CKM_AES_KEY_WRAP_PAD".into(),
            ],
            in_process: false,
            private_session_keys: true,
            serialize_object_store: false,
            oaep_sha256_in_token: true,
        }
    }
}

const BUILTIN: &[(&str, &str)] = &[
    (
        "softhsm2",
        include_str!("../../../hsm-config/profiles/softhsm2.toml"),
    ),
    (
        "thales-luna",
        include_str!("../../../hsm-config/profiles/thales-luna.toml"),
    ),
    (
        "entrust-nshield",
        include_str!("../../../hsm-config/profiles/entrust-nshield.toml"),
    ),
    (
        "aws-cloudhsm",
        include_str!("../../../hsm-config/profiles/aws-cloudhsm.toml"),
    ),
    (
        "yubihsm2",
        include_str!("../../../hsm-config/profiles/yubihsm2.toml"),
    ),
];

impl VendorProfile {
    /// A compiled-in profile by name.
    pub fn builtin(name: &str) -> Option<VendorProfile> {
        BUILTIN
            .iter()
            .find(|(n, _)| *n == name)
            .and_then(|(_, text)| toml::from_str(text).ok())
    }

    /// Names of the compiled-in profiles.
    pub fn builtin_names() -> Vec<&'static str> {
        BUILTIN.iter().map(|(n, _)| *n).collect()
    }

    /// A profile by built-in name or from a TOML file path.
    pub fn load(name_or_path: &str) -> Result<VendorProfile, String> {
        if let Some(p) = Self::builtin(name_or_path) {
            return Ok(p);
        }
        let path = Path::new(name_or_path);
        if path.is_file() {
            let text =
                std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
            return toml::from_str(&text)
                .map_err(|e| format!("{}: {}", path.display(), e.message()));
        }
        Err(format!(
            "unknown HSM profile '{name_or_path}' (built in: {}; or a path to a profile file)",
            Self::builtin_names().join(", ")
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_builtin_profile_parses() {
        for name in VendorProfile::builtin_names() {
            let p = VendorProfile::builtin(name);
            assert!(p.is_some(), "{name}");
            assert_eq!(p.map(|p| p.name), Some(name.to_string()));
        }
    }
}

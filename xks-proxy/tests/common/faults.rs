//! HSMs reached through the fault-injection module (softhsm/fault-module/), which forwards to
//! SoftHSM and fails (or generates GCM IVs) per token label as marker files say.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use super::{softhsm_dir, MODULE, PIN};

#[path = "../../../tests/common/fault_module.rs"]
mod fault_module;

/// The fault markers' directory; set before the fault module is first loaded.
pub fn fault_dir() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = softhsm_dir().join("faults");
        std::fs::create_dir_all(&dir).unwrap();
        std::env::set_var("KMS_FAULT_DIR", &dir);
        dir
    })
}

/// Builds the fault module once and returns its path.
pub fn fault_module() -> String {
    fault_dir();
    let out = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("xks-fault-module")
        .join("libkmsfault.so");
    fault_module::build(&Path::new(env!("CARGO_MANIFEST_DIR")).join(".."), &out);
    out.display().to_string()
}

/// Sets the marker `<token>.<kind>` (`fail`, `removed`, `token-iv`, ...).
pub fn mark(token: &str, kind: &str) {
    std::fs::write(fault_dir().join(format!("{token}.{kind}")), b"").unwrap();
}

/// Removes the `fail` and `removed` markers of a token.
pub fn clear(token: &str) {
    for kind in ["fail", "removed"] {
        let _ = std::fs::remove_file(fault_dir().join(format!("{token}.{kind}")));
    }
}

/// The GCM IVs (hex, one a line) the module generated on a token with the `token-iv` marker.
pub fn token_ivs(token: &str) -> Vec<String> {
    std::fs::read_to_string(fault_dir().join(format!("{token}.token-ivs")))
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

/// Imports an AES-256 key with the given value as a private, sensitive, non-extractable token
/// object (as an operator replicates a key between HSMs).
pub fn import_key(token_label: &str, label: &str, value: &[u8; 32]) {
    use cryptoki::object::{Attribute, KeyType, ObjectClass};
    use cryptoki::session::UserType;
    let profile = hsm::VendorProfile::builtin("softhsm2").unwrap();
    let ctx = hsm::module::load(Path::new(MODULE)).unwrap();
    let slot = hsm::token::find_slot(&ctx, token_label, &profile).unwrap();
    let s = ctx.open_rw_session(slot).unwrap();
    match s.login(UserType::User, Some(&PIN.to_string().into())) {
        Ok(())
        | Err(cryptoki::error::Error::Pkcs11(cryptoki::error::RvError::UserAlreadyLoggedIn, _)) => {
        }
        Err(e) => panic!("login: {e}"),
    }
    let _exclusive = hsm::module::object_store_lock().write();
    s.create_object(&[
        Attribute::Class(ObjectClass::SECRET_KEY),
        Attribute::KeyType(KeyType::AES),
        Attribute::Value(value.to_vec()),
        Attribute::Token(true),
        Attribute::Private(true),
        Attribute::Sensitive(true),
        Attribute::Extractable(false),
        Attribute::Encrypt(true),
        Attribute::Decrypt(true),
        Attribute::Label(label.as_bytes().to_vec()),
    ])
    .unwrap();
}

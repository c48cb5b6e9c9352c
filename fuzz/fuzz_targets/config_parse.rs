//! Configuration parsing: the KMS's TOML file (every section, identities included, and the
//! identity reload path), the XKS proxy's TOML file, and PKCS#11 vendor profiles. Every input
//! is either a configuration or a list of problems; nothing may panic.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;

fn dir() -> &'static tempfile::TempDir {
    static D: OnceLock<tempfile::TempDir> = OnceLock::new();
    D.get_or_init(|| tempfile::tempdir().unwrap())
}

fuzz_target!(|data: &[u8]| {
    let Some((&which, rest)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    match which % 3 {
        0 => {
            let path = dir().path().join("kms.toml");
            std::fs::write(&path, text).unwrap();
            if let Err(e) = kms::config::load(Some(&path), std::iter::empty()) {
                assert!(!e.to_string().is_empty());
            }
            let _ = kms::config::load_iam(Some(&path), &Default::default());
        }
        1 => {
            if let Err(e) = xks_proxy::config::parse(text, dir().path(), "fuzz.toml") {
                assert!(!e.to_string().is_empty());
            }
        }
        _ => {
            let _ = toml::from_str::<hsm::VendorProfile>(text);
        }
    }
});

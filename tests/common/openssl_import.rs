//! Key material made and wrapped with the OpenSSL command line, as AWS's documentation shows
//! for imports (`openssl pkeyutl` with OAEP; `openssl enc -id-aes256-wrap-pad` for
//! RSA_AES_KEY_WRAP): shared by the import tests of both roots.

use std::path::Path;
use std::process::Command;

pub fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl runs");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

pub fn sh(dir: &Path, script: &str) {
    let out = Command::new("sh")
        .arg("-c")
        .arg(script)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{script}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Key material as a user makes it with OpenSSL, in `dir/M.bin` (returned too).
pub fn make_material(dir: &Path, spec: &str) -> Vec<u8> {
    match spec {
        "SYMMETRIC_DEFAULT" => openssl(dir, &["rand", "-out", "M.bin", "32"]),
        "HMAC_224" => openssl(dir, &["rand", "-out", "M.bin", "28"]),
        "HMAC_256" => openssl(dir, &["rand", "-out", "M.bin", "32"]),
        "HMAC_384" => openssl(dir, &["rand", "-out", "M.bin", "48"]),
        "HMAC_512" => openssl(dir, &["rand", "-out", "M.bin", "64"]),
        "RSA_2048" | "RSA_3072" | "RSA_4096" => {
            let bits = &spec[4..];
            sh(
                dir,
                &format!(
                    "openssl genpkey -algorithm rsa -pkeyopt rsa_keygen_bits:{bits} \
                     | openssl pkcs8 -topk8 -outform der -nocrypt > M.bin"
                ),
            )
        }
        "ECC_NIST_P256" | "ECC_NIST_P384" | "ECC_NIST_P521" => {
            let curve = match spec {
                "ECC_NIST_P256" => "P-256",
                "ECC_NIST_P384" => "P-384",
                _ => "P-521",
            };
            sh(
                dir,
                &format!(
                    "openssl genpkey -algorithm ec -pkeyopt ec_paramgen_curve:{curve} \
                     | openssl pkcs8 -topk8 -outform der -nocrypt > M.bin"
                ),
            )
        }
        "ECC_SECG_P256K1" => sh(
            dir,
            "openssl genpkey -algorithm ec -pkeyopt ec_paramgen_curve:secp256k1 \
             | openssl pkcs8 -topk8 -outform der -nocrypt > M.bin",
        ),
        other => panic!("no material recipe for {other}"),
    }
    std::fs::read(dir.join("M.bin")).unwrap()
}

/// The public key (DER SPKI) of the PKCS#8 material in `dir/M.bin`.
pub fn public_of_material(dir: &Path) -> Vec<u8> {
    openssl(
        dir,
        &[
            "pkey", "-inform", "DER", "-in", "M.bin", "-pubout", "-outform", "DER", "-out", "P.der",
        ],
    );
    std::fs::read(dir.join("P.der")).unwrap()
}

/// Wraps `material` with the wrapping public key as AWS's documentation shows.
pub fn wrap(dir: &Path, public_key: &[u8], alg: &str, material: &[u8]) -> Vec<u8> {
    std::fs::write(dir.join("WrappingPublicKey.der"), public_key).unwrap();
    std::fs::write(dir.join("W.in"), material).unwrap();
    let md = if alg.ends_with("SHA_256") {
        "sha256"
    } else {
        "sha1"
    };
    let oaep = |input: &str, output: &str| {
        let md_opt = format!("rsa_oaep_md:{md}");
        let mgf_opt = format!("rsa_mgf1_md:{md}");
        openssl(
            dir,
            &[
                "pkeyutl",
                "-encrypt",
                "-in",
                input,
                "-out",
                output,
                "-inkey",
                "WrappingPublicKey.der",
                "-keyform",
                "DER",
                "-pubin",
                "-pkeyopt",
                "rsa_padding_mode:oaep",
                "-pkeyopt",
                &md_opt,
                "-pkeyopt",
                &mgf_opt,
            ],
        )
    };
    if alg.starts_with("RSA_AES_KEY_WRAP") {
        openssl(dir, &["rand", "-out", "K.bin", "32"]);
        let k = std::fs::read(dir.join("K.bin")).unwrap();
        let hex: String = k.iter().map(|b| format!("{b:02x}")).collect();
        openssl(
            dir,
            &[
                "enc",
                "-id-aes256-wrap-pad",
                "-K",
                &hex,
                "-iv",
                "A65959A6",
                "-in",
                "W.in",
                "-out",
                "W2.bin",
            ],
        );
        oaep("K.bin", "W1.bin");
        let mut out = std::fs::read(dir.join("W1.bin")).unwrap();
        out.extend(std::fs::read(dir.join("W2.bin")).unwrap());
        out
    } else {
        oaep("W.in", "W.bin");
        std::fs::read(dir.join("W.bin")).unwrap()
    }
}

/// GetParametersForImport, `material` wrapped by OpenSSL under the answered public key, then
/// ImportKeyMaterial (never expiring); the KeyMaterialId, or the failing call's (code, message).
pub async fn import_with_sdk(
    kms: &aws_sdk_kms::Client,
    dir: &Path,
    key: &str,
    alg: aws_sdk_kms::types::AlgorithmSpec,
    wrapping: aws_sdk_kms::types::WrappingKeySpec,
    material: &[u8],
) -> Result<String, (String, String)> {
    let p = kms
        .get_parameters_for_import()
        .key_id(key)
        .wrapping_algorithm(alg.clone())
        .wrapping_key_spec(wrapping)
        .send()
        .await
        .map_err(|e| (super::code(&e), super::message(&e)))?;
    let wrapped = wrap(
        dir,
        p.public_key().unwrap().as_ref(),
        alg.as_str(),
        material,
    );
    kms.import_key_material()
        .key_id(key)
        .import_token(p.import_token().unwrap().clone())
        .encrypted_key_material(aws_sdk_kms::primitives::Blob::new(wrapped))
        .expiration_model(aws_sdk_kms::types::ExpirationModelType::KeyMaterialDoesNotExpire)
        .send()
        .await
        .map(|o| o.key_material_id().unwrap().to_string())
        .map_err(|e| (super::code(&e), super::message(&e)))
}

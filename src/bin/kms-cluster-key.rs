//! `kms-cluster-key`: the operator's tool that puts the same AES-256 cluster key on every member
//! of a CloudHSM-style cluster (what an HSM vendor's cloning or security-world join does),
//! with the attributes the KMS expects: a private, sensitive, non-extractable token object that
//! can wrap and unwrap and nothing else. (`pkcs11-tool --write-object ... --usage-wrap` leaves
//! CKA_ENCRYPT and CKA_DECRYPT on, which would let anyone with the crypto user's PIN decrypt
//! the key blobs wrapped under it with a plain C_Decrypt.)
//!
//! ```text
//! kms-cluster-key --token-label kms-cluster-a --pin-file user.pin --key-file key.bin
//! ```
//!
//! The key file holds the 32 key bytes; the caller creates it (e.g. from /dev/urandom) and
//! shreds it afterwards. Nothing secret is printed. Exit status: 0 when the key is on the token
//! (created now or already there), 1 on any failure.

#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use cryptoki::object::{Attribute, KeyType, ObjectClass};
use cryptoki::session::UserType;
use secrecy::{ExposeSecret, SecretString};
use zeroize::Zeroizing;

#[derive(Parser)]
#[command(
    name = "kms-cluster-key",
    version,
    about = "Provision a cluster key on one HSM cluster member"
)]
struct Args {
    /// PKCS#11 module.
    #[arg(long, default_value = "/usr/lib/softhsm/libsofthsm2.so")]
    module: PathBuf,
    /// Label of the member's token.
    #[arg(long)]
    token_label: String,
    /// File whose first line is the crypto user's PIN.
    #[arg(long)]
    pin_file: PathBuf,
    /// File with the 32 bytes of the cluster key.
    #[arg(long)]
    key_file: PathBuf,
    /// CKA_LABEL of the cluster key (`[[clusters]] cluster_key_label`).
    #[arg(long, default_value = "kms-cluster-key")]
    label: String,
}

fn run(args: &Args) -> Result<&'static str, String> {
    let pin = std::fs::read_to_string(&args.pin_file)
        .map_err(|e| format!("{}: {e}", args.pin_file.display()))?;
    let pin = SecretString::from(pin.lines().next().unwrap_or_default().to_string());
    let value = Zeroizing::new(
        std::fs::read(&args.key_file).map_err(|e| format!("{}: {e}", args.key_file.display()))?,
    );
    if value.len() != 32 {
        return Err(format!(
            "{}: a cluster key is 32 bytes, the file has {}",
            args.key_file.display(),
            value.len()
        ));
    }
    let profile = hsm::VendorProfile::default();
    let ctx = hsm::module::load(&args.module).map_err(|e| e.to_string())?;
    let slot =
        hsm::token::find_slot(&ctx, &args.token_label, &profile).map_err(|e| e.to_string())?;
    let session = ctx.open_rw_session(slot).map_err(|e| e.to_string())?;
    session
        .login(
            UserType::User,
            Some(&pin.expose_secret().to_string().into()),
        )
        .map_err(|e| format!("login to '{}': {e}", args.token_label))?;
    let existing = session
        .find_objects(&[
            Attribute::Class(ObjectClass::SECRET_KEY),
            Attribute::Label(args.label.as_bytes().to_vec()),
        ])
        .map_err(|e| e.to_string())?;
    if !existing.is_empty() {
        return Ok("already present");
    }
    session
        .create_object(&[
            Attribute::Class(ObjectClass::SECRET_KEY),
            Attribute::KeyType(KeyType::AES),
            Attribute::Token(true),
            Attribute::Private(true),
            Attribute::Sensitive(true),
            Attribute::Extractable(false),
            Attribute::Wrap(true),
            Attribute::Unwrap(true),
            Attribute::Encrypt(false),
            Attribute::Decrypt(false),
            Attribute::Sign(false),
            Attribute::Verify(false),
            Attribute::Derive(false),
            Attribute::Label(args.label.as_bytes().to_vec()),
            Attribute::Value(value.to_vec()),
        ])
        .map_err(|e| format!("creating the cluster key: {e}"))?;
    Ok("provisioned")
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(what) => {
            println!("cluster key {what} on {}", args.token_label);
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("kms-cluster-key: {e}");
            ExitCode::from(1)
        }
    }
}

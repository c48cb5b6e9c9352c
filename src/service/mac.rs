//! HMAC: GenerateMac and VerifyMac (reference key-types.md §2.5).
//!
//! Owns the rules of these operations: GENERATE_VERIFY_MAC keys only, the key's one
//! `MacAlgorithm`, the MAC computed in the key's backend (the secret never leaves it), and
//! verification by recomputing and comparing in constant time. A mismatch is
//! `KMSInvalidMacException`, never `MacValid: false`. HMAC keys take no encryption context.

use subtle::ConstantTimeEq;

use super::{part, Call, KmsError, KmsResult};
use crate::backend::MaterialId;
use crate::model::{KeyRecord, KeyUsage, MacAlgorithm};

part!(
    /// GenerateMac, VerifyMac.
    Mac
);

impl Mac {
    /// Resolves, authorizes and checks a GenerateMac or VerifyMac request.
    async fn prepare(
        &self,
        call: &mut Call,
        operation: &str,
        key_id: &str,
        algorithm: MacAlgorithm,
    ) -> KmsResult<KeyRecord> {
        let key = self.resolve(call, key_id, true).await?;
        let alg = algorithm.to_string();
        self.authorize_key(call, operation, &key, None, |ctx| {
            ctx.set("kms:MacAlgorithm", alg.as_str());
        })
        .await?;
        if key.key_usage != KeyUsage::GenerateVerifyMac {
            return Err(KmsError::InvalidKeyUsage(format!(
                "{} key usage is {} which is not valid for {operation}.",
                key.arn, key.key_usage
            )));
        }
        if !key
            .key_spec
            .algorithms(key.key_usage)
            .mac
            .contains(&algorithm)
        {
            return Err(KmsError::InvalidKeyUsage(format!(
                "Algorithm {algorithm} is incompatible with key spec {}.",
                key.key_spec
            )));
        }
        self.admit_crypto(call, &key)?;
        Ok(key)
    }

    /// The MAC of `message` under the key, in its backend.
    async fn compute(
        &self,
        key: &KeyRecord,
        algorithm: MacAlgorithm,
        message: &[u8],
    ) -> KmsResult<Vec<u8>> {
        let m = MaterialId {
            key_id: &key.key_id,
            version: key.current_material,
            label: &key.arn,
            spec: key.key_spec,
        };
        let backend = self.backend_for(key)?;
        let b = backend.as_ref();
        self.with_material(
            b,
            m,
            |e| self.backend_error(key, e),
            || b.mac(m, algorithm, message),
        )
        .await
    }

    /// GenerateMac; `dry_run` stops after every check.
    pub async fn generate_mac(
        &self,
        call: &mut Call,
        key_id: &str,
        message: &[u8],
        algorithm: MacAlgorithm,
        dry_run: bool,
    ) -> KmsResult<(KeyRecord, Vec<u8>)> {
        let key = self.prepare(call, "GenerateMac", key_id, algorithm).await?;
        if dry_run {
            return Err(KmsError::DryRunOperation);
        }
        let mac = self.compute(&key, algorithm, message).await?;
        Ok((key, mac))
    }

    /// VerifyMac: recomputes and compares in constant time.
    pub async fn verify_mac(
        &self,
        call: &mut Call,
        key_id: &str,
        message: &[u8],
        algorithm: MacAlgorithm,
        mac: &[u8],
        dry_run: bool,
    ) -> KmsResult<KeyRecord> {
        let key = self.prepare(call, "VerifyMac", key_id, algorithm).await?;
        if dry_run {
            return Err(KmsError::DryRunOperation);
        }
        let expected = self.compute(&key, algorithm, message).await?;
        // Lengths are public (the algorithm fixes them); `ct_eq` is false for unequal lengths.
        if bool::from(expected.as_slice().ct_eq(mac)) {
            Ok(key)
        } else {
            Err(KmsError::KmsInvalidMac)
        }
    }
}

//! ECDSA P-256 / SHA-256 signatures over the exact bytes of a file, DER
//! encoded: what `openssl dgst -sha256 -sign key.pem -out f.sig f` writes and
//! `openssl dgst -sha256 -verify pub.pem -signature f.sig f` checks.
//!
//! Public keys are PEM `PUBLIC KEY` (SubjectPublicKeyInfo, `openssl pkey
//! -pubout`). The device trusts every `*.pem` in its keys directory; a file
//! verifies if any trusted key verifies it, so keys rotate by shipping the next
//! key in an update before signing with it.

use std::path::Path;

use p256::ecdsa::signature::Verifier;
use p256::ecdsa::{DerSignature, VerifyingKey};
use p256::pkcs8::DecodePublicKey;

use super::BundleError;
use crate::{Error, Result};

/// Longest DER encoding of a P-256 ECDSA signature (2 x 33-byte INTEGER + headers).
pub const MAX_SIGNATURE_LEN: usize = 72;

/// One trusted public key and where it came from.
#[derive(Debug, Clone)]
pub struct PublicKey {
    /// File name (or other label) for messages.
    pub name: String,
    key: VerifyingKey,
}

impl PublicKey {
    /// Parses a PEM `PUBLIC KEY` (SPKI) holding a P-256 key.
    pub fn from_pem(name: &str, pem: &str) -> Result<PublicKey, BundleError> {
        let key = VerifyingKey::from_public_key_pem(pem.trim()).map_err(|e| BundleError::Key {
            name: name.to_owned(),
            reason: format!("not a PEM P-256 public key (SPKI): {e}"),
        })?;
        Ok(PublicKey {
            name: name.to_owned(),
            key,
        })
    }

    /// Wraps an already parsed key (the signer derives it from a private key).
    pub fn from_verifying_key(name: &str, key: VerifyingKey) -> PublicKey {
        PublicKey {
            name: name.to_owned(),
            key,
        }
    }

    /// Checks `sig` (DER) over `message`.
    pub fn verify(&self, message: &[u8], sig: &DerSignature) -> bool {
        self.key.verify(message, sig).is_ok()
    }
}

/// Parses a DER signature, refusing anything that is not exactly one.
pub fn parse_signature(bytes: &[u8]) -> Result<DerSignature, BundleError> {
    if bytes.len() > MAX_SIGNATURE_LEN {
        return Err(BundleError::Signature(format!(
            "{} bytes is too long for a DER P-256 signature (at most {MAX_SIGNATURE_LEN})",
            bytes.len()
        )));
    }
    DerSignature::try_from(bytes).map_err(|_| {
        BundleError::Signature(format!(
            "{} bytes are not a DER ECDSA P-256 signature (truncated or corrupt)",
            bytes.len()
        ))
    })
}

/// The set of keys the device trusts.
#[derive(Debug, Clone, Default)]
pub struct TrustedKeys {
    keys: Vec<PublicKey>,
}

impl TrustedKeys {
    /// A set of the given keys.
    pub fn new(keys: Vec<PublicKey>) -> TrustedKeys {
        TrustedKeys { keys }
    }

    /// Loads every `*.pem` in `dir` (sorted by name). A file that is not a
    /// P-256 public key is an error naming it: a broken key directory should
    /// be noticed, not silently trusted less.
    pub fn load_dir(dir: &Path) -> Result<TrustedKeys> {
        let entries = std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))?;
        let mut paths = Vec::new();
        for entry in entries {
            let path = entry.map_err(|e| Error::io(dir, e))?.path();
            if path.extension().is_some_and(|x| x == "pem") {
                paths.push(path);
            }
        }
        paths.sort();
        let mut keys = Vec::new();
        for path in paths {
            let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
            keys.push(PublicKey::from_pem(&path.display().to_string(), &text)?);
        }
        if keys.is_empty() {
            return Err(BundleError::Key {
                name: dir.display().to_string(),
                reason: "no trusted keys (*.pem) in the keys directory".into(),
            }
            .into());
        }
        Ok(TrustedKeys { keys })
    }

    /// The keys, in load order.
    pub fn keys(&self) -> &[PublicKey] {
        &self.keys
    }

    /// Verifies `sig` (DER bytes) over `message` with any trusted key; returns
    /// the key that verified it.
    pub fn verify(&self, message: &[u8], sig: &[u8]) -> Result<&PublicKey, BundleError> {
        let sig = parse_signature(sig)?;
        self.keys
            .iter()
            .find(|k| k.verify(message, &sig))
            .ok_or_else(|| {
                BundleError::Signature(format!(
                    "does not verify with any of the {} trusted key(s)",
                    self.keys.len()
                ))
            })
    }
}

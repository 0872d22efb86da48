//! The installer's only input: a manifest whose signature verified and
//! which this device accepts.

use crate::bundle::{self, Bundle, DeviceFacts, Digest, Manifest, TrustedKeys};
use crate::Result;

/// A manifest whose signature verified and which this device accepts
/// (product, hardware, version, security version, expiry). The only input
/// the installer takes.
#[derive(Debug, Clone)]
pub struct Approved {
    manifest: Manifest,
    digest: Digest,
    warnings: Vec<String>,
}

impl Approved {
    /// Verifies `manifest_bytes` against `sig` with `keys`, then the device
    /// policy.
    pub fn new(
        manifest_bytes: &[u8],
        sig: &[u8],
        keys: &TrustedKeys,
        facts: &DeviceFacts,
    ) -> Result<Approved> {
        let (manifest, key) = bundle::verify_manifest(manifest_bytes, sig, keys)?;
        log::info!("manifest signed by {key}");
        Approved::checked(manifest, manifest_bytes, facts)
    }

    /// Applies the device policy to an opened (signature-verified) bundle.
    pub fn from_bundle(bundle: &Bundle, facts: &DeviceFacts) -> Result<Approved> {
        Approved::checked(bundle.manifest.clone(), &bundle.manifest_bytes, facts)
    }

    fn checked(manifest: Manifest, bytes: &[u8], facts: &DeviceFacts) -> Result<Approved> {
        let warnings = bundle::check_policy(&manifest, facts)?;
        Ok(Approved {
            manifest,
            digest: Digest::of(bytes),
            warnings,
        })
    }

    /// The manifest.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// SHA-256 of the signed manifest bytes (the journal's key).
    pub fn digest(&self) -> Digest {
        self.digest
    }

    /// Policy warnings (e.g. an unset clock) to show.
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }
}

//! ECDSA P-256 / SHA-256 signatures over the exact bytes of a file, DER
//! encoded: what `openssl dgst -sha256 -sign key.pem -out f.sig f` writes and
//! `openssl dgst -sha256 -verify pub.pem -signature f.sig f` checks.
//!
//! Public keys are PEM `PUBLIC KEY` (SubjectPublicKeyInfo, `openssl pkey
//! -pubout`). The device trusts every `*.pem` in its keys directory; a file
//! verifies if any trusted key verifies it, so keys rotate by shipping the next
//! key in an update before signing with it.
//!
//! Verification is ring's (`ECDSA_P256_SHA256_ASN1`): ring is linked anyway
//! for TLS, so this costs almost nothing, where the RustCrypto `p256` stack
//! cost ~40 KB (docs/benchmarks.md "Binary size"). Keys are parsed here,
//! strictly: only id-ecPublicKey / prime256v1 with an uncompressed point on
//! the curve; an RSA, P-384 or Ed25519 key is refused naming what it is.

use std::path::Path;

use ring::signature::{UnparsedPublicKey, ECDSA_P256_SHA256_ASN1};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::SubjectPublicKeyInfoDer;

use super::error::BundleError;
use crate::{Error, Result};

/// Longest DER encoding of a P-256 ECDSA signature (2 x 33-byte INTEGER + headers).
pub const MAX_SIGNATURE_LEN: usize = 72;

/// Length of an uncompressed SEC1 P-256 point: 0x04, X, Y.
const POINT_LEN: usize = 65;

// Object identifiers (DER contents, RFC 5480 section 2.1.1 / RFC 3279 / RFC 8410).
/// id-ecPublicKey, 1.2.840.10045.2.1.
const OID_EC_PUBLIC_KEY: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
/// prime256v1 (secp256r1, NIST P-256), 1.2.840.10045.3.1.7.
const OID_P256: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
/// secp384r1, 1.3.132.0.34; secp521r1, 1.3.132.0.35 (named in messages only).
const OID_P384: &[u8] = &[0x2b, 0x81, 0x04, 0x00, 0x22];
const OID_P521: &[u8] = &[0x2b, 0x81, 0x04, 0x00, 0x23];
/// rsaEncryption, 1.2.840.113549.1.1.1; Ed25519, 1.3.101.112 (messages only).
const OID_RSA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];
const OID_ED25519: &[u8] = &[0x2b, 0x65, 0x70];

/// One trusted public key and where it came from.
#[derive(Debug, Clone)]
pub struct PublicKey {
    /// File name (or other label) for messages.
    pub name: String,
    /// The uncompressed SEC1 point, checked to be on the curve.
    point: [u8; POINT_LEN],
}

impl PublicKey {
    /// Parses a PEM `PUBLIC KEY` (SPKI) holding a P-256 key. Exactly one
    /// `PUBLIC KEY` block; other PEM blocks (a certificate, a private key)
    /// are not looked at.
    pub fn from_pem(name: &str, pem: &str) -> Result<PublicKey, BundleError> {
        let bad = |reason: String| BundleError::Key {
            name: name.to_owned(),
            reason,
        };
        let mut blocks = SubjectPublicKeyInfoDer::pem_slice_iter(pem.as_bytes());
        let der = match (blocks.next(), blocks.next()) {
            (Some(Ok(der)), None) => der,
            (Some(Ok(_)), Some(_)) => {
                return Err(bad(
                    "more than one PEM PUBLIC KEY block (one key per file)".into()
                ))
            }
            (Some(Err(e)), _) => {
                return Err(bad(format!("not a PEM P-256 public key (SPKI): {e}")))
            }
            (None, _) => {
                return Err(bad(
                    "not a PEM P-256 public key (SPKI): no PUBLIC KEY block".into(),
                ))
            }
        };
        PublicKey::from_spki_der(name, &der)
    }

    /// Parses a DER SubjectPublicKeyInfo (RFC 5480): only id-ecPublicKey on
    /// prime256v1 with an uncompressed point on the curve is accepted.
    pub fn from_spki_der(name: &str, der: &[u8]) -> Result<PublicKey, BundleError> {
        let bad = |reason: &str| BundleError::Key {
            name: name.to_owned(),
            reason: format!("not a P-256 public key: {reason}"),
        };
        let spki = der_whole(0x30, der).ok_or_else(|| bad("not a DER SubjectPublicKeyInfo"))?;
        let (algorithm, bits) =
            der_take(0x30, spki).ok_or_else(|| bad("no algorithm identifier"))?;
        let bits = der_whole(0x03, bits).ok_or_else(|| bad("no public key bit string"))?;
        let (oid, params) = der_take(0x06, algorithm).ok_or_else(|| bad("no algorithm OID"))?;
        match oid {
            OID_EC_PUBLIC_KEY => {}
            OID_RSA => return Err(bad("it is an RSA key (ECDSA P-256 keys only)")),
            OID_ED25519 => return Err(bad("it is an Ed25519 key (ECDSA P-256 keys only)")),
            _ => return Err(bad("unknown key algorithm (ECDSA P-256 keys only)")),
        }
        match der_whole(0x06, params) {
            Some(OID_P256) => {}
            Some(OID_P384) => return Err(bad("it is on curve P-384 (secp384r1)")),
            Some(OID_P521) => return Err(bad("it is on curve P-521 (secp521r1)")),
            _ => return Err(bad("not a named curve, or not prime256v1")),
        }
        let point = match bits {
            [0, point @ ..] if point.len() == POINT_LEN && point[0] == 4 => point,
            [0, 2 | 3, ..] => return Err(bad("compressed points are not supported")),
            _ => return Err(bad("the point is not 65 bytes, uncompressed")),
        };
        PublicKey::from_uncompressed_point(name, point)
    }

    /// Wraps an uncompressed SEC1 point (0x04, X, Y); the signer derives it
    /// from a private key. Refuses points not on the curve.
    pub fn from_uncompressed_point(name: &str, point: &[u8]) -> Result<PublicKey, BundleError> {
        let bad = |reason: &str| BundleError::Key {
            name: name.to_owned(),
            reason: format!("not a P-256 public key: {reason}"),
        };
        let point: [u8; POINT_LEN] = point
            .try_into()
            .ok()
            .filter(|p: &[u8; POINT_LEN]| p[0] == 4)
            .ok_or_else(|| bad("the point is not 65 bytes, uncompressed"))?;
        // ring has no stand-alone public-key check, but key agreement
        // validates the peer's point exactly as ECDSA verification does
        // (ring ec::suite_b::public_key: on the curve, coordinates < p).
        let rng = ring::rand::SystemRandom::new();
        let mine =
            ring::agreement::EphemeralPrivateKey::generate(&ring::agreement::ECDH_P256, &rng)
                .map_err(|_| bad("no randomness to check the point with"))?;
        let peer = ring::agreement::UnparsedPublicKey::new(&ring::agreement::ECDH_P256, &point);
        ring::agreement::agree_ephemeral(mine, &peer, |_| ())
            .map_err(|_| bad("the point is not on the curve"))?;
        Ok(PublicKey {
            name: name.to_owned(),
            point,
        })
    }

    /// Checks `sig` (DER) over `message`.
    pub fn verify(&self, message: &[u8], sig: &Signature<'_>) -> bool {
        UnparsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, &self.point)
            .verify(message, sig.0)
            .is_ok()
    }
}

/// A DER ECDSA signature whose framing was checked (`SEQUENCE { r INTEGER,
/// s INTEGER }`, each positive, minimal and at most 33 bytes). The numbers
/// themselves are checked by the verification.
#[derive(Debug, Clone, Copy)]
pub struct Signature<'a>(&'a [u8]);

/// Parses a DER signature, refusing anything that is not exactly one.
pub fn parse_signature(bytes: &[u8]) -> Result<Signature<'_>, BundleError> {
    if bytes.len() > MAX_SIGNATURE_LEN {
        return Err(BundleError::Signature(format!(
            "{} bytes is too long for a DER P-256 signature (at most {MAX_SIGNATURE_LEN})",
            bytes.len()
        )));
    }
    let integer = |input| {
        let (n, rest) = der_take(0x02, input)?;
        let minimal = match n {
            [] => false,
            [0] => true,
            [0, b, ..] => *b >= 0x80,
            [b, ..] => *b < 0x80,
        };
        (minimal && n.len() <= 33 && n.iter().any(|&b| b != 0)).then_some(rest)
    };
    let framed = der_whole(0x30, bytes)
        .and_then(integer)
        .and_then(integer)
        .is_some_and(|rest| rest.is_empty());
    if !framed {
        return Err(BundleError::Signature(format!(
            "{} bytes are not a DER ECDSA P-256 signature (truncated or corrupt)",
            bytes.len()
        )));
    }
    Ok(Signature(bytes))
}

/// Splits one DER element with `tag` off the front of `input`: (contents,
/// rest). Definite lengths, minimally encoded, below 64 KiB (an RSA key's
/// SPKI needs two length bytes; we only parse far enough to name it);
/// anything else is `None`.
fn der_take(tag: u8, input: &[u8]) -> Option<(&[u8], &[u8])> {
    let (&t, input) = input.split_first()?;
    let (&len, input) = input.split_first()?;
    let (len, input) = match len {
        0..=0x7f => (usize::from(len), input),
        0x81 => {
            let (&len, input) = input.split_first()?;
            (len >= 0x80).then_some((usize::from(len), input))?
        }
        0x82 => {
            let (len, input) = input.split_first_chunk::<2>()?;
            let len = usize::from(u16::from_be_bytes(*len));
            (len >= 0x100).then_some((len, input))?
        }
        _ => return None,
    };
    (t == tag && input.len() >= len).then(|| input.split_at(len))
}

/// The contents of `input` when it is exactly one DER element with `tag`.
fn der_whole(tag: u8, input: &[u8]) -> Option<&[u8]> {
    der_take(tag, input).and_then(|(c, rest)| rest.is_empty().then_some(c))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_framing_is_strict_der() {
        // SEQUENCE { INTEGER 1, INTEGER 0x80 (with its sign byte) }.
        assert!(parse_signature(&[0x30, 7, 2, 1, 1, 2, 2, 0, 0x80]).is_ok());
        for bad in [
            &[][..],
            &[0x30, 0],
            &[0x30, 6, 2, 1, 1, 2, 1, 1, 0],    // trailing byte
            &[0x30, 7, 2, 1, 1, 2, 1, 1],       // length beyond the end
            &[0x31, 6, 2, 1, 1, 2, 1, 1],       // SET, not SEQUENCE
            &[0x30, 0x81, 6, 2, 1, 1, 2, 1, 1], // long form for a short length
            &[0x30, 6, 2, 1, 0, 2, 1, 1],       // r = 0
            &[0x30, 7, 2, 2, 0, 1, 2, 1, 1],    // non-minimal r
            &[0x30, 6, 2, 1, 0x81, 2, 1, 1],    // negative r
            &[0x30, 6, 2, 1, 1, 4, 1, 1],       // s is an OCTET STRING
            &[0x30, 3, 2, 1, 1],                // no s
        ] {
            let e = parse_signature(bad).unwrap_err().to_string();
            assert!(
                e.contains("not a DER ECDSA P-256 signature"),
                "{bad:?}: {e}"
            );
        }
        // A 34-byte INTEGER is minimal DER but too big for P-256.
        let mut long = vec![0x30, 40, 2, 34, 0x7f];
        long.extend([1u8; 33]);
        long.extend([2, 4, 1, 2, 3, 4]);
        assert!(parse_signature(&long).is_err());
    }

    #[test]
    fn spki_framing_errors_are_named() {
        for (der, needle) in [
            (&[][..], "not a DER SubjectPublicKeyInfo"),
            (&[0x30, 2, 5, 0], "no algorithm identifier"),
            (&[0x30, 4, 0x30, 2, 5, 0], "no public key bit string"),
            (&[0x30, 6, 0x30, 2, 5, 0, 3, 0], "no algorithm OID"),
        ] {
            let e = PublicKey::from_spki_der("k", der).unwrap_err().to_string();
            assert!(e.contains(needle), "{der:?}: {e}");
        }
    }
}

//! The device's report identity: an ECDSA P-256 key pair made at first use
//! (or by the factory line, which runs `ota-agent identity` once and keeps
//! the printed registry line) and the configured device id.
//!
//! The private key is `<state_dir>/identity.pk8` (PKCS#8 DER, mode 0600,
//! written atomically). It never leaves the device: reports carry only a
//! signature. Signatures are the bundles' format: DER ECDSA P-256 over
//! SHA-256 of the exact bytes (`openssl dgst -sha256 -verify device.pem
//! -signature r.json.sig r.json` checks one).

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use ring::rand::SystemRandom;
use ring::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_ASN1_SIGNING};

use crate::{Error, Result};

/// File name of the private key in `state_dir`.
pub use crate::state::IDENTITY_KEY_FILE as KEY_FILE;

/// DER prefix of a P-256 SubjectPublicKeyInfo (RFC 5480): SEQUENCE {
/// SEQUENCE { id-ecPublicKey, prime256v1 }, BIT STRING (0 unused bits) }
/// followed by the 65-byte uncompressed point.
const SPKI_PREFIX: [u8; 26] = [
    0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a,
    0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
];

/// The device id and its signing key.
pub struct Identity {
    /// The device id (config `device_id` or `device_id_file`).
    pub device_id: String,
    key: EcdsaKeyPair,
    rng: SystemRandom,
}

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Identity")
            .field("device_id", &self.device_id)
            .finish()
    }
}

impl Identity {
    /// Loads the key from `state_dir`, making one when there is none.
    pub fn load_or_create(state_dir: &Path, device_id: String) -> Result<Identity> {
        let path = state_dir.join(KEY_FILE);
        let rng = SystemRandom::new();
        let bad = |p: &Path, m: &str| Error::State {
            path: p.to_owned(),
            reason: m.to_owned(),
        };
        let pkcs8 = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let doc = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng)
                    .map_err(|_| bad(&path, "no system randomness to make a device key"))?;
                write_private(&path, doc.as_ref())?;
                log::info!("made the device report key {}", path.display());
                doc.as_ref().to_vec()
            }
            Err(e) => return Err(Error::io(&path, e)),
        };
        let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &pkcs8, &rng)
            .map_err(|_| bad(&path, "not a PKCS#8 P-256 private key"))?;
        Ok(Identity {
            device_id,
            key,
            rng,
        })
    }

    /// DER ECDSA P-256 / SHA-256 signature over `message`.
    pub fn sign(&self, message: &[u8]) -> Result<Vec<u8>> {
        self.key
            .sign(&self.rng, message)
            .map(|s| s.as_ref().to_vec())
            .map_err(|_| Error::State {
                path: PathBuf::from(KEY_FILE),
                reason: "signing failed (no randomness)".into(),
            })
    }

    /// The public key as DER SubjectPublicKeyInfo.
    pub fn public_spki_der(&self) -> Vec<u8> {
        let mut der = SPKI_PREFIX.to_vec();
        der.extend_from_slice(self.key.public_key().as_ref());
        der
    }

    /// The public key as PEM `PUBLIC KEY` (what `openssl pkey -pubout` writes).
    pub fn public_pem(&self) -> String {
        let b64 = base64_encode(&self.public_spki_der());
        let mut s = String::from("-----BEGIN PUBLIC KEY-----\n");
        for chunk in b64.as_bytes().chunks(64) {
            s.push_str(std::str::from_utf8(chunk).unwrap_or_default());
            s.push('\n');
        }
        s.push_str("-----END PUBLIC KEY-----\n");
        s
    }

    /// The device registry line (docs/fleet.md): `<device id> <base64 SPKI DER>`.
    pub fn registry_line(&self) -> String {
        format!(
            "{} {}",
            self.device_id,
            base64_encode(&self.public_spki_der())
        )
    }
}

/// Writes a new private key file: temp file created 0600, fsync, rename, fsync
/// of the directory (a power cut leaves no key or the whole key).
fn write_private(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let tmp = dir.join(format!(".{KEY_FILE}.tmp"));
    let _ = std::fs::remove_file(&tmp);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(|e| Error::io(&tmp, e))?;
    // Created 0600 (a umask can only narrow it) before a byte is written.
    f.write_all(bytes)
        .and_then(|_| f.sync_all())
        .map_err(|e| Error::io(&tmp, e))?;
    drop(f);
    std::fs::rename(&tmp, path).map_err(|e| Error::io(path, e))?;
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| Error::io(dir, e))
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Standard base64 with padding (RFC 4648 section 4).
pub fn base64_encode(data: &[u8]) -> String {
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = u32::from_be_bytes([0, b[0], b[1], b[2]]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(B64[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Decodes standard padded base64 (RFC 4648 section 4); `None` on anything
/// else (other alphabets, bad padding, stray characters).
pub fn base64_decode(text: &str) -> Option<Vec<u8>> {
    let t = text.as_bytes();
    if !t.len().is_multiple_of(4) {
        return None;
    }
    let mut out = Vec::with_capacity(t.len() / 4 * 3);
    for (ci, chunk) in t.chunks(4).enumerate() {
        let last = ci == t.len() / 4 - 1;
        let pad = chunk.iter().rev().take_while(|&&c| c == b'=').count();
        if pad > 2 || (pad > 0 && !last) {
            return None;
        }
        let mut n = 0u32;
        for &c in &chunk[..4 - pad] {
            let v = B64.iter().position(|&x| x == c)? as u32;
            n = n << 6 | v;
        }
        n <<= 6 * pad as u32;
        let bytes = n.to_be_bytes();
        out.extend_from_slice(&bytes[1..4 - pad]);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bundle::PublicKey;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn base64_known_vectors_and_round_trip() {
        // RFC 4648 section 10.
        for (raw, enc) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64_encode(raw.as_bytes()), enc);
            assert_eq!(base64_decode(enc).unwrap(), raw.as_bytes());
        }
        for bad in ["Zg=", "Z===", "Zg==Zg==", "Zm9v!A==", "Zm-v"] {
            assert!(base64_decode(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn key_is_made_once_0600_and_signatures_verify() {
        let dir = tempfile::tempdir().unwrap();
        let a = Identity::load_or_create(dir.path(), "dev-1".into()).unwrap();
        let mode = std::fs::metadata(dir.path().join(KEY_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let b = Identity::load_or_create(dir.path(), "dev-1".into()).unwrap();
        assert_eq!(a.public_spki_der(), b.public_spki_der());
        // The PEM parses with the bundle key parser and verifies a signature.
        let k = PublicKey::from_pem("dev-1", &a.public_pem()).unwrap();
        let sig = b.sign(b"report").unwrap();
        let sig = crate::bundle::signature::parse_signature(&sig).unwrap();
        assert!(k.verify(b"report", &sig));
        assert!(!k.verify(b"reporT", &sig));
        let line = a.registry_line();
        let (id, b64) = line.split_once(' ').unwrap();
        assert_eq!(id, "dev-1");
        assert_eq!(base64_decode(b64).unwrap(), a.public_spki_der());
    }
}

//! Signing keys: generation, PEM loading (PKCS#8 `PRIVATE KEY`, and SEC1
//! `EC PRIVATE KEY` as `openssl ecparam -genkey` writes by default), and
//! signing in the DER form `openssl dgst -sha256 -sign` produces.

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use p256::ecdsa::signature::Signer;
use p256::ecdsa::{DerSignature, SigningKey};
use p256::pkcs8::{DecodePrivateKey, EncodePrivateKey, EncodePublicKey, LineEnding};
use p256::SecretKey;

use crate::error::{Error, Result};

/// Generates a key pair: `<name>.key` (PKCS#8 PEM, mode 0600) and
/// `<name>.pub` (SPKI PEM). Refuses to overwrite either.
pub fn keygen(name: &Path) -> Result<(PathBuf, PathBuf)> {
    let key = loop {
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes)
            .map_err(|e| Error::Failed(format!("keygen: no system randomness: {e}")))?;
        // A random 256-bit string is a valid scalar except with ~2^-32 odds.
        if let Ok(k) = SigningKey::from_slice(&bytes) {
            break k;
        }
    };
    let private = key
        .to_pkcs8_pem(LineEnding::LF)
        .map_err(|e| Error::Failed(format!("keygen: encoding the private key: {e}")))?;
    let public = key
        .verifying_key()
        .to_public_key_pem(LineEnding::LF)
        .map_err(|e| Error::Failed(format!("keygen: encoding the public key: {e}")))?;
    let with_ext = |ext: &str| {
        let mut s = name.as_os_str().to_owned();
        s.push(ext);
        PathBuf::from(s)
    };
    let (key_path, pub_path) = (with_ext(".key"), with_ext(".pub"));
    for p in [&key_path, &pub_path] {
        if p.exists() {
            return Err(Error::Failed(format!(
                "{}: already exists (not overwriting a key)",
                p.display()
            )));
        }
    }
    write_new(&key_path, private.as_bytes(), 0o600)?;
    write_new(&pub_path, public.as_bytes(), 0o644)?;
    Ok((key_path, pub_path))
}

fn write_new(path: &Path, bytes: &[u8], mode: u32) -> Result<()> {
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(|e| Error::io(path, e))?;
    f.write_all(bytes)
        .and_then(|_| f.sync_all())
        .map_err(|e| Error::io(path, e))
}

/// The PEM block of `label` in `text` (openssl's EC files may hold an
/// `EC PARAMETERS` block first).
fn pem_block<'a>(text: &'a str, label: &str) -> Option<&'a str> {
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let start = text.find(&begin)?;
    let stop = text[start..].find(&end)? + start + end.len();
    Some(&text[start..stop])
}

/// Loads a P-256 private key from a PEM file.
pub fn load_signing_key(path: &Path) -> Result<SigningKey> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    let bad = |what: String| Error::Failed(format!("key {}: {what}", path.display()));
    if let Some(block) = pem_block(&text, "PRIVATE KEY") {
        return SigningKey::from_pkcs8_pem(block)
            .map_err(|e| bad(format!("not a PKCS#8 P-256 private key: {e}")));
    }
    if let Some(block) = pem_block(&text, "EC PRIVATE KEY") {
        let secret = SecretKey::from_sec1_pem(block)
            .map_err(|e| bad(format!("not a SEC1 P-256 private key: {e}")))?;
        return Ok(SigningKey::from(secret));
    }
    if text.contains("ENCRYPTED PRIVATE KEY") {
        return Err(bad(
            "encrypted keys are not supported (decrypt with `openssl pkey`)".into(),
        ));
    }
    Err(bad("no PEM `PRIVATE KEY` or `EC PRIVATE KEY` block".into()))
}

/// ECDSA P-256 over SHA-256 of `message`, DER encoded.
pub fn sign(key: &SigningKey, message: &[u8]) -> Vec<u8> {
    let sig: DerSignature = key.sign(message);
    sig.as_bytes().to_vec()
}

//! The rustls crypto provider: ring's, with only what a device needs.
//!
//! Measured against `rustls::crypto::ring::default_provider()` (figures in
//! docs/benchmarks.md "Binary size"):
//!
//! * Cipher suites: all of ring's. TLS 1.3 AES-128-GCM, AES-256-GCM and
//!   ChaCha20-Poly1305 (the fast one on SoCs without AES instructions, e.g.
//!   Cortex-A7); TLS 1.2 (feature `tls12`: many CDNs and proxies in front
//!   of device fleets still negotiate 1.2) ECDHE-ECDSA/RSA with the same
//!   AEADs. Dropping the AES-256 suites saved 0 B, so they stay.
//! * Key exchange: X25519 and P-256 (secp256r1); P-384 is not offered
//!   (every TLS server supports one of the two). Saves ~0 B (the P-384
//!   arithmetic stays for certificate signatures) but offers nothing unused.
//! * Certificate signatures: all of ring's (ECDSA P-256/P-384, Ed25519,
//!   RSA PKCS#1/PSS): the device pins its own CA, which may be anything.
//! * Client keys (mTLS): ECDSA (P-256, P-384) and Ed25519 only. RSA
//!   private-key signing is what ring's default key provider adds over
//!   that: 20,480 B on aarch64. An RSA `client_key` is refused when the
//!   client is built ([`check_client_key`]), naming the file.

use std::sync::Arc;

use rustls::crypto::ring::{cipher_suite, kx_group, sign};
use rustls::crypto::{CryptoProvider, KeyProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::PrivateKeyDer;

/// The provider every `Client` uses.
pub fn provider() -> CryptoProvider {
    let ring = rustls::crypto::ring::default_provider();
    CryptoProvider {
        cipher_suites: vec![
            cipher_suite::TLS13_AES_128_GCM_SHA256,
            cipher_suite::TLS13_AES_256_GCM_SHA384,
            cipher_suite::TLS13_CHACHA20_POLY1305_SHA256,
            cipher_suite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
            cipher_suite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
            cipher_suite::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
            cipher_suite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
            cipher_suite::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
            cipher_suite::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
        ],
        kx_groups: vec![kx_group::X25519, kx_group::SECP256R1],
        key_provider: &EcKeys,
        ..ring
    }
}

/// Why a client key is refused (one line, no file name).
const NOT_EC: &str = "only ECDSA (P-256, P-384) and Ed25519 client keys are supported, not RSA";

/// ring's key provider without RSA.
#[derive(Debug)]
struct EcKeys;

impl KeyProvider for EcKeys {
    fn load_private_key(
        &self,
        key_der: PrivateKeyDer<'static>,
    ) -> Result<Arc<dyn rustls::sign::SigningKey>, rustls::Error> {
        if let Ok(k) = sign::any_ecdsa_type(&key_der) {
            return Ok(k);
        }
        if let PrivateKeyDer::Pkcs8(p8) = &key_der {
            if let Ok(k) = sign::any_eddsa_type(p8) {
                return Ok(k);
            }
        }
        Err(rustls::Error::General(NOT_EC.into()))
    }
}

/// Checks that the provider can sign with the first private key in `pem`.
/// ureq loads the key only when it connects, and panics if that fails, so
/// `Client::new` asks first.
pub fn check_client_key(pem: &[u8]) -> Result<(), String> {
    let der = PrivateKeyDer::from_pem_slice(pem).map_err(|e| e.to_string())?;
    EcKeys
        .load_private_key(der)
        .map(|_| ())
        .map_err(|e| match e {
            rustls::Error::General(m) => m,
            other => other.to_string(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    /// A private key PEM from `openssl genpkey` (PKCS#8) or, with `sec1`,
    /// converted to the traditional per-algorithm form.
    fn openssl_key(args: &[&str], traditional: bool) -> Vec<u8> {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("k.pem");
        let st = Command::new("openssl")
            .arg("genpkey")
            .args(args)
            .arg("-out")
            .arg(&p)
            .stderr(std::process::Stdio::null())
            .status()
            .expect("openssl (scripts/install-deps)");
        assert!(st.success());
        if traditional {
            let t = dir.path().join("t.pem");
            let st = Command::new("openssl")
                .args(["pkey", "-traditional", "-in"])
                .arg(&p)
                .arg("-out")
                .arg(&t)
                .status()
                .unwrap();
            assert!(st.success());
            return std::fs::read(t).unwrap();
        }
        std::fs::read(p).unwrap()
    }

    fn check(pem: &[u8]) -> Result<(), String> {
        check_client_key(pem)
    }

    #[test]
    fn ec_and_ed25519_client_keys_load_rsa_is_refused() {
        let p256 = ["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"];
        let p384 = ["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-384"];
        let rsa = ["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"];
        check(&openssl_key(&p256, false)).unwrap();
        check(&openssl_key(&p256, true)).unwrap(); // SEC1 "EC PRIVATE KEY"
        check(&openssl_key(&p384, false)).unwrap();
        check(&openssl_key(&["-algorithm", "ED25519"], false)).unwrap();
        for traditional in [false, true] {
            // PKCS#8 and PKCS#1 ("RSA PRIVATE KEY").
            let e = check(&openssl_key(&rsa, traditional)).unwrap_err();
            assert!(e.contains("not RSA") && !e.contains('\n'), "{e}");
        }
    }

    #[test]
    fn client_with_an_rsa_key_is_refused_when_built() {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("device.key");
        let rsa = ["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"];
        std::fs::write(&key, openssl_key(&rsa, false)).unwrap();
        // Any certificate will do: the key is checked first.
        let cert = dir.path().join("device.crt");
        let st = Command::new("openssl")
            .args([
                "req", "-x509", "-new", "-subj", "/CN=d", "-days", "1", "-key",
            ])
            .arg(&key)
            .arg("-out")
            .arg(&cert)
            .status()
            .unwrap();
        assert!(st.success());
        let tls = super::super::TlsFiles {
            ca_file: None,
            client_cert: Some(cert),
            client_key: Some(key.clone()),
        };
        let Err(e) = super::super::Client::new(&tls, Default::default()) else {
            panic!("RSA client key accepted");
        };
        let e = e.to_string();
        assert!(e.contains("client_key") && e.contains("not RSA"), "{e}");
    }
}

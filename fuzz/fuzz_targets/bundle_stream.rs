//! A single-file bundle from a USB stick is hostile before verification: the
//! header and signature parsers must never panic, and nothing verifies
//! without the key.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ota_agent::bundle::{container, open_stream, signature, PublicKey, TrustedKeys};

// A fixed P-256 public key (SPKI); its private key was discarded.
const KEY: &str = "-----BEGIN PUBLIC KEY-----
MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEkvckbMetxMaA1k2/EVqDrZ0FI69A
wVNqejhn8VTMrPpysTPOb7VCaWDrEoScRDNqdDHfPWK8i7E8RNf8a14Ogg==
-----END PUBLIC KEY-----";

fuzz_target!(|data: &[u8]| {
    let _ = container::Header::parse(data);
    let _ = signature::parse_signature(data);
    let keys = TrustedKeys::new(vec![PublicKey::from_pem("fuzz", KEY).expect("valid key")]);
    assert!(open_stream(data, &keys).is_err(), "verified without the private key");
});

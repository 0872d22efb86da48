//! Trusted-key files are read from the keys directory, which an update can
//! replace: the SPKI parser must refuse garbage without panicking, and
//! accept only 65-byte uncompressed P-256 points.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ota_agent::bundle::PublicKey;

fuzz_target!(|data: &[u8]| {
    let _ = PublicKey::from_spki_der("fuzz", data);
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = PublicKey::from_pem("fuzz", text);
    }
});

//! Manifests and channel files are parsed only after their signature
//! verified, but a leaked key or a parser bug must still not crash the
//! device: parsing never panics, and whatever parses re-encodes to bytes that
//! parse to the same value.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ota_agent::bundle::channel::Channel;
use ota_agent::bundle::Manifest;

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = Manifest::parse(data) {
        let again = Manifest::parse(m.to_json().as_bytes()).expect("own encoding parses");
        assert_eq!(again, m);
    }
    if let Ok(c) = Channel::parse(data) {
        let again = Channel::parse(c.to_json().as_bytes()).expect("own encoding parses");
        assert_eq!(again, c);
    }
});

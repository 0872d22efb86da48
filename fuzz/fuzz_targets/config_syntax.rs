//! The device configuration parser (a TOML subset): whatever the text, it
//! must return a document or a one-line error naming an existing line, and
//! never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ota_agent::config::syntax;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Err(e) = syntax::parse(text) {
            assert!(e.line >= 1 && e.line <= text.split('\n').count(), "{e}");
            assert!(!e.message.contains('\n'), "{e}");
        }
    }
});

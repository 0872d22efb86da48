//! fw_setenv scripts and default env files: parse and apply must never panic,
//! and every accepted assignment must be storable.
#![no_main]

use libfuzzer_sys::fuzz_target;
use uboot_env::{script, Env};

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(edits) = script::parse(text, "-") {
            let mut env = Env::new();
            script::apply(&mut env, &edits).expect("parsed assignments are valid");
        }
    }
});

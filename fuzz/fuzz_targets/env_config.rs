//! fw_env.config text: parse must never panic, only accept or name a line.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = uboot_env::FwEnvConfig::parse(text);
    }
});

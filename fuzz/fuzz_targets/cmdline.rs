//! The kernel command line decides which slot the agent must never write:
//! parsing must never panic, whatever the words.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use ota_agent::bootctl::booted;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = booted::from_cmdline(text, Path::new("/dev/vda"), &[]);
    }
});

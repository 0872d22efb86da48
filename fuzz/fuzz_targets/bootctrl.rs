//! The Android bootctrl block comes from flash: hostile. Parsing must never
//! panic; whatever parses must rebuild to the same bytes, and U-Boot's
//! selection on it must not panic either.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ota_agent::bootctl::bootloader_control::BootloaderControl;

fuzz_target!(|data: &[u8]| {
    let Ok(raw) = <[u8; 32]>::try_from(data) else {
        return;
    };
    if let Ok(mut ctrl) = BootloaderControl::parse(&raw) {
        assert_eq!(ctrl.build(), raw);
        let _ = ctrl.select();
        let _ = ctrl.boot_attempt();
        assert!(BootloaderControl::parse(&ctrl.build()).is_ok());
    }
});

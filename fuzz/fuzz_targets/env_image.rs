//! U-Boot env images are flash contents: hostile. Decoding must never panic,
//! and whatever decodes must re-encode to an image that decodes the same.
#![no_main]

use libfuzzer_sys::fuzz_target;
use uboot_env::image::{self, Layout};

fuzz_target!(|data: &[u8]| {
    for layout in [Layout::Single, Layout::Redundant] {
        let _ = image::header(data, layout);
        let _ = image::decode(data, layout);
    }
    // Bypass the CRC so the variable parser sees the fuzzer's bytes.
    if let Ok(env) = uboot_env::Env::decode_data(data) {
        let size = env.encoded_len() + image::REDUNDANT_HEADER_LEN;
        let img = image::encode(&env, size, Layout::Redundant, 7).expect("fits by construction");
        let (again, flags) = image::decode(&img, Layout::Redundant).expect("own image decodes");
        assert_eq!(again, env);
        assert_eq!(flags, Some(7));
    }
});

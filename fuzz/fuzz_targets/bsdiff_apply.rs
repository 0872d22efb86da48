//! BSDIFF40 patches arrive from the network (verified by hash first, but the
//! applier is the last line of defence): applying never panics, never reads
//! outside the old image, and never writes more than the header's new size.
#![no_main]

use std::io::{Cursor, Write};

use libfuzzer_sys::fuzz_target;
use ota_agent::bundle::bsdiff;

struct Capped(u64);

impl Write for Capped {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0 += buf.len() as u64;
        // Keep runs short: stop after 16 MiB of output.
        if self.0 > 16 << 20 {
            return Err(std::io::Error::other("output cap"));
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fuzz_target!(|data: &[u8]| {
    let old: Vec<u8> = (0..4096u32).map(|i| (i * 31 % 251) as u8).collect();
    let mut out = Capped(0);
    if let Ok(n) = bsdiff::apply(data, &mut Cursor::new(&old), &mut out) {
        assert_eq!(n, out.0, "wrote other than the declared new size");
    }
});

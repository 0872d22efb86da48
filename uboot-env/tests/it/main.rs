//! The integration tests of `uboot-env`, one binary: `cargo test -p
//! uboot-env --test it` (one subject: `… --test it interop::`). Helpers used
//! by more than one module live in `common.rs`.

mod common;

mod fixtures;
mod interop;
mod roundtrip;
mod store;

//! The integration tests of `ota-sign`, one binary (`cargo test -p ota-sign
//! --test it`), each module one subject, shared helpers in `common.rs`.
//! `ota-sign` against the real tools: its signatures verify with
//! `openssl dgst -sha256 -verify`, keys openssl writes sign with it, its
//! patches apply with Debian's `bspatch`, Debian's `bsdiff` patches apply with
//! it (the agent's code), and hostile patches/bundles are refused with one
//! line. Needs `openssl`, `bsdiff`/`bspatch`, `bzip2` (scripts/install-deps);
//! fails, never skips, without them.

mod common;

mod bundles;
mod cli;
mod keys;
mod patches;

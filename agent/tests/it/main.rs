//! The integration tests of `ota-agent`, one binary (links the crate once).
//! Each module is one subject; helpers used by more than one live in
//! `common/`. Run one subject with e.g.
//! `cargo test -p ota-agent --test it install_cli::`.
//!
//! Tools the tests run (sgdisk, sfdisk, mkenvimage, fw_printenv, fw_setenv,
//! openssl, bsdiff, bzip2, nginx) come from scripts/install-deps; a missing
//! tool FAILS the test that needs it, nothing is skipped.

mod common;

mod bootctl_cli;
mod bootctl_model;
mod bundle;
mod control;
mod deadlines;
mod durable_power;
mod env_cli;
mod fleet;
mod gpt_slots;
#[cfg(feature = "hawkbit")]
mod hawkbit;
mod install_cli;
mod install_power;
mod install_refusals;
mod large_offsets;
mod mcu;
mod net;
mod policy;
mod resume_cli;
mod trial_power;

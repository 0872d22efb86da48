//! # ota-agent
//!
//! The device side of the A/B update stack: one small static binary that finds
//! the A/B slots, verifies signed bundles, writes the *inactive* slot, switches
//! the boot target atomically and confirms (or lets the bootloader roll back).
//!
//! ```text
//!   cli ──► config ──► bootctl::BootControl ──► uboot (env)  | android (misc)
//!    │                        ▲
//!    ├──► env (fw_printenv / fw_setenv compatible, via the uboot-env crate)
//!    ├──► bundle (manifest, signature, BSDIFF40) ──► install ──► slot partitions
//!    └──► mcu (appliance link: reboot gate, progress display)
//! ```
//!
//! Formats are parsed and built from bytes; files, devices and sockets sit at the
//! edge (see `../shared/STYLE.md`). The library logs through `log` only.
#![deny(unsafe_code)]
#![warn(missing_docs)]

pub mod bootctl;
pub mod bundle;
pub mod cli;
pub mod config;
pub mod error;
pub mod gpt;
#[cfg(feature = "hawkbit")] // hawkbit:
pub mod hawkbit; // hawkbit:
pub mod health;
pub mod install;
pub mod logger;
pub mod mcu;
pub mod net;
pub mod slots;
pub mod state;
pub mod update_status;

pub use error::{Error, Result};

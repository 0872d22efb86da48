//! # ota-agent
//!
//! The device side of the A/B update stack: one small static binary that finds
//! the A/B slots, verifies signed bundles, writes the *inactive* slot, switches
//! the boot target atomically and confirms (or lets the bootloader roll back).
//! `docs/architecture.md` has the whole flow as one picture and what crosses
//! each boundary; `docs/contract.md` what the agent and the bootloader share.
//!
//! ```text
//!  main.rs ─► cli (parse arguments, print; Console = terminal)
//!               │  Device, BundleSource, Target ▼        ▲ Decision, StatusReport, Announcement
//!  update ── one Device per run (config, StateDir, installed release, Layout, BootControl)
//!    │  lock: state_dir/update.lock      progress: update_status + mcu display + Console
//!    ├─► net (Client: channel/manifest/signature within fetch_deadline_s;
//!    │        Download/payloads: Range + If-Range resume, minimum progress)
//!    │     └─► net::check (pure channel decision) ─► bundle::channel
//!    ├─► bundle (manifest, P-256 signature, policy, container, BSDIFF40, time)
//!    ├─► install (Approved + Payloads ─► inactive slot: journal, read-back)
//!    │     └─► slots (Slot, Layout from gpt) ─► gpt
//!    ├─► bootctl::BootControl ─► uboot (env via the uboot-env crate)
//!    │                         └► android (bootloader_control block in misc)
//!    ├─► health (hooks before mark-good)      ├─► mcu (reboot gate, display)
//!    ├─► policy (windows + hooks: download, activate, reboot)
//!    └─► state (StateDir: every state_dir file) ─► durable::replace
//!  cli::env ─► uboot-env (fw_printenv / fw_setenv compatible)
//! ```
//!
//! Formats are parsed and built from bytes; files, devices and sockets sit at
//! the edge. The library logs through `log` only and prints nothing.
#![deny(unsafe_code)]
#![warn(missing_docs)]

pub mod bootctl;
pub mod bundle;
pub mod cli;
pub mod config;
pub mod control;
pub mod durable;
pub mod error;
pub mod gpt;
#[cfg(feature = "hawkbit")] // hawkbit:
pub mod hawkbit; // hawkbit:
pub mod health;
pub mod install;
pub mod json;
pub mod logger;
pub mod mcu;
pub mod net;
pub mod policy;
pub mod report;
pub mod slots;
pub mod state;
pub mod update;
pub mod update_status;

pub use error::{Error, Result};

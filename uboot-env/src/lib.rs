//! # uboot-env
//!
//! U-Boot environments, byte-compatible with U-Boot, libubootenv's
//! `fw_printenv`/`fw_setenv` and u-boot-tools' `mkenvimage`.
//!
//! ```text
//!   fw_env.config ──► config::FwEnvConfig ──► store::EnvStore ──► file / block dev / MTD
//!                                                   │ bytes
//!                                                   ▼
//!                     image: crc32 | [flags] | data ◄──► Env (ordered name → value)
//!                     script: `name=value` / `name value` lines ──► Env edits
//! ```
//!
//! Formats are pure functions over bytes and text ([`image`], [`Env`],
//! [`script`], [`FwEnvConfig::parse`]); only [`EnvStore`] does I/O. Writes are one
//! batch per call and, with two copies, always go to the copy that is not
//! current, so a torn write leaves the previous environment intact. When no copy
//! is valid, reading is an error unless the caller explicitly asks for a default
//! environment ([`EnvStore::read_or_default`]).
#![deny(unsafe_code)]
#![deny(missing_docs)]

pub mod config;
mod env;
mod error;
pub mod image;
pub mod script;
mod store;
mod sys;

pub use config::{EnvDevice, FwEnvConfig};
pub use env::{validate_name, validate_value, Env};
pub use error::{Error, Result};
pub use store::{EnvStore, Loaded, MediumKind, DEFAULT_LOCK_PATH};

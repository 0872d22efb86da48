//! Variable names of the contract (docs/contract.md "U-Boot environment").

/// Slot to boot.
pub const SLOT: &str = "ota_slot";
/// `1` during a trial.
pub const UPGRADE_AVAILABLE: &str = "upgrade_available";
/// Trial boots so far.
pub const BOOTCOUNT: &str = "bootcount";
/// Trial boots allowed.
pub const BOOTLIMIT: &str = "bootlimit";
/// The fallback command.
pub const ALTBOOTCMD: &str = "altbootcmd";
/// Rollback report `<slot>:<reason>`.
pub const ROLLBACK: &str = "ota_rollback";
/// Agent-private: confirmed slots.
pub const GOOD: &str = "ota_good";
/// Agent-private: slots marked unbootable.
pub const BAD: &str = "ota_bad";
/// What the environment must hold before an install writes anything
/// (`ota_rollback`, `ota_good` and `ota_bad` are absent by design until
/// used).
pub const REQUIRED: [&str; 5] = [SLOT, UPGRADE_AVAILABLE, BOOTCOUNT, BOOTLIMIT, ALTBOOTCMD];

//! The update flow: what `check`, `update`, `install`, `daemon` and the
//! boot-control commands do, as library calls the command line (or any
//! other front end) makes. Front ends parse their input, build one
//! [`Device`] per run and print what comes back; the policy is here.
//!
//! ```text
//!  Device (config, state_dir, installed release, GPT layout, boot control: each read once)
//!    │
//!    ├─ check ──────► net::check (channel fetched, verified, decided) + rejected-release
//!    ├─ update ─────► lock ─► check ─► manifest + signature ─► Approved
//!    │                          ─► install::Installer ◄── net::payloads (HTTP, resuming)
//!    │                          ─► reboot (appliance gate, reboot_command)
//!    │                 (with a policy, gate.rs asks before download, activation, reboot)
//!    │                 (--download-only: stage::download_release into state_dir/download)
//!    ├─ install ────► lock ─► bundle (local) or manifest URL ─► Installer ─► [reboot]
//!    ├─ resume ─────► lock ─► install-source (state_dir) ─► install, if a slot write began
//!    ├─ daemon ─────► at start: resume; per cycle: new Device, lock, the `update` run; sleep with jitter
//!    └─ status, mark-good (health checks ─► confirm ─► security floor),
//!       mark-bad, set-active
//! ```
//!
//! Progress goes to `state_dir/update-status.json` and the appliance
//! display ([`RunProgress`]) and to the front end's [`Console`]; results a
//! person should see are [`Announcement`]s. Every command that changes the
//! slots or the boot target holds `state_dir/update.lock` ([`lock`]).

mod boot;
mod daemon;
mod device;
mod gate;
mod lock;
mod progress;
mod run;
pub mod stage;
pub mod trial;

pub use boot::{booted, mark_bad, mark_good, set_active, status, Confirmed, StatusReport, Target};
pub use daemon::{daemon, poll_delay};
pub use device::{Device, FAKE_NOW_ENV};
pub use gate::{check_policy, reboot};
pub use lock::{lock, UpdateLock};
pub use progress::{Announcement, Console, RunProgress, Silent};
pub use run::{check, check_channel, device_id, install, resume, update, verify, BundleSource};

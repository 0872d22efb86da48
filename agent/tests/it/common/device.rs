//! The directory of a device under test: its config, state, keys and
//! health checks, as the agent finds them on a real root filesystem.

use std::fs;
use std::path::{Path, PathBuf};

use super::tools::ota_sign_in;

/// Fills `root` for a rice-cooker running release 1.0.0 from `disk`
/// (U-Boot environment per `fw_env`): empty `keys/`, `state/` and
/// `health.d/`, `os-release`, `ota-agent.toml` (the paths plus `extra`
/// lines), and a release key made by `ota-sign keygen` (`release.key`)
/// whose public half the device trusts (`keys/release.pem`).
/// Returns the config's path.
pub fn agent_root(root: &Path, disk: &Path, fw_env: &Path, extra: &str) -> PathBuf {
    for sub in ["keys", "state", "health.d"] {
        fs::create_dir(root.join(sub)).unwrap();
    }
    fs::write(root.join("os-release"), "VERSION_ID=1.0.0\n").unwrap();
    let config = root.join("ota-agent.toml");
    fs::write(
        &config,
        format!(
            "product = \"rice-cooker\"\ndisk = \"{}\"\nfw_env_config = \"{}\"\n\
             state_dir = \"{r}/state\"\nkeys_dir = \"{r}/keys\"\n\
             version_file = \"{r}/os-release\"\nhealth_dir = \"{r}/health.d\"\n{extra}",
            disk.display(),
            fw_env.display(),
            r = root.display()
        ),
    )
    .unwrap();
    ota_sign_in(root, &["keygen", "--out", "release"]);
    fs::rename(root.join("release.pub"), root.join("keys/release.pem")).unwrap();
    config
}

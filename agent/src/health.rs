//! Health checks run before `mark-good`: every executable regular file in
//! `health_dir`, in name order, without arguments. Any non-zero exit (or a
//! failure to start one) blocks the confirmation. Files whose name starts
//! with `.` and non-executable files are skipped (with a warning for the
//! latter, a common packaging mistake). A missing directory means no checks.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::{Error, Result};

/// The checks in `dir`, in the order they run.
pub fn hooks(dir: &Path) -> Result<Vec<PathBuf>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            log::info!("health: {} does not exist; no checks", dir.display());
            return Ok(Vec::new());
        }
        Err(e) => return Err(Error::io(dir, e)),
    };
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| Error::io(dir, e))?;
        let path = entry.path();
        if entry.file_name().to_string_lossy().starts_with('.') {
            continue;
        }
        // Follows symlinks, so /etc/ota/health.d/x -> /usr/lib/... works.
        let meta = std::fs::metadata(&path).map_err(|e| Error::io(&path, e))?;
        if !meta.is_file() {
            continue;
        }
        if meta.permissions().mode() & 0o111 == 0 {
            log::warn!("health: {} is not executable; skipped", path.display());
            continue;
        }
        out.push(path);
    }
    out.sort();
    Ok(out)
}

/// Runs every check; the first failure stops and is returned.
pub fn run_all(dir: &Path) -> Result<usize> {
    let hooks = hooks(dir)?;
    for hook in &hooks {
        log::info!("health: running {}", hook.display());
        // Hook output goes to stderr: stdout stays the command's one-line result.
        let status = Command::new(hook)
            .stdout(std::io::stderr())
            .status()
            .map_err(|e| Error::Health {
                hook: hook.clone(),
                reason: format!("cannot run: {e}"),
            })?;
        if !status.success() {
            let reason = match status.code() {
                Some(code) => format!("exited with status {code}"),
                None => "killed by a signal".into(),
            };
            return Err(Error::Health {
                hook: hook.clone(),
                reason,
            });
        }
    }
    Ok(hooks.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn script(dir: &Path, name: &str, body: &str, mode: u32) {
        let p = dir.join(name);
        std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
    }

    #[test]
    fn runs_in_order_and_stops_at_first_failure() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("log");
        let d = dir.path().join("health.d");
        std::fs::create_dir(&d).unwrap();
        script(
            &d,
            "10-first",
            &format!("echo 10 >> {}", log.display()),
            0o755,
        );
        script(
            &d,
            "20-fails",
            &format!("echo 20 >> {}; exit 4", log.display()),
            0o755,
        );
        script(
            &d,
            "30-never",
            &format!("echo 30 >> {}", log.display()),
            0o755,
        );
        script(&d, "05-not-exec", "exit 1", 0o644);
        script(&d, ".hidden", "exit 1", 0o755);
        let e = run_all(&d).unwrap_err().to_string();
        assert!(e.contains("20-fails") && e.contains("status 4"), "{e}");
        assert_eq!(std::fs::read_to_string(&log).unwrap(), "10\n20\n");
    }

    #[test]
    fn all_passing_and_missing_dir() {
        let dir = tempfile::tempdir().unwrap();
        script(dir.path(), "ok", "exit 0", 0o755);
        assert_eq!(run_all(dir.path()).unwrap(), 1);
        assert_eq!(run_all(&dir.path().join("absent")).unwrap(), 0);
    }
}

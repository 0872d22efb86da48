//! Health checks run before `mark-good`: every executable regular file in
//! `health_dir`, in name order, without arguments. Any non-zero exit (or a
//! failure to start one) blocks the confirmation. Files whose name starts
//! with `.` and non-executable files are skipped (with a warning for the
//! latter, a common packaging mistake). A missing directory means no checks.
//!
//! Each check gets `health_timeout_s` seconds (config; default
//! [`HOOK_TIMEOUT`]): a hook that hangs (a service that never answers, a
//! stuck network probe) must not keep the trial slot unconfirmed
//! until the bootloader rolls back for the wrong reason, nor block the daemon
//! forever. A hook runs in its own process group; on timeout the whole group
//! gets SIGKILL, so a shell script's children die with it, and the check
//! counts as failed.

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// How long one health check may run unless `health_timeout_s` says otherwise.
pub const HOOK_TIMEOUT: Duration = Duration::from_secs(120);

use crate::{Error, Result};

/// The checks in `dir`, in the order they run.
pub fn hooks(dir: &Path) -> Result<Vec<PathBuf>> {
    let found = executables(dir, "health")?;
    if found.is_none() {
        log::info!("health: {} does not exist; no checks", dir.display());
    }
    Ok(found.unwrap_or_default())
}

/// The executables in a hook directory (health checks, policy hooks), in
/// the order they run: regular files (symlinks followed, so
/// `/etc/ota/health.d/x -> /usr/lib/...` works), names not starting with
/// `.`, sorted; a non-executable file is skipped with a warning naming
/// `what`. `None` when `dir` does not exist.
pub fn executables(dir: &Path, what: &str) -> Result<Option<Vec<PathBuf>>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io(dir, e)),
    };
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| Error::io(dir, e))?;
        let path = entry.path();
        if entry.file_name().to_string_lossy().starts_with('.') {
            continue;
        }
        let meta = std::fs::metadata(&path).map_err(|e| Error::io(&path, e))?;
        if !meta.is_file() {
            continue;
        }
        if meta.permissions().mode() & 0o111 == 0 {
            log::warn!("{what}: {} is not executable; skipped", path.display());
            continue;
        }
        out.push(path);
    }
    out.sort();
    Ok(Some(out))
}

/// Runs every check, each within `limit` (config `health_timeout_s`); the
/// first failure stops and is returned.
pub fn run_all_within(dir: &Path, limit: Duration) -> Result<usize> {
    let hooks = hooks(dir)?;
    for hook in &hooks {
        log::info!("health: running {}", hook.display());
        run_one(hook, limit).map_err(|reason| Error::Health {
            hook: hook.clone(),
            reason,
        })?;
    }
    Ok(hooks.len())
}

/// One hook: `Ok` when it exits 0 within `limit`, else why not.
fn run_one(hook: &Path, limit: Duration) -> std::result::Result<(), String> {
    // Hook output goes to stderr: stdout stays the command's one-line result.
    let mut child = Command::new(hook)
        .stdin(Stdio::null())
        .stdout(std::io::stderr())
        .process_group(0)
        .spawn()
        .map_err(|e| format!("cannot run: {e}"))?;
    let deadline = Instant::now() + limit;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() >= deadline => {
                kill_group(child.id());
                // Reap it; SIGKILL cannot be ignored, so this returns.
                let _ = child.wait();
                return Err(format!(
                    "did not finish within {} s; killed",
                    limit.as_secs_f32()
                ));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => {
                kill_group(child.id());
                let _ = child.wait();
                return Err(format!("cannot wait for it: {e}"));
            }
        }
    };
    match status.code() {
        Some(0) => Ok(()),
        Some(code) => Err(format!("exited with status {code}")),
        None => Err("killed by a signal".into()),
    }
}

/// SIGKILL to the hook's process group (its pgid is its pid: `process_group(0)`).
fn kill_group(pid: u32) {
    let Ok(pid) = i32::try_from(pid) else { return };
    if let Err(e) = nix::sys::signal::killpg(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    ) {
        log::warn!("health: cannot kill process group {pid}: {e}");
    }
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
        let e = run_all_within(&d, HOOK_TIMEOUT).unwrap_err().to_string();
        assert!(e.contains("20-fails") && e.contains("status 4"), "{e}");
        assert_eq!(std::fs::read_to_string(&log).unwrap(), "10\n20\n");
    }

    #[test]
    fn all_passing_and_missing_dir() {
        let dir = tempfile::tempdir().unwrap();
        script(dir.path(), "ok", "exit 0", 0o755);
        assert_eq!(run_all_within(dir.path(), HOOK_TIMEOUT).unwrap(), 1);
        assert_eq!(
            run_all_within(&dir.path().join("absent"), HOOK_TIMEOUT).unwrap(),
            0
        );
    }

    #[test]
    fn a_hanging_hook_is_killed_with_its_children_and_fails() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().join("health.d");
        std::fs::create_dir(&d).unwrap();
        let pidfile = dir.path().join("grandchild.pid");
        // The hook starts a grandchild that would outlive a plain kill of the
        // shell, then hangs.
        script(
            &d,
            "10-hangs",
            &format!("sleep 600 & echo $! > {}; wait", pidfile.display()),
            0o755,
        );
        let e = run_all_within(&d, Duration::from_millis(500))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("10-hangs") && e.contains("did not finish"),
            "{e}"
        );
        let pid: i32 = std::fs::read_to_string(&pidfile)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        // The grandchild got SIGKILL with the group; it may linger as a zombie
        // (re-parented to init) for a moment, so look at its state, not only
        // at whether /proc/<pid> exists.
        let gone = (0..100).any(|_| {
            let state = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            let dead = state.is_empty() || state.split_whitespace().nth(2) == Some("Z");
            if !dead {
                std::thread::sleep(Duration::from_millis(20));
            }
            dead
        });
        assert!(gone, "grandchild {pid} survived the timeout");
    }

    #[test]
    fn a_hook_finishing_in_time_passes() {
        let dir = tempfile::tempdir().unwrap();
        script(dir.path(), "quick", "sleep 0.1", 0o755);
        assert_eq!(
            run_all_within(dir.path(), Duration::from_secs(30)).unwrap(),
            1
        );
    }
}

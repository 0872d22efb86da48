//! Policy hooks: every executable regular file in `policy_dir`, in name
//! order, run before each phase with the offer as one JSON object on stdin
//! (docs/policy.md). Exit status 0 = proceed, [`EXIT_DEFER`] = defer,
//! [`EXIT_REFUSE`] = refuse this release; any other status, a signal, a
//! failure to start or a timeout is a *broken* hook, which defers (the
//! safe meaning: nothing changes on the device because of a hook that
//! could not say yes). A hook runs in its own process group; on timeout
//! the whole group is killed.

use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::fcntl::{FcntlArg, OFlag};

use crate::bundle::time::parse_rfc3339_utc;
use crate::Result;

/// Exit status of a hook that defers this phase.
pub const EXIT_DEFER: i32 = 10;
/// Exit status of a hook that refuses this release for good.
pub const EXIT_REFUSE: i32 = 20;
/// Most of a hook's stdout the agent reads (the rest is discarded).
const MAX_STDOUT: usize = 4096;
/// The latest "until" a hook may name: one day ahead (a later time is cut
/// to this; the hook is asked again then anyway).
pub const MAX_UNTIL_S: i64 = 86400;

/// What one hook said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// Exit 0.
    Proceed,
    /// Exit [`EXIT_DEFER`]: `note` is its stdout's first line (without
    /// the time), `until` the time that line named, if any.
    Defer {
        /// Why, in the hook's words (may be empty).
        note: String,
        /// When to ask again (UTC seconds), if the hook said.
        until: Option<i64>,
    },
    /// Exit [`EXIT_REFUSE`]: `note` as for `Defer`.
    Refuse {
        /// Why, in the hook's words (may be empty).
        note: String,
    },
    /// Any other outcome: why (status, signal, timeout, cannot start).
    Broken(String),
}

/// The hooks in `dir`, in the order they run: executable regular files
/// (symlinks followed), names not starting with `.`. A missing directory
/// means no hooks; a non-executable file is skipped with a warning.
pub fn list(dir: &Path) -> Result<Vec<PathBuf>> {
    Ok(crate::health::executables(dir, "policy")?.unwrap_or_default())
}

/// Runs `hook` with `offer` (JSON) on stdin, within `limit`; `now` turns a
/// "seconds" answer into a time.
pub fn run(hook: &Path, offer: &str, limit: Duration, now: i64) -> Answer {
    let spawn = || {
        Command::new(hook)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .process_group(0)
            .spawn()
    };
    // ETXTBSY: the file is still open for writing somewhere (a package
    // manager installing it, a forked process): it passes in moments.
    let mut tries = 0;
    let mut child = loop {
        match spawn() {
            Ok(c) => break c,
            Err(e) if e.raw_os_error() == Some(nix::libc::ETXTBSY) && tries < 10 => {
                tries += 1;
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => return Answer::Broken(format!("cannot run: {e}")),
        }
    };
    // The offer is far smaller than a pipe buffer: this never blocks. A
    // hook that exits without reading it is not an error.
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(offer.as_bytes());
    }
    // stdout is read without blocking while the hook runs (one writing
    // much must not stall on a full pipe; a grandchild keeping the pipe
    // open must not hold the agent) — no thread, as everywhere in the agent.
    let mut out = child.stdout.take();
    if let Some(o) = &out {
        if nix::fcntl::fcntl(o.as_raw_fd(), FcntlArg::F_SETFL(OFlag::O_NONBLOCK)).is_err() {
            out = None; // then the hook's message is lost, not its answer
        }
    }
    let mut kept = Vec::new();
    let mut drain = |kept: &mut Vec<u8>| {
        let Some(o) = out.as_mut() else { return };
        let mut buf = [0u8; 512];
        while let Ok(n @ 1..) = o.read(&mut buf) {
            let room = MAX_STDOUT.saturating_sub(kept.len());
            kept.extend_from_slice(&buf[..n.min(room)]);
        }
    };
    let deadline = Instant::now() + limit;
    let status = loop {
        drain(&mut kept);
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() >= deadline => {
                kill_group(child.id());
                let _ = child.wait();
                return Answer::Broken(format!(
                    "did not finish within {} s; killed",
                    limit.as_secs()
                ));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => {
                kill_group(child.id());
                let _ = child.wait();
                return Answer::Broken(format!("cannot wait for it: {e}"));
            }
        }
    };
    drain(&mut kept);
    let line = String::from_utf8_lossy(&kept);
    let line = line.lines().next().unwrap_or("").trim();
    match status.code() {
        Some(0) => Answer::Proceed,
        Some(EXIT_DEFER) => {
            let (until, note) = split_until(line, now);
            Answer::Defer { note, until }
        }
        Some(EXIT_REFUSE) => Answer::Refuse {
            note: crate::report::record::one_line(line),
        },
        Some(code) => Answer::Broken(format!("exited with status {code}")),
        None => Answer::Broken("killed by a signal".into()),
    }
}

/// A deferring hook's first line: an optional time (`YYYY-MM-DDTHH:MM:SSZ`
/// or a number of seconds from now) and then its reason. The time is
/// bounded to `now + 1 s ..= now + MAX_UNTIL_S`.
fn split_until(line: &str, now: i64) -> (Option<i64>, String) {
    let (first, rest) = line.split_once(' ').unwrap_or((line, ""));
    let until = if !first.is_empty() && first.bytes().all(|b| b.is_ascii_digit()) {
        first.parse::<i64>().ok().map(|s| now.saturating_add(s))
    } else {
        parse_rfc3339_utc(first)
    };
    match until {
        Some(t) => (
            Some(t.clamp(now + 1, now + MAX_UNTIL_S)),
            crate::report::record::one_line(rest),
        ),
        None => (None, crate::report::record::one_line(line)),
    }
}

/// SIGKILL to the hook's process group (its pgid is its pid).
fn kill_group(pid: u32) {
    let Ok(pid) = i32::try_from(pid) else { return };
    if let Err(e) = nix::sys::signal::killpg(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    ) {
        log::warn!("policy: cannot kill process group {pid}: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn hook(dir: &Path, name: &str, body: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        p
    }

    const LIMIT: Duration = Duration::from_secs(10);

    #[test]
    fn exit_statuses_mean_proceed_defer_refuse_broken() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path();
        // The offer arrives on stdin: the hook echoes a field of it back.
        let h = hook(
            p,
            "a",
            "read -r l; case \"$l\" in *'\"phase\":\"reboot\"'*) exit 0;; esac; exit 3",
        );
        assert_eq!(
            run(&h, "{\"phase\":\"reboot\"}\n", LIMIT, 0),
            Answer::Proceed
        );
        assert_eq!(
            run(&h, "{\"phase\":\"download\"}\n", LIMIT, 0),
            Answer::Broken("exited with status 3".into())
        );
        let h = hook(p, "b", "echo '600 cooking'; exit 10");
        assert_eq!(
            run(&h, "{}", LIMIT, 1000),
            Answer::Defer {
                note: "cooking".into(),
                until: Some(1600)
            }
        );
        let h = hook(p, "c", "echo '2026-12-07T01:00:00Z'; exit 10");
        let now = parse_rfc3339_utc("2026-12-06T23:00:00Z").unwrap();
        assert_eq!(
            run(&h, "{}", LIMIT, now),
            Answer::Defer {
                note: String::new(),
                until: Some(now + 7200)
            }
        );
        // A time a week away is cut to one day; a reason without a time
        // is all note.
        let h = hook(p, "d", "echo '604800 busy'; exit 10");
        assert_eq!(
            run(&h, "{}", LIMIT, 0),
            Answer::Defer {
                note: "busy".into(),
                until: Some(MAX_UNTIL_S)
            }
        );
        let h = hook(p, "e", "echo 'on battery'; exit 10");
        assert_eq!(
            run(&h, "{}", LIMIT, 0),
            Answer::Defer {
                note: "on battery".into(),
                until: None
            }
        );
        let h = hook(p, "f", "echo 'never this one'; exit 20");
        assert_eq!(
            run(&h, "{}", LIMIT, 0),
            Answer::Refuse {
                note: "never this one".into()
            }
        );
        let h = hook(p, "g", "kill -9 $$");
        assert_eq!(
            run(&h, "{}", LIMIT, 0),
            Answer::Broken("killed by a signal".into())
        );
        // A hook that cannot be started is broken. (Under qemu-user, which
        // runs the 32-bit tests, the exec error of a vfork-style spawn is
        // not passed back: the child exits 127 instead. Broken either way.)
        let missing = p.join("nope");
        let a = run(&missing, "{}", LIMIT, 0);
        assert!(
            matches!(&a, Answer::Broken(m) if m.starts_with("cannot run") || m.contains("127")),
            "{a:?}"
        );
    }

    #[test]
    fn a_hanging_hook_and_its_children_are_killed_at_the_limit() {
        let d = tempfile::tempdir().unwrap();
        let pidfile = d.path().join("child.pid");
        let h = hook(
            d.path(),
            "hang",
            &format!("sleep 600 & echo $! > {}; wait", pidfile.display()),
        );
        let t = Instant::now();
        let a = run(&h, "{}", Duration::from_secs(1), 0);
        assert_eq!(
            a,
            Answer::Broken("did not finish within 1 s; killed".into())
        );
        assert!(t.elapsed() < Duration::from_secs(8), "{:?}", t.elapsed());
        let pid = std::fs::read_to_string(&pidfile).unwrap();
        // The background child went with the group (bounded wait for the reaper).
        let gone = (0..100).any(|_| {
            std::thread::sleep(Duration::from_millis(20));
            !Path::new(&format!("/proc/{}", pid.trim())).exists()
                || std::fs::read_to_string(format!("/proc/{}/stat", pid.trim()))
                    .is_ok_and(|s| s.contains(") Z "))
        });
        assert!(gone, "child {pid} survived");
    }

    #[test]
    fn a_chatty_hook_and_a_lingering_grandchild_do_not_hold_the_agent() {
        let d = tempfile::tempdir().unwrap();
        // 1 MB of output (far more than a pipe holds), then a background
        // child that keeps stdout open for 30 s after the hook exits.
        let h = hook(
            d.path(),
            "chatty",
            "echo '60 busy'; head -c 1000000 /dev/zero | tr '\\0' x; echo; sleep 30 & exit 10",
        );
        let t = Instant::now();
        let a = run(&h, "{}", LIMIT, 0);
        assert_eq!(
            a,
            Answer::Defer {
                note: "busy".into(),
                until: Some(60)
            }
        );
        assert!(t.elapsed() < Duration::from_secs(8), "{:?}", t.elapsed());
    }

    #[test]
    fn listing_is_name_ordered_executables_only() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path();
        hook(p, "20-b", "exit 0");
        hook(p, "10-a", "exit 0");
        hook(p, ".hidden", "exit 0");
        std::fs::write(p.join("30-not-exec"), "#!/bin/sh\n").unwrap();
        std::fs::create_dir(p.join("40-dir")).unwrap();
        let names: Vec<String> = list(p)
            .unwrap()
            .iter()
            .map(|h| h.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["10-a", "20-b"]);
        assert!(list(&p.join("missing")).unwrap().is_empty());
    }
}

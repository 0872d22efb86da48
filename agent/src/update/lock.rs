//! `state_dir/update.lock`: one lock for every command that changes the
//! slots or the boot target (`install`, `update`, each `daemon` cycle,
//! `mark-good`, `mark-bad`, `set-active`), so two of them never interleave.
//!
//! The lock is an exclusive `flock(2)` on the file, held for the life of
//! [`UpdateLock`] and released by the kernel when the process ends (also
//! on a crash or power cut: nothing stale blocks the next run). The holder
//! writes its pid and start time into the file, so a refused caller can say
//! who runs: `another update is running (pid N, since T)`.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};

use nix::fcntl::{Flock, FlockArg};

use crate::state::StateDir;
use crate::{Error, Result};

/// Bytes of the holder record (`PID SINCE`, space-padded, newline).
const RECORD_LEN: usize = 40;

/// The held lock; dropping it releases it.
#[derive(Debug)]
pub struct UpdateLock {
    _flock: Flock<File>,
}

/// Takes the lock without waiting, or says who holds it ([`Error::Busy`]).
pub fn lock(state: &StateDir) -> Result<UpdateLock> {
    state.ensure()?;
    let path = state.lock_path();
    let io = |e| Error::io(&path, e);
    // Not truncated before the lock is ours: the holder's record stays.
    let f = OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(&path)
        .map_err(io)?;
    let mut flock = match Flock::lock(f, FlockArg::LockExclusiveNonblock) {
        Ok(l) => l,
        Err((mut f, nix::errno::Errno::EWOULDBLOCK)) => {
            let mut text = String::new();
            let _ = f.read_to_string(&mut text);
            let (pid, since) = parse_holder(&text);
            return Err(Error::Busy { pid, since });
        }
        Err((_, errno)) => return Err(io(std::io::Error::from(errno))),
    };
    // Overwritten in place at a fixed length, never truncated: on vfat a
    // truncate frees the file's cluster and the write allocates one again,
    // two FAT updates per run that a power cut can leave half done (the
    // QEMU power-cut scenario saw the kernel remount `data` read-only at
    // the next boot, "deleting FAT entry beyond EOF").
    let record = format!(
        "{:<w$}\n",
        format!("{} {}", std::process::id(), crate::bundle::time::now()),
        w = RECORD_LEN - 1
    );
    flock.rewind().map_err(io)?;
    flock.write_all(record.as_bytes()).map_err(io)?;
    if flock.metadata().map_err(io)?.len() > RECORD_LEN as u64 {
        flock.set_len(RECORD_LEN as u64).map_err(io)?;
    }
    Ok(UpdateLock { _flock: flock })
}

/// `PID SINCE` as the holder wrote it; unknown parts are `None` (a holder
/// that has not written its record yet, or an older agent).
fn parse_holder(text: &str) -> (Option<u32>, Option<i64>) {
    let mut words = text.split_whitespace();
    let pid = words.next().and_then(|w| w.parse().ok());
    let since = words.next().and_then(|w| w.parse().ok());
    (pid, since)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_taker_is_refused_with_the_holders_pid_and_time() {
        let dir = tempfile::tempdir().unwrap();
        let state = StateDir::new(dir.path().join("state"));
        let held = lock(&state).unwrap();
        // flock(2) locks belong to the open file description: a second
        // open in the same process conflicts like another process would.
        let e = lock(&state).unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.starts_with(&format!(
                "another update is running (pid {}, since 20",
                std::process::id()
            )),
            "{msg}"
        );
        assert!(matches!(
            e,
            Error::Busy {
                pid: Some(_),
                since: Some(_)
            }
        ));
        drop(held);
        lock(&state).unwrap();
    }

    #[test]
    fn the_record_is_rewritten_in_place_at_a_fixed_length() {
        let dir = tempfile::tempdir().unwrap();
        let state = StateDir::new(dir.path());
        let path = state.lock_path();
        std::fs::write(&path, "1 2 and a long record of an older agent ......\n").unwrap();
        drop(lock(&state).unwrap());
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.len(), RECORD_LEN, "{text:?}");
        assert_eq!(parse_holder(&text).0, Some(std::process::id()));
        drop(lock(&state).unwrap());
        assert_eq!(std::fs::read_to_string(&path).unwrap().len(), RECORD_LEN);
    }

    #[test]
    fn holder_record_parsing() {
        assert_eq!(
            parse_holder("42 1795653296\n"),
            (Some(42), Some(1795653296))
        );
        assert_eq!(parse_holder(""), (None, None));
        assert_eq!(parse_holder("x"), (None, None));
    }
}

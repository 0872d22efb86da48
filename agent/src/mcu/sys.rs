//! The one place with `unsafe` in the MCU link: terminal ioctls that `nix`
//! declares through its `ioctl_*_bad!` macros, which generate `unsafe fn`s.
//!
//! * `TIOCEXCL` (tty_ioctl(4)): "put the terminal into exclusive mode"; further
//!   `open(2)`s of the device fail with `EBUSY` (except for CAP_SYS_ADMIN), so a
//!   second agent or a getty cannot interleave bytes with our frames.
//! * `TIOCGEXCL` (Linux ≥ 3.8): reads the exclusive flag back (tests).
//!
//! Soundness: both take a file descriptor that is borrowed (so open for the
//! duration of the call); `TIOCEXCL` takes no argument, `TIOCGEXCL` writes one
//! `c_int` into memory we own.
#![allow(unsafe_code)]

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};

use nix::libc;

nix::ioctl_none_bad!(tiocexcl, libc::TIOCEXCL);
nix::ioctl_read_bad!(tiocgexcl, libc::TIOCGEXCL, libc::c_int);

/// Puts the terminal behind `fd` into exclusive mode.
pub fn set_exclusive(fd: BorrowedFd<'_>) -> io::Result<()> {
    // SAFETY: `fd` is a live descriptor for the duration of the borrow;
    // TIOCEXCL has no argument.
    unsafe { tiocexcl(fd.as_raw_fd()) }
        .map(drop)
        .map_err(io::Error::from)
}

/// Whether the terminal behind `fd` is in exclusive mode.
pub fn is_exclusive(fd: BorrowedFd<'_>) -> io::Result<bool> {
    let mut flag: libc::c_int = 0;
    // SAFETY: `fd` is live; the kernel writes one c_int to `flag`, which we own.
    unsafe { tiocgexcl(fd.as_raw_fd(), &mut flag) }.map_err(io::Error::from)?;
    Ok(flag != 0)
}

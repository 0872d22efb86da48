//! MTD character-device ioctls: the crate's only `unsafe` code.
//!
//! Structures and request numbers are those of Linux
//! `include/uapi/mtd/mtd-abi.h` (`MEMGETINFO = _IOR('M', 1, struct mtd_info_user)`,
//! `MEMERASE = _IOW('M', 2, struct erase_info_user)`,
//! `MEMGETBADBLOCK = _IOW('M', 11, __kernel_loff_t)`). Each safe wrapper passes
//! a pointer to a properly sized, initialised value that lives for the call, on
//! a descriptor borrowed from an open `File`; that is all these ioctls require.
#![allow(unsafe_code)]

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;

/// `struct mtd_info_user` (mtd-abi.h).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct MtdInfoUser {
    /// `MTD_NORFLASH`, `MTD_NANDFLASH`, …
    pub kind: u8,
    /// `MTD_WRITEABLE`, …
    pub flags: u32,
    /// Total size of the MTD device.
    pub size: u32,
    /// Erase-block size.
    pub erasesize: u32,
    /// Minimal writable unit.
    pub writesize: u32,
    /// OOB bytes per page.
    pub oobsize: u32,
    /// Reserved by the kernel ABI.
    pub padding: u64,
}

/// `struct erase_info_user` (mtd-abi.h).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct EraseInfoUser {
    /// First byte to erase (erase-block aligned).
    pub start: u32,
    /// Bytes to erase (a multiple of the erase-block size).
    pub length: u32,
}

// The kernel ABI fixes these sizes; the ioctl numbers encode them.
const _: () = assert!(std::mem::size_of::<MtdInfoUser>() == 32);
const _: () = assert!(std::mem::size_of::<EraseInfoUser>() == 8);

/// `MTD_RAM` (mtdram test devices).
pub const MTD_RAM: u8 = 1;
/// `MTD_NORFLASH`.
pub const MTD_NORFLASH: u8 = 3;
/// `MTD_NANDFLASH`.
pub const MTD_NANDFLASH: u8 = 4;
/// `MTD_MLCNANDFLASH`.
pub const MTD_MLCNANDFLASH: u8 = 8;

mod raw {
    use super::{EraseInfoUser, MtdInfoUser};
    nix::ioctl_read!(mem_get_info, b'M', 1, MtdInfoUser);
    nix::ioctl_write_ptr!(mem_erase, b'M', 2, EraseInfoUser);
    nix::ioctl_write_ptr!(mem_get_bad_block, b'M', 11, i64);
}

/// `MEMGETINFO`: geometry of the MTD device behind `file`.
pub fn mem_get_info(file: &File) -> io::Result<MtdInfoUser> {
    let mut info = MtdInfoUser::default();
    // SAFETY: `info` is a valid, writable `mtd_info_user` for the whole call.
    unsafe { raw::mem_get_info(file.as_raw_fd(), &mut info) }.map_err(io::Error::from)?;
    Ok(info)
}

/// `MEMERASE`: erases `[start, start + length)` (erase-block aligned).
pub fn mem_erase(file: &File, start: u32, length: u32) -> io::Result<()> {
    let erase = EraseInfoUser { start, length };
    // SAFETY: `erase` is a valid `erase_info_user` the kernel only reads.
    unsafe { raw::mem_erase(file.as_raw_fd(), &erase) }.map_err(io::Error::from)?;
    Ok(())
}

/// `MEMGETBADBLOCK`: true when the erase block at `offset` is marked bad.
pub fn mem_is_bad_block(file: &File, offset: i64) -> io::Result<bool> {
    // SAFETY: `offset` is a valid `loff_t` the kernel only reads.
    let r =
        unsafe { raw::mem_get_bad_block(file.as_raw_fd(), &offset) }.map_err(io::Error::from)?;
    Ok(r > 0)
}

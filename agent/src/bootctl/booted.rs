//! The booted slot, from the kernel command line.
//!
//! Sources, all of which must agree (a disagreement is an error, never a
//! guess — writing the "inactive" slot while running from it destroys the
//! running system):
//!
//! * `ota.slot=a|b` (set by our boot script),
//! * `androidboot.slot_suffix=_a|_b` (set by U-Boot's `ab_select` flows),
//! * `root=` when it names a partition of the configured disk:
//!   `PARTLABEL=rootfs_b`, `PARTUUID=<guid>` (looked up in the GPT) or
//!   `/dev/<disk>N` / `/dev/<disk>pN`. Other root devices (`/dev/dm-0`,
//!   `/dev/ram0`, NFS, …) cannot be cross-checked and are ignored.
//!
//! The first two give the slot; `root=` alone is accepted when neither is
//! present.

use std::path::Path;

use crate::gpt::{Guid, Partition};
use crate::slots::Slot;
use crate::{Error, Result};

/// Splits a command line into words, honouring double quotes like the kernel
/// (`foo="a b"` is one word `foo=a b`).
fn words(cmdline: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut any = false;
    for c in cmdline.chars() {
        match c {
            '"' => {
                quoted = !quoted;
                any = true;
            }
            c if c.is_whitespace() && !quoted => {
                if any {
                    out.push(std::mem::take(&mut cur));
                    any = false;
                }
            }
            c => {
                cur.push(c);
                any = true;
            }
        }
    }
    if any {
        out.push(cur);
    }
    out
}

fn fail(reason: String) -> Error {
    Error::Slot(reason)
}

/// What `root=` says, resolved against the disk's partitions.
fn root_slot(root: &str, disk: &Path, partitions: &[Partition]) -> Result<Option<Slot>> {
    let by_name = |name: &str| -> Result<Option<Slot>> {
        match Slot::split_name(name) {
            Some((_, slot)) => Ok(Some(slot)),
            None => Err(fail(format!(
                "root partition `{name}` (from root={root}) belongs to no slot"
            ))),
        }
    };
    if let Some(label) = root.strip_prefix("PARTLABEL=") {
        return by_name(label);
    }
    if let Some(uuid) = root.strip_prefix("PARTUUID=") {
        let guid = Guid::parse(uuid)
            .ok_or_else(|| fail(format!("root={root}: `{uuid}` is not a partition uuid")))?;
        let part = partitions.iter().find(|p| p.guid == guid).ok_or_else(|| {
            fail(format!(
                "root={root}: no partition with that uuid on {}",
                disk.display()
            ))
        })?;
        return by_name(&part.name);
    }
    // /dev/vda3, /dev/mmcblk0p3: a partition number on the configured disk.
    let disk = disk.to_string_lossy();
    if let Some(rest) = root.strip_prefix(disk.as_ref()) {
        let digits = rest.strip_prefix('p').unwrap_or(rest);
        if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
            let number: u32 = digits
                .parse()
                .map_err(|_| fail(format!("root={root}: bad partition number")))?;
            let part = partitions
                .iter()
                .find(|p| p.number == number)
                .ok_or_else(|| fail(format!("root={root}: {disk} has no partition {number}")))?;
            return by_name(&part.name);
        }
    }
    log::debug!("root={root} is not a partition of {disk}; not cross-checked");
    Ok(None)
}

/// Finds the booted slot in `cmdline` (the text of `/proc/cmdline`), checking
/// `root=` against `partitions` of `disk`.
pub fn from_cmdline(cmdline: &str, disk: &Path, partitions: &[Partition]) -> Result<Slot> {
    let mut claims: Vec<(String, Slot)> = Vec::new();
    for word in words(cmdline) {
        if let Some(v) = word.strip_prefix("ota.slot=") {
            let slot = v
                .parse::<Slot>()
                .map_err(|_| fail(format!("kernel command line: ota.slot=`{v}` is not a or b")))?;
            claims.push((word.clone(), slot));
        } else if let Some(v) = word.strip_prefix("androidboot.slot_suffix=") {
            let slot = match v {
                "_a" => Slot::A,
                "_b" => Slot::B,
                _ => {
                    return Err(fail(format!(
                        "kernel command line: androidboot.slot_suffix=`{v}` is not _a or _b"
                    )))
                }
            };
            claims.push((word.clone(), slot));
        } else if let Some(v) = word.strip_prefix("root=") {
            if let Some(slot) = root_slot(v, disk, partitions)? {
                claims.push((word.clone(), slot));
            }
        }
    }
    let Some((first_word, slot)) = claims.first().cloned() else {
        return Err(fail(
            "cannot tell the booted slot: the kernel command line has no ota.slot=, \
             androidboot.slot_suffix= or slot root= (use --booted-slot to override)"
                .into(),
        ));
    };
    if let Some((word, other)) = claims.iter().find(|(_, s)| *s != slot) {
        return Err(fail(format!(
            "kernel command line disagrees about the booted slot: `{first_word}` says {slot}, \
             `{word}` says {other}"
        )));
    }
    Ok(slot)
}

/// Reads `path` (normally `/proc/cmdline`) and finds the booted slot.
pub fn from_file(path: &Path, disk: &Path, partitions: &[Partition]) -> Result<Slot> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    from_cmdline(&text, disk, partitions)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts() -> Vec<Partition> {
        let mk = |number: u32, name: &str, uuid: &str| Partition {
            number,
            name: name.into(),
            type_guid: Guid([1; 16]),
            guid: Guid::parse(uuid).unwrap(),
            offset: 0,
            size: 1,
        };
        vec![
            mk(1, "boot", "11111111-0000-0000-0000-000000000001"),
            mk(3, "rootfs_a", "11111111-0000-0000-0000-000000000003"),
            mk(4, "rootfs_b", "11111111-0000-0000-0000-000000000004"),
        ]
    }

    fn slot(cmdline: &str) -> Result<Slot> {
        from_cmdline(cmdline, Path::new("/dev/vda"), &parts())
    }

    #[test]
    fn each_source_alone() {
        assert_eq!(slot("console=ttyAMA0 ota.slot=b quiet").unwrap(), Slot::B);
        assert_eq!(slot("androidboot.slot_suffix=_a").unwrap(), Slot::A);
        assert_eq!(slot("root=PARTLABEL=rootfs_b rw").unwrap(), Slot::B);
        assert_eq!(
            slot("root=PARTUUID=11111111-0000-0000-0000-000000000003").unwrap(),
            Slot::A
        );
        assert_eq!(slot("root=/dev/vda4").unwrap(), Slot::B);
    }

    #[test]
    fn agreeing_sources_and_unresolvable_root() {
        assert_eq!(
            slot("ota.slot=a root=PARTLABEL=rootfs_a androidboot.slot_suffix=_a").unwrap(),
            Slot::A
        );
        assert_eq!(slot("ota.slot=b root=/dev/dm-0").unwrap(), Slot::B);
        assert_eq!(slot("x=\"ota.slot=a b\" ota.slot=b").unwrap(), Slot::B);
    }

    #[test]
    fn disagreement_is_an_error() {
        let e = slot("ota.slot=a root=PARTLABEL=rootfs_b")
            .unwrap_err()
            .to_string();
        assert!(e.contains("disagrees") && e.contains("rootfs_b"), "{e}");
        assert!(slot("ota.slot=a androidboot.slot_suffix=_b").is_err());
        assert!(slot("ota.slot=b root=/dev/vda3").is_err());
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_cmdlines_never_panic(text in "\\PC{0,200}") {
            let _ = slot(&text);
        }

        #[test]
        fn slot_words_anywhere_are_found(pre in "[a-z=. ]{0,40}", post in "[a-z=. ]{0,40}") {
            let line = format!("{pre} ota.slot=b {post}");
            // Random words never flip the answer; they may only add a
            // disagreeing claim (an error), never a different slot.
            if let Ok(s) = slot(&line) {
                proptest::prop_assert_eq!(s, Slot::B);
            }
        }
    }

    #[test]
    fn bad_or_missing_values_are_errors() {
        assert!(slot("quiet")
            .unwrap_err()
            .to_string()
            .contains("cannot tell"));
        assert!(slot("ota.slot=c").is_err());
        assert!(slot("androidboot.slot_suffix=a").is_err());
        assert!(slot("ota.slot=a root=PARTLABEL=boot").is_err());
        assert!(slot("root=PARTUUID=11111111-0000-0000-0000-00000000000f").is_err());
        assert!(slot("root=/dev/vda9").is_err());
    }
}

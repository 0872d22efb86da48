//! Images written by mkenvimage and libubootenv's fw_setenv (testdata/README.md
//! says how they were made): we decode them to the known variables, pick the
//! copy libubootenv picked, and encode byte-identical images.

use uboot_env::image::{self, Layout};
use uboot_env::{EnvStore, FwEnvConfig};

use crate::common::env;

const ENV_TXT: &[(&str, &str)] = &[
    ("bootcmd", "run distro_bootcmd"),
    ("bootargs", "console=ttyS0 root=PARTLABEL=rootfs_a"),
    ("ota_slot", "a"),
    ("bootcount", "0"),
];

#[test]
fn mkenvimage_single_images_decode() {
    for img in [
        &include_bytes!("../../testdata/mkenvimage-single-ff.bin")[..],
        &include_bytes!("../../testdata/mkenvimage-single-00.bin")[..],
    ] {
        assert_eq!(
            image::decode(img, Layout::Single).unwrap(),
            (env(ENV_TXT), None)
        );
    }
}

#[test]
fn our_images_equal_mkenvimage_with_sorted_input_and_zero_padding() {
    let e = env(ENV_TXT);
    assert_eq!(
        image::encode(&e, 0x100, Layout::Single, 0).unwrap(),
        include_bytes!("../../testdata/mkenvimage-single-00.bin")
    );
    assert_eq!(
        image::encode(&e, 0x100, Layout::Redundant, 1).unwrap(),
        include_bytes!("../../testdata/mkenvimage-redundant-00.bin")
    );
}

#[test]
fn fw_setenv_redundant_pair_reads_the_newer_copy() {
    let pair = include_bytes!("../../testdata/fw_setenv-redundant.bin");
    let (older, f0) = image::decode(&pair[..0x100], Layout::Redundant).unwrap();
    let (newer, f1) = image::decode(&pair[0x100..], Layout::Redundant).unwrap();
    assert_eq!((f0, f1), (Some(2), Some(3)));
    assert_eq!(older.get("ota_slot"), Some("a"));
    let mut want = env(ENV_TXT);
    want.set("ota_slot", "b").unwrap();
    want.set("bootcount", "1").unwrap();
    want.set("upgrade_available", "1").unwrap();
    assert_eq!(newer, want);

    // Through the store, from a copy of the file: the newer copy, and our next
    // write goes over the older one with flags 4.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("env.bin");
    std::fs::write(&path, pair).unwrap();
    let text = format!("{0} 0 0x100\n{0} 0x100 0x100\n", path.display());
    let mut store = EnvStore::open(&FwEnvConfig::parse(&text).unwrap()).unwrap();
    assert_eq!(store.read().unwrap(), want);
    assert_eq!(store.current_copy(), Some(1));
    store.write(&env(ENV_TXT)).unwrap();
    let after = std::fs::read(&path).unwrap();
    assert_eq!(
        after[0x100..],
        pair[0x100..],
        "the current copy is untouched"
    );
    assert_eq!(
        image::decode(&after[..0x100], Layout::Redundant).unwrap(),
        (env(ENV_TXT), Some(4))
    );
}

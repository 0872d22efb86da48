//! Property tests: every encode/decode pair round-trips, and hostile bytes or
//! text never panic a parser.

use proptest::collection::{btree_map, vec};
use proptest::prelude::*;

use uboot_env::image::{self, FlagsKind, Layout};
use uboot_env::{script, Env, Error, FwEnvConfig};

/// Names U-Boot can store: non-empty, no '=' and no NUL (any other char).
fn name() -> impl Strategy<Value = String> {
    "[^=\u{0}]{1,12}"
}

/// Values: anything but NUL (newlines, '=', UTF-8 included).
fn value() -> impl Strategy<Value = String> {
    "[^\u{0}]{0,24}"
}

fn env() -> impl Strategy<Value = Env> {
    btree_map(name(), value(), 0..12).prop_map(|m| {
        let mut e = Env::new();
        for (n, v) in &m {
            e.set(n, v).unwrap();
        }
        e
    })
}

fn layout() -> impl Strategy<Value = Layout> {
    prop_oneof![Just(Layout::Single), Just(Layout::Redundant)]
}

proptest! {
    #[test]
    fn data_round_trip(e in env(), slack in 0usize..64) {
        let data = e.encode_data(e.encoded_len() + slack).unwrap();
        prop_assert_eq!(Env::decode_data(&data).unwrap(), e);
    }

    #[test]
    fn image_round_trip(e in env(), layout in layout(), flags: u8, slack in 0usize..64) {
        let size = e.encoded_len() + layout.header_len() + slack;
        let img = image::encode(&e, size, layout, flags).unwrap();
        prop_assert_eq!(img.len(), size);
        let want_flags = (layout == Layout::Redundant).then_some(flags);
        prop_assert_eq!(image::decode(&img, layout).unwrap(), (e, want_flags));
    }

    #[test]
    fn one_byte_short_is_too_large(e in env(), layout in layout()) {
        let size = e.encoded_len() + layout.header_len() - 1;
        let too_large = matches!(image::encode(&e, size, layout, 0), Err(Error::TooLarge { .. }));
        prop_assert!(too_large);
    }

    #[test]
    fn hostile_images_never_panic(bytes in vec(any::<u8>(), 0..256), layout in layout()) {
        let _ = image::decode(&bytes, layout);
        let _ = Env::decode_data(&bytes);
    }

    /// A data area with a valid CRC but arbitrary content decodes or errors,
    /// never panics, and what it decodes re-encodes to a decodable image.
    #[test]
    fn crc_valid_garbage_is_handled(data in vec(any::<u8>(), 1..256)) {
        let mut img = image::crc32(&data).to_le_bytes().to_vec();
        img.extend_from_slice(&data);
        if let Ok((e, _)) = image::decode(&img, Layout::Single) {
            let again = image::encode(&e, img.len() + e.encoded_len(), Layout::Single, 0).unwrap();
            prop_assert_eq!(image::decode(&again, Layout::Single).unwrap().0, e);
        }
    }

    /// An environment printed as `name=value` script lines (fw_printenv's
    /// format) and parsed back is the same environment, when no value holds
    /// a newline and no name starts with whitespace or '#' or holds a space
    /// before an '=' (what a line-based format cannot carry).
    #[test]
    fn script_round_trip(
        m in btree_map("[A-Za-z0-9_.][^=\u{0}\n\r \t]{0,10}", "[^\u{0}\n\r]{1,20}", 0..10)
    ) {
        let text: String = m.iter().map(|(n, v)| format!("{n}={v}\n")).collect();
        let mut e = Env::new();
        script::apply(&mut e, &script::parse(&text, "-").unwrap()).unwrap();
        let got: Vec<(String, String)> =
            e.iter().map(|(n, v)| (n.to_owned(), v.to_owned())).collect();
        let want: Vec<(String, String)> = m.into_iter().collect();
        prop_assert_eq!(got, want);
    }

    #[test]
    fn hostile_text_never_panics(text in "\\PC{0,200}") {
        let _ = FwEnvConfig::parse(&text);
        let _ = script::parse(&text, "-");
    }
}

/// Whatever the two flags are (all 65536 pairs, both schemes), writing after
/// the selected copy with `next` flags makes the written copy selected.
#[test]
fn next_flags_always_win() {
    for kind in [FlagsKind::Incremental, FlagsKind::Boolean] {
        for f0 in 0..=255u8 {
            for f1 in 0..=255u8 {
                let cur = image::select(Some(f0), Some(f1), kind).unwrap();
                let cur_flags = if cur == 0 { f0 } else { f1 };
                let new = kind.next(Some(cur_flags));
                // Boolean writers then mark the old copy obsolete (0).
                let old = match kind {
                    FlagsKind::Boolean => image::BOOLEAN_OBSOLETE,
                    FlagsKind::Incremental => cur_flags,
                };
                let (g0, g1) = if cur == 0 { (old, new) } else { (new, old) };
                assert_eq!(
                    image::select(Some(g0), Some(g1), kind),
                    Some(1 - cur),
                    "{kind:?} {f0:#x} {f1:#x}"
                );
            }
        }
    }
}

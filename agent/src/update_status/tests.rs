//! Tests of `update_status`.

use super::*;
use proptest::prelude::*;

fn sample() -> UpdateStatus {
    UpdateStatus {
        format: FORMAT,
        phase: Phase::Downloading,
        version: Some("1.4.0".into()),
        from_version: Some("1.3.0".into()),
        slot: Some(Slot::B),
        image: Some("rootfs".into()),
        phase_bytes_done: 12_897_485,
        phase_bytes_total: Some(28_311_552),
        bytes_done: 12_897_485,
        bytes_total: Some(28_311_552),
        percent: Some(45),
        rate_bps: Some(1_048_576),
        eta_s: Some(15),
        error: None,
        time: 1_795_564_800,
    }
}

const PHASES: [Phase; 11] = [
    Phase::Idle,
    Phase::Checking,
    Phase::Downloading,
    Phase::Downloaded,
    Phase::Verifying,
    Phase::Writing,
    Phase::ReadingBack,
    Phase::Activating,
    Phase::Installed,
    Phase::Rebooting,
    Phase::Failed,
];

#[test]
fn phase_names_are_the_serialized_names() {
    for p in PHASES {
        assert_eq!(
            serde_json::to_value(p).unwrap(),
            serde_json::Value::String(p.name().into())
        );
    }
    // Spelled out once, independent of serde's renaming.
    assert_eq!(Phase::ReadingBack.name(), "reading-back");
}

#[test]
fn the_documented_example_parses_and_is_what_the_agent_writes() {
    let doc = include_str!("../../../docs/update-status.md");
    let text = doc
        .split("```json\n")
        .nth(1)
        .and_then(|t| t.split("```").next())
        .expect("docs/update-status.md has a json example");
    assert_eq!(parse(text.as_bytes()).unwrap(), sample());
    let out = encode(&sample()).unwrap();
    assert_eq!(String::from_utf8(out).unwrap(), text);
}

#[test]
fn the_file_is_the_document_padded_to_a_fixed_size_in_place() {
    let dir = tempfile::tempdir().unwrap();
    let state = StateDir::new(dir.path().join("state"));
    let mut w = StatusWriter::new(&state, Some("1.3.0".into()));
    let t0 = Instant::now();
    w.target("1.4.0", Some(Slot::B), Some(1000));
    w.begin_at(t0, Phase::Downloading, Some("rootfs"), Some(1000));
    let path = state.update_status_path();
    let b = std::fs::read(&path).unwrap();
    assert_eq!(b.len(), FILE_LEN);
    let text = encode(w.doc()).unwrap();
    assert!(b.starts_with(&text) && b[text.len()..].iter().all(|&c| c == b' '));
    assert_eq!(read(&state).unwrap().unwrap().phase, Phase::Downloading);
    // The longest error the writer keeps still fits, pretty-printed.
    w.fail(&"e".repeat(5 * MAX_ERROR_LEN));
    let b = std::fs::read(&path).unwrap();
    assert_eq!(b.len(), FILE_LEN);
    let on_disk = read(&state).unwrap().unwrap();
    assert_eq!(on_disk.phase, Phase::Failed);
    assert!(std::str::from_utf8(&b).unwrap().contains("\n  \"phase\""));
    // A document too large even compact is refused, the file unchanged.
    let mut huge = w.doc().clone();
    huge.version = Some("v".repeat(FILE_LEN));
    assert!(encode(&huge).unwrap_err().contains("exceeds"));
    // One that fits only compact (with its newline: exactly FILE_LEN).
    huge.version = Some(String::new());
    let base = serde_json::to_vec(&huge).unwrap().len();
    huge.version = Some("v".repeat(FILE_LEN - base - 1));
    let compact = encode(&huge).unwrap();
    assert_eq!(compact.len(), FILE_LEN);
    assert!(!compact.contains(&b' '));
    assert_eq!(parse(&compact).unwrap(), huge);
}

#[test]
fn unknown_phase_other_format_and_garbage_are_refused() {
    let good = serde_json::to_string(&sample()).unwrap();
    let bad_phase = good.replace("\"downloading\"", "\"installing\"");
    assert!(parse(bad_phase.as_bytes())
        .unwrap_err()
        .contains("installing"));
    let v2 = good.replace("\"format\":1", "\"format\":2");
    assert!(parse(v2.as_bytes()).unwrap_err().contains("format 2"));
    let torn = &good.as_bytes()[..good.len() / 2];
    assert!(parse(torn).is_err());
    assert!(parse(b"\x00\xff garbage").is_err());
    assert!(parse(b"").is_err());
    let pct = good.replace("\"percent\":45", "\"percent\":101");
    assert!(parse(pct.as_bytes()).is_err());
    let past = good.replace("\"bytes_done\":12897485", "\"bytes_done\":99999999");
    assert!(parse(past.as_bytes()).unwrap_err().contains("exceed"));
    // Unknown fields are ignored (additive changes within format 1).
    let extra = good.replacen('{', "{\"new_field\":[1,2],", 1);
    assert_eq!(parse(extra.as_bytes()).unwrap(), sample());
}

#[test]
fn read_reports_a_corrupt_file_and_none_when_absent() {
    let dir = tempfile::tempdir().unwrap();
    let sd = StateDir::new(dir.path());
    assert_eq!(read(&sd).unwrap(), None);
    std::fs::write(sd.update_status_path(), b"{\"format\":1,\"pha").unwrap();
    let e = read(&sd).unwrap_err().to_string();
    assert!(
        e.contains("update-status.json") && e.contains("corrupt"),
        "{e}"
    );
}

#[test]
fn writer_records_phases_at_once_and_bytes_at_most_once_a_second() {
    let dir = tempfile::tempdir().unwrap();
    let state = StateDir::new(dir.path().join("state"));
    let mut w = StatusWriter::new(&state, Some("1.3.0".into()));
    let t0 = Instant::now();
    w.begin_at(t0, Phase::Checking, None, None);
    assert_eq!(read(&state).unwrap().unwrap().phase, Phase::Checking);
    w.target("1.4.0", Some(Slot::B), Some(1000));
    w.begin_at(t0, Phase::Downloading, Some("rootfs"), Some(1000));
    let on_disk = read(&state).unwrap().unwrap();
    assert_eq!(on_disk.phase, Phase::Downloading);
    assert_eq!(on_disk.version.as_deref(), Some("1.4.0"));
    assert_eq!(on_disk.from_version.as_deref(), Some("1.3.0"));
    assert_eq!(on_disk.percent, Some(0));
    // Within the second after the phase began: kept in memory only.
    assert!(!w.advance_at(t0 + Duration::from_millis(500), 100, 100));
    assert_eq!(w.doc().phase_bytes_done, 100);
    assert_eq!(read(&state).unwrap().unwrap().phase_bytes_done, 0);
    // A second later: written, with a rate (400 B over 1 s from the
    // first progress at 500 ms) and an ETA.
    assert!(w.advance_at(t0 + Duration::from_millis(1500), 500, 500));
    let on_disk = read(&state).unwrap().unwrap();
    assert_eq!(on_disk.phase_bytes_done, 500);
    assert_eq!(on_disk.percent, Some(50));
    assert_eq!(on_disk.rate_bps, Some(400));
    assert_eq!(on_disk.eta_s, Some(2));
    assert!(!w.advance_at(t0 + Duration::from_millis(1600), 600, 600));
    // The phase's last byte is always written.
    assert!(w.advance_at(t0 + Duration::from_millis(1700), 1000, 1000));
    assert_eq!(read(&state).unwrap().unwrap().percent, Some(100));
    w.fail("writing: disk full\nsecond line");
    let on_disk = read(&state).unwrap().unwrap();
    assert_eq!(on_disk.phase, Phase::Failed);
    assert_eq!(on_disk.error.as_deref(), Some("writing: disk full"));
    assert_eq!(on_disk.version.as_deref(), Some("1.4.0"));
    // A new run clears the target and the error.
    w.begin_at(t0, Phase::Idle, None, None);
    let on_disk = read(&state).unwrap().unwrap();
    assert_eq!(
        on_disk,
        UpdateStatus::idle(Some("1.3.0".into())).with_time(on_disk.time)
    );
    // Resuming continues the document on disk.
    let r = StatusWriter::resume(&state, None);
    assert_eq!(r.doc().phase, Phase::Idle);
}

#[test]
fn mcu_phases_and_display_percent() {
    use crate::mcu::Phase as M;
    assert_eq!(Phase::Checking.mcu(), None);
    assert_eq!(Phase::Idle.mcu(), None);
    assert_eq!(Phase::Downloading.mcu(), Some(M::Downloading));
    assert_eq!(Phase::ReadingBack.mcu(), Some(M::Installing));
    assert_eq!(Phase::Installed.mcu(), Some(M::Done));
    assert_eq!(Phase::Failed.mcu(), Some(M::Failed));
    let mut d = sample();
    d.phase = Phase::Downloading;
    d.percent = Some(7);
    d.bytes_done = 0;
    assert_eq!(d.display_percent(), 7);
    d.phase = Phase::ReadingBack;
    d.bytes_done = 28_311_552;
    assert_eq!(d.display_percent(), 100);
}

#[test]
fn summary_line() {
    let d = sample();
    assert_eq!(d.summary(), "downloading 1.4.0 45% (12.3 MiB/27.0 MiB)");
    let mut i = sample();
    i.phase = Phase::Installed;
    assert_eq!(i.summary(), "installed 1.4.0 in slot b");
    i.phase = Phase::Failed;
    i.error = Some("no space".into());
    assert_eq!(i.summary(), "failed 1.4.0: no space");
    assert_eq!(UpdateStatus::idle(None).summary(), "idle");
}

impl UpdateStatus {
    fn with_time(mut self, t: u64) -> Self {
        self.time = t;
        self
    }
}

fn any_phase() -> impl Strategy<Value = Phase> {
    proptest::sample::select(PHASES.to_vec())
}

proptest! {
    /// Whatever is in the file, reading it returns (no panic).
    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = parse(&bytes);
    }

    /// A document cut anywhere (what a non-atomic writer would leave)
    /// is refused, never half-trusted.
    #[test]
    fn every_truncation_is_refused(cut in 0usize..400) {
        let text = serde_json::to_vec_pretty(&sample()).unwrap();
        let cut = cut.min(text.len() - 1);
        prop_assert!(parse(&text[..cut]).is_err());
    }

    #[test]
    fn round_trip(
        phase in any_phase(),
        version in proptest::option::of("[0-9]{1,3}\\.[0-9]{1,3}\\.[0-9]{1,3}"),
        slot in proptest::option::of(prop_oneof![Just(Slot::A), Just(Slot::B)]),
        done in 0u64..1 << 40,
        extra in 0u64..1 << 40,
        known in any::<bool>(),
        rate in proptest::option::of(any::<u64>()),
        error in proptest::option::of("[ -~]{0,40}"),
        time in any::<u64>(),
    ) {
        let total = known.then_some(done + extra);
        let doc = UpdateStatus {
            format: FORMAT,
            phase,
            version: version.clone(),
            from_version: version,
            slot,
            image: Some("rootfs".into()),
            phase_bytes_done: done,
            phase_bytes_total: total,
            bytes_done: done,
            bytes_total: total,
            percent: total.map(|t| percent(done, t)),
            rate_bps: rate,
            eta_s: rate,
            error,
            time,
        };
        let bytes = serde_json::to_vec_pretty(&doc).unwrap();
        prop_assert_eq!(parse(&bytes).unwrap(), doc);
    }
}

//! Stores COUNT install-journal checkpoints into STATE_DIR with the
//! agent's own journal code (tests/durable-vfat.sh runs it on a real vfat
//! filesystem and checks that overwriting allocates nothing).
//!
//!   journal_store STATE_DIR COUNT

use ota_agent::bundle::Digest;
use ota_agent::install::journal::{Journal, Phase, Record};
use ota_agent::slots::Slot;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (Some(dir), Some(count)) = (args.get(1), args.get(2).and_then(|c| c.parse::<u64>().ok()))
    else {
        eprintln!("usage: journal_store STATE_DIR COUNT");
        std::process::exit(2);
    };
    let journal = Journal::new(std::path::Path::new(dir));
    let mut seq = 0;
    for i in 0..count {
        let record = Record {
            manifest: Digest([7; 32]),
            slot: Slot::B,
            phase: Phase::Writing,
            image: 0,
            offset: i << 22,
            payload_offset: i << 22,
            prefix: Digest::of(&i.to_le_bytes()),
        };
        seq = journal.store(&record).expect("store");
    }
    let (last, got_seq) = journal.load_with_seq().expect("a record");
    assert_eq!(last.offset, (count - 1) << 22);
    assert_eq!(got_seq, seq);
    println!(
        "stored {count} checkpoints, newest seq {seq} at byte {}",
        last.offset
    );
}

//! Where an install starts: from the journal, only for the same manifest
//! into the same slot.

use super::decode::ResumePoint;
use super::journal::{self, Journal, Record};
use super::Approved;
use crate::slots::Slot;

/// Where a run starts: the first image to write and, inside it, the
/// journal's resume point.
pub(super) struct Start {
    /// The first image to write (all done: `images.len()`).
    pub first: usize,
    /// Where inside it.
    pub within: Option<ResumePoint>,
    /// The journal record resumed from.
    pub record: Option<Record>,
}

/// The journal: resume only the same manifest into the same slot.
pub(super) fn start_point(journal: &Journal, approved: &Approved, target: Slot) -> Start {
    let m = approved.manifest();
    let resume = match journal.load_with_seq() {
        Some((r, seq)) if r.manifest == approved.digest() && r.slot == target => {
            let n = m.images.len() as u16;
            if r.image > n || (r.image == n && r.phase == journal::Phase::Writing && r.offset > 0) {
                log::warn!("install journal points past the last image; starting over");
                None
            } else {
                Some((r, seq))
            }
        }
        Some((r, _)) => {
            // Not cleared here (a refusal below must change nothing):
            // this install's first record supersedes it.
            log::warn!(
                "install journal is for manifest {} into slot {}, not this one; ignored",
                r.manifest,
                r.slot
            );
            None
        }
        None => None,
    };
    match resume {
        Some((r, _)) if r.phase == journal::Phase::Written => Start {
            first: m.images.len(),
            within: None,
            record: Some(r),
        },
        Some((r, seq)) => Start {
            first: usize::from(r.image),
            within: Some(ResumePoint {
                offset: r.offset,
                payload_offset: r.payload_offset,
                prefix: r.prefix,
                seq,
            }),
            record: Some(r),
        },
        None => Start {
            first: 0,
            within: None,
            record: None,
        },
    }
}

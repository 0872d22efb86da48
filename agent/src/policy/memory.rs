//! What the policy remembers in `state_dir`, each written with
//! `durable::replace` (a power cut leaves the old or the new file):
//!
//! * `policy-refused`: the release a hook refused (`VERSION` line, then
//!   the reason line). The channel check skips that release; a newer one
//!   replaces the record's meaning. Delete the file to be asked again.
//! * `policy-deferrals`: `VERSION FIRST COUNT` — since when (UTC seconds)
//!   and how often hooks deferred a `critical` release, so the bound on
//!   its deferral survives reboots and power cuts.

use crate::state::{StateDir, POLICY_DEFERRALS_FILE as DEFERRALS, POLICY_REFUSED_FILE as REFUSED};
use crate::Result;

/// The refused release and why, if a hook refused one.
pub fn refused(state: &StateDir) -> Option<(semver::Version, String)> {
    let text = std::fs::read_to_string(state.path().join(REFUSED)).ok()?;
    let mut lines = text.lines();
    let v = semver::Version::parse(lines.next()?.trim()).ok()?;
    Some((v, lines.next().unwrap_or("").to_owned()))
}

pub(super) fn refuse(state: &StateDir, version: &str, why: &str) -> Result<()> {
    state.ensure()?;
    let why = crate::report::record::one_line(why);
    crate::durable::replace(
        &state.path().join(REFUSED),
        format!("{version}\n{why}\n").as_bytes(),
    )
}

/// `(first deferral, count)` of `version`, if it is the counted release.
pub(super) fn deferrals(state: &StateDir, version: &str) -> Option<(i64, u32)> {
    let text = std::fs::read_to_string(state.path().join(DEFERRALS)).ok()?;
    let mut f = text.split_whitespace();
    if f.next()? != version {
        return None;
    }
    Some((f.next()?.parse().ok()?, f.next()?.parse().ok()?))
}

pub(super) fn count_deferral(
    state: &StateDir,
    version: &str,
    first: i64,
    count: u32,
) -> Result<()> {
    state.ensure()?;
    crate::durable::replace(
        &state.path().join(DEFERRALS),
        format!("{version} {first} {count}\n").as_bytes(),
    )
}

/// Drops the deferral count (the release was installed and activated).
pub fn forget_deferrals(state: &StateDir) {
    let p = state.path().join(DEFERRALS);
    if let Err(e) = std::fs::remove_file(&p) {
        if e.kind() != std::io::ErrorKind::NotFound {
            log::warn!("{}: {e}", p.display());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_are_per_release() {
        let d = tempfile::tempdir().unwrap();
        let s = StateDir::new(d.path().join("state"));
        assert_eq!(refused(&s), None);
        assert_eq!(deferrals(&s, "1.1.0"), None);
        refuse(&s, "1.1.0", "hook 20-x refused 1.1.0: too big\nsecond line").unwrap();
        assert_eq!(
            refused(&s),
            Some((
                semver::Version::new(1, 1, 0),
                "hook 20-x refused 1.1.0: too big".into()
            ))
        );
        count_deferral(&s, "1.1.0", 1000, 3).unwrap();
        assert_eq!(deferrals(&s, "1.1.0"), Some((1000, 3)));
        assert_eq!(deferrals(&s, "1.2.0"), None);
        forget_deferrals(&s);
        assert_eq!(deferrals(&s, "1.1.0"), None);
    }
}

//! The action the device works on, recorded in `<state_dir>/hawkbit/action`
//! (and, once it closed with success, in `last-success`): its text format
//! and the power-safe reads and writes of both files.

use std::path::Path;

use crate::slots::Slot;
use crate::state::{HAWKBIT_ACTION_FILE as ACTION_FILE, HAWKBIT_DONE_FILE as DONE_FILE};
use crate::{Error, Result};

/// The action the device works on, as recorded in `state_dir`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Action {
    /// The action id.
    pub(super) id: String,
    /// Feedback URL of the action.
    pub(super) feedback: String,
    /// Release version offered.
    pub(super) version: String,
    /// The slot written and activated; `None` until activation.
    pub(super) slot: Option<Slot>,
}

/// First line of the action file.
const ACTION_HEADER: &str = "ota-hawkbit-action 1";

impl Action {
    /// Lines `name value` (written by hand: a serde derive costs the
    /// binary more than this):
    ///
    /// ```text
    /// ota-hawkbit-action 1
    /// id 7
    /// version 2.0.0
    /// slot b                  (- before activation)
    /// feedback <url>
    /// ```
    ///
    /// (The final feedback, once decided, waits in the report queue.)
    pub(super) fn to_text(&self) -> String {
        format!(
            "{ACTION_HEADER}\nid {}\nversion {}\nslot {}\nfeedback {}\n",
            self.id,
            self.version,
            self.slot.map_or("-".into(), |s| s.to_string()),
            self.feedback
        )
    }

    pub(super) fn parse(text: &str) -> Option<Action> {
        let mut lines = text.lines();
        if lines.next()? != ACTION_HEADER {
            return None;
        }
        let mut a = Action {
            id: String::new(),
            feedback: String::new(),
            version: String::new(),
            slot: None,
        };
        for l in lines {
            let (k, v) = l.split_once(' ')?;
            match k {
                "id" => a.id = v.into(),
                "version" => a.version = v.into(),
                "feedback" => a.feedback = v.into(),
                "slot" if v == "-" => a.slot = None,
                "slot" => a.slot = Some(v.parse().ok()?),
                _ => return None,
            }
        }
        (!a.id.is_empty() && !a.feedback.is_empty()).then_some(a)
    }
}

/// Reads an action file; a damaged one is logged and ignored.
pub(super) fn read_action(p: &Path) -> Option<Action> {
    let text = std::fs::read_to_string(p).ok()?;
    let a = Action::parse(&text);
    if a.is_none() {
        log::warn!("{}: damaged; ignored", p.display());
    }
    a
}

/// The recorded action in `state`, if any (a damaged record is ignored).
pub(super) fn load(state: &Path) -> Option<Action> {
    read_action(&state.join(ACTION_FILE))
}

/// Records `a` as the action being worked on (atomic replace).
pub(super) fn save(state: &Path, a: &Action) -> Result<()> {
    crate::durable::replace(&state.join(ACTION_FILE), a.to_text().as_bytes())
}

/// Removes the record of the action being worked on.
pub(super) fn forget(state: &Path) -> Result<()> {
    let p = state.join(ACTION_FILE);
    match std::fs::remove_file(&p) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io(&p, e)),
    }
}

/// The last action that closed with success, if recorded.
pub(super) fn load_done(state: &Path) -> Option<Action> {
    read_action(&state.join(DONE_FILE))
}

/// Records `a` as the last action that closed with success.
pub(super) fn save_done(state: &Path, a: &Action) -> Result<()> {
    crate::durable::replace(&state.join(DONE_FILE), a.to_text().as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn action_record_round_trips_and_damage_is_refused() {
        let mut a = Action {
            id: "7".into(),
            feedback: "http://h/T/controller/v1/c/deploymentBase/7/feedback".into(),
            version: "2.0.0".into(),
            slot: None,
        };
        assert_eq!(Action::parse(&a.to_text()), Some(a.clone()));
        a.slot = Some(Slot::B);
        assert_eq!(Action::parse(&a.to_text()), Some(a.clone()));
        let t = a.to_text();
        assert_eq!(Action::parse(&t.replace("slot b", "slot q")), None);
        assert_eq!(Action::parse(&t[1..]), None);
        assert_eq!(Action::parse(&t.replace("id 7\n", "")), None);
    }
}

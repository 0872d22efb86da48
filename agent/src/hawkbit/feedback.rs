//! What the device tells the server: action feedback (final and
//! `proceeding` documents, the install's progress as `proceeding`
//! feedback) and the configData attributes.

use super::ddi::{self, Feedback, Steps};
use super::host::Host;
use crate::config::Config;
use crate::net::Client;
use crate::slots::Slot;
use crate::update_status::{Phase, Progress};
use crate::Result;

/// Steps of the `progress` counter: download, write, read-back, activation.
pub(super) const STEPS: u32 = 4;

/// POSTs the feedback document `f` to `url`.
pub(super) fn send(client: &Client, url: &str, f: &Feedback) -> Result<()> {
    client.send_json("POST", url, f.json.as_bytes())?;
    Ok(())
}

/// A `proceeding` feedback; a failure to send it is logged, not fatal.
pub(super) fn proceeding(client: &Client, url: &str, cnt: u32, detail: String) {
    let f = Feedback::new("proceeding", "none", Some(Steps { cnt, of: STEPS }), detail);
    if let Err(e) = send(client, url, &f) {
        log::warn!("hawkbit: progress feedback not sent: {e}");
    }
}

/// Answers configData: PUTs the device's attributes (mode `replace`).
pub(super) fn put_config_data(
    client: &Client,
    config: &Config,
    host: &mut dyn Host,
    url: &str,
) -> Result<()> {
    let mut data = Vec::new();
    let mut put = |k: &str, v: Option<String>| {
        if let Some(v) = v {
            data.push(format!("{}:{}", ddi::quote(k), ddi::quote(&v)));
        }
    };
    // goosebit keys its hardware and version on these names (as SWUpdate sends them).
    put("hw_boardname", Some(config.product.clone()));
    put("hw_revision", config.hardware.clone());
    put("sw_version", host.installed_version());
    put("agent_version", Some(env!("CARGO_PKG_VERSION").into()));
    match host.boot() {
        Ok(b) => {
            put("booted_slot", Some(b.booted.to_string()));
            put("boot_control", Some(b.backend.into()));
        }
        Err(e) => log::warn!("hawkbit: boot control unavailable: {e}"),
    }
    let doc = format!("{{\"mode\":\"replace\",\"data\":{{{}}}}}", data.join(","));
    client.send_json("PUT", url, doc.as_bytes())?;
    log::info!("hawkbit: configData sent");
    Ok(())
}

/// Install progress as DDI `proceeding` feedback (write = 2, read-back = 3,
/// activation = 4 of 4), at most one per phase and 10 % step.
pub(super) struct FeedbackProgress<'a> {
    pub(super) client: &'a Client,
    pub(super) url: &'a str,
    pub(super) last: String,
}

impl Progress for FeedbackProgress<'_> {
    fn target(&mut self, _: &str, _: Option<Slot>, _: Option<u64>) {}
    fn begin(&mut self, phase: Phase, image: Option<&str>, _: Option<u64>) {
        let (cnt, name) = match phase {
            Phase::Verifying => (1, "Verifying"),
            Phase::Writing | Phase::Downloading => (1, "Writing"),
            Phase::ReadingBack => (2, "Reading back"),
            Phase::Activating => (3, "Activating"),
            _ => return,
        };
        let what = match image {
            Some(i) => format!("{name} {i}"),
            None => name.to_owned(),
        };
        if what != self.last {
            proceeding(self.client, self.url, cnt, what.clone());
            self.last = what;
        }
    }
    fn advance(&mut self, _: u64, _: u64) {}
    fn fail(&mut self, _: &str) {}
}

//! `ota-agent mcu status`: asks the appliance MCU for its state (diagnostic).
//!
//! Prints `state: <name>` and exits 0 when the MCU answers; a silent or
//! misbehaving MCU, or a config without `[mcu]`, is a one-line error (exit 1).

use std::ffi::OsString;

use super::args::{string, Globals};
use crate::{Error, Result};

/// `ota-agent mcu …`
pub fn run(globals: &Globals, args: Vec<OsString>) -> Result<i32> {
    let mut args = args.into_iter();
    let sub = args.next().map(string).transpose()?;
    match (sub.as_deref(), args.next()) {
        (Some("status"), None) => status(globals),
        (Some("status"), Some(extra)) => Err(Error::Usage(format!(
            "mcu status: unexpected argument {extra:?}"
        ))),
        (Some(other), _) => Err(Error::Usage(format!(
            "unknown mcu command `{other}` (expected `mcu status`)"
        ))),
        (None, _) => Err(Error::Usage("mcu: missing command (`mcu status`)".into())),
    }
}

fn status(globals: &Globals) -> Result<i32> {
    let config = globals.config()?;
    let Some(mcu_config) = &config.mcu else {
        return Err(Error::Config {
            path: globals.config_path.clone(),
            reason: "no [mcu] section: no appliance mcu is configured".into(),
        });
    };
    let mut mcu = crate::mcu::open(mcu_config)?;
    let state = mcu.state()?;
    println!("state: {state}");
    Ok(0)
}

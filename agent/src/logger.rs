//! A tiny stderr logger for the `log` facade (env_logger would add ~94 KB to the
//! static binary). Level from `-v`/`-q`; lines look like `ota-agent: warn: …`.

use log::{Level, LevelFilter, Log, Metadata, Record};

struct Stderr;

static LOGGER: Stderr = Stderr;

impl Log for Stderr {
    fn enabled(&self, metadata: &Metadata) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &Record) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let level = match record.level() {
            Level::Error => "error",
            Level::Warn => "warn",
            Level::Info => "info",
            Level::Debug => "debug",
            Level::Trace => "trace",
        };
        eprintln!("ota-agent: {level}: {}", record.args());
    }

    fn flush(&self) {}
}

/// Installs the logger. `verbosity` 0 shows warnings and errors, 1 adds info,
/// 2 debug, 3+ trace (debug builds only: release builds compile trace
/// records out, see the root Cargo.toml); negative values show errors only.
pub fn init(verbosity: i32) {
    let filter = match verbosity {
        i32::MIN..=-1 => LevelFilter::Error,
        0 => LevelFilter::Warn,
        1 => LevelFilter::Info,
        2 => LevelFilter::Debug,
        _ => LevelFilter::Trace,
    };
    // A second call (tests) keeps the first logger; only the level changes.
    let _ = log::set_logger(&LOGGER);
    log::set_max_level(filter);
}

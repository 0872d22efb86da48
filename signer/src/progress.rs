//! Progress on a terminal: a line on stderr, redrawn twice a second, naming
//! the phase, the elapsed time and (when known) a percentage. Nothing is
//! printed when stderr is not a TTY (build systems, tests).

use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

#[derive(Default)]
struct Shared {
    phase: Mutex<(String, u64)>, // (name, total bytes or 0 = unknown)
    done: AtomicU64,
    stop: AtomicBool,
}

/// A progress line; dropping it ends the line.
pub struct Progress {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl Progress {
    /// Starts a progress line for `what` (only on a TTY).
    pub fn start(what: &str) -> Progress {
        let shared = Arc::new(Shared::default());
        let thread = std::io::stderr().is_terminal().then(|| {
            let s = Arc::clone(&shared);
            let what = what.to_owned();
            std::thread::spawn(move || {
                let t0 = Instant::now();
                while !s.stop.load(Ordering::Relaxed) {
                    let (phase, total) = s.phase.lock().map(|p| p.clone()).unwrap_or_default();
                    let done = s.done.load(Ordering::Relaxed);
                    let pct = (done.min(total) * 100)
                        .checked_div(total)
                        .map(|p| format!(" {p:3}%"))
                        .unwrap_or_default();
                    eprint!("\r\x1b[K{what}: {phase}{pct} ({}s)", t0.elapsed().as_secs());
                    let _ = std::io::stderr().flush();
                    std::thread::sleep(Duration::from_millis(500));
                }
                eprintln!("\r\x1b[K{what}: done in {:.1}s", t0.elapsed().as_secs_f64());
            })
        });
        Progress { shared, thread }
    }

    /// Enters a new phase; `total` bytes (0 = unknown) for a percentage.
    pub fn phase(&self, name: &str, total: u64) {
        if let Ok(mut p) = self.shared.phase.lock() {
            *p = (name.to_owned(), total);
        }
        self.shared.done.store(0, Ordering::Relaxed);
    }

    /// Adds `n` bytes of progress in the current phase.
    pub fn add(&self, n: u64) {
        self.shared.done.fetch_add(n, Ordering::Relaxed);
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A writer that reports what passes through it to a [`Progress`].
pub struct Counting<'a, W> {
    /// The wrapped writer.
    pub inner: W,
    /// Where to report.
    pub progress: &'a Progress,
}

impl<W: Write> Write for Counting<'_, W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.progress.add(n as u64);
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

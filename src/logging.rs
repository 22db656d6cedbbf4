//! A minimal `log` backend: one line per record on stderr, UTC timestamp, level, the shard
//! (or `main`), message. The level comes from `TESSERA_LOG` (error, warn, info, debug,
//! trace; default info).

use log::{Level, LevelFilter, Log, Metadata, Record};
use std::cell::Cell;
use std::io::Write;

struct StderrLogger;

impl Log for StderrLogger {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &Record<'_>) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let mut ts = Vec::with_capacity(24);
        crate::utc::write_iso8601(&mut ts, crate::utc::now_ms());
        let level = match record.level() {
            Level::Error => "ERROR",
            Level::Warn => "WARN ",
            Level::Info => "INFO ",
            Level::Debug => "DEBUG",
            Level::Trace => "TRACE",
        };
        let place = match SHARD.with(Cell::get) {
            Some(id) => format!("shard {id}"),
            None => "main".to_string(),
        };
        // One write per line so lines from different shards never interleave.
        let line = format!(
            "{} {level} [{place}] {}\n",
            String::from_utf8_lossy(&ts),
            record.args()
        );
        let _ = std::io::stderr().lock().write_all(line.as_bytes());
    }

    fn flush(&self) {}
}

static LOGGER: StderrLogger = StderrLogger;

thread_local! {
    /// The shard this thread runs, for the log prefix.
    static SHARD: Cell<Option<usize>> = const { Cell::new(None) };
}

/// Marks the current thread as shard `id` in log lines.
pub fn set_shard(id: usize) {
    SHARD.with(|s| s.set(Some(id)));
}

/// Installs the logger; the level is read from `TESSERA_LOG`.
pub fn init() {
    let level = std::env::var("TESSERA_LOG")
        .ok()
        .and_then(|v| v.parse::<LevelFilter>().ok())
        .unwrap_or(LevelFilter::Info);
    if log::set_logger(&LOGGER).is_ok() {
        log::set_max_level(level);
    }
}

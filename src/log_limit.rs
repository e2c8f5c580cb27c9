//! Repeated warnings, rate-limited, so that a flood cannot use the log as
//! its amplifier: a client that opens hundreds of connections and has each
//! one cut by HTTP/2 rapid-reset protection makes h2 write one WARN line per
//! connection, and a log that grows with the attack fills disks and buries
//! the lines that matter.
//!
//! The first WARN or ERROR of a kind is written as it is. The same warning
//! again within the interval (10 s) is counted instead of written, and when
//! the interval is over one summary line says how many were left out:
//! `N similar warnings suppressed in the last 10s: <the first one>`. A flood
//! that goes on gets one summary per interval; a warning that comes back
//! after a quiet interval is written again.
//!
//! "Of a kind" is the same callsite with the same message and fields. One
//! line of code that warns about two routes or two certificate files makes
//! two kinds, so neither hides the other; h2's warning is the same text on
//! every connection, so a flood of it is one kind. Were messages to vary
//! without end, the kinds kept are bounded ([`MAX_KINDS`]); past that bound
//! a callsite's new texts share one kind, which is the callsite itself.
//!
//! Events below WARN never reach the lock. Warnings are rare, so one mutex
//! over the table is cheap even while a flood makes them common: it is
//! held for a hash lookup, far less than the TLS handshake behind each one.
//!
//! Summaries are written by a thread of their own, which sleeps until a
//! window with something suppressed is over: an event cannot be written
//! from inside the subscriber's handling of another (tracing drops events
//! dispatched re-entrantly), and a summary must come even if the flood
//! stops and no warning ever arrives again.

use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::fmt::{self, Write as _};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::thread::Thread;
use std::time::{Duration, Instant};

use tracing::callsite::Identifier;
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::{Context, Layer};

/// How long a warning of a kind keeps its kind quiet, and so how often at
/// most a summary is written for it.
pub(crate) const INTERVAL: Duration = Duration::from_secs(10);

/// The target of the summary lines; they are never limited themselves.
const SUMMARY_TARGET: &str = "portcullis::log_limit";

/// How many kinds are remembered at once (see the module documentation).
const MAX_KINDS: usize = 1024;

/// The `tracing-subscriber` layer: put in front of the writing layers, it
/// disables the events it suppresses for all of them.
#[derive(Clone)]
pub(crate) struct WarnLimit {
    windows: Arc<Windows<Identifier>>,
}

impl WarnLimit {
    pub(crate) fn new(interval: Duration) -> Self {
        WarnLimit {
            windows: Arc::new(Windows::new(interval)),
        }
    }

    /// Starts the thread that writes the summaries through the global
    /// subscriber; for the limiter installed as the process's subscriber.
    /// Without it, warnings are limited but their counts never told.
    pub(crate) fn start_summaries(&self) {
        let windows = self.windows.clone();
        let spawned = std::thread::Builder::new()
            .name("log-summaries".to_owned())
            .spawn(move || loop {
                let next = write_summaries(&windows, Instant::now());
                match next {
                    Some(at) => std::thread::park_timeout(at.saturating_duration_since(Instant::now())),
                    None => std::thread::park(),
                }
            });
        match spawned {
            Ok(handle) => {
                let _ = self.windows.writer.set(handle.thread().clone());
                // A warning suppressed before the handle was set woke no one.
                handle.thread().unpark();
            }
            // Warnings are still limited; their counts are then never told.
            Err(e) => eprintln!("portcullis: cannot start the thread for log summaries: {e}"),
        }
    }

    /// Writes the summaries of the windows over at `now` through the
    /// current subscriber, and returns when the next window with something
    /// suppressed is over.
    #[cfg(test)]
    fn flush(&self, now: Instant) -> Option<Instant> {
        write_summaries(&self.windows, now)
    }
}

fn write_summaries(windows: &Windows<Identifier>, now: Instant) -> Option<Instant> {
    let (due, next) = windows.flush(now);
    for summary in due {
        tracing::warn!(target: SUMMARY_TARGET, from = summary.target, "{summary}");
    }
    next
}

impl<S: Subscriber> Layer<S> for WarnLimit {
    fn event_enabled(&self, event: &Event<'_>, _ctx: Context<'_, S>) -> bool {
        let meta = event.metadata();
        // tracing orders levels by verbosity: WARN and ERROR are the least.
        if *meta.level() > Level::WARN || meta.target() == SUMMARY_TARGET {
            return true;
        }
        let mut text = Rendered::default();
        event.record(&mut text);
        self.windows
            .admit(meta.callsite(), meta.target(), text.finish(), Instant::now())
    }
}

/// One kind of warning: its callsite and its text, or the callsite alone
/// once the table is full.
#[derive(Debug, Hash, PartialEq, Eq)]
struct Kind<C> {
    callsite: C,
    text: Option<Box<str>>,
}

/// The current window of one kind.
#[derive(Debug)]
struct Window {
    start: Instant,
    /// Warnings of this kind left out since `start`.
    suppressed: u64,
    target: &'static str,
    /// The text of the warning that opened the first window.
    first: String,
}

/// What a summary line tells.
#[derive(Debug, PartialEq, Eq)]
struct Summary {
    suppressed: u64,
    /// How long the window lasted.
    over: Duration,
    /// The module that wrote the warnings.
    target: &'static str,
    first: String,
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let plural = if self.suppressed == 1 { "" } else { "s" };
        write!(
            f,
            "{} similar warning{plural} suppressed in the last {}s: {}",
            self.suppressed,
            self.over.as_secs(),
            self.first
        )
    }
}

/// Every kind's window, and the thread that writes their summaries. `C`
/// names a callsite: tracing's own identifier, or a number in the tests.
struct Windows<C> {
    interval: Duration,
    kinds: Mutex<HashMap<Kind<C>, Window>>,
    writer: OnceLock<Thread>,
}

impl<C: Eq + std::hash::Hash> Windows<C> {
    fn new(interval: Duration) -> Self {
        Windows {
            interval,
            kinds: Mutex::new(HashMap::new()),
            writer: OnceLock::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<Kind<C>, Window>> {
        // A panic elsewhere while the lock was held leaves counts at worst
        // one off; logging must go on.
        self.kinds.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn over(&self, window: &Window, now: Instant) -> bool {
        now.saturating_duration_since(window.start) >= self.interval
    }

    /// Whether a warning of this kind arriving at `now` is written; if not,
    /// it is counted for the summary.
    fn admit(&self, callsite: C, target: &'static str, text: String, now: Instant) -> bool {
        let mut kinds = self.lock();
        let mut kind = Kind {
            callsite,
            text: Some(text.clone().into_boxed_str()),
        };
        if kinds.len() >= MAX_KINDS && !kinds.contains_key(&kind) {
            kinds.retain(|_, w| w.suppressed > 0 || !self.over(w, now));
            if kinds.len() >= MAX_KINDS {
                kind.text = None;
            }
        }
        let first_suppressed = match kinds.entry(kind) {
            Entry::Vacant(vacant) => {
                vacant.insert(Window {
                    start: now,
                    suppressed: 0,
                    target,
                    first: text,
                });
                return true;
            }
            Entry::Occupied(mut occupied) => {
                let window = occupied.get_mut();
                if window.suppressed == 0 && self.over(window, now) {
                    // A quiet window is over: this warning opens the next.
                    window.start = now;
                    return true;
                }
                // Also when the window is over but its summary has not been
                // written yet: the summary then counts this one too.
                window.suppressed += 1;
                window.suppressed == 1
            }
        };
        drop(kinds);
        if first_suppressed {
            if let Some(writer) = self.writer.get() {
                writer.unpark();
            }
        }
        false
    }

    /// The summaries of the windows over at `now`, each of which starts a
    /// new window; quiet windows that are over are forgotten. Also returns
    /// when the next window with something suppressed is over.
    fn flush(&self, now: Instant) -> (Vec<Summary>, Option<Instant>) {
        let mut due = Vec::new();
        let mut next: Option<Instant> = None;
        self.lock().retain(|_, window| {
            if !self.over(window, now) {
                if window.suppressed > 0 {
                    let end = window.start + self.interval;
                    next = Some(next.map_or(end, |n| n.min(end)));
                }
                return true;
            }
            if window.suppressed == 0 {
                return false;
            }
            due.push(Summary {
                suppressed: window.suppressed,
                over: now.saturating_duration_since(window.start),
                target: window.target,
                first: window.first.clone(),
            });
            // A flood that goes on gets one summary per interval.
            window.start = now;
            window.suppressed = 0;
            true
        });
        (due, next)
    }
}

/// An event as one line of text: its message, then ` name=value` for each
/// other field, as the text log writes it.
#[derive(Default)]
struct Rendered {
    message: String,
    fields: String,
}

impl Rendered {
    fn finish(mut self) -> String {
        self.message.push_str(&self.fields);
        self.message
    }
}

impl Visit for Rendered {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        match field.name() {
            "message" => {
                let _ = write!(self.message, "{value:?}");
            }
            // Where in a dependency a `log` record was written says nothing
            // the message does not.
            "log.file" | "log.line" | "log.module_path" => {}
            name => {
                let _ = write!(self.fields, " {name}={value:?}");
            }
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        match field.name() {
            "message" => self.message.push_str(value),
            _ => self.record_debug(field, &value),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::io;

    use tracing_subscriber::layer::SubscriberExt;

    fn at(start: Instant, secs: u64) -> Instant {
        start + Duration::from_secs(secs)
    }

    #[test]
    fn the_first_is_written_and_the_rest_are_counted_once_per_interval() {
        let windows = Windows::new(Duration::from_secs(10));
        let t0 = Instant::now();
        let text = || "recv_reset; remotely-reset pending-accept streams reached limit (20)".to_owned();
        assert!(windows.admit(0, "h2::proto", text(), t0));
        for i in 1..=500 {
            assert!(!windows.admit(0, "h2::proto", text(), t0 + Duration::from_millis(i)));
        }
        // Within the interval nothing is due; the writer is told when.
        let (due, next) = windows.flush(at(t0, 5));
        assert!(due.is_empty());
        assert_eq!(next, Some(at(t0, 10)));

        let (due, next) = windows.flush(at(t0, 10));
        assert_eq!(
            due,
            vec![Summary {
                suppressed: 500,
                over: Duration::from_secs(10),
                target: "h2::proto",
                first: text(),
            }]
        );
        assert_eq!(next, None);
        assert_eq!(
            due[0].to_string(),
            "500 similar warnings suppressed in the last 10s: \
             recv_reset; remotely-reset pending-accept streams reached limit (20)"
        );

        // The flood goes on: still nothing written, one summary per interval.
        assert!(!windows.admit(0, "h2::proto", text(), at(t0, 11)));
        assert!(!windows.admit(0, "h2::proto", text(), at(t0, 12)));
        assert!(windows.flush(at(t0, 19)).0.is_empty());
        let (due, _) = windows.flush(at(t0, 20));
        assert_eq!(due.len(), 1);
        assert_eq!(due[0].suppressed, 2);

        // Quiet for a whole interval: forgotten, and written again.
        assert!(windows.flush(at(t0, 30)).0.is_empty());
        assert!(windows.lock().is_empty());
        assert!(windows.admit(0, "h2::proto", text(), at(t0, 31)));
    }

    #[test]
    fn a_warning_after_a_quiet_interval_is_written_without_a_summary() {
        let windows = Windows::new(Duration::from_secs(10));
        let t0 = Instant::now();
        assert!(windows.admit(0, "m", "once".into(), t0));
        assert!(windows.admit(0, "m", "once".into(), at(t0, 10)));
        assert!(windows.flush(at(t0, 25)).0.is_empty());
    }

    #[test]
    fn a_warning_after_the_interval_but_before_its_summary_is_counted_in_it() {
        let windows = Windows::new(Duration::from_secs(10));
        let t0 = Instant::now();
        assert!(windows.admit(0, "m", "w".into(), t0));
        assert!(!windows.admit(0, "m", "w".into(), at(t0, 1)));
        assert!(!windows.admit(0, "m", "w".into(), at(t0, 12)));
        let (due, _) = windows.flush(at(t0, 12));
        assert_eq!(due[0].suppressed, 2);
        assert_eq!(due[0].over, Duration::from_secs(12));
    }

    #[test]
    fn different_texts_from_one_callsite_are_different_kinds() {
        let windows = Windows::new(Duration::from_secs(10));
        let t0 = Instant::now();
        assert!(windows.admit(0, "m", "route=/a down".into(), t0));
        assert!(windows.admit(0, "m", "route=/b down".into(), t0));
        assert!(!windows.admit(0, "m", "route=/a down".into(), t0));
        // The same words from another line of code are another kind.
        assert!(windows.admit(1, "m", "route=/a down".into(), t0));
    }

    #[test]
    fn the_table_is_bounded_by_falling_back_to_the_callsite() {
        let windows = Windows::new(Duration::from_secs(10));
        let t0 = Instant::now();
        for i in 0..MAX_KINDS {
            assert!(windows.admit(0, "m", format!("peer {i}"), t0));
        }
        // Full of live windows: new texts share the callsite's kind.
        assert!(windows.admit(0, "m", "peer x".into(), t0));
        assert!(!windows.admit(0, "m", "peer y".into(), t0));
        assert_eq!(windows.lock().len(), MAX_KINDS + 1);
        // Once those windows are over, they make room again.
        assert!(windows.admit(0, "m", "peer z".into(), at(t0, 10)));
        assert!(windows.lock().len() <= 2);
    }

    /// Everything the subscriber writes, shared with the test.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl Captured {
        fn lines(&self) -> Vec<String> {
            String::from_utf8_lossy(&self.0.lock().unwrap())
                .lines()
                .map(str::to_owned)
                .collect()
        }
    }

    #[test]
    fn as_a_layer_it_writes_one_line_then_the_summary() {
        let out = Captured::default();
        let writer = out.clone();
        let limit = WarnLimit::new(Duration::from_secs(3600));
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .finish()
            .with(limit.clone());
        tracing::subscriber::with_default(subscriber, || {
            for _ in 0..100 {
                tracing::warn!("too many resets");
                tracing::info!("not limited");
            }
            tracing::warn!(route = "/b", "upstream down");
            tracing::warn!(route = "/c", "upstream down");
            // Nothing is due an hour early; an hour later the count is told.
            assert!(limit.flush(Instant::now()).is_some());
            assert_eq!(limit.flush(Instant::now() + Duration::from_secs(3600)), None);
        });
        let lines = out.lines();
        let count = |needle: &str| lines.iter().filter(|l| l.contains(needle)).count();
        assert_eq!(count("too many resets"), 2, "{lines:#?}");
        assert_eq!(count("not limited"), 100);
        assert_eq!(count("upstream down"), 2, "{lines:#?}");
        let summary = lines.last().unwrap();
        assert!(
            summary.contains("WARN")
                && summary.contains("99 similar warnings suppressed in the last 3600s: too many resets"),
            "{summary}"
        );
    }
}

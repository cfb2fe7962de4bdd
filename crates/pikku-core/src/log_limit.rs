//! Bounded logging of repeated errors: a client that makes the same handler fail a thousand times a second must
//! not make the server write a thousand log lines a second.
//!
//! A [`LogLimiter`] lets the first lines of each key through in every window and counts the rest; the next line
//! of that key in a later window reports how many were left out, so nothing is lost silently. Keys are hashed
//! into a fixed table of counters, so the limiter never allocates and never locks: a check is a clock read and
//! one or two atomic operations. Two keys that share a table slot share a budget, which only makes suppression
//! a little earlier for both.
//!
//! The pipeline uses one limiter for handler failures (keyed by channel, route and error class) and the embedded
//! server one for upgrade refusals (keyed by status).
//!
//! # Panic messages
//! A handler panic is caught and logged through the pipeline's limiter, but Rust's panic hook runs first and
//! prints its own `thread … panicked at …` line to stderr (with a whole backtrace under `RUST_BACKTRACE=1`). A
//! library must not replace the process's panic hook behind the application's back, so pikku installs nothing;
//! an application that wants those lines bounded too calls [`install_panic_hook`] once at startup.

use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// Counter slots per limiter.
const SLOTS: usize = 64;

/// What a [`LogLimiter`] decided for one line.
///
/// ```
/// use std::time::Duration;
/// use pikku::core::log_limit::{LogLimiter, Verdict};
///
/// static LIMITER: LogLimiter = LogLimiter::new(2, Duration::from_secs(60));
/// assert_eq!(LIMITER.check(&"disk full"), Verdict::Log { suppressed: 0 });
/// assert_eq!(LIMITER.check(&"disk full"), Verdict::Log { suppressed: 0 });
/// assert_eq!(LIMITER.check(&"disk full"), Verdict::Suppress);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Write the line. `suppressed` lines of the same key were left out in earlier windows since the last line
    /// written: say so first (see [`LogLimiter::check`]).
    Log {
        /// How many similar lines were suppressed before this one.
        suppressed: u64,
    },
    /// Leave the line out; it is counted.
    Suppress,
}

/// Lets at most `lines` log lines per key through in each `window`, counting the rest.
///
/// Make it a `static` next to the log call it guards. See the [module docs](self) for the design.
///
/// ```
/// use std::time::Duration;
/// use pikku::core::log_limit::{LogLimiter, Verdict};
///
/// static FAILURES: LogLimiter = LogLimiter::new(10, Duration::from_secs(1));
///
/// fn report(job: &str, error: &std::io::Error) {
///     match FAILURES.check(&job) {
///         Verdict::Log { suppressed } => {
///             if suppressed > 0 {
///                 tracing::warn!(job, "suppressed {suppressed} similar errors");
///             }
///             tracing::error!(job, %error, "job failed");
///         }
///         Verdict::Suppress => {}
///     }
/// }
/// # report("x", &std::io::Error::other("y"));
/// ```
#[derive(Debug)]
pub struct LogLimiter {
    lines: u32,
    window_ms: u64,
    /// Per slot: the window number (high 32 bits) and the lines seen in it (low 32 bits).
    slots: [AtomicU64; SLOTS],
}

impl LogLimiter {
    /// A limiter letting `lines` lines per key through in each `window` (a window shorter than a millisecond
    /// counts as one millisecond).
    #[must_use]
    pub const fn new(lines: u32, window: Duration) -> Self {
        let ms = window.as_millis() as u64;
        Self {
            lines,
            window_ms: if ms == 0 { 1 } else { ms },
            slots: [const { AtomicU64::new(0) }; SLOTS],
        }
    }

    /// Counts one line for `key` and says whether to write it. When it is the first line of the key in a new
    /// window and lines were suppressed before, [`Verdict::Log`] carries their number, for one summary line
    /// (`suppressed N similar errors`) before the line itself.
    pub fn check<K: Hash + ?Sized>(&self, key: &K) -> Verdict {
        let mut hasher = Fnv(0xcbf2_9ce4_8422_2325);
        key.hash(&mut hasher);
        let slot = &self.slots[(hasher.0 % SLOTS as u64) as usize];
        // Window numbers start at 1, so a zeroed slot never looks current.
        let window = (monotonic_ms() / self.window_ms + 1) & 0xFFFF_FFFF;
        let mut current = slot.load(Ordering::Relaxed);
        loop {
            let (seen_window, count) = (current >> 32, current & 0xFFFF_FFFF);
            if seen_window == window {
                if count >= u64::from(self.lines) {
                    // Keep counting (saturating) so the next window can report the number.
                    if count < 0xFFFF_FFFF {
                        slot.fetch_add(1, Ordering::Relaxed);
                    }
                    return Verdict::Suppress;
                }
                match slot.compare_exchange_weak(
                    current,
                    current + 1,
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                ) {
                    Ok(_) => return Verdict::Log { suppressed: 0 },
                    Err(actual) => current = actual,
                }
            } else {
                match slot.compare_exchange_weak(
                    current,
                    (window << 32) | 1,
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                ) {
                    Ok(_) => {
                        let suppressed = count.saturating_sub(u64::from(self.lines));
                        return Verdict::Log { suppressed };
                    }
                    Err(actual) => current = actual,
                }
            }
        }
    }
}

/// Milliseconds on a process-wide monotonic clock.
fn monotonic_ms() -> u64 {
    static START: OnceLock<Instant> = OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_millis() as u64
}

/// FNV-1a: tiny and good enough to spread a few keys over the slots.
struct Fnv(u64);

impl Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 ^= u64::from(b);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }
}

/// Wraps the current panic hook so that each panic location prints at most `lines` messages per `window`
/// (then one `suppressed N similar panic messages` line when it next prints). Opt in once, at startup; pikku
/// never calls it for you, because the panic hook belongs to the application.
///
/// Handler panics are caught by the pipeline either way (the connection carries on); this only bounds what the
/// hook writes for them.
///
/// ```no_run
/// use std::time::Duration;
///
/// pikku::core::log_limit::install_panic_hook(5, Duration::from_secs(10));
/// ```
pub fn install_panic_hook(lines: u32, window: Duration) {
    let limiter: &'static LogLimiter = Box::leak(Box::new(LogLimiter::new(lines, window)));
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let location = info.location().map(|l| (l.file(), l.line(), l.column()));
        match limiter.check(&location) {
            Verdict::Log { suppressed } => {
                if suppressed > 0 {
                    eprintln!("suppressed {suppressed} similar panic messages");
                }
                previous(info);
            }
            Verdict::Suppress => {}
        }
    }));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_per_window_then_a_count() {
        let limiter = LogLimiter::new(3, Duration::from_millis(50));
        let mut logged = 0;
        for _ in 0..100 {
            if limiter.check("k") != Verdict::Suppress {
                logged += 1;
            }
        }
        // The loop may straddle a window boundary; at most two windows' worth gets through.
        assert!((3..=6).contains(&logged), "{logged}");
        // Another key has its own budget.
        assert_eq!(limiter.check("other"), Verdict::Log { suppressed: 0 });
        std::thread::sleep(Duration::from_millis(120));
        match limiter.check("k") {
            Verdict::Log { suppressed } => assert!(suppressed >= 40, "{suppressed}"),
            Verdict::Suppress => panic!("a new window logs"),
        }
        assert_eq!(limiter.check("k"), Verdict::Log { suppressed: 0 });
    }
}

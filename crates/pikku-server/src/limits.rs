//! Process-wide connection bounds: the default connection limit derived from the descriptor limit, per-address
//! counts, and a log throttle so that refusals under attack cost one log line every few seconds.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

/// Descriptors kept free for what is not a client connection (listeners, log files, broker sockets, the
/// runtime's own): at least 32, a sixteenth of the limit, at most 256.
fn descriptor_reserve(limit: usize) -> usize {
    (limit / 16).clamp(32, 256)
}

/// The default of `ServerConfig::max_connections`: the soft limit on open files minus a reserve, or `None`
/// (unlimited) when the limit is unlimited or cannot be read.
pub(crate) fn default_max_connections() -> Option<usize> {
    let limit = soft_open_files_limit()?;
    Some(limit.saturating_sub(descriptor_reserve(limit)).max(1))
}

/// The soft `RLIMIT_NOFILE` of this process. Read from `/proc/self/limits` because the system call needs unsafe
/// code, which the workspace forbids; `None` elsewhere or when unlimited.
fn soft_open_files_limit() -> Option<usize> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    parse_soft_open_files(&limits)
}

fn parse_soft_open_files(limits: &str) -> Option<usize> {
    let line = limits
        .lines()
        .find(|line| line.starts_with("Max open files"))?;
    // "Max open files            1024                 4096                 files"
    line["Max open files".len()..]
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Open channel connections per client address, for `ServerConfig::max_connections_per_ip`.
#[derive(Debug, Default)]
pub(crate) struct PerIpCounts {
    counts: Mutex<HashMap<IpAddr, usize>>,
}

impl PerIpCounts {
    /// Counts one more connection from `ip` unless it already has `max`; the slot gives it back when dropped.
    pub(crate) fn try_acquire(self: &Arc<Self>, ip: IpAddr, max: usize) -> Option<IpSlot> {
        let mut counts = self.counts.lock();
        let count = counts.entry(ip).or_insert(0);
        if *count >= max {
            return None;
        }
        *count += 1;
        Some(IpSlot {
            counts: self.clone(),
            ip,
        })
    }
}

/// One connection counted for its address; dropping it uncounts it (and forgets addresses at zero, so the map
/// holds only addresses with open connections).
#[derive(Debug)]
pub(crate) struct IpSlot {
    counts: Arc<PerIpCounts>,
    ip: IpAddr,
}

impl Drop for IpSlot {
    fn drop(&mut self) {
        let mut counts = self.counts.counts.lock();
        if let Some(count) = counts.get_mut(&self.ip) {
            *count -= 1;
            if *count == 0 {
                counts.remove(&self.ip);
            }
        }
    }
}

/// Lets one log line through per period and counts the events in between, so a flood of refusals or timeouts
/// is visible without flooding the log.
#[derive(Debug)]
pub(crate) struct LogThrottle {
    period: Duration,
    last: Mutex<Option<Instant>>,
    pending: AtomicU64,
}

impl LogThrottle {
    pub(crate) fn new(period: Duration) -> Self {
        Self {
            period,
            last: Mutex::new(None),
            pending: AtomicU64::new(0),
        }
    }

    /// Records one event. Returns how many events happened since the last line (this one included) when a line
    /// should be logged now, `None` when this one is only counted.
    pub(crate) fn hit(&self) -> Option<u64> {
        self.pending.fetch_add(1, Ordering::Relaxed);
        let mut last = self.last.lock();
        let now = Instant::now();
        if last.is_some_and(|at| now.duration_since(at) < self.period) {
            return None;
        }
        *last = Some(now);
        Some(self.pending.swap(0, Ordering::Relaxed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_soft_limit() {
        let limits = "Limit                     Soft Limit           Hard Limit           Units     \n\
                      Max processes             96363                96363                processes \n\
                      Max open files            1024                 4096                 files     \n";
        assert_eq!(parse_soft_open_files(limits), Some(1024));
        let unlimited =
            "Max open files            unlimited            unlimited            files\n";
        assert_eq!(parse_soft_open_files(unlimited), None);
        assert_eq!(parse_soft_open_files(""), None);
    }

    #[test]
    fn reserve_leaves_most_descriptors_to_connections() {
        assert_eq!(20_000 - descriptor_reserve(20_000), 19_744);
        assert_eq!(1024 - descriptor_reserve(1024), 960);
        assert_eq!(64 - descriptor_reserve(64), 32);
    }

    #[test]
    fn per_ip_slots_count_and_release() {
        let counts = Arc::new(PerIpCounts::default());
        let ip: IpAddr = "127.0.0.2".parse().unwrap();
        let a = counts.try_acquire(ip, 2).unwrap();
        let _b = counts.try_acquire(ip, 2).unwrap();
        assert!(counts.try_acquire(ip, 2).is_none());
        assert!(counts
            .try_acquire("127.0.0.3".parse().unwrap(), 2)
            .is_some());
        drop(a);
        assert!(counts.try_acquire(ip, 2).is_some());
    }

    #[test]
    fn throttle_counts_what_it_holds_back() {
        let throttle = LogThrottle::new(Duration::from_secs(3600));
        assert_eq!(throttle.hit(), Some(1));
        assert_eq!(throttle.hit(), None);
        assert_eq!(throttle.hit(), None);
        let quick = LogThrottle::new(Duration::ZERO);
        assert_eq!(quick.hit(), Some(1));
        assert_eq!(quick.hit(), Some(1));
    }
}

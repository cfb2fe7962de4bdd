//! CPU time and resident memory of a process, read from `/proc/<pid>`.
//!
//! The server's own CPU time per message stays honest even when the load generator is the
//! bottleneck, so every scenario reports it next to the throughput.

use std::process::Command;
use std::sync::OnceLock;

/// One reading of a process's counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sample {
    /// User plus system CPU time of all the process's threads, in microseconds.
    pub cpu_us: u64,
    /// Resident set size (`VmRSS`), in KiB.
    pub rss_kib: u64,
}

/// A process to watch (the server under test, or this process).
#[derive(Debug, Clone)]
pub struct Proc {
    dir: String,
}

impl Proc {
    /// Watches process `pid`.
    #[must_use]
    pub fn pid(pid: u32) -> Self {
        Self {
            dir: format!("/proc/{pid}"),
        }
    }

    /// Watches the calling process.
    #[must_use]
    pub fn current() -> Self {
        Self {
            dir: "/proc/self".to_owned(),
        }
    }

    /// Counts the process's open file descriptors (entries of `/proc/<pid>/fd`); `None` when the
    /// process is gone or the directory is unreadable.
    #[must_use]
    pub fn fd_count(&self) -> Option<u64> {
        let dir = std::fs::read_dir(format!("{}/fd", self.dir)).ok()?;
        Some(dir.count() as u64)
    }

    /// Reads CPU time and RSS; `None` when the process is gone or `/proc` is unreadable.
    #[must_use]
    pub fn sample(&self) -> Option<Sample> {
        let stat = std::fs::read_to_string(format!("{}/stat", self.dir)).ok()?;
        let status = std::fs::read_to_string(format!("{}/status", self.dir)).ok()?;
        let ticks = parse_cpu_ticks(&stat)?;
        Some(Sample {
            cpu_us: ticks * 1_000_000 / clock_ticks_per_sec(),
            rss_kib: parse_vm_rss_kib(&status)?,
        })
    }
}

/// `utime + stime` (fields 14 and 15) from a `/proc/<pid>/stat` line, in clock ticks.
///
/// The command name (field 2) is in parentheses and may contain spaces, so fields are counted
/// from the last `)`.
#[must_use]
pub fn parse_cpu_ticks(stat: &str) -> Option<u64> {
    let after = &stat[stat.rfind(')')? + 1..];
    // After the name: field 3 (state) is index 0, so utime (14) is index 11 and stime (15) 12.
    let mut fields = after.split_ascii_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

/// The `VmRSS` line of `/proc/<pid>/status`, in KiB.
#[must_use]
pub fn parse_vm_rss_kib(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line["VmRSS:".len()..]
        .split_ascii_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Clock ticks per second for `/proc` CPU times, from `getconf CLK_TCK` (read once; 100 when
/// `getconf` is unavailable, which is the value on every mainstream Linux).
pub fn clock_ticks_per_sec() -> u64 {
    static TICKS: OnceLock<u64> = OnceLock::new();
    *TICKS.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.trim().parse().ok())
            .filter(|&t| t > 0)
            .unwrap_or(100)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stat_with_spaces_in_name() {
        let stat = "1234 (bench server) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 3 0";
        assert_eq!(parse_cpu_ticks(stat), Some(300));
    }

    #[test]
    fn parses_vm_rss() {
        let status = "Name:\tx\nVmPeak:\t  10 kB\nVmRSS:\t    4321 kB\nThreads:\t1\n";
        assert_eq!(parse_vm_rss_kib(status), Some(4321));
    }

    #[test]
    fn parses_machine_busy() {
        let line = "cpu  100 5 50 1000 20 3 7 1 0 0";
        assert_eq!(parse_machine_busy_ticks(line), Some(166));
        assert_eq!(parse_machine_busy_ticks("cpu0 1 2 3 4 5 6 7 8"), None);
        assert!(machine_busy_us().is_some());
    }

    #[test]
    fn reads_own_process() {
        let s = Proc::current().sample().expect("/proc/self readable");
        assert!(s.rss_kib > 0);
        // stdin, stdout, stderr at least.
        assert!(Proc::current().fd_count().expect("/proc/self/fd readable") >= 3);
    }
}

/// Busy time of the whole machine (all CPUs: user, nice, system, irq, softirq, steal) from the
/// first line of `/proc/stat`, in microseconds.
#[must_use]
pub fn machine_busy_us() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    parse_machine_busy_ticks(stat.lines().next()?).map(|t| t * 1_000_000 / clock_ticks_per_sec())
}

/// Busy ticks from the `cpu ...` line of `/proc/stat` (everything but idle and iowait).
#[must_use]
pub fn parse_machine_busy_ticks(line: &str) -> Option<u64> {
    let mut fields = line.split_ascii_whitespace();
    if fields.next()? != "cpu" {
        return None;
    }
    let v: Vec<u64> = fields
        .take(8)
        .map(|f| f.parse().ok())
        .collect::<Option<_>>()?;
    // user nice system idle iowait irq softirq steal
    (v.len() == 8).then(|| v[0] + v[1] + v[2] + v[5] + v[6] + v[7])
}

/// CPU and wall time spent between [`Meter::start`] and [`Meter::stop`].
#[derive(Debug)]
pub struct Meter {
    server: Option<Proc>,
    started: std::time::Instant,
    server_start: Option<Sample>,
    client_start: Option<Sample>,
    machine_start: Option<u64>,
}

/// What a [`Meter`] measured.
#[derive(Debug, Clone, Copy)]
pub struct Measured {
    /// Wall-clock seconds of the window.
    pub elapsed_s: f64,
    /// Server CPU time spent in the window, µs (`None` without `--server-pid`).
    pub server_cpu_us: Option<u64>,
    /// Server RSS at the end of the window, KiB.
    pub server_rss_kib: Option<u64>,
    /// This process's CPU use over the window, percent of one core.
    pub client_cpu_pct: Option<f64>,
    /// CPU used by everything but the server and this process (other programs, and interrupt
    /// work the kernel does not charge to a process), percent of one core: a noisy-machine flag.
    pub other_cpu_pct: Option<f64>,
}

impl Meter {
    /// Starts a window, reading the server (if any) and this process.
    pub fn start(server: Option<&Proc>) -> Self {
        Self {
            server_start: server.and_then(Proc::sample),
            client_start: Proc::current().sample(),
            machine_start: machine_busy_us(),
            server: server.cloned(),
            started: std::time::Instant::now(),
        }
    }

    /// Ends the window.
    pub fn stop(&self) -> Measured {
        let elapsed_s = self.started.elapsed().as_secs_f64();
        let server_end = self.server.as_ref().and_then(Proc::sample);
        let client_end = Proc::current().sample();
        let server_cpu_us = match (self.server_start, server_end) {
            (Some(a), Some(b)) => Some(b.cpu_us.saturating_sub(a.cpu_us)),
            _ => None,
        };
        let client_cpu_pct = match (self.client_start, client_end) {
            (Some(a), Some(b)) => {
                Some(b.cpu_us.saturating_sub(a.cpu_us) as f64 / (elapsed_s * 1e6) * 100.0)
            }
            _ => None,
        };
        let client_cpu_us = match (self.client_start, client_end) {
            (Some(a), Some(b)) => b.cpu_us.saturating_sub(a.cpu_us),
            _ => 0,
        };
        let other_cpu_pct = match (self.machine_start, machine_busy_us()) {
            (Some(a), Some(b)) => {
                let other = (b.saturating_sub(a))
                    .saturating_sub(server_cpu_us.unwrap_or(0) + client_cpu_us);
                Some(other as f64 / (elapsed_s * 1e6) * 100.0)
            }
            _ => None,
        };
        Measured {
            elapsed_s,
            server_cpu_us,
            server_rss_kib: server_end.map(|s| s.rss_kib),
            client_cpu_pct,
            other_cpu_pct,
        }
    }
}

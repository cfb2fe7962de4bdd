//! Renders the Markdown tables of `docs/benchmarks.md` from the result files `bench/run.sh`
//! leaves in its results directory:
//!
//! - `<server>-<case>.json`: the `RESULT` object of one run (`server` is `framework` or
//!   `baseline`; `case` is `echo`, `fanout`, `idle15k`, `idle19k` or `connect`);
//! - `<server>.pending`: the server is not available yet (its rows read "pending");
//! - `<server>-<case>.failed`: the run produced no result (the file holds the reason);
//! - `<server>-<case>.logerrors`: how many error lines the server logged during the run;
//! - `<server>-<case>.busy`: how busy the machine was (percent of all CPUs) just before the run.

use std::fmt::Write as _;
use std::path::Path;

use serde_json::Value;

use crate::Result;

/// The servers compared, in column order.
pub const SERVERS: [&str; 2] = ["framework", "baseline"];

/// The cases `bench/run.sh` runs, in row order.
pub const CASES: [&str; 5] = ["echo", "fanout", "idle15k", "idle19k", "connect"];

/// One row of the summary table.
struct Metric {
    case: &'static str,
    label: &'static str,
    key: &'static str,
    digits: usize,
    target: &'static str,
}

const METRICS: &[Metric] = &[
    Metric {
        case: "echo",
        label: "echo 50 conns × window 4 × 64 B: server CPU µs per message",
        key: "server_cpu_us_per_msg",
        digits: 2,
        target: "framework ≤ 1.25 × baseline",
    },
    Metric {
        case: "echo",
        label: "echo: messages/s",
        key: "msgs_per_s",
        digits: 0,
        target: "",
    },
    Metric {
        case: "echo",
        label: "echo: p99 latency µs",
        key: "latency_p99_us",
        digits: 0,
        target: "",
    },
    Metric {
        case: "fanout",
        label: "fanout 1,000 subscribers, window 8: server CPU µs per delivery",
        key: "server_cpu_us_per_delivery",
        digits: 3,
        target: "framework ≤ 1.25 × baseline",
    },
    Metric {
        case: "fanout",
        label: "fanout: deliveries/s",
        key: "deliveries_per_s",
        digits: 0,
        target: "",
    },
    Metric {
        case: "fanout",
        label: "fanout: p99 delivery latency µs",
        key: "latency_p99_us",
        digits: 0,
        target: "",
    },
    Metric {
        case: "idle15k",
        label: "idle 15,000 conns: server RSS per connection KiB",
        key: "rss_per_conn_kib",
        digits: 2,
        target: "≤ 2 KiB",
    },
    Metric {
        case: "idle19k",
        label: "idle 19,000 conns: server RSS per connection KiB",
        key: "rss_per_conn_kib",
        digits: 2,
        target: "",
    },
    Metric {
        case: "idle19k",
        label: "idle 19,000 conns: sample answering echo",
        key: "alive",
        digits: 0,
        target: "all alive, no server log error",
    },
    Metric {
        case: "connect",
        label: "connect: new connections/s",
        key: "conns_per_s",
        digits: 0,
        target: "≥ 10,000/s",
    },
    Metric {
        case: "connect",
        label: "connect: server CPU µs per connection",
        key: "server_cpu_us_per_conn",
        digits: 1,
        target: "",
    },
    Metric {
        case: "connect",
        label: "connect: p99 setup latency µs",
        key: "latency_p99_us",
        digits: 0,
        target: "",
    },
];

/// What one server's run of one case left behind.
enum Outcome {
    Result(Value),
    Pending,
    Failed(String),
    Missing,
}

fn load(dir: &Path, server: &str, case: &str) -> Outcome {
    if dir.join(format!("{server}.pending")).exists() {
        return Outcome::Pending;
    }
    if let Ok(text) = std::fs::read_to_string(dir.join(format!("{server}-{case}.json"))) {
        if let Ok(v) = serde_json::from_str(&text) {
            return Outcome::Result(v);
        }
    }
    match std::fs::read_to_string(dir.join(format!("{server}-{case}.failed"))) {
        Ok(reason) => Outcome::Failed(reason.trim().to_owned()),
        Err(_) => Outcome::Missing,
    }
}

fn log_errors(dir: &Path, server: &str, case: &str) -> Option<u64> {
    side_number(dir, server, case, "logerrors")
}

fn side_number(dir: &Path, server: &str, case: &str, ext: &str) -> Option<u64> {
    std::fs::read_to_string(dir.join(format!("{server}-{case}.{ext}")))
        .ok()?
        .trim()
        .parse()
        .ok()
}

fn number(outcome: &Outcome, key: &str) -> Option<f64> {
    match outcome {
        Outcome::Result(v) => v.get(key)?.as_f64(),
        _ => None,
    }
}

fn cell(outcome: &Outcome, metric: &Metric, dir: &Path, server: &str) -> String {
    match outcome {
        Outcome::Pending => "pending".to_owned(),
        Outcome::Missing => "—".to_owned(),
        Outcome::Failed(_) => "failed".to_owned(),
        Outcome::Result(v) => {
            let Some(x) = number(outcome, metric.key) else {
                return "—".to_owned();
            };
            if metric.key == "alive" {
                let sample = v.get("sample").and_then(Value::as_u64).unwrap_or(0);
                let dead = v.get("dead").and_then(Value::as_u64).unwrap_or(0);
                let errors = log_errors(dir, server, metric.case)
                    .map_or_else(|| "?".to_owned(), |n| n.to_string());
                format!("{x:.0}/{sample} (dead {dead}, log errors {errors})")
            } else {
                format_number(x, metric.digits)
            }
        }
    }
}

fn format_number(x: f64, digits: usize) -> String {
    let s = format!("{x:.digits$}");
    // Thousands separators on the integer part, for the large rates.
    let (int, frac) = s
        .split_once('.')
        .map_or((s.as_str(), None), |(i, f)| (i, Some(f)));
    let (sign, int) = int.strip_prefix('-').map_or(("", int), |i| ("-", i));
    let mut grouped = String::new();
    for (i, c) in int.chars().enumerate() {
        if i > 0 && (int.len() - i) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(c);
    }
    match frac {
        Some(f) => format!("{sign}{grouped}.{f}"),
        None => format!("{sign}{grouped}"),
    }
}

/// Renders the summary table (framework, baseline, ratio, target) and the per-run details.
pub fn render(dir: &Path) -> Result<String> {
    if !dir.is_dir() {
        return Err(format!("no results directory {}", dir.display()).into());
    }
    let mut out = String::new();
    writeln!(out, "| metric | framework (`bench-server`) | baseline (`baseline-server`) | framework ÷ baseline | target |")?;
    writeln!(out, "|---|---:|---:|---:|---|")?;
    for m in METRICS {
        let fw = load(dir, "framework", m.case);
        let base = load(dir, "baseline", m.case);
        let ratio = match (number(&fw, m.key), number(&base, m.key)) {
            (Some(a), Some(b)) if b != 0.0 && m.key != "alive" => format!("{:.2}", a / b),
            _ => "—".to_owned(),
        };
        writeln!(
            out,
            "| {} | {} | {} | {} | {} |",
            m.label,
            cell(&fw, m, dir, "framework"),
            cell(&base, m, dir, "baseline"),
            ratio,
            m.target
        )?;
    }

    writeln!(out)?;
    writeln!(out, "Per run (rate is messages, deliveries or connections per second; latency in µs; CPU in % of one core over the measured window; \"other CPU\" is what everything but the server and the load generator used meanwhile, including interrupt work the kernel charges to no process: a high value means the run shared the machine):")?;
    writeln!(out)?;
    writeln!(out, "| server | case | rate | p50 | p99 | p999 | server CPU % | client CPU % | server RSS KiB | other CPU % | busy before % | failures |")?;
    writeln!(
        out,
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"
    )?;
    for server in SERVERS {
        if matches!(load(dir, server, CASES[0]), Outcome::Pending) {
            let text = "pending (bench-server exits with status 2 until the framework API lands)";
            writeln!(out, "| {server} | all | {text} |{}", " |".repeat(9))?;
            continue;
        }
        for case in CASES {
            let outcome = load(dir, server, case);
            let v = match &outcome {
                Outcome::Result(v) => v,
                Outcome::Pending => continue,
                Outcome::Failed(reason) => {
                    let reason = reason.replace('|', "\\|").replace('\n', " ");
                    writeln!(
                        out,
                        "| {server} | {case} | failed: {reason} |{}",
                        " |".repeat(9)
                    )?;
                    continue;
                }
                Outcome::Missing => continue,
            };
            let idle = case.starts_with("idle");
            let rate = ["msgs_per_s", "deliveries_per_s", "conns_per_s"]
                .iter()
                .find_map(|k| number(&outcome, k));
            let lat = if idle { "probe_latency" } else { "latency" };
            let num = |key: &str, digits: usize| {
                number(&outcome, key).map_or_else(String::new, |x| format_number(x, digits))
            };
            let failures = match v.get("first_failure").and_then(Value::as_str) {
                Some(first) => format!("{} ({})", num("failures", 0), first.replace('|', "\\|")),
                None => num("failures", 0),
            };
            let rss = if idle {
                num("server_rss_after_kib", 0)
            } else {
                num("server_rss_kib", 0)
            };
            let cpu = if idle {
                num("server_cpu_pct_idle", 1)
            } else {
                num("server_cpu_pct", 1)
            };
            let busy =
                side_number(dir, server, case, "busy").map_or_else(String::new, |b| b.to_string());
            writeln!(
                out,
                "| {server} | {case} | {} | {} | {} | {} | {cpu} | {} | {rss} | {} | {busy} | {failures} |",
                rate.map_or_else(String::new, |r| format_number(r, 0)),
                num(&format!("{lat}_p50_us"), 0),
                num(&format!("{lat}_p99_us"), 0),
                num(&format!("{lat}_p999_us"), 0),
                num("client_cpu_pct", 1),
                num("other_cpu_pct", 1),
            )?;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_thousands() {
        assert_eq!(format_number(1234567.0, 0), "1,234,567");
        assert_eq!(format_number(123.456, 2), "123.46");
        assert_eq!(format_number(-1000.5, 1), "-1,000.5");
    }

    #[test]
    fn renders_pending_and_ratios() {
        let dir = std::env::temp_dir().join(format!("pikku-bench-table-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("framework.pending"), "").unwrap();
        std::fs::write(
            dir.join("baseline-echo.json"),
            r#"{"scenario":"echo","server_cpu_us_per_msg":4.5,"msgs_per_s":200000.0,"latency_p99_us":900,"failures":0}"#,
        )
        .unwrap();
        let md = render(&dir).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(md.contains(
            "| echo 50 conns × window 4 × 64 B: server CPU µs per message | pending | 4.50 | — |"
        ));
        assert!(md.contains("| baseline | echo | 200,000 |"));
        assert!(md.contains("| framework | all | pending"));
    }
}

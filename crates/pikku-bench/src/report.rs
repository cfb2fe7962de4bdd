//! Latency histograms and the scenario report (human lines plus one `RESULT {json}` line).

use hdrhistogram::Histogram;
use serde_json::{Map, Value};

use crate::procstat::Measured;

/// Highest latency recorded, µs; slower samples saturate here.
const MAX_US: u64 = 60_000_000;

/// A latency histogram in microseconds (3 significant digits, 1 µs to 60 s).
#[derive(Debug, Clone)]
pub struct Latency {
    hist: Histogram<u64>,
}

impl Default for Latency {
    fn default() -> Self {
        Self::new()
    }
}

impl Latency {
    /// An empty histogram.
    #[must_use]
    pub fn new() -> Self {
        Self {
            hist: Histogram::new_with_bounds(1, MAX_US, 3).expect("valid histogram bounds"),
        }
    }

    /// Records one latency, clamped to 1 µs..60 s.
    pub fn record(&mut self, us: u64) {
        self.hist.saturating_record(us.max(1));
    }

    /// Forgets every sample (end of warmup).
    pub fn reset(&mut self) {
        self.hist.reset();
    }

    /// Number of samples.
    #[must_use]
    pub fn len(&self) -> u64 {
        self.hist.len()
    }

    /// True when no sample was recorded.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.hist.is_empty()
    }

    /// Adds another histogram's samples.
    pub fn merge(&mut self, other: &Latency) {
        // Same bounds on both sides, so adding cannot fail.
        let _ = self.hist.add(&other.hist);
    }

    /// The value at quantile `q` (0..=1), µs; 0 when empty.
    #[must_use]
    pub fn quantile(&self, q: f64) -> u64 {
        if self.hist.is_empty() {
            0
        } else {
            self.hist.value_at_quantile(q)
        }
    }
}

/// A scenario's numbers: printed as `key: value` lines, then as one `RESULT {json}` line.
#[derive(Debug)]
pub struct Report {
    fields: Map<String, Value>,
}

impl Report {
    /// A report for `scenario`.
    #[must_use]
    pub fn new(scenario: &str) -> Self {
        let mut fields = Map::new();
        fields.insert("scenario".into(), scenario.into());
        Self { fields }
    }

    /// Sets one field.
    pub fn set(&mut self, key: &str, value: impl Into<Value>) -> &mut Self {
        self.fields.insert(key.to_owned(), value.into());
        self
    }

    /// Sets a float rounded to `digits` decimals (readable tables, stable JSON).
    pub fn set_f(&mut self, key: &str, value: f64, digits: i32) -> &mut Self {
        let scale = 10f64.powi(digits);
        self.set(key, (value * scale).round() / scale)
    }

    /// Sets `{prefix}_p50_us`, `_p99_us`, `_p999_us`, `_max_us` and `_samples`.
    pub fn latency(&mut self, prefix: &str, lat: &Latency) -> &mut Self {
        self.set(&format!("{prefix}_p50_us"), lat.quantile(0.50));
        self.set(&format!("{prefix}_p99_us"), lat.quantile(0.99));
        self.set(&format!("{prefix}_p999_us"), lat.quantile(0.999));
        self.set(&format!("{prefix}_max_us"), lat.quantile(1.0));
        self.set(&format!("{prefix}_samples"), lat.len())
    }

    /// Sets the window's duration, `count` of work units (as `{units}` and `{units}_per_s`),
    /// server RSS, client CPU and the server CPU per unit (`server_cpu_us_per_{unit}`).
    pub fn measured(&mut self, m: &Measured, unit: &str, units: &str, count: u64) -> &mut Self {
        self.set_f("elapsed_s", m.elapsed_s, 3);
        self.set(units, count);
        self.set_f(&format!("{units}_per_s"), count as f64 / m.elapsed_s, 1);
        if let Some(cpu) = m.server_cpu_us {
            self.set("server_cpu_us", cpu);
            self.set_f(
                "server_cpu_pct",
                cpu as f64 / (m.elapsed_s * 1e6) * 100.0,
                1,
            );
            if count > 0 {
                self.set_f(
                    &format!("server_cpu_us_per_{unit}"),
                    cpu as f64 / count as f64,
                    3,
                );
            }
        }
        if let Some(rss) = m.server_rss_kib {
            self.set("server_rss_kib", rss);
        }
        if let Some(pct) = m.client_cpu_pct {
            self.set_f("client_cpu_pct", pct, 1);
        }
        if let Some(pct) = m.other_cpu_pct {
            self.set_f("other_cpu_pct", pct, 1);
        }
        self
    }

    /// Reads a field back (used by tests and the table renderer).
    #[must_use]
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.fields.get(key)
    }

    /// The JSON object.
    #[must_use]
    pub fn to_json(&self) -> Value {
        Value::Object(self.fields.clone())
    }

    /// Prints the human lines and the final `RESULT {json}` line to stdout.
    pub fn print(&self) {
        for (k, v) in &self.fields {
            println!("  {k:<28} {v}");
        }
        println!("RESULT {}", Value::Object(self.fields.clone()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_and_report_fields() {
        let mut l = Latency::new();
        for us in 1..=1000 {
            l.record(us);
        }
        assert_eq!(l.len(), 1000);
        assert!((495..=505).contains(&l.quantile(0.5)));
        let mut r = Report::new("echo");
        r.latency("latency", &l).set_f("x", 1.23456, 2);
        assert_eq!(r.get("x").unwrap().as_f64(), Some(1.23));
        assert!(r.get("latency_p99_us").unwrap().as_u64().unwrap() >= 980);
    }
}

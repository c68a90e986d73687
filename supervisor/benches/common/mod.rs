//! What the supervisor benchmarks share besides the harness: the knob
//! parsers, the polling interval, and small statistics and formatting.
#![allow(dead_code)] // each bench uses a different part

use std::time::Duration;

/// How often a bench polls a condition it waits for (`harness::poll_until`).
pub const POLL: Duration = Duration::from_millis(1);

/// A bench knob: a whole number (`_` allowed as a separator).
pub fn whole(v: &str) -> Result<usize, String> {
    whole_u64(v).map(|n| n as usize)
}

/// A bench knob: a whole number (`_` allowed as a separator).
pub fn whole_u64(v: &str) -> Result<u64, String> {
    v.trim()
        .replace('_', "")
        .parse()
        .map_err(|_| format!("{v:?} is not a whole number"))
}

/// A bench knob: whole milliseconds.
pub fn millis(v: &str) -> Result<Duration, String> {
    whole_u64(v).map(Duration::from_millis)
}

/// A bench knob that is on unless it is 0.
pub fn nonzero(v: &str) -> Result<bool, String> {
    whole_u64(v).map(|n| n != 0)
}

pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// Nearest-rank percentile of unsorted values (0 for none).
pub fn pct(values: &[f64], p: f64) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    let mut v = values.to_vec();
    v.sort_by(|a, b| a.partial_cmp(b).expect("no NaN"));
    let rank = ((p / 100.0) * v.len() as f64).ceil() as usize;
    v[rank.clamp(1, v.len()) - 1]
}

pub fn fmt_ms(v: f64) -> String {
    if v < 10.0 {
        format!("{v:.2} ms")
    } else if v < 100.0 {
        format!("{v:.1} ms")
    } else if v < 10_000.0 {
        format!("{v:.0} ms")
    } else {
        format!("{:.1} s", v / 1e3)
    }
}

pub fn verdict(ok: bool) -> &'static str {
    if ok {
        "PASS"
    } else {
        "MISS"
    }
}

/// The 1, 5 and 15 minute load averages (`getloadavg`: Linux and macOS).
pub fn loadavg() -> String {
    shared::procs::loadavg_text()
}

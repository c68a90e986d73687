//! The client records in time: which swap or steady window a request was
//! sent in, its longest stalls, and the records as CSV.

use super::*;

/// Writes CSV rows to `dir/name` (kept with `BENCH_KEEP=1`).
pub(crate) fn dump(dir: &Path, name: &str, header: &str, rows: impl Iterator<Item = Vec<u64>>) {
    let mut text = format!("{header}\n");
    for row in rows {
        let cells: Vec<String> = row.iter().map(u64::to_string).collect();
        text.push_str(&cells.join(","));
        text.push('\n');
    }
    fs::write(dir.join(name), text).expect("write a dump file");
}

/// Prints the few longest stalls of the swap phase (requests overlapping a
/// longer one are the same stall) and where each began: in a swap window,
/// in a steady window, or elsewhere, and how far from the nearest swap.
pub(crate) fn longest_stalls(recs: &[Rec], windows: &[(u64, u64)], steady: &[(u64, u64)]) {
    let mut by_len: Vec<&Rec> = recs.iter().collect();
    by_len.sort_by_key(|r| std::cmp::Reverse(r.end_us - r.start_us));
    let mut shown: Vec<&Rec> = Vec::new();
    for r in by_len {
        if shown.len() == 5 {
            break;
        }
        if shown
            .iter()
            .any(|s| r.start_us < s.end_us && r.end_us > s.start_us)
        {
            continue;
        }
        let with = recs
            .iter()
            .filter(|o| o.start_us < r.end_us && o.end_us > r.start_us && o.ms() > r.ms() / 2.0)
            .count();
        let place = match (window_of(r, windows), window_of(r, steady)) {
            (Some(i), _) => format!("sent in swap window {}", i + 1),
            (_, Some(i)) => format!("sent in steady window {}", i + 1),
            _ => "sent outside the windows".into(),
        };
        let nearest = windows
            .iter()
            .map(|&(s, _)| r.start_us as i64 - s as i64)
            .min_by_key(|d| d.abs())
            .unwrap_or(0);
        println!(
            "  stall: {} ({} requests at once), {place}, {:+.0} ms from the nearest swap start{}",
            fmt_ms(r.ms()),
            with,
            nearest as f64 / 1e3,
            if r.retried { ", retried" } else { "" }
        );
        shown.push(r);
    }
}

/// The window (index) a request was sent in, if any. A request belongs to
/// the window it started in: one already waiting when a swap began had
/// been sent to, and was answered by, the old worker (a retried one is
/// sent again after the close, inside the window).
fn window_of(r: &Rec, windows: &[(u64, u64)]) -> Option<usize> {
    windows
        .iter()
        .position(|&(s, e)| r.start_us >= s && r.start_us <= e)
}

/// Latencies (ms) of the requests sent in any of `windows` (µs).
pub(crate) fn latencies_in(recs: &[Rec], windows: &[(u64, u64)]) -> Vec<f64> {
    recs.iter()
        .filter(|r| window_of(r, windows).is_some())
        .map(Rec::ms)
        .collect()
}

//! Crash states in words, for reports.

use super::super::ops::TimedOp;
use super::{segments, CrashState, Variant};

/// Where the cut is and what survived, for a developer reading a failure.
pub fn describe(state: &CrashState, ops: &[TimedOp]) -> String {
    let segs = segments(ops);
    let seg = &segs[state.segment];
    let mut s = match seg.start.checked_sub(1) {
        Some(i) => format!("synced through `{}` ({})", ops[i].what, ops[i].pos),
        None => "the initial state".to_string(),
    };
    if state.applied > 0 && !matches!(state.variant, Variant::DirOps { .. }) {
        let last = &ops[seg.start + state.applied - 1];
        s += &format!(
            ", then {} unsynced operation(s) kept through `{}` ({})",
            state.applied, last.what, last.pos
        );
    }
    let next = ops.get(seg.start + state.applied);
    match (&state.variant, next) {
        (Variant::Torn { keep }, Some(op)) => {
            s += &format!(", then `{}` ({}) cut after {keep} bytes", op.what, op.pos)
        }
        (Variant::Sectors { mask }, Some(op)) => {
            let kept: Vec<usize> = (0..mask.len()).filter(|i| mask[*i]).collect();
            s += &format!(
                ", then of `{}` ({}) only sectors {} of 0-{}",
                op.what,
                op.pos,
                ranges(&kept),
                mask.len() - 1
            )
        }
        (Variant::DirOps { mask }, _) => {
            let seg_ops = &ops[seg.start..seg.end];
            let dir_ops = seg_ops.iter().filter(|o| super::is_dir_op(&o.op));
            let (kept, lost): (Vec<_>, Vec<_>) = dir_ops.zip(mask).partition(|(_, k)| **k);
            let names = |v: Vec<(&TimedOp, &bool)>| {
                let v: Vec<String> = v
                    .iter()
                    .map(|(o, _)| format!("`{}` ({})", o.what, o.pos))
                    .collect();
                if v.is_empty() {
                    "none".to_string()
                } else {
                    v.join(", ")
                }
            };
            s += &format!(
                ", then its writes, but of its directory operations only {} (not {})",
                names(kept),
                names(lost)
            )
        }
        _ => {}
    }
    match state.horizon {
        Some(h) => {
            let sync = ops
                .iter()
                .find(|o| o.pos == h)
                .map_or("?", |o| o.what.as_str());
            s += &format!("; answers sent before {h} (`{sync}`) count")
        }
        None => s += "; every answer counts",
    }
    s
}

/// `[0, 1, 2, 5]` -> `0-2,5`.
fn ranges(v: &[usize]) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut i = 0;
    while i < v.len() {
        let mut j = i;
        while j + 1 < v.len() && v[j + 1] == v[j] + 1 {
            j += 1;
        }
        parts.push(if i == j {
            v[i].to_string()
        } else {
            format!("{}-{}", v[i], v[j])
        });
        i = j + 1;
    }
    parts.join(",")
}

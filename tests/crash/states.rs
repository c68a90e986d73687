//! Disk states a power cut can leave, rebuilt from the recorded operations.
//!
//! The history is cut into segments at every successful sync (fsync or
//! fdatasync of a file or directory). What a sync makes durable: a file's
//! bytes and size as they are at that moment; a directory's entries (the
//! names it holds, each pointing at its inode) as they are at that moment.
//! Nothing else is durable: a new file's or directory's own name survives
//! only once its parent directory is synced, even if the file itself was
//! synced (ext4 usually commits the name along with the file, but POSIX
//! does not promise it and other file systems differ; this is the
//! conservative choice).
//!
//! A crash inside a segment leaves the state of its last sync (the
//! *base*: every inode as it was last synced, empty if never) plus, under
//! each model:
//! 1. [`Model::Synced`]: nothing more. Everything not yet synced is lost.
//! 2. [`Model::Torn`]: the segment's operations up to some point, in order,
//!    the last one (a write) cut off at some byte.
//! 3. [`Model::Sectors`]: the segment's operations up to a write, and any
//!    subset of that write's 512-byte sectors (disks do not promise an
//!    order between the sectors of one write).
//!
//! Each state is checked against the answers the worker sent before the
//! sync that closes its segment: until then, the cut can still come.

use std::collections::BTreeMap;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::fs::{Fs, FsOp, Ino, Node, View};
use super::ops::{Pos, TimedOp};

/// A persistence model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Model {
    Synced,
    Torn,
    Sectors,
}

impl Model {
    pub const ALL: [Model; 3] = [Model::Synced, Model::Torn, Model::Sectors];

    pub fn name(self) -> &'static str {
        match self {
            Model::Synced => "1 (only what was synced)",
            Model::Torn => "2 (a prefix of the unsynced operations, the last write torn)",
            Model::Sectors => "3 (any subset of the last write's 512-byte sectors)",
        }
    }
}

/// How the operation after the applied ones survives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Variant {
    /// Not at all.
    Whole,
    /// Its first `keep` bytes.
    Torn { keep: usize },
    /// The sectors marked true.
    Sectors { mask: Vec<bool> },
}

/// The operations between two syncs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    /// `ops[start..end]`; `ops[start - 1]` is the sync that opened it.
    pub start: usize,
    /// `ops[end]`, if any, is the sync that closes it.
    pub end: usize,
    /// Answers sent before this count; `None`: all of them.
    pub horizon: Option<Pos>,
}

/// Splits `ops` at every sync.
pub fn segments(ops: &[TimedOp]) -> Vec<Segment> {
    let mut out = Vec::new();
    let mut start = 0;
    for (i, op) in ops.iter().enumerate() {
        if matches!(op.op, FsOp::Sync { .. }) {
            out.push(Segment {
                start,
                end: i,
                horizon: Some(op.pos),
            });
            start = i + 1;
        }
    }
    out.push(Segment {
        start,
        end: ops.len(),
        horizon: None,
    });
    out
}

/// Limits on how many states are built; all choices are seeded.
#[derive(Debug, Clone)]
pub struct Sampling {
    pub seed: u64,
    /// Writes up to this long are torn at every byte.
    pub tear_all_below: usize,
    /// Tear points for a longer write (sector boundaries first).
    pub tears_per_write: usize,
    /// Writes of up to this many sectors get every subset.
    pub all_subsets_up_to: usize,
    /// Sampled subsets for a write of more sectors.
    pub subsets_per_write: usize,
    /// At most this many states per model (a seeded sample beyond).
    pub max_per_model: usize,
}

/// One state to check.
#[derive(Debug, Clone)]
pub struct CrashState {
    pub model: Model,
    pub segment: usize,
    /// Operations of the segment applied in full.
    pub applied: usize,
    pub variant: Variant,
    pub horizon: Option<Pos>,
}

/// Every state of every model, deduplicated (the same disk state twice in
/// a row is checked once, against the later horizon) and sampled.
pub fn plan(
    ops: &[TimedOp],
    initial: &Fs,
    s: &Sampling,
) -> (Vec<CrashState>, BTreeMap<Model, usize>) {
    let segs = segments(ops);
    let mut kept: BTreeMap<Model, Vec<(CrashState, u64)>> = BTreeMap::new();
    walk(ops, initial, &segs, s, &mut |state, fs| {
        let hash = fs.view_hash();
        let list = kept.entry(state.model).or_default();
        match list.last_mut() {
            Some((last, h)) if *h == hash => last.horizon = state.horizon,
            _ => list.push((state, hash)),
        }
    });
    let mut rng = StdRng::seed_from_u64(s.seed);
    let mut out = Vec::new();
    let mut candidates = BTreeMap::new();
    for (model, list) in kept {
        candidates.insert(model, list.len());
        let mut list: Vec<CrashState> = list.into_iter().map(|(st, _)| st).collect();
        if list.len() > s.max_per_model {
            let mut picked =
                rand::seq::index::sample(&mut rng, list.len(), s.max_per_model).into_vec();
            picked.sort_unstable();
            list = picked.into_iter().map(|i| list[i].clone()).collect();
        }
        out.extend(list);
    }
    (out, candidates)
}

/// Builds the disk state of each of `wanted` (from [`plan`]) and hands it
/// to `f`, in the order of the history.
pub fn build(
    ops: &[TimedOp],
    initial: &Fs,
    s: &Sampling,
    wanted: &[CrashState],
    mut f: impl FnMut(&CrashState, View),
) {
    let segs = segments(ops);
    let mut index: BTreeMap<(usize, usize, Model), Vec<&CrashState>> = BTreeMap::new();
    for w in wanted {
        index
            .entry((w.segment, w.applied, w.model))
            .or_default()
            .push(w);
    }
    walk(ops, initial, &segs, s, &mut |state, fs| {
        if let Some(list) = index.get(&(state.segment, state.applied, state.model)) {
            for w in list.iter().filter(|w| w.variant == state.variant) {
                f(w, fs.view());
            }
        }
    });
}

/// Visits every candidate state in the order of the history.
fn walk(
    ops: &[TimedOp],
    initial: &Fs,
    segs: &[Segment],
    s: &Sampling,
    visit: &mut dyn FnMut(CrashState, &Fs),
) {
    let mut volatile = initial.clone();
    let mut synced: BTreeMap<Ino, Node> = initial.nodes.clone();
    for (si, seg) in segs.iter().enumerate() {
        let state = |model, applied, variant| CrashState {
            model,
            segment: si,
            applied,
            variant,
            horizon: seg.horizon,
        };
        let mut cur = durable(&volatile, &synced);
        visit(state(Model::Synced, 0, Variant::Whole), &cur);
        for (k, op) in ops[seg.start..seg.end].iter().enumerate() {
            if let FsOp::Write { ino, offset, data } = &op.op {
                let seed = s.seed ^ (seg.start + k) as u64;
                for keep in tear_points(*offset, data.len(), s, seed) {
                    let mut torn = cur.clone();
                    torn.apply(&FsOp::Write {
                        ino: *ino,
                        offset: *offset,
                        data: data[..keep].to_vec(),
                    });
                    visit(state(Model::Torn, k, Variant::Torn { keep }), &torn);
                }
                for mask in sector_masks(*offset, data.len(), s, seed) {
                    let mut partial = cur.clone();
                    for (at, piece) in sector_pieces(*offset, data).zip(&mask) {
                        if *piece {
                            let (off, bytes) = at;
                            partial.apply(&FsOp::Write {
                                ino: *ino,
                                offset: off,
                                data: bytes.to_vec(),
                            });
                        }
                    }
                    visit(
                        state(Model::Sectors, k, Variant::Sectors { mask }),
                        &partial,
                    );
                }
            }
            cur.apply(&op.op);
            volatile.apply(&op.op);
            visit(state(Model::Torn, k + 1, Variant::Whole), &cur);
        }
        if let Some(FsOp::Sync { ino }) = ops.get(seg.end).map(|o| &o.op) {
            if let Some(node) = volatile.nodes.get(ino) {
                synced.insert(*ino, node.clone());
            }
        }
    }
}

/// Every inode as last synced; never synced: an empty file or directory.
fn durable(volatile: &Fs, synced: &BTreeMap<Ino, Node>) -> Fs {
    let nodes = volatile
        .nodes
        .iter()
        .map(|(ino, node)| {
            let node = synced.get(ino).cloned().unwrap_or_else(|| match node {
                Node::File(_) => Node::File(Default::default()),
                Node::Dir(_) => Node::Dir(BTreeMap::new()),
            });
            (*ino, node)
        })
        .collect();
    Fs { nodes }
}

/// Where the cut is and what survived, for a developer reading a failure.
pub fn describe(state: &CrashState, ops: &[TimedOp]) -> String {
    let segs = segments(ops);
    let seg = &segs[state.segment];
    let mut s = match seg.start.checked_sub(1) {
        Some(i) => format!("synced through `{}` ({})", ops[i].what, ops[i].pos),
        None => "the initial state".to_string(),
    };
    if state.applied > 0 {
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

const SECTOR: u64 = 512;

/// The parts of a write at `offset` that fall in each 512-byte sector.
fn sector_pieces(offset: u64, data: &[u8]) -> impl Iterator<Item = (u64, &[u8])> {
    let mut at = offset;
    let end = offset + data.len() as u64;
    std::iter::from_fn(move || {
        if at >= end {
            return None;
        }
        let next = ((at / SECTOR) + 1) * SECTOR;
        let stop = next.min(end);
        let piece = (at, &data[(at - offset) as usize..(stop - offset) as usize]);
        at = stop;
        Some(piece)
    })
}

/// Where a write of `len` bytes at `offset` is cut: every byte if short,
/// else sector boundaries, the first and last byte and seeded others.
pub fn tear_points(offset: u64, len: usize, s: &Sampling, seed: u64) -> Vec<usize> {
    if len <= 1 {
        return Vec::new();
    }
    if len <= s.tear_all_below {
        return (1..len).collect();
    }
    let mut rng = StdRng::seed_from_u64(seed);
    let boundaries: Vec<usize> = sector_pieces(offset, &vec![0; len])
        .map(|(at, piece)| (at - offset) as usize + piece.len())
        .filter(|b| *b < len)
        .collect();
    let mut points = vec![1, len - 1];
    let mut pool = boundaries;
    while points.len() < s.tears_per_write && !pool.is_empty() {
        points.push(pool.swap_remove(rng.gen_range(0..pool.len())));
    }
    while points.len() < s.tears_per_write + 2 {
        points.push(rng.gen_range(1..len));
    }
    points.sort_unstable();
    points.dedup();
    points
}

/// Which sectors of a write survive: every proper subset when there are
/// few, else seeded samples plus "all but the first" and "only the last".
pub fn sector_masks(offset: u64, len: usize, s: &Sampling, seed: u64) -> Vec<Vec<bool>> {
    let n = sector_pieces(offset, &vec![0; len]).count();
    if n < 2 {
        return Vec::new();
    }
    let mut masks = Vec::new();
    if n <= s.all_subsets_up_to {
        for bits in 1..(1u32 << n) - 1 {
            masks.push((0..n).map(|i| bits & (1 << i) != 0).collect());
        }
        return masks;
    }
    let mut rng = StdRng::seed_from_u64(seed.rotate_left(17));
    masks.push((0..n).map(|i| i > 0).collect());
    masks.push((0..n).map(|i| i == n - 1).collect());
    while masks.len() < s.subsets_per_write {
        let m: Vec<bool> = (0..n).map(|_| rng.gen_bool(0.5)).collect();
        if m.iter().any(|b| *b) && !m.iter().all(|b| *b) && !masks.contains(&m) {
            masks.push(m);
        }
    }
    masks
}

#[cfg(test)]
mod tests;

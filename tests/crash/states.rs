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
//! 4. [`Model::Reordered`]: every write of the segment, but only some of
//!    its directory operations (creations, renames, removals), in any
//!    subset: POSIX orders none of them before a directory sync, and some
//!    file systems persist them out of order (ext4 keeps the order within
//!    one directory; this model does not count on it).
//!
//! Each state is checked against the answers the worker sent before the
//! sync that closes its segment: until then, the cut can still come.

use std::collections::BTreeMap;

use rand::rngs::StdRng;
use rand::SeedableRng;

use super::fs::{Fs, FsOp, Ino, Node, View};
use super::ops::{Pos, TimedOp};

/// A persistence model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Model {
    Synced,
    Torn,
    Sectors,
    Reordered,
}

impl Model {
    pub const ALL: [Model; 4] = [Model::Synced, Model::Torn, Model::Sectors, Model::Reordered];

    pub fn name(self) -> &'static str {
        match self {
            Model::Synced => "1 (only what was synced)",
            Model::Torn => "2 (a prefix of the unsynced operations, the last write torn)",
            Model::Sectors => "3 (any subset of the last write's 512-byte sectors)",
            Model::Reordered => "4 (any subset of the unsynced directory operations)",
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
    /// Every operation of the segment, except the directory operations
    /// marked false.
    DirOps { mask: Vec<bool> },
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
        let seg_ops = &ops[seg.start..seg.end];
        let dir_ops = seg_ops.iter().filter(|o| is_dir_op(&o.op)).count();
        for mask in dir_op_masks(dir_ops, s, s.seed ^ seg.start as u64) {
            let mut partial = cur.clone();
            let mut kept = mask.iter();
            for op in seg_ops {
                if !is_dir_op(&op.op) || *kept.next().expect("a flag per directory operation") {
                    partial.apply(&op.op);
                }
            }
            let variant = Variant::DirOps { mask };
            visit(state(Model::Reordered, seg_ops.len(), variant), &partial);
        }
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

/// Whether `op` changes a directory (its order is not promised).
fn is_dir_op(op: &FsOp) -> bool {
    matches!(
        op,
        FsOp::Create { .. } | FsOp::Rename { .. } | FsOp::Unlink { .. }
    )
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

mod describe;
mod sample;

pub use describe::describe;
use sample::{dir_op_masks, sector_masks, sector_pieces, tear_points};

#[cfg(test)]
mod tests;

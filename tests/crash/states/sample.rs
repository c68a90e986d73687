//! Which tears and which sector subsets of a write are tried (seeded).

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::Sampling;

const SECTOR: u64 = 512;

/// The parts of a write at `offset` that fall in each 512-byte sector.
pub(super) fn sector_pieces(offset: u64, data: &[u8]) -> impl Iterator<Item = (u64, &[u8])> {
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
pub(super) fn tear_points(offset: u64, len: usize, s: &Sampling, seed: u64) -> Vec<usize> {
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
pub(super) fn sector_masks(offset: u64, len: usize, s: &Sampling, seed: u64) -> Vec<Vec<bool>> {
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

/// Which of `n` directory operations survive: every subset but "all"
/// (that is model 2's) when there are few, else seeded samples; none for
/// fewer than two (nothing to reorder).
pub(super) fn dir_op_masks(n: usize, s: &Sampling, seed: u64) -> Vec<Vec<bool>> {
    if n < 2 {
        return Vec::new();
    }
    if n <= s.all_subsets_up_to + 1 {
        return (0..(1u32 << n) - 1)
            .map(|bits| (0..n).map(|i| bits & (1 << i) != 0).collect())
            .collect();
    }
    let mut rng = StdRng::seed_from_u64(seed.rotate_left(29));
    let mut masks: Vec<Vec<bool>> = vec![(0..n).map(|i| i > 0).collect()];
    while masks.len() < s.subsets_per_write {
        let m: Vec<bool> = (0..n).map(|_| rng.gen_bool(0.5)).collect();
        if !m.iter().all(|b| *b) && !masks.contains(&m) {
            masks.push(m);
        }
    }
    masks
}

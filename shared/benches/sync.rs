//! What the sync helper costs on top of the plain call it makes.
//!
//! `shared::sync::data_sync` finds the call a volume accepts once, then
//! goes straight to it; this measures that indirection against std's
//! `File::sync_data`, both after a one-byte write to the same file,
//! interleaved in blocks so a slow stretch of a shared machine hits both
//! alike. Run it where syncs are cheap (a tmpfs such as `/dev/shm`, the
//! default) so the helper's own cost is not lost in the disk's.
//!
//! | variable | default | meaning |
//! |---|---|---|
//! | `BENCH_TMPDIR` | `/dev/shm` if it exists, else `/tmp` | where the file lives |
//! | `BENCH_BLOCKS` | 10 | interleaved blocks per variant |
//! | `BENCH_OPS` | 20000 | write + sync pairs per block |
//!
//! `cargo bench -p shared --bench sync`

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::time::{Duration, Instant};

fn knob(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .map(|v| {
            v.parse()
                .unwrap_or_else(|_| panic!("{name}={v:?} is not a number"))
        })
        .unwrap_or(default)
}

fn block(file: &File, ops: u64, sync: impl Fn(&File) -> std::io::Result<()>) -> Duration {
    let started = Instant::now();
    for i in 0..ops {
        file.write_all_at(&[i as u8], i % 4096).expect("write");
        sync(file).expect("sync");
    }
    started.elapsed()
}

fn median_ns(mut per_op: Vec<f64>) -> f64 {
    per_op.sort_by(f64::total_cmp);
    per_op[per_op.len() / 2]
}

fn main() {
    let dir = std::env::var_os("BENCH_TMPDIR").unwrap_or_else(|| {
        if std::path::Path::new("/dev/shm").is_dir() {
            "/dev/shm".into()
        } else {
            "/tmp".into()
        }
    });
    let blocks = knob("BENCH_BLOCKS", 10).max(1);
    let ops = knob("BENCH_OPS", 20_000).max(1);
    let tmp = tempfile::tempdir_in(&dir).expect("a temp dir in BENCH_TMPDIR");
    let file = File::options()
        .read(true)
        .write(true)
        .create_new(true)
        .open(tmp.path().join("probe"))
        .expect("create the probe file");
    // Settle the helper's method first, as the worker's first sync does.
    shared::sync::data_sync(&file).expect("first sync");
    let (mut std_ns, mut ours_ns) = (Vec::new(), Vec::new());
    for _ in 0..blocks {
        let per_op = |d: Duration| d.as_nanos() as f64 / ops as f64;
        std_ns.push(per_op(block(&file, ops, File::sync_data)));
        ours_ns.push(per_op(block(&file, ops, shared::sync::data_sync)));
    }
    let (base, ours) = (median_ns(std_ns), median_ns(ours_ns));
    println!(
        "write + sync in {}, {blocks} blocks x {ops}, median per op (method: {}):",
        dir.to_string_lossy(),
        shared::sync::data_sync_method().unwrap_or("none")
    );
    println!("  baseline  std File::sync_data        {base:>9.0} ns");
    println!("  ours      shared::sync::data_sync    {ours:>9.0} ns");
    println!(
        "  helper cost {:+.0} ns per sync ({:+.1}%)",
        ours - base,
        (ours - base) / base * 100.0
    );
}

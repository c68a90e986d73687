//! The disk's own baselines, and the settling between cells.

use super::*;

pub(crate) fn fsync_loop(cfg: &Config, mut one: impl FnMut()) -> f64 {
    let warm = Instant::now();
    while warm.elapsed().as_secs_f64() < cfg.warmup.min(0.5) {
        one();
    }
    let t0 = Instant::now();
    let mut n = 0u64;
    while t0.elapsed().as_secs_f64() < cfg.seconds {
        one();
        n += 1;
    }
    n as f64 / t0.elapsed().as_secs_f64()
}

/// Plain `write` of one record at the end of a growing file + `fdatasync`.
pub(crate) fn baseline_append(dir: &Path, cfg: &Config) -> f64 {
    let path = dir.join("append.bin");
    let mut f = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .expect("open append.bin");
    f.sync_all().expect("sync");
    shared::fsutil::fsync_dir(dir).expect("fsync dir");
    let rec = vec![b'x'; RECORD_BYTES];
    let rate = fsync_loop(cfg, || {
        f.write_all(&rec).expect("append");
        f.sync_data().expect("fdatasync");
    });
    let _ = std::fs::remove_file(&path);
    rate
}

/// `pwrite` of one record into a zero-filled, already synced file +
/// `fdatasync` (what our journal does: no size change to flush).
pub(crate) fn baseline_prealloc(dir: &Path, cfg: &Config) -> f64 {
    const SIZE: u64 = 64 << 20;
    let path = dir.join("prealloc.bin");
    let f = File::create(&path).expect("create prealloc.bin");
    let zeros = vec![0u8; 1 << 20];
    for i in 0..SIZE / zeros.len() as u64 {
        f.write_all_at(&zeros, i * zeros.len() as u64)
            .expect("zero fill");
    }
    f.sync_all().expect("sync");
    shared::fsutil::fsync_dir(dir).expect("fsync dir");
    let rec = vec![b'x'; RECORD_BYTES];
    let mut pos = 0u64;
    let rate = fsync_loop(cfg, || {
        if pos + RECORD_BYTES as u64 > SIZE {
            pos = 0;
        }
        f.write_all_at(&rec, pos).expect("pwrite");
        f.sync_data().expect("fdatasync");
        pos += RECORD_BYTES as u64;
    });
    let _ = std::fs::remove_file(&path);
    rate
}

pub(crate) struct Restore {
    pub(crate) sessions: usize,
    pub(crate) snapshot_bytes: usize,
    pub(crate) read: Duration,
    pub(crate) parse: Duration,
    pub(crate) ping: Duration,
    pub(crate) get: Duration,
    pub(crate) open: Duration,
}

/// True while a checkpoint of ours is in flight: from the moment the
/// writer starts a new journal (two journal files) until the snapshot is
/// renamed into place (a temp file) and the covered journals are deleted.
pub(crate) fn checkpoint_busy(dir: &DataDir) -> bool {
    let names = |d: &Path| -> Vec<String> {
        std::fs::read_dir(d)
            .map(|it| {
                it.filter_map(|e| e.ok())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default()
    };
    let journals = names(&dir.journal_dir())
        .iter()
        .filter(|n| n.ends_with(".journal"))
        .count();
    let temps = names(dir.root())
        .iter()
        .any(|n| n.starts_with(shared::fsutil::TEMP_PREFIX));
    journals != 1 || temps
}

/// Waits until no checkpoint of ours is in flight; how long that took
/// (charged to ours: it is the tail of the work its writes caused).
pub(crate) fn wait_checkpoint_idle(dir: &DataDir) -> Duration {
    let t = Instant::now();
    harness::poll_until(
        Duration::from_millis(2),
        Duration::from_secs(300),
        "a checkpoint to finish",
        || (!checkpoint_busy(dir)).then_some(()),
    );
    t.elapsed()
}

/// Flushes everything the setup wrote and lets the disk settle, so that
/// no design pays for another's writeback.
pub(crate) fn settle() {
    nix::unistd::sync();
    std::thread::sleep(Duration::from_millis(1000));
}

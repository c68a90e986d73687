//! The data written, and how a cell is measured: slices, windows, writers as tasks or threads.

use super::*;

pub(crate) fn session_id(k: usize) -> String {
    format!("s-{k:07}")
}

/// About `DATA_BYTES` of JSON that differs per writer and write.
pub(crate) fn payload(writer: usize, seq: u64) -> String {
    const WORDS: &[u8] = b"the quick brown fox jumps over the lazy dog; ";
    let mut s = String::with_capacity(DATA_BYTES + 8);
    s.push_str(&format!(
        r#"{{"writer":{writer},"seq":{seq},"messages":[{{"role":"user","content":""#
    ));
    let fill = DATA_BYTES.saturating_sub(s.len() + 4);
    let shift = seq as usize % WORDS.len();
    s.extend((0..fill).map(|i| WORDS[(i + shift) % WORDS.len()] as char));
    s.push_str(r#""}]}"#);
    s
}

pub(crate) fn raw(json: String) -> Box<RawValue> {
    RawValue::from_string(json).expect("the payload is valid JSON")
}

/// A different key sequence for every writer of every slice.
pub(crate) fn rng_for(writer: usize) -> StdRng {
    static SLICES: AtomicU64 = AtomicU64::new(0);
    let slice = SLICES.fetch_add(1, Ordering::Relaxed);
    StdRng::seed_from_u64((slice << 16) ^ writer as u64)
}

/// One measured stretch: `warmup` unmeasured, then `measured`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Slice {
    pub(crate) warmup: Duration,
    pub(crate) measured: Duration,
}

#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Measured {
    pub(crate) ops: u64,
    pub(crate) secs: f64,
}

impl Measured {
    pub(crate) fn rate(&self) -> f64 {
        self.ops as f64 / self.secs
    }

    pub(crate) fn add(&mut self, other: Measured) {
        self.ops += other.ops;
        self.secs += other.secs;
    }
}

/// Lets writers run `slice.warmup` unmeasured, then counts the writes
/// completed over `slice.measured` of wall-clock time.
pub(crate) fn measure_window(done: &AtomicU64, slice: Slice) -> Measured {
    std::thread::sleep(slice.warmup);
    let (c0, t0) = (done.load(Ordering::Relaxed), Instant::now());
    std::thread::sleep(slice.measured);
    let (c1, t1) = (done.load(Ordering::Relaxed), Instant::now());
    Measured {
        ops: c1 - c0,
        secs: (t1 - t0).as_secs_f64(),
    }
}

/// `writers` tokio tasks, each upserting random existing ids in a loop.
pub(crate) fn async_cell<F, Fut>(
    rt: &Runtime,
    slice: Slice,
    writers: usize,
    sessions: usize,
    put: F,
) -> Measured
where
    F: Fn(String, String) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let tasks: Vec<_> = (0..writers)
        .map(|w| {
            let (put, stop, done) = (put.clone(), stop.clone(), done.clone());
            rt.spawn(async move {
                let mut rng = rng_for(w);
                let mut seq = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    put(session_id(rng.gen_range(0..sessions)), payload(w, seq)).await;
                    seq += 1;
                    done.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    let measured = measure_window(&done, slice);
    stop.store(true, Ordering::Relaxed);
    rt.block_on(async {
        for t in tasks {
            t.await.expect("a writer task panicked");
        }
    });
    measured
}

/// `writers` OS threads, each with its own `put` (e.g. its own connection).
pub(crate) fn thread_cell<W>(
    slice: Slice,
    writers: usize,
    sessions: usize,
    mut make: impl FnMut(usize) -> W,
) -> Measured
where
    W: FnMut(String, String) + Send + 'static,
{
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let threads: Vec<_> = (0..writers)
        .map(|w| {
            let mut put = make(w);
            let (stop, done) = (stop.clone(), done.clone());
            std::thread::spawn(move || {
                let mut rng = rng_for(w);
                let mut seq = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    put(session_id(rng.gen_range(0..sessions)), payload(w, seq));
                    seq += 1;
                    done.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    let measured = measure_window(&done, slice);
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        t.join().expect("a writer thread panicked");
    }
    measured
}

pub(crate) fn median(mut xs: Vec<Duration>) -> Duration {
    xs.sort();
    xs[xs.len() / 2]
}

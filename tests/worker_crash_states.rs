//! Power cuts, not only SIGKILL: the real worker checked on every disk
//! state a power cut could leave during a recorded workload.
//!
//! The workload runs under strace (`crash::workload`); its file operations
//! are replayed into crash states under four persistence models
//! (`crash::states`): only what was synced; a prefix of the unsynced
//! operations with the last write torn at some byte; any subset of the
//! 512-byte sectors of the last write; any subset of the unsynced directory
//! operations. The real worker is started on each state and must start,
//! hold every write acknowledged before the cut and nothing no client sent
//! (`crash::check`); once a SIGUSR1 was answered, `sessions.json` must hold
//! every write acknowledged before it (`crash::promise`). Linux only:
//! strace.
//!
//! `SB_CRASH_MAX_STATES` caps the states per model and scenario (default
//! 1500); `SB_CRASH_KEEP_TRACES=DIR` copies the strace output there.
#![cfg(target_os = "linux")]

mod crash;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::mpsc;
use std::sync::Mutex;
use std::time::Instant;

use crash::expect::{History, Kind, Problem};
use crash::fs::FsOp;
use crash::ops::Timeline;
use crash::states::{self, CrashState, Model, Sampling};

/// Failures shown per model and kind of problem.
const SHOWN: usize = 2;

fn sampling() -> Sampling {
    let max = std::env::var("SB_CRASH_MAX_STATES")
        .ok()
        .map(|v| v.parse().expect("SB_CRASH_MAX_STATES is a number"))
        .unwrap_or(1500);
    Sampling {
        seed: 9,
        tear_all_below: 32,
        tears_per_write: 4,
        all_subsets_up_to: 3,
        subsets_per_write: 5,
        max_per_model: max,
    }
}

/// One checked state.
struct Checked {
    scenario: &'static str,
    model: Model,
    /// Where the cut is and what the disk held (for failures only).
    about: String,
    disk: String,
    problems: Vec<Problem>,
}

impl Checked {
    fn kinds(&self) -> BTreeSet<Kind> {
        self.problems.iter().map(|p| p.kind).collect()
    }

    /// The cut, the disk and the first `n` problems (of `kind` first),
    /// indented.
    fn show(&self, kind: Option<Kind>, n: usize) -> String {
        let mut problems: Vec<&Problem> = self.problems.iter().collect();
        problems.sort_by_key(|p| Some(p.kind) != kind);
        let mut out = format!(
            "  - {}: cut {}\n      disk: {}\n",
            self.scenario, self.about, self.disk
        );
        for p in problems.iter().take(n) {
            out += &format!("      {}\n", p.text);
        }
        if self.problems.len() > n {
            out += &format!("      ... and {} more\n", self.problems.len() - n);
        }
        out
    }
}

#[test]
fn every_power_cut_state_starts_and_keeps_every_acknowledged_write() {
    harness::strace::require_strace();
    let started = Instant::now();
    let scenarios = [crash::workload::fresh(), crash::workload::busy()];
    let mut out = format!("recorded in {:.1} s\n", started.elapsed().as_secs_f64());
    let mut results = Vec::new();
    let mut candidates: BTreeMap<Model, usize> = BTreeMap::new();
    for sc in &scenarios {
        let (summary, counts) = check_scenario(sc, &mut results);
        out += &summary;
        for (model, n) in counts {
            *candidates.entry(model).or_default() += n;
        }
    }
    let failed = report(&mut out, &candidates, &results);
    out += &format!("total {:.1} s\n", started.elapsed().as_secs_f64());
    let workload: Vec<String> = scenarios
        .iter()
        .flat_map(|sc| sc.problems.iter().map(move |p| format!("{}: {p}", sc.name)))
        .collect();
    if !workload.is_empty() {
        out += &format!(
            "the workload itself went wrong:\n  {}\n",
            workload.join("\n  ")
        );
    }
    if failed > 0 || !workload.is_empty() {
        panic!("{failed} crash states failed:\n{out}");
    }
    eprintln!("{out}");
}

/// Rebuilds and checks the states of one scenario; a line about it and
/// the number of distinct states per model.
fn check_scenario(
    sc: &crash::workload::Scenario,
    results: &mut Vec<Checked>,
) -> (String, BTreeMap<Model, usize>) {
    let mut t = Timeline::new(&sc.root, sc.initial.clone());
    for trace in &sc.traces {
        let text = std::fs::read_to_string(trace).expect("read the trace");
        let calls =
            crash::trace::parse(&text).unwrap_or_else(|e| panic!("{}: {e}", trace.display()));
        t.add_run(&calls)
            .unwrap_or_else(|e| panic!("{}: {e}", trace.display()));
    }
    if let Some(keep) = std::env::var_os("SB_CRASH_KEEP_TRACES") {
        for trace in &sc.traces {
            let name = format!(
                "{}-{}",
                name_slug(sc.name),
                trace.file_name().expect("a file").to_string_lossy()
            );
            std::fs::copy(trace, Path::new(&keep).join(name)).expect("copy a trace");
        }
    }
    let history = History::from_io(&t.io).expect("pair requests and answers");
    check_trace_lost_nothing(sc, &history);
    let promises = crash::promise::promises(&t.signals, &t.log);
    let s = sampling();
    let (plan, candidates) = states::plan(&t.ops, &t.initial, &s);

    let name = sc.name;
    // Build states in order on this thread; check them on two others.
    let (tx, rx) = mpsc::sync_channel::<(CrashState, crash::fs::View)>(4);
    let rx = Mutex::new(rx);
    let checked = Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..2 {
            scope.spawn(|| loop {
                let next = rx.lock().expect("queue lock").recv();
                let Ok((state, view)) = next else { return };
                let mut problems = crash::check::check(&view, state.horizon, &history);
                problems.extend(crash::promise::check_promises(
                    &view,
                    state.horizon,
                    &promises,
                    &history,
                ));
                let (about, disk) = if problems.is_empty() {
                    (String::new(), String::new())
                } else {
                    (states::describe(&state, &t.ops), view.summary())
                };
                let c = Checked {
                    scenario: name,
                    model: state.model,
                    about,
                    disk,
                    problems,
                };
                checked
                    .lock()
                    .expect("results lock")
                    .push((state.segment, state.applied, c));
            });
        }
        states::build(&t.ops, &t.initial, &s, &plan, |state, view| {
            tx.send((state.clone(), view))
                .expect("checkers are running");
        });
        drop(tx);
    });
    let mut checked = checked.into_inner().expect("results lock");
    checked.sort_by_key(|(segment, applied, c)| (c.model, *segment, *applied));
    results.extend(checked.into_iter().map(|(_, _, c)| c));
    let syncs = t
        .ops
        .iter()
        .filter(|o| matches!(o.op, FsOp::Sync { .. }))
        .count();
    let summary = format!(
        "scenario {}: {} file operations ({syncs} syncs), {} requests, {} answers, \
         {} SIGUSR1 answered\n",
        sc.name,
        t.ops.len(),
        history.requests,
        history.answers,
        promises.len()
    );
    (summary, candidates)
}

/// Panics if a put a client saw acknowledged is not acknowledged in the
/// history read from the trace: a bug in this test, not in the worker.
fn check_trace_lost_nothing(sc: &crash::workload::Scenario, history: &History) {
    let missing: Vec<&String> = sc
        .acked
        .iter()
        .filter(|(id, data)| {
            let writes = history.by_id.get(id).map(Vec::as_slice).unwrap_or_default();
            !writes.iter().any(|w| {
                w.value.as_ref() == Some(data)
                    && matches!(w.answered, Some((_, crash::expect::Outcome::Ok)))
            })
        })
        .map(|(id, _)| id)
        .collect();
    assert!(
        missing.is_empty(),
        "scenario {}: the trace lost {} acknowledged puts (e.g. of session {}): the test \
         misread the trace",
        sc.name,
        missing.len(),
        missing[0]
    );
}

/// Appends the counts and, per model and kind of problem, the first
/// failures; writes every failure to a file. Returns the failures.
fn report(out: &mut String, candidates: &BTreeMap<Model, usize>, results: &[Checked]) -> usize {
    let mut failed_total = 0;
    let mut all = String::new();
    for model in Model::ALL {
        let of: Vec<&Checked> = results.iter().filter(|c| c.model == model).collect();
        let failed: Vec<&&Checked> = of.iter().filter(|c| !c.problems.is_empty()).collect();
        failed_total += failed.len();
        *out += &format!(
            "model {}: {} states checked (of {} distinct), {} failed\n",
            model.name(),
            of.len(),
            candidates.get(&model).copied().unwrap_or(0),
            failed.len()
        );
        let mut by_kind: BTreeMap<Kind, Vec<&Checked>> = BTreeMap::new();
        for c in &failed {
            for k in c.kinds() {
                by_kind.entry(k).or_default().push(c);
            }
            all += &format!("model {}\n{}", model.name(), c.show(None, usize::MAX));
        }
        for (kind, list) in by_kind {
            *out += &format!("  {} in {} states, e.g.:\n", kind.name(), list.len());
            for c in list.iter().take(SHOWN) {
                *out += &c.show(Some(kind), 3);
            }
        }
    }
    if failed_total > 0 {
        let path = Path::new(env!("CARGO_TARGET_TMPDIR")).join("worker_crash_states.failures");
        match std::fs::write(&path, all) {
            Ok(()) => *out += &format!("every failure: {}\n", path.display()),
            Err(e) => *out += &format!("cannot write {}: {e}\n", path.display()),
        }
    }
    failed_total
}

/// `fresh data dir` -> `fresh-data-dir`.
fn name_slug(name: &str) -> String {
    name.replace(' ', "-")
}

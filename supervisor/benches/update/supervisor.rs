//! The supervisor under test: the harness's guard, started with the
//! updater's flags, and what the bench asks of it.

use super::*;

/// `supervisor run` watching the project's checkout (polling off), its
/// releases built in `staging`; returns once its worker is ready.
pub(crate) fn start(bins: &Bins, p: &Project, staging: &Path, probation_ms: u64) -> Supervisor {
    let args: Vec<OsString> = vec![
        "--repo".into(),
        p.checkout.as_path().into(),
        "--staging-dir".into(),
        staging.into(),
        "--build-profile".into(),
        "release".into(),
        "--probation-ms".into(),
        probation_ms.to_string().into(),
    ];
    let sup = Supervisor::launch(Launch {
        bin: bins.supervisor.clone(),
        data: p.data.clone(),
        logs: p.logs.clone(),
        stderr: p.root.join("supervisor.stderr"),
        args,
        env: vec![("RUST_LOG".into(), "info".into())],
    });
    wait_ready(&sup, |_| true);
    sup
}

/// `{"op":"status"}` on the control socket, as `status --json` asks it.
pub(crate) fn status(sup: &Supervisor) -> Option<Value> {
    sup.control("status", Duration::from_secs(10)).ok()
}

/// Waits for a ready worker whose status satisfies `pred`; the status.
pub(crate) fn wait_ready(sup: &Supervisor, pred: impl Fn(&Value) -> bool) -> Value {
    harness::poll_until(POLL, Duration::from_secs(120), "a ready worker", || {
        let s = status(sup)?;
        (s["worker"]["state"] == "ready" && pred(&s)).then_some(s)
    })
}

/// `supervisor --data-dir <data> ARGS…`: its output and wall time.
pub(crate) fn run_cli(sup: &Supervisor, args: &[&str]) -> (Output, Duration) {
    let t = Instant::now();
    let out = sup.cli(args).output().expect("run the supervisor CLI");
    (out, t.elapsed())
}

/// Every line of the supervisor's log files so far, oldest first.
pub(crate) fn log_lines(sup: &Supervisor) -> Vec<String> {
    sup.log_text("supervisor.")
        .lines()
        .map(String::from)
        .collect()
}

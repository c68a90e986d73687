use super::*;

/// One measured push, in ms.
#[derive(Debug, Default, Clone)]
pub(crate) struct PushSample {
    pub(crate) git_push: f64,
    /// `supervisor update` started -> `update.state` = building.
    pub(crate) fetch: f64,
    /// building -> the `building` log line: staging fetch, checkout, clean, diff.
    pub(crate) stage: f64,
    /// cargo, as the supervisor logged it (`took_ms`).
    pub(crate) build: f64,
    /// built -> swapping: install the release, fetch again.
    pub(crate) install: f64,
    /// swapping -> the old worker stopped.
    pub(crate) swap_stop: f64,
    /// swapping -> the new worker ready.
    pub(crate) swap_ready: f64,
    /// swapping -> passed probation.
    pub(crate) swap_probation: f64,
    /// passed probation -> `update deployed` (record, prune, pull).
    pub(crate) finish: f64,
    /// push started -> new worker ready.
    pub(crate) push_to_serving: f64,
    /// `supervisor update` wall time.
    pub(crate) update_wall: f64,
    /// The swap window in µs since the epoch (for the client latencies).
    pub(crate) window: (u64, u64),
}

/// Runs `supervisor update`, watching `update.state` meanwhile. Returns the
/// CLI's output, when it started, and when `building` started (from status).
fn update_watched(sup: &Supervisor) -> (Output, SystemTime, Option<SystemTime>) {
    let started = SystemTime::now();
    let mut child = sup
        .cli(&["update"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run supervisor update");
    let t0 = Instant::now();
    let what = "supervisor update to finish";
    // Status every 2 ms until it says `building` (or the CLI is done), then
    // the CLI's exit every 50 ms, which leaves the build alone.
    let building = harness::poll_until(Duration::from_millis(2), UPDATE_DEADLINE, what, || {
        if child
            .try_wait()
            .expect("wait for supervisor update")
            .is_some()
        {
            return Some(None);
        }
        let s = supervisor::status(sup)?;
        if s["update"]["state"] != "building" {
            return None;
        }
        s["update"]["step_started_at"]
            .as_str()
            .and_then(shared::time::parse_rfc3339)
            .map(Some)
    });
    if building.is_some() {
        let left = UPDATE_DEADLINE.saturating_sub(t0.elapsed());
        harness::poll_until(Duration::from_millis(50), left, what, || {
            let status = child.try_wait().expect("wait for supervisor update");
            status.map(drop)
        });
    }
    let out = child.wait_with_output().expect("supervisor update output");
    (out, started, building)
}

pub(crate) fn expect_ok(out: &Output, what: &str, sup: &Supervisor) -> String {
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "{what} failed: {text}\n---- supervisor stderr ----\n{}",
        sup.stderr_text()
    );
    text.trim().to_string()
}

/// The warm-up: `supervisor update` deploys the seed commit (a build of the
/// worker and, since the running supervisor's commit is not in the project,
/// of the supervisor, which then replaces itself). (was cold, build ms).
pub(crate) fn warm_up(sup: &Supervisor, p: &Project, staging: &Path) -> (bool, f64) {
    let cold = !staging.join("target/release/.fingerprint").is_dir();
    println!(
        "warm-up: deploying the seed commit; the staging area {} is {}",
        staging.display(),
        if cold {
            "COLD (no release build in it yet): every dependency is built"
        } else {
            "warm"
        }
    );
    let seed = p.tip();
    let from = log_lines(sup).len();
    let t = Instant::now();
    let (out, _, _) = update_watched(sup);
    let text = expect_ok(&out, "the warm-up update", sup);
    println!(
        "  `supervisor update`: {text} ({})",
        fmt_ms(ms(t.elapsed()))
    );
    // A supervisor change re-executes the supervisor after the answer.
    let s = wait_ready(sup, |s| {
        s["worker"]["commit"] == seed.as_str()
            && (!text.contains("replaces itself") || s["supervisor"]["commit"] == seed.as_str())
    });
    let lines = parse_log(&log_lines(sup)[from..]);
    let build = find(&lines, 0, "built ")
        .and_then(|(_, l)| field(l, "took_ms"))
        .and_then(|v| v.parse().ok())
        .unwrap_or(f64::NAN);
    println!(
        "  built in {}; supervisor now {} (commit {})",
        fmt_ms(build),
        s["supervisor"]["pid"],
        s["supervisor"]["commit"]
    );
    (cold, build)
}

pub(crate) fn push_once(
    sup: &Supervisor,
    p: &Project,
    n: usize,
    epoch_sys: SystemTime,
) -> PushSample {
    let (sha, push_at, push_wall) = p.push(n);
    let from = log_lines(sup).len();
    let (out, started, building) = update_watched(sup);
    let text = expect_ok(&out, "supervisor update", sup);
    let ended = SystemTime::now();
    assert!(text.contains(&sha[..12]), "deployed something else: {text}");
    let lines = parse_log(&log_lines(sup)[from..]);
    let need = |from: usize, prefix: &str| -> (usize, SystemTime) {
        let (i, l) = find(&lines, from, prefix).unwrap_or_else(|| {
            panic!(
                "no log line {prefix:?} after push {n}:\n{}",
                lines
                    .iter()
                    .map(|l| l.text.as_str())
                    .collect::<Vec<_>>()
                    .join("\n")
            )
        });
        (i, l.at)
    };
    let (i_building, t_building) = need(0, "building ");
    let (i_built, t_built) = need(i_building, "built ");
    let build = field(&lines[i_built], "took_ms")
        .and_then(|v| v.parse().ok())
        .unwrap_or(f64::NAN);
    let (i_swap, t_swap) = need(i_built, "swapping the worker");
    let (_, t_stopped) = need(i_swap, "worker stopped");
    let (i_ready, t_ready) = need(i_swap, "worker ready");
    let (i_passed, t_passed) = need(i_ready, "the new worker passed probation");
    let (_, t_deployed) = need(i_passed, "update deployed");
    let building = building.unwrap_or(t_building);
    let us = |t: SystemTime| {
        t.duration_since(epoch_sys)
            .map_or(0, |d| d.as_micros() as u64)
    };
    let s = PushSample {
        git_push: ms(push_wall),
        fetch: between(started, building),
        stage: between(building, t_building),
        build,
        install: between(t_built, t_swap),
        swap_stop: between(t_swap, t_stopped),
        swap_ready: between(t_swap, t_ready),
        swap_probation: between(t_swap, t_passed),
        finish: between(t_passed, t_deployed),
        push_to_serving: between(push_at, t_ready),
        update_wall: between(started, ended),
        window: (us(t_swap), us(t_ready)),
    };
    println!(
        "  push {n} ({}): push {}, fetch {}, staging {}, build {}, install {}, swap->ready {} (old stopped at {}), ->probation end {}, finish {}; push->serving {}",
        &sha[..12],
        fmt_ms(s.git_push),
        fmt_ms(s.fetch),
        fmt_ms(s.stage),
        fmt_ms(s.build),
        fmt_ms(s.install),
        fmt_ms(s.swap_ready),
        fmt_ms(s.swap_stop),
        fmt_ms(s.swap_probation),
        fmt_ms(s.finish),
        fmt_ms(s.push_to_serving)
    );
    s
}

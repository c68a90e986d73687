//! The status report (README, "The supervisor": `status --json`) and its
//! view for a person.

use serde::{Deserialize, Serialize};
use shared::health::{StoreHealth, StoreState};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Status {
    pub supervisor: SupervisorStatus,
    pub worker: WorkerStatus,
    pub sessions: Option<SessionsStatus>,
    pub update: UpdateStatus,
    pub paths: PathsStatus,
    /// Addition: the per-user service (null from a supervisor too old to say).
    #[serde(default)]
    pub service: Option<ServiceStatus>,
    /// The worker's store, as it last reported (all null while unknown).
    #[serde(default)]
    pub store: StoreStatus,
}

/// `{"state": "ok" | "degraded", "last_error", "since"}`; while the store
/// is degraded `supervisor status` exits 1.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct StoreStatus {
    pub state: Option<StoreState>,
    pub last_error: Option<String>,
    pub since: Option<String>,
}

impl From<Option<&StoreHealth>> for StoreStatus {
    fn from(health: Option<&StoreHealth>) -> Self {
        match health {
            Some(h) => StoreStatus {
                state: Some(h.state),
                last_error: h.last_error.clone(),
                since: Some(h.since.clone()),
            },
            None => StoreStatus::default(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SupervisorStatus {
    pub pid: u32,
    pub version: String,
    pub commit: Option<String>,
    pub started_at: String,
    pub uptime_secs: u64,
    /// Addition: the executable this supervisor runs (links resolved), so
    /// a person can tell which release's supervisor serves.
    #[serde(default)]
    pub binary: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WorkerStatus {
    /// `starting`, `ready`, `backoff`, `stopping` or `stopped`.
    pub state: String,
    pub pid: Option<u32>,
    pub commit: Option<String>,
    pub started_at: Option<String>,
    /// Workers started after the first one, for any reason.
    pub restarts: u64,
    /// How the previous worker ended, e.g. `signal 9 (SIGKILL)`.
    pub last_exit: Option<String>,
    /// Additions: the binary in use, and when a waiting restart is due.
    pub binary: Option<String>,
    pub next_start_in_ms: Option<u64>,
    /// Addition: a swapped-in worker still on probation: its commit and
    /// the time left before it counts as good; null otherwise.
    #[serde(default)]
    pub probation: Option<ProbationStatus>,
}

/// A new worker that serves but may still be rolled back.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ProbationStatus {
    pub commit: Option<String>,
    pub left_ms: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SessionsStatus {
    pub count: u64,
}

/// The updater's part of `status`: its settings, and what it is doing.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UpdateStatus {
    pub repo: Option<String>,
    pub branch: String,
    pub poll_interval_ms: u64,
    /// Kept by the updater; its fields sit beside the settings in JSON.
    #[serde(flatten)]
    pub view: UpdateView,
}

/// What the updater shows of itself: published by it, and carried over a
/// self-update re-exec.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct UpdateView {
    pub last_poll_at: Option<String>,
    pub last_poll: Option<String>,
    pub deployed_commit: Option<String>,
    /// `idle`, `fetching`, `building`, `swapping`.
    pub state: String,
    pub last_error: Option<String>,
    pub held_commits: Vec<String>,
    /// Additions: the commit being built or swapped in and since when, and
    /// why the watched checkout was not fast-forwarded.
    pub target_commit: Option<String>,
    pub step_started_at: Option<String>,
    pub checkout: Option<String>,
    /// Addition: the last poll failed for a reason that is not the
    /// commit's fault; null otherwise.
    #[serde(default)]
    pub retry: Option<UpdateRetry>,
    /// Addition: a self-update waiting for the worker to be ready, or why
    /// the last one did not happen; null otherwise.
    #[serde(default)]
    pub self_update: Option<String>,
}

/// An update that failed for a reason that is not the commit's fault
/// (offline, disk full, ...): not held, tried again at `next_at`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpdateRetry {
    pub reason: String,
    /// Failures in a row.
    pub attempts: u32,
    /// When the next poll tries again; null while polling is off.
    pub next_at: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PathsStatus {
    pub data_dir: String,
    pub log_dir: String,
}

/// The per-user service as the running supervisor sees it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ServiceStatus {
    /// `launchd` or `systemd`: the one whose file is present, else this
    /// platform's.
    pub manager: String,
    /// Whether the plist or unit file is present.
    pub installed: bool,
    pub unit_path: Option<String>,
    /// Where `git` and `cargo` resolve with this process's PATH, or null.
    pub git: Option<String>,
    pub cargo: Option<String>,
    /// Addition: why `git --version` / `cargo --version` failed when last
    /// checked (at start, and before updates), or null.
    #[serde(default)]
    pub git_error: Option<String>,
    #[serde(default)]
    pub cargo_error: Option<String>,
}

/// `3h 02m`, `5m 10s`, `42s`.
pub fn human_duration(secs: u64) -> String {
    let (d, h, m, s) = (secs / 86_400, secs / 3600 % 24, secs / 60 % 60, secs % 60);
    if d > 0 {
        format!("{d}d {h:02}h")
    } else if h > 0 {
        format!("{h}h {m:02}m")
    } else if m > 0 {
        format!("{m}m {s:02}s")
    } else {
        format!("{s}s")
    }
}

fn short(commit: &Option<String>) -> String {
    match commit {
        Some(c) => c.chars().take(12).collect(),
        None => "unknown".into(),
    }
}

fn age_of(rfc3339: &Option<String>) -> Option<String> {
    let t = shared::time::parse_rfc3339(rfc3339.as_deref()?)?;
    let secs = std::time::SystemTime::now()
        .duration_since(t)
        .ok()?
        .as_secs();
    Some(human_duration(secs))
}

impl Status {
    /// The report for a person at a terminal.
    pub fn render(&self) -> String {
        let s = &self.supervisor;
        let w = &self.worker;
        let u = &self.update;
        let mut out = String::new();
        let mut line = |label: &str, text: String| {
            out.push_str(&format!("{label:<11}{text}\n"));
        };
        line(
            "supervisor",
            format!(
                "running, pid {}, up {}, version {} ({})",
                s.pid,
                human_duration(s.uptime_secs),
                s.version,
                short(&s.commit)
            ),
        );
        let mut worker = w.state.clone();
        if let Some(pid) = w.pid {
            worker.push_str(&format!(", pid {pid}"));
        }
        if let Some(age) = age_of(&w.started_at) {
            worker.push_str(&format!(", up {age}"));
        }
        if w.commit.is_some() {
            worker.push_str(&format!(", commit {}", short(&w.commit)));
        }
        if let Some(p) = &w.probation {
            worker.push_str(&format!(
                ", on probation for {} more",
                human_duration(p.left_ms.div_ceil(1000))
            ));
        }
        if let Some(ms) = w.next_start_in_ms {
            worker.push_str(&format!(", next start in {:.1}s", ms as f64 / 1000.0));
        }
        line("worker", worker);
        line(
            "restarts",
            match &w.last_exit {
                Some(e) => format!("{} (last exit: {e})", w.restarts),
                None => w.restarts.to_string(),
            },
        );
        let st = &self.store;
        match (&st.state, age_of(&st.since)) {
            (Some(StoreState::Degraded), age) => line(
                "store",
                format!(
                    "DEGRADED{}: {}",
                    age.map(|a| format!(" for {a}")).unwrap_or_default(),
                    st.last_error.as_deref().unwrap_or("no reason given")
                ),
            ),
            (Some(StoreState::Ok), _) => line("store", "ok".into()),
            (None, _) => {}
        }
        line(
            "sessions",
            match &self.sessions {
                Some(c) => c.count.to_string(),
                None => "unknown (worker not ready)".into(),
            },
        );
        let polling = if u.poll_interval_ms == 0 {
            "polling off".to_string()
        } else {
            format!("every {}", human_duration(u.poll_interval_ms / 1000))
        };
        line(
            "updates",
            format!(
                "{}, {} of {} ({polling}), deployed {}",
                u.view.state,
                u.branch,
                u.repo.as_deref().unwrap_or("no repository"),
                short(&u.view.deployed_commit)
            ),
        );
        if let Some(target) = &u.view.target_commit {
            let since = age_of(&u.view.step_started_at)
                .map(|a| format!(" for {a}"))
                .unwrap_or_default();
            line(
                "now",
                format!("{} {}{since}", u.view.state, short(&Some(target.clone()))),
            );
        }
        if let Some(poll) = &u.view.last_poll {
            let when = age_of(&u.view.last_poll_at)
                .map(|a| format!(" ({a} ago)"))
                .unwrap_or_default();
            line("last poll", format!("{poll}{when}"));
        }
        if let Some(why) = &u.view.checkout {
            line("checkout", why.clone());
        }
        if let Some(e) = &u.view.last_error {
            line("last error", e.clone());
        }
        if let Some(r) = &u.view.retry {
            let when = match r.next_at.as_deref().and_then(shared::time::parse_rfc3339) {
                Some(at) => match at.duration_since(std::time::SystemTime::now()) {
                    Ok(left) => format!("next try in {}", human_duration(left.as_secs())),
                    Err(_) => "next try at the next poll".into(),
                },
                None => "next try with `supervisor update`".into(),
            };
            line(
                "retrying",
                format!("not held, failed {} time(s); {when}", r.attempts),
            );
        }
        if let Some(s) = &u.view.self_update {
            line("self-update", s.clone());
        }
        if !u.view.held_commits.is_empty() {
            line("held", u.view.held_commits.join(", "));
        }
        line("data", self.paths.data_dir.clone());
        line("logs", self.paths.log_dir.clone());
        if let Some(b) = &w.binary {
            line("binary", b.clone());
        }
        if let Some(b) = &s.binary {
            line("sup binary", b.clone());
        }
        if let Some(sv) = &self.service {
            let path = sv.unit_path.as_deref().unwrap_or("no home directory");
            let installed = if sv.installed {
                format!("installed ({path})")
            } else {
                format!("not installed (no {path}; see `supervisor install`)")
            };
            line("service", format!("{} {installed}", sv.manager));
            let tool = |name: &str, at: &Option<String>, error: &Option<String>| match (at, error) {
                (Some(p), None) => format!("{name} {p}"),
                (Some(p), Some(_)) => format!("{name} {p} (DOES NOT RUN)"),
                (None, _) => format!("{name} NOT FOUND"),
            };
            line(
                "tools",
                format!(
                    "{}, {}",
                    tool("git", &sv.git, &sv.git_error),
                    tool("cargo", &sv.cargo, &sv.cargo_error)
                ),
            );
            for e in [&sv.git_error, &sv.cargo_error].into_iter().flatten() {
                line("tool error", e.clone());
            }
        }
        out
    }
}

#[cfg(test)]
mod tests;

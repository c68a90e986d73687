//! The actor's part of `supervisor status`.

use tokio::time::Instant;

use super::{Actor, Phase};
use crate::status::{
    PathsStatus, ProbationStatus, Status, SupervisorStatus, UpdateStatus, UpdateView, WorkerStatus,
};

impl Actor {
    pub(super) fn status(&self) -> Status {
        let cfg = &self.cfg;
        let run = self.phase.running();
        let next_start_in_ms = match &self.phase {
            Phase::Backoff { until } => {
                Some(until.saturating_duration_since(Instant::now()).as_millis() as u64)
            }
            _ => None,
        };
        let ready = match &self.phase {
            Phase::Ready(r) => Some(r),
            _ => None,
        };
        let probation = ready.and_then(|r| {
            let until = r.probation_until?;
            Some(ProbationStatus {
                commit: r.candidate.clone(),
                left_ms: until.saturating_duration_since(Instant::now()).as_millis() as u64,
            })
        });
        // The commit of a ready worker that is not on trial is the one that
        // serves; control uses it while no release has been deployed.
        let serving = ready
            .filter(|r| r.candidate.is_none())
            .and_then(|r| r.commit.clone());
        Status {
            supervisor: SupervisorStatus {
                pid: std::process::id(),
                version: shared::version::VERSION.into(),
                commit: shared::version::commit_or_null().map(String::from),
                started_at: self.started_at.clone(),
                uptime_secs: self.started.elapsed().as_secs(),
                binary: crate::exe::own_exe().ok().map(|p| p.display().to_string()),
            },
            worker: WorkerStatus {
                state: self.phase.name().into(),
                pid: run.map(|r| r.pid),
                commit: run.and_then(|r| r.commit.clone()),
                started_at: run.map(|r| r.started_at.clone()),
                restarts: self.spawned.saturating_sub(1),
                last_exit: self.last_exit.clone(),
                binary: run.map(|r| r.binary.display().to_string()),
                next_start_in_ms,
                probation,
            },
            sessions: None,
            update: UpdateStatus {
                repo: cfg.repo.as_ref().map(|p| p.display().to_string()),
                branch: cfg.branch.clone(),
                poll_interval_ms: cfg.poll_interval_ms,
                // The updater's part; control fills it in.
                view: UpdateView {
                    deployed_commit: serving,
                    ..Default::default()
                },
            },
            paths: PathsStatus {
                data_dir: cfg.data_dir.root().display().to_string(),
                log_dir: cfg.log_dir.display().to_string(),
            },
            service: Some(crate::install::service_status()),
            store: run.and_then(|r| r.store.as_ref()).into(),
        }
    }
}

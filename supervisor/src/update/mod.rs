//! Updates from git: poll the watched branch, build a new commit in a
//! staging clone, install it as a release, hot-swap the worker onto it
//! (through the actor's graceful restart, with a probation window), roll
//! back and hold commits that fail, fast-forward the watched checkout, and
//! re-execute the supervisor when it changed.
//!
//! The updater is its own task: one update at a time; it publishes what it
//! is doing on a watch channel that `status` reads.

pub mod backups;
pub mod build;
mod cargo_log;
pub mod command;
pub mod error;
pub mod git;
pub mod held;
pub mod leftovers;
pub mod releases;
mod retry;
mod self_update;
mod steps;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot, watch};
use tracing::{info, warn};

use crate::actor::ActorHandle;
use crate::RunConfig;
use build::Staging;
use git::Git;
use held::Held;
use releases::Releases;

pub use crate::status::UpdateView;

/// A `supervisor update` request: poll now; answered with the outcome.
pub struct UpdateRequest {
    pub retry_held: bool,
    pub reply: oneshot::Sender<UpdateAnswer>,
}

/// The outcome of a poll, and a way to say it reached the client (a
/// self-update waits for that before the process image is replaced).
pub struct UpdateAnswer {
    pub result: Result<String, String>,
    pub delivered: oneshot::Sender<()>,
}

pub struct Updater {
    cfg: Arc<RunConfig>,
    actor: ActorHandle,
    view: watch::Sender<UpdateView>,
    staging: Staging,
    releases: Releases,
    held: Held,
    /// A new supervisor binary to re-execute once the poll is answered,
    /// kept until that happens (see `self_update`).
    reexec: Option<PathBuf>,
    /// Whether the worker is ready for a self-update (from the actor).
    settled: Option<watch::Receiver<bool>>,
}

/// Waits for every receiver (a sender dropped counts as done).
async fn futures_join(rxs: Vec<oneshot::Receiver<()>>) {
    for rx in rxs {
        let _ = rx.await;
    }
}

/// The outcome of one poll, for the log, status and `supervisor update`.
enum Outcome {
    /// Up to date, or nothing to watch.
    Nothing(String),
    Deployed(String),
    /// The tip is a held commit: nothing tried, the reason stays visible.
    Held(String),
    /// The commit is at fault: it was held just now.
    Failed(String),
    /// Not the commit's fault: tried again at a later poll.
    Retry(String),
}

impl Updater {
    /// `previous`: what the updater showed before a self-update re-exec.
    pub fn new(
        cfg: Arc<RunConfig>,
        actor: ActorHandle,
        previous: Option<UpdateView>,
    ) -> (Updater, watch::Receiver<UpdateView>) {
        let releases = Releases::of(&cfg.data_dir);
        let held = Held::load(cfg.data_dir.held_commits());
        let view = UpdateView {
            state: "idle".into(),
            deployed_commit: releases.deployed().map(|(c, _)| c),
            held_commits: held.commits(),
            target_commit: None,
            step_started_at: None,
            // Why this start is not on the deployed release's supervisor.
            self_update: releases::NOT_EXECUTED.get().cloned(),
            ..previous.unwrap_or_default()
        };
        let (tx, rx) = watch::channel(view);
        let staging = Staging {
            root: cfg
                .staging_dir
                .clone()
                .unwrap_or_else(|| cfg.data_dir.staging_dir()),
        };
        (
            Updater {
                cfg,
                actor,
                view: tx,
                staging,
                releases,
                held,
                reexec: None,
                settled: None,
            },
            rx,
        )
    }

    /// Lets a self-update that had to wait go ahead when `settled` (see
    /// `Actor::watch_settled`) becomes true.
    pub fn watch_worker(&mut self, settled: watch::Receiver<bool>) {
        self.settled = Some(settled);
    }

    /// Polls at the interval and on request, one update at a time.
    pub async fn run(mut self, mut requests: mpsc::Receiver<UpdateRequest>) {
        // First what a dead supervisor left running in the staging area.
        leftovers::start(&self.staging);
        // Whether git and cargo run, for `status`: checked once now, and
        // again before updates.
        tokio::task::spawn(async {
            for tool in ["git", "cargo"] {
                let _ = crate::tools::usable_async(tool, true).await;
            }
        });
        // A self-update installed but never tried (the service stopped
        // while it waited): tried once the worker is ready.
        self.reexec = self.releases.untried_supervisor();
        let interval = Duration::from_millis(self.cfg.poll_interval_ms);
        let mut next =
            (!interval.is_zero()).then(|| Instant::now() + interval.min(Duration::from_secs(2)));
        loop {
            let mut waiters = Vec::new();
            tokio::select! {
                _ = crate::sleep::sleep_until(next), if next.is_some() => {}
                req = requests.recv() => match req {
                    Some(r) => waiters.push(r),
                    None => return,
                },
                closed = self_update::settled(&mut self.settled), if self.reexec.is_some() => {
                    if closed {
                        self.settled = None;
                    } else if let Some(bin) = self.reexec.take() {
                        self.re_exec(bin).await;
                    }
                    continue;
                }
            }
            // Requests that arrived meanwhile share this poll.
            while let Ok(r) = requests.try_recv() {
                waiters.push(r);
            }
            if waiters.iter().any(|w| w.retry_held) {
                self.held.clear();
                self.set(|v| v.held_commits.clear());
            }
            // Someone asked: check the tools again (they may just have
            // installed the missing one).
            let fresh = !waiters.is_empty();
            let outcome = self.poll(fresh).await;
            let answer = match outcome {
                Outcome::Nothing(s) | Outcome::Deployed(s) | Outcome::Held(s) => Ok(s),
                Outcome::Failed(s) | Outcome::Retry(s) => Err(s),
            };
            let mut deliveries = Vec::new();
            for w in waiters {
                let (delivered, rx) = oneshot::channel();
                let sent = w.reply.send(UpdateAnswer {
                    result: answer.clone(),
                    delivered,
                });
                if sent.is_ok() {
                    deliveries.push(rx);
                }
            }
            if let Some(bin) = self.reexec.take() {
                // Let every `supervisor update` read its answer first: the
                // exec closes their connections.
                let all = futures_join(deliveries);
                let _ = tokio::time::timeout(Duration::from_secs(5), all).await;
                self.re_exec(bin).await;
            }
            if !interval.is_zero() {
                let failures = self.view.borrow().retry.as_ref().map_or(0, |r| r.attempts);
                next = Some(Instant::now() + retry::delay(interval, failures));
            }
        }
    }

    fn set(&self, f: impl FnOnce(&mut UpdateView)) {
        self.view.send_modify(f);
    }

    fn step(&self, state: &str, target: Option<&str>) {
        self.set(|v| {
            v.state = state.into();
            v.target_commit = target.map(String::from);
            v.step_started_at = Some(shared::time::now_rfc3339());
        });
    }

    async fn poll(&mut self, fresh: bool) -> Outcome {
        let mut outcome = self.poll_inner(fresh).await;
        let retry = self.retry_after(&mut outcome);
        // `last_error` describes the problem now: none after a clean poll.
        let (text, err) = match &outcome {
            Outcome::Nothing(s) | Outcome::Deployed(s) => (s.clone(), None),
            Outcome::Held(s) | Outcome::Failed(s) | Outcome::Retry(s) => {
                (s.clone(), Some(s.clone()))
            }
        };
        let changed = self.view.borrow().last_poll.as_deref() != Some(text.as_str());
        match &outcome {
            Outcome::Failed(s) | Outcome::Retry(s) => warn!(outcome = %s, "update poll failed"),
            Outcome::Deployed(s) => info!(outcome = %s, "update deployed"),
            Outcome::Nothing(s) | Outcome::Held(s) if changed => info!(outcome = %s, "update poll"),
            Outcome::Nothing(s) | Outcome::Held(s) => tracing::debug!(outcome = %s, "update poll"),
        }
        self.set(|v| {
            v.state = "idle".into();
            v.target_commit = None;
            v.step_started_at = None;
            v.last_poll = Some(text);
            v.last_error = err;
            v.retry = retry;
        });
        outcome
    }

    async fn poll_inner(&mut self, fresh: bool) -> Outcome {
        self.set(|v| v.last_poll_at = Some(shared::time::now_rfc3339()));
        let Some(repo) = self.cfg.repo.clone() else {
            return Outcome::Nothing("no repository to watch (set SECOND_BRAIN_REPO)".into());
        };
        let git_bin = match crate::tools::usable_async("git", fresh).await {
            Ok(bin) => bin,
            Err(e) => return Outcome::Retry(format!("cannot poll: {e}")),
        };
        let git = Git {
            bin: git_bin,
            timeout: self.cfg.git_timeout,
        };
        self.step("fetching", None);
        let mut tip = match git.fetch(&repo, &self.cfg.branch).await {
            Ok(sha) => sha,
            Err(e) => return Outcome::Retry(format!("fetch failed: {e}")),
        };
        loop {
            let deployed = self.deployed_commit().await;
            if deployed.as_deref() == Some(tip.as_str()) {
                self.pull(&git, &repo, &tip).await;
                return Outcome::Nothing(format!("up to date at {}", short(&tip)));
            }
            if let Some(why) = self.held.reason(&tip) {
                return Outcome::Held(format!(
                    "{} is held ({why}); waiting for a newer commit (`supervisor update --retry` tries it again)",
                    short(&tip)
                ));
            }
            // Not the commit's fault: not held.
            let cargo = match crate::tools::usable_async("cargo", fresh).await {
                Ok(bin) => bin,
                Err(e) => return Outcome::Retry(format!("{} not built: {e}", short(&tip))),
            };
            let built = match self
                .build(&git, &cargo, &repo, &tip, deployed.as_deref())
                .await
            {
                Ok(b) => b,
                Err(e) => return self.not_deployed(&tip, e, "not deployed"),
            };
            // The newest commit wins: if the branch moved during the build,
            // build that one instead of swapping to this one.
            if let Ok(newer) = git.fetch(&repo, &self.cfg.branch).await {
                if newer != tip && self.held.reason(&newer).is_none() {
                    info!(
                        built = short(&tip),
                        newer = short(&newer),
                        "the branch moved during the build"
                    );
                    tip = newer;
                    continue;
                }
            }
            return self.swap(&git, &repo, &tip, built).await;
        }
    }

    /// The commit serving now: the deployed release, or the running worker's.
    async fn deployed_commit(&self) -> Option<String> {
        if let Some((c, _)) = self.releases.deployed() {
            return Some(c);
        }
        self.actor.status().await.ok()?.worker.commit
    }
}

pub(crate) fn short(sha: &str) -> &str {
    &sha[..12.min(sha.len())]
}

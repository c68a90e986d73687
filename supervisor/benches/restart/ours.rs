//! Ours: a supervisor under test (the harness's guard), and the worker it
//! serves now.

use super::*;

pub(crate) struct Ours {
    pub(crate) sup: Supervisor,
    /// The worker serving now, and when we saw it ready.
    pub(crate) worker: u32,
    pub(crate) ready_seen: Instant,
}

impl Ours {
    /// `supervisor run` with its data and log dirs in `root`.
    pub(crate) fn spawn(bins: &Bins, root: &Path) -> Ours {
        std::fs::create_dir_all(root).expect("create the supervisor's dir");
        let sup = Supervisor::launch(Launch {
            bin: bins.supervisor.clone(),
            data: root.join("data"),
            logs: root.join("logs"),
            stderr: root.join("supervisor.stderr"),
            args: vec!["--worker-bin".into(), bins.worker.clone().into()],
            env: Vec::new(),
        });
        Ours {
            sup,
            worker: 0,
            ready_seen: Instant::now(),
        }
    }

    /// The worker socket, bound by the supervisor.
    pub(crate) fn sock(&self) -> PathBuf {
        self.sup.sock()
    }

    /// Waits until the supervisor reports a ready worker other than the
    /// one we knew, and records it.
    pub(crate) fn wait_ready(&mut self) -> u32 {
        let old = self.worker;
        let sup = &mut self.sup;
        let what = format!(
            "a ready worker from the supervisor in {}",
            sup.data.display()
        );
        let pid = harness::poll_until(POLL, Duration::from_secs(30), &what, || {
            if let Ok(s) = sup.control("status", Duration::from_secs(5)) {
                let pid = s["worker"]["pid"].as_u64().unwrap_or(0) as u32;
                if s["worker"]["state"] == "ready" && pid != old && pid != 0 {
                    return Some(pid);
                }
            }
            if let Some(status) = sup.try_exit() {
                panic!("the supervisor exited ({status}):\n{}", sup.stderr_text());
            }
            None
        });
        self.worker = pid;
        self.ready_seen = Instant::now();
        pid
    }

    /// The `restart_in_ms` of every "worker died" line in the supervisor's
    /// log: the backoff it chose after each crash.
    pub(crate) fn backoff_delays(&self) -> Vec<u64> {
        self.sup
            .log_text("supervisor")
            .lines()
            .filter(|l| l.contains("worker died"))
            .filter_map(|l| l.split("restart_in_ms=").nth(1))
            .filter_map(|v| v.split_whitespace().next()?.parse::<u64>().ok())
            .collect()
    }

    pub(crate) fn rss(&self) -> Rss {
        Rss::of(self.sup.pid())
    }

    /// A fresh `supervisor ARGS…` process against this data dir.
    pub(crate) fn cli(&self, args: &[&str]) -> std::process::Output {
        self.sup.cli(args).output().expect("run the supervisor CLI")
    }
}

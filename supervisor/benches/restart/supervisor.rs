use super::*;

pub(crate) struct Supervisor {
    child: Child,
    pub(crate) data: PathBuf,
    pub(crate) ctl: PathBuf,
    pub(crate) sock: PathBuf,
    pub(crate) bin: PathBuf,
    /// The worker serving now, and when we saw it ready.
    pub(crate) worker: u32,
    pub(crate) ready_seen: Instant,
}

impl Supervisor {
    pub(crate) fn spawn(bins: &Bins, root: &Path) -> Supervisor {
        let data = root.join("data");
        let logs = root.join("logs");
        std::fs::create_dir_all(root).expect("create the supervisor's dir");
        let stderr = std::fs::File::create(root.join("supervisor.stderr")).expect("stderr file");
        let child = clean_env(&mut Command::new(&bins.supervisor))
            .arg("run")
            .arg("--data-dir")
            .arg(&data)
            .arg("--log-dir")
            .arg(&logs)
            .args(["--poll-interval-ms", "0", "--worker-bin"])
            .arg(&bins.worker)
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .expect("start the supervisor");
        Supervisor {
            child,
            ctl: data.join("supervisor.sock"),
            sock: data.join("worker.sock"),
            data,
            bin: bins.supervisor.clone(),
            worker: 0,
            ready_seen: Instant::now(),
        }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn status(&self) -> Option<Value> {
        control(&self.ctl, "status", Duration::from_secs(5)).ok()
    }

    /// Waits until the supervisor reports a ready worker other than the
    /// one we knew, and records it.
    pub(crate) fn wait_ready(&mut self) -> u32 {
        let old = self.worker;
        let deadline = Instant::now() + Duration::from_secs(30);
        let pid = loop {
            if let Some(s) = self.status() {
                let pid = s["worker"]["pid"].as_u64().unwrap_or(0) as u32;
                if s["worker"]["state"] == "ready" && pid != old && pid != 0 {
                    break pid;
                }
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                let stderr = std::fs::read_to_string(self.data.with_file_name("supervisor.stderr"))
                    .unwrap_or_default();
                panic!("the supervisor exited ({status}):\n{stderr}");
            }
            assert!(
                Instant::now() < deadline,
                "no ready worker from the supervisor in {}; last status: {:?}",
                self.data.display(),
                self.status()
            );
            thread::sleep(Duration::from_millis(1));
        };
        self.worker = pid;
        self.ready_seen = Instant::now();
        pid
    }

    /// The `restart_in_ms` of every "worker died" line in the supervisor's
    /// log: the backoff it chose after each crash.
    pub(crate) fn backoff_delays(&self) -> Vec<u64> {
        let logs = self.data.with_file_name("logs");
        let mut delays = Vec::new();
        for entry in std::fs::read_dir(&logs).into_iter().flatten().flatten() {
            if !entry
                .file_name()
                .to_string_lossy()
                .starts_with("supervisor")
            {
                continue;
            }
            let text = std::fs::read_to_string(entry.path()).unwrap_or_default();
            delays.extend(
                text.lines()
                    .filter(|l| l.contains("worker died"))
                    .filter_map(|l| l.split("restart_in_ms=").nth(1))
                    .filter_map(|v| v.split_whitespace().next()?.parse::<u64>().ok()),
            );
        }
        delays
    }

    pub(crate) fn rss(&self) -> Rss {
        Rss::of(self.pid())
    }

    /// A fresh `supervisor ARGS…` process against this data dir.
    pub(crate) fn cli(&self, args: &[&str]) -> std::process::Output {
        clean_env(&mut Command::new(&self.bin))
            .arg("--data-dir")
            .arg(&self.data)
            .args(args)
            .output()
            .expect("run the supervisor CLI")
    }
}

impl Drop for Supervisor {
    fn drop(&mut self) {
        common::stop_child(&mut self.child);
    }
}
